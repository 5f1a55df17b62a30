"""Drift of a topic's published output for one ``ds`` against a trailing baseline (``pipeline-hub drift``).

The baseline is every published partition of the topic in the ``PIPELINE_HUB_DRIFT_BASELINE_DAYS``
(default 7) days before ``ds``, pooled (:mod:`pipeline_hub.analytics.drift_store`). Figures, one row of
:data:`~pipeline_hub.analytics.drift_store.DRIFT_SCHEMA` per topic and ``ds``:

- **label distribution**: counts per label of the topic's categorical field (``quality.label_field`` of
  its ``metadata.yaml``, else the first output-schema property with an ``enum``; none → skipped with a
  note), their PSI and the chi-square p-value of the 2 × k table baseline vs current
  (``scipy.stats.chi2_contingency``: homogeneity of two samples, Yates-corrected for 2 × 2);
- **confidence** (``quality.confidence_field``): mean, shift (current − baseline mean), PSI over the
  baseline's deciles and the two-sample Kolmogorov-Smirnov p-value (``scipy.stats.ks_2samp``);
- **invalid-output rate**: ``invalid_output / (published + invalid_output)`` from the manifests'
  ``counts`` (the complement of the GX gate's answer-validity rate), and its shift;
- **input length**: characters of the published input fields (``output.keep_fields``) per row, a proxy of
  the input (contact extraction publishes none: skipped with a note): mean, relative shift, PSI, KS p.

PSI (population stability index, the credit-scoring definition): ``PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)``
over bins ``i``, ``a_i`` the current (actual) and ``e_i`` the baseline (expected) share; continuous
figures are binned at the baseline's deciles (Yurdakul, B., *Statistical Properties of Population
Stability Index*, PhD dissertation, Western Michigan University, 2018,
https://scholarworks.wmich.edu/dissertations/3208; Siddiqi, N., *Credit Risk Scorecards*, Wiley, 2006).
An empty bin's share is floored at 0.0001, as Evidently's ``get_binned_data`` does (the log is
undefined at 0). The banking rule of thumb these sources discuss (attributed to Lewis, *An Introduction
to Credit Scoring*, 1992): < 0.1 no significant change, 0.1-0.25 some change, > 0.25 a significant
shift; the default threshold ``PIPELINE_HUB_DRIFT_PSI_THRESHOLD`` = 0.2 alerts inside the upper band,
before the shift is major. PSI grows with few rows per bin (Yurdakul 2018): read it together with
``rows`` and ``baseline_rows``.

Status: ``no_baseline`` (no published partition in the window: not an error), ``drift`` (a PSI above
the threshold; ``drifted`` names which) or ``ok``. :func:`drift_over_threshold` is what alerts read.
Only counts, means and test statistics leave this module, never record text.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipeline_hub.analytics import drift_store
from pipeline_hub.config import get_settings
from pipeline_hub.exceptions import PipelineHubError

log = logging.getLogger(__name__)

EPSILON = 1e-4  # floor of an empty bin's share (Evidently's get_binned_data)
BINS = 10  # deciles of the baseline for continuous figures
NULL_LABEL = "(null)"


def psi(expected, actual) -> float:
    """Population stability index of ``actual`` against ``expected``: counts (or shares) over the same bins.

    ``Σ (a_i − e_i) · ln(a_i / e_i)`` with shares ``a_i = actual_i / Σ actual``, ``e_i`` likewise, each
    floored at :data:`EPSILON`. Unitless, ≥ 0, 0 for equal distributions. Raises ``ValueError`` when
    the two differ in length or either sums to 0.
    """
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.ndim != 1 or e.shape != a.shape:
        raise ValueError(f"psi: expected and actual need the same bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("psi: expected and actual each need at least one count")
    e, a = np.clip(e / e.sum(), EPSILON, None), np.clip(a / a.sum(), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def chi_square_p(baseline_counts, current_counts) -> float | None:
    """p-value of the chi-square test of homogeneity of two count vectors (``scipy.stats.chi2_contingency``).

    Labels with no count on either side are dropped; None when fewer than two labels remain or a side is
    empty (no test possible).
    """
    from scipy.stats import chi2_contingency

    table = np.array([baseline_counts, current_counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return None
    return float(chi2_contingency(table).pvalue)


def decile_counts(baseline: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``baseline`` and ``current`` in bins cut at the baseline's deciles (ties merged).

    A constant baseline gets three bins: below, at and above its value.
    """
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, BINS + 1)[1:-1]))
    if edges.size == 1:
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    n = edges.size + 1
    return (
        np.bincount(np.searchsorted(edges, baseline, side="right"), minlength=n),
        np.bincount(np.searchsorted(edges, current, side="right"), minlength=n),
    )


def _numeric(baseline: np.ndarray, current: np.ndarray) -> dict[str, float | None]:
    """Means, PSI over the baseline's deciles and the KS p-value; None where a side has no value."""
    if not baseline.size or not current.size:
        return {"mean": float(current.mean()) if current.size else None, "baseline_mean": None, "psi": None, "ks": None}
    from scipy.stats import ks_2samp

    return {
        "mean": float(current.mean()),
        "baseline_mean": float(baseline.mean()),
        "psi": psi(*decile_counts(baseline, current)),
        "ks": float(ks_2samp(baseline, current).pvalue),
    }


@dataclass(frozen=True)
class DriftFields:
    """The published columns drift reads for a topic, and why a figure is skipped (``notes``)."""

    label: str | None
    categories: tuple[str, ...]
    confidence: str | None
    lengths: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def columns(self) -> list[str]:
        """Every column to read from the published Parquet."""
        return [c for c in (self.label, self.confidence) if c] + list(self.lengths)


def drift_fields(topic) -> DriftFields:
    """The label, confidence and input-length columns of a :class:`~pipeline_hub.prompts.registry.Topic`."""
    props = topic.prompt.output_schema.get("properties", {})
    label = topic.quality.get("label_field") or next((k for k, v in props.items() if "enum" in v), None)
    notes = []
    if not label:
        notes.append(f"label: skipped: {topic.name} has no categorical field (quality.label_field or an enum property)")
    confidence = topic.quality.get("confidence_field")
    if not confidence:
        notes.append(f"confidence: skipped: {topic.name} has no quality.confidence_field")
    if not topic.keep_fields:
        notes.append(f"input length: skipped: {topic.name} publishes no input field (output.keep_fields is empty)")
    categories = tuple(str(c) for c in (props.get(label, {}).get("enum") or []) if c is not None) if label else ()
    return DriftFields(label, categories, confidence, tuple(topic.keep_fields), tuple(notes))


@dataclass
class Sample:
    """What drift needs of one or more partitions: labels, confidences, input lengths, answer counts."""

    labels: list[str] = field(default_factory=list)
    confidence: np.ndarray = field(default_factory=lambda: np.array([]))
    lengths: np.ndarray = field(default_factory=lambda: np.array([]))
    rows: int = 0
    invalid: int = 0
    answered: int = 0

    def add(self, other: Sample) -> Sample:
        """This sample pooled with ``other`` (a new object)."""
        return Sample(
            self.labels + other.labels,
            np.concatenate([self.confidence, other.confidence]),
            np.concatenate([self.lengths, other.lengths]),
            self.rows + other.rows,
            self.invalid + other.invalid,
            self.answered + other.answered,
        )

    @property
    def invalid_rate(self) -> float | None:
        """``invalid_output / (published + invalid_output)``; None without answers."""
        return self.invalid / self.answered if self.answered else None


def load_sample(sanitized_root: str, topic: str, ds: str, manifest: dict[str, Any], fields: DriftFields) -> Sample:
    """:class:`Sample` of one published partition (its Parquet columns and its manifest's counts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = drift_store.read_columns(sanitized_root, topic, ds, fields.columns)
    counts = manifest.get("counts") or {}
    invalid = int((counts.get("quarantined") or {}).get("invalid_output", 0))
    sample = Sample(rows=table.num_rows, invalid=invalid, answered=int(counts.get("published", 0)) + invalid)
    if fields.label:
        sample.labels = [NULL_LABEL if v is None else str(v) for v in table.column(fields.label).to_pylist()]
    if fields.confidence:
        values = table.column(fields.confidence).cast(pa.float64()).to_numpy(zero_copy_only=False)
        sample.confidence = values[~np.isnan(values)]
    if fields.lengths:
        per_row = [pc.fill_null(pc.utf8_length(table.column(f).cast(pa.string())), 0) for f in fields.lengths]
        total = per_row[0]
        for more in per_row[1:]:
            total = pc.add(total, more)
        sample.lengths = np.asarray(total.to_numpy(zero_copy_only=False), dtype=float)
    return sample


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def compute_drift(
    sanitized_root: str,
    topic_name: str,
    ds: str,
    *,
    baseline_days: int | None = None,
    psi_threshold: float | None = None,
) -> dict[str, Any]:
    """Drift of ``topic_name``'s partition ``ds`` against the partitions of the ``baseline_days`` before it.

    ``baseline_days`` and ``psi_threshold`` default to ``PIPELINE_HUB_DRIFT_BASELINE_DAYS`` and
    ``PIPELINE_HUB_DRIFT_PSI_THRESHOLD``. Returns one row of ``DRIFT_SCHEMA`` as a dict (shares and
    rates in [0, 1], lengths in characters, ``input_length_shift`` relative). Raises ``ConfigError`` for
    a ``ds`` that is not ``YYYY-MM-DD``, ``PromptError`` for an unknown topic and ``InputError`` when the
    partition is not published (exit 2 each).
    """
    from pipeline_hub.prompts.registry import load_topic

    settings = get_settings()
    days = baseline_days or settings.drift_baseline_days
    threshold = settings.drift_psi_threshold if psi_threshold is None else psi_threshold
    drift_store.parse_ds(ds)
    topic = load_topic(topic_name)
    manifest = drift_store.require_published(sanitized_root, topic.name, ds)
    fields = drift_fields(topic)
    current = load_sample(sanitized_root, topic.name, ds, manifest, fields)
    parts = drift_store.baseline_partitions(sanitized_root, topic.name, ds, days)
    base = Sample()
    for earlier, m in parts:
        base = base.add(load_sample(sanitized_root, topic.name, earlier, m, fields))
    notes = list(fields.notes)
    result: dict[str, Any] = {
        **dict.fromkeys(drift_store.DRIFT_SCHEMA.names),  # every column, None until computed
        "topic": topic.name,
        "prompt_version": (manifest.get("prompt") or {}).get("version"),
        "run_id": manifest.get("run_id"),
        "rows": current.rows,
        "baseline_ds": [d for d, _ in parts],
        "baseline_rows": base.rows,
        "baseline_days": days,
        "psi_threshold": threshold,
        "label_field": fields.label,
        "confidence_field": fields.confidence,
        "input_length_fields": list(fields.lengths),
        "invalid_output_rate": _r(current.invalid_rate),
        "computed_at": datetime.now(UTC).isoformat(),
    }
    if fields.label:
        seen = sorted((set(current.labels) | set(base.labels)) - set(fields.categories))
        cats = [*fields.categories, *seen]
        cur_counts, old_counts = Counter(current.labels), Counter(base.labels)
        cur, old = [cur_counts[c] for c in cats], [old_counts[c] for c in cats]
        result["labels"] = [{"label": c, "current": n, "baseline": b} for c, n, b in zip(cats, cur, old, strict=True)]
    if current.confidence.size:
        result["confidence_mean"] = _r(current.confidence.mean())
    if current.lengths.size:
        result["input_length_mean"] = _r(current.lengths.mean())
    if not parts:
        notes.append(f"no_baseline: no published partition of {topic.name} in the {days} days before {ds}")
        return {**result, "status": "no_baseline", "drifted": [], "notes": notes}
    result["baseline_invalid_output_rate"] = _r(base.invalid_rate)
    if current.invalid_rate is not None and base.invalid_rate is not None:
        result["invalid_output_rate_shift"] = _r(current.invalid_rate - base.invalid_rate)
    if not current.rows or not base.rows:
        notes.append(
            "label, confidence, input length: skipped: no published rows in "
            + (f"ds={ds}" if base.rows else "the baseline partitions")
        )
    else:
        if fields.label:
            result["label_psi"] = _r(psi(old, cur))
            result["label_chi2_p"] = _r(chi_square_p(old, cur))
        if fields.confidence:
            conf = _numeric(base.confidence, current.confidence)
            result |= {"confidence_mean": _r(conf["mean"]), "baseline_confidence_mean": _r(conf["baseline_mean"])}
            result |= {"confidence_psi": _r(conf["psi"]), "confidence_ks_p": _r(conf["ks"])}
            if conf["baseline_mean"] is not None:
                result["confidence_shift"] = _r(conf["mean"] - conf["baseline_mean"])
        if fields.lengths:
            length = _numeric(base.lengths, current.lengths)
            result |= {
                "input_length_mean": _r(length["mean"]),
                "baseline_input_length_mean": _r(length["baseline_mean"]),
            }
            result |= {"input_length_psi": _r(length["psi"]), "input_length_ks_p": _r(length["ks"])}
            if length["baseline_mean"]:
                result["input_length_shift"] = _r(length["mean"] / length["baseline_mean"] - 1)
    drifted = [
        name
        for name in ("label", "confidence", "input_length")
        if result.get(f"{name}_psi") is not None and result[f"{name}_psi"] > threshold
    ]
    return {**result, "status": "drift" if drifted else "ok", "drifted": drifted, "notes": notes}


def drift_over_threshold(result: dict[str, Any]) -> bool:
    """True when a drift result (from :func:`compute_drift` or a stored row) has a PSI over its threshold."""
    return result.get("status") == "drift"


def record_drift(plan_uri: str, topics: list[str]) -> list[dict[str, Any]]:
    """The DAG task ``drift``: compute and store drift for ``topics`` of the run plan; never raises.

    Returns one small summary per topic for XCom (``topic``, ``ds``, ``status``, ``drifted``, ``label_psi``,
    ``uri`` of the stored row), or ``status: "not_computed"`` and the reason (a project error's one line,
    else only the exception's class name) when that topic's drift could not be computed, e.g. because
    it failed its quality gate. Alerts are raised elsewhere, from :func:`drift_over_threshold`.
    """
    from pipeline_hub.stages.plan import RunPlan

    try:
        plan = RunPlan.load(plan_uri)
        root = plan.settings["sanitized_root"]
    except Exception as exc:  # drift records, it never fails the run
        reason = str(exc) if isinstance(exc, PipelineHubError) else type(exc).__name__
        log.warning("drift not computed: the run plan cannot be read: %s", reason)
        return [{"topic": t, "status": "not_computed", "reason": reason} for t in topics]
    summaries = []
    for topic in topics:
        try:
            result = compute_drift(root, topic, plan.ds)
            uri = drift_store.write_drift(root, plan.ds, result)
        except Exception as exc:  # drift records, it never fails the run
            reason = str(exc) if isinstance(exc, PipelineHubError) else type(exc).__name__
            log.warning("drift %s ds=%s not computed: %s", topic, plan.ds, reason)
            summaries.append({"topic": topic, "ds": plan.ds, "status": "not_computed", "reason": reason})
            continue
        summary = {k: result[k] for k in ("topic", "status", "drifted")}
        psis = [result.get(k) for k in ("label_psi", "confidence_psi", "input_length_psi")]
        summaries.append(
            {
                **summary,
                "ds": plan.ds,
                "label_psi": result.get("label_psi"),
                "max_psi": max((p for p in psis if p is not None), default=None),
                "psi_threshold": result["psi_threshold"],
                "uri": uri,
            }
        )
        level = logging.WARNING if drift_over_threshold(result) else logging.INFO
        log.log(
            level,
            "drift %s ds=%s: %s %s (PSI threshold %s)",
            topic,
            plan.ds,
            result["status"],
            result["drifted"],
            result["psi_threshold"],
        )
    return summaries
