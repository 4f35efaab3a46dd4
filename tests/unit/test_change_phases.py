"""A change's share is split into phases that add up to it, whenever it arrived, and
the operator's own part is the share less what the write waited for etcd."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from kitex_etcd_operator.controller import _observe_change

PHASES = ("queued", "gathered", "view", "written", "etcd")


def _sums() -> dict[str, float]:
    found = {phase: REGISTRY.get_sample_value("kitex_etcd_operator_change_phase_seconds_sum",
                                              {"phase": phase}) or 0.0 for phase in PHASES}
    for name, metric in (("share", "change_to_etcd_seconds"), ("own", "change_own_seconds")):
        found[name] = REGISTRY.get_sample_value(f"kitex_etcd_operator_{metric}_sum") or 0.0
    return found


@pytest.mark.parametrize(("changed", "expected"), [
    # Before the cycle began: waited for the worker, then every phase in full.
    (10.0, {"queued": 1.0, "gathered": 0.02, "view": 0.01, "written": 0.002, "etcd": 0.003}),
    # During the debounce: nothing queued, the rest of the debounce gathered.
    (11.01, {"queued": 0.0, "gathered": 0.01, "view": 0.01, "written": 0.002, "etcd": 0.003}),
    # While the watches caught up: only what was left of that wait, then the write.
    (11.025, {"queued": 0.0, "gathered": 0.0, "view": 0.005, "written": 0.002, "etcd": 0.003}),
])
def test_phases_add_up_to_the_share(changed: float, expected: dict[str, float]) -> None:
    woke, gathered, viewed, written = 11.0, 11.02, 11.03, 11.035
    before = _sums()
    _observe_change(changed, woke, gathered, viewed, written, etcd=0.003)
    after = _sums()
    got = {name: after[name] - before[name] for name in after}
    share = written - changed
    assert got == pytest.approx({**expected, "share": share, "own": share - 0.003}, abs=1e-9)
    assert sum(got[phase] for phase in PHASES) == pytest.approx(share, abs=1e-9)


def test_etcd_time_never_exceeds_the_write() -> None:
    """A wait counted beyond the write (a clock step, a stray accumulation) is capped."""
    before = _sums()
    _observe_change(10.0, 10.0, 10.0, 10.0, 10.004, etcd=1.0)
    got = {name: value - before[name] for name, value in _sums().items()}
    assert got["etcd"] == pytest.approx(0.004) and got["own"] == pytest.approx(0.0, abs=1e-9)
