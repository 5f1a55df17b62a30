"""``pipeline-hub calibrate``: learn a topic version's cascade thresholds and write them as a new version.

1. The version (default: ``dev``) must have a ``cascade`` block (:mod:`pipeline_hub.cascade.spec`); its
   proxy, targets and ``delta`` are kept.
2. The labelled sample: the topic's ``examples/*.jsonl`` (:func:`pipeline_hub.lifecycle.scoring.load_examples`)
   or a JSONL file of the same shape (``{"id", "input", "expected"}``), at most ``cascade.sample`` records,
   in file order. For each, the proxy scores exactly what the prompt stage would show
   (:func:`pipeline_hub.stages.prompt_inputs.build_variables`: the top-``k`` reference candidates), and the
   record is *positive* when the proxy's best candidate is the gold answer (``expected.<match_field>``).
   The gold stands for the oracle: LOTUS labels its sample with the oracle model; with a gold set the
   cascade's guarantee is stated against the gold, given the oracle answers the band correctly. Examples
   the stage would quarantine (a missing field) are left out and counted.
3. :func:`pipeline_hub.cascade.calibration.calibrate` picks ``upper``/``lower`` (LOTUS, Patel et al.,
   VLDB 2025; SUPG, Kang et al., PVLDB 2020: precision and recall targets with probability ``1 - delta``).
4. A new version ``v<N+1>`` is appended to ``metadata.yaml``: the same template, schema and parameters, the
   cascade with ``thresholds`` (sample size, date, achieved estimates), its own changelog line; ``dev``
   moves to it. ``prod`` and every label stay, so what runs publish changes only through the gate
   (``pipeline-hub score`` / ``promote``). The rest of the file is kept byte for byte.

Only the rapidfuzz proxy on a matching topic (a ``reference_candidates`` context) can be calibrated here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.cascade.calibration import Calibration, calibrate
from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.lifecycle.pointers import PromotionError, _replace, set_pointer
from pipeline_hub.lifecycle.scoring import load_examples, parse_examples
from pipeline_hub.prompts.registry import Topic, load_topic
from pipeline_hub.stages.cascade import matching_context, proxy_score
from pipeline_hub.stages.prompt_inputs import build_variables

_VERSIONS = re.compile(r"^versions:[ \t]*(#.*)?$")


class CalibrationError(ConfigError):
    """The topic cannot be calibrated as asked (no cascade block, unsupported proxy, unreadable sample)."""


def read_sample(path: Path) -> list[dict[str, Any]]:
    """Labelled records ``{"id", "input", "expected", …}`` of a JSONL file
    (:func:`pipeline_hub.lifecycle.scoring.parse_examples`); raises :class:`CalibrationError` when the file
    cannot be read, :class:`~pipeline_hub.lifecycle.scoring.ScoreError` naming the line of a bad record."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the labelled sample ({exc.strerror})") from None
    return parse_examples(path, data)


def proxy_sample(topic: Topic, examples: list[dict[str, Any]]) -> tuple[list[float], list[bool], int]:
    """``(scores, labels, left_out)``: the proxy score in [0, 1] and whether its best candidate is the gold
    answer, per usable example; ``left_out`` counts examples without the fields the prompt needs."""
    if matching_context(topic) is None:
        raise CalibrationError(
            f"{topic.metadata_path}: the rapidfuzz proxy needs a reference_candidates context with a constrain_field"
        )
    scores, labels, left_out = [], [], 0
    for ex in examples:
        record = {"fields": ex["input"]}
        variables, _, _ = build_variables(topic, record)
        proxied = None if variables is None else proxy_score(topic, record, variables)
        if proxied is None or not isinstance(ex["expected"], dict):
            left_out += 1
            continue
        scored, candidates, ctx = proxied
        gold = ex["expected"].get(ctx["constrain_field"])
        scores.append(float(scored.score))
        labels.append(gold is not None and str(candidates[scored.index]["id"]) == str(gold))
    return scores, labels, left_out


def _append_version(meta_path: Path, name: str, block: dict[str, Any]) -> None:
    """Append ``name: block`` at the end of the top-level ``versions:`` mapping, keeping every other line."""
    text = meta_path.read_text()
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _VERSIONS.match(line.rstrip("\n"))]
    if len(starts) != 1:
        raise PromotionError(f"{meta_path}: expected one top-level 'versions:' line, found {len(starts)}")
    end = starts[0] + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
        end += 1
    while end > starts[0] + 1 and not lines[end - 1].strip():
        end -= 1  # keep blank lines after the mapping where they are
    dumped = yaml.safe_dump({name: block}, sort_keys=False, default_flow_style=None, width=120)
    new = "".join("  " + line if line.strip() else line for line in dumped.splitlines(keepends=True))
    result = "".join(lines[:end]) + ("" if lines[end - 1].endswith("\n") else "\n") + new + "".join(lines[end:])
    parsed = yaml.safe_load(result)
    if parsed["versions"].get(name) != yaml.safe_load(dumped)[name]:
        raise PromotionError(f"{meta_path}: appending {name} did not parse back; edit the file by hand")
    _replace(meta_path, result)


def _next_version(versions: dict[str, Any]) -> str:
    return f"v{max(int(v[1:]) for v in versions) + 1}"


def calibrate_topic(
    topic_name: str,
    version: str | None = None,
    sample_path: Path | None = None,
    prompts_dir: Path | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Calibrate ``topic_name`` at ``version`` (default: dev) and write ``v<N+1>``; returns what was done.

    ``{"topic", "from", "version", "sample_size", "left_out", "positives", "upper", "lower", "achieved",
    "recall_bound", "precision_bound", "reason", "metadata"}`` (bounds and estimates are shares in [0, 1]).
    Raises :class:`CalibrationError` (one line, naming the file) when the version has no cascade, its proxy
    is not rapidfuzz, or the sample cannot be read; :class:`~pipeline_hub.prompts.registry.RegistryError`
    for an unknown topic or version.
    """
    prompts = Path(prompts_dir) if prompts_dir else include_dir() / "prompts"
    topic = load_topic(topic_name, prompts, pointer="dev", version=version)
    spec = topic.prompt.cascade
    meta_path = topic.metadata_path
    if spec is None:
        raise CalibrationError(
            f"{meta_path}: version {topic.version} has no cascade block; add versions.{topic.version}.cascade: "
            "{proxy: rapidfuzz, target: {precision: 0.95, recall: 0.95}} (include/prompts/README.md)"
        )
    if spec.proxy.kind != "rapidfuzz":
        raise CalibrationError(f"{meta_path}: cascade.proxy {spec.proxy.kind} cannot be calibrated yet (rapidfuzz)")
    examples = read_sample(sample_path) if sample_path else load_examples(meta_path.parent)[0]
    scores, labels, left_out = proxy_sample(topic, examples[: spec.sample])
    result: Calibration = calibrate(scores, labels, precision=spec.precision, recall=spec.recall, delta=spec.delta)
    day = today or dt.datetime.now(dt.UTC).date()
    meta = yaml.safe_load(meta_path.read_text())
    block = json.loads(json.dumps(meta["versions"][topic.version], default=str))
    new = _next_version(meta["versions"])
    block["cascade"]["thresholds"] = result.thresholds(day).as_metadata()
    block["created"] = day.isoformat()
    block["changelog"] = (
        f"{topic.version} with cascade thresholds calibrated on {result.sample_size} labelled records "
        f"(upper {result.upper}, lower {result.lower})"
    )
    _append_version(meta_path, new, block)
    set_pointer(meta_path, "dev", new)
    return {
        "topic": topic_name,
        "from": topic.version,
        "version": new,
        "sample_size": result.sample_size,
        "left_out": left_out,
        "positives": int(sum(labels)),
        "upper": result.upper,
        "lower": result.lower,
        "achieved": vars(result.achieved),
        "recall_bound": round(result.recall_bound, 4),
        "precision_bound": round(result.precision_bound, 4),
        "reason": result.reason,
        "metadata": str(meta_path),
    }
