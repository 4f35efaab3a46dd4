"""The Go interop programs work against a real etcd, and the exact bytes the Go
registry writes are recorded as golden test vectors (``golden/``).

Set ``KITEX_INTEROP_UPDATE_GOLDEN=1`` to rewrite the golden file after a
deliberate version bump; otherwise the Go library's output must match it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitex_devcluster.etcd import EtcdCluster
from kitex_etcd_operator.model import Instance, go_tags
from tests.interop.programs import (
    HERTZ_REGISTRY_ETCD_VERSION,
    HERTZ_VERSION,
    KITEX_VERSION,
    MODULE_DIR,
    PROGRAMS,
    REGISTRY_ETCD_VERSION,
    EchoServer,
    Launcher,
    cache_dir,
    ensure_built,
    etcdctl_get_json,
    wait_until,
)

pytestmark = pytest.mark.interop

GOLDEN = MODULE_DIR / "golden" / f"registry-etcd-{REGISTRY_ETCD_VERSION}.json"
DEFAULT_PREFIX = "kitex/registry-etcd"
REFRESH = 5.0  # Kitex client's lbcache refresh interval

# Inputs of the golden vectors: each is registered by go-register, i.e. by
# registry-etcd's own Register, and its key and value read back byte for byte.
VECTORS: list[dict[str, Any]] = [
    {
        "name": "ipv4-no-tags",
        "about": "the common case: a Kitex server with no tags (tags null, weight 10)",
        "service": "echo",
        "addr": "10.0.0.1:8888",
    },
    {
        "name": "ipv4-tags",
        "about": "tags given as zone=a,env=prod: Go's encoder sorts map keys",
        "service": "echo",
        "addr": "10.0.0.2:8888",
        "tags": {"zone": "a", "env": "prod"},
    },
    {
        "name": "ipv4-weight-7",
        "about": "an explicit weight",
        "service": "echo",
        "addr": "10.0.0.3:8888",
        "weight": 7,
        "tags": {"version": "v2"},
    },
    {
        "name": "ipv4-weight-0",
        "about": "weight 0 is written as 0; the resolver reads it as its default weight 10",
        "service": "echo",
        "addr": "10.0.0.4:8888",
        "weight": 0,
    },
    {
        "name": "tags-escaping",
        "about": (
            "Go's encoding/json escapes < > & as \\u003c \\u003e \\u0026 and U+2028 as"
            ' \\u2028, writes other non-ASCII as raw UTF-8, and an empty value as ""'
        ),
        "service": "echo",
        "addr": "10.0.0.6:8888",
        "tags": {
            "html": "<a&b>",
            "quote": 'say "hi"',
            "backslash": "a\\b",
            "unicode": "h\u00e9llo \u4e16\u754c",
            "linesep": "x\u2028y",
            "empty": "",
        },
    },
    {
        "name": "custom-prefix",
        "about": 'WithEtcdServicePrefix("custom/registry")',
        "service": "echo",
        "addr": "10.0.0.5:8888",
        "prefix": "custom/registry",
    },
    {
        "name": "service-name-chars",
        "about": "dots, dashes and underscores in a service name are kept as they are",
        "service": "p.s.m-1_a",
        "addr": "10.0.0.8:1",
    },
    {
        "name": "ipv6-go-unbracketed",
        "about": (
            "the Go registry formats host:port with %s:%d, so IPv6 comes out unbracketed"
            " (no client can dial it); the operator brackets IPv6 instead"
        ),
        "service": "echo6",
        "addr": "[fd00::1]:8888",
    },
]


def _go_address(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    return f"{host.strip('[]')}:{port}"


def _key(vec: dict[str, Any]) -> str:
    prefix = vec.get("prefix") or DEFAULT_PREFIX
    return f"{prefix}/{vec['service']}/{_go_address(vec['addr'])}"


def _free_addr(host: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def _get(etcd: EtcdCluster, key: str, *, prefix: bool = False) -> list[dict[str, Any]]:
    """Exact key/value bytes and lease of ``key`` (or every key under it)."""
    args = ["get", key, "-w", "json"] + (["--prefix"] if prefix else [])
    out = etcd.etcdctl(*args)
    pairs = etcdctl_get_json(out)
    raw = json.loads(out).get("kvs") or []
    return [
        {"key": k, "value": v, "lease": int(kv.get("lease", 0))}
        for (k, v), kv in zip(pairs, raw, strict=True)
    ]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def interop_bin() -> Path:
    return ensure_built()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path_factory.mktemp("interop-etcd"), members=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def launcher(interop_bin: Path, tmp_path: Path) -> Iterator[Launcher]:
    with Launcher(tmp_path / "programs", interop_bin) as lnch:
        yield lnch


@pytest.fixture(scope="module")
def registered_vectors(
    etcd: EtcdCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[dict[str, Any]]]:
    """Every golden vector registered by go-register at once; each entry gets
    the exact ``key``/``value`` bytes and the ``lease`` read back from etcd."""
    with Launcher(tmp_path_factory.mktemp("vectors"), ensure_built()) as lnch:
        procs = []
        for vec in VECTORS:
            procs.append(
                lnch.go_register(
                    etcd.endpoints,
                    vec["service"],
                    vec["addr"],
                    tags=vec.get("tags"),
                    weight=vec.get("weight"),
                    prefix=vec.get("prefix"),
                )
            )
        got = []
        for vec in VECTORS:
            kvs = _get(etcd, _key(vec))
            assert len(kvs) == 1, f"{vec['name']}: no key {_key(vec)!r} in etcd"
            got.append({**vec, **kvs[0]})
        yield got
        for proc in procs:
            assert proc.stop() == 0, proc.stderr_tail()
            assert proc.lines("deregistered")[0]["count"] == 1
        for vec in VECTORS:
            assert _get(etcd, _key(vec)) == [], f"{vec['name']}: key left after deregister"


# ---------------------------------------------------------------- build


def test_build_is_cached_and_versions_pinned(interop_bin: Path) -> None:
    for name in PROGRAMS:
        assert os.access(interop_bin / name, os.X_OK), name
    started = time.monotonic()
    assert ensure_built() == interop_bin
    assert time.monotonic() - started < 5, "a cached build must cost a few stat calls"
    assert interop_bin.parent == cache_dir()

    go_mod = (MODULE_DIR / "go.mod").read_text()
    for module, version in [
        ("github.com/cloudwego/kitex", KITEX_VERSION),
        ("github.com/kitex-contrib/registry-etcd", REGISTRY_ETCD_VERSION),
        ("github.com/cloudwego/hertz", HERTZ_VERSION),
        ("github.com/hertz-contrib/registry/etcd", HERTZ_REGISTRY_ETCD_VERSION),
    ]:
        assert re.search(rf"^\s*{re.escape(module)} {re.escape(version)}$", go_mod, re.M), module
        assert f"{module} {version}/go.mod h1:" in (MODULE_DIR / "go.sum").read_text()


def test_cache_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir().parent == tmp_path / "kitex-etcd-operator"
    assert cache_dir().name.startswith("interop-")


# ---------------------------------------------------------------- golden vectors


def test_go_registry_bytes_match_golden(registered_vectors: list[dict[str, Any]]) -> None:
    """The key and value registry-etcd writes, byte for byte, per vector."""
    records = []
    for vec in registered_vectors:
        key, value = vec["key"].decode(), vec["value"].decode()
        assert key == _key(vec)
        # The value is compact JSON with fields in the struct's order.
        decoded = json.loads(value)
        assert list(decoded) == ["network", "address", "weight", "tags"]
        assert decoded["network"] == "tcp"
        assert decoded["address"] == _go_address(vec["addr"])
        assert decoded["weight"] == vec.get("weight", 10)
        assert decoded["tags"] == vec.get("tags")
        assert vec["lease"] != 0, "every entry is written with a lease"
        records.append(
            {
                "name": vec["name"],
                "about": vec["about"],
                "input": {
                    k: vec[k] for k in ("service", "addr", "tags", "weight", "prefix") if k in vec
                },
                "key": key,
                "value": value,
                "value_hex": vec["value"].hex(),
            }
        )
    golden = {
        "producer": (
            f"kitex-contrib/registry-etcd {REGISTRY_ETCD_VERSION} Register with Kitex"
            f" {KITEX_VERSION}, via tests/interop/cmd/go-register"
        ),
        "note": (
            "key and value are the exact bytes in etcd (UTF-8); value_hex repeats the value's"
            " bytes. Every key is written with a lease (default TTL 60 s)."
            " Regenerate: KITEX_INTEROP_UPDATE_GOLDEN=1 pytest tests/interop -k golden"
        ),
        "vectors": records,
    }
    text = json.dumps(golden, indent=2) + "\n"
    if os.environ.get("KITEX_INTEROP_UPDATE_GOLDEN") == "1" or not GOLDEN.exists():
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert json.loads(GOLDEN.read_text())["vectors"] == records, (
        f"registry-etcd's bytes differ from {GOLDEN}; if the version changed on purpose,"
        " regenerate with KITEX_INTEROP_UPDATE_GOLDEN=1"
    )


def test_resolve_returns_what_go_registered(
    registered_vectors: list[dict[str, Any]], launcher: Launcher, etcd: EtcdCluster
) -> None:
    """registry-etcd's resolver reads every vector back; weight <= 0 becomes 10."""
    by_lookup: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for vec in registered_vectors:
        by_lookup.setdefault((vec["service"], vec.get("prefix")), []).append(vec)
    for (service, prefix), vecs in by_lookup.items():
        res = launcher.resolve(etcd.endpoints, service, prefix=prefix)
        assert res.ok, res.error
        assert res.cacheable is True
        assert res.cache_key == service
        expected = {
            _go_address(v["addr"]): Instance(
                network="tcp", address=_go_address(v["addr"]),
                weight=v.get("weight", 10) or 10, tags=go_tags(v.get("tags"))
            )
            for v in vecs
        }
        assert res.by_address() == expected
        assert len(res.instances) == len(vecs)

    # The custom prefix is invisible to a resolver with the default prefix, and
    # the trailing slash keeps "echo" from matching "echo6".
    echo = launcher.resolve(etcd.endpoints, "echo")
    assert "10.0.0.5:8888" not in echo.by_address()
    assert "fd00::1:8888" not in echo.by_address()
    # No instance: registry-etcd's resolver answers an error, not an empty list.
    missing = launcher.resolve(etcd.endpoints, "no-such-service")
    assert not missing.ok
    assert missing.error == "no instance remains for no-such-service"
    # The default weight option applies to weight 0 only.
    heavy = launcher.resolve(etcd.endpoints, "echo", default_weight=42)
    assert heavy.by_address()["10.0.0.4:8888"].weight == 42
    assert heavy.by_address()["10.0.0.3:8888"].weight == 7


def test_go_register_count_uses_one_lease_per_instance(
    launcher: Launcher, etcd: EtcdCluster
) -> None:
    proc = launcher.go_register(etcd.endpoints, "bench", "10.1.0.1:9000", count=5)
    assert proc.lines("ready")[0]["count"] == 5
    kvs = _get(etcd, f"{DEFAULT_PREFIX}/bench/", prefix=True)
    assert sorted(kv["key"].decode() for kv in kvs) == [
        f"{DEFAULT_PREFIX}/bench/10.1.0.1:{9000 + i}" for i in range(5)
    ]
    assert len({kv["lease"] for kv in kvs}) == 5
    assert proc.stop() == 0
    assert _get(etcd, f"{DEFAULT_PREFIX}/bench/", prefix=True) == []


def test_go_register_killed_leaves_key_until_lease_expires(
    launcher: Launcher, etcd: EtcdCluster
) -> None:
    key = f"{DEFAULT_PREFIX}/crash/10.2.0.1:9000"
    proc = launcher.go_register(etcd.endpoints, "crash", "10.2.0.1:9000", ttl=2)
    lease = _get(etcd, key)[0]["lease"]
    ttl = json.loads(etcd.etcdctl("lease", "timetolive", format(lease, "x"), "-w", "json"))
    assert ttl["granted-ttl"] == 2
    proc.kill()  # no deregistration: only the lease removes the key
    assert _get(etcd, key) != []
    wait_until(lambda: _get(etcd, key) == [], timeout=10, what="the lease to expire")


# ---------------------------------------------------------------- Hertz


def test_hertz_resolve_reads_hertz_prefix(launcher: Launcher, etcd: EtcdCluster) -> None:
    values = {
        "127.0.0.1:8080": '{"network":"tcp","address":"127.0.0.1:8080","weight":10,"tags":null}',
        "[fd00::2]:8080": (
            '{"network":"tcp","address":"[fd00::2]:8080","weight":0,"tags":{"env":"prod"}}'
        ),
    }
    for addr, value in values.items():
        etcd.etcdctl("put", f"hertz/registry-etcd/hz-svc/{addr}", value)
    # A Kitex key of the same service is not Hertz's.
    etcd.etcdctl("put", f"{DEFAULT_PREFIX}/hz-svc/127.0.0.9:1", values["127.0.0.1:8080"])
    try:
        res = launcher.hertz_resolve(etcd.endpoints, "hz-svc")
        assert res.ok, res.error
        assert res.by_address() == {
            "127.0.0.1:8080": Instance(address="127.0.0.1:8080", weight=10, tags=None),
            "[fd00::2]:8080": Instance(address="[fd00::2]:8080", weight=10,
                                       tags=(("env", "prod"),)),
        }
        # Hertz answers an empty list, not an error, when nothing is registered.
        empty = launcher.hertz_resolve(etcd.endpoints, "hz-none")
        assert empty.ok and empty.instances == []
    finally:
        etcd.etcdctl("del", "--prefix", "hertz/registry-etcd/hz-svc/")
        etcd.etcdctl("del", "--prefix", f"{DEFAULT_PREFIX}/hz-svc/")


# ---------------------------------------------------------------- real RPC


def test_self_registered_servers_are_all_called(launcher: Launcher, etcd: EtcdCluster) -> None:
    """Two Kitex servers register themselves; a Kitex client resolving through
    registry-etcd reaches both; SIGTERM deregisters and exits 0."""
    servers = [
        launcher.echo_server(
            _free_addr(f"127.0.0.{n}"), f"s{n}", register_etcd=etcd.endpoints, service="rpc"
        )
        for n in (11, 12)
    ]
    # A Kitex server writes the same bytes as go-register: weight 10, tags null.
    for srv in servers:
        kv = _get(etcd, f"{DEFAULT_PREFIX}/rpc/{srv.addr}")
        assert kv, f"{srv.server_id} not registered"
        assert kv[0]["value"].decode() == (
            f'{{"network":"tcp","address":"{srv.addr}","weight":10,"tags":null}}'
        )

    calls, summary = launcher.run_echo_client(
        etcd.endpoints, "rpc", calls=10, interval=0.02, lb="roundrobin"
    )
    assert summary.errors == 0, [c.error for c in calls if not c.ok]
    assert summary.by_server == {"s11": 5, "s12": 5}
    assert {c.addr for c in calls} == {s.addr for s in servers}
    assert all(c.server == f"s{c.addr.split(':')[0].rsplit('.', 1)[1]}" for c in calls)

    # Kitex's default balancer (weighted random) reaches both as well.
    _, summary = launcher.run_echo_client(etcd.endpoints, "rpc", calls=40, interval=0.01)
    assert summary.errors == 0 and set(summary.by_server) == {"s11", "s12"}

    for srv in servers:
        assert srv.stop() == 0, srv.stderr_tail()
        assert srv.lines("deregistered")[0]["ok"] is True
        assert srv.lines("stopped")
    assert _get(etcd, f"{DEFAULT_PREFIX}/rpc/", prefix=True) == []


def test_client_stops_calling_a_removed_instance(launcher: Launcher, etcd: EtcdCluster) -> None:
    """Plain servers registered by writing their keys (as the operator does,
    in the golden format); after one key is deleted the Kitex client stops
    calling it within its 5 s refresh, and keeps calling the other."""
    servers: list[EchoServer] = [
        launcher.echo_server(_free_addr(f"127.0.0.{n}"), f"p{n}") for n in (21, 22)
    ]
    for srv in servers:
        etcd.etcdctl(
            "put",
            f"{DEFAULT_PREFIX}/removal/{srv.addr}",
            f'{{"network":"tcp","address":"{srv.addr}","weight":10,"tags":null}}',
        )
    client = launcher.echo_client(etcd.endpoints, "removal", interval=0.05, lb="roundrobin")
    wait_until(
        lambda: {c.server for c in client.calls() if c.ok} == {"p21", "p22"},
        timeout=15,
        what="calls to reach both servers",
    )
    removed_at = time.time()
    etcd.etcdctl("del", f"{DEFAULT_PREFIX}/removal/{servers[1].addr}")
    wait_until(
        lambda: any(c.time > removed_at + REFRESH + 2.5 for c in client.calls()),
        timeout=REFRESH + 15,
        what="the client to run past one refresh after the removal",
    )
    summary = client.finish()
    calls = client.calls()
    assert summary.errors == 0, [c.error for c in calls if not c.ok]
    last_to_removed = max(c.time for c in calls if c.server == "p22")
    lag = last_to_removed - removed_at
    print(f"last call to the removed instance {lag:.2f} s after its key was deleted")
    assert lag <= REFRESH + 1.5
    assert any(c.server == "p21" and c.time > last_to_removed for c in calls)


def test_custom_prefix_reaches_through_server_and_client(
    launcher: Launcher, etcd: EtcdCluster
) -> None:
    """--prefix reaches registry-etcd's WithEtcdServicePrefix in both the
    server's registry and the client's resolver."""
    prefix = "custom/kitex"
    srv = launcher.echo_server(
        _free_addr("127.0.0.31"),
        "c31",
        register_etcd=etcd.endpoints,
        service="prefixed",
        prefix=prefix,
        tags={"zone": "z1"},
        weight=5,
    )
    kv = _get(etcd, f"{prefix}/prefixed/{srv.addr}")
    assert kv and kv[0]["value"].decode() == (
        f'{{"network":"tcp","address":"{srv.addr}","weight":5,"tags":{{"zone":"z1"}}}}'
    )
    _, summary = launcher.run_echo_client(
        etcd.endpoints, "prefixed", prefix=prefix, calls=3, interval=0.01
    )
    assert summary.by_server == {"c31": 3}
    calls, summary = launcher.run_echo_client(etcd.endpoints, "prefixed", calls=1)
    assert summary.errors == 1
    assert "no instance remains for prefixed" in (calls[0].error or "")
