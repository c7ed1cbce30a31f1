"""Each original is read once: the bytes hashed at processing time are the bytes decoded, signed and archived.

Issue found in an attack round: someone who can write to the inbox swapped a scan's bytes between the
pipeline's hash check and its OCR read, and put them back afterwards. The signed PDF then showed the
forged amount while the archived original held the true one, and ``verify`` said VERIFIED.
"""

from __future__ import annotations

import builtins
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from robustness_support import make_context, png, record, register, row, write_batch

TRUE_TEXT, FORGED_TEXT = "SO TIEN 1000000", "SO TIEN 9999999"


@pytest.fixture()
def swapping_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Swap a file's bytes as soon as it is opened for reading a second time (the test puts them back).

    That is the window between two reads an attacker needs; a pipeline that reads the original once never
    opens it a second time, so the swap never happens.
    """
    state: dict[str, Any] = {"path": None, "forged": b"", "true": b"", "opens": 0}
    real_open = builtins.open

    def spying_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        target = state["path"]
        reading = isinstance(file, str | os.PathLike) and "r" in mode and "+" not in mode
        if target is not None and reading and Path(os.fspath(file)).resolve() == target:
            state["opens"] += 1
            if state["opens"] == 2:
                target.write_bytes(state["forged"])
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    monkeypatch.setattr(io, "open", spying_open)
    yield state


def test_a_scan_swapped_between_reads_is_never_signed(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                      swapping_writer: dict[str, Any]) -> None:
    from digitize.pipeline.stages import process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, "read-once")
    true_bytes, forged_bytes = png((TRUE_TEXT,), dpi=300), png((FORGED_TEXT,), dpi=300)
    batch = write_batch(tmp_path / "inbox", "batch-swap", {"scan.png": true_bytes}, [row("scan.png")])
    doc_id = register(ctx, batch).to_process[0]
    swapping_writer.update(path=(batch / "scan.png").resolve(), forged=forged_bytes, true=true_bytes)

    outcome = process_document(ctx, doc_id, batch)
    swapped, swapping_writer["path"] = swapping_writer["opens"] >= 2, None
    (batch / "scan.png").write_bytes(true_bytes)  # the attacker puts the true scan back

    doc = ctx.catalog.get_document(doc_id)
    assert outcome.status == "ARCHIVED", (doc.reason, doc.message)
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(ctx.archive.get(doc.pdf_key))
    text = subprocess.run(["pdftotext", str(signed), "-"], check=True, capture_output=True, text=True).stdout
    assert "9999999" not in text and "1000000" in text, text
    assert ctx.archive.get(doc.original_keys[0]) == true_bytes
    assert not swapped, f"the original was opened {swapping_writer['opens']} times"
    record("bad input", "scan swapped in the inbox between two reads (read-once check)", "ARCHIVED",
           note="the original is read once into scratch; hash, OCR, signature and archive use those bytes")
