"""Human-readable summary of a partition's publications (``pipeline-hub report``, ``make demo``)."""

from __future__ import annotations

from pipeline_hub import storage
from pipeline_hub.prompts.registry import list_topics


def load_manifests(sanitized_root: str, ds: str) -> dict[str, dict]:
    """``{topic: manifest}`` for every topic with a manifest for ``ds`` (published or quarantined)."""
    found = {}
    for topic in list_topics():
        for zone in ("sanitized_data", "quarantine"):
            path = storage.join(sanitized_root, zone, topic, f"ds={ds}", "_manifest.json")
            if path.exists():
                found[topic] = storage.read_json(path)
                break
    return found


def nothing_published(sanitized_root: str, ds: str, manifests: dict[str, dict]) -> str | None:
    """One line saying ``ds`` has nothing published under ``sanitized_root``, or None when a topic is published.

    ``manifests`` is :func:`load_manifests` of that partition. Analysts querying such a ``ds`` get no
    rows, so ``pipeline-hub report`` exits non-zero with this line.
    """
    if any(m.get("status") == "published" for m in manifests.values()):
        return None
    where = f"ds={ds} under {storage.public_uri(sanitized_root)}"
    if manifests:
        return (
            f"nothing published for {where}: every topic with output failed its quality gate "
            f"(quarantine/<topic>/ds={ds}/_manifest.json); fix the input or the prompt and run that ds again"
        )
    return (
        f"nothing published for {where}: no topic has a manifest in sanitized_data/<topic>/ds={ds}/ or "
        f"quarantine/<topic>/ds={ds}/; run the pipeline for ds={ds} (or check --root / PIPELINE_HUB_SANITIZED_URI)"
    )


def route_cells(usage: dict | None) -> list[str]:
    """The report's cascade cells of a manifest's ``usage``: ``["<proxy>/<oracle>", "<calls saved>",
    "<cost saved USD>"]`` (:func:`pipeline_hub.stages.cascade_usage.run_routes`), ``-`` where unknown."""
    from pipeline_hub.stages.cascade_usage import run_routes

    routes = run_routes(usage)
    if routes is None:
        return ["-", "-", "-"]
    saved = routes["cost_saved_usd"]
    cost = "-" if saved is None else f"{saved:.4f}"
    return [f"{routes['proxy']}/{routes['oracle']}", str(routes["calls_saved"]), cost]


def render_report(sanitized_root: str, ds: str) -> str:
    """Table of counts (in / published / quarantined), LLM calls, records per cascade route (proxy / oracle),
    calls and cost (USD) saved, tokens and duration per topic, plus a query result."""
    from datetime import datetime

    from tabulate import tabulate

    rows = []
    for topic, m in load_manifests(sanitized_root, ds).items():
        c, u = m["counts"], m.get("usage", {})
        secs = (datetime.fromisoformat(m["finished_at"]) - datetime.fromisoformat(m["started_at"])).total_seconds()
        rows.append(
            [
                topic,
                m["status"],
                c["in"],
                c["published"],
                c["quarantined_total"],
                ", ".join(f"{k}={v}" for k, v in sorted(c["quarantined"].items())) or "-",
                u.get("llm_calls", 0),
                *route_cells(u),
                u.get("prompt_tokens", 0) + u.get("completion_tokens", 0),
                f"{secs:.0f}s",
                m["run_id"],
            ]
        )
    out = [
        f"Publications for ds={ds} under {storage.public_uri(sanitized_root)}",
        tabulate(
            rows,
            headers=[
                "topic",
                "status",
                "in",
                "published",
                "quarantined",
                "reasons",
                "llm calls",
                "proxy/oracle",
                "calls saved",
                "cost saved (USD)",
                "tokens",
                "duration",
                "run",
            ],
        ),
    ]
    from pipeline_hub.analytics.query import connect

    con, views = connect(sanitized_root)
    if "industry_classification" in views:
        sql = (
            "SELECT sector, count(*) AS companies FROM industry_classification "
            "WHERE ds = CAST(? AS DATE) GROUP BY sector ORDER BY companies DESC, sector"
        )
        cur = con.execute(sql, [ds])  # parameterised: ds is never spliced into SQL text
        out += ["", f"DuckDB: {sql}  -- ? = {ds}", tabulate(cur.fetchall(), headers=[d[0] for d in cur.description])]
    con.close()
    return "\n".join(out)
