"""Manifest reading: what officers write in Excel, and what they get back when a row is wrong."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import pytest

from digitize.errors import BatchNotFound, BatchNotReady, ManifestError
from digitize.intake import manifest
from digitize.intake.manifest import batch_is_ready, discover_batches, named_batch, read_manifest

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "batch"
HEADER = "file,agency_code,kind,title,issued_date,document_id,register_id,holder_id\n"


def make_batch(root: Path, rows: str, files: tuple[str, ...] = ("a.jpg",), *, header: str = HEADER,
               encoding: str = "utf-8") -> Path:
    batch = root / "batch-1"
    batch.mkdir(parents=True, exist_ok=True)
    for name in files:
        (batch / name).parent.mkdir(parents=True, exist_ok=True)
        (batch / name).write_bytes(b"scan " + name.encode())
    (batch / "manifest.csv").write_bytes((header + rows).encode(encoding))
    return batch


def test_sample_batch_reads_with_grouped_document(tmp_path: Path) -> None:
    plan = read_manifest(SAMPLES)
    assert plan.errors == ()
    keys = {d.key: d for d in plan.documents}
    assert len(plan.documents) == 6
    two_pages = keys["KS-2022-0415"]
    assert two_pages.files == ("khai-sinh-trang-1.jpg", "khai-sinh-trang-2.jpg")
    assert two_pages.rows == (3, 4)
    assert two_pages.title == "Trích lục khai sinh"
    assert keys["ly-lich-tu-phap.jpg"].issued_date == date(2023, 3, 14)


def test_bom_accepted_and_nfd_normalised(tmp_path: Path) -> None:
    nfd_title = "Giấy chứng nhận".encode().decode("utf-8")
    import unicodedata

    decomposed = unicodedata.normalize("NFD", nfd_title)
    assert decomposed != nfd_title
    batch = make_batch(tmp_path, f"a.jpg,000.00.12.H99,KQ,{decomposed},2023-01-02,,,\n", header="\ufeff" + HEADER)
    plan = read_manifest(batch)
    assert plan.errors == ()
    assert plan.documents[0].title == nfd_title


def test_bad_rows_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    rows = (
        "a.jpg,000.00.12.H99,KQ,Đúng,2023-01-02,,,\n"
        "b.jpg,000.00.12.H99,KQ,Ngày sai,2023-13-02,,,\n"
        "c.jpg,000.0.12.H99,KQ,Mã sai,2023-01-02,,,\n"
        "d.jpg,000.00.12.H99,XX,Loại sai,2023-01-02,,,\n"
        "e.jpg,000.00.12.H99,KQ,,2023-01-02,,,\n"
        "f.jpg,000.00.12.H99,KQ,Thiếu tệp,2023-01-02,,,\n"
        "g.jpg,000.00.12.H99,KQ,CCCD sai,2023-01-02,,,12345\n"
    )
    batch = make_batch(tmp_path, rows, files=("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "g.jpg", "stray.png"))
    plan = read_manifest(batch)
    assert [d.files for d in plan.documents] == [("a.jpg",)]
    by_row = {e.row: e for e in plan.errors}
    assert "issued_date" in by_row[3].message
    assert "agency_code" in by_row[4].message
    assert "kind" in by_row[5].message
    assert "title" in by_row[6].message
    assert by_row[7].reason == "FILE_MISSING"
    assert "holder_id" in by_row[8].message
    assert by_row[0].reason == "FILE_NOT_IN_MANIFEST" and by_row[0].file == "stray.png"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.jpg", "sub/../../outside.jpg", "C:\\scan.jpg"])
def test_paths_outside_the_batch_are_refused(tmp_path: Path, bad: str) -> None:
    batch = make_batch(tmp_path, f"{bad},000.00.12.H99,KQ,X,2023-01-02,,,\n", files=())
    plan = read_manifest(batch)
    assert plan.documents == ()
    assert plan.errors[0].reason == "MANIFEST_INVALID"


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not yours")
    batch = make_batch(tmp_path, "link.jpg,000.00.12.H99,KQ,X,2023-01-02,,,\n", files=())
    os.symlink(secret, batch / "link.jpg")
    plan = read_manifest(batch)
    assert plan.documents == ()
    assert "outside the batch" in plan.errors[0].message


def test_missing_and_unknown_columns_reject_the_manifest(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ\n", header="file,agency_code,kind\n")
    with pytest.raises(ManifestError, match="missing columns"):
        read_manifest(batch)
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,X,2023-01-02,x\n",
                       header="file,agency_code,kind,title,issued_date,titel\n")
    with pytest.raises(ManifestError, match=r"unknown columns.*titel"):
        read_manifest(batch)


@pytest.mark.parametrize("header", [
    HEADER.replace("holder_id", "holder_id,holder_id"),
    HEADER.replace("holder_id", "holder_id, holder_id "),  # the same name once stripped
], ids=["exact", "spaces"])
def test_a_column_named_twice_refuses_the_manifest(tmp_path: Path, header: str) -> None:
    """With two holder_id columns the last would win and the first citizen ID would vanish silently."""
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,Một,2023-01-02,,,079203001234,\n", header=header)
    with pytest.raises(ManifestError) as info:
        read_manifest(batch)
    assert "holder_id" in info.value.message and "more than once" in info.value.message
    assert "079203001234" not in str(info.value) + info.value.hint
    assert "once" in info.value.hint


def test_unrecognisable_encoding_is_refused_with_how_to_fix(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,Đà Đà,2023-01-02,,,\n", encoding="cp1258")
    assert read_manifest(batch).documents[0].title == "Đà Đà"  # Windows-1258 is recognised and converted
    latin1 = "a.jpg,000.00.12.H99,KQ,Grüße été,2023-01-02,,,\n".encode("latin-1")  # not Vietnamese at all
    (batch / "manifest.csv").write_bytes(HEADER.encode() + latin1)
    with pytest.raises(ManifestError) as info:
        read_manifest(batch)
    assert "UTF-8" in info.value.hint


def test_rows_of_one_document_must_agree(tmp_path: Path) -> None:
    rows = ("a.jpg,000.00.12.H99,KQ,Một,2023-01-02,D1,,\n"
            "b.jpg,000.00.12.H99,KQ,Hai,2023-01-02,D1,,\n")
    plan = read_manifest(make_batch(tmp_path, rows, files=("a.jpg", "b.jpg")))
    assert plan.documents == ()
    assert {e.row for e in plan.errors} == {2, 3}
    assert "title" in plan.errors[0].message


def test_tab_inside_a_cell_is_text(tmp_path: Path) -> None:
    """Tab is the one control character a cell may hold (a pasted title); the others refuse the row."""
    rows = ('"a.jpg",000.00.12.H99,KQ,"Giấy\tkhai sinh",2023-01-02,,,\n'
            '"b.jpg",000.00.12.H99,KQ,"Giấy\x0ckhai sinh",2023-01-02,,,\n')
    batch = make_batch(tmp_path, rows, files=("a.jpg", "b.jpg"))
    plan = read_manifest(batch)
    assert [d.title for d in plan.documents] == ["Giấy\tkhai sinh"]
    assert [(e.row, e.file) for e in plan.errors] == [(3, "b.jpg")] and "U+000C" in plan.errors[0].message


def test_personal_and_long_values_are_not_echoed(tmp_path: Path) -> None:
    """A wrong citizen ID is named by its column only; a runaway value is quoted shortened."""
    rows = ("a.jpg,000.00.12.H99,KQ,Một,2023-01-02,,,07920300123\n"
            f"b.jpg,000.00.12.H99,KQ,{'Dài ' * 200},2023-01-02,,,\n"
            "c.jpg,000.00.12.H99,KQ,Ba,2023-01-02,D1,,079203001234\n"
            "d.jpg,000.00.12.H99,KQ,Ba,2023-01-02,D1,,079203009999\n")
    plan = read_manifest(make_batch(tmp_path, rows, files=("a.jpg", "b.jpg", "c.jpg", "d.jpg")))
    by_row = {e.row: e.message for e in plan.errors}
    assert "holder_id" in by_row[2] and "07920300123" not in by_row[2]
    assert "title" in by_row[3] and len(by_row[3]) < 300
    assert "holder_id" in by_row[4] and "0792030" not in by_row[4] + by_row[5]


def test_unlisted_file_with_a_line_break_in_its_name_is_reported_escaped(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,Một,2023-01-02,,,\n", files=("a.jpg", "stray\nname.jpg"))
    (error,) = read_manifest(batch).errors
    assert error.reason == "FILE_NOT_IN_MANIFEST" and error.file == "stray\\u000aname.jpg"


def test_too_many_rows_refuse_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "MAX_MANIFEST_ROWS", 2)
    rows = "".join(f"{n}.jpg,000.00.12.H99,KQ,Một,2023-01-02,,,\n" for n in "abc")
    with pytest.raises(ManifestError, match="more than 2 rows"):
        read_manifest(make_batch(tmp_path, rows, files=("a.jpg", "b.jpg", "c.jpg")))


def test_batch_readiness(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,X,2023-01-02,,,\n")
    now = time.time()
    assert not batch_is_ready(batch, quiet_seconds=60, now=now)
    assert batch_is_ready(batch, quiet_seconds=60, now=now + 61)
    (batch / "_READY").touch()
    assert batch_is_ready(batch, quiet_seconds=60, now=now)
    half = tmp_path / "uploading"
    half.mkdir()
    (half / "a.jpg").write_bytes(b"partial")
    assert discover_batches(tmp_path, quiet_seconds=60, now=time.time()) == [batch]
    # scans without a manifest are a stack batch: complete, like any batch, once nothing changed for the period
    assert set(discover_batches(tmp_path, quiet_seconds=60, now=time.time() + 61)) == {batch, half}
    (half / "a.jpg").unlink()
    assert discover_batches(tmp_path, quiet_seconds=0) == [batch], "an empty folder is no batch"
    shutil.rmtree(half)


def test_a_named_batch_is_taken_once_complete_or_refused_with_the_reason(tmp_path: Path) -> None:
    """The inbox DAG's form can name one batch: it is taken, or the officer is told why not and what to do."""
    batch = make_batch(tmp_path, "a.jpg,000.00.12.H99,KQ,X,2023-01-02,,,\n")
    now = time.time()
    assert named_batch(tmp_path, batch.name, quiet_seconds=60, now=now + 61) == batch
    with pytest.raises(BatchNotReady, match=r"not complete yet: it has no _READY file and its newest file changed "
                                            r"\d+ s ago; without _READY a batch is complete after 60 s") as waiting:
        named_batch(tmp_path, batch.name, quiet_seconds=60, now=now)
    assert "_READY" in waiting.value.hint and waiting.value.reason == "BATCH_NOT_READY"
    (batch / "_READY").touch()
    assert named_batch(tmp_path, batch.name, quiet_seconds=60, now=now) == batch
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchNotReady, match=r"holds no scans and no manifest\.csv yet"):
        named_batch(tmp_path, "empty", quiet_seconds=0)
    for wrong in ("missing", "../" + batch.name, f"{batch.name}/", ".", ""):
        with pytest.raises(BatchNotFound, match=rf"no batch folder .* \(folders there: {batch.name}, empty\)"):
            named_batch(tmp_path, wrong, quiet_seconds=0)
