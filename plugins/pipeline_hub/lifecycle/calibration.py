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

The two proxies:

- ``rapidfuzz`` (a matching topic with a ``reference_candidates`` context): no call; step 2 as above.
- ``model:<conn_id>/<model>`` (:func:`model_proxy_sample`): the labelled records go through the production
  prompt stage twice over the provider connection ``conn_id`` (``pipeline-hub calibrate --conn-id``, the
  run connection; the topic's routes apply on top, as in ``score``) and the response cache: once with the
  proxy accepting every valid answer (its answers and confidences, exactly as a run would get them; an
  invalid or failed proxy answer scores 0 and is negative: a run never accepts it), once with the proxy
  off (the oracle's answers, on the cascade's ``oracle`` route). A record is *positive* when the proxy's
  answer agrees with the oracle's (LOTUS labels its sample with the oracle; the gold is not read):
  classification, the ``label_field`` equal; matching, the ``match_field`` equal; extraction, the items
  equal under the topic's ``evaluation`` matching (:func:`pipeline_hub.lifecycle.metrics.extraction_metrics`,
  no false positive and no false negative). Records either pass quarantines (a missing field, an oracle
  answer invalid after its repair, a provider error) are left out and counted. Only ``upper`` is learned
  (:func:`pipeline_hub.cascade.calibration.calibrate_accept_only`): a model proxy never rejects, so
  ``lower`` is 0 and ``target.recall`` is not used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.cascade.calibration import Calibration, calibrate, calibrate_accept_only
from pipeline_hub.cascade.spec import Thresholds
from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.lifecycle import metrics
from pipeline_hub.lifecycle.pointers import PromotionError, _replace, set_pointer
from pipeline_hub.lifecycle.scoring import load_examples, parse_examples, topic_metadata
from pipeline_hub.prompts.registry import Topic, load_topic
from pipeline_hub.stages.cascade import PROXY_ROUTE, matching_context, model_proxy_score, proxy_score
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


def answers_agree(evaluation: dict[str, Any], proxy: list[dict | None], oracle: list[dict]) -> list[bool]:
    """Per record, whether the proxy's answer agrees with the oracle's under the topic's ``evaluation``.

    ``proxy``/``oracle``: parsed answers in record order (a proxy answer None never agrees).
    Classification: ``label_field`` equal; matching: ``match_field`` equal (as text, None = no match);
    extraction: the ``items`` lists match item for item under the evaluation's field rules (fuzzy text,
    e-mail, phone: :func:`pipeline_hub.lifecycle.metrics.extraction_metrics`), no fp and no fn. Raises
    :class:`CalibrationError` for another task.
    """
    task = evaluation.get("task")
    if task in ("classification", "matching"):
        key = evaluation["label_field" if task == "classification" else "match_field"]

        def text(answer: dict) -> str | None:
            value = answer.get(key)
            return None if value is None else str(value)

        return [p is not None and text(p) == text(o) for p, o in zip(proxy, oracle, strict=True)]
    if task == "extraction":
        items = evaluation["items"]
        found = metrics.extraction_metrics(
            [o.get(items) or [] for o in oracle],
            [None if p is None else p.get(items) or [] for p in proxy],
            dict(evaluation["fields"]),
            fuzzy_threshold=float(evaluation.get("fuzzy_threshold", 80)),
            region=str(evaluation.get("phone_region", "US")),
        )["per_example"]
        return [p is not None and c["fp"] == 0 and c["fn"] == 0 for p, c in zip(proxy, found, strict=True)]
    raise CalibrationError(f"evaluation.task must be classification, extraction or matching, not {task!r}")


def _with_thresholds(topic: Topic, thresholds: Thresholds | None) -> Topic:
    """``topic`` whose cascade has ``thresholds`` instead of its own (in memory only)."""
    cascade = dataclasses.replace(topic.prompt.cascade, thresholds=thresholds)
    return dataclasses.replace(topic, prompt=dataclasses.replace(topic.prompt, cascade=cascade))


def model_proxy_sample(
    topic: Topic, examples: list[dict[str, Any]], conn_id: str, cache=None
) -> tuple[list[float], list[bool], int]:
    """``(scores, labels, left_out)`` of a ``model:`` proxy on labelled ``examples`` (see the module docstring).

    ``scores``: the proxy answer's confidence in [0, 1] (0 for an invalid, failed or confidence-less
    answer); ``labels``: the proxy agrees with the oracle; ``left_out``: examples quarantined by either
    pass. ``conn_id`` is the run connection; ``cache`` the response cache (default: ``open_cache()``).
    Raises :class:`~pipeline_hub.exceptions.ConfigError` naming a connection Airflow does not define (and
    the metadata file), and the provider's errors (one line) when a model refuses or the breaker trips.
    """
    from pipeline_hub.providers.cache import open_cache
    from pipeline_hub.providers.routing import get_hook, require_connection, resolve_routes
    from pipeline_hub.stages.prompt import prompt_records

    spec = topic.prompt.cascade
    where = topic.metadata_path
    require_connection(conn_id, f"{where}: the oracle's (--conn-id)")
    require_connection(str(spec.proxy.conn_id), f"{where}: cascade.proxy")
    routes = resolve_routes(topic.provider, conn_id, get_hook(conn_id).model)
    for name in ("long_input", "fallback"):
        if routes.get(name):
            require_connection(routes[name]["conn_id"], f"{where}: provider.{name}")
    hook = get_hook(routes["primary"]["conn_id"], routes["primary"]["model"])
    records = [
        {"record_id": ex["id"], "source_uri": f"sample/{ex.get('file', '')}", "position": i, "fields": ex["input"]}
        for i, ex in enumerate(examples, start=1)
    ]
    cache = cache or open_cache()
    accept_all = Thresholds(upper=0.0, lower=0.0, sample_size=0, calibrated_at=dt.date(1970, 1, 1))
    proxied, _ = prompt_records(hook, _with_thresholds(topic, accept_all), records, cache=cache, routes=routes)
    answered, _ = prompt_records(hook, _with_thresholds(topic, None), records, cache=cache, routes=routes)
    proxy_answers, oracle_answers, scores = [], [], []
    for p, o in zip(proxied, answered, strict=True):
        if p["status"] != "ok" or o["status"] != "ok":
            continue
        mine = p["answer"] if p["usage"].get("cascade") == PROXY_ROUTE else None
        score = None if mine is None else model_proxy_score(topic, mine)
        proxy_answers.append(None if score is None else mine)
        oracle_answers.append(o["answer"])
        scores.append(0.0 if score is None else score)
    evaluation = topic_metadata(topic).get("evaluation") or {}
    labels = answers_agree(evaluation, proxy_answers, oracle_answers)
    return scores, labels, len(examples) - len(scores)


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
    conn_id: str = "llm_default",
    cache=None,
) -> dict[str, Any]:
    """Calibrate ``topic_name`` at ``version`` (default: dev) and write ``v<N+1>``; returns what was done.

    ``{"topic", "from", "version", "proxy", "sample_size", "left_out", "positives", "upper", "lower",
    "achieved", "recall_bound", "precision_bound", "reason", "metadata"}`` (bounds and estimates are shares
    in [0, 1]; a model proxy's ``positives`` are the records where it agrees with the oracle). ``conn_id``
    (the run connection) and ``cache`` (the response cache) serve a ``model:`` proxy only. Raises
    :class:`CalibrationError` (one line, naming the file) when the version has no cascade, its proxy is
    ``none``, or the sample cannot be read; a :class:`~pipeline_hub.exceptions.ConfigError` naming the
    connection and the file when a model proxy's connection (or ``conn_id``) is not defined;
    :class:`~pipeline_hub.prompts.registry.RegistryError` for an unknown topic or version.
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
    if spec.proxy.kind == "none":
        raise CalibrationError(f"{meta_path}: cascade.proxy none has nothing to calibrate (rapidfuzz or model:)")
    examples = read_sample(sample_path) if sample_path else load_examples(meta_path.parent)[0]
    if spec.proxy.kind == "model":
        scores, labels, left_out = model_proxy_sample(topic, examples[: spec.sample], conn_id, cache)
        result: Calibration = calibrate_accept_only(scores, labels, precision=spec.precision, delta=spec.delta)
    else:
        scores, labels, left_out = proxy_sample(topic, examples[: spec.sample])
        result = calibrate(scores, labels, precision=spec.precision, recall=spec.recall, delta=spec.delta)
    day = today or dt.datetime.now(dt.UTC).date()
    meta = yaml.safe_load(meta_path.read_text())
    block = json.loads(json.dumps(meta["versions"][topic.version], default=str))
    new = _next_version(meta["versions"])
    block["cascade"]["thresholds"] = result.thresholds(day).as_metadata()
    block["created"] = day.isoformat()
    proxy = "rapidfuzz" if spec.proxy.kind == "rapidfuzz" else f"model:{spec.proxy.conn_id}/{spec.proxy.model}"
    block["changelog"] = (
        f"{topic.version} with cascade thresholds ({proxy}) calibrated on {result.sample_size} labelled records "
        f"(upper {result.upper}, lower {result.lower})"
    )
    _append_version(meta_path, new, block)
    set_pointer(meta_path, "dev", new)
    return {
        "topic": topic_name,
        "from": topic.version,
        "version": new,
        "proxy": proxy,
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
