"""Human-readable forms of a score (:mod:`pipeline_hub.lifecycle.scoring`): a Markdown report and a matplotlib PNG.

The plot is the confusion matrix for classification, the match-decision matrix for matching, and
per-field precision / recall / F1 bars for extraction. matplotlib runs headless (the ``Agg`` backend).
"""

from __future__ import annotations

import io
from typing import Any


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(score: dict[str, Any], plot_name: str | None = "score.png") -> str:
    """The score as a Markdown report: what was scored, headline metrics, usage, details, errors by id."""
    m, usage, inv = score["metrics"], score["usage"], score["invalid"]
    lines = [
        f"# Score: {score['topic']} {score['version']}",
        "",
        f"- task: {score['task']}; model `{score['model']}` via connection `{score['conn_id']}` ({score['provider']})",
        f"- examples: {score['examples_scored']} of {score['examples_total']}"
        + ("" if score["full"] else f" (limited to {score['limit']}: does not count for the promotion gate)"),
        f"- template SHA-256 `{score['template_sha256'][:16]}…`, examples SHA-256 `{score['examples_sha256'][:16]}…`",
        f"- scored at {score['scored_at']} in {score['duration_s']} s",
        "",
        "## Headline",
        "",
    ]
    head = [[k, m.get(k)] for k in ("accuracy", "macro_f1", "precision", "recall", "f1") if k in m]
    head += [
        ["invalid-answer rate", inv["rate"]],
        ["gate metric", f"{score['gate_metric']} = {_fmt(score['gate_value'])}"],
    ]
    lines += _table(["metric", "value"], head)
    lines += ["", "## Usage", ""]
    lines += _table(
        [
            "tokens in",
            "tokens out",
            "cost (USD, list price)",
            "spent now (USD)",
            "calls",
            "cache hits",
            "p50 s",
            "p95 s",
        ],
        [
            [
                usage["prompt_tokens"],
                usage["completion_tokens"],
                _fmt(usage["cost_usd"], 6),
                _fmt(usage["spent_usd"], 6),
                usage["llm_calls"],
                usage["cache_hits"],
                usage["latency_p50_s"],
                usage["latency_p95_s"],
            ]
        ],
    )
    if "cascade" in score:
        lines += ["", *cascade_section(score["cascade"])]
    if plot_name:
        lines += ["", f"![{score['task']} plot]({plot_name})"]
    if score["task"] == "classification":
        lines += ["", "## Per class", ""]
        lines += _table(
            ["class", "precision", "recall", "F1", "support"],
            [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in m["per_class"].items()],
        )
        conf = m["confusion"]
        lines += ["", "## Confusion matrix (rows: expected, columns: predicted)", ""]
        lines += _table(
            ["", *conf["columns"]], [[r, *row] for r, row in zip(conf["labels"], conf["matrix"], strict=True)]
        )
    elif score["task"] == "extraction":
        lines += ["", "## Per field", ""]
        lines += _table(
            ["field", "precision", "recall", "F1", "tp", "fp", "fn"],
            [[f, v["precision"], v["recall"], v["f1"], v["tp"], v["fp"], v["fn"]] for f, v in m["per_field"].items()],
        )
        lines += ["", f"Examples with nothing to extract, correctly answered with nothing: {m['empty_correct']}"]
    elif score["task"] == "matching":
        nm = m["no_match"]
        lines += [
            "",
            f'Correct "no match": precision {_fmt(nm["precision"])}, recall {_fmt(nm["recall"])}, '
            f"F1 {_fmt(nm['f1'])}; accuracy of all decisions {_fmt(m['accuracy'])}.",
            "",
            "## Decisions (rows: expected, columns: answer)",
            "",
        ]
        dec = m["decisions"]
        lines += _table(["", *dec["columns"]], [[r, *row] for r, row in zip(dec["rows"], dec["matrix"], strict=True)])
    if "feedback" in score:
        lines += ["", "## Analysts' feedback (published answers; not the gate)", ""]
        lines += _table(
            ["prompt version", "feedback", "agreed", "corrections", "agreement rate", "models"],
            [
                [v, f["feedback"], f["agreed"], f["corrections"], f["agreement_rate"], ", ".join(f["models"])]
                for v, f in score["feedback"].items()
            ]
            or [["(none)", 0, 0, 0, "", ""]],
        )
    errors = m.get("errors") or []
    lines += ["", f"## Examples with errors ({len(errors)})", ""]
    if errors:
        keys = [k for k in errors[0] if k != "id"]
        lines += _table(["id", *keys], [[e["id"], *(e[k] for k in keys)] for e in errors[:50]])
        if len(errors) > 50:
            lines += ["", f"… and {len(errors) - 50} more (see score.json)"]
    return "\n".join(lines) + "\n"


def cascade_section(comparison: dict[str, Any]) -> list[str]:
    """Markdown lines: the cascade side by side with oracle-only
    (:func:`pipeline_hub.lifecycle.scoring.cascade_comparison`)."""
    sides = (("oracle-only", comparison["oracle_only"]), ("cascade", comparison["cascade"]))
    names = list(comparison["cascade"]["metrics"])
    th = comparison.get("thresholds") or {}
    rows = [
        [
            label,
            *(side["metrics"].get(k) for k in names),
            side["oracle_records"],
            side["proxy_records"],
            side["oracle_share"],
            side.get("invalid"),
            side["total_tokens"],
            _fmt(side["cost_usd"], 6),
        ]
        for label, side in sides
    ]
    delta = comparison["delta"]
    rows.append(
        [
            "difference",
            *(delta.get(k) for k in names),
            "",
            "",
            delta["oracle_share"],
            "",
            "",
            _fmt(delta["cost_usd"], 6),
        ]
    )
    return [
        "## Cascade vs oracle-only (same examples, same model, one run)",
        "",
        f"- proxy `{comparison['proxy']}`, oracle route `{comparison['oracle']}`; thresholds upper "
        f"{_fmt(th.get('upper'))}, lower {_fmt(th.get('lower'))}, calibrated on {th.get('sample_size')} records "
        f"({th.get('calibrated_at')})",
        "",
        *_table(
            ["plan", *names, "to oracle", "by proxy", "oracle share", "invalid", "tokens", "cost (USD, list price)"],
            rows,
        ),
    ]


def _heatmap(ax, matrix: list[list[int]], rows: list[str], cols: list[str], title: str) -> None:
    import numpy as np

    data = np.array(matrix, dtype=float)
    ax.imshow(data, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(cols)), labels=cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(title, fontsize=10)
    top = data.max() if data.size else 0
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value:
                ax.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > top / 2 else "black",
                )


def render_plot(score: dict[str, Any]) -> bytes:
    """PNG bytes: confusion matrix (classification), decision matrix (matching) or per-field bars (extraction)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    m = score["metrics"]
    title = f"{score['topic']} {score['version']} on {score['model']}"
    if score["task"] == "classification":
        conf = m["confusion"]
        fig = Figure(figsize=(8, 6.5), layout="constrained")
        _heatmap(fig.subplots(), conf["matrix"], conf["labels"], conf["columns"], f"{title}: confusion matrix")
    elif score["task"] == "matching":
        dec = m["decisions"]
        fig = Figure(figsize=(6, 3), layout="constrained")
        _heatmap(fig.subplots(), dec["matrix"], dec["rows"], dec["columns"], f"{title}: match decisions")
    else:
        fields = list(m["per_field"])
        fig = Figure(figsize=(max(5, 1.3 * len(fields) + 2), 4), layout="constrained")
        ax = fig.subplots()
        width = 0.27
        for k, key in enumerate(("precision", "recall", "f1")):
            xs = [i + (k - 1) * width for i in range(len(fields))]
            ax.bar(xs, [m["per_field"][f][key] for f in fields], width, label=key)
        ax.set_xticks(range(len(fields)), labels=fields)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title(f"{title}: per field (all fields F1 {m['f1']:.2f})", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
