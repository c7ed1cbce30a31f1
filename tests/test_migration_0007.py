"""Upgrade 0006 → 0007 on a catalog holding real history: corrections (with and without new scans), LTA renewals
(recorded by ``lta.renew``, and restored by a rebuild, which keeps no renewal event), agencies with a successor,
the register and reuse events. The backfill must give each code its first archiving date and each version its
origin, and the frames must give the rows a report expects at cut-offs before and after each version."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from test_catalog import fresh_database_url

from digitize.archive import open_archive
from digitize.catalog.schema import MIGRATIONS_DIR
from digitize.catalog.store import Catalog
from digitize.preservation import archive_reference_snapshot, replay_reference_imports


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _renewal_print(fingerprint: str, version: int) -> str:
    return hashlib.sha256(f"{fingerprint}\nversion {version}".encode("ascii")).hexdigest()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# code, version, archived_at, files, fingerprint, renewal event, register_id
A, B, C = "000.00.12.H99.2024.KQ.000001", "000.00.12.H99.2024.KQ.000002", "000.00.12.H99.2024.KQ.000003"
VERSIONS: list[tuple[str, int, str, tuple[str, ...], str, bool, str]] = [
    (A, 1, "2024-05-01 03:00:00", ("a1",), _sha("a1"), False, "REG-1"),
    (A, 2, "2025-03-01 03:00:00", ("a2",), _sha("a2"), False, "REG-1"),  # a correction with a new scan
    (A, 3, "2025-06-01 03:00:00", ("a2",), _renewal_print(_sha("a2"), 3), True, "REG-1"),  # lta.renew
    (B, 1, "2024-06-01 03:00:00", ("b1",), _sha("b1"), False, "REG-2"),
    (B, 2, "2025-02-01 03:00:00", ("b1", "b1"), _sha("b1\nb1"), False, "REG-1"),  # metadata only: a wrong link
    (C, 1, "2024-07-01 03:00:00", ("c1",), _sha("c1"), False, "REG-2"),
    (C, 2, "2025-04-01 03:00:00", ("c1",), _renewal_print(_sha("c1"), 2), False, "REG-2"),  # renewal, rebuilt
]


def _build_at_0006(database: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    sqlite = engine.dialect.name == "sqlite"

    def ts(text: str) -> Any:
        return text if sqlite else _at(text)

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
        conn.execute(sa.text(
            "INSERT INTO agencies (code, name, level, parent_code, remote, one_stop, valid_from, valid_to, "
            "successor_code) VALUES (:code, :name, :level, NULL, :f, :os, :vf, :vt, :succ)"), [
            {"code": "000.00.12.H99", "name": "Sở Tư pháp", "level": "province", "f": False, "os": False,
             "vf": date(2020, 1, 1), "vt": None, "succ": None},
            {"code": "000.01.31.H99", "name": "UBND xã B", "level": "commune", "f": False, "os": True,
             "vf": date(2020, 1, 1), "vt": None, "succ": None},
            {"code": "000.00.31.H99", "name": "UBND huyện A", "level": "district", "f": False, "os": True,
             "vf": date(2020, 1, 1), "vt": date(2025, 6, 30), "succ": "000.01.31.H99"},
        ])
        conn.execute(sa.text("INSERT INTO register (register_id, agency_code, title, issued_date) "
                             "VALUES (:id, '000.00.12.H99', :title, :issued)"), [
            {"id": "REG-1", "title": "Phiếu lý lịch tư pháp", "issued": date(2024, 4, 1)},
            {"id": "REG-2", "title": "Trích lục khai sinh", "issued": date(2024, 4, 2)}])
        ids: dict[tuple[str, int], int] = {}
        for code, version, archived, files, fingerprint, renewal, register_id in VERSIONS:
            new_id = conn.execute(sa.text(
                "INSERT INTO documents (fingerprint, batch_id, status, code, version, supersedes_id, agency_code, "
                "kind, title, issued_date, register_id, scanned_at, received_at, archived_at, needs_review) "
                "VALUES (:fp, 'b', 'ARCHIVED', :code, :version, :sup, '000.00.12.H99', 'KQ', 'Tài liệu', :issued, "
                ":reg, '000.01.31.H99', :received, :archived, :no) RETURNING id"),
                {"fp": fingerprint, "code": code, "version": version, "sup": ids.get((code, version - 1)),
                 "issued": date(2024, 4, 1), "reg": register_id, "received": ts(archived), "archived": ts(archived),
                 "no": False}).scalar_one()
            ids[(code, version)] = new_id
            conn.execute(sa.text("INSERT INTO document_files (document_id, position, name, sha256, size) "
                                 "VALUES (:id, :pos, :name, :sha, 10)"),
                         [{"id": new_id, "pos": i, "name": f"{f}-{i}.png", "sha": _sha(f)}
                          for i, f in enumerate(files)])
            if renewal:
                conn.execute(sa.text(
                    "INSERT INTO events (document_id, batch_id, event_type, outcome, tool, tool_version, detail, "
                    "created_at) VALUES (:id, 'b', 'lta_renewal', 'success', 'pyhanko', '0', :detail, :at)"),
                    {"id": new_id, "detail": f"version {version}: new document timestamp over version {version - 1}",
                     "at": ts(archived)})
        conn.execute(sa.text(
            "INSERT INTO reuse_events (document_id, code, client, caller_system, new_dossier_code, purpose, reused_at) "
            "VALUES (:id, :code, 'mot-cua', 'Một cửa', '000.00.12.H99-250110-0001', 'cấp lại', :at)"),
            {"id": ids[(A, 1)], "code": A, "at": ts("2025-01-10 02:00:00")})
        conn.execute(sa.text(
            "INSERT INTO supplied_again_events (holder_id, new_dossier_code, document, reason, client, caller_system, "
            "purpose, recorded_at) VALUES ('079222001234', '000.00.12.H99-250110-0001', 'Trích lục', 'not_found', "
            "'mot-cua', 'Một cửa', 'cấp lại', :at)"), {"at": ts("2025-01-10 02:05:00")})
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_0006_backfills_and_the_frames_follow(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    _build_at_0006(url)
    catalog = Catalog(url)
    catalog.upgrade()
    assert catalog.schema_revision() == "0007"
    records = {(r.code, r.version): r for r in catalog.documents()}
    origins = {key: r.origin for key, r in records.items()}
    assert origins == {(A, 1): "scan", (A, 2): "scan", (A, 3): "renewal", (B, 1): "scan", (B, 2): "correction",
                       (C, 1): "scan", (C, 2): "renewal"}
    for (code, _version), record in records.items():
        assert record.digitized_at == records[(code, 1)].archived_at, (code, _version)
    assert records[(A, 3)].digitized_at == _at("2024-05-01 03:00:00")

    end_2024 = _at("2024-12-31 17:00:00")  # the end of 31 Dec 2024 in Vietnam
    old = catalog.archived_frame(end_2024).set_index("code")
    assert dict(old["version"]) == {A: 1, B: 1, C: 1} and old.loc[B, "register_id"] == "REG-2"
    march = catalog.archived_frame(_at("2025-03-15 00:00:00")).set_index("code")
    assert dict(march["version"]) == {A: 2, B: 2, C: 1} and march.loc[B, "register_id"] == "REG-1"
    now = catalog.archived_frame().set_index("code")
    assert dict(now["version"]) == {A: 3, B: 2, C: 2}
    assert now.loc[A, "digitized_at"] == pd.Timestamp("2024-05-01 03:00:00", tz="UTC")
    scans = catalog.scans_frame()
    assert list(zip(scans["code"], scans["version"], strict=True)) == [(A, 1), (B, 1), (C, 1), (A, 2)]

    since = _at("2024-05-01 03:00:00")  # the catalog's first record: reference data is known from then
    agencies = catalog.agencies_frame(since)
    assert len(agencies) == 3 and (agencies["recorded_at"] == pd.Timestamp(since)).all()
    assert catalog.agencies_frame(_at("2024-01-01 00:00:00")).empty
    assert len(catalog.register_frame(end_2024)) == 2
    successors = catalog.successors_frame()
    assert list(successors["predecessor_code"]) == ["000.00.31.H99"]
    assert successors.iloc[0]["effective_date"] == pd.Timestamp("2025-07-01")
    assert catalog.needs_frame(end_2024).empty  # recorded on 10 January 2025
    needs = catalog.needs_frame(_at("2025-01-31 00:00:00"))
    assert sorted(needs["outcome"]) == ["reused", "supplied_again"]
    assert (needs["at"] == needs["recorded_at"]).all()
    assert catalog.latest_recorded_at() == _at("2025-06-01 03:00:00")

    # the reference data taken over by the migration is kept in the archive once; a rebuild restores it as recorded
    archive = open_archive(f"file://{tmp_path / 'archive'}")
    archive.ensure_bucket()
    key, rows = archive_reference_snapshot(catalog, archive)
    assert key is not None and rows == 3 + 2 + 1 + 1 + 1  # agencies, register, successor, the API's two events
    assert archive_reference_snapshot(catalog, archive) == (None, 0)  # nothing new since
    rebuilt = Catalog(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    rebuilt.upgrade()
    assert replay_reference_imports(rebuilt, archive).snapshot_rows == 7  # not the reuse of a document not here
    for cutoff in (since, None):
        for frame in ("agencies_frame", "register_frame", "successors_frame"):
            assert getattr(rebuilt, frame)(cutoff).equals(getattr(catalog, frame)(cutoff)), (frame, cutoff)
    catalog.close()
