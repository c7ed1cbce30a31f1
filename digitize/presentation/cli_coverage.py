"""``python -m digitize coverage``: reports as of (D, C), their drill-downs, and ``coverage check REPORT``.

D (``--as-of``) is the day the figures describe, Vietnam's; C (``--cutoff``) the data cut-off: the report
reads the facts valid on D as recorded up to C. Without ``--cutoff`` C is now, and the report records it,
so the same command with ``--cutoff`` set to what the report says gives the same bytes again.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.clock import business_today, parse_business_date, parse_cutoff, utc_now
from digitize.errors import UsageError

if TYPE_CHECKING:
    from datetime import date, datetime
    from typing import TypeAlias

    from digitize.catalog import Catalog
    from digitize.coverage import CoverageReport, Plan

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_MISMATCH = 1
"""``coverage check``: the regenerated report differs from the file."""


def cmd_coverage(args: argparse.Namespace) -> int:
    from digitize import coverage
    from digitize.config import load_settings
    from digitize.presentation.cli import _catalog, _holder_ids_shown
    from digitize.spreadsheet import csv_frame

    as_of = parse_business_date(args.as_of) if args.as_of else business_today()
    now = utc_now()
    cutoff = parse_cutoff(args.cutoff) if args.cutoff else now
    if cutoff > now:  # facts recorded between now and then would change the report later: not frozen
        raise UsageError(f"the cut-off {cutoff.isoformat()} is in the future",
                         hint="A report can read only what is recorded by now: omit --cutoff, or give a past moment.")
    catalog = _catalog()
    plan = coverage.load_plan(Path(args.plan) if args.plan else load_settings().plan_path)
    inputs = coverage.CoverageInputs.from_catalog(catalog, cutoff)
    if args.drill_down:
        if args.indicator == "not_asked_again":
            what = "dossier"
            rows = coverage.drill_down_dossiers(inputs.agencies, inputs.needs, as_of, level=args.level,
                                                agency=args.agency, part=args.drill_down)
        else:
            what = "document" if args.drill_down == "uncounted" else "register row"
            rows = inputs.drill_down(as_of, level=args.level, agency=args.agency, part=args.drill_down,
                                     indicator=args.indicator)
        rows = _holder_ids_shown(catalog, rows, args, "coverage_drill_down")
        if args.out:
            csv_frame(rows).to_csv(args.out, index=False, encoding="utf-8")  # formulas neutralised
            print(f"{len(rows)} {what}(s) written to {args.out}")
        else:
            print(rows.to_string(index=False) if len(rows) else f"no {what}s")
        return 0
    report = inputs.report(plan, as_of)
    return _write_report(report, args, catalog)


def _write_report(report: CoverageReport, args: argparse.Namespace, catalog: Catalog) -> int:
    """The report in the format asked, to ``--out`` or standard output (the text table by default)."""
    from digitize import coverage
    from digitize.presentation.cli import _holder_ids_shown

    writers = {"csv": coverage.write_csv, "html": coverage.write_html, "xlsx": coverage.write_xlsx}
    if args.out:
        out = Path(args.out)
        fmt = args.format or {".html": "html", ".htm": "html", ".xlsx": "xlsx"}.get(out.suffix.lower(), "csv")
        print(coverage.render_table(report))
        if fmt == "xlsx":
            if args.show_holder_ids:
                _holder_ids_shown(catalog, report.detail, args, "coverage_xlsx")
            coverage.write_xlsx(report, out, holder_ids=args.show_holder_ids)
        else:
            writers[fmt](report, out)
        print(f"wrote {out} ({fmt})")
    elif args.format in ("csv", "html"):  # to standard output, for a pipe or a redirection
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / f"coverage.{args.format}"
            writers[args.format](report, path)
            sys.stdout.buffer.write(path.read_bytes())
    elif args.format == "xlsx":
        raise UsageError("an XLSX workbook cannot go to the terminal", hint="Add --out FILE.xlsx.")
    else:
        print(coverage.render_table(report))
    return 0


def cmd_coverage_check(args: argparse.Namespace) -> int:
    from digitize import coverage
    from digitize.config import REPO_ROOT, load_settings
    from digitize.coverage import check_report, find_plan, read_provenance
    from digitize.presentation.cli import _catalog

    path = Path(args.report)
    if not path.is_file():
        raise UsageError(f"no report file {path}", hint="Give the path of a CSV, XLSX or HTML coverage report.")
    recorded = read_provenance(path)
    candidates = [Path(args.plan)] if args.plan else [load_settings().plan_path,
                                                       *sorted((REPO_ROOT / "schemas" / "plans").glob("*.json"))]
    plan = find_plan(recorded["plan_sha256"], candidates)
    catalog = _catalog()

    def regenerate(as_of: date, cutoff: datetime, plan: Plan) -> CoverageReport:
        return coverage.CoverageInputs.from_catalog(catalog, cutoff).report(plan, as_of)

    result = check_report(path, plan, regenerate)
    print(f"{path}: plan {recorded['plan_id']}, as of {recorded['as_of']}, data recorded up to {recorded['cutoff']}")
    for line in result.notes:
        print(f"  note: {line}")
    if result.matches:
        print("matches: regenerated from the catalog, the report is byte-identical")
        return 0
    print("DIFFERS: regenerated from the catalog, the report is not the same")
    for line in result.differences:
        print(f"  {line}")
    return EXIT_MISMATCH


def add_coverage_command(sub: Subparsers) -> None:
    """Coverage reports, their drill-downs, and ``coverage check``."""
    p = sub.add_parser("coverage", help="coverage of the register against the plan's targets")
    p.add_argument("--as-of", help="report date D: YYYY-MM-DD or dd/mm/yyyy (default: today in Vietnam)")
    p.add_argument("--cutoff", help="data cut-off C: facts as recorded up to it; a date (its end, Vietnam time) "
                                    "or an ISO timestamp with zone (default: now)")
    p.add_argument("--plan", help="plan file (default DIGITIZE_PLAN)")
    p.add_argument("--format", choices=("csv", "html", "xlsx"),
                   help="report format (default: the text table; with --out, from the file's extension, else csv); "
                        "csv and html without --out go to standard output")
    p.add_argument("--out", help="write the report here")
    p.add_argument("--drill-down", choices=("numerator", "denominator", "missing", "uncounted", "succession"),
                   help="list the register rows (or, for not_asked_again, the dossiers) behind a figure instead "
                        "of the report; missing = not digitized / asked again; uncounted = the documents archived "
                        "but not counted, with their reason; succession = rows counted through a successor")
    p.add_argument("--indicator", choices=("stock", "flow", "not_asked_again"), default="stock",
                   help="with --drill-down: which figure (default stock)")
    p.add_argument("--level", help="with --drill-down: province, district or commune")
    p.add_argument("--agency", help="with --drill-down: one agency code")
    p.add_argument("--show-holder-ids", action="store_true",
                   help="drill-down and XLSX detail: full holder IDs instead of masked ones (0790••••1234); "
                        "the access is recorded in the access log")
    p.set_defaults(func=cmd_coverage)
    csub = p.add_subparsers(dest="coverage_command", metavar="check")
    c = csub.add_parser("check", help="regenerate a report from the catalog and say whether it is byte-identical")
    c.add_argument("report", help="a CSV, XLSX or HTML coverage report")
    c.add_argument("--plan", help="the plan file (default: the one among DIGITIZE_PLAN and schemas/plans/ whose "
                                  "SHA-256 the report records)")
    c.set_defaults(func=cmd_coverage_check)
