"""Annotation mode: a pod registers itself by its annotations, with no KitexService.

Annotating a Deployment's pod template is the intended use: every pod of it
then carries the same annotations, so parsing is cached on their content and
costs once per template, not once per pod. Any annotation under the prefix
that the operator does not know is an error: a typo (``wieght``) must be
reported, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache

from ..retry import RetryConfig
from .checks import check_port, check_service_name
from .errors import SpecError
from .fields import from_annotations
from .names import ANNOTATION_PREFIX, SERVICE_ONLY, Annotation, annotation_field
from .pods import PodView
from .spec import ServiceSpec, address_source, ip_family

# Service-only annotations are not a pod's: a pod annotated with them made a mistake.
POD_ANNOTATIONS = frozenset(a.value for a in Annotation) - SERVICE_ONLY


def _field_of(name: Annotation) -> str:
    return annotation_field(name.value)


def check_known(annotations: Mapping[str, str], known: frozenset[str], what: str) -> None:
    """Refuse any annotation under the prefix that ``known`` lacks: a typo must show."""
    for key in sorted(annotations):
        if key.startswith(ANNOTATION_PREFIX) and key not in known:
            raise SpecError(annotation_field(key),
                            f"unknown annotation on {what}; known ones are {ANNOTATION_PREFIX}"
                            + ", ".join(sorted(k[len(ANNOTATION_PREFIX):] for k in known)))


def common_settings(annotations: Mapping[str, str], service: str,
                    retry: RetryConfig) -> ServiceSpec:
    """What pods and Services annotate alike: name, framework, weight, tags, network,
    publish-not-ready. ``port`` is left 0 for the caller, which knows what a port is."""
    framework = from_annotations(annotations, "framework")
    return ServiceSpec(
        service_name=check_service_name(service, framework, _field_of(Annotation.SERVICE)),
        port=0,
        framework=framework,
        network=from_annotations(annotations, "network"),
        weight=from_annotations(annotations, "weight"),
        tags=from_annotations(annotations, "tags"),
        tags_from_labels=from_annotations(annotations, "tagsFromLabels"),
        retry=retry,
        publish_not_ready=from_annotations(annotations, "publishNotReadyAddresses"),
        ip_family=ip_family(from_annotations(annotations, "address.ipFamily")),
        origin="annotations",
    )


@lru_cache(maxsize=1024)
def _parse(items: tuple[tuple[str, str], ...], retry: RetryConfig) -> ServiceSpec | None:
    annotations = dict(items)
    if Annotation.SERVICE.value not in annotations:
        return None
    check_known(annotations, POD_ANNOTATIONS, "a pod")

    def get(name: Annotation) -> str | None:
        return annotations.get(name.value)

    base = common_settings(annotations, annotations[Annotation.SERVICE.value], retry)
    fixed_port = from_annotations(annotations, "address.port")
    port: int | str
    if (text := get(Annotation.PORT)) is not None:
        port = check_port(text.strip(), _field_of(Annotation.PORT))
    elif fixed_port is not None:
        port = fixed_port
    else:
        raise SpecError(_field_of(Annotation.PORT), "is required (a number or a container port "
                        f"name), unless {Annotation.FIXED_PORT.value} is set")
    if get(Annotation.HOST) is not None and get(Annotation.ADDRESS_SOURCE) is not None:
        raise SpecError(_field_of(Annotation.HOST),
                        f"cannot be set together with {Annotation.ADDRESS_SOURCE.value}")
    return replace(
        base, port=port,
        address_source=address_source(from_annotations(annotations, "address.source")),
        fixed_host=from_annotations(annotations, "address.host"),
        fixed_port=fixed_port)


def spec_from_annotations(pod: PodView | Mapping[str, str], *,
                          retry: RetryConfig | None = None) -> ServiceSpec | None:
    """The spec a pod's annotations ask for; ``None`` when it has no service annotation.

    Annotated pods use the operator's etcd, prefix and lease TTL (``etcd`` and
    ``lease_ttl`` stay unset); ``retry`` is the operator's retry setting, the
    Go defaults when not given. Malformed annotations raise ``SpecError``
    naming the annotation.
    """
    annotations = pod.annotations if isinstance(pod, PodView) else pod
    if Annotation.SERVICE.value not in annotations:
        return None
    retry = retry or _GO_RETRY
    # Pods of one template share one annotations object (``kube.pods._shared``), never
    # changed (a view's mappings are read-only): the spec is looked up by that object
    # first. The entry holds the object, so its id cannot pass to another while
    # cached. A plain mapping may change between calls: not cached.
    view = isinstance(pod, PodView)
    cached = _BY_OBJECT.get(id(annotations)) if view else None
    if cached is not None and cached[0] is annotations and cached[1] is retry:
        return cached[2]
    items = tuple(sorted((k, v) for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)))
    try:
        spec = _parse(items, retry)
    except SpecError as err:
        # An annotation is one string: name it, not an index inside its parsed value
        # (found by its name, which may itself hold "]", rather than by the first "]").
        named = [f"metadata.annotations[{key}]" for key, _ in items]
        at = max((f for f in named if err.field.startswith(f)), key=len, default=None)
        if at is not None and at != err.field:
            raise SpecError(at, err.message) from None
        raise
    if view:
        if len(_BY_OBJECT) >= _BY_OBJECT_MAX:
            _BY_OBJECT.clear()
        _BY_OBJECT[id(annotations)] = (annotations, retry, spec)
    return spec


_GO_RETRY = RetryConfig()
_BY_OBJECT: dict[int, tuple[Mapping[str, str], RetryConfig, ServiceSpec | None]] = {}
_BY_OBJECT_MAX = 4096
