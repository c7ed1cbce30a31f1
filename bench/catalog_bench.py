"""Catalog throughput: registering documents and allocating codes, on SQLite and PostgreSQL.

    .venv/bin/python bench/catalog_bench.py [--documents 100000] [--sample 2000] [--processes 4]

For each backend (SQLite with synchronous=FULL, the default; SQLite with
synchronous=NORMAL; PostgreSQL with fsync on, started by scripts/postgres.sh):

- bulk registration of ``--documents`` documents with ``register_documents``
  (1,000 per transaction), against the floor: the same rows inserted by a bare
  SQLAlchemy ``executemany`` with no checks;
- one transaction per document with ``register_document`` (``--sample`` documents);
- ``allocate_code`` one document per transaction, from 1 process and from
  ``--processes`` processes at once (``--sample`` codes each run), then a check
  that every sequence is gap-free.

Writes a Markdown table to bench/results/catalog.md (or ``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digitize.catalog import Catalog, DocumentSpec, FileSpec  # noqa: E402
from digitize.catalog.schema import document_files, documents  # noqa: E402
from digitize.codes.formats import DEFAULT_CODE_TEMPLATE, parse_document_code  # noqa: E402

SCOPES = [("000.00.12.H99", "KQ"), ("000.00.12.H99", "TP"), ("000.01.31.H99", "KQ"), ("000.00.31.H99", "TP")]
YEAR = 2026


def spec(index: int, salt: str) -> DocumentSpec:
    agency, kind = SCOPES[index % len(SCOPES)]
    digest = hashlib.sha256(f"{salt}/{index}".encode()).hexdigest()
    return DocumentSpec(
        batch_id=f"{salt}-{index // 500}", files=(FileSpec(0, f"scan-{index}.jpg", digest, 250_000),),
        agency_code=agency, kind=kind, title=f"Giấy chứng nhận số {index}", issued_date=date(2024, 1, 1),
        register_id=f"REG-{index}", dossier_code=None, procedure_code="1.000110", holder_id=f"0791{index:08d}",
        scanned_at="000.00.01.H99",
    )


@dataclass(frozen=True)
class Row:
    backend: str
    operation: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bare_insert(url: str, specs: Sequence[DocumentSpec]) -> None:
    """The floor: the same rows through a bare executemany, no validation, no duplicate check."""
    engine = sa.create_engine(url.replace("?synchronous=normal", "").replace("postgresql://", "postgresql+psycopg://"))
    if engine.dialect.name == "sqlite":
        sync = "NORMAL" if "synchronous=normal" in url else "FULL"

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            dbapi_connection.execute(f"PRAGMA synchronous = {sync}")

    received = datetime.now(UTC)
    for start in range(0, len(specs), 1000):
        chunk = specs[start:start + 1000]
        with engine.begin() as conn:
            ids = conn.execute(sa.insert(documents).returning(documents.c.id, sort_by_parameter_order=True), [
                {"fingerprint": s.fingerprint, "batch_id": s.batch_id, "status": "RECEIVED", "version": 1,
                 "agency_code": s.agency_code, "kind": s.kind, "title": s.title, "issued_date": s.issued_date,
                 "register_id": s.register_id, "procedure_code": s.procedure_code, "holder_id": s.holder_id,
                 "scanned_at": s.scanned_at, "received_at": received, "needs_review": False} for s in chunk
            ]).scalars().all()
            conn.execute(sa.insert(document_files), [
                {"document_id": document_id, "position": 0, "name": s.files[0].name, "sha256": s.files[0].sha256,
                 "size": s.files[0].size} for document_id, s in zip(ids, chunk, strict=True)
            ])
    engine.dispose()


def allocate_worker(url: str, ids: list[int], barrier: Any, results: Any) -> None:
    catalog = Catalog(url)
    barrier.wait(timeout=300)
    start = time.time()
    for document_id in ids:
        catalog.allocate_code(document_id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
    results.put((start, time.time()))
    catalog.close()


def allocate_parallel(url: str, ids: list[int], processes: int) -> float:
    """Wall time from the first worker's start to the last one's end."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [context.Process(target=allocate_worker, args=(url, ids[rank::processes], barrier, results))
               for rank in range(processes)]
    for worker in workers:
        worker.start()
    spans = [results.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def check_gap_free(catalog: Catalog) -> None:
    sequences: dict[tuple[str, str], list[int]] = defaultdict(list)
    for record in catalog.documents():
        if record.code is not None:
            parsed = parse_document_code(record.code)
            sequences[(str(parsed.agency), parsed.kind)].append(parsed.seq)
    for scope, seqs in sequences.items():
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            raise SystemExit(f"gap or duplicate in {scope}")


def run_backend(name: str, url: str, args: argparse.Namespace) -> list[Row]:
    print(f"== {name}", flush=True)
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.import_agencies(REPO / "samples" / "agencies.csv")
    rows: list[Row] = []

    bulk = [spec(i, "bulk") for i in range(args.documents)]
    seconds = timed(lambda: [catalog.register_documents(bulk[i:i + 1000]) for i in range(0, len(bulk), 1000)])
    rows.append(Row(name, "register_documents, 1,000 per transaction", len(bulk), seconds))
    floor = [spec(i, "floor") for i in range(args.documents)]
    rows.append(Row(name, "floor: bare executemany, 1,000 per transaction", len(floor),
                    timed(lambda: bare_insert(url, floor))))
    print(f"   bulk {rows[-2].rate:,.0f}/s, floor {rows[-1].rate:,.0f}/s", flush=True)

    single = [spec(i, "single") for i in range(args.sample)]
    records: list[int] = []
    seconds = timed(lambda: records.extend(catalog.register_document(s)[0].id for s in single))
    rows.append(Row(name, "register_document, 1 per transaction", len(single), seconds))

    ids = records[: args.sample // 2]
    seconds = timed(lambda: [catalog.allocate_code(i, template=DEFAULT_CODE_TEMPLATE, year=YEAR) for i in ids])
    rows.append(Row(name, "allocate_code, 1 process", len(ids), seconds))
    rest = records[args.sample // 2:]
    seconds = allocate_parallel(url, rest, args.processes)
    rows.append(Row(name, f"allocate_code, {args.processes} processes at once", len(rest), seconds))
    print(f"   single {rows[-3].rate:,.0f}/s, alloc {rows[-2].rate:,.0f}/s, "
          f"alloc x{args.processes} {rows[-1].rate:,.0f}/s", flush=True)
    check_gap_free(catalog)
    catalog.close()
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = "?"
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if found:
        pg = subprocess.run([str(found[-1]), "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sa.__version__}, {pg}; "
            f"load average at start {os.getloadavg()[0]:.1f}")


def render(rows: list[Row], args: argparse.Namespace, started: str) -> str:
    lines = [
        "# Catalog benchmark",
        "",
        f"Run {started} with `bench/catalog_bench.py --documents {args.documents} --sample {args.sample} "
        f"--processes {args.processes}`.",
        "",
        f"Machine: {machine()}.",
        "",
        "| backend | operation | items | seconds | items/s | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    best: dict[str, float] = {}
    for row in rows:
        key = "register" if "register" in row.operation or "floor" in row.operation else "allocate"
        best[key] = max(best.get(key, 0.0), row.rate)
    for row in rows:
        key = "register" if "register" in row.operation or "floor" in row.operation else "allocate"
        lines.append(f"| {row.backend} | {row.operation} | {row.count:,} | {row.seconds:.1f} | {row.rate:,.0f} | "
                     f"{row.rate / best[key]:.2f} |")
    lines += ["", "Ratio: items/s divided by the best items/s of the same kind (registration or allocation) "
                  "in this run.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--backends", default="sqlite,sqlite-normal,postgresql")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "catalog.md")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    scratch = Path(tempfile.mkdtemp(prefix="catalog-bench-", dir="/tmp"))
    pg_dir = Path(tempfile.mkdtemp(prefix="catalog-bench-pg-", dir="/tmp"))  # the postgres user must reach it
    rows: list[Row] = []
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{scratch / 'full.db'}"
            elif backend == "sqlite-normal":
                url = f"sqlite:///{scratch / 'normal.db'}?synchronous=normal"
            elif backend == "postgresql":
                result = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "start", str(pg_dir)],
                                        capture_output=True, text=True, check=True,
                                        env={**os.environ, "POSTGRES_FSYNC": "on"})
                url = result.stdout.strip()
            else:
                raise SystemExit(f"unknown backend {backend}")
            label = {"sqlite": "SQLite (synchronous=FULL)", "sqlite-normal": "SQLite (synchronous=NORMAL)",
                     "postgresql": "PostgreSQL (fsync on)"}[backend]
            rows += run_backend(label, url, args)
    finally:
        if (pg_dir / "data").exists():
            subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "stop", str(pg_dir)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)
    text = render(rows, args, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
