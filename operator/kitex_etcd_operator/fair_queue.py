"""A queue that takes from each namespace in turn.

The status writer posts Kubernetes Events one at a time, between its status
patches. With one first-in-first-out queue, a tenant whose 10,000 malformed
pods each earned an Event put every other tenant's Events (and, drained all
at once, every status patch) behind its own for minutes. Taken in turn, one
namespace's backlog costs another namespace at most one place per round.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class FairQueue(Generic[K, T]):
    """Items by key (a namespace); ``take`` goes round the keys, oldest item of each."""

    def __init__(self) -> None:
        self._queues: dict[K, deque[T]] = {}  # in the order the keys came; a key's turn
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def put(self, key: K, item: T) -> None:
        self._queues.setdefault(key, deque()).append(item)
        self._len += 1

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` items, one per key a turn; a key served goes to the back."""
        taken: list[T] = []
        while self._queues and len(taken) < limit:
            key = next(iter(self._queues))
            queue = self._queues.pop(key)
            taken.append(queue.popleft())
            if queue:
                self._queues[key] = queue  # to the back of the round
        self._len -= len(taken)
        return taken
