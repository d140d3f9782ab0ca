import json
import subprocess
import sys

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import ParameterValidationError
from PIL import Image

from simple_cnn.data.cifar10 import Cifar10Archive, md5_of
from simple_cnn.data.image_folder import ImageFolder
from simple_cnn.errors import ConfigError, DataError
from simple_cnn.parameters import IngestionParams
from simple_cnn.pipelines.ingestion import create_pipeline
from tests.conftest import project_command, run_sliced

PARAMS = {"source": "synthetic", "val_size": 200, "seed": 1, "image_size": 32,
          "synthetic": {"n_train": 1000, "n_test": 300}}


def run_ingestion(params, archive=None, folder=None):
    return run_sliced(create_pipeline(), {
        "cifar10_archive": Cifar10Archive(archive, md5="none") if archive else None,
        "image_folder": ImageFolder(folder) if folder else None,
        "params:ingestion": IngestionParams.model_validate(params),
    })


def test_synthetic_ingestion_makes_stratified_splits_and_stats():
    catalog = run_ingestion(PARAMS)
    train, val = catalog.load("train_split"), catalog.load("val_split")
    assert train["images"].shape == (800, 32, 32, 3) and val["images"].shape == (200, 32, 32, 3)
    assert np.bincount(val["labels"]).tolist() == [20] * 10  # stratified
    summary = catalog.load("dataset_summary")
    assert summary["counts"]["test"]["total"] == 300
    expected = (train["images"].reshape(-1, 3) / 255.0).mean(axis=0)
    np.testing.assert_allclose(summary["train_pixel_mean"], expected, rtol=1e-9)


def test_split_is_seeded():
    a = run_ingestion(PARAMS).load("val_split")["images"]
    b = run_ingestion(PARAMS).load("val_split")["images"]
    c = run_ingestion({**PARAMS, "seed": 2}).load("val_split")["images"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cifar10_source_reads_the_archive(archive):
    catalog = run_ingestion({**PARAMS, "source": "cifar10", "val_size": 20}, archive=archive)
    assert len(catalog.load("train_split")["labels"]) == 80
    assert catalog.load("class_names")[0] == "airplane"


def test_unknown_source_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="ingestion.source='mnist'.*cifar10, image_folder, synthetic"):
        run_ingestion({**PARAMS, "source": "mnist"})


@pytest.mark.parametrize("val_size, message", [
    (1000, r"ingestion.val_size=1000 must be smaller than the training set \(1000 images\)"),
    (0, "ingestion.val_size=0 leaves no validation split"),
])
def test_val_size_must_leave_a_split_and_training_images(val_size, message):
    with pytest.raises(ConfigError, match=message):
        run_ingestion({**PARAMS, "val_size": val_size})


def test_val_size_against_an_image_folder_is_checked_when_it_is_read(tmp_path):
    make_folder(tmp_path, n_train=12)
    with pytest.raises(ConfigError, match=r"ingestion.val_size=12 must be smaller than the training set \(12"):
        run_ingestion({**PARAMS, "source": "image_folder", "val_size": 12}, folder=tmp_path)


def test_a_class_too_small_to_split_is_named(tmp_path):
    make_folder(tmp_path, n_train=12)
    (tmp_path / "train" / "green").mkdir()
    Image.new("RGB", (8, 8), (0, 200, 0)).save(tmp_path / "train" / "green" / "only.png")
    with pytest.raises(DataError, match=r"class\(es\): green \(1\). Every class needs at least 2"):
        run_ingestion({**PARAMS, "source": "image_folder", "val_size": 4}, folder=tmp_path)


def _versions(project, name, layer="03_primary"):
    return sorted(p.name for p in (project / "data" / layer / name).iterdir())


def test_smoke_env_through_a_real_session_and_failed_run_keeps_versions(project):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="smoke") as session:
        session.run(pipeline_name="ingestion")
    before = _versions(project, "train_split.npz")
    assert len(before) == 1
    summary_dir = project / "data/03_primary/dataset_summary.json" / before[0]
    assert json.loads((summary_dir / "dataset_summary.json").read_text())["counts"]["val"]["total"] == 500

    with pytest.raises(ParameterValidationError, match="ingestion.val_size=1000000 must be smaller"):
        with KedroSession.create(project_path=project, env="smoke",
                                 runtime_params={"ingestion": {"val_size": 10**6}}) as session:
            session.run(pipeline_name="ingestion")
    assert _versions(project, "train_split.npz") == before
    with KedroSession.create(project_path=project, env="smoke") as session:
        context = session.load_context()
        assert len(context.catalog.load("train_split")["labels"]) == 2000


def test_cli_gives_a_readable_error_and_non_zero_exit(project, archive, monkeypatch):
    (project / "data/01_raw/cifar-10-binary.tar.gz").write_bytes(archive.read_bytes()[:5000])
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipeline", "ingestion",
         "--params", f"cifar10_md5={md5_of(archive)}"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr  # the project's own errors: the message alone
    assert result.stderr.startswith("Error: ") and "Checksum mismatch" in result.stderr
    monkeypatch.setenv("SIMPLE_CNN_TRACEBACK", "1")  # the same command, in this process: it raises
    full = project_command(project, "run", "--pipeline", "ingestion", "--params",
                           f"cifar10_md5={md5_of(archive)}")
    assert full.exit_code == 1 and isinstance(full.exception, DataError)
    assert "Checksum mismatch" in str(full.exception)


def make_folder(root, n_train=12, n_test=4):
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            path = root / split / ("red" if i % 2 else "blue") / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (50, 40), (200, 0, 0) if i % 2 else (0, 0, 200)).save(path)


def test_image_folder_source_resizes_to_image_size(tmp_path):
    make_folder(tmp_path)
    catalog = run_ingestion(
        {**PARAMS, "source": "image_folder", "val_size": 4, "image_size": 16}, folder=tmp_path)
    train = catalog.load("train_split")
    assert train["images"].shape == (8, 16, 16, 3)
    assert catalog.load("class_names") == ["blue", "red"]


def test_runtime_params_point_the_download_at_a_mirror(project, archive, http_server):
    http_server.files["/mirror/cifar.tar.gz"] = archive.read_bytes()
    bootstrap_project(project)
    runtime = {"cifar10_url": http_server.url + "/mirror/cifar.tar.gz", "cifar10_md5": md5_of(archive),
               "ingestion": {"val_size": 20}}
    with KedroSession.create(project_path=project, runtime_params=runtime) as session:
        session.run(pipeline_name="ingestion")
    assert (project / "data/01_raw/cifar-10-binary.tar.gz").read_bytes() == archive.read_bytes()
    assert len(_versions(project, "train_split.npz")) == 1


def test_the_sample_grid_puts_each_class_on_its_row_in_one_image():
    from simple_cnn.plots import image_grid

    images = np.zeros((30, 8, 8, 3), np.uint8)
    labels = np.arange(30) % 3
    images[labels == 1] = 100  # class 1 is gray, the others black; class 2 has 10 images
    figure = image_grid(images, labels, ["a", "b", "c"], per_class=4)
    (ax,) = figure.axes
    (shown,) = ax.images
    mosaic = np.asarray(shown.get_array())
    gap = 1
    assert mosaic.shape == (3 * 8 + 2 * gap, 4 * 8 + 3 * gap, 3)
    row = lambda r: mosaic[r * (8 + gap):r * (8 + gap) + 8]  # noqa: E731
    assert (row(0)[:, :8] == 0).all() and (row(1)[:, :8] == 100).all() and (row(2)[:, -8:] == 0).all()
    assert (mosaic[8] == 255).all()  # the white gap between rows
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
