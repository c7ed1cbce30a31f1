"""Sign digitized documents with the agency's certificate (PAdES).

Decree 30/2020/NĐ-CP (Appendix I) wants an electronic copy of a paper document
to carry the agency's digital signature; this module makes it with pyHanko as
an incremental update, so the searchable PDF/A-2b produced by OCR stays
byte-for-byte the prefix of the signed file and keeps its PDF/A identification.

The module is split in sections, top to bottom: options, key material (PKCS#12
with a cached key, PKCS#11 tokens), timestamps and validation data (PAdES
levels), and signing. The visible stamp and QR code are drawn by
:mod:`digitize.signing.stamp`; every new signature is checked by
:mod:`digitize.signing.verify` before it is returned.

Why the key is cached: pyHanko's stock ``SimpleSigner`` parses the private key
again at every signature (~125 ms for RSA-3072, twice per document because of
the size estimate); :class:`AgencySigner` parses it once per process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError, get_pyca_cryptography_hash
from pyhanko.sign.signers.pdf_cms import SimpleSigner
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import InsufficientRevinfoError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from digitize.config import Settings
from digitize.errors import ConfigurationError, CorruptFile, EncryptedPdf, SignatureFailed, TimestampUnavailable
from digitize.signing import verify
from digitize.signing.placement import Placement, plan
from digitize.signing.stamp import (
    DEFAULT_STAMP_FONT,
    VN_TZ,
    DocumentQr,
    add_qr,
    iso_vn,
    page_geometry,
    prepared_font,
    qr_symbol,
    stamp_size,
    stamp_style,
)
from digitize.signing.verify import SignatureVerdict, cert_attr, read_certs

# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------

QR_MODULE = 0.9
"""Default QR module: 0.9 pt = 0.32 mm, 2.5 pixels at the 200 dpi of Decree 30/2020; a ~300-byte payload
makes a ~66-pt symbol. zxing-cpp decodes it from a 200-dpi render even blurred by a pixel and saved as
JPEG, like a printed copy scanned again; 0.72 pt (2 pixels) decodes only from a clean render."""

QR_SMALLEST_MODULE = 0.72
"""QR module used where the default does not fit in free space: two pixels at 200 dpi, the least that decodes."""

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
"""PAdES baseline levels (ETSI EN 319 142-1): signature only; + signature timestamp;
+ validation data (certificates, CRL/OCSP) in the DSS; + a document timestamp over all of it."""


@dataclass(frozen=True)
class SigningOptions:
    """How an agency signs: its key, the PAdES level and what the signature shows."""

    pkcs12_path: Path | None
    """PKCS#12 file with the agency's key, certificate and chain; ``None`` when ``pkcs11`` is set."""

    passphrase: bytes | None = field(repr=False)
    """Passphrase of the PKCS#12 file; never logged, never in error messages (excluded from repr)."""

    reason: str = "Bản sao điện tử từ bản giấy (Nghị định 30/2020/NĐ-CP)"
    """``/Reason`` of the signature; the document code is appended, so the signature binds it."""

    location: str = "Việt Nam"
    """``/Location`` of the signature."""

    field_name: str = "AgencySignature"
    """Name of the signature form field created on page 1."""

    level: str = "B-B"
    """PAdES baseline level: ``B-B``, ``B-T``, ``B-LT`` or ``B-LTA`` (``B-T`` and up need ``tsa_url``)."""

    tsa_url: str | None = None
    """RFC 3161 timestamp authority (HTTP URL) used from ``B-T`` up."""

    tsa_timeout: float = 10.0
    """Seconds to wait for the TSA (and for CRL/OCSP fetches when embedding validation data)."""

    trust_roots: tuple[Path, ...] = ()
    """Roots (PEM/DER) the signer's chain must lead to; checked after signing. When empty, the
    self-signed certificates inside the PKCS#12 file are used (demo PKI)."""

    visible: bool = False
    """Draw the Decree 30/2020 Appendix I stamp at the top right of page 1 (else an invisible signature)."""

    copy_form: str = "SAO Y"
    """Copy form printed first in the stamp (``SAO Y``, ``SAO LỤC``, ``TRÍCH SAO``)."""

    agency_name: str | None = None
    """Agency name printed in the stamp; ``None`` takes the O (else CN) of the certificate."""

    stamp_font: Path = DEFAULT_STAMP_FONT
    """TrueType font embedded in the stamp (PDF/A forbids the non-embedded default)."""

    stamp_font_size: int = 10
    """Font size in points (Appendix I: 10)."""

    stamp_margin: float = 12.0
    """Least distance of the stamp and the QR code from the edges of page 1, in points (printers' margin)."""

    qr_module: float = QR_MODULE
    """Side of one QR module in points: the smallest that still decodes from a 200-dpi render, with room."""

    pkcs11: Pkcs11Options | None = None
    """Sign with a key kept in a PKCS#11 token (HSM, USB token, SoftHSM) instead of a PKCS#12 file."""


def options_from_settings(settings: Settings, **changes: Any) -> SigningOptions:
    """Signing options from the environment settings (the agency key, trust roots), plus ``changes``.

    The key is either a PKCS#12 file or a PKCS#11 token, never both: a machine with both set would sign
    with one while the officers believe it is the other. ``changes`` sets any other field, e.g.
    ``level="B-T", tsa_url=...`` or ``visible=True``.
    """
    pkcs11 = changes.pop("pkcs11", None) or _pkcs11_from_settings(settings)
    if settings.signing_pkcs12 is not None and pkcs11 is not None:
        raise ConfigurationError(
            "Two agency keys configured: both DIGITIZE_SIGNING_PKCS12 and DIGITIZE_SIGNING_PKCS11_MODULE are set.",
            hint="Keep exactly one: the PKCS#11 settings for a USB token or HSM, or the PKCS#12 file.",
        )
    if settings.signing_pkcs12 is None and pkcs11 is None:
        raise ConfigurationError(
            "No agency certificate configured.",
            hint="Set DIGITIZE_SIGNING_PKCS11_MODULE, _TOKEN, _KEY and _PIN_FILE for a token or HSM, or "
            "DIGITIZE_SIGNING_PKCS12 and DIGITIZE_SIGNING_PASSPHRASE_FILE for a file "
            "(python -m digitize pki init DIR makes a demo one).",
        )
    base = SigningOptions(
        pkcs12_path=settings.signing_pkcs12,
        passphrase=settings.signing_passphrase_bytes if pkcs11 is None else None,
        trust_roots=tuple(settings.trust_roots),
        pkcs11=pkcs11,
    )
    return dataclasses.replace(base, **changes)


def _pkcs11_from_settings(settings: Settings) -> Pkcs11Options | None:
    """The token named by the ``DIGITIZE_SIGNING_PKCS11_*`` settings, or ``None`` when no module is set."""
    if settings.signing_pkcs11_module is None:
        return None
    missing = [name for name, value in (("DIGITIZE_SIGNING_PKCS11_TOKEN", settings.signing_pkcs11_token),
                                        ("DIGITIZE_SIGNING_PKCS11_KEY", settings.signing_pkcs11_key)) if not value]
    if missing:
        raise ConfigurationError(
            f"DIGITIZE_SIGNING_PKCS11_MODULE is set but {' and '.join(missing)} is not.",
            hint="Name the token and the key label (list them with: pkcs11-tool --module MODULE --list-objects).",
        )
    return Pkcs11Options(
        module=settings.signing_pkcs11_module,
        token_label=settings.signing_pkcs11_token or "",
        key_label=settings.signing_pkcs11_key or "",
        cert_label=settings.signing_pkcs11_cert,
        pin=settings.signing_pkcs11_pin,
        other_certs=settings.signing_pkcs11_chain,
    )


@dataclass(frozen=True)
class Pkcs11Options:
    """Where the agency's key lives in a PKCS#11 token."""

    module: Path
    """PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""

    token_label: str
    """Label of the token (slot) holding the key."""

    key_label: str
    """Label of the private key in the token (and of its certificate, unless ``cert_label`` is set)."""

    cert_label: str | None = None
    """Label of the certificate when it differs from the key's."""

    pin: str | None = field(default=None, repr=False)
    """User PIN; never logged (excluded from repr)."""

    other_certs: tuple[Path, ...] = ()
    """Chain certificates (PEM/DER) not stored in the token."""


def pyhanko_version() -> str:
    """Version of pyHanko, recorded in the PREMIS events of signed documents."""
    return version("pyhanko")


# --------------------------------------------------------------------------------------------------
# Key material
# --------------------------------------------------------------------------------------------------


class _CachedKeySigner(SimpleSigner):
    """A ``SimpleSigner`` that keeps the parsed private key, and fakes the size-estimation signature.

    The stock class re-parses the DER key at every ``sign_raw``; pyHanko also signs once in a dry
    run to size the /Contents placeholder, where a placeholder of the right length is enough.
    """

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            if isinstance(self._key, rsa.RSAPrivateKey):
                return bytes(self._key.key_size // 8)
            return bytes(2 * (self._key.curve.key_size + 7) // 8 + 9)  # longest DER ECDSA-Sig-Value
        return self.sign_raw(data, digest_algorithm)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        hash_algo = get_pyca_cryptography_hash(digest_algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey) and mechanism == "rsassa_pkcs1v15":
            return self._key.sign(data, padding.PKCS1v15(), hash_algo)
        if isinstance(self._key, ec.EllipticCurvePrivateKey) and mechanism == "ecdsa":
            return self._key.sign(data, ec.ECDSA(hash_algo))
        raise SigningError(f"Signature mechanism {mechanism} is not supported for this key.")


def _load_pkcs12(path: Path, passphrase: bytes | None) -> _CachedKeySigner:
    """Open the PKCS#12 file once; every error says what to fix and never repeats the passphrase."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the agency PKCS#12 file {path}: {exc.strerror or exc.__class__.__name__}.",
            hint="Set DIGITIZE_SIGNING_PKCS12 to the agency's .p12/.pfx file "
            "(python -m digitize pki init DIR makes a demo one).",
        ) from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"Cannot open the PKCS#12 file {path}: wrong passphrase, or not a PKCS#12 file.",
            hint="Check DIGITIZE_SIGNING_PASSPHRASE (or _FILE) and the file; the passphrase is never shown.",
        ) from None
    if cert is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{path} must hold one RSA or EC private key and its certificate.")
    store = SimpleCertificateStore()
    store.register_multiple(asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in extra)
    return _CachedKeySigner(
        key,
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)),
        signing_key=None,  # kept as a parsed pyca object in _key instead
        cert_registry=store,
    )


def _load_pkcs11(opts: Pkcs11Options) -> signers.Signer:
    """Open one session on the token for the life of the process; the PIN is never shown."""
    from pyhanko.sign import pkcs11 as p11  # python-pkcs11 is optional: import only when asked

    if not Path(opts.module).is_file():
        raise ConfigurationError(
            f"PKCS#11 module {opts.module} not found.",
            hint="Set DIGITIZE_SIGNING_PKCS11_MODULE to the token's or HSM's PKCS#11 library (.so), "
            "installed on the signing machine.",
        )
    from pkcs11.exceptions import UserAlreadyLoggedIn

    criteria = p11.TokenCriteria(label=opts.token_label)
    try:
        try:
            session = p11.open_pkcs11_session(str(opts.module), token_criteria=criteria, user_pin=opts.pin)
        except UserAlreadyLoggedIn:
            # PKCS#11 logs in the process, not the session: another signer of this process (the next
            # chunk task of a dag.test() run, a second context) has logged in, and that login serves us.
            session = p11.open_pkcs11_session(str(opts.module), token_criteria=criteria)
    except Exception as exc:
        raise ConfigurationError(
            f"Cannot open PKCS#11 token {opts.token_label!r} with {opts.module}: {exc.__class__.__name__}.",
            hint="Check the module path, the token label and the PIN (the PIN is never shown).",
        ) from None
    other = [c for p in opts.other_certs for c in read_certs(p)]
    try:
        signer = p11.PKCS11Signer(
            session, key_label=opts.key_label, cert_label=opts.cert_label or opts.key_label, other_certs_to_pull=(),
            ca_chain=other
        )
        cert = signer.signing_cert  # fail now, not on the first document
        # Many tokens (SoftHSM2 among them) have no hash-and-sign ECDSA mechanism, only raw CKM_ECDSA:
        # for EC keys pyHanko then hashes in software and the token signs the digest.
        signer.use_raw_mechanism = cert is not None and cert.public_key.algorithm == "ec"
    except Exception as exc:
        raise ConfigurationError(
            f"PKCS#11 token {opts.token_label!r} has no usable key/certificate {opts.key_label!r}: "
            f"{exc.__class__.__name__}.",
            hint="Check DIGITIZE_SIGNING_PKCS11_KEY (and _CERT when the certificate's label differs).",
        ) from None
    return signer


# --------------------------------------------------------------------------------------------------
# Timestamps and validation data
# --------------------------------------------------------------------------------------------------


_VC_MAX_AGE = 600.0  # seconds a signing ValidationContext (and the OCSP/CRL it fetched) is reused


def _timestamper(options: SigningOptions) -> timestamps.TimeStamper | None:
    if options.level == "B-B":
        return None
    from pyhanko.sign.timestamps.requests_client import HTTPTimeStamper

    return HTTPTimeStamper(options.tsa_url, timeout=options.tsa_timeout)


def _service_unreachable(exc: BaseException) -> bool:
    """Whether a signing failure comes from a TSA/OCSP/CRL server not answering (retry later, not the document)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError | InsufficientRevinfoError):  # requests' and pyHanko's TSA errors are OSErrors
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _trust_roots_from_chain(signer: signers.Signer) -> list[asn1_x509.Certificate]:
    return [c for c in (signer.cert_registry or ()) if c.self_signed != "no"]


# --------------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------------


def _open_for_update(pdf: bytes) -> tuple[IncrementalPdfFileWriter, bytes]:
    """An incremental writer on ``pdf``; if pyHanko's strict reader refuses it, rewrite it with pikepdf.

    Returns the writer and the bytes it appends to (the input itself unless it had to be rewritten).
    """
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        if writer.prev.encrypted:
            raise EncryptedPdf("The PDF is encrypted: it cannot be signed as a digitized copy.")
        return writer, pdf
    except (PdfError, ValueError, KeyError, IndexError):
        pass
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(pdf)) as doc:
            if doc.is_encrypted:
                raise EncryptedPdf("The PDF is encrypted: it cannot be signed as a digitized copy.")
            out = io.BytesIO()
            doc.save(out, fix_metadata_version=False, deterministic_id=True)
    except pikepdf.PasswordError:
        raise EncryptedPdf("The PDF is password protected: it cannot be signed.") from None
    except pikepdf.PdfError as exc:
        raise CorruptFile(f"The PDF to sign cannot be read: {exc}") from None
    rewritten = out.getvalue()
    try:
        return IncrementalPdfFileWriter(io.BytesIO(rewritten), strict=True), rewritten
    except (PdfError, ValueError) as exc:
        raise CorruptFile(f"The PDF to sign cannot be read even after rewriting it: {exc}") from None


_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def _reserved_size(signed: bytes, start: int) -> int | None:
    """Hex digits of the /Contents placeholder of the first signature written after ``start``: the gap in its
    /ByteRange, less the ``<`` and ``>`` around it (``None`` if no /ByteRange is found)."""
    found = _BYTE_RANGE.search(signed, start)
    return int(found[3]) - int(found[2]) - 2 if found else None


class AgencySigner:
    """Signs PDFs for one agency; holds the parsed key, the fonts and contexts. Make one per process.

    pyHanko sizes the /Contents placeholder of every signature by building and serialising a dummy CMS
    (~9 ms a document): from the signer's certificates, the digest and the PAdES level, which a signer never
    changes (with a TSA, from the dummy token its time stamper keeps). The size of its first signature is
    reused for the next ones, as if pyHanko had estimated it again.
    """

    def __init__(self, options: SigningOptions, signer: signers.Signer) -> None:
        self.options = options
        self._signer = signer
        cert = signer.signing_cert
        if cert is None:  # pragma: no cover - both loaders guarantee a certificate
            raise ConfigurationError("The signing key has no certificate.")
        self.certificate: asn1_x509.Certificate = cert
        self.signer_name: str = cert_attr(cert, "common_name")
        """Subject CN of the agency certificate."""
        self.agency_name: str = options.agency_name or cert_attr(cert, "organization_name") or self.signer_name
        roots = [c for p in options.trust_roots for c in read_certs(p)] or _trust_roots_from_chain(signer)
        self._trust_roots = roots
        self._timestamper = _timestamper(options)
        self._lock = threading.Lock()
        self._signing_vc: tuple[float, ValidationContext] | None = None
        self._reserved: int | None = None
        if options.visible:
            prepared_font(options.stamp_font)  # fail at start-up, and pay the font cost once

    @classmethod
    def from_options(cls, options: SigningOptions) -> AgencySigner:
        """Load the key once (PKCS#12 file or PKCS#11 token); raises ConfigurationError on any problem."""
        if options.level not in LEVELS:
            raise ConfigurationError(f"Unknown PAdES level {options.level!r}: use one of {', '.join(LEVELS)}.")
        if options.level != "B-B" and not options.tsa_url:
            raise ConfigurationError(f"PAdES {options.level} needs a timestamp authority: set tsa_url.")
        signer: signers.Signer
        if options.pkcs11 is not None:
            signer = _load_pkcs11(options.pkcs11)
        elif options.pkcs12_path is not None:
            signer = _load_pkcs12(options.pkcs12_path, options.passphrase)
        else:
            raise ConfigurationError("No signing key configured: set pkcs12_path or pkcs11.")
        return cls(options, signer)

    def close(self) -> None:
        """End the PKCS#11 session (nothing to do for a PKCS#12 key); the signer is unusable afterwards.

        PKCS#11 logs in the process, not the session: closing the session that logged in logs the
        whole process out of the token, other signers of the process on the same token included.
        """
        session = getattr(self._signer, "pkcs11_session", None)
        if session is not None:
            session.close()

    def __repr__(self) -> str:
        return f"AgencySigner(signer_name={self.signer_name!r}, level={self.options.level!r})"

    def _validation_context(self) -> ValidationContext:
        """Context used while signing B-LT/B-LTA: fetches OCSP/CRL, reused for a while.

        Reuse lets a batch fetch the revocation data once instead of per document (about 3x faster);
        it is renewed every ``_VC_MAX_AGE`` so that embedded responses stay fresh and its notion of
        "now" does not drift.
        """
        now = time.monotonic()
        if self._signing_vc is None or now - self._signing_vc[0] > _VC_MAX_AGE:
            vc = ValidationContext(trust_roots=self._trust_roots, allow_fetching=True, revocation_mode="hard-fail")
            self._signing_vc = (now, vc)
        return self._signing_vc[1]

    def sign(self, pdf: bytes, *, document_code: str, title: str, qr: DocumentQr | None = None) -> bytes:
        """Sign ``pdf`` (PAdES at the configured level) and check the result before returning it.

        ``document_code`` goes into the signed ``/Reason``; ``title`` names the document in errors.
        ``qr`` adds the Circular 01/2023 QR code on page 1 (results, ``KQ``). The output
        starts with the input bytes unless pyHanko could not read the input and it was rewritten.
        Raises SignatureFailed if the new signature does not verify.
        """
        return self.sign_checked(pdf, document_code=document_code, title=title, qr=qr)[0]

    def sign_checked(self, pdf: bytes, *, document_code: str, title: str, qr: DocumentQr | None = None,
                     known_gray: Mapping[bytes, np.ndarray] | None = None
                     ) -> tuple[bytes, SignatureVerdict, tuple[str, ...]]:
        """:meth:`sign`, also returning the verdict of its check (callers need not verify again) and the
        review flags of the stamp's placement (``STAMP_COVERS_INK`` when page 1 had no free space).

        ``known_gray``: decoded gray samples of images, by :func:`~digitize.checksums.content_key` of their
        stream's bytes, that the caller already holds (the process that made the PDF): page 1's image is then
        not decoded again to place the stamp. A key that matches no stream is ignored."""
        opts = self.options
        writer, base = _open_for_update(pdf)
        level = opts.level
        vc = None
        if level in ("B-LT", "B-LTA"):
            with self._lock:
                vc = self._validation_context()
        meta = signers.PdfSignatureMetadata(
            field_name=opts.field_name,
            reason=f"{opts.reason}: {document_code}",
            location=opts.location,
            name=self.agency_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            embed_validation_info=vc is not None,
            use_pades_lta=level == "B-LTA",
            validation_context=vc,
        )
        text_params: dict[str, str] = {}
        style = None
        box = None
        flags: tuple[str, ...] = ()
        if opts.visible or qr is not None:
            style = stamp_style(opts)
            text_params = {
                "copy_form": opts.copy_form,
                "agency": self.agency_name,
                "signed_at": iso_vn(dt.datetime.now(VN_TZ)),
            }
            placement = self._place(writer, base, list(text_params.values()), qr, document_code, known_gray)
            x0, y0, x1, y1 = (round(v) for v in placement.stamp)
            box = (x0, y0, x1, y1)
            flags = placement.flags
        field_spec = fields.SigFieldSpec(sig_field_name=opts.field_name, on_page=0, box=box)
        pdf_signer = signers.PdfSigner(
            meta, signer=self._signer, timestamper=self._timestamper, stamp_style=style, new_field_spec=field_spec
        )
        out = io.BytesIO()
        try:
            with self._lock:  # PKCS#11 sessions and the key are shared; pyHanko runs its own event loop
                pdf_signer.sign_pdf(writer, output=out, appearance_text_params=text_params or None,
                                    bytes_reserved=self._reserved)
        except (SigningError, PdfError, OSError) as exc:
            if self._reserved is not None and "larger than expected" in str(exc):
                self._reserved = None  # e.g. a TSA whose tokens grew: estimate again, as pyHanko would have
                return self.sign_checked(pdf, document_code=document_code, title=title, qr=qr, known_gray=known_gray)
            if _service_unreachable(exc):
                raise TimestampUnavailable(
                    f"Signing {document_code} needs the TSA or the CA's OCSP/CRL service, which did not answer: "
                    f"{exc.__class__.__name__}: {exc}"
                ) from None
            raise SignatureFailed(
                f"Signing {document_code} ({title}) failed: {exc.__class__.__name__}: {exc}"
            ) from None
        signed = out.getvalue()
        if not signed.startswith(base):
            raise SignatureFailed(f"Signing {document_code} changed the original bytes: refusing the result.")
        # Long-term levels must verify from what they embed alone: missing revocation data is an error.
        mode = "hard-fail" if level in ("B-LT", "B-LTA") else "soft-fail"
        verdict = verify.verify_with_roots(signed, self._trust_roots, mode)
        # B-LT/B-LTA append the DSS after the signature; the verdict checks those updates are harmless.
        if not (verdict.valid and (verdict.covers_whole_file or level in ("B-LT", "B-LTA"))):
            raise SignatureFailed(
                f"The signature made for {document_code} ({title}) does not verify: {verdict.summary}"
            )
        if self._reserved is None:
            self._reserved = _reserved_size(signed, len(base))
        return signed, verdict, flags

    def _place(self, writer: IncrementalPdfFileWriter, pdf: bytes, lines: list[str], qr: DocumentQr | None,
               document_code: str, known_gray: Mapping[bytes, np.ndarray] | None) -> Placement:
        """Find free space on page 1 for the stamp and the QR code, and draw the QR code there."""
        opts = self.options
        box, rotate = page_geometry(writer)
        symbol = qr_symbol(qr.payload(document_code)) if qr is not None else None
        modules = sorted({opts.qr_module, min(opts.qr_module, QR_SMALLEST_MODULE)}, reverse=True)
        sides = [symbol[1] * m for m in modules] if symbol is not None else []
        placement = plan(pdf, box, rotate, stamp_size(opts, lines), sides, opts.stamp_margin, known_gray)
        if symbol is not None and placement.qr is not None:
            add_qr(writer, placement.qr, symbol)
        return placement
