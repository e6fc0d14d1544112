from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragline.ingest.embed import Embedder
from ragline.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
# The suite ingests in its own main thread: at ingest.nice that thread, and every server
# it starts afterwards, would run niced while earlier ones do not. tests/test_priority.py
# covers the mechanism itself.
os.environ.setdefault("RAGLINE_INGEST__NICE", "0")
SERVER_LOG_LINES = 80
SHARED_DATA = Path(os.environ.get("RAGLINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def example_docs(shared_data: Path) -> Path:
    return shared_data / "example-docs"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(storage={"data_dir": tmp_path / "var"})


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(load_settings().embedding)


@pytest.fixture(scope="session", autouse=True)
def encoder_runtime() -> None:
    """The default (auto) embedding runtime, settled before any test: on a new machine
    the choice (exports, int8 calibration, timing) takes minutes once, and a server a test
    starts must not spend its start-up timeout on it. Later processes read the record."""
    Embedder(load_settings().embedding).runtime  # noqa: B018 - resolves and records it


@pytest.fixture(scope="session")
def llm_models_dir(pytestconfig: pytest.Config) -> Path:
    """The embedded generation model, prepared once and kept in pytest's cache folder
    (the GGUF -> checkpoint conversion takes ~25 s)."""
    from ragline.generate.models import prepare_model

    models_dir = Path(pytestconfig.cache.mkdir("ragline-models"))
    prepare_model(load_settings().generation.model, models_dir)
    return models_dir


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used a server (a fixture with a ``log`` file) reports the log's
    tail: on CI that is the only trace of what the server was doing."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        server = getattr(item, "funcargs", {}).get("server")
        log = getattr(server, "log", None)
        if isinstance(log, Path) and log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-SERVER_LOG_LINES:]
            report.sections.append(("server log (tail)", "\n".join(tail)))


@dataclass(slots=True)
class RayCluster:
    address: str
    cluster: Any  # ray.cluster_utils.Cluster
    node_args: dict[str, Any]

    def remove_worker_node(self) -> None:
        """Kill the node that is not the head: its raylet and every worker on it."""
        (worker,) = self.cluster.worker_nodes
        self.cluster.remove_node(worker, allow_graceful=False)

    def add_worker_node(self) -> None:
        """From the main thread only (Ray installs signal handlers)."""
        self.cluster.add_node(**self.node_args)
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real two-node Ray cluster on loopback (one CPU per node), started once. Tests
    that take it need the ``ray`` extra."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 200 * 2**20, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        yield RayCluster(str(cluster.address), cluster, node)
    finally:
        ray.shutdown()
        cluster.shutdown()
