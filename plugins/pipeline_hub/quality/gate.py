"""The quality gate run: one topic's records validated with its GX suite on an in-memory pandas frame,
Data Docs built and copied next to the published data (see :mod:`pipeline_hub.quality`, "The run").
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline_hub.prompts.registry import Topic
from pipeline_hub.quality.checks import ANSWER, OUTCOME, RESIDUAL_PII, TEXT, published_text
from pipeline_hub.quality.suites import expected_columns, load_suite

# GX result format: counts and aggregates only, no unexpected values (they could be record text or PII).
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
# Only these static assets of the Data Docs site are copied (the fonts and images are ~4 MB a site).
DOCS_ASSETS = ("static/styles/",)


VALIDATE_BATCH_RECORDS = 100_000  # records per GX validation batch (setting validate_batch_records)


class ValidationFrame:
    """One batch of a topic's validation frame, built column by column from tagged records.

    ``records`` yields ``(answered, record)``: scrubbed answered rows (``True``) and quarantine entries
    (``False``); only the column lists are held, never a dict per record. One row per record. Columns:
    those of the rows (:func:`expected_columns` first, missing ones null) plus the helpers ``_outcome``,
    ``_answer`` and ``_published_text``. Quarantined records contribute only ``record_id`` and helpers
    (never their detail or raw answer). :attr:`frame` is a pandas DataFrame of object dtype (Python types
    kept, as GX's type expectations need). Also counted on the way: ``valid`` (answered rows),
    ``invalid`` (``invalid_output`` quarantine rows) and ``residual_pii`` (answered rows whose published
    text matches each :data:`~pipeline_hub.quality.checks.RESIDUAL_PII` pattern).
    """

    def __init__(self, topic: Topic, records: Iterable[tuple[bool, dict[str, Any]]]) -> None:
        import pandas as pd

        columns: dict[str, list] = {c: [] for c in expected_columns(topic)}
        self.valid = self.invalid = 0
        self.residual_pii = dict.fromkeys(RESIDUAL_PII, 0)
        n = 0
        for answered, r in records:
            if answered:
                text = published_text(r)
                for name, rx in RESIDUAL_PII.items():
                    self.residual_pii[name] += bool(rx.search(text))
                row = {**r, OUTCOME: "answered", ANSWER: "valid", TEXT: text}
                self.valid += 1
            else:
                invalid = r.get("reason") == "invalid_output"
                self.invalid += invalid
                answer = "invalid" if invalid else None
                row = {"record_id": r.get("record_id"), OUTCOME: "quarantined", ANSWER: answer, TEXT: ""}
            for key in row.keys() - columns.keys():
                columns[key] = [None] * n
            for key, column in columns.items():
                column.append(row.get(key))
            n += 1
        # Column by column, each list freed once it is an object array (pandas keeps lists and dicts as values).
        series = {key: pd.Series(columns.pop(key), dtype=object) for key in list(columns)}
        self.frame = pd.DataFrame(series, dtype=object)


def validation_batches(
    topic: Topic, rows: Iterable[dict[str, Any]], quarantine: Iterable[dict[str, Any]], batch_records: int
) -> Iterator[tuple[ValidationFrame, bool]]:
    """``(batch, is_last)`` over ``rows`` then ``quarantine``, at most ``batch_records`` records a batch.

    Reads each input once, lazily (one batch in memory; ``is_last`` is known by reading one record ahead).
    At least one batch, empty when there are no records. Raises ``ValueError`` when ``batch_records`` < 1.
    """
    if batch_records < 1:
        raise ValueError(f"validate_batch_records must be >= 1, got {batch_records}")
    tagged = itertools.chain(((True, r) for r in rows), ((False, q) for q in quarantine))
    ahead = next(tagged, None)
    while True:
        head = [] if ahead is None else [ahead]
        batch = ValidationFrame(topic, itertools.chain(head, itertools.islice(tagged, batch_records - len(head))))
        ahead = next(tagged, None)
        yield batch, ahead is None
        if ahead is None:
            return


def _entries(result) -> list[dict[str, Any]]:
    """One summary entry per expectation of a GX validation result (counts and numbers only, no values).

    Also ``_elements`` (non-missing values evaluated, for combining ``mostly`` across batches) and
    ``_mostly`` (the expectation's ``mostly``, or None); :func:`_combine` drops both.
    """
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
            "_elements": int(res.get("element_count") or 0) - int(res.get("missing_count") or 0),
            "_mostly": cfg.kwargs.get("mostly"),
        }
        observed = res.get("observed_value")
        if isinstance(observed, int | float) and not isinstance(observed, bool):
            entry["observed_value"] = float(observed) if isinstance(observed, float) else int(observed)
        if r.exception_info and r.exception_info.get("raised_exception"):
            entry["error"] = str(r.exception_info.get("exception_message"))[:300]
        expectations.append(entry)
    return expectations


def _combine(batches: list[list[dict[str, Any]]], records_in: int, duplicate_ids: int) -> list[dict[str, Any]]:
    """The topic's expectation entries from its batches' (same suite, same order).

    One batch: GX's own verdicts. Several: ``unexpected_count`` is summed; the row count is the sum of
    the batches' (``observed_value``) against ``records_in``; ``record_id`` uniqueness counts the rows
    whose id occurs more than once in the whole topic (``duplicate_ids``); an expectation with
    ``mostly`` passes when the topic's share of expected values is at least ``mostly`` (GX's rule for
    one batch, over the summed counts); any other passes when it passed in every batch (exact for
    per-value checks; an aggregate, such as a manual mean, is then judged per batch).
    """
    out = []
    for parts in zip(*batches, strict=True):
        first = parts[0]
        entry = {k: v for k, v in first.items() if not k.startswith("_") and k != "observed_value"}
        if len(parts) == 1:
            entry.update({k: first[k] for k in ("observed_value",) if k in first})
        else:
            entry["unexpected_count"] = sum(p["unexpected_count"] for p in parts)
            entry["success"] = all(p["success"] for p in parts)
            errors = [p["error"] for p in parts if "error" in p]
            if errors:
                entry["error"] = errors[0]
            if first["type"] == "expect_table_row_count_to_equal":
                entry["observed_value"] = sum(int(p.get("observed_value") or 0) for p in parts)
                entry["success"] = entry["observed_value"] == records_in and not errors
            elif first["type"] == "expect_column_values_to_be_unique" and first["column"] == "record_id":
                entry["unexpected_count"] = duplicate_ids
                entry["success"] = duplicate_ids == 0 and not errors
            elif first["_mostly"] is not None:
                elements = sum(p["_elements"] for p in parts)
                share = (elements - entry["unexpected_count"]) / elements if elements else 1.0
                entry["success"] = share >= float(first["_mostly"]) and not errors
        out.append(entry)
    return out


def _duplicate_ids(hashes: list) -> int:
    """Rows whose ``record_id`` occurs more than once, from the batches' 64-bit hashes of their ids."""
    import numpy as np

    if not hashes:
        return 0
    _, counts = np.unique(np.concatenate(hashes), return_counts=True)
    return int(counts[counts > 1].sum())


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
    rows: Iterable[dict[str, Any]],
    quarantine: Iterable[dict[str, Any]],
    *,
    records_in: int,
    run_name: str = "run",
    docs_target=None,
    batch_records: int = VALIDATE_BATCH_RECORDS,
) -> dict[str, Any]:
    """Validate one topic's records with its suite (:func:`load_suite`); build Data Docs.

    ``rows`` are the scrubbed answered rows, ``quarantine`` the records quarantined so far (with
    ``reason``), each any iterable (read once, into :class:`ValidationFrame`); ``records_in`` is the
    topic's records in (staged + rejected). ``docs_target`` (an ObjectStoragePath) receives the Data
    Docs site. Returns ``{"success", "suite", "suite_source", "evaluated", "expectations": [{"type",
    "column", "check", "severity", "success", "unexpected_count", "observed_value"?, "error"?}],
    "answer_valid_rate", "residual_pii": {"email", "phone"}, "data_docs"}``; ``success`` is false iff a
    ``critical`` expectation failed. A topic without records passes trivially (nothing evaluated, no
    Data Docs).

    Memory is bounded by ``batch_records``: a topic with more records is validated in batches of that
    many (one GX validation each, ``<run_name>-batch0000``, … in the Data Docs) and the verdicts are
    combined over the topic (:func:`_combine`). Raises ``ValueError`` when ``batch_records`` < 1.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    suite, source = load_suite(topic)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    valid = invalid = evaluated = 0
    residual = dict.fromkeys(RESIDUAL_PII, 0)
    entries, id_hashes = [], []
    run_name = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name)
    data_docs = None
    with tempfile.TemporaryDirectory(prefix="pipeline-hub-gx-") as tmp:
        checkpoint = None
        for index, (batch, last) in enumerate(validation_batches(topic, rows, quarantine, batch_records)):
            valid, invalid = valid + batch.valid, invalid + batch.invalid
            residual = {k: residual[k] + batch.residual_pii[k] for k in residual}
            frame, only = batch.frame, index == 0 and last
            del batch
            if frame.empty:
                break
            evaluated += len(frame)
            if not only:
                id_hashes.append(pd.util.hash_pandas_object(frame["record_id"], index=False).to_numpy())
            if checkpoint is None:
                checkpoint = _checkpoint(gx, tmp, topic, suite)
            run = checkpoint.run(
                batch_parameters={"dataframe": frame},
                # One batch: the topic's records in; several: each batch's own (summed by _combine).
                expectation_parameters={"records_in": int(records_in if only else len(frame))},
                run_id=RunIdentifier(run_name=run_name if only else f"{run_name}-batch{index:04d}"),
            )
            del frame
            (result,) = run.run_results.values()
            entries.append(_entries(result))
        if checkpoint is not None and docs_target is not None:
            site = Path(tmp) / "gx" / "uncommitted" / "data_docs" / "local_site"
            data_docs = publish_docs(site, docs_target)
    expectations = _combine(entries, int(records_in), _duplicate_ids(id_hashes)) if entries else []
    blocking = [e for e in expectations if not e["success"] and e["severity"] == "critical"]
    return {
        "success": not blocking,
        "suite": suite.name,
        "suite_source": source,
        "evaluated": evaluated,
        "expectations": expectations,
        "answer_valid_rate": round(valid / (valid + invalid), 4) if valid + invalid else None,
        "residual_pii": residual,
        "data_docs": data_docs,
    }


def _checkpoint(gx, root: str, topic: Topic, suite):
    """A file-mode GX context under ``root`` with one pandas dataframe asset, ``suite`` and a checkpoint
    that builds Data Docs (:data:`RESULT_FORMAT`)."""
    context = gx.get_context(mode="file", project_root_dir=root)
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
    return context.checkpoints.add(
        gx.Checkpoint(
            name=f"{topic.name}_gate",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format=RESULT_FORMAT,
        )
    )
