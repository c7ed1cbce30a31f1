"""The reference-data commands: importing agencies, successors, register and reuse events (archived), keeping
the pre-0007 reference rows in the archive, and rebuilding the catalog with that history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digitize.catalog import Catalog, ImportSummary


def _open_catalog() -> Catalog:
    from digitize.presentation.cli import _catalog

    return _catalog()


def _print_import(summary: ImportSummary) -> int:
    print(f"added {summary.added}, changed {summary.changed}, unchanged {summary.unchanged}, "
          f"rejected {len(summary.rejected)}")
    for error in summary.rejected:
        print(f"  row {error.row_number}: {error.message}")
    for warning in summary.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_reference_import(args: argparse.Namespace) -> int:
    """Import a reference file (agencies, register, successors, reuse events); archived unless --no-archive."""
    from digitize.archive import open_archive
    from digitize.config import load_settings
    from digitize.preservation import import_reference

    archive = None
    if not args.no_archive:
        archive = open_archive(load_settings())
        archive.ensure_bucket()
    return _print_import(import_reference(_open_catalog(), archive, args.kind, Path(args.file)))


def cmd_catalog_archive_reference(args: argparse.Namespace) -> int:
    """Keep in the archive the reference rows no archived import accounts for (once, after the upgrade to 0007)."""
    from digitize.archive import open_archive
    from digitize.config import load_settings
    from digitize.preservation import archive_reference_snapshot

    key, rows = archive_reference_snapshot(_open_catalog(), open_archive(load_settings()))
    print(f"kept {rows} recorded reference row(s) in the archive as {key}" if key else
          "nothing to keep: every recorded reference row comes from an archived import")
    return 0


def cmd_catalog_rebuild(args: argparse.Namespace) -> int:
    from digitize.archive import open_archive
    from digitize.config import load_settings
    from digitize.preservation import rebuild_catalog, replay_reference_imports

    settings = load_settings()
    catalog, archive = _open_catalog(), open_archive(settings)
    summary = rebuild_catalog(catalog, archive, template=settings.code_template)
    print(f"restored {summary.documents} document version(s) of {summary.codes} code(s) from the archive's sidecars")
    replayed = replay_reference_imports(catalog, archive)
    print(f"replayed {replayed.imports} reference file import(s) (agencies, register, successors, reuse events) "
          f"with their recorded times, and {replayed.snapshot_rows} row(s) from reference snapshots")
    for skipped in (*summary.skipped, *replayed.skipped):
        print(f"  not restored: {skipped}")
    return 1 if summary.skipped or replayed.skipped else 0
