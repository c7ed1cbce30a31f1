"""Issue #16, catalog side: reference data keeps its recorded history, successors, reuse-event imports, archived
reference files replayed by a rebuild, and the frames as recorded up to a cut-off (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from test_catalog import SAMPLES, archived_info, fresh_database_url, spec, write_csv

from digitize.catalog import SNAPSHOT_SETTLE
from digitize.catalog.schema import documents
from digitize.catalog.store import Catalog
from digitize.errors import ImportFileError

AGENCY_HEADER = ["code", "name", "level", "parent_code", "remote", "one_stop", "valid_from", "valid_to",
                 "successor_code"]
DISTRICT, COMMUNE_B, PROVINCE_DEPT, CENTRE = "000.00.31.H99", "000.01.31.H99", "000.00.12.H99", "000.00.01.H99"


def _agency_rows(*, commune_c_one_stop: bool = True) -> list[list[str]]:
    rows = [line.split(",") for line in (SAMPLES / "agencies.csv").read_text(encoding="utf-8").splitlines()[1:]]
    out = [r for r in rows if r[0] != "000.02.31.H99"]
    # commune C runs a one-stop unit only from 2024: two periods of one code
    out.append(["000.02.31.H99", "UBND xã Mẫu C", "commune", DISTRICT, "true", "false", "2020-01-01", "2023-12-31", ""])
    out.append(["000.02.31.H99", "UBND xã Mẫu C", "commune", DISTRICT, "true", str(commune_c_one_stop).lower(),
                "2024-01-01", "", ""])
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(fresh_database_url(request.param, tmp_path))
    catalog.upgrade()
    yield catalog
    catalog.close()


@pytest.fixture
def loaded(cat: Catalog) -> Catalog:
    """A catalog with the sample province's agencies and register."""
    assert cat.import_agencies(SAMPLES / "agencies.csv").rejected == []
    assert cat.import_register(SAMPLES / "register.csv").rejected == []
    return cat


def _archive(catalog: Catalog, name: str, **extra: object) -> int:
    from digitize.codes import DEFAULT_CODE_TEMPLATE

    record = catalog.register_document(spec(name, **extra))[0]
    catalog.allocate_code(record.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    catalog.mark_archived(record.id, archived_info(tag=name))
    return record.id


# ------------------------------------------------------------------------------------------ history on import


def test_agency_history_reimport_and_old_cutoff(cat: Catalog, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "agencies.csv", AGENCY_HEADER, _agency_rows())
    summary = cat.import_agencies(first)
    assert (summary.added, summary.changed, summary.rejected) == (6, 0, [])
    before = datetime.now(UTC)
    frame = cat.agencies_frame()
    periods = frame[frame["code"] == "000.02.31.H99"]
    assert list(periods["one_stop"]) == [False, True] and len(frame) == 7
    assert str(frame["recorded_at"].dt.tz) == "UTC"
    on = {day: cat.get_agency("000.02.31.H99", as_of=day) for day in (date(2023, 6, 1), date(2024, 6, 1))}
    assert [agency.one_stop for agency in on.values() if agency is not None] == [False, True]

    again = cat.import_agencies(first)  # the same file: nothing changes, not even the recorded times
    assert (again.added, again.changed, again.unchanged) == (0, 0, 6)
    assert cat.agencies_frame().equals(frame)

    edited = write_csv(tmp_path / "agencies2.csv", AGENCY_HEADER, _agency_rows(commune_c_one_stop=False))
    assert (cat.import_agencies(edited).changed, cat.agencies_frame().equals(frame)) == (1, False)
    now = cat.agencies_frame()
    assert not now[now["code"] == "000.02.31.H99"]["one_stop"].any()
    assert now[now["code"] == "000.02.31.H99"]["recorded_at"].min() > pd.Timestamp(before)
    assert cat.agencies_frame(before).equals(frame)  # a report with the old cut-off reads what it read then
    latest = cat.latest_recorded_at()
    assert latest is not None and latest > before
    agency = cat.get_agency("000.02.31.H99")
    assert agency is not None and (agency.valid_from, agency.one_stop) == (date(2020, 1, 1), False)


def test_overlapping_periods_are_refused(cat: Catalog, tmp_path: Path) -> None:
    rows = _agency_rows()
    rows[-2][7] = "2024-06-30"  # the first period now runs into the second
    summary = cat.import_agencies(write_csv(tmp_path / "a.csv", AGENCY_HEADER, rows))
    assert [e.row_number for e in summary.rejected] == [7, 8]
    assert "overlaps" in summary.rejected[0].message and cat.get_agency("000.02.31.H99") is None


def test_register_history_keeps_the_old_row(loaded: Catalog, tmp_path: Path) -> None:
    before = datetime.now(UTC)
    old = loaded.register_frame()
    lines = (SAMPLES / "register.csv").read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("Phiếu lý lịch tư pháp số 1", "Phiếu lý lịch tư pháp số 1 (sửa)")
    edited = tmp_path / "register.csv"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = loaded.import_register(edited)
    assert (summary.added, summary.changed, summary.unchanged) == (0, 1, 23)
    assert loaded.register_frame(before).equals(old)
    new = loaded.register_frame().set_index("register_id")
    assert new.loc["REG-0001", "title"].endswith("(sửa)") and len(new) == 24


# ------------------------------------------------------------------------------------------ successors


def test_successors_split_and_register_rows_that_must_name_one(loaded: Catalog, tmp_path: Path) -> None:
    header = ["predecessor_code", "successor_code", "effective_date"]
    bad = write_csv(tmp_path / "bad.csv", header, [
        [DISTRICT, DISTRICT, "2025-07-01"],  # row 2: itself
        [DISTRICT, "000.00.77.H99", "2025-07-01"],  # row 3: unknown
        [DISTRICT, COMMUNE_B, "31/02/2025"],  # row 4: no such date
    ])
    refused = loaded.import_successors(bad)
    assert [e.row_number for e in refused.rejected] == [2, 3, 4] and refused.added == 0
    assert "own successor" in refused.rejected[0].message and "not in the catalog" in refused.rejected[1].message

    split = write_csv(tmp_path / "successors.csv", header, [
        [DISTRICT, COMMUNE_B, "2025-07-01"], [DISTRICT, PROVINCE_DEPT, "01/07/2025"]])
    summary = loaded.import_successors(split)
    assert (summary.added, summary.rejected) == (1, [])
    assert len(summary.warnings) == 6 and "REG-0009" in summary.warnings[0]  # the district's rows must say which
    frame = loaded.successors_frame()
    assert list(frame["successor_code"]) == [PROVINCE_DEPT, COMMUNE_B]  # by code
    assert (frame["effective_date"] == pd.Timestamp("2025-07-01")).all()
    assert loaded.import_successors(split).unchanged == 1

    cycle = write_csv(tmp_path / "cycle.csv", header, [[COMMUNE_B, DISTRICT, "2026-01-01"]])
    with pytest.raises(ImportFileError, match="succeed itself"):
        loaded.import_successors(cycle)

    register_header = ["register_id", "agency_code", "title", "issued_date", "successor_code"]
    rows = write_csv(tmp_path / "register.csv", register_header, [
        ["REG-0009", DISTRICT, "Giấy chứng nhận đăng ký hộ kinh doanh (mẫu)", "2021-05-10", ""],  # 2: must name
        ["REG-0010", DISTRICT, "Giấy chứng nhận quyền sử dụng đất", "2021-09-30", COMMUNE_B],  # 3: fine
        ["REG-0001", PROVINCE_DEPT, "Phiếu lý lịch tư pháp số 1", "2023-03-14", COMMUNE_B],  # 4: no successor
        ["REG-0011", DISTRICT, "Giấy phép xây dựng", "2023-03-10", "000.02.31.H99"],  # 5: not a successor
    ])
    result = loaded.import_register(rows)
    messages = {e.row_number: e.message for e in result.rejected}
    assert sorted(messages) == [2, 4, 5] and result.changed == 1
    assert "different levels" in messages[2] and f"{COMMUNE_B} (commune)" in messages[2]
    assert "not a successor" in messages[4] and "not a successor" in messages[5]
    assert loaded.register_frame().set_index("register_id").loc["REG-0010", "successor_code"] == COMMUNE_B


# ------------------------------------------------------------------------------------------ reuse events


REUSE_HEADER = ["new_dossier_code", "outcome", "holder_id", "document", "at", "reason", "caller_system"]


def test_reuse_import_good_and_bad_rows(loaded: Catalog, tmp_path: Path) -> None:
    document_id = _archive(loaded, "reused", register_id="REG-0001", holder_id="079123004567")
    code = loaded.get_document(document_id).code
    assert code is not None
    dossier = "000.00.12.H99-250301-0001"
    path = write_csv(tmp_path / "log.csv", REUSE_HEADER, [
        [dossier, "reused", "", code, "2025-03-01T09:30:00+07:00", "", "Một cửa điện tử"],  # 2: fine
        [dossier, "supplied_again", "079222001234", "Trích lục khai sinh", "02/03/2025", "not_found", ""],  # 3
        [dossier, "reused", "", "000.00.12.H99.2025.KQ.999999", "2025-03-01", "", ""],  # 4: unknown document
        [dossier, "supplied_again", "", "Giấy tờ", "2025-03-01", "expired", ""],  # 5: no holder
        [dossier, "lost", "", code, "2025-03-01", "", ""],  # 6: unknown outcome
        ["not-a-dossier", "reused", "", code, "2025-03-01", "", ""],  # 7: bad dossier code
        [dossier, "supplied_again", "079222001234", "Giấy\u202etờ", "2025-03-01", "unusable", ""],  # 8: control
        [dossier, "supplied_again", "079222001234", "Trích lục khai sinh", "2025-03-02", "not_found", ""],  # 9: twice
        [dossier, "reused", "", code, "2025-13-01", "", ""],  # 10: bad date
    ])
    before = datetime.now(UTC)
    summary = loaded.import_reuse_events(path)
    messages = {e.row_number: e.message for e in summary.rejected}
    assert (summary.added, sorted(messages)) == (2, [4, 5, 6, 7, 8, 9, 10])
    assert "no archived document" in messages[4] and "holder_id is empty" in messages[5]
    assert "column outcome" in messages[6] and "column new_dossier_code" in messages[7]
    assert "control character" in messages[8] and "row 3" in messages[9] and "column at" in messages[10]
    assert not any("079222001234" in m for m in messages.values())  # holder IDs never in messages
    needs = loaded.needs_frame().set_index("outcome")
    assert needs.loc["reused", "at"] == pd.Timestamp("2025-03-01T02:30:00Z")
    assert needs.loc["supplied_again", "at"] == pd.Timestamp("2025-03-01T17:00:00Z")  # 2 March, Vietnam
    assert needs.loc["reused", "holding_agency"] == PROVINCE_DEPT and (needs["recorded_at"] >= before).all()
    assert loaded.needs_frame(before).empty  # not recorded yet at that cut-off
    again = loaded.import_reuse_events(path)
    assert (again.added, again.unchanged) == (0, 2)


def test_reuse_import_refuses_twice_named_columns_and_formulas(loaded: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="more than once"):
        loaded.import_reuse_events(write_csv(tmp_path / "twice.csv", [*REUSE_HEADER, "AT"], []))
    with pytest.raises(ImportFileError, match="lacks column"):
        loaded.import_reuse_events(write_csv(tmp_path / "short.csv", ["outcome", "document"], []))
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(REUSE_HEADER)
    sheet.append(["000.00.12.H99-250301-0001", "supplied_again", "079222001234", '=HYPERLINK("http://x","y")',
                  "2025-03-01", "not_found", ""])
    sheet.append(["000.00.12.H99-250301-0002", "supplied_again", "079222001234", "Trích lục khai sinh",
                  datetime(2025, 3, 1, 8, 0), "expired", ""])
    book.save(tmp_path / "log.xlsx")
    summary = loaded.import_reuse_events(tmp_path / "log.xlsx")
    assert summary.added == 1 and [e.row_number for e in summary.rejected] == [2]
    assert "formula" in summary.rejected[0].message
    assert loaded.needs_frame()["at"].iloc[0] == pd.Timestamp("2025-03-01T01:00:00Z")


# ------------------------------------------------------------------------------------------ documents


def test_versions_origin_digitized_at_and_scans(loaded: Catalog) -> None:
    import dataclasses

    first = _archive(loaded, "v1", register_id="REG-0001", scanned_at=CENTRE)
    v1 = loaded.get_document(first)
    assert (v1.origin, v1.digitized_at) == ("scan", v1.archived_at)
    after_v1 = datetime.now(UTC)
    # a metadata-only correction: the same scanned file, another title
    same_file = dataclasses.replace(spec("v1", register_id="REG-0002", scanned_at=CENTRE), files=(
        *spec("v1").files, dataclasses.replace(spec("v1").files[0], position=1)))
    v2, _ = loaded.supersede(first, same_file, actor="cán bộ", reason="sai số đăng ký")
    loaded.mark_archived(v2.id, archived_info(n_files=2, tag="v2"))
    rescanned, _ = loaded.supersede(v2.id, spec("v3", register_id="REG-0002", scanned_at=CENTRE), actor="cán bộ",
                                    reason="quét lại")
    loaded.mark_archived(rescanned.id, archived_info(tag="v3"))
    records = {r.version: r for r in loaded.documents() if r.code == v1.code}
    assert [records[n].origin for n in (1, 2, 3)] == ["scan", "correction", "scan"]
    assert {records[n].digitized_at for n in (1, 2, 3)} == {v1.archived_at}

    old = loaded.archived_frame(after_v1)
    assert list(old["version"]) == [1] and old.iloc[0]["register_id"] == "REG-0001"
    now = loaded.archived_frame()
    assert list(now["version"]) == [3] and now.iloc[0]["digitized_at"] == pd.Timestamp(v1.archived_at)
    assert now.iloc[0]["recorded_at"] == now.iloc[0]["archived_at"]
    scans = loaded.scans_frame()
    assert list(scans["version"]) == [1, 3] and list(scans["scanned_at"]) == [CENTRE, CENTRE]
    assert list(loaded.scans_frame(after_v1)["version"]) == [1]

    # version 3 withdrawn (issue #18's wrong link): from then the code counts as version 2; before, as version 3
    before_withdrawal = datetime.now(UTC)
    with loaded.write() as conn:
        conn.execute(sa.update(documents).where(documents.c.id == rescanned.id)
                     .values(withdrawn=True, withdrawn_at=datetime.now(UTC)))
    assert list(loaded.archived_frame()["version"]) == [2]
    assert list(loaded.archived_frame(before_withdrawal)["version"]) == [3]
    assert list(loaded.scans_frame()["version"]) == [1, 3]  # the scan was made all the same


# ------------------------------------------------------------------------------------------ archive and rebuild


def test_reference_files_archived_and_replayed_by_a_rebuild(tmp_path: Path) -> None:
    from digitize.archive import open_archive
    from digitize.preservation import import_reference, replay_reference_imports

    archive = open_archive(f"file://{tmp_path / 'archive'}")
    archive.ensure_bucket()
    catalog = Catalog(f"sqlite:///{tmp_path / 'first.db'}")
    catalog.upgrade()
    agencies = write_csv(tmp_path / "agencies.csv", AGENCY_HEADER, _agency_rows())
    assert import_reference(catalog, archive, "agencies", agencies).added == 6
    assert import_reference(catalog, archive, "agencies", agencies).unchanged == 6  # nothing stored again
    import_reference(catalog, archive, "register", SAMPLES / "register.csv")
    middle = datetime.now(UTC)
    edited = tmp_path / "edited" / "agencies.csv"
    edited.parent.mkdir()
    write_csv(edited, AGENCY_HEADER, _agency_rows(commune_c_one_stop=False))
    import_reference(catalog, archive, "agencies", edited)
    successors = write_csv(tmp_path / "successors.csv", ["predecessor_code", "successor_code", "effective_date"],
                           [[DISTRICT, COMMUNE_B, "2025-07-01"]])
    import_reference(catalog, archive, "successors", successors)
    recorded = catalog.reference_imports()
    assert [r["kind"] for r in recorded] == ["agencies", "register", "agencies", "successors"]
    assert all(archive.head(r["key"]) is not None for r in recorded)
    assert len(list(archive.list_keys("reference/imports/"))) == 4

    rebuilt = Catalog(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    rebuilt.upgrade()
    assert replay_reference_imports(rebuilt, archive).imports == 4
    assert replay_reference_imports(rebuilt, archive).imports == 0  # a second run adds nothing
    for cutoff in (middle, None):
        for frame in ("agencies_frame", "register_frame", "successors_frame"):
            assert getattr(rebuilt, frame)(cutoff).equals(getattr(catalog, frame)(cutoff)), (frame, cutoff)
    assert rebuilt.latest_recorded_at() == catalog.latest_recorded_at()


def test_api_events_kept_by_snapshots_and_restored(loaded: Catalog, tmp_path: Path) -> None:
    import dataclasses

    from digitize.archive import open_archive
    from digitize.preservation import archive_reference_snapshot, replay_reference_imports

    archive = open_archive(f"file://{tmp_path / 'archive'}")
    archive.ensure_bucket()
    document = loaded.get_document(_archive(loaded, "api", register_id="REG-0001", holder_id="079123004567"))
    assert document.code is not None
    dossier = "000.00.12.H99-250301-0001"
    loaded.record_reuse(document_id=document.id, code=document.code, client="mot-cua", caller_system="Một cửa",
                        new_dossier_code=dossier, purpose="cấp lại")
    assert archive_reference_snapshot(loaded, archive) == (None, 0)  # all of it recorded in the last minutes
    settled = datetime.now(UTC) + SNAPSHOT_SETTLE  # as if taken a few minutes from now
    key, rows = archive_reference_snapshot(loaded, archive, now=settled)
    assert key is not None and rows == 6 + 24 + 1  # the imports made without the archive, and the API's reuse
    loaded.record_supplied_again(holder_id="079222001234", new_dossier_code=dossier, document="Trích lục",
                                 procedure_code=None, reason="not_found", client="mot-cua", caller_system="Một cửa",
                                 purpose="cấp lại")
    assert archive_reference_snapshot(loaded, archive, now=settled) == (None, 0)  # recorded after that one's end
    later = settled + timedelta(minutes=10)
    key2, rows2 = archive_reference_snapshot(loaded, archive, now=later)
    assert key2 is not None and rows2 == 1

    rebuilt = Catalog(fresh_database_url("sqlite", tmp_path / "rebuilt"))
    rebuilt.upgrade()
    rebuilt.restore_document(dataclasses.replace(document, id=0))
    summary = replay_reference_imports(rebuilt, archive)
    assert (summary.imports, summary.snapshot_rows, summary.skipped) == (0, 6 + 24 + 2, ())
    assert rebuilt.needs_frame().equals(loaded.needs_frame())
    assert rebuilt.register_frame().equals(loaded.register_frame())
    assert replay_reference_imports(rebuilt, archive).snapshot_rows == 0  # a second run adds nothing
    assert archive_reference_snapshot(rebuilt, archive, now=later) == (None, 0)  # it goes on after the last


def test_cli_imports_archive_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.presentation.cli import main

    monkeypatch.setenv("DIGITIZE_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("DIGITIZE_ARCHIVE_URL", f"file://{tmp_path / 'archive'}")
    monkeypatch.delenv("DIGITIZE_S3_ENDPOINT_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    assert main(["agencies", "import", str(SAMPLES / "agencies.csv")]) == 0
    assert main(["register", "import", str(SAMPLES / "register.csv"), "--no-archive"]) == 0
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    kinds = [(r["kind"], r["key"] is not None) for r in catalog.reference_imports()]
    assert kinds == [("agencies", True), ("register", False)]
    assert (tmp_path / "archive").is_dir() and catalog.register_frame().shape[0] == 24
    # the register imported without the archive is kept by a snapshot; a rebuild restores both
    monkeypatch.setattr("digitize.catalog.SNAPSHOT_SETTLE", timedelta(0))  # not wait for the register to settle
    assert main(["catalog", "archive-reference"]) == 0
    assert main(["catalog", "archive-reference"]) == 0  # the same rows are stored once
    assert len(list((tmp_path / "archive" / "reference" / "snapshots").iterdir())) == 1
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", f"sqlite:///{tmp_path / 'rebuilt.db'}")
    assert main(["catalog", "rebuild"]) == 0
    rebuilt = Catalog(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    for frame in ("agencies_frame", "register_frame", "successors_frame"):
        assert getattr(rebuilt, frame)().equals(getattr(catalog, frame)()), frame
    assert rebuilt.get_agency(DISTRICT) == catalog.get_agency(DISTRICT)
    assert rebuilt.latest_recorded_at() == catalog.latest_recorded_at()
