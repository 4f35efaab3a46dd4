"""Transactions issued together go to etcd as one request.

A burst of pod changes (a busy API server hands a watch dozens of them in one
read) wakes the workers of as many services at once, and each sends a small
transaction. A request costs the operator most of a millisecond of CPU (gRPC's
per-call work), so the last service of a burst of 47 waited 30 ms for the
others' requests, though etcd handled each in under 5 ms: the tail of the
operator's share of churn. Transactions submitted within one turn of the event
loop are sent as one request, when that cannot change what any of them does:

* each is small (``MAX_MEMBER_OPS``; an initial sync's batches go alone), safe
  to replay (every write guarded, :func:`~.ops.txn_replay_safe`: a shared
  request is replayed after a failover as each would be), and touches keys no
  other member of the request touches, so the compares of one never see the
  writes of another; together they keep within etcd's limits on one request;
* the request succeeds only if every member's compares hold. If one fails,
  or etcd refuses the request as a whole (a member's lease is gone, a member's
  key is outside what the etcd user may write), nothing was applied, and each
  member is sent again on its own for its own answer. A failure after which
  the request may have been applied (etcd unreachable) is every member's, as
  it would have been for the request each would have sent.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .. import metrics
from ..writes import Put, Write
from .errors import EtcdPermissionDenied, EtcdRequestError, EtcdUnavailable
from .ops import Compare, txn_replay_safe

Send = Callable[[Sequence[Compare], Sequence[Write]], Awaitable[bool]]

# etcd's default --max-txn-ops bounds the compares and the writes of one request apart.
MAX_SHARED_OPS = 128
# Larger transactions fill a request of their own.
MAX_MEMBER_OPS = 16
# Well under etcd's default --max-request-bytes (1.5 MiB), whatever the values.
MAX_SHARED_BYTES = 512 * 1024


@dataclass(slots=True)
class _Member:
    compares: Sequence[Compare]
    ops: Sequence[Write]
    future: asyncio.Future[bool]
    keys: frozenset[str]
    checks: int  # compares given plus each write's own guard
    size: int


def _member(compares: Sequence[Compare], ops: Sequence[Write],
            future: asyncio.Future[bool]) -> _Member:
    keys = frozenset([*(c.key for c in compares), *(op.key for op in ops)])
    checks = len(compares) + sum(op.expect_lease is not None for op in ops)
    size = sum(2 * len(k) + 32 for k in keys) + sum(
        len(op.value) for op in ops if isinstance(op, Put)) + sum(
        len(c.value) for c in compares if isinstance(c.value, bytes))
    return _Member(compares, ops, future, keys, checks, size)


def shareable(compares: Sequence[Compare], ops: Sequence[Write]) -> bool:
    """Whether a transaction may share a request with others."""
    return 0 < len(ops) <= MAX_MEMBER_OPS and len(compares) <= MAX_MEMBER_OPS \
        and txn_replay_safe(compares, ops)


def pack(members: Sequence[_Member]) -> list[list[_Member]]:
    """Members into requests, in order: a member joins the open request if it fits
    within etcd's limits and shares no key with it, else opens the next one."""
    requests: list[list[_Member]] = []
    keys: set[str] = set()
    ops = checks = size = 0
    for member in members:
        fits = (requests and ops + len(member.ops) <= MAX_SHARED_OPS
                and checks + member.checks <= MAX_SHARED_OPS
                and size + member.size <= MAX_SHARED_BYTES and keys.isdisjoint(member.keys))
        if not fits:
            requests.append([])
            keys, ops, checks, size = set(), 0, 0, 0
        requests[-1].append(member)
        keys |= member.keys
        ops, checks, size = ops + len(member.ops), checks + member.checks, size + member.size
    return requests


class TxnCoalescer:
    """Gathers the transactions of one loop turn; ``send`` sends one request."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: list[_Member] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Write]) -> bool:
        if not shareable(compares, ops):
            return await self._send(compares, ops)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append(_member(compares, ops, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Runs after the loop turn in which the first pending transaction came."""
        self._scheduled = False
        members = [m for m in self._pending if not m.future.done()]  # cancelled: never sent
        self._pending = []
        for request in pack(members):
            task = asyncio.get_running_loop().create_task(
                self._shared(request) if len(request) > 1 else self._alone(request[0]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _alone(self, member: _Member) -> None:
        try:
            _answer(member, await self._send(member.compares, member.ops))
        except Exception as exc:  # the member's own failure, raised where it waits
            _fail(member, exc)
        finally:
            _stopped(member)

    async def _shared(self, members: list[_Member]) -> None:
        try:
            try:
                succeeded = await self._send([c for m in members for c in m.compares],
                                             [op for m in members for op in m.ops])
            except (EtcdRequestError, EtcdPermissionDenied):
                # Refused as a whole, nothing applied: whose was it? A member's lease
                # gone, or a key outside what the etcd user may write (roles grant
                # prefixes, and services' prefixes differ).
                succeeded = False
            except Exception as exc:
                for member in members:
                    _fail(member, exc)
                return
            metrics.etcd_shared_txns.inc(len(members))
            if succeeded:
                for member in members:
                    _answer(member, True)
                return
            metrics.etcd_shared_txn_retries.inc()
            await asyncio.gather(*(self._alone(m) for m in members))
        finally:
            for member in members:
                _stopped(member)

    async def close(self) -> None:
        """Stop the requests in flight, and those not sent yet; their members fail as
        unanswered (one not sent would otherwise open a new connection after the
        client closed)."""
        pending, self._pending = self._pending, []
        for member in pending:
            _stopped(member)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Their own cancels are their results; a cancel of the caller still goes up
        # (suppressing CancelledError around each await swallowed that one too).
        await asyncio.gather(*tasks, return_exceptions=True)


def _answer(member: _Member, succeeded: bool) -> None:
    if not member.future.done():
        member.future.set_result(succeeded)


def _fail(member: _Member, exc: Exception) -> None:
    if not member.future.done():
        # A copy each: one exception object raised in several tasks would gather
        # all their tracebacks.
        try:
            own = copy.copy(exc)
        except Exception:  # an exception class that cannot be rebuilt from its args
            own = exc
        member.future.set_exception(own)


def _stopped(member: _Member) -> None:
    """A member still waiting when its request's task ends (the client closing)."""
    if not member.future.done():
        member.future.set_exception(EtcdUnavailable(
            "the etcd client stopped before the transaction was answered; it may have "
            "been applied"))
