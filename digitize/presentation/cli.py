"""``python -m digitize …``: the same code paths as the DAGs, for officers, auditors and IT staff.

Exit status: 0 when the command did its job (a quarantined document is a
result, not a crash); ``process`` exits 3 (:data:`EXIT_UNFINISHED`) when
documents of the batch are still RECEIVED at its end (the summary names them:
run the batch again); the error's ``exit_code`` when the command itself could
not run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.errors import DigitizeError
from digitize.presentation.cli_coverage import add_coverage_command
from digitize.presentation.coversheets_cli import add_coversheets_command
from digitize.presentation.matching import add_matching_commands
from digitize.presentation.processing import EXIT_UNFINISHED, cmd_process
from digitize.presentation.reference_commands import (
    cmd_catalog_archive_reference,
    cmd_catalog_rebuild,
    cmd_reference_import,
)

__all__ = ["EXIT_UNFINISHED", "build_parser", "main"]

if TYPE_CHECKING:
    from typing import TypeAlias

    import pandas as pd

    from digitize.catalog import Catalog

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _catalog() -> Catalog:
    from digitize.catalog import Catalog
    from digitize.config import load_settings

    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    return catalog


def cmd_ocr(args: argparse.Namespace) -> int:
    from digitize.config import load_settings
    from digitize.intake import PageLimits
    from digitize.ocr import OcrOptions, make_searchable_pdf

    settings = load_settings()
    result = make_searchable_pdf([Path(f) for f in args.files], Path(args.out),
                                 OcrOptions(jobs=args.jobs or settings.ocr_jobs, min_dpi=settings.min_dpi,
                                            limits=PageLimits.from_settings(settings)))
    if args.text:
        Path(args.text).write_text("\n\f".join(p.text for p in result.pages), encoding="utf-8")
    for page in result.pages:
        conf = "blank" if page.blank else f"confidence {page.mean_confidence or 0:.1f}"
        flags = f" [{', '.join(page.flags)}]" if page.flags else ""
        print(f"page {page.index + 1} ({page.source_file}): {conf}, {page.dpi:.0f} dpi{flags}")
    print(f"wrote {args.out}")
    return 0


def _holder_ids_shown(catalog: Catalog, rows: pd.DataFrame, args: argparse.Namespace, action: str) -> pd.DataFrame:
    """``rows`` with their holder IDs masked, or, with ``--show-holder-ids``, as they are, the access recorded."""
    from digitize.personal import mask_holder_id

    if "holder_id" not in rows.columns:
        return rows
    ids = rows["holder_id"].dropna().astype(str)
    if args.show_holder_ids:
        shown = list(dict.fromkeys(ids))
        _log_cli_access(catalog, args, action, None, f"{len(shown)} holder ID(s) shown: {', '.join(shown)}")
        return rows
    return rows.assign(holder_id=rows["holder_id"].map(lambda v: mask_holder_id(str(v)), na_action="ignore"))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    _catalog()
    print("catalog schema is up to date")
    return 0


def _actor() -> str:
    """Who runs this command: ``DIGITIZE_ACTOR``, or the login and host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return os.environ.get("DIGITIZE_ACTOR") or f"{user}@{socket.gethostname()}"


def _log_access(catalog: Catalog, document_id: int, action: str) -> None:
    """Decree 13/2023: who looked up, verified or downloaded which document, and when (the event's time)."""
    catalog.add_event(document_id, "access", "success", detail=f"{action} by {_actor()} (command line)")


def _log_cli_access(catalog: Catalog, args: argparse.Namespace, action: str, subject: str | None,
                    detail: str) -> None:
    """Decree 13/2023: personal data the command showed beyond single documents, in the access log (method CLI)."""
    from digitize.personal import mask_holder_ids

    command = mask_holder_ids(" ".join(args.argv))
    catalog.log_access(client=_actor()[:100], method="CLI", path=f"python -m digitize {command}", action=action,
                       subject=subject, purpose="", status=200, detail=detail)


def cmd_show(args: argparse.Namespace) -> int:
    catalog = _catalog()
    record = catalog.get_by_code(args.code)
    if record is None:
        print(f"no document with code {args.code}", file=sys.stderr)
        return 1
    _log_access(catalog, record.id, "show (metadata and events)")
    for name in ("code", "version", "status", "agency_code", "kind", "title", "issued_date", "valid_until",
                 "register_id", "dossier_code", "procedure_code", "batch_id", "pages", "mean_confidence",
                 "needs_review", "pdf_key", "pdf_sha256", "sidecar_key", "archived_at"):
        print(f"{name:>16}: {getattr(record, name)}")
    for spec in record.files:
        print(f"{'original':>16}: {spec.position} {spec.name} sha256 {spec.sha256}")
    print("events:")
    for event in catalog.events(record.id):
        print(f"  {event.created_at:%Y-%m-%d %H:%M:%S} {event.event_type:<22} {event.outcome:<8} "
              f"{event.tool} {event.tool_version}: {event.detail}")
    return 0


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    catalog = _catalog()
    records = catalog.documents(status="QUARANTINED")
    for record in records:
        names = ", ".join(f.name for f in record.files)
        print(f"{record.id:>6}  {record.batch_id}  {names}\n        [{record.reason}] {record.message}")
    print(f"{len(records)} quarantined document(s)")
    return 0


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    from digitize.pipeline import PipelineContext, process_document

    ctx = PipelineContext()
    for document_id in args.ids:
        record = ctx.catalog.get_document(document_id)
        if record.status != "QUARANTINED":
            print(f"document {document_id} is {record.status}, not quarantined")
            continue
        ctx.catalog.reset_for_retry(document_id)
        outcome = process_document(ctx, document_id, Path(args.batch_root) / record.batch_id)
        print(f"document {document_id}: {outcome.status} {outcome.code or outcome.reason or ''}")
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    """Supersede an archived document by a corrected batch: same code, next version, who and why recorded."""
    from digitize.intake import read_manifest
    from digitize.pipeline import PipelineContext, correct_document

    ctx = PipelineContext()
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    outcome = correct_document(ctx, args.code, read_manifest(Path(args.batch)), actor=args.actor, reason=args.reason)
    record = ctx.catalog.get_document(outcome.document_id)
    print(f"{args.code} version {record.version}: {outcome.status} {outcome.reason or ''}".rstrip())
    return 0 if outcome.status == "ARCHIVED" else 1


def cmd_review_list(args: argparse.Namespace) -> int:
    records = [r for r in _catalog().documents(status="ARCHIVED") if r.needs_review]
    for record in records:
        print(f"{record.code}  pages {record.pages}  mean confidence {record.mean_confidence}  {record.title}")
    print(f"{len(records)} document(s) flagged for review")
    return 0


def cmd_pki_init(args: argparse.Namespace) -> int:
    from digitize.config import load_settings
    from digitize.signing import create_demo_pki

    pki = create_demo_pki(Path(args.dir), agency_name=args.agency_name,
                          passphrase=load_settings().signing_passphrase)
    print(f"root certificate: {pki.root_cert}\nagency PKCS#12: {pki.pkcs12}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 only when the PDF, the sidecar and the originals match the catalog's checksums and every
    signature is valid and trusted."""
    from digitize.archive import open_archive
    from digitize.config import load_settings
    from digitize.errors import ConfigurationError
    from digitize.preservation import render_verification, verify_code, verify_file

    settings = load_settings()
    if not settings.trust_roots:
        raise ConfigurationError("no trust roots: set DIGITIZE_TRUST_ROOTS to the root CA certificate file(s)")
    catalog = _catalog()
    target = Path(args.target)
    if target.is_file():
        from digitize.checksums import sha256_file

        for match in catalog.find_by_pdf_sha256(sha256_file(target)):
            _log_access(catalog, match.id, "verify (a local copy of the signed PDF)")
        result = verify_file(catalog, target, trust_roots=settings.trust_roots, archive=open_archive(settings))
    else:
        found = catalog.get_by_code(args.target, version=args.version)
        if found is not None:
            _log_access(catalog, found.id, "verify (download of the archived PDF)")
        result = verify_code(catalog, open_archive(settings), args.target, trust_roots=settings.trust_roots,
                             version=args.version)
    print(render_verification(result))
    return 0 if result.ok else 1



def cmd_search(args: argparse.Namespace) -> int:
    """``search rebuild [--missing-only]`` re-indexes from the archive; anything else is a query."""
    from digitize import search

    catalog = _catalog()
    if args.query == ["rebuild"]:
        from digitize.archive import open_archive
        from digitize.config import load_settings

        summary = search.rebuild(catalog, open_archive(load_settings()), missing_only=args.missing_only)
        print(f"indexed {summary.documents} document(s), {summary.pages} page(s); removed {summary.removed} stale "
              f"page(s)")
        for code, message in summary.failures:
            print(f"  not indexed {code}: {message}")
        return 1 if summary.failures else 0
    filters = search.SearchFilters(
        agency=args.agency, kind=args.kind, holder=args.holder,
        issued_from=_search_date(args.date_from), issued_to=_search_date(args.date_to))
    result = search.search(catalog, " ".join(args.query), filters=filters, exact=args.exact, limit=args.limit)
    if args.holder:
        codes = ", ".join(dict.fromkeys(hit.code for hit in result.hits)) or "nothing"
        _log_cli_access(catalog, args, "holder_search", args.holder, f"q={' '.join(args.query)!r}; returned {codes}")
    if result.corrected_query:
        print(f"no match as typed; showing results for: {result.corrected_query}")
    for hit in result.hits:
        print(f"{hit.code}  p.{hit.page}  {hit.issued_date}  {hit.agency_code} {hit.kind}  {hit.title}\n"
              f"    {hit.snippet}")
    more = (f" ({search.CANDIDATE_LIMIT} pages or more match: only the first {search.CANDIDATE_LIMIT} found were "
            "ranked; refine the query or filter)") if result.truncated else ""
    print(f"{len(result.hits)} page(s){more}")
    return 0


def _search_date(text: str | None) -> date | None:
    from digitize.errors import SearchQueryInvalid

    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise SearchQueryInvalid(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_api_token(args: argparse.Namespace) -> int:
    from digitize import api

    catalog = _catalog()
    if args.action == "create":
        token = api.create_token(catalog, args.name, tuple(args.scope or api.SCOPES))
        print(f"token for {args.name} (shown once; only its SHA-256 is stored):\n{token}")
    elif args.action == "revoke":
        if not api.revoke_token(catalog, args.name):
            print(f"no active client named {args.name}", file=sys.stderr)
            return 1
        print(f"revoked {args.name}")
    else:
        for row in api.list_clients(catalog):
            state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
            print(f"{row['name']:<40} {row['scopes']:<12} created {row['created_at']:%Y-%m-%d}  {state}")
    return 0


def cmd_coversheets(args: argparse.Namespace) -> int:
    from digitize.presentation.coversheets_cli import run_command

    catalog = _catalog()
    return run_command(args, catalog, actor=_actor(),
                       log=lambda detail: _log_cli_access(catalog, args, "coversheets", None, detail))


def cmd_api_serve(args: argparse.Namespace) -> int:
    from digitize.api import serve

    serve(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line, one group of sub-commands per helper below, in the order ``--help`` lists them."""
    parser = argparse.ArgumentParser(prog="python -m digitize", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_processing_commands(sub)
    add_matching_commands(sub)
    add_coversheets_command(sub, cmd_coversheets)
    add_coverage_command(sub)
    _add_import_and_db_commands(sub)
    _add_document_care_commands(sub)
    _add_audit_commands(sub)
    _add_search_command(sub)
    _add_api_commands(sub)
    return parser


def _add_processing_commands(sub: Subparsers) -> None:
    """Turn scans into documents: a whole batch, or OCR only."""
    p = sub.add_parser("process", help="process one batch folder without Airflow")
    p.add_argument("batch", help="batch folder holding the scans and manifest.csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, default=1,
                   help="documents at a time, each in its own process with one Tesseract (default 1: one "
                        "document at a time, DIGITIZE_OCR_JOBS pages at a time); set it to the cores")
    p.add_argument("--stage-times", metavar="FILE", help="also write the run's summary with wall time and CPU "
                                                          "per stage as JSON")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("ocr", help="OCR scans into one searchable PDF/A (no code, signature or archive)")
    p.add_argument("files", nargs="+", help="scanned files of one document, in order")
    p.add_argument("--out", required=True, help="output PDF")
    p.add_argument("--text", help="also write the text, pages separated by form feeds")
    p.add_argument("--jobs", type=int, default=0, help="Tesseract processes (default: DIGITIZE_OCR_JOBS or cores)")
    p.set_defaults(func=cmd_ocr)


def _add_import_and_db_commands(sub: Subparsers) -> None:
    """Reference data imports and the catalog schema."""
    for noun, kind, what in (("agencies", "agencies", "agencies (one row per period of each agency)"),
                             ("register", "register", "register rows"),
                             ("successors", "successors", "agency successors (predecessor, successor, date)"),
                             ("reuse", "reuse", "reuse events from the one-stop system's log")):
        p = sub.add_parser(noun, help=f"manage {what}")
        nsub = p.add_subparsers(dest="action", required=True)
        q = nsub.add_parser("import", help=f"import {what} from CSV or XLSX; changes are recorded as new history "
                                           "and the file is kept in the archive")
        q.add_argument("file")
        q.add_argument("--no-archive", action="store_true",
                       help="do not keep the file in the archive (catalog rebuild cannot restore this import)")
        q.set_defaults(func=cmd_reference_import, kind=kind)

    p = sub.add_parser("db", help="catalog database")
    dsub = p.add_subparsers(dest="action", required=True)
    dsub.add_parser("upgrade", help="create or upgrade the catalog schema").set_defaults(func=cmd_db_upgrade)


def _add_document_care_commands(sub: Subparsers) -> None:
    """Look after documents: show one, quarantine, correction, review."""
    p = sub.add_parser("show", help="everything about one document, with its events")
    p.add_argument("code")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("quarantine", help="documents that failed, with their reasons")
    qsub = p.add_subparsers(dest="action", required=True)
    qsub.add_parser("list").set_defaults(func=cmd_quarantine_list)
    q = qsub.add_parser("retry", help="retry quarantined documents after fixing the cause")
    q.add_argument("ids", nargs="+", type=int)
    q.add_argument("--batch-root", required=True, help="inbox folder holding the batch folders")
    q.set_defaults(func=cmd_quarantine_retry)

    p = sub.add_parser("correct", help="supersede an archived document by a corrected version (same code)")
    p.add_argument("code", help="code of the archived document to correct")
    p.add_argument("batch", help="batch folder with the corrected scan(s) and a one-document manifest.csv")
    p.add_argument("--actor", required=True, help="who makes the correction (recorded in the event log)")
    p.add_argument("--reason", required=True, help="why (e.g. 'page 2 was missing')")
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("review", help="archived documents flagged for human review")
    rsub = p.add_subparsers(dest="action", required=True)
    rsub.add_parser("list").set_defaults(func=cmd_review_list)


def _add_audit_commands(sub: Subparsers) -> None:
    """Demo PKI, auditors' verification, catalog rebuild from the archive."""
    p = sub.add_parser("pki", help="demo signing certificate (never for production)")
    psub = p.add_subparsers(dest="action", required=True)
    q = psub.add_parser("init")
    q.add_argument("dir")
    q.add_argument("--agency-name", default="Ủy ban nhân dân tỉnh Mẫu")
    q.set_defaults(func=cmd_pki_init)

    p = sub.add_parser("verify", help="auditor: check an archived document (by code) or a PDF file: checksum "
                                      "against the catalog and signature; exit 0 only if both hold")
    p.add_argument("target", metavar="CODE_OR_FILE", help="document code, or path of a signed PDF")
    p.add_argument("--version", type=int, help="version of the code to check (default: the current one)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("catalog", help="catalog maintenance")
    csub = p.add_subparsers(dest="action", required=True)
    csub.add_parser("rebuild", help="restore an empty catalog from the sidecars in the archive (the source of "
                                    "truth) and replay the archived reference imports").set_defaults(
        func=cmd_catalog_rebuild)
    csub.add_parser("archive-reference", help="keep in the archive the reference data recorded before imports were "
                                              "archived (once, after upgrading to migration 0007)").set_defaults(
        func=cmd_catalog_archive_reference)


def _add_search_command(sub: Subparsers) -> None:
    """Full-text search (and its index rebuild)."""
    p = sub.add_parser("search", help='full-text search of archived pages, with or without diacritics; '
                                      '"search rebuild" re-indexes every archived document from the archive')
    p.add_argument("query", nargs="+", help='words, codes or "quoted phrases" (all must match)')
    p.add_argument("--agency", help="issuing agency code")
    p.add_argument("--kind", choices=("KQ", "TP"))
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="issued on or after")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="issued on or before")
    p.add_argument("--holder", help="citizen ID or tax code of the holder")
    p.add_argument("--exact", action="store_true", help="diacritics must match as typed")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--missing-only", action="store_true", help="rebuild: index only documents not yet indexed")
    p.set_defaults(func=cmd_search)


def _add_api_commands(sub: Subparsers) -> None:
    """The reuse API: tokens and server."""
    p = sub.add_parser("api", help="reuse API for the one-stop system: tokens, server")
    asub = p.add_subparsers(dest="area", required=True)
    q = asub.add_parser("token", help="bearer tokens of calling systems")
    tsub = q.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="new token for a calling system (printed once)")
    t.add_argument("name")
    t.add_argument("--scope", action="append", choices=("read", "reuse"), help="repeat; default: read and reuse")
    t.set_defaults(func=cmd_api_token)
    t = tsub.add_parser("revoke")
    t.add_argument("name")
    t.set_defaults(func=cmd_api_token)
    tsub.add_parser("list").set_defaults(func=cmd_api_token)
    q = asub.add_parser("serve", help="run the API with uvicorn")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=8090)
    q.set_defaults(func=cmd_api_serve)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given, for the access log
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, not at the interpreter's exit: a reader gone away is handled below
        return code
    except DigitizeError as exc:
        print(f"error: {exc}\n  what to do: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do, instead of a
        # traceback; stdout goes to /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
