"""Go-style durations ("30s", "1m30s", "500ms"), as registry-etcd users write them.

Used by the CLI and the KitexService parser alike, so that ``observeDelay:
30s`` means the same in a flag, a CR and the Go code it replaces.
"""

from __future__ import annotations

import re
from typing import Any

import click

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str | float | int) -> float:
    """Seconds in a Go duration; a bare number is taken as seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration {text} is negative")
        return float(text)
    value = text.strip()
    try:
        return parse_duration(float(value))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m30s or 500ms")
    return total


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter that takes Go durations."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
