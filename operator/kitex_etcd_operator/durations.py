"""Go-style durations ("30s", "1m30s", "500ms"), as registry-etcd users write them.

Used by the CLI and the KitexService parser alike, so that ``observeDelay:
30s`` means the same in a flag, a CR and the Go code it replaces.
"""

from __future__ import annotations

import re

OBSERVE_DELAY = (1.0, 3600.0)
"""Bounds of observeDelay (seconds). Each observation is a full read of the service's
range plus a Secret GET: below 1 s that load grows with no gain (pod changes are
written at once, not at the next observation), and a key removed by hand stays
missing for up to observeDelay, so more than an hour is not a repair any more."""
RETRY_DELAY = (1.0, 3600.0)
"""Bounds of retryDelay: below 1 s a down etcd is hammered by every service at once
(each retry is a dial, bounded by dialTimeout); above an hour a failed write waits
past any lease TTL worth using."""
DIAL_TIMEOUT = (0.1, 60.0)
"""Bounds of dialTimeout: 100 ms is a round trip to a remote etcd with TLS; past a
minute a dead endpoint holds up every write for longer than a lease lives."""
_TOLERANCE = 1e-9  # "3600000ms" is 3600.0000000000005 s in floating point

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


def out_of_bounds(seconds: float, bounds: tuple[float, float]) -> str | None:
    """Why ``seconds`` is outside ``bounds``, or None: one wording for flags and specs."""
    low, high = bounds
    if seconds < low - _TOLERANCE or seconds > high + _TOLERANCE:
        return f"must be between {format_duration(low)} and {format_duration(high)}"
    return None


def format_duration(seconds: float) -> str:
    """The shortest Go spelling of a bound: 100ms, 1s, 1m, 1h."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-9:
            return f"{round(seconds / size)}{unit}"
    return f"{seconds:g}s"
