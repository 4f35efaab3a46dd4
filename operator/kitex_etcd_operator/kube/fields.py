"""Every registration setting once: its KitexService field, its annotation, type and limits.

The KitexService parser and the annotation parser (pods and Services) read
these settings through this table, so a default or a bound cannot differ
between the two; a unit test checks the CRD schema against it too (type,
minimum, maximum, enum, default). Settings with rules of their own (the
service name and port, ``serviceRef``, ``etcd``, ``retry``) are parsed by
``spec`` and ``annotations`` directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..model import DEFAULT_NETWORK, DEFAULT_WEIGHT, MAX_VALUE_BYTES, Framework
from .checks import (
    ADDRESS_SOURCES,
    IP_FAMILIES,
    MAX_LEASE_TTL,
    MAX_TAGS_TEXT,
    MAX_WEIGHT,
    MIN_LEASE_TTL,
    as_object,
    check_bool,
    check_choice,
    check_framework,
    check_host,
    check_int,
    check_label_keys,
    check_network,
    check_tags,
    parse_number,
)
from .errors import SpecError
from .names import Annotation, annotation_field

Kind = Literal["int", "bool", "choice", "framework", "network", "host", "tags", "label-keys"]
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


@dataclass(frozen=True, slots=True)
class Field:
    """One setting: where it sits under ``spec``, its annotation, how it is checked."""

    path: str  # under spec, dotted: "weight", "address.port"
    annotation: Annotation | None  # None: a KitexService field only
    kind: Kind
    default: Any = None  # as JSON writes it; None: unset
    bounds: tuple[int, int] | None = None  # for "int"
    choices: tuple[str, ...] = ()  # for "choice" and "framework"


FIELDS: tuple[Field, ...] = (
    Field("framework", Annotation.FRAMEWORK, "framework", Framework.KITEX.value,
          choices=tuple(f.value for f in Framework)),
    Field("network", Annotation.NETWORK, "network", DEFAULT_NETWORK),
    Field("weight", Annotation.WEIGHT, "int", DEFAULT_WEIGHT, bounds=(0, MAX_WEIGHT)),
    Field("tags", Annotation.TAGS, "tags", {}),
    Field("tagsFromLabels", Annotation.TAGS_FROM_LABELS, "label-keys", []),
    Field("publishNotReadyAddresses", Annotation.PUBLISH_NOT_READY, "bool", False),
    Field("address.source", Annotation.ADDRESS_SOURCE, "choice", "podIP",
          choices=ADDRESS_SOURCES),
    Field("address.ipFamily", Annotation.IP_FAMILY, "choice", "Primary", choices=IP_FAMILIES),
    Field("address.host", Annotation.HOST, "host"),
    Field("address.port", Annotation.FIXED_PORT, "int", bounds=(1, 65535)),
    Field("leaseTTL", None, "int", bounds=(MIN_LEASE_TTL, MAX_LEASE_TTL)),
)
BY_PATH = {f.path: f for f in FIELDS}


def from_spec(spec: Mapping[str, Any], path: str) -> Any:
    """The setting's checked value in a KitexService ``spec``, or its default."""
    setting = BY_PATH[path]
    node, *parents = spec, *path.split(".")[:-1]
    for at, parent in enumerate(parents):
        node = as_object(node.get(parent), "spec." + ".".join(parents[:at + 1]))
    raw = node.get(path.rsplit(".", 1)[-1])
    return _checked(setting, setting.default if raw is None else raw, f"spec.{path}")


def from_annotations(annotations: Mapping[str, str], path: str) -> Any:
    """The setting's checked value in annotations (strings), or its default."""
    setting = BY_PATH[path]
    assert setting.annotation is not None, path
    text = annotations.get(setting.annotation.value)
    at = annotation_field(setting.annotation.value)
    if text is None or (not text.strip() and setting.kind in ("choice", "network")):
        return _checked(setting, setting.default, at)
    return _checked(setting, _decode(setting, text, at), at)


def _checked(setting: Field, value: Any, at: str) -> Any:
    if value is None:
        return None
    kind = setting.kind
    if kind == "int":
        assert setting.bounds is not None
        return check_int(value, at, *setting.bounds)
    if kind == "bool":
        return check_bool(value, at)
    if kind == "choice":
        return check_choice(value, setting.choices, at)
    if kind == "framework":
        return check_framework(value, at)
    if kind == "network":
        return check_network(value, at)
    if kind == "host":
        return check_host(value, at)
    if kind == "tags":
        return check_tags(value, at)
    return check_label_keys(value, at)


def _decode(setting: Field, text: str, at: str) -> Any:
    """An annotation's string as the JSON value a KitexService would hold."""
    value = text.strip()
    if setting.kind == "int":
        return parse_number(value, at)
    if setting.kind == "bool":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise SpecError(at, f"{text!r} is not true or false")
    if setting.kind == "tags":
        return parse_tags(text, at)
    if setting.kind == "label-keys":
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def parse_tags(text: str, at: str) -> dict[str, str]:
    """Tags as ``k=v,k2=v2`` or, when the text starts with ``{``, a JSON object of strings.

    The short form covers the usual tags (``env=prod,zone=a``); JSON is there
    for values holding a comma or an ``=``. Blanks around items are dropped.
    """
    value = text.strip()
    if len(value) > MAX_TAGS_TEXT:
        raise SpecError(at, f"is {len(value)} characters, more than {MAX_TAGS_TEXT} (an entry "
                            f"holds at most {MAX_VALUE_BYTES} bytes)")
    if value.startswith("{"):
        try:
            data: Any = json.loads(value)
        except RecursionError:  # not a ValueError: deep nesting must not escape as a crash
            raise SpecError(at, "invalid JSON: nested too deeply") from None
        except ValueError as err:
            raise SpecError(at, f"invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise SpecError(at, "must be a map of strings to strings")
        return data
    tags: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, tag = item.partition("=")
        key, tag = key.strip(), tag.strip()
        if not sep or not key:
            raise SpecError(at, f"{item!r} is not key=value")
        if key in tags:
            raise SpecError(at, f"tag {key!r} is given twice")
        tags[key] = tag
    return tags
