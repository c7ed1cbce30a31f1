"""A stack batch through the ``digitize_inbox`` DAG (``dag.test()``): the ``split`` task cuts it before the
mapped chunks, the chunks make its documents from what the split staged, and the run's summary names, for the
stack, the sheets found, the documents made, the pages left out and what was sent to review."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sheetgen
from envs import folder_archive_env
from robustness_support import NOOP_OCR, REPO, SAMPLES
from sheetgen import StackPage

DPI = 200


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any, airflow_db: Path) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.catalog import Catalog
    from digitize.config import load_settings

    root = tmp_path_factory.mktemp("stack-dag")
    env = folder_archive_env(
        root, demo_pki, DIGITIZE_SIGNING_STAMP="false", DIGITIZE_QUIET_SECONDS="0", DIGITIZE_OCR_JOBS="1",
        DIGITIZE_PLUGINS=NOOP_OCR,
        DIGITIZE_STACK_UNIT="000.00.12.H99",  # the inbox's unit: the batch has no _UNIT file
        AIRFLOW_CONN_DIGITIZE_S3=json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        catalog = Catalog(load_settings().catalog_url)
        catalog.upgrade()
        catalog.import_agencies(SAMPLES / "agencies.csv")
        catalog.import_register(SAMPLES / "register.csv")
        sheetgen.print_with_command(env["DIGITIZE_CATALOG_URL"], root / "sheets.pdf", "--register", "REG-0001",
                                    "REG-0002", "REG-0004")
        pages = sheetgen.render_pdf(root / "sheets.pdf", dpi=DPI)
        ids = sheetgen.sheet_ids_of(pages)

        def sheet(n: int, how: str = "clean") -> StackPage:
            return StackPage(sheetgen.degrade(pages[n], how, dpi=DPI), "sheet", ids[n], dpi=DPI)

        def doc(seed: int) -> StackPage:
            return StackPage(sheetgen.document_page(seed, dpi=DPI), "document", dpi=DPI)

        stack = [sheet(0), StackPage(sheetgen.blank_backside(1, dpi=DPI), "blank", dpi=DPI), doc(1),
                 sheet(1, "photocopy"), doc(2), doc(3), sheet(2), sheet(0, "rot180"), doc(4)]
        batch = root / "inbox" / "stack-dag"
        batch.mkdir(parents=True)
        sheetgen.write_pdf(stack, batch / "pile.pdf")
        (batch / "_READY").touch()
        bag = DagBag(dag_folder=str(REPO / "dags"))
        result = bag.dags["digitize_inbox"].test(run_conf={"inbox": str(root / "inbox")})
        yield {"root": root, "catalog": catalog, "run": result, "bag": bag, "sheet": sheet, "doc": doc}
        catalog.close()


def _xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.query(XComModel.value).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                                                         key=key).scalar()
    return json.loads(value) if isinstance(value, str) else value


def test_the_dag_splits_the_stack_before_the_chunks(run: dict[str, Any]) -> None:
    result = run["run"]
    assert result.state == "success"
    states = {t.task_id: t.state for t in result.get_task_instances()}
    assert states["split"] == "success" and states["process_chunk"] == "success"
    docs = sorted(run["catalog"].documents(), key=lambda d: d.stack_first_page)
    assert [(d.status, d.register_id, d.stack_first_page, d.stack_last_page, d.pages, d.scanned_at) for d in docs] == [
        ("ARCHIVED", "REG-0001", 1, 3, 1, "000.00.12.H99"), ("ARCHIVED", "REG-0002", 4, 6, 2, "000.00.12.H99")]
    assert not [p for p in (run["root"] / "archive" / "staging").rglob("*") if p.is_file()]


def test_the_run_summary_names_what_each_stack_gave(run: dict[str, Any]) -> None:
    summary = _xcom(run["run"], "summarize")
    (stack,) = summary["stacks"]
    codes = sorted(d.code for d in run["catalog"].documents())
    assert (stack["name"], len(stack["sheets"]), sorted(stack["made"]), stack["left_out"]) == (
        "pile.pdf", 4, codes, [2])
    assert stack["review"] == ["page 7 [STACK_TWO_SHEETS]"]
    first = next(d for d in run["catalog"].documents() if d.register_id == "REG-0001")
    assert summary["duplicate_items"] == [["stack-dag/pile.pdf#8-9", f"document {first.id} (batch stack-dag)"]], (
        "REG-0001's sheet a second time in the stack: a duplicate of the document its first sheet made")
    split = _xcom(run["run"], "split", key="run")  # the plan besides its chunks
    assert all("holder" not in json.dumps(s) for s in split["stacks"]), "no personal data in XCom"


def test_the_backlog_dag_splits_stacks_the_same_way(run: dict[str, Any]) -> None:
    batch = run["root"] / "backlog" / "stack-backlog"
    batch.mkdir(parents=True)
    sheetgen.write_pdf([run["sheet"](2, "skew"), run["doc"](5), run["doc"](6)], batch / "pile.pdf")
    (batch / "_UNIT").write_text("000.00.12.H99", encoding="utf-8")
    conf = {"source": str(batch.parent), "agencies": "", "issued_from": None, "issued_to": None,
            "max_documents": 0, "priority": "normal", "chunk_size": 20, "dry_run": False}
    result = run["bag"].dags["digitize_backlog"].test(run_conf=conf)
    assert result.state == "success"
    states = {t.task_id: t.state for t in result.get_task_instances()}
    assert states["plan"] == "success"
    (made,) = [d for d in run["catalog"].documents() if d.batch_id == "stack-backlog"]
    assert (made.status, made.register_id, made.stack_first_page, made.stack_last_page, made.pages) == (
        "ARCHIVED", "REG-0004", 1, 3, 2)
    (stack,) = _xcom(result, "summarize")["stacks"]
    assert (stack["made"], stack["review"]) == ([made.code], [])


def test_a_batch_named_in_the_form_that_the_inbox_lacks_fails_the_run_at_once(
        run: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    """An officer who mistypes the batch's name sees a failed run naming the folders there, not a green run that took
    nothing (discover used to print "0 complete batch(es)" and succeed); nothing is retried or registered, and the
    summary fails at once (it used to fail over the missing plan with a TypeError, retried for minutes)."""
    before = len(run["catalog"].documents())
    result = run["bag"].dags["digitize_inbox"].test(run_conf={"inbox": str(run["root"] / "inbox"),
                                                              "batch": "stack-dga"})
    assert result.state == "failed"
    tries = {t.task_id: (t.state, t.try_number) for t in result.get_task_instances()}
    assert tries["discover"] == ("failed", 1) and tries["register"][0] == "upstream_failed"
    assert tries["summarize"] == ("failed", 1)  # nothing to sum up: failed at once, not retried for minutes
    out = capfd.readouterr()
    assert "[BATCH_NOT_FOUND] no batch folder 'stack-dga'" in out.out + out.err
    assert "folders there: stack-dag" in out.out + out.err
    assert len(run["catalog"].documents()) == before
