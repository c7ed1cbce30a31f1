"""``coverage check REPORT``: read a report's provenance, regenerate it, and compare the bytes.

A report (D, C) read from the catalog as recorded up to C is byte-identical whenever it is regenerated:
the renderers put no "generated at" moment in it (XLSX times are pinned to C), and the frames are those
recorded by C. So a check is: take D, C and the plan from the file, recompute, render in the same format,
compare. The code version the file names is written back into the regenerated file (a newer release of
the same figures still matches) and said when it differs from the code checking it.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from digitize.coverage.indicators import CoverageReport
from digitize.coverage.plan import Plan, load_plan
from digitize.coverage.provenance import PROVENANCE_KEYS, code_version
from digitize.coverage.render_csv import write_csv
from digitize.coverage.render_html import write_html
from digitize.coverage.render_xlsx import write_xlsx
from digitize.errors import UsageError

_WRITERS: dict[str, Callable[[CoverageReport, Path], None]] = {"csv": write_csv, "html": write_html,
                                                                "xlsx": write_xlsx}
_HINT = "Give a coverage report written by python -m digitize coverage --out FILE (.csv, .xlsx or .html)."


def report_format(path: Path) -> str:
    """csv, xlsx or html, from the file's suffix."""
    fmt = {".csv": "csv", ".xlsx": "xlsx", ".html": "html", ".htm": "html"}.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path} is not a CSV, XLSX or HTML report", hint=_HINT)
    return fmt


def read_provenance(path: Path) -> dict[str, str]:
    """The provenance fields a report records (see :mod:`digitize.coverage.provenance`)."""
    fmt = report_format(path)
    try:
        if fmt == "csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                found = {r["scope"]: r["basis"] for r in csv.DictReader(f) if r.get("indicator") == "provenance"}
        elif fmt == "html":
            text = path.read_text(encoding="utf-8")
            found = {m[1]: html.unescape(m[2]) for m in re.finditer(r'<meta name="digitize:(\w+)" content="([^"]*)">',
                                                                   text)}
        else:
            found = _xlsx_provenance(path)
    except (OSError, UnicodeDecodeError, KeyError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint=_HINT) from exc
    missing = [k for k in PROVENANCE_KEYS if k not in found]
    if missing:
        raise UsageError(f"{path} records no {', '.join(missing)}: not a report that can be checked", hint=_HINT)
    return {k: found[k] for k in PROVENANCE_KEYS}


def _xlsx_provenance(path: Path) -> dict[str, str]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = book["Nguồn gốc số liệu"].iter_rows(min_row=2, values_only=True)
        return {str(r[0]): "" if r[2] is None else str(r[2]) for r in rows if r and r[0]}
    finally:
        book.close()


def find_plan(sha256: str, candidates: Iterable[Path]) -> Plan | None:
    """The first plan file among ``candidates`` whose bytes have this SHA-256."""
    for path in candidates:
        if path.is_file():
            plan = load_plan(path)
            if plan.sha256 == sha256:
                return plan
    return None


@dataclass(frozen=True)
class CheckResult:
    """What ``coverage check`` found."""

    matches: bool
    """The regenerated report has the same bytes."""

    recorded: dict[str, str]
    """The provenance the file records."""

    differences: tuple[str, ...]
    """What differs, one line each (empty when it matches)."""

    notes: tuple[str, ...]
    """What an auditor should know even when it matches (another code version checked it)."""


def check_report(path: Path, plan: Plan | None, regenerate: Callable[[date, datetime, Plan], CoverageReport]
                 ) -> CheckResult:
    """Regenerate the report at ``path`` with its D, C and plan, and compare the bytes."""
    recorded = read_provenance(path)
    if plan is None:
        return CheckResult(False, recorded, (
            f"plan: no plan file with SHA-256 {recorded['plan_sha256']} ({recorded['plan_id']}) was found; "
            "give it with --plan",), ())
    if not recorded["cutoff"]:
        raise UsageError(f"{path} records no data cut-off", hint=_HINT)
    try:
        as_of, cutoff = date.fromisoformat(recorded["as_of"]), datetime.fromisoformat(recorded["cutoff"])
    except ValueError as exc:
        raise UsageError(f"{path} records an unreadable day or cut-off: {exc}", hint=_HINT) from exc
    report = dataclasses.replace(regenerate(as_of, cutoff, plan), code_version=recorded["code_version"])
    fmt = report_format(path)
    with tempfile.TemporaryDirectory(prefix="digitize-check-") as scratch:
        again = Path(scratch) / f"report.{fmt}"
        _WRITERS[fmt](report, again)
        new = again.read_bytes()
    now = report.provenance()
    differences = [f"{k}: the report says {recorded[k] or '—'}, regenerated {now[k] or '—'}"
                   for k in PROVENANCE_KEYS if recorded[k] != now[k]]
    old = path.read_bytes()
    if old != new:
        differences += _byte_differences(fmt, old, new)
    notes = () if code_version() == recorded["code_version"] else (
        f"checked with code {code_version()}; the report was made with {recorded['code_version']}",)
    return CheckResult(old == new, recorded, tuple(differences), notes)


def _byte_differences(fmt: str, old: bytes, new: bytes) -> list[str]:
    """The first lines that differ (CSV), or that the bytes differ at all."""
    if fmt != "csv":
        return [f"the {fmt.upper()} file's bytes differ from the regenerated report's ({len(old)} vs {len(new)} bytes)"]
    a, b = old.decode("utf-8-sig").splitlines(), new.decode("utf-8-sig").splitlines()
    out = [f"line {i + 1}: the report has {x!r}, regenerated {y!r}" for i, (x, y) in enumerate(zip(a, b, strict=False))
           if x != y][:5]
    if len(a) != len(b):
        out.append(f"the report has {len(a)} lines, regenerated {len(b)}")
    return out
