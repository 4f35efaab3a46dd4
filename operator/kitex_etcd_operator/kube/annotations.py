"""Annotation mode: a pod registers itself by its annotations, with no KitexService.

Annotating a Deployment's pod template is the intended use: every pod of it
then carries the same annotations, so parsing is cached on their content and
costs once per template, not once per pod. Any annotation under the prefix
that the operator does not know is an error: a typo (``wieght``) must be
reported, not silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from ..model import DEFAULT_NETWORK, DEFAULT_WEIGHT, Framework
from ..retry import RetryConfig
from .errors import SpecError
from .names import ANNOTATION_PREFIX, SERVICE_ONLY, Annotation, annotation_field
from .pods import PodView
from .spec import (
    ADDRESS_SOURCES,
    IP_FAMILIES,
    MAX_WEIGHT,
    ServiceSpec,
    check_choice,
    check_framework,
    check_host,
    check_int,
    check_label_keys,
    check_network,
    check_port,
    check_service_name,
    check_tags,
)

# Service-only annotations are not a pod's: a pod annotated with them made a mistake.
POD_ANNOTATIONS = frozenset(a.value for a in Annotation) - SERVICE_ONLY
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def _at(name: Annotation) -> str:
    return annotation_field(name.value)


def _int(text: str, name: Annotation, minimum: int, maximum: int) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise SpecError(_at(name), f"{text!r} is not a whole number")
    return check_int(int(value), _at(name), minimum, maximum)


def _bool(text: str, name: Annotation) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SpecError(_at(name), f"{text!r} is not true or false")


def parse_tags(text: str, name: Annotation = Annotation.TAGS) -> tuple[tuple[str, str], ...]:
    """Tags as ``k=v,k2=v2`` or, when the text starts with ``{``, a JSON object of strings.

    The short form covers the usual tags (``env=prod,zone=a``); JSON is there
    for values holding a comma or an ``=``. Blanks around items are dropped.
    """
    value = text.strip()
    if value.startswith("{"):
        try:
            data: Any = json.loads(value)
        except ValueError as err:
            raise SpecError(_at(name), f"invalid JSON: {err}") from None
        return check_tags(data, _at(name))
    tags: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, tag = item.partition("=")
        key, tag = key.strip(), tag.strip()
        if not sep or not key:
            raise SpecError(_at(name), f"{item!r} is not key=value")
        if key in tags:
            raise SpecError(_at(name), f"tag {key!r} is given twice")
        tags[key] = tag
    return check_tags(tags, _at(name))


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def check_known(notes: Mapping[str, str], known: frozenset[str], what: str) -> None:
    """Refuse any annotation under the prefix that ``known`` lacks: a typo must show."""
    for key in sorted(notes):
        if key.startswith(ANNOTATION_PREFIX) and key not in known:
            raise SpecError(annotation_field(key),
                            f"unknown annotation on {what}; known ones are {ANNOTATION_PREFIX}"
                            + ", ".join(sorted(k[len(ANNOTATION_PREFIX):] for k in known)))


def common_settings(notes: Mapping[str, str], service: str, retry: RetryConfig) -> ServiceSpec:
    """What pods and Services annotate alike: name, framework, weight, tags, network,
    publish-not-ready. ``port`` is left 0 for the caller, which knows what a port is."""

    def get(name: Annotation) -> str | None:
        return notes.get(name.value)

    framework = Framework.KITEX
    if (text := get(Annotation.FRAMEWORK)) is not None:
        framework = check_framework(text.strip(), _at(Annotation.FRAMEWORK))
    weight = DEFAULT_WEIGHT
    if (text := get(Annotation.WEIGHT)) is not None:
        weight = _int(text, Annotation.WEIGHT, 0, MAX_WEIGHT)
    tags_from_labels: tuple[str, ...] = ()
    if (text := get(Annotation.TAGS_FROM_LABELS)) is not None:
        tags_from_labels = check_label_keys(_list(text), _at(Annotation.TAGS_FROM_LABELS))
    publish = False
    if (text := get(Annotation.PUBLISH_NOT_READY)) is not None:
        publish = _bool(text, Annotation.PUBLISH_NOT_READY)
    family = check_choice((get(Annotation.IP_FAMILY) or "Primary").strip(), IP_FAMILIES,
                          _at(Annotation.IP_FAMILY))
    return ServiceSpec(
        service_name=check_service_name(service, framework, _at(Annotation.SERVICE)),
        port=0,
        framework=framework,
        network=check_network((get(Annotation.NETWORK) or DEFAULT_NETWORK).strip(),
                              _at(Annotation.NETWORK)),
        weight=weight,
        tags=parse_tags(get(Annotation.TAGS) or ""),
        tags_from_labels=tags_from_labels,
        retry=retry,
        publish_not_ready=publish,
        ip_family="IPv4" if family == "IPv4" else "IPv6" if family == "IPv6" else "Primary",
        origin="annotations",
    )


@lru_cache(maxsize=1024)
def _parse(items: tuple[tuple[str, str], ...], retry: RetryConfig) -> ServiceSpec | None:
    notes = dict(items)
    if Annotation.SERVICE.value not in notes:
        return None
    check_known(notes, POD_ANNOTATIONS, "a pod")

    def get(name: Annotation) -> str | None:
        return notes.get(name.value)

    base = common_settings(notes, notes[Annotation.SERVICE.value], retry)
    fixed_port = None
    if (text := get(Annotation.FIXED_PORT)) is not None:
        fixed_port = _int(text, Annotation.FIXED_PORT, 1, 65535)
    port: int | str
    if (text := get(Annotation.PORT)) is not None:
        port = check_port(text.strip(), _at(Annotation.PORT))
    elif fixed_port is not None:
        port = fixed_port
    else:
        raise SpecError(_at(Annotation.PORT), "is required (a number or a container port "
                        f"name), unless {Annotation.FIXED_PORT.value} is set")
    host = get(Annotation.HOST)
    if host is not None and get(Annotation.ADDRESS_SOURCE) is not None:
        raise SpecError(_at(Annotation.HOST),
                        f"cannot be set together with {Annotation.ADDRESS_SOURCE.value}")
    source = check_choice((get(Annotation.ADDRESS_SOURCE) or "podIP").strip(),
                          ADDRESS_SOURCES, _at(Annotation.ADDRESS_SOURCE))
    return replace(
        base, port=port,
        address_source="hostIP" if source == "hostIP" else "podIP",
        fixed_host=check_host(host.strip(), _at(Annotation.HOST)) if host is not None else None,
        fixed_port=fixed_port)


def spec_from_annotations(pod: PodView | Mapping[str, str], *,
                          retry: RetryConfig | None = None) -> ServiceSpec | None:
    """The spec a pod's annotations ask for; ``None`` when it has no service annotation.

    Annotated pods use the operator's etcd, prefix and lease TTL (``etcd`` and
    ``lease_ttl`` stay unset); ``retry`` is the operator's retry setting, the
    Go defaults when not given. Malformed annotations raise ``SpecError``
    naming the annotation.
    """
    notes = pod.annotations if isinstance(pod, PodView) else pod
    if Annotation.SERVICE.value not in notes:
        return None
    items = tuple(sorted((k, v) for k, v in notes.items() if k.startswith(ANNOTATION_PREFIX)))
    try:
        return _parse(items, retry or RetryConfig())
    except SpecError as err:
        # An annotation is one string: name it, not an index inside its parsed value
        # (found by its name, which may itself hold "]", rather than by the first "]").
        named = [f"metadata.annotations[{key}]" for key, _ in items]
        at = max((f for f in named if err.field.startswith(f)), key=len, default=None)
        if at is not None and at != err.field:
            raise SpecError(at, err.message) from None
        raise
