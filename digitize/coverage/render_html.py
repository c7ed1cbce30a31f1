"""The HTML page: one self-contained file, bilingual (a button switches), with a chart per indicator.

CSS, SVG and script are inline and nothing is fetched from the network, so the page reads the same
wherever it is stored or sent. The agency tables sort by any column in the browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digitize.coverage.accounting import REASONS
from digitize.coverage.audit import (
    ACCOUNTING_HEADERS,
    COMPONENT_HEADERS,
    SUCCESSION_HEADERS,
    UNCOUNTED_HEADERS,
    accounting_table,
    component_table,
    provenance_rows,
    reason_counts,
    succession_table,
    uncounted_columns,
)
from digitize.coverage.figures import Figures, assessment, format_pct, indicator_figures
from digitize.coverage.indicators import CoverageReport

_HTML_CSS = """
body{font-family:"Liberation Sans",Arial,sans-serif;margin:1.5rem auto;max-width:72rem;color:#1b1b1b;padding:0 1rem}
body:not(.en) .en,body.en .vi{display:none}
header{display:flex;justify-content:space-between;align-items:flex-start;gap:1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.meta{color:#555;margin:.1rem 0}
button{font:inherit;padding:.3rem .8rem;border:1px solid #1f4e79;background:#fff;color:#1f4e79;
border-radius:4px;cursor:pointer}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}
th{background:#1f4e79;color:#fff;position:sticky;top:0}
th.sort{cursor:pointer;user-select:none}th.sort:after{content:" \\2195";opacity:.6}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.met{background:#c6efce}.behind{background:#ffc7ce}.none{color:#777}
.basis{color:#555;font-size:.88rem;margin:.2rem 0 0}
.nc{border-left:4px solid #999;padding:.4rem .8rem;background:#f4f4f4}
svg text{font-size:12px;fill:#1b1b1b}
"""

_HTML_JS = """
document.getElementById('lang').addEventListener('click',function(){
 var en=document.body.classList.toggle('en');document.documentElement.lang=en?'en':'vi';});
document.querySelectorAll('table.sortable th.sort').forEach(function(th){
 th.addEventListener('click',function(){
  var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex,num=th.dataset.type==='num';
  var dir=th.dataset.dir==='asc'?'desc':'asc';
  table.querySelectorAll('th').forEach(function(h){delete h.dataset.dir;});th.dataset.dir=dir;
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){
   var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v,r;
   if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x))return 1;if(isNaN(y))return -1;r=x-y;}
   else{r=x.localeCompare(y,'vi');}
   return dir==='asc'?r:-r;});
  rows.forEach(function(r){body.appendChild(r);});});});
"""


def _bi(vi: str, en: str) -> str:
    """Both languages of a label; CSS shows one (Vietnamese by default)."""
    return f'<span class="vi">{html.escape(vi)}</span><span class="en">{html.escape(en)}</span>'


def _bar_chart(report: CoverageReport, fig: Figures) -> str:
    """Inline SVG: one bar per level with the year's target marked by a line."""
    assert fig.frame is not None
    left, scale, row_h = 170, 4.2, 30
    frame = fig.frame
    height = row_h * len(frame) + 24
    parts = [
        f'<svg role="img" width="{left + 100 * scale + 110:.0f}" height="{height}" '
        f'aria-label="{html.escape(fig.status.title_en)}">'
    ]
    for i, row in enumerate(frame.to_dict("records")):
        y = 8 + i * row_h
        vi, en = report.plan.level_names(str(row["level"]))
        pct = 0.0 if pd.isna(row["coverage_pct"]) else float(row["coverage_pct"])
        met = row["met"]
        color = "#9e9e9e" if pd.isna(met) else ("#2e7d32" if bool(met) else "#c62828")
        parts.append(
            f'<text class="vi" x="0" y="{y + 15}">{html.escape(vi)}</text>'
            f'<text class="en" x="0" y="{y + 15}">{html.escape(en)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{100 * scale:.1f}" height="20" fill="#eceff1"/>')
        parts.append(f'<rect x="{left}" y="{y}" width="{pct * scale:.1f}" height="20" fill="{color}"/>')
        label = f"{format_pct(row['coverage_pct'])} % ({int(row[fig.num])}/{int(row[fig.den])})"
        parts.append(f'<text x="{left + 100 * scale + 6}" y="{y + 15}">{html.escape(label)}</text>')
        if not pd.isna(row["target_pct"]):
            x = left + float(row["target_pct"]) * scale
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3}" y2="{y + 23}" stroke="#111" '
                f'stroke-width="2" stroke-dasharray="4 2"><title>{format_pct(row["target_pct"])} %</title></line>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 2}" class="vi">Vạch đứt: chỉ tiêu năm {report.as_of.year}</text>'
        f'<text x="{left}" y="{height - 2}" class="en">Dashed line: {report.as_of.year} target</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _td(value: Any, *, num: bool = False, css: str = "", sort: Any = None) -> str:
    """A table cell carrying its sort key in ``data-v``; missing values show as a dash."""
    text = (
        format_pct(value)
        if num and isinstance(value, float)
        else ("—" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
    )
    key = sort if sort is not None else ("" if text == "—" else text)
    classes = " ".join(c for c in ("n" if num else "", css) if c)
    attr = f' class="{classes}"' if classes else ""
    return f'<td{attr} data-v="{html.escape(str(key))}">{html.escape(text)}</td>'


def write_html(report: CoverageReport, path: Path) -> None:
    """Write one self-contained HTML page (inline CSS, SVG and JS; nothing fetched from the network)."""
    plan, day = report.plan, report.as_of.isoformat()
    out = [
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Tiến độ số hóa — {html.escape(plan.id)} — {day}</title>",
        *(f'<meta name="digitize:{key}" content="{html.escape(value)}">'
          for key, _vi, _en, value in provenance_rows(report)),
        f"<style>{_HTML_CSS}</style></head><body>",
        "<header><div><h1>"
        + _bi(
            "Tiến độ số hóa hồ sơ, kết quả giải quyết TTHC", "Digitization coverage of administrative-procedure results"
        )
        + "</h1>",
        '<p class="meta">'
        + _bi(
            f"Kế hoạch {plan.id} — {plan.province} — số liệu đến hết ngày {day}",
            f"Plan {plan.id} — {plan.province} — figures as of the end of {day}",
        )
        + "</p>",
        f'<p class="meta">{html.escape(plan.source_reference)}</p>',
        _late_note(report) + "</div>",
        '<button id="lang" type="button">' + _bi("English", "Tiếng Việt") + "</button></header>",
    ]
    for number, fig in enumerate(indicator_figures(report), start=1):
        out.append(f"<section><h2>{number}. " + _bi(fig.status.title_vi, fig.status.title_en) + "</h2>")
        if fig.frame is None:
            out.append('<p class="nc">' + _bi(fig.status.basis_vi, fig.status.basis_en) + "</p></section>")
            continue
        out.append(_bar_chart(report, fig))
        out.append(
            "<table><thead><tr><th>"
            + _bi("Cấp", "Level")
            + '</th><th class="n">'
            + _bi("Đạt được/Tổng", "Done/Total")
            + '</th><th class="n">'
            + _bi("Tỷ lệ %", "Coverage %")
            + '</th><th class="n">'
            + _bi("Chỉ tiêu %", "Target %")
            + "</th><th>"
            + _bi("Đánh giá", "Assessment")
            + "</th></tr></thead><tbody>"
        )
        for row in fig.frame.to_dict("records"):
            vi, en = plan.level_names(str(row["level"]))
            v_vi, v_en = assessment(row, fig)
            css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
            out.append(
                f"<tr><td>{_bi(vi, en)}</td>"
                f'<td class="n">{int(row[fig.num])}/{int(row[fig.den])}</td>'
                f'<td class="n">{format_pct(row["coverage_pct"])}</td>'
                f'<td class="n">{format_pct(row["target_pct"])}</td>'
                f'<td class="{css}">{_bi(v_vi, v_en)}</td></tr>'
            )
        out.append(
            '</tbody></table><p class="basis">' + _bi(fig.status.basis_vi, fig.status.basis_en) + "</p></section>"
        )
    out.append(_agency_table(report))
    if report.asked_by_agency is not None:
        out.append(_asked_agency_table(report))
    out.append(_audit_sections(report))
    out.append(f"<script>{_HTML_JS}</script></body></html>\n")
    Path(path).write_text("".join(out), encoding="utf-8")


def _asked_agency_table(report: CoverageReport) -> str:
    """Sortable table of receiving offices for "not asked again", laggards first."""
    assert report.asked_by_agency is not None
    heads = [
        ("Cơ quan tiếp nhận", "Receiving office", False),
        ("Tên cơ quan", "Agency", False),
        ("Cấp", "Level", False),
        ("Không phải nộp lại", "Not asked again", True),
        ("Hồ sơ đã tra cứu", "Dossiers looked up", True),
        ("Giấy tờ tái sử dụng", "Papers reused", True),
        ("Giấy tờ phải nộp lại", "Papers handed in again", True),
        ("Tỷ lệ %", "Share %", True),
        ("Chỉ tiêu %", "Target %", True),
        ("Chậm (điểm)", "Behind (points)", True),
    ]
    out = _sortable_table_head(
        "not-asked-again",
        _bi("Không phải nộp lại giấy tờ, theo cơ quan tiếp nhận", "Not asked again, by receiving office"), heads)
    for row in report.asked_by_agency.to_dict("records"):
        vi, en = report.plan.level_names(str(row["level"]))
        css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
        out.append(
            "<tr>"
            + _td(row["agency_code"])
            + _td(row["agency_name"])
            + f'<td data-v="{html.escape(vi)}">{_bi(vi, en)}</td>'
            + _td(int(row["not_asked"]), num=True)
            + _td(int(row["dossiers"]), num=True)
            + _td(int(row["reused_docs"]), num=True)
            + _td(int(row["supplied_again_docs"]), num=True)
            + _td(float(row["coverage_pct"]), num=True, css=css)
            + _td(float(row["target_pct"]), num=True)
            + _td(float(row["gap_points"]), num=True)
            + "</tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _sortable_table_head(table_id: str, title: str, heads: list[tuple[str, str, bool]]) -> list[str]:
    """The section title and bilingual header row of a table the report's script sorts (numeric when flagged)."""
    out = ["<section><h2>" + title + "</h2>", f'<table class="sortable" id="{table_id}"><thead><tr>']
    for vi, en, num in heads:
        out.append(f'<th class="sort{" n" if num else ""}" data-type="{"num" if num else "text"}">{_bi(vi, en)}</th>')
    out.append("</tr></thead><tbody>")
    return out


def _agency_table(report: CoverageReport) -> str:
    """Sortable table of agencies, laggards first (the report's order)."""
    heads = [
        ("Mã cơ quan", "Agency code", False),
        ("Tên cơ quan", "Agency", False),
        ("Cấp", "Level", False),
        ("Đã số hóa", "Digitized", True),
        ("Còn hiệu lực", "Valid", True),
        ("Tỷ lệ %", "Coverage %", True),
        ("Chỉ tiêu %", "Target %", True),
        ("Chậm (điểm)", "Behind (points)", True),
        ("Còn thiếu", "Still needed", True),
    ]
    out = _sortable_table_head("agencies", _bi("Theo cơ quan (chậm nhất trước)", "By agency (laggards first)"), heads)
    for row in report.by_agency.to_dict("records"):
        vi, en = report.plan.level_names(str(row["level"]))
        css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
        out.append(
            "<tr>"
            + _td(row["agency_code"])
            + _td(row["name"])
            + f'<td data-v="{html.escape(vi)}">{_bi(vi, en)}</td>'
            + _td(int(row["digitized"]), num=True)
            + _td(int(row["valid"]), num=True)
            + _td(float(row["coverage_pct"]), num=True, css=css)
            + _td(float(row["target_pct"]), num=True)
            + _td(float(row["gap_points"]), num=True)
            + _td(None if pd.isna(row["docs_to_target"]) else int(row["docs_to_target"]), num=True)
            + "</tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _late_note(report: CoverageReport) -> str:
    """Said under the title when the report read facts recorded after the end of its day."""
    if report.includes_data_recorded_after is None:
        return ""
    day, newest = report.as_of.isoformat(), report.provenance()["latest_recorded_at"]
    note = _bi(f"Có dữ liệu ghi nhận sau ngày {day} (mới nhất: {newest})",
               f"Includes data recorded after the end of {day}, Vietnam time (newest: {newest})")
    return f'<p class="meta late">{note}</p>'


def _plain_table(title: str, heads: Sequence[tuple[str, str]], rows: Sequence[Sequence[object]],
                 table_id: str) -> str:
    """A sortable section table of text cells (numbers right-aligned)."""
    out = _sortable_table_head(table_id, title, [(vi, en, False) for vi, en in heads])
    for row in rows:
        out.append("<tr>" + "".join(_td(v, num=isinstance(v, int)) for v in row) + "</tr>")
    out.append("</tbody></table></section>")
    return "".join(out)


def _rows_html(columns: Sequence[Sequence[str]]) -> str:
    """``<tr>`` rows of text cells built column-wise, each distinct value escaped once: a province lists
    hundreds of thousands of documents."""
    if not columns or not len(columns[0]):
        return ""
    rows = np.full(len(columns[0]), "<tr>", dtype=object)
    for column in columns:
        codes, uniques = pd.factorize(np.asarray(column, dtype=object))
        rows = rows + "<td>" + np.array([html.escape(str(v)) for v in uniques], dtype=object)[codes] + "</td>"
    return "".join((rows + "</tr>").tolist())


def _uncounted_section(report: CoverageReport) -> str:
    """The reasons with their counts, dossier components counted per level and agency, then one plain row
    per other document (no sort keys: the list can be long)."""
    counts = reason_counts(report)
    legend = [(code, f"{vi} / {en}", counts[code]) for code, (vi, en) in REASONS.items() if code in counts]
    out = [_plain_table(_bi("Đã lưu trữ nhưng không được tính", "Archived but not counted"),
                        (("Mã lý do", "Reason code"), ("Lý do", "Reason"), ("Số tài liệu", "Documents")), legend,
                        "uncounted-reasons")]
    components = [(report.plan.level_names(level)[1], agency, code, n)
                  for level, agency, code, n in component_table(report)]
    if components:
        out.append(_plain_table(_bi("Thành phần hồ sơ (TP) theo cơ quan — danh sách: --drill-down uncounted",
                                    "Dossier components (TP) per agency — list: --drill-down uncounted"),
                                COMPONENT_HEADERS, components, "uncounted-components"))
    head = "".join(f"<th>{_bi(vi, en)}</th>" for vi, en in UNCOUNTED_HEADERS[:-1])
    body = _rows_html(uncounted_columns(report)[:-1])
    out.append(f'<section><table id="uncounted"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>')
    return "".join(out)


def _audit_sections(report: CoverageReport) -> str:
    """Archived = counted + not counted per level, the documents not counted, succession, provenance."""
    levels = [(report.plan.level_names(level)[1], *counts) for level, *counts in accounting_table(report)]
    parts = [
        _plain_table(_bi("Đối chiếu tài liệu đã lưu trữ (đã lưu trữ = được tính + không được tính)",
                         "Archived documents accounted for (archived = counted + not counted)"),
                     ACCOUNTING_HEADERS, levels, "accounting"),
        _uncounted_section(report),
        _plain_table(_bi("Tính qua cơ quan kế thừa", "Counted through succession"), SUCCESSION_HEADERS,
                     succession_table(report), "succession"),
    ]
    rows = "".join(f"<tr><th>{_bi(vi, en)}</th><td><code>{html.escape(value or '—')}</code></td></tr>"
                   for _key, vi, en, value in provenance_rows(report))
    parts.append("<section><h2>" + _bi("Nguồn gốc số liệu", "Provenance") + f"</h2><table>{rows}</table>"
                 + '<p class="basis">' + _bi("Kiểm tra: python -m digitize coverage check TỆP_BÁO_CÁO",
                                             "Check: python -m digitize coverage check REPORT_FILE") + "</p></section>")
    return '<div class="audit">' + "".join(parts) + "</div>"
