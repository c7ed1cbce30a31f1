"""What handing documents to the workers largest first saves, on a batch that lists its biggest document last.

    .venv/bin/python -m bench.ordering [--corpus] [--a4 12] [--dossier 6] [--rounds 2] [--out FILE]

The batch: ``--a4`` one-page A4 300 dpi full-text documents (``bench/pipeline.py``'s pages) and, last in
the manifest as an office often lists it, one ``--dossier``-page bilevel TIFF dossier (``--dossier 0``:
none). ``--corpus`` puts the development corpus first, which with ``--dossier 0`` is ``bench/pipeline.py``'s
own batch. Each round
processes it twice with ``process_in_workers`` (2 OCR slots, as ``process --workers 2``): the documents
in the manifest's order, then :func:`digitize.pipeline.largest_first`'s (the order of the two swaps
every round), each time on a fresh SQLite catalog and bucket of the local S3 endpoint. It reports wall
time, CPU of this process and its workers, and the cores they kept busy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.corpus import DEFAULT_CORPUS
from bench.pipeline import a4_page, make_batch, pipeline_env, start_s3


def add_dossier(batch: Path, pages: int) -> None:
    """A ``pages``-page G4 TIFF as the manifest's last document."""
    images = [Image.fromarray(a4_page(100 + n)).convert("1") for n in range(pages)]
    images[0].save(batch / "zz-dossier.tif", format="TIFF", save_all=True, append_images=images[1:],
                   compression="group4", dpi=(300, 300))
    manifest = batch / "manifest.csv"
    last = manifest.read_text(encoding="utf-8").rstrip("\n").splitlines()[-1].split(",")
    row = ["zz-dossier.tif", *last[1:3], "Hồ sơ nhiều trang", *last[4:]]
    with manifest.open("a", encoding="utf-8") as out:
        out.write(",".join(row) + "\n")


def options(description: str | None, *, corpus: bool) -> argparse.Namespace:
    """The batch's and the run's options, as this bench and ``bench/chunking.py`` take them."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a4", type=int, default=12, help="one-page A4 documents")
    parser.add_argument("--dossier", type=int, default=6, help="pages of the dossier listed last (0: none)")
    if corpus:
        parser.add_argument("--corpus", action="store_true", help="the development corpus first (bench/pipeline.py's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="append the results here (markdown)")
    return parser.parse_args()


def dossier_batch(name: str, args: argparse.Namespace) -> tuple[Path, Path, str]:
    """A scratch folder and the batch in it: (scratch, batch folder, what the batch holds, for the report).

    The developer's ``DIGITIZE_*`` settings (e.g. from ``.env``) are dropped: each run brings its own.
    """
    for key in [k for k in os.environ if k.startswith("DIGITIZE_")]:
        del os.environ[key]
    work = Path(tempfile.mkdtemp(prefix=f"digitize-bench-{name}-"))
    corpus = getattr(args, "corpus", False)
    files, pages = make_batch(work / "inbox" / f"bench-{name}", DEFAULT_CORPUS if corpus else None, args.a4)
    if args.dossier:
        add_dossier(files[0].parent, args.dossier)
    held = (f"{'the development corpus, then ' if corpus else ''}{args.a4} one-page A4 documents"
            + (f", then a {args.dossier}-page G4 TIFF dossier" if args.dossier else "")
            + f" ({pages + args.dossier} pages)")
    return work, files[0].parent, held


def publish(title: str, held: str, table: list[str], tail: list[str], out: Path | None) -> None:
    """Print the report (title, machine, batch, the rounds' table, the medians) and append it to ``out``."""
    module = f"bench.{Path(sys.argv[0]).stem}"
    text = "\n".join([
        f"### {title} ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, `python -m {module} {' '.join(sys.argv[1:])}`)",
        "", f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"({', '.join(f'{load:.2f}' for load in os.getloadavg())})", f"- batch: {held}", "", *table, "", *tail, ""])
    print(text)
    if out:
        with out.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (the forked workers, their Tesseracts)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def one_run(batch: Path, env: dict[str, str], largest: bool) -> tuple[float, float]:
    """Register the batch on the fresh catalog of ``env`` and process it; (wall s, CPU s)."""
    from digitize.config import load_settings
    from digitize.intake import read_manifest
    from digitize.pipeline import PipelineContext, largest_first, process_in_workers, register_batch

    os.environ.update(env)
    ctx = PipelineContext(load_settings())
    ctx.archive.ensure_bucket()
    cpu, start = cpu_seconds(), time.perf_counter()
    ids = register_batch(ctx.catalog, read_manifest(batch)).to_process
    order = largest_first(ctx.catalog, ids) if largest else list(ids)
    outcomes = process_in_workers(ctx.settings, order, batch, 2)
    wall, used = time.perf_counter() - start, cpu_seconds() - cpu
    assert [o.status for o in outcomes] == ["ARCHIVED"] * len(ids), outcomes
    return wall, used


def main() -> None:
    args = options(__doc__, corpus=True)
    work, batch, held = dossier_batch("ordering", args)
    s3, url = start_s3(work)
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    rows = ["| round | order | wall s | CPU s | cores busy |", "|---|---|---|---|---|"]
    try:
        for n in range(args.rounds):
            for largest in ((False, True) if n % 2 == 0 else (True, False)):
                name = "largest-first" if largest else "manifest"
                wall, cpu = one_run(batch, pipeline_env(work / f"{name}-{n}", url, f"order-{name}-{n}"), largest)
                runs[largest].append((wall, cpu))
                rows.append(f"| {n + 1} | {name} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.2f} |")
                print(rows[-1], flush=True)
    finally:
        s3.terminate()
    median = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    publish("Largest first", held, rows, [
        f"Median wall time: **{median[False]:.1f} s in the manifest's order, {median[True]:.1f} s largest first** "
        f"({median[True] / median[False]:.2f}×)."], args.out)


if __name__ == "__main__":
    main()
