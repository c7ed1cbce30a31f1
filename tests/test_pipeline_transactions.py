"""A processed document's catalog writes: a handful of write transactions, every event there and in order.

Each write transaction on SQLite is a turn in the writer queue, ``BEGIN IMMEDIATE`` and an fsync, and
workers take turns: a document's events are written with the state change they describe (the code, the
archiving, the index) or with each other, not one transaction each. Counted here with an SQLAlchemy
``commit`` listener (writers begin IMMEDIATE, readers DEFERRED), so a change that goes back to one
transaction per event fails. Real pyHanko, real moto S3 over HTTP, a real SQLite catalog (WAL,
synchronous=FULL); the no-op OCR engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from robustness_support import NOOP_OCR, make_context, png, register, row, write_batch

from digitize.catalog import Catalog
from digitize.errors import CatalogUnavailable

WRITES_PER_DOCUMENT = 7
"""claim; OCR event; code + its event; signature + its check; replication event; archived + its event; index +
its event."""

EVENTS = ["ingestion", "ocr", "identifier_assignment", "signature", "signature_validation", "replication",
          "ingestion_complete", "indexing"]


@pytest.fixture
def noop_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)


@contextmanager
def write_transactions() -> Iterator[list[str]]:
    """The write transactions committed in the block, each named by what it wrote."""
    made: list[str] = []

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        if words[0] in ("INSERT", "UPDATE", "DELETE"):
            conn.info.setdefault("writes", []).append(" ".join(words[:3]))

    def count(conn: Any) -> None:
        writes = conn.info.pop("writes", [])
        if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            made.append(" + ".join(writes) or "nothing written")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
    sa.event.listen(sa.engine.Engine, "commit", count)
    try:
        yield made
    finally:
        sa.event.remove(sa.engine.Engine, "commit", count)
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)


def _batch(inbox: Path, count: int) -> Path:
    files = {f"giay-{i}.png": png(("GIẤY XÁC NHẬN", f"Số {i}/2024")) for i in range(count)}
    return write_batch(inbox, "batch-tx", files, [row(n, title=f"Giấy xác nhận {n}") for n in files])


def test_a_processed_document_costs_a_handful_of_write_transactions_and_keeps_every_event(
        tmp_path: Path, s3_server: str, demo_pki: Any, noop_ocr: None) -> None:
    from digitize.pipeline.stages import process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, "tx-count")
    batch = _batch(tmp_path / "inbox", 2)
    with write_transactions() as registering:
        ids = register(ctx, batch).to_process
    assert len(registering) == len(ids) == 2, registering  # each document with its ingestion event
    for doc_id in ids:
        with write_transactions() as made:
            outcome = process_document(ctx, doc_id, batch)
        assert outcome.status == "ARCHIVED", (outcome.reason, ctx.catalog.get_document(doc_id).message)
        assert len(made) <= WRITES_PER_DOCUMENT, made
        events = ctx.catalog.events(doc_id)
        assert [e.event_type for e in events] == EVENTS
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert all(e.created_at.utcoffset() is not None and e.created_at.utcoffset().total_seconds() == 0
                   for e in events)
        assert [e.created_at for e in events] == sorted(e.created_at for e in events)
        assert {e.batch_id for e in events} == {"batch-tx"}


def test_archiving_and_its_event_roll_back_together_then_the_retry_archives_once(
        tmp_path: Path, s3_server: str, demo_pki: Any, noop_ocr: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import PipelineContext, process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, "tx-rollback")
    batch = _batch(tmp_path / "inbox", 1)
    (doc_id,) = register(ctx, batch).to_process
    add_event = Catalog.add_event

    def lost_after_the_event(self: Catalog, document_id: int | None, event_type: str, *args: Any,
                             **kwargs: Any) -> None:
        add_event(self, document_id, event_type, *args, **kwargs)
        if event_type == "ingestion_complete":  # written, then the database goes away before the commit
            raise CatalogUnavailable("injected: connection lost")

    monkeypatch.setattr(Catalog, "add_event", lost_after_the_event)
    with pytest.raises(CatalogUnavailable, match="injected"):
        process_document(ctx, doc_id, batch)
    doc = ctx.catalog.get_document(doc_id)
    assert (doc.status, doc.pdf_key, doc.archived_at) == ("RECEIVED", None, None)  # the archiving went too
    assert "ingestion_complete" not in [e.event_type for e in ctx.catalog.events(doc_id)]

    monkeypatch.setattr(Catalog, "add_event", add_event)
    outcome = process_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id, batch)  # the retry
    assert (outcome.status, outcome.code) == ("ARCHIVED", doc.code)
    types = [e.event_type for e in ctx.catalog.events(doc_id)]
    assert types.count("ingestion_complete") == 1 and types[-2:] == ["ingestion_complete", "indexing"]
    assert "reused the signed PDF" in [e for e in ctx.catalog.events(doc_id) if e.event_type == "signature"][-1].detail
