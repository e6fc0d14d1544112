"""Every benchmark, side by side with its peers, then the README results section.

    python -m bench [--quick] [--only STAGE,...]   # ingest, backends, query, generate, load,
                                                   # faults, report
    python -m bench STAGE [ARGS...]                # one stage, with its own options

Run it from the benchmark environment (``bash scripts/bench-env.sh`` makes .venv-bench:
ragline's .venv plus LlamaIndex) so that every peer runs: ``.venv-bench/bin/python -m
bench``. Each stage runs in its own process, one after the other, and writes
``<stage>.md``/``.csv``/``.png`` to bench/results/; a failed stage is reported and the
rest still run. Generation and the load test (against a `ragline serve` started on a
free loopback port, over the demo collection of samples/) run under .venv's interpreter:
vLLM with its own pinned packages, without the peers' additions. ``--quick`` (small
sizes, for development) writes to var/bench-quick/ instead and leaves README.md alone.
Wall times per stage go to ``<results>/run.md``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.procs import free_port
from ragline.settings import PROJECT_ROOT
from ragline.tables import write_markdown_and_csv

STAGES = ("ingest", "backends", "query", "generate", "load", "faults", "report")
QUICK_ARGS = {
    "ingest": ["--quick"],
    "backends": ["--quick"],
    "query": ["--quick"],
    "generate": ["--pairs", "2", "--max-tokens", "16"],
    "load": ["--concurrency", "1,4", "--duration", "15"],
    "faults": ["--quick"],
    "report": ["--no-readme"],
}
BASE_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
QUICK_RESULTS = PROJECT_ROOT / "var" / "bench-quick"
LOAD_COLLECTION = "demo"  # what `make demo` ingests, and bench/load.py's default
CLI = "from ragline.cli import main; main()"  # `ragline ...` under a chosen interpreter


def interpreter(stage: str) -> str:
    """vLLM (generation, the server under load) runs under .venv's own interpreter where
    there is one: its pinned packages, none of the peers' additions. The rest here."""
    if stage in ("generate", "load", "faults", "prepare") and BASE_PYTHON.exists():
        return str(BASE_PYTHON)
    return sys.executable


def stage_command(stage: str, quick: bool) -> list[str] | None:
    """The command for one stage, or None where it cannot run here."""
    if stage == "load" and not (Path(__file__).parent / "load.py").exists():
        return None
    args = list(QUICK_ARGS.get(stage, [])) if quick else []
    return [interpreter(stage), "-m", f"bench.{stage}", *args]


def _wait_healthy(url: str, server: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(1)
    return False


def run_load(command: list[str], env: dict[str, str]) -> int:
    """bench/load.py measures a running `ragline serve`: ingest the sample documents into
    the demo collection (unchanged files are skipped), start a server on a free loopback
    port, run the load, stop the server."""
    python = interpreter("load")
    ingest = [python, "-c", CLI, "ingest", "samples", "--collection", LOAD_COLLECTION]
    if subprocess.run(ingest, cwd=PROJECT_ROOT, env=env).returncode:
        return 1
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = PROJECT_ROOT / "var" / "bench-load-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [python, "-c", CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        if not _wait_healthy(url, server, 600):
            print(f"ragline serve did not come up; see {log}", flush=True)
            return 1
        return subprocess.run([*command, "--url", url], cwd=PROJECT_ROOT, env=env).returncode
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_all(stages: list[str], quick: bool, extra: list[str] | None = None) -> int:
    """Run the stages in order; ``extra`` arguments go to a single stage (no run.md)."""
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "UNSTRUCTURED_DISABLE_NOTICE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if quick:
        env.setdefault("RAGLINE_BENCH_RESULTS", str(QUICK_RESULTS))
    results = Path(env.get("RAGLINE_BENCH_RESULTS") or Path(__file__).parent / "results")
    results.mkdir(parents=True, exist_ok=True)
    rows: list[list[object]] = []
    failed = []
    started_all = time.perf_counter()
    if {"generate", "load"} & set(stages):
        stages = ["prepare", *stages]  # the generation model, converted once (~25 s)
    for stage in stages:
        if stage == "prepare":
            command: list[str] | None = [interpreter(stage), "-c", CLI, "model", "prepare"]
        else:
            command = stage_command(stage, quick)
            if command is not None and extra is not None:
                command += extra
        if command is None:
            print(f"== {stage}: skipped (bench/{stage}.py does not exist yet)", flush=True)
            rows.append([stage, f"skipped: no bench/{stage}.py", "-", "-"])
            continue
        print(f"== {stage}: {' '.join(command)}", flush=True)
        started = time.perf_counter()
        if stage == "load" and "--url" not in command:
            code = run_load(command, env)
        else:
            code = subprocess.run(command, cwd=PROJECT_ROOT, env=env).returncode
        seconds = time.perf_counter() - started
        status = "ok" if code == 0 else f"failed (exit {code})"
        if code:
            failed.append(stage)
        print(f"== {stage}: {status} in {seconds:.0f}s", flush=True)
        shown = " ".join(command[1:]).replace(CLI, "ragline")
        rows.append([stage, status, f"{seconds:.0f}", shown])
    total = time.perf_counter() - started_all
    if extra is not None:
        return 1 if failed else 0
    write_markdown_and_csv(
        results / "run",
        "Benchmark run",
        ["stage", "status", "seconds", "command"],
        rows,
        [f"`python -m bench{' --quick' if quick else ''}`: {total / 60:.1f} minutes in all."],
    )
    print(f"== all stages in {total / 60:.1f} min; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] in STAGES:  # one stage, its own options passed through
        return run_all([argv[0]], quick=False, extra=argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes; var/bench-quick/")
    parser.add_argument("--only", default=",".join(STAGES), help="comma-separated stages")
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}: choose from {', '.join(STAGES)}")
    return run_all(stages, args.quick)


if __name__ == "__main__":
    sys.exit(main())
