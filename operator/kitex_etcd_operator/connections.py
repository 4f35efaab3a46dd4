"""Connections to etcd, one per physical etcd, with credentials from files or Secrets.

A binding's etcd is a scope: one per physical etcd (``desired.EtcdAccess``).
Every scope has exactly one client, one registry of ownership records and one
source of credentials: the operator's flags for the ``default`` registry, the
admin's Secrets (in the operator's namespace) for a ``KitexEtcdRegistry``, or
a tenant's own Secrets for endpoints a policy lets it name. A tenant never
gets the operator's or a registry's credentials with an endpoint it chose.
Credentials are read when first needed and again at every observation; a
change reconnects the same registry without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .desired import EtcdAccess
from .etcd.client import EtcdClient
from .etcd.config import (
    SECRET_CA,
    SECRET_CERT,
    SECRET_KEY,
    SECRET_PASSWORD,
    SECRET_USERNAME,
    EtcdConfig,
)
from .etcd.errors import EtcdError
from .kube.tenancy import RegistryDef
from .kubeapi import API_ERRORS, CREDENTIALS_TYPE, KubeApi, SecretUnusable, describe_error
from .plan import Binding
from .registry import BindingRegistry
from .settings import Settings

log = logging.getLogger(__name__)


class EtcdAccessError(Exception):
    """The credentials or settings of an ``EtcdAccess`` are unusable; the message names what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class CredentialsUnavailable(Exception):
    """The API server did not hand over a Secret just now (restarting, overloaded, the
    connection cut): a failure retried with backoff like an unreachable etcd, never a
    crash, and never a reason to give a binding's entries up as unreachable."""

    def __init__(self, field: str, cause: BaseException) -> None:
        super().__init__(f"{field}: the Secret could not be read from the Kubernetes API "
                         f"({describe_error(cause)}); retrying")
        self.field = field


class ConnectionsClosed(Exception):
    """The operator is stopping: no new connection, so nothing is written while a
    standby takes over."""


@dataclass(slots=True)
class _Handle:
    registry: BindingRegistry
    fingerprint: str
    credentials: tuple[str | None, ...]
    who: str  # the access that connected first, for messages
    cluster_id: int = 0


class EtcdConnections:
    """One etcd client and one registry per scope, shared by all the scope's bindings."""

    def __init__(self, settings: Settings, kube: KubeApi | None, *,
                 registries: Callable[[], Mapping[str, RegistryDef]] | None = None,
                 on_lease_lost: Callable[[Binding], Awaitable[None]] | None = None,
                 on_ownership_loaded: Callable[[EtcdAccess, BindingRegistry], None] | None = None
                 ) -> None:
        self.settings = settings
        self.kube = kube
        self.registries = registries or dict
        self.on_lease_lost = on_lease_lost
        # Told each time an etcd's ownership records have been read: the leases now kept
        # alive include those of services nothing asks for any more.
        self.on_ownership_loaded = on_ownership_loaded
        self._handles: dict[str, _Handle] = {}
        self._files = _Files()
        self._closed = False
        # One connection attempt at a time, whatever the scope: the check that no two
        # scopes reach one etcd compares with the connections made before, so two
        # attempts at once (a start with many workers) could both pass it.
        self._connecting = asyncio.Lock()

    async def get(self, access: EtcdAccess) -> BindingRegistry:
        """The registry of the access's scope, connecting once (concurrent callers wait).

        Without the lock two bindings that first use a new etcd at the same
        moment each made a registry for it: two sets of leases for one
        service, each reporting the other's keys as conflicts. Connections
        are rare (once per etcd), so one lock for all of them costs nothing.
        """
        handle = self._handles.get(access.scope)
        if handle is None:
            async with self._connecting:
                handle = self._handles.get(access.scope)
                if handle is None:
                    if self._closed:
                        raise ConnectionsClosed("the operator is stopping")
                    handle = await self._connect(access)
        if handle.credentials != access.credentials:
            raise EtcdAccessError("spec.etcd", f"this etcd is already used through {handle.who}, "
                                  f"with other credentials than {access.describe()}: one etcd is "
                                  "reached with one set of credentials")
        return handle.registry

    async def _connect(self, access: EtcdAccess) -> _Handle:
        config = await self.resolve(access)
        client = EtcdClient(config)
        try:
            cluster_id = await self._cluster_id(client, access)
            registry = BindingRegistry(client, cluster_id=self.settings.cluster_id,
                                       owner_prefix=self.settings.owner_prefix,
                                       on_lease_lost=self.on_lease_lost)
            await registry.load_ownership()
            if self._closed:  # stopped meanwhile: nothing of it may stay open
                await registry.close()
                raise ConnectionsClosed("the operator is stopping")
        except BaseException:
            await client.close()
            raise
        handle = _Handle(registry, _fingerprint(config), access.credentials, access.describe(),
                         cluster_id)
        self._handles[access.scope] = handle
        if self.on_ownership_loaded is not None:
            self.on_ownership_loaded(access, registry)
        return handle

    async def _cluster_id(self, client: EtcdClient, access: EtcdAccess) -> int:
        """etcd's own cluster id; a second scope on an etcd already connected is refused.

        Endpoint strings can differ and still reach one cluster (a DNS name and
        its IP, another member). Two scopes there would each read the other's
        ownership records as their own and delete its entries.
        """
        cluster_id = int((await client.status()).get("cluster_id") or 0)
        for scope, other in self._handles.items():
            if cluster_id and other.cluster_id == cluster_id and scope != access.scope:
                raise EtcdAccessError("spec.etcd.endpoints", f"these endpoints reach the etcd "
                                      f"cluster already used through {other.who}: name that "
                                      "registry instead")
        return cluster_id

    def scopes(self) -> set[str]:
        return set(self._handles)

    async def release(self, scope: str) -> None:
        """Close a scope nothing uses any more: no client or keepalive left behind."""
        handle = self._handles.pop(scope, None)
        if handle is not None:
            log.info("Closing etcd target %s: no service uses it any more", handle.who)
            await handle.registry.close()
            await handle.registry.client.close()

    async def refresh(self, access: EtcdAccess) -> bool:
        """Re-read the scope's credentials; reconnect if they changed (then True).

        The new credentials must connect and log in before they replace the
        old: a Secret updated with an expired certificate or a wrong password
        raises here (the service turns Degraded, naming why) while the old
        connection keeps the leases alive, so no entry is lost over a bad
        Secret. Restoring the Secret is then all it takes.
        """
        handle = self._handles.get(access.scope)
        if handle is None or handle.credentials != access.credentials:
            return False
        config = await self.resolve(access)
        fingerprint = _fingerprint(config)
        if fingerprint == handle.fingerprint:
            return False
        log.info("Credentials of etcd target %s changed; reconnecting", access.describe())
        new = EtcdClient(config)
        try:
            await new.connect()
        except EtcdError as exc:
            await new.close()
            log.warning("The new credentials of etcd target %s do not work, keeping the "
                        "current connection for the leases: %s", access.describe(), exc)
            raise
        old = handle.registry.client
        handle.registry.client = new
        handle.fingerprint = fingerprint
        await old.close()
        return True

    async def resolve(self, access: EtcdAccess) -> EtcdConfig:
        """The connection settings of an access, reading its Secrets."""
        if access.registry is None:
            return await self._tenant_config(access)
        if access.registry != "default":
            registry = self.registries().get(access.registry)
            if registry is None:
                raise EtcdAccessError("spec.etcd.registry", f"no KitexEtcdRegistry named "
                                      f"{access.registry!r}")
            return await self._registry_config(registry)
        return await self._default_config()

    async def _default_config(self) -> EtcdConfig:
        base = self.settings.etcd
        username, password = base.username, base.password
        ca = cert = key = None
        if base.ca_file:
            (ca,) = await self._files.read(base.ca_file)
        if base.cert_file and base.key_file:
            cert, key = await self._files.read(base.cert_file, base.key_file)
        if base.secret:
            namespace, _, name = base.secret.partition("/")
            data = await self._secret((namespace, name), "--etcd-secret", None)
            if SECRET_USERNAME in data:
                username = _text(data, SECRET_USERNAME, "--etcd-secret")
            if SECRET_PASSWORD in data:
                password = _text(data, SECRET_PASSWORD, "--etcd-secret")
            ca = data.get(SECRET_CA, ca)
            cert, key = data.get(SECRET_CERT, cert), data.get(SECRET_KEY, key)
        return _config(base.endpoints, username, password, ca, cert, key, base.dial_timeout,
                       "--etcd-endpoints")

    async def _registry_config(self, registry: RegistryDef) -> EtcdConfig:
        """An admin registry: its Secrets live in the operator's own namespace."""
        namespace = self.settings.operator_namespace
        at = f"KitexEtcdRegistry {registry.name}"
        username = password = ca = cert = key = None
        if registry.auth_secret:
            data = await self._secret((namespace, registry.auth_secret),
                                      f"{at} spec.authSecretRef", CREDENTIALS_TYPE)
            username = _text(data, SECRET_USERNAME, f"{at} spec.authSecretRef")
            password = _text(data, SECRET_PASSWORD, f"{at} spec.authSecretRef")
        if registry.tls_secret:
            ca, cert, key = await self._tls((namespace, registry.tls_secret),
                                            f"{at} spec.tlsSecretRef")
        return _config(registry.endpoints, username, password, ca, cert, key,
                       registry.dial_timeout or self.settings.etcd.dial_timeout,
                       f"{at} spec.endpoints")

    async def _tenant_config(self, access: EtcdAccess) -> EtcdConfig:
        """A tenant's own etcd: only Secrets of the credentials type in its own namespace,
        never any of the operator's credentials."""
        username = password = ca = cert = key = None
        if access.auth_secret:
            data = await self._secret((access.namespace, access.auth_secret),
                                      "spec.etcd.authSecretRef", CREDENTIALS_TYPE)
            username = _text(data, SECRET_USERNAME, "spec.etcd.authSecretRef")
            password = _text(data, SECRET_PASSWORD, "spec.etcd.authSecretRef")
        if access.tls_secret:
            ca, cert, key = await self._tls((access.namespace, access.tls_secret),
                                            "spec.etcd.tlsSecretRef")
        return _config(access.endpoints, username, password, ca, cert, key,
                       access.dial_timeout or self.settings.etcd.dial_timeout,
                       "spec.etcd.endpoints")

    async def _tls(self, key: tuple[str, str], field: str
                   ) -> tuple[bytes, bytes | None, bytes | None]:
        """A TLS Secret must name the CA: an empty one must not silently turn TLS off."""
        data = await self._secret(key, field, CREDENTIALS_TYPE)
        ca = data.get(SECRET_CA)
        if not ca:
            raise EtcdAccessError(field, f"Secret has no {SECRET_CA}: TLS needs the CA that "
                                         "signed etcd's server certificate")
        cert, client_key = data.get(SECRET_CERT), data.get(SECRET_KEY)
        if (cert is None) != (client_key is None):
            raise EtcdAccessError(field, "Secret must hold both tls.crt and tls.key, or neither")
        return ca, cert, client_key

    async def _secret(self, key: tuple[str, str], field: str,
                      secret_type: str | None) -> dict[str, bytes]:
        if self.kube is None:
            raise EtcdAccessError(field, "Secrets cannot be read without a Kubernetes connection")
        try:
            return await self.kube.read_secret(*key, secret_type=secret_type)
        except SecretUnusable as exc:
            raise EtcdAccessError(field, str(exc)) from None
        except API_ERRORS as exc:
            raise CredentialsUnavailable(field, exc) from exc

    async def close(self) -> None:
        """Release every scope; a connection asked for later is refused."""
        self._closed = True
        for scope in list(self._handles):
            await self.release(scope)


class _Files:
    """The bytes of the ``--etcd-*`` files, read again only once a file changed.

    Every full sync of a default-etcd binding resolves its credentials: 1,000
    services every 30 s read the three files about 100 times a second. The
    files are looked at (and read, if changed) in a thread, never on the loop.
    A mounted Secret rotates by swapping a symlink: the inode changes with it.
    """

    def __init__(self) -> None:
        self._held: dict[Path, tuple[tuple[int, int, int], bytes]] = {}

    async def read(self, *paths: Path) -> list[bytes]:
        return await asyncio.to_thread(self._read, paths)

    def _read(self, paths: tuple[Path, ...]) -> list[bytes]:
        found = []
        for path in paths:
            stat = path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            held = self._held.get(path)
            if held is None or held[0] != stamp:
                held = self._held[path] = (stamp, path.read_bytes())
            found.append(held[1])
        return found


def _config(endpoints: tuple[str, ...], username: str | None, password: str | None,
            ca: bytes | None, cert: bytes | None, key: bytes | None, dial_timeout: float,
            field: str) -> EtcdConfig:
    try:
        return EtcdConfig(endpoints=endpoints, username=username, password=password,
                          ca_pem=ca, cert_pem=cert, key_pem=key, dial_timeout=dial_timeout)
    except ValueError as exc:  # an endpoint or a credential pair the parser let through
        raise EtcdAccessError(field, str(exc)) from None


def _text(data: dict[str, bytes], key: str, field: str) -> str:
    try:
        return data[key].decode()
    except KeyError:
        raise EtcdAccessError(field, f"Secret has no key {key!r}") from None
    except UnicodeDecodeError:
        raise EtcdAccessError(field, f"Secret key {key!r} is not UTF-8 text") from None


def _fingerprint(config: EtcdConfig) -> str:
    """A digest of the credentials, so a change is seen without keeping them twice."""
    digest = hashlib.sha256()
    for part in (config.username, config.password, config.ca_pem, config.cert_pem,
                 config.key_pem):
        digest.update(part.encode() if isinstance(part, str) else (part or b""))
        digest.update(b"\0")
    return digest.hexdigest()
