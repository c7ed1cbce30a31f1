"""fixity_audit: prove, weekly, that every archived version still holds what the catalog and its sidecar say.

Wiring only: the ``digitize.preservation.fixity`` library does the work, imported inside the
tasks. ``plan`` picks the document versions (all, a random sample, or a code
range from the form) and cuts them into chunks; ``audit_chunk`` is mapped over
the chunks (never more than 1,024); ``publish`` merges the chunk reports,
stores the JSON under ``reports/fixity/`` in the archive (a new object every
run), prints the summary, and fails the run when a check failed (so IT staff
get the failure alert) unless the form says otherwise. An archive or catalog
that is briefly unavailable makes a chunk retry; it is never a failed check.
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


def _trust_roots(ctx: Any) -> list[Any]:
    from digitize.errors import ConfigurationError

    if not ctx.settings.trust_roots:
        raise ConfigurationError("no trust roots: set DIGITIZE_TRUST_ROOTS to the root CA certificate file(s)")
    return list(ctx.settings.trust_roots)


@dag(
    dag_id="fixity_audit",
    description="Re-hash every archived object, compare with catalog and sidecar, re-validate signatures",
    schedule="0 2 * * 0",  # Sundays 02:00, Vietnam time
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        "sample": Param(0, type="integer", minimum=0, description="Audit this many random versions (0: all)."),
        "code_from": Param(None, type=["null", "string"],
                           description="First document code to audit (empty: from the start)."),
        "code_to": Param(None, type=["null", "string"], description="Last document code to audit (empty: to the end)."),
        "rng_seed": Param(None, type=["null", "integer"], description="Seed of the sample, to repeat a draw."),
        "chunk_size": Param(200, type="integer", minimum=1, maximum=100_000,
                            description="Versions per mapped task (raised automatically to stay under 1,024 tasks)."),
        "fail_on_failures": Param(True, type="boolean",
                                  description="Fail the run (and alert) when any check failed."),
    },
    tags=["digitize", "fixity"],
    doc_md=__doc__,
)
def fixity_audit() -> None:
    @task
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Choose the versions to audit and cut them into at most 1,024 chunks."""
        import math

        from digitize.preservation import select_documents

        assert params is not None
        ctx = _context()
        ctx.catalog.upgrade()
        ids = select_documents(ctx.catalog, sample=params["sample"] or None, code_from=params["code_from"] or None,
                               code_to=params["code_to"] or None, rng_seed=params["rng_seed"])
        size = max(params["chunk_size"], math.ceil(len(ids) / MAX_MAP_LENGTH))
        chunks = [{"label": f"versions {i + 1}-{min(i + size, len(ids))}", "ids": ids[i: i + size]}
                  for i in range(0, len(ids), size)]
        print(f"{len(ids)} archived version(s) to audit in {len(chunks)} chunk(s)")
        return chunks

    @task(map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=6))
    def audit_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
        """Audit one chunk; a transient archive or catalog error retries the task."""
        from airflow.sdk import get_current_context
        from digitize_airflow import on_fresh_stack

        from digitize.preservation import audit_documents

        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx = _context()
        report = on_fresh_stack(audit_documents, ctx.catalog, ctx.archive, chunk["ids"],
                                trust_roots=_trust_roots(ctx))
        print(f"{chunk['label']}: {len(report.checks)} check(s), {len(report.failures)} failed")
        return report.as_dict()

    @task(trigger_rule="none_failed")
    def publish(reports: list[dict[str, Any]] | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge, store the JSON report in the archive, print the summary; fail on failed checks if asked."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from digitize.preservation import FixityReport, merge_reports, publish_report, render_report

        assert params is not None
        selection = {k: params[k] for k in ("sample", "code_from", "code_to", "rng_seed") if params[k]}
        report = merge_reports([FixityReport.from_dict(r) for r in (reports or [])], selection=selection)
        ctx = _context()
        run = get_current_context()["dag_run"]
        run_date = pendulum.instance(run.run_after or pendulum.now("UTC")).in_timezone(TZ).date()
        key = publish_report(ctx.archive, report, run_date=run_date)
        print(render_report(report))
        print(f"report: {ctx.archive.location(key)}")
        if params["fail_on_failures"] and not report.ok:
            raise AirflowFailException(f"{len(report.failed_documents)} archived version(s) failed the fixity audit; "
                               f"see {key}")
        return {"key": key, "documents": report.documents, "checks": len(report.checks),
                "failed": [f"{c} v{v}" for c, v in report.failed_documents]}

    publish(audit_chunk.expand(chunk=plan()))


fixity_audit()
