"""CRDs, kustomize manifests, the Helm chart and the release workflow."""
