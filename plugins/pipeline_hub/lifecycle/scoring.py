"""``pipeline-hub score``: run one prompt version over its topic's labelled examples and measure it.

The examples (``include/prompts/<topic>/examples/*.jsonl``, lines ``{"id", "input", "expected"}``)
become staged records exactly like a raw batch's (``record_id`` = the example id, ``fields`` = its
``input``) and go through the production prompt stage, :func:`pipeline_hub.stages.prompt.prompt_records`:
same rendering, context (matching candidates from the reference table), routes, structured output,
validation and one repair, and the same response cache (:func:`pipeline_hub.providers.cache.open_cache`).
Re-scoring an unchanged version on the same model is therefore answered from the cache: free.

A score (``score.json``) holds the task metrics (:mod:`pipeline_hub.lifecycle.metrics`), the invalid-answer rate,
tokens, cost and latency, and what it was computed on: topic, version, template SHA-256, examples
SHA-256, model and connection. It is written with a Markdown report and a PNG plot under the
artifacts root (``PIPELINE_HUB_ARTIFACTS_URI``, default ``<repo>/.local``)::

    <artifacts>/reports/<topic>/<version>/score.json | score.md | score.png

A run limited to the first N examples (``--limit``) writes ``score_limitN.*`` instead, so it never
replaces the full score the promotion gate reads.

A version with a calibrated cascade (``versions.<v>.cascade.thresholds``, :mod:`pipeline_hub.stages.cascade`)
is scored twice in one run, on the same examples and model: oracle-only (every record to the model, the
cascade switched off) first, then the cascade as production runs it (its metrics are the score's, the gate's).
The cascade's oracle records are the same requests as oracle-only's, so they come from the response cache;
the cost of both sides is at list price, whether paid now or served from the cache. ``cascade`` in the score
holds the two side by side: metrics, records per route, the share sent to the oracle, tokens and cost
(LOTUS, Patel et al., VLDB 2025, report a cascade's quality next to the oracle-only plan the same way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub import storage
from pipeline_hub.config import get_settings, include_dir, local_dir
from pipeline_hub.exceptions import PromptError
from pipeline_hub.lifecycle import metrics
from pipeline_hub.prompts.registry import Topic, load_topic

log = logging.getLogger(__name__)


class ScoreError(PromptError, ValueError):
    """Scoring cannot run: no examples, an example that is not JSON, an unknown task (names the file)."""


def artifacts_root(override: str | None = None) -> str:
    """Where scores, reports and evaluations go: ``override``, ``PIPELINE_HUB_ARTIFACTS_URI`` or the
    ``.local/`` next to the include dir (:func:`pipeline_hub.config.local_dir`)."""
    return override or get_settings().artifacts_uri or str(local_dir())


def topic_metadata(topic: Topic) -> dict[str, Any]:
    """The topic's ``metadata.yaml`` as loaded YAML (for its ``evaluation`` and ``gate`` sections)."""
    return yaml.safe_load(topic.metadata_path.read_text()) or {}


def load_examples(topic_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Labelled examples of a topic folder, in file and line order, and the SHA-256 of their files.

    Each example is ``{"id", "input", "expected", "file", "line"}``. The hash covers every
    ``examples/*.jsonl`` (name and bytes), so any change to the examples makes older scores stale.
    Raises :class:`ScoreError` naming the file and line of an unreadable example.
    """
    files = sorted((topic_dir / "examples").glob("*.jsonl"))
    if not files:
        raise ScoreError(f"{topic_dir / 'examples'}: no labelled examples (*.jsonl)")
    digest = hashlib.sha256()
    examples = []
    for path in files:
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + data + b"\0")
        examples += parse_examples(path, data)
    return examples, digest.hexdigest()


def parse_examples(path: Path, data: bytes) -> list[dict[str, Any]]:
    """The examples of one JSONL file's bytes ``data``: ``[{"id", "input", "expected", "file", "line"}]``.

    Raises :class:`ScoreError` naming ``path`` and the line of the first unreadable one (bad JSON, bad
    UTF-8, a missing key, a non-object input).
    """
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError as exc:
        raise ScoreError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    examples = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
            examples.append(
                {"id": str(ex["id"]), "input": dict(ex["input"]), "expected": ex["expected"], "file": path.name}
                | {"line": lineno}
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ScoreError(f"{path}:{lineno}: not an example {{id, input, expected}} ({exc})") from None
    return examples


def examples_sha256(topic_name: str, prompts_dir: Path | None = None) -> str:
    """SHA-256 of a topic's current examples (what a score must have been computed on to count)."""
    root = prompts_dir or include_dir() / "prompts"
    return load_examples(Path(root) / topic_name)[1]


def score_paths(root: str, topic: str, version: str, limit: int | None = None) -> dict[str, Any]:
    """``{"json", "md", "png"}`` paths of a score (``score_limitN.*`` for a limited run)."""
    stem = "score" if limit is None else f"score_limit{limit}"
    base = storage.join(root, "reports", topic, version)
    return {kind: base / f"{stem}.{kind}" for kind in ("json", "md", "png")}


def read_score(topic: str, version: str, root: str | None = None) -> dict[str, Any] | None:
    """The latest full score of ``topic`` ``version`` under the artifacts root, or None."""
    path = score_paths(artifacts_root(root), topic, version)["json"]
    return storage.read_json(path) if path.exists() else None


def _quantiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    import numpy as np

    p50, p95 = np.percentile(values, [50, 95]).round(4).tolist()
    return p50, p95


def compute_metrics(evaluation: dict[str, Any], schema: dict[str, Any], examples: list[dict], results: list[dict]):
    """Task metrics of ``results`` (prompt-stage results, example order) against the examples' gold."""
    task = evaluation.get("task")
    answers = [r.get("answer") if r["status"] == "ok" else None for r in results]
    if task == "classification":
        field = evaluation["label_field"]
        labels = ((schema.get("properties") or {}).get(field) or {}).get("enum")
        gold = [str(ex["expected"][field]) for ex in examples]
        pred = [None if a is None else str(a.get(field)) for a in answers]
        m = metrics.classification_metrics(gold, pred, labels)
        m["errors"] = [
            {"id": ex["id"], "expected": g, "predicted": p}
            for ex, g, p in zip(examples, gold, pred, strict=True)
            if g != p
        ]
        return m
    if task == "matching":
        field = evaluation["match_field"]
        gold = [ex["expected"].get(field) for ex in examples]
        pred = [None if a is None else a.get(field) for a in answers]
        m = metrics.matching_metrics(gold, pred, [a is None for a in answers])
        m["errors"] = [
            {"id": ex["id"], "expected": g, "predicted": p if a is not None else metrics.INVALID}
            for ex, g, p, a in zip(examples, gold, pred, answers, strict=True)
            if a is None or (None if g is None else str(g)) != (None if p is None else str(p))
        ]
        return m
    if task == "extraction":
        items = evaluation["items"]
        m = metrics.extraction_metrics(
            [ex["expected"].get(items) or [] for ex in examples],
            [None if a is None else a.get(items) or [] for a in answers],
            dict(evaluation["fields"]),
            fuzzy_threshold=float(evaluation.get("fuzzy_threshold", 80)),
            region=str(evaluation.get("phone_region", "US")),
        )
        per_example = m.pop("per_example")
        m["errors"] = [
            {"id": ex["id"], **counts}
            for ex, counts in zip(examples, per_example, strict=True)
            if counts["fp"] or counts["fn"]
        ]
        return m
    raise ScoreError(f"evaluation.task must be classification, extraction or matching, not {task!r}")


def _list_price(usage: dict[str, Any], cost_usd) -> float | None:
    """A record's answer at list price (USD): a model proxy's call (``usage["proxy"]``) at the proxy model's
    price, the rest of the tokens at ``usage["model"]``'s; no tokens (a rapidfuzz proxy answer) cost 0; None
    when a model that was used has no price."""
    proxy = usage.get("proxy") or {}
    parts = [(proxy.get("model"), proxy.get("prompt_tokens", 0), proxy.get("completion_tokens", 0))]
    if usage.get("cascade") != "proxy" or not proxy:  # the record's own answer came from usage["model"]
        prompt = usage["prompt_tokens"] - parts[0][1]
        parts.append((usage.get("model"), prompt, usage["completion_tokens"] - parts[0][2]))
    total = 0.0
    for model, prompt, completion in parts:
        if not (prompt or completion):
            continue
        price = cost_usd(model, prompt, completion) if model else 0.0
        if price is None:
            return None
        total += price
    return total


def _usage(results: list[dict], stats) -> dict[str, Any]:
    from pipeline_hub.providers.pricing import cost_usd

    usages = [r["usage"] for r in results if r.get("usage")]
    prompt_tokens = sum(u["prompt_tokens"] for u in usages)
    completion_tokens = sum(u["completion_tokens"] for u in usages)
    costs = [_list_price(u, cost_usd) for u in usages]
    p50, p95 = _quantiles([u.get("answer_latency_s", 0.0) for u in usages])
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        # What the answers cost at list price (pricing.yaml), whether paid now or served from the cache.
        "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
        "cost_per_example_usd": None if any(c is None for c in costs) or not results else sum(costs) / len(results),
        "spent_usd": round(sum(u["cost_usd"] for u in usages), 6),  # paid by this run (cache hits are free)
        "llm_calls": stats.calls,
        "cache_hits": stats.cache_hits,
        "latency_p50_s": p50,
        "latency_p95_s": p95,
    }


def has_cascade(topic: Topic) -> bool:
    """True when the topic's version has a calibrated cascade (``cascade.thresholds`` set)."""
    cascade = topic.prompt.cascade
    return cascade is not None and cascade.thresholds is not None


# The scalar metrics a cascade comparison shows, where the task has them.
_COMPARED = ("accuracy", "macro_f1", "precision", "recall", "f1")


def _side(task_metrics: dict[str, Any], results: list[dict], stats) -> dict[str, Any]:
    """One side of a cascade comparison: scalar metrics, records per route, tokens, cost, calls, and the
    records without a valid answer (``invalid``: quarantined; they count against recall)."""
    from pipeline_hub.stages.cascade import PROXY_ROUTE

    usage = _usage(results, stats)
    proxy = sum(1 for r in results if (r.get("usage") or {}).get("cascade") == PROXY_ROUTE)
    return {
        "metrics": {k: task_metrics[k] for k in _COMPARED if k in task_metrics},
        "records": len(results),
        "proxy_records": proxy,
        "oracle_records": len(results) - proxy,
        "oracle_share": metrics.ratio(len(results) - proxy, len(results)),
        "total_tokens": usage["total_tokens"],
        "cost_usd": usage["cost_usd"],
        "llm_calls": usage["llm_calls"],
        "cache_hits": usage["cache_hits"],
        "invalid": sum(1 for r in results if r["status"] != "ok"),
    }


def cascade_comparison(topic: Topic, oracle_only: dict[str, Any], cascade: dict[str, Any]) -> dict[str, Any]:
    """The score's ``cascade``: ``{"proxy", "oracle", "thresholds", "oracle_only", "cascade", "delta"}``.

    ``oracle_only``/``cascade`` are sides from :func:`_side` (``metrics`` are shares in [0, 1], ``cost_usd`` in
    USD at list price, None when a model has no price); ``delta`` is cascade minus oracle-only for each compared
    metric, ``oracle_share`` and ``cost_usd`` (None where either side is None).
    """
    spec = topic.prompt.cascade
    thresholds = spec.thresholds.as_metadata() if spec is not None and spec.thresholds is not None else None

    def minus(a, b):
        return None if a is None or b is None else round(a - b, 6)

    delta = {k: minus(cascade["metrics"].get(k), oracle_only["metrics"].get(k)) for k in cascade["metrics"]}
    delta["oracle_share"] = minus(cascade["oracle_share"], oracle_only["oracle_share"])
    delta["cost_usd"] = minus(cascade["cost_usd"], oracle_only["cost_usd"])
    return {
        "proxy": None if spec is None else spec.proxy.kind,
        "oracle": None if spec is None else spec.oracle,
        "thresholds": json.loads(json.dumps(thresholds, default=str)),
        "oracle_only": oracle_only,
        "cascade": cascade,
        "delta": delta,
    }


def score_version(
    topic_name: str,
    *,
    version: str | None = None,
    conn_id: str = "llm_default",
    limit: int | None = None,
    prompts_dir: Path | None = None,
    artifacts: str | None = None,
    cache=None,
    write: bool = True,
    feedback_root: str | None = None,
) -> dict[str, Any]:
    """Score ``version`` (default: the ``dev`` pointer) of ``topic_name`` over its labelled examples.

    ``conn_id`` is the Airflow connection of the model (the topic's ``provider`` routes apply on top,
    as in production); ``limit`` keeps the first N examples. Returns the score document (see the module
    docstring) and, when ``write``, writes ``score.json``, ``score.md`` and ``score.png``.
    ``feedback_root`` (a sanitized root) adds ``feedback``: analysts' feedback per prompt version
    (:func:`pipeline_hub.prompts.feedback.agreement`; reported, never part of the gate). Raises
    :class:`ScoreError` for unusable examples, :class:`~pipeline_hub.prompts.registry.RegistryError` for an
    unknown topic or version, and the provider's errors when the model cannot be reached.
    """
    from pipeline_hub.providers.cache import open_cache
    from pipeline_hub.providers.routing import get_hook, resolve_routes
    from pipeline_hub.stages.prompt import prompt_records

    topic = load_topic(topic_name, prompts_dir, pointer="dev", version=version)
    meta = topic_metadata(topic)
    evaluation = meta.get("evaluation") or {}
    examples, digest = load_examples(topic.metadata_path.parent)
    total = len(examples)
    if limit is not None:
        examples = examples[: max(0, int(limit))]
    records = [
        {
            "record_id": ex["id"],
            "source_uri": f"examples/{ex['file']}",
            "position": ex["line"],
            "fields": ex["input"],
        }
        for ex in examples
    ]
    primary = get_hook(conn_id)
    routes = resolve_routes(topic.provider, conn_id, primary.model)
    hook = get_hook(routes["primary"]["conn_id"], routes["primary"]["model"])
    started = datetime.now(UTC)
    cache = cache or open_cache()
    oracle_only = None
    if has_cascade(topic):
        plain = dataclasses.replace(topic, prompt=dataclasses.replace(topic.prompt, cascade=None))
        plain_results, plain_stats = prompt_records(hook, plain, records, cache=cache, routes=routes)
        oracle_only = _side(
            compute_metrics(evaluation, plain.prompt.output_schema, examples, plain_results), plain_results, plain_stats
        )
    results, stats = prompt_records(hook, topic, records, cache=cache, routes=routes)
    task_metrics = compute_metrics(evaluation, topic.prompt.output_schema, examples, results)
    invalid = sum(1 for r in results if r["status"] != "ok")
    gate = meta.get("gate") or {}
    score = {
        "topic": topic.name,
        "version": topic.version,
        "template_sha256": topic.prompt.template_sha256,
        "examples_sha256": digest,
        "examples_total": total,
        "examples_scored": len(examples),
        "limit": limit,
        "full": len(examples) == total,
        "task": evaluation.get("task"),
        "conn_id": conn_id,
        "provider": hook.provider,
        "model": routes["primary"]["model"],
        "routes": routes,
        "model_params": topic.prompt.model_params,
        "scored_at": started.isoformat(),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 3),
        "metrics": task_metrics,
        "invalid": {
            "count": invalid,
            "rate": metrics.ratio(invalid, len(results)),
            "by_reason": dict(stats.quarantined),
        },
        "usage": _usage(results, stats),
        "gate_metric": gate.get("metric"),
        "gate_value": task_metrics.get(gate.get("metric")) if gate.get("metric") else None,
    }
    if oracle_only is not None:
        score["cascade"] = cascade_comparison(topic, oracle_only, _side(task_metrics, results, stats))
    if feedback_root is not None:
        from pipeline_hub.prompts.feedback import agreement, read_feedback

        score["feedback"] = agreement(read_feedback(feedback_root, topic.name))
    if write:
        write_score(score, artifacts_root(artifacts))
    log.info(
        "score %s %s on %s: %s=%s invalid=%.3f calls=%d cache_hits=%d",
        topic.name,
        topic.version,
        score["model"],
        score["gate_metric"],
        score["gate_value"],
        score["invalid"]["rate"],
        stats.calls,
        stats.cache_hits,
    )
    return score


def write_score(score: dict[str, Any], root: str) -> dict[str, str]:
    """Write ``score.json``, the Markdown report and the PNG plot; returns their public URIs."""
    from pipeline_hub.lifecycle.reports import render_markdown, render_plot

    paths = score_paths(root, score["topic"], score["version"], None if score["full"] else score["limit"])
    score["artifacts"] = {kind: storage.public_uri(p) for kind, p in paths.items()}
    paths["png"].parent.mkdir(parents=True, exist_ok=True)
    storage.write_bytes_atomic(paths["png"], render_plot(score))
    storage.write_bytes_atomic(paths["md"], render_markdown(score, plot_name=paths["png"].name).encode())
    storage.write_json(paths["json"], score)
    return score["artifacts"]
