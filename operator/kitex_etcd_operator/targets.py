"""Connections to etcd targets, with credentials resolved from files or Secrets.

A target is named by a ``TargetRef`` (endpoints and Secret names); its
credentials are read when first needed and again at every observation, and a
change of them reconnects the same registry without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .desired import TargetRef
from .etcd.client import EtcdClient
from .etcd.config import EtcdTarget
from .etcd.errors import EtcdError
from .kubeapi import KubeApi, SecretNotFound
from .plan import Binding
from .registry import TargetRegistry
from .settings import Settings

log = logging.getLogger(__name__)


class TargetError(Exception):
    """Credentials or settings of a target are unusable; the message names what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(slots=True)
class _Handle:
    registry: TargetRegistry
    fingerprint: str


class Targets:
    """One client and one registry per target, shared by all its bindings."""

    def __init__(self, settings: Settings, kube: KubeApi | None, *,
                 on_lease_lost: Callable[[Binding], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.kube = kube
        self.on_lease_lost = on_lease_lost
        self._handles: dict[str, _Handle] = {}
        self._creating = asyncio.Lock()  # one registry per target, even when workers race

    async def get(self, ref: TargetRef) -> TargetRegistry:
        handle = self._handles.get(ref.id)
        if handle is not None:
            return handle.registry
        async with self._creating:
            return await self._get(ref)

    async def _get(self, ref: TargetRef) -> TargetRegistry:
        handle = self._handles.get(ref.id)
        if handle is None:
            target = await self.resolve(ref)
            client = EtcdClient(target)
            registry = TargetRegistry(client, cluster_id=self.settings.cluster_id,
                                      owner_prefix=self.settings.owner_prefix,
                                      on_lease_lost=self.on_lease_lost)
            await registry.load_ownership()
            handle = _Handle(registry, _fingerprint(target))
            self._handles[ref.id] = handle
        return handle.registry

    def connected(self) -> dict[str, TargetRegistry]:
        return {key: handle.registry for key, handle in self._handles.items()}

    async def refresh(self, ref: TargetRef) -> None:
        """Re-read the target's credentials; reconnect if they changed.

        The new credentials must connect and log in before they replace the
        old: a Secret updated with an expired certificate or a wrong password
        raises here (the service turns Degraded, naming why) while the old
        connection keeps the leases alive, so no entry is lost over a bad
        Secret. Restoring the Secret is then all it takes.
        """
        handle = self._handles.get(ref.id)
        if handle is None:
            return
        target = await self.resolve(ref)
        fingerprint = _fingerprint(target)
        if fingerprint == handle.fingerprint:
            return
        log.info("Credentials of etcd target %s changed; reconnecting", ref.id)
        new = EtcdClient(target)
        try:
            await new.connect()
        except EtcdError as exc:
            await new.close()
            log.warning("The new credentials of etcd target %s do not work, keeping the "
                        "current connection for the leases: %s", ref.id, exc)
            raise
        old = handle.registry.client
        handle.registry.client = new
        handle.fingerprint = fingerprint
        await old.close()

    async def resolve(self, ref: TargetRef) -> EtcdTarget:
        """Build the connection settings, reading Secrets as needed."""
        base = self.settings.etcd
        username, password = base.username, base.password
        ca = cert = key = None
        if base.ca_file:
            ca = base.ca_file.read_bytes()
        if base.cert_file and base.key_file:
            cert, key = base.cert_file.read_bytes(), base.key_file.read_bytes()
        if ref.endpoints is None and base.secret:
            namespace, _, name = base.secret.partition("/")
            data = await self._secret((namespace, name), "--etcd-secret")
            username = _text(data, "username", "--etcd-secret") if "username" in data else username
            password = _text(data, "password", "--etcd-secret") if "password" in data else password
            ca = data.get("ca.crt", ca)
            cert, key = data.get("tls.crt", cert), data.get("tls.key", key)
        if ref.endpoints is not None:
            # A KitexService that names its own etcd gets none of the defaults' secrets.
            username = password = None
            ca = cert = key = None
        if ref.auth_secret:
            data = await self._secret(ref.auth_secret, "spec.etcd.authSecretRef")
            username = _text(data, "username", "spec.etcd.authSecretRef")
            password = _text(data, "password", "spec.etcd.authSecretRef")
        if ref.tls_secret:
            data = await self._secret(ref.tls_secret, "spec.etcd.tlsSecretRef")
            ca = data.get("ca.crt")
            cert, key = data.get("tls.crt"), data.get("tls.key")
            if (cert is None) != (key is None):
                raise TargetError("spec.etcd.tlsSecretRef",
                                  "Secret must hold both tls.crt and tls.key, or neither")
        return EtcdTarget(
            endpoints=ref.endpoints or base.endpoints, username=username, password=password,
            ca_pem=ca, cert_pem=cert, key_pem=key,
            dial_timeout=ref.dial_timeout or base.dial_timeout)

    async def _secret(self, key: tuple[str, str], field: str) -> dict[str, bytes]:
        if self.kube is None:
            raise TargetError(field, "Secrets cannot be read without a Kubernetes connection")
        try:
            return await self.kube.read_secret(*key)
        except SecretNotFound as exc:
            raise TargetError(field, str(exc)) from None

    async def close(self) -> None:
        for handle in self._handles.values():
            await handle.registry.close()
            await handle.registry.client.close()
        self._handles.clear()


def _text(data: dict[str, bytes], key: str, field: str) -> str:
    try:
        return data[key].decode()
    except KeyError:
        raise TargetError(field, f"Secret has no key {key!r}") from None
    except UnicodeDecodeError:
        raise TargetError(field, f"Secret key {key!r} is not UTF-8 text") from None


def _fingerprint(target: EtcdTarget) -> str:
    """A digest of the credentials, so a change is seen without keeping them twice."""
    digest = hashlib.sha256()
    for part in (target.username, target.password, target.ca_pem, target.cert_pem,
                 target.key_pem):
        digest.update(part.encode() if isinstance(part, str) else (part or b""))
        digest.update(b"\0")
    return digest.hexdigest()
