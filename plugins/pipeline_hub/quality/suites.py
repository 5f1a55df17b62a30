"""The GX suite of a topic: generated from its metadata and output schema, stored as
``include/quality/<topic>.json`` with hand-written expectations kept (see :mod:`pipeline_hub.quality`).

:func:`generated_expectations` derives the checks, :func:`export_suite` / :func:`write_suites` write the
files (``pipeline-hub quality export``), :func:`stale_suites` lists out-of-date ones and
:func:`load_suite` builds the ``ExpectationSuite`` a run validates with.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import QualityError
from pipeline_hub.prompts.registry import Topic
from pipeline_hub.quality.checks import ANSWER, EMAIL_PATTERN, HELPER_COLUMNS, OUTCOME, PHONE_PATTERN, TEXT

log = logging.getLogger(__name__)

DEFAULT_MIN_ANSWER_VALID_RATE = 0.8

JSON_TYPES = {
    "string": ["str"],
    "number": ["float", "int"],
    "integer": ["int"],
    "boolean": ["bool"],
    "object": ["dict"],
    "array": ["list"],
}


class QualitySuiteError(QualityError, ValueError):
    """A suite file under ``include/quality/`` cannot be read or parsed (message names the file)."""


def expected_columns(topic: Topic) -> list[str]:
    """Columns of the validation frame: ``record_id``, ``model``, ``route``, kept fields, answer properties, helpers."""
    props = list(topic.prompt.output_schema.get("properties", {}))
    return list(dict.fromkeys(["record_id", "model", "route", *topic.keep_fields, *props, *HELPER_COLUMNS]))


def _json_type(schema: dict[str, Any]) -> tuple[list[str], bool]:
    """``(python type names, nullable)`` of a JSON Schema property (``enum`` without type: string)."""
    types = schema.get("type", "string" if "enum" in schema else None)
    types = types if isinstance(types, list) else [types]
    names = [n for t in types if t != "null" for n in JSON_TYPES.get(t, [])]
    return names, "null" in types


def generated_expectations(topic: Topic) -> list:
    """The expectations derived from ``topic``'s metadata and output schema (see module docstring).

    Returns GX ``Expectation`` objects, each with ``meta = {"generated": True, "check": <check>}``.
    Raises ``ValueError`` when ``quality.min_answer_valid_rate`` is not a number in [0, 1].
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    def meta(check: str) -> dict[str, Any]:
        return {"generated": True, "check": check}

    schema = topic.prompt.output_schema
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    rate = topic.quality.get("min_answer_valid_rate", DEFAULT_MIN_ANSWER_VALID_RATE)
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError(f"{topic.metadata_path}: quality.min_answer_valid_rate must be a number in [0, 1]")
    out = [
        gxe.ExpectTableColumnsToMatchSet(column_set=expected_columns(topic), exact_match=True, meta=meta("schema")),
        gxe.ExpectTableRowCountToEqual(value={"$PARAMETER": "records_in"}, meta=meta("conservation")),
        gxe.ExpectColumnValuesToNotBeNull(column="record_id", meta=meta("record_id")),
        gxe.ExpectColumnValuesToBeUnique(column="record_id", meta=meta("record_id")),
        gxe.ExpectColumnValuesToBeOfType(column="record_id", type_="str", meta=meta("types")),
        gxe.ExpectColumnValuesToBeInSet(
            column="route",
            value_set=["proxy", "oracle"],
            row_condition=Column(OUTCOME) == "answered",
            meta=meta("route"),
        ),
    ]
    for name, prop in props.items():
        type_list, nullable = _json_type(prop)
        if type_list:
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=type_list, meta=meta("types")))
        if name in required and not nullable:
            out.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=name, row_condition=Column(OUTCOME) == "answered", meta=meta("types")
                )
            )
    label = topic.quality.get("label_field")
    if label and "enum" in props.get(label, {}):
        out.append(gxe.ExpectColumnValuesToBeInSet(column=label, value_set=props[label]["enum"], meta=meta("labels")))
    conf = topic.quality.get("confidence_field")
    if conf:
        out.append(gxe.ExpectColumnValuesToBeBetween(column=conf, min_value=0, max_value=1, meta=meta("confidence")))
    out.append(
        gxe.ExpectColumnValuesToBeInSet(
            column=ANSWER, value_set=["valid"], mostly=float(rate), meta=meta("answer_validity")
        )
    )
    for pattern in (EMAIL_PATTERN, PHONE_PATTERN):
        out.append(gxe.ExpectColumnValuesToNotMatchRegex(column=TEXT, regex=pattern, meta=meta("residual_pii")))
    return out


def suite_path(topic_name: str) -> Path:
    """``include/quality/<topic>.json`` (under ``PIPELINE_HUB_INCLUDE_DIR`` when set)."""
    return include_dir() / "quality" / f"{topic_name}.json"


def _expectation_dicts(expectations) -> list[dict[str, Any]]:
    out = []
    for e in expectations:
        d = e if isinstance(e, dict) else e.configuration.to_json_dict()
        d = {k: v for k, v in d.items() if k not in ("id", "rendered_content") and v is not None}
        order = ["type", "kwargs", "severity", "meta"]
        d = {k: d[k] for k in sorted(d, key=lambda k: (order.index(k) if k in order else len(order), k))}
        out.append(json.loads(json.dumps(d)))  # plain JSON values (enums, tuples → str, list)
    return out


def suite_document(topic: Topic, manual: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON document of ``include/quality/<topic>.json``: generated expectations, then ``manual`` ones."""
    return {
        "name": f"{topic.name}.{topic.version}",
        "meta": {
            "topic": topic.name,
            "prompt_version": topic.version,
            "notes": "Expectations with meta.generated are derived from metadata.yaml and the output schema: "
            "regenerate with `pipeline-hub quality export`. Others are kept as written.",
        },
        "expectations": _expectation_dicts(generated_expectations(topic)) + list(manual or []),
    }


def read_suite_file(path: Path) -> dict[str, Any] | None:
    """The parsed suite file at ``path``, or None if it does not exist. Raises :class:`QualitySuiteError`."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise QualitySuiteError(f"{path}: cannot read the GX suite: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list):
        raise QualitySuiteError(f"{path}: a GX suite needs a list 'expectations'")
    return doc


def manual_expectations(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Expectations of a suite document that are not generated (hand-written, kept by the export)."""
    return [e for e in (doc or {}).get("expectations", []) if not (e.get("meta") or {}).get("generated")]


def export_suite(topic: Topic) -> Path:
    """Write ``include/quality/<topic>.json``: regenerated expectations plus the file's manual ones."""
    path = suite_path(topic.name)
    doc = suite_document(topic, manual_expectations(read_suite_file(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def write_suites(topics: list[str] | None = None) -> list[Path]:
    """:func:`export_suite` for ``topics`` (default: every topic, prod version); the paths written."""
    from pipeline_hub.prompts.registry import list_topics, load_topic

    return [export_suite(load_topic(name)) for name in topics or list_topics()]


def stale_suites(topics: list[str] | None = None) -> list[str]:
    """Topics whose ``include/quality/<topic>.json`` is missing or whose generated part is out of date."""
    from pipeline_hub.prompts.registry import list_topics, load_topic

    stale = []
    for name in topics or list_topics():
        topic = load_topic(name)
        doc = read_suite_file(suite_path(name))
        if doc is None or doc != suite_document(topic, manual_expectations(doc)):
            stale.append(name)
    return stale


def load_suite(topic: Topic):
    """The GX ``ExpectationSuite`` a run validates ``topic`` with, and where it came from.

    Returns ``(suite, source)``: the generated expectations (always current with the metadata) plus
    the manual expectations of ``include/quality/<topic>.json``; ``source`` is that file's path, or
    ``"generated"`` when there is no file. A file whose generated part differs from the metadata is
    stale: a warning names it (``pipeline-hub quality export`` refreshes it; a test keeps it in sync).
    """
    import great_expectations as gx

    path = suite_path(topic.name)
    doc = read_suite_file(path)
    expected = suite_document(topic)
    if doc is not None:
        generated = [e for e in doc["expectations"] if (e.get("meta") or {}).get("generated")]
        if generated != expected["expectations"] or doc.get("meta", {}).get("prompt_version") != topic.version:
            log.warning("%s is stale for %s %s: run `pipeline-hub quality export`", path, topic.name, topic.version)
    expected["expectations"] += manual_expectations(doc)
    try:
        suite = gx.ExpectationSuite(**expected)
    except Exception as exc:  # a hand-written expectation GX rejects
        raise QualitySuiteError(f"{path}: invalid expectation: {exc}") from exc
    return suite, (str(path) if doc is not None else "generated")
