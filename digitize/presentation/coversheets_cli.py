"""``python -m digitize coversheets``: its arguments and what it does with them (the drawing is in coversheets)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitize.catalog import Catalog
    from digitize.intake import RowError


def add_coversheets_command(sub: Any, func: Callable[[argparse.Namespace], int]) -> None:
    """Cover sheets to put on paper files before scanning them as one stack."""
    p = sub.add_parser("coversheets", help="print cover sheets (one A4 page each) for register or planned rows")
    p.add_argument("--out", required=True, help="PDF to write (mode 0600)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--register", nargs="+", metavar="ID", help="these register rows")
    which.add_argument("--missing", action="store_true",
                       help="register rows valid today (in Vietnam) and not yet digitized, in register order")
    which.add_argument("--planned", metavar="FILE",
                       help="CSV/XLSX of manifest rows without 'file' (dossier components, rows not in the register)")
    p.add_argument("--agency", help="with --missing: one agency code")
    p.add_argument("--level", help="with --missing: province, district or commune")
    p.add_argument("--limit", type=int, help="with --missing: at most this many, the first in register order")
    p.set_defaults(func=func)


def run_command(args: argparse.Namespace, catalog: Catalog, *, actor: str, log: Callable[[str], None]) -> int:
    """Select the rows, store their sheets, write the PDF (0600) and log the access; 1 if rows were refused."""
    from digitize.errors import UsageError
    from digitize.presentation import coversheets, dashboard

    if not args.missing and (args.agency or args.level or args.limit is not None):
        raise UsageError("--agency, --level and --limit select among --missing rows only",
                         hint="Add --missing, or drop those options.")
    refused: list[RowError] = []
    if args.register:
        rows = coversheets.register_selection(catalog, args.register)
    elif args.missing:
        rows = coversheets.missing_selection(catalog, dashboard.today(), agency=args.agency, level=args.level,
                                             limit=args.limit)
    else:
        rows, refused = coversheets.planned_selection(Path(args.planned))
    for error in refused:
        print(f"  row {error.row}: [{error.reason}] {error.message}", file=sys.stderr)
    if not rows:
        print("no sheet to print" + (f" ({len(refused)} row(s) refused)" if refused else ""), file=sys.stderr)
        return 1
    sheets, pdf = coversheets.print_sheets(catalog, rows, printed_by=actor[:200])
    coversheets.write_private(Path(args.out), pdf)
    log(coversheets.access_detail(sheets))
    print(f"{len(sheets)} cover sheet(s) written to {args.out}")
    if refused:
        print(f"{len(refused)} row(s) refused (listed above): fix them and print those again", file=sys.stderr)
    return 1 if refused else 0
