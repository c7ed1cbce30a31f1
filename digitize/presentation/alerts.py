"""Tell IT staff when a run fails or runs far longer than usual: a JSON POST to a webhook.

The webhook URL comes from ``DIGITIZE_ALERT_WEBHOOK`` (chat tools such as
Slack, Mattermost or Google Chat accept a JSON body with a ``text`` field).
E-mail goes through Airflow's own SMTP settings (``email_on_failure``), so it
is not here. The callbacks take the plain mapping Airflow hands to callbacks
and read it defensively: this module imports nothing of Airflow, and an alert
that cannot be delivered is logged, never raised (a failing alert must not
hide the failure it reports). The URL is never logged: it often carries a
token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WEBHOOK_ENV = "DIGITIZE_ALERT_WEBHOOK"


@dataclass(frozen=True)
class Alert:
    """One notification, small and free of personal data (ids, states and an error message)."""

    kind: str
    """``task_failed`` or ``deadline_missed``."""

    dag_id: str
    """DAG the run belongs to."""

    run_id: str
    """Run that failed or is late."""

    task: str | None
    """Task (with its map index or chunk label) that failed; ``None`` for a whole-run alert."""

    message: str
    """What happened, in one line."""

    url: str | None = None
    """Link to the task log or run in the Airflow UI, when known."""

    def text(self) -> str:
        where = f"{self.dag_id} / {self.run_id}" + (f" / {self.task}" if self.task else "")
        return f"[digitize] {self.kind.replace('_', ' ')}: {where}: {self.message}" + (
            f" ({self.url})" if self.url else "")

    def payload(self) -> dict[str, Any]:
        return {"text": self.text(), "kind": self.kind, "dag_id": self.dag_id, "run_id": self.run_id,
                "task": self.task, "message": self.message, "url": self.url}


def post_alert(alert: Alert, url: str | None = None, *, timeout: float = 10.0) -> bool:
    """POST the alert as JSON; ``True`` when the webhook answered 2xx. No URL configured: logged only."""
    url = url if url is not None else os.environ.get(WEBHOOK_ENV) or None
    log.warning("%s", alert.text())
    if not url:
        return False
    request = urllib.request.Request(url, data=json.dumps(alert.payload(), ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.error("alert webhook not delivered (%s): %s", type(exc).__name__, getattr(exc, "reason", exc))
        return False


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def task_failure_callback(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback``: one alert per failed task try that will not be retried."""
    ti = context.get("ti") or context.get("task_instance")
    task_id = str(_get(ti, "task_id", "?"))
    map_index = _get(ti, "map_index", -1)
    label = _get(ti, "rendered_map_index", None)
    task = task_id if map_index in (None, -1) else f"{task_id}[{label or map_index}]"
    exc = context.get("exception")
    message = f"{type(exc).__name__}: {exc}" if exc is not None else "task failed"
    alert = Alert("task_failed", str(_get(ti, "dag_id", "?")), str(_get(ti, "run_id", "?")), task,
                  message[:500], _get(ti, "log_url", None))
    post_alert(alert)


async def deadline_missed(context: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """DeadlineAlert callback (runs in the triggerer): the run is still going long after it usually ends."""
    run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    alert = Alert("deadline_missed", str(run.get("dag_id", kwargs.get("dag_id", "?"))),
                  str(run.get("dag_run_id", run.get("run_id", "?"))), None,
                  f"still {run.get('state', 'running')} at its deadline {deadline.get('deadline_time', '?')} "
                  f"(started {run.get('start_date', '?')}); check the workers and the ocr pool")
    await asyncio.to_thread(post_alert, alert)  # the triggerer's event loop must not block on the network
