"""The quarantine and review page of the Airflow UI: what waits for an officer, batch by batch.

For each batch: the quarantined documents with their reason code, the message and what to do (the
quarantine message carries the hint after " — "), when the run quarantined them; the archived documents
OCR flagged for review; the copies refused as duplicates with the codes they already have. A retry from
the page does what ``python -m digitize quarantine retry`` does first (the document goes back to
RECEIVED, see :meth:`Catalog.retry_quarantined`), recorded with the user's name; the next run over the
batch processes it. The plugin (``plugins/quarantine_page.py``) wires HTTP, login and CSRF; no Airflow
import here. Citizen IDs never reach the page: the holder's ID is masked and so is any ID-like number
in free text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from digitize.catalog import RETRY_EVENT
from digitize.clock import BUSINESS_TZ

if TYPE_CHECKING:
    from digitize.catalog import Catalog, DocumentRecord

TIMEZONE = BUSINESS_TZ
LIST_LIMIT = 1000
"""Most items of each kind the page lists (the newest); the CLI's ``quarantine list`` shows every one."""
VIA = "Airflow UI"
"""How a retry from the page is named in its event."""

# 9 digits (old identity card) or 12 (citizen ID card), not part of a longer number or code
_ID_LIKE = re.compile(r"(?<!\w)(?<!\d\.)(\d{9}|\d{12})(?!\w)(?!\.\d)")


def mask_id(value: str | None) -> str:
    """A citizen ID as the page shows it: all but the last three characters hidden."""
    if not value:
        return ""
    keep = value[-3:] if len(value) > 6 else ""
    return "•" * (len(value) - len(keep)) + keep


def mask_text(text: str | None) -> str:
    """Free text (messages, event details) with every ID-like number masked."""
    return _ID_LIKE.sub(lambda m: mask_id(m.group(1)), text or "")


def split_message(message: str | None) -> tuple[str, str]:
    """(what went wrong, what to do): the pipeline stores ``f"{message} — {hint}"``."""
    what, _, todo = (message or "").partition(" — ")
    return what.strip(), todo.strip()


def local_time(value: datetime | None) -> str:
    """A catalog time (UTC) as Vietnam's wall clock, to the second."""
    return "" if value is None else value.astimezone(TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class BatchItems:
    """What waits in one batch."""

    batch_id: str
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)


@lru_cache(maxsize=8)
def _catalog(url: str) -> Catalog:
    """One catalog (one connection pool) per URL for the life of the API server process."""
    from digitize.catalog import Catalog

    return Catalog(url)


def _quarantined(record: DocumentRecord, when: datetime | None) -> dict[str, Any]:
    what, todo = split_message(record.message)
    return {
        "id": record.id, "key": record.manifest_document_id or "", "files": [f.name for f in record.files],
        "title": record.title, "agency_code": record.agency_code, "holder": mask_id(record.holder_id),
        "reason": record.reason or "", "message": mask_text(what), "todo": mask_text(todo),
        "quarantined_at": local_time(when),
    }


def collect(catalog_url: str) -> list[BatchItems]:
    """Every batch with something waiting, in batch order (the newest :data:`LIST_LIMIT` items of each kind)."""
    catalog = _catalog(catalog_url)
    batches: dict[str, BatchItems] = {}

    def batch(batch_id: str) -> BatchItems:
        return batches.setdefault(batch_id, BatchItems(batch_id))

    quarantined = catalog.documents(status="QUARANTINED")[-LIST_LIMIT:]
    when = catalog.last_events([r.id for r in quarantined], "quarantine")
    for record in quarantined:
        event = when.get(record.id)
        batch(record.batch_id).quarantined.append(_quarantined(record, event.created_at if event else None))
    for record in catalog.flagged_for_review(limit=LIST_LIMIT):
        batch(record.batch_id).review.append({
            "id": record.id, "code": record.code or "", "title": record.title, "pages": record.pages,
            "confidence": None if record.mean_confidence is None else round(record.mean_confidence, 1),
            "archived_at": local_time(record.archived_at)})
    for seen in catalog.duplicate_sightings(limit=LIST_LIMIT):
        existing = seen.existing
        batch(seen.event.batch_id or existing.batch_id).duplicates.append({
            "detail": mask_text(seen.event.detail), "at": local_time(seen.event.created_at),
            "existing_id": existing.id, "existing_code": existing.code or "", "existing_batch": existing.batch_id,
            "existing_status": existing.status})
    return [batches[name] for name in sorted(batches)]


def retry(catalog_url: str, document_id: int, *, actor: str) -> DocumentRecord:
    """Send a quarantined document back to RECEIVED, recorded as asked for by ``actor`` from the UI."""
    return _catalog(catalog_url).retry_quarantined(document_id, actor=actor, via=VIA)


def retry_notice(catalog_url: str, document_id: int) -> str:
    """What the page says after a retry: the document's status now, who asked, and what processes it next."""
    catalog = _catalog(catalog_url)
    record = catalog.get_document(document_id)
    asked = catalog.last_events([document_id], RETRY_EVENT).get(document_id)
    who = f" ({mask_text(asked.detail)}; {local_time(asked.created_at)})" if asked else ""
    if record.status != "RECEIVED":
        return (f"Tài liệu {record.id} đang ở trạng thái {record.status}: không thử lại. / Document {record.id} "
                f"is {record.status}, not quarantined: nothing was retried{who}.")
    return (f"Tài liệu {record.id} (lô {record.batch_id}) đã chuyển về RECEIVED; lần chạy digitize_inbox tiếp theo "
            f"sẽ xử lý lại. / Document {record.id} (batch {record.batch_id}) is back to RECEIVED{who}. The next "
            f"digitize_inbox run over the batch processes it (or trigger one with batch = {record.batch_id}).")


# ----------------------------------------------------------------------------------------------- page

_CSS = """
body{font-family:"Liberation Sans",Arial,sans-serif;margin:1rem;color:#222;font-size:.92rem}
h1{font-size:1.3rem;margin:.2rem 0 .6rem}h2{font-size:1.1rem;margin:1.4rem 0 .3rem;color:#1f4e79}
h3{font-size:.95rem;margin:.8rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.2rem 0 .6rem}
th,td{border:1px solid #d5dbe0;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}.note{color:#555;font-size:.85rem}.reason{font-family:monospace;font-weight:bold}
.notice{background:#e8f4e8;border:1px solid #9c9;padding:.5rem .7rem;border-radius:4px}
.error{background:#fbeaea;border-color:#d99}
button{font:inherit;padding:.15rem .6rem;cursor:pointer}
"""


def _cell(value: Any) -> str:
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(head: list[str], rows: list[str], css_class: str) -> str:
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f'<table class="{css_class}"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _quarantine_table(items: list[dict[str, Any]], csrf_token: str) -> str:
    rows = []
    for item in items:
        form = (f'<form method="post" action="retry/{item["id"]}">'
                f'<input type="hidden" name="csrf_token" value="{html.escape(csrf_token)}">'
                f'<button type="submit" class="retry" data-id="{item["id"]}">Thử lại / Retry</button></form>')
        rows.append(f'<tr data-id="{item["id"]}">' + _cell(item["id"]) + _cell(item["key"])
                    + _cell(", ".join(item["files"])) + _cell(item["title"]) + _cell(item["holder"])
                    + f'<td class="reason">{html.escape(item["reason"])}</td>' + _cell(item["message"])
                    + _cell(item["todo"]) + _cell(item["quarantined_at"]) + f"<td>{form}</td></tr>")
    return _table(["ID", "Khóa / Key", "Tệp / Files", "Tên / Title", "CCCD / Holder ID", "Mã lý do / Reason",
                   "Lỗi / Message", "Cần làm / What to do", "Thời điểm / Quarantined at", ""], rows, "quarantined")


def _review_table(items: list[dict[str, Any]]) -> str:
    rows = [f'<tr data-id="{i["id"]}">' + _cell(i["id"]) + _cell(i["code"]) + _cell(i["title"]) + _cell(i["pages"])
            + _cell(i["confidence"]) + _cell(i["archived_at"]) + "</tr>" for i in items]
    return _table(["ID", "Mã / Code", "Tên / Title", "Trang / Pages", "Độ tin cậy OCR / OCR confidence",
                   "Lưu trữ lúc / Archived at"], rows, "review")


def _duplicate_table(items: list[dict[str, Any]]) -> str:
    rows = ["<tr>" + _cell(i["existing_code"] or f"#{i['existing_id']}") + _cell(i["existing_batch"])
            + _cell(i["existing_status"]) + _cell(i["detail"]) + _cell(i["at"]) + "</tr>" for i in items]
    return _table(["Mã đã có / Existing code", "Lô gốc / First batch", "Trạng thái / Status", "Chi tiết / Detail",
                   "Lúc / At"], rows, "duplicates")


def _run_note(batch: BatchItems, runs_href: str) -> str:
    """Which run: the catalog records the batch and the event times, not Airflow's run id; say so."""
    times = sorted(t for t in (i["quarantined_at"] for i in batch.quarantined) if t)
    when = f"{times[0]} – {times[-1]}" if len(times) > 1 else (times[0] if times else "")
    at = f" lúc / at {html.escape(when)} (giờ Việt Nam / Vietnam time)" if when else ""
    return (f'<p class="note run">Lần chạy / Run: lô / batch <b>{html.escape(batch.batch_id)}</b>{at}. '
            "Danh mục không lưu mã lần chạy Airflow; xem lần chạy digitize_inbox vào thời điểm này. / "
            "The catalog does not record the Airflow run id: the batch and time identify the "
            f'<a href="{html.escape(runs_href)}" target="_top">digitize_inbox run</a>.</p>')


def quarantine_html(batches: list[BatchItems], *, csrf_token: str, runs_href: str, notice: str = "",
                    error: bool = False) -> str:
    """The page: a section per batch with its quarantined, flagged and duplicate documents."""
    parts = []
    for batch in batches:
        section = [f'<section class="batch" data-batch="{html.escape(batch.batch_id)}">'
                   f"<h2>Lô / Batch {html.escape(batch.batch_id)}</h2>"]
        if batch.quarantined:
            section += [f"<h3>Cách ly / Quarantined ({len(batch.quarantined)})</h3>", _run_note(batch, runs_href),
                        _quarantine_table(batch.quarantined, csrf_token)]
        if batch.review:
            section += [f"<h3>Cần kiểm tra / Flagged for review ({len(batch.review)})</h3>",
                        _review_table(batch.review)]
        if batch.duplicates:
            section += [f"<h3>Trùng lặp / Duplicates ({len(batch.duplicates)})</h3>",
                        _duplicate_table(batch.duplicates)]
        parts.append("".join(section) + "</section>")
    body = "".join(parts) or '<p class="empty">Không có gì đang chờ xử lý. / Nothing waits for an officer.</p>'
    shown = (f'<p class="notice{" error" if error else ""}" role="status">{html.escape(notice)}</p>'
             if notice else "")
    return ('<!doctype html><html lang="vi"><head><meta charset="utf-8">'
            "<title>Cách ly và kiểm tra / Quarantine and review</title>"
            f"<style>{_CSS}</style></head><body><h1>Cách ly và kiểm tra / Quarantine and review</h1>"
            '<p class="note">Sửa nguyên nhân (xem "Cần làm") rồi bấm Thử lại. / Fix the cause (see "What to do"), '
            "then press Retry: the document goes back to RECEIVED and the next digitize_inbox run over its batch "
            f"processes it.</p>{shown}{body}</body></html>")
