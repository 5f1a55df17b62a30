"""Task bodies of the ``prompt_evaluation`` DAG: validate → changed? → score dev and prod → canary → report.

- :func:`run_validate` is ``pipeline-hub validate``: the DAG fails at once on any registry problem.
- :func:`registry_fingerprint` / :func:`should_evaluate`: scheduled runs go on only when the registry
  (metadata, templates, partials, schemas, examples) changed since the last evaluation; manual runs
  and ``force`` always go on.
- :func:`score_items` / :func:`run_score`: every topic's ``dev`` and ``prod`` versions are scored
  (:mod:`pipeline_hub.lifecycle.scoring`, cached; once when both pointers name the same version).
- :func:`~pipeline_hub.lifecycle.canary.run_canary`: the ``dev`` version answers, in shadow, a seeded
  random sample (``sample_pct`` of the records) of the topic's latest published batch; its answers are
  scrubbed like production's (same Presidio config and pseudonym key) and compared with the *published*
  answers, giving the agreement rate and the cost difference per record. Shadow answers are never
  written anywhere but the response cache (raw zone, like every answer): only aggregates leave the task.
- :func:`write_evaluation`: everything to Parquet and a Markdown + HTML report under the artifacts root::

      <artifacts>/evaluations/scores/run=<run>/part-00000.parquet
      <artifacts>/evaluations/canary/run=<run>/part-00000.parquet
      <artifacts>/evaluations/reports/<run>/report.md | report.html
      <artifacts>/evaluations/_fingerprint.json      registry fingerprint of the last complete evaluation

Every function returns small JSON-serialisable summaries (XCom), never record text.
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_hub import storage
from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import PromptError
from pipeline_hub.lifecycle.scoring import artifacts_root, score_version, topic_metadata
from pipeline_hub.prompts.registry import list_topics, load_topic

log = logging.getLogger(__name__)

SCORE_COLUMNS = (
    "accuracy",
    "macro_f1",
    "precision",
    "recall",
    "f1",
)


class RegistryInvalid(PromptError, RuntimeError):
    """``validate`` found problems; the message lists them as ``path:line: message``."""


def _prompts_dir(prompts_dir: Path | str | None = None) -> Path:
    return Path(prompts_dir or include_dir() / "prompts").resolve()


def run_validate(prompts_dir: Path | str | None = None) -> dict[str, Any]:
    """Validate the registry; ``{"topics": [...], "problems": 0}`` or raise :class:`RegistryInvalid`."""
    from pipeline_hub.lifecycle.validation import validate_registry

    root = _prompts_dir(prompts_dir)
    problems = validate_registry(root)
    if problems:
        raise RegistryInvalid(f"{len(problems)} problem(s) in the prompt registry:\n" + "\n".join(map(str, problems)))
    return {"topics": list_topics(root), "problems": 0}


def registry_fingerprint(prompts_dir: Path | str | None = None) -> str:
    """SHA-256 over every file of the registry except the audit log and changelogs (name and bytes)."""
    root = _prompts_dir(prompts_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name in ("_audit.jsonl", "CHANGELOG.md") or "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _fingerprint_path(artifacts: str | None):
    return storage.join(artifacts_root(artifacts), "evaluations", "_fingerprint.json")


def should_evaluate(
    *, manual: bool, force: bool, prompts_dir: Path | str | None = None, artifacts: str | None = None
) -> dict[str, Any]:
    """``{"go", "reason", "fingerprint"}``: go when triggered by hand, forced, or the registry changed."""
    current = registry_fingerprint(prompts_dir)
    path = _fingerprint_path(artifacts)
    last = storage.read_json(path).get("fingerprint") if path.exists() else None
    if force or manual:
        reason = "forced" if force else "triggered on demand"
    elif last != current:
        reason = "the prompt registry changed since the last evaluation"
    else:
        return {
            "go": False,
            "reason": "the prompt registry is unchanged since the last evaluation",
            "fingerprint": current,
        }
    return {"go": True, "reason": reason, "fingerprint": current}


def score_items(topics: list[str] | None = None, prompts_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """One work item per (topic, distinct version of ``dev``/``prod``): ``{"topic", "version", "pointers"}``."""
    root = _prompts_dir(prompts_dir)
    items = []
    for name in topics or list_topics(root):
        dev, prod = load_topic(name, root, pointer="dev").version, load_topic(name, root).version
        for version in dict.fromkeys([prod, dev]):
            pointers = [p for p, v in (("prod", prod), ("dev", dev)) if v == version]
            items.append({"topic": name, "version": version, "pointers": pointers})
    return items


def run_score(item: dict[str, Any], *, conn_id: str, limit: int | None, artifacts: str | None = None) -> dict:
    """Score one work item; returns the flat summary row the report and the Parquet table use."""
    score = score_version(item["topic"], version=item["version"], conn_id=conn_id, limit=limit, artifacts=artifacts)
    m, usage = score["metrics"], score["usage"]
    meta = topic_metadata(load_topic(item["topic"], version=item["version"]))
    gate = meta.get("gate") or {}
    return {
        "topic": score["topic"],
        "version": score["version"],
        "pointers": ",".join(item["pointers"]),
        "task": score["task"],
        "model": score["model"],
        "conn_id": conn_id,
        "examples_scored": score["examples_scored"],
        "examples_total": score["examples_total"],
        "full": score["full"],
        "gate_metric": score["gate_metric"],
        "gate_value": score["gate_value"],
        "gate_min": gate.get("min"),
        "passes_min": None if score["gate_value"] is None else score["gate_value"] >= gate.get("min", 0),
        **{k: m.get(k) for k in SCORE_COLUMNS},
        "invalid_rate": score["invalid"]["rate"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "cost_usd": usage["cost_usd"],
        "spent_usd": usage["spent_usd"],
        "llm_calls": usage["llm_calls"],
        "cache_hits": usage["cache_hits"],
        "latency_p50_s": usage["latency_p50_s"],
        "latency_p95_s": usage["latency_p95_s"],
        "template_sha256": score["template_sha256"],
        "examples_sha256": score["examples_sha256"],
        "scored_at": score["scored_at"],
        "report": score["artifacts"]["md"],
    }


# --- report --------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]


def render_report(run_id: str, scores: list[dict], canaries: list[dict], context: dict[str, Any]) -> str:
    """The evaluation as Markdown: scores of dev and prod per topic, canary agreement and cost."""
    lines = [
        f"# Prompt evaluation {run_id}",
        "",
        f"- evaluated at {context['evaluated_at']}; connection `{context['conn_id']}`; "
        f"examples per topic: {context['limit'] or 'all'}; canary sample {context['sample_pct']} % (seed "
        f"{context['seed']})",
        f"- why: {context.get('reason', '–')}",
        "- registry valid (`pipeline-hub validate`)",
        "",
        "## Scores",
        "",
    ]
    lines += _table(
        ["topic", "version", "pointers", "model", "examples", "gate metric", "value", "gate min", "invalid", "cost USD"]
        + ["p50 s", "p95 s", "calls", "cache hits"],
        [
            [
                s["topic"],
                s["version"],
                s["pointers"],
                s["model"],
                f"{s['examples_scored']}/{s['examples_total']}",
                s["gate_metric"],
                s["gate_value"],
                s["gate_min"],
                s["invalid_rate"],
                s["cost_usd"],
                s["latency_p50_s"],
                s["latency_p95_s"],
                s["llm_calls"],
                s["cache_hits"],
            ]
            for s in sorted(scores, key=lambda s: (s["topic"], s["version"]))
        ],
    )
    if any(not s["full"] for s in scores):
        lines += ["", "Scores on a subset of the examples do not count for `pipeline-hub promote`."]
    lines += ["", "## Canary (dev in shadow on the latest published batch; never published)", ""]
    lines += _table(
        ["topic", "dev", "published", "ds", "status", "sampled", "agreement", "item F1", "dev invalid"]
        + ["dev USD/record", "prod USD/record", "cost diff %"],
        [
            [
                c["topic"],
                c["dev_version"],
                c.get("prod_version"),
                c.get("ds"),
                c["status"],
                c.get("sampled"),
                c.get("agreement_rate"),
                c.get("item_f1"),
                c.get("dev_invalid"),
                c.get("dev_cost_per_record_usd"),
                c.get("prod_cost_per_record_usd"),
                c.get("cost_diff_pct"),
            ]
            for c in sorted(canaries, key=lambda c: c["topic"])
        ],
    )
    lines += ["", "## Score reports", ""] + [f"- {s['topic']} {s['version']}: {s['report']}" for s in scores]
    return "\n".join(lines) + "\n"


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(k for row in rows for k in row))  # rows differ (e.g. skipped canaries)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows]), buf, compression="zstd")
    return buf.getvalue()


def write_evaluation(
    run_id: str,
    scores: list[dict],
    canaries: list[dict],
    *,
    conn_id: str,
    limit: int | None,
    sample_pct: float,
    seed: int,
    fingerprint: str | None = None,
    reason: str | None = None,
    artifacts: str | None = None,
) -> dict[str, str]:
    """Write the scores and canary tables (Parquet) and the report (Markdown, HTML); return their URIs.

    The registry fingerprint is recorded last, so an evaluation that failed is retried by the next
    scheduled run.
    """
    from markdown_it import MarkdownIt

    from pipeline_hub.stages.plan import safe_run_id

    root = artifacts_root(artifacts)
    run = safe_run_id(run_id)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    base = storage.join(root, "evaluations")
    out = {
        "scores": base / "scores" / f"run={run}" / "part-00000.parquet",
        "canary": base / "canary" / f"run={run}" / "part-00000.parquet",
        "md": base / "reports" / run / "report.md",
        "html": base / "reports" / run / "report.html",
    }
    stamp = {"run_id": run_id, "evaluated_at": now}
    if scores:
        storage.write_bytes_atomic(out["scores"], _parquet([{**stamp, **s} for s in scores]))
    if canaries:
        storage.write_bytes_atomic(out["canary"], _parquet([{**stamp, **c} for c in canaries]))
    context = {
        "evaluated_at": now,
        "conn_id": conn_id,
        "limit": limit,
        "sample_pct": sample_pct,
        "seed": seed,
        "reason": reason,
    }
    md = render_report(run_id, scores, canaries, context)
    html = MarkdownIt("commonmark").enable("table").render(md)
    storage.write_bytes_atomic(out["md"], md.encode())
    storage.write_bytes_atomic(
        out["html"],
        (
            f"<!doctype html><html><head><meta charset='utf-8'><title>Prompt evaluation {run_id}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>" + html + "</body></html>"
        ).encode(),
    )
    if fingerprint:
        storage.write_json(_fingerprint_path(artifacts), {"fingerprint": fingerprint, "run_id": run_id, "at": now})
    uris = {k: storage.public_uri(v) for k, v in out.items() if k in ("md", "html") or v.exists()}
    log.info("evaluation %s written: %s", run_id, uris)
    return uris
