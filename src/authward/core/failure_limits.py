"""In-process failure limits: at most K failures per key and fixed window, in bounded memory.

Spec: RFC 6749 §10.10 (credential guessing), RFC 6819 §5.1.4.2.3 (limit failed attempts),
§4.4.1.11 (resource exhaustion); authward ARCHITECTURE.md (argon2 with bounded cost).

:class:`FailureLimiter` counts failures per key (a client_id, a source address) in fixed
windows of ``window_seconds`` (``window = floor(now / window_seconds)``). Once a key has
``max_failures`` failures in the current window, :meth:`FailureLimiter.retry_after` answers
the seconds until that window ends, and the caller refuses the attempt without doing the work
it guards; the next window starts from zero.

**Why in process, not in the shared replay table** (``authward.core.attempt_limits``, used for
sign-in and user codes): this guards a hot path under flood. A flood of wrong client secrets
must cost the server less than the attacker, so neither a check nor a failure may write to the
database: the shared limiter claims a row per failure and per step, which under a flood would
move the load from argon2 to the database. Here a check is a dict lookup and a failure an
in-memory increment. The price: each node (and each worker process) counts on its own, so a
deployment of N processes allows up to N * ``max_failures`` failures per key and window. That
is the right trade for CPU protection, which is per process too.

Memory is bounded: at most ``max_keys`` keys (default 10 000) are tracked, each as a 16-byte
BLAKE2b digest of the key (so an over-long client_id costs no more than a short one) with its
window and count; the least recently touched key is dropped first, and a key is touched when
it fails and when a spent key is asked about (so a key under active attack stays tracked).
Nothing here logs, and keys are not kept in clear.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["FailureBudget", "FailureLimiter"]

_DEFAULT_MAX_KEYS: Final = 10_000


@dataclass(frozen=True, slots=True)
class FailureBudget:
    """At most ``max_failures`` failures per key in each fixed window of ``window_seconds``.

    Raises ``ValueError`` for a count or window below 1.
    """

    max_failures: int
    window_seconds: int

    def __post_init__(self) -> None:
        for name in ("max_failures", "window_seconds"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")


class FailureLimiter:
    """Fixed-window failure counts per key, in process memory (module docstring).

    Time comes from the caller (``now``, Unix seconds) so the owner's injected clock rules.
    Thread-safe; every method is a few dictionary operations and never awaits.
    """

    def __init__(self, budget: FailureBudget, *, max_keys: int = _DEFAULT_MAX_KEYS) -> None:
        if type(max_keys) is not int or max_keys < 1:
            raise ValueError("max_keys must be an integer of at least 1")
        self.budget = budget
        self._max_keys = max_keys
        self._counts: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._counts)

    def retry_after(self, key: str, now: float) -> int | None:
        """Seconds until ``key`` may try again when its budget for the window holding ``now``
        is spent (at least 1), else ``None``."""
        if not self._counts:  # no failure counted lately: no digest of the key needed
            return None
        entry = _entry(key)
        window = self._window(now)
        with self._lock:
            found = self._counts.get(entry)
            if found is None or found[0] != window or found[1] < self.budget.max_failures:
                return None
            self._counts.move_to_end(entry)
        return max(1, (window + 1) * self.budget.window_seconds - int(now))

    def fail(self, key: str, now: float) -> None:
        """Count one failure of ``key`` in the window holding ``now``."""
        entry = _entry(key)
        window = self._window(now)
        with self._lock:
            found = self._counts.get(entry)
            count = found[1] + 1 if found is not None and found[0] == window else 1
            self._counts[entry] = (window, count)
            self._counts.move_to_end(entry)
            while len(self._counts) > self._max_keys:
                self._counts.popitem(last=False)

    def _window(self, now: float) -> int:
        return int(now) // self.budget.window_seconds


def _entry(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
