"""The Kubernetes source layer: pod and KitexService bodies in, specs and instances out.

Pure functions over the raw dicts kopf and the API server hand over, so that
every rule about which pod becomes which etcd entry is tested without a
cluster, and a malformed object can only ever produce a ``SpecError`` that
names the field at fault.
"""

from __future__ import annotations

from ..labels import matches
from .annotations import spec_from_annotations
from .errors import SpecError
from .names import ANNOTATION_PREFIX, Annotation
from .pods import PodView, is_eligible, pod_view
from .selectors import validate_selector
from .spec import EtcdRef, ServiceSpec, instance_for, parse_kitexservice

__all__ = [
    "ANNOTATION_PREFIX",
    "Annotation",
    "EtcdRef",
    "PodView",
    "ServiceSpec",
    "SpecError",
    "instance_for",
    "is_eligible",
    "matches",
    "parse_kitexservice",
    "pod_view",
    "spec_from_annotations",
    "validate_selector",
]
