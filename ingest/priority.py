"""Ingestion yields the CPU to queries served from the same machine.

On Linux a thread has its own nice value, and the threads and processes it starts
inherit it: an ingestion run that raises its thread's value before it begins hands the
lower priority to its parse workers, to tantivy's indexing and merge threads (made when
its writer opens) and to SQLite's work in that thread, while the server's query threads
keep theirs. Nice only matters when the CPU is contended: alone, ingestion runs as fast.
"""

from __future__ import annotations

import os
import threading


def lower_thread_priority(niceness: int) -> int:
    """Raise the calling thread's nice value to at least ``niceness`` (never lowers it:
    that needs privileges). Returns the value in force; a platform without per-thread
    priorities keeps its own."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return 0
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, niceness))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:  # not permitted here (a container's seccomp profile, say)
        return 0
