import numpy as np
import pytest
import torch
from kedro.io import DatasetError, Version

from simple_cnn.datasets import NumpyDataset, TorchStateDictDataset


def test_npz_roundtrip(tmp_path):
    data = {"images": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), "labels": np.array([1, 0])}
    dataset = NumpyDataset(filepath=str(tmp_path / "split.npz"))
    dataset.save(data)
    loaded = dataset.load()
    assert loaded.keys() == data.keys()
    np.testing.assert_array_equal(loaded["images"], data["images"])


def test_npy_roundtrip_with_mmap(tmp_path):
    array = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    NumpyDataset(filepath=str(tmp_path / "a.npy")).save(array)
    loaded = NumpyDataset(filepath=str(tmp_path / "a.npy"), mmap_mode="r").load()
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, array)


def test_versions_accumulate_and_old_ones_stay_loadable(tmp_path):
    path = str(tmp_path / "a.npy")
    NumpyDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(np.zeros(3))
    NumpyDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(np.ones(3))
    latest = NumpyDataset(filepath=path, version=Version(None, None)).load()
    oldest = NumpyDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    np.testing.assert_array_equal(latest, np.ones(3))
    np.testing.assert_array_equal(oldest, np.zeros(3))


def test_failed_save_leaves_no_version_behind(tmp_path, monkeypatch):
    """The writer fails after bytes reached the disk: no half-written file may pass for a
    version, and the newest complete version still loads."""
    path = str(tmp_path / "a.npz")
    NumpyDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save({"x": np.ones(2)})

    def disk_full(handle, **arrays):
        handle.write(b"PK\x03\x04" + b"\0" * 4096)  # the start of a zip, then the disk is full
        handle.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(DatasetError, match="No space left"):
        NumpyDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
            {"x": np.zeros(2)})
    monkeypatch.undo()
    assert list((tmp_path / "a.npz" / "2026-01-02T00.00.00.000Z").glob("*")) == []
    latest = NumpyDataset(filepath=path, version=Version(None, None)).load()
    np.testing.assert_array_equal(latest["x"], np.ones(2))


def test_bad_suffix_and_type_are_rejected(tmp_path):
    with pytest.raises(DatasetError, match=".npy .* or .npz"):
        NumpyDataset(filepath=str(tmp_path / "a.csv"))
    with pytest.raises(DatasetError, match="saves one array"):
        NumpyDataset(filepath=str(tmp_path / "a.npy")).save({"a": np.ones(1)})


def test_state_dict_roundtrip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    dataset = TorchStateDictDataset(filepath=str(tmp_path / "m.pt"), version=Version(None, None))
    dataset.save(model)
    loaded = TorchStateDictDataset(filepath=str(tmp_path / "m.pt"), version=Version(None, None)).load()
    torch.testing.assert_close(loaded["weight"], model.weight.detach())


def test_exists_before_and_after_a_save(tmp_path):
    """--only-missing-outputs relies on exists(): False until a version is saved."""
    dataset = NumpyDataset(filepath=str(tmp_path / "a.npy"), version=Version(None, None))
    assert not dataset.exists()
    dataset.save(np.ones(2))
    assert NumpyDataset(filepath=str(tmp_path / "a.npy"), version=Version(None, None)).exists()


@pytest.mark.parametrize("name", ["a.npy", "a.npz"])
def test_pickled_object_arrays_are_refused_on_load(tmp_path, name):
    folder = tmp_path / name / "2026-01-01T00.00.00.000Z"
    folder.mkdir(parents=True)
    evil = np.array([{"not": "an array"}], dtype=object)
    if name.endswith(".npy"):
        np.save(folder / name, evil, allow_pickle=True)
    else:
        np.savez(folder / name, x=evil)
    dataset = NumpyDataset(filepath=str(tmp_path / name), version=Version(None, None))
    with pytest.raises(DatasetError, match="allow_pickle"):
        dataset.load()["x"] if name.endswith(".npz") else dataset.load()


def test_object_arrays_and_non_arrays_are_refused_on_save(tmp_path):
    with pytest.raises(DatasetError):
        NumpyDataset(filepath=str(tmp_path / "a.npy")).save(np.array([{}], dtype=object))
    with pytest.raises(DatasetError, match="saves a dict of"):
        NumpyDataset(filepath=str(tmp_path / "a.npz")).save({"x": np.ones(2), "y": [1, 2]})


def test_npz_loads_as_a_plain_dict_and_compress_shrinks_the_file(tmp_path):
    data = {"zeros": np.zeros(100_000)}
    plain = NumpyDataset(filepath=str(tmp_path / "plain.npz"))
    small = NumpyDataset(filepath=str(tmp_path / "small.npz"), compress=True)
    plain.save(data)
    small.save(data)
    assert (tmp_path / "small.npz").stat().st_size < (tmp_path / "plain.npz").stat().st_size / 50
    loaded = small.load()
    assert type(loaded) is dict and np.array_equal(loaded["zeros"], data["zeros"])


def test_dotted_folders_metadata_and_fs_args_are_honoured(tmp_path):
    dataset = NumpyDataset(filepath=str(tmp_path / "v1.2" / "a.npz"), fs_args={"auto_mkdir": True},
                           metadata={"kedro-viz": {"layer": "primary"}})
    dataset.save({"x": np.ones(1)})
    assert dataset.metadata == {"kedro-viz": {"layer": "primary"}}
    assert NumpyDataset(filepath=str(tmp_path / "b.npy"),
                        fs_args={"auto_mkdir": False})._fs.auto_mkdir is False
    with pytest.raises(DatasetError, match="mmap_mode works with .npy files only"):
        NumpyDataset(filepath=str(tmp_path / "a.npz"), mmap_mode="r")


def test_versions_on_another_fsspec_filesystem():
    """The protocol, its filesystem and its glob/exists reach Kedro's versioning: a versioned
    dataset on fsspec's in-memory filesystem saves, finds its newest version and loads."""
    import fsspec

    memory = fsspec.filesystem("memory")
    path = "memory:///simple-cnn-test/a.npz"
    for stamp, value in (("2026-01-01T00.00.00.000Z", 0.0), ("2026-01-02T00.00.00.000Z", 1.0)):
        NumpyDataset(filepath=path, version=Version(None, stamp)).save({"x": np.full(2, value)})
    assert memory.exists("/simple-cnn-test/a.npz/2026-01-02T00.00.00.000Z/a.npz")
    latest = NumpyDataset(filepath=path, version=Version(None, None))
    assert latest.exists() and latest.load()["x"].tolist() == [1.0, 1.0]
    assert not memory.glob("/simple-cnn-test/**/*.partial")
    memory.rm("/simple-cnn-test", recursive=True)
