"""retention: daily list (dry run) or deletion of raw and staging objects older than the retention period.

Thin wiring only: the logic is ``pipeline_hub.governance.retention.run_retention``. In production the S3
lifecycle rule (infra/s3/raw-lifecycle.json) expires the same objects; this DAG reports what is due
and deletes only when triggered with ``delete=true``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC = """
### retention
Lists the objects under the raw zone (`PIPELINE_HUB_RAW_URI`) and staging (`PIPELINE_HUB_STAGING_URI`)
last modified more than `retention_days` (default `PIPELINE_HUB_RAW_RETENTION_DAYS`, else 90) before
the run, and writes the list to `_audit/retention/` under the sanitized root. Nothing is deleted unless
the run is triggered with `delete = true`.
"""


@dag(
    dag_id="retention",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["retention", "gdpr", "raw-zone"],
    doc_md=DOC,
    params={
        "retention_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Days to keep raw objects (empty: PIPELINE_HUB_RAW_RETENTION_DAYS, else 90).",
        ),
        "delete": Param(False, type="boolean", description="Delete the expired objects (default: list only)."),
    },
)
def retention():
    @task
    def expire_raw() -> dict:
        """Summary for XCom: report URI and counts only (never object content)."""
        from pipeline_hub.governance.retention import run_retention

        ctx = get_current_context()
        return run_retention(
            days=ctx["params"].get("retention_days"),
            as_of=ctx["dag_run"].run_after,
            delete=bool(ctx["params"].get("delete")),
        )

    expire_raw()


retention()
