"""The rows behind a coverage figure as a page an officer reads, and as a CSV file Excel opens.

The dashboard's "results not yet digitized" links lead here: a table of the register rows (dossiers,
for the "not asked again" indicator) with the drill-down's filters, paging, and a CSV download in
UTF-8 with a BOM (without it Excel on Windows garbles Vietnamese), and a button that prints cover sheets for the
register rows shown. The rows come from ``dashboard.drill_down_rows``/``drill_down_all``, so they carry no
holder ID.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from digitize.spreadsheet import csv_cell

HEADINGS = {
    "register_id": "Mã sổ / Register ID", "agency_code": "Mã cơ quan / Agency", "agency_name": "Cơ quan / Agency name",
    "level": "Cấp / Level", "procedure_code": "Thủ tục / Procedure", "dossier_code": "Hồ sơ / Dossier",
    "title": "Tên kết quả / Title", "issued_date": "Ngày cấp / Issued", "valid_until": "Hiệu lực đến / Valid until",
    "digitized": "Đã số hóa / Digitized", "document_code": "Mã tài liệu / Document code",
    "new_dossier_code": "Hồ sơ / Dossier", "first_at": "Tiếp nhận / Received", "reused_docs": "Dùng lại / Reused",
    "supplied_again_docs": "Nộp lại / Supplied again", "not_asked": "Không phải nộp lại / Not asked again",
}
PARTS = {"missing": "Chưa số hóa / Not yet digitized", "numerator": "Đã số hóa / Digitized",
         "denominator": "Tất cả / All"}
INDICATORS = {"stock": "Kết quả còn hiệu lực / Valid results", "flow": "Kết quả mới / New results",
              "not_asked_again": "Không phải nộp lại / Not asked again"}
PAGE_SIZES = (50, 100, 500, 1000)

_CSS = """
body{font-family:"Liberation Sans",Arial,sans-serif;margin:1rem;color:#222;font-size:.9rem}
h1{font-size:1.25rem;margin:.2rem 0 .6rem}
form.filters{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:end;padding:.6rem .8rem;margin:0 0 .8rem;
background:#f4f6f8;border:1px solid #dde3e8;border-radius:6px}
form.filters label{display:flex;flex-direction:column;gap:.15rem;color:#444}
input,select,button{font:inherit;padding:.2rem .3rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d5dbe0;padding:.25rem .4rem;text-align:left}
th{background:#f4f6f8;position:sticky;top:0}.pager{margin:.6rem 0;display:flex;gap:1rem;align-items:center}
a{color:#1f4e79}form.print{margin:.4rem 0 .8rem}form.print button{font-weight:bold}
"""


def _options(choices: Mapping[str, str], selected: str | None, *, blank: str | None = None) -> str:
    out = f'<option value="">{html.escape(blank)}</option>' if blank is not None else ""
    return out + "".join(
        f'<option value="{html.escape(value)}"{" selected" if value == selected else ""}>{html.escape(label)}</option>'
        for value, label in choices.items())


def _filters(result: Mapping[str, Any], levels: Sequence[tuple[str, str, str]], plan_name: str) -> str:
    level_choices = {code: f"{vi} / {en}" for code, vi, en in levels}
    sizes = {str(n): str(n) for n in PAGE_SIZES}
    return (
        '<form class="filters" method="get" action="missing">'
        f'<input type="hidden" name="plan" value="{html.escape(plan_name)}">'
        '<label>Số liệu đến ngày / As of'
        f'<input type="date" name="as_of" value="{html.escape(result["as_of"])}" required></label>'
        f'<label>Chỉ tiêu / Indicator<select name="indicator">{_options(INDICATORS, result["indicator"])}</select>'
        "</label>"
        f'<label>Cấp / Level<select name="level">{_options(level_choices, result["level"], blank="—")}</select></label>'
        '<label>Mã cơ quan / Agency code'
        f'<input name="agency" value="{html.escape(result["agency"] or "")}" size="15"></label>'
        f'<label>Phần / Rows<select name="part">{_options(PARTS, result["part"])}</select></label>'
        f'<label>Mỗi trang / Per page<select name="limit">{_options(sizes, str(result["limit"]))}</select></label>'
        '<button type="submit">Xem / Show</button></form>'
    )


def _query(result: Mapping[str, Any], plan_name: str, **changes: Any) -> str:
    keys = ("as_of", "indicator", "level", "agency", "part", "offset", "limit")
    values = {"plan": plan_name, **{k: result[k] for k in keys}, **changes}
    return html.escape(urlencode({k: v for k, v in values.items() if v not in (None, "")}))


def _pager(result: Mapping[str, Any], plan_name: str) -> str:
    total, offset, limit = result["total"], result["offset"], result["limit"]
    shown = f"{offset + 1}–{min(offset + limit, total)} / {total}" if total and offset < total else f"0 / {total}"
    links = []
    if offset > 0:
        prev = _query(result, plan_name, offset=max(offset - limit, 0))
        links.append(f'<a rel="prev" href="missing?{prev}">← Trước / Previous</a>')
    if offset + limit < total:
        after = _query(result, plan_name, offset=offset + limit)
        links.append(f'<a rel="next" href="missing?{after}">Sau / Next →</a>')
    csv_link = _query(result, plan_name, offset=None, limit=None)
    return (f'<div class="pager"><span class="count">{shown}</span>{"".join(links)}'
            f'<a href="missing.csv?{csv_link}" download>CSV (Excel)</a>'
            '<a href="./">↩ Bảng điều khiển / Dashboard</a></div>')


def _print_form(result: Mapping[str, Any], csrf_token: str | None) -> str:
    """The "print cover sheets" button for the register rows shown (register rows not yet digitized only)."""
    if csrf_token is None or not result["rows"] or result["part"] != "missing" or result["columns"][0] != "register_id":
        return ""
    ids = "".join(f'<input type="hidden" name="register_id" value="{html.escape(str(row["register_id"]))}">'
                  for row in result["rows"])
    return ('<form class="print" method="post" action="missing/coversheets.pdf">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(csrf_token)}">{ids}'
            f'<button type="submit">In trang bìa cho {len(result["rows"])} dòng này / '
            f'Print cover sheets for these {len(result["rows"])} rows</button></form>')


def missing_html(result: Mapping[str, Any], *, levels: Sequence[tuple[str, str, str]], plan_name: str,
                 csrf_token: str | None = None) -> str:
    """The page of one :func:`dashboard.drill_down_rows` result: filters, a count with paging, the table; with
    ``csrf_token``, a button printing cover sheets for the register rows shown (see ``coversheets``)."""
    columns: Sequence[str] = result["columns"]
    key = columns[0]
    heads = "".join(f"<th>{html.escape(HEADINGS.get(c, c))}</th>" for c in columns)
    body = "".join(
        f'<tr data-register="{html.escape(str(row[key]))}">'
        + "".join(f"<td>{html.escape(_text(row[c]))}</td>" for c in columns) + "</tr>"
        for row in result["rows"])
    title = f"{PARTS.get(result['part'], result['part'])} — {INDICATORS.get(result['indicator'], '')}"
    return ('<!doctype html><html lang="vi"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{_filters(result, levels, plan_name)}{_pager(result, plan_name)}"
            f"{_print_form(result, csrf_token)}"
            f"<table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"
            f"{_pager(result, plan_name)}</body></html>")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)


def missing_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Every row as CSV, UTF-8 with a BOM, the columns named as in the JSON API; formulas neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else csv_cell(row[c]) for c in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
