import tarfile

import numpy as np
import pytest
from PIL import Image

from simple_cnn.data.image_folder import read_image_folder
from simple_cnn.errors import DataError


def _write(root, split, cls, name, size=(40, 24), colour=(255, 0, 0), fmt="PNG"):
    path = root / split / cls / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            _write(root, split, "cats", f"{i}.png", colour=(200, 10, 10))
            _write(root, split, "dogs", f"{i}.jpg", colour=(10, 10, 200), fmt="JPEG")
    return root


def test_reads_and_resizes_a_folder(folder):
    raw = read_image_folder(folder, image_size=16)
    assert raw.class_names == ["cats", "dogs"]
    assert raw.train_images.shape == (6, 16, 16, 3) and raw.train_images.dtype == np.uint8
    assert sorted(raw.train_labels.tolist()) == [0, 0, 0, 1, 1, 1]
    cats = raw.train_images[raw.train_labels == 0]
    assert cats[..., 0].mean() > 150 and cats[..., 2].mean() < 60


def test_reads_a_tar_gz_with_a_top_folder(folder, tmp_path):
    path = tmp_path / "images.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="mydata")
    raw = read_image_folder(path, image_size=8)
    assert len(raw.train_images) == 6 and len(raw.test_images) == 4


def test_empty_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no train images"):
        read_image_folder(tmp_path / "empty")


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere")


def test_one_class_is_reported(tmp_path):
    _write(tmp_path, "train", "only", "a.png")
    _write(tmp_path, "test", "only", "a.png")
    with pytest.raises(DataError, match="only one class"):
        read_image_folder(tmp_path)


def test_unreadable_images_are_named(folder):
    (folder / "train" / "cats" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"1 image\(s\) cannot be read: train/cats/broken.png"):
        read_image_folder(folder)
