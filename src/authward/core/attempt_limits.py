"""Fixed-window attempt limits (brute-force budgets) kept in the shared replay table.

Spec: RFC 6749 §10.10 (credential guessing), RFC 6819 §5.1.4.2.3 (lock accounts after failed
attempts), RFC 8628 §5.1 (user-code brute forcing); authward spec/stores.md §3.6 (replay keys:
namespaced, digested, fixed length).

A budget is counted per identifier (a subject, a normalised username) and per fixed window of
``window_seconds`` (``window = floor(now / window_seconds)``), under one replay namespace. The
counters are replay keys, never process memory, so every node sharing the database enforces the
same budget. Three kinds of keys exist in each window:

* ``F1..F{max_failures}``: :meth:`AttemptWindow.fail` records the first free one. The call that
  records the last one also records the lock marker ``L``; when none is free the answer is
  :class:`Locked`;
* ``L``, the lock marker: :meth:`AttemptWindow.locked` only reads it (``is_recorded``), so
  asking "locked?" costs one indexed read and claims nothing;
* ``S1..S{max_steps}``: :meth:`AttemptWindow.step` checks ``L``, then records the first free
  ``S`` key before the work it guards (showing a known device code, checking a password); none
  free is :class:`Locked`.

* :meth:`AttemptWindow.failures` counts the ``F`` keys recorded so far without claiming any
  (a binary search: ``fail`` claims the first free key, so the recorded keys are always a
  prefix ``F1..Fk``), for a :class:`GrowingDelay` before the next guarded check.

Why steps exist: the replay store has no delete, and the lock lands only after a failure is
recorded, so concurrent requests could all pass a read-only check before it lands. A step is
claimed atomically before the guarded work, so ``max_steps`` caps that work per identifier and
window whatever the outcomes and however many requests arrive at once. The price: the k-th
step of a window scans k keys, and a step is spent whatever the outcome (a success does not
refund one, and does not reset the failures either). Choose ``max_steps`` well above what a
legitimate user needs in one window.

The raw value recorded is ``digest(identifier) + ":" + window + ":" + slot``, and the store
digests it again into the fixed-length key: no identifier lands in the table in clear and an
over-long identifier cannot make the key too long. Keys expire when their window ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from authward.stores.digest import digest
from authward.stores.replay import NAMESPACE_PATTERN, Recorded, ReplayStore

__all__ = [
    "AttemptLimit",
    "AttemptWindow",
    "AttemptsLeft",
    "GrowingDelay",
    "Locked",
    "Proceed",
    "identifier_digest",
]

#: The slot of the lock marker (module docstring).
_LOCK: Final = "L"
#: Length of :func:`identifier_digest` (96 bits of SHA-256, base64url).
_SHORT_DIGEST_CHARS: Final = 16


@dataclass(frozen=True, slots=True)
class AttemptsLeft:
    """The failure was counted; ``left`` further failures are allowed in this window."""

    left: int


@dataclass(frozen=True, slots=True)
class Proceed:
    """The step was counted; go ahead with the guarded work."""


@dataclass(frozen=True, slots=True)
class Locked:
    """The identifier's budget for this window is spent; retry after ``retry_after`` s."""

    retry_after: int


@dataclass(frozen=True, slots=True)
class GrowingDelay:
    """How long to hold a guarded check after ``failures`` failures in the window: nothing for
    the first ``free_failures``, then ``first_seconds`` doubling with each further failure up
    to ``max_seconds``. ``first_seconds = 0`` turns the delay off.

    The delay slows a guesser who tries one answer after another to a handful of tries a
    minute long before the hard lock, while a person who mistyped twice waits nothing. It is
    applied before the check and whatever its outcome, so an early answer tells nothing.
    Raises ``ValueError`` for a negative count or delay, or ``max_seconds < first_seconds``.
    """

    free_failures: int = 2
    first_seconds: float = 1.0
    max_seconds: float = 8.0

    def __post_init__(self) -> None:
        if type(self.free_failures) is not int or self.free_failures < 0:
            raise ValueError(
                f"free_failures must be a non-negative integer, got {self.free_failures!r}"
            )
        for name in ("first_seconds", "max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 <= value < float("inf")
            ):
                raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")
        if self.max_seconds < self.first_seconds:
            raise ValueError("max_seconds must be at least first_seconds")

    def seconds(self, failures: int) -> float:
        """The delay before the next check once ``failures`` failures are recorded."""
        extra = failures - self.free_failures
        if extra <= 0 or self.first_seconds == 0:
            return 0.0
        # 2**60 already exceeds any finite cap; the exponent stays small for any count.
        return float(min(self.max_seconds, self.first_seconds * 2 ** min(extra - 1, 60)))


FailOutcome = AttemptsLeft | Locked
StepOutcome = Proceed | Locked


@dataclass(frozen=True, slots=True)
class AttemptLimit:
    """At most ``max_failures`` failures and ``max_steps`` steps per identifier and window of
    ``window_seconds``, counted under replay ``namespace`` (``[a-z_]{1,32}``).

    Raises ``ValueError`` for a bad namespace or a count or window below 1.
    """

    namespace: str
    max_failures: int
    window_seconds: int
    max_steps: int

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not NAMESPACE_PATTERN.fullmatch(
            self.namespace
        ):
            raise ValueError(f"namespace must match [a-z_]{{1,32}}, got {self.namespace!r}")
        for name in ("max_failures", "window_seconds", "max_steps"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")

    def window(self, replay: ReplayStore, identifier: str, now: float) -> AttemptWindow:
        """The counters of ``identifier`` in the window holding ``now``."""
        return AttemptWindow(self, replay, identifier, now)


class AttemptWindow:
    """One identifier's counters in one window (see the module docstring)."""

    def __init__(
        self, limit: AttemptLimit, replay: ReplayStore, identifier: str, now: float
    ) -> None:
        self._limit = limit
        self._replay = replay
        window = int(now) // limit.window_seconds
        self.now = now
        #: Seconds until the window ends (at least 1): the keys' TTL and the Retry-After.
        self.retry_after = max(1, (window + 1) * limit.window_seconds - int(now))
        self._prefix = f"{digest(identifier)}:{window}:"

    async def _record(self, slot: str) -> bool:
        outcome = await self._replay.check_and_record(
            self._limit.namespace, self._prefix + slot, self.retry_after, now=self.now
        )
        return isinstance(outcome, Recorded)

    async def fail(self) -> FailOutcome:
        """Count one failure: the failures still allowed after it, or ``Locked`` when none was
        free. The last allowed failure also records the lock marker."""
        limit = self._limit
        for k in range(1, limit.max_failures + 1):
            if await self._record(f"F{k}"):
                if k == limit.max_failures:
                    await self._record(_LOCK)
                return AttemptsLeft(limit.max_failures - k)
        return Locked(self.retry_after)

    async def failures(self) -> int:
        """How many failures the window holds: a binary search over the ``F`` keys (at most
        about log2(``max_failures``) + 1 reads; nothing claimed)."""
        low, high = 0, self._limit.max_failures  # F1..F{low} recorded; F{high+1} is not
        while low < high:
            middle = (low + high + 1) // 2
            if await self._replay.is_recorded(
                self._limit.namespace, f"{self._prefix}F{middle}", now=self.now
            ):
                low = middle
            else:
                high = middle - 1
        return low

    async def locked(self) -> Locked | None:
        """``Locked`` while the window's failures are spent; one read, nothing claimed."""
        recorded = await self._replay.is_recorded(
            self._limit.namespace, self._prefix + _LOCK, now=self.now
        )
        return Locked(self.retry_after) if recorded else None

    async def step(self) -> StepOutcome:
        """Claim one step before the guarded work; ``Locked`` when the failures are spent or
        the window's steps are (module docstring)."""
        lock = await self.locked()
        if lock is not None:
            return lock
        for k in range(1, self._limit.max_steps + 1):
            if await self._record(f"S{k}"):
                return Proceed()
        return Locked(self.retry_after)


def identifier_digest(identifier: str) -> str:
    """A short, stable pseudonym of ``identifier`` for events and logs (not secret: anyone who
    can guess the identifier can recompute it; it only keeps the value out of logs in clear)."""
    return digest(identifier)[:_SHORT_DIGEST_CHARS]
