"""``python -m digitize verify CODE_OR_FILE``: what an auditor runs; exit 0 only when everything holds."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pdf_tamper import HOW, painted_over
from robustness_support import png, record
from test_fixity import DOCUMENTS, Built, build_archive

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> Built:
    return build_archive(tmp_path_factory.mktemp("verify"), s3_server, "verify-archive", pkcs12=demo_pki.pkcs12,
                         passphrase=demo_pki.passphrase, trust_root=demo_pki.root_cert, documents=DOCUMENTS[:2])


@pytest.fixture
def cli_env(built: Built, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return _env(built, monkeypatch)


def _env(built: Built, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    s = built.settings
    values = {"DIGITIZE_CATALOG_URL": s.catalog_url, "DIGITIZE_S3_ENDPOINT_URL": s.s3_endpoint_url,
              "DIGITIZE_S3_BUCKET": s.s3_bucket, "DIGITIZE_TRUST_ROOTS": str(built.trust_root)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from digitize.presentation.cli import main

    status = main(["verify", *argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _docs(built: Built) -> list[Any]:
    return sorted(built.catalog.documents(status="ARCHIVED"), key=lambda d: d.code)


def test_archived_code_verifies_with_signer_time_and_level(built: Built, cli_env: dict[str, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    doc = _docs(built)[0]
    status, out = _run(capsys, doc.code)
    assert status == 0, out
    assert out.startswith(f"VERIFIED: {doc.code} v1")
    assert "signer:       Ủy ban nhân dân tỉnh Mẫu" in out
    assert "PAdES level:  B-B" in out and "+07:00" in out and doc.pdf_sha256 in out


def test_local_copy_verifies_and_one_flipped_byte_fails(built: Built, cli_env: dict[str, str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    doc = _docs(built)[0]
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(built.archive.get(doc.pdf_key))
    status, out = _run(capsys, str(copy))
    assert status == 0, out
    assert f"document:     {doc.code} version 1" in out

    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    status, out = _run(capsys, str(copy))
    assert status == 1
    assert out.startswith("NOT VERIFIED") and "checksum:     FAILED" in out and "INVALID" in out


@pytest.mark.parametrize("how", HOW)
def test_local_copy_painted_over_after_signing_is_rejected(how: str, built: Built, cli_env: dict[str, str],
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _docs(built)[0]
    copy = tmp_path / "painted.pdf"
    copy.write_bytes(painted_over(built.archive.get(doc.pdf_key), how))
    status, out = _run(capsys, str(copy))
    assert status == 1, out
    assert out.startswith("NOT VERIFIED") and "signature:    INVALID" in out and "modified after signing" in out
    summary = next(line for line in out.splitlines() if line.startswith("  signature:"))
    record("security", f"signed PDF, then a new {how} painting over page 1 (incremental update)",
           "NOT VERIFIED", None, summary.split("— ", 1)[1].split(";")[0])


def test_unknown_code_exits_1(built: Built, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _run(capsys, "000.00.12.H99.2020.KQ.999999")
    assert status == 1 and "no archived document" in out


def test_catalog_disagreeing_with_the_archive_exits_1(built: Built, cli_env: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc = _docs(built)[1]
    with sqlite3.connect(built.settings.catalog_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE documents SET pdf_sha256 = ? WHERE id = ?", ("f" * 64, doc.id))
    status, out = _run(capsys, doc.code)
    assert status == 1
    assert "checksum:     FAILED" in out and "signature:    VALID" in out


def test_python_dash_m_entry_point(built: Built, cli_env: dict[str, str]) -> None:
    doc = _docs(built)[0]
    result = subprocess.run([sys.executable, "-m", "digitize", "verify", doc.code], capture_output=True, text=True,
                            env=dict(os.environ), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout


# ------------------------------------------------------------------------------------------------ forged objects

FORGED = {"sidecar": "sidecar:      FAILED", "original": "original 00:  FAILED", "PDF": "checksum:     FAILED"}
"""Which archived object of a document is forged → the line of the verdict that must name it."""


def forge(built: Built, key: str, data: bytes) -> None:
    """Overwrite an archived object the way an attacker with write access to the bucket would: a new current
    version whose own recorded SHA-256 matches the forged bytes, so only the catalog can tell."""
    built.archive.client.put_object(Bucket=built.settings.s3_bucket, Key=key, Body=data,
                                    Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    assert built.archive.get(key) == data


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> dict[str, Any]:
    """Three archived documents: one with a forged sidecar, one with a forged original, one with a forged PDF
    (another document's genuine signed PDF). ``copies`` holds each document's true signed PDF."""
    built = build_archive(tmp_path_factory.mktemp("forged"), s3_server, "forged-archive", pkcs12=demo_pki.pkcs12,
                          passphrase=demo_pki.passphrase, trust_root=demo_pki.root_cert)
    docs = dict(zip(FORGED, _docs(built), strict=True))
    copies = {what: built.archive.get(doc.pdf_key) for what, doc in docs.items()}
    sidecar = json.loads(built.archive.get(docs["sidecar"].sidecar_key))
    sidecar["title"] = "Giấy chứng nhận quyền sở hữu nhà ở (giả)"
    forge(built, docs["sidecar"].sidecar_key, json.dumps(sidecar, ensure_ascii=False).encode())
    forge(built, docs["original"].original_keys[0], png(("SO TIEN 9999999",)))
    forge(built, docs["PDF"].pdf_key, copies["sidecar"])
    return {"built": built, "docs": docs, "copies": copies}


@pytest.mark.parametrize("what", FORGED)
def test_forged_archived_object_fails_verify_by_code(what: str, forged: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _env(forged["built"], monkeypatch)
    doc = forged["docs"][what]
    status, out = _run(capsys, doc.code)
    assert status == 1, out
    assert out.startswith(f"NOT VERIFIED: {doc.code} v1") and FORGED[what] in out, out
    line = next(line for line in out.splitlines() if FORGED[what] in line)
    record("security", f"archived {what} overwritten with forged bytes (new S3 version, own checksum consistent): "
                       "verify CODE", "NOT VERIFIED", None,
           " ".join(FORGED[what].split()) + ": " + line.rsplit(": ", 1)[1].split(" (")[0])


@pytest.mark.parametrize("what", FORGED)
def test_forged_archived_object_fails_verify_of_a_true_local_copy(what: str, forged: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The local file is the true signed PDF; what the archive holds for it was forged: still not verified."""
    _env(forged["built"], monkeypatch)
    doc = forged["docs"][what]
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(forged["copies"][what])
    status, out = _run(capsys, str(copy))
    assert status == 1, out
    assert out.startswith("NOT VERIFIED") and f"document:     {doc.code} version 1" in out
    assert "checksum:     OK" in out and "signature:    VALID" in out  # the copy itself is fine
    expected = "archived PDF: FAILED" if what == "PDF" else FORGED[what]
    assert expected in out and "what to do:" in out, out
    record("security", f"archived {what} overwritten with forged bytes: verify FILE (a true copy of the PDF)",
           "NOT VERIFIED", None, f"{' '.join(expected.split())}; the copy's own checksum and signature OK")
