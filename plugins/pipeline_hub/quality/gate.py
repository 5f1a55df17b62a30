"""The quality gate run: one topic's records validated with its GX suite on an in-memory pandas frame,
Data Docs built and copied next to the published data (see :mod:`pipeline_hub.quality`, "The run").
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pipeline_hub.prompts.registry import Topic
from pipeline_hub.quality.checks import ANSWER, OUTCOME, TEXT, published_text, residual_pii_counts
from pipeline_hub.quality.suites import expected_columns, load_suite

# GX result format: counts and aggregates only, no unexpected values (they could be record text or PII).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
# Only these static assets of the Data Docs site are copied (the fonts and images are ~4 MB a site).
DOCS_ASSETS = ("static/styles/",)


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
