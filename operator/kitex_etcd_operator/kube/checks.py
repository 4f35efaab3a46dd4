"""Value checks shared by every source: each takes a raw value and the field's path.

A KitexService gives JSON values, annotations give strings (``fields`` turns
them into the same types first); either way a bad value raises ``SpecError``
naming the field as the user wrote it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import reprlib
from collections.abc import Mapping
from typing import Any, Literal

from ..durations import out_of_bounds, parse_duration
from ..labels import LABEL_KEY as _LABEL_KEY
from ..model import (
    MAX_VALUE_BYTES,
    Framework,
    InvalidInstance,
    join_host_port,
    validate_service_name,
)
from .errors import SpecError

AddressSource = Literal["podIP", "hostIP"]
IPFamily = Literal["Primary", "IPv4", "IPv6"]

ADDRESS_SOURCES: tuple[AddressSource, ...] = ("podIP", "hostIP")
IP_FAMILIES: tuple[IPFamily, ...] = ("Primary", "IPv4", "IPv6")
MIN_LEASE_TTL = 5  # below this a keepalive hiccup drops the entries
MAX_LEASE_TTL = 86400  # above this entries outlive a dead operator for too long
MAX_WEIGHT = 2**31 - 1  # fits every Go int and any sum a balancer makes of a few
MAX_TAGS = 64
MAX_ENDPOINTS = 16
# The tags annotation's text: room for JSON escapes and indentation around what an
# entry can hold, and a bound on the work of parsing it.
MAX_TAGS_TEXT = 8 * MAX_VALUE_BYTES
# The most digits a number may have, leading zeros aside: every bound here fits in
# 10 (2**31-1). Checked before ``int()``, which refuses more than 4,300 digits with a
# plain ValueError that would escape every handler of ``SpecError``.
MAX_DIGITS = 10
# Used with fullmatch, never match: Python's `$` also matches before a final
# newline, so "rpc\n" would pass where the CRD's (Go) patterns refuse it.
_PORT_NAME = re.compile(r"^(?!-)(?!.*--)[a-z0-9-]{1,15}(?<!-)$")
_NETWORK = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Service port name
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS-1035 label
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def check_int(value: Any, at: str, minimum: int, maximum: int) -> int:
    """An integer in range; booleans and floats are refused (YAML turns `yes` into True)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(at, f"{value!r} is not an integer")
    if not minimum <= value <= maximum:
        raise SpecError(at, f"{value} is not in {minimum}..{maximum}")
    return value


def parse_number(text: str, at: str) -> int:
    """A whole number written in ASCII digits, as a tenant's string gives it."""
    if not text.isascii() or not text.isdigit():
        raise SpecError(at, f"{text!r} is not a whole number")
    if len(text.lstrip("0")) > MAX_DIGITS:
        raise SpecError(at, f"a number of {len(text)} digits is out of range")
    return int(text)


def check_port(value: Any, at: str) -> int | str:
    """A port number, or the IANA-style name of a container port, as a Service's targetPort."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return check_int(parse_number(value, at), at, 1, 65535)
        if not _PORT_NAME.fullmatch(value) or not any(c.isalpha() for c in value):
            raise SpecError(at, f"{value!r} is neither a port number nor a container port name "
                                "(1-15 lowercase letters, digits and '-', with a letter)")
        return value
    return check_int(value, at, 1, 65535)


def check_network(value: Any, at: str) -> str:
    if not isinstance(value, str) or not _NETWORK.fullmatch(value):
        raise SpecError(at, f"{value!r} is not a network name like tcp")
    return value


def check_service_name(value: Any, framework: Framework, at: str) -> str:
    if not isinstance(value, str):
        raise SpecError(at, "must be a string")
    try:
        return validate_service_name(value, framework, field=at)
    except InvalidInstance as err:
        raise SpecError(at, err.message) from None


def check_framework(value: Any, at: str) -> Framework:
    try:
        return Framework(value)
    except ValueError:
        raise SpecError(at, f"{value!r} is not one of kitex, hertz") from None


def check_tags(value: Any, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError(at, "must be a map of strings to strings")
    if len(value) > MAX_TAGS:
        raise SpecError(at, f"has {len(value)} tags, more than {MAX_TAGS}")
    for key, tag in value.items():
        if not isinstance(key, str) or not key:
            raise SpecError(at, f"tag key {key!r} must be a non-empty string")
        if not isinstance(tag, str):  # reprlib: a nested value is shown bounded, not walked
            raise SpecError(f"{at}[{key}]", f"{reprlib.repr(tag)} is not a string")
    return tuple(sorted(value.items()))


def check_label_keys(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(at, "must be a list of label keys")
    for index, key in enumerate(value):
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise SpecError(f"{at}[{index}]", f"{key!r} is not a label key")
    if len(value) > MAX_TAGS:
        raise SpecError(at, f"has {len(value)} keys, more than {MAX_TAGS}")
    return tuple(dict.fromkeys(value))


def check_choice(value: Any, choices: tuple[str, ...], at: str) -> str:
    if value not in choices:
        raise SpecError(at, f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def check_host(value: Any, at: str) -> str:
    """An IP or a DNS name a client can dial, as KITEX_IP_TO_REGISTRY takes."""
    if not isinstance(value, str):
        raise SpecError(at, "must be a string")
    # Before any parsing, whatever form the host has: ``ipaddress`` accepts an IPv6
    # zone of any text, and the host ends up in the entry's etcd key.
    if len(value) > 253 or not value.isascii() or not value.isprintable():
        raise SpecError(at, f"{value!r} is not an IP address or DNS name")
    try:
        join_host_port(value, 1)
    except InvalidInstance as err:
        raise SpecError(at, err.message) from None
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise SpecError(at, f"{value!r} is not an IP address or DNS name")
    return value


def check_duration(value: Any, at: str, bounds: tuple[float, float]) -> float:
    """A Go duration ("30s", "1m30s", "500ms") or a number of seconds, within bounds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(at, f"{value!r} is not a duration like 30s")
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError) as err:
        raise SpecError(at, str(err)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(at, f"{value!r} must be a positive duration")
    why = out_of_bounds(seconds, bounds)
    if why:
        raise SpecError(at, f"{value!r} {why}")
    return seconds


def check_bool(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(at, f"{value!r} is not true or false")
    return value


def as_object(value: Any, at: str) -> Mapping[str, Any]:
    """A JSON object, or ``{}`` for absent; anything else is an error naming ``at``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(at, "must be an object")
    return value


def secret_ref(value: Any, at: str) -> str | None:
    if value is None:
        return None
    ref = as_object(value, at)
    name = ref.get("name")
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise SpecError(f"{at}.name", f"{name!r} is not a Secret name")
    return name


def check_service_port(value: str, at: str) -> int | str:
    """A Service port's number or name (a DNS label, up to 63 characters)."""
    if value.isascii() and value.isdigit():
        return check_int(parse_number(value, at), at, 1, 65535)
    if not _DNS_LABEL.fullmatch(value):
        raise SpecError(at, f"{value!r} is neither a port number nor a Service port name")
    return value
