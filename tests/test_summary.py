"""Run summaries name what they counted: duplicates with the code they duplicate, unfinished documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from robustness_support import NOOP_OCR, make_context, png, register, row, write_batch


@pytest.fixture()
def noop_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)


def test_duplicates_are_named_with_their_existing_code(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                       noop_ocr: None) -> None:
    from digitize.pipeline import process_documents, summarize

    ctx = make_context(tmp_path, s3_server, demo_pki, "summary-duplicates")
    scan = png(("Giấy xác nhận", "Số 7/2026"))
    first = write_batch(tmp_path / "inbox", "batch-a", {"a.png": scan}, [row("a.png")])
    done = process_documents(ctx, register(ctx, first).to_process, first)
    code = done[0].code
    assert done[0].status == "ARCHIVED" and code

    again = write_batch(tmp_path / "inbox", "batch-b", {"copy.png": scan, "new.png": png(("Khác",))},
                        [row("copy.png"), row("new.png")])
    registered = register(ctx, again)
    outcomes = process_documents(ctx, registered.to_process, again)
    summary = summarize(outcomes, duplicates=len(registered.duplicates), rejected_rows=0, seconds=1.0,
                        duplicate_items=[d.named(registered.batch_id) for d in registered.duplicates])
    text = "\n".join(summary.lines())
    assert "duplicates: 1" in text and f"batch-b/copy.png = {code}" in text, text
    assert summary.as_dict()["duplicate_items"] == [["batch-b/copy.png", code]]
