"""The image built with buildah, run as it ships."""
