"""Shared fixtures: small archives in the official layout, a local HTTP server, a project copy."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

# Sessions of this suite are not tracked in MLflow (the test extra installs kedro-mlflow), unless
# a test says so: tests/test_tracking.py. Set before the project's settings are first read.
os.environ["SIMPLE_CNN_TRACKING"] = "off"

# Under `pytest -n N` (pytest-xdist) the workers share the cores: one thread of torch each, for
# the worker and the processes it starts (kedro runs, torchrun), instead of N x cores threads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from simple_cnn.data.cifar10 import write_archive  # noqa: E402
from simple_cnn.data.raw import RawImages
from simple_cnn.params import merged

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


def raw_params(group: str, env: str | None = "smoke") -> dict:
    """The ``group`` parameters of conf/base, with ``env``'s changes merged in."""
    values = yaml.safe_load((PROJECT_ROOT / f"conf/base/parameters_{group}.yml").read_text())[group]
    if env:
        values = merged(values, yaml.safe_load(
            (PROJECT_ROOT / f"conf/{env}/parameters_{group}.yml").read_text())[group])
    return values


def typed_params(model, env: str | None = "smoke", **changes):
    """A typed parameter group as Kedro builds it, with ``changes`` merged in."""
    return model.model_validate(merged(raw_params(model.key, env), changes))


def small_raw(n_train: int = 100, n_test: int = 30, seed: int = 0) -> RawImages:
    rng = np.random.default_rng(seed)
    return RawImages(
        train_images=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        train_labels=np.arange(n_train, dtype=np.int64) % 10,
        test_images=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        test_labels=np.arange(n_test, dtype=np.int64) % 10,
        class_names=list(CIFAR_CLASSES),
    )


@pytest.fixture
def raw() -> RawImages:
    return small_raw()


@pytest.fixture
def archive(tmp_path, raw) -> Path:
    return write_archive(tmp_path / "cifar-10-binary.tar.gz", raw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(server: subprocess.Popen) -> None:
    """Stop a server started in its own session, and its workers, and wait for it."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support (``server.honour_range``);
    ``server.fail_first`` breaks early replies."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        server = self.server
        server.requests.append(dict(self.headers))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if "Range" in self.headers and server.honour_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)  # Range Not Satisfiable
                return
        if server.fail_first > 0:  # send half of what is asked, then hang up
            server.fail_first -= 1
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.requests, server.fail_first, server.honour_range = {}, [], 0, True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def make_project(root: Path) -> Path:
    """A copy of the project's conf/ and empty data/ layers at ``root``."""
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf",  # not a developer's own conf/local
                    ignore=lambda folder, names: names if Path(folder).name == "local" else [])
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(PROJECT_ROOT / ".telemetry", root / ".telemetry")
    (root / "src").mkdir()  # the package itself is installed; Kedro only wants the folder
    for layer in ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
                  "06_models", "07_model_output", "08_reporting"):
        (root / "data" / layer).mkdir(parents=True)
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory) -> Path:
    """A project copy after one whole default run in the smoke env (shared: do not modify).
    The run is tracked in the copy's own MLflow store (``tests/test_tracking.py`` reads it)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = make_project(tmp_path_factory.mktemp("smoke") / "project")
    bootstrap_project(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMPLE_CNN_TRACKING", "on")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with KedroSession.create(project_path=root, env="smoke") as session:
            session.run()
    return root


@pytest.fixture
def smoke_copy(smoke_project, tmp_path) -> Path:
    """A private copy of ``smoke_project`` that a test may change."""
    root = tmp_path / "project"
    shutil.copytree(smoke_project, root, symlinks=True)
    return root


def kedro(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the kedro CLI in ``project``."""
    result = subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def project_command(project: Path, *args: str):
    """A project command (``simple_cnn.cli``) run in this process, in ``project``: for input
    checks, which stop before any work (a ``kedro`` process would spend seconds starting)."""
    import os

    from click.testing import CliRunner
    from kedro.framework.startup import bootstrap_project

    from simple_cnn.cli import cli

    before = os.getcwd()
    os.chdir(project)
    try:
        bootstrap_project(project)  # as the kedro CLI does before a project command
        return CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(before)


def run_command(project: Path, *args: str):
    """``kedro ARGS`` as ``project_command`` runs it, which must succeed."""
    result = project_command(project, *args)
    if result.exit_code != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{result.output}") from result.exception
    return result


class KeptDataset(MemoryDataset):
    """A MemoryDataset that the runner cannot release, so tests can read intermediate outputs."""

    def _release(self) -> None:
        pass


def run_sliced(pipeline, inputs: dict, **run_kwargs) -> DataCatalog:
    """Run ``pipeline`` on an in-memory catalog holding ``inputs``; every output stays readable."""
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in inputs.items()})
    for name in pipeline.datasets() - set(inputs):
        catalog[name] = KeptDataset()
    SequentialRunner().run(pipeline, catalog, **run_kwargs)
    return catalog


# ------------------------------------------------------------------ the smoke ablation study
DIVERGE = "ablation.studies.warmup_lr_norm.variants.cold_batch.training.lr=1000"


def nested(dotted: str) -> dict:
    """``a.b=1,c.d=x`` (as --params takes it) -> {"a": {"b": 1}, "c": {"d": "x"}}."""
    tree: dict = {}
    for item in dotted.split(","):
        key, value = item.split("=")
        *path, last = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return tree


def run_study(project, params: str | dict = DIVERGE, **run_args) -> None:
    """``kedro run --env smoke --pipelines ablation --params <params> ...``, in this process
    (``params`` as ``--params`` takes them, or nested)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    runtime = nested(params) if isinstance(params, str) else params
    with KedroSession.create(project_path=project, env=run_args.pop("env", "smoke"),
                             runtime_params=runtime) as session:
        session.run(pipeline_names=["ablation"], **run_args)


def newest(project, name):
    return json.loads(sorted((project / "data").glob(f"*/{name}.json/*/{name}.json"))[-1].read_text())


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """The smoke study, run once in this process, with one variant made to diverge (shared:
    do not modify). With one torch thread: CPU results depend on the thread count (the order
    of sums), and ``test_ablation_cluster`` compares them with workers of one thread each."""
    import torch

    project = make_project(tmp_path_factory.mktemp("ablation") / "project")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_study(project)
    finally:
        torch.set_num_threads(threads)
    return project
