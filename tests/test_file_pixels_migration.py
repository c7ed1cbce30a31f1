"""Migration 0009 (``document_files.pixels``): an upgrade from the previous head keeps every file row, on real
SQLite and PostgreSQL; rows from before weigh nothing when chunks are cut, new ones carry their pixels."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from test_catalog import SAMPLES, fresh_database_url, sha

from digitize.catalog import Catalog, DocumentSpec, FileSpec
from digitize.catalog.schema import MIGRATIONS_DIR


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_to_0009_keeps_the_files_and_weighs_new_ones(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    previous = ScriptDirectory.from_config(config).get_revision("0009").down_revision
    assert previous == "0008"
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, previous)
        old_id = conn.execute(sa.text(
            "INSERT INTO documents (fingerprint, batch_id, status, version, agency_code, kind, title, issued_date, "
            "needs_review, received_at) VALUES (:f, 'b-old', 'RECEIVED', 1, '000.00.12.H99', 'KQ', 'Giấy phép', "
            "'2023-03-14', false, :t) RETURNING id"), {"f": sha("old"), "t": datetime(2026, 1, 2, tzinfo=UTC)}).scalar()
        conn.execute(sa.text("INSERT INTO document_files (document_id, position, name, sha256, size) "
                             "VALUES (:d, 0, 'old.tif', :s, 123456)"), {"d": old_id, "s": sha("old")})
    engine.dispose()

    catalog = Catalog(url)
    catalog.upgrade()
    old = catalog.get_document(old_id)
    assert [(f.name, f.size, f.pixels) for f in old.files] == [("old.tif", 123456, None)]
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []
    new, _ = catalog.register_document(DocumentSpec(
        batch_id="b-new", files=(FileSpec(0, "new.png", sha("new"), 2_000, 2480 * 3508),),
        agency_code="000.00.12.H99", kind="KQ", title="Giấy phép mới", issued_date=date(2026, 1, 5)))
    assert catalog.document_pixels([old_id, new.id]) == {new.id: 2480 * 3508}  # the old one: unknown, left out
    catalog.close()
