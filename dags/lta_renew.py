"""lta_renew: a fresh document timestamp on B-LTA files whose last timestamp's certificate nears expiry.

Wiring only: ``digitize.preservation.lta`` does the work, imported inside the tasks. ``find_due``
reads the current version of every document and lists the B-LTA ones whose last
TSA certificate expires within the form's window; ``renew_chunk`` (mapped, at most
1,024 chunks) writes each renewed file and its sidecar as the next version in the
archive (never overwriting, nothing deleted) and points the catalog to it;
``summarize`` prints what was renewed. A TSA or archive that does not answer
retries the task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

TZ = "Asia/Ho_Chi_Minh"
MAX_MAP_LENGTH = 1024


def _context() -> Any:
    from digitize_airflow import pipeline_context  # plugins/: shared by the DAGs

    return pipeline_context()


@dag(
    dag_id="lta_renew",
    description="Renew the archival timestamp of B-LTA documents before the last TSA certificate expires",
    schedule="0 3 1 * *",  # monthly, 03:00 Vietnam time
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
    params={
        "within_days": Param(180, type="integer", minimum=0,
                             description="Renew when the last timestamp's certificate expires within this many days."),
        "max_documents": Param(0, type="integer", minimum=0, description="Renew at most this many (0: all due)."),
        "chunk_size": Param(50, type="integer", minimum=1, maximum=10_000,
                            description="Documents per mapped task (raised automatically to stay under 1,024 tasks)."),
    },
    tags=["digitize", "signing"],
    doc_md=__doc__,
)
def lta_renew() -> None:
    @task
    def find_due(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Current B-LTA versions due for a new timestamp, cut into chunks."""
        import math

        from digitize.preservation import due_for_renewal

        assert params is not None
        ctx = _context()
        ctx.catalog.upgrade()
        due = due_for_renewal(ctx.catalog, ctx.archive, within_days=params["within_days"])
        if params["max_documents"]:
            due = due[: params["max_documents"]]
        for candidate in due:
            print(f"due: {candidate.code} v{candidate.version}, last timestamp certificate expires "
                  f"{candidate.expires:%Y-%m-%d}")
        ids = [c.document_id for c in due]
        size = max(params["chunk_size"], math.ceil(len(ids) / MAX_MAP_LENGTH))
        return [{"label": f"documents {i + 1}-{min(i + size, len(ids))}", "ids": ids[i: i + size]}
                for i in range(0, len(ids), size)]

    @task(map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=2))
    def renew_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Renew one chunk; re-running after a failure reuses what was already stored."""
        from airflow.sdk import get_current_context
        from digitize_airflow import on_fresh_stack

        from digitize.preservation import RenewalOptions, renew_due

        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx = _context()
        options = RenewalOptions(tsa_url=ctx.settings.tsa_url or "", trust_roots=tuple(ctx.settings.trust_roots))
        renewals = on_fresh_stack(renew_due, ctx.catalog, ctx.archive, chunk["ids"], options)
        for r in renewals:
            print(f"{r.code}: version {r.version} at {r.pdf_key} (timestamp valid until {r.new_expiry:%Y-%m-%d})")
        return [{"code": r.code, "version": r.version, "pdf_key": r.pdf_key} for r in renewals]

    @task(trigger_rule="none_failed")
    def summarize(renewed: list[list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        flat = [r for chunk in (renewed or []) if chunk for r in chunk]
        names = ", ".join(f"{r['code']} v{r['version']}" for r in flat) or "none"
        print(f"{len(flat)} document(s) renewed: {names}")
        return {"renewed": flat}

    summarize(renew_chunk.expand(chunk=find_due()))


lta_renew()
