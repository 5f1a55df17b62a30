"""The validate stage: a Great Expectations (GX Core 1.x) suite per topic over the scrubbed rows.

The suite is built from the topic's metadata and output schema:

* required columns present (lineage columns, kept fields, answer fields);
* ``record_id`` non-null and unique;
* the label field (``quality.label_field``) within the schema's ``enum``;
* the confidence field (``quality.confidence_field``) within [0, 1];
* no residual e-mail address or phone number pattern in any published text (all string leaves of a
  row joined into one ``_published_text`` column that exists only during validation).

GX runs inside the task on an in-memory pandas batch (the GX Airflow provider is not used: it pins
``structlog<25.5``, which conflicts with Airflow 3.3, and loads data at DAG-parse time). The summary
returned holds expectation types, columns, success flags and counts, never the unexpected values.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from pipeline_hub.registry import Topic

LINEAGE_COLUMNS = [
    "record_id",
    "batch_hash",
    "prompt_name",
    "prompt_version",
    "template_sha256",
    "model",
    "run_id",
]
# RFC 5322-ish address; NANP (123-456-7890, (123) 456 7890) or E.164-style international (+49 30 1234 5678).
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE_PATTERN = (
    r"(?<!\w)(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\w)|(?<!\w)\+\d{1,3}(?:[\s.-]?\d{2,4}){2,5}(?!\w)"
)
RESIDUAL_PII = {"email": re.compile(EMAIL_PATTERN), "phone": re.compile(PHONE_PATTERN)}


def _string_leaves(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _string_leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _string_leaves(v)


def published_text(row: dict[str, Any]) -> str:
    """All string values of a published row (nested too) except lineage columns, newline-joined."""
    return "\n".join(s for k, v in row.items() if k not in LINEAGE_COLUMNS for s in _string_leaves(v))


def residual_pii_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Rows whose published text still matches the e-mail / phone patterns, per pattern."""
    texts = [published_text(r) for r in rows]
    return {name: sum(1 for t in texts if rx.search(t)) for name, rx in RESIDUAL_PII.items()}


def build_suite(topic: Topic, columns: list[str]):
    """The GX ``ExpectationSuite`` for ``topic`` (see module docstring)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{topic.name}.{topic.version}")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="record_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="record_id"))
    props = topic.prompt.output_schema.get("properties", {})
    label = topic.quality.get("label_field")
    if label and "enum" in props.get(label, {}):
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=label, value_set=props[label]["enum"]))
    conf = topic.quality.get("confidence_field")
    if conf:
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=conf, min_value=0, max_value=1))
    for pattern in (EMAIL_PATTERN, PHONE_PATTERN):
        suite.add_expectation(gxe.ExpectColumnValuesToNotMatchRegex(column="_published_text", regex=pattern))
    return suite


def validate_rows(topic: Topic, rows: list[dict[str, Any]], required_columns: list[str]) -> dict[str, Any]:
    """Validate ``rows`` (the scrubbed, to-be-published rows of one topic) with the topic's suite.

    Returns ``{"success": bool, "suite": name, "evaluated": n, "expectations": [{"type", "column",
    "success", "unexpected_count"}]}``. An empty topic (no rows) passes trivially with zero evaluated.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    if not rows:
        return {"success": True, "suite": f"{topic.name}.{topic.version}", "evaluated": 0, "expectations": []}
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["_published_text"] = [published_text(r) for r in rows]
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer GX without this knob: progress bars are cosmetic
        pass
    batch = (
        context.data_sources.add_pandas("published")
        .add_dataframe_asset(topic.name)
        .add_batch_definition_whole_dataframe("run")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(build_suite(topic, required_columns))
    expectations = [
        {
            "type": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "success": bool(r.success),
            "unexpected_count": int((r.result or {}).get("unexpected_count") or 0),
        }
        for r in result.results
    ]
    return {
        "success": bool(result.success),
        "suite": f"{topic.name}.{topic.version}",
        "evaluated": len(rows),
        "expectations": expectations,
    }


def failed_expectations(result: dict[str, Any]) -> list[str]:
    """``["expect_…(column)", …]`` for the failed expectations of a :func:`validate_rows` result."""
    return [e["type"] + (f"({e['column']})" if e["column"] else "") for e in result["expectations"] if not e["success"]]
