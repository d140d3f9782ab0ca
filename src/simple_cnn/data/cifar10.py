"""CIFAR-10 in its official *binary* layout: download, verify, parse.

The archive ``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/`` with five training
batches, one test batch and ``batches.meta.txt``. Each batch is a run of 3,073-byte records:
one label byte, then 1,024 red, 1,024 green and 1,024 blue bytes of a 32x32 image, row-major.

It is parsed straight from the tar with NumPy. Nothing is ever unpickled: the "python"
flavour of CIFAR-10 is a pickle, and unpickling downloaded data can run arbitrary code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simple_cnn.data.raw import RawImages
from simple_cnn.errors import DataError

logger = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_SIZE = 170_052_171

IMAGE_SHAPE = (32, 32, 3)
RECORD_BYTES = 1 + 32 * 32 * 3
RECORDS_PER_BATCH = 10_000
TRAIN_MEMBERS = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_MEMBER = "test_batch.bin"
META_MEMBER = "batches.meta.txt"
NUM_CLASSES = 10

_CHUNK = 1 << 20


def md5_of(path: str | os.PathLike, opener=open) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks (``opener``: how to open it, e.g. a
    filesystem's ``open``)."""
    digest = hashlib.md5(usedforsecurity=False)
    with opener(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_md5(md5: str | None) -> str | None:
    """``None``/``"none"`` mean: skip the check. Anything else must be 32 hex digits."""
    if md5 is None or str(md5).strip().lower() in {"none", "null", ""}:
        return None
    value = str(md5).strip().lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise DataError(
            f"cifar10_md5={md5!r} is not an MD5 checksum (32 hexadecimal digits). "
            "Pass the archive's checksum, e.g. `kedro run --params cifar10_md5=<32 hex digits>`, "
            "or `cifar10_md5=none` to skip the check."
        )
    return value


def verify_archive(path, md5: str | None, fs=None) -> None:
    """Check an archive's checksum (and, for the official one, its size first: it is cheaper),
    on the local disk or on ``fs`` (an fsspec filesystem, e.g. object storage)."""
    if md5 is None:
        warnings.warn(
            f"cifar10_md5=none: the checksum of {path} is NOT verified. A truncated or "
            "tampered archive will only be caught if it fails to parse.",
            stacklevel=2,
        )
        logger.warning("Checksum check skipped for %s (cifar10_md5=none).", path)
        return
    if md5 == CIFAR10_MD5:
        size = fs.size(path) if fs is not None else Path(path).stat().st_size
        if size != CIFAR10_SIZE:
            raise DataError(
                f"{path} is {size:,} bytes, but the official CIFAR-10 binary archive is "
                f"{CIFAR10_SIZE:,} bytes: the file is truncated or not that archive. Delete it to "
                "download it again, or pass the right checksum with `--params cifar10_md5=...`."
            )
    actual = md5_of(path, fs.open if fs is not None else open)
    if actual != md5:
        raise DataError(
            f"Checksum mismatch for {path}: expected MD5 {md5}, got {actual}. Delete the file to "
            "download it again; if it is a trusted mirror or local copy, pass its checksum with "
            f"`kedro run --params cifar10_md5={actual}` (or `cifar10_md5=none` to skip the check)."
        )


def download(
    url: str,
    destination: Path,
    *,
    retries: int = 3,
    backoff_seconds: float = 1.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``destination`` atomically, resuming a partial download.

    Bytes go to ``<destination>.part``; an interrupted download resumes from there with an HTTP
    ``Range`` request. Only a complete download is renamed to ``destination``, so a partial
    file never passes for a whole one.
    """
    from tqdm.auto import tqdm

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        offset = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "simple-cnn"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if offset and response.status != 206:  # server ignored the Range: start over
                    offset = 0
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                with (
                    open(partial, "ab" if offset else "wb") as out,
                    tqdm(
                        total=total,
                        initial=offset,
                        unit="B",
                        unit_scale=True,
                        desc=destination.name,
                        disable=not progress,
                    ) as bar,
                ):
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            if total is not None and partial.stat().st_size != total:
                raise OSError(
                    f"connection closed after {partial.stat().st_size:,} of {total:,} bytes"
                )
            os.replace(partial, destination)
            return destination
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            if isinstance(error, urllib.error.HTTPError) and error.code == 416:
                partial.unlink(missing_ok=True)  # our partial file is bad: start over
            last_error = error
            logger.warning("Download attempt %d/%d of %s failed: %s", attempt, retries, url, error)
            if attempt < retries:
                time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise DataError(
        f"Could not download CIFAR-10 from {url} ({last_error}). Without network, put the "
        f"archive `cifar-10-binary.tar.gz` at {destination} yourself (a mirror works too: "
        "`kedro run --params cifar10_url=<url>,cifar10_md5=<its md5>`), or run offline on "
        "synthetic data with `kedro run --env smoke`."
    ) from last_error


def _parse_batch(data: bytes, name: str, archive: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    count, rest = divmod(len(data), RECORD_BYTES)
    if rest or not count:
        raise DataError(
            f"{archive}: member {name} is {len(data):,} bytes, not a whole number of "
            f"{RECORD_BYTES}-byte records (the official batches hold {RECORDS_PER_BATCH:,}, "
            f"{RECORD_BYTES * RECORDS_PER_BATCH:,} bytes). The archive is not the CIFAR-10 "
            "binary version or is damaged: delete it and download it again."
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(count, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        bad = int(np.flatnonzero(labels >= NUM_CLASSES)[0])
        raise DataError(
            f"{archive}: member {name} has label {labels[bad]} at record {bad}; CIFAR-10 "
            f"labels are 0-{NUM_CLASSES - 1}. The archive is damaged or not CIFAR-10."
        )
    images = records[:, 1:].reshape(count, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def parse_archive(path: str | os.PathLike, handle=None) -> RawImages:
    """Parse ``cifar-10-binary.tar.gz`` into uint8 images (N, 32, 32, 3) and int64 labels (from
    ``handle``, an open binary file, when given: ``path`` then only names it)."""
    path = Path(path) if handle is None else path
    wanted = set(TRAIN_MEMBERS) | {TEST_MEMBER, META_MEMBER}
    found: dict[str, bytes] = {}
    source = {"name": path} if handle is None else {"fileobj": handle}
    try:
        with tarfile.open(**source, mode="r|*") as tar:  # streaming: one pass over the gzip
            for member in tar:
                name = Path(member.name).name
                content = tar.extractfile(member) if member.isfile() and name in wanted else None
                if content is not None:
                    found[name] = content.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{path} is not a readable .tar.gz archive ({error}): it is truncated or corrupt. "
            "Delete it so that the next run downloads it again."
        ) from error
    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: it is not the CIFAR-10 *binary* archive "
            "(cifar-10-binary.tar.gz, with cifar-10-batches-bin/). Delete it and download it again."
        )
    train = [_parse_batch(found[name], name, path) for name in TRAIN_MEMBERS]
    test_images, test_labels = _parse_batch(found[TEST_MEMBER], TEST_MEMBER, path)
    class_names = [line.strip() for line in found[META_MEMBER].decode().splitlines() if line.strip()]
    if len(class_names) != NUM_CLASSES:
        raise DataError(
            f"{path}: {META_MEMBER} names {len(class_names)} classes, CIFAR-10 has {NUM_CLASSES}."
        )
    return RawImages(
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        class_names=class_names,
    )


@dataclass(frozen=True)
class Cifar10Archive:
    """Where the archive lives and where it comes from; nothing is read until :meth:`read`.
    ``filepath`` is a local path or any fsspec URL (``s3://bucket/raw/cifar-10-binary.tar.gz``),
    reached with ``storage`` (the catalog entry's ``credentials`` and ``fs_args``)."""

    filepath: str | Path
    url: str = CIFAR10_URL
    md5: str | None = CIFAR10_MD5
    storage: dict = field(default_factory=dict)

    def _remote(self):
        """The archive's filesystem and path when it is not on the local disk, else None."""
        import fsspec

        fs, path = fsspec.core.url_to_fs(str(self.filepath), **self.storage)
        return None if "file" in _protocols(fs) else (fs, path)

    def fetch(self, progress: bool = True) -> Path:
        """Make sure a verified archive is at ``filepath`` (on the local disk), downloading it if
        missing. Processes that fetch at once (two runs, torchrun's ranks) download it once: the
        others wait for the first under an OS file lock, then find the archive there."""
        from filelock import FileLock

        md5, path = normalise_md5(self.md5), Path(self.filepath)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(path.with_name(path.name + ".lock")):
                if not path.exists():
                    logger.info("%s not found: downloading %s", path, self.url)
                    download(self.url, path, progress=progress)
        verify_archive(path, md5)
        return path

    def read(self, progress: bool = True) -> RawImages:
        remote = self._remote()
        if remote is None:
            return parse_archive(self.fetch(progress=progress))
        fs, path = remote
        md5 = normalise_md5(self.md5)
        if not fs.exists(path):  # downloaded here, checked, then put where the catalog says
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                local = download(self.url, Path(folder) / Path(path).name, progress=progress)
                verify_archive(local, md5)
                fs.put_file(str(local), path)
        else:
            verify_archive(path, md5, fs)
        with fs.open(path, "rb") as handle:
            return parse_archive(self.filepath, handle)


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def write_archive(path: str | os.PathLike, raw: RawImages, compresslevel: int = 1) -> Path:
    """Write 32x32 RGB images in the official binary layout: train images spread over the
    five ``data_batch_*.bin`` members, test images in ``test_batch.bin``. Tests and
    benchmarks build their archives with it."""
    import io

    path = Path(path)

    def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
        records = np.empty((len(images), RECORD_BYTES), dtype=np.uint8)
        records[:, 0] = labels
        records[:, 1:] = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        return records.tobytes()

    chunks = zip(
        np.array_split(raw.train_images, len(TRAIN_MEMBERS)),
        np.array_split(raw.train_labels, len(TRAIN_MEMBERS)),
    )
    members = {
        f"cifar-10-batches-bin/{name}": batch_bytes(images, labels)
        for name, (images, labels) in zip(TRAIN_MEMBERS, chunks)
    }
    members[f"cifar-10-batches-bin/{TEST_MEMBER}"] = batch_bytes(raw.test_images, raw.test_labels)
    members[f"cifar-10-batches-bin/{META_MEMBER}"] = ("\n".join(raw.class_names) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
