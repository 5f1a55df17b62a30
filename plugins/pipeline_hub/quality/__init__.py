"""Quality: a Great Expectations (GX Core 1.x) suite per topic, with Data Docs (run by the validate stage).

Imports: base modules and ``prompts`` (a topic's schema and metadata); never ``pii``, ``stages`` or above.

**The suite.** One per topic, stored as JSON at ``include/quality/<topic>.json`` so reviewers can read
it. Its *generated* expectations (``meta.generated: true``) are derived from the topic's
``metadata.yaml`` and output JSON Schema by :func:`generated_expectations`; ``pipeline-hub quality
export`` rewrites them and a test keeps the files in sync. Expectations added to the file by hand
(without ``meta.generated``) are kept by the export and run too. Checks, each tagged ``meta.check``:

``schema``
    the validation frame has exactly the expected columns (``record_id``, ``model``, kept fields,
    the answer's top-level properties and the three helper columns below);
``types``
    ``record_id`` is a string; each answer property holds the Python type of its JSON Schema type
    (string → ``str``, number → ``float``/``int``, integer → ``int``, boolean → ``bool``,
    object → ``dict``, array → ``list``); required, non-nullable properties are non-null in every
    answered row;
``record_id``
    non-null and unique over every record of the topic (answered and quarantined);
``labels``
    the label field (``quality.label_field``) within the schema's ``enum``;
``confidence``
    the confidence field (``quality.confidence_field``) within [0, 1];
``answer_validity``
    share of valid answers among records the LLM answered (valid or ``invalid_output``) at least
    ``quality.min_answer_valid_rate`` (default :data:`DEFAULT_MIN_ANSWER_VALID_RATE`), as
    ``expect_column_values_to_be_in_set(_answer, ["valid"], mostly=rate)``; records never sent to the
    model (rejects, ``missing_field``, ``budget_exceeded``) do not count;
``residual_pii``
    zero rows whose published text (every string leaf except lineage columns, joined into the helper
    column ``_published_text``) matches the e-mail or phone pattern (:data:`RESIDUAL_PII`). The scrub
    stage already quarantines each record still matching them (reason ``residual_pii``, naming the
    field), so this check fails only when something after it put PII back: the last gate;
``conservation``
    the frame has one row per record in (``records_in`` = staged + rejected, a suite parameter), i.e.
    in = answered + quarantined before the gate.

Every generated expectation is ``critical`` (GX ``severity``): a failed critical expectation fails the
topic's gate, and publish quarantines the topic (write-audit-publish). Hand-added expectations may use
``"severity": "warning"`` or ``"info"`` to be reported without blocking.

**The run.** GX runs inside the task on an in-memory pandas frame (one row per record of the topic)
in a throw-away file-backed GX project, through a Checkpoint whose ``UpdateDataDocsAction`` builds the
local Data Docs site; its HTML pages and stylesheets are copied to
``<sanitized root>/reports/quality/<topic>/ds=<ds>/`` (``index.html`` links the validation page) and
the manifest's ``quality.data_docs`` names it. Results use GX's ``SUMMARY`` format with
``partial_unexpected_count: 0``: counts and aggregates, never record values, reach results, Data Docs,
logs or the manifest.

The GX Airflow provider is not used: it pins ``structlog<25.5``, which conflicts with Airflow 3.3,
and loads data at DAG-parse time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import QualityError
from pipeline_hub.prompts.registry import Topic

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = [
    "record_id",
    "batch_hash",
    "prompt_name",
    "prompt_version",
    "template_sha256",
    "model",
    "run_id",
]
# RFC 5322-ish address (any TLD of 2+ letters: also internal ones such as ``.internal``, which the
# analyzer's public-suffix check skips).
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
# NANP numbers as people and CRMs write them (ITU-T E.123 and the NANPA's 3-3-4 plan): an optional
# ``+1``, ``1`` or ``001`` prefix, the area code with or without parentheses (and with or without a
# space after them), dots, dashes or spaces between groups, and an optional extension (``x123``,
# ``ext. 123``, ``extension 123``, ``#123``): ``(415)555-0132``, ``415.555.0132x4471``,
# ``001-415-555-0132x9221``, ``+1 415 555 0132``; or E.164-style international (``+49 30 1234 5678``).
# A number inside a longer digit run (``2025-415-555-0132-7``, order/invoice numbers) and dates
# (``2025-01-15``, ``01/15/2025``) do not match; a bare ``4155550132`` does not either (the analyzer's
# context-aware phone recognizer handles it).
_BEFORE = r"(?<![\w+])(?<!\d[.-])"
_EXTENSION = r"(?:\s*(?:x|ext\.?|extension|#)\s*\d{1,6})?"
_AFTER = r"(?![.-]?\d)"
PHONE_PATTERN = (
    rf"{_BEFORE}(?:(?:\+|00)?1[\s.-]?)?(?:\(\d{{3}}\)\s?|\d{{3}}[\s.-])\d{{3}}[\s.-]\d{{4}}{_EXTENSION}{_AFTER}"
    rf"|{_BEFORE}\+\d{{1,3}}(?:[\s.-]?\d{{2,4}}){{2,5}}{_EXTENSION}{_AFTER}"
)
RESIDUAL_PII = {"email": re.compile(EMAIL_PATTERN), "phone": re.compile(PHONE_PATTERN)}

DEFAULT_MIN_ANSWER_VALID_RATE = 0.8
# Helper columns of the validation frame (never published).
OUTCOME = "_outcome"  # "answered" (a valid answer, to be published) or "quarantined"
ANSWER = "_answer"  # "valid", "invalid" (invalid_output) or null (never answered by the model)
TEXT = "_published_text"
HELPER_COLUMNS = [OUTCOME, ANSWER, TEXT]
# GX result format: counts and aggregates only, no unexpected values (they could be record text or PII).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
JSON_TYPES = {
    "string": ["str"],
    "number": ["float", "int"],
    "integer": ["int"],
    "boolean": ["bool"],
    "object": ["dict"],
    "array": ["list"],
}
# Only these static assets of the Data Docs site are copied (the fonts and images are ~4 MB a site).
DOCS_ASSETS = ("static/styles/",)


class QualitySuiteError(QualityError, ValueError):
    """A suite file under ``include/quality/`` cannot be read or parsed (message names the file)."""


def string_leaves(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (a JSON-like value: str, dict, list), depth first; others skipped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from string_leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from string_leaves(v)


def published_text(row: dict[str, Any]) -> str:
    """All string values of a published row (nested too) except lineage columns, newline-joined."""
    return "\n".join(s for k, v in row.items() if k not in LINEAGE_COLUMNS for s in string_leaves(v))


def residual_pii_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Rows whose published text still matches the e-mail / phone patterns, per pattern."""
    texts = [published_text(r) for r in rows]
    return {name: sum(1 for t in texts if rx.search(t)) for name, rx in RESIDUAL_PII.items()}


def expected_columns(topic: Topic) -> list[str]:
    """Columns of the validation frame: ``record_id``, ``model``, kept fields, answer properties, helpers."""
    props = list(topic.prompt.output_schema.get("properties", {}))
    return list(dict.fromkeys(["record_id", "model", *topic.keep_fields, *props, *HELPER_COLUMNS]))


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


def validation_frame(topic: Topic, rows: list[dict[str, Any]], quarantine: list[dict[str, Any]]):
    """One row per record of the topic: answered ``rows`` (scrubbed) then ``quarantine`` entries.

    Columns: those of the rows (reindexed to :func:`expected_columns`, missing ones null) plus the
    helpers ``_outcome``, ``_answer`` and ``_published_text``. Quarantined records contribute only
    ``record_id`` and helpers (never their detail or raw answer). Object dtype keeps Python types.
    """
    import pandas as pd

    answered = [{**r, OUTCOME: "answered", ANSWER: "valid", TEXT: published_text(r)} for r in rows]
    held = [
        {
            "record_id": q.get("record_id"),
            OUTCOME: "quarantined",
            ANSWER: "invalid" if q.get("reason") == "invalid_output" else None,
            TEXT: "",
        }
        for q in quarantine
    ]
    frame = pd.DataFrame(answered + held, dtype=object)
    columns = list(dict.fromkeys([*expected_columns(topic), *frame.columns]))
    return frame.reindex(columns=columns).astype(object)


def _summary_of(result, suite_name: str, source: str, evaluated: int) -> dict[str, Any]:
    expectations = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        severity = getattr(cfg, "severity", None)
        entry = {
            "type": cfg.type,
            "column": cfg.kwargs.get("column"),
            "check": (cfg.meta or {}).get("check"),
            "severity": str(getattr(severity, "value", severity) or "critical"),
            "success": bool(r.success),
            "unexpected_count": int(res.get("unexpected_count") or 0),
        }
        observed = res.get("observed_value")
        if isinstance(observed, int | float) and not isinstance(observed, bool):
            entry["observed_value"] = float(observed) if isinstance(observed, float) else int(observed)
        if r.exception_info and r.exception_info.get("raised_exception"):
            entry["error"] = str(r.exception_info.get("exception_message"))[:300]
        expectations.append(entry)
    blocking = [e for e in expectations if not e["success"] and e["severity"] == "critical"]
    return {
        "success": not blocking,
        "suite": suite_name,
        "suite_source": source,
        "evaluated": evaluated,
        "expectations": expectations,
    }


def _docs_files(site: Path) -> list[Path]:
    """Files of a built Data Docs site worth publishing: HTML pages and stylesheets."""
    return sorted(
        p
        for p in site.rglob("*")
        if p.is_file() and (p.suffix == ".html" or p.relative_to(site).as_posix().startswith(DOCS_ASSETS))
    )


def publish_docs(site: Path, target) -> str:
    """Copy the Data Docs ``site`` (local dir) to ``target`` (ObjectStoragePath), replacing what was there.

    Returns the public URI of ``target/index.html``.
    """
    from pipeline_hub import storage

    if target.exists():
        target.fs.rm(target.path, recursive=True)
    for f in _docs_files(site):
        dest = storage.join(target, *f.relative_to(site).parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    return storage.public_uri(target / "index.html")


def validate_topic(
    topic: Topic,
    rows: list[dict[str, Any]],
    quarantine: list[dict[str, Any]],
    *,
    records_in: int,
    run_name: str = "run",
    docs_target=None,
) -> dict[str, Any]:
    """Validate one topic's records with its suite (:func:`load_suite`); build Data Docs.

    ``rows`` are the scrubbed answered rows, ``quarantine`` the records quarantined so far (with
    ``reason``), ``records_in`` the topic's records in (staged + rejected). ``docs_target`` (an
    ObjectStoragePath) receives the Data Docs site. Returns ``{"success", "suite", "suite_source",
    "evaluated", "expectations": [{"type", "column", "check", "severity", "success",
    "unexpected_count", "observed_value"?, "error"?}], "answer_valid_rate", "residual_pii":
    {"email", "phone"}, "data_docs"}``; ``success`` is false iff a ``critical`` expectation failed.
    A topic without records passes trivially (nothing evaluated, no Data Docs).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    suite, source = load_suite(topic)
    valid = len(rows)
    invalid = sum(1 for q in quarantine if q.get("reason") == "invalid_output")
    extra = {
        "answer_valid_rate": round(valid / (valid + invalid), 4) if valid + invalid else None,
        "residual_pii": residual_pii_counts(rows),
        "data_docs": None,
    }
    if not rows and not quarantine:
        return {
            "success": True,
            "suite": suite.name,
            "suite_source": source,
            "evaluated": 0,
            "expectations": [],
            **extra,
        }
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    frame = validation_frame(topic, rows, quarantine)
    with tempfile.TemporaryDirectory(prefix="pipeline-hub-gx-") as tmp:
        context = gx.get_context(mode="file", project_root_dir=tmp)
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # older/newer GX without this knob: progress bars are cosmetic
            pass
        batch_definition = (
            context.data_sources.add_pandas("pipeline_hub")
            .add_dataframe_asset(topic.name)
            .add_batch_definition_whole_dataframe("records")
        )
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{topic.name}_gate",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format=RESULT_FORMAT,
            )
        )
        run = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={"records_in": int(records_in)},
            run_id=RunIdentifier(run_name=re.sub(r"[^A-Za-z0-9._-]+", "_", run_name)),
        )
        (result,) = run.run_results.values()
        summary = _summary_of(result, suite.name, source, len(frame))
        if docs_target is not None:
            site = Path(tmp) / "gx" / "uncommitted" / "data_docs" / "local_site"
            extra["data_docs"] = publish_docs(site, docs_target)
    return {**summary, **extra}


def failed_expectations(result: dict[str, Any]) -> list[str]:
    """``["expect_…(column)", …]``: the failed *blocking* (critical) expectations of a validation summary."""
    return [
        e["type"] + (f"({e['column']})" if e["column"] else "")
        for e in result["expectations"]
        if not e["success"] and e.get("severity", "critical") == "critical"
    ]
