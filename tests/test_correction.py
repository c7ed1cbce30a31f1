"""Corrections: an archived document superseded by a corrected version keeps its code, gets the next
version under new keys, leaves the old version untouched, and counts once in coverage."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from digitize.presentation.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
HEADER = "file,agency_code,kind,title,issued_date,register_id,scanned_at\n"


def _batch(root: Path, name: str, scan: str, title: str) -> Path:
    batch = root / name
    batch.mkdir(parents=True)
    shutil.copy(SAMPLES / "batch" / scan, batch / scan)
    (batch / "manifest.csv").write_text(
        HEADER + f"{scan},000.00.12.H99,KQ,{title},2023-03-14,REG-0001,000.00.01.H99\n", encoding="utf-8")
    return batch


def test_correction_supersedes_with_the_same_code(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.catalog.store import Catalog
    from digitize.config import load_settings
    from digitize.pipeline.stages import PipelineContext

    for name, value in {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "DIGITIZE_S3_ENDPOINT_URL": s3_server,
        "DIGITIZE_S3_BUCKET": "correction-archive", "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase, "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert),
        "DIGITIZE_QUIET_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    catalog.import_agencies(SAMPLES / "agencies.csv")
    catalog.import_register(SAMPLES / "register.csv")

    first = _batch(tmp_path, "batch-1", "ly-lich-tu-phap.jpg", "Phiếu lý lịch tư pháp số 1")
    assert main(["process", str(first), "--quiet"]) == 0
    (v1,) = catalog.documents(status="ARCHIVED")
    archive = PipelineContext().archive
    v1_pdf = archive.get(v1.pdf_key)

    fixed = _batch(tmp_path, "batch-fix", "khai-sinh-trang-1.jpg", "Phiếu lý lịch tư pháp số 1 (bản sửa)")
    assert main(["correct", v1.code, str(fixed), "--actor", "can.bo.luu.tru", "--reason", "quét nhầm trang"]) == 0

    v2 = catalog.get_by_code(v1.code)
    assert v2 is not None and v2.status == "ARCHIVED"
    assert (v2.code, v2.version, v2.supersedes_id) == (v1.code, 2, v1.id)
    assert "/v2/" in v2.pdf_key and "/v1/" in v1.pdf_key
    assert catalog.get_by_code(v1.code, version=1).status == "ARCHIVED"  # the old version is kept
    assert hashlib.sha256(archive.get(v1.pdf_key)).digest() == hashlib.sha256(v1_pdf).digest()
    corrections = [e for e in catalog.events(v2.id) if e.event_type == "correction"]
    assert corrections and "can.bo.luu.tru" in corrections[0].detail and "quét nhầm trang" in corrections[0].detail
    assert any(e.event_type == "correction" for e in catalog.events(v1.id))
    archived = catalog.archived_frame()
    assert list(archived["code"]) == [v1.code] and list(archived["version"]) == [2]  # coverage counts it once
    # submitting the same correction again is refused and changes nothing
    assert main(["correct", v1.code, str(fixed), "--actor", "can.bo.luu.tru", "--reason", "quét nhầm trang"]) != 0
    assert len(catalog.documents()) == 2 and catalog.get_by_code(v1.code).version == 2
