"""Search index: build time and size, query latency, on SQLite FTS5 and PostgreSQL, with synthetic Vietnamese pages.

    .venv/bin/python bench/search_bench.py --documents 100000 [--backends sqlite,postgresql] [--queries 300]
                                           [--out FILE.md] [--keep DIR [--reuse]]

``--keep DIR`` keeps the databases (SQLite file, PostgreSQL cluster) in DIR; a later run with
``--keep DIR --reuse`` and the same ``--documents`` only measures the queries on them (another
query design on the same million-page index without rebuilding it).

Each document is one page of about 250 words drawn from a vocabulary of Vietnamese
administrative words (Zipf-weighted) plus a holder's name (family, middle and given
names), an address, a citizen ID and a dossier code. Steps per backend:

1. catalog rows for the documents (bare inserts, not measured);
2. bulk build with ``search.index_documents`` (1,000 documents per transaction): time and size;
3. the pipeline's path, ``search.index_document`` one document per transaction into the
   full index, on a sample: milliseconds per page, against OCR at 1.5–3 s per page;
4. a few hundred typical queries through ``search.search`` (limit 20, snippets included):
   names, document and dossier codes, phrases, each with and without diacritics, and
   the exact-diacritics mode; median, p95 and max;
5. the alternative without an index, on SQLite: ``LIKE '%…%'`` over the stored page text,
   on a few of the same phrase queries, for the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digitize import search  # noqa: E402
from digitize.catalog import Catalog  # noqa: E402
from digitize.catalog.schema import documents  # noqa: E402


def _list(text: str, sep: str | None = None) -> list[str]:
    """A word list written as prose (easier to read and extend than a list literal)."""
    return text.split(sep)


AGENCIES = ["000.00.12.H99", "000.00.31.H99", "000.01.31.H99", "000.00.13.H99", "000.02.31.H99"]
FAMILY = _list("Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đinh Lâm Mai Trương "
          "Đoàn Cao Tạ Lương Thái")
MIDDLE = _list("Văn Thị Hữu Đức Minh Ngọc Thanh Quốc Xuân Kim Thu Hồng Bảo Gia Tuấn")
GIVEN = _list("An Anh Bình Châu Chi Cường Dũng Duy Dương Đạt Điệp Đông Giang Hà Hải Hạnh Hằng Hiếu Hiền Hòa Hoa Hùng "
         "Hưng Hương Huy Khánh Khoa Khôi Lan Linh Loan Long Lộc Mai Minh My Nam Nga Ngân Nghĩa Nhân Nhung Oanh "
         "Phát Phong Phúc Phương Quân Quang Quyên Sơn Tâm Tân Thắng Thành Thảo Thịnh Thu Thủy Tiến Toàn Trang "
         "Trí Trinh Trung Tú Tuấn Tùng Uyên Vân Việt Vinh Vũ Xuân Yến")
PLACES = _list("Mỹ Tho|Gò Công|Cai Lậy|Cái Bè|Châu Thành|Chợ Gạo|Tân Phước|Tân Phú Đông|Long Định|Bình Đức|"
          "Thạnh Phú|Hòa Khánh|Đông Hòa|Song Thuận|Phú Kiết|Thân Cửu Nghĩa", "|")
TEXT = _list("""
ủy ban nhân dân tỉnh huyện xã phường thị trấn giấy chứng nhận quyền sử dụng đất quyền sở hữu nhà ở và tài sản
khác gắn liền với đất thửa đất số tờ bản đồ số diện tích mét vuông hình thức sử dụng riêng chung mục đích sử
dụng đất ở tại nông thôn đô thị đất trồng cây lâu năm đất trồng lúa thời hạn sử dụng lâu dài nguồn gốc sử dụng
nhà nước giao đất có thu tiền công nhận quyền sử dụng đất chuyển nhượng thừa kế tặng cho ghi chú những thay đổi
sau khi cấp giấy chứng nhận nội dung thay đổi và cơ sở pháp lý xác nhận của cơ quan có thẩm quyền sở tài nguyên
và môi trường văn phòng đăng ký đất đai chi nhánh căn cứ luật đất đai ngày tháng năm nghị định thông tư quyết định
về việc cấp đổi cấp lại đăng ký biến động hộ gia đình cá nhân tổ chức doanh nghiệp giấy khai sinh họ và tên giới
tính nam nữ ngày sinh nơi sinh dân tộc kinh quốc tịch việt nam quê quán họ tên cha mẹ người đi khai sinh quan hệ
với người được khai sinh số định danh cá nhân căn cước công dân chứng minh nhân dân nơi cư trú thường trú tạm trú
đăng ký kết hôn giấy chứng nhận kết hôn chồng vợ tình trạng hôn nhân lý lịch tư pháp phiếu án tích không có bản
án hình sự giấy phép xây dựng công trình nhà ở riêng lẻ cấp phép cho chủ đầu tư địa điểm lô đất diện tích xây
dựng tầng cao chiều cao công trình giấy phép kinh doanh hộ kinh doanh ngành nghề vốn kinh doanh mã số thuế địa
chỉ trụ sở điện thoại người đại diện theo pháp luật chức danh chủ tịch phó chủ tịch giám đốc phó giám đốc trưởng
phòng cán bộ tư pháp hộ tịch công chức địa chính xây dựng bộ phận một cửa tiếp nhận và trả kết quả hồ sơ thủ tục
hành chính thành phần hồ sơ bản sao chứng thực bản chính đơn đề nghị tờ khai biên bản kiểm tra hiện trạng trích
lục bản đồ địa chính sơ đồ vị trí phí lệ phí nộp ngân sách kết quả giải quyết đúng hạn quá hạn trả lại bổ sung
""")


def zipf_weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) ** 0.9 for rank in range(n)]


@dataclass(frozen=True)
class Doc:
    index: int
    code: str
    dossier: str
    agency: str
    kind: str
    holder: str
    name: str
    issued: date
    text: str


class Corpus:
    """Deterministic synthetic documents: document ``i`` is the same in every run and every backend."""

    def __init__(self, seed: int = 20261127) -> None:
        self.seed = seed
        self.vocab = list(dict.fromkeys(TEXT))
        random.Random(seed).shuffle(self.vocab)
        self.cum = list(_accumulate(zipf_weights(len(self.vocab))))

    def doc(self, i: int) -> Doc:
        rng = random.Random(self.seed * 1_000_003 + i)
        agency = AGENCIES[i % len(AGENCIES)]
        kind = "KQ" if i % 3 else "TP"
        issued = date(2019, 1, 1) + timedelta(days=rng.randrange(2400))
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        holder = f"0{rng.randrange(10**10, 10**11)}"
        dossier = f"{agency}-{issued:%y%m%d}-{i % 10000:04d}"
        body = rng.choices(self.vocab, cum_weights=self.cum, k=rng.randrange(200, 300))
        for cut in range(12, len(body), rng.randrange(12, 20)):
            body[cut] = body[cut] + "."
        text = (
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\n"
            f"Ông/Bà {name}, sinh ngày {rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/"
            f"{rng.randrange(1950, 2005)}, số định danh cá nhân {holder}, thường trú tại xã "
            f"{rng.choice(PLACES)}, huyện {rng.choice(PLACES)}.\n"
            + " ".join(body)
            + f"\nMã hồ sơ: {dossier}. {rng.choice(PLACES)}, ngày {issued:%d} tháng {issued:%m} năm {issued:%Y}.\n"
        )
        code = f"{agency}.{issued.year}.{kind}.{i:07d}"
        return Doc(i, code, dossier, agency, kind, holder, name, issued, text)


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


def strip_marks(text: str) -> str:
    return " ".join(search.fold(w) for w in text.split())


def make_queries(corpus: Corpus, n_docs: int, count: int, seed: int = 7) -> list[tuple[str, str, bool]]:
    """(category, query, exact) — each built from a real document so it has hits."""
    rng = random.Random(seed)
    out: list[tuple[str, str, bool]] = []
    per = max(1, count // 8)
    for _ in range(per):
        d = corpus.doc(rng.randrange(n_docs))
        out.append(("name, diacritics", f'"{d.name}"', False))
        d = corpus.doc(rng.randrange(n_docs))
        out.append(("name, no diacritics", f'"{strip_marks(d.name)}"', False))
        d = corpus.doc(rng.randrange(n_docs))
        out.append(("document code", d.code, False))
        d = corpus.doc(rng.randrange(n_docs))
        out.append(("dossier code", d.dossier, False))
        d = corpus.doc(rng.randrange(n_docs))
        words = d.text.split("\n")[3].replace(".", "").split()
        start = rng.randrange(len(words) - 4)
        phrase = " ".join(words[start:start + rng.randrange(3, 5)])
        out.append(("phrase, diacritics", f'"{phrase}"', False))
        out.append(("phrase, no diacritics", f'"{strip_marks(phrase)}"', False))
        d = corpus.doc(rng.randrange(n_docs))
        given = d.name.split()[-1]
        out.append(("name + place, no diacritics", strip_marks(f"{d.name} {d.text.split('xã ')[1].split(',')[0]}"),
                    False))
        out.append(("exact mode: name", f'"{d.name}" {given}', True))
    return out


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    pg_version = "-"
    if pg:
        pg_version = subprocess.run([str(pg[-1]), "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Linux {platform.release()}; Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy {sa.__version__}, {pg_version}")


def insert_documents(catalog: Catalog, corpus: Corpus, n_docs: int) -> None:
    now = datetime.now(UTC)
    engine = catalog._engine
    for start in range(0, n_docs, 5000):
        rows = []
        for i in range(start, min(n_docs, start + 5000)):
            d = corpus.doc(i)
            rows.append({
                "id": i + 1, "fingerprint": f"{i:064x}", "batch_id": f"bench-{i // 1000}", "status": "ARCHIVED",
                "code": d.code, "version": 1, "agency_code": d.agency, "kind": d.kind,
                "title": "Giấy chứng nhận quyền sử dụng đất" if d.kind == "KQ" else "Đơn đề nghị",
                "issued_date": d.issued, "valid_until": None, "dossier_code": d.dossier,
                "procedure_code": "1.000110", "holder_id": d.holder, "received_at": now, "archived_at": now,
                "needs_review": False, "pdf_key": f"documents/{d.code}.pdf", "pages": 1,
            })
        with engine.begin() as conn:
            conn.execute(sa.insert(documents), rows)


def size_bytes(catalog: Catalog, url: str) -> dict[str, int]:
    if url.startswith("sqlite"):
        with catalog._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(url.removeprefix("sqlite:///"))
        return {"file": path.stat().st_size}
    with catalog._engine.connect() as conn:
        value = conn.execute(sa.text(
            "SELECT pg_table_size('search_pages'), pg_relation_size('ix_search_pages_tsv'), "
            "pg_indexes_size('search_pages'), pg_total_relation_size('search_terms'), "
            "pg_database_size(current_database())")).one()
    return {"table": value[0], "gin": value[1], "indexes": value[2], "lexicon": value[3], "database": value[4]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_backend(label: str, url: str, args: argparse.Namespace, corpus: Corpus) -> list[str]:
    n = args.documents
    catalog = Catalog(url)
    catalog.upgrade()
    if args.reuse:
        return [f"### {label}, {n:,} documents (one page each), queries on the kept index", "",
                *measure_queries(catalog, url, args, corpus)]
    t = time.perf_counter()
    insert_documents(catalog, corpus, n)
    print(f"[{label}] {n} catalog rows in {time.perf_counter() - t:.0f} s", flush=True)
    before = size_bytes(catalog, url)
    build = 0.0
    text_bytes = 0
    reserve = min(args.sample, n // 10)
    bulk_n = n - reserve
    for start in range(0, bulk_n, 1000):
        batch = [(i + 1, [corpus.doc(i).text]) for i in range(start, min(bulk_n, start + 1000))]
        text_bytes += sum(len(p[0].encode()) for _, p in batch)
        t = time.perf_counter()
        search.index_documents(catalog, batch)
        build += time.perf_counter() - t
        if (start // 1000) % 50 == 0:
            print(f"[{label}] indexed {start + len(batch)} in {build:.0f} s", flush=True)
    if url.startswith("postgresql"):
        with catalog._engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE search_pages")
    one_by_one = []
    for i in range(bulk_n, n):
        pages = [corpus.doc(i).text]
        t = time.perf_counter()
        search.index_document(catalog, i + 1, pages)
        one_by_one.append(time.perf_counter() - t)
    after = size_bytes(catalog, url)
    lines = [f"### {label}, {n:,} documents (one page each)", ""]
    lines.append(f"- Bulk build (`index_documents`, 1,000 per transaction): {bulk_n:,} pages in {build:.1f} s = "
                 f"{1000 * build / bulk_n:.2f} ms/page ({bulk_n / build:,.0f} pages/s); page text "
                 f"{text_bytes / bulk_n:,.0f} bytes on average.")
    median_one = statistics.median(one_by_one)
    lines.append(f"- Pipeline path (`index_document`, one transaction per document, into the full index): "
                 f"median {1000 * median_one:.1f} ms/page, p95 {1000 * pct(one_by_one, 0.95):.1f} ms "
                 f"({len(one_by_one)} documents) = {100 * median_one / 1.5:.2f} % of OCR at 1.5 s/page, "
                 f"{100 * median_one / 3:.2f} % at 3 s/page (target < 2 %).")
    if "file" in after:
        grown = after["file"] - before["file"]
        lines.append(f"- Size: database file grew by {grown / 2**20:,.0f} MiB ({grown / n:,.0f} bytes/page; "
                     f"page text itself {text_bytes / 2**20 * n / bulk_n:,.0f} MiB, stored once in "
                     "`search_pages.body`, plus the FTS5 index).")
    else:
        lines.append(f"- Size: `search_pages` table {after['table'] / 2**20:,.0f} MiB (text + tsvector, TOAST "
                     f"included), GIN index {after['gin'] / 2**20:,.0f} MiB, all indexes "
                     f"{after['indexes'] / 2**20:,.0f} MiB, trigram lexicon {after['lexicon'] / 2**20:,.1f} MiB; "
                     f"database grew by {(after['database'] - before['database']) / 2**20:,.0f} MiB.")
    print("\n".join(lines), flush=True)
    return lines + measure_queries(catalog, url, args, corpus)


def measure_queries(catalog: Catalog, url: str, args: argparse.Namespace, corpus: Corpus) -> list[str]:
    """Latency of the typical queries (and of the ``LIKE`` scan on SQLite) on the index as it is."""
    n = args.documents
    print(f"queries from {datetime.now(UTC):%H:%M:%S} UTC, load average {os.getloadavg()[0]:.1f}", flush=True)
    queries = make_queries(corpus, n, args.queries)
    for _category, q, exact in queries[:20]:  # warm the caches
        search.search(catalog, q, exact=exact)
    timings: dict[str, list[float]] = {}
    empty = truncated = 0
    started, load = datetime.now(UTC), os.getloadavg()
    for category, q, exact in queries:
        t = time.perf_counter()
        result = search.search(catalog, q, exact=exact, limit=20)
        timings.setdefault(category, []).append(time.perf_counter() - t)
        empty += not result.hits
        truncated += result.truncated
    every = [v for values in timings.values() for v in values]
    lines = [f"Queries from {started:%H:%M} UTC, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at their "
             f"start, {os.getloadavg()[0]:.1f} at their end."]
    lines += ["", "| queries | n | median ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for category, values in timings.items():
        lines.append(f"| {category} | {len(values)} | {1000 * statistics.median(values):.1f} | "
                     f"{1000 * pct(values, 0.95):.1f} | {1000 * max(values):.1f} |")
    lines.append(f"| **all** | {len(every)} | {1000 * statistics.median(every):.1f} | "
                 f"{1000 * pct(every, 0.95):.1f} | {1000 * max(every):.1f} |")
    lines.append("")
    lines.append(f"{empty} of {len(every)} queries found nothing (every query is built from a real document); "
                 f"{truncated} said their results were truncated.")
    if url.startswith("sqlite") and args.scan_queries:
        phrase_queries = [q for c, q, _ in queries if c == "phrase, diacritics"][:args.scan_queries]
        indexed, scanned = [], []
        with catalog._engine.connect() as conn:
            for q in phrase_queries:
                t = time.perf_counter()
                search.search(catalog, q, exact=True)
                indexed.append(time.perf_counter() - t)
                t = time.perf_counter()
                conn.execute(sa.text("SELECT id FROM search_pages WHERE body LIKE :p LIMIT 20"),
                             {"p": f"%{q.strip(chr(34))}%"}).all()
                scanned.append(time.perf_counter() - t)
        ratio = statistics.median(scanned) / statistics.median(indexed)
        lines.append(f"\nAlternative without an index (`LIKE '%phrase%'` on the stored text, exact diacritics, "
                     f"first 20 rows, {len(phrase_queries)} phrase queries): median "
                     f"{1000 * statistics.median(scanned):.0f} ms vs {1000 * statistics.median(indexed):.1f} ms "
                     f"through the FTS5 index in exact mode — the index is {ratio:,.0f}× faster.")
    lines.append("")
    catalog.close()
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--queries", type=int, default=320)
    parser.add_argument("--sample", type=int, default=1000, help="documents indexed one by one (pipeline path)")
    parser.add_argument("--scan-queries", type=int, default=10)
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the databases (default: a temp dir)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="folder for databases kept after the run (SQLite file, PostgreSQL cluster), to --reuse")
    parser.add_argument("--reuse", action="store_true",
                        help="only the queries, on the index kept in --keep by an earlier run of the same size")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search.md")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    if args.reuse and args.keep is None:
        raise SystemExit("--reuse needs --keep")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        scratch, pg_dir = args.keep, args.keep / "pg"
    else:
        scratch = Path(tempfile.mkdtemp(prefix="search-bench-", dir=args.scratch))
        pg_dir = Path(tempfile.mkdtemp(prefix="search-bench-pg-", dir="/tmp"))
    corpus = Corpus()
    lines = [f"## Run {started}: {args.documents:,} documents", "",
             f"Machine: {machine()}; load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}.",
             f"Command: `.venv/bin/python bench/search_bench.py --documents {args.documents} "
             f"--backends {args.backends} --queries {args.queries}"
             f"{f' --keep {args.keep}' if args.keep else ''}{' --reuse' if args.reuse else ''}`", ""]
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                lines += run_backend("SQLite FTS5", f"sqlite:///{scratch / 'search.db'}", args, corpus)
            elif backend == "postgresql":
                result = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "start", str(pg_dir)],
                                        capture_output=True, text=True, check=True,
                                        env={**os.environ, "POSTGRES_FSYNC": "on"})
                lines += run_backend("PostgreSQL tsvector + GIN", result.stdout.strip(), args, corpus)
            else:
                raise SystemExit(f"unknown backend {backend}")
    finally:
        if (pg_dir / "data").exists():
            subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "halt" if args.keep else "stop",
                            str(pg_dir)], capture_output=True)
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
