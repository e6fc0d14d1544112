"""Join (or start) the Ray cluster a job runs on, and what the cluster offers."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import ray

import ragline
from ragline.offline import DEFAULTS as OFFLINE_ENV
from ragline.settings import RaySettings

_CONNECTING = threading.Lock()  # the server runs two ingestion jobs in threads


@dataclass(frozen=True, slots=True)
class ClusterShape:
    nodes: int
    cpus: int
    gpus: int


def worker_env() -> dict[str, str]:
    """What every worker needs whichever node it runs on: ragline's offline flags (as
    exported here, else their defaults) and this checkout on the import path."""
    env = {name: os.environ.get(name, value) for name, value in OFFLINE_ENV.items()}
    checkout = str(Path(ragline.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [checkout, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


def connect(settings: RaySettings) -> ClusterShape:
    """Connect this process to Ray once: ``ray.address`` null starts a local instance
    (ended with the process), ``auto`` or HOST:PORT joins a running cluster."""
    with _CONNECTING:
        if not ray.is_initialized():
            local = settings.address is None
            ray.init(
                address=settings.address,
                runtime_env={"env_vars": worker_env()},
                include_dashboard=False if local else None,
                object_store_memory=settings.object_store_mb * 2**20 if local else None,
                logging_level=logging.WARNING,
                log_to_driver=False,  # worker output would break the progress bars
            )
            logging.getLogger("ray.data").setLevel(logging.ERROR)  # notices break the bars
    return shape()


def shape() -> ClusterShape:
    resources = ray.cluster_resources()
    alive = [node for node in ray.nodes() if node.get("Alive")]
    return ClusterShape(
        nodes=max(1, len(alive)),
        cpus=max(1, int(resources.get("CPU", 1))),
        gpus=int(resources.get("GPU", 0)),
    )
