"""One gRPC channel to one etcd endpoint: what aetcd's client cannot set up.

aetcd opens a plain channel with gRPC's default message limits. Here the
channel may be TLS with a client certificate, accepts the large responses of
ranges over thousands of keys, notices a dead peer by HTTP/2 keepalive, and
carries the auth token and etcd's "require a leader" flag on every call.
"""

from __future__ import annotations

import grpc
from aetcd import rpc

from .config import EtcdConfig

MAX_MESSAGE = 16 * 1024 * 1024
"""The default cap on one etcd response (``--etcd-max-response-size``). A range of
10,000 instances is about 2 MB, so 16 MiB leaves room for 80,000; gRPC's own 4 MiB
default would fail somewhat past 20,000. Without a cap that fits the operator's
memory, a range someone filled with junk (a tenant's prefix is theirs to write)
would be read whole into it. Requests are bounded by etcd itself (1.5 MiB)."""

_max_response = MAX_MESSAGE


def set_max_response(size: int) -> None:
    """The cap for channels opened from now on (the CLI sets it once, at start)."""
    global _max_response
    if size < 1024 * 1024:
        raise ValueError("the etcd response size cap must be at least 1 MiB")
    _max_response = size


def max_response() -> int:
    return _max_response


_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # Notice a dead connection within seconds, not at the next request's timeout.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Retrying is ours to decide (replay safety); gRPC's own retries would hide failures.
    ("grpc.enable_retries", 0),
    # One attempt per dial: the client moves to the next endpoint rather than wait here.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]



def _options() -> list[tuple[str, int]]:
    return [*_OPTIONS, ("grpc.max_receive_message_length", _max_response)]


# etcd answers "no leader" at once instead of hanging when a member that lost
# its quorum gets a request with this flag, which lets the client fail over.
_REQUIRE_LEADER = ("hasleader", "true")


class Channel:
    """The channel, its stubs and its auth token, for one endpoint."""

    def __init__(self, config: EtcdConfig, address: str) -> None:
        self.address = address
        if config.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=config.ca_pem, private_key=config.key_pem,
                certificate_chain=config.cert_pem)
            self.grpc = grpc.aio.secure_channel(address, credentials, _options())
        else:
            self.grpc = grpc.aio.insecure_channel(address, _options())
        self.kv = rpc.KVStub(self.grpc)
        self.lease = rpc.LeaseStub(self.grpc)
        self.auth = rpc.AuthStub(self.grpc)
        self.maintenance = rpc.MaintenanceStub(self.grpc)
        self.watch = rpc.WatchStub(self.grpc)
        self.token: str | None = None
        self.token_generation = 0

    def set_token(self, token: str) -> None:
        self.token = token
        self.token_generation += 1

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.token is None:
            return (_REQUIRE_LEADER,)
        return (_REQUIRE_LEADER, ("token", self.token))

    def __repr__(self) -> str:  # never the token
        return f"Channel({self.address})"

    async def close(self) -> None:
        await self.grpc.close()
