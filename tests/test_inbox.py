"""Finding batches at a location (folder or S3 prefix), and saying why none was found.

A backlog run over a folder of scans without a manifest, a mistyped path or an empty prefix used to log only
"0 batch(es)" and succeed: a location that does not exist is now ``BATCH_NOT_FOUND``, and one that holds no
complete batch is explained in words for the officer, with what to do.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from digitize.errors import BatchNotFound
from digitize.intake import find_batches, why_no_batches

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _scans(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"scan " + name.encode())
    return folder


def test_scans_without_a_manifest_are_no_batch_and_the_officer_is_told_what_to_add(tmp_path: Path) -> None:
    folder = _scans(tmp_path / "b-walk", "scan_1.png", "scan_2.png", "scan_3.png", "scan_4.png", ".DS_Store")
    (folder / "_READY").touch()
    assert find_batches(str(folder)) == []
    said = why_no_batches(str(folder))
    assert said.startswith(f"{folder} holds 4 file(s) (scan_1.png, scan_2.png, scan_3.png …) but no manifest.csv "
                           "and no _UNIT, so it is no batch: add a manifest.csv")
    assert "_UNIT file with the scanning unit's agency code" in said and "its own sub-folder" in said
    for section in ("Batches and the manifest", "Digitizing without typing"):  # the README sections it points to
        assert f'README, "{section}"' in said and f"## {section}\n" in README


def test_an_empty_folder_is_said_to_be_empty(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    _scans(folder / ".hidden", "a.png")
    (folder / "_READY").touch()
    assert find_batches(str(folder)) == []
    assert why_no_batches(str(folder)) == (
        f"{folder} is empty (no scans, no sub-folder): check the path, or put a batch there (its scans and "
        "manifest.csv) or one sub-folder per batch.")


def test_sub_folders_none_complete_are_listed_with_their_reasons(tmp_path: Path) -> None:
    for n in range(6):
        (tmp_path / f"b{n}").mkdir()
    copying = _scans(tmp_path / "a-copying", "a.png", "manifest.csv")
    now = time.time()
    assert find_batches(str(tmp_path), quiet_seconds=60, now=now) == []
    said = why_no_batches(str(tmp_path), quiet_seconds=60, now=now)
    assert said.startswith(f"None of the 7 sub-folder(s) of {tmp_path} is a complete batch (a-copying: it has no "
                           "_READY file and its newest file changed 0 s ago; without _READY a batch is complete "
                           "after 60 s without change; b0: it holds no scans and no manifest.csv yet; b1: ")
    assert said.endswith("b3: it holds no scans and no manifest.csv yet; and 2 more).")
    _scans(tmp_path, "stray.pdf")
    assert why_no_batches(str(tmp_path), quiet_seconds=60, now=now).endswith(
        f"and 2 more). {tmp_path} holds 1 file(s) (stray.pdf) but no manifest.csv and no _UNIT, so it is no batch: "
        'add a manifest.csv listing the scans (README, "Batches and the manifest"), or, for scanned stacks with '
        "cover sheets, a one-line _UNIT file with the scanning unit's agency code (README, \"Digitizing without "
        'typing"), or put each batch in its own sub-folder.')
    assert [b.name for b in find_batches(str(tmp_path), quiet_seconds=60, now=now + 61)] == [copying.name]


def test_a_location_that_does_not_exist_is_batch_not_found_naming_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "b-walk").mkdir()
    (tmp_path / ".hidden").mkdir()
    mistyped = tmp_path / "b-wlak" / "2021"
    for call in (find_batches, why_no_batches):
        with pytest.raises(BatchNotFound) as missing:
            call(str(mistyped))
        assert str(missing.value) == (f"[BATCH_NOT_FOUND] no folder {mistyped}; the nearest folder above it that "
                                      f"exists is {tmp_path} (folders there: b-walk)")
        assert "every worker mounts at the same path" in missing.value.hint
    scan = _scans(tmp_path / "b-walk", "a.png") / "a.png"
    with pytest.raises(BatchNotFound, match=r"a\.png is a file, not a folder of batches"):
        find_batches(str(scan))


def test_an_s3_location_empty_not_ready_or_missing(s3_server: str) -> None:
    from digitize.archive import S3Archive, make_s3_client

    client = make_s3_client(s3_server, credentials=("testing", "testing"))
    inbox = S3Archive(client, "why-inbox")
    inbox.ensure_bucket()
    inbox.put("scans/2021/b1/a.png", b"scan", content_type="image/png")
    inbox.put("scans/2021/b1/_UNIT", b"000.00.12.H99", content_type="text/plain")

    def s3(bucket: str) -> S3Archive:
        return S3Archive(client, bucket)

    assert find_batches("s3://why-inbox/scans/2022/", s3=s3) == []
    assert why_no_batches("s3://why-inbox/scans/2022/", s3=s3).startswith(
        "s3://why-inbox/scans/2022/ is empty (no scans, no sub-folder): check the path")
    assert find_batches("s3://why-inbox/scans/2021/", s3=s3) == []  # a stack batch on S3 waits for _READY
    assert why_no_batches("s3://why-inbox/scans/2021/", s3=s3) == (
        "None of the 1 sub-folder(s) of s3://why-inbox/scans/2021/ is a complete batch (b1: no _READY and no "
        "manifest.csv).")
    inbox.put("loose/a.png", b"scan", content_type="image/png")
    assert find_batches("s3://why-inbox/loose/", s3=s3) == []
    assert why_no_batches("s3://why-inbox/loose/", s3=s3).startswith(
        "s3://why-inbox/loose/ holds 1 file(s) (a.png) but no manifest.csv and no _UNIT, so it is no batch")
    inbox.put("top.png", b"scan", content_type="image/png")
    assert why_no_batches("s3://why-inbox", s3=s3).startswith(
        "None of the 2 sub-folder(s) of s3://why-inbox is a complete batch (loose: no _READY and no manifest.csv; "
        "scans: no _READY and no manifest.csv). "
        "s3://why-inbox holds 1 file(s) (top.png) at the top of the bucket, which is no batch: put each batch under "
        "its own prefix (s3://why-inbox/<batch>/).")
    with pytest.raises(BatchNotFound, match=r"no bucket 'why-inbx' at the S3 endpoint \(s3://why-inbx/scans/\)"):
        find_batches("s3://why-inbx/scans/", s3=s3)
