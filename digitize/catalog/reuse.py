"""The reuse API's records in the catalog: its clients, the access log, reuses and papers supplied again.

The tables are created by the migrations (0002, 0005) and declared here to
query them. :class:`ReuseRecords` is a part of :class:`~digitize.catalog.Catalog`:
the API authenticates, logs and records through these methods, and coverage's
"not asked again" indicator reads :meth:`ReuseRecords.needs_frame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.records import DocumentRecord, record_from_row
from digitize.catalog.schema import UtcDateTime, documents
from digitize.errors import CatalogConflict

if TYPE_CHECKING:
    import pandas as pd

    from digitize.catalog.records import FileSpec

metadata = sa.MetaData()
"""The reuse API's tables (created by migrations 0002 and 0005, ``access_log`` changed by 0006, recorded times
added by 0007; ``reuse_events`` refers to ``documents``)."""
api_clients = sa.Table(
    "api_clients", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)
access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("client", sa.String(100)),  # NULL: refused before the client was known
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("ix_access_log_at", "at"),
    sa.Index("ix_access_log_client", "client"),
)
reuse_events = sa.Table(
    "reuse_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.Integer, nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("caller_system", sa.String(200), nullable=False),
    sa.Column("new_dossier_code", sa.String(40), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("reused_at", UtcDateTime, nullable=False),  # when the one-stop system reused it (valid time)
    sa.Column("recorded_at", UtcDateTime, nullable=False),  # when the catalog learned it (0007)
    sa.ForeignKeyConstraint(["document_id"], [documents.c.id], name="fk_reuse_events_document_id_documents"),
    sa.UniqueConstraint("document_id", "new_dossier_code", name="uq_reuse_events_document_id_new_dossier_code"),
    sa.Index("ix_reuse_events_reused_at", "reused_at"),
    sa.Index("ix_reuse_events_recorded_at", "recorded_at"),
)
supplied_again_events = sa.Table(
    "supplied_again_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("holder_id", sa.String(100), nullable=False),
    sa.Column("new_dossier_code", sa.String(40), nullable=False),
    sa.Column("document", sa.String(200), nullable=False),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("caller_system", sa.String(200), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),  # when the paper was asked for again (0007)
    sa.UniqueConstraint("new_dossier_code", "holder_id", "document",
                        name="uq_supplied_again_events_new_dossier_code_holder_id_document"),
    sa.Index("ix_supplied_again_events_recorded_at", "recorded_at"),
)

NEEDS_COLUMNS = ("new_dossier_code", "outcome", "holder_id", "holding_agency", "document", "at", "recorded_at")
REUSE_COLUMNS = ("id", "document_id", "code", "holder_id", "agency_code", "kind", "procedure_code", "register_id",
                 "client", "caller_system", "new_dossier_code", "purpose", "reused_at")


@dataclass(frozen=True)
class ApiClientRecord:
    """An active calling system of the reuse API."""

    id: int
    """Row id in ``api_clients``."""
    name: str
    """Name given at ``token create``; recorded in the access log."""
    scopes: frozenset[str]
    """What it may do (the API's scopes)."""


@dataclass(frozen=True)
class ReuseRecord:
    """A document reused in a new dossier."""

    id: int
    document_id: int
    code: str
    client: str
    caller_system: str
    new_dossier_code: str
    purpose: str
    reused_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class SuppliedAgainRecord:
    """A paper the holder had to hand in again for a new dossier."""

    id: int
    holder_id: str
    new_dossier_code: str
    document: str
    procedure_code: str | None
    reason: str
    client: str
    caller_system: str
    purpose: str
    recorded_at: datetime
    occurred_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def latest_archived_query(condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Documents matching ``condition`` that no archived later version replaces (status left to the caller)."""
    newer = documents.alias("newer")
    later = (sa.select(newer.c.id).where((newer.c.code == documents.c.code) & (newer.c.status == "ARCHIVED")
                                         & (newer.c.version > documents.c.version)).exists())
    return (sa.select(documents).where(condition & ~later)
            .order_by(documents.c.issued_date.desc(), documents.c.id))


def holder_documents_query(holder_id: str, *, procedure_code: str | None = None, kind: str | None = None,
                           valid_on: date | None = None) -> sa.Select[Any]:
    """The query behind :meth:`ReuseRecords.holder_documents` (public so tests can look at its query plan)."""
    condition = documents.c.holder_id == holder_id
    if procedure_code is not None:
        condition &= ((documents.c.procedure_code == procedure_code)
                      | documents.c.procedure_code.startswith(procedure_code + ".", autoescape=True))
    if kind is not None:
        condition &= documents.c.kind == kind
    if valid_on is not None:
        condition &= documents.c.valid_until.is_(None) | (documents.c.valid_until >= valid_on)
    return latest_archived_query(condition)


class ReuseRecords(CatalogBase):
    """Catalog methods for the reuse API's tables and its reads of archived documents."""

    if TYPE_CHECKING:  # provided by Catalog
        @staticmethod
        def _files(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[tuple[FileSpec, str | None], ...]]: ...

    # ------------------------------------------------------------------------------------ clients

    def create_api_client(self, name: str, token_sha256: str, scopes: Sequence[str]) -> None:
        """Register a calling system by its token's SHA-256; CatalogConflict if the name is taken."""
        try:
            with self.write() as conn:
                conn.execute(sa.insert(api_clients).values(name=name, token_sha256=token_sha256,
                                                           scopes=",".join(sorted(set(scopes))), created_at=_now()))
        except sa_exc.IntegrityError:
            raise CatalogConflict(f"an API client named {name!r} already exists",
                                  hint="Revoke it first (python -m digitize api token revoke NAME) or pick another "
                                       "name.") from None

    def revoke_api_client(self, name: str) -> bool:
        """Revoke a client (its name is freed for a new one); False if there is no active client of that name."""
        with self.write() as conn:
            result = conn.execute(sa.update(api_clients).where((api_clients.c.name == name)
                                                               & api_clients.c.revoked_at.is_(None))
                                  .values(revoked_at=_now(), name=f"{name} (revoked {_now():%Y%m%dT%H%M%S})"))
            return bool(result.rowcount)

    def list_api_clients(self) -> list[dict[str, Any]]:
        """Clients with their scopes and dates (name, scopes, created_at, revoked_at; never a token hash)."""
        with self.read() as conn:
            rows = conn.execute(sa.select(api_clients.c.name, api_clients.c.scopes, api_clients.c.created_at,
                                          api_clients.c.revoked_at).order_by(api_clients.c.id)).mappings()
            return [dict(r) for r in rows]

    def active_api_client(self, token_sha256: str) -> ApiClientRecord | None:
        """The unrevoked client whose token has this SHA-256, or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(api_clients).where((api_clients.c.token_sha256 == token_sha256)
                                                            & api_clients.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        return ApiClientRecord(row.id, row.name, frozenset(row.scopes.split(",")))

    def revoked_api_client(self, token_sha256: str) -> str | None:
        """The name of the revoked client whose token has this SHA-256, or None (to say why a call was refused)."""
        with self.read() as conn:
            return conn.execute(sa.select(api_clients.c.name).where(
                (api_clients.c.token_sha256 == token_sha256) & api_clients.c.revoked_at.is_not(None))).scalar()

    def log_access(self, *, client: str | None, method: str, path: str, action: str, subject: str | None,
                   purpose: str, status: int, detail: str | None = None) -> None:
        """One row of the access log: who asked what, when, why, the answer's status, and ``detail`` (why it was
        refused, or what it returned); ``client`` None when the request was refused before it was known."""
        with self.write() as conn:
            conn.execute(sa.insert(access_log).values(at=_now(), client=client, method=method, path=path[:1000],
                                                      action=action, subject=subject, purpose=purpose,
                                                      status=status, detail=detail))

    # ------------------------------------------------------------------------------------ documents

    def archived_document(self, code: str) -> DocumentRecord | None:
        """The latest archived version of the document ``code``, or None."""
        found = self._latest_archived(latest_archived_query(documents.c.code == code))
        return found[0] if found else None

    def holder_documents(self, holder_id: str, *, procedure_code: str | None = None, kind: str | None = None,
                         valid_on: date | None = None) -> list[DocumentRecord]:
        """A holder's archived documents, latest versions, newest first; ``procedure_code`` also matches its
        sub-codes, ``valid_on`` keeps those valid that day."""
        return self._latest_archived(holder_documents_query(holder_id, procedure_code=procedure_code, kind=kind,
                                                            valid_on=valid_on))

    def _latest_archived(self, query: sa.Select[Any]) -> list[DocumentRecord]:

        with self.read() as conn:  # status filtered here: in SQL it could steer the planner to the status index
            rows = [dict(r) for r in conn.execute(query).mappings() if r["status"] == "ARCHIVED"]
            files = self._files(conn, [r["id"] for r in rows])
        return [record_from_row(r, files.get(r["id"], ())) for r in rows]

    # ------------------------------------------------------------------------------------ outcomes

    def record_reuse(self, *, document_id: int, code: str, client: str, caller_system: str, new_dossier_code: str,
                     purpose: str) -> tuple[ReuseRecord, bool]:
        """Record that a document was reused in a new dossier; the stored record and whether it is new (a retry
        of the same reuse gets the first record back)."""
        created = False
        try:
            with self.write() as conn:
                now = _now()
                conn.execute(sa.insert(reuse_events).values(
                    document_id=document_id, code=code, client=client, caller_system=caller_system,
                    new_dossier_code=new_dossier_code, purpose=purpose, reused_at=now, recorded_at=now))
            created = True
        except sa_exc.IntegrityError:
            pass  # the same reuse sent again: answer with the record
        with self.read() as conn:
            stored = conn.execute(sa.select(reuse_events).where(
                (reuse_events.c.document_id == document_id)
                & (reuse_events.c.new_dossier_code == new_dossier_code))).mappings().one()
        return ReuseRecord(**stored), created

    def record_supplied_again(self, *, holder_id: str, new_dossier_code: str, document: str,
                              procedure_code: str | None, reason: str, client: str, caller_system: str,
                              purpose: str) -> tuple[SuppliedAgainRecord, bool]:
        """Record that the holder had to hand ``document`` in again; the stored record and whether it is new."""
        key = ((supplied_again_events.c.new_dossier_code == new_dossier_code)
               & (supplied_again_events.c.holder_id == holder_id) & (supplied_again_events.c.document == document))
        created = False
        try:
            with self.write() as conn:
                now = _now()
                conn.execute(sa.insert(supplied_again_events).values(
                    holder_id=holder_id, new_dossier_code=new_dossier_code, document=document,
                    procedure_code=procedure_code, reason=reason, client=client, caller_system=caller_system,
                    purpose=purpose, recorded_at=now, occurred_at=now))
            created = True
        except sa_exc.IntegrityError:
            pass  # the same report sent again: answer with the record
        with self.read() as conn:
            stored = conn.execute(sa.select(supplied_again_events).where(key)).mappings().one()
        return SuppliedAgainRecord(**stored), created

    # ------------------------------------------------------------------------------------ frames

    def reuse_frame(self) -> pd.DataFrame:
        """Reuse events, one row per (document, new dossier), with the document's holder, agency and register row.

        Columns: :data:`REUSE_COLUMNS`; reused_at is datetime64 UTC.
        """
        query = (
            sa.select(reuse_events.c.id, reuse_events.c.document_id, reuse_events.c.code, documents.c.holder_id,
                      documents.c.agency_code, documents.c.kind, documents.c.procedure_code,
                      documents.c.register_id, reuse_events.c.client, reuse_events.c.caller_system,
                      reuse_events.c.new_dossier_code, reuse_events.c.purpose, reuse_events.c.reused_at)
            .join(documents, documents.c.id == reuse_events.c.document_id)
            .order_by(reuse_events.c.id)
        )
        with self.read() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        import pandas as pd  # imported by the reports that read frames, not by every worker

        frame = pd.DataFrame.from_records(rows, columns=list(REUSE_COLUMNS))
        frame["reused_at"] = pd.to_datetime(frame["reused_at"], utc=True)
        return frame

    def needs_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """Every paper a new dossier needed that the one-stop system reported (API or imported log), as recorded
        up to ``cutoff`` (aware UTC; None = now): reused, or supplied again.

        Coverage's "not asked again" indicator counts dossiers from it. Columns: new_dossier_code,
        outcome (``reused`` | ``supplied_again``), holder_id, holding_agency (the reused document's agency; None
        when supplied again), document (code reused, or the paper asked for), at (when it happened, datetime64
        UTC), recorded_at (when the catalog learned it, datetime64 UTC).
        """
        at = datetime.now(UTC) if cutoff is None else cutoff.astimezone(UTC)
        reused = (
            sa.select(reuse_events.c.new_dossier_code, sa.literal("reused").label("outcome"),
                      documents.c.holder_id, documents.c.agency_code, reuse_events.c.code, reuse_events.c.reused_at,
                      reuse_events.c.recorded_at)
            .join(documents, documents.c.id == reuse_events.c.document_id)
            .where(reuse_events.c.recorded_at <= at)
            .order_by(reuse_events.c.id)
        )
        again = (
            sa.select(supplied_again_events.c.new_dossier_code, sa.literal("supplied_again").label("outcome"),
                      supplied_again_events.c.holder_id, sa.null().label("agency_code"),
                      supplied_again_events.c.document, supplied_again_events.c.occurred_at,
                      supplied_again_events.c.recorded_at)
            .where(supplied_again_events.c.recorded_at <= at)
            .order_by(supplied_again_events.c.id)
        )
        with self.read() as conn:
            rows = [tuple(r) for r in conn.execute(reused)] + [tuple(r) for r in conn.execute(again)]
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=list(NEEDS_COLUMNS))
        for column in ("at", "recorded_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
