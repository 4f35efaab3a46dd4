"""The Kubernetes API calls the operator makes beside kopf's watches, over aiohttp.

Thin calls on the paths the operator uses, with the credentials of
``kubeauth``: the ``kubernetes`` client's generated API classes took 0.6 s
and 22 MiB to build at every start, for a dozen calls. Lists are read from
the raw answer: pods are asked for as protobuf and decoded straight into
their views (``kube.podproto``; watch events, JSON, by ``kube.podwire``),
so that no pod body is ever held whole, from the watch cache in one answer
read as it arrives (``list_cached``), or else a page at a time. A page is
decoded on the event loop while the next one is on its way: the decoders
hold the GIL, so a thread bought nothing (measured: the same CPU and peak
RSS for a 50,000-pod list, ``benchmarks.list_speed``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from . import kubeauth, metrics
from .kube import podproto, wire
from .kube.names import GROUP
from .kube.pods import PodView

log = logging.getLogger(__name__)

VERSION = "v1alpha1"
PLURAL = "kitexservices"
KIND = "KitexService"
POLICY_PLURAL = "kitexregistrationpolicies"
POLICY_KIND = "KitexRegistrationPolicy"
REGISTRY_PLURAL = "kitexetcdregistries"
REGISTRY_KIND = "KitexEtcdRegistry"
EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects go, as kubectl looks
PAGE = 500
SEND_TURNS = 2  # loop turns a pooled connection's request takes to be written (measured)
CALL_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
T = TypeVar("T")
Item = TypeVar("Item")


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"({status}) Reason: {reason}" + (f": {message}" if message else ""))
        self.status = status
        self.reason = reason
        self.message = message


API_ERRORS: tuple[type[Exception], ...] = (ApiError, aiohttp.ClientError, OSError)
"""What a call to the API server raises when the server or the network fails: an
answer with an error status, a connection refused or reset, a timeout (an
``OSError``). Anything else out of an API call is a bug, for the supervisor to see."""


def describe_error(exc: BaseException) -> str:
    """One of ``API_ERRORS`` for a log line: the status of an answer, else the failure."""
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class CrdMissing(Exception):
    """The KitexService CRD is not installed."""


class NoKubeConfig(Exception):
    """Neither in a pod nor given a usable kubeconfig: says what to pass."""

    def __init__(self, path: str | None, cause: Exception) -> None:
        where = (f"the kubeconfig {path} could not be loaded ({cause})" if path else
                 "not running in a pod and no kubeconfig found")
        super().__init__(f"{where}: pass --kubeconfig PATH or set KUBECONFIG")


class SecretUnusable(Exception):
    """A referenced Secret cannot be used; the message says why, without its content."""


class SecretNotFound(SecretUnusable):
    """A referenced Secret does not exist (or may not be read)."""


# The only type of Secret a tenant may point the operator at: a Secret of any
# other type (someone's basic-auth or TLS Secret) is never read, so a
# KitexService cannot make the operator carry it to an etcd of its choice.
CREDENTIALS_TYPE = "kitex.cloudwego.io/etcd-credentials"


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    """One page of a list; every page of a list carries the same snapshot's version."""

    items: list[Item]
    resource_version: str


Decode = Callable[[bytes], tuple[list[Item], str, str]]
"""Reads one page of a list: (its items, the list's resourceVersion, the continue token)."""


def json_page(data: bytes) -> tuple[list[dict[str, Any]], str, str]:
    """A page of any kind, as parsed JSON."""
    page = json.loads(data)
    meta = page.get("metadata") or {}
    return page.get("items") or [], str(meta.get("resourceVersion", "")), \
        str(meta.get("continue") or "")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Enough of an object to hang an Event on it."""

    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str


def _collection(prefix: str, resource: str, namespace: str | None) -> str:
    return (f"{prefix}/{resource}" if namespace is None
            else f"{prefix}/namespaces/{namespace}/{resource}")


def _error(status: int, reason: str, body: bytes) -> ApiError:
    """An error answer; its ``Status`` object's message when it carries one."""
    try:
        message = json.loads(body).get("message") or ""
    except (ValueError, AttributeError):
        message = ""
    return ApiError(status, reason, str(message))


def _time(stamp: datetime.datetime) -> str:
    """RFC 3339 in UTC, to the second, as the API server writes an Event's times."""
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeApi:
    """The operator's API calls, on one aiohttp session made at the first call."""

    def __init__(self, credentials: kubeauth.Credentials, *, component: str) -> None:
        self.credentials = credentials
        self.in_cluster = credentials.in_cluster
        self.component = component
        self._ssl = credentials.ssl_context()  # a bad CA or key fails here, at start-up
        self._session: aiohttp.ClientSession | None = None
        self._recent_events: dict[tuple[str, str, str], float] = {}

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, *,
                         component: str = "kitex-etcd-operator") -> KubeApi:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        try:
            return cls(kubeauth.load(kubeconfig), component=component)
        except (kubeauth.ConfigError, OSError) as exc:
            raise NoKubeConfig(kubeconfig or os.environ.get("KUBECONFIG"),
                               exc) from None

    @classmethod
    async def open(cls, kubeconfig: str | None = None, *,
                   component: str = "kitex-etcd-operator") -> KubeApi:
        """``from_environment`` in a thread: it reads files and may run a kubeconfig's
        exec plugin, which the event loop must not wait on."""
        return await asyncio.to_thread(cls.from_environment, kubeconfig, component=component)

    def connection_info(self) -> Any:
        """The same credentials for kopf's own API calls (its login handler, in a thread)."""
        import kopf

        c = self.credentials
        scheme, token = c.bearer()  # token files and plugins are read again here

        def b64(pem: str | None) -> str | None:
            return base64.b64encode(pem.encode("ascii")).decode("ascii") if pem else None

        return kopf.ConnectionInfo(
            server=c.server, ca_path=c.ca_path, ca_data=b64(c.ca_data), insecure=c.insecure,
            scheme=scheme, token=token, certificate_path=c.cert_path,
            certificate_data=b64(c.cert_data), private_key_path=c.key_path,
            private_key_data=b64(c.key_data), proxy_url=c.proxy)

    # --- requests --------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True,
                                               limit=0),
                # As the kubernetes client did: no gzip. The API server would spend CPU
                # compressing every list page, and this process decompressing it.
                headers={"Accept": "application/json", "Accept-Encoding": "identity",
                         "User-Agent": self.component})
        return self._session

    async def _headers(self, content_type: str | None = None) -> dict[str, str]:
        token = self.credentials.token
        # A token file (or a plugin) is read in a thread: never on the event loop.
        header = await asyncio.to_thread(token.header) if token.due else token.header()
        headers = {"Authorization": header} if header else {}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: Any = None, content_type: str = "application/json",
                    accept: str | None = None,
                    limits: aiohttp.ClientTimeout = CALL_TIMEOUT) -> aiohttp.ClientResponse:
        """One request; its response, open, after a status check (the caller releases it).

        A 401 with a token that is read from a file or a plugin reads it again
        and tries once more: the token rotated since it was last read.
        """
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            headers = await self._headers(content_type if data is not None else None)
            if accept:
                headers["Accept"] = accept
            response = await self._open().request(
                method, self.credentials.server + path, params=params, data=data,
                headers=headers,
                proxy=self.credentials.proxy, server_hostname=self.credentials.tls_server_name,
                timeout=limits)
            if response.status < 400:
                return response
            payload = await response.read()
            response.release()
            if response.status == 401 and attempt == 1 and self.credentials.token.read:
                self.credentials.token.expire()
                continue
            raise _error(response.status, response.reason or "", payload)
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> Any:
        """One call; its answer as parsed JSON. ``ApiError`` for an error status."""
        response = await self._send(method, path, params=params, body=body,
                                    content_type=content_type)
        async with response:
            return json.loads(await response.read())

    # --- lists and watches ---------------------------------------------------

    async def list_pods(self, namespaces: tuple[str, ...] = ()) -> list[PodView]:
        return [item.view() for ns in (namespaces or (None,))
                async for page in self.list_codec(self.pods_path(ns), podproto.CODEC)
                for item in page.items]

    @staticmethod
    def pods_path(namespace: str | None) -> str:
        """Pods in scope: one namespace, or all of them for ``None``."""
        return _collection("/api/v1", "pods", namespace)

    @staticmethod
    def services_path(namespace: str | None) -> str:
        return _collection("/api/v1", "services", namespace)

    @staticmethod
    def endpointslices_path(namespace: str | None) -> str:
        """EndpointSlices (discovery.k8s.io/v1): every managed-by, the custom ones too."""
        return _collection("/apis/discovery.k8s.io/v1", "endpointslices", namespace)

    async def current_version(self, path: str) -> str:
        """The resourceVersion the API server is at now, from a one-object list: a
        consistent read (no resourceVersion given), so not older than any event sent."""
        response = await self._send("GET", path, params={"limit": "1"},
                                    limits=aiohttp.ClientTimeout(total=10))
        async with response:
            _, version, _ = json_page(await response.read())
        return version

    async def list_kitexservices(self, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        paths = ([_collection(f"/apis/{GROUP}/{VERSION}", PLURAL, ns) for ns in namespaces]
                 or [f"/apis/{GROUP}/{VERSION}/{PLURAL}"])
        items: list[dict[str, Any]] = []
        for path in paths:
            items += await self._list_custom(path)
        return items

    async def list_cluster_objects(self, plural: str) -> list[dict[str, Any]]:
        """Every object of a cluster-scoped kind of ours; ``CrdMissing`` if not installed."""
        return await self._list_custom(f"/apis/{GROUP}/{VERSION}/{plural}")

    async def list_namespaces(self) -> list[dict[str, Any]]:
        return await self._list_all("/api/v1/namespaces")

    async def _list_custom(self, path: str) -> list[dict[str, Any]]:
        try:
            return await self._list_all(path)
        except ApiError as exc:
            if exc.status == 404:
                raise CrdMissing(exc.reason) from None
            raise

    async def _list_all(self, path: str) -> list[dict[str, Any]]:
        return [item async for page in self.list_pages(path, json_page) for item in page.items]

    async def _page(self, path: str, token: str, types: str, limit: int) -> bytes:
        params = {"limit": str(limit)}
        if token:
            params["continue"] = token
        return await self._read("GET", path, params=params, accept=types)

    async def _decode(self, path: str, token: str, limit: int, data: bytes,
                      decode: Decode[Item]) -> tuple[list[Item], str, str]:
        try:
            return decode(data)
        except wire.Undecodable as exc:
            # Never seen from a real API server; this page as JSON, then on as before.
            log.warning("Reading %s again as JSON: %s", path, exc)
            return decode(await self._page(path, token, "application/json", limit))

    async def _read(self, method: str, path: str, *, params: dict[str, str],
                    accept: str) -> bytes:
        response = await self._send(method, path, params=params, accept=accept)
        async with response:
            return await response.read()

    def list_codec(self, path: str, codec: wire.Codec) -> AsyncIterator[Page[wire.Item]]:
        """Every page of a list, read as the resource's ``codec`` says."""
        return self.list_pages(path, codec.page, codec.page_types, peek=codec.peek,
                               limit=codec.page_size)

    async def list_cached(self, path: str, codec: wire.Codec, not_older_than: str = ""
                          ) -> AsyncIterator[Page[wire.Item]]:
        """Every object of a list from the API server's watch cache, in one answer read
        as it arrives (``codec.stream``), at ``not_older_than`` or later (a version
        from ``current_version``; without one, the cache as it is, maybe a past).

        A consistent list is a chain of pages that the API server (1.34) reads
        from etcd after the first one, decoding and converting every pod:
        100,000 pods took 8 to 13 s, against 3 to 4 s for the cache's one
        answer. The cache waits until it has seen ``not_older_than``, so the
        answer is as current as a consistent read made just before. A server
        that pages anyway (no watch cache, an older version) is followed page
        by page. A body the stream refuses (not protobuf, or broken) raises
        ``wire.Undecodable``: the caller lists page by page.
        """
        if codec.stream is None:
            raise wire.Undecodable(f"{path}: no streaming reader")
        stream = codec.stream()
        params = ({"resourceVersion": not_older_than, "resourceVersionMatch": "NotOlderThan"}
                  if not_older_than else {"resourceVersion": "0"})
        response = await self._send(
            "GET", path, params=params, accept=codec.page_types,
            limits=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60))
        # The pods of each chunk as they complete: a protobuf pod's item holds its parsed
        # message until the feed has taken it (its view is built then, or never for a
        # pod held at its version), so items are not gathered into larger pages.
        given = False
        async with response:
            async for chunk in response.content.iter_any():
                items = stream.feed(chunk)
                if items:
                    given = True
                    yield Page(items, stream.resource_version)
            stream.finish()
        if not given and not stream.token:
            yield Page([], stream.resource_version)
        if stream.token:
            async for page in self.list_pages(path, codec.page, codec.page_types,
                                              peek=codec.peek, limit=codec.page_size,
                                              start=stream.token):
                yield Page(page.items, stream.resource_version)

    async def list_pages(self, path: str, decode: Decode[Item],
                         types: str = "application/json", *,
                         peek: Callable[[bytes], str | None] | None = None,
                         limit: int = PAGE, start: str = "") -> AsyncIterator[Page[Item]]:
        """Every page of a list (a path from above), each read by ``decode``; an error
        anywhere raises: a list is never cut short. ``types``: the encodings asked
        for, in order (``decode`` reads whichever the server chose).

        A list is a chain: the server starts on a page once it is sent the
        token that ends the page before. So the next page is asked for as soon
        as its token is known, and the API server encodes it (another process,
        another core) while this one is decoded and the caller works through
        it. ``peek`` reads the token alone, ahead of the page's objects (None:
        it cannot tell, decode first); without it the token is known once the
        page is decoded, and only the caller's work overlaps the server's.
        """

        def fetch(token: str) -> asyncio.Future[bytes]:
            return asyncio.ensure_future(self._page(path, token, types, limit))

        pages = 0
        token = start  # a continue token: the list goes on from there
        pending = fetch(token)
        try:
            while True:
                data = await pending
                ahead = peek(data) if peek is not None else None
                if ahead:
                    pending = fetch(ahead)
                    for _ in range(SEND_TURNS):  # let it send the request before we decode
                        await asyncio.sleep(0)
                items, version, following = await self._decode(path, token, limit, data,
                                                               decode)
                token = ahead if ahead is not None else following
                if ahead is None and token:
                    pending = fetch(token)
                pages += 1
                yield Page(items, version)
                if not token:
                    return
                if pages % 10 == 0:
                    log.info("Listing: %d pages of %d so far", pages, limit)
        finally:
            pending.cancel()  # the caller stopped early: that page is not wanted

    async def watch(self, path: str, version: str, seconds: int, decode: Callable[[bytes], T],
                    *, read_margin: float) -> AsyncGenerator[T, None]:
        """One watch stream from ``version``, each line read by ``decode``; it ends when the
        API server closes it (after ``seconds``). Silent for ``seconds + read_margin``:
        ``TimeoutError``, the connection is dead."""
        params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(seconds)}
        response = await self._send(
            "GET", path, params=params,
            limits=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                         sock_read=seconds + read_margin))
        async with response:
            buffer = b""
            # Not readline(): aiohttp refuses a line over 128 KiB, and one object
            # (an EndpointSlice of a thousand endpoints) can be longer.
            async for chunk in response.content.iter_any():
                buffer += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield decode(line)
            if buffer.strip():
                yield decode(buffer)

    # --- secrets, status, events ---------------------------------------------

    async def read_secret(self, namespace: str, name: str, *,
                          secret_type: str | None = None) -> dict[str, bytes]:
        """A Secret's decoded data; with ``secret_type``, only if it is of that type."""
        try:
            secret = await self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as exc:
            if exc.status in (403, 404):
                raise SecretNotFound(
                    f"Secret {namespace}/{name} "
                    f"{'not found' if exc.status == 404 else 'may not be read'}") from None
            raise
        kind = secret.get("type")
        if secret_type is not None and kind != secret_type:
            raise SecretUnusable(f"Secret {namespace}/{name} has type {kind}; the "
                                 f"operator reads only Secrets of type {secret_type}")
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def _object(self, namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await self.request("PATCH", self._object(namespace, name) + "/status",
                               {"status": status}, content_type="application/merge-patch+json")
        except ApiError as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def set_finalizer(self, namespace: str, name: str, finalizers: list[str],
                            present: bool, finalizer: str) -> None:
        """Add or remove one finalizer with a JSON patch that fails if the list moved.

        The ``test`` operation makes a concurrent change (another controller's
        finalizer) a conflict to retry, never a lost update.
        """
        if present == (finalizer in finalizers):
            return
        if present:
            ops: list[dict[str, Any]] = (
                [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                 {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]
                if finalizers else
                [{"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}])
        else:
            index = finalizers.index(finalizer)
            ops = [{"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                   {"op": "remove", "path": f"/metadata/finalizers/{index}"}]
        try:
            await self.request("PATCH", self._object(namespace, name), ops,
                               content_type="application/json-patch+json")
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def post_event(self, ref: ObjectRef, *, reason: str, message: str,
                         warning: bool = True, dedupe_seconds: float = 60.0) -> None:
        """Post an Event, at most once a minute for the same object, reason and message."""
        dedupe = (ref.uid, reason, message)
        now = time.monotonic()
        if now - self._recent_events.get(dedupe, -1e9) < dedupe_seconds:
            return
        self._recent_events[dedupe] = now
        if len(self._recent_events) > 10_000:
            self._recent_events = {k: v for k, v in self._recent_events.items()
                                   if now - v < dedupe_seconds}
        stamp = _time(datetime.datetime.now(datetime.UTC))
        namespace = ref.namespace or EVENTS_NAMESPACE
        involved = {"kind": ref.kind, "apiVersion": ref.api_version, "name": ref.name,
                    "uid": ref.uid}
        if ref.namespace:
            involved["namespace"] = ref.namespace
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{ref.name}.", "namespace": namespace},
                "involvedObject": involved, "reason": reason, "message": message[:1024],
                "type": "Warning" if warning else "Normal",
                "source": {"component": self.component},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
        try:
            await self.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
        except API_ERRORS as exc:
            metrics.status_errors.labels("event").inc()
            self._recent_events.pop(dedupe, None)  # not posted: a later attempt may be
            log.warning("Could not post event %s on %s/%s: %s", reason, ref.namespace,
                        ref.name, getattr(exc, "reason", None) or exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
