"""etcd out of space (its NOSPACE alarm): what is refused, what still works, and the words.

A small ``--quota-backend-bytes`` and large writes raise the alarm for real.
etcd measures its database at each batch commit (every 100 ms), so a fast client
can write well past the quota before the first refusal: the test writes until
refused, with a deadline, rather than a fixed number of times.

Puts and lease grants are refused with an error that says what to do;
keepalives and deletes go on, which is why the operator's entries outlive the
alarm.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import EtcdClient, EtcdConfig, EtcdNoSpace
from kitex_etcd_operator.writes import Put

MakeClient = Callable[[EtcdConfig], EtcdClient]
QUOTA = 1024 * 1024
JUNK = b"x" * 200_000


async def test_out_of_space_is_named_and_leases_stay_alive(
        private_etcd: Callable[..., EtcdCluster], make_client: MakeClient) -> None:
    etcd = private_etcd("quota", extra_args=[f"--quota-backend-bytes={QUOTA}"])
    client = make_client(EtcdConfig(tuple(etcd.endpoints)))
    lease = await client.grant(30)
    assert await client.txn([], [Put("kept", b"1", lease)])
    deadline = time.monotonic() + 60
    with pytest.raises(EtcdNoSpace) as raised:
        for i in itertools.count():
            assert time.monotonic() < deadline, f"{i} writes of {len(JUNK)} bytes, never refused"
            await client.txn([], [Put(f"junk/{i % 100}", JUNK)])
    message = str(raised.value)
    assert "out of space (NOSPACE alarm)" in message and "alarm disarm" in message, message
    assert raised.value.reason == "EtcdOutOfSpace"
    assert "NOSPACE" in etcd.etcdctl("alarm", "list")

    with pytest.raises(EtcdNoSpace):
        await client.grant(30)
    assert await client.keepalive(lease) == 30  # the entry outlives the alarm
    assert [kv.key for kv in (await client.get_prefix("kept"))[0]] == ["kept"]

    etcd.etcdctl("del", "--prefix", "junk/")
    _, revision = await client.get_prefix("kept")
    etcd.etcdctl("compact", str(revision))
    etcd.etcdctl("defrag")
    etcd.etcdctl("alarm", "disarm")
    assert await client.txn([], [Put("after", b"1", lease)])
