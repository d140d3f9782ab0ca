"""Prediction speed: ``simple_cnn.inference``'s batched ``predict_files`` vs a per-image loop.

A folder of ``--n`` PNG files (test images of the CIFAR-10 archive, upscaled to ``--size``
pixels so that both sides resize them) is classified twice by the same saved model: by the
core module (decode each file, resize, then forward in batches) and by a tutorial-style loop
(open, transform, forward one image at a time). Both must agree on every predicted class.
Without ``--model`` an untrained model of the default shape is used (speed does not depend on
the weights). Last line: ``speedup <x>x (<n> files, same classes: <bool>)``.

    python benchmarks/predict_speed.py --archive data/01_raw/cifar-10-binary.tar.gz [--n 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from simple_cnn.data.cifar10 import parse_archive
from simple_cnn.data.decode import fit_to_square, to_rgb
from simple_cnn.inference import inference
from simple_cnn.model_format import describe_model, normaliser
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.parameters import CnnParams


def untrained_model(class_names: list[str]) -> dict:
    params = CnnParams()
    summary = {"class_names": class_names, "image_shape": [32, 32, 3],
               "train_pixel_mean": [0.49, 0.48, 0.45], "train_pixel_std": [0.25, 0.24, 0.26]}
    config = ModelConfig(**params.model.model_dump(), num_classes=len(class_names), image_size=32)
    torch.manual_seed(0)
    return {"state_dict": SimpleCNN(config).state_dict(), "training": {},
            **describe_model(config, class_names, normaliser(params, summary, config))}


def per_image_loop(run, files: list[Path]) -> list[str]:
    """What a first script does: one file, one transform, one forward at a time."""
    mean = torch.tensor(run.augment.mean)[:, None, None]
    std = torch.tensor(run.augment.std)[:, None, None]
    out = []
    with torch.no_grad():
        for file in files:
            with Image.open(file) as image:
                pixels = np.asarray(fit_to_square(to_rgb(image), run.config.image_size))
            x = (torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255 - mean) / std
            out.append(run.class_names[int(run.model(x[None]).argmax(1))])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="a saved cnn_model.pt (default: untrained)")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64, help="side of the PNG files")
    args = parser.parse_args()

    raw = parse_archive(args.archive)
    saved = (torch.load(args.model, map_location="cpu", weights_only=True) if args.model
             else untrained_model(raw.class_names))
    run = inference(saved, "cpu")
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for i, image in enumerate(raw.test_images[: args.n]):
            path = Path(folder) / f"{i:05d}.png"
            Image.fromarray(image).resize((args.size, args.size), Image.Resampling.BILINEAR).save(path)
            files.append(path)
        print(f"{len(files)} PNG files of {args.size}x{args.size}, model {args.model or 'untrained'}, "
              f"{torch.get_num_threads()} torch threads")
        started = time.perf_counter()
        ours, _ = run.predict_files(folder, k=1)
        core = time.perf_counter() - started
        started = time.perf_counter()
        loop = per_image_loop(run, files)
        looped = time.perf_counter() - started
    same = [top[0][0] for _, top in sorted(ours.items())] == loop
    print(f"core predict_files: {core:.2f} s ({len(files) / core:,.0f} images/s)")
    print(f"per-image loop:     {looped:.2f} s ({len(files) / looped:,.0f} images/s)")
    print(f"speedup {looped / core:.2f}x ({len(files)} files, same classes: {same})")


if __name__ == "__main__":
    main()
