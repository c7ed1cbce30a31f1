"""The whole pipeline against OCRmyPDF's OCR alone and raw Tesseract, on the same A4 pages in one run.

    .venv/bin/python -m bench.pipeline [--corpus DIR] [--a4 12] [--workers 2] [--rounds 3] [--airflow] [--out FILE]

Pages: the development corpus (``../shared/corpus``: degraded scans, mixed sizes and formats) and
``--a4`` generated A4 pages at 300 dpi full of Vietnamese text (colour JPEG, gray PNG and bilevel G4
TIFF in turn, like office scanners write). Each file is one document. In one run, two at a time:

(a) ``python -m digitize process BATCH --workers 2``: register, OCR, code, signature, S3 archive with
    read-back, SQLite catalog, search index; the local S3 endpoint runs in its own process (its CPU is
    reported apart); the per-stage wall time and CPU come from the run's ``--stage-times`` file;
(b) with ``--airflow``: the same files through one ``digitize_backlog`` run on LocalExecutor
    (scripts/cluster.sh: PostgreSQL catalog, warmed up by a dry run first);
(c) ``ocrmypdf -l vie --rotate-pages --deskew --output-type pdfa --jobs 1`` per file (its default
    ``--optimize 1``), two files at a time: its OCR alone, and the storage reference;
(d) raw ``tesseract FILE - -l vie`` per image, two at a time: the floor (image-only PDFs: their stored
    images, extracted before the clock starts).

Peak RSS is the largest sum of resident memory of the whole process tree, sampled every 0.2 s, without
the local S3 endpoint (it stands in for the storage service, and holds every object it stores). The
machine's load average is recorded before and after each part: on a shared machine compare the
ratios measured in the same run, not the absolute times. The speed of these virtual cores drifts by a
quarter within minutes (the same raw Tesseract work took 38 s of CPU at 11:15 and 49 s at 14:10), so
``--rounds N`` runs (a), (c) and (d) in turn N times, each round on a fresh catalog and bucket, and
reports each round's ratios and their median: neighbours in time share the machine's speed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
from PIL import Image

from bench.corpus import DEFAULT_CORPUS, load_images, load_manifest
from bench.ocr_bench import OCRMYPDF, machine
from digitize.ocr.tesseract import tesseract_version
from digitize.stageclock import StageTimes, recording

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
PYTHON = sys.executable
ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
AGENCY = "000.00.12.H99"
A4_IN = (8.27, 11.69)


class TreeMemory:
    """Largest sum of RSS, and of PSS (shared pages divided among the processes sharing them, so forked
    workers do not count the parent's pages again), of this process's descendants, every 0.2 s.

    The local S3 endpoint is a child too, but it stands in for the storage service (MinIO, another
    machine in production) and keeps every object it stores in memory: it is left out (``S3_PIDS``).
    """

    def __init__(self) -> None:
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = pss = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a child may end while we look
                    if child.pid in S3_PIDS:
                        continue
                    info = child.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self._stop.wait(0.2)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


S3_PIDS: set[int] = set()
"""The S3 endpoints this benchmark started: not part of any measured tree."""


@dataclass
class Timed:
    """One system's run: wall seconds, CPU of its process tree, peak RSS of the tree, load before/after."""

    name: str
    seconds: float
    cpu: float
    peak_rss: int
    load: tuple[float, float]
    notes: list[str] = field(default_factory=list)
    peak_pss: int = 0


def a4_page(index: int, dpi: int = 300, lines: int = 38, size_in: tuple[float, float] = A4_IN,
            font_pt: float = 11.0) -> np.ndarray:
    """A page at ``dpi`` (A4 unless ``size_in``), letterhead then ``lines`` of paragraphs (38 fill A4 at 11 pt)."""
    from imagegen import LINES, PARAGRAPH, render_page

    body = LINES + tuple(PARAGRAPH[(index + n) % len(PARAGRAPH)] for n in range(lines)) + (f"Số hồ sơ {index:06d}",)
    return render_page(body, dpi=dpi, width_in=size_in[0], height_in=size_in[1], font_pt=font_pt)


DENSITY_PAGES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("A4 300 dpi, full text (~43 lines, 11 pt)", {}),
    ("A4 300 dpi, half a page of text (20 lines)", {"lines": 15}),
    ("A4 300 dpi, a short letter (8 lines)", {"lines": 3}),
    ("A4 300 dpi, full text in 9 pt print (~56 lines; read at 300 dpi)", {"lines": 51, "font_pt": 9.0}),
    ("A4 200 dpi, full text (binarised at 300 dpi)", {"dpi": 200}),
    ("A5 300 dpi, full text (20 lines)", {"lines": 15, "size_in": (5.83, 8.27)}),
)
"""The pages of :func:`density_table`: text density, print size, resolution and paper size in turn."""


def density_table() -> list[str]:
    """CPU of the OCR stages (``make_searchable_pdf``, one job: this thread and its Tesseract helper, counted by the
    stage clock) per page kind, best of two (the second has a warm helper, as a worker does from its second
    page on): how the cost varies with the page, for the README's sizing."""
    from digitize.ocr import OcrOptions, make_searchable_pdf

    rows = ["| page | OCR stages, CPU s/page (best of two) |", "|---|---|"]
    with tempfile.TemporaryDirectory(prefix="digitize-bench-density-") as tmp:
        for n, (label, kind) in enumerate(DENSITY_PAGES):
            dpi = int(kind.get("dpi", 300))
            path = Path(tmp) / f"page-{n}.png"
            Image.fromarray(a4_page(n, **kind)).save(path, format="PNG", dpi=(dpi, dpi))
            costs = []
            for _ in range(2):
                times = StageTimes()
                with recording(times):  # as the pipeline counts: this thread, the Tesseract helper, reaped children
                    make_searchable_pdf([path], Path(tmp) / "out.pdf", OcrOptions(jobs=1, work_dir=Path(tmp)))
                costs.append(sum(times.cpu.values()))
            rows.append(f"| {label} | {min(costs):.2f} |")
            print(rows[-1], flush=True)
    return rows


def write_a4(page: np.ndarray, path: Path, index: int, dpi: int = 300) -> Path:
    """The page as a scanner writes it, by turn: colour JPEG (warm paper), gray PNG, bilevel G4 TIFF."""
    kind = index % 3
    if kind == 0:
        tint = np.stack([page * 0.93, page * 0.97, page], axis=-1).clip(0, 255).astype(np.uint8)  # RGB
        Image.fromarray(tint).save(path.with_suffix(".jpg"), format="JPEG", quality=85, dpi=(dpi, dpi))
        return path.with_suffix(".jpg")
    if kind == 1:
        Image.fromarray(page).save(path.with_suffix(".png"), format="PNG", dpi=(dpi, dpi))
        return path.with_suffix(".png")
    Image.fromarray(page).convert("1", dither=Image.Dither.NONE).save(
        path.with_suffix(".tif"), format="TIFF", compression="group4", dpi=(dpi, dpi))
    return path.with_suffix(".tif")


def make_batch(batch: Path, corpus: Path | None, a4: int) -> tuple[list[Path], int]:
    """The batch folder (files + manifest.csv): the corpus's files, then ``a4`` generated pages; (files, pages)."""
    batch.mkdir(parents=True)
    files: list[Path] = []
    pages = 0
    if corpus is not None:
        for name in dict.fromkeys(p.file for p in load_manifest(corpus)):
            files.append(Path(shutil.copy2(corpus / name, batch / name)))
        pages += len(load_manifest(corpus))
    for i in range(a4):
        files.append(write_a4(a4_page(i), batch / f"a4-{i:03d}", i))
    pages += a4
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "agency_code", "kind", "title", "issued_date"])
    for n, path in enumerate(files):
        writer.writerow([path.name, AGENCY, "KQ", f"Kết quả giải quyết số {n:04d}", "2024-01-01"])
    (batch / "manifest.csv").write_text(out.getvalue(), encoding="utf-8")
    (batch / "_READY").touch()  # complete: Airflow's plan takes it without waiting for the quiet period
    return files, pages


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, run: Callable[[], list[str]]) -> Timed:
    """Run ``run`` (which starts and reaps its processes) under the clock, the tree's memory sampler and CPU."""
    load0 = os.getloadavg()[0]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    with TreeMemory() as mem:
        notes = run()
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    return Timed(name, seconds, cpu, mem.peak, (load0, os.getloadavg()[0]), notes, mem.peak_pss)


def two_at_a_time(commands: Sequence[list[str]], env: dict[str, str]) -> list[str]:
    """Run the commands two at a time; a failure is a note, not a stop."""
    def one(cmd: list[str]) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        last = [ln for ln in done.stderr.splitlines() if ln.strip()][-1:] or [""]
        return "" if done.returncode == 0 else f"{Path(cmd[-2]).name}: exit {done.returncode} {last[0][:150]}"

    with ThreadPoolExecutor(2) as pool:
        return [n for n in pool.map(one, commands) if n]


def start_s3(work: Path) -> tuple[subprocess.Popen[str], str]:
    """The local S3 endpoint in its own process (its CPU is not the pipeline's); its URL."""
    proc = subprocess.Popen([PYTHON, "-m", "digitize.dev.s3server", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=ENV)
    assert proc.stdout is not None
    S3_PIDS.add(proc.pid)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"the S3 endpoint did not start: {url!r}")
    return proc, url


def pipeline_env(work: Path, s3_url: str, bucket: str = "bench-pipeline") -> dict[str, str]:
    """A fresh SQLite catalog, bucket and demo PKI; everything else the deployment's defaults."""
    from digitize.catalog import Catalog
    from digitize.signing import create_demo_pki

    pki = create_demo_pki(work / "pki", agency_name="Ủy ban nhân dân tỉnh Mẫu", key_type="ec-p256")
    env = {k: v for k, v in ENV.items() if not k.startswith(("DIGITIZE_", "AIRFLOW"))}
    env.update({"DIGITIZE_CATALOG_URL": f"sqlite:///{work}/catalog.db", "DIGITIZE_S3_ENDPOINT_URL": s3_url,
                "DIGITIZE_S3_BUCKET": bucket, "DIGITIZE_SIGNING_PKCS12": str(pki.pkcs12),
                "DIGITIZE_SIGNING_PASSPHRASE": pki.passphrase, "DIGITIZE_TRUST_ROOTS": str(pki.root_cert),
                "DIGITIZE_WORK_DIR": str(work / "scratch"), "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": str(REPO)})
    (work / "scratch").mkdir(parents=True)
    catalog = Catalog(env["DIGITIZE_CATALOG_URL"])
    catalog.upgrade()
    catalog.import_agencies(REPO / "samples" / "agencies.csv")
    return env


def run_cli(batch: Path, env: dict[str, str], workers: int, stage_file: Path) -> list[str]:
    done = subprocess.run([PYTHON, "-m", "digitize", "process", str(batch), "--quiet", "--workers", str(workers),
                           "--stage-times", str(stage_file)], capture_output=True, text=True, env=env, cwd=REPO,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"process failed (exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return [ln for ln in done.stdout.splitlines() if ln.startswith(("archived", "pages", "time by stage"))]


def archived_bytes(env: dict[str, str]) -> dict[str, int]:
    """Bytes the archive holds by kind of object: signed PDFs, sidecars, originals; and their documents."""
    import boto3

    from digitize.catalog import Catalog

    docs = Catalog(env["DIGITIZE_CATALOG_URL"]).documents(status="ARCHIVED")
    kinds = {**{d.pdf_key: "signed PDF" for d in docs}, **{d.sidecar_key: "sidecar" for d in docs},
             **{k: "originals" for d in docs for k in d.original_keys}}
    s3 = boto3.client("s3", endpoint_url=env["DIGITIZE_S3_ENDPOINT_URL"], aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    sizes = {"signed PDF": 0, "sidecar": 0, "originals": 0, "other": 0, "documents": len(docs)}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["DIGITIZE_S3_BUCKET"]):
        for obj in page.get("Contents", []):
            sizes[kinds.get(obj["Key"], "other")] += int(obj["Size"])
    return sizes


def tesseract_inputs(files: Sequence[Path], work: Path) -> list[Path]:
    """What raw Tesseract reads: the images as they are; an image-only PDF's stored images, extracted."""
    inputs: list[Path] = []
    for path in files:
        if path.suffix.lower() != ".pdf":
            inputs.append(path)
            continue
        for i, (img, _) in enumerate(load_images(path)):
            out = work / f"{path.stem}-{i}.png"
            cv2.imwrite(str(out), img)
            inputs.append(out)
    return inputs


def run_airflow(batch: Path, base_env: dict[str, str], chunk_size: int) -> dict[str, Any]:
    """One digitize_backlog run of the batch on a fresh, warmed-up LocalExecutor cluster."""
    from bench.airflow_overhead import _archived, airflow_run, cluster, task_time

    source = batch.parent
    with cluster("LocalExecutor", {**base_env, "DIGITIZE_OCR_JOBS": "1"}) as env:
        load0 = os.getloadavg()[0]
        run = airflow_run(env, source, chunk_size, "bench-pipeline")
        run["tasks"] = task_time(env, "bench-pipeline")
        run["archived"] = _archived(env, batch.name)
        run["load"] = (load0, os.getloadavg()[0])
    return run


def _page_count(pdf: Path) -> int:
    import pikepdf

    with pikepdf.open(pdf) as doc:
        return len(doc.pages)


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def stage_table(stages: dict[str, Any], pages: int) -> list[str]:
    """Each stage's wall time, share and CPU of the process tree, per page."""
    wall, cpu = stages["stage_seconds"], stages["stage_cpu"]
    total_wall, total_cpu = sum(wall.values()), sum(cpu.values())
    rows = ["| stage | wall s/page | share of wall | CPU s/page | share of CPU |", "|---|---|---|---|---|"]
    for name in wall:
        rows.append(f"| {name} | {wall[name] / pages:.3f} | {100 * wall[name] / total_wall:.1f} % | "
                    f"{cpu.get(name, 0.0) / pages:.3f} | {100 * cpu.get(name, 0.0) / total_cpu:.1f} % |")
    ocr_like = ("load", "cleanup", "orientation", "ocr", "pdf")
    other = sum(v for k, v in wall.items() if k not in ocr_like)
    rows.append(f"| **all** | {total_wall / pages:.3f} | non-OCR stages (code, sign, archive, catalog, index): "
                f"**{100 * other / total_wall:.1f} %** | {total_cpu / pages:.3f} | "
                f"{100 * sum(v for k, v in cpu.items() if k not in ocr_like) / total_cpu:.1f} % |")
    return rows


def rounds_table(rounds: Sequence[Sequence[Timed]]) -> list[str]:
    """Each round's wall and CPU of the three systems, the ratios to OCRmyPDF, and their medians."""
    rows = ["## Rounds (each system in turn, ratios within a round)", "",
            "| round | process wall / CPU s | OCRmyPDF wall / CPU s | Tesseract wall / CPU s | × OCRmyPDF by wall | "
            "× by CPU | process : raw Tesseract by CPU |", "|---|---|---|---|---|---|---|"]
    by_wall, by_cpu = [], []
    for n, runs in enumerate(rounds, 1):
        cli, ocrmypdf, raw = (next(r for r in runs if r.name == name) for name in ("process", "ocrmypdf", "tesseract"))
        by_wall.append(ocrmypdf.seconds / cli.seconds)
        by_cpu.append(ocrmypdf.cpu / cli.cpu)
        rows.append(f"| {n} | {cli.seconds:.1f} / {cli.cpu:.1f} | {ocrmypdf.seconds:.1f} / {ocrmypdf.cpu:.1f} | "
                    f"{raw.seconds:.1f} / {raw.cpu:.1f} | {by_wall[-1]:.2f} | {by_cpu[-1]:.2f} | "
                    f"{cli.cpu / raw.cpu:.2f} |")
    rows += ["", f"Median over {len(rounds)} round(s): **{statistics.median(by_wall):.2f}× OCRmyPDF by wall time, "
             f"{statistics.median(by_cpu):.2f}× by CPU** (range {min(by_wall):.2f}–{max(by_wall):.2f} and "
             f"{min(by_cpu):.2f}–{max(by_cpu):.2f}).", ""]
    return rows


def report(args: argparse.Namespace, pages: int, files: int, rounds: Sequence[Sequence[Timed]],
           stages: dict[str, Any], sizes: dict[str, int], reference: tuple[int, int], airflow: dict[str, Any] | None,
           s3_cpu: float) -> str:
    runs = rounds[0]
    by = {r.name: r for r in runs}
    cli, ocrmypdf, raw = by["process"], by["ocrmypdf"], by["tesseract"]
    ocrmypdf_rate = 60 * pages / ocrmypdf.seconds
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    out = [
        "# The whole pipeline against OCRmyPDF and raw Tesseract", "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; commit {commit.stdout.strip()}",
        f"- machine: {machine()}, Python {platform.python_version()}, "
        f"{subprocess.run(['tesseract', '--version'], capture_output=True, text=True).stdout.splitlines()[0]} "
        f"(the CLI: raw Tesseract, the floor; `process` reads with tesserocr's Tesseract {tesseract_version()}), "
        f"OCRmyPDF {subprocess.run([OCRMYPDF, '--version'], capture_output=True, text=True).stdout.strip()}",
        f"- pages: {pages} in {files} files, one document each (corpus `{args.corpus}` and {args.a4} generated A4 "
        "pages at 300 dpi)",
        f"- command: `.venv/bin/python -m bench.pipeline {' '.join(sys.argv[1:])}`",
        f"- {args.note}", "",
        "| system | wall s | pages/min | × OCRmyPDF | CPU s of the tree | CPU s/page | × OCRmyPDF by CPU | "
        "peak RSS (PSS) MiB | load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        rate = 60 * pages / r.seconds
        out.append(f"| {r.name} | {r.seconds:.1f} | {rate:.1f} | {rate / ocrmypdf_rate:.2f} | {r.cpu:.1f} | "
                   f"{r.cpu / pages:.2f} | {ocrmypdf.cpu / r.cpu:.2f} | {_mib(r.peak_rss)} ({_mib(r.peak_pss)}) | "
                   f"{r.load[0]:.2f} → {r.load[1]:.2f} |")
    if airflow is not None:
        rate = 60 * pages / airflow["wall_seconds"]
        out.append(f"| Airflow, LocalExecutor ({airflow['state']}, {airflow['archived']} archived) | "
                   f"{airflow['wall_seconds']:.1f} | {rate:.1f} | {rate / ocrmypdf_rate:.2f} | "
                   f"workers {airflow['worker_cpu']:.1f} | {airflow['worker_cpu'] / pages:.2f} | "
                   f"{ocrmypdf.cpu / airflow['worker_cpu']:.2f} | — | "
                   f"{airflow['load'][0]:.2f} → {airflow['load'][1]:.2f} |")
    out += ["", f"`process` against raw Tesseract: {raw.seconds / cli.seconds:.2f} of the floor's speed. "
            f"The S3 endpoint (moto, its own process) used {s3_cpu:.1f} s of CPU besides. Notes: "
            + ("; ".join(n for r in runs for n in r.notes) or "none"), "",
            "## Stages of `process` (wall time of each worker's thread; CPU of the process and its children)", "",
            *stage_table(stages, pages), "", *rounds_table(rounds), "## Storage", "",
            "| what | bytes/page | per million pages |", "|---|---|---|"]
    for kind in ("signed PDF", "originals", "sidecar", "other"):
        out.append(f"| {kind} | {sizes[kind] / pages:,.0f} | {sizes[kind] / pages * 1e6 / 1e12:.2f} TB |")
    whole = sum(sizes[k] for k in ("signed PDF", "originals", "sidecar", "other"))
    out += [f"| **whole archived set** | {whole / pages:,.0f} | {whole / pages * 1e6 / 1e12:.2f} TB |",
            f"| OCRmyPDF output (`--optimize 1`, its default; {reference[1]} pages it made) | "
            f"{reference[0] / reference[1]:,.0f} | {reference[0] / reference[1] * 1e6 / 1e12:.2f} TB |", ""]
    return "\n".join(out) + "\n"


def tiff_memory(work: Path, env: dict[str, str], pages: int, noop: bool) -> str:
    """One document: a ``pages``-page TIFF of A4 300 dpi G4 pages through ``process``; peak RSS of the tree.

    With ``noop`` the OCR engine is the no-op plugin (every other stage real), which measures what the
    pipeline holds per document, apart from Tesseract's own processes (``DIGITIZE_OCR_JOBS`` of them).
    """
    from imagegen import save_tiff

    batch = work / "tiff-inbox" / "bench-tiff"
    batch.mkdir(parents=True)
    distinct = [a4_page(i) for i in range(4)]
    save_tiff([distinct[i % 4] for i in range(pages)], batch / "long.tif", dpi=300)
    (batch / "manifest.csv").write_text("file,agency_code,kind,title,issued_date\n"
                                        f"long.tif,{AGENCY},KQ,Hồ sơ dài,2024-01-01\n", encoding="utf-8")
    run_env = {**env, **({"DIGITIZE_PLUGINS": str(REPO / "tests" / "plugins" / "noop_ocr.py")} if noop else {})}
    result = timed("process, one TIFF", lambda: run_cli(batch, run_env, 1, work / "tiff-stages.json"))
    size = (batch / "long.tif").stat().st_size
    return (f"| {pages}-page A4 300 dpi G4 TIFF ({size / 2**20:.1f} MiB), {'no-op' if noop else 'real'} OCR, "
            f"DIGITIZE_OCR_JOBS={env.get('DIGITIZE_OCR_JOBS', 'cores')} | {result.seconds:.0f} s | "
            f"**{_mib(result.peak_rss)} MiB** (PSS {_mib(result.peak_pss)}) | "
            f"{result.load[0]:.2f} → {result.load[1]:.2f} | "
            f"{'; '.join(result.notes[:2])} |")


def one_round(files: Sequence[Path], raw_inputs: Sequence[Path], work: Path, env: dict[str, str], workers: int,
              stage_file: Path) -> list[Timed]:
    """``process``, OCRmyPDF and raw Tesseract on the same files, one after the other."""
    runs = [timed("process", lambda: run_cli(files[0].parent, env, workers, stage_file))]
    print(runs[-1], *runs[-1].notes, sep="\n", flush=True)
    out = work / "ocrmypdf"
    out.mkdir(exist_ok=True)
    runs.append(timed("ocrmypdf", lambda: two_at_a_time([
        [OCRMYPDF, "-l", "vie", "--rotate-pages", "--deskew", "--output-type", "pdfa", "--jobs", "1", str(f),
         str(out / f"{f.name}.pdf")] for f in files], ENV)))
    print(runs[-1], flush=True)
    runs.append(timed("tesseract", lambda: two_at_a_time(
        [["tesseract", str(f), str(work / f"raw-{f.name}"), "-l", "vie"] for f in raw_inputs], ENV)))
    print(runs[-1], flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="'' for generated pages only")
    parser.add_argument("--a4", type=int, default=12, help="generated A4 300 dpi text pages")
    parser.add_argument("--workers", type=int, default=2, help="documents at a time (process --workers)")
    parser.add_argument("--rounds", type=int, default=1, help="run process, OCRmyPDF and Tesseract in turn this often")
    parser.add_argument("--airflow", action="store_true", help="also one digitize_backlog run (LocalExecutor)")
    parser.add_argument("--chunk-size", type=int, default=5, help="documents per Airflow task")
    parser.add_argument("--note", default="machine shared with other work: compare ratios within this run")
    parser.add_argument("--out", type=Path, help="append the results here (markdown)")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    parser.add_argument("--tiff", type=int, default=0, help="only the memory run: one TIFF of this many pages")
    parser.add_argument("--noop-ocr", action="store_true", help="memory run with the no-op OCR engine")
    parser.add_argument("--density", action="store_true", help="only the CPU of the OCR stages per kind of page")
    args = parser.parse_args()
    if args.density:
        text = "\n".join([f"\n## OCR stages by page ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
                          f"`python -m bench.pipeline {' '.join(sys.argv[1:])}`)", "", *density_table()]) + "\n"
        if args.out:
            with args.out.open("a", encoding="utf-8") as out:
                out.write(text)
        return
    if args.tiff:
        memory_only(args)
        return
    work = Path(tempfile.mkdtemp(prefix="digitize-bench-pipeline-"))
    corpus = args.corpus if str(args.corpus) not in ("", ".") else None
    files, pages = make_batch(work / "inbox" / "bench-pipeline", corpus, args.a4)
    raw_inputs = tesseract_inputs(files, work)
    s3, s3_url = start_s3(work)
    try:
        env = pipeline_env(work, s3_url)
        stage_file = work / "stages.json"
        print(f"{pages} pages in {len(files)} files; load average {os.getloadavg()}", flush=True)
        rounds = []
        for n in range(max(1, args.rounds)):
            run_env = env if n == 0 else pipeline_env(work / f"round-{n + 1}", s3_url, f"bench-pipeline-{n + 1}")
            rounds.append(one_round(files, raw_inputs, work, run_env, args.workers,
                                    stage_file if n == 0 else work / f"stages-{n + 1}.json"))
        sizes = archived_bytes(env)
        times = psutil.Process(s3.pid).cpu_times()
        s3_cpu = times.user + times.system
    finally:
        s3.terminate()
        s3.wait(timeout=60)
    airflow = None
    if args.airflow:
        base = {k: v for k, v in env.items() if not k.startswith(("DIGITIZE_CATALOG", "DIGITIZE_S3", "DIGITIZE_WORK"))}
        airflow = run_airflow(files[0].parent, {**base, "CLUSTER_SEED": "1"}, args.chunk_size)
    outputs = list((work / "ocrmypdf").glob("*.pdf"))
    reference = (sum(p.stat().st_size for p in outputs), sum(_page_count(p) for p in outputs))
    stages = json.loads(stage_file.read_text())
    text = report(args, pages, len(files), rounds, stages, sizes, reference, airflow, s3_cpu)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
    if args.keep:
        shutil.copytree(work, args.keep, dirs_exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)


def memory_only(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="digitize-bench-tiff-"))
    s3, s3_url = start_s3(work)
    try:
        row = tiff_memory(work, pipeline_env(work, s3_url), args.tiff, args.noop_ocr)
    finally:
        s3.terminate()
        s3.wait(timeout=60)
    text = (f"\n| run ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, `python -m bench.pipeline "
            f"{' '.join(sys.argv[1:])}`) | wall | peak RSS of the tree | load avg | outcome |\n|---|---|---|---|---|\n"
            f"{row}\n")
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as out:
            out.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
