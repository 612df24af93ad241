"""The injectable clock: every store method and check reads time from one of these.

Spec: authward spec/stores.md §0.4 (injectable ``now`` in every store method and the sweeper).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """A source of the current time as Unix seconds (float, microsecond precision)."""

    def now(self) -> float:
        """Return the current time as Unix seconds."""
        ...


@dataclass(frozen=True)
class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()


@dataclass
class FrozenClock:
    """A clock that only moves when told to; for tests and replays."""

    at: float

    def now(self) -> float:
        """Return the frozen instant."""
        return self.at

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.at += seconds
