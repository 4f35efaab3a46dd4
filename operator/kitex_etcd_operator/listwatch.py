"""Pods, Services and EndpointSlices, listed and then watched, without kopf.

kopf lists a resource in one unpaginated request and keeps a worker per
object: with 10,000 pods that held every pod body at once (560 MiB peak). Here
pods come from the API server's watch cache in one protobuf answer read as
it arrives (``KubeApi.list_cached``); Services and
EndpointSlices a page at a time. Each object is reduced (``PodView``,
``SliceView``...) as it arrives; the watch
then resumes from the list's resourceVersion, with bookmarks, so a dropped
connection (an API server restart, a load balancer timeout) costs a
reconnect and no relist. Only a 410 Gone (the API server no longer has that
history) or the periodic resync costs a relist.

A complete list is the only evidence that an object we know is gone without
a delete event: ``Sink.listed`` receives the full set of uids, and an error
anywhere in the list raises before it is called, so a failed or partial list
is never read as "these pods vanished". One class serves every resource, so
that the relist, 410 and no-delete-before-the-list rules are written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from . import metrics
from .kube import podproto
from .kube.wire import JSON, Codec, Item, Status, Undecodable
from .kubeapi import API_ERRORS, ApiError, KubeApi, Page, describe_error

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 300  # seconds the API server keeps one watch open
READ_MARGIN = 60  # silent this long past WATCH_TIMEOUT: dead (bookmarks come every minute)
BACKOFF_MAX = 4.0  # a cut stream is back within this of the API answering again
CATCH_UP_MAX = 5.0  # seconds writers wait for a resumed watch to replay what it missed
RELIST_HOLD_MAX = 60.0  # seconds writers wait for a relist's pages (100,000 pods: ~30 s)


class Gone(Exception):
    """The watch's resourceVersion is too old: only a relist can resume."""


class WatchFailed(Exception):
    """The API server ended a watch with an error event other than 410."""


RETRIED: tuple[type[Exception], ...] = (*API_ERRORS, WatchFailed)


class Sink(Protocol):
    """Where one resource's objects go: the controller's desired state."""

    def on_item(self, event_type: str | None, item: Item) -> None: ...

    def listed(self, namespace: str | None, uids: set[str], started: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Resource:
    """What is watched: its name in logs and metrics, and the API path listing it
    (in one namespace, or all of them for ``None``)."""

    name: str  # plural: pods, services, endpointslices
    path: Callable[[str | None], str]
    task: str  # the supervisor's task kind of its watch
    codec: Codec = JSON  # how its pages and watch lines are read


class ListWatch:
    """One list+watch loop over one resource in one namespace, or in all of them."""

    def __init__(self, kube: KubeApi, namespace: str | None, sink: Sink, *,
                 resource: Resource, resync_period: float,
                 watch_timeout: int = WATCH_TIMEOUT) -> None:
        self.kube = kube
        self.namespace = namespace
        self.sink = sink
        self.resource = resource
        self.resync_period = resync_period
        self.watch_timeout = watch_timeout
        self.listed = asyncio.Event()  # set once the first complete list was delivered
        self.current = asyncio.Event()  # clear while the view replays a past (see above)
        self.current.set()
        self.relists = 0
        self.version = ""  # the resourceVersion of the last list or event applied
        self._catch_up: tuple[int, float] | None = None  # (version to reach, since)
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def scope(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.resource.name} in {where}"

    async def run(self) -> None:
        """List, then watch from where the list ended; forever, whatever the API does."""
        version: str | None = None
        next_resync = 0.0
        backoff = 1.0
        resumed = False  # the last stream was cut: the next one replays a past first
        while True:
            try:
                if version is None or time.monotonic() >= next_resync:
                    version = await self._relist("initial" if not self.listed.is_set()
                                                 else "resync" if version else "gone")
                    next_resync = time.monotonic() + self.resync_period
                elif resumed:
                    await self._behind_until_present()
                resumed = False
                timeout = max(1, min(self.watch_timeout, int(next_resync - time.monotonic())))
                version = await self._watch(version, timeout)
                backoff = 1.0
            except Gone:
                log.info("Watch of %s expired (410 Gone); relisting", self.scope)
                version = None
            except RETRIED as exc:  # the rest is a bug: the supervisor's to see
                metrics.watch_errors(self.resource.name).inc()
                log.warning("Watch of %s failed, retrying in %.0fs (objects known so far are "
                            "kept): %s", self.scope, backoff, describe_error(exc))
                resumed = True
                if not self.current.is_set():  # waiting on a stream that died would
                    self._caught_up("the stream failed first")  # hold the writers for good
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _behind_until_present(self) -> None:
        """Before a cut stream resumes: the view is behind until its events reach the
        resourceVersion the API server is at now (one object's list tells it)."""
        present = await self.kube.current_version(self.resource.path(self.namespace))
        if not present.isdigit() or (self.version.isdigit()
                                     and int(self.version) >= int(present)):
            return  # opaque versions cannot be compared; or nothing was missed
        self._behind((int(present), time.monotonic()))
        log.info("Watch of %s resumes at resourceVersion %s; writes wait until it reaches "
                 "%s (at most %.0f s)", self.scope, self.version or "?", present, CATCH_UP_MAX)

    def _behind(self, catch_up: tuple[int, float] | None, limit: float = CATCH_UP_MAX) -> None:
        """The view is a past now: writers wait, at most ``limit`` seconds (a list that
        hangs, or a version never reached, must not hold the writers for good)."""
        self._catch_up = catch_up
        self.current.clear()
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.get_running_loop().call_later(
            limit, self._caught_up, f"waited {limit:.0f} s, the most it may")

    def _caught_up(self, why: str) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._catch_up is not None:
            target, since = self._catch_up
            log.info("Watch of %s caught up with resourceVersion %d in %.2f s (%s)",
                     self.scope, target, time.monotonic() - since, why)
        self._catch_up = None
        self.current.set()

    def _applied(self, version: str) -> None:
        self.version = version
        if self._catch_up is not None and version.isdigit() \
                and int(version) >= self._catch_up[0]:
            self._caught_up(f"at {version}")

    async def _relist(self, reason: str) -> str:
        """Every object in scope; the list's resourceVersion to watch from.

        Pods come from the API server's watch cache in one answer
        (``KubeApi.list_cached``): the version the API server is at is asked
        first (a consistent read of one object), and the cache answers once
        it has seen that version. Should a list still come older, writers
        wait until the watch has replayed up to it, as after a resumed stream.
        """
        started = time.monotonic()
        uids: set[str] = set()
        version = present = ""
        path, codec = self.resource.path(self.namespace), self.resource.codec
        if self.listed.is_set():  # pages of a snapshot over an older view: a mixed past
            self._behind(None, RELIST_HOLD_MAX)

        async def read(pages: AsyncIterator[Page[Item]]) -> None:
            nonlocal version
            async for page in pages:
                version = version or page.resource_version
                for item in page.items:
                    uids.add(item.uid)
                    self.sink.on_item(None, item)

        try:
            paged = codec.stream is None
            if not paged:
                try:
                    present = await self.kube.current_version(path)
                    await read(self.kube.list_cached(
                        path, codec, present if present.isdigit() else ""))
                except Undecodable as exc:
                    log.warning("Listing %s page by page: %s", self.scope, exc)
                    # What the stream gave is listed again; an object it had that the
                    # pages lack is dropped by ``listed`` like any other.
                    uids.clear()
                    version = present = ""
                    paged = True
            if paged:
                await read(self.kube.list_codec(path, codec))
            self.sink.listed(self.namespace, uids, started)
        finally:
            if not self.current.is_set():
                self._caught_up("relisted")
        if present.isdigit() and version.isdigit() and int(version) < int(present):
            self._behind((int(present), time.monotonic()))
            log.info("The list of %s is at resourceVersion %s, the API server at %s: writes "
                     "wait until the watch reaches it (at most %.0f s)", self.scope, version,
                     present, CATCH_UP_MAX)
        self.version = version
        self.relists += 1
        metrics.relists(self.resource.name, reason).inc()
        if reason != "resync":
            log.info("Listed %d object(s) of %s in %.1f s (%s)", len(uids), self.scope,
                     time.monotonic() - started, reason)
        self.listed.set()
        return version

    async def _watch(self, version: str, seconds: int) -> str:
        """Apply one watch stream's events; the last resourceVersion seen when it ends.

        Each line is decoded as it arrives (the resource's codec: pods straight
        into their views); the socket is read by the event loop, never waited on.
        """
        stream = self.kube.watch(self.resource.path(self.namespace), version, seconds,
                                 self.resource.codec.event, read_margin=READ_MARGIN)
        try:
            async with contextlib.aclosing(stream):  # a raise below closes the response
                async for event in stream:
                    if event.item is None:  # an ERROR
                        status = event.status or Status()
                        if status.code == 410:
                            raise Gone(status.message)
                        raise WatchFailed(f"watch error: {status.message or status.code}")
                    version = event.resource_version or version
                    if event.type != "BOOKMARK":
                        self.sink.on_item(event.type, event.item)
                    self._applied(version)
        except ApiError as exc:
            raise _translate(exc) from None
        return version


def _translate(exc: ApiError) -> Exception:
    if exc.status == 410:
        return Gone(str(exc.reason))
    return exc



PODS = Resource("pods", KubeApi.pods_path, "pod-watch", podproto.CODEC)
SERVICES = Resource("services", KubeApi.services_path, "service-watch")
ENDPOINT_SLICES = Resource("endpointslices", KubeApi.endpointslices_path, "endpointslice-watch")
