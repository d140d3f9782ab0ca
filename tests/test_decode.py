"""Images a user sends: every case as a real file, decoded the same way by the image folder,
the ``predict`` pipeline's reader and the served model."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simple_cnn.data.decode import BACKGROUND, Limits, decode, fit_to_square
from simple_cnn.data.image_folder import decode_image, read_images
from simple_cnn.errors import DataError


def _bytes(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def _halves(left, right, mode="RGB", size=(16, 8)) -> Image.Image:
    """An image whose left half is ``left`` and right half ``right``."""
    image = Image.new(mode, size, left)
    image.paste(Image.new(mode, (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def test_a_strip_of_two_million_pixels_is_refused_by_name_not_resized_to_gigabytes(tmp_path):
    strip = _bytes(Image.new("L", (2_000_000, 1), 128), "PNG")
    assert len(strip) < 10_000  # a small file: only its shape is the problem
    (tmp_path / "strip.png").write_bytes(strip)
    Image.new("RGB", (40, 30), (9, 9, 9)).save(tmp_path / "fine.png")
    with pytest.raises(DataError, match=r"strip\.png is refused: 2000000 x 1 pixels, an aspect "
                                        r"ratio above the limit of 64:1"):
        read_images(tmp_path, 32)
    with pytest.raises(DataError, match=r"request: strip\.png is refused"):
        decode_image("strip.png", strip, 32)
    wide = _bytes(Image.new("L", (600, 10), 128), "PNG")  # 60:1 is within the limit
    assert decode_image("wide.png", wide, 32).shape == (32, 32, 3)
    with pytest.raises(DataError, match=r"aspect ratio above the limit of 50:1"):
        decode_image("wide.png", wide, 32, Limits(aspect_ratio=50))


def test_the_resize_cuts_the_centre_square_in_the_source_whatever_the_shape():
    bands = np.zeros((10, 630, 3), np.uint8)  # 63:1, three bands: the centre one is green
    bands[:, :310, 0], bands[:, 310:320, 1], bands[:, 320:, 2] = 255, 255, 255
    square = np.asarray(fit_to_square(Image.fromarray(bands), 32))
    assert square.shape == (32, 32, 3)
    inside = square[:, 3:-3]  # the filter blends the edge columns with their neighbours
    assert (inside[..., 1] > 200).all() and inside[..., 0].max() < 60 and inside[..., 2].max() < 60


def test_the_exif_orientation_is_applied():
    picture = _halves((255, 0, 0), (0, 0, 255), size=(32, 16))  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    upright = decode(_bytes(picture, "JPEG", exif=exif, quality=95), 8, resize=lambda im, s: im)
    assert upright.shape == (32, 16, 3)  # tall now: the phone's portrait
    assert upright[2, 8, 0] > 200 and upright[-3, 8, 2] > 200  # red on top, blue below
    as_stored = decode(_bytes(picture, "JPEG", quality=95), 8, resize=lambda im, s: im)
    assert as_stored.shape == (16, 32, 3)


@pytest.mark.parametrize("image", [
    _halves((0, 0, 0, 0), (200, 0, 0, 255), "RGBA"),  # a transparent background with black RGB
    _halves((0, 0), (90, 255), "LA"),
], ids=["RGBA", "LA"])
def test_transparency_is_composited_onto_white(image):
    pixels = decode(_bytes(image, "PNG"), 8, resize=lambda im, s: im)
    assert pixels[:, :8].tolist() == np.full((8, 8, 3), BACKGROUND).tolist()
    assert pixels[0, 12, 0] in (200, 90)


def test_a_palette_image_with_a_transparent_colour_is_composited_onto_white():
    image = _halves((0, 0, 0), (0, 150, 0)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    black = image.getpixel((0, 0))
    pixels = decode(_bytes(image, "PNG", transparency=black), 8, resize=lambda im, s: im)
    assert pixels[0, 0].tolist() == list(BACKGROUND) and pixels[0, 12].tolist() == [0, 150, 0]
    gif = decode(_bytes(image, "GIF", transparency=black), 8, resize=lambda im, s: im)
    assert gif[0, 0].tolist() == list(BACKGROUND)


@pytest.mark.parametrize("values, expected", [
    ([0.0, 0.5, 1.0], [0, 128, 255]),  # floats in 0..1
    ([0.0, 128.0, 255.0], [0, 128, 255]),  # floats in 0..255: not all white
    ([0.0, 32896.0, 65535.0], [0, 128, 255]),  # floats in 0..65535
])
def test_a_float_tiff_is_read_by_the_range_its_values_use(values, expected):
    image = Image.fromarray(np.array([values] * 3, dtype=np.float32), mode="F")
    pixels = decode(_bytes(image, "TIFF"), 3, resize=lambda im, s: im)
    assert pixels[1, :, 0].tolist() == expected


def test_cmyk_and_16_bit_images_keep_their_colours():
    cmyk = decode(_bytes(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), 4)
    assert cmyk[0, 0].tolist() == [255, 0, 0]
    sixteen = Image.fromarray(np.full((4, 4), 32896, np.uint16))
    assert decode(_bytes(sixteen, "PNG"), 4)[0, 0].tolist() == [128, 128, 128]


def test_only_the_listed_formats_are_decoded_whatever_the_file_is_called(tmp_path):
    eps = _bytes(Image.new("RGB", (8, 8), (255, 0, 0)), "EPS")  # would start Ghostscript
    assert eps.startswith(b"%!PS")
    assert decode(eps, 8) is None
    assert decode_image("red.png", eps, 8) is None
    ico = _bytes(Image.new("RGB", (16, 16), (255, 0, 0)), "ICO")
    assert decode(ico, 8) is None
    (tmp_path / "red.eps").write_bytes(eps)
    (tmp_path / "disguised.png").write_bytes(eps)
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "green.webp", lossless=True)
    names, images, skipped = read_images(tmp_path, 8)
    assert names == ["green.webp"] and images[0, 0, 0].tolist() == [0, 255, 0]
    assert skipped == [("disguised.png", "cannot be read as an image"),
                       ("red.eps", "not one of the image formats read (PNG, JPEG, BMP, GIF, "
                                   "TIFF, WEBP, PPM)")]


CASES = {
    "rgba.png": lambda: _bytes(_halves((0, 0, 0, 0), (200, 0, 0, 255), "RGBA", (40, 20)), "PNG"),
    "float.tiff": lambda: _bytes(Image.fromarray(np.linspace(0, 255, 400, dtype=np.float32)
                                                 .reshape(20, 20), mode="F"), "TIFF"),
    "portrait.jpg": lambda: _bytes(_halves((255, 0, 0), (0, 0, 255), size=(48, 24)), "JPEG",
                                   exif=_rotated()),
    "palette.gif": lambda: _bytes(_halves((0, 0, 0), (0, 150, 0), size=(30, 30))
                                  .convert("P", palette=Image.Palette.ADAPTIVE, colors=4), "GIF",
                                  transparency=0),
}


def _rotated() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 8
    return exif


@pytest.fixture
def case_folder(tmp_path) -> Path:
    for name, make in CASES.items():
        (tmp_path / name).write_bytes(make())
    return tmp_path


def test_the_reader_and_the_served_model_decode_every_case_alike(case_folder, smoke_project):
    """The served model (in this process, as ``mlflow models serve`` calls it) answers each case
    exactly as the model predicts the reader's pixels."""
    pytest.importorskip("mlflow")
    import pandas as pd

    from simple_cnn.inference import load, prediction_rows
    from simple_cnn.serving import ServedCnn

    model_file = sorted((smoke_project / "data/06_models/cnn_model.pt").glob("*/cnn_model.pt"))[-1]
    names, images, skipped = read_images(case_folder, 32)
    assert not skipped and names == sorted(CASES)
    for name, pixels in zip(names, images):
        np.testing.assert_array_equal(decode_image(name, (case_folder / name).read_bytes(), 32), pixels)
    served = _served(ServedCnn(), model_file)
    request = pd.DataFrame({"file": names, "image": [
        base64.b64encode((case_folder / n).read_bytes()).decode() for n in names]})
    run = load(model_file, "cpu")
    expected = pd.DataFrame(prediction_rows(names, run.predict(images, 3), None))
    pd.testing.assert_frame_equal(served.predict(None, request), expected)


def _served(model, model_file: Path):
    class Context:
        artifacts = {"cnn_model": str(model_file)}
        model_config = {"model_version": None}

    model.load_context(Context())
    return model


@pytest.mark.parametrize("params, message", [
    ({"top_k": 0}, r"params\.top_k=0: must be a whole number from 1 to 10"),
    ({"top_k": -1}, r"params\.top_k=-1: must be a whole number from 1 to 10"),
    ({"top_k": 11}, r"params\.top_k=11: must be a whole number from 1 to 10"),
    ({"flip_tta": "yes"}, r"params\.flip_tta='yes': must be true or false"),
])
def test_the_served_model_refuses_settings_outside_their_range_naming_them(smoke_project, params, message):
    pytest.importorskip("mlflow")
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from simple_cnn.serving import ServedCnn

    model_file = sorted((smoke_project / "data/06_models/cnn_model.pt").glob("*/cnn_model.pt"))[-1]
    served = _served(ServedCnn(), model_file)
    png = base64.b64encode(_bytes(Image.new("RGB", (8, 8)), "PNG")).decode()
    with pytest.raises(MlflowException, match=message) as refused:
        served.predict(None, pd.DataFrame({"image": [png]}), params)
    assert refused.value.get_http_status_code() == 400
    none = served.predict(None, pd.DataFrame({"file": [], "image": []}), {"top_k": 2})
    assert len(none) == 0 and list(none.columns)[:5] == ["file", "predicted_class", "probability",
                                                          "top1_class", "top1_probability"]
    ten = served.predict(None, pd.DataFrame({"image": [png]}), {"top_k": 10})
    assert "top10_class" in ten and "top11_class" not in ten
    strip = base64.b64encode(_bytes(Image.new("L", (2_000_000, 1)), "PNG")).decode()
    with pytest.raises(MlflowException, match=r"row 'strip': .*aspect ratio") as refused:
        served.predict(None, pd.DataFrame({"file": ["strip"], "image": [strip]}))
    assert refused.value.get_http_status_code() == 400
