"""Every DAG file imports cleanly, quickly, and wires the tasks and pools the scheduler needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_every_dag_imports_without_errors() -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    assert {"digitize_inbox", "coverage_report"} <= set(bag.dag_ids)


def test_digitize_inbox_wiring() -> None:
    dag = _dagbag().dags["digitize_inbox"]
    assert {t.task_id for t in dag.tasks} == {"discover", "register", "split", "process_chunk", "summarize"}
    chunk = dag.get_task("process_chunk")
    assert chunk.pool == "ocr"
    assert chunk.pool_slots >= 1
    assert chunk.retries >= 1
    assert set(dag.params.keys()) >= {"inbox", "batch", "chunk_size", "max_documents"}
    assert dag.get_task("summarize").outlets, "the coverage report is triggered by the catalog asset"


def test_scheduled_dags_can_be_triggered_from_the_default_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI disables Trigger while a field whose schema does not admit null is empty: no such default.

    And the form shows real values, not a ``${VARIABLE}`` the officer would have to know is expanded later.
    """
    monkeypatch.setenv("AIRFLOW_HOME", "/srv/airflow-home")
    for dag_id in ("digitize_inbox", "coverage_report", "fixity_audit", "lta_renew"):
        dag = _dagbag().dags[dag_id]
        for name in dag.params:
            param = dag.params.get_param(name)
            types = param.schema.get("type")
            admits_null = "null" in types if isinstance(types, list) else types == "null"
            assert param.value not in ("", None) or admits_null, (dag_id, name, "required but empty by default")
            assert "${" not in str(param.value), (dag_id, name, param.value)
        dag.params.validate()  # the defaults themselves are valid
    inbox = _dagbag().dags["digitize_inbox"].params.get_param("inbox").value
    assert inbox == "/srv/airflow-home/var/inbox"


def test_coverage_report_runs_on_catalog_updates_and_quarterly() -> None:
    dag = _dagbag().dags["coverage_report"]
    assert dag.timetable.description
    assert "digitize-catalog" in str(dag.timetable.asset_condition)


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (REPO / "dags").glob("*.py")))
def test_dag_files_import_nothing_heavy_at_top_level(dag_file: str) -> None:
    """Parsing must stay cheap: the library's heavy dependencies load inside tasks only."""
    code = (
        "import sys, runpy\n"
        f"runpy.run_path({str(REPO / 'dags' / dag_file)!r})\n"
        "heavy = ('cv2', 'pandas', 'pyhanko', 'boto3', 'pikepdf', 'digitize.pipeline.stages')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1:] in ([], [""]), result.stdout


def test_airflow_reports_no_import_errors(airflow_db: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow", "dags", "list-import-errors", "--local"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
