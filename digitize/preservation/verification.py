"""An auditor's verification of one document: every object the catalog recorded, and the signature.

``verify CODE`` (:func:`verify_code`), ``verify FILE`` (:func:`verify_file`) and the API's
``/documents/{code}/verify`` all check the signed PDF, the sidecar and each original scan against the
catalog's SHA-256 (with :func:`~digitize.preservation.fixity.object_checks`, as the fixity audit does), so a
forged sidecar or original is caught wherever a document is verified, not only in the weekly audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.checksums import sha256_bytes
from digitize.errors import CatalogConflict
from digitize.preservation.fixity import CheckResult, object_checks

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog, DocumentRecord
    from digitize.signing import SignatureVerdict

_LABELS = {"sidecar_checksum": "sidecar", "pdf_checksum": "archived PDF"}


def object_label(check: CheckResult) -> str:
    """What an auditor calls the object a check is about: ``sidecar``, ``archived PDF``, ``original 00``."""
    if check.check.startswith("original_checksum:"):
        return f"original {check.check.split(':', 1)[1]}"
    return _LABELS.get(check.check, check.check)


@dataclass(frozen=True)
class Verification:
    """An auditor's check of one signed PDF: its checksum against the catalog, the document's other archived
    objects against the catalog, and its signature."""

    subject: str
    """What was checked: a document code (``code vN``) or a file path."""

    sha256: str
    """SHA-256 of the PDF bytes checked ('' when they could not be read)."""

    code: str | None
    """Document code the catalog knows these bytes by, if any."""

    version: int | None
    """Its version."""

    checksum_ok: bool
    """The PDF's bytes hash to the catalog's ``pdf_sha256``."""

    checksum_detail: str
    """What was compared."""

    signature: SignatureVerdict | None
    """Offline validation of the signatures (``None`` when there were no bytes to check)."""

    objects: tuple[CheckResult, ...] = ()
    """The document's other archived objects (sidecar, originals; the archived PDF when a local file was
    checked), each against the catalog's SHA-256."""

    @property
    def objects_ok(self) -> bool:
        """Every other archived object hashes to the catalog's value."""
        return all(check.ok for check in self.objects)

    @property
    def ok(self) -> bool:
        """Checksums of every object and the signature all hold."""
        return self.checksum_ok and self.objects_ok and self.signature is not None and self.signature.valid


def _archived(catalog: Catalog, code: str, version: int | None) -> DocumentRecord:
    record = catalog.get_by_code(code, version=version)
    if record is None or record.status != "ARCHIVED":
        raise CatalogConflict(f"no archived document {code}" + (f" version {version}" if version else ""),
                              hint="Check the code (python -m digitize show CODE) or verify the PDF file itself.")
    return record


def verify_record(archive: Archive, record: DocumentRecord, *, trust_roots: Sequence[Path]) -> Verification:
    """Check an archived version: its PDF, sidecar and originals against the catalog, and its signature."""
    from digitize.signing import verify_pdf

    code = record.code or ""
    subject = f"{code} v{record.version}"
    checks, data = object_checks(archive, record)
    pdf_check = next(c for c in checks if c.check == "pdf_checksum")
    others = tuple(c for c in checks if c.check != "pdf_checksum")
    if data is None:
        return Verification(subject, "", code, record.version, False, pdf_check.detail, None, others)
    digest = sha256_bytes(data)
    detail = (f"sha256 {digest} matches the catalog" if pdf_check.ok
              else f"sha256 {digest}: {pdf_check.detail}")
    return Verification(subject, digest, code, record.version, pdf_check.ok, detail, verify_pdf(data, trust_roots),
                        others)


def verify_code(catalog: Catalog, archive: Archive, code: str, *, trust_roots: Sequence[Path],
                version: int | None = None) -> Verification:
    """Fetch the document's objects (latest version unless asked) and check them; a missing or changed object
    is a verdict, transient errors propagate."""
    return verify_record(archive, _archived(catalog, code, version), trust_roots=trust_roots)


def verify_file(catalog: Catalog, path: Path, *, trust_roots: Sequence[Path],
                archive: Archive | None = None) -> Verification:
    """Check a local PDF: is it, byte for byte, an archived signed PDF the catalog knows, and is it signed?

    With ``archive``, the objects the catalog recorded for that document (its archived PDF, sidecar and
    originals) are checked too: a true copy of a document whose archive was tampered with does not verify.
    """
    from digitize.signing import verify_pdf

    data = Path(path).read_bytes()
    digest = sha256_bytes(data)
    matches = catalog.find_by_pdf_sha256(digest)
    if matches:
        record = matches[-1]
        detail = f"sha256 {digest} is the archived signed PDF of {record.code} v{record.version}"
        objects = tuple(object_checks(archive, record)[0]) if archive is not None else ()
        return Verification(str(path), digest, record.code, record.version, True, detail,
                            verify_pdf(data, trust_roots), objects)
    detail = f"sha256 {digest} is not the checksum of any archived document in the catalog"
    return Verification(str(path), digest, None, None, False, detail, verify_pdf(data, trust_roots))


def render_verification(result: Verification) -> str:
    """The plain verdict an auditor reads: one line per object checked, then the signature."""
    from digitize.signing import VN_TZ

    verdict = result.signature
    lines = [f"{'VERIFIED' if result.ok else 'NOT VERIFIED'}: {result.subject}"]
    if result.code:
        lines.append(f"  document:     {result.code} version {result.version}")
    lines.append(f"  checksum:     {'OK' if result.checksum_ok else 'FAILED'} — {result.checksum_detail}")
    for check in result.objects:
        label = f"{object_label(check)}:"
        where = f" ({check.key})" if check.key and not check.ok else ""
        lines.append(f"  {label:<14}{'OK' if check.ok else 'FAILED'} — {check.detail}{where}")
    if not result.objects_ok:
        lines.append("  what to do:   do not rely on this document; IT staff should restore the object named FAILED "
                     "from a backup or replica (the fixity_audit DAG lists every damaged object)")
    if verdict is None:
        lines.append("  signature:    not checked")
    else:
        when = verdict.signing_time.astimezone(VN_TZ).isoformat(timespec="seconds") if verdict.signing_time else "?"
        lines += [
            f"  signature:    {'VALID' if verdict.valid else 'INVALID'} — {verdict.summary}",
            f"  signer:       {verdict.signer or '?'}",
            f"  signing time: {when}",
            f"  PAdES level:  {verdict.level or 'none'}",
        ]
    return "\n".join(lines)
