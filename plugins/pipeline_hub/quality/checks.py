"""What the quality gate checks a published row for: lineage columns, residual PII patterns, published text;
and which expectations of a validation summary failed.

:data:`RESIDUAL_PII` (e-mail and NANP/E.164 phone patterns) is shared with the scrub stage, which
quarantines each record still matching it, and the GX suite's ``residual_pii`` check, the last gate.
:data:`LINEAGE_COLUMNS` are the identity columns every published table starts with (never scanned for PII).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

LINEAGE_COLUMNS = [
    "record_id",
    "batch_hash",
    "prompt_name",
    "prompt_version",
    "template_sha256",
    "model",
    "route",  # proxy | oracle: who answered the record (pipeline_hub.stages.cascade)
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

# Helper columns of the validation frame (never published).
OUTCOME = "_outcome"  # "answered" (a valid answer, to be published) or "quarantined"
ANSWER = "_answer"  # "valid", "invalid" (invalid_output) or null (never answered by the model)

TEXT = "_published_text"

HELPER_COLUMNS = [OUTCOME, ANSWER, TEXT]


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


def failed_expectations(result: dict[str, Any]) -> list[str]:
    """``["expect_…(column)", …]``: the failed *blocking* (critical) expectations of a validation summary."""
    return [
        e["type"] + (f"({e['column']})" if e["column"] else "")
        for e in result["expectations"]
        if not e["success"] and e.get("severity", "critical") == "critical"
    ]
