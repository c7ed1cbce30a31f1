"""coverage_report: coverage against the plan, published to the archive under reports/.

Runs whenever digitize_inbox updates the catalog (the catalog Asset) and on the
first day of each quarter (the plan asks for quarterly reports). Every run
writes a new report folder, so the history stays in the archive.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

CATALOG_ASSET = Asset("digitize-catalog", uri="file:///digitize/catalog")
TZ = "Asia/Ho_Chi_Minh"


@dag(
    dag_id="coverage_report",
    description="Coverage per level and agency against the plan, as HTML, XLSX and CSV in the archive",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 1 1,4,7,10 *", timezone=TZ),
                                 assets=[CATALOG_ASSET]),
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        "as_of": Param(None, type=["null", "string"],
                       description="Report date YYYY-MM-DD or dd/mm/yyyy (empty: today, Vietnam time)."),
        "plan": Param(None, type=["null", "string"], description="Plan file (empty: DIGITIZE_PLAN)."),
    },
    tags=["digitize", "coverage"],
    doc_md=__doc__,
)
def coverage_report() -> None:
    @task
    def publish(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Compute and store the report; the table is printed for the task log."""
        from pathlib import Path

        from digitize_airflow import pipeline_context  # plugins/: shared by the DAGs

        from digitize import clock, coverage
        from digitize.presentation.reports import publish_coverage

        assert params is not None
        ctx = pipeline_context()
        settings, archive, catalog = ctx.settings, ctx.archive, ctx.catalog
        archive.ensure_bucket()
        catalog.upgrade()
        plan = coverage.load_plan(Path(params["plan"]) if params["plan"] else settings.plan_path)
        as_of = clock.parse_business_date(params["as_of"]) if params["as_of"] else clock.business_today()
        published = publish_coverage(catalog, archive, plan, as_of)
        print(coverage.render_table(published.report))
        for fmt, key in published.keys.items():
            print(f"{fmt}: {archive.location(key)}")
        return {"as_of": as_of.isoformat(), "plan": plan.id, "keys": published.keys}

    publish()


coverage_report()
