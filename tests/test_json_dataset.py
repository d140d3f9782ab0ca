"""``AtomicJSONDataset``: a versioned JSON document whose saves are all or nothing."""

import pytest
from kedro.io.core import DatasetError, Version
from kedro_datasets.json import JSONDataset

from simple_cnn.datasets import AtomicJSONDataset

ROW = {"study": "norm", "test_accuracy": 0.5, "dead_units": {"features.0.act": 0.25}, "lr": [0.1, 0.2]}


def test_round_trip_reads_what_kedro_datasets_writes(tmp_path):
    first = AtomicJSONDataset(filepath=str(tmp_path / "row.json"), save_args={"indent": 2},
                              version=Version(None, "2026-01-01T00.00.00.000Z"))
    first.save(ROW)
    assert AtomicJSONDataset(filepath=str(tmp_path / "row.json"), version=Version(None, None)).load() == ROW
    assert '\n  "study": "norm"' in (tmp_path / "row.json/2026-01-01T00.00.00.000Z/row.json").read_text()
    assert JSONDataset(filepath=str(tmp_path / "row.json"), version=Version(None, None)).load() == ROW


def test_a_save_that_fails_midway_leaves_no_version(tmp_path, monkeypatch):
    """Bytes reach the disk, then the write fails: the version does not exist, the older one
    loads (kedro-datasets' JSONDataset would leave the truncated file as the newest)."""
    path = str(tmp_path / "row.json")
    AtomicJSONDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(ROW)

    class DiskFull:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[:5])
            self.handle.flush()
            raise OSError(28, "No space left on device")

    dataset = AtomicJSONDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z"))
    original = dataset._write
    monkeypatch.setattr(dataset, "_write", lambda write: original(lambda h: write(DiskFull(h))))
    with pytest.raises(DatasetError, match="No space left"):
        dataset.save({"study": "other"})
    assert list((tmp_path / "row.json/2026-01-02T00.00.00.000Z").glob("*")) == []
    assert AtomicJSONDataset(filepath=path, version=Version(None, None)).load() == ROW


def test_data_json_cannot_hold_fails_before_writing(tmp_path):
    dataset = AtomicJSONDataset(filepath=str(tmp_path / "row.json"), version=Version(None, None))
    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save({"bad": object()})
    assert not dataset.exists() and not list(tmp_path.glob("row.json/*/*"))
