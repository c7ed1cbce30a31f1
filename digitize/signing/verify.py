"""Offline verification of signed PDFs: every signature and document timestamp against trust roots.

Nothing is fetched while verifying: revocation data comes from the document's DSS, and a
validation context without one is reused per set of roots.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko_certvalidator import ValidationContext

from digitize.errors import ConfigurationError
from digitize.signing import pdfhex

pdfhex.install()  # every signature's /Contents read in one call, here and when signing


@dataclass(frozen=True)
class SignatureVerdict:
    """The outcome of verifying every signature (and document timestamp) in a PDF."""

    valid: bool
    """Intact AND cryptographically valid AND trusted, for every signature and timestamp."""

    intact: bool
    """The signed byte ranges hash to the signed digest, for every signature."""

    trusted: bool
    """Every signer's chain leads to one of the trust roots (and is not revoked as far as known)."""

    signer: str
    """Subject CN of the (first) signer's certificate; '' when there is no signature."""

    signing_time: dt.datetime | None
    """Time from the signature timestamp if any, else the time the signer claims."""

    summary: str
    """One line for humans and the event log: the problem found, or what was checked."""

    level: str = ""
    """PAdES level found: ``B-B``, ``B-T``, ``B-LT``, ``B-LTA`` ('' when not signed)."""

    signatures: int = 0
    """Number of signatures (document timestamps not counted)."""

    covers_whole_file: bool = False
    """The last signature or timestamp covers the whole file (nothing was appended after it)."""


def read_certs(path: Path) -> list[asn1_x509.Certificate]:
    """Certificates from a PEM (one or more) or DER file."""
    from asn1crypto import pem

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read certificate file {path}: {exc.strerror}.") from None
    if pem.detect(data):
        return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [asn1_x509.Certificate.load(data)]


def cert_attr(cert: asn1_x509.Certificate, name: str) -> str:
    """One attribute of the certificate's subject (the last, if repeated), e.g. ``common_name``."""
    value = cert.subject.native.get(name, "")
    return value[-1] if isinstance(value, list) else str(value)


_VC_CACHE: dict[tuple[bytes, str], ValidationContext] = {}
_VC_LOCK = threading.Lock()


def _root_key(roots: Sequence[asn1_x509.Certificate]) -> bytes:
    return hashlib.sha256(b"".join(sorted(c.dump() for c in roots))).digest()


def _context_for(reader: PdfFileReader, roots: Sequence[asn1_x509.Certificate], mode: str) -> ValidationContext:
    """A validation context that never fetches: the document's DSS when it has one, else a reused one."""
    dss = None
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (KeyError, ValueError, PdfError):
        dss = None
    if dss is not None:
        return dss.as_validation_context({"trust_roots": list(roots), "allow_fetching": False, "revocation_mode": mode})
    key = (_root_key(roots), mode)
    with _VC_LOCK:
        vc = _VC_CACHE.get(key)
        if vc is None:
            vc = _VC_CACHE[key] = ValidationContext(
                trust_roots=list(roots), allow_fetching=False, revocation_mode=mode, crls=[], ocsps=[]
            )
        return vc


_ALLOWED_AFTER_SIGNING = ("NONE", "LTA_UPDATES")
"""Archived documents have no form to fill: after the agency's signature only validation data (DSS) and
document timestamps may be appended (pyHanko's ``LTA_UPDATES``)."""

_CHANGES = {
    "FORM_FILLING": "form fields were added or filled in",
    "ANNOTATIONS": "annotations were added or changed",
}


def _printable(name: object) -> str:
    """A field name for the one-line summary: an attacker chose it, so no control characters, kept short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name))
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def _modification_problem(status: Any) -> str:
    """What was appended after this signature beyond LTA updates ('' when nothing was)."""
    level = getattr(status, "modification_level", None)
    if level is not None and level.name in _ALLOWED_AFTER_SIGNING and getattr(status, "docmdp_ok", True) is not False:
        return ""
    if level is None:
        what = "the changes appended after the signature could not be analysed"
    else:
        what = _CHANGES.get(level.name, "content was added or changed")
        changed = sorted(getattr(getattr(status, "diff_result", None), "changed_form_fields", None) or ())
        if changed:
            what += " (" + ", ".join(_printable(n) for n in changed[:3]) + (", …" if len(changed) > 3 else "") + ")"
    return f"modified after signing: {what}; only validation data and document timestamps may follow a signature"


def _status_problem(status: Any) -> str:
    if not status.intact:
        return "the signed bytes were modified"
    if not status.valid:
        return "the cryptographic signature is invalid"
    if not status.trusted:
        return f"the signer's certificate is not trusted ({status.trust_problem_indic})"
    ts = getattr(status, "timestamp_validity", None)
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        return "the signature timestamp is not valid or not trusted"
    return _modification_problem(status)


def verify_pdf(pdf: bytes, trust_roots: Sequence[Path], *, revocation_mode: str = "soft-fail") -> SignatureVerdict:
    """Verify every signature and document timestamp of ``pdf`` offline against ``trust_roots``.

    Nothing is fetched: revocation data comes from the document's DSS only. ``revocation_mode``
    ``"hard-fail"`` or ``"require"`` makes missing revocation data an error (use it for B-LT/B-LTA).
    """
    return verify_with_roots(pdf, [c for p in trust_roots for c in read_certs(p)], revocation_mode)


def verify_with_roots(pdf: bytes, roots: Sequence[asn1_x509.Certificate], revocation_mode: str) -> SignatureVerdict:
    """verify_pdf with parsed roots: AgencySigner checks its own output with roots it loaded once."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except (PdfError, ValueError, KeyError) as exc:
        return SignatureVerdict(False, False, False, "", None, f"unreadable PDF: {exc}")
    regular = [s for s in sigs if s.sig_object_type == "/Sig"]
    if not regular:
        return SignatureVerdict(False, False, False, "", None, "no signature in the document")
    vc = _context_for(reader, roots, revocation_mode)
    problems: list[str] = []
    intact = valid = trusted = True
    signer, signing_time = "", None
    has_ts = has_docts = False
    for sig in sigs:
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                has_docts = True
                ts_status = validate_pdf_timestamp(sig, validation_context=vc)
                status: Any = ts_status
            else:
                status = validate_pdf_signature(sig, signer_validation_context=vc)
                if not signer:
                    signer = cert_attr(status.signing_cert, "common_name")
                    tsv = status.timestamp_validity
                    has_ts = has_ts or tsv is not None
                    signing_time = tsv.timestamp if tsv is not None else status.signer_reported_dt
        except (SignatureValidationError, PdfError, ValueError) as exc:
            intact = valid = trusted = False
            problems.append(f"{sig.field_name}: {exc.__class__.__name__}: {exc}")
            continue
        intact &= bool(status.intact)
        valid &= bool(status.valid)
        trusted &= bool(status.trusted)
        problem = _status_problem(status)
        if problem:
            problems.append(f"{sig.field_name}: {problem}")
    dss_present = "/DSS" in reader.root
    level = "B-LTA" if has_docts and dss_present else "B-LT" if dss_present and has_ts else "B-T" if has_ts else "B-B"
    last = sigs[-1]
    whole = last.coverage is not None and last.coverage.name == "ENTIRE_FILE"
    ok = not problems and intact and valid and trusted
    summary = (
        "; ".join(problems)
        if problems
        else (f"{len(regular)} signature(s) valid, intact and trusted (PAdES {level}), signer {signer}")
    )
    return SignatureVerdict(
        valid=ok,
        intact=intact,
        trusted=trusted,
        signer=signer,
        signing_time=signing_time,
        summary=summary,
        level=level,
        signatures=len(regular),
        covers_whole_file=whole,
    )
