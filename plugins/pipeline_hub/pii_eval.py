"""Per-entity precision and recall of the scrubber on a labelled PII evaluation set (``pipeline-hub pii-eval``).

The set (``tests/data/pii_eval.jsonl``, made by ``tests/data/make_pii_eval.py``) holds CRM and business
e-mail sentences, one JSON object a line: ``{"id", "text", "spans": [{"entity", "start", "end"}]}``.

Matching is by character overlap, per entity type: a labelled span is *found* when detections of the
same entity cover at least half of its characters; a detection is *correct* when at least half of its
characters lie in labelled spans of its entity. ``coverage`` is the share of labelled characters
covered by a detection of any entity, i.e. how much would be anonymized whatever the label. This is
close to presidio-evaluator's span evaluation with an overlap threshold of 0.5.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_hub.config import REPO_DIR
from pipeline_hub.pii_engine import Detection

DEFAULT_SET = REPO_DIR / "tests" / "data" / "pii_eval.jsonl"
# Issue 4's "done when": recall per entity on the evaluation set.
RECALL_TARGETS = {
    "EMAIL_ADDRESS": 0.98,
    "PHONE_NUMBER": 0.98,
    "CREDIT_CARD": 0.98,
    "IBAN_CODE": 0.98,
    "IP_ADDRESS": 0.98,
    "US_SSN": 0.98,
    "PERSON": 0.85,
}


def load_set(path: Path | str | None = None) -> list[dict[str, Any]]:
    """Records of the evaluation set; raises ``ValueError`` naming the file and line of a malformed record."""
    path = Path(path or DEFAULT_SET)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            text = rec["text"]
            for s in rec["spans"]:
                if not (0 <= s["start"] < s["end"] <= len(text)) or not isinstance(s["entity"], str):
                    raise ValueError("span out of range")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} line {n}: malformed evaluation record ({exc})") from None
        records.append(rec)
    return records


def _covered(span: tuple[int, int], others: list[tuple[int, int]]) -> int:
    """Characters of ``span`` inside the union of ``others``."""
    start, end = span
    mask = bytearray(end - start)
    for a, b in others:
        for i in range(max(a, start), min(b, end)):
            mask[i - start] = 1
    return sum(mask)


def score(records: list[dict[str, Any]], detections: list[list[Detection]]) -> dict[str, dict[str, Any]]:
    """Per entity: ``support`` (labelled spans), ``found``, ``detected``, ``correct``, ``recall``,
    ``precision`` (None when undefined) and ``coverage`` (see module docstring)."""
    c: dict[str, Counter] = {}
    for rec, found in zip(records, detections, strict=True):
        any_span = [(d.start, d.end) for d in found]
        for s in rec["spans"]:
            e = s["entity"]
            c.setdefault(e, Counter())
            span = (s["start"], s["end"])
            same = [(d.start, d.end) for d in found if d.entity == e]
            length = span[1] - span[0]
            c[e]["support"] += 1
            c[e]["found"] += int(_covered(span, same) * 2 >= length)
            c[e]["chars"] += length
            c[e]["chars_covered"] += _covered(span, any_span)
        for d in found:
            c.setdefault(d.entity, Counter())
            gold = [(s["start"], s["end"]) for s in rec["spans"] if s["entity"] == d.entity]
            c[d.entity]["detected"] += 1
            c[d.entity]["correct"] += int(_covered((d.start, d.end), gold) * 2 >= d.end - d.start)
    report = {}
    for e in sorted(c):
        k = c[e]
        report[e] = {
            "support": k["support"],
            "found": k["found"],
            "detected": k["detected"],
            "correct": k["correct"],
            "recall": round(k["found"] / k["support"], 4) if k["support"] else None,
            "precision": round(k["correct"] / k["detected"], 4) if k["detected"] else None,
            "coverage": round(k["chars_covered"] / k["chars"], 4) if k["chars"] else None,
        }
    return report


def evaluate(
    detect: Callable[[list[str]], list[list[Detection]]] | None = None, path: Path | str | None = None
) -> dict[str, dict[str, Any]]:
    """Score ``detect`` (default: the scrubber's analyzer from ``include/pii/``) on the evaluation set."""
    records = load_set(path)
    if detect is None:
        from pipeline_hub.pii_config import ScrubConfig
        from pipeline_hub.pii_engine import PiiAnalyzer

        with PiiAnalyzer(ScrubConfig.load()) as analyzer:
            return score(records, analyzer.analyze([r["text"] for r in records]))
    return score(records, detect([r["text"] for r in records]))


def missed_targets(report: dict[str, dict[str, Any]], targets: dict[str, float] = RECALL_TARGETS) -> list[str]:
    """Entities whose recall is below its target (or absent from the set), as ``"ENTITY recall < target"``."""
    out = []
    for entity, target in targets.items():
        recall = (report.get(entity) or {}).get("recall")
        if recall is None or recall < target:
            out.append(f"{entity} recall {recall} < {target}")
    return out


def format_report(report: dict[str, dict[str, Any]], targets: dict[str, float] = RECALL_TARGETS) -> str:
    """A fixed-width table: entity, support, recall (target), precision, coverage."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [f"{'entity':30} {'support':>7} {'recall':>7} {'target':>7} {'precision':>9} {'coverage':>8}"]
    for e, r in report.items():
        target = targets.get(e)
        lines.append(
            f"{e:30} {r['support']:>7} {f(r['recall']):>7} {f(target):>7} {f(r['precision']):>9} {f(r['coverage']):>8}"
        )
    return "\n".join(lines)
