"""The operator's own flags have the same bounds as a KitexService's fields: a
default that a spec could not say is as harmful (observeDelay 1ns: a full etcd
read every few milliseconds per service)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kitex_etcd_operator.runner import run


@pytest.mark.parametrize(("flag", "value"), [
    ("--observe-delay", "1ns"), ("--observe-delay", "2h"),
    ("--retry-delay", "10ms"), ("--retry-delay", "1h1s"),
    ("--etcd-dial-timeout", "1ms"), ("--etcd-dial-timeout", "100000h"),
    ("--lease-ttl", "4"), ("--lease-ttl", "86401"),
])
def test_out_of_bounds_flags_are_refused(flag: str, value: str) -> None:
    result = CliRunner().invoke(run, [flag, value])
    assert result.exit_code == 2, result.output
    assert flag in result.output
