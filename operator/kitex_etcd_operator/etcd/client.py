"""The etcd client the registry uses: aetcd's protocol, our channels.

One endpoint is used at a time. When it fails (unavailable, past a
deadline, a TLS failure) the client drops it and moves to the next one, and
the failed request is sent again there, but only when that cannot do harm:

* always, when the failure proves etcd never got the request (no connection,
  or etcd answered "no leader");
* otherwise only for requests that are safe to replay: reads (``get_prefix``,
  ``lease_ttl``, ``status``), ``keepalive``, ``revoke``, ``grant`` (a
  duplicate lease holds no key and expires after its TTL) and transactions in
  which every written key is guarded by a compare on it
  (:func:`~.ops.txn_replay_safe`), which is every transaction the registry
  sends. An unguarded transaction fails with ``EtcdUnavailable`` instead.

When etcd answers "invalid auth token" (simple tokens expire after
``--auth-token-ttl``) the client authenticates again, once for all requests
waiting on that token, and resends the request: etcd checks the token before
doing anything, so that is always safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from aetcd import rpc, utils

from ..writes import Write
from .channel import MAX_MESSAGE, Channel
from .coalesce import TxnCoalescer
from .config import EtcdConfig
from .errors import (
    EtcdAuthError,
    EtcdCompacted,
    EtcdError,
    EtcdPermissionDenied,
    EtcdRequestError,
    EtcdUnavailable,
    handshake_error,
    is_expired_token,
    is_failover,
    never_sent,
    translate,
)
from .ops import Compare, KeyValue, WatchEvent, txn_replay_safe, txn_request
from .tls import check_client_certificate

__all__ = ["MAX_MESSAGE", "Compare", "EtcdClient", "KeyValue", "WatchEvent"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# A watch gives up after this many rounds over every endpoint without one created,
# waiting 0.5, 1, 2 s between them: longer than an election, short enough to report.
_WATCH_ROUNDS = 4
_WATCH_BACKOFF = 0.5
# Leases refreshed over one stream at most: their answers (~30 bytes each) stay well
# inside the stream's 64 KiB flow-control window while the requests are still written.
KEEPALIVE_BATCH = 500


class EtcdClient:
    """An etcd client over several endpoints; see the module docstring for the guarantees."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._addresses = config.addresses()
        self._index = 0
        self._channel: Channel | None = None
        self._connect_lock = asyncio.Lock()
        self._auth_lock = asyncio.Lock()
        self._used: str | None = None  # the endpoint of the last channel, to count failovers
        self.failovers = 0
        self.token_renewals = 0
        self._txns = TxnCoalescer(self._txn)

    def __repr__(self) -> str:
        return f"EtcdClient({self.config.describe()})"

    # --- connection -------------------------------------------------------------

    @property
    def current_endpoint(self) -> str:
        return self._addresses[self._index]

    async def connect(self) -> None:
        """Dial and log in now, raising what fails: a caller about to swap this client
        in for a working one proves the new credentials first."""
        await self._connect()

    async def _connect(self) -> Channel:
        """The current channel, or a new one on the first endpoint that answers."""
        if self._channel is not None:
            return self._channel
        if self.config.cert_pem is not None:
            check_client_certificate(self.config.cert_pem)
        async with self._connect_lock:
            if self._channel is not None:
                return self._channel
            failures: list[EtcdError] = []
            for step in range(len(self._addresses)):
                index = (self._index + step) % len(self._addresses)
                channel = Channel(self.config, self._addresses[index])
                try:
                    await self._handshake(channel)
                except EtcdError as exc:
                    await channel.close()
                    failures.append(exc)
                    if not is_failover(exc):
                        raise
                    log.warning("etcd: %s", exc)
                    continue
                if self._used is not None and channel.address != self._used:
                    self.failovers += 1
                    log.warning("etcd: now using %s", channel.address)
                self._used = channel.address
                self._index = index
                self._channel = channel
                return channel
            raise _combine(failures)

    async def _handshake(self, channel: Channel) -> None:
        """Prove the endpoint answers within the dial timeout, and log in.

        gRPC connects lazily, so the dial timeout is the deadline of this
        first request on the new channel.
        """
        timeout = self.config.dial_timeout
        try:
            if self.config.username is not None:
                await self._authenticate(channel, timeout)
            else:
                await channel.kv.Range(rpc.RangeRequest(key=b"\0", limit=1, serializable=True),
                                       timeout=timeout, metadata=channel.metadata)
        except grpc.aio.AioRpcError as exc:
            raise handshake_error(exc, channel.address, tls=self.config.tls,
                                  has_cert=self.config.cert_pem is not None,
                                  dial_timeout=timeout, user=self.config.username) from None

    async def _authenticate(self, channel: Channel, deadline: float | None = None) -> None:
        response = await channel.auth.Authenticate(
            rpc.AuthenticateRequest(name=self.config.username, password=self.config.password),
            timeout=deadline or self.config.request_timeout, metadata=channel.metadata[:1])
        channel.set_token(response.token)

    async def _renew_token(self, channel: Channel, generation: int) -> None:
        """Authenticate again unless a concurrent request already did since ``generation``."""
        async with self._auth_lock:
            if channel.token_generation == generation:
                log.info("etcd auth token at %s expired; authenticating again", channel.address)
                await self._authenticate(channel)
                self.token_renewals += 1

    async def _drop(self, channel: Channel) -> None:
        """Forget a channel that failed; the next request moves to the next endpoint."""
        if self._channel is channel:
            self._channel = None
            self._index = (self._index + 1) % len(self._addresses)
        await channel.close()

    async def _call(self, fn: Callable[[Channel], Awaitable[T]], *, replay_safe: bool) -> T:
        """Run one request with failover and token renewal (see the module docstring)."""
        failures: list[EtcdError] = []
        for _attempt in range(len(self._addresses) + 1):
            channel = await self._connect()
            generation = channel.token_generation
            try:
                try:
                    return await fn(channel)
                except grpc.aio.AioRpcError as exc:
                    if self.config.username is None or not is_expired_token(exc):
                        raise
                await self._renew_token(channel, generation)
                return await fn(channel)
            except grpc.aio.AioRpcError as exc:
                error = translate(exc, channel.address, user=self.config.username)
                if not is_failover(error):
                    raise error from None
                await self._drop(channel)
                if not (replay_safe or never_sent(exc)):
                    raise EtcdUnavailable(f"{error}; the request may have been applied, so it "
                                          "was not sent again") from None
                failures.append(error)
                log.warning("etcd: %s; trying the next endpoint", error)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # our caller is stopping
                # Another request failed on this channel and closed it: grpc then ends
                # every call still on it with a bare CancelledError, which ended the
                # caller's task as if it had been stopped. It is a failover like any other.
                error = EtcdUnavailable(f"etcd at {channel.address}: the connection was "
                                        "closed under the request (another one failed over)")
                await self._drop(channel)
                if not replay_safe:
                    raise EtcdUnavailable(f"{error}; the request may have been applied, so it "
                                          "was not sent again") from None
                failures.append(error)
                log.warning("etcd: %s; trying the next endpoint", error)
        raise _combine(failures)

    # --- the interface the registry uses ----------------------------------------

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` (a linearizable read) and the revision it was read at."""
        key = prefix.encode()
        request = rpc.RangeRequest(key=key, range_end=utils.prefix_range_end(key))

        async def get_prefix_on(c: Channel) -> Any:
            return await c.kv.Range(request, timeout=self.config.request_timeout,
                                    metadata=c.metadata)

        response = await self._call(get_prefix_on, replay_safe=True)
        kvs = [KeyValue(text, bytes(kv.value), kv.lease, kv.create_revision, kv.mod_revision)
               for kv in response.kvs if (text := _key(kv.key)) is not None]
        return kvs, int(response.header.revision)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Write]) -> bool:
        """Apply ``ops`` if every compare, and every op's own guard, holds; False
        (nothing applied) if one does not. Small guarded transactions issued together
        share a request (``coalesce``)."""
        return await self._txns.txn(compares, ops)

    async def _txn(self, compares: Sequence[Compare], ops: Sequence[Write]) -> bool:
        request = txn_request(compares, ops)

        async def txn_on(c: Channel) -> Any:
            return await c.kv.Txn(request, timeout=self.config.request_timeout,
                                  metadata=c.metadata)

        response = await self._call(txn_on, replay_safe=txn_replay_safe(compares, ops))
        return bool(response.succeeded)

    async def grant(self, ttl: int) -> int:
        async def grant_on(c: Channel) -> Any:
            return await c.lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl),
                                            timeout=self.config.request_timeout,
                                            metadata=c.metadata)

        return int((await self._call(grant_on, replay_safe=True)).ID)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease and with it every key on it; a missing lease is not an error."""
        async def revoke_on(c: Channel) -> None:
            try:
                await c.lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id),
                                          timeout=self.config.request_timeout,
                                          metadata=c.metadata)
            except grpc.aio.AioRpcError as exc:
                if "lease not found" not in (exc.details() or ""):
                    raise

        await self._call(revoke_on, replay_safe=True)

    async def keepalive(self, lease_id: int) -> int:
        """Refresh a lease; the remaining TTL, 0 when the lease no longer exists."""
        return (await self.keepalive_many([lease_id]))[lease_id]

    async def keepalive_many(self, lease_ids: Iterable[int]) -> dict[int, int]:
        """Refresh leases, many a stream: each one's remaining TTL, 0 when it no longer
        exists.

        A stream a lease cost 1 ms of the operator's CPU, a message on a shared stream
        a quarter of that; with 1,000 services their refreshes were the largest part
        of an idle operator's work. etcd answers a stream's requests in order and
        ends it only after the last, so an answer missing is a failure, never a lease
        gone. A stream carries ``KEEPALIVE_BATCH`` leases at most, one after the
        other: their answers wait in its flow-control window until read.
        """
        leases = list(dict.fromkeys(lease_ids))
        remaining: dict[int, int] = {}
        for start in range(0, len(leases), KEEPALIVE_BATCH):
            remaining.update(await self._keepalive_stream(leases[start:start + KEEPALIVE_BATCH]))
        return remaining

    async def _keepalive_stream(self, wanted: list[int]) -> dict[int, int]:
        async def keepalive_on(c: Channel) -> dict[int, int]:
            requests = [rpc.LeaseKeepAliveRequest(ID=lease) for lease in wanted]
            stream = c.lease.LeaseKeepAlive(iter(requests), timeout=self.config.request_timeout,
                                            metadata=c.metadata)
            answers: dict[int, int] = {}
            async for reply in stream:
                answers[int(reply.ID)] = max(int(reply.TTL), 0)
            missing = [lease for lease in wanted if lease not in answers]
            if missing:
                raise EtcdUnavailable(f"etcd at {c.address} ended a keepalive stream without "
                                      f"answering {len(missing)} of {len(wanted)} lease(s)")
            return {lease: answers[lease] for lease in wanted}

        return await self._call(keepalive_on, replay_safe=True)

    async def lease_ttl(self, lease_id: int) -> int:
        """Seconds left on a lease; -1 when it does not exist."""
        async def lease_ttl_on(c: Channel) -> Any:
            return await c.lease.LeaseTimeToLive(rpc.LeaseTimeToLiveRequest(ID=lease_id),
                                                 timeout=self.config.request_timeout,
                                                 metadata=c.metadata)

        return int((await self._call(lease_ttl_on, replay_safe=True)).TTL)

    async def status(self) -> dict[str, Any]:
        """The answering member's version, leader and size, for readiness checks."""
        async def status_on(c: Channel) -> Any:
            return await c.maintenance.Status(rpc.StatusRequest(),
                                              timeout=self.config.request_timeout,
                                              metadata=c.metadata)

        response = await self._call(status_on, replay_safe=True)
        return {"version": response.version, "endpoint": self.current_endpoint,
                "member_id": response.header.member_id, "leader": response.leader,
                "cluster_id": response.header.cluster_id,
                "raft_term": response.raftTerm, "db_size": response.dbSize}

    async def watch_prefix(self, prefix: str, start_revision: int | None = None
                           ) -> AsyncIterator[WatchEvent]:
        """Events under ``prefix`` from ``start_revision`` (default: from now), in order.

        The watch survives the loss of its endpoint: it is created again on
        the next one from the revision after the last event delivered, so no
        event is lost or repeated, and again after its auth token expired.
        It ends with ``EtcdCompacted`` when that history is gone (list again,
        then watch from the list's revision + 1), and with ``EtcdUnavailable``
        when no endpoint answers.
        """
        key = prefix.encode()
        next_revision = start_revision or 0
        failures: list[EtcdError] = []
        renewed = False
        while True:
            channel = await self._connect()
            generation = channel.token_generation
            create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=key, range_end=utils.prefix_range_end(key), start_revision=next_revision))
            hold = asyncio.Event()

            async def requests(first: Any = create, done: asyncio.Event = hold
                               ) -> AsyncIterator[Any]:
                yield first
                await done.wait()  # the stream stays open until the watch is dropped

            call = channel.watch.Watch(requests(), metadata=channel.metadata)
            renew = False
            try:
                async for response in call:
                    if response.canceled:
                        error = self._watch_cancelled(response, channel.address, prefix,
                                                      next_revision, renewed)
                        if error is not None:
                            raise error
                        renew = True  # most likely our token expired: retry once
                        break
                    if response.created:
                        failures.clear()
                        if next_revision == 0:
                            next_revision = int(response.header.revision) + 1
                    for event in response.events:
                        kv = event.kv
                        next_revision = int(kv.mod_revision) + 1
                        renewed = False
                        text = _key(kv.key)
                        if text is None:
                            continue
                        yield WatchEvent("DELETE" if event.type == rpc.Event.DELETE else "PUT",
                                         text, bytes(kv.value), int(kv.lease),
                                         int(kv.mod_revision))
                else:
                    failures.append(EtcdUnavailable(
                        f"etcd at {channel.address} ended the watch of {prefix}"))
                    await self._drop(channel)
            except grpc.aio.AioRpcError as exc:
                error = translate(exc, channel.address, user=self.config.username)
                if not is_failover(error):
                    raise error from None
                failures.append(error)
                await self._drop(channel)
                log.warning("etcd: watch of %s: %s; trying the next endpoint", prefix, error)
            finally:
                hold.set()
                call.cancel()
            if renew:
                renewed = True
                try:
                    await self._renew_token(channel, generation)
                except grpc.aio.AioRpcError as exc:
                    raise translate(exc, channel.address, user=self.config.username) from None
                continue
            if failures and len(failures) % len(self._addresses) == 0:
                # Every endpoint failed once more. During a leader election each member
                # refuses watches ("no leader") for about a second: wait it out, briefly.
                rounds = len(failures) // len(self._addresses)
                if rounds >= _WATCH_ROUNDS:
                    raise _combine(failures)
                await asyncio.sleep(_WATCH_BACKOFF * 2 ** (rounds - 1))

    def _watch_cancelled(self, response: Any, address: str, prefix: str, next_revision: int,
                         renewed: bool) -> EtcdError | None:
        """What a watch etcd cancelled ends with; ``None``: renew the token and watch again."""
        reason = response.cancel_reason or "no reason given"
        if response.compact_revision:
            return EtcdCompacted(
                f"etcd at {address} compacted the history of {prefix} past revision "
                f"{next_revision} (oldest kept: {response.compact_revision}); list again",
                int(response.compact_revision))
        if self.config.username is not None and not renewed and (
                "permission denied" in reason or "auth token" in reason):
            return None
        kind = EtcdPermissionDenied if "permission denied" in reason else EtcdRequestError
        return kind(f"etcd at {address} cancelled the watch of {prefix}: {reason}")

    async def close(self) -> None:
        await self._txns.close()
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


def _combine(failures: list[EtcdError]) -> EtcdError:
    """The most telling failure of a round over every endpoint: auth, then TLS, then down."""
    for failure in failures:
        if isinstance(failure, EtcdAuthError):
            return failure
    for failure in failures:
        if not isinstance(failure, EtcdUnavailable):
            return failure
    reasons = "; ".join(dict.fromkeys(str(f) for f in failures)) or "no endpoint"
    return EtcdUnavailable(f"no etcd endpoint answered: {reasons}")


def _key(raw: bytes) -> str | None:
    """A key as text, or ``None`` for one that is not UTF-8: etcd keys are any bytes,
    and anyone who can write a range (a tenant's own etcd, another client) can put
    one there. The operator writes only UTF-8 keys, so such a key is never its own:
    left out of what it reads, it is left alone, and it cannot crash every read of
    the range (a worker's sync, the ownership records) with a UnicodeDecodeError."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        log.warning("Ignoring an etcd key that is not UTF-8: %r", raw[:200])
        return None
