"""The etcd client the registry uses: aetcd's protocol, our channels.

aetcd supplies etcd's generated gRPC stubs and messages, its range helpers
and its watch stream. This module supplies the channel: one endpoint at a
time, TLS (CA, client certificate), authentication whose token is renewed
when etcd expires it, a dial timeout, and failover to the next endpoint when
the current one is unavailable.

Every request is retried on the next endpoint after an unavailable one. That
is safe for what the registry sends: reads, keepalives and revokes are
idempotent, and every write is a transaction guarded by compares, so a
replay of one that did land simply fails its compare and is re-planned. A
replayed lease grant at worst leaves an unused lease, which expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aetcd import rpc, utils

from .config import EtcdTarget
from .errors import (
    EtcdAuthError,
    EtcdError,
    EtcdUnavailable,
    is_expired_token,
    is_failover,
    translate,
)
from .tls import check_client_certificate

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_MESSAGE = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # Notice a dead connection within seconds, not at the next request's timeout.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 0),
]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class PutOp:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class DeleteOp:
    key: str


@dataclass(frozen=True, slots=True)
class Compare:
    """A guard of a transaction: ``absent`` or ``lease_is``."""

    key: str
    target: str  # "create" (create_revision) or "lease"
    value: int

    @staticmethod
    def absent(key: str) -> Compare:
        return Compare(key, "create", 0)

    @staticmethod
    def lease_is(key: str, lease: int) -> Compare:
        return Compare(key, "lease", lease)

    def message(self) -> Any:
        if self.target == "create":
            return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                               key=self.key.encode(), create_revision=self.value)
        return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.LEASE,
                           key=self.key.encode(), lease=self.value)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    key: str
    value: bytes
    lease: int
    revision: int


class _Session:
    """One channel to one endpoint, with its stubs and auth token."""

    def __init__(self, target: EtcdTarget, address: str) -> None:
        self.address = address
        if target.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=target.ca_pem, private_key=target.key_pem,
                certificate_chain=target.cert_pem)
            self.channel = grpc.aio.secure_channel(address, credentials, _CHANNEL_OPTIONS)
        else:
            self.channel = grpc.aio.insecure_channel(address, _CHANNEL_OPTIONS)
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.auth = rpc.AuthStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] | None = None

    async def close(self) -> None:
        await self.channel.close()


class EtcdClient:
    """An etcd client over several endpoints; see the module docstring for the guarantees."""

    def __init__(self, target: EtcdTarget) -> None:
        self.target = target
        self._addresses = target.addresses()
        self._index = 0
        self._session: _Session | None = None
        self._lock = asyncio.Lock()

    # --- connection -------------------------------------------------------------

    async def _connect(self) -> _Session:
        """The current session, or a new one on the first endpoint that answers."""
        if self._session is not None:
            return self._session
        if self.target.cert_pem is not None:
            check_client_certificate(self.target.cert_pem)
        async with self._lock:
            if self._session is not None:
                return self._session
            failures: list[EtcdError] = []
            for step in range(len(self._addresses)):
                address = self._addresses[(self._index + step) % len(self._addresses)]
                session = _Session(self.target, address)
                try:
                    await self._handshake(session)
                except EtcdError as exc:
                    await session.close()
                    failures.append(exc)
                    if not is_failover(exc):
                        raise
                    continue
                self._index = (self._index + step) % len(self._addresses)
                self._session = session
                if step:
                    log.info("etcd: failed over to %s", address)
                return session
            raise _combine(failures)

    async def _handshake(self, session: _Session) -> None:
        """Prove the endpoint answers within the dial timeout, and log in."""
        timeout = self.target.dial_timeout
        try:
            if self.target.username is not None:
                await self._authenticate(session)
            else:
                await session.kv.Range(rpc.RangeRequest(key=b"\0", limit=1), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, session.address) from None

    async def _authenticate(self, session: _Session) -> None:
        response = await session.auth.Authenticate(
            rpc.AuthenticateRequest(name=self.target.username, password=self.target.password),
            timeout=self.target.dial_timeout)
        session.metadata = (("token", response.token),)

    async def _drop(self, session: _Session) -> None:
        """Forget a session that failed; the next call moves to the next endpoint."""
        if self._session is session:
            self._session = None
            self._index = (self._index + 1) % len(self._addresses)
        await session.close()

    async def _call(self, fn: Callable[[_Session], Awaitable[T]]) -> T:
        """Run one request with failover and token renewal."""
        failures: list[EtcdError] = []
        for _attempt in range(len(self._addresses) + 1):
            session = await self._connect()
            try:
                try:
                    return await fn(session)
                except grpc.aio.AioRpcError as exc:
                    if self.target.username is None or not is_expired_token(exc):
                        raise
                    log.info("etcd auth token expired; authenticating again")
                    await self._authenticate(session)
                    return await fn(session)
            except grpc.aio.AioRpcError as exc:
                error = translate(exc, session.address)
                if not is_failover(error):
                    raise error from None
                failures.append(error)
                await self._drop(session)
        raise _combine(failures)

    # --- the interface the registry uses ----------------------------------------

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` (a serializable=False, linearizable read) and the revision."""
        key = prefix.encode()
        request = rpc.RangeRequest(key=key, range_end=utils.prefix_range_end(key))

        async def go(s: _Session) -> Any:
            return await s.kv.Range(request, timeout=self.target.request_timeout,
                                    metadata=s.metadata)

        response = await self._call(go)
        kvs = [KeyValue(kv.key.decode(), bytes(kv.value), kv.lease, kv.create_revision,
                        kv.mod_revision) for kv in response.kvs]
        return kvs, int(response.header.revision)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[PutOp | DeleteOp]) -> bool:
        """Apply ``ops`` if every compare holds; False (nothing applied) if one does not."""
        request = rpc.TxnRequest(compare=[c.message() for c in compares],
                                 success=[_request_op(op) for op in ops])

        async def go(s: _Session) -> Any:
            return await s.kv.Txn(request, timeout=self.target.request_timeout,
                                  metadata=s.metadata)

        return bool((await self._call(go)).succeeded)

    async def grant(self, ttl: int) -> int:
        async def go(s: _Session) -> Any:
            return await s.lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl),
                                            timeout=self.target.request_timeout,
                                            metadata=s.metadata)

        return int((await self._call(go)).ID)

    async def revoke(self, lease: int) -> None:
        async def go(s: _Session) -> None:
            try:
                await s.lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease),
                                          timeout=self.target.request_timeout,
                                          metadata=s.metadata)
            except grpc.aio.AioRpcError as exc:
                if "lease not found" not in (exc.details() or ""):
                    raise

        await self._call(go)

    async def keepalive(self, lease: int) -> int:
        """Refresh a lease; the remaining TTL, 0 when the lease no longer exists."""
        async def go(s: _Session) -> int:
            stream = s.lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease)]),
                                            timeout=self.target.request_timeout,
                                            metadata=s.metadata)
            async for reply in stream:
                return int(reply.TTL)
            return 0

        return await self._call(go)

    async def lease_ttl(self, lease: int) -> int:
        """Seconds left on a lease; -1 when it does not exist."""
        async def go(s: _Session) -> Any:
            return await s.lease.LeaseTimeToLive(rpc.LeaseTimeToLiveRequest(ID=lease),
                                                 timeout=self.target.request_timeout,
                                                 metadata=s.metadata)

        return int((await self._call(go)).TTL)

    async def status(self) -> dict[str, Any]:
        """Version and leader of the current endpoint, for ``/readyz`` style checks."""
        async def go(s: _Session) -> Any:
            return await s.maintenance.Status(rpc.StatusRequest(),
                                              timeout=self.target.request_timeout,
                                              metadata=s.metadata)

        response = await self._call(go)
        return {"version": response.version, "leader": response.leader,
                "db_size": response.dbSize, "endpoint": self.current_endpoint}

    async def watch_prefix(self, prefix: str, start_revision: int | None = None
                           ) -> AsyncIterator[WatchEvent]:
        """Events under ``prefix`` on the current endpoint, until the caller stops iterating."""
        session = await self._connect()
        key = prefix.encode()
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=key, range_end=utils.prefix_range_end(key), start_revision=start_revision or 0))
        hold = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield create
            await hold.wait()  # the stream stays open until the watch is dropped

        call = rpc.WatchStub(session.channel).Watch(requests(), metadata=session.metadata)
        try:
            async for response in call:
                for event in response.events:
                    kv = event.kv
                    yield WatchEvent("DELETE" if event.type == rpc.Event.DELETE else "PUT",
                                     kv.key.decode(), bytes(kv.value), int(kv.lease),
                                     int(kv.mod_revision))
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, session.address) from None
        finally:
            hold.set()
            call.cancel()

    @property
    def current_endpoint(self) -> str:
        return self._addresses[self._index]

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _request_op(op: PutOp | DeleteOp) -> Any:
    if isinstance(op, PutOp):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key.encode(), value=op.value,
                                                        lease=op.lease))
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key.encode()))


def _combine(failures: list[EtcdError]) -> EtcdError:
    """The most telling failure of a round over every endpoint."""
    for kind in (EtcdAuthError,):
        for failure in failures:
            if isinstance(failure, kind):
                return failure
    tls = [f for f in failures if not isinstance(f, EtcdUnavailable)]
    if tls:
        return tls[0]
    reasons = "; ".join(str(f) for f in failures) or "no endpoint"
    return EtcdUnavailable(f"no etcd endpoint answered: {reasons}")
