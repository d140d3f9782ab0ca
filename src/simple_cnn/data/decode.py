"""One image file's bytes -> a small uint8 RGB square, within limits, whatever the file holds.

The image folder (training), the ``predict`` pipeline and the served model all decode through
:func:`decode`, so they agree on every file:

- **Formats.** Only :data:`FORMATS` are decoded (``Image.open(..., formats=FORMATS)``): bytes of
  any other format (EPS, which would start Ghostscript, PSD, ICO, ...) are not an image here.
- **Limits.** A file's bytes and an image's pixels are checked before it is decoded, and its
  aspect ratio too: the resize makes only the ``size`` x ``size`` output (the crop is taken in
  the source's coordinates), so no decoded or resized image is larger than ``Limits`` allows.
- **Orientation.** The EXIF orientation is applied (a phone photo is upright).
- **Transparency.** Alpha (RGBA, LA, PA, a palette's transparent colour) is composited onto
  :data:`BACKGROUND`, white, as a viewer shows it, instead of being dropped (a transparent
  background would read as black).
- **Every mode by its range.** 16-bit gray is scaled from 0..65535; 32-bit integers and
  floats by the range their values use (floats in 0..1, 0..255 or 0..65535); CMYK, YCbCr,
  LAB and HSV are converted to RGB.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
"""The image formats read (Pillow's names); the docs list the same."""
IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in FORMATS)
BACKGROUND = (255, 255, 255)
"""What transparent pixels are composited onto."""
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class TooLarge(ValueError):
    """An image past :class:`Limits`; the message says which limit."""


@dataclass(frozen=True)
class Limits:
    """What one read may take: the bytes of one file, of all files together, the pixels of one
    image (Pillow's own bomb check stops only at about 179 million) and its aspect ratio (the
    longer side over the shorter: a 2,000,000 x 1 strip is no photograph). A file past a limit
    is refused by name, before it is decoded."""

    file_bytes: int = 64 * 2**20
    total_bytes: int = 16 * 2**30
    image_pixels: int = 64 * 2**20
    aspect_ratio: float = 64.0


def fit_to_square(image: Image.Image, size: int) -> Image.Image:
    """The prediction-time resize rule: the centre square of the image (its shorter side), resized
    to ``size`` x ``size`` (bilinear, antialiased), so no image is squashed. The square is cut in
    the source's coordinates, so the resize makes nothing larger than its output."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def squash_to_square(image: Image.Image, size: int) -> Image.Image:
    """The training-time rule of an image folder: the whole image resized to ``size`` x ``size``."""
    return image.resize((size, size), Image.Resampling.BILINEAR)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any mode, each by its range (Pillow's own ``convert`` clips 16- and 32-bit
    gray, turning it white, and drops alpha)."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        full = 65535.0 if image.mode in _SIXTEEN_BIT else _full_scale(values, image.mode == "F")
        gray = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in _WITH_ALPHA or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("LA").convert("RGBA") if image.mode == "La" else image.convert("RGBA")
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _full_scale(values: np.ndarray, floats: bool) -> float:
    """The top of the range a 32-bit image's values use: 1 (floats in 0..1), 255 or 65535."""
    top = float(values.max()) if values.size else 0.0
    if floats and top <= 1.0:
        return 1.0
    return 255.0 if top <= 255 else 65535.0


def check_size(width: int, height: int, limits: Limits) -> None:
    """Raise :class:`TooLarge` for an image past the pixel or aspect-ratio limit."""
    if width * height > limits.image_pixels:
        raise TooLarge(f"{width} x {height} pixels, above the limit of {limits.image_pixels:,} "
                       "pixels per image (a decompression bomb, or an image far larger than a "
                       "classifier needs)")
    if max(width, height) > limits.aspect_ratio * max(1, min(width, height)):
        raise TooLarge(f"{width} x {height} pixels, an aspect ratio above the limit of "
                       f"{limits.aspect_ratio:g}:1 (a strip, not a picture)")


def decode(data: bytes, size: int, limits: Limits = Limits(), resize=fit_to_square) -> np.ndarray | None:
    """The image in ``data`` as uint8 RGB (size, size, 3) by ``resize``; None if it is not an
    image of :data:`FORMATS`; :class:`TooLarge` past ``limits`` (checked before decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # limits are ours
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                check_size(*image.size, limits)
                upright = ImageOps.exif_transpose(image)
                return np.asarray(resize(to_rgb(upright), size))
    except Image.DecompressionBombError as error:
        raise TooLarge(str(error)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, TooLarge):
            raise
        return None
