"""Measurements the reliability tests take, printed and kept for docs/reliability.md.

A test calls ``figures(name=value, ...)`` (the fixture in conftest.py). Each
call prints one ``FIGURES {json}`` line and, when ``KITEX_RELIABILITY_FIGURES``
names a file, appends the same JSON there, so one run of the suite yields the
table the docs quote. Tests never assert timings; figures are for people.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.support.etcd_probe import EtcdProbe


def record(test: str, **values: Any) -> None:
    line = {"test": test, **values}
    print("FIGURES", json.dumps(line, sort_keys=True))
    path = os.environ.get("KITEX_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")


class GapSampler:
    """Samples etcd in the background: for every key that should be there, the
    longest stretch it was missing (its gap). A failed read counts as an
    error, never as "missing": the probe must not invent gaps."""

    def __init__(self, probe: EtcdProbe, prefix: str, keys: Callable[[], set[str]],
                 interval: float = 0.1) -> None:
        self.probe, self.prefix, self.keys, self.interval = probe, prefix, keys, interval
        self.missing_since: dict[str, float] = {}
        self.longest: dict[str, float] = {}
        self.samples = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                want = self.keys()
                have = set(self.probe.values(self.prefix))
            except Exception:
                self.errors += 1
                self._stop.wait(self.interval)
                continue
            now = time.monotonic()
            self.samples += 1
            for key in want:
                if key in have:
                    since = self.missing_since.pop(key, None)
                    if since is not None:
                        self.longest[key] = max(self.longest.get(key, 0.0), now - since)
                else:
                    self.missing_since.setdefault(key, now)
            self._stop.wait(self.interval)

    @property
    def max_gap(self) -> float:
        now = time.monotonic()
        open_gaps = [now - t for t in self.missing_since.values()]
        return max([*self.longest.values(), *open_gaps], default=0.0)
