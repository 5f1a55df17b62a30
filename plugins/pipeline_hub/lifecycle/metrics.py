"""Quality metrics of a prompt version against labelled examples (used by ``pipeline-hub score``).

Three task kinds, chosen by ``evaluation.task`` in ``metadata.yaml``:

classification
    accuracy, macro-F1 (unweighted mean of per-class F1 over the classes present in the gold labels or
    the predictions, as scikit-learn's ``f1_score(average="macro")``), per-class precision / recall / F1
    with support, and the confusion matrix (rows = gold, columns = predicted, plus ``(invalid)`` for
    examples without a schema-valid answer). An invalid answer counts as wrong.
extraction
    precision / recall / F1 over *normalised items*, micro-averaged over all examples: an item is one
    (field, value) pair of an extracted object (each element for list-valued fields such as
    ``techniques``); nulls and values empty after normalisation are not items. Gold and predicted
    items are matched one to one, exactly after normalisation, or for ``fuzzy`` fields greedily by
    RapidFuzz ``token_set_ratio`` ≥ ``fuzzy_threshold``. Per-field figures come with the totals.
matching
    precision / recall / F1 of match decisions: a true positive is a predicted id equal to the gold
    id; a false positive any other predicted id (a wrong company, or a match where gold says none); a
    false negative a gold id not predicted (missed, wrong or invalid). Correct "no match" decisions are
    reported as ``no_match`` precision / recall / F1 and counted in ``accuracy``.

Normalisers (for extraction):

``text``
    Unicode NFKC, case-folded, whitespace runs collapsed to one space, surrounding spaces and
    punctuation (``.,;:!?"'()[]{}<>``) stripped.
``email``
    ``text``, then a ``mailto:`` prefix dropped: e-mail addresses compare case-insensitively (the
    local part is case-sensitive by RFC 5321 §2.4, but no provider treats it so).
``phone``
    parsed with ``phonenumbers`` (Google libphonenumber) in ``phone_region`` (default US) and written
    E.164 (``+17135551234``) when it is a possible number; otherwise its digits only.
``fuzzy``
    ``text``; matched by RapidFuzz ``token_set_ratio`` (0-100) ≥ ``fuzzy_threshold`` (default 80).

All ratios are in [0, 1]; a ratio with a zero denominator is 0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

INVALID = "(invalid)"
_PUNCT = ".,;:!?\"'()[]{}<> \t\n"


def ratio(num: float, den: float) -> float:
    """``num / den`` rounded to 4 places, 0 when ``den`` is 0."""
    return round(num / den, 4) if den else 0.0


def prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    """``{"precision", "recall", "f1", "tp", "fp", "fn"}`` from counts."""
    p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {"precision": p, "recall": r, "f1": ratio(2 * p * r, p + r), "tp": tp, "fp": fp, "fn": fn}


# --- normalisers ------------------------------------------------------------------------------------


def norm_text(value: Any) -> str:
    """``text`` normaliser (see module docstring)."""
    text = unicodedata.normalize("NFKC", str(value)).casefold()
    return re.sub(r"\s+", " ", text).strip(_PUNCT)


def norm_email(value: Any) -> str:
    """``email`` normaliser: ``text`` and no ``mailto:`` prefix."""
    text = norm_text(value)
    return text[len("mailto:") :] if text.startswith("mailto:") else text


def norm_phone(value: Any, region: str = "US") -> str:
    """``phone`` normaliser: E.164 when ``phonenumbers`` sees a possible number, else the digits."""
    import phonenumbers

    text = str(value)
    try:
        number = phonenumbers.parse(text, region)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return re.sub(r"\D", "", text)


def normalise(kind: str, value: Any, *, region: str = "US") -> str:
    """Normalise ``value`` with normaliser ``kind`` (``text``, ``email``, ``phone`` or ``fuzzy``)."""
    if kind == "email":
        return norm_email(value)
    if kind == "phone":
        return norm_phone(value, region)
    if kind in ("text", "fuzzy"):
        return norm_text(value)
    raise ValueError(f"unknown normaliser {kind!r}: expected text, email, phone or fuzzy")


# --- classification -----------------------------------------------------------------------------------


def classification_metrics(gold: list[str], predicted: list[str | None], labels: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1 and confusion matrix; ``None`` predictions are invalid answers.

    ``labels`` fixes the class order (e.g. the output schema's ``enum``); classes seen only in the data
    are appended. Returns ``{"n", "accuracy", "macro_f1", "per_class": {label: {...}}, "confusion":
    {"labels", "columns", "matrix"}}``.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    pred = [INVALID if p is None else str(p) for p in predicted]
    order = list(labels or [])
    order += sorted({*gold, *(p for p in pred if p != INVALID)} - set(order))
    per_class = {}
    for label in order:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p != label)
        per_class[label] = {**prf(tp, fp, fn), "support": sum(1 for g in gold if g == label)}
    present = [lab for lab in order if per_class[lab]["support"] or per_class[lab]["fp"]]
    columns = [*order, INVALID]
    matrix = [[sum(1 for g, p in zip(gold, pred, strict=True) if g == r and p == c) for c in columns] for r in order]
    return {
        "n": len(gold),
        "accuracy": ratio(sum(1 for g, p in zip(gold, pred, strict=True) if g == p), len(gold)),
        "macro_f1": round(sum(per_class[lab]["f1"] for lab in present) / len(present), 4) if present else 0.0,
        "per_class": per_class,
        "confusion": {"labels": order, "columns": columns, "matrix": matrix},
    }


# --- extraction ----------------------------------------------------------------------------------------


def _values(items: Any, field: str, kind: str, region: str) -> list[str]:
    out = []
    for item in items if isinstance(items, list) else []:
        raw = item.get(field) if isinstance(item, dict) else None
        for value in raw if isinstance(raw, list) else [raw]:
            if value is None:
                continue
            norm = normalise(kind, value, region=region)
            if norm:
                out.append(norm)
    return out


def _matched(gold: list[str], pred: list[str], kind: str, threshold: float) -> int:
    if kind != "fuzzy":
        return sum((Counter(gold) & Counter(pred)).values())
    from rapidfuzz import fuzz

    free = list(gold)
    hits = 0
    for p in pred:
        scores = [(fuzz.token_set_ratio(p, g), i) for i, g in enumerate(free)]
        best = max(scores, default=(0.0, -1))
        if best[0] >= threshold:
            hits += 1
            free.pop(best[1])
    return hits


def extraction_metrics(
    gold: list[Any],
    predicted: list[Any | None],
    fields: dict[str, str],
    *,
    fuzzy_threshold: float = 80.0,
    region: str = "US",
) -> dict:
    """Micro P/R/F1 over normalised items, per field and in total (see the module docstring).

    ``gold`` and ``predicted`` hold each example's list of extracted objects (``None`` = invalid answer,
    scored as extracting nothing); ``fields`` maps item field -> normaliser. Returns ``{"n", "precision",
    "recall", "f1", "tp", "fp", "fn", "per_field": {field: {...}}, "empty_correct", "per_example":
    [{"tp", "fp", "fn"}]}``; ``empty_correct`` counts examples where both sides have no item.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    per_field = {f: Counter() for f in fields}
    per_example = []
    empty_correct = 0
    for g_items, p_items in zip(gold, predicted, strict=True):
        counts = Counter()
        for field, kind in fields.items():
            g = _values(g_items, field, kind, region)
            p = _values(p_items or [], field, kind, region)
            hit = _matched(g, p, kind, fuzzy_threshold)
            c = Counter(tp=hit, fp=len(p) - hit, fn=len(g) - hit)
            per_field[field].update(c)
            counts.update(c)
        if not any(counts.values()) and p_items is not None:
            empty_correct += 1
        per_example.append({k: counts[k] for k in ("tp", "fp", "fn")})
    total = sum(per_field.values(), Counter())
    return {
        "n": len(gold),
        **prf(total["tp"], total["fp"], total["fn"]),
        "per_field": {f: prf(c["tp"], c["fp"], c["fn"]) for f, c in per_field.items()},
        "empty_correct": empty_correct,
        "per_example": per_example,
    }


# --- matching ------------------------------------------------------------------------------------------

DECISION_ROWS = ("match", "no match")
DECISION_COLUMNS = ("correct id", "other id", "no match", INVALID)


def matching_metrics(gold: list[str | None], predicted: list[str | None], invalid: list[bool]) -> dict:
    """P/R/F1 of match decisions and of correct "no match" (see the module docstring).

    ``gold`` and ``predicted`` are ids or None (no match); ``invalid[i]`` marks an example without a
    schema-valid answer (its prediction is ignored). Returns ``{"n", "accuracy", "precision", "recall",
    "f1", "tp", "fp", "fn", "no_match": {...}, "decisions": {"rows", "columns", "matrix"}}``.
    """
    if not len(gold) == len(predicted) == len(invalid):
        raise ValueError("gold, predicted and invalid differ in length")
    tp = fp = fn = nm_tp = nm_fp = nm_fn = 0
    matrix = [[0] * len(DECISION_COLUMNS) for _ in DECISION_ROWS]
    for g, p, bad in zip(gold, predicted, invalid, strict=True):
        g = None if g is None else str(g)
        p = None if bad or p is None else str(p)
        row = 0 if g is not None else 1
        if bad:
            col = 3
        elif p is None:
            col = 2
        else:
            col = 0 if p == g else 1
        matrix[row][col] += 1
        if not bad and p is not None:
            tp += p == g
            fp += p != g
        if g is not None and (bad or p != g):
            fn += 1
        if g is None and not bad and p is None:
            nm_tp += 1
        elif not bad and p is None:
            nm_fp += 1  # said "no match" where gold has one
        elif g is None:
            nm_fn += 1  # gold "no match" answered with an id or invalid
    n = len(gold)
    return {
        "n": n,
        "accuracy": ratio(tp + nm_tp, n),
        **prf(tp, fp, fn),
        "no_match": prf(nm_tp, nm_fp, nm_fn),
        "decisions": {"rows": list(DECISION_ROWS), "columns": list(DECISION_COLUMNS), "matrix": matrix},
    }
