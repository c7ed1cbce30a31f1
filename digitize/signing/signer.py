"""Sign digitized documents with the agency's certificate (PAdES) and verify signatures offline.

Decree 30/2020/NĐ-CP (Appendix I) wants an electronic copy of a paper document
to carry the agency's digital signature; this module makes it with pyHanko as
an incremental update, so the searchable PDF/A-2b produced by OCR stays
byte-for-byte the prefix of the signed file and keeps its PDF/A identification.

The module is split in sections, top to bottom: options and results, key
material (PKCS#12 with a cached key, PKCS#11 tokens), fonts and stamps (the
visible Appendix I stamp and the Circular 01/2023 QR code), timestamps and
validation data (PAdES levels), signing, and verification.

Why the key is cached: pyHanko's stock ``SimpleSigner`` parses the private key
again at every signature (~125 ms for RSA-3072, twice per document because of
the size estimate); :class:`AgencySigner` parses it once per process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.font.basic import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError, get_pyca_cryptography_hash
from pyhanko.sign.signers.pdf_cms import SimpleSigner
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.stamp import QRStampStyle, TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import InsufficientRevinfoError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from digitize.config import Settings
from digitize.errors import ConfigurationError, CorruptFile, EncryptedPdf, SignatureFailed, TimestampUnavailable

# --------------------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------------------

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
"""PAdES baseline levels (ETSI EN 319 142-1): signature only; + signature timestamp;
+ validation data (certificates, CRL/OCSP) in the DSS; + a document timestamp over all of it."""

VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
"""Viet Nam time (+07:00), in which Decree 30/2020 Appendix I writes the signing time."""

DEFAULT_STAMP_FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")
"""Liberation Serif 2.x: metric twin of Times New Roman with Vietnamese glyphs (Debian fonts-liberation2)."""


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

    stamp_margin: float = 20.0
    """Distance of the stamp from the top and right edges of page 1, in points."""

    qr_size: float = 85.0
    """Side of the QR code in points (85 pt = 30 mm: modules of ~0.5 mm for a 300-byte payload)."""

    pkcs11: Pkcs11Options | None = None
    """Sign with a key kept in a PKCS#11 token (HSM, USB token, SoftHSM) instead of a PKCS#12 file."""


def options_from_settings(settings: Settings, **changes: Any) -> SigningOptions:
    """Signing options from the environment settings (PKCS#12, passphrase, trust roots), plus ``changes``.

    ``changes`` sets any other field, e.g. ``level="B-T", tsa_url=...`` or ``visible=True``.
    """
    if settings.signing_pkcs12 is None and changes.get("pkcs11") is None:
        raise ConfigurationError(
            "No agency certificate configured.",
            hint="Set DIGITIZE_SIGNING_PKCS12 and DIGITIZE_SIGNING_PASSPHRASE (python -m digitize pki init DIR "
            "makes a demo one).",
        )
    base = SigningOptions(
        pkcs12_path=settings.signing_pkcs12,
        passphrase=settings.signing_passphrase_bytes,
        trust_roots=tuple(settings.trust_roots),
    )
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class Pkcs11Options:
    """Where the agency's key lives in a PKCS#11 token."""

    module: Path
    """PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""

    token_label: str
    """Label of the token (slot) holding the key."""

    key_label: str
    """Label of the private key and of its certificate in the token."""

    pin: str | None = field(default=None, repr=False)
    """User PIN; never logged (excluded from repr)."""

    other_certs: tuple[Path, ...] = ()
    """Chain certificates (PEM/DER) not stored in the token."""


@dataclass(frozen=True)
class DocumentQr:
    """What Circular 01/2023/TT-VPCP asks the QR code (TCVN 7322 = ISO/IEC 18004) of a result to carry."""

    dossier_code: str
    """Dossier code (Circular 01/2018 Art. 19), e.g. ``000.00.00.H49-210617-0001``."""

    procedure_code: str
    """Procedure code in the national TTHC database, e.g. ``1.000110``."""

    holder_id: str
    """Identifier of the person (citizen id) or organisation (tax code) the result is for."""

    document_name: str
    """Name of the document (Vietnamese, UTF-8)."""

    source_system: str
    """System that issued the result (e.g. the provincial one-stop information system)."""

    issued_at: dt.datetime
    """Issue time of the result."""

    valid_until: dt.date | None = None
    """End of validity of the result; ``None`` means no limit."""

    def payload(self, document_code: str) -> str:
        """The QR text: compact UTF-8 JSON, keys as in Circular 01/2023's list, plus the document code."""
        data = {
            "ma_tai_lieu": document_code,
            "ma_ho_so": self.dossier_code,
            "ma_thu_tuc": self.procedure_code,
            "ma_dinh_danh": self.holder_id,
            "ten_giay_to": self.document_name,
            "he_thong": self.source_system,
            "thoi_gian_cap": _iso_vn(self.issued_at),
            "hieu_luc": self.valid_until.isoformat() if self.valid_until else "không thời hạn",
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


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


def _iso_vn(moment: dt.datetime) -> str:
    """ISO 8601 with +07:00, as Decree 30/2020 Appendix I writes times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VN_TZ)
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")


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

    try:
        session = p11.open_pkcs11_session(
            str(opts.module), token_criteria=p11.TokenCriteria(label=opts.token_label), user_pin=opts.pin
        )
    except Exception as exc:
        raise ConfigurationError(
            f"Cannot open PKCS#11 token {opts.token_label!r} with {opts.module}: {exc.__class__.__name__}.",
            hint="Check the module path, the token label and the PIN (the PIN is never shown).",
        ) from None
    other = [c for p in opts.other_certs for c in _read_certs(p)]
    try:
        signer = p11.PKCS11Signer(
            session, key_label=opts.key_label, cert_label=opts.key_label, other_certs_to_pull=(), ca_chain=other
        )
        _ = signer.signing_cert  # fail now, not on the first document
    except Exception as exc:
        raise ConfigurationError(
            f"PKCS#11 token {opts.token_label!r} has no usable key/certificate {opts.key_label!r}: "
            f"{exc.__class__.__name__}."
        ) from None
    return signer


def _read_certs(path: Path) -> list[asn1_x509.Certificate]:
    """Certificates from a PEM (one or more) or DER file."""
    from asn1crypto import pem

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read certificate file {path}: {exc.strerror}.") from None
    if pem.detect(data):
        return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [asn1_x509.Certificate.load(data)]


# --------------------------------------------------------------------------------------------------
# Fonts and stamps
# --------------------------------------------------------------------------------------------------


def _stamp_charset() -> str:
    """Printable ASCII, Latin-1 and the Vietnamese blocks: what a stamp can contain."""
    chars = {chr(c) for c in range(0x20, 0x7F)} | {chr(c) for c in range(0xA0, 0x180)}
    chars |= {chr(c) for c in range(0x1EA0, 0x1EFA)} | {chr(c) for c in range(0x1A0, 0x1B1)}
    chars |= {chr(c) for c in range(0x300, 0x324)}  # combining marks, in case text is NFD
    chars |= set("–—‘’“”…•")
    return "".join(sorted(chars))


@lru_cache(maxsize=4)
def _prepared_font(path: Path) -> bytes:
    """The stamp font subset to the Vietnamese charset and rescaled to 1000 units per em, once per process.

    pyHanko 0.38 writes glyph widths in raw font units, so a 2048-upem font (Liberation, DejaVu) is
    spaced wrongly unless rescaled; subsetting here makes the per-document parse and subset cheap.
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    try:
        font = TTFont(str(path))
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the stamp font {path}: {exc.strerror}.",
            hint="Install fonts-liberation2 (Debian) or point stamp_font to a TrueType font with Vietnamese glyphs.",
        ) from None
    options = subset.Options()
    options.drop_tables += ["FFTM"]  # FontForge timestamps: not needed, and fontTools warns about them
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=_stamp_charset())
    subsetter.subset(font)
    if font["head"].unitsPerEm != 1000:
        scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class _PreparedFontFactory(FontEngineFactory):
    """Creates pyHanko glyph accumulators from the cached, prepared font bytes (no file I/O per document)."""

    font_bytes: bytes = field(repr=False)
    font_size: int = 10

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(self.font_bytes),
            font_size=self.font_size,
            bcp47_lang_code="vi",
            obj_stream=obj_stream,
        )


_STAMP_TEXT = "%(copy_form)s\n%(agency)s\n%(signed_at)s"


_TEXT_MARGIN = 10  # pyHanko's text box margin on each side (DEFAULT_TEXT_BOX_MARGIN)
_QR_INNSEP = 3


def warm_up() -> None:
    """Prepare the default stamp font (~0.5 s of CPU) so that processes forked afterwards start with it.

    Needs no key: the parent of Airflow's tasks never holds the agency's secrets. A missing font is
    left for the signer to report, with its hint, when a task starts.
    """
    if DEFAULT_STAMP_FONT.is_file():
        _prepared_font(DEFAULT_STAMP_FONT)
        _advance_widths(DEFAULT_STAMP_FONT)


@lru_cache(maxsize=4)
def _advance_widths(path: Path) -> tuple[dict[int, int], int]:
    """Advance widths (1000 units per em) by code point, and the fallback width, of the prepared font."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(_prepared_font(path)))
    hmtx = font["hmtx"].metrics
    widths = {code: hmtx[name][0] for code, name in font.getBestCmap().items()}
    return widths, hmtx[".notdef"][0]


def _text_width(options: SigningOptions, text: str) -> float:
    """Width of one line at the stamp's size in points (kerning ignored: a few points of slack cover it)."""
    widths, missing = _advance_widths(options.stamp_font)
    return sum(widths.get(ord(ch), missing) for ch in text) * options.stamp_font_size / 1000


def _stamp_style(options: SigningOptions, *, with_qr: bool) -> TextStampStyle:
    """Text at exactly the configured size (never shrunk to fit), top-right aligned, no border, no image."""
    font = _PreparedFontFactory(font_bytes=_prepared_font(options.stamp_font), font_size=options.stamp_font_size)
    text_box = TextBoxStyle(font=font, font_size=options.stamp_font_size, leading=options.stamp_font_size + 2)
    no_scaling = layout.SimpleBoxLayoutRule(
        x_align=layout.AxisAlignment.ALIGN_MAX,
        y_align=layout.AxisAlignment.ALIGN_MAX,
        inner_content_scaling=layout.InnerScaling.NO_SCALING,
    )
    if with_qr:
        return QRStampStyle(
            stamp_text=_STAMP_TEXT,
            text_box_style=text_box,
            border_width=0,
            background=None,
            innsep=_QR_INNSEP,
            qr_inner_size=round(options.qr_size),
            inner_content_layout=no_scaling,
        )
    return TextStampStyle(
        stamp_text=_STAMP_TEXT,
        text_box_style=text_box,
        border_width=0,
        background=None,
        inner_content_layout=no_scaling,
    )


def _page_box(writer: IncrementalPdfFileWriter) -> tuple[float, float, float, float]:
    """Visible area of page 1 (CropBox, else MediaBox), following inheritance up the page tree."""
    page_ref, _ = writer.find_page_for_modification(0)
    for key in ("/CropBox", "/MediaBox"):
        node: Any = page_ref.get_object()
        while node is not None:
            if key in node:
                x0, y0, x1, y1 = (float(v) for v in node[key])
                return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            parent = node.get("/Parent")
            node = parent.get_object() if parent is not None else None
    return (0.0, 0.0, 595.0, 842.0)


def _stamp_box(
    options: SigningOptions, page: tuple[float, float, float, float], lines: Sequence[str], *, with_qr: bool
) -> tuple[int, int, int, int]:
    """Top right of page 1 (Appendix I), sized to the text so that nothing is shrunk or clipped."""
    x0, _y0, x1, y1 = page
    width = max(_text_width(options, line) for line in lines) + 2 * _TEXT_MARGIN + 4
    height = float(len(lines) * (options.stamp_font_size + 2) + 2 * _TEXT_MARGIN)
    if with_qr:
        width += options.qr_size + 2 * _QR_INNSEP
        height = max(height, options.qr_size + 2 * _QR_INNSEP)
    right, top = x1 - options.stamp_margin, y1 - options.stamp_margin
    left = max(x0 + options.stamp_margin, right - width)
    return (math.floor(left), math.floor(top - height), math.ceil(right), math.ceil(top))


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


def _cert_attr(cert: asn1_x509.Certificate, name: str) -> str:
    value = cert.subject.native.get(name, "")
    return value[-1] if isinstance(value, list) else str(value)


class AgencySigner:
    """Signs PDFs for one agency; holds the parsed key, the fonts and contexts. Make one per process."""

    def __init__(self, options: SigningOptions, signer: signers.Signer) -> None:
        self.options = options
        self._signer = signer
        cert = signer.signing_cert
        if cert is None:  # pragma: no cover - both loaders guarantee a certificate
            raise ConfigurationError("The signing key has no certificate.")
        self.certificate: asn1_x509.Certificate = cert
        self.signer_name: str = _cert_attr(cert, "common_name")
        """Subject CN of the agency certificate."""
        self.agency_name: str = options.agency_name or _cert_attr(cert, "organization_name") or self.signer_name
        roots = [c for p in options.trust_roots for c in _read_certs(p)] or _trust_roots_from_chain(signer)
        self._trust_roots = roots
        self._timestamper = _timestamper(options)
        self._lock = threading.Lock()
        self._signing_vc: tuple[float, ValidationContext] | None = None
        if options.visible:
            _prepared_font(options.stamp_font)  # fail at start-up, and pay the font cost once

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
        ``qr`` adds the Circular 01/2023 QR code to the visible stamp (results, ``KQ``). The output
        starts with the input bytes unless pyHanko could not read the input and it was rewritten.
        Raises SignatureFailed if the new signature does not verify.
        """
        return self.sign_checked(pdf, document_code=document_code, title=title, qr=qr)[0]

    def sign_checked(self, pdf: bytes, *, document_code: str, title: str,
                     qr: DocumentQr | None = None) -> tuple[bytes, SignatureVerdict]:
        """:meth:`sign`, also returning the verdict of its check, so that callers need not verify again."""
        opts = self.options
        writer, base = _open_for_update(pdf)
        visible = opts.visible or qr is not None
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
        if visible:
            style = _stamp_style(opts, with_qr=qr is not None)
            text_params = {
                "copy_form": opts.copy_form,
                "agency": self.agency_name,
                "signed_at": _iso_vn(dt.datetime.now(VN_TZ)),
            }
            lines = [text_params["copy_form"], text_params["agency"], text_params["signed_at"]]
            box = _stamp_box(opts, _page_box(writer), lines, with_qr=qr is not None)
            if qr is not None:
                text_params["url"] = qr.payload(document_code)
        field_spec = fields.SigFieldSpec(sig_field_name=opts.field_name, on_page=0, box=box)
        pdf_signer = signers.PdfSigner(
            meta, signer=self._signer, timestamper=self._timestamper, stamp_style=style, new_field_spec=field_spec
        )
        out = io.BytesIO()
        try:
            with self._lock:  # PKCS#11 sessions and the key are shared; pyHanko runs its own event loop
                pdf_signer.sign_pdf(writer, output=out, appearance_text_params=text_params or None)
        except (SigningError, PdfError, OSError) as exc:
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
        verdict = _verify(signed, self._trust_roots, "hard-fail" if level in ("B-LT", "B-LTA") else "soft-fail")
        # B-LT/B-LTA append the DSS after the signature; the verdict checks those updates are harmless.
        if not (verdict.valid and (verdict.covers_whole_file or level in ("B-LT", "B-LTA"))):
            raise SignatureFailed(
                f"The signature made for {document_code} ({title}) does not verify: {verdict.summary}"
            )
        return signed, verdict


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------

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
    if getattr(status, "docmdp_ok", True) is False:
        return "the document was modified in a way the signature does not allow"
    level = getattr(status, "modification_level", None)
    if level is not None and level.name not in ("NONE", "LTA_UPDATES", "FORM_FILLING"):
        return "content was changed after signing"
    return ""


def verify_pdf(pdf: bytes, trust_roots: Sequence[Path], *, revocation_mode: str = "soft-fail") -> SignatureVerdict:
    """Verify every signature and document timestamp of ``pdf`` offline against ``trust_roots``.

    Nothing is fetched: revocation data comes from the document's DSS only. ``revocation_mode``
    ``"hard-fail"`` or ``"require"`` makes missing revocation data an error (use it for B-LT/B-LTA).
    """
    return _verify(pdf, [c for p in trust_roots for c in _read_certs(p)], revocation_mode)


def _verify(pdf: bytes, roots: Sequence[asn1_x509.Certificate], revocation_mode: str) -> SignatureVerdict:
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
                    signer = _cert_attr(status.signing_cert, "common_name")
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
