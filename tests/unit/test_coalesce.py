"""Closing the coalescer stops its requests, but never swallows a cancel of its caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from kitex_etcd_operator.etcd.coalesce import TxnCoalescer
from kitex_etcd_operator.etcd.ops import Compare
from kitex_etcd_operator.writes import Put, Write


async def test_a_cancel_of_the_closing_task_is_not_swallowed() -> None:
    """``close`` waited for its requests with ``CancelledError`` suppressed: a cancel of
    the task calling it (a worker stopped while it closed a client) was dropped too."""
    sent, unwinding = asyncio.Event(), asyncio.Event()

    async def send(compares: Sequence[Compare], ops: Sequence[Write]) -> bool:
        sent.set()
        try:
            await asyncio.Event().wait()  # etcd answers nothing
        finally:
            unwinding.set()
            await asyncio.Event().wait()  # a slow end: close waits for it
        return True

    coalescer = TxnCoalescer(send)
    waiting = asyncio.create_task(coalescer.txn([], [Put("k", b"v", expect_lease=0)]))
    await asyncio.wait_for(sent.wait(), 5)
    closing = asyncio.create_task(coalescer.close())
    await asyncio.wait_for(unwinding.wait(), 5)  # the request cancelled, close waits for it
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(closing, 5)
    await asyncio.gather(waiting, return_exceptions=True)  # failed as unanswered
