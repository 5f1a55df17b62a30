"""Per-entity precision and recall of the scrubber on a labelled PII evaluation set (``pipeline-hub pii-eval``).

The set (``tests/data/pii_eval.jsonl``, made by ``tests/data/make_pii_eval.py``) holds CRM and business
e-mail sentences, one JSON object a line: ``{"id", "text", "spans": [{"entity", "start", "end"}]}``.

Matching is by character overlap, per entity type: a labelled span is *found* when detections of the
same entity cover at least half of its characters; a detection is *correct* when at least half of its
characters lie in labelled spans of its entity. ``coverage`` is the share of labelled characters
covered by a detection of any entity, i.e. how much would be anonymized whatever the label. This is
close to presidio-evaluator's span evaluation with an overlap threshold of 0.5.

A directory instead of a file is read as the Quagga annotated Enron e-mails (HPI-Information-Systems/Quagga,
``Datasets/Enron/annotated_detailled/``, GPL-3.0 annotations; e.g. ``../shared/data/enron_quagga/eval``):
each ``<name>.txt.ann`` is JSON with ``text`` and ``denotations[{start, end, text, type}]``; see
:func:`load_quagga` for how its types map to entities. Entities absent from a set have no target.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_hub.config import include_dir
from pipeline_hub.pii.engine import Detection


def default_set() -> Path:
    """The labelled set of the checkout: ``tests/data/pii_eval.jsonl`` next to the include dir."""
    return include_dir().parent / "tests" / "data" / "pii_eval.jsonl"


# Issue 4's "done when": recall per entity on the evaluation set.
RECALL_TARGETS = {
    "EMAIL_ADDRESS": 0.98,
    "PHONE_NUMBER": 0.98,
    "CREDIT_CARD": 0.98,
    "IBAN_CODE": 0.98,
    "IP_ADDRESS": 0.98,
    "US_SSN": 0.98,
    "SECRET": 0.98,
    "PERSON": 0.90,
    "STREET_ADDRESS": 0.90,
}


def load_set(path: Path | str | None = None) -> list[dict[str, Any]]:
    """Records of the evaluation set; raises ``ValueError`` naming the file and line of a malformed record.

    A directory is read with :func:`load_quagga`.
    """
    path = Path(path or default_set())
    if path.is_dir():
        return load_quagga(path)
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


# Quagga denotation types -> entity (PERSON also for every type ending in "/Name").
QUAGGA_TYPES = {
    "Body/Signature/Phone": "PHONE_NUMBER",
    "Body/Signature/Fax": "PHONE_NUMBER",
    "Body/Signature/Mail": "EMAIL_ADDRESS",
    "Body/Signature/Address": "STREET_ADDRESS",
}


def load_quagga(folder: Path | str) -> list[dict[str, Any]]:
    """Records ``{"id", "text", "spans"}`` from the Quagga ``*.txt.ann`` files of ``folder`` (sorted by name).

    ``PERSON``: header persons (``Header/Person/From``, ``/To``, ``/Cc``) and names in the body
    (``Body/Intro/Name``, ``Body/Outro/Name``, ``Body/Signature/Name``), initials included; a header
    person written as an e-mail address is ``EMAIL_ADDRESS``. Signature phones and faxes are
    ``PHONE_NUMBER``, signature mail ``EMAIL_ADDRESS``, signature addresses ``STREET_ADDRESS``. Spans
    are trimmed of surrounding blanks and punctuation. Raises ``ValueError`` naming a malformed file.
    """
    records = []
    files = sorted(Path(folder).glob("*.txt.ann"))
    if not files:
        raise ValueError(f"{folder}: no Quagga annotation files (*.txt.ann)")
    for f in files:
        try:
            ann = json.loads(f.read_text(encoding="utf-8"))
            text, spans = ann["text"], []
            for d in ann["denotations"]:
                kind = d["type"]
                entity = QUAGGA_TYPES.get(kind)
                if kind.startswith("Header/Person") or kind.endswith("/Name"):
                    entity = "EMAIL_ADDRESS" if "@" in text[d["start"] : d["end"]] else "PERSON"
                span = _trim_span(text, d["start"], d["end"]) if entity else None
                if span:
                    spans.append({"entity": entity, "start": span[0], "end": span[1]})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f}: malformed Quagga annotation ({exc})") from None
        records.append({"id": f.name.removesuffix(".txt.ann"), "text": text, "spans": spans})
    return records


def _trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and not (text[start].isalnum() or text[start] in "+("):
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return (start, end) if end > start else None


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
        from pipeline_hub.pii.config import ScrubConfig
        from pipeline_hub.pii.engine import PiiAnalyzer

        with PiiAnalyzer(ScrubConfig.load()) as analyzer:
            return score(records, analyzer.analyze([r["text"] for r in records]))
    return score(records, detect([r["text"] for r in records]))


def missed_targets(report: dict[str, dict[str, Any]], targets: dict[str, float] = RECALL_TARGETS) -> list[str]:
    """Entities of the set whose recall is below its target, as ``"ENTITY recall < target"`` (entities with
    no labelled span in the set have no recall and are not listed)."""
    out = []
    for entity, target in targets.items():
        recall = (report.get(entity) or {}).get("recall")
        if recall is not None and recall < target:
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
