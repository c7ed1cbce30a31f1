"""Proving it later: fixity audits, and rebuilding the catalog from the archive.

Three views of every archived document must agree: the bytes the archive holds, the checksums the
catalog recorded, and the checksums written in the document's sidecar. :func:`audit` re-reads the
objects of every archived version (streamed where the archive offers it), compares all three,
re-validates the signature offline, writes one ``fixity_check`` event per check and returns a
:class:`FixityReport`. A failure says which view disagrees, so an auditor can tell a damaged object
from a tampered catalog row. :func:`object_checks` makes the checksum checks; every other verify path
(``verify``, the API) uses them too (see ``verification``).

The archive is the source of truth: :func:`rebuild_catalog` restores the documents, their versions,
checksums, files and code counters from the sidecars alone, into an empty catalog.

Transient trouble (S3 or the database briefly unavailable) raises :class:`~digitize.errors.TransientError`
so the caller retries; it is never reported as a failed check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.checksums import sha256_bytes
from digitize.errors import ArchiveIntegrityError, ArchiveNotFound, CatalogConflict

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog, DocumentRecord

EVENT_TYPE = "fixity_check"
REPORT_PREFIX = "reports/fixity/"


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class CheckResult:
    """One check of one archived document version."""

    document_id: int
    """Catalog id of the version checked."""

    code: str
    """Document code."""

    version: int
    """Version of the document (each version is checked)."""

    check: str
    """``pdf_checksum``, ``sidecar_checksum``, ``original_checksum:<position>`` or ``signature``."""

    key: str
    """Archive key of the object checked ('' when the catalog records none)."""

    ok: bool
    """The check held."""

    detail: str
    """What was compared, or what disagrees and where."""

    def as_dict(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "code": self.code, "version": self.version, "check": self.check,
                "key": self.key, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class FixityReport:
    """Outcome of an audit (or of one chunk of it)."""

    started_at: datetime
    """When the audit started (UTC)."""

    finished_at: datetime
    """When it finished (UTC)."""

    documents: int
    """Document versions audited."""

    checks: tuple[CheckResult, ...]
    """Every check made, in audit order."""

    selection: Mapping[str, Any] = field(default_factory=dict)
    """How the documents were chosen (sample size, code range, seed)."""

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """Checks that did not hold."""
        return tuple(c for c in self.checks if not c.ok)

    @property
    def failed_documents(self) -> tuple[tuple[str, int], ...]:
        """(code, version) of each document version with at least one failed check, sorted."""
        return tuple(sorted({(c.code, c.version) for c in self.failures}))

    @property
    def ok(self) -> bool:
        """Every check held."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (what the DAG stores under ``reports/fixity/``)."""
        return {
            "report": "fixity", "tool": "digitize", "tool_version": __version__,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
            "selection": dict(self.selection), "documents": self.documents, "checks_total": len(self.checks),
            "checks_failed": len(self.failures), "ok": self.ok,
            "failed_documents": [{"code": c, "version": v} for c, v in self.failed_documents],
            "failures": [c.as_dict() for c in self.failures],
            "checks": [c.as_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FixityReport:
        """Inverse of :meth:`as_dict` (reports travel between DAG tasks as JSON)."""
        return cls(
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            documents=int(data["documents"]),
            checks=tuple(CheckResult(**c) for c in data["checks"]),
            selection=dict(data.get("selection") or {}),
        )


def report_json(report: FixityReport) -> str:
    """The report as JSON text (UTF-8, Vietnamese kept readable)."""
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2, sort_keys=True)


def merge_reports(reports: Iterable[FixityReport], *, selection: Mapping[str, Any] | None = None) -> FixityReport:
    """One report from the reports of several chunks."""
    parts = list(reports)
    now = datetime.now(UTC)
    return FixityReport(
        started_at=min((r.started_at for r in parts), default=now),
        finished_at=max((r.finished_at for r in parts), default=now),
        documents=sum(r.documents for r in parts),
        checks=tuple(c for r in parts for c in r.checks),
        selection=dict(selection if selection is not None else (parts[0].selection if parts else {})),
    )


def render_report(report: FixityReport) -> str:
    """Plain text for the task log and the terminal: totals, then each failure and why."""
    lines = [
        f"fixity audit {report.started_at:%Y-%m-%d %H:%M:%S} UTC: {report.documents} document version(s), "
        f"{len(report.checks)} check(s), {len(report.failures)} failed",
    ]
    if report.selection:
        lines.append("selection: " + ", ".join(f"{k}={v}" for k, v in sorted(report.selection.items())))
    if report.ok:
        lines.append("every checksum and signature holds")
    for code, version in report.failed_documents:
        lines.append(f"FAILED {code} v{version}")
        for check in report.failures:
            if (check.code, check.version) == (code, version):
                lines.append(f"  {check.check}: {check.detail}" + (f" ({check.key})" if check.key else ""))
    return "\n".join(lines)


def publish_report(archive: Archive, report: FixityReport, *, run_date: date) -> str:
    """Store the JSON report as a new object ``reports/fixity/<run date>-<unique>.json``; returns its key.

    The suffix is random: the archive never overwrites, and a retried or repeated run must not collide.
    """
    import uuid

    key = f"{REPORT_PREFIX}{run_date.isoformat()}-{uuid.uuid4().hex[:12]}.json"
    archive.put(key, report_json(report).encode("utf-8"), content_type="application/json",
                metadata={"report": "fixity", "failed": str(len(report.failures))})
    return key


# ------------------------------------------------------------------------------------------- selection


def select_documents(catalog: Catalog, *, sample: int | None = None, code_from: str | None = None,
                     code_to: str | None = None, rng_seed: int | None = None) -> list[int]:
    """Catalog ids of the archived document versions to audit, ordered by code and version.

    ``code_from``/``code_to`` bound the codes (inclusive, text order); ``sample`` draws that many
    versions at random (reproducibly with ``rng_seed``); ``None`` or 0 takes them all.
    """
    if sample is not None and sample < 0:
        raise ValueError(f"sample must be positive, not {sample}")
    rows = [
        r for r in catalog.documents(status="ARCHIVED")
        if r.code is not None and (code_from is None or r.code >= code_from) and (code_to is None or r.code <= code_to)
    ]
    rows.sort(key=lambda r: (r.code or "", r.version))
    if sample and sample < len(rows):
        picked = set(random.Random(rng_seed).sample(range(len(rows)), sample))
        rows = [r for i, r in enumerate(rows) if i in picked]
    return [r.id for r in rows]


# ----------------------------------------------------------------------------------------------- audit


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "none"


def _fetch(archive: Archive, key: str | None) -> tuple[bytes | None, str]:
    """The object's bytes, or None and why not (a transient error propagates)."""
    if not key:
        return None, "the catalog records no key"
    try:
        return archive.get(key), ""
    except ArchiveNotFound:
        return None, "the object is missing from the archive"
    except ArchiveIntegrityError as exc:
        return None, f"the archive's own checksum does not match the bytes ({exc.message})"


def _compare(name: str, actual: str | None, catalog: str | None, sidecar: str | None) -> tuple[bool, str]:
    """Compare the archive's bytes with the catalog's and the sidecar's checksum; say who disagrees."""
    if actual is None:
        return False, f"{name} could not be read"
    if sidecar is None:  # the sidecar is unreadable (its own check fails): judge by the catalog alone
        if actual == catalog:
            return True, f"sha256 {_short(actual)} matches the catalog (no sidecar record to compare)"
        return False, f"archived bytes hash to {_short(actual)}, catalog records {_short(catalog)} (no sidecar record)"
    wrong = [who for who, value in (("catalog", catalog), ("sidecar", sidecar)) if value != actual]
    if not wrong:
        return True, f"sha256 {_short(actual)} matches catalog and sidecar"
    if wrong == ["catalog"] and sidecar is not None:
        return False, (f"catalog records {_short(catalog)} but the archived bytes and the sidecar agree on "
                       f"{_short(actual)}: the catalog row was changed")
    if wrong == ["sidecar"]:
        return False, (f"sidecar records {_short(sidecar)} but the archived bytes and the catalog agree on "
                       f"{_short(actual)}: the sidecar is wrong")
    return False, (f"archived bytes hash to {_short(actual)}, catalog records {_short(catalog)}, sidecar "
                   f"{_short(sidecar)}: the archived object was changed or damaged")


def object_checks(archive: Archive, record: DocumentRecord) -> tuple[list[CheckResult], bytes | None]:
    """Checksum checks of a version's archived objects (sidecar, signed PDF, originals) against the catalog
    and the sidecar, and the signed PDF's bytes (``None`` when they could not be read).

    A sidecar that does not hash to the catalog's value is reported and not believed: the other objects are
    then judged by the catalog alone. Every verify path (audit, ``verify``, the API) uses these checks.
    """
    code = record.code or ""

    def result(check: str, key: str | None, ok: bool, detail: str) -> CheckResult:
        return CheckResult(record.id, code, record.version, check, key or "", ok, detail)

    out: list[CheckResult] = []
    sidecar_bytes, why = _fetch(archive, record.sidecar_key)
    sidecar: dict[str, Any] = {}
    if sidecar_bytes is not None:
        actual = sha256_bytes(sidecar_bytes)
        ok = actual == record.sidecar_sha256
        detail = (f"sha256 {_short(actual)} matches the catalog" if ok else
                  f"archived sidecar hashes to {_short(actual)}, catalog records {_short(record.sidecar_sha256)}: "
                  "the sidecar was changed or damaged")
        try:
            sidecar = json.loads(sidecar_bytes) if ok else {}
            if ok and (sidecar.get("code") != code or sidecar.get("version") != record.version):
                ok, detail = False, f"sidecar describes {sidecar.get('code')} v{sidecar.get('version')}, not this one"
        except (ValueError, AttributeError):
            ok, detail, sidecar = False, "sidecar is not valid JSON", {}
        out.append(result("sidecar_checksum", record.sidecar_key, ok, detail))
    else:
        out.append(result("sidecar_checksum", record.sidecar_key, False, why))
    listed = sidecar.get("files")
    entries: list[Any] = listed if isinstance(listed, list) else []
    pdf_entry = next((f for f in entries if isinstance(f, dict) and f.get("role") == "signed_pdf"), None)
    by_position = {f.get("position"): f for f in entries if isinstance(f, dict) and f.get("role") == "original"}

    pdf, why = _fetch(archive, record.pdf_key)
    ok, detail = _compare("signed PDF", sha256_bytes(pdf) if pdf is not None else None, record.pdf_sha256,
                          pdf_entry.get("sha256") if pdf_entry is not None else None)
    out.append(result("pdf_checksum", record.pdf_key, ok, detail if pdf is not None else why))

    for spec, key in zip(record.files, record.original_keys, strict=True):
        entry = by_position.get(spec.position)
        expected_sidecar = entry.get("sha256") if entry is not None else None
        check = f"original_checksum:{spec.position:02d}"
        if not key:
            out.append(result(check, key, False, "the catalog records no key for this original"))
            continue
        try:
            archive.verify(key, spec.sha256)  # streamed: originals can be large
            ok, detail = _compare("original", spec.sha256, spec.sha256, expected_sidecar)
        except ArchiveNotFound:
            ok, detail = False, "the object is missing from the archive"
        except ArchiveIntegrityError:
            ok, detail = False, _original_mismatch(archive, key, spec.sha256, expected_sidecar)
        out.append(result(check, key, ok, detail))
    return out, pdf


def _audit_one(archive: Archive, record: DocumentRecord, roots: Sequence[Path]) -> list[tuple[CheckResult, str]]:
    """The checks of one document version, each with the tool that made it."""
    from digitize.signing import verify_pdf

    checks, pdf = object_checks(archive, record)
    out = [(check, "digitize") for check in checks]
    code = record.code or ""
    if pdf is None:
        out.append((CheckResult(record.id, code, record.version, "signature", record.pdf_key or "", False,
                                "not checked: the signed PDF could not be read"), "pyhanko"))
    else:
        verdict = verify_pdf(pdf, roots)
        if verdict.valid and verdict.level in ("B-LT", "B-LTA"):  # long-term files must prove it from their DSS
            verdict = verify_pdf(pdf, roots, revocation_mode="hard-fail")
        detail = (f"{verdict.summary}; signed {verdict.signing_time.isoformat() if verdict.signing_time else '?'}"
                  if verdict.valid else verdict.summary)
        out.append((CheckResult(record.id, code, record.version, "signature", record.pdf_key or "", verdict.valid,
                                detail), "pyhanko"))
    return out


def _original_mismatch(archive: Archive, key: str, catalog_sha: str, sidecar_sha: str | None) -> str:
    """The original does not hash to the catalog's value: does it match the sidecar's (catalog changed)?"""
    if sidecar_sha and sidecar_sha != catalog_sha:
        try:
            archive.verify(key, sidecar_sha)
            return (f"catalog records {_short(catalog_sha)} but the archived bytes and the sidecar agree on "
                    f"{_short(sidecar_sha)}: the catalog row was changed")
        except (ArchiveIntegrityError, ArchiveNotFound):
            pass
    return (f"archived bytes differ from the catalog's {_short(catalog_sha)} and the sidecar's "
            f"{_short(sidecar_sha)}: the archived object was changed or damaged")


def audit_documents(catalog: Catalog, archive: Archive, document_ids: Iterable[int], *, trust_roots: Sequence[Path],
                    record_events: bool = True, selection: Mapping[str, Any] | None = None) -> FixityReport:
    """Audit these document versions (one chunk of an audit); see :func:`audit`."""
    from digitize.signing import pyhanko_version

    started = datetime.now(UTC)
    checks: list[CheckResult] = []
    count = 0
    for document_id in document_ids:
        record = catalog.get_document(int(document_id))
        if record.status != "ARCHIVED":
            continue
        count += 1
        for check, tool in _audit_one(archive, record, trust_roots):
            checks.append(check)
            if record_events:
                catalog.add_event(record.id, EVENT_TYPE, "success" if check.ok else "failure", tool=tool,
                                  tool_version=pyhanko_version() if tool == "pyhanko" else __version__,
                                  detail=f"{check.check} {check.key}: {check.detail}")
    return FixityReport(started, datetime.now(UTC), count, tuple(checks), dict(selection or {}))


def audit(catalog: Catalog, archive: Archive, *, trust_roots: Sequence[Path], sample: int | None = None,
          code_from: str | None = None, code_to: str | None = None, rng_seed: int | None = None) -> FixityReport:
    """Re-read every archived version (or a sample, or a code range), compare the archived bytes with the
    catalog's and the sidecar's checksums, re-validate each signature offline, record one event per check.

    Raises :class:`~digitize.errors.TransientError` when the archive or the catalog is briefly unavailable.
    """
    selection = {"sample": sample, "code_from": code_from, "code_to": code_to, "rng_seed": rng_seed}
    ids = select_documents(catalog, sample=sample, code_from=code_from, code_to=code_to, rng_seed=rng_seed)
    return audit_documents(catalog, archive, ids, trust_roots=trust_roots,
                           selection={k: v for k, v in selection.items() if v is not None})


# ---------------------------------------------------------------------------------------------- rebuild


@dataclass(frozen=True)
class RebuildSummary:
    """What :func:`rebuild_catalog` restored."""

    documents: int
    """Document versions restored."""

    codes: int
    """Distinct document codes."""

    skipped: tuple[str, ...]
    """Sidecar keys that could not be restored, each with the reason."""


def version_fingerprint(originals_fingerprint: str, version: int) -> str:
    """Catalog fingerprint of a version that keeps the originals of an earlier one (an LTA renewal).

    The catalog's fingerprint is unique; a new version over the same scans gets this derived one, so
    registering the scans again still finds the first version.
    """
    return hashlib.sha256(f"{originals_fingerprint}\nversion {version}".encode("ascii")).hexdigest()


def _event_time(sidecar: Mapping[str, Any], event_type: str) -> datetime | None:
    for item in sidecar.get("events", []):
        if item.get("type") == event_type:
            return datetime.fromisoformat(item["at"])
    return None


def record_from_sidecar(sidecar: Mapping[str, Any], *, sidecar_key: str, sidecar_sha256: str,
                        fingerprint: str, supersedes_id: int | None) -> DocumentRecord:
    """The catalog record a sidecar describes (``id`` 0: the catalog assigns one)."""
    from digitize.catalog import DocumentRecord, FileSpec

    files = sidecar["files"]
    pdf = next(f for f in files if f["role"] == "signed_pdf")
    originals = sorted((f for f in files if f["role"] == "original"), key=lambda f: f["position"])
    archived_at = datetime.fromisoformat(sidecar["archived_at"])
    return DocumentRecord(
        id=0, fingerprint=fingerprint, batch_id=sidecar.get("batch_id") or "", status="ARCHIVED",
        code=sidecar["code"], version=sidecar["version"], agency_code=sidecar["agency"]["code"],
        kind=sidecar["kind"], title=sidecar["title"], issued_date=date.fromisoformat(sidecar["issued_date"]),
        valid_until=date.fromisoformat(sidecar["valid_until"]) if sidecar.get("valid_until") else None,
        register_id=sidecar.get("register_id"), dossier_code=sidecar.get("dossier_code"),
        procedure_code=sidecar.get("procedure_code"), holder_id=sidecar.get("holder_id"),
        scanned_at=sidecar.get("scanned_at"), reason=None, message=None, pdf_key=pdf["key"],
        pdf_sha256=pdf["sha256"], sidecar_key=sidecar_key, sidecar_sha256=sidecar_sha256,
        pages=sidecar["pages"], mean_confidence=(sidecar.get("ocr") or {}).get("mean_confidence"),
        needs_review=bool(sidecar.get("needs_review", False)),
        received_at=(datetime.fromisoformat(sidecar["received_at"]) if sidecar.get("received_at")
                     else _event_time(sidecar, "ingestion") or archived_at),
        archived_at=archived_at,
        files=tuple(FileSpec(f["position"], f.get("original_name") or f["key"].rsplit("/", 1)[-1], f["sha256"],
                             f["size"]) for f in originals),
        original_keys=tuple(f["key"] for f in originals), manifest_document_id=sidecar.get("manifest_document_id"),
        supersedes_id=supersedes_id,
    )


def _sidecar_origin(sidecar: Mapping[str, Any], version: int, new_scans: set[str]) -> str:
    """What made a version, from its sidecar: its own ``lta_renewal`` event, new scanned files, or neither."""
    if version == 1:
        return "scan"
    if any(e.get("type") == "lta_renewal" and str(e.get("detail", "")).startswith(f"version {version}:")
           for e in sidecar.get("events", [])):
        return "renewal"
    return "scan" if new_scans else "correction"


def rebuild_catalog(catalog: Catalog, archive: Archive, *, template: str | None = None,
                    prefix: str = "documents/") -> RebuildSummary:
    """Restore every archived version from its sidecar into an empty catalog (schema upgraded, agencies
    and register imported or not). Versions go in order, so each new version links to the one it supersedes
    and code counters end past the highest code. Refuses a catalog that already holds documents."""
    import jsonschema

    from digitize.archive import SIDECAR_SCHEMA, document_keys

    if catalog.documents():
        raise CatalogConflict("the catalog already holds documents: rebuild only into an empty catalog",
                              hint="Point DIGITIZE_CATALOG_URL at a new database, run db upgrade, then rebuild.")
    schema = json.loads(SIDECAR_SCHEMA.read_text(encoding="utf-8"))
    found: list[tuple[str, int, str, dict[str, Any], str]] = []
    skipped: list[str] = []
    for key in archive.list_keys(prefix):
        if not key.endswith(".json"):
            continue
        data, why = _fetch(archive, key)
        try:
            if data is None:
                raise ValueError(why)
            sidecar = json.loads(data)
            jsonschema.validate(sidecar, schema)
            if document_keys(sidecar["code"], sidecar["version"]).sidecar != key:
                raise ValueError("its code and version do not lead to this key")
        except (ValueError, jsonschema.ValidationError, KeyError, TypeError) as exc:
            skipped.append(f"{key}: {str(exc).splitlines()[0]}")
            continue
        found.append((sidecar["code"], sidecar["version"], key, sidecar, sha256_bytes(data)))
    found.sort(key=lambda item: (item[0], item[1]))
    restored: dict[tuple[str, int], int] = {}
    prints: set[str] = set()
    first: dict[str, datetime] = {}
    scans: dict[str, set[str]] = {}
    for code, version, key, sidecar, digest in found:
        fingerprint = sidecar["fingerprint"]
        if fingerprint in prints:
            fingerprint = version_fingerprint(fingerprint, version)
        record = record_from_sidecar(sidecar, sidecar_key=key, sidecar_sha256=digest, fingerprint=fingerprint,
                                     supersedes_id=restored.get((code, version - 1)))
        originals = {f.sha256 for f in record.files}
        digitized = first.setdefault(code, datetime.fromisoformat(sidecar["archived_at"]))
        record = dataclasses.replace(record, digitized_at=digitized,
                                     origin=_sidecar_origin(sidecar, version, originals - scans.get(code, set())))
        scans[code] = originals
        new = catalog.restore_document(record, template=template)
        catalog.add_event(new.id, "catalog_rebuild", "success", tool="digitize", tool_version=__version__,
                          detail=f"restored from sidecar {key} (sha256 {_short(digest)})")
        restored[(code, version)] = new.id
        prints.add(new.fingerprint)
    return RebuildSummary(len(restored), len({c for c, _ in restored}), tuple(skipped))

