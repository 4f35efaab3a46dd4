"""The Go resolver's emulation (``kubectl kitex resolve``), without etcd.

The interop tests compare it with the real resolver; these pin its rules.
"""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from click.testing import CliRunner

from kitex_etcd_operator import commands
from kitex_etcd_operator.etcd import EtcdConfig, KeyValue
from kitex_etcd_operator.model import Instance
from kitex_etcd_operator.resolve import NoInstance, ResolvedEntry, go_resolve

P = "kitex/registry-etcd/echo/"


def test_rows_become_instances_with_their_key_and_lease() -> None:
    result = go_resolve("echo", [
        (P + "10.0.0.1:1", b'{"network":"tcp","address":"10.0.0.1:1","weight":0,"tags":null}', 5),
        (P + "10.0.0.2:1", b'{"network":"tcp","address":"10.0.0.2:1","weight":3,'
                           b'"tags":{"z":"1","a":"2"}}', 6),
    ])
    assert result.entries == [
        ResolvedEntry(P + "10.0.0.1:1", 5, Instance(address="10.0.0.1:1", weight=10)),
        ResolvedEntry(P + "10.0.0.2:1", 6, Instance(address="10.0.0.2:1", weight=3,
                                                    tags=(("a", "2"), ("z", "1")))),
    ]
    assert result.instances == [e.instance for e in result.entries]
    assert result.skipped == []


def test_null_and_empty_tags_are_kept_as_go_decodes_them() -> None:
    result = go_resolve("echo", [
        (P + "a", b'{"address":"a:1","tags":null}', 1),
        (P + "b", b'{"address":"b:1","tags":{}}', 1),
        (P + "c", b'{"address":"c:1"}', 1),
    ])
    assert [i.tags for i in result.instances] == [None, (), None]
    assert [i.tag_map() for i in result.instances] == [None, {}, None]


def test_undecodable_values_are_skipped_and_nothing_left_is_an_error() -> None:
    result = go_resolve("echo", [(P + "bad", b"not json", 1), (P + "list", b"[]", 1),
                                 (P + "tags", b'{"address":"t:1","tags":[1]}', 1),
                                 (P + "huge", b'{"address":"h:1","weight":1e400}', 1),
                                 (P + "deep", b'{"tags":' + b"[" * 5000 + b"]" * 5000
                                  + b"}", 1),
                                 (P + "ok", b'{"address":"ok:1"}', 1)])
    assert [key for key, _ in result.skipped] == [P + "bad", P + "list", P + "tags",
                                                   P + "huge", P + "deep"]
    assert all(why.startswith("fail to unmarshal: ") for _, why in result.skipped)
    assert [i.address for i in result.instances] == ["ok:1"]
    with pytest.raises(NoInstance, match="no instance remains for echo"):
        go_resolve("echo", [(P + "bad", b"{", 1)])


def test_default_weight_applies_to_weights_at_or_below_zero() -> None:
    result = go_resolve("echo", [(P + "a", b'{"address":"a:1","weight":-1}', 1),
                                 (P + "b", b'{"address":"b:1","weight":7}', 1)],
                        default_weight=42)
    assert [i.weight for i in result.instances] == [42, 7]


class _FakeClient:
    """``EtcdClient`` for the ``resolve`` command, over fixed rows."""

    rows: ClassVar[list[KeyValue]] = []

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        return [kv for kv in self.rows if kv.key.startswith(prefix)], 1

    async def close(self) -> None:
        pass


def test_resolve_command_prints_tags_as_go_holds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--json`` prints ``null`` for a nil map and ``{}`` for an empty one; the table ``-``."""
    values = [b'{"network":"tcp","address":"10.0.0.1:1","weight":10,"tags":null}',
              b'{"network":"tcp","address":"10.0.0.2:1","weight":0,"tags":{}}',
              b'{"network":"tcp","address":"10.0.0.3:1","weight":7,"tags":{"a":"1","b":"2"}}',
              b"oops"]
    _FakeClient.rows = [KeyValue(f"{P}{n}", v, 0x10 + n, 1, 1) for n, v in enumerate(values)]
    monkeypatch.setattr(commands, "EtcdClient", _FakeClient)
    out = CliRunner().invoke(commands.resolve, ["echo", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == [
        {"network": "tcp", "address": "10.0.0.1:1", "weight": 10, "tags": None,
         "key": P + "0", "lease": "10"},
        {"network": "tcp", "address": "10.0.0.2:1", "weight": 10, "tags": {},
         "key": P + "1", "lease": "11"},
        {"network": "tcp", "address": "10.0.0.3:1", "weight": 7, "tags": {"a": "1", "b": "2"},
         "key": P + "2", "lease": "12"}]
    assert f"skipped {P}3: fail to unmarshal: " in out.stderr
    table = CliRunner().invoke(commands.resolve, ["echo"]).stdout.splitlines()
    assert table[1:] == [f"{'10.0.0.1:1':<28} tcp          10  10                -",
                         f"{'10.0.0.2:1':<28} tcp          10  11                -",
                         f"{'10.0.0.3:1':<28} tcp           7  12                "
                         '{"a": "1", "b": "2"}']
