"""Processes for the fault benchmark: a `ragline serve` with the scripted engine that can
be killed, a private redis-server (never the shared one at 6379), the CLI, and a sampler
of their memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 300.0
ORPHAN_WAIT_S = 20.0  # the watchdog stops the children: SIGTERM, 5 s grace, SIGKILL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """This checkout's code, only the Redis the caller names, no telemetry."""
    full = {**os.environ, "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", **env}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if "REDIS_URL" not in env:
        full.pop("REDIS_URL", None)
    return full


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class FakeServer:
    """python -m bench.fake_serve on a free loopback port; settings from ``env``."""

    def __init__(self, env: Mapping[str, str], log: Path, hash_embed: bool = False) -> None:
        self.env, self.log, self.hash_embed = dict(env), log, hash_embed
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> FakeServer:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench.fake_serve", str(port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command + (["--hash-embed"] if self.hash_embed else []),
                env=child_env(self.env),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {self.log}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return self
            time.sleep(0.3)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def http(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def children(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).children(recursive=True)
        return []

    def parse_workers(self) -> list[psutil.Process]:
        """pebble's spawned workers (not multiprocessing's resource tracker)."""
        found = []
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                line = " ".join(child.cmdline())
                if "spawn_main" in line and "resource_tracker" not in line:
                    found.append(child)
        return found

    def kill9(self) -> int:
        """SIGKILL the server; returns how many of its descendants are still running
        ``ORPHAN_WAIT_S`` later (orphans), after killing them ourselves."""
        assert self.proc is not None
        descendants = self.children()
        self.proc.kill()
        self.proc.wait(30)
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while any(alive(p) for p in descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = [p for p in descendants if alive(p)]
        for process in orphans:
            with contextlib.suppress(psutil.Error):
                process.kill()
        return len(orphans)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class PrivateRedis:
    """A redis-server of our own on a free port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def cli(
    env: Mapping[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``ragline <args>`` in a process of its own, running this checkout's code."""
    command = [sys.executable, "-c", "from ragline.cli import main; main()", *args]
    return subprocess.run(
        command, env=child_env(env), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


class RssSampler:
    """Peak RSS of the servers (each process alone) and of their children (each alone),
    sampled every ``period_s`` in a thread."""

    def __init__(self, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self.servers: list[FakeServer] = []
        self.server_peak = 0
        self.child_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, server: FakeServer) -> FakeServer:
        self.servers.append(server)
        return server

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for server in list(self.servers):
                if server.proc is None or server.proc.poll() is not None:
                    continue
                with contextlib.suppress(psutil.Error):
                    self.server_peak = max(self.server_peak, rss(server.pid))
                for child in server.children():
                    with contextlib.suppress(psutil.Error):
                        self.child_peak = max(self.child_peak, child.memory_info().rss)


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)
