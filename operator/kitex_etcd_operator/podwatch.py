"""Pods, listed a page at a time and then watched, without kopf.

kopf lists a resource in one unpaginated request and keeps a worker per
object: with 10,000 pods that held every pod body at once (560 MiB peak). Here
a list is read 500 pods at a time and each pod is reduced to a ``PodView`` as
it arrives; the watch then resumes from the list's resourceVersion, with
bookmarks, so a dropped connection (an API server restart, a load balancer
timeout) costs a reconnect and no relist. Only a 410 Gone (the API server no
longer has that history) or the periodic resync costs a relist.

A complete list is the only evidence that a pod we know is gone without a
delete event: ``PodSink.pods_listed`` receives the full set of uids, and an
error anywhere in the list raises before it is called, so a failed or partial
list is never read as "these pods vanished".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import kubernetes

from . import metrics
from .kube.podwire import Event, Status, Versioned, decode_event
from .kubeapi import API_ERRORS, KubeApi

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 300  # seconds the API server keeps one watch open
READ_MARGIN = 60  # silent this long past WATCH_TIMEOUT: dead (bookmarks come every minute)
BACKOFF_MAX = 8.0  # a cut stream is back within this of the API answering again
_END = object()


class Gone(Exception):
    """The watch's resourceVersion is too old: only a relist can resume."""


class WatchFailed(Exception):
    """The API server ended a watch with an error event other than 410."""


RETRIED: tuple[type[Exception], ...] = (*API_ERRORS, WatchFailed)


class PodSink(Protocol):
    """Where pods go: the controller's desired state."""

    def on_pod_view(self, event_type: str | None, pod: Versioned) -> None: ...

    def pods_listed(self, namespace: str | None, uids: set[str], started: float) -> None: ...


class PodWatch:
    """One list+watch loop over the pods of one namespace, or of all of them."""

    def __init__(self, kube: KubeApi, namespace: str | None, sink: PodSink, *,
                 resync_period: float, watch_timeout: int = WATCH_TIMEOUT) -> None:
        self.kube = kube
        self.namespace = namespace
        self.sink = sink
        self.resync_period = resync_period
        self.watch_timeout = watch_timeout
        self.listed = asyncio.Event()  # set once the first complete list was delivered
        self.relists = 0

    @property
    def scope(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "all namespaces"

    async def run(self) -> None:
        """List, then watch from where the list ended; forever, whatever the API does."""
        version: str | None = None
        next_resync = 0.0
        backoff = 1.0
        while True:
            try:
                if version is None or time.monotonic() >= next_resync:
                    version = await self._relist("initial" if not self.listed.is_set()
                                                 else "resync" if version else "gone")
                    next_resync = time.monotonic() + self.resync_period
                timeout = max(1, min(self.watch_timeout, int(next_resync - time.monotonic())))
                version = await self._watch(version, timeout)
                backoff = 1.0
            except Gone:
                log.info("Pod watch of %s expired (410 Gone); relisting", self.scope)
                version = None
            except RETRIED as exc:  # the rest is a bug: the supervisor's to see
                metrics.pod_watch_errors.inc()
                log.warning("Pod watch of %s failed, retrying in %.0fs (pods known so far are "
                            "kept): %s", self.scope, backoff, _describe(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _relist(self, reason: str) -> str:
        """Every pod in scope, a page at a time; the list's resourceVersion to watch from."""
        started = time.monotonic()
        uids: set[str] = set()
        version = ""
        async for page in self.kube.pod_list_pages(self.namespace):
            version = version or page.resource_version
            for pod in page.items:
                uids.add(pod[0].uid)
                self.sink.on_pod_view(None, pod)
        self.sink.pods_listed(self.namespace, uids, started)
        self.relists += 1
        metrics.pod_relists.labels(reason).inc()
        if reason != "resync":
            log.info("Listed %d pod(s) in %s in %.1f s (%s)", len(uids), self.scope,
                     time.monotonic() - started, reason)
        self.listed.set()
        return version

    async def _watch(self, version: str, seconds: int) -> str:
        """Apply one watch stream's events; the last resourceVersion seen when it ends."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stream = _Stream(self.kube.pod_lister(self.namespace), version, seconds,
                         lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
        stream.start()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return version
                if isinstance(item, BaseException):
                    raise _translate(item)
                assert isinstance(item, Event)
                if item.pod is None:  # an ERROR
                    status = item.status or Status()
                    if status.code == 410:
                        raise Gone(status.message)
                    raise WatchFailed(f"watch error: {status.message or status.code}")
                version = item.resource_version or version
                if item.type != "BOOKMARK":
                    self.sink.on_pod_view(item.type, item.pod)
        finally:
            stream.stop()


class _Stream(threading.Thread):
    """One watch request, read in a thread: the ``kubernetes`` client blocks.

    Each event line is decoded here (``podwire``: straight into the pod's view)
    and handed to the event loop, so the loop never waits on the socket nor
    parses; ``stop`` interrupts a blocked read.
    """

    def __init__(self, lister: Callable[..., Any], version: str, timeout: int,
                 deliver: Callable[[object], object]) -> None:
        super().__init__(name="pod watch", daemon=True)
        self.lister = lister
        self.version = version
        self.timeout = timeout
        self.deliver = deliver
        self.response: Any = None
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            self.response = self.lister(
                watch=True, resource_version=self.version, allow_watch_bookmarks=True,
                timeout_seconds=self.timeout, _preload_content=False,
                _request_timeout=(10, self.timeout + READ_MARGIN))
            if self.stopped.is_set():  # stop() came before there was a response to shut
                return
            buffer = b""
            for chunk in self.response.stream(amt=None, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._send(decode_event(line))
            self._send(_END)
        except BaseException as exc:
            if not self.stopped.is_set():
                self._send(exc)
        finally:
            if self.response is not None:
                self.response.release_conn()

    def _send(self, item: object) -> None:
        try:
            self.deliver(item)
        except RuntimeError:  # the loop is closed: the operator is stopping
            self.stopped.set()

    def stop(self) -> None:
        """Unblock a read in progress; a stream that already ended needs nothing."""
        self.stopped.set()
        response = self.response
        if response is not None:
            with contextlib.suppress(Exception):  # released or never connected: nothing to cut
                response.shutdown()


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, kubernetes.client.ApiException) and exc.status == 410:
        return Gone(str(exc.reason))
    return exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, kubernetes.client.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
