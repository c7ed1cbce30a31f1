"""Keep PAdES B-LTA documents verifiable for decades: a fresh document timestamp before the last one expires.

A B-LTA file proves its signature with a chain of document timestamps; each stays convincing only
while its TSA certificate is valid. Before that certificate expires, :func:`renew` validates the last
timestamp, adds its validation data to the DSS and appends a new document timestamp (pyHanko's
archival timestamp update). The archive is write-once, so the renewed PDF and its sidecar become the
next version of the document (``document_keys(code, version + 1)``): nothing is overwritten or
deleted, Object Lock stays intact, the catalog points to the new version and the fixity audit keeps
checking every version. The new version's origin is ``renewal``: it keeps the first version's ``digitized_at``
and ``scanned_at`` and is no scan, so coverage neither re-dates the document nor counts a scanning unit.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.checksums import sha256_bytes
from digitize.errors import (
    ArchiveIntegrityError,
    CatalogConflict,
    ConfigurationError,
    SignatureFailed,
    TimestampUnavailable,
)

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog, DocumentRecord


@dataclass(frozen=True)
class RenewalOptions:
    """Where the new timestamps come from and when a document is due."""

    tsa_url: str
    """RFC 3161 timestamp authority (HTTP URL)."""

    trust_roots: tuple[Path, ...]
    """Roots (PEM/DER) the signatures and timestamps must chain to."""

    within_days: int = 180
    """Renew when the last timestamp's TSA certificate expires within this many days."""

    tsa_timeout: float = 10.0
    """Seconds to wait for the TSA and for CRL/OCSP fetches."""

    def __post_init__(self) -> None:
        if not self.tsa_url:
            raise ConfigurationError("LTA renewal needs a timestamp authority: set DIGITIZE_TSA_URL")
        if not self.trust_roots:
            raise ConfigurationError("LTA renewal needs trust roots: set DIGITIZE_TRUST_ROOTS")
        if self.within_days < 0:
            raise ValueError("within_days must not be negative")


@dataclass(frozen=True)
class Candidate:
    """A current document version signed B-LTA and when its last timestamp stops being convincing."""

    document_id: int
    """Catalog id of the current version."""

    code: str
    """Document code."""

    version: int
    """Current version."""

    expires: datetime
    """End of validity of the TSA certificate of the last document timestamp."""


@dataclass(frozen=True)
class Renewal:
    """A renewed document: the new version written to the archive and the catalog."""

    document_id: int
    """Catalog id of the new version."""

    code: str
    """Document code."""

    version: int
    """The new version number."""

    pdf_key: str
    """Key of the renewed PDF."""

    pdf_sha256: str
    """Its SHA-256."""

    sidecar_key: str
    """Key of the new sidecar."""

    previous_expiry: datetime
    """Expiry of the timestamp that was the last one."""

    new_expiry: datetime
    """Expiry of the new last timestamp."""


def last_timestamp_expiry(pdf: bytes) -> datetime | None:
    """End of validity of the TSA certificate of the last document timestamp (None: not B-LTA)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    stamps = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_timestamp_signatures
    if not stamps:
        return None
    expiry: datetime = stamps[-1].signer_cert.not_valid_after
    return expiry.astimezone(UTC)


def current_versions(catalog: Catalog) -> list[DocumentRecord]:
    """The latest archived version of every code."""
    latest: dict[str, DocumentRecord] = {}
    for record in catalog.documents(status="ARCHIVED"):
        if record.code is not None and (record.code not in latest or record.version > latest[record.code].version):
            latest[record.code] = record
    return sorted(latest.values(), key=lambda r: r.code or "")


def due_for_renewal(catalog: Catalog, archive: Archive, *, within_days: int,
                    now: datetime | None = None) -> list[Candidate]:
    """Current B-LTA versions whose last timestamp's certificate expires within ``within_days``.

    Reads each current PDF once (a transient archive error propagates).
    """
    limit = (now or datetime.now(UTC)) + timedelta(days=within_days)
    due = []
    for record in current_versions(catalog):
        if not record.pdf_key:
            continue
        expiry = last_timestamp_expiry(archive.get(record.pdf_key))
        if expiry is not None and expiry <= limit:
            due.append(Candidate(record.id, record.code or "", record.version, expiry))
    return due


def add_document_timestamp(pdf: bytes, options: RenewalOptions) -> bytes:
    """Validate the last timestamp, put its validation data in the DSS, append a new document timestamp."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.general import SigningError
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
    from pyhanko.sign.timestamps.requests_client import HTTPTimeStamper
    from pyhanko.sign.validation import DocumentSecurityStore
    from pyhanko_certvalidator import ValidationContext

    from digitize.signing import read_certs

    roots = [c for p in options.trust_roots for c in read_certs(p)]
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    settings: dict[str, Any] = {"trust_roots": roots, "allow_fetching": True, "revocation_mode": "hard-fail"}
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        vc = dss.as_validation_context(settings)
    except (KeyError, ValueError, PdfError):
        vc = ValidationContext(**settings)
    stamper = PdfTimeStamper(HTTPTimeStamper(options.tsa_url, timeout=options.tsa_timeout))
    out = io.BytesIO()
    try:
        stamper.update_archival_timestamp_chain(reader, vc, in_place=False, output=out)
    except (SigningError, PdfError, OSError, ValueError) as exc:
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, OSError):
                raise TimestampUnavailable(f"the TSA or a CRL/OCSP service did not answer: {exc}") from None
            seen = seen.__cause__ or seen.__context__
        raise SignatureFailed(f"the archival timestamp could not be added: {exc.__class__.__name__}: {exc}") from None
    return out.getvalue()


def renewed_sidecar(old: dict[str, Any], *, version: int, pdf_obj: Any, verdict: Any, detail: str) -> dict[str, Any]:
    """The sidecar of the renewed version: the old description, the new PDF, the renewal event."""
    from digitize.archive import sidecar_validator
    from digitize.signing import pyhanko_version

    now = datetime.now(UTC).isoformat()
    files = [{"role": "signed_pdf", "key": pdf_obj.key, "sha256": pdf_obj.sha256, "size": pdf_obj.size,
              "media_type": "application/pdf"}]
    files += [f for f in old["files"] if f["role"] == "original"]  # the scans stay where version 1 put them
    sidecar = {
        **old, "version": version, "files": files, "archived_at": now,
        "signature": {"signer": verdict.signer, "valid": verdict.valid, "level": verdict.level,
                      "signing_time": verdict.signing_time.isoformat() if verdict.signing_time else None},
        "events": [*old.get("events", []), {"type": "lta_renewal", "outcome": "success", "tool": "pyhanko",
                                            "tool_version": pyhanko_version(), "at": now, "detail": detail}],
        "tools": {**old.get("tools", {}), "pyhanko": pyhanko_version(), "digitize": __version__},
    }
    sidecar_validator().validate(sidecar)
    return sidecar


def renew(catalog: Catalog, archive: Archive, document_id: int, options: RenewalOptions) -> Renewal:
    """Write version N+1 of a B-LTA document with a fresh document timestamp; version N stays as it is.

    Refuses anything but the current, intact, valid version. Safe to re-run after a crash: a renewed PDF
    already stored under the next version's key is reused instead of being timestamped again.
    """
    from digitize.archive import document_keys
    from digitize.preservation.fixity import version_fingerprint
    from digitize.signing import pyhanko_version, verify_pdf

    record = catalog.get_document(document_id)
    current = catalog.get_by_code(record.code) if record.code else None
    if record.status != "ARCHIVED" or current is None or current.id != record.id or not record.pdf_key:
        raise CatalogConflict(f"document {document_id} is not the current archived version of its code")
    code, version = record.code or "", record.version + 1
    pdf = archive.get(record.pdf_key)
    if sha256_bytes(pdf) != record.pdf_sha256:
        raise ArchiveIntegrityError(f"{code} v{record.version}: archived PDF differs from the catalog; not renewed")
    previous = last_timestamp_expiry(pdf)
    if previous is None:
        raise CatalogConflict(f"{code} v{record.version} has no document timestamp: only B-LTA files are renewed")
    old_sidecar = json.loads(archive.get(record.sidecar_key or ""))
    keys = document_keys(code, version)
    existing = archive.head(keys.pdf)
    renewed = archive.get(keys.pdf) if existing is not None else add_document_timestamp(pdf, options)
    if not renewed.startswith(pdf):
        raise ArchiveIntegrityError(f"{keys.pdf} is not an incremental update of version {record.version}")
    verdict = verify_pdf(renewed, options.trust_roots, revocation_mode="hard-fail")
    if not verdict.valid or verdict.level != "B-LTA":
        raise SignatureFailed(f"renewed {code} does not verify as B-LTA: {verdict.summary}")
    new_expiry = last_timestamp_expiry(renewed)
    assert new_expiry is not None
    pdf_obj = archive.put(keys.pdf, renewed, content_type="application/pdf", metadata={"code": code})
    detail = (f"version {version}: new document timestamp over version {record.version}, whose last timestamp "
              f"certificate expires {previous.date().isoformat()}; the new one expires {new_expiry.date().isoformat()}")
    sidecar_obj = archive.head(keys.sidecar)
    if sidecar_obj is None:
        sidecar = renewed_sidecar(old_sidecar, version=version, pdf_obj=pdf_obj, verdict=verdict, detail=detail)
        data = json.dumps(sidecar, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        sidecar_obj = archive.put(keys.sidecar, data, content_type="application/json", metadata={"code": code})
    else:
        sidecar = json.loads(archive.get(keys.sidecar))
        if pdf_obj.sha256 not in {f["sha256"] for f in sidecar["files"] if f["role"] == "signed_pdf"}:
            raise ArchiveIntegrityError(f"sidecar {keys.sidecar} already exists and describes another PDF")
    archived_at = datetime.fromisoformat(sidecar["archived_at"])  # the sidecar's: a rebuild restores it exactly
    new = catalog.restore_document(dataclasses.replace(
        record, id=0, version=version, fingerprint=version_fingerprint(old_sidecar["fingerprint"], version),
        pdf_key=pdf_obj.key, pdf_sha256=pdf_obj.sha256, sidecar_key=sidecar_obj.key,
        sidecar_sha256=sidecar_obj.sha256, received_at=datetime.now(UTC), archived_at=archived_at,
        supersedes_id=record.id, origin="renewal", digitized_at=record.digitized_at or record.archived_at,
    ))  # not a scan (indicator 3 does not count it), nor a new digitization (digitized_at stays the first's)
    catalog.add_event(new.id, "lta_renewal", "success", tool="pyhanko", tool_version=pyhanko_version(), detail=detail)
    catalog.add_event(record.id, "lta_renewal", "success", tool="pyhanko", tool_version=pyhanko_version(),
                      detail=f"superseded by version {version} (document {new.id}), a renewal of its timestamps")
    return Renewal(new.id, code, version, pdf_obj.key, pdf_obj.sha256, sidecar_obj.key, previous, new_expiry)


def renew_due(catalog: Catalog, archive: Archive, document_ids: Sequence[int], options: RenewalOptions
              ) -> list[Renewal]:
    """Renew each of ``document_ids`` (from :func:`due_for_renewal`); transient errors propagate."""
    return [renew(catalog, archive, document_id, options) for document_id in document_ids]
