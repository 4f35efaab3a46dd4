"""An independent view of etcd for assertions: etcdctl, not the operator's client.

The tests judge the operator's writes with a different etcd client than the
one it writes with, so a bug in the operator's etcd layer cannot hide itself.
The watch recorder keeps every PUT and DELETE under a prefix, which is how
"no DELETE for a pod that stayed" is proven.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.helpers import wait_for


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    key: str
    value: bytes
    revision: int


def watch_events(line: str) -> list[WatchEvent]:
    """The events of one line of ``etcdctl watch -w json``; none for a line that is not JSON."""
    try:
        data = json.loads(line)
    except ValueError:
        return []
    return [WatchEvent("DELETE" if ev.get("type") == 1 else "PUT",
                       base64.b64decode(ev.get("kv", {}).get("key", "")).decode(),
                       base64.b64decode(ev.get("kv", {}).get("value", "")),
                       int(ev.get("kv", {}).get("mod_revision", 0)))
            for ev in data.get("Events") or data.get("events") or []]


class EtcdProbe:
    def __init__(self, etcdctl: Path, endpoints: list[str], *extra: str) -> None:
        self.etcdctl = etcdctl
        self.endpoints = endpoints
        self.extra = list(extra)

    def _argv(self, *args: str) -> list[str]:
        return [str(self.etcdctl), f"--endpoints={','.join(self.endpoints)}", *self.extra, *args]

    def run(self, *args: str) -> str:
        proc = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def get_prefix(self, prefix: str) -> dict[str, KV]:
        data = json.loads(self.run("get", "--prefix", prefix, "-w", "json"))
        result = {}
        for kv in data.get("kvs") or []:
            key = base64.b64decode(kv["key"]).decode(errors="surrogateescape")
            result[key] = KV(key, base64.b64decode(kv.get("value", "")), int(kv.get("lease", 0)))
        return result

    def values(self, prefix: str) -> dict[str, bytes]:
        return {k: kv.value for k, kv in self.get_prefix(prefix).items()}

    def put(self, key: str, value: str, *, lease: int | None = None) -> None:
        args = ["put", key, value] + ([f"--lease={lease:x}"] if lease else [])
        self.run(*args)

    def delete(self, key: str) -> None:
        self.run("del", key)

    def grant(self, ttl: int) -> int:
        out = self.run("lease", "grant", str(ttl))  # "lease 694d... granted with TTL(60s)"
        return int(out.split()[1], 16)

    def revision(self) -> int:
        data = json.loads(self.run("get", "probe/no-such-key", "-w", "json"))
        return int(data["header"]["revision"])

    def watch(self, prefix: str) -> WatchRecorder:
        """Every event from now on: the watch starts at the current revision, so
        nothing written while etcdctl is still starting up is missed."""
        start = self.revision() + 1
        return WatchRecorder(self._argv("watch", "--prefix", prefix, f"--rev={start}",
                                        "-w", "json"))


class WatchRecorder:
    """``etcdctl watch`` in the background; events kept in order."""

    def __init__(self, argv: list[str]) -> None:
        self.events: list[WatchEvent] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            events = watch_events(line)
            with self._lock:
                self.events.extend(events)

    def snapshot(self) -> list[WatchEvent]:
        with self._lock:
            return list(self.events)

    def deletes(self) -> list[str]:
        return [e.key for e in self.snapshot() if e.kind == "DELETE"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_keys(probe: EtcdProbe, prefix: str, expected: dict[str, bytes] | Callable[[], Any],
              timeout: float = 30, what: str = "etcd to hold the expected entries") -> Any:
    """Wait until etcd under ``prefix`` holds exactly ``expected``."""
    if callable(expected):
        return wait_for(expected, timeout=timeout, what=what)
    return wait_for(lambda: probe.values(prefix) == expected, timeout=timeout,
                    what=f"{what}: {sorted(expected)}")



def grpc_started(endpoint: str, method: str) -> float:
    """The ``method`` calls (or streams) etcd started, from its own /metrics: how a
    client used the wire."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("grpc_server_started_total{")
               and f'grpc_method="{method}"' in line)
