"""Code allocation under real concurrency: 2,000 codes in all, from four processes at once.

Each of the four processes registers and allocates its 500 documents, plus 25 of the next process's
first 100 (2,100 allocations for 2,000 documents).

On SQLite and on PostgreSQL: no duplicate code, no gap in any (agency, kind, year) sequence, and a document
allocated by two processes gets one code.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_catalog import SAMPLES, fresh_database_url, sha

from digitize.catalog.store import Catalog, DocumentSpec, FileSpec
from digitize.codes.formats import DEFAULT_CODE_TEMPLATE, parse_document_code

PROCESSES = 4
DOCUMENTS = 2000
OVERLAP = 100  # documents also registered and allocated by a second process
SCOPES = [("000.00.12.H99", "KQ"), ("000.00.12.H99", "TP"), ("000.01.31.H99", "KQ"), ("000.00.31.H99", "TP")]
YEAR = 2025


def document(index: int) -> DocumentSpec:
    agency, kind = SCOPES[index % len(SCOPES)]
    return DocumentSpec(
        batch_id=f"batch-{index // 250}", files=(FileSpec(0, f"scan-{index}.jpg", sha(f"doc {index}"), 1000),),
        agency_code=agency, kind=kind, title=f"Tài liệu {index}", issued_date=date(2024, 1, 1),
    )


def worker(url: str, rank: int, barrier: Any, results: Any) -> None:
    """Register this rank's share (plus some of the next rank's) and allocate their codes."""
    try:
        catalog = Catalog(url)
        mine = [i for i in range(DOCUMENTS) if i % PROCESSES == rank]
        borrowed = [i for i in range(OVERLAP) if i % PROCESSES == (rank + 1) % PROCESSES]
        barrier.wait(timeout=120)
        codes = {}
        for index in mine + borrowed:
            record, _ = catalog.register_document(document(index))
            codes[index] = catalog.allocate_code(record.id, template=DEFAULT_CODE_TEMPLATE, year=YEAR)
        catalog.close()
        results.put((rank, codes, None))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((rank, {}, repr(exc)))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_parallel_allocation_is_unique_and_gap_free(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    catalog = Catalog(url)
    catalog.upgrade()
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []

    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=worker, args=(url, rank, barrier, results)) for rank in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=300))
    except queue.Empty:
        pytest.fail(f"workers did not finish; got {len(outcomes)} of {PROCESSES}")
    finally:
        for process in processes:
            process.join(timeout=30)
    assert [error for _, _, error in outcomes if error] == []

    seen: dict[int, str] = {}
    for _, codes, _ in outcomes:
        for index, code in codes.items():
            assert seen.setdefault(index, code) == code, f"document {index} got two codes"
    assert len(seen) == DOCUMENTS

    stored = {d.fingerprint: d.code for d in catalog.documents()}
    assert len(stored) == DOCUMENTS
    assert all(stored[document(i).fingerprint] == code for i, code in seen.items())
    assert len(set(stored.values())) == DOCUMENTS, "duplicate codes"
    sequences: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for code in stored.values():
        assert code is not None
        parsed = parse_document_code(code)
        sequences[(str(parsed.agency), parsed.kind, parsed.year)].append(parsed.seq)
    assert sorted(sequences) == sorted((a, k, YEAR) for a, k in SCOPES)
    for scope, seqs in sequences.items():
        assert sorted(seqs) == list(range(1, DOCUMENTS // len(SCOPES) + 1)), f"gap or duplicate in {scope}"
    catalog.close()
