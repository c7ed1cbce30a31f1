"""The catalog: the document store and its query methods, composed with the other parts of :class:`Catalog`.

Documents move RECEIVED → ARCHIVED (or QUARANTINED and back) under a processing lease; corrections are new
versions of an archived code; events record what happened to documents and batches, PREMIS-style.

Document codes are allocated in the same transaction that writes them onto the document, from a
per-(agency, kind, year) counter row that the transaction locks: codes are unique, a re-run gets the same
code back, and a crash before commit burns nothing, so the sequence has no gaps.

:class:`Catalog` is composed of mixins, one per group of tables, each a subclass of
:class:`~digitize.catalog.engine.CatalogBase` (the engine and the transactions): ``imports`` (agencies and
register), ``frames`` (coverage's frames), ``fulltext`` (the search index), ``review`` (what the
quarantine page lists and its retries), ``sheets`` (cover sheets). Requests that do not fit the
catalog's state raise :class:`~digitize.errors.CatalogConflict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.frames import FrameQueries
from digitize.catalog.fulltext import FulltextQueries
from digitize.catalog.imports import ReferenceData
from digitize.catalog.matching import MatchQueries
from digitize.catalog.records import ArchivedInfo, DocumentRecord, DocumentSpec, Event, FileSpec, record_from_row
from digitize.catalog.relinks import RelinkRecords
from digitize.catalog.reuse import ReuseRecords
from digitize.catalog.reuse_import import ReuseImports
from digitize.catalog.review import ReviewQueries
from digitize.catalog.schema import OUTCOMES, STATUSES, agencies, code_sequences, document_files, documents, events
from digitize.catalog.sheets import SheetRecords
from digitize.catalog.snapshot import Snapshots
from digitize.codes import format_document_code, validate_template
from digitize.errors import AgencyUnknown, CatalogConflict, CatalogUnavailable, CodeError

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for its turn before :class:`~digitize.errors.CatalogUnavailable`."""


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog(MatchQueries, RelinkRecords, SheetRecords, ReviewQueries, ReuseRecords, ReuseImports, Snapshots,
              FulltextQueries, FrameQueries, ReferenceData, CatalogBase):
    """The catalog database; one instance per process (it holds a connection pool)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, busy_timeout=SQLITE_BUSY_TIMEOUT_S)

    # --------------------------------------------------------------------------------- documents

    def register_document(self, spec: DocumentSpec) -> tuple[DocumentRecord, bool]:
        """Register a document as RECEIVED; if its content (fingerprint) is known, return that record instead.

        Returns ``(record, created)``. Safe under races: the unique fingerprint decides, the loser reads the
        winner's row.
        """
        spec.validate()
        fingerprint = spec.fingerprint
        for _attempt in range(3):
            try:
                with self.write() as conn:
                    found = self._find(conn, documents.c.fingerprint == fingerprint)
                    if found is not None:
                        return found, False
                    received_at = _now()
                    statement = (
                        self._insert(documents)
                        .values(**_spec_values(spec), fingerprint=fingerprint, status="RECEIVED", version=1,
                                received_at=received_at, needs_review=False)
                        .on_conflict_do_nothing(index_elements=["fingerprint"])
                        .returning(documents.c.id)
                    )
                    document_id = conn.execute(statement).scalar()
                    if document_id is None:  # a concurrent registration won; read its row next time round
                        continue
                    conn.execute(sa.insert(document_files), _file_rows(document_id, spec))
                    return _new_record(document_id, spec, received_at), True
            except sa_exc.IntegrityError:
                continue
        found = self.find_by_fingerprint(fingerprint)
        if found is None:
            raise CatalogUnavailable(f"could not register document {fingerprint[:12]}… after 3 attempts")
        return found, False

    def register_documents(self, specs: Sequence[DocumentSpec]) -> list[tuple[DocumentRecord, bool]]:
        """:meth:`register_document` for many documents in one transaction (a batch's manifest at once).

        Same results, in the order of ``specs``; a repeated fingerprint within ``specs`` returns the first one's
        record with ``created=False``. If a concurrent registration collides, falls back to one at a time.
        """
        for spec in specs:
            spec.validate()
        prints = [spec.fingerprint for spec in specs]
        try:
            with self.write() as conn:
                known: dict[str, DocumentRecord] = {}
                unique = list(dict.fromkeys(prints))
                for start in range(0, len(unique), 500):
                    rows = conn.execute(
                        sa.select(documents).where(documents.c.fingerprint.in_(unique[start:start + 500]))
                    ).mappings().all()
                    files = self._files(conn, [r["id"] for r in rows])
                    known.update({r["fingerprint"]: record_from_row(dict(r), files.get(r["id"], ())) for r in rows})
                fresh = {fp: spec for fp, spec in zip(prints, specs, strict=True) if fp not in known}
                received_at = _now()
                created: dict[str, DocumentRecord] = {}
                if fresh:
                    statement = sa.insert(documents).returning(documents.c.id, sort_by_parameter_order=True)
                    ids = conn.execute(statement, [
                        {**_spec_values(spec), "fingerprint": fp, "status": "RECEIVED", "version": 1,
                         "received_at": received_at, "needs_review": False} for fp, spec in fresh.items()
                    ]).scalars().all()
                    conn.execute(sa.insert(document_files), [
                        row for document_id, spec in zip(ids, fresh.values(), strict=True)
                        for row in _file_rows(document_id, spec)
                    ])
                    created = {fp: _new_record(document_id, spec, received_at)
                               for document_id, (fp, spec) in zip(ids, fresh.items(), strict=True)}
        except sa_exc.IntegrityError:
            return [self.register_document(spec) for spec in specs]
        out: list[tuple[DocumentRecord, bool]] = []
        for fp in prints:
            if fp in created:
                out.append((created.pop(fp), True))
                known[fp] = out[-1][0]
            else:
                out.append((known[fp], False))
        return out

    def supersede(
        self, document_id: int, spec: DocumentSpec, *, actor: str, reason: str
    ) -> tuple[DocumentRecord, bool]:
        """Register a corrected version of an archived document: same code, version + 1, old row kept and linked.

        Its origin is ``scan`` when it brings a scanned file the old version did not have (it counts as a scan for
        indicator 3), else ``correction``; it keeps the first version's ``digitized_at``.

        The new row is RECEIVED and goes through the pipeline like any other (its code is already set, so
        :meth:`allocate_code` returns it). Events on both rows say who corrected it and why. Idempotent:
        registering the same correction again returns it with ``created=False``.
        """
        spec.validate()
        if not actor.strip() or not reason.strip():
            raise ValueError("a correction needs the actor and the reason")
        fingerprint = spec.fingerprint
        try:
            with self.write() as conn:
                old = self._find(conn, documents.c.id == document_id, lock=True)
                if old is None:
                    raise CatalogConflict(f"no document {document_id} to correct")
                same = self._find(conn, documents.c.fingerprint == fingerprint)
                if same is not None:
                    if same.supersedes_id == old.id:
                        return same, False
                    raise CatalogConflict(
                        f"the corrected files are already document {same.code or same.id} (batch {same.batch_id})")
                if old.status != "ARCHIVED" or old.code is None:
                    raise CatalogConflict(f"document {document_id} is {old.status}: only archived documents have "
                                          "versions; fix and resubmit it instead")
                newer = conn.execute(
                    sa.select(documents.c.id).where(documents.c.supersedes_id == old.id)).scalar()
                if newer is not None:
                    raise CatalogConflict(f"document {document_id} is already superseded by document {newer}; "
                                          "correct the latest version")
                if (spec.agency_code, spec.kind) != (old.agency_code, old.kind):
                    raise CatalogConflict(
                        f"a correction keeps the code {old.code}, so agency and kind must stay "
                        f"{old.agency_code}/{old.kind}, got {spec.agency_code}/{spec.kind}")
                now = _now()
                scanned = {f.sha256 for f in spec.files} - {f.sha256 for f in old.files}
                new_id = conn.execute(
                    sa.insert(documents)
                    .values(**_spec_values(spec), fingerprint=fingerprint, status="RECEIVED", code=old.code,
                            version=old.version + 1, supersedes_id=old.id, received_at=now, needs_review=False,
                            origin="scan" if scanned else "correction",
                            digitized_at=old.digitized_at or old.archived_at)
                    .returning(documents.c.id)
                ).scalar_one()
                conn.execute(sa.insert(document_files), _file_rows(new_id, spec))
                detail = f"by {actor}: {reason}"
                conn.execute(sa.insert(events), [
                    _event_row(new_id, spec.batch_id, "correction", "success",
                               f"version {old.version + 1} of {old.code} supersedes document {old.id} {detail}", now),
                    _event_row(old.id, spec.batch_id, "correction", "success",
                               f"superseded by document {new_id} (version {old.version + 1}) {detail}", now),
                ])
                created = self._find(conn, documents.c.id == new_id)
                assert created is not None
                return created, True
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(f"document {document_id} was corrected concurrently; read it again") from exc

    def get_document(self, document_id: int) -> DocumentRecord:
        """The document with this id; :class:`CatalogConflict` if there is none."""
        with self.read() as conn:
            found = self._find(conn, documents.c.id == document_id)
        if found is None:
            raise CatalogConflict(f"no document {document_id} in the catalog")
        return found

    def get_by_code(self, code: str, *, version: int | None = None) -> DocumentRecord | None:
        """The latest version registered under ``code`` (or the given version)."""
        condition = documents.c.code == code
        if version is not None:
            condition = condition & (documents.c.version == version)
        with self.read() as conn:
            document_id = conn.execute(
                sa.select(documents.c.id).where(condition).order_by(documents.c.version.desc()).limit(1)
            ).scalar()
            return None if document_id is None else self._find(conn, documents.c.id == document_id)

    def find_by_pdf_sha256(self, sha256: str) -> list[DocumentRecord]:
        """Archived documents whose signed PDF has this SHA-256 (an auditor holding only a file)."""
        with self.read() as conn:
            ids = conn.execute(sa.select(documents.c.id).where(documents.c.pdf_sha256 == sha256.lower())
                               .order_by(documents.c.id)).scalars().all()
            found = [self._find(conn, documents.c.id == i) for i in ids]
        return [r for r in found if r is not None]

    def restore_document(self, record: DocumentRecord, *, template: str | None = None) -> DocumentRecord:
        """Insert a document as-is (every field but ``id``, with its files and their keys).

        For rebuilding the catalog from the archive's sidecars and for new archived versions made
        outside the pipeline (LTA renewal). The code's (agency, kind, year) counter is raised past
        the code when it follows ``template``, so allocation continues after the highest code.
        """
        if record.code is None or len(record.original_keys) != len(record.files):
            raise ValueError("a restored document needs its code and one key (or None) per file")
        from digitize.codes import DEFAULT_CODE_TEMPLATE, parse_document_code

        try:
            parsed = parse_document_code(record.code, template or DEFAULT_CODE_TEMPLATE)
        except CodeError:
            parsed = None
        values = {c.name: getattr(record, c.name) for c in documents.c if c.name != "id"}
        try:
            with self.write() as conn:
                # ids differ between catalogs: link to the previous version held here, if any
                values["supersedes_id"] = conn.execute(
                    sa.select(documents.c.id).where(
                        (documents.c.code == record.code) & (documents.c.version == record.version - 1))
                ).scalar()
                new_id = conn.execute(sa.insert(documents).values(**values).returning(documents.c.id)).scalar_one()
                if record.files:
                    conn.execute(sa.insert(document_files), [
                        {"document_id": new_id, "position": f.position, "name": f.name, "sha256": f.sha256,
                         "size": f.size, "pixels": f.pixels, "original_key": key}
                        for f, key in zip(record.files, record.original_keys, strict=True)])
                if parsed is not None:
                    conn.execute(self._insert(code_sequences).values(
                        agency_code=str(parsed.agency), kind=parsed.kind, year=parsed.year, next_seq=parsed.seq + 1,
                    ).on_conflict_do_update(
                        index_elements=["agency_code", "kind", "year"],
                        set_={"next_seq": sa.func.max(code_sequences.c.next_seq, parsed.seq + 1)
                              if self._dialect == "sqlite" else sa.func.greatest(code_sequences.c.next_seq,
                                                                                 parsed.seq + 1)},
                    ))
                found = self._find(conn, documents.c.id == new_id)
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(f"{record.code} version {record.version} (or its fingerprint) is already in "
                                  "the catalog") from exc
        assert found is not None
        return found

    def find_by_fingerprint(self, fingerprint: str) -> DocumentRecord | None:
        """The document with this content, if registered."""
        with self.read() as conn:
            return self._find(conn, documents.c.fingerprint == fingerprint)

    def sheet_document(self, sheet_id: str, register_id: str | None) -> DocumentRecord | None:
        """The document that already digitizes a cover sheet's row (same sheet, or same register row), if any.

        Quarantined documents do not count: their row is still to digitize.
        """
        named = documents.c.sheet_id == sheet_id
        if register_id:
            named = named | (documents.c.register_id == register_id)
        with self.read() as conn:
            return self._find(conn, named & (documents.c.status != "QUARANTINED"))

    def stack_documents(self, stack_sha256: str) -> list[DocumentRecord]:
        """Every document cut from one scanned stack, by id."""
        query = sa.select(documents).where(documents.c.stack_sha256 == stack_sha256).order_by(documents.c.id)
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            files = self._files(conn, [r["id"] for r in rows])
        return [record_from_row(r, files.get(r["id"], ())) for r in rows]

    def documents(self, *, batch_id: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        """Documents by id, optionally of one batch and/or status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status {status!r} must be one of {', '.join(STATUSES)}")
        query = sa.select(documents).order_by(documents.c.id)
        if batch_id is not None:
            query = query.where(documents.c.batch_id == batch_id)
        if status is not None:
            query = query.where(documents.c.status == status)
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            files = self._files(conn, [r["id"] for r in rows])
        return [record_from_row(r, files.get(r["id"], ())) for r in rows]

    def document_pixels(self, document_ids: Sequence[int]) -> dict[int, int]:
        """Pixels of each document's pages, as registered (:attr:`FileSpec.pixels`): the weights a DAG cuts its
        chunks by. Read from the catalog, not the files: a batch in S3 would have to be fetched again. A document
        whose pixels are unknown is left out."""
        weights: dict[int, int] = {}
        with self.read() as conn:
            for start in range(0, len(document_ids), 500):
                rows = conn.execute(
                    sa.select(document_files.c.document_id, sa.func.sum(document_files.c.pixels))
                    .where(document_files.c.document_id.in_(list(document_ids[start:start + 500])))
                    .group_by(document_files.c.document_id))
                weights.update((int(document_id), int(total)) for document_id, total in rows if total is not None)
        return weights

    def allocate_code(self, document_id: int, *, template: str, year: int) -> str:
        """Give the document its code, or return the one it has.

        The counter row of (agency, kind, year) is incremented and the code written onto the document in one
        transaction: unique, gap-free in commit order, and nothing is burned if the transaction dies.
        """
        validate_template(template)
        try:
            with self.write() as conn:
                record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
                if record is None:
                    raise CatalogConflict(f"no document {document_id} in the catalog")
                if record.code is not None:
                    return record.code
                if record.status != "RECEIVED":
                    raise CatalogConflict(f"document {document_id} is {record.status}; only RECEIVED documents get "
                                          "codes (reset_for_retry a quarantined one first)")
                agency = conn.execute(sa.select(agencies.c.code).where(agencies.c.code == record.agency_code)).first()
                if agency is None:
                    raise AgencyUnknown(f"agency {record.agency_code} of document {document_id} is not in the catalog")
                upsert = self._insert(code_sequences).values(
                    agency_code=record.agency_code, kind=record.kind, year=year, next_seq=2)
                seq = conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["agency_code", "kind", "year"],
                        set_={"next_seq": code_sequences.c.next_seq + 1},
                    ).returning(code_sequences.c.next_seq)
                ).scalar_one() - 1
                code = format_document_code(template, record.agency_code, year, record.kind, seq)
                conn.execute(sa.update(documents).where(documents.c.id == document_id).values(code=code))
                return code
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(
                f"code for document {document_id} collides with an existing code; check code_sequences "
                f"(agency, kind, year {year}) against documents") from exc

    def mark_archived(self, document_id: int, info: ArchivedInfo) -> None:
        """RECEIVED → ARCHIVED with the archive's keys and checksums; a repeat with the same info is a no-op."""
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if len(info.original_keys) != len(record.files):
                raise ValueError(f"{len(info.original_keys)} original keys for {len(record.files)} files")
            if record.status == "ARCHIVED":
                stored = (record.pdf_key, record.pdf_sha256, record.sidecar_key, record.sidecar_sha256,
                          record.original_keys)
                if stored == (info.pdf_key, info.pdf_sha256, info.sidecar_key, info.sidecar_sha256,
                              tuple(info.original_keys)):
                    return
                raise CatalogConflict(f"document {document_id} is already archived under other keys or checksums")
            if record.status != "RECEIVED":
                raise CatalogConflict(f"document {document_id} is {record.status}; reset_for_retry it first")
            if record.code is None:
                raise CatalogConflict(f"document {document_id} has no code: allocate_code before archiving")
            now = info.archived_at or _now()  # a first version is digitized then; later ones keep the first's
            conn.execute(
                sa.update(documents).where(documents.c.id == document_id).values(
                    status="ARCHIVED", reason=None, message=None, pdf_key=info.pdf_key, pdf_sha256=info.pdf_sha256,
                    sidecar_key=info.sidecar_key, sidecar_sha256=info.sidecar_sha256, pages=info.pages,
                    mean_confidence=info.mean_confidence, needs_review=info.needs_review, archived_at=now,
                    digitized_at=record.digitized_at or now, lease_owner=None, lease_expires_at=None,
                )
            )
            conn.execute(
                sa.update(document_files)
                .where((document_files.c.document_id == document_id)
                       & (document_files.c.position == sa.bindparam("p_position")))
                .values(original_key=sa.bindparam("p_key")),
                [{"p_position": f.position, "p_key": key} for f, key in zip(record.files, info.original_keys,
                                                                            strict=True)],
            )

    def claim(self, document_id: int, owner: str, lease_seconds: float, *, take_over: str | None = None) -> bool:
        """Take (or renew) the processing lease of a RECEIVED document; ``False`` if another live worker holds it.

        One conditional UPDATE, so of two workers racing for a document exactly one wins. A lease that has
        expired (its worker died or stalled) can be taken; so can one held by ``take_over`` (a worker the
        caller knows is dead). :meth:`mark_archived`, :meth:`mark_quarantined` and :meth:`release` clear it.
        """
        if not owner or lease_seconds <= 0:
            raise ValueError("a claim needs an owner and a positive lease")
        now = _now()
        free = documents.c.lease_owner.is_(None) | (documents.c.lease_owner == owner) | (
            documents.c.lease_expires_at < now)
        if take_over:
            free = free | (documents.c.lease_owner == take_over)
        with self.write() as conn:
            done = conn.execute(
                sa.update(documents)
                .where((documents.c.id == document_id) & (documents.c.status == "RECEIVED") & free)
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds)))
            return bool(done.rowcount == 1)

    def release(self, document_id: int, owner: str) -> None:
        """Give up ``owner``'s lease (after a transient failure) so a retry can claim the document at once.

        Looked up first: after :meth:`mark_archived` or :meth:`mark_quarantined` (which clear it) or a take-over
        the lease is no longer ``owner``'s, and only ``owner`` could make it so again, so no write turn is spent.
        """
        with self.read() as conn:
            holder = conn.execute(sa.select(documents.c.lease_owner).where(documents.c.id == document_id)).scalar()
        if holder != owner:
            return
        with self.write() as conn:
            conn.execute(sa.update(documents)
                         .where((documents.c.id == document_id) & (documents.c.lease_owner == owner))
                         .values(lease_owner=None, lease_expires_at=None))

    def mark_quarantined(self, document_id: int, reason: str, message: str) -> None:
        """RECEIVED (or QUARANTINED) → QUARANTINED with a stable reason code; an archived document cannot be."""
        if not reason:
            raise ValueError("a quarantine needs a reason code")
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if record.status == "ARCHIVED":
                raise CatalogConflict(f"document {document_id} is archived as {record.code}; it cannot be "
                                      "quarantined (register a correction instead)")
            conn.execute(sa.update(documents).where(documents.c.id == document_id).values(
                status="QUARANTINED", reason=reason, message=message, lease_owner=None, lease_expires_at=None))

    def reset_for_retry(self, document_id: int) -> None:
        """QUARANTINED → RECEIVED for a resubmission (its code, if any, is kept); RECEIVED stays RECEIVED."""
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if record.status == "ARCHIVED":
                raise CatalogConflict(f"document {document_id} is archived as {record.code}; nothing to retry")
            conn.execute(sa.update(documents).where(documents.c.id == document_id).values(
                status="RECEIVED", reason=None, message=None, lease_owner=None, lease_expires_at=None))

    # ------------------------------------------------------------------------------------------ events

    def add_event(self, document_id: int | None, event_type: str, outcome: str, *, tool: str = "digitize",
                  tool_version: str = "", detail: str = "", batch_id: str | None = None) -> None:
        """Record an event; a document's events take its batch unless ``batch_id`` says otherwise.

        Inside :meth:`transaction` it commits with the state change made there, or is undone with it.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} must be one of {', '.join(OUTCOMES)}")
        if not event_type:
            raise ValueError("event_type is empty")
        if document_id is None and batch_id is None:
            raise ValueError("an event concerns a document or a batch")
        with self.write() as conn:
            if document_id is not None:
                owner = conn.execute(sa.select(documents.c.batch_id).where(documents.c.id == document_id)).first()
                if owner is None:
                    raise CatalogConflict(f"no document {document_id} in the catalog")
                batch_id = batch_id or owner[0]
            row = _event_row(document_id, batch_id, event_type, outcome, detail, _now())
            row.update(tool=tool, tool_version=tool_version)
            conn.execute(sa.insert(events).values(**row))

    def events(self, document_id: int) -> list[Event]:
        """A document's events, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.document_id == document_id).order_by(events.c.id)).mappings()
            return [Event(**dict(r)) for r in rows]

    def batch_events(self, batch_id: str) -> list[Event]:
        """All events of a batch (document and batch-level), oldest first."""
        with self.read() as conn:
            rows = conn.execute(sa.select(events).where(events.c.batch_id == batch_id).order_by(events.c.id)).mappings()
            return [Event(**dict(r)) for r in rows]

    # ----------------------------------------------------------------------------------------- helpers

    def _find(self, conn: Connection, condition: sa.ColumnElement[bool], *, lock: bool = False,
              with_files: bool = True) -> DocumentRecord | None:
        query = sa.select(documents).where(condition)
        if lock and self._dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            return None
        files = self._files(conn, [row["id"]]) if with_files else {}
        return record_from_row(dict(row), files.get(row["id"], ()))

    @staticmethod
    def _files(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[tuple[FileSpec, str | None], ...]]:
        out: dict[int, list[tuple[FileSpec, str | None]]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            rows = conn.execute(
                sa.select(document_files).where(document_files.c.document_id.in_(chunk))
                .order_by(document_files.c.document_id, document_files.c.position)
            ).mappings()
            for r in rows:
                spec = FileSpec(position=r["position"], name=r["name"], sha256=r["sha256"], size=r["size"],
                                pixels=r["pixels"])
                out.setdefault(r["document_id"], []).append((spec, r["original_key"]))
        return {k: tuple(v) for k, v in out.items()}


def _spec_values(spec: DocumentSpec) -> dict[str, Any]:
    return {
        "batch_id": spec.batch_id, "agency_code": spec.agency_code, "kind": spec.kind, "title": spec.title,
        "issued_date": spec.issued_date, "valid_until": spec.valid_until, "register_id": spec.register_id,
        "dossier_code": spec.dossier_code, "procedure_code": spec.procedure_code, "holder_id": spec.holder_id,
        "scanned_at": spec.scanned_at, "manifest_document_id": spec.manifest_document_id,
        "stack_sha256": spec.stack_sha256, "stack_first_page": spec.stack_first_page,
        "stack_last_page": spec.stack_last_page, "sheet_id": spec.sheet_id,
    }


def _file_rows(document_id: int, spec: DocumentSpec) -> list[dict[str, Any]]:
    return [{"document_id": document_id, "position": f.position, "name": f.name, "sha256": f.sha256, "size": f.size,
             "pixels": f.pixels} for f in sorted(spec.files, key=lambda f: f.position)]


def _new_record(document_id: int, spec: DocumentSpec, received_at: datetime) -> DocumentRecord:
    """The record of a document just registered, without reading it back."""
    files = tuple(sorted(spec.files, key=lambda f: f.position))
    return DocumentRecord(
        id=document_id, fingerprint=spec.fingerprint, batch_id=spec.batch_id, status="RECEIVED", code=None,
        version=1, agency_code=spec.agency_code, kind=spec.kind, title=spec.title, issued_date=spec.issued_date,
        valid_until=spec.valid_until, register_id=spec.register_id, dossier_code=spec.dossier_code,
        procedure_code=spec.procedure_code, holder_id=spec.holder_id, scanned_at=spec.scanned_at, reason=None,
        message=None, pdf_key=None, pdf_sha256=None, sidecar_key=None, sidecar_sha256=None, pages=None,
        mean_confidence=None, needs_review=False, received_at=received_at, archived_at=None, files=files,
        original_keys=(None,) * len(files), manifest_document_id=spec.manifest_document_id, supersedes_id=None,
        stack_sha256=spec.stack_sha256, stack_first_page=spec.stack_first_page, stack_last_page=spec.stack_last_page,
        sheet_id=spec.sheet_id,
    )


def _event_row(document_id: int | None, batch_id: str | None, event_type: str, outcome: str, detail: str,
               when: datetime) -> dict[str, Any]:
    return {"document_id": document_id, "batch_id": batch_id, "event_type": event_type, "outcome": outcome,
            "tool": "digitize", "tool_version": _version(), "detail": detail, "created_at": when}


def _version() -> str:
    from digitize import __version__

    return __version__
