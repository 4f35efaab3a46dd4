"""etcd user auth: a role limited to a prefix, wrong passwords, and tokens that expire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.etcd import (
    EtcdAuthError,
    EtcdClient,
    EtcdConfig,
    EtcdPermissionDenied,
    WatchEvent,
)
from kitex_etcd_operator.writes import Put
from tests.etcd.etcd_auth_user import AUTH_PASSWORD, AUTH_PREFIX, AUTH_TOKEN_TTL, AUTH_USER
from tests.support.helpers import async_wait_for

MakeClient = Callable[[EtcdConfig], EtcdClient]


def user(cluster: EtcdCluster, password: str = AUTH_PASSWORD) -> EtcdConfig:
    return EtcdConfig(tuple(cluster.endpoints), username=AUTH_USER, password=password)


def expired(client: EtcdClient, since: Callable[[], float]) -> Callable[[], Awaitable[bool]]:
    """True once the client has been idle longer than the token's TTL plus etcd's 1 s
    sweep; only idleness expires a simple token (every use extends it)."""
    async def check() -> bool:
        return time.monotonic() - since() > AUTH_TOKEN_TTL + 1.5
    return check


async def test_a_user_limited_to_a_prefix(etcd_auth: EtcdCluster, make_client: MakeClient,
                                          prefix: str) -> None:
    client = make_client(user(etcd_auth))
    assert await client.txn([], [Put(f"{AUTH_PREFIX}{prefix}a", b"1")])
    assert len((await client.get_prefix(AUTH_PREFIX + prefix))[0]) == 1
    lease = await client.grant(10)
    assert await client.txn([], [Put(f"{AUTH_PREFIX}{prefix}b", b"2", lease)])
    await client.revoke(lease)
    with pytest.raises(EtcdPermissionDenied, match=f"permission denied.*user '{AUTH_USER}'"):
        await client.txn([], [Put(f"elsewhere/{prefix}", b"1")])
    with pytest.raises(EtcdPermissionDenied, match="permission denied"):
        await client.get_prefix("elsewhere/")


async def test_a_key_outside_the_users_prefix_fails_only_its_own_transaction(
        etcd_auth: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    """Transactions of services under different prefixes may share a request; the one
    the user's roles do not cover is refused, the others are written."""
    client = make_client(user(etcd_auth))
    inside = [f"{AUTH_PREFIX}{prefix}{i}" for i in range(3)]
    answers = await asyncio.gather(
        *(client.txn([], [Put(key, b"v", expect_lease=0)]) for key in inside[:2]),
        client.txn([], [Put(f"elsewhere/{prefix}", b"v", expect_lease=0)]),
        client.txn([], [Put(inside[2], b"v", expect_lease=0)]), return_exceptions=True)
    assert answers[:2] == [True, True] and answers[3] is True
    assert isinstance(answers[2], EtcdPermissionDenied)
    kvs, _ = await client.get_prefix(AUTH_PREFIX + prefix)
    assert sorted(kv.key for kv in kvs) == inside


async def test_a_wrong_password(etcd_auth: EtcdCluster, make_client: MakeClient) -> None:
    client = make_client(user(etcd_auth, password="not-the-password"))
    with pytest.raises(EtcdAuthError, match=r"refused the credentials.*authentication failed"
                       ) as caught:
        await client.get_prefix(AUTH_PREFIX)
    assert "not-the-password" not in str(caught.value)


async def test_no_credentials_where_etcd_requires_them(
        etcd_auth: EtcdCluster, make_client: MakeClient) -> None:
    client = make_client(EtcdConfig(tuple(etcd_auth.endpoints)))
    with pytest.raises(EtcdAuthError, match="requires authentication: give a username"):
        await client.get_prefix(AUTH_PREFIX)


async def test_an_expired_token_is_renewed_once_for_every_waiting_request(
        etcd_auth: EtcdCluster, make_client: MakeClient, prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(user(etcd_auth))
    key = f"{AUTH_PREFIX}{prefix}k"
    assert await client.txn([], [Put(key, b"v")])
    last_used = time.monotonic()
    await async_wait_for(expired(client, lambda: last_used), timeout=AUTH_TOKEN_TTL + 10,
                         what="the token to expire")
    results = await asyncio.gather(*(client.get_prefix(key) for _ in range(20)))
    assert all([kv.value for kv in kvs] == [b"v"] for kvs, _ in results)
    assert client.token_renewals == 1  # one Authenticate for 20 requests
    last_used = time.monotonic()
    await async_wait_for(expired(client, lambda: last_used), timeout=AUTH_TOKEN_TTL + 10,
                         what="the token to expire again")
    assert await client.txn([], [Put(key, b"w")])
    assert client.token_renewals == 2
    assert "authenticating again" in caplog.text
    token = client._channel.token if client._channel else None
    assert token and token not in caplog.text
    assert AUTH_PASSWORD not in caplog.text


async def test_a_watch_started_after_the_token_expired(
        etcd_auth: EtcdCluster, make_client: MakeClient, prefix: str) -> None:
    client = make_client(user(etcd_auth))
    watched = f"{AUTH_PREFIX}{prefix}"
    _, revision = await client.get_prefix(watched)
    last_used = time.monotonic()
    await async_wait_for(expired(client, lambda: last_used), timeout=AUTH_TOKEN_TTL + 10,
                         what="the token to expire")
    events: list[WatchEvent] = []

    async def watch() -> None:
        async for event in client.watch_prefix(watched, start_revision=revision + 1):
            events.append(event)

    task = asyncio.create_task(watch())
    try:
        writer = make_client(user(etcd_auth))
        assert await writer.txn([], [Put(watched + "a", b"1")])

        async def seen() -> bool:
            return bool(events)

        await async_wait_for(seen, timeout=10, what="the event through the renewed watch")
        assert [(e.kind, e.key) for e in events] == [("PUT", watched + "a")]
        assert client.token_renewals == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_watch_outside_the_users_prefix_is_refused(
        etcd_auth: EtcdCluster, make_client: MakeClient) -> None:
    client = make_client(user(etcd_auth))
    with pytest.raises(EtcdAuthError, match="cancelled the watch of elsewhere/"):
        async for _ in client.watch_prefix("elsewhere/"):
            break
