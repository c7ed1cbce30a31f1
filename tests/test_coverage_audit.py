"""Coverage as of (D, C) on hand-built frames with the catalog's columns (issue #16).

Every archived document counted or listed with its reason (archived = counted + not counted per level);
documents digitized from their first version; agencies' attributes of the day; successions (splits,
chains, levels that differ); indicator 3 from new scans only; provenance and byte-identical rendering.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from test_coverage import AS_OF, C1, C2, C4, D1, D2, P1, PC, PLAN_PATH, agency, doc, reg

from digitize.coverage import (
    REASONS,
    CoverageReport,
    compute_coverage,
    drill_down,
    load_plan,
    read_provenance,
    render_table,
    report_rows,
    write_csv,
    write_html,
    write_xlsx,
)
from digitize.coverage.plan import Plan

CUTOFF = datetime(2024, 7, 15, 3, 0, tzinfo=UTC)
X1 = "000.09.31.H99"  # a unit that existed only between two reforms


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(PLAN_PATH)


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    agencies = pd.DataFrame([
        agency(P1, "province"), agency(PC, "province", one_stop=True), agency(D1, "district", one_stop=True),
        agency(D2, "district", one_stop=True, valid_to=date(2023, 12, 31)),
        agency(C1, "commune", one_stop=True), agency(C2, "commune", one_stop=True, remote=True),
        agency(C4, "commune", one_stop=True),
    ])
    register = pd.DataFrame([
        reg("R1", P1, date(2023, 1, 1)), reg("R3", P1, date(2021, 1, 1), date(2024, 6, 29)),
        reg("R6", D1, date(2022, 1, 1)), reg("R8", D2, date(2022, 1, 1)), reg("R9", C1, date(2020, 1, 1)),
        reg("R10", C1, date(2021, 1, 1)), reg("R12", C1, date(2024, 4, 1)),
    ]).assign(successor_code=None)
    archived = pd.DataFrame([
        doc("A1", P1, register_id="R1", scanned_at=PC),
        doc("A2", P1, register_id="R1", at=datetime(2024, 6, 1, 8), scanned_at=PC),  # another code, same row
        doc("A3", D1, register_id="R6", scanned_at=D1),
        doc("A4", D1, register_id="R6", at=datetime(2024, 7, 1, 9), scanned_at=D1),  # after D: not in the report
        doc("A6", C1, register_id="R10", kind="TP", scanned_at=C1),
        doc("A7", P1, register_id="R3", scanned_at=PC),
        doc("A8", D2, register_id="R8"),
        doc("A9", C1, register_id="R12", scanned_at=C1),
        doc("A10", P1),  # no link at all
        doc("A11", C1, register_id="R99"),  # a row the register does not hold
    ])
    return agencies, register, archived


def successors(*edges: tuple[str, str, date]) -> pd.DataFrame:
    return pd.DataFrame([{"predecessor_code": p, "successor_code": s, "effective_date": pd.Timestamp(d),
                          "recorded_at": pd.Timestamp(CUTOFF)} for p, s, d in edges],
                        columns=["predecessor_code", "successor_code", "effective_date", "recorded_at"])


def reasons(report: CoverageReport) -> dict[str, str]:
    return dict(zip(report.uncounted["document_code"], report.uncounted["reason"], strict=True))


def assert_accounted(report: CoverageReport, archived: pd.DataFrame) -> None:
    """archived = counted + not counted per level; counted is the stock figure; no document lost or doubled."""
    acc = report.accounting.set_index("level")
    assert (acc["archived"] == acc["counted"] + acc["not_counted"]).all()
    digitized = pd.to_datetime(archived["digitized_at"]) < pd.Timestamp(report.as_of) + pd.Timedelta(days=1)
    assert acc["archived"].sum() == digitized.sum() == len(report.documents)
    stock = report.by_level.set_index("level")["digitized"]
    for level, counted in acc["counted"].items():
        assert counted == stock.get(level, 0), level
    assert acc["not_counted"].sum() == len(report.uncounted) and report.uncounted["reason"].isin(list(REASONS)).all()


def test_every_archived_document_is_counted_or_has_a_reason(plan: Plan) -> None:
    agencies, register, archived = frames()
    report = compute_coverage(agencies, register, archived, plan, AS_OF)
    assert_accounted(report, archived)
    assert reasons(report) == {
        "A1": "ROW_ALREADY_COUNTED", "A6": "DOSSIER_COMPONENT", "A7": "REGISTER_ROW_NOT_VALID",
        "A8": "AGENCY_NOT_VALID", "A10": "NO_REGISTER_LINK", "A11": "REGISTER_ROW_UNKNOWN",
    }
    levels = dict(zip(report.documents["document_code"], report.documents["level"], strict=True))
    assert (levels["A2"], levels["A6"], levels["A8"], levels["A10"], levels["A11"]) == (
        "province", "commune", "unknown", "province", "commune")
    assert report.accounting.set_index("level").loc["province"].tolist() == [4, 1, 3]  # A1 A2 A7 A10
    listed = drill_down(agencies, register, archived, AS_OF, part="uncounted")
    assert list(listed["document_code"]) == list(report.uncounted["document_code"])
    assert list(drill_down(agencies, register, archived, AS_OF, part="uncounted", level="commune")["reason"]) == [
        "REGISTER_ROW_UNKNOWN", "DOSSIER_COMPONENT"]


def test_a_later_version_never_moves_a_document_out_of_a_past_day(plan: Plan) -> None:
    agencies, register, archived = frames()
    before = compute_coverage(agencies, register, archived, plan, AS_OF)
    corrected = archived.copy()  # corrected in March 2025: the newest version's archived_at, the first's digitized_at
    corrected.loc[corrected["code"] == "A9", ["archived_at", "version"]] = [pd.Timestamp(2025, 3, 1), 2]
    after = compute_coverage(agencies, register, corrected, plan, AS_OF)
    pd.testing.assert_frame_equal(before.by_level, after.by_level)
    assert "A9" in set(after.detail["document_code"])


def test_agency_attributes_are_those_of_the_day(plan: Plan) -> None:
    agencies, register, archived = frames()
    history = pd.concat([
        agencies[agencies["code"] != C4],
        pd.DataFrame([agency(C4, "district", one_stop=False, valid_to=date(2024, 3, 31)),
                      agency(C4, "commune", one_stop=True, valid_from=date(2024, 4, 1))]),
    ], ignore_index=True)
    march = compute_coverage(history, register, archived, plan, date(2024, 3, 15))
    assert C4 not in set(march.units["code"])  # not yet a one-stop unit that day
    june = compute_coverage(history, register, archived, plan, AS_OF)
    assert june.units.set_index("code").loc[C4, "level"] == "commune"


def test_an_abolished_agencys_results_count_at_its_successor_from_the_effective_date(plan: Plan) -> None:
    agencies, register, archived = frames()
    later = compute_coverage(agencies, register, archived, plan, AS_OF, successors=successors((D2, C4,
                                                                                                 date(2024, 7, 1))))
    assert reasons(later)["A8"] == "AGENCY_NOT_VALID" and len(later.succession) == 0  # not yet effective
    report = compute_coverage(agencies, register, archived, plan, AS_OF,
                              successors=successors((D2, C4, date(2024, 1, 1))))
    assert_accounted(report, archived)
    assert "A8" not in reasons(report)
    row = report.succession.set_index("register_id").loc["R8"]
    assert (row["registered_agency"], row["agency_code"], row["level"], row["via"], row["document_code"]) == (
        D2, C4, "commune", f"{D2} → {C4}", "A8")
    assert report.by_agency.set_index("agency_code").loc[C4, ["digitized", "valid"]].tolist() == [1, 1]
    assert list(drill_down(agencies, register, archived, AS_OF, part="succession",
                           successors=successors((D2, C4, date(2024, 1, 1))))["register_id"]) == ["R8"]
    rows = report_rows(report)
    assert rows[rows["indicator"] == "succession"]["register_id"].tolist() == ["R8"]


def test_successions_chain(plan: Plan) -> None:
    agencies, register, archived = frames()
    agencies = pd.concat([agencies, pd.DataFrame([agency(X1, "district", valid_from=date(2024, 1, 1),
                                                         valid_to=date(2024, 3, 31))])], ignore_index=True)
    chain = successors((D2, X1, date(2024, 1, 1)), (X1, C4, date(2024, 4, 1)))
    report = compute_coverage(agencies, register, archived, plan, AS_OF, successors=chain)
    assert report.succession.set_index("register_id").loc["R8", "via"] == f"{D2} → {X1} → {C4}"
    feb = compute_coverage(agencies, register, archived, plan, date(2024, 2, 1), successors=chain)
    assert feb.succession.set_index("register_id").loc["R8", ["agency_code", "level"]].tolist() == [X1, "district"]


def test_a_split_across_levels_counts_where_the_register_row_says(plan: Plan) -> None:
    agencies, register, archived = frames()
    split = successors((D2, C4, date(2024, 1, 1)), (D2, P1, date(2024, 1, 1)))
    report = compute_coverage(agencies, register, archived, plan, AS_OF, successors=split)
    assert reasons(report)["A8"] == "SUCCESSOR_AMBIGUOUS"
    assert_accounted(report, archived)
    named = register.assign(successor_code=register["register_id"].map({"R8": P1}))
    report = compute_coverage(agencies, named, archived, plan, AS_OF, successors=split)
    assert report.succession.set_index("register_id").loc["R8", ["agency_code", "level"]].tolist() == [P1, "province"]
    assert_accounted(report, archived)


def test_indicator_3_counts_new_scans_only(plan: Plan) -> None:
    agencies, register, archived = frames()
    report = compute_coverage(agencies, register, archived, plan, AS_OF)
    assert report.units.set_index("code").loc[C1, "running"]
    # C1's only versions made from a new scan are older than the window: its renewals do not count
    scans = pd.DataFrame([{"code": "A3", "version": 1, "agency_code": D1, "scanned_at": D1,
                           "archived_at": pd.Timestamp(2024, 5, 1, 9)},
                          {"code": "A9", "version": 1, "agency_code": C1, "scanned_at": C1,
                           "archived_at": pd.Timestamp(2022, 5, 1, 9)}])
    only_scans = compute_coverage(agencies, register, archived, plan, AS_OF, scans=scans)
    units = only_scans.units.set_index("code")
    assert (bool(units.loc[C1, "running"]), bool(units.loc[D1, "running"]), bool(units.loc[PC, "running"])) == (
        False, True, False)


def test_inputs_hash_names_the_facts_not_their_order(plan: Plan) -> None:
    agencies, register, archived = frames()
    one = compute_coverage(agencies, register, archived, plan, AS_OF, cutoff=CUTOFF)
    shuffled = compute_coverage(agencies.iloc[::-1], register.sample(frac=1, random_state=1), archived.iloc[::-1],
                                plan, AS_OF, cutoff=CUTOFF)
    assert one.inputs_sha256 == shuffled.inputs_sha256 and len(one.inputs_sha256) == 64
    edited = register.copy()
    edited.loc[edited["register_id"] == "R9", "title"] = "Kết quả R9 (sửa)"
    assert compute_coverage(agencies, edited, archived, plan, AS_OF, cutoff=CUTOFF).inputs_sha256 != one.inputs_sha256

    def sha(register: pd.DataFrame, archived: pd.DataFrame) -> str:
        return compute_coverage(agencies, register, archived, plan, AS_OF, cutoff=CUTOFF).inputs_sha256

    # the same facts as another driver returns them: versions as floats, times at another resolution
    retyped = archived.astype({"version": float}).assign(archived_at=archived["archived_at"].astype("datetime64[s]"))
    assert sha(register, retyped) == one.inputs_sha256
    # rows are hashed whole: two rows trading titles, or a row read twice, are other facts
    swapped = register.copy()
    swapped["title"] = list(register["title"].iloc[[1, 0]]) + list(register["title"].iloc[2:])
    assert sha(swapped, archived) != one.inputs_sha256
    assert sha(pd.concat([register, register.iloc[:1]]), archived) != one.inputs_sha256
    prov = one.provenance()
    assert (prov["as_of"], prov["cutoff"], prov["plan_sha256"]) == (AS_OF.isoformat(), CUTOFF.isoformat(),
                                                                   plan.sha256)
    assert prov["code_version"].startswith("0.") and prov["includes_data_recorded_after"] == ""


def test_a_report_says_when_it_read_facts_recorded_after_its_day(plan: Plan) -> None:
    agencies, register, archived = frames()
    on_time = archived.assign(recorded_at=pd.Timestamp(2024, 6, 30, 16, 59, tz="UTC"))  # 23:59 in Vietnam
    assert compute_coverage(agencies, register, on_time, plan, AS_OF).includes_data_recorded_after is None
    late = on_time.copy()
    late.loc[late["code"] == "A9", "recorded_at"] = pd.Timestamp(2024, 6, 30, 17, 0, tz="UTC")  # 00:00 on 1 July
    report = compute_coverage(agencies, register, late, plan, AS_OF)
    assert report.includes_data_recorded_after == datetime(2024, 6, 30, 16, 59, 59, 999999, tzinfo=UTC)
    assert report.provenance()["includes_data_recorded_after"].startswith("2024-06-30T16:59:59")
    assert "Includes data recorded after the end of 2024-06-30" in render_table(report)
    assert "recorded after the end of" not in render_table(compute_coverage(agencies, register, on_time, plan, AS_OF))


@pytest.mark.parametrize("fmt", ["csv", "html", "xlsx"])
def test_every_format_lists_what_is_not_counted_records_provenance_and_is_byte_identical(
        plan: Plan, tmp_path: Path, fmt: str) -> None:
    agencies, register, archived = frames()
    report = compute_coverage(agencies, register, archived, plan, AS_OF, cutoff=CUTOFF,
                              successors=successors((D2, C4, date(2024, 1, 1))))
    writer = {"csv": write_csv, "html": write_html, "xlsx": write_xlsx}[fmt]
    first, second = tmp_path / f"one.{fmt}", tmp_path / f"two.{fmt}"
    writer(report, first)
    if fmt == "xlsx":
        time.sleep(2.1)  # zip entry times have a 2-second resolution: a later write must not change the bytes
    writer(report, second)
    assert first.read_bytes() == second.read_bytes()
    assert read_provenance(first) == report.provenance()
    if fmt == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(first)
        assert book.properties.modified == book.properties.created == CUTOFF.replace(tzinfo=None)
        listed = {r[0]: r[7] for r in book["Không được tính"].iter_rows(min_row=2, values_only=True)}
        succession = [r[0] for r in book["Cơ quan kế thừa"].iter_rows(min_row=2, values_only=True)]
        components = [r for r in book["Đối chiếu lưu trữ"].iter_rows(values_only=True) if "DOSSIER_COMPONENT" in r]
        assert [[v for v in r if v is not None][-1] for r in components] == [1, 1]  # per reason, per agency
    else:
        text = first.read_text(encoding="utf-8-sig")
        listed = {code: why for code, why in reasons(report).items() if code in text and why in text}
        succession = ["R8"] if f"{D2} → {C4}" in text else []
    # dossier components are counted per agency in the reports; each other document is listed with its reason
    assert listed == {code: why for code, why in reasons(report).items() if why != "DOSSIER_COMPONENT"}
    assert "NO_REGISTER_LINK" in listed.values() and "DOSSIER_COMPONENT" in reasons(report).values()
    assert succession == ["R8"]
