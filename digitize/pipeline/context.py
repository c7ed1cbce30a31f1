"""What a process needs to run documents: the handles it reuses (catalog, archive, signer) and its preload."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from digitize import __version__
from digitize.config import Settings, load_settings
from digitize.errors import ConfigurationError
from digitize.stageclock import waiting

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog
    from digitize.signing import AgencySigner

class Slots(Protocol):
    """A semaphore shared by a run's worker processes (``multiprocessing.BoundedSemaphore``)."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


PRELOADED_MODULES = (
    "digitize.archive", "digitize.catalog", "digitize.codes", "digitize.intake", "digitize.ocr",
    "digitize.search", "digitize.signing", "boto3", "jsonschema", "asn1crypto.pem",
    "fontTools.subset", "fontTools.ttLib", "fontTools.ttLib.scaleUpem", "pikepdf", "pyhanko.pdf_utils.filters",
    "pyhanko.pdf_utils.metadata.xmp_xml", "sqlalchemy.dialects.postgresql.psycopg",
    "cryptography.hazmat.backends.openssl", "numpy.ma", "tesserocr", "digitize.match", "digitize.signing.qrmask",
    "pyhanko.pdf_utils.qr", "qrcode",
)
"""What processing a document imports lazily; :func:`preload` imports it up front."""


def preload() -> None:
    """Import what processing a document needs, so that processes forked afterwards start warm.

    Airflow runs each task in a process forked from a long-lived one (a Celery worker, or the
    scheduler with LocalExecutor). Imported there once, OpenCV, pyHanko, pikepdf, SQLAlchemy and
    boto3 cost a chunk task nothing instead of about a second of CPU each time
    (bench/results/airflow.md); the stamp font, S3's service model and the sidecar schema's
    validator are prepared too (~0.65 s of a fresh process's first document). Nothing here opens a
    connection or reads a secret; with ``OPENBLAS_NUM_THREADS=1`` (NumPy's and OpenCV's BLAS otherwise
    start a thread per core) it starts no thread either, so the process can fork safely.

    What it loaded is then frozen out of the garbage collector (``gc.freeze``): a forked child's first
    full collection would otherwise walk it all (170–260 ms, measured inside a catalog write, holding the
    other worker's turn) and touch every page it shares with its parent.
    """
    import gc
    import importlib

    from digitize import archive, signing

    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    signing.warm_up()
    archive.warm_up()
    archive.sidecar_validator()
    gc.freeze()


class PipelineContext:
    """Per-process handles to the catalog, archive and signer, created once and reused across documents.

    Reusing the signer matters: parsing the key and building the validation
    context cost more than the signature itself.
    """

    def __init__(self, settings: Settings | None = None, *, archive: Archive | None = None,
                 ocr_slots: Slots | None = None, worker: str | None = None) -> None:
        self.settings = settings or load_settings()
        self._archive = archive
        self._ocr_slots = ocr_slots
        self.worker = worker
        """Who does the work (an Airflow task's host and PID, and its stage): each document this context claims
        gets a ``processing_worker`` event naming it, written with the claim. ``None``: no such event."""

    def for_worker(self, ocr_slots: Slots) -> PipelineContext:
        """A forked worker's context (:mod:`digitize.pipeline.parallel`): these settings with one Tesseract,
        the run's shared OCR slots, and this context's archive if it was given one (e.g. built from
        Airflow's S3 connection), which the worker uses as its own copy."""
        return PipelineContext(dataclasses.replace(self.settings, ocr_jobs=1), archive=self._archive,
                               ocr_slots=ocr_slots, worker=self.worker)

    @contextmanager
    def ocr_slot(self) -> Iterator[None]:
        """Hold one of the run's OCR slots while a document's searchable PDF is made (no limit without slots).

        ``process --workers N`` runs 2N processes and N slots: while N documents are OCR'd, the others are
        signed, archived and catalogued, so their waits on disk, S3 and the catalog overlap OCR instead of
        idling a core. The wait for a slot is no stage's time.
        """
        if self._ocr_slots is None:
            yield
            return
        with waiting():
            self._ocr_slots.acquire()
        try:
            yield
        finally:
            self._ocr_slots.release()

    @cached_property
    def catalog(self) -> Catalog:
        from digitize.catalog import Catalog

        return Catalog(self.settings.catalog_url)

    @property
    def archive(self) -> Archive:
        """The archive the settings name (``DIGITIZE_ARCHIVE_URL``: a folder or S3), unless one was given."""
        if self._archive is None:
            from digitize.archive import open_archive

            self._archive = open_archive(self.settings)
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
        from digitize.archive import s3_client_version
        from digitize.signing import pyhanko_version

        return {"digitize": __version__, "pyhanko": pyhanko_version(), "boto3": s3_client_version()}
