"""Signing with real pyHanko, checked by pyHanko's validator and independently by poppler's pdfsig."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import img2pdf
import pikepdf
import pytest
from pdf_tamper import FORGED_TEXT, HOW, painted_over
from pdfsig import pdfsig_check
from PIL import Image, ImageDraw
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import DocumentSecurityStore
from softhsm import TOKEN_PIN, SoftHsm, store_certificate

from digitize.errors import ConfigurationError, SignatureFailed, TimestampUnavailable, TransientError
from digitize.signing import (
    AgencySigner,
    DocumentQr,
    Pkcs11Options,
    SigningOptions,
    options_from_settings,
    pyhanko_version,
    verify_pdf,
)
from digitize.signing.pki import DemoPki, create_demo_pki

AGENCY = "Ủy ban nhân dân tỉnh Tiền Giang"
CODE = "000.00.00.H49.2021.KQ.000123"


def _page_image() -> Image.Image:
    """An A4 page at 200 dpi with lines of 'text' (image data to flip bytes in); the top 144 pt blank for the stamp."""
    img = Image.new("RGB", (1654, 2339), "white")
    draw = ImageDraw.Draw(img)
    for y in range(400, 2200, 40):
        draw.line((160, y, 1500, y), fill=(30, 30, 30), width=3)
    return img


def make_pdfa_ish(path: Path) -> bytes:
    """A pikepdf-written PDF with PDF/A-2b identification in its XMP, like the OCR stage's output."""
    buf = io.BytesIO()
    _page_image().save(buf, format="PNG")
    raw = img2pdf.convert(buf.getvalue(), layout_fun=img2pdf.get_fixed_dpi_layout_fun((200, 200)))
    with pikepdf.open(io.BytesIO(raw)) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
            meta["dc:title"] = "Giấy chứng nhận quyền sử dụng đất"
        pdf.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return create_demo_pki(tmp_path_factory.mktemp("pki"), agency_name=AGENCY)


@pytest.fixture(scope="module")
def signer(pki: DemoPki) -> AgencySigner:
    return AgencySigner.from_options(SigningOptions(pkcs12_path=pki.pkcs12, passphrase=pki.passphrase.encode()))


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_pdfa_ish(tmp_path_factory.mktemp("pdf") / "in.pdf")


@pytest.fixture(scope="module")
def signed(signer: AgencySigner, original: bytes) -> bytes:
    return signer.sign(original, document_code=CODE, title="Giấy chứng nhận")


@pytest.fixture(scope="module")
def nss_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nss")


def _flip_inside_signed_range(data: bytes) -> bytes:
    """Flip one byte of image data inside the first signed byte range (the file still parses)."""
    ranges = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data)
    assert ranges is not None
    first_end = int(ranges.group(2))
    stream = data.index(b"stream", data.index(b"/Subtype /Image")) + 200
    assert stream < first_end
    out = bytearray(data)
    out[stream] ^= 0x55
    return bytes(out)


def test_signed_file_verifies_with_pyhanko(signed: bytes, pki: DemoPki) -> None:
    verdict = verify_pdf(signed, [pki.root_cert])
    assert verdict.valid and verdict.intact and verdict.trusted, verdict.summary
    assert verdict.signer == AGENCY
    assert verdict.level == "B-B" and verdict.signatures == 1 and verdict.covers_whole_file
    assert verdict.signing_time is not None


def test_signed_file_verifies_with_pdfsig(signed: bytes, pki: DemoPki, tmp_path: Path, nss_dir: Path) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    report = pdfsig_check(path, pki.root_cert, nss_dir)
    assert len(report.signatures) == 1, report.raw
    sig = report.signatures[0]
    assert sig.valid and sig.trusted, report.raw
    assert sig.signer_name == AGENCY and sig.total_document_signed
    assert sig.signature_type == "ETSI.CAdES.detached"  # PAdES, not adbe.pkcs7.detached


def test_untrusted_root_is_reported_by_both(signed: bytes, tmp_path: Path) -> None:
    other = create_demo_pki(tmp_path / "other", agency_name="Other", key_type="ec-p256")
    assert not verify_pdf(signed, [other.root_cert]).trusted
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    sig = pdfsig_check(path, other.root_cert, tmp_path / "nss").signatures[0]
    assert sig.valid and not sig.trusted


def test_flipped_byte_fails_both_verifiers(signed: bytes, pki: DemoPki, tmp_path: Path, nss_dir: Path) -> None:
    tampered = _flip_inside_signed_range(signed)
    verdict = verify_pdf(tampered, [pki.root_cert])
    assert not verdict.valid and not verdict.intact
    path = tmp_path / "tampered.pdf"
    path.write_bytes(tampered)
    report = pdfsig_check(path, pki.root_cert, nss_dir)
    assert len(report.signatures) == 1, report.raw
    assert not report.signatures[0].valid, report.raw


def test_original_is_a_prefix_and_pdfa_identification_is_kept(signed: bytes, original: bytes) -> None:
    assert signed.startswith(original) and len(signed) > len(original)
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "2" and meta["pdfaid:conformance"] == "B"
        assert "/AcroForm" in pdf.Root and pdf.Root.AcroForm.SigFlags == 3


def test_document_code_is_in_the_signed_reason(signed: bytes) -> None:
    sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    assert CODE in str(sig.sig_object["/Reason"])


def test_pillow_pdf_rejected_by_strict_reader_is_rewritten_and_signed(signer: AgencySigner, pki: DemoPki) -> None:
    buf = io.BytesIO()
    _page_image().save(buf, format="PDF", resolution=200)
    signed = signer.sign(buf.getvalue(), document_code=CODE, title="ảnh quét")
    assert verify_pdf(signed, [pki.root_cert]).valid


def test_unsigned_pdf_is_not_valid(original: bytes, pki: DemoPki) -> None:
    verdict = verify_pdf(original, [pki.root_cert])
    assert not verdict.valid and verdict.signatures == 0 and "no signature" in verdict.summary


def test_wrong_passphrase_never_shows_the_passphrase(pki: DemoPki) -> None:
    wrong = ("sai-" + pki.passphrase).encode()
    options = SigningOptions(pkcs12_path=pki.pkcs12, passphrase=wrong)
    assert pki.passphrase not in repr(options) and "sai-" not in repr(options)
    with pytest.raises(ConfigurationError) as caught:
        AgencySigner.from_options(options)
    err = caught.value
    for text in (str(err), repr(err), err.hint, repr(err.__cause__), repr(err.__context__)):
        assert pki.passphrase not in text and "sai-" not in text
    assert err.__cause__ is None and err.__suppress_context__


def test_missing_pkcs12_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read"):
        AgencySigner.from_options(SigningOptions(pkcs12_path=tmp_path / "none.p12", passphrase=b"x"))


def test_signer_repr_has_no_secret(signer: AgencySigner, pki: DemoPki) -> None:
    assert pki.passphrase not in repr(signer) and signer.signer_name == AGENCY


def test_signature_that_does_not_verify_is_refused(pki: DemoPki, original: bytes, tmp_path: Path) -> None:
    """A chain that does not lead to the configured trust roots must never come back as if fine."""
    other = create_demo_pki(tmp_path / "other", agency_name="Other", key_type="ec-p256")
    options = SigningOptions(pkcs12_path=pki.pkcs12, passphrase=pki.passphrase.encode(), trust_roots=(other.root_cert,))
    with pytest.raises(SignatureFailed, match="does not verify"):
        AgencySigner.from_options(options).sign(original, document_code=CODE, title="x")


def test_unknown_level_is_refused(pki: DemoPki) -> None:
    with pytest.raises(ConfigurationError, match="level"):
        AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), level="B-XL"))
    with pytest.raises(ConfigurationError, match="tsa_url"):
        AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), level="B-T"))


def test_pyhanko_version() -> None:
    assert re.fullmatch(r"\d+\.\d+.*", pyhanko_version())


# --------------------------------------------------------------------------------------------------
# PAdES levels with a real TSA, OCSP responder and CRL repository on 127.0.0.1 (certomancer)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalCa:
    root: Path
    pkcs12: Path
    passphrase: bytes
    tsa_url: str


def _certomancer_config(keys: Path, prefix: str) -> dict[str, Any]:
    """A root, its TSA and OCSP responder, and an agency certificate pointing to both services."""
    now = dt.datetime.now(dt.UTC)

    def at(days: int) -> str:
        return (now + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S+0000")

    def usage(*params: str) -> dict[str, Any]:
        return {"id": "key_usage", "critical": True, "smart-value": {"schema": "key-usage", "params": list(params)}}

    crl_dp = {
        "id": "crl_distribution_points",
        "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}},
    }
    aia = {
        "id": "authority_information_access",
        "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["root"]}},
    }
    validity = {"valid-from": at(-1), "valid-to": at(365)}
    return {
        "external-url-prefix": prefix,
        "keysets": {"ks": {"path-prefix": str(keys), "keys": {n: {"path": f"{n}.key.pem"} for n in _CA_KEYS}}},
        "pki-architectures": {
            "vn-test": {
                "keyset": "ks",
                "entity-defaults": {"country-name": "VN", "organization-name": "CA thử nghiệm"},
                "entities": {
                    "root": {"common-name": "Test Root CA"},
                    "tsa": {"common-name": "Test TSA"},
                    "ocsp": {"common-name": "Test OCSP"},
                    "agency": {"common-name": AGENCY, "organization-name": AGENCY},
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "issuer": "root",
                        "validity": {"valid-from": at(-2), "valid-to": at(3650)},
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            usage("digital_signature", "key_cert_sign", "crl_sign"),
                        ],
                    },
                    "ocsp": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            usage("digital_signature"),
                            {"id": "extended_key_usage", "critical": True, "value": ["ocsp_signing"]},
                            {"id": "ocsp_no_check"},
                        ],
                    },
                    "tsa": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            usage("digital_signature"),
                            {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                            crl_dp,
                        ],
                    },
                    "agency": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            usage("digital_signature", "non_repudiation"),
                            {"id": "extended_key_usage", "value": ["email_protection"]},
                            crl_dp,
                            aia,
                        ],
                    },
                },
                "services": {
                    "ocsp": {"root": {"for-issuer": "root", "responder-cert": "ocsp", "signing-key": "ocsp"}},
                    "crl-repo": {
                        "root": {"for-issuer": "root", "signing-key": "root", "simulated-update-schedule": "P7D"}
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


_CA_KEYS = ("root", "tsa", "ocsp", "agency")


def start_local_ca(directory: Path) -> tuple[LocalCa, Callable[[], None]]:
    """certomancer's Animator (TSA, OCSP, CRLs) served by a werkzeug thread on 127.0.0.1; keys made now.

    Returns the CA and a function that stops the server. Also used by bench/sign_bench.py.
    """
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, ServiceLabel
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for name in _CA_KEYS:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{name}.key.pem").write_bytes(pem)
    app: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: app["wsgi"](env, start), threaded=True)
    config = _certomancer_config(directory, f"http://127.0.0.1:{server.server_port}")
    arch = CertomancerConfig(config, key_search_dir=str(directory)).get_pki_arch(ArchLabel("vn-test"))
    app["wsgi"] = Animator(AnimatorArchStore({arch.arch_label: arch}), with_web_ui=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    passphrase = b"test-only-passphrase"
    (directory / "agency.p12").write_bytes(arch.package_pkcs12(CertLabel("agency"), password=passphrase))
    (directory / "root.crt").write_bytes(arch.get_cert(CertLabel("root")).dump())
    ca = LocalCa(
        root=directory / "root.crt",
        pkcs12=directory / "agency.p12",
        passphrase=passphrase,
        tsa_url=arch.service_registry.get_tsa_info(ServiceLabel("tsa")).url,
    )

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=10)

    return ca, stop


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCa]:
    ca, stop = start_local_ca(tmp_path_factory.mktemp("ca"))
    try:
        yield ca
    finally:
        stop()


@pytest.fixture(scope="module")
def signed_levels(local_ca: LocalCa, original: bytes) -> dict[str, bytes]:
    out = {}
    for level in ("B-T", "B-LT", "B-LTA"):
        options = SigningOptions(
            pkcs12_path=local_ca.pkcs12,
            passphrase=local_ca.passphrase,
            level=level,
            tsa_url=local_ca.tsa_url,
            trust_roots=(local_ca.root,),
        )
        signer = AgencySigner.from_options(options)
        signer.sign(original, document_code=CODE, title="x")  # sizes /Contents (timestamp token included)
        out[level] = signer.sign(original, document_code=CODE, title="x")  # in the size the first one reserved
    return out


@pytest.mark.parametrize("level", ["B-T", "B-LT", "B-LTA"])
def test_levels_verify_offline(level: str, signed_levels: dict[str, bytes], local_ca: LocalCa) -> None:
    verdict = verify_pdf(signed_levels[level], [local_ca.root])
    assert verdict.valid, verdict.summary
    assert verdict.level == level and verdict.signatures == 1
    assert verdict.signing_time is not None  # from the TSA's token


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_levels_carry_their_own_revocation_data(
    level: str, signed_levels: dict[str, bytes], local_ca: LocalCa
) -> None:
    """With revocation data required and fetching off, only what the DSS holds can satisfy the check."""
    data = signed_levels[level]
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data)))
    assert len(dss.ocsps) >= 1 and len(dss.crls) >= 1 and len(dss.certs) >= 2
    verdict = verify_pdf(data, [local_ca.root], revocation_mode="require")
    assert verdict.valid, verdict.summary


def test_b_t_without_embedded_revocation_data_fails_when_it_is_required(
    signed_levels: dict[str, bytes], local_ca: LocalCa
) -> None:
    assert not verify_pdf(signed_levels["B-T"], [local_ca.root], revocation_mode="require").valid


def test_b_lt_signature_is_valid_for_pdfsig(signed_levels: dict[str, bytes], local_ca: LocalCa, tmp_path: Path) -> None:
    """Only the signature itself: NSS's OCSP client rejects certomancer's responses (GET gets 404,
    the POST answer ends in "Unknown issue"), so pdfsig cannot judge trust for this test CA."""
    path = tmp_path / "blt.pdf"
    path.write_bytes(signed_levels["B-LT"])
    report = pdfsig_check(path, local_ca.root, tmp_path / "nss")
    sig = report.signatures[0]
    assert sig.valid and sig.signer_name == AGENCY and sig.signature_type == "ETSI.CAdES.detached", report.raw


def test_unreachable_tsa_or_ocsp_is_transient(original: bytes, tmp_path: Path) -> None:
    """A TSA or OCSP responder that does not answer must retry the document, never quarantine it."""
    ca, stop = start_local_ca(tmp_path)
    signers = {
        level: AgencySigner.from_options(
            SigningOptions(
                ca.pkcs12, ca.passphrase, level=level, tsa_url=ca.tsa_url, trust_roots=(ca.root,), tsa_timeout=2
            )
        )
        for level in ("B-T", "B-LT")
    }
    stop()
    for level, signer in signers.items():
        with pytest.raises(TimestampUnavailable) as caught:
            signer.sign(original, document_code=CODE, title="x")
        assert isinstance(caught.value, TransientError), level


def test_b_lta_document_timestamp_is_checked(signed_levels: dict[str, bytes], local_ca: LocalCa) -> None:
    """Bytes covered only by the document timestamp (the DSS update) are protected too."""
    data = signed_levels["B-LTA"]
    sigs = PdfFileReader(io.BytesIO(data)).embedded_signatures
    assert [s.sig_object_type for s in sigs] == ["/Sig", "/DocTimeStamp"]
    _, _, start, length = sigs[0].byte_range
    dss_obj = data.index(b" obj\n", start + length)  # first object of the DSS update
    tampered = data[:dss_obj] + b" obj " + data[dss_obj + 5 :]  # same syntax, different bytes
    assert len(tampered) == len(data) and tampered != data
    verdict = verify_pdf(tampered, [local_ca.root])
    assert not verdict.valid and not verdict.intact, verdict.summary


@pytest.mark.parametrize("how", HOW)
def test_anything_painted_over_the_page_after_signing_is_rejected(how: str, signed: bytes, pki: DemoPki,
                                                                  tmp_path: Path) -> None:
    """Archived documents have no form to fill: after the agency's signature only LTA updates are allowed."""
    tampered = painted_over(signed, how)
    path = tmp_path / "tampered.pdf"
    path.write_bytes(tampered)
    shown = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert FORGED_TEXT.decode() in shown  # the overlay really shows
    verdict = verify_pdf(tampered, [pki.root_cert])
    assert not verdict.valid, verdict.summary
    assert verdict.intact  # the signed bytes themselves are untouched: only what came after is refused
    assert "modified after signing" in verdict.summary


def test_long_term_updates_after_signing_are_still_accepted(signed_levels: dict[str, bytes],
                                                            local_ca: LocalCa) -> None:
    """DSS additions and document timestamps (B-LTA) are the only updates allowed after the signature."""
    data = signed_levels["B-LTA"]
    assert [s.sig_object_type for s in PdfFileReader(io.BytesIO(data)).embedded_signatures] == ["/Sig",
                                                                                              "/DocTimeStamp"]
    verdict = verify_pdf(data, [local_ca.root], revocation_mode="hard-fail")
    assert verdict.valid and verdict.level == "B-LTA", verdict.summary
    assert not verify_pdf(painted_over(data, "signature field"), [local_ca.root]).valid


# --------------------------------------------------------------------------------------------------
# Visible stamp (Decree 30/2020 Appendix I) and QR code (Circular 01/2023)
# --------------------------------------------------------------------------------------------------

QR = DocumentQr(
    dossier_code="000.00.00.H49-210617-0001",
    procedure_code="1.000110",
    holder_id="079123456789",
    document_name="Giấy chứng nhận đăng ký hộ kinh doanh",
    source_system="Hệ thống thông tin giải quyết TTHC tỉnh Tiền Giang",
    issued_at=dt.datetime(2021, 6, 17, 9, 30, tzinfo=dt.UTC),
    valid_until=dt.date(2026, 6, 17),
)


@pytest.fixture(scope="module")
def stamped(pki: DemoPki, original: bytes) -> dict[str, bytes]:
    signer = AgencySigner.from_options(
        SigningOptions(pkcs12_path=pki.pkcs12, passphrase=pki.passphrase.encode(), visible=True)
    )
    return {
        "stamp": signer.sign(original, document_code=CODE, title="x"),
        "qr": signer.sign(original, document_code=CODE, title="x", qr=QR),
    }


def _words(pdf_path: Path) -> list[tuple[str, float, float, float, float]]:
    """Words on page 1 with their boxes (xMin, yMin, xMax, yMax; y from the top), via pdftotext -bbox."""
    html = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-bbox", str(pdf_path), "-"], capture_output=True, text=True, check=True
    ).stdout
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    return [(w, float(a), float(b), float(c), float(d)) for a, b, c, d, w in re.findall(pattern, html)]


def test_stamp_leaves_no_font_subsetting_chatter_in_the_logs(pki: DemoPki, original: bytes,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Airflow's task logs run at INFO: fontTools' per-table lines filled them (and the demo's output)."""
    signer = AgencySigner.from_options(
        SigningOptions(pkcs12_path=pki.pkcs12, passphrase=pki.passphrase.encode(), visible=True)
    )
    with caplog.at_level(logging.INFO):
        signer.sign(original, document_code=CODE, title="x", qr=QR)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("fontTools")] == []


def test_stamp_text_position_and_spacing(stamped: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "stamp.pdf"
    path.write_bytes(stamped["stamp"])
    text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(path), "-"], capture_output=True, text=True).stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[:2] == ["SAO Y", AGENCY], text  # diacritics extracted exactly (ToUnicode right)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", lines[2]), text
    words = {w[0]: w for w in _words(path)}  # pdftotext keeps each stamp line as one "word"
    page_width = 1654 * 72 / 200
    _, x_min, y_min, x_max, y_max = words["SAO Y"]
    assert x_min > page_width / 2 and y_min < 60, words  # top right of page 1
    assert 10.5 < y_max - y_min < 11.7, words  # 10 pt, not shrunk to fit a box
    assert 28 < x_max - x_min < 31, words  # Times metrics: 29.7 pt; unscaled 2048-upem widths would double it
    assert words[AGENCY][3] <= page_width - 12  # nothing clipped: inside the 12-pt edge margin


def test_stamp_font_is_embedded_and_annotation_printable(stamped: dict[str, bytes]) -> None:
    with pikepdf.open(io.BytesIO(stamped["stamp"])) as pdf:
        widget = next(a for a in pdf.pages[0].Annots if a.Subtype == "/Widget")
        assert int(widget.F) & 4  # Print flag: PDF/A requires it
        fonts = [o for o in pdf.objects if isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/FontDescriptor"]
        assert fonts and all("/FontFile2" in f for f in fonts)
        assert any("LiberationSerif" in str(f.FontName) for f in fonts)


def test_stamp_renders_in_the_top_right_corner(stamped: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "stamp.pdf"
    path.write_bytes(stamped["stamp"])
    subprocess.run(["pdftoppm", "-r", "72", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")], check=True)
    page = Image.open(next(tmp_path.glob("p*.png"))).convert("L")
    w, _ = page.size
    top_right = page.crop((w // 2, 0, w, 120))
    top_left = page.crop((0, 0, w // 2, 120))
    assert top_right.getextrema()[0] < 100  # dark glyph pixels
    assert top_left.getextrema()[0] > 200  # nothing drawn there (254: resampling at the page edge)


def test_stamped_signature_verifies(stamped: dict[str, bytes], pki: DemoPki, tmp_path: Path, nss_dir: Path) -> None:
    for name, data in stamped.items():
        assert verify_pdf(data, [pki.root_cert]).valid
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(data)
        sig = pdfsig_check(path, pki.root_cert, nss_dir).signatures[0]
        assert sig.valid and sig.trusted, sig.raw


def test_qr_code_decodes_to_the_circular_01_2023_fields(stamped: dict[str, bytes], tmp_path: Path) -> None:
    import zxingcpp

    path = tmp_path / "qr.pdf"
    path.write_bytes(stamped["qr"])
    subprocess.run(["pdftoppm", "-r", "200", "-png", "-f", "1", "-l", "1", "-singlefile", str(path),
                    str(tmp_path / "q")], check=True)
    found = zxingcpp.read_barcodes(Image.open(tmp_path / "q.png"))
    assert [r.format for r in found] == [zxingcpp.BarcodeFormat.QRCode]
    value = found[0].text
    assert value == QR.payload(CODE)
    fields = json.loads(value)
    assert fields["ma_tai_lieu"] == CODE and fields["ma_ho_so"] == QR.dossier_code
    assert fields["ten_giay_to"] == QR.document_name and fields["thoi_gian_cap"] == "2021-06-17T16:30:00+07:00"
    assert fields["hieu_luc"] == "2026-06-17"


# --------------------------------------------------------------------------------------------------
# PKCS#11: the agency key generated inside a SoftHSM2 token, never leaving it
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    options: Pkcs11Options
    root: Path


@pytest.fixture(scope="module")
def softhsm_token(softhsm: SoftHsm, tmp_path_factory: pytest.TempPathFactory) -> Token:
    """An RSA key made inside the session's SoftHSM2 token, and a certificate issued for it now."""
    import pkcs11
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with softhsm.session() as session:
        public, _ = session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label="agency", id=b"\x01")
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[pkcs11.Attribute.MODULUS], "big"),
        )
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SoftHSM test root")])
        now = dt.datetime.now(dt.UTC)
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, AGENCY),
                x509.NameAttribute(NameOID.COMMON_NAME, AGENCY),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(numbers.public_key())
            .serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        store_certificate(session, cert, label="agency", key_id=b"\x01")
    root_path = tmp_path_factory.mktemp("softhsm-root") / "root.pem"
    root_path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    options = Pkcs11Options(
        module=softhsm.module, token_label=softhsm.token_label, key_label="agency", pin=softhsm.pin,
        other_certs=(root_path,),
    )
    return Token(options=options, root=root_path)


def test_pkcs11_token_signs_and_both_verifiers_agree(
    softhsm_token: Token, original: bytes, tmp_path: Path, nss_dir: Path
) -> None:
    options = SigningOptions(
        pkcs12_path=None, passphrase=None, pkcs11=softhsm_token.options, trust_roots=(softhsm_token.root,)
    )
    signer = AgencySigner.from_options(options)
    try:
        assert signer.signer_name == AGENCY
        signed = signer.sign(original, document_code=CODE, title="x")
    finally:
        signer.close()  # the process's login ends with it (the next test logs in again)
    assert signed.startswith(original)
    assert verify_pdf(signed, [softhsm_token.root]).valid
    path = tmp_path / "p11.pdf"
    path.write_bytes(signed)
    sig = pdfsig_check(path, softhsm_token.root, nss_dir).signatures[0]
    assert sig.valid and sig.trusted, sig.raw


def test_pkcs11_wrong_pin_never_shows_the_pin(softhsm_token: Token) -> None:
    wrong = dataclasses.replace(softhsm_token.options, pin="wrong-" + TOKEN_PIN)
    assert TOKEN_PIN not in repr(wrong) and TOKEN_PIN not in repr(softhsm_token.options)
    with pytest.raises(ConfigurationError) as caught:
        AgencySigner.from_options(SigningOptions(pkcs12_path=None, passphrase=None, pkcs11=wrong))
    assert TOKEN_PIN not in str(caught.value) and TOKEN_PIN not in caught.value.hint
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_options_from_settings(pki: DemoPki, monkeypatch: pytest.MonkeyPatch, original: bytes) -> None:
    from digitize.config import load_settings

    monkeypatch.setenv("DIGITIZE_SIGNING_PKCS12", str(pki.pkcs12))
    monkeypatch.setenv("DIGITIZE_SIGNING_PASSPHRASE", pki.passphrase)
    monkeypatch.setenv("DIGITIZE_TRUST_ROOTS", str(pki.root_cert))
    options = options_from_settings(load_settings(), visible=True, copy_form="TRÍCH SAO")
    assert options.trust_roots == (pki.root_cert,) and options.visible and pki.passphrase not in repr(options)
    signed = AgencySigner.from_options(options).sign(original, document_code=CODE, title="x")
    assert verify_pdf(signed, options.trust_roots).valid
    monkeypatch.delenv("DIGITIZE_SIGNING_PKCS12")
    with pytest.raises(ConfigurationError, match="No agency certificate"):
        options_from_settings(load_settings())


def test_stamp_stays_inside_the_crop_box(pki: DemoPki, original: bytes) -> None:
    with pikepdf.open(io.BytesIO(original)) as pdf:
        x1, y1 = float(pdf.pages[0].MediaBox[2]), float(pdf.pages[0].MediaBox[3])
        pdf.pages[0].CropBox = pikepdf.Array([30, 40, x1 - 50, y1 - 60])
        buf = io.BytesIO()
        pdf.save(buf)
    signer = AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), visible=True))
    signed = signer.sign(buf.getvalue(), document_code=CODE, title="x")
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        widget = next(a for a in pdf.pages[0].Annots if a.Subtype == "/Widget")
        left, _bottom, right, top = (float(v) for v in widget.Rect)
    assert right <= x1 - 50 - 12 and top <= y1 - 60 - 12 and left > (x1 - 80) / 2


def _stamp_font_program(pdf: bytes) -> bytes:
    """The embedded program of the stamp's font (the only subset font: the OCR layer's is not one)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        found = [o for o in doc.objects if isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/FontDescriptor"
                 and "+LiberationSerif" in str(o.FontName)]
        assert len(found) == 1
        return bytes(found[0].FontFile2.read_bytes())


def test_font_subsets_reused_in_a_process_still_hold_each_stamps_glyphs(
        pki: DemoPki, original: bytes, tmp_path: Path, nss_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A glyph set's subset is cut once per process; every document embeds the glyphs its own stamp shows."""
    from fontTools.ttLib import TTFont
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

    from digitize.signing import signer as signer_module
    from digitize.signing import stamp

    cuts: list[int] = []
    cut = GlyphAccumulator._extract_subset
    monkeypatch.setattr(GlyphAccumulator, "_extract_subset", lambda self, *a: cuts.append(1) or cut(self, *a))
    monkeypatch.setattr(stamp, "_SUBSETS", {})
    signed_at = "2026-03-14T18:00:26+07:00"  # one time for all three: the glyph sets depend on the texts only
    monkeypatch.setattr(signer_module, "iso_vn", lambda moment: signed_at)
    signers = {form: AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), visible=True,
                                                              copy_form=form)) for form in ("SAO Y", "TRÍCH SAO")}
    outputs = [(form, signers[form].sign(original, document_code=CODE, title="x"))
               for form in ("SAO Y", "TRÍCH SAO", "SAO Y")]
    source = TTFont(io.BytesIO(stamp.prepared_font(stamp.DEFAULT_STAMP_FONT)))
    gid = {ch: source.getGlyphID(name) for ch, name in ((chr(c), n) for c, n in source.getBestCmap().items())}
    for n, (form, data) in enumerate(outputs):
        font = TTFont(io.BytesIO(_stamp_font_program(data)))  # pyHanko's subsets keep the glyph ids
        drawn = {i for i, name in enumerate(font.getGlyphOrder()) if font["glyf"][name].numberOfContours}
        needed = {gid[ch] for ch in form + AGENCY + signed_at if not ch.isspace()}
        assert needed <= drawn, (form, sorted(needed - drawn))
        assert len(drawn) < 3 * len(needed)  # a subset (composite glyphs bring their parts), not the whole font
        path = tmp_path / f"{n}.pdf"
        path.write_bytes(data)
        text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert [line.strip() for line in text.splitlines() if line.strip()][:3] == [form, AGENCY, signed_at], text
        assert verify_pdf(data, [pki.root_cert]).valid
        sig = pdfsig_check(path, pki.root_cert, nss_dir).signatures[0]
        assert sig.valid and sig.trusted, sig.raw
    assert len(cuts) == 2  # the third stamp shows the first one's glyphs


def test_signature_size_is_estimated_once_per_signer(pki: DemoPki, original: bytes,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """pyHanko's dummy-signature estimate of /Contents is made for the first document; the next ones reserve
    the same size, and still verify."""
    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

    estimates: list[int] = []
    estimate = PdfSigningSession.estimate_signature_container_size

    async def spy(self: PdfSigningSession, *args: Any, **kwargs: Any) -> int:
        estimates.append(await estimate(self, *args, **kwargs))
        return estimates[-1]

    monkeypatch.setattr(PdfSigningSession, "estimate_signature_container_size", spy)
    signer = AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode()))
    outputs = [signer.sign(original, document_code=f"{CODE[:-1]}{n}", title="x") for n in range(3)]
    assert len(estimates) == 1
    for data in outputs:
        byte_range = PdfFileReader(io.BytesIO(data)).embedded_signatures[0].sig_object["/ByteRange"]
        assert int(byte_range[2]) - int(byte_range[1]) - 2 == estimates[0]  # hex digits between < and >
        assert verify_pdf(data, [pki.root_cert]).valid
    signer._reserved = 64  # a signature outgrowing what was reserved (a TSA's tokens grew): estimated again
    grown = signer.sign(original, document_code=f"{CODE[:-1]}9", title="x")
    assert len(estimates) == 2 and verify_pdf(grown, [pki.root_cert]).valid
