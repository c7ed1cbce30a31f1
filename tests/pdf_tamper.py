"""Tampering with signed PDFs the way an attacker would: incremental updates that paint over page 1,
and signatures hidden from the ``/AcroForm``. Shared by the signing, verification and intake tests."""

from __future__ import annotations

import io

import pikepdf
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields

FORGED_TEXT = b"SO TIEN 9999999"
HOW = ("signature field", "annotation", "widget")
"""The kinds of post-signature overlay :func:`painted_over` makes."""


def _appearance(writer: IncrementalPdfFileWriter, width: float, height: float) -> generic.IndirectObject:
    """A form XObject that paints the whole box white and writes :data:`FORGED_TEXT` over it."""
    font = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Font"),
        generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
        generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
    })
    content = (b"1 1 1 rg 0 0 %d %d re f 0 0 0 rg BT /F1 48 Tf 72 %d Td (" % (width, height, height // 2)
               + FORGED_TEXT + b") Tj ET")
    stream = generic.StreamObject({
        generic.NameObject("/Type"): generic.NameObject("/XObject"),
        generic.NameObject("/Subtype"): generic.NameObject("/Form"),
        generic.NameObject("/BBox"): generic.ArrayObject([generic.FloatObject(v) for v in (0, 0, width, height)]),
        generic.NameObject("/Resources"): generic.DictionaryObject({
            generic.NameObject("/Font"): generic.DictionaryObject({generic.NameObject("/F1"): font})}),
    }, stream_data=content)
    return writer.add_object(stream)


def painted_over(pdf: bytes, how: str) -> bytes:
    """``pdf`` plus one incremental update that paints over page 1 (the signed bytes stay intact).

    ``how``: ``"signature field"`` (a new empty signature field with an appearance: pyHanko rates it
    FORM_FILLING), ``"annotation"`` (a square annotation with an appearance: ANNOTATIONS), ``"widget"``
    (a new text form field with an appearance).
    """
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    box = [float(v) for v in page_ref.get_object()["/MediaBox"]]
    width, height = box[2] - box[0], box[3] - box[1]
    ap = _appearance(writer, width, height)
    rect = generic.ArrayObject([generic.FloatObject(v) for v in box])
    if how == "signature field":
        fields.append_signature_field(writer, fields.SigFieldSpec("Overlay", on_page=0,
                                                                  box=(box[0], box[1], box[2], box[3])))
        for item in page_ref.get_object()["/Annots"]:
            annot = item.get_object()
            if annot.get("/T") == "Overlay":
                annot[generic.NameObject("/AP")] = generic.DictionaryObject({generic.NameObject("/N"): ap})
                writer.update_container(annot)
    elif how in ("annotation", "widget"):
        annot = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Rect"): rect,
            generic.NameObject("/F"): generic.NumberObject(4),
            generic.NameObject("/P"): page_ref,
            generic.NameObject("/AP"): generic.DictionaryObject({generic.NameObject("/N"): ap}),
        })
        if how == "annotation":
            annot[generic.NameObject("/Subtype")] = generic.NameObject("/Square")
        else:
            annot[generic.NameObject("/Subtype")] = generic.NameObject("/Widget")
            annot[generic.NameObject("/FT")] = generic.NameObject("/Tx")
            annot[generic.NameObject("/T")] = generic.TextStringObject("Amount")
            annot[generic.NameObject("/V")] = generic.TextStringObject(FORGED_TEXT.decode())
        annot_ref = writer.add_object(annot)
        writer.register_annotation(page_ref, annot_ref)
        if how == "widget":
            form = writer.root["/AcroForm"]
            form["/Fields"].append(annot_ref)
            writer.update_container(form["/Fields"])
    else:
        raise ValueError(how)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def without_acroform(pdf: bytes) -> bytes:
    """``pdf`` rewritten by pikepdf without its ``/AcroForm`` (its signature dictionaries stay in the file)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        del doc.Root["/AcroForm"]
        out = io.BytesIO()
        doc.save(out)
    return out.getvalue()
