"""Servers for the API and page tests: a real `ragline serve` process, the app in a
thread with a fake engine, and a private redis-server (the shared one at 6379 is never
touched). Every server listens on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# One private redis-server and port picker for the tests and the fault benchmark.
from bench.procs import PrivateRedis as PrivateRedis  # re-exported for the tests
from bench.procs import free_port

REPO = Path(__file__).resolve().parent.parent
# The environment as the test session began: an engine or a Ray driver started inside
# the test process writes its own variables into os.environ, and a later server must
# not inherit them.
SESSION_ENV = dict(os.environ)
# Likewise the CPUs it may run on: a server inherits its parent's affinity.
SESSION_CPUS = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def _session_cpus() -> None:
    """In the server's process before exec: the CPUs the session began with."""
    if SESSION_CPUS is not None:
        os.sched_setaffinity(0, SESSION_CPUS)


def key_hash(key: str) -> str:
    """An API key as `api.keys` stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


def ragline_command() -> list[str]:
    script = Path(sys.executable).parent / "ragline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ragline.cli"]


class ServeProcess:
    """`ragline serve` in a process of its own, configured by RAGLINE_* variables."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # This checkout's code, whatever is installed (a worktree's tests run its own).
        pythonpath = os.pathsep.join(filter(None, [str(REPO), SESSION_ENV.get("PYTHONPATH")]))
        # vLLM binds its OpenMP threads one to a core, and they spin at every barrier: with
        # another process busy on one of the two cores (the tests' own Ray cluster, say) a
        # short answer took minutes (the engine logged "No available shared memory
        # broadcast block found in 60 seconds"). Unbound threads that wait passively let
        # the kernel share the cores instead.
        contention = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_WAIT_POLICY": "PASSIVE"}
        full_env = {**SESSION_ENV, **contention, "PYTHONPATH": pythonpath, **env}
        if "REDIS_URL" not in env:
            full_env.pop("REDIS_URL", None)  # only the test's own Redis, if any
        # This checkout's code, whichever checkout the installed entry point points at.
        paths = [str(REPO), full_env.get("PYTHONPATH", "")]
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*ragline_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=_session_cpus,
            )

    def wait_ready(self, timeout: float) -> str:
        """Blocks until /health answers 200 (the engine is up); returns the URL."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "server exited:\n" + self.log.read_text()[-4000:]
            assert time.monotonic() < deadline, "server not ready:\n" + self.log.read_text()[-4000:]
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app under uvicorn in a thread on a free loopback port; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
