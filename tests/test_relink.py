"""Undoing a wrong link (issue 18): ``relink`` makes the next version (or a new code) with the same files and
the right register row's metadata, signed again, and withdraws the old version from coverage.

Real pipeline: a generated decision page archived under the wrong row of the same holder (the confusion
matching is built to avoid), in a real folder archive, signed with the demo PKI, then re-linked through
the CLI; the signed PDFs are checked by ``verify`` and coverage's frame counts the document once.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from digitize.presentation.cli import main
from tests import matchgen


@pytest.fixture
def archived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_pki: Any) -> dict[str, Any]:
    """One scan of row ``right`` archived under ``wrong`` (same holder, same agency: a plausible slip)."""
    from digitize.catalog import Catalog
    from digitize.config import load_settings

    for name, value in {"DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
                        "DIGITIZE_ARCHIVE_URL": (tmp_path / "archive").as_uri(), "DIGITIZE_OCR_JOBS": "2",
                        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
                        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
                        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert), "DIGITIZE_ACTOR": "kiem.tra"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "archive").mkdir()
    rows = matchgen.make_register(12)
    right = rows[0]
    wrong = next(r for r in rows[1:] if r.holder_id == right.holder_id and r.agency_code == right.agency_code)
    other_agency = next(r for r in rows if r.agency_code != right.agency_code)
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    agencies, register = matchgen.write_reference(rows, tmp_path)
    catalog.import_agencies(agencies)
    catalog.import_register(register)
    batch = tmp_path / "batch-1"
    batch.mkdir()
    scan = matchgen.scans_for(rows)[0]
    matchgen.render_scan(scan, batch / "scan.png")
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "agency_code", "kind", "title", "issued_date", "register_id", "holder_id"))
        writer.writerow(("scan.png", wrong.agency_code, "KQ", wrong.title, wrong.issued_date.isoformat(),
                         wrong.register_id, wrong.holder_id))
    assert main(["process", str(batch), "--quiet"]) == 0
    (v1,) = catalog.documents(status="ARCHIVED")
    assert v1.register_id == wrong.register_id
    return {"catalog": catalog, "v1": v1, "right": right, "wrong": wrong, "other": other_agency}


def _counted(catalog: Any) -> dict[str, str]:
    frame = catalog.archived_frame()
    return dict(zip(frame["code"], frame["register_id"], strict=True))


def test_relink_makes_the_next_version_and_withdraws_the_old(archived: dict[str, Any]) -> None:
    catalog, v1, right = archived["catalog"], archived["v1"], archived["right"]
    assert _counted(catalog) == {v1.code: archived["wrong"].register_id}
    assert main(["relink", v1.code, "--register", right.register_id, "--actor", "kiem.tra",
                 "--reason", "nhầm kết quả của cùng người"]) == 0
    v2 = catalog.get_by_code(v1.code)
    assert v2 is not None and (v2.version, v2.origin, v2.supersedes_id) == (2, "relink", v1.id)
    assert (v2.register_id, v2.title, v2.issued_date, v2.holder_id) == (
        right.register_id, right.title, right.issued_date, right.holder_id)
    assert [f.sha256 for f in v2.files] == [f.sha256 for f in v1.files]  # the same scan
    assert v2.digitized_at == v1.digitized_at  # digitized when it was first archived
    old = catalog.get_by_code(v1.code, version=1)
    assert old is not None and old.withdrawn and old.status == "ARCHIVED"
    assert _counted(catalog) == {v1.code: right.register_id}  # counted once, under the right row
    relinked = [e for e in catalog.events(v2.id) if e.event_type == "relink"]
    assert relinked and "by kiem.tra: nhầm kết quả" in relinked[0].detail and "evidence:" in relinked[0].detail
    assert "holder_id" in relinked[0].detail and right.holder_id not in relinked[0].detail
    assert any(e.event_type == "withdrawal" for e in catalog.events(v1.id))
    assert main(["verify", v1.code]) == 0  # v2, signed again
    assert main(["relink", v1.code, "--register", right.register_id, "--actor", "kiem.tra", "--reason", "x"]) != 0


def test_relink_to_another_agency_makes_a_new_code(archived: dict[str, Any]) -> None:
    catalog, v1, other = archived["catalog"], archived["v1"], archived["other"]
    assert main(["relink", v1.code, "--register", other.register_id, "--actor", "kiem.tra",
                 "--reason", "cơ quan khác"]) == 0
    new = next(d for d in catalog.documents(status="ARCHIVED") if d.id != v1.id)
    assert new.code != v1.code and new.code is not None and new.code.startswith(other.agency_code)
    assert (new.version, new.origin, new.register_id) == (1, "relink", other.register_id)
    assert catalog.get_document(v1.id).withdrawn
    assert _counted(catalog) == {new.code: other.register_id}  # the old code counts nowhere


def test_relink_refuses_an_unknown_row_and_leaves_the_document_as_it_was(archived: dict[str, Any]) -> None:
    catalog, v1 = archived["catalog"], archived["v1"]
    assert main(["relink", v1.code, "--register", "REG-99999", "--actor", "a", "--reason", "b"]) == 64
    assert not catalog.get_document(v1.id).withdrawn and len(catalog.documents()) == 1


def test_catalog_rebuild_restores_the_relink_and_the_withdrawal(archived: dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.catalog import Catalog

    catalog, v1, right = archived["catalog"], archived["v1"], archived["right"]
    assert main(["relink", v1.code, "--register", right.register_id, "--actor", "kiem.tra", "--reason", "sai"]) == 0
    before = {(d.version, d.origin, d.withdrawn, d.register_id) for d in catalog.documents()}
    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", rebuilt_url)
    rebuilt = Catalog(rebuilt_url)
    rebuilt.upgrade()
    assert main(["catalog", "rebuild"]) == 0
    assert {(d.version, d.origin, d.withdrawn, d.register_id) for d in rebuilt.documents()} == before
    assert _counted(rebuilt) == {v1.code: right.register_id}
