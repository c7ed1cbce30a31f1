"""What signing costs per document: PAdES levels, visible stamp, QR code, cached vs stock key handling.

Run: ``.venv/bin/python -m bench.sign_bench [--repeat N]``; prints a Markdown table (copied into
bench/results/signing.md). Everything is local: a demo PKI made now, and certomancer's TSA/OCSP/CRL
served on 127.0.0.1 (the same helper the tests use) for B-T and up. Rows:

- ``stock pyHanko``: ``SimpleSigner.load_pkcs12`` once, then ``PdfSigner.sign_pdf`` per document, the
  way pyHanko's documentation does it (the key is re-parsed at every signature, twice per document);
- ``cached key``: the same call with :class:`digitize.signing.signer._CachedKeySigner` (parsed once, no real
  signature for the size estimate);
- ``AgencySigner.sign``: what the pipeline calls: cached key, then the result is verified before it
  is returned (so it includes one ``verify_pdf``);
- ``verify_pdf``: offline verification alone, with the reused validation context and with a fresh one.

``--a4`` instead times :meth:`AgencySigner.sign_checked` as the pipeline calls it, on the OCR path's PDF/A of three A4
300 dpi full-text pages (colour JPEG, gray PNG, G4 TIFF, as ``bench/pipeline.py`` writes them), visible stamp and QR
code, RSA-3072 and EC P-256 keys; each cut of issue #19 against its alternative in the same run: pyHanko's own
hex-string reader against :mod:`digitize.signing.pdfhex`, and page 1 decoded again against the OCR path's samples.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from digitize.signing import AgencySigner, SigningOptions, create_demo_pki, pyhanko_version, stamp, verify_pdf
from digitize.signing import verify as verification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_signing import QR, make_pdfa_ish, start_local_ca

AGENCY = "Ủy ban nhân dân tỉnh Tiền Giang"
CODE = "000.00.00.H49.2021.KQ.000123"


class Measure(NamedTuple):
    """Median milliseconds per call: CPU time of this process (robust on a shared machine) and wall time."""

    cpu: float
    wall: float


def _median_ms(action: Callable[[], object], repeat: int) -> Measure:
    action()  # warm-up: imports, font preparation, TSA dummy response
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        action()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return Measure(statistics.median(cpu) * 1000, statistics.median(wall) * 1000)


def _pyhanko_sign(signer: signers.Signer, pdf: bytes) -> bytes:
    meta = signers.PdfSignatureMetadata(
        field_name="AgencySignature", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    out = io.BytesIO()
    signers.PdfSigner(meta, signer=signer).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
    return out.getvalue()


def _scan_like(pages: int, out: Path) -> bytes:
    """A document the size of real scans: distinct A4 pages of noisy grey JPEG (what hashing must read)."""
    import img2pdf
    from PIL import Image

    images = []
    for _ in range(pages):
        noise = Image.frombytes("L", (414, 585), os.urandom(414 * 585)).resize((1654, 2339))
        buf = io.BytesIO()
        noise.save(buf, format="JPEG", quality=50)
        images.append(buf.getvalue())
    out.write_bytes(img2pdf.convert(images, layout_fun=img2pdf.get_fixed_dpi_layout_fun((200, 200))))
    return out.read_bytes()


def _full_font_rescaled(path: Path) -> bytes:
    """The whole stamp font at 1000 units per em, not subset: what pyHanko would parse per document."""
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    font = TTFont(str(path))
    scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--a4", action="store_true", help="only sign_checked on A4 pages, with and without the cuts")
    args = parser.parse_args()
    n = args.repeat
    if args.a4:
        a4_table(n)
        return
    rows: list[tuple[str, str, Measure, str]] = []  # (what, document, ms, comparison)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pki = create_demo_pki(tmp / "pki", agency_name=AGENCY)
        one = make_pdfa_ish(tmp / "one.pdf")
        twenty = _scan_like(20, tmp / "twenty.pdf")
        docs = {
            f"1 page (A4 200 dpi lines, {len(one) / 1024:.0f} KiB)": one,
            f"20 scan-like JPEG pages ({len(twenty) / 2**20:.1f} MiB)": twenty,
        }
        base = SigningOptions(pkcs12_path=pki.pkcs12, passphrase=pki.passphrase.encode())
        agency = AgencySigner.from_options(base)
        stock = signers.SimpleSigner.load_pkcs12(str(pki.pkcs12), passphrase=pki.passphrase.encode())
        cached = agency._signer

        for label, pdf in docs.items():
            stock_ms = _median_ms(partial(_pyhanko_sign, stock, pdf), n)
            cached_ms = _median_ms(partial(_pyhanko_sign, cached, pdf), n)
            full_ms = _median_ms(partial(agency.sign, pdf, document_code=CODE, title="x"), n)
            rows += [
                ("B-B invisible, stock pyHanko SimpleSigner", label, stock_ms, "1.00×"),
                ("B-B invisible, cached key", label, cached_ms, f"{cached_ms.cpu / stock_ms.cpu:.2f}× stock"),
                (
                    "B-B invisible, AgencySigner.sign (incl. verify)",
                    label,
                    full_ms,
                    f"{full_ms.cpu / stock_ms.cpu:.2f}× stock",
                ),
            ]
        one_label = next(iter(docs))

        c0, w0 = time.process_time(), time.perf_counter()
        visible = AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), visible=True))
        first_ms = Measure((time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000)
        vis_ms = _median_ms(lambda: visible.sign(one, document_code=CODE, title="x"), n)
        qr_ms = _median_ms(lambda: visible.sign(one, document_code=CODE, title="x", qr=QR), n)
        rows += [
            ("visible stamp: one-off font preparation (subset + rescale)", "-", first_ms, ""),
            (
                "B-B visible stamp, AgencySigner.sign",
                one_label,
                vis_ms,
                f"{vis_ms.cpu / full_ms_one(rows):.2f}× invisible",
            ),
            (
                "B-B visible stamp + QR, AgencySigner.sign",
                one_label,
                qr_ms,
                f"{qr_ms.cpu / full_ms_one(rows):.2f}× invisible",
            ),
        ]

        full_font = _full_font_rescaled(stamp.DEFAULT_STAMP_FONT)
        prepared = stamp.prepared_font
        stamp.prepared_font = lambda path: full_font  # type: ignore[assignment]  # pyHanko's way: whole font
        try:
            full_font_ms = _median_ms(lambda: visible.sign(one, document_code=CODE, title="x"), n)
        finally:
            stamp.prepared_font = prepared
        rows.append(
            (
                "B-B visible stamp, whole font parsed and subset per document",
                one_label,
                full_font_ms,
                f"{full_font_ms.cpu / vis_ms.cpu:.2f}× pre-subset font",
            )
        )

        signed = agency.sign(one, document_code=CODE, title="x")
        reused = _median_ms(lambda: verify_pdf(signed, [pki.root_cert]), n)

        def fresh() -> None:
            verification._VC_CACHE.clear()
            verify_pdf(signed, [pki.root_cert])

        fresh_ms = _median_ms(fresh, n)
        rows += [
            ("verify_pdf B-B, reused ValidationContext", one_label, reused, f"{reused.cpu / fresh_ms.cpu:.2f}× fresh"),
            ("verify_pdf B-B, fresh ValidationContext", one_label, fresh_ms, "1.00×"),
        ]

        (tmp / "ca").mkdir()
        ca, stop = start_local_ca(tmp / "ca")
        try:
            level_ms: dict[str, Measure] = {}
            for level in ("B-B", "B-T", "B-LT", "B-LTA"):
                opts = SigningOptions(ca.pkcs12, ca.passphrase, level=level, tsa_url=ca.tsa_url, trust_roots=(ca.root,))
                level_signer = AgencySigner.from_options(opts)
                ms = level_ms[level] = _median_ms(partial(level_signer.sign, one, document_code=CODE, title="x"), n)
                rows.append(
                    (
                        f"{level} invisible, ECDSA key, AgencySigner.sign",
                        one_label,
                        ms,
                        f"{ms.cpu / level_ms['B-B'].cpu:.2f}× B-B",
                    )
                )
                if level == "B-LT":

                    def fresh_context(signer: AgencySigner = level_signer) -> None:
                        signer._signing_vc = None  # fetch OCSP/CRL again, as a context per document would
                        signer.sign(one, document_code=CODE, title="x")

                    fresh_lt = _median_ms(fresh_context, n)
                    rows.append(
                        (
                            "B-LT invisible, ECDSA key, new signing ValidationContext per document",
                            one_label,
                            fresh_lt,
                            f"{fresh_lt.cpu / ms.cpu:.2f}× reused",
                        )
                    )
                out = level_signer.sign(one, document_code=CODE, title="x")
                mode = "hard-fail" if "LT" in level else "soft-fail"
                vms = _median_ms(partial(verify_pdf, out, [ca.root], revocation_mode=mode), n)
                rows.append((f"verify_pdf {level} (offline, embedded data only)", one_label, vms, ""))
        finally:
            stop()

    load = os.getloadavg()
    print(
        f"Machine: {platform.machine()} {_cpu()} × {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyHanko {pyhanko_version()}, load average {load[0]:.1f}/{load[1]:.1f}; "
        f"median of {n} after one warm-up; RSA-3072 demo key unless the row says ECDSA (P-256 key of the "
        f"certomancer CA whose TSA/OCSP/CRL run on 127.0.0.1).\n"
    )
    print("| what | document | CPU ms | wall ms | comparison (CPU) |\n|---|---|---|---|---|")
    for what, doc, ms, comp in rows:
        print(f"| {what} | {doc} | {ms.cpu:.0f} | {ms.wall:.0f} | {comp} |")


def a4_table(repeat: int) -> None:
    """Median CPU ms of ``sign_checked`` per key and A4 page kind: as the pipeline signs, with pyHanko's hex reader, and
    with page 1 decoded again instead of the OCR path's samples."""
    from pyhanko.pdf_utils import generic

    from bench.pipeline import a4_page, write_a4
    from digitize.ocr import OcrOptions, make_searchable_pdf
    from digitize.signing import pdfhex

    print("| key | A4 300 dpi page | pipeline's way, CPU ms | pyHanko's hex reader | page 1 decoded again |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pages = []
        for index, kind in enumerate(("colour JPEG", "gray PNG", "bilevel G4 TIFF")):
            scan = write_a4(a4_page(index), tmp / f"a4-{index}", index)
            made = make_searchable_pdf([scan], tmp / f"a4-{index}.pdf", OcrOptions(jobs=1, work_dir=tmp))
            pages.append((kind, (tmp / f"a4-{index}.pdf").read_bytes(), made.page_one_gray))
        for key_type, key in (("rsa3072", "RSA-3072"), ("ec-p256", "EC P-256")):
            pki = create_demo_pki(tmp / key_type, agency_name=AGENCY, key_type=key_type)
            signer = AgencySigner.from_options(SigningOptions(pki.pkcs12, pki.passphrase.encode(), visible=True,
                                                              trust_roots=(pki.root_cert,)))
            for kind, pdf, kept in pages:
                sign = partial(signer.sign_checked, pdf, document_code=CODE, title="x", qr=QR, known_gray=kept)
                ours = _median_ms(sign, repeat)
                generic.read_hex_string_from_stream = pdfhex._PYHANKO_READER
                try:
                    theirs = _median_ms(sign, repeat)
                finally:
                    pdfhex.install()
                decoded = _median_ms(partial(sign, known_gray=None), repeat)
                kept_note = "" if kept else " (none kept: decoded either way)"
                print(f"| {key} | {kind} | {ours.cpu:.0f} | {theirs.cpu:.0f} | {decoded.cpu:.0f}{kept_note} |",
                      flush=True)


def full_ms_one(rows: list[tuple[str, str, Measure, str]]) -> float:
    """The invisible B-B AgencySigner.sign time of the one-page document (the reference for ratios)."""
    return next(
        ms.cpu for what, doc, ms, _ in rows if what.endswith("AgencySigner.sign (incl. verify)") and "1 page" in doc
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
