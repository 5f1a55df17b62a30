"""The Prompt Hub view's charts as PNG bytes (matplotlib, Agg backend, no display).

- :func:`counts_png`: published and quarantined records per ``ds`` (stacked bars);
- :func:`cost_png`: cost (USD, bars) and tokens (line, right axis) per ``ds``;
- :func:`labels_png`: a drift row's label distribution, share of rows per label in the run against the
  trailing baseline (grouped horizontal bars).

Inputs are the rows :mod:`pipeline_hub.orchestration.ui.data` returns (counts, labels of the output enum,
dates); no record text reaches a chart.
"""

from __future__ import annotations

import io
from typing import Any

WIDTH, HEIGHT, DPI = 6.0, 2.4, 100  # inches, inches, dots per inch


def _figure(height: float = HEIGHT):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ds_axis(ax, rows: list[dict[str, Any]]) -> range:
    xs = range(len(rows))
    ax.set_xlim(-0.75, max(len(rows), 6) - 0.25)  # a few runs stay narrow bars at the left
    ax.set_xticks(list(xs), [r["ds"] for r in rows], rotation=30, ha="right", fontsize=7)
    return xs


def counts_png(rows: list[dict[str, Any]]) -> bytes:
    """Stacked bars of ``published`` and ``quarantined_total`` per ``ds`` of :func:`data.runs` rows (newest
    first in, oldest left out)."""
    rows = list(reversed(rows))
    fig, ax = _figure()
    xs = _ds_axis(ax, rows)
    published = [r["published"] or 0 for r in rows]
    ax.bar(xs, published, width=0.6, color="#2e8b57", label="published")
    quarantined = [r["quarantined_total"] or 0 for r in rows]
    ax.bar(xs, quarantined, width=0.6, bottom=published, color="#d9534f", label="quarantined")
    ax.set_ylabel("records")
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def cost_png(rows: list[dict[str, Any]]) -> bytes:
    """Bars of ``cost_usd`` (USD) and a line of ``tokens`` (prompt + completion) per ``ds`` of
    :func:`data.runs` rows (newest first in, oldest left out)."""
    rows = list(reversed(rows))
    fig, ax = _figure()
    xs = _ds_axis(ax, rows)
    ax.bar(xs, [r.get("cost_usd") or 0 for r in rows], width=0.6, color="#6366f1", label="cost (USD)")
    ax.set_ylabel("cost (USD)")
    ax.set_ylim(bottom=0)
    tokens = ax.twinx()
    tokens.plot(list(xs), [r.get("tokens") or 0 for r in rows], color="#f59e0b", marker="o", label="tokens")
    tokens.set_ylabel("tokens")
    tokens.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + tokens.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")
    return _png(fig)


def labels_png(drift: dict[str, Any]) -> bytes:
    """Share of rows per label, this run against the baseline, of a drift row's ``labels``
    (``[{"label", "current", "baseline"}]``, counts; :data:`pipeline_hub.analytics.drift_store.DRIFT_SCHEMA`)."""
    labels = drift.get("labels") or []
    cur_total = sum(x["current"] or 0 for x in labels) or 1
    base_total = sum(x["baseline"] or 0 for x in labels) or 1
    fig, ax = _figure(height=max(HEIGHT, 0.28 * len(labels) + 0.8))
    ys = range(len(labels))
    ax.barh(
        [y - 0.2 for y in ys],
        [(x["current"] or 0) / cur_total for x in labels],
        0.4,
        color="#2563eb",
        label=f"ds={drift.get('ds')}",
    )
    ax.barh(
        [y + 0.2 for y in ys],
        [(x["baseline"] or 0) / base_total for x in labels],
        0.4,
        color="#9ca3af",
        label="baseline",
    )
    ax.set_yticks(list(ys), [str(x["label"]) for x in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of rows")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)
