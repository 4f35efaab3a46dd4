"""The registry-etcd retry rhythm, and the operator's refusal to give up."""

from __future__ import annotations

import pytest

from kitex_etcd_operator.retry import RetryConfig, RetryState


def test_defaults_are_the_go_defaults() -> None:
    assert RetryConfig() == RetryConfig(max_attempt_times=5, observe_delay=30, retry_delay=10)


def test_schedule_and_degraded() -> None:
    cfg = RetryConfig(max_attempt_times=3, observe_delay=30, retry_delay=10)
    state = RetryState()
    assert state.next_delay(cfg) == 30
    for _ in range(2):
        state = state.failed("boom")
        assert state.next_delay(cfg) == 10 and not state.degraded(cfg)
    state = state.failed("boom")
    assert state.degraded(cfg) and state.last_error == "boom"
    assert state.next_delay(cfg) == 30  # keeps trying, where Go would stop
    assert state.succeeded() == RetryState()


def test_unlimited_attempts_keep_retry_delay() -> None:
    cfg = RetryConfig(max_attempt_times=0)
    state = RetryState()
    for _ in range(20):
        state = state.failed("x")
    assert state.next_delay(cfg) == cfg.retry_delay


@pytest.mark.parametrize("kwargs", [{"max_attempt_times": -1}, {"observe_delay": 0},
                                    {"retry_delay": -1}])
def test_invalid_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryConfig(**kwargs)  # type: ignore[arg-type]
