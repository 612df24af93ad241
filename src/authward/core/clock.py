"""The injectable clock, re-exported so core code imports it from its own layer.

Spec: authward spec/stores.md §0.4 (no store or check reads the wall clock itself).
"""

from __future__ import annotations

from authward.stores.clock import Clock, FrozenClock, SystemClock

__all__ = ["Clock", "FrozenClock", "SystemClock"]
