"""What one binding's last cycle came to, as the status writer needs it.

A plain value the worker hands over after every cycle: the status writer
renders conditions and Events from it alone, so it never reaches into a
worker (and ``status`` does not import ``controller``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .retry import RetryConfig, RetryState


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One binding after a cycle: its retry state, what stayed in the way, who owns it."""

    retry: RetryState
    retry_config: RetryConfig
    conflicts: tuple[str, ...] = ()  # wanted keys held by another writer
    withheld_deletes: int = 0  # deletions --max-deletes held back this cycle
    max_deletes: int | None = None
    owner: str | None = None  # the owner group of the name, None when unclaimed
    refusal: str | None = None  # why the range may not be written (it nests with another)
    etcd: str = ""  # the etcd the binding writes to, as messages name it

    @property
    def degraded(self) -> bool:
        return self.retry.degraded(self.retry_config)
