"""``Catalog.transaction()`` on real SQLite and real PostgreSQL: catalog calls joined into one write transaction.

What the pipeline relies on when it writes a state change with the events that describe it: one commit
for all of them; all or nothing when anything in the block fails, the event included; a call that fails
inside the block, and that its caller catches, undoes only itself and leaves the transaction usable
(PostgreSQL refuses every later statement of a transaction that hit an error); and nobody else, another
thread included, sees any of it before the commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_catalog import SAMPLES, archived_info, fresh_database_url, spec

from digitize.catalog import Catalog
from digitize.codes.formats import DEFAULT_CODE_TEMPLATE, parse_document_code
from digitize.errors import CatalogConflict

YEAR = 2031


@pytest.fixture(params=["sqlite", "postgresql"])
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(fresh_database_url(request.param, tmp_path))
    catalog.upgrade()
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []
    yield catalog
    catalog.close()


@contextmanager
def commits() -> Iterator[list[object]]:
    """Every COMMIT any engine makes in the block (a savepoint released inside a transaction is not one)."""
    made: list[object] = []

    def count(conn: object) -> None:
        made.append(conn)

    sa.event.listen(sa.engine.Engine, "commit", count)
    try:
        yield made
    finally:
        sa.event.remove(sa.engine.Engine, "commit", count)


def _seq(code: str) -> int:
    return parse_document_code(code, DEFAULT_CODE_TEMPLATE).seq


def test_a_state_change_and_its_events_are_one_commit_and_read_back_inside(cat: Catalog) -> None:
    doc = cat.register_document(spec("one"))[0]
    with commits() as made, cat.transaction():
        code = cat.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
        cat.add_event(doc.id, "identifier_assignment", "success", detail=f"code {code}")
        assert cat.get_document(doc.id).code == code  # a read in the block goes through its transaction
        cat.add_event(doc.id, "note", "success", detail="second")
    assert len(made) == 1
    assert cat.get_document(doc.id).code == code
    events = cat.events(doc.id)
    assert [(e.event_type, e.detail) for e in events] == [("identifier_assignment", f"code {code}"),
                                                          ("note", "second")]
    assert all(e.created_at.utcoffset() is not None and e.created_at.utcoffset().total_seconds() == 0
               for e in events)
    assert events[0].created_at <= events[1].created_at


def test_a_failure_in_the_block_undoes_the_state_change_and_its_events(cat: Catalog) -> None:
    doc = cat.register_document(spec("undone"))[0]
    with pytest.raises(RuntimeError, match="injected"), cat.transaction():
        cat.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
        cat.add_event(doc.id, "identifier_assignment", "success")
        raise RuntimeError("injected")
    assert cat.get_document(doc.id).code is None and cat.events(doc.id) == []
    assert _seq(cat.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)) == 1  # nothing burned

    with pytest.raises(CatalogConflict), cat.transaction():  # the event fails: the archiving goes with it
        cat.mark_archived(doc.id, archived_info())
        cat.add_event(doc.id, "ingestion_complete", "success")
        cat.add_event(doc.id + 1000, "ingestion_complete", "success")  # no such document
    after = cat.get_document(doc.id)
    assert (after.status, after.pdf_key, cat.events(doc.id)) == ("RECEIVED", None, [])


def test_a_failed_call_inside_undoes_only_itself_and_the_transaction_goes_on(cat: Catalog) -> None:
    doc = cat.register_document(spec("kept"))[0]
    cat.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
    cat.mark_archived(doc.id, archived_info())
    archived = cat.get_document(doc.id)
    with commits() as made, cat.transaction():
        cat.add_event(doc.id, "before", "success")
        with pytest.raises(CatalogConflict):  # an IntegrityError inside (same fingerprint and code), caught
            cat.restore_document(replace(archived, title="again"))
        with pytest.raises(RuntimeError), cat.transaction():  # a nested block that fails
            cat.add_event(doc.id, "undone", "success")
            raise RuntimeError("injected")
        again, created = cat.register_document(spec("kept"))  # read inside the same transaction
        fresh, made_new = cat.register_document(spec("new"))
        cat.add_event(fresh.id, "ingestion", "success")
        cat.add_event(doc.id, "after", "success")
    assert len(made) == 1
    assert (again.id, created, made_new) == (doc.id, False, True)
    assert [e.event_type for e in cat.events(doc.id)] == ["before", "after"]
    assert [e.event_type for e in cat.events(fresh.id)] == ["ingestion"]
    assert [d.id for d in cat.documents()] == [doc.id, fresh.id]


def test_another_thread_does_not_join_and_sees_nothing_before_the_commit(cat: Catalog) -> None:
    doc = cat.register_document(spec("seen"))[0]
    seen: list[object] = []

    def look() -> None:
        seen.append((cat.get_document(doc.id).code, len(cat.events(doc.id))))

    with cat.transaction():
        code = cat.allocate_code(doc.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
        cat.add_event(doc.id, "identifier_assignment", "success")
        reader = threading.Thread(target=look)
        reader.start()
        reader.join(timeout=30)
    look()
    assert seen == [(None, 0), (code, 1)]
