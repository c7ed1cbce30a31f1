"""Signing with real pyHanko, checked by pyHanko's validator and independently by poppler's pdfsig."""

from __future__ import annotations

import io
import re
from pathlib import Path

import img2pdf
import pikepdf
import pytest
from pdfsig import pdfsig_check
from PIL import Image, ImageDraw

from digitize.errors import ConfigurationError, SignatureFailed
from digitize.pki import DemoPki, create_demo_pki
from digitize.signing import AgencySigner, SigningOptions, pyhanko_version, verify_pdf

AGENCY = "Ủy ban nhân dân tỉnh Tiền Giang"
CODE = "000.00.00.H49.2021.KQ.000123"


def _page_image() -> Image.Image:
    """An A6-ish page at 200 dpi with a few lines of 'text' (enough image data to flip bytes in)."""
    img = Image.new("RGB", (830, 1170), "white")
    draw = ImageDraw.Draw(img)
    for y in range(100, 1100, 40):
        draw.line((80, y, 750, y), fill=(30, 30, 30), width=3)
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
    from pyhanko.pdf_utils.reader import PdfFileReader

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
