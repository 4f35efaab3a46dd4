"""The soak's judge: Kubernetes and etcd read independently of the operator.

Every ``interval`` it lists the soak's pods (the admin connection, not the
operator's proxied one) and reads the registry range with etcdctl; an
``etcdctl watch`` records every PUT and DELETE as it happens. From these it
checks, all the time:

1. a key desired (its pod ready, with an IP, not terminating) for longer than
   ``bound`` is in etcd with its exact value;
2. a key of ours not desired for longer than ``bound`` is gone;
3. no DELETE of a key while the pod behind it stayed ready around it (the same
   pod: kwok reuses a freed IP at once, so a key may pass from one pod to the next).
   A DELETE is placed by its revision between the last sample that read etcd
   before it and the first that read it after, not by when the watch delivered
   it (after an outage the watch replays what it missed, late), and the pod
   must have held the key for ``bound`` before it: a delete decided while the
   pod was not ready may reach etcd seconds later, once an election is over;
4. no foreign key (written by the nemesis into a service's range) ever changes;

where the bound starts when the last *blinding* fault before it ended: while
etcd is down, the operator cannot see the API server, or no replica leads,
nothing can be repaired, so the clock starts when that ends (issue 14: "outside
etcd outages, where the bound starts when etcd returns"). A violation is kept
with its timeline (the key's recent samples and the faults around it).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.support.etcd_probe import EtcdProbe, watch_events

PORT = 8888


def value(ip: str) -> bytes:
    return f'{{"network":"tcp","address":"{ip}:{PORT}","weight":10,"tags":null}}'.encode()


@dataclass
class Window:
    """A fault's span on the monotonic clock; ``end`` is None while it lasts."""

    kind: str
    start: float
    end: float | None = None
    blinding: bool = False
    detail: str = ""


@dataclass
class Violation:
    invariant: int
    key: str
    at: float
    message: str
    timeline: list[str] = field(default_factory=list)


@dataclass
class Stats:
    samples: int = 0
    key_checks: int = 0  # (key, sample) pairs judged under (1) or (2)
    deletes_checked: int = 0
    events_seen: int = 0
    sample_errors: int = 0
    worst_missing: float = 0.0  # (1): longest a desired key was missing, past blinding faults
    worst_missing_key: str = ""
    worst_stale: float = 0.0  # (2): longest an undesired key stayed
    worst_stale_key: str = ""
    raw_worst_missing: float = 0.0  # the same from when the change happened, faults included
    raw_worst_stale: float = 0.0
    max_rss_mib: float = 0.0


class EtcdWatch(threading.Thread):
    """``etcdctl watch`` from a revision on, started again from the next revision
    when it ends (an outage can end it), so no event is lost or repeated."""

    def __init__(self, probe: EtcdProbe, prefix: str, start: int) -> None:
        super().__init__(daemon=True, name="soak etcd watch")
        self.probe, self.prefix, self.next = probe, prefix, start
        self.events: deque[tuple[float, str, str, bytes, int]] = deque()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            argv = self.probe._argv("watch", "--prefix", self.prefix, f"--rev={self.next}",
                                    "-w", "json")
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                for ev in watch_events(line):
                    with self.lock:
                        self.events.append((time.monotonic(), ev.kind, ev.key, ev.value,
                                            ev.revision))
                    self.next = max(self.next, ev.revision + 1)
            self.proc.wait()
            self.stopped.wait(0.5)

    def take(self) -> list[tuple[float, str, str, bytes, int]]:
        with self.lock:
            items = list(self.events)
            self.events.clear()
        return items

    def stop(self) -> None:
        self.stopped.set()
        if self.proc is not None:
            self.proc.terminate()


class Checker(threading.Thread):
    """Samples Kubernetes and etcd, and judges the four invariants (see the module)."""

    def __init__(self, core: Any, namespaces: list[str], services: dict[tuple[str, str], str],
                 probe: EtcdProbe, prefix: str, bound: float, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="soak checker")
        self.core, self.namespaces, self.services = core, namespaces, services
        self.probe, self.prefix, self.bound, self.interval = probe, prefix, bound, interval
        self.windows: list[Window] = []
        self.foreign: dict[str, tuple[bytes, int]] = {}  # key -> (value, revision written)
        self.violations: list[Violation] = []
        self.stats = Stats()
        self.missing: dict[str, float] = {}  # desired key -> first sample it was not right
        self.stale: dict[str, float] = {}  # undesired key -> first sample it was there
        self.reported: set[tuple[int, str, float]] = set()
        self.history: dict[str, deque[str]] = {}
        # (when, etcd revision read, key -> uid of the ready pod behind it)
        self.samples: deque[tuple[float, int, dict[str, str]]] = deque(maxlen=400)
        self.pending_deletes: list[tuple[str, int]] = []
        self.excused: list[tuple[int, int]] = []  # revisions of lease revokes by hand
        self.deletes_unjudged = 0
        self.rss: dict[str, float] = {}
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.watch = EtcdWatch(probe, prefix, probe.revision() + 1)
        self.started = time.monotonic()
        self.last_error = ""

    # --- what the nemesis tells us --------------------------------------------------

    def fault(self, kind: str, *, blinding: bool, detail: str = "") -> Window:
        window = Window(kind, time.monotonic(), blinding=blinding, detail=detail)
        with self.lock:
            self.windows.append(window)
        return window

    def revoked(self, after: int, upto: int) -> None:
        """The nemesis revoked a lease between these revisions: etcd deleted its keys."""
        with self.lock:
            self.excused.append((after, upto))

    def foreign_key(self, key: str, data: bytes, revision: int) -> None:
        """Told right after the nemesis put the key: a sample taken in between saw it
        as stale (in etcd, not desired), and nothing would have cleared that."""
        with self.lock:
            self.foreign[key] = (data, revision)
            self.stale.pop(key, None)

    # --- the loop --------------------------------------------------------------------

    def run(self) -> None:
        self.watch.start()
        while not self.stopped.is_set():
            try:
                self.sample()
            except Exception as exc:  # the API server or etcd is down: no sample
                self.stats.sample_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._note("*", f"sample failed: {type(exc).__name__}")
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)
        self.watch.stop()

    def sample(self) -> None:
        pods: list[Any] = []
        for ns in self.namespaces:
            pods += self.core.list_namespaced_pod(ns, label_selector="soak=1",
                                                  _request_timeout=5).items
        # The sample is dated when the pods were read, not after the etcd read: during an
        # outage etcdctl blocks for seconds, and a late date made pods look ready around a
        # DELETE that came after they had turned not ready (a false invariant-3 violation).
        now = time.monotonic()
        read = json.loads(self.probe.run("get", "--prefix", self.prefix, "-w", "json"))
        revision = int(read["header"]["revision"])
        etcd = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in read.get("kvs") or []}
        desired: dict[str, bytes] = {}
        owners: dict[str, str] = {}
        for pod in pods:
            service = self.services.get((pod.metadata.namespace,
                                         (pod.metadata.labels or {}).get("app", "")))
            ip = pod.status.pod_ip if pod.status else None
            if service is None or not ip or pod.metadata.deletion_timestamp:
                continue
            if not any(c.type == "Ready" and c.status == "True"
                       for c in (pod.status.conditions or [])):
                continue
            key = f"{self.prefix}{service}/{ip}:{PORT}"
            desired[key] = value(ip)
            owners[key] = pod.metadata.uid
        with self.lock:
            self.stats.samples += 1
            self.samples.append((now, revision, owners))
            self._judge(now, desired, etcd)
            self._judge_events(now)

    def _judge(self, now: float, desired: dict[str, bytes], etcd: dict[str, bytes]) -> None:
        blind = self._blind(now)
        for key, want in desired.items():
            self.stats.key_checks += 1
            self.stale.pop(key, None)
            if etcd.get(key) == want:
                since = self.missing.pop(key, None)
                if since is not None:
                    self._record(1, key, since, now)
                continue
            since = self.missing.setdefault(key, now)
            self._note(key, f"desired, etcd has {etcd.get(key)!r}")
            if not blind and now - self._effective(since) > self.bound:
                self._violate(1, key, since, f"desired for {now - since:.1f}s, "
                              f"{'wrong value' if key in etcd else 'missing'} in etcd")
        for key in etcd:
            if key in desired or key in self.foreign:
                continue
            self.stats.key_checks += 1
            self.missing.pop(key, None)
            since = self.stale.setdefault(key, now)
            self._note(key, "in etcd, not desired")
            if not blind and now - self._effective(since) > self.bound:
                self._violate(2, key, since, f"not desired for {now - since:.1f}s, still in etcd")
        for key in [k for k in self.stale if k not in etcd or k in desired]:
            self._record(2, key, self.stale.pop(key), now)
        for key in [k for k in self.missing if k not in desired]:
            del self.missing[key]  # no longer desired: the episode ends unjudged

    def _record(self, invariant: int, key: str, since: float, now: float) -> None:
        effective, raw = now - self._effective(since), now - since
        if invariant == 1:
            self.stats.raw_worst_missing = max(self.stats.raw_worst_missing, raw)
            if effective > self.stats.worst_missing:
                self.stats.worst_missing, self.stats.worst_missing_key = effective, key
        else:
            self.stats.raw_worst_stale = max(self.stats.raw_worst_stale, raw)
            if effective > self.stats.worst_stale:
                self.stats.worst_stale, self.stats.worst_stale_key = effective, key

    def _judge_events(self, now: float) -> None:
        for at, kind, key, _data, rev in self.watch.take():
            self.stats.events_seen += 1
            if key in self.foreign:
                _written, wrote_rev = self.foreign[key]
                if rev > wrote_rev:
                    self._violate(4, key, at, f"foreign key {kind} at revision {rev}")
                continue
            self._note(key, f"watch: {kind} rev {rev}")
            if kind == "DELETE":
                self.pending_deletes.append((key, rev))
        margin = max(3 * self.interval, 2.0)
        keep = []
        for key, rev in self.pending_deletes:
            after = next((s for s in self.samples if s[1] >= rev), None)
            if after is None or now < after[0] + margin:
                keep.append((key, rev))  # not read past it yet, or too recently to judge
                continue
            before = next((s for s in reversed(self.samples) if s[1] < rev), None)
            if before is None:
                self.deletes_unjudged += 1  # older than the samples kept
                continue
            self.stats.deletes_checked += 1
            uid = before[2].get(key)
            # The pod must have stayed ready for the bound before the DELETE as well: a
            # delete decided while it was not ready may reach etcd seconds later (a write
            # stalled by an etcd election is sent again to the next member).
            around = [owners.get(key) for t, _, owners in self.samples
                      if before[0] - self.bound <= t <= after[0] + margin]
            if uid is not None and all(u == uid for u in around) \
                    and not any(lo < rev <= hi for lo, hi in self.excused):
                self._violate(3, key, before[0], f"DELETE at revision {rev} (between the "
                              f"samples at {before[0] - self.started:.1f}s and "
                              f"{after[0] - self.started:.1f}s) while pod {uid} stayed ready "
                              f"({len(around)} samples)")
        self.pending_deletes = keep

    # --- fault windows ---------------------------------------------------------------

    def _blind(self, now: float) -> bool:
        return any(w.blinding and w.end is None for w in self.windows)

    def _effective(self, since: float) -> float:
        """When the bound starts: the end of the last blinding fault that overlapped."""
        start = since
        for w in self.windows:
            if w.blinding and w.end is not None and w.end > since and w.start <= w.end:
                start = max(start, w.end)
        return start

    # --- reporting -------------------------------------------------------------------

    def _note(self, key: str, what: str) -> None:
        line = f"{time.monotonic() - self.started:8.2f}s {what}"
        notes = self.history.setdefault(key, deque(maxlen=12))
        if not notes or notes[-1].split(" ", 1)[-1].strip() != line.split(" ", 1)[-1].strip():
            notes.append(line)

    def _violate(self, invariant: int, key: str, since: float, message: str) -> None:
        if (invariant, key, since) in self.reported:
            return
        self.reported.add((invariant, key, since))
        faults = [f"{w.start - self.started:8.2f}s..{self._end(w)} {w.kind} {w.detail}"
                  for w in self.windows
                  if w.start <= time.monotonic() and (w.end is None or w.end >= since - 30)]
        self.violations.append(Violation(
            invariant, key, since - self.started, message,
            [*self.history.get(key, []), *(f"fault {f}" for f in faults[-6:])]))
        print(f"VIOLATION ({invariant}) {key}: {message}", flush=True)
        for line in self.violations[-1].timeline:
            print(f"    {line}", flush=True)

    def _end(self, w: Window) -> str:
        return "" if w.end is None else f"{w.end - self.started:.2f}s"

    def converged(self) -> bool:
        """Right now nothing is missing and nothing stale."""
        with self.lock:
            return not self.missing and not self.stale and self.stats.samples > 0

    def pending(self) -> str:
        """Why it has not converged: for the report when it never does."""
        with self.lock:
            now = time.monotonic()
            return (f"{self.stats.samples} samples, last error {self.last_error!r}; missing: "
                    + ", ".join(f"{k} ({now - t:.0f}s)" for k, t in self.missing.items())
                    + "; stale: "
                    + ", ".join(f"{k} ({now - t:.0f}s)" for k, t in self.stale.items()))
