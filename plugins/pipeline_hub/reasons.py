"""Fixed reason codes for quarantined records, rejected and skipped objects and run outcomes.

Every record the pipeline does not publish carries exactly one of these codes in its ``reason``
column, and every raw object that is not read carries one in the batch manifest. Codes are plain
ASCII identifiers chosen by us: they are never passed through the PII analyzer and never contain
record text. The human-readable ``detail`` next to a code names the object, the line/position and
the field; the parts of a detail that come from outside (object names, ids, parser messages that
may echo text) are marked with :func:`detail` so the scrub stage analyzes only those parts and our
own words ("invalid JSON") are never rewritten by Presidio.

Record-level codes (``quarantine/<topic>/ds=<ds>/``):

``unparseable``      the record is not valid JSON / CSV / Parquet row, or not an object
``invalid_encoding`` the record's bytes are not UTF-8
``oversize_field``   a field is longer than ``max_field_chars`` (settings)
``oversize_record``  a record is longer than ``max_record_bytes`` (settings)
``too_deep``         a value is nested deeper than ``max_nesting_depth`` (settings)
``invalid_id``       the ``id`` field is not a string or a number
``duplicate_id``     the ``id`` repeats an earlier record with different content
``missing_field``    a template input the topic requires is missing or empty
``invalid_output``   the model's answer fails the output schema (after one repair) or its types
``provider_error``   the provider still failed after the retry policy (retried by the next run)
``budget_exceeded``  the run's budget cap was reached before this record was sent
``residual_pii``     a published leaf still holds PII after scrubbing (e.g. in a ``keep_as_is`` field)
``quality_failed``   the topic failed a blocking GX expectation (the whole topic is withheld)
``erased_subject``   the record belongs to a data subject erased earlier (GDPR Art. 17)

Object-level codes (batch manifest ``objects[].reason``):

``rejected``: ``unreadable_gzip`` (truncated or corrupt gzip stream), ``unreadable_parquet``,
``unparseable_object`` (a ``.json`` document that is not JSON or not an array of objects),
``invalid_encoding_object`` (a ``.json`` document that is not UTF-8), ``unreadable_object`` (the
store could not return its bytes).
``skipped``: ``hidden`` (name starts with ``.``), ``marker`` (name starts with ``_``, e.g.
``_SUCCESS``), ``unsupported_format`` (extension not read), ``subfolder`` (object below a
sub-folder of the ``ds`` prefix), ``empty_object`` (zero bytes), ``row_limit`` (not reached: the run's
``row_limit`` was read from earlier objects; still part of the batch hash).

Run outcome: ``no_input`` (no object to read under a requested source's ``ds`` prefix).
"""

from __future__ import annotations

import re

# Record level
UNPARSEABLE = "unparseable"
INVALID_ENCODING = "invalid_encoding"
OVERSIZE_FIELD = "oversize_field"
OVERSIZE_RECORD = "oversize_record"
TOO_DEEP = "too_deep"
INVALID_ID = "invalid_id"
DUPLICATE_ID = "duplicate_id"
MISSING_FIELD = "missing_field"
INVALID_OUTPUT = "invalid_output"
PROVIDER_ERROR = "provider_error"
BUDGET_EXCEEDED = "budget_exceeded"
RESIDUAL_PII = "residual_pii"
QUALITY_FAILED = "quality_failed"
ERASED_SUBJECT = "erased_subject"

RECORD_REASONS = (
    UNPARSEABLE,
    INVALID_ENCODING,
    OVERSIZE_FIELD,
    OVERSIZE_RECORD,
    TOO_DEEP,
    INVALID_ID,
    DUPLICATE_ID,
    MISSING_FIELD,
    INVALID_OUTPUT,
    PROVIDER_ERROR,
    BUDGET_EXCEEDED,
    RESIDUAL_PII,
    QUALITY_FAILED,
    ERASED_SUBJECT,
)

# Object level: rejected
UNREADABLE_GZIP = "unreadable_gzip"
UNREADABLE_PARQUET = "unreadable_parquet"
UNPARSEABLE_OBJECT = "unparseable_object"
INVALID_ENCODING_OBJECT = "invalid_encoding_object"
UNREADABLE_OBJECT = "unreadable_object"
REJECT_REASONS = (UNREADABLE_GZIP, UNREADABLE_PARQUET, UNPARSEABLE_OBJECT, INVALID_ENCODING_OBJECT, UNREADABLE_OBJECT)

# Object level: skipped
HIDDEN = "hidden"
MARKER = "marker"
UNSUPPORTED_FORMAT = "unsupported_format"
SUBFOLDER = "subfolder"
EMPTY_OBJECT = "empty_object"
ROW_LIMIT = "row_limit"
SKIP_REASONS = (HIDDEN, MARKER, UNSUPPORTED_FORMAT, SUBFOLDER, EMPTY_OBJECT, ROW_LIMIT)

# Run outcome
NO_INPUT = "no_input"

# Private-use code points delimiting the outside values inside a detail string (Unicode 15, §23.5:
# never assigned, so they cannot occur in our own words; record text holding them is stripped of them).
OPEN, CLOSE = "\ue000", "\ue001"
_MARKED = re.compile(f"{OPEN}(.*?){CLOSE}", re.DOTALL)


def detail(template: str, **values: object) -> str:
    """A quarantine/reject detail: ``template.format(**values)`` with every value marked as outside text.

    ``detail("{obj} line {line}: invalid JSON", obj=uri, line=3)`` keeps "line" and "invalid JSON" as
    our own words and marks the URI and the number, which the scrub stage analyzes
    (:func:`outside_parts`) before the detail is published. Values have any marker characters removed.
    """
    marked = {k: f"{OPEN}{str(v).replace(OPEN, '').replace(CLOSE, '')}{CLOSE}" for k, v in values.items()}
    return template.format(**marked)


def outside_parts(text: str) -> list[tuple[int, int]]:
    """``[(start, end), …]`` of the marked values in a :func:`detail` string (offsets of the value itself).

    A string without markers (written by older code, or not by :func:`detail`) is outside text as a
    whole: ``[(0, len(text))]``.
    """
    spans = [(m.start(1), m.end(1)) for m in _MARKED.finditer(text)]
    if not spans and OPEN not in text and CLOSE not in text:
        return [(0, len(text))] if text else []
    return spans


def plain(text: str) -> str:
    """``text`` without the markers of :func:`detail` (what is published and shown)."""
    return text.replace(OPEN, "").replace(CLOSE, "")
