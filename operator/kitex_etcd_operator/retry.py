"""The retry policy of registry-etcd's ``retry`` package, minus its giving up.

The Go registry checks its key every ``observeDelay``, retries after
``retryDelay`` on failure and, after ``maxAttemptTimes`` consecutive failures,
stops for good (cloudwego/kitex#1417). The operator keeps the same rhythm but
never stops: past the limit it reports the service Degraded and goes on
trying every ``observeDelay``. Pure, so the schedule is tested without etcd.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_ATTEMPT_TIMES = 5


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """``retry.Config`` of registry-etcd, with its defaults (5, 30 s, 10 s)."""

    max_attempt_times: int = 5  # 0 = unlimited
    observe_delay: float = 30.0
    retry_delay: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempt_times < 0:
            raise ValueError("retry.maxAttemptTimes must not be negative")
        if self.observe_delay <= 0:
            raise ValueError("retry.observeDelay must be positive")
        if self.retry_delay <= 0:
            raise ValueError("retry.retryDelay must be positive")


@dataclass(frozen=True, slots=True)
class RetryState:
    """Where one service stands: consecutive failures, the last error and its
    reason (a CamelCase word for conditions, e.g. ``EtcdOutOfSpace``)."""

    failures: int = 0
    last_error: str | None = None
    reason: str | None = None

    def succeeded(self) -> RetryState:
        """Any success resets the count, as in the Go registry.

        One shared clean state: a new one each sync outlived the collector's
        young generations for nothing (see alarms.py).
        """
        return CLEAN

    def failed(self, error: str, reason: str | None = None) -> RetryState:
        return RetryState(failures=self.failures + 1, last_error=error, reason=reason)

    def degraded(self, config: RetryConfig) -> bool:
        """Past ``maxAttemptTimes`` the Go registry would have given up: say so loudly.

        With ``maxAttemptTimes`` 0 (unlimited) the Go registry never gives up,
        yet a service whose writes keep failing is still not healthy; it is
        reported Degraded after the default five failures.
        """
        limit = config.max_attempt_times or DEFAULT_MAX_ATTEMPT_TIMES
        return self.failures >= limit

    def next_delay(self, config: RetryConfig) -> float:
        """Seconds until the next check: ``retryDelay`` while retrying, else ``observeDelay``.

        Once degraded the operator falls back to ``observeDelay``, where the Go
        registry would have stopped.
        """
        if self.failures == 0:
            return config.observe_delay
        if config.max_attempt_times and self.failures >= config.max_attempt_times:
            return config.observe_delay
        return config.retry_delay


CLEAN = RetryState()
"""No failure: every service's state after a success."""
