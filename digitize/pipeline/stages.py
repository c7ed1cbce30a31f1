"""Process documents through every stage: register → OCR → code → sign → archive → catalog.

This is the one code path used by the CLI and by the Airflow tasks. It talks to
the outside world only through the modules that own it (catalog, archive,
ocr, signing). Each document is a small transaction: a failure of the document
quarantines it with a reason code and leaves its original untouched; a
transient failure (S3 or database unavailable) is raised so the caller
retries; a re-run resumes where the last one stopped without a second code,
a second signature or a second object.

Here: registering a batch, and the stages of one document, in one process
(:func:`process_document`) or split between machines (:func:`prepare_document`,
then :func:`finish_document`). Beside it: ``leases`` (who holds a document),
``staging`` (what passes from prepare to finish), ``sidecar``, ``summary``
(outcomes and run summaries), ``context`` (per-process handles) and ``chunks``
(the chunk runner both DAGs call).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.checksums import sha256_bytes
from digitize.clock import business_today
from digitize.errors import (
    AgencyUnknown,
    ArchiveIntegrityError,
    ConfigurationError,
    CorruptFile,
    DigitizeError,
    InputError,
    LowResolution,
    ManifestError,
    ScratchSpaceFull,
    SignatureFailed,
    TransientError,
)
from digitize.intake import BatchPlan, BatchSource, LocalBatch
from digitize.pipeline.context import PipelineContext
from digitize.pipeline.leases import Lease, LeaseLost, dead_local_owner, new_owner
from digitize.pipeline.register import document_spec
from digitize.pipeline.segments import fetch_segment, finish_stack_document, segment_of, stored_stack_originals
from digitize.pipeline.sidecar import MEDIA_TYPES, build_sidecar, put_sidecar
from digitize.pipeline.staging import drop_staging, load_staged, stage_for_signing, staged_state
from digitize.pipeline.summary import DocumentOutcome, Stopwatch
from digitize.plugin_manager import plugin_manager
from digitize.stageclock import StageTimes

if TYPE_CHECKING:
    from digitize.catalog import Agency, DocumentRecord
    from digitize.ocr import OcrResult
    from digitize.signing import DocumentQr, SignatureVerdict

log = logging.getLogger(__name__)

_EXTENSIONS = {"pdf": ".pdf", "tiff": ".tif", "jpeg": ".jpg", "png": ".png"}
PREPARED = "PREPARED"
"""Outcome of :func:`prepare_document`: OCR'd, coded, originals archived, staged for :func:`finish_document`."""
DONE_FOLDER = "done"
"""Sub-folder of a batch that verified originals move to when ``DIGITIZE_MOVE_DONE`` is on."""


def correct_document(ctx: PipelineContext, code: str, plan: BatchPlan, *, actor: str,
                     reason: str) -> DocumentOutcome:
    """Supersede the archived document ``code`` by the one document of ``plan`` (a corrected scan or metadata).

    The correction keeps the code and gets the next version: new objects under ``…/v<N+1>/``, the
    old version kept and linked, events saying who corrected what and why. Coverage counts the code once.
    """
    current = ctx.catalog.get_by_code(code)
    if current is None:
        raise ManifestError(f"no archived document has code {code}", hint="Check the code with 'show'.")
    if len(plan.documents) != 1 or plan.errors:
        problems = "; ".join(f"row {e.row}: {e.message}" for e in plan.errors)
        found = problems or f"found {len(plan.documents)}"
        raise ManifestError(f"a correction batch must describe exactly one valid document ({found})")
    record, _created = ctx.catalog.supersede(current.id, document_spec(plan, plan.documents[0]), actor=actor,
                                             reason=reason)
    return process_document(ctx, record.id, plan.files)


FAULT_POINTS = ("after_ocr", "after_code", "after_sign", "during_upload")
"""The stage boundaries where plugins' ``on_stage`` hook runs: see :func:`fault_point`."""


def fault_point(stage: str) -> None:
    """Run the plugins' ``on_stage`` hook (:mod:`digitize.pluginspec`): none in production.

    A test plugin injects faults here (``tests/plugins/faults.py``: SIGKILL, ENOSPC). Stages:
    :data:`FAULT_POINTS` (``during_upload`` = after the originals and the signed PDF are stored,
    before the sidecar).
    """
    plugin_manager().hook.on_stage(stage=stage)


def process_document(ctx: PipelineContext, document_id: int, batch_root: Path | BatchSource) -> DocumentOutcome:
    """Take one registered document through every stage; quarantine it on a document failure.

    ``batch_root`` is the batch folder or any :class:`~digitize.intake.inbox.BatchSource` (an S3 prefix: the
    originals are then fetched into the scratch folder). Transient errors and OSError propagate (the
    caller retries), so do configuration errors (the run stops); nothing else does. The document is first
    claimed (:meth:`Catalog.claim`): when another live worker holds it, it is SKIPPED here, so overlapping
    runs process each document exactly once.
    Both stages run in this process, with nothing staged; a document an earlier :func:`prepare_document`
    left prepared is only finished (no second OCR).
    """
    source = _source(batch_root)

    def work(record: DocumentRecord, watch: Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = staged_state(ctx, record)
        if state is not None:
            return _finish_staged(ctx, record, state, watch, checkpoint, source)
        return _process(ctx, record, source, watch, checkpoint)

    return _run_claimed(ctx, document_id, work)


def prepare_document(ctx: PipelineContext, document_id: int, batch_root: Path | BatchSource) -> DocumentOutcome:
    """First stage, for any worker: check and OCR the originals, allocate the code, archive the originals.

    What signing needs (the unsigned PDF/A and a JSON summary of the OCR and of the stored originals) is
    staged in the archive bucket (:func:`~digitize.archive.s3.staging_keys`), so :func:`finish_document` can
    run on another machine. The outcome is PREPARED (the document stays RECEIVED, its lease released); a
    document already prepared by an earlier run is not OCR'd again. Failures as in :func:`process_document`.
    """
    source = _source(batch_root)

    def work(record: DocumentRecord, watch: Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = staged_state(ctx, record)
        if state is None:
            state = _prepare(ctx, record, source, watch, checkpoint)
        return DocumentOutcome(record.id, PREPARED, state["code"], None, len(state["ocr"]["pages"]), watch.seconds)

    return _run_claimed(ctx, document_id, work)


def finish_document(ctx: PipelineContext, document_id: int,
                    batch_root: Path | BatchSource | None = None) -> DocumentOutcome:
    """Second stage, on the machine holding the signing key: sign, verify, archive, catalogue, index.

    Works only from what :func:`prepare_document` staged (the originals are not read; ``batch_root`` is
    needed only for ``DIGITIZE_MOVE_DONE``) and deletes the staged objects once the document is archived.
    A document that is not prepared is SKIPPED and stays RECEIVED for the next run.
    """
    source = None if batch_root is None else _source(batch_root)
    record = ctx.catalog.get_document(document_id)
    if record.status == "ARCHIVED" and record.code is not None:
        drop_staging(ctx, record.code, record.version)  # an earlier finish died between archiving and clean-up

    def work(record: DocumentRecord, watch: Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = staged_state(ctx, record)
        if state is None:
            log.info("document %s is not prepared: left for the next run", record.id)
            return DocumentOutcome(record.id, "SKIPPED", record.code, None, seconds=watch.seconds)
        return _finish_staged(ctx, record, state, watch, checkpoint, source)

    return _run_claimed(ctx, document_id, work)


def finish_prepared(ctx: PipelineContext, prepared: DocumentOutcome | dict[str, Any],
                    batch_root: Path | BatchSource | None = None) -> DocumentOutcome:
    """Finish a document from its :func:`prepare_document` outcome (or that outcome's XCom dict).

    A document that prepare quarantined or skipped keeps that outcome; a finished one reports the pages and
    the stage times of both stages, so a run's summary reads as if one task had done it all.
    """
    row = prepared.as_dict() if isinstance(prepared, DocumentOutcome) else prepared
    if row["status"] != PREPARED:
        return DocumentOutcome(row["document_id"], row["status"], row["code"], row["reason"], row["pages"],
                               dict(row["seconds"]), dict(row.get("cpu", {})))
    done = finish_document(ctx, int(row["document_id"]), batch_root)
    times = StageTimes()
    times.merge(row["seconds"], row.get("cpu", {}))
    times.merge(done.seconds, done.cpu)
    seconds, cpu = times.rounded()
    return DocumentOutcome(done.document_id, done.status, done.code, done.reason, done.pages, seconds, cpu)


def _source(batch_root: Path | BatchSource) -> BatchSource:
    return LocalBatch(batch_root) if isinstance(batch_root, Path) else batch_root


def _run_claimed(ctx: PipelineContext, document_id: int,
                 work: Callable[[DocumentRecord, Stopwatch, Callable[[str], None]], DocumentOutcome]
                 ) -> DocumentOutcome:
    """Claim a RECEIVED document, run ``work`` under a renewed lease, and map failures to outcomes.

    A document failure quarantines with its reason code, and so does any unexpected error (as
    INTERNAL_ERROR), so one document never stops its chunk. Transient errors, configuration errors and
    OSError (the machine, not the document) propagate: the task is retried or the run stops.
    """
    watch = Stopwatch()
    with watch.recording():
        outcome = _claim_and_run(ctx, document_id, work, watch)
    return dataclasses.replace(outcome, seconds=watch.seconds, cpu=watch.cpu)


def _claim_and_run(ctx: PipelineContext, document_id: int,
                   work: Callable[[DocumentRecord, Stopwatch, Callable[[str], None]], DocumentOutcome],
                   watch: Stopwatch) -> DocumentOutcome:
    catalog = ctx.catalog
    record = catalog.get_document(document_id)
    if record.status != "RECEIVED":
        return DocumentOutcome(document_id, "SKIPPED", record.code, record.reason)
    owner = new_owner()
    dead = dead_local_owner(record.lease_owner)
    with catalog.transaction():  # the claim, and the events saying who took it and whose attempt it resumes
        claimed = catalog.claim(record.id, owner, ctx.settings.lease_seconds, take_over=dead)
        if claimed and record.lease_owner and record.lease_owner != owner:
            catalog.add_event(record.id, "processing_resumed", "warning", tool="digitize", tool_version=__version__,
                              detail=f"an earlier attempt (worker {record.lease_owner}) stopped before finishing; "
                                     f"resumed by {owner} with code {record.code or '(none allocated yet)'}")
        if claimed and ctx.worker:  # in the claim's commit: a chunk task's own write per document cost a commit
            catalog.add_event(record.id, "processing_worker", "success", tool="digitize", tool_version=__version__,
                              detail=f"worker {ctx.worker}")
    if not claimed:
        log.info("document %s is being processed by another worker: skipped", document_id)
        current = catalog.get_document(document_id)
        return DocumentOutcome(document_id, "SKIPPED", current.code, current.reason)
    record = catalog.get_document(document_id)
    with Lease(ctx, record.id, owner) as lease:

        def checkpoint(stage: str) -> None:
            """Between stages: the test fault hook, then stop if the lease was lost."""
            fault_point(stage)
            lease.check(stage)

        try:
            try:
                return work(record, watch, checkpoint)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ScratchSpaceFull(f"the scratch disk is full while processing document {record.id}; "
                                           "nothing was archived") from exc
                raise
        except LeaseLost as lost:
            catalog.add_event(record.id, "processing_abandoned", "warning", tool="digitize", tool_version=__version__,
                              detail=f"worker {owner} lost its claim at {lost}; another worker carries on")
            return DocumentOutcome(document_id, "SKIPPED", record.code, None, seconds=watch.seconds)
        except TransientError:
            raise
        except (InputError, SignatureFailed, ArchiveIntegrityError) as exc:
            return _quarantine(ctx, record.id, exc, watch)
        except DigitizeError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            return _quarantine(ctx, record.id, exc, watch)
        except OSError:
            raise  # the machine's disk or network, not the document: the task is retried
        except Exception as exc:  # a bug or a limit the document hit (RecursionError…): it alone stops
            return _quarantine(ctx, record.id, _internal_error(exc), watch)


def _internal_error(exc: Exception) -> DigitizeError:
    """An unexpected error of one document, told by its type and where it was raised, never by its text
    (which may quote the document's personal data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return DigitizeError(f"processing failed with an unexpected {type(exc).__name__}{where}",
                         hint="The original is kept as registered. Report the document to IT staff with the "
                              "run's log; resubmitting it unchanged fails the same way.")


def _quarantine(ctx: PipelineContext, document_id: int, exc: DigitizeError, watch: Stopwatch) -> DocumentOutcome:
    message = f"{exc.message} — {exc.hint}"
    with ctx.catalog.transaction():  # the status and its event: both or neither
        ctx.catalog.mark_quarantined(document_id, exc.reason, message)
        ctx.catalog.add_event(document_id, "quarantine", "failure", tool="digitize", tool_version=__version__,
                              detail=f"[{exc.reason}] {message}")
    log.warning("document %s quarantined: [%s] %s", document_id, exc.reason, exc.message)
    record = ctx.catalog.get_document(document_id)
    return DocumentOutcome(document_id, "QUARANTINED", record.code, exc.reason, seconds=watch.seconds)


def _check_originals(record: DocumentRecord, source: BatchSource, scratch: Path) -> list[Path]:
    """Each original read once into scratch; the copy must be the bytes that were registered.

    Everything after this uses the copies, so nothing that happens to the inbox meanwhile reaches the
    signed PDF or the archive (a re-copied file is a new document).
    """
    paths = []
    for spec in record.files:
        if not source.exists(spec.name):
            raise CorruptFile(f"original {spec.name} is no longer in batch {record.batch_id}",
                              hint="Put the file back in the batch folder and retry the document.")
        path, digest = source.fetch(spec.name, scratch)
        if digest != spec.sha256:
            raise CorruptFile(f"original {spec.name} changed after it was registered",
                              hint="Submit the new scan as a new batch; the old registration stays quarantined.")
        paths.append(path)
    return paths


def _process(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: Stopwatch,
             checkpoint: Callable[[str], None]) -> DocumentOutcome:
    """Both stages in one process: sign before storing anything, so a failed signature leaves no object."""
    agency = _agency(ctx, record)
    with tempfile.TemporaryDirectory(prefix="digitize-", dir=ctx.settings.work_dir) as scratch:
        ocr, code, originals, formats = _ocr_and_code(ctx, record, source, watch, checkpoint, Path(scratch))
        signed, verdict = _sign_and_verify(ctx, record, code, ocr.pdf_path.read_bytes(), watch, ocr.page_one_gray)
        checkpoint("after_sign")
        stored = _store_originals(ctx, record, code, originals, formats, watch)
        return _archive_signed(ctx, record, agency, code, ocr, stored, signed, verdict, watch, checkpoint, source)


def _prepare(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: Stopwatch,
             checkpoint: Callable[[str], None]) -> dict[str, Any]:
    """The prepare stage: OCR, code, originals archived, then what finishing needs staged; returns that state."""
    _agency(ctx, record)  # before any OCR: the sidecar will need it
    with tempfile.TemporaryDirectory(prefix="digitize-", dir=ctx.settings.work_dir) as scratch:
        ocr, code, originals, formats = _ocr_and_code(ctx, record, source, watch, checkpoint, Path(scratch))
        stored = _store_originals(ctx, record, code, originals, formats, watch)
        return stage_for_signing(ctx, record, code, ocr, stored, watch)


def _ocr_and_code(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: Stopwatch,
                  checkpoint: Callable[[str], None], scratch: Path
                  ) -> tuple[OcrResult, str, list[Path], list[str]]:
    """Fetch and check the originals, make the searchable PDF/A, allocate the code and write it into the PDF."""
    from digitize.intake import sniff_format
    from digitize.match import kept_ocr, ocr_options
    from digitize.ocr import make_searchable_pdf, set_document_metadata

    catalog, settings = ctx.catalog, ctx.settings
    with watch.stage("load"):  # a stack's document: its own pages as the split cut them, not the inbox's stack
        originals = [] if record.stack_sha256 else _check_originals(record, source, scratch)
        sources = fetch_segment(ctx, record, scratch) if record.stack_sha256 else originals
    formats = [sniff_format(p) for p in originals]
    out_pdf = scratch / "document.pdf"
    options = ocr_options(settings, scratch)
    # OCR's own load, cleanup, orientation and ocr stages are recorded inside "pdf"; 'propose' may have OCR'd
    # these very bytes (same SHA-256s) already, never a stack's
    with watch.stage("pdf"), ctx.ocr_slot():
        digests = [f.sha256 for f in record.files]
        kept = None if record.stack_sha256 else kept_ocr(ctx.archive, digests, out_pdf, options)
        ocr: OcrResult = kept or make_searchable_pdf(sources, out_pdf, options)
    catalog.add_event(record.id, "ocr", "success", tool="tesseract", tool_version=ocr.tool_versions["tesseract"],
                      detail=f"{len(ocr.pages)} page(s), mean confidence {_fmt(ocr.mean_confidence)}, "
                             f"{sum(p.blank for p in ocr.pages)} blank"
                             + ("; reused the OCR 'propose' kept for these bytes" if kept else ""))
    low = [p for p in ocr.pages if "LOW_RESOLUTION" in p.flags]
    if low and settings.low_dpi_action == "quarantine":
        pages = ", ".join(f"page {p.index + 1} ({p.source_file}) {p.dpi:.0f} dpi" for p in low)
        raise LowResolution(f"{pages}: below the {settings.min_dpi} dpi of Decree 30/2020 "
                            "(DIGITIZE_LOW_DPI_ACTION=quarantine)")
    checkpoint("after_ocr")

    year = business_today().year  # the code's year is Vietnam's: 31 Dec 23:30 UTC is already next year
    _check_template(settings.code_template, record, year)
    with watch.stage("code"), catalog.transaction():  # the code and its event: both or neither
        code = catalog.allocate_code(record.id, template=settings.code_template, year=year)
        catalog.add_event(record.id, "identifier_assignment", "success", tool="digitize", tool_version=__version__,
                          detail=f"code {code}")
    checkpoint("after_code")
    with watch.stage("pdf"):
        set_document_metadata(out_pdf, title=record.title, document_code=code, agency_code=record.agency_code)
    return ocr, code, originals, formats


def _sign_and_verify(ctx: PipelineContext, record: DocumentRecord, code: str, unsigned: bytes,
                     watch: Stopwatch, known_gray: Mapping[bytes, Any] | None = None) -> tuple[bytes, Any]:
    """Sign (once: see :func:`_signed_pdf`) and check the signature against the trust roots.

    A new signature's event and its check's are one transaction (a failed check has no event: the
    quarantine tells it). The signature's is committed before anything is stored: a re-run that finds the
    signed PDF archived reads the review flags from it.
    """
    from digitize.archive import document_keys
    from digitize.signing import verify_pdf

    catalog, pdf_key = ctx.catalog, document_keys(code, record.version).pdf
    with watch.stage("sign"):
        signed, verdict, review = _signed_pdf(ctx, record, pdf_key, unsigned, code, known_gray)
        fresh = verdict is not None
        if verdict is None:  # signed by an earlier, interrupted run: check what the archive holds
            verdict = verify_pdf(signed, ctx.settings.trust_roots)
    with catalog.transaction():
        if fresh:
            catalog.add_event(record.id, "signature", "warning" if review else "success", tool="pyhanko",
                              tool_version=ctx.tool_versions["pyhanko"],
                              detail=f"PAdES signature by {ctx.signer.signer_name} on {pdf_key}"
                              + "".join(f"; review: {flag}" for flag in review))
        if verdict.valid:
            catalog.add_event(record.id, "signature_validation", "success", tool="pyhanko",
                              tool_version=ctx.tool_versions["pyhanko"],
                              detail=f"signer {verdict.signer}: {verdict.summary}")
    if not verdict.valid:
        raise SignatureFailed(f"signature of {code} does not verify: {verdict.summary}")
    return signed, verdict


def _store_originals(ctx: PipelineContext, record: DocumentRecord, code: str, originals: Sequence[Path],
                     formats: Sequence[str], watch: Stopwatch) -> list[tuple[Any, Any, str]]:
    """Archive each original under the code's keys, read back and compared with its registered SHA-256.

    A stack's document has the stack as its original, archived once by the split: it is only checked.
    """
    from digitize.archive import document_keys

    if record.stack_sha256:
        with watch.stage("archive"):
            return stored_stack_originals(ctx, record)
    keys = document_keys(code, record.version)
    stored = []
    for spec, path, fmt in zip(record.files, originals, formats, strict=True):
        with watch.stage("archive"):
            obj = ctx.archive.put(keys.original(spec.position, _EXTENSIONS[fmt]), path.read_bytes(),
                                  content_type=MEDIA_TYPES[fmt], metadata={"sha256": spec.sha256, "code": code})
        if obj.sha256 != spec.sha256:
            raise ArchiveIntegrityError(f"archived original {obj.key} differs from the registered scan")
        stored.append((spec, obj, fmt))
    return stored


def _agency(ctx: PipelineContext, record: DocumentRecord) -> Agency:
    agency = ctx.catalog.get_agency(record.agency_code)
    if agency is None:
        raise AgencyUnknown(f"agency {record.agency_code} is not in the catalog")
    return agency


def _archive_signed(ctx: PipelineContext, record: DocumentRecord, agency: Agency, code: str, ocr: OcrResult,
                    stored: Sequence[tuple[Any, Any, str]], signed: bytes, verdict: Any, watch: Stopwatch,
                    checkpoint: Callable[[str], None], source: BatchSource | None) -> DocumentOutcome:
    """Store the signed PDF and the sidecar, mark the document archived, index it, clear the inbox."""
    from digitize.archive import document_keys
    from digitize.catalog import ArchivedInfo
    from digitize.match import forget_ocr

    catalog, archive = ctx.catalog, ctx.archive
    keys = document_keys(code, record.version)
    with watch.stage("archive"):
        pdf_obj = archive.put(keys.pdf, signed, content_type="application/pdf", metadata={"code": code})
    catalog.add_event(record.id, "replication", "success", tool="boto3", tool_version=ctx.tool_versions["boto3"],
                      detail=f"{len(stored) + 1} object(s) stored and read back, SHA-256 verified")
    checkpoint("during_upload")

    review = _review_reasons(ctx, record, ocr, keys.pdf)
    needs_review = bool(review)
    sidecar = build_sidecar(ctx, record, agency_name=agency.name, agency_level=agency.level, code=code,
                            ocr=ocr, verdict=verdict, pdf_obj=pdf_obj, originals=stored,
                            needs_review=needs_review, review_reasons=review,
                            stack=segment_of(ctx, record).sidecar() if record.stack_sha256 else None)
    sidecar_bytes = json.dumps(sidecar, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    with watch.stage("archive"):
        sidecar_obj = put_sidecar(archive, keys.sidecar, sidecar_bytes, code)
        if sidecar_obj.sha256 != sha256_bytes(sidecar_bytes):  # an interrupted run's sidecar was kept: its time
            sidecar = json.loads(archive.get(sidecar_obj.key))

    with catalog.transaction():  # archived, and the event that says so: both or neither
        catalog.mark_archived(record.id, ArchivedInfo(
            pdf_key=pdf_obj.key, pdf_sha256=pdf_obj.sha256, sidecar_key=sidecar_obj.key,
            sidecar_sha256=sidecar_obj.sha256, original_keys=tuple(o.key for _, o, _ in stored),
            pages=len(ocr.pages), mean_confidence=ocr.mean_confidence, needs_review=needs_review,
            archived_at=datetime.fromisoformat(sidecar["archived_at"])))
        catalog.add_event(record.id, "ingestion_complete", "warning" if needs_review else "success",
                          tool="digitize", tool_version=__version__,
                          detail=f"archived as {code}" + (" (flagged for review)" if needs_review else ""))
    forget_ocr(archive, [spec.sha256 for spec in record.files])  # kept by 'propose': the text is archived now
    with watch.stage("index"):
        _index_text(ctx, record.id, [p.text for p in ocr.pages])
    local = source if ctx.settings.move_done and isinstance(source, LocalBatch) else None
    if record.stack_sha256:
        finish_stack_document(ctx, record, local)
    elif local is not None:
        _move_to_done(ctx, record, local)
    return DocumentOutcome(record.id, "ARCHIVED", code, None, len(ocr.pages), watch.seconds)


def _review_reasons(ctx: PipelineContext, record: DocumentRecord, ocr: OcrResult, pdf_key: str) -> list[str]:
    """Why a person must look at the document: OCR page flags, and the signer's (a stamp over ink), which
    its signature event recorded, so that a signed PDF reused after an interruption keeps them."""
    from digitize.signing import REVIEW_FLAGS

    reasons = [f for f in ("LOW_CONFIDENCE", "LOW_RESOLUTION") if any(f in p.flags for p in ocr.pages)]
    signed = [e.detail or "" for e in ctx.catalog.events(record.id) if e.event_type == "signature"]
    return reasons + [f for f in REVIEW_FLAGS if any(pdf_key in d and f"review: {f}" in d for d in signed)]


def _finish_staged(ctx: PipelineContext, record: DocumentRecord, state: dict[str, Any], watch: Stopwatch,
                   checkpoint: Callable[[str], None], source: BatchSource | None) -> DocumentOutcome:
    """The finish stage from what prepare staged: no original is read, no OCR runs."""
    code = record.code
    assert code is not None  # staged_state found the state under it
    agency = _agency(ctx, record)
    unsigned, stored, ocr = load_staged(ctx, record, state, watch)
    signed, verdict = _sign_and_verify(ctx, record, code, unsigned, watch)
    checkpoint("after_sign")
    outcome = _archive_signed(ctx, record, agency, code, ocr, stored, signed, verdict, watch, checkpoint, source)
    drop_staging(ctx, code, record.version)
    return outcome


def _index_text(ctx: PipelineContext, document_id: int, pages: list[str]) -> None:
    """Make the archived document findable by its text; a failure here never undoes the archiving.

    A document left unindexed is picked up by ``python -m digitize search rebuild --missing-only``.
    """
    from digitize import search

    try:
        with ctx.catalog.transaction():  # the pages and the event that says so: both or neither
            count = search.index_document(ctx.catalog, document_id, pages)
            ctx.catalog.add_event(document_id, "indexing", "success", tool="digitize", tool_version=__version__,
                                  detail=f"{count} page(s) indexed for search")
    except DigitizeError as exc:
        ctx.catalog.add_event(document_id, "indexing", "warning", tool="digitize", tool_version=__version__,
                              detail=f"not indexed ({exc.reason}); run 'python -m digitize search rebuild'")


def _move_to_done(ctx: PipelineContext, record: DocumentRecord, source: LocalBatch) -> None:
    """``DIGITIZE_MOVE_DONE``: only now, with every archived copy verified by read-back, clear the inbox."""
    moved = []
    for spec in record.files:
        path = source.inside(spec.name)
        if path is None or not path.is_file():
            continue
        target = source.root / DONE_FOLDER / spec.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source.root / spec.name, target)
        moved.append(spec.name)
    ctx.catalog.add_event(record.id, "originals_moved", "success", tool="digitize", tool_version=__version__,
                          detail=f"{len(moved)} verified original(s) moved to {DONE_FOLDER}/ of the batch folder")


def _check_template(template: str, record: DocumentRecord, year: int) -> None:
    """Keys and paths are built only from codes: a template whose codes are not safe key parts stops the run
    before any code is allocated (never a '/' or '..' from configuration into the archive)."""
    from digitize.archive import validate_code
    from digitize.codes import format_document_code

    try:
        validate_code(format_document_code(template, record.agency_code, year, record.kind, 1))
    except ValueError as exc:
        raise ConfigurationError(f"DIGITIZE_CODE_TEMPLATE {template!r} makes codes unfit for archive keys ({exc})",
                                 hint="Use only the fields and '.', '-' or '_' between them.") from None


def _qr(ctx: PipelineContext, record: DocumentRecord) -> DocumentQr | None:
    """The QR of Circular 01/2023 goes on procedure results only, with the stamp."""
    from digitize.signing import DocumentQr

    if record.kind != "KQ" or not ctx.settings.signing_stamp:
        return None
    return DocumentQr(dossier_code=record.dossier_code or "", procedure_code=record.procedure_code or "",
                      holder_id=record.holder_id or "", document_name=record.title,
                      source_system=ctx.settings.source_system,
                      issued_at=datetime.combine(record.issued_date, datetime.min.time(), tzinfo=UTC),
                      valid_until=record.valid_until)


def _signed_pdf(ctx: PipelineContext, record: DocumentRecord, pdf_key: str, unsigned: bytes, code: str,
                known_gray: Mapping[bytes, Any] | None) -> tuple[bytes, SignatureVerdict | None, tuple[str, ...]]:
    """Sign, unless an earlier interrupted run already archived the signed PDF: never sign twice.

    A new signature comes with the signer's own verdict (it checks every one it makes) and its review
    flags, for the caller's events; a reused PDF with ``None`` (the caller verifies it), its event written.
    """
    existing = ctx.archive.head(pdf_key)
    if existing is not None:
        ctx.catalog.add_event(record.id, "signature", "success", tool="digitize", tool_version=__version__,
                              detail=f"reused the signed PDF already archived at {pdf_key}")
        return ctx.archive.get(pdf_key), None, ()
    return ctx.signer.sign_checked(unsigned, document_code=code, title=record.title, qr=_qr(ctx, record),
                                   known_gray=known_gray)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def process_documents(ctx: PipelineContext, document_ids: Iterable[int], batch_root: Path | BatchSource,
                      on_done: Callable[[DocumentOutcome], None] | None = None) -> list[DocumentOutcome]:
    """Process documents one after another (each uses ``ocr_jobs`` Tesseract processes for its pages)."""
    outcomes = []
    for document_id in document_ids:
        outcome = process_document(ctx, document_id, batch_root)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
