"""Run the ``prompt_pipeline`` stages in-process, without Airflow (``pipeline-hub run``, scripts, tests).

The stages are the same functions the DAG's tasks call (:mod:`pipeline_hub.tasks`), executed in the
DAG's order; the mapped prompt stage runs its (topic, chunk) items one after another.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import tasks
from pipeline_hub.config import Settings

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Outcome of :func:`run_pipeline`: per-topic publish summaries, skipped topics, failures, seconds."""

    run_id: str
    ds: str
    published: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0


def run_pipeline(
    *,
    raw_root: str,
    output_root: str,
    ds: str,
    topics: list[str] | None = None,
    source: str | None = None,
    row_limit: int | None = None,
    llm_conn_id: str = "llm_default",
    staging_root: str | None = None,
    chunk_size: int | None = None,
    run_id: str | None = None,
    budget_usd: float | None = None,
) -> RunResult:
    """Discover → hash → chunk → prompt → scrub → validate → publish for one ``ds``.

    ``raw_root`` holds ``<source>/<ds>/<files>``; ``output_root`` receives ``sanitized_data/`` and
    ``quarantine/``. Staging defaults to a temporary local directory removed afterwards. A topic that
    fails its quality gate is quarantined and reported in ``failed``; other topics still publish.
    ``budget_usd`` caps the run's LLM spend: records beyond it are quarantined as ``budget_exceeded``.
    Topics in batch mode are called streaming here: provider batch jobs need the DAG's deferrable operator.
    """
    started = time.monotonic()
    run_id = run_id or f"manual__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="pipeline-hub-staging-") as tmp:
        settings = Settings.from_env(
            raw_root=raw_root,
            sanitized_root=output_root,
            staging_root=staging_root or tmp,
            llm_conn_id=llm_conn_id,
            chunk_size=chunk_size,
        )
        result = RunResult(run_id=run_id, ds=ds)
        found = tasks.run_discover(settings, ds, topics, source)
        planned = tasks.run_hash(
            settings, found, run_id=run_id, row_limit=row_limit, llm_conn_id=llm_conn_id, budget_usd=budget_usd
        )
        result.skipped = planned["skipped"]
        if planned["pending"]:
            for item in tasks.run_chunk(planned["plan_uri"]):
                if item["mode"] == "batch" and item["chunk_index"] == 0:
                    log.info("topic %s is in batch mode: in-process runs call it streaming", item["topic"])
                tasks.run_prompt(item)
            for topic in planned["pending"]:
                tasks.run_scrub(planned["plan_uri"], topic)
                tasks.run_validate(planned["plan_uri"], topic)
                try:
                    result.published.append(tasks.run_publish(planned["plan_uri"], topic))
                except tasks.QualityGateFailed as exc:
                    result.failed[topic] = str(exc)
    result.duration_s = round(time.monotonic() - started, 2)
    return result
