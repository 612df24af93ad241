"""Process figures read from Linux ``/proc``: CPU seconds and resident memory of a process tree.

Spec: proc(5) (``/proc/<pid>/stat`` fields 14-15 ``utime``/``stime`` in clock ticks,
``/proc/<pid>/status`` ``VmRSS``, ``/proc/<pid>/task/<tid>/children``).

A server is measured as its process plus every descendant alive at the time of the reading
(uvicorn with one worker has none; the functions stay right if a server forks). A process that
vanished between listing and reading counts as zero. Non-Linux systems read zero.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["cpu_seconds", "process_tree", "rss_bytes"]

_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC: Final = Path("/proc")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (depth first), as far as ``/proc`` shows them."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = list((_PROC / str(current) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                text = (task / "children").read_text()
            except OSError:
                continue
            found.extend(int(child) for child in text.split())
    return found


def _cpu_of(pid: int) -> float:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds spent so far by ``pid`` and its live descendants."""
    return sum(_cpu_of(member) for member in process_tree(pid))


def _rss_of(pid: int) -> int:
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    """Resident set size in bytes of ``pid`` and its live descendants (``VmRSS``)."""
    return sum(_rss_of(member) for member in process_tree(pid))
