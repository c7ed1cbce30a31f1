"""The plain-text report for the terminal (``python -m digitize coverage``): every indicator per level."""

from __future__ import annotations

from collections import Counter

from digitize.coverage.accounting import REASONS
from digitize.coverage.audit import provenance_rows
from digitize.coverage.figures import assessment, format_pct, indicator_figures
from digitize.coverage.indicators import CoverageReport


def render_table(report: CoverageReport) -> str:
    """Plain-text report for the terminal: every indicator per level, Vietnamese and English side by side."""
    plan = report.plan
    day = report.as_of.isoformat()
    lines = [
        f"Kế hoạch {plan.id} ({plan.province}) — số liệu đến hết ngày {day}",
        f"Plan {plan.id} ({plan.province}) — figures as of the end of {day}",
    ]
    for number, fig in enumerate(indicator_figures(report), start=1):
        lines += ["", f"{number}. {fig.status.title_vi}", f"   {fig.status.title_en}"]
        if fig.frame is None:
            lines += [f"   {fig.status.basis_vi}", f"   {fig.status.basis_en}"]
            continue
        table = [("Cấp / Level", "Đạt được/Tổng", "Tỷ lệ %", "Chỉ tiêu %", "Đánh giá / Assessment")]
        for row in fig.frame.to_dict("records"):
            vi, en = plan.level_names(str(row["level"]))
            v_vi, v_en = assessment(row, fig)
            table.append(
                (
                    f"{vi} / {en}",
                    f"{int(row[fig.num])}/{int(row[fig.den])}",
                    format_pct(row["coverage_pct"]),
                    format_pct(row["target_pct"]),
                    f"{v_vi} / {v_en}",
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for i, r in enumerate(table):
            lines.append(
                "   "
                + "  ".join(
                    [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3]), r[4]]
                ).rstrip()
            )
            if i == 0:
                lines.append("   " + "-" * (sum(widths) + 8 + len(r[4])))
        lines += [f"   ({fig.status.basis_vi})", f"   ({fig.status.basis_en})"]
    return "\n".join(lines + _audit_lines(report)) + "\n"


def _audit_lines(report: CoverageReport) -> list[str]:
    """Archived documents accounted for per level, why the others are not counted, succession, provenance."""
    lines = ["", "Tài liệu đã lưu trữ / Archived documents: đã lưu trữ = được tính + không được tính "
             "(archived = counted + not counted)"]
    for level, archived, counted, not_counted in (
        (str(r["level"]), int(r["archived"]), int(r["counted"]), int(r["not_counted"]))
        for r in report.accounting.to_dict("records")
    ):
        vi, en = report.plan.level_names(level)
        lines.append(f"   {vi} / {en}: {archived} = {counted} + {not_counted}")
    reasons = Counter(str(r) for r in report.uncounted["reason"]) if len(report.uncounted) else Counter()
    for code in REASONS:
        if reasons[code]:
            lines.append(f"   {reasons[code]:>6}  {code}: {REASONS[code][0]} / {REASONS[code][1]}")
    if len(report.uncounted):
        lines.append("   (danh sách / list: python -m digitize coverage --drill-down uncounted)")
    if len(report.succession):
        lines.append(f"Tính qua cơ quan kế thừa / Counted through succession: {len(report.succession)} dòng sổ / "
                     "register row(s) (--drill-down succession)")
    if report.includes_data_recorded_after is not None:
        day = report.as_of.isoformat()
        lines.append(f"Có dữ liệu ghi nhận sau ngày {day} / Includes data recorded after the end of {day} "
                     f"(Vietnam time; newest: {report.provenance()['latest_recorded_at']})")
    lines.append("")
    lines += [f"{vi} / {en}: {value or '—'}" for _key, vi, en, value in provenance_rows(report)]
    return lines
