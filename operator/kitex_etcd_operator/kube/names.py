"""Annotation names, in one place so that pods, parser and docs cannot drift apart.

The domain is the CRD's group, ``kitex.cloudwego.io``: one namespace for
everything the operator reads.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "kitex.cloudwego.io"
ANNOTATION_PREFIX = GROUP + "/"


class Annotation(StrEnum):
    """Every pod annotation of annotation mode (see docs/reference.md)."""

    SERVICE = ANNOTATION_PREFIX + "service"
    PORT = ANNOTATION_PREFIX + "port"
    WEIGHT = ANNOTATION_PREFIX + "weight"
    NETWORK = ANNOTATION_PREFIX + "network"
    TAGS = ANNOTATION_PREFIX + "tags"
    TAGS_FROM_LABELS = ANNOTATION_PREFIX + "tags-from-labels"
    FRAMEWORK = ANNOTATION_PREFIX + "framework"
    PUBLISH_NOT_READY = ANNOTATION_PREFIX + "publish-not-ready"
    ADDRESS_SOURCE = ANNOTATION_PREFIX + "address-source"
    IP_FAMILY = ANNOTATION_PREFIX + "ip-family"
    HOST = ANNOTATION_PREFIX + "host"
    FIXED_PORT = ANNOTATION_PREFIX + "fixed-port"


def annotation_field(name: str) -> str:
    """The JSON path of an annotation, as errors name it."""
    return f"metadata.annotations[{name}]"
