"""Signing: the agency's PAdES signer, the Decree 30/2020 stamp and QR, verification, the demo PKI.

Inside: ``signer`` (options, key material, :class:`AgencySigner`), ``stamp`` (the visible stamp, its
font, the QR code), ``placement`` (free space for them on page 1, on a map of its ink that ``inkmap``
reads straight from a scanned page), ``verify`` (offline verification, trust roots; ``pdfhex`` reads the
signatures' hex strings for pyHanko), ``pki`` (the demo PKI).
"""

from __future__ import annotations

from digitize.signing.pki import create_demo_pki
from digitize.signing.placement import REVIEW_FLAGS, STAMP_COVERS_INK
from digitize.signing.signer import (
    AgencySigner,
    Pkcs11Options,
    SigningOptions,
    options_from_settings,
    pyhanko_version,
)
from digitize.signing.stamp import VN_TZ, DocumentQr, warm_up
from digitize.signing.verify import SignatureVerdict, read_certs, verify_pdf

__all__ = [
    "REVIEW_FLAGS",
    "STAMP_COVERS_INK",
    "VN_TZ",
    "AgencySigner",
    "DocumentQr",
    "Pkcs11Options",
    "SignatureVerdict",
    "SigningOptions",
    "create_demo_pki",
    "options_from_settings",
    "pyhanko_version",
    "read_certs",
    "verify_pdf",
    "warm_up",
]
