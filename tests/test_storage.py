"""The catalog on object storage: a real S3 API (moto's server, on 127.0.0.1 and a free port),
every dataset moved there by one conf env (``globals.yml`` and ``credentials.yml``, as
docs/storage.md shows), the default and study pipelines, ``kedro ablation run`` on two Dask
workers (the probe and every worker reaching the bucket through the catalog's own credentials),
and a single node run again from what the bucket holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import free_port, make_project, stop_server

pytestmark = pytest.mark.slow
BUCKET = "lab"


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server as a process of its own, with a bucket; stopped and waited for."""
    pytest.importorskip("s3fs")
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not answer within 20 s") from None
                time.sleep(0.2)
        import boto3  # moto's own dependency; s3fs would ask for a location us-east-1 does not take

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        stop_server(server)


def credentials(endpoint: str) -> dict:
    return {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}


def storage():
    import fsspec

    def make(endpoint: str):
        return fsspec.filesystem("s3", **credentials(endpoint), skip_instance_cache=True)

    return make


def lab_env(project: Path, endpoint: str) -> None:
    """conf/lab: the smoke settings, with every dataset in the bucket."""
    shutil.copytree(project / "conf/smoke", project / "conf/lab")
    (project / "conf/lab/globals.yml").write_text(f"data: s3://{BUCKET}/data\nstorage: lab_bucket\n")
    (project / "conf/lab/credentials.yml").write_text(yaml.safe_dump({"lab_bucket": credentials(endpoint)}))


def test_the_catalog_on_object_storage_runs_every_pipeline_and_a_node_again(s3_endpoint, tmp_path):
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    project = make_project(tmp_path / "project")
    lab_env(project, s3_endpoint)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="lab") as session:
        session.run()  # the default pipeline: ingestion, both models, the first lesson, the report
    study = subprocess.run(
        [sys.executable, "-m", "kedro", "ablation", "run", "--env", "lab", "--workers", "2"],
        cwd=project, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert study.returncode == 0, study.stdout[-3000:] + study.stderr[-3000:]
    assert "36 runs, 0 already have their row, 36 to run" in study.stdout
    with KedroSession.create(project_path=project, env="lab") as session:
        session.run(node_names=["evaluate_cnn"])  # reloads the model from the bucket

    from kedro.framework.project import pipelines

    with KedroSession.create(project_path=project, env="lab") as session:
        catalog = session.load_context().catalog
        outputs = pipelines["__default__"].all_outputs() | pipelines["ablation"].all_outputs()
        stored = {name for name in outputs if name in catalog and getattr(catalog.get(name), "_protocol", None)}
        assert len(stored) > 60 and {catalog.get(n)._protocol for n in stored} == {"s3"}
        missing = sorted(name for name in stored if not catalog.exists(name))
        assert not missing, missing
        comparison = catalog.load("comparison_report")
        ablation_report = catalog.load("ablation_report")
        verdicts = catalog.load("first_lesson_verdicts")
    assert "Why hand-made features hit a wall" in comparison
    for claim in verdicts["claims"].values():
        assert f"Verdict: {claim['verdict']}" in comparison and f"Verdict: {claim['verdict']}" in ablation_report
    bucket = storage()(s3_endpoint)
    assert len(bucket.glob(f"{BUCKET}/data/06_models/cnn_model.pt/*/cnn_model.pt")) == 1
    assert len(bucket.glob(f"{BUCKET}/data/08_reporting/cnn_test_metrics.json/*/*.json")) == 2  # a node run again
    local = [p for p in (project / "data").rglob("*") if p.is_file() and ".gitkeep" not in p.name]
    assert [p.relative_to(project / "data").parts[:2] for p in local] and all(
        p.relative_to(project / "data").parts[:2] == ("06_models", "checkpoints") for p in local)  # torch's own
