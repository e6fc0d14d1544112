"""Ingestion lowers its own thread's priority; what it starts inherits it, the rest of
the process keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from ragline.ingest.priority import lower_thread_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_thread_its_threads_and_its_processes_run_lower_the_caller_does_not() -> None:
    before = _nice()
    seen: dict[str, int] = {}

    def ingestion() -> None:
        seen["set"] = lower_thread_priority(10)
        seen["thread"] = _nice()
        inner = threading.Thread(target=lambda: seen.__setitem__("inner", _nice()))
        inner.start()
        inner.join()
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen["process"] = int(child.stdout)
        seen["again"] = lower_thread_priority(5)  # never lowers what is set

    worker = threading.Thread(target=ingestion)
    worker.start()
    worker.join()
    expected = max(before, 10)
    assert seen == {
        "set": expected,
        "thread": expected,
        "inner": expected,
        "process": expected,
        "again": expected,
    }
    assert _nice() == before  # the calling thread (a server's query threads) keeps its own


def test_zero_leaves_the_thread_alone() -> None:
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(lower_thread_priority(0) or _nice()))
    worker.start()
    worker.join()
    assert seen == [_nice()]
