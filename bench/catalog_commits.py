"""Catalog commits per processed document, and the code that made each one.

    .venv/bin/python -m bench.catalog_commits [--documents 6] [--workers 2] [--ocr] [--out FILE]

Runs ``python -m digitize process BATCH --workers N --stage-times FILE`` on ``--documents`` small
generated one-page documents (the no-op OCR engine of ``tests/plugins`` unless ``--ocr``) with a fresh
SQLite catalog (synchronous=FULL, the default), a folder archive and a demo PKI. An SQLAlchemy
``commit`` listener, installed before the CLI starts and so inherited by its forked workers, appends
one line per commit to a file: write or read transaction (writers begin ``IMMEDIATE``), the catalog
method and the pipeline function that opened it. Prints the commits per document by origin, and the
run's stage times (a shared machine makes those indicative only).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
AGENCY = "000.00.12.H99"

COUNTER = """
import os, sys
import sqlalchemy as sa

LOG = os.environ["BENCH_COMMIT_LOG"]

def origin():
    frame, catalog, caller = sys._getframe(2), None, None
    while frame is not None:
        path = frame.f_code.co_filename
        plumbing = path.endswith("/catalog/engine.py") and frame.f_code.co_name in ("write", "read", "_joined")
        if "/digitize/" in path and not plumbing:
            name = path.rsplit("/digitize/", 1)[1][:-3].replace("/", ".") + "." + frame.f_code.co_name
            if catalog is None and "/digitize/catalog/" in path:
                catalog = name
            elif "/digitize/catalog/" not in path:
                caller = name
                break
        frame = frame.f_back
    return f"{catalog or '-'} <- {caller or '-'}"

def count(conn):
    kind = "write" if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE" else "read"
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(f"{kind} {origin()}\\n")

sa.event.listen(sa.engine.Engine, "commit", count)
from digitize.presentation.cli import main
sys.exit(main(sys.argv[1:]))
"""


def make_batch(batch: Path, documents: int) -> None:
    """``documents`` one-page documents (a small text page each, 200 dpi PNG) and their manifest."""
    from imagegen import render_page

    batch.mkdir(parents=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "agency_code", "kind", "title", "issued_date"])
    for n in range(documents):
        page = render_page(("GIẤY XÁC NHẬN", f"Số {n}/2024"), dpi=200, width_in=3.0, height_in=1.5, font_pt=12.0)
        Image.fromarray(page).save(batch / f"page-{n:03d}.png", format="PNG", dpi=(200, 200))
        writer.writerow([f"page-{n:03d}.png", AGENCY, "KQ", f"Giấy xác nhận số {n}", "2024-01-01"])
    (batch / "manifest.csv").write_text(out.getvalue(), encoding="utf-8")
    (batch / "_READY").touch()


def environment(work: Path, ocr: bool) -> dict[str, str]:
    """A fresh catalog (agencies imported), folder archive and demo PKI; the no-op OCR engine unless ``ocr``."""
    from digitize.catalog import Catalog
    from digitize.signing import create_demo_pki

    pki = create_demo_pki(work / "pki", agency_name="Ủy ban nhân dân tỉnh Mẫu", key_type="ec-p256")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITIZE_", "AIRFLOW"))}
    env.update({"DIGITIZE_CATALOG_URL": f"sqlite:///{work}/catalog.db",
                "DIGITIZE_ARCHIVE_URL": (work / "archive").as_uri(),
                "DIGITIZE_SIGNING_PKCS12": str(pki.pkcs12), "DIGITIZE_SIGNING_PASSPHRASE": pki.passphrase,
                "DIGITIZE_TRUST_ROOTS": str(pki.root_cert), "DIGITIZE_WORK_DIR": str(work / "scratch"),
                "PYTHONPATH": str(REPO), "OMP_THREAD_LIMIT": "1", "BENCH_COMMIT_LOG": str(work / "commits.log")})
    if not ocr:
        env["DIGITIZE_PLUGINS"] = str(REPO / "tests" / "plugins" / "noop_ocr.py")
    (work / "scratch").mkdir()
    catalog = Catalog(env["DIGITIZE_CATALOG_URL"])
    catalog.upgrade()
    catalog.import_agencies(REPO / "samples" / "agencies.csv")
    catalog.close()
    return env


def run(documents: int, workers: int, ocr: bool) -> tuple[Counter[str], dict[str, object]]:
    """Commits by origin, and the run's summary (stage times), for one ``process`` run."""
    with tempfile.TemporaryDirectory(prefix="bench-commits-") as folder:
        work = Path(folder)
        make_batch(work / "batch", documents)
        env = environment(work, ocr)
        done = subprocess.run([sys.executable, "-c", COUNTER, "process", str(work / "batch"), "--quiet",
                               "--workers", str(workers), "--stage-times", str(work / "times.json")],
                              capture_output=True, text=True, env=env, cwd=REPO, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"process failed (exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        commits = Counter((work / "commits.log").read_text(encoding="utf-8").splitlines())
        return commits, json.loads((work / "times.json").read_text(encoding="utf-8"))


def report(documents: int, workers: int, commits: Counter[str], summary: dict[str, object]) -> str:
    """The commits per document by origin, then the stage times of the run."""
    writes = sum(n for origin, n in commits.items() if origin.startswith("write"))
    reads = sum(commits.values()) - writes
    lines = [f"{documents} document(s), --workers {workers}: {writes} write transactions "
             f"({writes / documents:.1f} per document), {reads} read transactions ({reads / documents:.1f})",
             "", "| commits | per document | transaction, catalog method <- caller |", "| ---: | ---: | --- |"]
    lines += [f"| {n} | {n / documents:.2f} | {origin} |" for origin, n in commits.most_common()]
    stages: dict[str, float] = dict(summary["stage_seconds"])  # type: ignore[call-overload]
    total = sum(stages.values())
    lines += ["", f"run: {summary['seconds']} s wall; stage wall seconds summed over the workers "
                  f"(indicative only on a shared machine): {total:.2f} s", "",
              "| stage | seconds | share |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {value:.3f} | {value / total:.1%} |" for name, value in stages.items() if value]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ocr", action="store_true", help="real Tesseract instead of the no-op engine")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    commits, summary = run(args.documents, args.workers, args.ocr)
    text = report(args.documents, args.workers, commits, summary)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
