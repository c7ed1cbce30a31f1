"""Intake without typing: matching scans to the register (``propose``) against a labelled ground truth.

    .venv/bin/python -m bench.intake match [--scans 120] [--out bench/results/intake.md] [--jobs 2]

``--out`` replaces only the section "## Matching scans to the register (propose)" of the file.

Matching: a generated register with confusable rows (tests/matchgen.py: one holder with several
results, titles a word apart, results of one day and agency, communes a letter apart) and one
rendered decision page per row, labelled with its true row, OCR'd by the real Tesseract through
``propose``. Reported: the accept rate, the precision among accepted, the review rate, and the
same where the holder ID or the dossier code is legible (printed on the page: the target is
≥ 95 % accepted there and none wrongly), with the seconds per scan; then, per scan, the sample batch
(``samples/batch`` without its manifest, whose register ids are the truth) against the sample register.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import sections

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class MatchResult:
    """One scan: its ground truth and what ``propose`` said."""

    variant: str
    true_id: str
    key_legible: bool
    status: str
    proposed: str | None


def run_match(scans: int, work: Path, *, jobs: int) -> tuple[list[MatchResult], float]:
    """Generate, render and propose ``scans`` scans in ``work``; the results and the seconds ``propose`` took."""
    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.intake import LocalBatch
    from digitize.match import ocr_options, propose_batch
    from digitize.pipeline import PipelineContext
    from tests import matchgen

    os.environ.update({"DIGITIZE_CATALOG_URL": f"sqlite:///{work / 'catalog.db'}",
                       "DIGITIZE_ARCHIVE_URL": f"file://{work / 'archive'}", "DIGITIZE_OCR_JOBS": str(jobs)})
    (work / "archive").mkdir()
    rows = matchgen.make_register(scans)
    truth = matchgen.scans_for(rows)
    agencies, register = matchgen.write_reference(rows, work)
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    catalog.import_agencies(agencies)
    catalog.import_register(register)
    batch = work / "batch"
    batch.mkdir()
    for i, scan in enumerate(truth):
        matchgen.render_scan(scan, batch / f"scan-{i:04d}.png")
    ctx = PipelineContext()
    start = time.perf_counter()
    proposals = propose_batch(ctx.catalog, ctx.archive, LocalBatch(batch), ocr_options(ctx.settings, None))
    seconds = time.perf_counter() - start
    by_file = {p.file: p for p in proposals}
    results = []
    for i, scan in enumerate(truth):
        p = by_file[f"scan-{i:04d}.png"]
        best = p.verdict.best
        results.append(MatchResult(scan.variant, scan.row.register_id,
                                   scan.legible("holder_id") or scan.legible("dossier_code"), p.verdict.status,
                                   best.row.register_id if best else None))
    return results, seconds


def run_samples(work: Path, *, jobs: int) -> list[str]:
    """``propose`` over the sample batch's scans (samples/batch, manifest left out) against the sample register;
    the manifest's register_id is the truth. Report lines (a Markdown table)."""
    import csv
    import shutil

    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.intake import LocalBatch
    from digitize.match import ocr_options, propose_batch
    from digitize.pipeline import PipelineContext

    samples = REPO / "samples"
    os.environ.update({"DIGITIZE_CATALOG_URL": f"sqlite:///{work / 'samples.db'}",
                       "DIGITIZE_ARCHIVE_URL": f"file://{work / 'samples-archive'}", "DIGITIZE_OCR_JOBS": str(jobs)})
    (work / "samples-archive").mkdir()
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    catalog.import_agencies(samples / "agencies.csv")
    catalog.import_register(samples / "register.csv")
    with (samples / "batch" / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        truth = {r["file"]: r["register_id"] or "-" for r in csv.DictReader(handle)}
    batch = work / "samples-batch"
    batch.mkdir()
    for name in truth:
        shutil.copy2(samples / "batch" / name, batch / name)
    ctx = PipelineContext()
    lines = ["| scan | true row | status | best (score) | matched | why |", "|---|---|---|---|---|---|"]
    for p in propose_batch(ctx.catalog, ctx.archive, LocalBatch(batch), ocr_options(ctx.settings, None)):
        best = p.verdict.best
        shown = f"{best.row.register_id} ({best.score:.0f})" if best else "-"
        lines.append(f"| {p.file} p.{p.first_page}-{p.last_page} | {truth[p.file]} | {p.verdict.status} | {shown} "
                     f"| {', '.join(best.matched) if best else ''} | {p.verdict.why} |")
    return lines


def rates(results: list[MatchResult]) -> dict[str, float | int]:
    """Accept rate, precision among accepted, review and none rates, wrong acceptances."""
    n = len(results)
    accepted = [r for r in results if r.status == "accepted"]
    right = sum(r.proposed == r.true_id for r in accepted)
    return {"scans": n, "accepted": len(accepted), "accept_rate": len(accepted) / n if n else 0.0,
            "precision": right / len(accepted) if accepted else 1.0, "wrong": len(accepted) - right,
            "review_rate": sum(r.status == "review" for r in results) / n if n else 0.0,
            "none_rate": sum(r.status == "none" for r in results) / n if n else 0.0,
            "best_right": sum(r.proposed == r.true_id for r in results) / n if n else 0.0}


def match_report(results: list[MatchResult], seconds: float, command: str) -> str:
    """The matching section of bench/results/intake.md."""
    groups = {"all scans": results, "ID or dossier code legible": [r for r in results if r.key_legible]}
    for variant in ("full", "id_only", "code_only", "neither"):
        groups[f"variant {variant}"] = [r for r in results if r.variant == variant]
    lines = [SECTION, "",
             f"Command: `{command}`", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores "
             f"(shared machine, load average {os.getloadavg()[0]:.1f}); Python {platform.python_version()}.", "",
             "| scans | n | accepted | precision among accepted | wrong accepts | review | none | best = true row |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, group in groups.items():
        r = rates(group)
        lines.append(f"| {label} | {r['scans']} | {r['accept_rate']:.1%} | {r['precision']:.1%} | {r['wrong']} "
                     f"| {r['review_rate']:.1%} | {r['none_rate']:.1%} | {r['best_right']:.1%} |")
    legible = rates(groups["ID or dossier code legible"])
    met = legible["accept_rate"] >= 0.95 and legible["wrong"] == 0
    lines += ["", f"Target (ID or dossier code legible: ≥ 95 % accepted, none wrongly): "
                  f"**{'met' if met else 'NOT met'}** ({legible['accept_rate']:.1%} accepted, "
                  f"{legible['wrong']} wrong).",
              f"`propose` took {seconds:.1f} s for {len(results)} scans ({seconds / max(1, len(results)):.2f} s per "
              "scan, OCR included: the OCR is kept for `process`, which does not OCR these scans again).", ""]
    return "\n".join(lines)


TITLE = "# Intake without typing: benchmark"
SECTION = "## Matching scans to the register (propose)"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of the previous one (other benchmarks' sections kept)."""
    sections.write_section(path, SECTION, section, title=TITLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    m = sub.add_parser("match", help="matching scans to the register")
    m.add_argument("--scans", type=int, default=120)
    m.add_argument("--jobs", type=int, default=2)
    m.add_argument("--out", help="write the report here (e.g. bench/results/intake.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        results, seconds = run_match(args.scans, Path(tmp), jobs=args.jobs)
        samples = run_samples(Path(tmp), jobs=args.jobs)
    report = match_report(results, seconds, "python -m bench.intake match " + " ".join(sys.argv[2:]))
    report += ("\nThe sample batch (`samples/batch`, real-looking scans; its manifest left out and used as the "
               "truth):\n\n" + "\n".join(samples) + "\n")
    print(report)
    if args.out:  # only this section: the cover sheets' (bench/intake_sheets.py) is kept
        write_section(Path(args.out), report)


if __name__ == "__main__":
    main()
