"""The validate stage: the topic's Great Expectations suite over all its records, before publish.

Write-audit-publish: :func:`run_validate` audits the scrubbed rows in staging; :mod:`pipeline_hub.stages.publish`
publishes only a topic whose blocking expectations passed (see :mod:`pipeline_hub.quality`).
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline_hub import storage
from pipeline_hub.exceptions import QualityGateFailed  # noqa: F401 - raised by publish, caught by callers
from pipeline_hub.quality.checks import failed_expectations
from pipeline_hub.quality.gate import VALIDATE_BATCH_RECORDS, validate_topic
from pipeline_hub.stages.parquet import partition
from pipeline_hub.stages.plan import RunPlan, plan_topic

log = logging.getLogger(__name__)


def run_validate(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``validate`` (per topic): the topic's GX suite over all its records; summary to staging.

    Streams the staged rows into GX batches of the setting ``validate_batch_records``
    (:func:`~pipeline_hub.quality.gate.validate_topic`).

    Validates the scrubbed answered rows together with the records quarantined so far (see
    :mod:`pipeline_hub.quality`), builds Data Docs into ``<sanitized root>/reports/quality/<topic>/ds=<ds>/``
    and writes the summary to ``<staging>/scrubbed/<topic>/_quality.json`` for publish. Returns
    ``{"topic", "success", "failed": [failed blocking expectations], "data_docs"}`` (no record values).
    """
    plan = RunPlan.load(plan_uri)
    tp, topic = plan_topic(plan, topic_name)
    out = storage.join(plan.staging, "scrubbed", topic.name)
    source_counts = storage.read_json(storage.join(plan.staging, "chunks", tp.source, "_counts.json"))
    records_in = source_counts["staged"] + sum(source_counts["rejected"].values())
    result = validate_topic(
        topic,
        storage.iter_jsonl(out / "rows.jsonl"),  # streamed into the frame's columns (quality.gate.ValidationFrame)
        storage.iter_jsonl(out / "quarantine.jsonl"),
        records_in=records_in,
        run_name=plan.run_id,
        docs_target=partition(plan.settings["sanitized_root"], "reports/quality", topic.name, plan.ds),
        batch_records=int(plan.settings.get("validate_batch_records") or VALIDATE_BATCH_RECORDS),
    )
    storage.write_json(out / "_quality.json", result, atomic=False)
    failed = failed_expectations(result)
    log.info(
        "validate %s: success=%s over %d records; failed: %s; data docs: %s",
        topic.name,
        result["success"],
        result["evaluated"],
        failed or "none",
        result["data_docs"],
    )
    return {"topic": topic.name, "success": result["success"], "failed": failed, "data_docs": result["data_docs"]}
