"""A demo/test PKI made locally: a root CA and one agency signing certificate.

Real agencies sign with a certificate from their national CA (in Viet Nam the
Government Cipher Committee's CA) on a token; the demo and the tests need the
same shape without one: a root to trust and a PKCS#12 file holding the agency's
key and chain. Nothing here is ever committed: the files are generated where
the caller asks (``var/`` or a test's ``tmp_path``), readable by the owner only.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from digitize.errors import ConfigurationError

ROOT_CERT_NAME = "root.pem"
PKCS12_NAME = "agency.p12"
PASSPHRASE_NAME = "agency.pass"

DOCUMENT_SIGNING_OID = ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")
"""Microsoft/Adobe "document signing" extended key usage, beside emailProtection (which NSS wants)."""

_FILE_MODE = 0o600


@dataclass(frozen=True)
class DemoPki:
    """Where the demo PKI's files are, and the passphrase that opens the PKCS#12 file."""

    root_cert: Path
    """The self-signed test root (PEM): the trust anchor for verification."""

    pkcs12: Path
    """The agency's key, certificate and chain (PKCS#12, encrypted with ``passphrase``)."""

    passphrase: str = field(repr=False)
    """Passphrase of ``pkcs12``; never printed (excluded from repr)."""


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (no window where others can read it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _new_key(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigurationError(f"Unknown key type {key_type!r}: use 'rsa3072' or 'ec-p256'.")


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(
    pki_root: tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    days: int,
    ca: bool,
) -> x509.Certificate:
    """Issue a certificate (self-signed when ``pki_root`` is None) with the extensions signers need."""
    now = dt.datetime.now(dt.UTC)
    issuer_key, issuer_name = (key, subject) if pki_root is None else (pki_root[0], pki_root[1].subject)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if pki_root is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki_root[0].public_key()), critical=False
        )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=not ca,
            content_commitment=not ca,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if not ca:
        # What national signing certificates carry. (pdfsig's "Unknown issue" is not about the EKU: on
        # poppler 22.12 it comes from -no-ocsp, with or without one; see tests/pdfsig.py.)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_OID]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _existing(out_dir: Path, passphrase: str | None) -> DemoPki | None:
    """The PKI already in ``out_dir`` if it is complete and opens with the passphrase."""
    root, p12, pass_file = out_dir / ROOT_CERT_NAME, out_dir / PKCS12_NAME, out_dir / PASSPHRASE_NAME
    if not (root.is_file() and p12.is_file()):
        return None
    if passphrase is None:
        if not pass_file.is_file():
            return None
        passphrase = pass_file.read_text(encoding="utf-8").strip()
    try:
        pkcs12.load_key_and_certificates(p12.read_bytes(), passphrase.encode("utf-8"))
    except ValueError:
        raise ConfigurationError(
            f"{p12} exists but does not open with the given passphrase; remove the demo PKI folder to regenerate it."
        ) from None
    return DemoPki(root_cert=root, pkcs12=p12, passphrase=passphrase)


def create_demo_pki(
    out_dir: Path,
    *,
    agency_name: str,
    passphrase: str | None = None,
    common_name: str | None = None,
    key_type: str = "rsa3072",
) -> DemoPki:
    """Create (or reuse) a test root and an agency certificate in ``out_dir``.

    Writes ``root.pem`` and ``agency.p12`` (key, certificate and root, encrypted);
    when no passphrase is given a random one is written to ``agency.pass``. All
    files are mode 0600. The root's private key is discarded: the demo root can
    issue nothing else. ``key_type`` is ``"rsa3072"`` (what national CAs issue)
    or ``"ec-p256"`` (faster).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = _existing(out_dir, passphrase)
    if found is not None:
        return found
    if passphrase is None:
        passphrase = secrets.token_urlsafe(24)
        _write_private(out_dir / PASSPHRASE_NAME, passphrase.encode("utf-8"))

    root_key = _new_key(key_type)
    root_name = _name("Digitize Demo Root CA (test only)", "Digitize demo PKI")
    root_cert = _issue(None, root_key, root_name, days=3650, ca=True)
    agency_key = _new_key(key_type)
    agency_cert = _issue(
        (root_key, root_cert), agency_key, _name(common_name or agency_name, agency_name), days=3 * 365, ca=False
    )
    p12 = pkcs12.serialize_key_and_certificates(
        name=(common_name or agency_name).encode("utf-8"),
        key=agency_key,
        cert=agency_cert,
        cas=[root_cert],
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    _write_private(out_dir / PKCS12_NAME, p12)
    _write_private(out_dir / ROOT_CERT_NAME, root_cert.public_bytes(serialization.Encoding.PEM))
    return DemoPki(root_cert=out_dir / ROOT_CERT_NAME, pkcs12=out_dir / PKCS12_NAME, passphrase=passphrase)
