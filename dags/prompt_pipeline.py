"""prompt_pipeline: nightly raw S3 batch → versioned prompts → Presidio scrub → GX → sanitized Parquet.

Thin wiring only: every task body lives in ``pipeline_hub.stages`` (under ``plugins/``), shared with the
``pipeline-hub run`` CLI and the tests. Only URIs, names and counts go through XCom.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.openlineage import conf as openlineage_conf
from airflow.sdk import AssetAlias, Param, dag, get_current_context, task, teardown

from pipeline_hub.orchestration import alerts
from pipeline_hub.orchestration.batch_operator import ChunkBatchOperator
from pipeline_hub.orchestration.lineage import PUBLISHED_ALIAS
from pipeline_hub.orchestration.operators import PublishOperator
from pipeline_hub.orchestration.policies import llm_pool
from pipeline_hub.prompts.registry import list_topics

TOPICS = list_topics()
# Prompt tasks run in the LLM pool; the cluster policy in pipeline_hub.orchestration.policies moves them to the pool
# named like the run's `llm_conn_id` when one exists. Pool slots × the connection's max_concurrency (and
# requests_per_minute × slots) must stay under the provider account's limits. See README "Throughput".
LLM_POOL = llm_pool()
SOURCES = ["companies", "ai_use_cases", "emails", "applicants"]

DOC = """
### prompt_pipeline
Reads `raw_data/<source>/<ds>/` from the raw bucket, hashes every object, and for each topic whose
batch, prompt version and model are not yet published: chunks the records, prompts the LLM
(mapped over topic × chunk), scrubs PII with Presidio, validates with Great Expectations and publishes
Parquet to `sanitized_data/<topic>/ds=<ds>/` with a `_manifest.json`. Quarantined records go to
`quarantine/<topic>/ds=<ds>/`. Re-running an unchanged batch publishes nothing and calls no LLM.

Every object under the prefix is listed in the batch and publication manifests as read, skipped
(hidden, `_` marker, unsupported format, sub-folder, empty) or rejected (unreadable). When no
requested topic has any object to read (`no_input`) the `hash` task fails, naming the prefixes;
sources without input next to others are listed in the `hash` task's XCom `run_summary`.

A topic failing a blocking expectation (suites in `include/quality/`, Data Docs under
`reports/quality/<topic>/ds=<ds>/`) is quarantined whole, the others publish, and the run fails.
After publishing, the `drift` task (a teardown: it never decides the run's state) compares each topic's
label distribution, confidence, invalid-output rate and input length with the trailing baseline
(`metrics/drift/`); it records, and alerts on a drift over its threshold.
A failed run, `no_input`, a quarantined topic, a quarantine rate over the threshold and a reached budget
send an alert when `PIPELINE_HUB_ALERT_CONN_ID` is set (README "Alerts").
Each published topic emits an asset event on its Asset (the URI of `sanitized_data/<topic>`, through the
alias `pipeline_hub_published`) and OpenLineage events name the raw objects read and datasets written.
"""


def _settings():
    from pipeline_hub.config import Settings

    return Settings.from_env()


@dag(
    dag_id="prompt_pipeline",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["prompt-pipeline", "llm", "pii"],
    doc_md=DOC,
    # Alerts (README "Alerts"): a failed run; no_input, a quarantined topic, the quarantine rate and the
    # budget through the task callbacks below. Sent only when PIPELINE_HUB_ALERT_CONN_ID (or _APPRISE_) is set.
    on_failure_callback=alerts.run_failed,
    params={
        "source": Param(
            None,
            type=["null", "string"],
            enum=[None, *SOURCES],
            description="Only run topics reading this raw source (empty: all).",
        ),
        "topics": Param(TOPICS, type="array", items={"type": "string", "enum": TOPICS}, description="Topics to run."),
        "row_limit": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Read at most this many records per source (empty: all).",
        ),
        "llm_conn_id": Param("llm_default", type="string", description="Airflow connection of the LLM provider."),
        "budget_usd": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="Cap on this run's LLM spend in USD (empty: none); records beyond it are quarantined.",
        ),
        "prompt_labels": Param(
            {},
            type="object",
            additionalProperties={"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,39}$"},
            description=(
                'Prompt label per topic, e.g. {"industry_classification": "canary"} (empty: prod). A named '
                "label of the topic's metadata.yaml (moved by `pipeline-hub promote --label`, through the gate)."
            ),
        ),
        "ds": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="Partition date to process (empty: the run's logical date).",
        ),
    },
)
def prompt_pipeline():
    @task
    def discover() -> dict:
        from pipeline_hub.stages.discover import run_discover

        ctx = get_current_context()
        params = ctx["params"]
        ds = params.get("ds") or ctx.get("ds") or ctx["dag_run"].run_after.date().isoformat()
        return run_discover(_settings(), ds, params.get("topics"), params.get("source"))

    @task.short_circuit(on_failure_callback=alerts.hash_failed, on_success_callback=alerts.hash_succeeded)
    def hash(discovered: dict) -> list[dict]:
        """One ``{"plan_uri", "topic"}`` per pending topic; [] (falsy) skips everything downstream.

        Fails (no retry) when no requested topic has input (``no_input``) or on a ``ConfigError`` (e.g. an
        unknown topic or label in ``prompt_labels``); sources without input next
        to others with input are recorded in the XCom ``run_summary`` and the plan, the others run.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from pipeline_hub.exceptions import ConfigError
        from pipeline_hub.reasons import NO_INPUT
        from pipeline_hub.stages.hash import no_input_message, run_hash

        ctx = get_current_context()
        try:
            planned = run_hash(
                _settings(),
                discovered,
                run_id=ctx["run_id"],
                row_limit=ctx["params"].get("row_limit"),
                llm_conn_id=ctx["params"]["llm_conn_id"],
                budget_usd=ctx["params"].get("budget_usd"),
                prompt_labels=ctx["params"].get("prompt_labels"),
            )
        except ConfigError as exc:  # a bad param or setting: retrying cannot fix it
            raise AirflowFailException(str(exc)) from None
        summary = {k: planned[k] for k in ("plan_uri", "pending", "skipped", "no_input", "outcome")}
        ctx["ti"].xcom_push(key="run_summary", value=summary)
        if planned["outcome"] == NO_INPUT:
            raise AirflowFailException(no_input_message(planned))
        return [{"plan_uri": planned["plan_uri"], "topic": t} for t in planned["pending"]]

    @task
    def chunk(pending: list[dict]) -> list[dict]:
        from pipeline_hub.stages.chunk import run_chunk

        return run_chunk(pending[0]["plan_uri"])

    @task
    def select(items: list[dict], mode: str) -> list[dict]:
        """The work items of topics in provider ``mode`` (``stream`` or ``batch``)."""
        return [i for i in items if i["mode"] == mode]

    @task(retries=3, retry_exponential_backoff=True, pool=LLM_POOL)
    def prompt(item: dict) -> dict:
        from pipeline_hub.stages.prompt import run_prompt

        return run_prompt(item)

    @task(trigger_rule="none_failed")
    def scrub(plan_uri: str, topic: str) -> dict:
        from pipeline_hub.stages.scrub import run_scrub

        return run_scrub(plan_uri, topic)

    @task(trigger_rule="none_failed")
    def validate(plan_uri: str, topic: str) -> dict:
        from pipeline_hub.stages.validate import run_validate

        return run_validate(plan_uri, topic)

    # A teardown: it runs once publish is done (also after a failed publish or a short-circuit) and, as
    # Airflow ignores teardowns for the run's state, a run with a failed publish still ends failed.
    @teardown
    def drift(pending: list[dict] | None) -> list[dict]:
        """Drift of the run's topics against their trailing baseline, stored under ``metrics/drift/``.

        Records only: never raises (a topic that published nothing is noted in the XCom); ``pending`` is
        None or empty when ``hash`` failed or found nothing to do.
        """
        from airflow.sdk import get_current_context

        from pipeline_hub.analytics.drift import record_drift
        from pipeline_hub.orchestration.alerts import alert_drifted

        results = record_drift(pending[0]["plan_uri"], [p["topic"] for p in pending]) if pending else []
        alert_drifted(get_current_context(), results)  # a drift over its threshold mails (README "Alerts")
        return results

    pending = hash(discover())
    chunks = chunk(pending)
    answers = prompt.expand(item=select.override(task_id="stream_items")(chunks, "stream"))
    # Batch-mode topics: the provider's Batch API via the common-ai LLMBatchOperator (deferrable).
    batch_answers = ChunkBatchOperator.partial(
        task_id="prompt_batch", retries=3, poll_interval=60, pool=LLM_POOL
    ).expand(item=select.override(task_id="batch_items")(chunks, "batch"))
    scrubbed = scrub.expand_kwargs(pending)
    validated = validate.expand_kwargs(pending)
    # Outlet: the asset alias every published topic's Asset is added to (one Asset per topic, see
    # pipeline_hub.orchestration.lineage); OpenLineage lineage comes from the operator's
    # get_openlineage_facets_* methods.
    published = PublishOperator.partial(
        task_id="publish",
        trigger_rule="none_failed",
        outlets=[AssetAlias(PUBLISHED_ALIAS)],
        on_success_callback=alerts.publish_succeeded,
        on_failure_callback=alerts.publish_failed,
    ).expand_kwargs(pending)
    [answers, batch_answers] >> scrubbed >> validated >> published >> drift(pending)


dag = prompt_pipeline()
# Lineage is declared by the publish operator (raw objects in, published datasets out). Hook-level
# collection would add every staging object read or written, under connection-qualified URIs: off.
# (Only when OpenLineage is configured: the provider's authoring API takes ~1.5 s to import.)
if not openlineage_conf.is_disabled():
    from airflow.providers.openlineage.api.emission_policy import extend_global_openlineage_emission_policy

    extend_global_openlineage_emission_policy(dag, hook_lineage=False)
