"""The wire format, byte for byte, as docs/wire-format.md and Go's encoding/json define it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitex_etcd_operator.model import (
    MAX_VALUE_BYTES,
    Framework,
    Instance,
    InvalidInstance,
    decode_value,
    go_string,
    instance_key,
    join_host_port,
    service_range,
    validate_prefix,
    validate_service_name,
)
from kitex_etcd_operator.plan import Observed, make_plan


def test_ipv4_without_tags_is_go_bytes() -> None:
    value = Instance.make("10.0.0.7", 8888).encode()
    assert value == b'{"network":"tcp","address":"10.0.0.7:8888","weight":10,"tags":null}'


def test_ipv6_is_bracketed_and_compressed() -> None:
    inst = Instance.make("fd00:0:0::1", 8888)
    assert inst.address == "[fd00::1]:8888"
    assert inst.encode() == b'{"network":"tcp","address":"[fd00::1]:8888","weight":10,"tags":null}'


def test_tags_are_sorted_like_go_maps() -> None:
    value = Instance.make("10.0.0.7", 1, weight=3, tags={"zone": "b", "env": "prod"}).encode()
    assert value == (b'{"network":"tcp","address":"10.0.0.7:1","weight":3,'
                     b'"tags":{"env":"prod","zone":"b"}}')


def test_go_escaping_of_html_and_controls() -> None:
    assert go_string('<a&b>"\\\n\t\x08\x0c\u2028é') == (
        '"\\u003ca\\u0026b\\u003e\\"\\\\\\n\\t\\u0008\\u000c\\u2028é"')


def test_key_layout() -> None:
    assert instance_key("kitex/registry-etcd", "echo", "10.0.0.7:8888") == \
        "kitex/registry-etcd/echo/10.0.0.7:8888"
    assert service_range("kitex/registry-etcd", "echo") == "kitex/registry-etcd/echo/"


@pytest.mark.parametrize("name", ["", "a/b", " echo", "echo\n", "x" * 254])
def test_bad_kitex_service_names(name: str) -> None:
    with pytest.raises(InvalidInstance) as err:
        validate_service_name(name)
    assert err.value.field == "serviceName"


def test_slash_error_matches_go_registry() -> None:
    with pytest.raises(InvalidInstance, match="should not include character '/'"):
        validate_service_name("a/b")


def test_hertz_allows_slash() -> None:
    assert validate_service_name("a/b", Framework.HERTZ) == "a/b"


@pytest.mark.parametrize("prefix", ["", "/kitex", "kitex/"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidInstance):
        validate_prefix(prefix)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_bad_ports(port: int) -> None:
    with pytest.raises(InvalidInstance):
        join_host_port("10.0.0.1", port)


@pytest.mark.parametrize("host", ["fe80::1%eth0", "fe80::1%\x00\n..x\u202e"])
def test_ipv6_zones_refused(host: str) -> None:
    """ipaddress takes any text after the %: it would land in the etcd key."""
    with pytest.raises(InvalidInstance) as err:
        Instance.make(host, 1)
    assert err.value.field == "host"


def test_values_above_the_size_bound_refused_whatever_the_source() -> None:
    # Go escapes `<` as \u003c: 700 characters make 4200 bytes.
    with pytest.raises(InvalidInstance) as err:
        Instance.make("10.0.0.1", 1, tags={"a": "<" * 700})
    assert err.value.field == "tags" and str(MAX_VALUE_BYTES) in err.value.message
    assert len(Instance.make("10.0.0.1", 1, tags={"a": "<" * 600}).encode()) <= MAX_VALUE_BYTES


def test_negative_weight_refused() -> None:
    with pytest.raises(InvalidInstance) as err:
        Instance.make("10.0.0.1", 1, weight=-1)
    assert err.value.field == "weight"


@given(tags=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=8),
       weight=st.integers(min_value=0, max_value=2**31 - 1))
def test_round_trip_through_json(tags: dict[str, str], weight: int) -> None:
    inst = Instance.make("10.1.2.3", 9000, weight=weight, tags=tags)
    raw = inst.encode()
    assert decode_value(raw) == inst
    parsed = json.loads(raw)
    assert list(parsed) == ["network", "address", "weight", "tags"]
    assert parsed["tags"] == (tags or None)


def test_decoder_ignores_unknown_fields_like_go() -> None:
    raw = b'{"network":"tcp","address":"1.2.3.4:5","weight":0,"tags":{},"extra":1}'
    assert decode_value(raw) == Instance(address="1.2.3.4:5", weight=0, tags=())


def test_the_operator_writes_null_for_no_tags() -> None:
    """``make`` has no empty map: no tags, ``None`` or ``{}``, is always ``null``."""
    for tags in (None, {}):
        inst = Instance.make("10.0.0.1", 1, tags=tags)
        assert inst.tags is None and inst.tag_map() is None
        assert inst.encode().endswith(b'"tags":null}')


def test_nil_and_empty_tags_stay_apart_as_go_keeps_them() -> None:
    """A Go server given an empty map writes ``{}``: it decodes to ``()`` and back."""
    null = b'{"network":"tcp","address":"10.0.0.1:1","weight":10,"tags":null}'
    empty = b'{"network":"tcp","address":"10.0.0.1:1","weight":10,"tags":{}}'
    assert decode_value(null).tags is None and decode_value(empty).tags == ()
    assert decode_value(empty).tag_map() == {}
    assert (decode_value(null).encode(), decode_value(empty).encode()) == (null, empty)
    assert not decode_value(null).tags and not decode_value(empty).tags  # both: no tags
    assert decode_value(empty) != Instance.make("10.0.0.1", 1)


def test_a_go_written_empty_map_is_rewritten_as_before() -> None:
    """The plan compares bytes: the operator's ``null`` differs from a Go ``{}``.

    So a ``{}`` value on the operator's own lease is put again with ``null``
    (as before the one instance type), and a ``null`` one is left alone.
    """
    key, ours = "kitex/registry-etcd/s/10.0.0.1:1", 7
    want = {key: Instance.make("10.0.0.1", 1).encode()}
    empty = b'{"network":"tcp","address":"10.0.0.1:1","weight":10,"tags":{}}'
    plan = make_plan(want, {key: Observed(empty, ours)}, lease=ours, owned_leases={ours})
    assert [(p.key, p.value) for p in plan.puts] == [(key, want[key])]
    plan = make_plan(want, {key: Observed(want[key], ours)}, lease=ours, owned_leases={ours})
    assert not plan and plan.unchanged == 1



_OCTETS = st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249",
                           "250", "255", "256", "300", "", "a", " 1", "\u0661"])


@given(st.lists(_OCTETS, min_size=3, max_size=5))
def test_the_ipv4_fast_path_takes_exactly_what_ipaddress_writes_back(octets: list[str]) -> None:
    """Canonical IPv4 skips ``ipaddress``; everything else still goes through it."""
    import ipaddress

    from kitex_etcd_operator.model import _CANONICAL_IPV4

    host = ".".join(octets)
    try:
        canonical = ipaddress.ip_address(host).compressed == host
    except ValueError:
        canonical = False
    assert bool(_CANONICAL_IPV4.fullmatch(host)) == canonical


def test_an_instance_encodes_once_and_compares_without_it() -> None:
    instance = Instance.make("10.0.0.1", 8888, tags={"a": "b"})
    first = instance.encode()
    assert instance.encode() is first
    assert instance == Instance.make("10.0.0.1", 8888, tags={"a": "b"})
    assert hash(instance) == hash(Instance.make("10.0.0.1", 8888, tags={"a": "b"}))
