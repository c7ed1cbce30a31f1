"""Cover sheet ids and their catalog rows (migration 0008), on real SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from test_catalog import SAMPLES, fresh_database_url, sha

from digitize.catalog import Catalog, DocumentSpec, FileSpec, SheetRow
from digitize.catalog.schema import MIGRATIONS_DIR
from digitize.codes import parse_sheet_id, sheet_id_for
from digitize.codes.sheets import _ALPHABET
from digitize.errors import CodeError

# ------------------------------------------------------------------------------------------------ ids


def test_sheet_ids_are_deterministic_distinct_and_well_formed() -> None:
    first = sheet_id_for("register:REG-0001")
    assert first == sheet_id_for("register:REG-0001")
    assert first != sheet_id_for("register:REG-0002")
    assert first.startswith("CS-") and len(first) == len("CS-XXXX-XXXX-XXXX-C")
    ids = {sheet_id_for(f"register:REG-{n:07d}") for n in range(20_000)}
    assert len(ids) == 20_000
    assert all(parse_sheet_id(i) == i for i in itertools.islice(ids, 500))


def test_parse_sheet_id_normalises_what_people_type() -> None:
    sheet = sheet_id_for("register:REG-0042")
    assert parse_sheet_id(sheet.lower()) == sheet
    assert parse_sheet_id(" " + sheet.replace("-", " ") + "\n") == sheet
    assert parse_sheet_id(sheet.replace("-", "")) == sheet
    spoiled = sheet.replace("0", "O").replace("1", "l")  # Crockford's look-alikes read back
    assert parse_sheet_id(spoiled) == sheet


def test_parse_sheet_id_refuses_every_single_typo_and_neighbour_swap() -> None:
    sheet = sheet_id_for("planned:x")
    chars = sheet.replace("-", "")[2:]
    for i, original in enumerate(chars):
        for other in _ALPHABET:
            if other != original:
                typo = chars[:i] + other + chars[i + 1:]
                assert parse_sheet_id("CS" + typo) is None, typo
    for i in range(len(chars) - 1):
        if chars[i] != chars[i + 1]:
            swapped = chars[:i] + chars[i + 1] + chars[i] + chars[i + 2:]
            assert parse_sheet_id("CS" + swapped) is None, swapped


@pytest.mark.parametrize("text", ["", "CS", "000.00.12.H99-230314-0007", "CS-1234", "XS-24SD-1RX9-BBK2-A",
                                  "CS-24SD-1RX9-BBK2-AA", "CS-24SD-1RX9-BBK2-U", "https://example.org"])
def test_parse_sheet_id_returns_none_for_what_is_not_a_sheet_id(text: str) -> None:
    assert parse_sheet_id(text) is None


# ------------------------------------------------------------------------------------------- catalog


@pytest.fixture(params=["sqlite", "postgresql"])
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(fresh_database_url(request.param, tmp_path))
    catalog.upgrade()
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []
    assert catalog.import_register(SAMPLES / "register.csv").rejected == []
    yield catalog
    catalog.close()


def planned(**changes: object) -> SheetRow:
    values: dict[str, object] = dict(agency_code="000.00.12.H99", kind="TP", title="Đơn đề nghị (thành phần hồ sơ)",
                                     issued_date=date(2021, 6, 17), dossier_code="000.00.12.H99-210617-0001",
                                     holder_id="079123004567", document_id="tp-1", planned=True)
    values.update(changes)
    return SheetRow(**values)  # type: ignore[arg-type]


def register_row(cat: Catalog, register_id: str) -> SheetRow:
    frame = cat.register_frame()
    row = frame[frame.register_id == register_id].iloc[0].to_dict()
    row["issued_date"] = row["issued_date"].date()
    row["valid_until"] = None if row["valid_until"] != row["valid_until"] else row["valid_until"].date()
    row = {k: (None if isinstance(v, float) else v) for k, v in row.items()}
    return SheetRow.from_register(row)


def test_register_sheets_is_idempotent_and_resolves_both_kinds_of_row(cat: Catalog) -> None:
    reg = register_row(cat, "REG-0001")
    ids = cat.register_sheets([reg, planned()], printed_by="officer@ubnd")
    assert ids[0] == sheet_id_for("register:REG-0001")
    again = cat.register_sheets([planned(), reg], printed_by="other@ubnd")
    assert again == [ids[1], ids[0]]  # same rows, same ids, whatever the order

    resolved = cat.resolve_sheet(ids[0].lower())  # ids typed by hand resolve too
    assert resolved is not None
    assert (resolved.register_id, resolved.kind, resolved.agency_code, resolved.title, resolved.issued_date,
            resolved.holder_id, resolved.planned) == ("REG-0001", "KQ", "000.00.12.H99", "Phiếu lý lịch tư pháp số 1",
                                                     date(2023, 3, 14), "079123004567", False)
    assert resolved.sheet_id == ids[0] and resolved.printed_by == "other@ubnd"
    assert resolved.printed_at is not None and resolved.printed_at.tzinfo is not None

    tp = cat.resolve_sheet(ids[1])
    assert tp == planned(sheet_id=ids[1], printed_at=tp.printed_at if tp else None, printed_by="other@ubnd")

    assert cat.resolve_sheet(sheet_id_for("register:REG-0002")) is None  # never printed here
    assert cat.resolve_sheet("not a sheet") is None


def test_a_planned_row_that_differs_in_any_field_gets_its_own_sheet(cat: Catalog) -> None:
    base = cat.register_sheets([planned()])[0]
    for change in ({"title": "Đơn khác"}, {"issued_date": date(2021, 6, 18)}, {"document_id": "tp-2"},
                   {"holder_id": "079123004568"}, {"kind": "KQ"}):
        assert cat.register_sheets([planned(**change)])[0] != base, change


def test_a_register_sheet_resolves_to_the_registers_current_fields(cat: Catalog, tmp_path: Path) -> None:
    sheet = cat.register_sheets([register_row(cat, "REG-0002")])[0]
    text = (SAMPLES / "register.csv").read_text(encoding="utf-8")
    text = text.replace("Trích lục khai sinh", "Trích lục khai sinh (bản sao)")
    (tmp_path / "register.csv").write_text(text, encoding="utf-8")
    assert cat.import_register(tmp_path / "register.csv").changed >= 1
    resolved = cat.resolve_sheet(sheet)
    assert resolved is not None and resolved.title == "Trích lục khai sinh (bản sao)"


@pytest.mark.parametrize("bad", [{"agency_code": "000.0.12.H99"}, {"kind": "XX"}, {"title": "  "},
                                 {"valid_until": date(2020, 1, 1)}])
def test_register_sheets_refuses_rows_the_pipeline_could_not_use(cat: Catalog, bad: dict[str, object]) -> None:
    with pytest.raises((CodeError, ValueError)):
        cat.register_sheets([planned(**bad)])
    assert cat.resolve_sheet(sheet_id_for(planned(**bad).key)) is None


def test_documents_carry_their_stack_and_sheet(cat: Catalog) -> None:
    spec = DocumentSpec(batch_id="stack-1", files=(FileSpec(0, "stack.pdf", sha("s"), 10),),
                        agency_code="000.00.12.H99", kind="KQ", title="x", issued_date=date(2023, 3, 14))
    record, _ = cat.register_document(spec)
    assert (record.stack_sha256, record.stack_first_page, record.stack_last_page, record.sheet_id) == (None,) * 4


# ------------------------------------------------------------------------------------------ migration


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_to_0008_keeps_documents_and_adds_the_sheet_tables(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    previous = ScriptDirectory.from_config(config).get_revision("0008").down_revision  # whatever 0008 follows
    assert isinstance(previous, str)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, previous)
        conn.execute(sa.text("INSERT INTO documents (fingerprint, batch_id, status, version, agency_code, kind, "
                             "title, issued_date, holder_id, needs_review, received_at) VALUES (:f, 'b', 'RECEIVED', "
                             "1, '000.00.12.H99', 'KQ', 'Giấy phép', '2023-03-14', '079123004567', false, :t)"),
                     {"f": sha("old"), "t": datetime(2026, 1, 2, tzinfo=UTC)})
    engine.dispose()
    catalog = Catalog(url)
    catalog.upgrade()
    record = catalog.find_by_fingerprint(sha("old"))
    assert record is not None and record.title == "Giấy phép" and record.holder_id == "079123004567"
    assert record.stack_sha256 is None and record.sheet_id is None
    sheet = catalog.register_sheets([planned()])[0]
    assert catalog.resolve_sheet(sheet) is not None
    catalog.close()
