"""The engine's processes never outlive the server, and a start clears a dead one's.

vLLM runs its engine (``VLLM::EngineCore``, ``VLLM::Worker``) in processes of its own; a
server killed with SIGKILL cannot stop them, and they would hold memory and cores beside
the next server's engine. So ``ragline serve`` starts a small watchdog process first:

- it asks the kernel for a signal when the server dies (``PR_SET_PDEATHSIG``), and
  meanwhile records the server's descendants, with their start times, in
  ``<data_dir>/run/serve-<host>-<pid>.json``;
- when the server is gone (killed, crashed or stopped) it stops every recorded process
  still running (SIGTERM, then SIGKILL) and removes the record.

And a start reads the records of this host's servers that are no longer alive (the
watchdog itself was killed, or the machine went down mid-way) and stops what they list.
A process counts as the recorded one only if its start time matches: pids are reused.
Linux only (/proc, prctl); elsewhere the watchdog is not started.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
GRACE_S = 5.0  # SIGTERM, then this long before SIGKILL
FAST_SCAN_S, SLOW_SCAN_S, FAST_PERIOD_S = 0.2, 1.0, 120.0  # the engine starts early


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22): pid + start is unique
    name: str = ""


@dataclass(slots=True)
class ServeRecord:
    host: str
    server: Proc
    watchdog: Proc | None = None
    children: list[Proc] = field(default_factory=list)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, text: str) -> ServeRecord:
        raw = json.loads(text)
        return cls(
            host=raw["host"],
            server=Proc(**raw["server"]),
            watchdog=Proc(**raw["watchdog"]) if raw.get("watchdog") else None,
            children=[Proc(**child) for child in raw.get("children", [])],
        )


# -- /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the name, or None when gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields


def proc(pid: int) -> Proc | None:
    fields = _stat(pid)
    if fields is None:
        return None
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = ""
    return Proc(pid, int(fields[19]), name)


def running(recorded: Proc) -> bool:
    """The recorded process is still the one running under its pid."""
    current = proc(recorded.pid)
    return current is not None and current.start == recorded.start


def descendants(pid: int) -> list[Proc]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[Proc] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if (info := proc(child)) is not None:
                found.append(info)
    return found


def stop(procs: Iterable[Proc], grace_s: float = GRACE_S) -> list[Proc]:
    """SIGTERM each recorded process still running, SIGKILL those left after ``grace_s``;
    returns those that were running."""
    alive = [p for p in procs if running(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in alive:
            if running(p):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p.pid, sig)
        deadline = time.monotonic() + grace_s
        while any(running(p) for p in alive) and time.monotonic() < deadline:
            time.sleep(0.05)
    return alive


# -- the records -----------------------------------------------------------------------


def record_path(run_dir: Path, host: str, pid: int) -> Path:
    return run_dir / f"serve-{host}-{pid}.json"


def _write(path: Path, record: ServeRecord) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.dump())
    os.replace(tmp, path)


def clear_leftovers(run_dir: Path, host: str | None = None) -> list[Proc]:
    """Stop what the records of this host's dead servers list; returns what was stopped."""
    host = host or socket.gethostname()
    stopped: list[Proc] = []
    for path in sorted(run_dir.glob(f"serve-{host}-*.json")):
        try:
            record = ServeRecord.load(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # half-written: nothing to trust in it
            continue
        if record.host != host or running(record.server):
            continue  # another live server sharing this data dir
        watchdog = [record.watchdog] if record.watchdog else []
        stopped += stop([*watchdog, *record.children])
        path.unlink(missing_ok=True)
    return stopped


# -- the watchdog process --------------------------------------------------------------


class _ServerGone(Exception):
    pass


def _on_parent_death(signum: int, frame: object) -> None:
    # Once: a second SIGTERM raised again outside the loop's ``try`` and killed the
    # watchdog before its clean-up (seen in a full test run: the engine left running).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _ServerGone


def watch(server_pid: int, path: Path) -> None:
    """Record the server's descendants until it dies, then stop them (runs in the
    watchdog process, a child of the server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server; we clean up
    signal.signal(signal.SIGTERM, _on_parent_death)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    host, me = socket.gethostname(), os.getpid()
    server, watchdog = proc(server_pid), proc(me)
    record = ServeRecord(host, server or Proc(server_pid, 0), watchdog)
    started = time.monotonic()
    try:
        while os.getppid() == server_pid:  # the death signal's race-free fallback
            children = [p for p in descendants(server_pid) if p.pid != me]
            known = {p.pid: p for p in record.children if running(p)}
            known.update((p.pid, p) for p in children)
            if set(known.values()) != set(record.children):
                record.children = sorted(known.values(), key=lambda p: p.pid)
                _write(path, record)
            fast = time.monotonic() - started < FAST_PERIOD_S
            time.sleep(FAST_SCAN_S if fast else SLOW_SCAN_S)
    except _ServerGone:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the clean-up whatever comes
    stopped = stop(record.children)
    path.unlink(missing_ok=True)
    path.with_suffix(".tmp").unlink(missing_ok=True)
    if stopped:
        names = ", ".join(f"{p.name or '?'} ({p.pid})" for p in stopped)
        print(f"ragline watchdog: server {server_pid} is gone; stopped {names}", file=sys.stderr)


def start_watchdog(data_dir: Path) -> subprocess.Popen[bytes] | None:
    """Clear dead servers' leftovers under ``data_dir``, then start this server's
    watchdog (from the main thread: the death signal follows the thread that forks)."""
    if not Path("/proc/self/stat").exists() or not sys.platform.startswith("linux"):
        return None
    run_dir = data_dir.resolve() / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in clear_leftovers(run_dir):
        log.warning(
            "stopped %s (pid %d), left running by a dead server", leftover.name, leftover.pid
        )
    path = record_path(run_dir, socket.gethostname(), os.getpid())
    _write(path, ServeRecord(socket.gethostname(), proc(os.getpid()) or Proc(os.getpid(), 0)))
    return subprocess.Popen(
        [sys.executable, "-m", "ragline.api.watchdog", str(os.getpid()), str(path)],
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]))
