"""What a run reports: each document's outcome, the time spent per stage, and the run's summary for IT staff."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from digitize.stageclock import StageTimes, recording, stage

if TYPE_CHECKING:
    from digitize.catalog import Catalog

NAMED_IN_TEXT = 20
"""How many unfinished documents, or duplicates, a summary's text names (its XCom lists them all)."""


class Stopwatch:
    """Wall time and CPU per stage (:data:`digitize.stageclock.STAGES`) of one document.

    :meth:`recording` wraps the whole document: what no stage claims counts as ``catalog`` (claims,
    events, sidecar), and OCR's own stages (load, cleanup, orientation, ocr, pdf) are recorded too.
    """

    def __init__(self) -> None:
        self.times = StageTimes()

    def recording(self) -> AbstractContextManager[StageTimes]:
        return recording(self.times)

    def stage(self, name: str) -> AbstractContextManager[None]:
        return stage(name)

    @property
    def seconds(self) -> dict[str, float]:
        return self.times.rounded()[0]

    @property
    def cpu(self) -> dict[str, float]:
        return self.times.rounded()[1]


@dataclass(frozen=True)
class DocumentOutcome:
    """What happened to one document in this run; small and free of personal data (safe for XCom)."""

    document_id: int
    """Catalog id."""

    status: str
    """ARCHIVED, QUARANTINED, SKIPPED (already done by an earlier run) or PREPARED (see ``prepare_document``)."""

    code: str | None = None
    """Assigned code, if any."""

    reason: str | None = None
    """Stable reason code when quarantined."""

    pages: int = 0
    """Pages processed in this run (0 when skipped)."""

    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage in this run."""

    cpu: dict[str, float] = field(default_factory=dict)
    """CPU per stage in this run, the process's and its children's (Tesseract, qpdf)."""

    def as_dict(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "status": self.status, "code": self.code,
                "reason": self.reason, "pages": self.pages, "seconds": self.seconds, "cpu": self.cpu}


@dataclass(frozen=True)
class RunSummary:
    """Per-run figures an IT operator reads: counts, quarantine reasons, throughput, slowest stage."""

    archived: int
    quarantined: dict[str, int]
    skipped: int
    duplicates: int
    rejected_rows: int
    pages: int
    seconds: float
    stage_seconds: dict[str, float]
    remaining: int = 0
    stage_cpu: dict[str, float] = field(default_factory=dict)
    """CPU per stage, summed over the documents (their processes and children)."""
    """Documents of the backlog still waiting after this run (for the time-to-finish estimate)."""
    unfinished: tuple[int, ...] = ()
    """Documents of this run still RECEIVED at its end (see :func:`unfinished_documents`): the run failed."""
    duplicate_items: tuple[tuple[str, str], ...] = ()
    """The duplicates by name: (the document in this run's batch, the code or id it duplicates)."""
    stacks: tuple[dict[str, Any], ...] = ()
    """Per scanned stack (:func:`digitize.pipeline.stacks.stack_summaries`): sheets found, documents made,
    pages left out, items sent to review."""

    @property
    def processed(self) -> int:
        return self.archived + sum(self.quarantined.values())

    @property
    def pages_per_minute(self) -> float:
        return 60.0 * self.pages / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Time to finish the backlog at this run's pace (``None`` when nothing was processed to measure it)."""
        if not self.remaining:
            return 0.0
        return self.remaining * self.seconds / self.processed if self.processed else None

    @property
    def slowest_stage(self) -> str | None:
        return max(self.stage_seconds, key=lambda s: self.stage_seconds[s]) if self.stage_seconds else None

    def lines(self) -> list[str]:
        quarantined = ", ".join(f"{r}: {n}" for r, n in sorted(self.quarantined.items())) or "none"
        lines = [
            f"archived: {self.archived}, quarantined: {sum(self.quarantined.values())} ({quarantined}), "
            f"already done: {self.skipped}, duplicates: {self.duplicates}, manifest rows refused: {self.rejected_rows}",
            f"pages: {self.pages} in {self.seconds:.1f} s ({self.pages_per_minute:.1f} pages/min); "
            f"slowest stage: {self.slowest_stage or 'n/a'}",
        ]
        if self.stage_seconds:
            lines.append("time by stage (wall s / CPU s of the process tree): " + ", ".join(
                f"{name} {wall:.1f}/{self.stage_cpu.get(name, 0.0):.1f}" for name, wall in self.stage_seconds.items()))
        if self.duplicate_items:
            named = ", ".join(f"{key} = {existing}" for key, existing in self.duplicate_items[:NAMED_IN_TEXT])
            more = len(self.duplicate_items) - NAMED_IN_TEXT
            lines.append(f"duplicates (not processed again): {named}" + (f" and {more} more" if more > 0 else ""))
        lines += [stack_line(stack) for stack in self.stacks]
        if self.remaining:
            lines.append(f"backlog: {self.remaining} document(s) still to process, about "
                         f"{_duration(self.eta_seconds)} at this run's pace")
        if self.unfinished:
            lines.append(f"NOT FINISHED: {len(self.unfinished)} document(s) still RECEIVED after this run "
                         f"(ids {_ids(self.unfinished)}): their task failed, see its log, then run again")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The summary as a run's XCom carries it: plain figures, rounded for reading."""
        return {"archived": self.archived, "quarantined": self.quarantined, "skipped": self.skipped,
                "duplicates": self.duplicates, "rejected_rows": self.rejected_rows, "pages": self.pages,
                "seconds": round(self.seconds, 1), "pages_per_minute": round(self.pages_per_minute, 1),
                "slowest_stage": self.slowest_stage, "remaining": self.remaining, "eta_seconds": self.eta_seconds,
                "unfinished": list(self.unfinished), "duplicate_items": [list(d) for d in self.duplicate_items],
                "stage_seconds": self.stage_seconds, "stage_cpu": self.stage_cpu,
                "stacks": [dict(s) for s in self.stacks]}


def stack_line(stack: dict[str, Any]) -> str:
    """One stack of a run, for the officer: what was found, made, left out, and what needs a person."""
    made = stack["made"]
    codes = ", ".join(made[:NAMED_IN_TEXT]) + (f" and {len(made) - NAMED_IN_TEXT} more" if len(made) > NAMED_IN_TEXT
                                                 else "")
    left_out = ", ".join(map(str, stack["left_out"][:NAMED_IN_TEXT * 5])) or "none"
    if stack.get("split_before"):
        return (f"stack {stack['batch']}/{stack['name']}: split by an earlier run, its {len(made)} document(s) "
                f"already archived ({codes}); move it out of the inbox (or set DIGITIZE_MOVE_DONE)")
    review = "; ".join(stack["review"][:NAMED_IN_TEXT]) or "nothing"
    if len(stack["review"]) > NAMED_IN_TEXT:
        review += f" and {len(stack['review']) - NAMED_IN_TEXT} more"
    return (f"stack {stack['batch']}/{stack['name']}: {stack['pages']} page(s), {len(stack['sheets'])} sheet(s) found, "
            f"{len(made)} document(s) made" + (f" ({codes})" if made else "")
            + f"; blank pages left out: {left_out}; sent to review: {review}")


def _ids(document_ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in document_ids[:NAMED_IN_TEXT])
    return shown + (f" and {len(document_ids) - NAMED_IN_TEXT} more" if len(document_ids) > NAMED_IN_TEXT else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def unfinished_documents(catalog: Catalog, document_ids: Iterable[int]) -> tuple[int, ...]:
    """Those of a run's documents still RECEIVED and held by no live worker: a run that leaves any failed.

    A document whose task gave up (a transient error past its retries, a worker lost) stays RECEIVED;
    one that a live worker of an overlapping run holds is that run's to finish, so it does not count.
    """
    wanted = set(document_ids)
    now = datetime.now(UTC)
    return tuple(d.id for d in catalog.documents(status="RECEIVED") if d.id in wanted and not (
        d.lease_owner and d.lease_expires_at is not None and d.lease_expires_at > now))


def summarize(outcomes: Sequence[DocumentOutcome | dict[str, Any]], *, duplicates: int, rejected_rows: int,
              seconds: float, remaining: int = 0, unfinished: Sequence[int] = (),
              duplicate_items: Iterable[Sequence[str]] = (), stacks: Iterable[dict[str, Any]] = ()) -> RunSummary:
    """Aggregate outcomes (objects or their XCom dicts) into one run summary."""
    rows = [o.as_dict() if isinstance(o, DocumentOutcome) else o for o in outcomes]
    quarantined: dict[str, int] = {}
    stages = StageTimes()
    for row in rows:
        if row["status"] == "QUARANTINED":
            quarantined[row["reason"]] = quarantined.get(row["reason"], 0) + 1
        stages.merge(row["seconds"], row.get("cpu", {}))  # outcomes of older runs carry no CPU
    stage_seconds, stage_cpu = stages.rounded()
    return RunSummary(
        archived=sum(r["status"] == "ARCHIVED" for r in rows), quarantined=quarantined,
        skipped=sum(r["status"] == "SKIPPED" for r in rows), duplicates=duplicates, rejected_rows=rejected_rows,
        pages=sum(r["pages"] for r in rows), seconds=seconds, stage_seconds=stage_seconds, remaining=remaining,
        stage_cpu=stage_cpu, unfinished=tuple(unfinished),
        duplicate_items=tuple((str(k), str(c)) for k, c in duplicate_items), stacks=tuple(stacks))
