import gzip
import io
import tarfile

import numpy as np
import pytest

from simple_cnn.data.cifar10 import (
    CIFAR10_MD5,
    Cifar10Archive,
    download,
    md5_of,
    parse_archive,
    write_archive,
)
from simple_cnn.errors import DataError


def test_parse_roundtrips_the_official_layout(archive, raw):
    parsed = parse_archive(archive)
    np.testing.assert_array_equal(parsed.train_images, raw.train_images)
    np.testing.assert_array_equal(parsed.train_labels, raw.train_labels)
    np.testing.assert_array_equal(parsed.test_images, raw.test_images)
    assert parsed.train_labels.dtype == np.int64
    assert parsed.train_images.shape == (100, 32, 32, 3) and parsed.train_images.dtype == np.uint8
    assert parsed.class_names == raw.class_names


def test_record_layout_is_label_then_red_green_blue_planes(tmp_path):
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 1] = (10, 20, 30)  # row 0, column 1
    record = bytes([7]) + image.transpose(0, 3, 1, 2).tobytes()
    assert record[1 + 1] == 10 and record[1 + 1024 + 1] == 20 and record[1 + 2048 + 1] == 30
    path = tmp_path / "a.tar.gz"
    _tar(path, {f"cifar-10-batches-bin/data_batch_{i}.bin": record for i in range(1, 6)}
         | {"cifar-10-batches-bin/test_batch.bin": record,
            "cifar-10-batches-bin/batches.meta.txt": "\n".join("abcdefghij").encode()})
    parsed = parse_archive(path)
    assert parsed.train_labels[0] == 7
    assert tuple(parsed.train_images[0, 0, 1]) == (10, 20, 30)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _members(archive):
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_truncated_archive_is_reported(archive, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_archive(broken)


def test_garbage_file_is_reported(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(DataError, match="not a readable"):
        parse_archive(bad)


def test_missing_member_is_named(archive, tmp_path):
    members = _members(archive)
    del members["cifar-10-batches-bin/data_batch_3.bin"]
    _tar(tmp_path / "m.tar.gz", members)
    with pytest.raises(DataError, match="lacks data_batch_3.bin"):
        parse_archive(tmp_path / "m.tar.gz")


def test_mis_sized_member_is_named(archive, tmp_path):
    members = _members(archive)
    members["cifar-10-batches-bin/test_batch.bin"] += b"\x00" * 5
    _tar(tmp_path / "m.tar.gz", members)
    with pytest.raises(DataError, match=r"test_batch.bin is .* not a whole number of 3073-byte records \(the official batches hold 10,000, 30,730,000 bytes\)"):
        parse_archive(tmp_path / "m.tar.gz")


@pytest.mark.parametrize("label", [10, 12, 255])
def test_label_outside_0_to_9_is_reported(raw, tmp_path, label):
    raw.train_labels[3] = label
    path = write_archive(tmp_path / "l.tar.gz", raw)
    with pytest.raises(DataError, match=f"label {label} .* labels are 0-9"):
        parse_archive(path)


def test_checksum_mismatch_shows_expected_and_actual(archive):
    actual = md5_of(archive)
    with pytest.raises(DataError) as error:
        Cifar10Archive(archive, md5="0" * 32).read()
    assert "0" * 32 in str(error.value) and actual in str(error.value)
    assert f"cifar10_md5={actual}" in str(error.value)


def test_official_checksum_checks_size_first(archive):
    with pytest.raises(DataError, match="170,052,171 bytes"):
        Cifar10Archive(archive, md5=CIFAR10_MD5).read()


def test_md5_none_skips_the_check_loudly(archive):
    with pytest.warns(UserWarning, match="NOT verified"):
        parsed = Cifar10Archive(archive, md5="none").read()
    assert len(parsed.train_images) == 100


@pytest.mark.parametrize("skip", ["none", "NULL", "", " None "])
def test_every_spelling_of_no_checksum_skips_it(archive, skip):
    with pytest.warns(UserWarning, match="NOT verified"):
        Cifar10Archive(archive, md5=skip).read(progress=False)


def test_malformed_md5_is_rejected(archive):
    with pytest.raises(DataError, match="32 hexadecimal digits"):
        Cifar10Archive(archive, md5="abc").read()


def test_download_verifies_and_parses(archive, http_server, tmp_path):
    http_server.files["/cifar.tar.gz"] = archive.read_bytes()
    target = tmp_path / "raw" / "cifar-10-binary.tar.gz"
    source = Cifar10Archive(target, url=http_server.url + "/cifar.tar.gz", md5=md5_of(archive))
    parsed = source.read(progress=False)
    assert target.read_bytes() == archive.read_bytes()
    assert len(parsed.test_images) == 30
    # present now: a second read does not download again
    source.read(progress=False)
    assert len(http_server.requests) == 1


def test_processes_that_fetch_at_once_download_once(archive, http_server, tmp_path):
    """(torchrun's ranks, or two runs, each read the archive when the pipeline starts.)"""
    from concurrent.futures import ThreadPoolExecutor

    http_server.files["/c"] = archive.read_bytes()
    target = tmp_path / "raw" / "cifar-10-binary.tar.gz"
    sources = [Cifar10Archive(target, url=http_server.url + "/c", md5=md5_of(archive)) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        fetched = list(pool.map(lambda source: source.fetch(progress=False), sources))
    assert fetched == [target] * 3 and target.read_bytes() == archive.read_bytes()
    assert len(http_server.requests) == 1


def test_download_resumes_after_a_dropped_connection(archive, http_server, tmp_path):
    data = archive.read_bytes()
    http_server.files["/c"] = data
    http_server.fail_first = 1
    target = tmp_path / "c.tar.gz"
    download(http_server.url + "/c", target, backoff_seconds=0, progress=False)
    assert target.read_bytes() == data
    assert http_server.requests[1]["Range"] == f"bytes={len(data) // 2}-"
    assert not (tmp_path / "c.tar.gz.part").exists()


def test_download_retries_with_exponential_backoff_then_gives_up(archive, http_server, tmp_path,
                                                                   monkeypatch):
    sleeps = []
    monkeypatch.setattr("simple_cnn.data.cifar10.time.sleep", sleeps.append)
    http_server.files["/c"] = archive.read_bytes()
    http_server.fail_first = 5
    target = tmp_path / "new" / "folder" / "c.tar.gz"
    with pytest.raises(DataError, match="Could not download"):
        download(http_server.url + "/c", target, retries=3, backoff_seconds=0.5, progress=False)
    assert len(http_server.requests) == 3 and sleeps == [0.5, 1.0]
    assert all(r["User-Agent"] == "simple-cnn" for r in http_server.requests)
    assert target.parent.is_dir()  # the folders were made


def test_a_server_that_ignores_range_gets_a_fresh_download(archive, http_server, tmp_path):
    """A 200 answer to a Range request is the whole file: write it from byte 0, not append."""
    data = archive.read_bytes()
    http_server.files["/c"] = data
    http_server.fail_first, http_server.honour_range = 1, False
    target = tmp_path / "c.tar.gz"
    download(http_server.url + "/c", target, backoff_seconds=0, progress=False)
    assert "Range" in http_server.requests[1] and target.read_bytes() == data


def test_a_partial_file_the_server_cannot_resume_is_restarted(archive, http_server, tmp_path):
    """HTTP 416 (our partial file is longer than the archive): start over from byte 0."""
    data = archive.read_bytes()
    http_server.files["/c"] = data
    target = tmp_path / "c.tar.gz"
    (tmp_path / "c.tar.gz.part").write_bytes(b"x" * (len(data) + 10))
    download(http_server.url + "/c", target, backoff_seconds=0, progress=False)
    assert target.read_bytes() == data
    assert len(http_server.requests) == 2 and "Range" not in http_server.requests[1]


def test_failed_download_leaves_no_file_that_passes_for_whole(archive, http_server, tmp_path):
    http_server.files["/c"] = archive.read_bytes()
    http_server.fail_first = 5
    target = tmp_path / "c.tar.gz"
    with pytest.raises(DataError, match="Could not download"):
        download(http_server.url + "/c", target, retries=2, backoff_seconds=0, progress=False)
    assert not target.exists()


def test_no_network_and_no_archive_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr("simple_cnn.data.cifar10.time.sleep", lambda seconds: None)
    target = tmp_path / "01_raw" / "cifar-10-binary.tar.gz"
    source = Cifar10Archive(target, url="http://127.0.0.1:9/nothing.tar.gz", md5="none")
    with pytest.raises(DataError) as error:
        source.fetch(progress=False)
    message = str(error.value)
    assert str(target) in message and "--env smoke" in message and "cifar10_url" in message


def test_archive_is_a_gzipped_tar_in_the_official_layout(archive, raw):
    """The .tar.gz convention: gzip outside, a tar inside, members under the official folder."""
    assert archive.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    with gzip.open(archive) as handle:
        header = handle.read(512)  # the first tar header
    assert header[257:262] == b"ustar"
    assert header[:21] == b"cifar-10-batches-bin/"
