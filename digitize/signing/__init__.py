"""Signing: the agency's PAdES signer, the Decree 30/2020 stamp and QR, verification, the demo PKI."""

from __future__ import annotations

from digitize.signing.pki import create_demo_pki
from digitize.signing.signer import (
    VN_TZ,
    AgencySigner,
    DocumentQr,
    SignatureVerdict,
    options_from_settings,
    pyhanko_version,
    verify_pdf,
    warm_up,
)

__all__ = [
    "VN_TZ",
    "AgencySigner",
    "DocumentQr",
    "SignatureVerdict",
    "create_demo_pki",
    "options_from_settings",
    "pyhanko_version",
    "verify_pdf",
    "warm_up",
]
