"""Statement events passed on from an engine the stores run statements on to the host's engine.

Spec: authward spec/stores.md §2.12 "Engine requirements".

The stores run most statements on engines of their own beside the one a host gives them: the
inline SQLite connection (:mod:`~authward.stores.sql.sqlite_inline`) and PostgreSQL's
AUTOCOMMIT pool (:func:`~authward.stores.sql.engine.autocommit_engine_of`). Listeners a host
put on its engine (statement logging, tracing, counting) must see those statements too, so the
cursor events are passed on to them (their return values are not: the statement is not
rewritten).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["forward_cursor_events"]


def forward_cursor_events(source: sa.Engine, target: sa.Engine) -> None:
    """Pass ``before_cursor_execute`` and ``after_cursor_execute`` of ``source`` on to the
    listeners of ``target`` (both sync engines, or an asyncio engine's ``sync_engine``)."""

    @event.listens_for(source, "before_cursor_execute")
    def _before(*args: Any) -> None:
        if target.dispatch.before_cursor_execute:
            target.dispatch.before_cursor_execute(*args)

    @event.listens_for(source, "after_cursor_execute")
    def _after(*args: Any) -> None:
        if target.dispatch.after_cursor_execute:
            target.dispatch.after_cursor_execute(*args)
