"""Alerts to IT staff: a real HTTP webhook on 127.0.0.1, a real failing Airflow task, the inbox's deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from digitize.presentation.alerts import WEBHOOK_ENV, Alert, deadline_missed, post_alert

REPO = Path(__file__).resolve().parent.parent


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
        self.send_response(204 if self.path != "/broken" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def test_alert_is_posted_as_json_with_a_chat_text(webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    alert = Alert("task_failed", "digitize_inbox", "run-1", "process_chunk[b1 docs 1-4]", "Lỗi: S3 unavailable")
    assert post_alert(alert, url + "/hooks/it?token=s3cr3t")
    assert received[0]["path"] == "/hooks/it?token=s3cr3t"
    assert received[0]["type"].startswith("application/json")
    body = received[0]["json"]
    assert body["kind"] == "task_failed" and body["task"] == "process_chunk[b1 docs 1-4]"
    assert "digitize_inbox / run-1" in body["text"] and "Lỗi" in body["text"]


def test_undeliverable_alert_is_logged_never_raised_and_hides_the_url(
        webhook: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture) -> None:
    url, _ = webhook
    alert = Alert("task_failed", "d", "r", None, "boom")
    caplog.set_level(logging.WARNING, logger="digitize.presentation.alerts")
    assert not post_alert(alert, url + "/broken")
    assert not post_alert(alert, "http://127.0.0.1:9/hook?token=s3cr3t", timeout=2)
    assert "s3cr3t" not in caplog.text and "not delivered" in caplog.text
    assert not post_alert(alert, "")


PROBE_DAG = """
import pendulum
from airflow.sdk import dag, task

from digitize.presentation.alerts import task_failure_callback


@dag(dag_id="alert_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False,
     default_args={"retries": 0, "on_failure_callback": task_failure_callback})
def alert_probe():
    @task
    def breaks():
        raise RuntimeError("the catalog is unreachable")

    breaks()


alert_probe()
"""


def test_a_failing_airflow_task_notifies_the_webhook(webhook: tuple[str, list[dict[str, Any]]], airflow_db: Path,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    url, received = webhook
    monkeypatch.setenv(WEBHOOK_ENV, url + "/it")
    (tmp_path / "alert_probe.py").write_text(PROBE_DAG)
    bag = DagBag(dag_folder=str(tmp_path / "alert_probe.py"))
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test() needs the DAG serialized, as the DAG processor does
    run = bag.dags["alert_probe"].test()
    assert run.state == "failed"
    assert len(received) == 1, received
    body = received[0]["json"]
    assert (body["kind"], body["dag_id"], body["task"]) == ("task_failed", "alert_probe", "breaks")
    assert body["run_id"] == run.run_id
    assert "RuntimeError: the catalog is unreachable" in body["message"]


def test_deadline_callback_posts_the_late_run(webhook: tuple[str, list[dict[str, Any]]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = webhook
    monkeypatch.setenv(WEBHOOK_ENV, url)
    # The shape Airflow's scheduler hands the callback (DeadlineAlert.handle_miss: dag_run + deadline).
    context = {"dag_run": {"dag_id": "digitize_inbox", "dag_run_id": "scheduled__2026-11-27", "state": "running",
                           "start_date": "2026-11-27T01:00:00Z"},
               "deadline": {"id": "x", "deadline_time": "2026-11-27T02:10:00Z"}}
    asyncio.run(deadline_missed(context=context))
    body = received[0]["json"]
    assert (body["kind"], body["dag_id"], body["run_id"]) == ("deadline_missed", "digitize_inbox",
                                                              "scheduled__2026-11-27")
    assert "2026-11-27T02:10:00Z" in body["message"]


def test_inbox_runs_have_an_average_runtime_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DIGITIZE_DEADLINE_MINUTES", "45")
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import AverageRuntimeDeadline

    dag = DagBag(dag_folder=str(REPO / "dags" / "digitize_inbox.py")).dags["digitize_inbox"]
    (alert,) = dag.deadline
    assert isinstance(alert.reference, AverageRuntimeDeadline)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "digitize.presentation.alerts.deadline_missed"
    assert alert.interval.total_seconds() == 45 * 60
