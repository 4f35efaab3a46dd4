"""A change's share is split into phases that add up to it, whenever it arrived."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from kitex_etcd_operator.controller import _observe_change

PHASES = ("queued", "gathered", "view", "written")


def _sums() -> dict[str, float]:
    found = {phase: REGISTRY.get_sample_value("kitex_etcd_operator_change_phase_seconds_sum",
                                              {"phase": phase}) or 0.0 for phase in PHASES}
    found["share"] = REGISTRY.get_sample_value(
        "kitex_etcd_operator_change_to_etcd_seconds_sum") or 0.0
    return found


@pytest.mark.parametrize(("changed", "expected"), [
    # Before the cycle began: waited for the worker, then every phase in full.
    (10.0, {"queued": 1.0, "gathered": 0.02, "view": 0.01, "written": 0.005}),
    # During the debounce: nothing queued, the rest of the debounce gathered.
    (11.01, {"queued": 0.0, "gathered": 0.01, "view": 0.01, "written": 0.005}),
    # While the watches caught up: only what was left of that wait, then the write.
    (11.025, {"queued": 0.0, "gathered": 0.0, "view": 0.005, "written": 0.005}),
])
def test_phases_add_up_to_the_share(changed: float, expected: dict[str, float]) -> None:
    woke, gathered, viewed, written = 11.0, 11.02, 11.03, 11.035
    before = _sums()
    _observe_change(changed, woke, gathered, viewed, written)
    after = _sums()
    got = {name: after[name] - before[name] for name in after}
    assert got == pytest.approx({**expected, "share": written - changed}, abs=1e-9)
    assert sum(got[phase] for phase in PHASES) == pytest.approx(got["share"], abs=1e-9)
