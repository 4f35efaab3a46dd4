"""Annotation names, in one place so that pods, parser and docs cannot drift apart.

The domain is the CRD's group, ``kitex.cloudwego.io``: one namespace for
everything the operator reads.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "kitex.cloudwego.io"
ANNOTATION_PREFIX = GROUP + "/"


class Annotation(StrEnum):
    """Every annotation of annotation mode and of Services (see docs/reference.md)."""

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
    AUTO_REGISTER = ANNOTATION_PREFIX + "auto-register"  # Services: "disabled" opts out


# Only a Service reads these; and the namespace label that opts a namespace in.
SERVICE_ONLY = frozenset({Annotation.AUTO_REGISTER.value})
# Only a pod's: a Service's endpoints bring their own addresses and target port.
POD_ONLY = frozenset({Annotation.HOST.value, Annotation.FIXED_PORT.value,
                      Annotation.ADDRESS_SOURCE.value})
AUTO_REGISTER_LABEL = Annotation.AUTO_REGISTER.value
AUTO_REGISTER_ON = "enabled"


def annotation_field(name: str) -> str:
    """The JSON path of an annotation, as errors name it."""
    return f"metadata.annotations[{name}]"
