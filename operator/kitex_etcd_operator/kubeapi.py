"""The few Kubernetes API calls the controller makes beside kopf's watches.

The plain ``kubernetes`` client is synchronous; every call runs in a small
thread pool so that no watch stream ever waits for it. Lists are paginated
and read from the raw answer, because 10,000 pods as client model objects
would cost hundreds of MiB; pods are decoded straight into their views
(``kube.podwire``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import http.client
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kubernetes
import urllib3

from . import metrics
from .kube import podwire, wire
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
T = TypeVar("T")
Item = TypeVar("Item")

API_ERRORS: tuple[type[Exception], ...] = (
    kubernetes.client.ApiException, urllib3.exceptions.HTTPError, http.client.HTTPException,
    OSError)
"""What a call to the API server raises when the server or the network fails: an
answer with an error status, a connection refused or reset, a timeout. Anything
else out of an API call is a bug, for the supervisor to see."""


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


def _fetch_page(decode: Decode[Item], fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[list[Item], str, str]:
    return decode(fn(*args, **kwargs).data)


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


class KubeApi:
    """Async facade over the synchronous client."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, component: str,
                 in_cluster: bool = False) -> None:
        self.api_client = api_client
        self.in_cluster = in_cluster
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.discovery = kubernetes.client.DiscoveryV1Api(api_client)
        self.component = component
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubeapi")
        self._recent_events: dict[tuple[str, str, str], float] = {}

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, *,
                         component: str = "kitex-etcd-operator") -> KubeApi:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        config = kubernetes.client.Configuration()
        in_cluster = False
        if kubeconfig is None:
            try:
                kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=config)
                in_cluster = True
            except kubernetes.config.ConfigException:
                pass
        if not in_cluster:
            # The path is passed explicitly: the client reads $KUBECONFIG only at import.
            path = kubeconfig or os.environ.get("KUBECONFIG")
            try:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path, client_configuration=config)
            except (kubernetes.config.ConfigException, OSError) as exc:
                raise NoKubeConfig(path, exc) from None
        return cls(kubernetes.client.ApiClient(config), component=component,
                   in_cluster=in_cluster)

    def connection_info(self) -> Any:
        """The same credentials for kopf's own API calls (its login handler)."""
        import kopf

        config = self.api_client.configuration
        if config.refresh_api_key_hook is not None:
            config.refresh_api_key_hook(config)  # exec plugins and token files renew here
        keys = config.api_key or {}
        # The client keeps "Bearer <token>" under "BearerToken" (older: "authorization").
        token = keys.get("BearerToken") or keys.get("authorization") or ""
        scheme, _, token = token.partition(" ") if " " in token else ("Bearer", "", token)
        return kopf.ConnectionInfo(
            server=config.host, ca_path=config.ssl_ca_cert, insecure=not config.verify_ssl,
            scheme=scheme if token else None, token=token or None,
            certificate_path=config.cert_file, private_key_path=config.key_file)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # --- lists ---------------------------------------------------------------

    async def list_pods(self, namespaces: tuple[str, ...] = ()) -> list[PodView]:
        return [item.value for ns in (namespaces or (None,))
                async for page in self.pod_list_pages(ns) for item in page.items]

    def pod_lister(self, namespace: str | None) -> Callable[..., Any]:
        """The client call that lists (or, with ``watch=True``, watches) pods in scope."""
        if namespace is None:
            return self.core.list_pod_for_all_namespaces
        return functools.partial(self.core.list_namespaced_pod, namespace)

    def pod_list_pages(self, namespace: str | None) -> AsyncIterator[Page[wire.Item]]:
        """Pods a page at a time, each reduced to its view as the page is decoded (in
        the pool's thread), so that no pod body is ever held whole."""
        return self._pages(self.pod_lister(namespace), decode=podwire.decode_page)

    def service_lister(self, namespace: str | None) -> Callable[..., Any]:
        if namespace is None:
            return self.core.list_service_for_all_namespaces
        return functools.partial(self.core.list_namespaced_service, namespace)

    def endpointslice_lister(self, namespace: str | None) -> Callable[..., Any]:
        """EndpointSlices (discovery.k8s.io/v1): every managed-by, the custom ones too."""
        if namespace is None:
            return self.discovery.list_endpoint_slice_for_all_namespaces
        return functools.partial(self.discovery.list_namespaced_endpoint_slice, namespace)

    def list_pages(self, lister: Callable[..., Any],
                   decode: Decode[Item]) -> AsyncIterator[Page[Item]]:
        """Any list call's pages (a lister from above), each read by ``decode``."""
        return self._pages(lister, decode=decode)

    async def current_version(self, lister: Callable[..., Any]) -> str:
        """The resourceVersion the API server is at now, from a one-object list: a
        consistent read (no resourceVersion given), so not older than any event sent."""
        _, version, _ = await self.call(_fetch_page, json_page, lister, (),
                                        {"limit": 1, "_preload_content": False,
                                         "_request_timeout": 10})
        return version

    async def list_kitexservices(self, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        try:
            return await self._list_kitexservices(namespaces)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise CrdMissing(str(exc.reason)) from None
            raise

    async def list_cluster_objects(self, plural: str) -> list[dict[str, Any]]:
        """Every object of a cluster-scoped kind of ours; ``CrdMissing`` if not installed."""
        try:
            return await self._list_all(self.custom.list_cluster_custom_object,
                                        GROUP, VERSION, plural)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise CrdMissing(str(exc.reason)) from None
            raise

    async def list_namespaces(self) -> list[dict[str, Any]]:
        return await self._list_all(self.core.list_namespace)

    async def _list_kitexservices(self, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        if not namespaces:
            return await self._list_all(self.custom.list_cluster_custom_object,
                                        GROUP, VERSION, PLURAL)
        items: list[dict[str, Any]] = []
        for ns in namespaces:
            items += await self._list_all(self.custom.list_namespaced_custom_object,
                                          GROUP, VERSION, ns, PLURAL)
        return items

    async def _list_all(self, fn: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
        return [item async for page in self._pages(fn, *args, decode=json_page)
                for item in page.items]

    async def _pages(self, fn: Callable[..., Any], *args: Any,
                     decode: Decode[Item]) -> AsyncIterator[Page[Item]]:
        """Every page of a list; an error anywhere raises: a list is never cut short.

        The request and the decoding of its answer run together in the pool's
        thread: the event loop gets the page ready to use. The next page is
        asked for as soon as its token is known, before this one is handed
        over: the API server encodes it (another process, another core) while
        the caller works through this one.
        """

        def fetch(token: str) -> asyncio.Future[tuple[list[Item], str, str]]:
            kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            return asyncio.ensure_future(self.call(_fetch_page, decode, fn, args, kwargs))

        count = 0
        pending = fetch("")
        try:
            while True:
                items, version, token = await pending
                if token:
                    pending = fetch(token)
                count += len(items)
                yield Page(items, version)
                if not token:
                    return
                if count % (PAGE * 10) == 0:
                    log.info("Listing: %d objects so far", count)
        finally:
            pending.cancel()  # the caller stopped early: that page is not wanted

    # --- secrets, status, events ---------------------------------------------

    async def read_secret(self, namespace: str, name: str, *,
                          secret_type: str | None = None) -> dict[str, bytes]:
        """A Secret's decoded data; with ``secret_type``, only if it is of that type."""
        try:
            secret = await self.call(self.core.read_namespaced_secret, name, namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status in (403, 404):
                raise SecretNotFound(
                    f"Secret {namespace}/{name} "
                    f"{'not found' if exc.status == 404 else 'may not be read'}") from None
            raise
        if secret_type is not None and secret.type != secret_type:
            raise SecretUnusable(f"Secret {namespace}/{name} has type {secret.type}; the "
                                 f"operator reads only Secrets of type {secret_type}")
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await self.call(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION,
                            namespace, PLURAL, name, {"status": status})
        except kubernetes.client.ApiException as exc:
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
            await self.call(self.custom.patch_namespaced_custom_object, GROUP, VERSION,
                            namespace, PLURAL, name, ops,
                            _content_type="application/json-patch+json")
        except kubernetes.client.ApiException as exc:
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
        stamp = datetime.datetime.now(datetime.UTC)
        body = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(generate_name=f"{ref.name}."),
            involved_object=kubernetes.client.V1ObjectReference(
                kind=ref.kind, api_version=ref.api_version, namespace=ref.namespace or None,
                name=ref.name, uid=ref.uid),
            reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
            source=kubernetes.client.V1EventSource(component=self.component),
            first_timestamp=stamp, last_timestamp=stamp, count=1)
        namespace = ref.namespace or EVENTS_NAMESPACE
        body.metadata.namespace = namespace
        try:
            await self.call(self.core.create_namespaced_event, namespace, body)
        except API_ERRORS as exc:
            metrics.status_errors.labels("event").inc()
            self._recent_events.pop(dedupe, None)  # not posted: a later attempt may be
            log.warning("Could not post event %s on %s/%s: %s", reason, ref.namespace,
                        ref.name, getattr(exc, "reason", None) or exc)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()  # type: ignore[no-untyped-call]
