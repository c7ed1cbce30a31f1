"""Catalog on real SQLite and real PostgreSQL (a throwaway cluster from scripts/postgres.sh): every public method."""

from __future__ import annotations

import atexit
import csv
import hashlib
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from digitize.catalog import Agency, ArchivedInfo, Catalog, DocumentSpec, FileSpec, fingerprint_of
from digitize.catalog import store as catalog_module
from digitize.catalog.schema import MIGRATIONS_DIR, documents, metadata
from digitize.codes.formats import DEFAULT_CODE_TEMPLATE, CodeError, parse_document_code
from digitize.errors import (
    AgencyUnknown,
    CatalogConflict,
    CatalogUnavailable,
    ConfigurationError,
    ImportFileError,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
POSTGRES_SH = REPO / "scripts" / "postgres.sh"
AGENCY_COLUMNS = ["code", "name", "level", "parent_code", "remote", "one_stop", "valid_from", "valid_to",
                  "successor_code"]
REGISTER_COLUMNS = ["register_id", "agency_code", "procedure_code", "dossier_code", "title", "issued_date",
                    "valid_until", "holder_id"]

# --------------------------------------------------------------------------------------------- backends

_CLUSTER: dict[str, str] = {}


def postgres_server_url() -> str:
    """URL of a throwaway PostgreSQL cluster, started once per test process (installed first if missing)."""
    if "url" not in _CLUSTER:
        folder = tempfile.mkdtemp(prefix="digitize-pg-", dir="/tmp")
        result = subprocess.run(["bash", str(POSTGRES_SH), "start", folder], capture_output=True, text=True,
                                timeout=900, env={**os.environ, "POSTGRES_FSYNC": "off"})  # throwaway data
        assert result.returncode == 0, f"scripts/postgres.sh failed:\n{result.stderr}"
        _CLUSTER.update(url=result.stdout.strip(), folder=folder)
        atexit.register(subprocess.run, ["bash", str(POSTGRES_SH), "stop", folder], capture_output=True)
    return _CLUSTER["url"]


def fresh_database_url(backend: str, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a new PostgreSQL database in the shared cluster."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server = sa.make_url(postgres_server_url())
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url(request.param, tmp_path)


@pytest.fixture
def cat(url: str) -> Iterator[Catalog]:
    catalog = Catalog(url)
    catalog.upgrade()
    yield catalog
    catalog.close()


@pytest.fixture
def loaded(cat: Catalog) -> Catalog:
    """A catalog with the sample province's agencies and register."""
    assert cat.import_agencies(SAMPLES / "agencies.csv").rejected == []
    assert cat.import_register(SAMPLES / "register.csv").rejected == []
    return cat


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec(name: str = "a", *, batch: str = "b1", agency: str = "000.00.12.H99", kind: str = "KQ", files: int = 1,
         **extra: object) -> DocumentSpec:
    return DocumentSpec(
        batch_id=batch,
        files=tuple(FileSpec(position=i, name=f"{name}-{i}.jpg", sha256=sha(f"{name}/{i}"), size=100 + i)
                    for i in range(files)),
        agency_code=agency, kind=kind, title=f"Tài liệu {name}", issued_date=date(2023, 3, 14),
        **extra,  # type: ignore[arg-type]
    )


def archived_info(n_files: int = 1, tag: str = "x") -> ArchivedInfo:
    return ArchivedInfo(pdf_key=f"pdf/{tag}.pdf", pdf_sha256=sha(f"pdf{tag}"), sidecar_key=f"json/{tag}.json",
                        sidecar_sha256=sha(f"json{tag}"),
                        original_keys=tuple(f"orig/{tag}/{i}" for i in range(n_files)),
                        pages=3, mean_confidence=91.5, needs_review=False)


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False, delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------- migrations


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_upgrade_empty_database_twice_matches_the_model(url: str) -> None:
    catalog = Catalog(url)
    assert catalog.schema_revision() is None
    catalog.upgrade()
    assert catalog.schema_revision() == head_revision()
    catalog.upgrade()  # idempotent
    assert catalog.schema_revision() == head_revision()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        # the catalog's own tables (other modules, e.g. search, keep theirs in later migrations)
        mine = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _parent: kind != "table" or name in metadata.tables})
        diff = compare_metadata(mine, metadata)
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"migrations and catalog.py disagree: {diff}"
    assert {"agencies", "register", "documents", "document_files", "events", "code_sequences"} <= tables
    catalog.close()


def test_concurrent_upgrades_do_not_collide(url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Catalog(url).upgrade()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Catalog(url).schema_revision() == head_revision()


def test_use_before_upgrade_says_so(url: str) -> None:
    with pytest.raises(ConfigurationError, match="schema missing"):
        Catalog(url).documents()


# --------------------------------------------------------------------------------------------- agencies


def test_import_agencies_upsert_and_get(cat: Catalog, tmp_path: Path) -> None:
    first = cat.import_agencies(SAMPLES / "agencies.csv")
    assert (first.added, first.changed, first.unchanged, first.rejected) == (6, 0, 0, [])
    again = cat.import_agencies(SAMPLES / "agencies.csv")
    assert (again.added, again.changed, again.unchanged) == (0, 0, 6)

    district = cat.get_agency("000.00.31.H99")
    assert district == Agency("000.00.31.H99", "UBND huyện Mẫu A", "district", "000.00.00.H99", False, True,
                              date(2020, 1, 1), date(2025, 6, 30), None)
    assert cat.get_agency("000.00.31.H99", as_of=date(2025, 6, 30)) is not None  # valid_to is inclusive
    assert cat.get_agency("000.00.31.H99", as_of=date(2025, 7, 1)) is None
    assert cat.get_agency("000.00.31.H99", as_of=date(2019, 12, 31)) is None
    assert cat.get_agency("000.00.99.H99") is None
    with pytest.raises(CodeError):
        cat.get_agency("000.99.00.H99")

    # a merger: the district ends, a new commune takes over; one name changes
    path = write_csv(tmp_path / "agencies.csv", AGENCY_COLUMNS, [
        ["000.00.31.H99", "UBND huyện Mẫu A", "district", "000.00.00.H99", "false", "true", "2020-01-01",
         "2025-06-30", "000.03.31.H99"],
        ["000.03.31.H99", "UBND xã Mẫu Mới", "commune", "000.00.31.H99", "0", "1", "01/07/2025", "", ""],
        ["000.00.12.H99", "Sở Tư pháp tỉnh Mẫu", "province", "000.00.00.H99", "", "", "2020-01-01", "", ""],
    ], bom=True)
    summary = cat.import_agencies(path)
    assert (summary.added, summary.changed, summary.unchanged, summary.rejected) == (1, 1, 1, [])
    new = cat.get_agency("000.03.31.H99")
    assert new is not None and new.valid_from == date(2025, 7, 1) and new.level == "commune" and new.one_stop
    district = cat.get_agency("000.00.31.H99")
    assert district is not None and district.successor_code == "000.03.31.H99"


def test_import_agencies_rejects_rows_with_numbers(cat: Catalog, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "agencies.csv", AGENCY_COLUMNS, [
        ["000.00.00.H98", "UBND tỉnh B", "province", "", "", "", "2020-01-01", "", ""],  # row 2: fine
        ["000.18.00.H98", "Bad shape", "commune", "", "", "", "2020-01-01", "", ""],  # row 3
        ["000.00.02.H98", "Bad level", "ward", "000.00.00.H98", "", "", "2020-01-01", "", ""],  # row 4
        ["000.00.03.H98", "Bad date", "district", "000.00.00.H98", "", "", "2020-02-30", "", ""],  # row 5
        ["000.00.04.H98", "Orphan", "district", "000.00.77.H98", "", "", "2020-01-01", "", ""],  # row 6
        ["000.01.04.H98", "Child of orphan", "commune", "000.00.04.H98", "", "", "2020-01-01", "", ""],  # row 7
        ["000.00.00.H98", "Duplicate", "province", "", "", "", "2020-01-01", "", ""],  # row 8
        ["000.00.05.H98", "Bad flag", "district", "000.00.00.H98", "maybe", "", "2020-01-01", "", ""],  # row 9
        ["000.00.06.H98", "Ends first", "district", "000.00.00.H98", "", "", "2021-01-01", "2020-01-01", ""],  # 10
        ["", "", "", "", "", "", "", "", ""],  # row 11: blank rows are skipped
        ["000.00.07.H98", "", "district", "000.00.00.H98", "", "", "2020-01-01", "", ""],  # row 12
    ])
    summary = cat.import_agencies(path)
    assert summary.added == 1
    messages = {e.row_number: e.message for e in summary.rejected}
    assert sorted(messages) == [3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert "level-3 part '18' is filled" in messages[3]
    assert "column level: 'ward'" in messages[4]
    assert "column valid_from: '2020-02-30' is not a real date" in messages[5]
    assert "parent_code: agency 000.00.77.H98" in messages[6]
    assert "parent_code: agency 000.00.04.H98" in messages[7]
    assert "repeats row 2" in messages[8]
    assert "column remote: 'maybe'" in messages[9]
    assert "before valid_from" in messages[10]
    assert "column name is empty" in messages[12]
    assert cat.get_agency("000.00.04.H98") is None


def test_import_agencies_xlsx_and_semicolon_csv(cat: Catalog, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([c.upper() for c in AGENCY_COLUMNS])  # header case does not matter
    sheet.append(["000.00.00.H97", "UBND tỉnh X", "province", None, False, True, datetime(2020, 1, 1), None, None])
    sheet.append(["000.00.01.H97", "Sở X", "province", "000.00.00.H97", 0, 1, date(2021, 5, 2), "2030-12-31", None])
    sheet.append(["000.00.02.H97", "Sở Y", "province", "000.00.00.H97", 0, 1, "not a date", None, None])
    book.save(tmp_path / "agencies.xlsx")
    summary = cat.import_agencies(tmp_path / "agencies.xlsx")
    assert summary.added == 2 and [e.row_number for e in summary.rejected] == [4]
    agency = cat.get_agency("000.00.01.H97")
    assert agency is not None and (agency.valid_from, agency.valid_to) == (date(2021, 5, 2), date(2030, 12, 31))
    semi = write_csv(tmp_path / "semi.csv", AGENCY_COLUMNS, [
        ["000.00.03.H97", "Sở Z; chi nhánh", "province", "000.00.00.H97", "", "", "2020-01-01", "", ""]],
        delimiter=";")
    assert cat.import_agencies(semi).added == 1


def test_import_file_errors(cat: Catalog, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes("code,name,level,valid_from\n000.00.00.H97,UBND t\u1ec9nh,province,2020-01-01\n"
                       .encode("utf-8").replace("ỉ".encode(), b"\xec"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        cat.import_agencies(legacy)
    with pytest.raises(ImportFileError, match="lacks column"):
        cat.import_agencies(write_csv(tmp_path / "few.csv", ["code", "name"], [["000.00.00.H97", "x"]]))
    with pytest.raises(ImportFileError, match=r"expected a \.csv or \.xlsx"):
        cat.import_agencies(write_csv(tmp_path / "agencies.txt", AGENCY_COLUMNS, []))
    fake = tmp_path / "fake.xlsx"
    fake.write_text("not a workbook")
    with pytest.raises(ImportFileError, match=r"not a readable \.xlsx"):
        cat.import_agencies(fake)
    with pytest.raises(ImportFileError, match="does not exist"):
        cat.import_register(tmp_path / "missing.csv")


def test_a_column_named_twice_refuses_the_import(loaded: Catalog, tmp_path: Path) -> None:
    """The last of two same-named columns would win: a citizen ID, or an agency's name, would vanish silently."""
    register_csv = write_csv(tmp_path / "register.csv", [*REGISTER_COLUMNS, "holder_id"], [
        ["REG-3000", "000.00.12.H99", "", "", "Hai cột", "2024-01-02", "", "079203001234", ""]])
    with pytest.raises(ImportFileError) as info:
        loaded.import_register(register_csv)
    assert "holder_id" in info.value.message and "more than once" in info.value.message
    assert "079203001234" not in str(info.value) + info.value.hint and "once" in info.value.hint
    assert "REG-3000" not in set(loaded.register_frame()["register_id"])
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([*AGENCY_COLUMNS, "NAME"])  # header case does not matter, so this is 'name' again
    sheet.append(["000.00.00.H96", "UBND tỉnh X", "province", None, False, True, datetime(2020, 1, 1), None, None,
                  "Cũ"])
    book.save(tmp_path / "agencies.xlsx")
    with pytest.raises(ImportFileError, match=r"'name'.* more than once"):
        loaded.import_agencies(tmp_path / "agencies.xlsx")
    assert loaded.get_agency("000.00.00.H96") is None


# --------------------------------------------------------------------------------------------- register


def test_import_register_validates_rows(cat: Catalog, tmp_path: Path) -> None:
    cat.import_agencies(SAMPLES / "agencies.csv")
    first = cat.import_register(SAMPLES / "register.csv")
    assert (first.added, first.rejected) == (24, [])
    path = write_csv(tmp_path / "register.csv", REGISTER_COLUMNS, [
        ["REG-0001", "000.00.12.H99", "1.001757", "000.00.12.H99-230615-0001", "Phiếu lý lịch tư pháp số 1 (sửa)",
         "2023-06-20", "", "MAU-0001"],  # row 2: changed title
        ["REG-1000", "000.00.12.H99", "1.001757", "", "Mới", "2024-01-02", "2025-01-01", ""],  # row 3: new
        ["REG-1001", "000.00.12.h99", "1.001757", "", "Bad agency", "2024-01-02", "", ""],  # 4
        ["REG-1002", "000.00.55.H99", "1.001757", "", "Unknown agency", "2024-01-02", "", ""],  # 5
        ["REG-1003", "000.00.12.H99", "1.001757", "", "Bad date", "32/01/2024", "", ""],  # 6
        ["REG-1004", "000.00.12.H99", "1.001757", "", "Ends first", "2024-01-02", "2023-01-01", ""],  # 7
        ["REG-1005", "000.00.12.H99", "1.001757", "000.00.12.H99-240231-0001", "Bad dossier", "2024-01-02", "",
         ""],  # 8
        ["REG-1006", "000.00.12.H99", "1.01757", "", "Bad procedure", "2024-01-02", "", ""],  # 9
        ["REG-1000", "000.00.12.H99", "1.001757", "", "Again", "2024-01-02", "", ""],  # 10
        ["REG-0002", "000.00.12.H99", "2.000488", "000.00.12.H99-220310-0004", "Chứng chỉ hành nghề luật sư (mẫu)",
         "2022-03-25", "", "MAU-0002"],  # row 11: maybe unchanged
    ])
    summary = cat.import_register(path)
    assert summary.added == 1
    assert summary.changed + summary.unchanged == 2
    messages = {e.row_number: e.message for e in summary.rejected}
    assert sorted(messages) == [4, 5, 6, 7, 8, 9, 10]
    assert "column agency_code" in messages[4] and "level-1 part" in messages[4]
    assert "agency 000.00.55.H99 is not in the catalog" in messages[5]
    assert "column issued_date: '32/01/2024' is not a real date" in messages[6]
    assert "before issued_date" in messages[7]
    assert "column dossier_code" in messages[8] and "not a real date" in messages[8]
    assert "column procedure_code" in messages[9]
    assert "repeats row 3" in messages[10]
    frame = cat.register_frame()
    assert list(frame.columns) == [*REGISTER_COLUMNS, "successor_code", "recorded_at"]
    assert frame.set_index("register_id").loc["REG-0001", "title"] == "Phiếu lý lịch tư pháp số 1 (sửa)"
    assert frame.set_index("register_id").loc["REG-1000", "valid_until"] == pd.Timestamp("2025-01-01")


def test_import_register_xlsx_number_trap(loaded: Catalog, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(REGISTER_COLUMNS)
    sheet.append(["REG-2000", "000.00.12.H99", 1.00011, None, "Excel ate the zero", datetime(2024, 1, 2), None, None])
    sheet.append(["REG-2001", "000.00.12.H99", "1.000110", None, "Fine", datetime(2024, 1, 2), None, 79123004567])
    book.save(tmp_path / "register.xlsx")
    summary = loaded.import_register(tmp_path / "register.xlsx")
    assert summary.added == 1
    assert summary.rejected[0].row_number == 2 and "stored as a number" in summary.rejected[0].message
    assert loaded.register_frame().set_index("register_id").loc["REG-2001", "holder_id"] == "79123004567"


# -------------------------------------------------------------------------------------------- documents


def test_fingerprint() -> None:
    one = sha("one")
    assert fingerprint_of([one]) == one
    two = [sha("p1"), sha("p2")]
    assert fingerprint_of(two) == hashlib.sha256(f"{two[0]}\n{two[1]}".encode()).hexdigest()
    assert fingerprint_of(two) != fingerprint_of(two[::-1])
    with pytest.raises(ValueError):
        fingerprint_of([])
    with pytest.raises(ValueError):
        fingerprint_of(["ABC"])
    reordered = DocumentSpec("b", (FileSpec(1, "b", two[1], 1), FileSpec(0, "a", two[0], 1)), "000.00.12.H99", "KQ",
                             "t", date(2020, 1, 1))
    assert reordered.fingerprint == fingerprint_of(two)


def test_register_document_is_idempotent(loaded: Catalog) -> None:
    record, created = loaded.register_document(spec("a", files=2, register_id="REG-0001", holder_id="0791",
                                                    scanned_at="000.00.01.H99", manifest_document_id="KS-1"))
    assert created
    assert record.status == "RECEIVED" and record.code is None and record.version == 1
    assert [f.position for f in record.files] == [0, 1] and record.original_keys == (None, None)
    assert record.received_at.tzinfo is not None and abs((datetime.now(UTC) - record.received_at).total_seconds()) < 60
    assert (record.register_id, record.holder_id, record.scanned_at, record.manifest_document_id) == (
        "REG-0001", "0791", "000.00.01.H99", "KS-1")
    again, created = loaded.register_document(spec("a", files=2, batch="b2"))
    assert not created and again == record and again.batch_id == "b1"
    assert loaded.find_by_fingerprint(record.fingerprint) == record
    assert loaded.find_by_fingerprint(sha("nothing")) is None
    assert loaded.get_document(record.id) == record
    with pytest.raises(CatalogConflict):
        loaded.get_document(99999)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"agency_code": "000.18.00.H99"}, CodeError),
        ({"kind": "XX"}, CodeError),
        ({"procedure_code": "1.0001"}, CodeError),
        ({"dossier_code": "000.00.12.H99-230230-0001"}, CodeError),
        ({"title": "  "}, ValueError),
        ({"files": ()}, ValueError),
        ({"files": (FileSpec(0, "a", "A" * 64, 1),)}, ValueError),
        ({"files": (FileSpec(0, "a", sha("1"), 1), FileSpec(0, "b", sha("2"), 1))}, ValueError),
        ({"valid_until": date(2000, 1, 1)}, ValueError),
    ],
)
def test_register_document_refuses_bad_specs(cat: Catalog, changes: dict[str, object], error: type[Exception]) -> None:
    from dataclasses import replace

    with pytest.raises(error):
        cat.register_document(replace(spec("bad"), **changes))  # type: ignore[arg-type]
    assert cat.documents() == []


def test_register_documents_in_one_transaction(loaded: Catalog) -> None:
    first, _ = loaded.register_document(spec("m0"))
    specs = [spec("m1", files=2), spec("m0", batch="other"), spec("m2"), spec("m1", files=2, batch="again")]
    results = loaded.register_documents(specs)
    assert [created for _, created in results] == [True, False, True, False]
    assert results[1][0] == first
    assert results[3][0] == results[0][0]
    for record, _ in results:
        assert loaded.get_document(record.id) == record  # what it returns is what is stored
    assert len(loaded.documents()) == 3
    assert loaded.register_documents([]) == []
    with pytest.raises(CodeError):
        loaded.register_documents([spec("m9"), spec("m10", kind="ZZ")])
    assert len(loaded.documents()) == 3  # all or nothing


def test_register_race_creates_one_row(loaded: Catalog) -> None:
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        record, created = Catalog(loaded.url).register_document(spec("race", files=3))
        results.append((record.id, created))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for i, _ in results}) == 1 and sum(c for _, c in results) == 1
    assert len(loaded.documents()) == 1


def test_allocate_code_per_scope_and_idempotent(loaded: Catalog) -> None:
    ids = {}
    for name, agency, kind in [("a", "000.00.12.H99", "KQ"), ("b", "000.00.12.H99", "KQ"),
                               ("c", "000.00.12.H99", "TP"), ("d", "000.01.31.H99", "KQ")]:
        ids[name] = loaded.register_document(spec(name, agency=agency, kind=kind))[0].id
    template = DEFAULT_CODE_TEMPLATE
    assert loaded.allocate_code(ids["a"], template=template, year=2025) == "000.00.12.H99.2025.KQ.000001"
    assert loaded.allocate_code(ids["b"], template=template, year=2025) == "000.00.12.H99.2025.KQ.000002"
    assert loaded.allocate_code(ids["c"], template=template, year=2025) == "000.00.12.H99.2025.TP.000001"
    assert loaded.allocate_code(ids["d"], template=template, year=2025) == "000.01.31.H99.2025.KQ.000001"
    # a re-run gets the same code, even with another year or template
    assert loaded.allocate_code(ids["a"], template="{kind}/{year}/{agency}/{seq}", year=2026) == (
        "000.00.12.H99.2025.KQ.000001")
    e = loaded.register_document(spec("e"))[0].id
    assert loaded.allocate_code(e, template="{kind}/{year}/{agency}/{seq}", year=2026) == "KQ/2026/000.00.12.H99/1"
    f = loaded.register_document(spec("f"))[0].id
    assert parse_document_code(loaded.allocate_code(f, template=template, year=2025)).seq == 3
    record = loaded.get_by_code("000.00.12.H99.2025.KQ.000002")
    assert record is not None and record.id == ids["b"]
    assert loaded.get_by_code("000.00.12.H99.2025.KQ.000099") is None


def test_allocate_code_refusals_burn_nothing(loaded: Catalog) -> None:
    unknown = loaded.register_document(spec("u", agency="000.00.55.H99"))[0].id
    with pytest.raises(AgencyUnknown):
        loaded.allocate_code(unknown, template=DEFAULT_CODE_TEMPLATE, year=2025)
    bad = loaded.register_document(spec("q"))[0].id
    loaded.mark_quarantined(bad, "OCR_FAILED", "rescan")
    with pytest.raises(CatalogConflict, match="QUARANTINED"):
        loaded.allocate_code(bad, template=DEFAULT_CODE_TEMPLATE, year=2025)
    with pytest.raises(CodeError):
        loaded.allocate_code(bad, template="{agency}.{seq}", year=2025)
    with pytest.raises(CatalogConflict):
        loaded.allocate_code(424242, template=DEFAULT_CODE_TEMPLATE, year=2025)
    with pytest.raises(CodeError):
        loaded.allocate_code(loaded.register_document(spec("y"))[0].id, template=DEFAULT_CODE_TEMPLATE, year=99)
    ok = loaded.register_document(spec("ok"))[0].id
    assert loaded.allocate_code(ok, template=DEFAULT_CODE_TEMPLATE, year=2025).endswith(".000001")


def test_lifecycle_archive_quarantine_retry(loaded: Catalog) -> None:
    doc = loaded.register_document(spec("life", files=2))[0]
    with pytest.raises(CatalogConflict, match="allocate_code"):
        loaded.mark_archived(doc.id, archived_info(2))
    loaded.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    loaded.mark_quarantined(doc.id, "SIGNATURE_INVALID", "check the certificate")
    quarantined = loaded.get_document(doc.id)
    assert (quarantined.status, quarantined.reason, quarantined.message) == (
        "QUARANTINED", "SIGNATURE_INVALID", "check the certificate")
    with pytest.raises(CatalogConflict, match="reset_for_retry"):
        loaded.mark_archived(doc.id, archived_info(2))
    loaded.reset_for_retry(doc.id)
    retried = loaded.get_document(doc.id)
    assert (retried.status, retried.reason, retried.code) == ("RECEIVED", None, quarantined.code)  # code kept
    loaded.reset_for_retry(doc.id)  # RECEIVED stays RECEIVED
    with pytest.raises(ValueError):
        loaded.mark_archived(doc.id, archived_info(1))
    loaded.mark_archived(doc.id, archived_info(2))
    archived = loaded.get_document(doc.id)
    assert archived.status == "ARCHIVED" and archived.archived_at is not None
    assert (archived.pdf_key, archived.pages, archived.mean_confidence, archived.needs_review) == (
        "pdf/x.pdf", 3, 91.5, False)
    assert archived.original_keys == ("orig/x/0", "orig/x/1")
    loaded.mark_archived(doc.id, archived_info(2))  # same info again: a re-run
    with pytest.raises(CatalogConflict, match="already archived"):
        loaded.mark_archived(doc.id, archived_info(2, tag="other"))
    with pytest.raises(CatalogConflict, match="cannot be quarantined"):
        loaded.mark_quarantined(doc.id, "X", "y")
    with pytest.raises(CatalogConflict):
        loaded.reset_for_retry(doc.id)
    assert loaded.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=2030) == archived.code


def test_events_and_listing(loaded: Catalog) -> None:
    a = loaded.register_document(spec("ea", batch="B1"))[0]
    b = loaded.register_document(spec("eb", batch="B2"))[0]
    loaded.add_event(a.id, "ingestion", "success", tool="digitize", tool_version="0.1.0", detail="2 files")
    loaded.add_event(a.id, "ocr", "warning", tool="tesseract", tool_version="5.3.0", detail="low confidence")
    loaded.add_event(None, "manifest_validation", "failure", batch_id="B1", detail="row 3: bad code")
    loaded.add_event(b.id, "ingestion", "success", batch_id="B2-retry")
    got = loaded.events(a.id)
    assert [(e.event_type, e.outcome, e.tool, e.batch_id) for e in got] == [
        ("ingestion", "success", "digitize", "B1"), ("ocr", "warning", "tesseract", "B1")]
    assert got[0].created_at.tzinfo is not None and got[0].created_at <= got[1].created_at
    assert [e.event_type for e in loaded.batch_events("B1")] == ["ingestion", "ocr", "manifest_validation"]
    assert loaded.events(b.id)[0].batch_id == "B2-retry"
    with pytest.raises(ValueError):
        loaded.add_event(a.id, "x", "ok")
    with pytest.raises(ValueError):
        loaded.add_event(None, "x", "success")
    with pytest.raises(CatalogConflict):
        loaded.add_event(777, "x", "success")

    loaded.mark_quarantined(b.id, "OCR_FAILED", "rescan")
    assert [d.id for d in loaded.documents()] == [a.id, b.id]
    assert [d.id for d in loaded.documents(batch_id="B1")] == [a.id]
    assert [d.id for d in loaded.documents(status="QUARANTINED")] == [b.id]
    assert loaded.documents(batch_id="B1", status="QUARANTINED") == []
    assert loaded.documents()[0].files == a.files
    with pytest.raises(ValueError):
        loaded.documents(status="DONE")


def test_frames_columns_and_types(loaded: Catalog) -> None:
    agencies = loaded.agencies_frame()
    assert list(agencies.columns) == [*AGENCY_COLUMNS, "recorded_at"] and len(agencies) == 6
    assert agencies["remote"].dtype == bool and agencies["one_stop"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(agencies["valid_to"])
    assert agencies.set_index("code").loc["000.02.31.H99", "remote"]
    register = loaded.register_frame()
    assert len(register) == 24 and pd.api.types.is_datetime64_any_dtype(register["issued_date"])

    empty = loaded.archived_frame()
    assert list(empty.columns) == list(Catalog.ARCHIVED_COLUMNS) and empty.empty
    doc = loaded.register_document(spec("f1", register_id="REG-0001", scanned_at="000.00.01.H99"))[0]
    pending = loaded.register_document(spec("f2"))[0]
    loaded.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    loaded.allocate_code(pending.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    loaded.mark_archived(doc.id, archived_info())
    frame = loaded.archived_frame()
    assert list(frame["id"]) == [doc.id]
    row = frame.iloc[0]
    assert (row["register_id"], row["scanned_at"], row["version"], row["kind"]) == (
        "REG-0001", "000.00.01.H99", 1, "KQ")
    assert str(frame["archived_at"].dt.tz) == "UTC" and row["issued_date"] == pd.Timestamp("2023-03-14")


def test_correction_supersedes_with_same_code(loaded: Catalog) -> None:
    original = loaded.register_document(spec("v1", register_id="REG-0001"))[0]
    code = loaded.allocate_code(original.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    with pytest.raises(CatalogConflict, match="only archived"):
        loaded.supersede(original.id, spec("v2"), actor="officer", reason="typo")
    loaded.mark_archived(original.id, archived_info(tag="v1"))

    fixed, created = loaded.supersede(original.id, spec("v2", batch="fix", register_id="REG-0001"),
                                      actor="Nguyễn Văn A", reason="page 2 was missing")
    assert created and (fixed.code, fixed.version, fixed.supersedes_id, fixed.status) == (
        code, 2, original.id, "RECEIVED")
    again, created = loaded.supersede(original.id, spec("v2", batch="fix"), actor="x", reason="y")
    assert not created and again.id == fixed.id
    assert loaded.allocate_code(fixed.id, template=DEFAULT_CODE_TEMPLATE, year=2026) == code
    assert "page 2 was missing" in loaded.events(fixed.id)[0].detail
    assert "Nguyễn Văn A" in loaded.events(original.id)[-1].detail
    with pytest.raises(CatalogConflict, match="already superseded"):
        loaded.supersede(original.id, spec("v3"), actor="x", reason="y")
    with pytest.raises(CatalogConflict, match="agency and kind"):
        other = loaded.register_document(spec("w1"))[0]
        loaded.allocate_code(other.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
        loaded.mark_archived(other.id, archived_info(tag="w1"))
        loaded.supersede(other.id, spec("w2", kind="TP"), actor="x", reason="y")

    # until the new version is archived, the old one counts; then only the new one, once
    assert list(loaded.archived_frame().query("code == @code")["version"]) == [1]
    loaded.mark_archived(fixed.id, archived_info(tag="v2"))
    frame = loaded.archived_frame()
    assert list(frame.query("code == @code")["version"]) == [2]
    latest = loaded.get_by_code(code)
    assert latest is not None and latest.id == fixed.id
    first = loaded.get_by_code(code, version=1)
    assert first is not None and first.id == original.id and first.status == "ARCHIVED"


def test_restore_into_another_catalog_and_find_by_pdf(loaded: Catalog, tmp_path: Path) -> None:
    source = loaded
    first = source.register_document(spec("r1"))[0]
    code = source.allocate_code(first.id, template=DEFAULT_CODE_TEMPLATE, year=2025)
    source.mark_archived(first.id, archived_info(tag="r1"))
    fixed = source.supersede(first.id, spec("r1-fixed"), actor="officer", reason="rescan")[0]
    source.mark_archived(fixed.id, archived_info(tag="r1-fixed"))
    assert [r.id for r in source.find_by_pdf_sha256(sha("pdfr1").upper())] == [first.id]
    assert source.find_by_pdf_sha256(sha("nothing")) == []

    target = Catalog(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    target.upgrade()
    target.register_document(spec("already here"))  # so that ids differ between the two catalogs
    old_version = target.restore_document(source.get_document(first.id))
    new_version = target.restore_document(source.get_document(fixed.id))
    assert (old_version.code, old_version.version, old_version.supersedes_id) == (code, 1, None)
    assert (new_version.version, new_version.supersedes_id, new_version.status) == (2, old_version.id, "ARCHIVED")
    assert new_version.original_keys == ("orig/r1-fixed/0",)
    with pytest.raises(CatalogConflict):
        target.restore_document(source.get_document(first.id))
    # allocation goes on after the restored code
    target.import_agencies(SAMPLES / "agencies.csv")
    later = target.register_document(spec("r2"))[0]
    assert target.allocate_code(later.id, template=DEFAULT_CODE_TEMPLATE, year=2025).endswith(".KQ.000002")
    target.close()


# ------------------------------------------------------------------------------------------ unavailability


def test_sqlite_synchronous_from_url(tmp_path: Path) -> None:
    for value, expected in [("", 2), ("?synchronous=normal", 1)]:
        catalog = Catalog(f"sqlite:///{tmp_path / 'sync.db'}{value}")
        with catalog.read() as conn:  # the pragma is per connection: look at one of the catalog's own
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        catalog.close()
    with pytest.raises(ConfigurationError, match="synchronous"):
        Catalog(f"sqlite:///{tmp_path / 'sync.db'}?synchronous=sometimes")


def test_forked_child_waits_for_the_parents_write_turn(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'fork.db'}")
    catalog.upgrade()  # opens the writer lock file in the parent
    queue = catalog._writers
    assert queue is not None
    signal_read, signal_write = os.pipe()
    with queue.hold(5):
        pid = os.fork()
        if pid == 0:  # child: must get the turn, but only once the parent has given it up
            code = 3
            try:
                os.set_blocking(signal_read, False)
                with queue.hold(10):
                    code = 0 if os.read(signal_read, 1) == b"x" else 1
            except BlockingIOError:
                code = 1  # got in while the parent still wrote (shared inherited lock)
            except CatalogUnavailable:
                code = 2  # never got in (a thread lock inherited in the locked state)
            finally:
                os._exit(code)
        time.sleep(0.3)
        os.write(signal_write, b"x")
    _, status = os.waitpid(pid, 0)
    os.close(signal_read)
    os.close(signal_write)
    assert os.waitstatus_to_exitcode(status) == 0
    assert catalog.register_document(spec("after fork"))[1]


def test_sqlite_lock_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "locked.db"
    catalog = Catalog(f"sqlite:///{path}")
    catalog.upgrade()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CatalogUnavailable, match="locked"):
            catalog.register_document(spec("locked"))
        assert catalog.documents() == []  # readers are not blocked by a writer in WAL mode
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert catalog.register_document(spec("locked"))[1]


def test_unreachable_postgres_is_transient_and_hides_the_password() -> None:
    catalog = Catalog("postgresql://digitize:s3cret-pass@127.0.0.1:1/catalog")
    with pytest.raises(CatalogUnavailable) as info:
        catalog.documents()
    assert "s3cret-pass" not in str(info.value) and "s3cret-pass" not in repr(catalog)


CITIZEN_ID = "079099424242"  # appears in no message of the catalog's own


def test_driver_errors_do_not_carry_the_rows_values(cat: Catalog) -> None:
    """Engines hide bound parameters: a driver error's text, and so a logged traceback, holds no row data."""
    record, _ = cat.register_document(spec("personal", holder_id=CITIZEN_ID))
    row = {c: getattr(record, c) for c in ("fingerprint", "batch_id", "agency_code", "kind", "title", "issued_date",
                                           "holder_id", "received_at")}
    with pytest.raises(sa.exc.IntegrityError) as duplicate, cat.write() as conn:  # the same fingerprint again
        conn.execute(sa.insert(documents).values(**row, status="RECEIVED"))
    assert "parameters hidden" in str(duplicate.value) and CITIZEN_ID not in str(duplicate.value)
    with pytest.raises(CatalogConflict) as conflict:  # through a public method: the driver error is its cause
        cat.restore_document(replace(record, code="X.1", original_keys=(None,)))
    logged = "".join(traceback.format_exception(conflict.value))
    assert "IntegrityError" in logged and CITIZEN_ID not in logged
    if cat.dialect == "postgresql":  # SQLite neither checks lengths nor raises DataError
        with pytest.raises(sa.exc.DataError) as too_long, cat.write() as conn:
            conn.execute(sa.update(documents).where(documents.c.id == record.id).values(holder_id=CITIZEN_ID * 10))
        assert CITIZEN_ID not in str(too_long.value)
        # PostgreSQL's DETAIL line quotes the whole failing row ("Failing row contains (… 079…)"): left out
        with pytest.raises(sa.exc.IntegrityError) as not_null, cat.write() as conn:
            conn.execute(sa.update(documents).where(documents.c.id == record.id).values(status=None))
        logged = "".join(traceback.format_exception(not_null.value))
        assert "violates not-null constraint" in logged and CITIZEN_ID not in logged, logged


def test_review_queries_and_a_retry_recorded_with_its_actor(loaded: Catalog) -> None:
    """What the quarantine page reads: quarantined, flagged and duplicate documents; a retry names who asked."""
    first, _ = loaded.register_document(spec("a"))
    loaded.allocate_code(first.id, template=DEFAULT_CODE_TEMPLATE, year=2024)
    loaded.mark_archived(first.id, replace(archived_info(), needs_review=True))
    loaded.add_event(first.id, "duplicate_detection", "warning", batch_id="b2", detail="a in batch b2: same bytes")
    bad, _ = loaded.register_document(spec("q"))
    loaded.mark_quarantined(bad.id, "CORRUPT_FILE", "truncated — rescan it")
    loaded.add_event(bad.id, "quarantine", "failure", detail="first")
    loaded.add_event(bad.id, "quarantine", "failure", detail="second")

    assert [r.id for r in loaded.flagged_for_review()] == [first.id]
    (seen,) = loaded.duplicate_sightings()
    code = loaded.get_document(first.id).code
    assert (seen.event.batch_id, seen.existing.id, seen.existing.code, seen.existing.batch_id) == (
        "b2", first.id, code, "b1")
    assert {k: e.detail for k, e in loaded.last_events([first.id, bad.id], "quarantine").items()} == {
        bad.id: "second"}

    record = loaded.retry_quarantined(bad.id, actor="officer.lan", via="Airflow UI")
    assert (record.status, record.reason, record.message) == ("RECEIVED", None, None)
    (event,) = loaded.last_events([bad.id], "quarantine_retry").values()
    assert event.detail == "retry requested by officer.lan (Airflow UI); was quarantined [CORRUPT_FILE]"
    for document_id in (bad.id, first.id):  # RECEIVED now, ARCHIVED: nothing to retry, nothing recorded
        with pytest.raises(CatalogConflict, match="not quarantined"):
            loaded.retry_quarantined(document_id, actor="officer.lan", via="Airflow UI")
    assert len([e for e in loaded.events(bad.id) if e.event_type == "quarantine_retry"]) == 1
    with pytest.raises(CatalogConflict, match="no document"):
        loaded.retry_quarantined(10_000, actor="officer.lan", via="Airflow UI")
