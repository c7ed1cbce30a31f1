"""Process documents through every stage: register → OCR → code → sign → archive → catalog.

This is the one code path used by the CLI and by the Airflow tasks. It talks to
the outside world only through the modules that own it (catalog, archive,
ocr, signing). Each document is a small transaction: a failure of the document
quarantines it with a reason code and leaves its original untouched; a
transient failure (S3 or database unavailable) is raised so the caller
retries; a re-run resumes where the last one stopped without a second code,
a second signature or a second object.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.config import REPO_ROOT, Settings, load_settings
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
from digitize.intake import BatchPlan, BatchSource, LocalBatch, PlannedDocument, RowError
from digitize.plugin_manager import plugin_manager

if TYPE_CHECKING:
    from digitize.archive import S3Archive
    from digitize.catalog import Agency, Catalog, DocumentRecord, DocumentSpec
    from digitize.ocr import OcrResult
    from digitize.signing import AgencySigner, DocumentQr, SignatureVerdict

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = REPO_ROOT / "schemas" / "sidecar.schema.json"
_MEDIA_TYPES = {"pdf": "application/pdf", "tiff": "image/tiff", "jpeg": "image/jpeg", "png": "image/png"}
_EXTENSIONS = {"pdf": ".pdf", "tiff": ".tif", "jpeg": ".jpg", "png": ".png"}
_HASH_CHUNK = 1 << 20
PREPARED = "PREPARED"
"""Outcome of :func:`prepare_document`: OCR'd, coded, originals archived, staged for :func:`finish_document`."""
DONE_FOLDER = "done"
"""Sub-folder of a batch that verified originals move to when ``DIGITIZE_MOVE_DONE`` is on."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed so a large scan is never read whole into memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Duplicate:
    """A document of this batch whose bytes were already registered elsewhere."""

    key: str
    """The manifest's document key (document_id or file name)."""

    existing_id: int
    """Catalog id of the document first registered with these bytes."""

    existing_code: str | None
    """Its code, if it has one."""

    existing_batch: str
    """Batch it first arrived in."""


@dataclass(frozen=True)
class RegisteredBatch:
    """Result of registering a batch: what to process, what was a duplicate, what the manifest refused."""

    batch_id: str
    """Name of the batch folder."""

    root: Path
    """The batch folder."""

    to_process: tuple[int, ...]
    """Catalog ids of documents still to take through the stages."""

    duplicates: tuple[Duplicate, ...]
    """Documents already registered from another batch (or twice in this one)."""

    rejected: tuple[RowError, ...]
    """Manifest rows and files that could not be registered."""

    source: BatchSource | None = None
    """Where the originals are read from (``None``: the local folder ``root``)."""


@dataclass(frozen=True)
class DocumentOutcome:
    """What happened to one document in this run; small and free of personal data (safe for XCom)."""

    document_id: int
    """Catalog id."""

    status: str
    """ARCHIVED, QUARANTINED, SKIPPED (already done by an earlier run) or PREPARED (see :func:`prepare_document`)."""

    code: str | None = None
    """Assigned code, if any."""

    reason: str | None = None
    """Stable reason code when quarantined."""

    pages: int = 0
    """Pages processed in this run (0 when skipped)."""

    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage in this run."""

    def as_dict(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "status": self.status, "code": self.code,
                "reason": self.reason, "pages": self.pages, "seconds": self.seconds}


def document_spec(plan: BatchPlan, doc: PlannedDocument) -> DocumentSpec:
    """What the catalog registers for one manifest document: its fields and the SHA-256 of each file."""
    from digitize.catalog import DocumentSpec, FileSpec

    digests = [plan.files.digest(name) for name in doc.files]
    files = tuple(FileSpec(position=i, name=name, sha256=sha, size=size)
                  for i, (name, (sha, size)) in enumerate(zip(doc.files, digests, strict=True)))
    return DocumentSpec(
        batch_id=plan.batch_id, files=files, agency_code=doc.agency_code, kind=doc.kind, title=doc.title,
        issued_date=doc.issued_date, manifest_document_id=doc.key, procedure_code=doc.procedure_code,
        dossier_code=doc.dossier_code, register_id=doc.register_id, valid_until=doc.valid_until,
        holder_id=doc.holder_id, scanned_at=doc.scanned_at,
    )


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


def register_batch(catalog: Catalog, plan: BatchPlan) -> RegisteredBatch:
    """Hash each original and register it (idempotent by content), recording refused rows as events."""
    to_process: list[int] = []
    duplicates: list[Duplicate] = []
    for error in plan.errors:
        catalog.add_event(None, "manifest_validation", "failure", batch_id=plan.batch_id,
                          detail=f"row {error.row} ({error.file}): [{error.reason}] {error.message}")
    for doc in plan.documents:
        spec = document_spec(plan, doc)
        files = spec.files
        record, created = catalog.register_document(spec)
        if created:
            catalog.add_event(record.id, "ingestion", "success", tool="digitize", tool_version=__version__,
                              batch_id=plan.batch_id,
                              detail=f"registered {len(files)} file(s), sha256 {', '.join(f.sha256 for f in files)}")
            to_process.append(record.id)
        elif record.batch_id == plan.batch_id and record.status == "RECEIVED" and record.id not in to_process:
            to_process.append(record.id)  # an interrupted earlier run of this batch: resume it
        elif record.batch_id != plan.batch_id or record.id in to_process:
            duplicates.append(Duplicate(doc.key, record.id, record.code, record.batch_id))
            catalog.add_event(record.id, "duplicate_detection", "warning", batch_id=plan.batch_id,
                              detail=f"{doc.key} in batch {plan.batch_id} has the same bytes as document "
                                     f"{record.code or record.id} of batch {record.batch_id}; not processed again")
    return RegisteredBatch(plan.batch_id, plan.root, tuple(to_process), tuple(duplicates), plan.errors, plan.source)


PRELOADED_MODULES = (
    "digitize.archive", "digitize.catalog", "digitize.codes", "digitize.intake", "digitize.ocr",
    "digitize.search", "digitize.signing", "boto3", "jsonschema", "asn1crypto.pem",
    "fontTools.subset", "fontTools.ttLib", "fontTools.ttLib.scaleUpem", "pikepdf", "pyhanko.pdf_utils.filters",
    "pyhanko.pdf_utils.metadata.xmp_xml", "sqlalchemy.dialects.postgresql.psycopg",
    "cryptography.hazmat.backends.openssl",
)
"""What processing a document imports lazily; :func:`preload` imports it up front."""


def preload() -> None:
    """Import what processing a document needs, so that processes forked afterwards start warm.

    Airflow runs each task in a process forked from a long-lived one (a Celery worker, or the
    scheduler with LocalExecutor). Imported there once, OpenCV, pyHanko, pikepdf, SQLAlchemy and
    boto3 cost a chunk task nothing instead of about a second of CPU each time
    (bench/results/airflow.md); the stamp font and S3's service model are prepared too (~0.6 s
    of a fresh process's first document). Nothing here opens a connection or reads a secret; with
    ``OPENBLAS_NUM_THREADS=1`` (NumPy's and OpenCV's BLAS otherwise start a thread per core) it
    starts no thread either, so the process can fork safely.
    """
    import importlib

    from digitize import archive, signing

    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    signing.warm_up()
    archive.warm_up()


class PipelineContext:
    """Per-process handles to the catalog, archive and signer, created once and reused across documents.

    Reusing the signer matters: parsing the key and building the validation
    context cost more than the signature itself.
    """

    def __init__(self, settings: Settings | None = None, *, archive: S3Archive | None = None) -> None:
        self.settings = settings or load_settings()
        self._archive = archive

    @cached_property
    def catalog(self) -> Catalog:
        from digitize.catalog import Catalog

        return Catalog(self.settings.catalog_url)

    @property
    def archive(self) -> S3Archive:
        if self._archive is None:
            from digitize.archive import S3Archive

            self._archive = S3Archive.from_settings(self.settings)
        return self._archive

    @cached_property
    def signer(self) -> AgencySigner:
        from digitize.signing import AgencySigner, options_from_settings

        settings = self.settings
        if not settings.trust_roots:
            raise ConfigurationError("no trust roots: set DIGITIZE_TRUST_ROOTS to the root CA certificate file(s)")
        return AgencySigner.from_options(options_from_settings(
            settings, level=settings.signing_level, tsa_url=settings.tsa_url, visible=settings.signing_stamp))

    @cached_property
    def tool_versions(self) -> dict[str, str]:
        """This process's tools; Tesseract's comes with each OCR result (a signing machine may have none)."""
        import boto3

        from digitize.signing import pyhanko_version

        return {"digitize": __version__, "pyhanko": pyhanko_version(), "boto3": boto3.__version__}


class _Stopwatch:
    """Wall time per stage, for the run summary's throughput and slowest stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


FAULT_POINTS = ("after_ocr", "after_code", "after_sign", "during_upload")
"""The stage boundaries where plugins' ``on_stage`` hook runs: see :func:`fault_point`."""


def fault_point(stage: str) -> None:
    """Run the plugins' ``on_stage`` hook (:mod:`digitize.pluginspec`): none in production.

    A test plugin injects faults here (``tests/plugins/faults.py``: SIGKILL, ENOSPC). Stages:
    :data:`FAULT_POINTS` (``during_upload`` = after the originals and the signed PDF are stored,
    before the sidecar).
    """
    plugin_manager().hook.on_stage(stage=stage)


def _machine() -> str:
    """This host and PID namespace: PIDs compare only within it (containers on one host share the name)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def _worker_id() -> str:
    """Owner of a lease: machine, PID and a random token (each call to process_document is its own claimant)."""
    return f"{_machine()}:{os.getpid()}:{secrets.token_hex(4)}"


def _dead_local_owner(owner: str | None) -> str | None:
    """``owner`` if it is a process of this machine that no longer exists (its lease may be taken at once)."""
    if not owner:
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _machine() or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return owner
    except PermissionError:
        return None
    return None


class _LeaseLost(Exception):
    """Another worker took the document over (our lease lapsed): stop before touching the archive."""


class _Lease:
    """Holds a document's processing lease, renewing it in the background every third of its length."""

    def __init__(self, ctx: PipelineContext, document_id: int, owner: str) -> None:
        self.catalog, self.document_id, self.owner = ctx.catalog, document_id, owner
        self.seconds = max(1, ctx.settings.lease_seconds)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="digitize-lease", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.catalog.claim(self.document_id, self.owner, self.seconds):
                    self.lost = True
                    return
            except TransientError:
                continue  # the catalog is briefly away: the lease still has two thirds of its time

    def checkpoint(self, stage: str) -> None:
        """Between stages: the test fault hook, then stop if the lease was lost."""
        fault_point(stage)
        if self.lost:
            raise _LeaseLost(stage)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with suppress(TransientError):  # the lease lapses by itself
            self.catalog.release(self.document_id, self.owner)  # no-op once archived or quarantined


def process_document(ctx: PipelineContext, document_id: int, batch_root: Path | BatchSource) -> DocumentOutcome:
    """Take one registered document through every stage; quarantine it on a document failure.

    ``batch_root`` is the batch folder or any :class:`~digitize.intake.inbox.BatchSource` (an S3 prefix: the
    originals are then fetched into the scratch folder). Transient errors propagate (the caller
    retries); nothing else does. The document is first claimed (:meth:`Catalog.claim`): when another
    live worker holds it, it is SKIPPED here, so overlapping runs process each document exactly once.
    Both stages run in this process, with nothing staged; a document an earlier :func:`prepare_document`
    left prepared is only finished (no second OCR).
    """
    source = _source(batch_root)

    def work(record: DocumentRecord, watch: _Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = _staged_state(ctx, record)
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

    def work(record: DocumentRecord, watch: _Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = _staged_state(ctx, record)
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
        _drop_staging(ctx, record.code, record.version)  # an earlier finish died between archiving and clean-up

    def work(record: DocumentRecord, watch: _Stopwatch, checkpoint: Callable[[str], None]) -> DocumentOutcome:
        state = _staged_state(ctx, record)
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
                               dict(row["seconds"]))
    done = finish_document(ctx, int(row["document_id"]), batch_root)
    seconds = dict(row["seconds"])
    for stage, value in done.seconds.items():
        seconds[stage] = round(seconds.get(stage, 0.0) + value, 3)
    return DocumentOutcome(done.document_id, done.status, done.code, done.reason, done.pages, seconds)


def _source(batch_root: Path | BatchSource) -> BatchSource:
    return LocalBatch(batch_root) if isinstance(batch_root, Path) else batch_root


def _run_claimed(ctx: PipelineContext, document_id: int,
                 work: Callable[[DocumentRecord, _Stopwatch, Callable[[str], None]], DocumentOutcome]
                 ) -> DocumentOutcome:
    """Claim a RECEIVED document, run ``work`` under a renewed lease, and map failures to outcomes.

    A document failure quarantines with its reason code; transient and configuration errors propagate.
    """
    catalog = ctx.catalog
    record = catalog.get_document(document_id)
    if record.status != "RECEIVED":
        return DocumentOutcome(document_id, "SKIPPED", record.code, record.reason)
    owner = _worker_id()
    if not catalog.claim(record.id, owner, ctx.settings.lease_seconds, take_over=_dead_local_owner(record.lease_owner)):
        log.info("document %s is being processed by another worker: skipped", document_id)
        current = catalog.get_document(document_id)
        return DocumentOutcome(document_id, "SKIPPED", current.code, current.reason)
    if record.lease_owner and record.lease_owner != owner:
        catalog.add_event(record.id, "processing_resumed", "warning", tool="digitize", tool_version=__version__,
                          detail=f"an earlier attempt (worker {record.lease_owner}) stopped before finishing; "
                                 f"resumed by {owner} with code {record.code or '(none allocated yet)'}")
    record = catalog.get_document(document_id)
    watch = _Stopwatch()
    with _Lease(ctx, record.id, owner) as lease:
        try:
            try:
                return work(record, watch, lease.checkpoint)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ScratchSpaceFull(f"the scratch disk is full while processing document {record.id}; "
                                           "nothing was archived") from exc
                raise
        except _LeaseLost as lost:
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


def _quarantine(ctx: PipelineContext, document_id: int, exc: DigitizeError, watch: _Stopwatch) -> DocumentOutcome:
    message = f"{exc.message} — {exc.hint}"
    ctx.catalog.mark_quarantined(document_id, exc.reason, message)
    ctx.catalog.add_event(document_id, "quarantine", "failure", tool="digitize", tool_version=__version__,
                          detail=f"[{exc.reason}] {message}")
    log.warning("document %s quarantined: [%s] %s", document_id, exc.reason, exc.message)
    record = ctx.catalog.get_document(document_id)
    return DocumentOutcome(document_id, "QUARANTINED", record.code, exc.reason, seconds=watch.seconds)


def _check_originals(record: DocumentRecord, source: BatchSource, scratch: Path) -> list[Path]:
    """The originals must still be the bytes that were registered (a re-copied file is a new document)."""
    paths = []
    for spec in record.files:
        if not source.exists(spec.name):
            raise CorruptFile(f"original {spec.name} is no longer in batch {record.batch_id}",
                              hint="Put the file back in the batch folder and retry the document.")
        path = source.local_path(spec.name, scratch)
        if sha256_file(path) != spec.sha256:
            raise CorruptFile(f"original {spec.name} changed after it was registered",
                              hint="Submit the new scan as a new batch; the old registration stays quarantined.")
        paths.append(path)
    return paths


def _process(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: _Stopwatch,
             checkpoint: Callable[[str], None]) -> DocumentOutcome:
    """Both stages in one process: sign before storing anything, so a failed signature leaves no object."""
    agency = _agency(ctx, record)
    with tempfile.TemporaryDirectory(prefix="digitize-", dir=ctx.settings.work_dir) as scratch:
        ocr, code, originals, formats = _ocr_and_code(ctx, record, source, watch, checkpoint, Path(scratch))
        signed, verdict = _sign_and_verify(ctx, record, code, ocr.pdf_path.read_bytes(), watch)
        checkpoint("after_sign")
        stored = _store_originals(ctx, record, code, originals, formats, watch)
        return _archive_signed(ctx, record, agency, code, ocr, stored, signed, verdict, watch, checkpoint, source)


def _prepare(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: _Stopwatch,
             checkpoint: Callable[[str], None]) -> dict[str, Any]:
    """The prepare stage: OCR, code, originals archived, then what finishing needs staged; returns that state."""
    _agency(ctx, record)  # before any OCR: the sidecar will need it
    with tempfile.TemporaryDirectory(prefix="digitize-", dir=ctx.settings.work_dir) as scratch:
        ocr, code, originals, formats = _ocr_and_code(ctx, record, source, watch, checkpoint, Path(scratch))
        stored = _store_originals(ctx, record, code, originals, formats, watch)
        return _stage(ctx, record, code, ocr, stored, watch)


def _ocr_and_code(ctx: PipelineContext, record: DocumentRecord, source: BatchSource, watch: _Stopwatch,
                  checkpoint: Callable[[str], None], scratch: Path
                  ) -> tuple[OcrResult, str, list[Path], list[str]]:
    """Fetch and check the originals, make the searchable PDF/A, allocate the code and write it into the PDF."""
    from digitize.intake import PageLimits, sniff_format
    from digitize.ocr import OcrOptions, make_searchable_pdf, set_document_metadata

    catalog, settings = ctx.catalog, ctx.settings
    with watch.stage("fetch"):
        originals = _check_originals(record, source, scratch)
    formats = [sniff_format(p) for p in originals]
    out_pdf = scratch / "document.pdf"
    options = OcrOptions(jobs=settings.ocr_jobs, min_dpi=settings.min_dpi, work_dir=scratch,
                         page_timeout=settings.ocr_page_timeout, limits=PageLimits.from_settings(settings))
    with watch.stage("ocr"):
        ocr: OcrResult = make_searchable_pdf(originals, out_pdf, options)
    catalog.add_event(record.id, "ocr", "success", tool="tesseract", tool_version=ocr.tool_versions["tesseract"],
                      detail=f"{len(ocr.pages)} page(s), mean confidence {_fmt(ocr.mean_confidence)}, "
                             f"{sum(p.blank for p in ocr.pages)} blank")
    low = [p for p in ocr.pages if "LOW_RESOLUTION" in p.flags]
    if low and settings.low_dpi_action == "quarantine":
        pages = ", ".join(f"page {p.index + 1} ({p.source_file}) {p.dpi:.0f} dpi" for p in low)
        raise LowResolution(f"{pages}: below the {settings.min_dpi} dpi of Decree 30/2020 "
                            "(DIGITIZE_LOW_DPI_ACTION=quarantine)")
    checkpoint("after_ocr")

    year = datetime.now(UTC).year
    _check_template(settings.code_template, record, year)
    with watch.stage("code"):
        code = catalog.allocate_code(record.id, template=settings.code_template, year=year)
    catalog.add_event(record.id, "identifier_assignment", "success", tool="digitize", tool_version=__version__,
                      detail=f"code {code}")
    checkpoint("after_code")
    set_document_metadata(out_pdf, title=record.title, document_code=code, agency_code=record.agency_code)
    return ocr, code, originals, formats


def _sign_and_verify(ctx: PipelineContext, record: DocumentRecord, code: str, unsigned: bytes,
                     watch: _Stopwatch) -> tuple[bytes, Any]:
    """Sign (once: see :func:`_signed_pdf`) and check the signature against the trust roots."""
    from digitize.archive import document_keys
    from digitize.signing import verify_pdf

    with watch.stage("sign"):
        signed, verdict = _signed_pdf(ctx, record, document_keys(code, record.version).pdf, unsigned, code)
    if verdict is None:  # signed by an earlier, interrupted run: check what the archive holds
        verdict = verify_pdf(signed, ctx.settings.trust_roots)
    if not verdict.valid:
        raise SignatureFailed(f"signature of {code} does not verify: {verdict.summary}")
    ctx.catalog.add_event(record.id, "signature_validation", "success", tool="pyhanko",
                          tool_version=ctx.tool_versions["pyhanko"],
                          detail=f"signer {verdict.signer}: {verdict.summary}")
    return signed, verdict


def _store_originals(ctx: PipelineContext, record: DocumentRecord, code: str, originals: Sequence[Path],
                     formats: Sequence[str], watch: _Stopwatch) -> list[tuple[Any, Any, str]]:
    """Archive each original under the code's keys, read back and compared with its registered SHA-256."""
    from digitize.archive import document_keys

    keys = document_keys(code, record.version)
    stored = []
    for spec, path, fmt in zip(record.files, originals, formats, strict=True):
        with watch.stage("archive"):
            obj = ctx.archive.put(keys.original(spec.position, _EXTENSIONS[fmt]), path.read_bytes(),
                                  content_type=_MEDIA_TYPES[fmt], metadata={"sha256": spec.sha256, "code": code})
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
                    stored: Sequence[tuple[Any, Any, str]], signed: bytes, verdict: Any, watch: _Stopwatch,
                    checkpoint: Callable[[str], None], source: BatchSource | None) -> DocumentOutcome:
    """Store the signed PDF and the sidecar, mark the document archived, index it, clear the inbox."""
    from digitize.archive import document_keys
    from digitize.catalog import ArchivedInfo

    catalog, archive = ctx.catalog, ctx.archive
    keys = document_keys(code, record.version)
    with watch.stage("archive"):
        pdf_obj = archive.put(keys.pdf, signed, content_type="application/pdf", metadata={"code": code})
    catalog.add_event(record.id, "replication", "success", tool="boto3", tool_version=ctx.tool_versions["boto3"],
                      detail=f"{len(stored) + 1} object(s) stored and read back, SHA-256 verified")
    checkpoint("during_upload")

    needs_review = any({"LOW_CONFIDENCE", "LOW_RESOLUTION"} & set(p.flags) for p in ocr.pages)
    sidecar = build_sidecar(ctx, record, agency_name=agency.name, agency_level=agency.level, code=code,
                            ocr=ocr, verdict=verdict, pdf_obj=pdf_obj, originals=stored,
                            needs_review=needs_review)
    sidecar_bytes = json.dumps(sidecar, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    with watch.stage("archive"):
        sidecar_obj = _put_sidecar(archive, keys.sidecar, sidecar_bytes, code)

    catalog.mark_archived(record.id, ArchivedInfo(
        pdf_key=pdf_obj.key, pdf_sha256=pdf_obj.sha256, sidecar_key=sidecar_obj.key,
        sidecar_sha256=sidecar_obj.sha256, original_keys=tuple(o.key for _, o, _ in stored),
        pages=len(ocr.pages), mean_confidence=ocr.mean_confidence, needs_review=needs_review))
    catalog.add_event(record.id, "ingestion_complete", "warning" if needs_review else "success",
                      tool="digitize", tool_version=__version__,
                      detail=f"archived as {code}" + (" (flagged for review)" if needs_review else ""))
    with watch.stage("index"):
        _index_text(ctx, record.id, [p.text for p in ocr.pages])
    if ctx.settings.move_done and isinstance(source, LocalBatch):
        _move_to_done(ctx, record, source)
    return DocumentOutcome(record.id, "ARCHIVED", code, None, len(ocr.pages), watch.seconds)


STAGED_STATE_VERSION = 1
"""Version of the staged JSON (:func:`_stage`); a state of another version counts as not prepared."""


def _stage(ctx: PipelineContext, record: DocumentRecord, code: str, ocr: OcrResult,
           stored: Sequence[tuple[Any, Any, str]], watch: _Stopwatch) -> dict[str, Any]:
    """Stage the unsigned PDF, then the JSON that marks the document prepared (written last: all or nothing)."""
    from digitize.archive import staging_keys

    keys = staging_keys(code, record.version)
    unsigned = ocr.pdf_path.read_bytes()
    state = {
        "schema_version": STAGED_STATE_VERSION, "document_id": record.id, "fingerprint": record.fingerprint,
        "code": code, "version": record.version, "pdf_sha256": sha256_bytes(unsigned),
        "ocr": {"tool_versions": dict(ocr.tool_versions),
                "pages": [dataclasses.asdict(p) for p in ocr.pages]},
        "originals": [{"position": spec.position, "key": obj.key, "sha256": obj.sha256, "format": fmt}
                      for spec, obj, fmt in stored],
    }
    with watch.stage("stage"):
        _drop_staging(ctx, code, record.version)  # a half-staged earlier attempt: its PDF is not this one
        ctx.archive.put(keys.pdf, unsigned, content_type="application/pdf", metadata={"code": code})
        ctx.archive.put(keys.state, json.dumps(state, ensure_ascii=False).encode("utf-8"),
                        content_type="application/json", metadata={"code": code})
    ctx.catalog.add_event(record.id, "staging", "success", tool="digitize", tool_version=__version__,
                          detail=f"prepared: unsigned PDF/A and OCR summary staged at {keys.state} for signing")
    return state


def _staged_state(ctx: PipelineContext, record: DocumentRecord) -> dict[str, Any] | None:
    """The staged state of a prepared document, or ``None`` (a document without a code was never prepared)."""
    from digitize.archive import staging_keys
    from digitize.errors import ArchiveNotFound

    if record.code is None:
        return None
    try:
        state = json.loads(ctx.archive.get(staging_keys(record.code, record.version).state))
    except (ArchiveNotFound, ValueError):  # never staged, or not ours: prepared again over it
        return None
    if not isinstance(state, dict):
        return None
    if (state.get("schema_version"), state.get("document_id"), state.get("fingerprint")) != (
            STAGED_STATE_VERSION, record.id, record.fingerprint):
        return None  # staged for another catalog's document with this code: prepare again over it
    return state


def _drop_staging(ctx: PipelineContext, code: str, version: int) -> None:
    from digitize.archive import staging_keys

    keys = staging_keys(code, version)
    for key in (keys.state, keys.pdf):  # the marker first: never a state whose PDF is gone
        ctx.archive.delete(key)


def _finish_staged(ctx: PipelineContext, record: DocumentRecord, state: dict[str, Any], watch: _Stopwatch,
                   checkpoint: Callable[[str], None], source: BatchSource | None) -> DocumentOutcome:
    """The finish stage from what prepare staged: no original is read, no OCR runs."""
    from digitize.archive import staging_keys
    from digitize.errors import ArchiveNotFound
    from digitize.ocr import OcrResult, PageResult

    code = record.code
    assert code is not None  # _staged_state found the state under it
    agency = _agency(ctx, record)
    keys = staging_keys(code, record.version)
    try:
        with watch.stage("fetch"):
            unsigned = ctx.archive.get(keys.pdf)
        if sha256_bytes(unsigned) != state["pdf_sha256"]:
            raise ArchiveIntegrityError(f"staged PDF {keys.pdf} differs from the one prepared")
        specs = {spec.position: spec for spec in record.files}
        stored = []
        for item in state["originals"]:
            obj = ctx.archive.head(item["key"])
            if obj is None or obj.sha256 != specs[item["position"]].sha256 or obj.sha256 != item["sha256"]:
                raise ArchiveIntegrityError(f"archived original {item['key']} is missing or differs from the scan")
            stored.append((specs[item["position"]], obj, item["format"]))
    except (ArchiveIntegrityError, ArchiveNotFound):
        _drop_staging(ctx, code, record.version)  # unusable: a retry of the document prepares it again
        raise
    pages = tuple(PageResult(**{**p, "flags": tuple(p["flags"]), "steps": tuple(p["steps"])})
                  for p in state["ocr"]["pages"])
    ocr = OcrResult(pdf_path=Path(keys.pdf), pages=pages, tool_versions=state["ocr"]["tool_versions"])
    signed, verdict = _sign_and_verify(ctx, record, code, unsigned, watch)
    checkpoint("after_sign")
    outcome = _archive_signed(ctx, record, agency, code, ocr, stored, signed, verdict, watch, checkpoint, source)
    _drop_staging(ctx, code, record.version)
    return outcome


def _index_text(ctx: PipelineContext, document_id: int, pages: list[str]) -> None:
    """Make the archived document findable by its text; a failure here never undoes the archiving.

    A document left unindexed is picked up by ``python -m digitize search rebuild --missing-only``.
    """
    from digitize import search

    try:
        count = search.index_document(ctx.catalog, document_id, pages)
    except DigitizeError as exc:
        ctx.catalog.add_event(document_id, "indexing", "warning", tool="digitize", tool_version=__version__,
                              detail=f"not indexed ({exc.reason}); run 'python -m digitize search rebuild'")
        return
    ctx.catalog.add_event(document_id, "indexing", "success", tool="digitize", tool_version=__version__,
                          detail=f"{count} page(s) indexed for search")


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


def _signed_pdf(ctx: PipelineContext, record: DocumentRecord, pdf_key: str, unsigned: bytes,
                code: str) -> tuple[bytes, SignatureVerdict | None]:
    """Sign, unless an earlier interrupted run already archived the signed PDF: never sign twice.

    With the signer's own verdict on a new signature (it checks every one it makes); ``None``
    for a reused PDF, which the caller verifies.
    """
    existing = ctx.archive.head(pdf_key)
    if existing is not None:
        ctx.catalog.add_event(record.id, "signature", "success", tool="digitize", tool_version=__version__,
                              detail=f"reused the signed PDF already archived at {pdf_key}")
        return ctx.archive.get(pdf_key), None
    signed, verdict = ctx.signer.sign_checked(unsigned, document_code=code, title=record.title,
                                              qr=_qr(ctx, record))
    ctx.catalog.add_event(record.id, "signature", "success", tool="pyhanko",
                          tool_version=ctx.tool_versions["pyhanko"],
                          detail=f"PAdES signature by {ctx.signer.signer_name}")
    return signed, verdict


def _put_sidecar(archive: S3Archive, key: str, data: bytes, code: str) -> Any:
    """Store the sidecar; after an interrupted run, keep the one already there if it describes the same PDF."""
    existing = archive.head(key)
    if existing is not None:
        old = json.loads(archive.get(key))
        new = json.loads(data)
        if [f["sha256"] for f in old["files"]] == [f["sha256"] for f in new["files"]]:
            return existing
        raise ArchiveIntegrityError(f"sidecar {key} already exists and describes other files")
    return archive.put(key, data, content_type="application/json", metadata={"code": code})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def build_sidecar(ctx: PipelineContext, record: DocumentRecord, *, agency_name: str, agency_level: str, code: str,
                  ocr: OcrResult, verdict: Any, pdf_obj: Any, originals: Sequence[tuple[Any, Any, str]],
                  needs_review: bool) -> dict[str, Any]:
    """The archival description stored beside the PDF; validated against ``schemas/sidecar.schema.json``."""
    events = [
        {"type": e.event_type, "outcome": e.outcome, "tool": e.tool, "tool_version": e.tool_version,
         "at": e.created_at.isoformat(), "detail": e.detail}
        for e in ctx.catalog.events(record.id)
    ]
    files = [{"role": "signed_pdf", "key": pdf_obj.key, "sha256": pdf_obj.sha256, "size": pdf_obj.size,
              "media_type": "application/pdf"}]
    files += [{"role": "original", "key": obj.key, "sha256": obj.sha256, "size": obj.size,
               "media_type": _MEDIA_TYPES[fmt], "original_name": spec.name, "position": spec.position}
              for spec, obj, fmt in originals]
    sidecar = {
        "schema_version": 1, "code": code, "version": record.version, "fingerprint": record.fingerprint,
        "agency": {"code": record.agency_code, "name": agency_name, "level": agency_level},
        "kind": record.kind, "title": record.title, "issued_date": record.issued_date.isoformat(),
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "procedure_code": record.procedure_code, "dossier_code": record.dossier_code,
        "register_id": record.register_id, "holder_id": record.holder_id, "scanned_at": record.scanned_at,
        "batch_id": record.batch_id, "manifest_document_id": record.manifest_document_id,
        "received_at": record.received_at.isoformat(), "pages": len(ocr.pages), "language": "vi",
        "ocr": {"mean_confidence": ocr.mean_confidence,
                "pages": [{"index": p.index, "confidence": p.mean_confidence, "blank": p.blank, "dpi": p.dpi,
                           "flags": list(p.flags)} for p in ocr.pages]},
        "needs_review": needs_review,
        "signature": {"signer": verdict.signer, "valid": verdict.valid, "level": verdict.level,
                      "signing_time": verdict.signing_time.isoformat() if verdict.signing_time else None},
        "retention": "permanent" if record.kind == "KQ" else "20 years",
        "files": files, "events": events, "tools": dict(ctx.tool_versions, **dict(ocr.tool_versions)),
        "archived_at": datetime.now(UTC).isoformat(),
    }
    sidecar_validator().validate(sidecar)
    return sidecar


@functools.cache
def sidecar_validator() -> Any:
    """The sidecar schema's validator, built once: ``jsonschema.validate`` re-checks the schema on every call,
    which cost ~30 ms per document, more than the catalog writes of the whole document."""
    import jsonschema

    schema = json.loads(SIDECAR_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


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
    """Documents of the backlog still waiting after this run (for the time-to-finish estimate)."""

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
        return [
            f"archived: {self.archived}, quarantined: {sum(self.quarantined.values())} ({quarantined}), "
            f"already done: {self.skipped}, duplicates: {self.duplicates}, manifest rows refused: {self.rejected_rows}",
            f"pages: {self.pages} in {self.seconds:.1f} s ({self.pages_per_minute:.1f} pages/min); "
            f"slowest stage: {self.slowest_stage or 'n/a'}",
        ] + ([f"backlog: {self.remaining} document(s) still to process, about {_duration(self.eta_seconds)} "
              f"at this run's pace"] if self.remaining else [])


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown time"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def summarize(outcomes: Sequence[DocumentOutcome | dict[str, Any]], *, duplicates: int, rejected_rows: int,
              seconds: float, remaining: int = 0) -> RunSummary:
    """Aggregate outcomes (objects or their XCom dicts) into one run summary."""
    rows = [o.as_dict() if isinstance(o, DocumentOutcome) else o for o in outcomes]
    quarantined: dict[str, int] = {}
    stages: dict[str, float] = {}
    for row in rows:
        if row["status"] == "QUARANTINED":
            quarantined[row["reason"]] = quarantined.get(row["reason"], 0) + 1
        for stage, value in row["seconds"].items():
            stages[stage] = round(stages.get(stage, 0.0) + value, 3)
    return RunSummary(
        archived=sum(r["status"] == "ARCHIVED" for r in rows), quarantined=quarantined,
        skipped=sum(r["status"] == "SKIPPED" for r in rows), duplicates=duplicates, rejected_rows=rejected_rows,
        pages=sum(r["pages"] for r in rows), seconds=seconds, stage_seconds=stages, remaining=remaining)
