"""Full-text search on a real SQLite FTS5 index and a real PostgreSQL (scripts/postgres.sh), Vietnamese texts.

Also the rebuild from the archive: real signed PDF/A files (the project's own text layer, pyHanko signature)
in moto's S3 server over HTTP, text re-extracted with pdftotext.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_catalog import fresh_database_url  # one throwaway PostgreSQL cluster for the whole run

from digitize import search
from digitize.catalog.store import ArchivedInfo, Catalog, DocumentSpec, FileSpec
from digitize.errors import CatalogConflict, SearchQueryInvalid

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "{agency}.{year}.{kind}.{seq:06d}"
SOTP = "000.00.12.H99"  # Sở Tư pháp (samples/agencies.csv)
HUYEN_A = "000.00.31.H99"

# ------------------------------------------------------------------------------------------ backends


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cat(backend: str, tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(fresh_database_url(backend, tmp_path))
    catalog.upgrade()
    assert catalog.import_agencies(REPO / "samples" / "agencies.csv").rejected == []
    yield catalog
    catalog.close()


# ------------------------------------------------------------------------------------------ documents


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def archive_record(catalog: Catalog, name: str, *, agency: str = SOTP, kind: str = "KQ",
                   title: str = "Giấy chứng nhận", issued: date = date(2023, 3, 14), pdf_key: str | None = None,
                   pdf_sha256: str | None = None, sidecar_key: str | None = None, sidecar_sha256: str | None = None,
                   pages: int = 1, supersedes: int | None = None, **extra: Any) -> tuple[int, str]:
    """Register, code and mark archived a document (the catalog's real path); returns (id, code)."""
    spec = DocumentSpec(batch_id="b1", files=(FileSpec(0, f"{name}.jpg", sha(name), 100),), agency_code=agency,
                        kind=kind, title=title, issued_date=issued, **extra)
    if supersedes is None:
        record, _ = catalog.register_document(spec)
    else:
        record, _ = catalog.supersede(supersedes, spec, actor="test", reason="correction")
    code = catalog.allocate_code(record.id, template=TEMPLATE, year=2026)
    catalog.mark_archived(record.id, ArchivedInfo(
        pdf_key=pdf_key or f"pdf/{name}", pdf_sha256=pdf_sha256 or sha(f"pdf/{name}"),
        sidecar_key=sidecar_key or f"json/{name}", sidecar_sha256=sidecar_sha256 or sha(f"json/{name}"),
        original_keys=(f"orig/{name}",), pages=pages, mean_confidence=92.0, needs_review=False))
    return record.id, code


LAND = ("GIẤY CHỨNG NHẬN QUYỀN SỬ DỤNG ĐẤT\nNgười sử dụng đất: Ông Nguyễn Văn Đức, sinh năm 1970.\n"
        "Thửa đất số 125, tờ bản đồ số 7, diện tích 250 m², đất ở tại nông thôn.")
LAND_P2 = "Những thay đổi sau khi cấp giấy chứng nhận: chuyển nhượng cho bà Trần Thị Mai."
LAND_P3 = "Trang 3. Sơ đồ thửa đất: giáp đường Lê Lợi, phường Đông Hòa."
PLAIN = "Quyen su dung dat cua ong Nguyen Van Duc (ban go khong dau). Thua dat so 9."
MARRIAGE = "GIẤY CHỨNG NHẬN KẾT HÔN\nHọ tên chồng: Lê Văn Hùng. Họ tên vợ: Phạm Thị Lan."
BIRTH = "GIẤY KHAI SINH\nHọ và tên: Đỗ Minh Khôi, sinh ngày 02/09/2019 tại Cai Lậy. Quốc tịch: Việt Nam."


@pytest.fixture
def corpus(cat: Catalog) -> dict[str, Any]:
    """Five archived documents of two agencies, kinds and holders, indexed."""
    ids: dict[str, Any] = {"catalog": cat}
    for name, pages, extra in (
        ("land", [LAND, LAND_P2, LAND_P3], {"holder_id": "079070001234", "issued": date(2021, 5, 4)}),
        ("plain", [PLAIN], {"holder_id": "079070005678", "agency": HUYEN_A, "issued": date(2024, 1, 9)}),
        ("marriage", [MARRIAGE], {"kind": "TP", "issued": date(2022, 6, 1)}),
        ("birth", [BIRTH, ""], {"holder_id": "079219000001", "issued": date(2019, 9, 2)}),
        ("filler", ["Đơn đề nghị cấp bản sao trích lục hộ tịch. Người yêu cầu: Vũ Thị Hà."], {}),
    ):
        document_id, code = archive_record(cat, name, pages=len(pages), **extra)
        assert search.index_document(cat, document_id, pages) == sum(1 for p in pages if p)
        ids[name] = (document_id, code)
    return ids


def codes(result: search.SearchResult) -> list[str]:
    return [h.code for h in result.hits]


# ------------------------------------------------------------------------------------------ text helpers


def test_fold_removes_every_vietnamese_diacritic_and_d_stroke() -> None:
    assert search.fold("Đường") == "duong"
    assert search.fold("quyền") == "quyen"
    assert search.fold("ưởng") == "uong"
    assert search.fold("Nghiêng") == "nghieng"
    assert search.index_text("Ông ĐỨC, 000.00.12.H99-210617-0001") == "ông dức 000 00 12 h99 210617 0001"


def test_parse_query_words_phrases_and_codes() -> None:
    assert search.parse_query('quyền "sử dụng  đất" 000.00.12.H99') == (
        ("quyền",), ("sử", "dụng", "đất"), ("000", "00", "12", "h99"))
    for bad in ("", "   ", '""', "!!! ...", "x" * 501, " ".join(f"w{i}" for i in range(33))):
        with pytest.raises(SearchQueryInvalid):
            search.parse_query(bad)


def test_snippet_marks_the_matched_run_and_keeps_the_original_text() -> None:
    snippet = search.make_snippet(LAND, search.parse_query('"quyen su dung dat"'))
    assert "«QUYỀN SỬ DỤNG ĐẤT»" in snippet
    long = "mở đầu " * 100 + "thửa đất số 125" + " kết thúc" * 100
    snippet = search.make_snippet(long, search.parse_query("thua dat"))
    assert snippet.startswith("…") and snippet.endswith("…") and "«thửa đất»" in snippet
    assert len(snippet) <= search.SNIPPET_CHARS + 10


def test_ranking_counts_each_phrase_whatever_its_diacritics() -> None:
    pattern = search.phrases_pattern(search.parse_query('dat "quyen su dung"'))
    text = "Quyền sử dụng đất; quyền-sử dụng ĐẤT, đất đai, dat, đạt, quyensudung, đấtx".lower()
    assert [m.lastgroup for m in pattern.finditer(text)] == ["p1", "p0", "p1", "p0", "p0", "p0", "p0"]


# ------------------------------------------------------------------------------------------ search


def test_without_diacritics_finds_the_text_with_diacritics_and_back(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    assert set(codes(search.search(cat, "quyen su dung dat"))) == {corpus["land"][1], corpus["plain"][1]}
    assert set(codes(search.search(cat, "quyền sử dụng đất"))) == {corpus["land"][1], corpus["plain"][1]}
    assert codes(search.search(cat, "KHOI")) == [corpus["birth"][1]]
    assert codes(search.search(cat, "Việt Nam")) == [corpus["birth"][1]]


def test_d_stroke_matches_d_both_ways(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    assert set(codes(search.search(cat, "duc"))) == {corpus["land"][1], corpus["plain"][1]}
    assert set(codes(search.search(cat, "Đức"))) == {corpus["land"][1], corpus["plain"][1]}
    assert codes(search.search(cat, "do minh khoi")) == [corpus["birth"][1]]  # Đỗ
    assert [h.page for h in search.search(cat, "duong le loi").hits] == [3]  # đường


def test_exact_mode_requires_the_diacritics_typed(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    result = search.search(cat, "quyền sử dụng đất", exact=True)
    assert codes(result) == [corpus["land"][1]] and result.exact
    assert codes(search.search(cat, "Đức", exact=True)) == [corpus["land"][1]]
    assert codes(search.search(cat, "Duc", exact=True)) == [corpus["plain"][1]]
    assert codes(search.search(cat, "dưc", exact=True)) == []
    hit = search.search(cat, "Đức", exact=True).hits[0]
    assert "«Đức»" in hit.snippet


def test_phrase_needs_adjacent_words_in_order(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    assert set(codes(search.search(cat, '"su dung dat"'))) == {corpus["land"][1], corpus["plain"][1]}
    assert codes(search.search(cat, '"dat dung"')) == []
    assert set(codes(search.search(cat, "dat dung"))) == {corpus["land"][1], corpus["plain"][1]}
    assert codes(search.search(cat, '"Nguyễn Văn Đức" "Trần Thị Mai"')) == []  # on different pages
    assert [h.page for h in search.search(cat, '"tran thi mai"').hits] == [2]


def test_each_hit_has_its_page_number_and_a_snippet(corpus: dict[str, Any]) -> None:
    hits = search.search(corpus["catalog"], "Lê Lợi").hits
    assert [(h.code, h.page) for h in hits] == [(corpus["land"][1], 3)]
    assert hits[0].snippet == "Trang 3. Sơ đồ thửa đất: giáp đường «Lê Lợi», phường Đông Hòa."
    assert hits[0].holder_id == "079070001234" and hits[0].issued_date == date(2021, 5, 4)


def test_results_are_ranked_best_first(cat: Catalog) -> None:
    texts = {
        "once": "Biên bản kiểm tra hiện trạng sử dụng đất, có một thửa.",
        "often": "Thửa đất, thửa đất liền kề, thửa đất số 3: ranh giới thửa đất được xác định.",
        "none": "Giấy phép xây dựng nhà ở riêng lẻ.",
    }
    ids = {}
    for name, text in texts.items():
        for copy in range(3):  # filler pages beside each text
            document_id, code = archive_record(cat, f"{name}{copy}")
            search.index_document(cat, document_id, [text if copy == 0 else "Tờ khai đăng ký hộ tịch."])
            ids.setdefault(name, code)
    result = search.search(cat, "thua dat")
    assert codes(result) == [ids["often"], ids["once"]]
    assert result.hits[0].score > result.hits[1].score


def test_a_capped_query_ranks_true_matches_and_says_it_was_truncated(cat: Catalog, backend: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["Thửa đất số 1, thửa đất số 2, thửa đất số 3, thửa đất liền kề.",  # the best match, indexed first
             *["Biên bản: thửa đất số 5 của hộ gia đình."] * 4,
             "Đất thửa khác: không có cụm từ, chỉ các từ rời.",  # both words, not the phrase
             "Giấy phép xây dựng nhà ở riêng lẻ."]
    ids = []
    for number, text in enumerate(texts):
        document_id, code = archive_record(cat, f"d{number}")
        search.index_document(cat, document_id, [text])
        ids.append(code)
    full = search.search(cat, '"thua dat"')
    assert codes(full) == ids[:5] and not full.truncated  # the best first, then equal scores by index order
    monkeypatch.setattr("digitize.search.index.CANDIDATE_LIMIT", 3)
    capped = search.search(cat, '"thua dat"')
    assert capped.truncated and len(capped.hits) == 3
    assert set(codes(capped)) <= set(ids[:5])  # only true phrase matches, never the loose words of d5
    if backend == "sqlite":  # the earliest indexed matches, the best of them first
        assert codes(capped) == ids[:3]
    scores = [h.score for h in capped.hits]
    assert scores == sorted(scores, reverse=True)
    assert search.search(cat, '"thua dat"', offset=3).hits == ()  # paging stops at the cap: refine the query
    assert search.search(cat, '"thua dat"', filters=search.SearchFilters(kind="TP")).hits == ()
    exact = search.search(cat, '"thửa đất"', exact=True)
    assert exact.truncated and len(exact.hits) == 3
    assert not search.search(cat, "giay phep").truncated


def test_postgresql_checks_phrase_positions_in_a_bounded_number_of_pages(cat: Catalog, backend: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    decoy = "Thửa đất, đất số nhà: cả hai cặp từ, không có cụm từ."  # both word pairs of the phrase, apart
    for number, text in enumerate([decoy, decoy, decoy, "Thửa đất số 5."]):
        document_id, code = archive_record(cat, f"p{number}")
        search.index_document(cat, document_id, [text])
    result = search.search(cat, '"thua dat so"')
    assert codes(result) == [code] and not result.truncated
    monkeypatch.setattr("digitize.search.index.PHRASE_CHECK_LIMIT", 2)
    bounded = search.search(cat, '"thua dat so"')
    if backend == "sqlite":  # FTS5 checks positions inside its own posting lists: no bound needed
        assert codes(bounded) == [code] and not bounded.truncated
    else:  # the first two pages holding the words and pairs are decoys: nothing found, and it says so
        assert bounded.hits == () and bounded.truncated and bounded.corrected_query is None


def test_filters_agency_kind_dates_holder(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    f = search.SearchFilters
    assert codes(search.search(cat, "dat", filters=f(agency=HUYEN_A))) == [corpus["plain"][1]]
    assert codes(search.search(cat, "giay chung nhan", filters=f(kind="TP"))) == [corpus["marriage"][1]]
    assert codes(search.search(cat, "giay", filters=f(issued_from=date(2022, 1, 1), issued_to=date(2022, 12, 31)))) \
        == [corpus["marriage"][1]]
    assert codes(search.search(cat, "dat", filters=f(holder="079070005678"))) == [corpus["plain"][1]]
    with pytest.raises(SearchQueryInvalid):
        search.search(cat, "dat", filters=f(kind="XX"))
    with pytest.raises(SearchQueryInvalid):
        search.search(cat, "dat", filters=f(issued_from=date(2023, 1, 1), issued_to=date(2022, 1, 1)))


def test_codes_and_titles_find_every_page_of_their_document(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    land = corpus["land"][1]
    assert sorted(h.page for h in search.search(cat, land).hits) == [1, 2, 3]
    assert {h.code for h in search.search(cat, land.lower()).hits} == {land}


def test_limit_and_offset_page_through_hits(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    every = [(h.code, h.page) for h in search.search(cat, "giay", limit=100).hits]
    paged = [(h.code, h.page) for off in range(len(every)) for h in search.search(cat, "giay", limit=1,
                                                                                    offset=off).hits]
    assert paged == every and len(every) >= 3
    with pytest.raises(SearchQueryInvalid):
        search.search(cat, "giay", limit=0)


def test_reindex_replaces_and_only_archived_documents_are_indexed(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    land_id, land = corpus["land"]
    assert search.index_document(cat, land_id, [LAND, LAND_P2, LAND_P3]) == 3
    assert search.index_document(cat, land_id, [LAND, LAND_P2, LAND_P3]) == 3  # idempotent
    assert sorted(h.page for h in search.search(cat, land).hits) == [1, 2, 3]
    assert search.index_document(cat, land_id, ["Bản đã sửa: chỉ một trang."]) == 1
    assert sorted(h.page for h in search.search(cat, land).hits) == [1]
    assert codes(search.search(cat, "Lê Lợi")) == []
    received, _ = cat.register_document(DocumentSpec(batch_id="b1", files=(FileSpec(0, "r.jpg", sha("r"), 1),),
                                                     agency_code=SOTP, kind="KQ", title="t",
                                                     issued_date=date(2023, 1, 1)))
    with pytest.raises(CatalogConflict):
        search.index_document(cat, received.id, ["x"])


def test_a_corrected_version_replaces_the_old_one_in_the_index(corpus: dict[str, Any]) -> None:
    cat = corpus["catalog"]
    land_id, land = corpus["land"]
    new_id, code = archive_record(cat, "land-v2", supersedes=land_id, holder_id="079070001234",
                                  issued=date(2021, 5, 4))
    assert code == land
    assert search.index_document(cat, new_id, ["Bản chính xác: thửa đất số 126."]) == 1
    assert [(h.document_id, h.version, h.page) for h in search.search(cat, land).hits] == [(new_id, 2, 1)]
    assert search.index_document(cat, land_id, [LAND]) == 0  # the old version stays out
    assert codes(search.search(cat, "Nguyen Van Duc")) == [corpus["plain"][1]]


def test_misspelled_words_are_corrected_on_postgresql(corpus: dict[str, Any], backend: str) -> None:
    result = search.search(corpus["catalog"], "Nguyem Van Đuc")
    if backend == "sqlite":
        assert result.hits == () and result.corrected_query is None
        return
    assert result.corrected_query == "nguyen van đuc"  # known words stay as typed
    assert set(codes(result)) == {corpus["land"][1], corpus["plain"][1]}


# ------------------------------------------------------------------------------------------ rebuild


def signed_pdf(signer: Any, pages: Sequence[str], code: str) -> bytes:
    """A real signed PDF/A: blank page images with the project's invisible text layer, one line per text line."""
    from digitize.intake.pages import EncodedImage
    from digitize.ocr.pdfa import PdfPage, TextWord, write_searchable_pdf

    width, height = 1654, 2339  # A4 at 200 dpi
    image = EncodedImage(zlib.compress(b"\xff" * (width * height)), "FlateDecode", width, height, 8, "DeviceGray")
    out = []
    for text in pages:
        words = []
        for row, line in enumerate(text.splitlines()):
            x, y = 150.0, 250.0 + 60 * row
            for word in line.split():
                w = 22.0 * len(word)
                words.append(TextWord(word, (x, y), (x + w, y), (x, y - 40)))
                x += w + 20
        out.append(PdfPage(image=image, dpi=(200.0, 200.0), words=tuple(words)))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "d.pdf"
        write_searchable_pdf(out, path)
        return bytes(signer.sign(path.read_bytes(), document_code=code, title="test"))


@pytest.fixture(scope="module")
def signer(demo_pki: Any) -> Any:
    from digitize.signing.signer import AgencySigner, SigningOptions

    return AgencySigner.from_options(SigningOptions(pkcs12_path=demo_pki.pkcs12,
                                                    passphrase=demo_pki.passphrase.encode()))


def s3_archive(endpoint: str) -> Any:
    from digitize.archive.s3 import S3Archive, make_s3_client

    archive = S3Archive(make_s3_client(endpoint, credentials=("testing", "testing")), f"t-{uuid.uuid4().hex[:20]}")
    archive.ensure_bucket()
    return archive


def archive_signed(catalog: Catalog, archive: Any, signer: Any, name: str, pages: Sequence[str],
                   **extra: Any) -> tuple[int, str]:
    """Sign a PDF holding ``pages`` and archive it under the code the catalog gives; the catalog records it."""
    from digitize.archive import document_keys

    spec = DocumentSpec(batch_id="b1", files=(FileSpec(0, f"{name}.jpg", sha(name), 100),),
                        agency_code=extra.pop("agency", SOTP), kind=extra.pop("kind", "KQ"),
                        title=extra.pop("title", "Giấy chứng nhận"),
                        issued_date=extra.pop("issued", date(2023, 3, 14)), **extra)
    record, _ = catalog.register_document(spec)
    code = catalog.allocate_code(record.id, template=TEMPLATE, year=2026)
    keys = document_keys(code)
    pdf = archive.put(keys.pdf, signed_pdf(signer, pages, code), content_type="application/pdf")
    original = archive.put(keys.original(0, ".jpg"), name.encode(), content_type="image/jpeg")
    files = [{"role": "signed_pdf", "key": pdf.key, "sha256": pdf.sha256},
             {"role": "original", "position": 0, "key": original.key, "sha256": original.sha256}]
    sidecar = archive.put(keys.sidecar, json.dumps({"code": code, "version": 1, "files": files}).encode(),
                          content_type="application/json")
    catalog.mark_archived(record.id, ArchivedInfo(
        pdf_key=pdf.key, pdf_sha256=pdf.sha256, sidecar_key=sidecar.key, sidecar_sha256=sidecar.sha256,
        original_keys=(original.key,), pages=len(pages), mean_confidence=90.0, needs_review=False))
    return record.id, code


def test_rebuild_reextracts_every_archived_document_from_the_archive(tmp_path: Path, s3_server: str,
                                                                     signer: Any) -> None:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    cat.upgrade()
    cat.import_agencies(REPO / "samples" / "agencies.csv")
    archive = s3_archive(s3_server)
    land_id, land = archive_signed(cat, archive, signer, "land", [LAND, LAND_P2, LAND_P3])
    birth_id, birth = archive_signed(cat, archive, signer, "birth", [BIRTH])
    assert search.extract_pages(archive.get(cat.get_document(land_id).pdf_key))[2].split() == LAND_P3.split()

    summary = search.rebuild(cat, archive)
    assert (summary.documents, summary.pages, summary.failures) == (2, 4, ())
    assert [(h.code, h.page) for h in search.search(cat, "duong le loi").hits] == [(land, 3)]
    assert codes(search.search(cat, "Đỗ Minh Khôi", exact=True)) == [birth]

    search.remove_document(cat, birth_id)
    again = search.rebuild(cat, archive, missing_only=True)
    assert (again.documents, again.pages) == (1, 1)
    assert codes(search.search(cat, "do minh khoi")) == [birth]
    cat.close()


def test_cli_search_and_rebuild(tmp_path: Path, s3_server: str, signer: Any) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    cat = Catalog(url)
    cat.upgrade()
    cat.import_agencies(REPO / "samples" / "agencies.csv")
    archive = s3_archive(s3_server)
    _, land = archive_signed(cat, archive, signer, "land", [LAND, LAND_P2], holder_id="079070001234")
    env = {**os.environ, "DIGITIZE_CATALOG_URL": url, "DIGITIZE_S3_ENDPOINT_URL": s3_server,
           "DIGITIZE_S3_BUCKET": archive.bucket}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "digitize", *args], capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=120)

    rebuilt = run("search", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 1 document(s), 2 page(s)" in rebuilt.stdout
    found = run("search", "chuyen nhuong", "--holder", "079070001234", "--from", "2020-01-01")
    assert found.returncode == 0, found.stderr
    assert f"{land}  p.2" in found.stdout and "«chuyển nhượng»" in found.stdout
    bad = run("search", "x", "--to", "2020-02-30")
    assert bad.returncode == 64 and "SEARCH_QUERY_INVALID" in bad.stderr
    cat.close()
