"""prompt_evaluation: validate the prompt registry, score dev and prod, canary dev in shadow, report.

Thin wiring only: the task bodies are ``pipeline_hub.lifecycle.evaluation`` and ``.canary`` (under
``plugins/``). Only names, versions, metrics and URIs go through XCom; shadow answers are never published.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.sdk import AssetAlias, Param, dag, get_current_context, task

from pipeline_hub.orchestration.lineage import PUBLISHED_ALIAS
from pipeline_hub.orchestration.policies import llm_pool
from pipeline_hub.prompts.registry import list_topics

TOPICS = list_topics()
log = logging.getLogger(__name__)
LLM_POOL = llm_pool()  # score and canary call the LLM: same pool (and cluster policy) as the prompt tasks

DOC = """
### prompt_evaluation
Runs on demand, and after `prompt_pipeline` publishes (its asset events through the alias
`pipeline_hub_published`, one per published topic) when the prompt registry changed since the last
evaluation (any change to `include/prompts/`: metadata, templates, shared partials, schemas, examples).

1. `validate`: `pipeline-hub validate`; any problem fails the run.
2. `changed`: goes on for manual runs, `force = true`, or a changed registry; else skips the rest
   (the log names the publications that triggered the run).
3. `score`: every topic's `dev` and `prod` versions over their labelled examples (`limit` per topic),
   cached like production; reports under `reports/<topic>/<version>/` of the artifacts root.
4. `canary`: the `dev` version in shadow on `canary_pct` % of the latest published batch (seeded); the
   agreement rate with the published answers and the cost difference. Never published.
5. `report`: `evaluations/` Parquet (scores, canary) and a Markdown + HTML report.
"""


def _params(ctx) -> dict:
    p = ctx["params"]
    return {
        "topics": p.get("topics") or TOPICS,
        "conn_id": p.get("llm_conn_id") or "llm_default",
        "limit": p.get("limit"),
        "sample_pct": float(p.get("canary_pct") if p.get("canary_pct") is not None else 10),
        "seed": int(p.get("canary_seed") or 0),
    }


@dag(
    dag_id="prompt_evaluation",
    # Asset-triggered: every topic publication of prompt_pipeline (the alias its publish task adds each
    # published topic's Asset to; see pipeline_hub.orchestration.lineage), instead of polling.
    schedule=[AssetAlias(PUBLISHED_ALIAS)],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["prompts", "evaluation", "llm"],
    doc_md=DOC,
    params={
        "topics": Param(TOPICS, type="array", items={"type": "string", "enum": TOPICS}, description="Topics."),
        "llm_conn_id": Param("llm_default", type="string", description="Airflow connection of the model."),
        "limit": Param(
            None, type=["null", "integer"], minimum=1, description="Examples per topic (empty: all; partial scores)."
        ),
        "canary_pct": Param(10, type="number", minimum=0.1, maximum=100, description="Canary sample, % of records."),
        "canary_seed": Param(0, type="integer", description="Seed of the canary sample."),
        "force": Param(False, type="boolean", description="Evaluate even when the registry is unchanged."),
    },
)
def prompt_evaluation():
    @task
    def validate() -> dict:
        from pipeline_hub.lifecycle.evaluation import run_validate

        return run_validate()

    @task.short_circuit
    def changed(validated: dict):
        from pipeline_hub.lifecycle.evaluation import should_evaluate

        ctx = get_current_context()
        run_type = getattr(ctx["dag_run"], "run_type", "")
        run_type = str(getattr(run_type, "value", run_type) or "").lower()
        # Scheduled, asset-triggered and backfill runs evaluate only a changed registry; manual ones always.
        manual = run_type == "manual"
        decision = should_evaluate(manual=manual, force=bool(ctx["params"].get("force")))
        published = sorted(
            f"{e.extra.get('topic')} ds={e.extra.get('ds')}"
            for events in (ctx.get("triggering_asset_events") or {}).values()
            for e in events
            if isinstance(getattr(e, "extra", None), dict)
        )
        if published:
            log.info("triggered by publications: %s", ", ".join(published))
        log.info("evaluation: %s", decision["reason"])
        return decision if decision["go"] else False

    @task
    def score_items(decision: dict) -> list[dict]:
        from pipeline_hub.lifecycle.evaluation import score_items as items

        return items(_params(get_current_context())["topics"])

    @task(pool=LLM_POOL)
    def score(item: dict) -> dict:
        from pipeline_hub.lifecycle.evaluation import run_score

        p = _params(get_current_context())
        return run_score(item, conn_id=p["conn_id"], limit=p["limit"])

    @task
    def canary_topics(decision: dict) -> list[str]:
        return _params(get_current_context())["topics"]

    @task(pool=LLM_POOL)
    def canary(topic: str) -> dict:
        from pipeline_hub.lifecycle.canary import run_canary

        p = _params(get_current_context())
        return run_canary(topic, conn_id=p["conn_id"], sample_pct=p["sample_pct"], seed=p["seed"])

    @task
    def report(scores: list[dict], canaries: list[dict], decision: dict) -> dict:
        from pipeline_hub.lifecycle.evaluation import write_evaluation

        ctx = get_current_context()
        p = _params(ctx)
        return write_evaluation(
            ctx["run_id"],
            list(scores),
            list(canaries),
            conn_id=p["conn_id"],
            limit=p["limit"],
            sample_pct=p["sample_pct"],
            seed=p["seed"],
            fingerprint=decision["fingerprint"],
            reason=decision["reason"],
        )

    decision = changed(validate())
    scores = score.expand(item=score_items(decision))
    canaries = canary.expand(topic=canary_topics(decision))
    scores >> canaries  # score first: the canary's cache hits and the LLM pool are shared
    report(scores, canaries, decision)


prompt_evaluation()
