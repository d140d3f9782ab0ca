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


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", np.array([[0, 32896, 65535]], dtype=np.uint16), [0, 128, 255]),  # 16-bit gray PNG
    ("L", np.array([[0, 128, 255]], dtype=np.uint8), [0, 128, 255]),
])
def test_every_bit_depth_keeps_its_brightness(tmp_path, mode, values, expected):
    """A 16-bit PNG is scaled to 8 bits, not clipped to white (Pillow's convert clips)."""
    for split in ("train", "test"):
        for cls in ("a", "b"):
            path = tmp_path / split / cls / "x.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.repeat(values, 3, axis=0)).save(path)
            assert Image.open(path).mode == mode
    raw = read_image_folder(tmp_path, image_size=3)
    np.testing.assert_array_equal(raw.train_images[0, 1, :, 0], expected)
    assert (raw.train_images[0, ..., 0] == raw.train_images[0, ..., 2]).all()  # gray stays gray


def test_palette_and_alpha_images_become_rgb(tmp_path):
    for split in ("train", "test"):
        _write(tmp_path, split, "red", "a.png", colour=(250, 0, 0))
        path = tmp_path / split / "blue" / "b.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (8, 8), (0, 0, 250, 128)).save(path)
    raw = read_image_folder(tmp_path, image_size=4)
    # half-transparent blue on the white background: 250 * 128/255 + 255 * 127/255 for blue
    np.testing.assert_allclose(raw.train_images[0, 0, 0], [127, 127, 252], atol=1)


def test_bmp_images_and_nested_class_folders_are_read(tmp_path):
    for split in ("train", "test"):
        _write(tmp_path, split, "cats", "a.png", colour=(200, 0, 0))
        _write(tmp_path, split, "dogs", "b.bmp", colour=(0, 0, 200), fmt="BMP")
        _write(tmp_path, split, "dogs", "indoor/c.gif", colour=(0, 0, 200), fmt="GIF")
    raw = read_image_folder(tmp_path, image_size=8)
    assert raw.class_names == ["cats", "dogs"]
    assert np.bincount(raw.train_labels).tolist() == [1, 2]


def test_a_val_folder_is_the_validation_split(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for i in range(n):
            _write(tmp_path, split, "cats", f"{i}.png")
            _write(tmp_path, split, "dogs", f"{i}.png", colour=(0, 0, 200))
    raw = read_image_folder(tmp_path, image_size=8)
    assert len(raw.train_labels) == 8 and len(raw.val_labels) == 4 and len(raw.test_labels) == 4


def test_skipped_files_are_logged_by_name(folder, caplog):
    (folder / "train" / "notes.txt").write_text("not an image")
    (folder / "train" / "cats" / "readme.md").write_text("not an image")
    with caplog.at_level("WARNING"):
        read_image_folder(folder, image_size=8)
    assert "skipped 2 file(s)" in caplog.text
    assert "train/notes.txt (not under <split>/<class>/)" in caplog.text
    assert "train/cats/readme.md (not one of the image formats read (PNG, JPEG, BMP, GIF, TIFF, WEBP, PPM))" in caplog.text


def test_a_file_past_the_size_limit_is_refused_by_name_before_it_is_read(folder, tmp_path):
    from simple_cnn.data.decode import Limits

    big = _write(folder, "train", "cats", "huge.png", size=(300, 300))
    big.write_bytes(big.read_bytes() + bytes(50_000))  # a PNG with trailing bytes
    path = tmp_path / "images.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="mydata")
    for source in (folder, path):
        with pytest.raises(DataError, match=r"train/cats/huge.png is \d+\.\d KiB, above the limit "
                                            r"of 19\.5 KiB per image file.*max_file_mb"):
            read_image_folder(source, limits=Limits(file_bytes=20_000))
    with pytest.raises(DataError, match=r"the image files up to .* add up to more than .*max_total_mb"):
        read_image_folder(folder, limits=Limits(total_bytes=30_000))


def test_an_image_of_absurd_size_is_refused_by_name(folder):
    from simple_cnn.data.decode import Limits

    _write(folder, "train", "cats", "wide.png", size=(400, 300))
    with pytest.raises(DataError, match=r"train/cats/wide.png is refused: 400 x 300 pixels, above "
                                        r"the limit of 100,000 pixels"):
        read_image_folder(folder, limits=Limits(image_pixels=100_000))
    (folder / "train/cats/wide.png").unlink()
    Image.new("1", (20_000, 10_000)).save(folder / "train/dogs/bomb.png")  # 200 MP: Pillow's bomb
    with pytest.raises(DataError, match=r"train/dogs/bomb.png is refused: .*decompression bomb"):
        read_image_folder(folder)
