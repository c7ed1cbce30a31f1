"""What every DAG of this project needs from Airflow itself, in one place.

Airflow puts ``[core] plugins_folder`` on ``sys.path`` in all its processes, so
the DAGs import this module *inside their tasks* (never at top level: parsing
stays cheap). It holds no AirflowPlugin: the library stays free of Airflow and
this is the only bridge between the two.
"""

from __future__ import annotations

from typing import Any

S3_CONN_ID = "digitize_s3"


def s3_client() -> Any | None:
    """boto3 S3 client from the ``digitize_s3`` connection, or ``None`` when it is not defined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    try:
        return S3Hook(aws_conn_id=S3_CONN_ID).get_conn()
    except AirflowNotFoundException:
        return None


def pipeline_context(client: Any | None = None) -> Any:
    """Library context whose archive uses the Airflow connection when it exists, else the environment.

    ``client``: the connection's S3 client when the caller already built one (building one costs
    about 0.2 s of CPU, a noticeable share of a short task).
    """
    from digitize.archive import ArchiveOptions, S3Archive
    from digitize.config import load_settings
    from digitize.pipeline import PipelineContext

    settings = load_settings()
    client = client or s3_client()
    if client is None:
        return PipelineContext(settings)
    return PipelineContext(settings, archive=S3Archive(client, settings.s3_bucket, ArchiveOptions.from_env()))
