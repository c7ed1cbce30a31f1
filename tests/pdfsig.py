"""Check PDF signatures with poppler's ``pdfsig``: an independent verifier beside pyHanko.

``pdfsig`` exits 0 even when a signature is broken, so its text is parsed. It
trusts roots only through an NSS database, made here with ``certutil``
(Debian ``libnss3-tools``).

Found on poppler 22.12: with ``-no-ocsp`` every certificate is reported as
"Unknown issue with Certificate or corrupted data", even a correct chain to a
trusted root (an NSS error code left over from the disabled-OCSP policy), so
OCSP stays enabled by default. It costs nothing offline for certificates
without an OCSP URL (the demo PKI's); certomancer's certificates point to
127.0.0.1, which answers while the test's server runs.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PdfsigSignature:
    """One ``Signature #n`` block of pdfsig's output."""

    index: int
    """1-based number pdfsig gives the signature."""

    valid: bool
    """pdfsig said "Signature is Valid." (bytes intact and cryptographically valid)."""

    trusted: bool
    """pdfsig said "Certificate is Trusted." (chain to a root of the NSS database)."""

    signer_name: str
    """Signer Certificate Common Name."""

    field_name: str = ""
    """Signature Field Name."""

    signer_dn: str = ""
    """Signer full Distinguished Name."""

    signing_time: str = ""
    """Signing Time as pdfsig prints it."""

    signature_type: str = ""
    """e.g. ``ETSI.CAdES.detached`` (PAdES) or ``ETSI.RFC3161`` (document timestamp)."""

    signed_ranges: str = ""
    """Signed Ranges as printed, e.g. ``[0 - 1029], [10771 - 12102]``."""

    total_document_signed: bool = False
    """pdfsig said "Total document signed" (nothing appended after the signature)."""

    signature_validation: str = ""
    """The text after "Signature Validation:"."""

    certificate_validation: str = ""
    """The text after "Certificate Validation:"."""

    raw: str = ""
    """The block's text as printed."""


@dataclass(frozen=True)
class PdfsigReport:
    """Everything pdfsig said about one file."""

    signatures: list[PdfsigSignature] = field(default_factory=list)
    """The signature blocks, in file order."""

    raw: str = ""
    """pdfsig's whole standard output and error."""

    returncode: int = 0
    """pdfsig's exit status (0 even when signatures fail)."""

    @property
    def all_valid_and_trusted(self) -> bool:
        return bool(self.signatures) and all(s.valid and s.trusted for s in self.signatures)


_FIELDS = {
    "Signature Field Name": "field_name",
    "Signer Certificate Common Name": "signer_name",
    "Signer full Distinguished Name": "signer_dn",
    "Signing Time": "signing_time",
    "Signature Type": "signature_type",
    "Signed Ranges": "signed_ranges",
    "Signature Validation": "signature_validation",
    "Certificate Validation": "certificate_validation",
}


def make_nss_db(nss_dir: Path, root_cert: Path) -> Path:
    """Create (once) an NSS database in ``nss_dir`` that trusts ``root_cert`` for signing."""
    nss_dir.mkdir(parents=True, exist_ok=True)
    if not (nss_dir / "cert9.db").exists():
        subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nss_dir}"], check=True, capture_output=True)
    nickname = f"root-{hashlib.sha256(root_cert.read_bytes()).hexdigest()[:16]}"
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{nss_dir}"], check=True, capture_output=True, text=True)
    if nickname not in listed.stdout:
        subprocess.run(
            ["certutil", "-A", "-n", nickname, "-t", "CT,C,C", "-i", str(root_cert), "-d", f"sql:{nss_dir}"],
            check=True,
            capture_output=True,
        )
    return nss_dir


def parse_pdfsig(text: str, returncode: int = 0) -> PdfsigReport:
    """Parse pdfsig's text output into a report."""
    blocks = re.split(r"^Signature #(\d+):\s*$", text, flags=re.MULTILINE)
    signatures = []
    for number, body in zip(blocks[1::2], blocks[2::2], strict=True):
        values: dict[str, str] = {}
        for line in body.splitlines():
            line = line.strip().removeprefix("- ").strip()
            key, sep, value = line.partition(":")
            if sep and key in _FIELDS:
                values[_FIELDS[key]] = value.strip()
        signatures.append(
            PdfsigSignature(
                index=int(number),
                valid="Signature is Valid." in body,
                trusted="Certificate is Trusted." in body,
                total_document_signed="Total document signed" in body,
                raw=body,
                **values,  # type: ignore[arg-type]
            )
        )
    return PdfsigReport(signatures=signatures, raw=text, returncode=returncode)


def pdfsig_check(pdf_path: Path, root_cert: Path, nss_dir: Path, *, ocsp: bool = True) -> PdfsigReport:
    """Run ``pdfsig`` on ``pdf_path`` with an NSS database (made if needed) trusting ``root_cert``."""
    make_nss_db(Path(nss_dir), Path(root_cert))
    cmd = ["pdfsig", "-nssdir", f"sql:{nss_dir}"]
    if not ocsp:
        cmd.append("-no-ocsp")
    done = subprocess.run([*cmd, str(pdf_path)], capture_output=True, text=True, timeout=120)
    return parse_pdfsig(done.stdout + done.stderr, done.returncode)
