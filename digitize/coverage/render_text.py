"""The plain-text report for the terminal (``python -m digitize coverage``): every indicator per level."""

from __future__ import annotations

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
    return "\n".join(lines) + "\n"
