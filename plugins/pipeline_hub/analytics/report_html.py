"""``pipeline-hub report --html FILE``: one self-contained HTML page about a partition, with plots.

Sources, all figures and names, never record text:

* the publication manifests of ``ds`` (:func:`pipeline_hub.analytics.reporting.load_manifests`): status,
  counts in / published / quarantined and quarantined by reason code, prompt version, model, run id;
* the same manifests' ``usage``: records per cascade route (``proxy`` / ``oracle``), calls saved and cost
  saved (USD, an estimate) per topic (:func:`pipeline_hub.stages.cascade_usage.run_routes`);
* ``metrics/llm_usage/`` Parquet through DuckDB (the ``llm_usage`` view of ``include/sql/views.sql``):
  LLM calls, cache hit rate, tokens, cost (USD), p50/p95 provider latency (s) per topic;
* ``metrics/drift/`` Parquet through DuckDB when it exists (the ``drift`` view, else the files directly):
  PSI figures and status per topic; without it the page says so instead of a plot.

Every query takes ``ds`` as a DuckDB parameter (``$ds``), never spliced into SQL text. The plots are
matplotlib figures (``Agg``, no pyplot state) embedded as base64 PNG; the page is rendered from the
Jinja2 template ``templates/report.html.j2`` (package data, autoescaped) and needs no network to view.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import storage
from pipeline_hub.analytics.reporting import load_manifests

USAGE_SQL = (
    "SELECT topic, llm_calls, cache_hits, cache_hit_rate, prompt_tokens, completion_tokens, cost_usd, "
    "latency_p50_s, latency_p95_s, budget_exceeded FROM llm_usage WHERE ds = CAST($ds AS DATE) ORDER BY topic"
)
DRIFT_VIEW_SQL = "SELECT * FROM drift WHERE ds = CAST($ds AS DATE) ORDER BY topic"
DRIFT_FILES_SQL = (
    "SELECT * FROM read_parquet($files, hive_partitioning = true, union_by_name = true) "
    "WHERE ds = CAST($ds AS DATE) ORDER BY topic"
)
# Drift columns shown: names and figures only (``notes`` and list columns are left out).
DRIFT_FIGURES = ("label_psi", "confidence_psi", "input_length_psi")
DRIFT_SHOWN = ("status", "psi_threshold", "label_chi2_p", "confidence_shift", "invalid_output_rate_shift")
COUNT_COLORS = {"in": "#4c72b0", "published": "#55a868", "quarantined": "#c44e52"}


@dataclass
class Plot:
    """One embedded figure: ``title``, base64 PNG ``png`` and a one-line ``caption``."""

    title: str
    png: str
    caption: str


@dataclass
class ReportData:
    """What the page shows for ``ds`` under ``root`` (public URI): per-topic rows and drift rows.

    ``topics`` rows: ``topic, status, prompt_version, model, run_id, in, published, quarantined,
    reasons ({code: n}), llm_calls, cache_hit_rate, tokens, cost_usd, latency_p50_s, latency_p95_s, cascade``
    (``cascade``: ``{"proxy", "oracle", "calls_saved", "cost_saved_usd"}``, None for a manifest older than the
    route counts).
    ``drift`` is None when ``metrics/drift/`` does not exist, else rows of ``topic`` plus the figures of
    :data:`DRIFT_FIGURES` and :data:`DRIFT_SHOWN` that the files have.
    """

    ds: str
    root: str
    topics: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] | None = None

    @property
    def published(self) -> bool:
        """Whether at least one topic is published for ``ds``."""
        return any(t["status"] == "published" for t in self.topics)


def _usage(con, views: list[str], ds: str) -> dict[str, dict[str, Any]]:
    """``{topic: llm_usage row}`` of ``ds`` (empty when no metrics were written)."""
    if "llm_usage" not in views:
        return {}
    cur = con.execute(USAGE_SQL, {"ds": ds})
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _drift(con, views: list[str], sanitized_root: str, ds: str) -> list[dict[str, Any]] | None:
    """Drift rows of ``ds`` (None when ``metrics/drift/`` does not exist)."""
    from pipeline_hub.analytics.query import duckdb_base

    folder = storage.join(sanitized_root, "metrics", "drift")
    if not folder.exists():
        return None
    if "drift" in views:
        cur = con.execute(DRIFT_VIEW_SQL, {"ds": ds})
    else:
        files = duckdb_base(sanitized_root) + "/metrics/drift/*/*.parquet"
        if not folder.fs.glob(files.split("://", 1)[-1]):
            return []
        cur = con.execute(DRIFT_FILES_SQL, {"files": files, "ds": ds})
    names = [d[0] for d in cur.description]
    keep = ["topic", *(c for c in (*DRIFT_FIGURES, *DRIFT_SHOWN) if c in names)]
    return [{k: v for k, v in dict(zip(names, row, strict=True)).items() if k in keep} for row in cur.fetchall()]


def collect(sanitized_root: str, ds: str) -> ReportData:
    """Gather the manifests of ``ds`` and, through DuckDB, its usage metrics and drift (see module doc).

    Raises ``ConfigError`` when ``sanitized_root`` names an unknown Airflow connection, ``duckdb.Error``
    when a query fails.
    """
    from pipeline_hub.analytics.query import connect
    from pipeline_hub.stages.cascade_usage import run_routes

    data = ReportData(ds=ds, root=storage.public_uri(sanitized_root))
    manifests = load_manifests(sanitized_root, ds)
    con, views = connect(sanitized_root)
    try:
        usage = _usage(con, views, ds)
        data.drift = _drift(con, views, sanitized_root, ds)
    finally:
        con.close()
    for topic, m in sorted(manifests.items()):
        c, u = m["counts"], {**m.get("usage", {}), **usage.get(topic, {})}
        data.topics.append(
            {
                "topic": topic,
                "status": m["status"],
                "prompt_version": m.get("prompt", {}).get("version"),
                "model": m.get("model"),
                "run_id": m.get("run_id"),
                "in": c["in"],
                "published": c["published"],
                "quarantined": c["quarantined_total"],
                "reasons": dict(sorted(c["quarantined"].items())),
                "llm_calls": u.get("llm_calls") or 0,
                "cache_hit_rate": u.get("cache_hit_rate"),
                "tokens": (u.get("prompt_tokens") or 0) + (u.get("completion_tokens") or 0),
                "cost_usd": u.get("cost_usd") or 0.0,
                "latency_p50_s": u.get("latency_p50_s"),
                "latency_p95_s": u.get("latency_p95_s"),
                "cascade": run_routes(m.get("usage")),
            }
        )
    return data


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(n_topics: int):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.6 * n_topics + 2), 3.6), layout="constrained")
    return fig, fig.subplots()


def _grouped(ax, topics: list[str], series: dict[str, list[float]], colors: dict[str, str] | None = None) -> None:
    """Bars per topic, one per series, with the value on top."""
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(topics))]
        bars = ax.bar(xs, values, width, label=name, color=(colors or {}).get(name))
        ax.bar_label(bars, fmt="%g", fontsize=7)
    ax.set_xticks(range(len(topics)), labels=topics, rotation=15, ha="right", fontsize=8)
    ax.legend(fontsize=8)


def plot_counts(data: ReportData) -> Plot:
    """Records in / published / quarantined per topic."""
    topics = [t["topic"] for t in data.topics]
    fig, ax = _figure(len(topics))
    _grouped(ax, topics, {k: [t[k] for t in data.topics] for k in COUNT_COLORS}, COUNT_COLORS)
    ax.set_ylabel("records")
    ax.set_title(f"Records per topic, ds={data.ds}", fontsize=10)
    return Plot("Counts", _png(fig), "records in, published and quarantined per topic (from the manifests)")


def plot_reasons(data: ReportData) -> Plot:
    """Quarantined records per topic, stacked by reason code."""
    topics = [t["topic"] for t in data.topics]
    codes = sorted({r for t in data.topics for r in t["reasons"]})
    fig, ax = _figure(len(topics))
    bottom = [0] * len(topics)
    for code in codes:
        values = [t["reasons"].get(code, 0) for t in data.topics]
        ax.barh(topics, values, left=bottom, label=code)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if codes:
        ax.legend(fontsize=8)
    else:
        ax.barh(topics, bottom)
        ax.text(0.5, 0.5, "no record quarantined", transform=ax.transAxes, ha="center", fontsize=10)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("quarantined records")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"Quarantine reasons, ds={data.ds}", fontsize=10)
    return Plot("Quarantine reasons", _png(fig), "quarantined records per topic by reason code")


def plot_cost(data: ReportData) -> Plot:
    """LLM cost (USD) per topic, with the LLM calls and tokens in the labels."""
    topics = [t["topic"] for t in data.topics]
    fig, ax = _figure(len(topics))
    bars = ax.bar(topics, [t["cost_usd"] for t in data.topics], color="#8172b2")
    ax.bar_label(
        bars, labels=[f"{t['llm_calls']} calls, {t['tokens']} tok" for t in data.topics], fontsize=7, padding=2
    )
    top = max((t["cost_usd"] for t in data.topics), default=0.0)
    ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)
    if top == 0:
        ax.text(0.5, 0.6, "no cost: the model has no price (local or unknown)", transform=ax.transAxes, ha="center")
    ax.set_ylabel("USD")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.set_title(f"LLM cost per topic, ds={data.ds}", fontsize=10)
    return Plot("Cost", _png(fig), "cost in USD (genai-prices) per topic, with LLM calls and tokens")


def plot_latency(data: ReportData) -> Plot:
    """p50 and p95 provider latency (s) per topic (0 where no record needed a call)."""
    topics = [t["topic"] for t in data.topics]
    fig, ax = _figure(len(topics))
    series = {
        "p50": [t["latency_p50_s"] or 0.0 for t in data.topics],
        "p95": [t["latency_p95_s"] or 0.0 for t in data.topics],
    }
    _grouped(ax, topics, series, {"p50": "#64b5cd", "p95": "#dd8452"})
    ax.set_ylabel("seconds")
    ax.set_title(f"Provider latency per record, ds={data.ds}", fontsize=10)
    return Plot("Latency", _png(fig), "p50 / p95 latency of records that needed a call (cache hits excluded)")


def plot_routes(data: ReportData) -> Plot | None:
    """Records per cascade route (proxy / oracle) per topic, stacked; None when no topic's proxy answered."""
    routed = [t for t in data.topics if t["cascade"]]
    if not any(t["cascade"]["proxy"] for t in routed):
        return None
    topics = [t["topic"] for t in routed]
    fig, ax = _figure(len(topics))
    proxy = [t["cascade"]["proxy"] or 0 for t in routed]
    oracle = [t["cascade"]["oracle"] or 0 for t in routed]
    ax.bar(topics, proxy, color="#55a868", label="proxy (no call)")
    bars = ax.bar(topics, oracle, bottom=proxy, color="#4c72b0", label="oracle (LLM)")
    ax.bar_label(bars, labels=[f"{t['cascade']['calls_saved']} calls saved" for t in routed], fontsize=7)
    ax.set_ylabel("records")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.legend(fontsize=8)
    ax.set_title(f"Records per cascade route, ds={data.ds}", fontsize=10)
    return Plot("Cascade routes", _png(fig), "records answered by the proxy (no LLM call) and by the oracle per topic")


def plot_drift(data: ReportData) -> Plot | None:
    """PSI figures per topic against the threshold; None without drift rows."""
    if not data.drift:
        return None
    figures = [c for c in DRIFT_FIGURES if any(r.get(c) is not None for r in data.drift)]
    if not figures:
        return None
    topics = [r["topic"] for r in data.drift]
    fig, ax = _figure(len(topics))
    _grouped(ax, topics, {c: [round(r.get(c) or 0.0, 4) for r in data.drift] for c in figures})
    thresholds = {r["psi_threshold"] for r in data.drift if r.get("psi_threshold") is not None}
    for threshold in thresholds:
        ax.axhline(threshold, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_ylabel("PSI")
    ax.set_title(f"Drift against the trailing baseline, ds={data.ds}", fontsize=10)
    return Plot("Drift", _png(fig), "population stability index per topic; dashed: the alert threshold")


def plots(data: ReportData) -> list[Plot]:
    """Every plot of the page: counts, quarantine reasons, cost, latency, cascade routes when a proxy answered
    records, and drift when there is any."""
    found = [plot_counts(data), plot_reasons(data), plot_cost(data), plot_latency(data)]
    return found + [p for p in (plot_routes(data), plot_drift(data)) if p]


def render_html(data: ReportData) -> str:
    """The page for ``data``: template ``templates/report.html.j2``, HTML autoescaped, plots inline."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline_hub.analytics", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    if data.drift is None:
        drift_note = "no drift metrics: metrics/drift/ does not exist under this root (run `pipeline-hub drift`)"
    elif not data.drift:
        drift_note = f"no drift rows for ds={data.ds} in metrics/drift/"
    else:
        drift_note = None
    return env.get_template("report.html.j2").render(
        data=data,
        plots=plots(data),
        drift_note=drift_note,
        drift_columns=[c for c in (*DRIFT_FIGURES, *DRIFT_SHOWN) if any(c in r for r in data.drift or [])],
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_html_report(sanitized_root: str, ds: str, target: str) -> ReportData:
    """Collect ``ds``, render the page and write it to ``target`` (a path or object-store URI), atomically.

    Returns the data shown (``.published`` tells the caller whether anything is published).
    """
    from pathlib import Path

    data = collect(sanitized_root, ds)
    if "://" not in target:
        target = str(Path(target).expanduser().resolve())
    storage.check_connection(target)
    storage.write_bytes_atomic(storage.to_path(target), render_html(data).encode("utf-8"))
    return data
