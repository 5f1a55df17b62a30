"""Record ids that may hold PII: which ids are analyzed, the entity an id is pseudonymized as, and the
published id (its keyed pseudonym, kept unique).

Ids the pipeline generates (content hashes, ``<sha16>:<pos>``, the ``#<sha8>:<pos>`` suffix of a repeated
id) are never analyzed; a ``PERSON`` detection counts only over two or more letter-only words
(:data:`NAME_LIKE`), since NER reads tickers and codes such as ``SNPS`` as persons.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from pipeline_hub.pii.engine import Detection
from pipeline_hub.pii.pseudonym import is_pseudonym
from pipeline_hub.pii.scrubber import residual_matches

if TYPE_CHECKING:
    from pipeline_hub.pii.scrubber import Scrubber

# Ids the pipeline generates (chunking: a content hash, or ``<object sha16>:<position>`` for a record
# that could not be parsed): no PII, never analyzed.
GENERATED_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{16}:\d+")
# The suffix chunking adds to a repeated id (``<id>#<object sha8>:<position>``): generated, kept as is.
GENERATED_SUFFIX = re.compile(r"#[0-9a-f]{8}:\d+$")
# A PERSON detection in an id counts only over two or more letter-only words ("Jane Doe", "maria-gonzalez").
NAME_LIKE = re.compile(r"[^\W\d_]{2,}(?:[\s._'-]+[^\W\d_]+)+")


def id_core(record_id: str) -> tuple[str, str]:
    """``(raw part, generated suffix)`` of a record id (``"a@b.org#0123abcd:7"`` → ``("a@b.org", "#0123abcd:7")``)."""
    m = GENERATED_SUFFIX.search(record_id)
    return (record_id[: m.start()], m.group(0)) if m else (record_id, "")


def needs_analysis(record_id: Any) -> bool:
    """True for a raw id that may hold PII: a non-empty string that is neither generated nor a pseudonym."""
    if not isinstance(record_id, str):
        return False
    core = id_core(record_id)[0].strip()
    return bool(core) and not GENERATED_ID.fullmatch(core) and not is_pseudonym(core)


def id_entity(core: str, found: list[Detection]) -> str | None:
    """The entity kind an id is pseudonymized as, or None when it holds no PII.

    The best detection (score, then length) wins; a ``PERSON`` detection counts only over a
    :data:`NAME_LIKE` span. Without a detection, a match of the residual patterns counts
    (``EMAIL_ADDRESS`` / ``PHONE_NUMBER``).
    """
    kept = [d for d in found if d.entity != "PERSON" or NAME_LIKE.fullmatch(core[d.start : d.end].strip())]
    if kept:
        return max(kept, key=lambda d: (d.score, d.end - d.start)).entity
    residual = residual_matches(core)
    return residual[0] if residual else None


def published_ids(scrubber: Scrubber, ids: list[str], found: list[list[Detection]]) -> tuple[dict[str, str], Counter]:
    """``({raw id: published id}, entity counts)`` for the analyzed ``ids`` that hold PII.

    Two raw ids whose pseudonyms coincide (``A@x.org`` and ``a@x.org`` normalise alike) get ``#2``,
    ``#3``… appended in order, so ``record_id`` stays unique.
    """
    mapping: dict[str, str] = {}
    counts: Counter = Counter()
    used: set[str] = set()
    for record_id, detections in zip(ids, found, strict=True):
        core, suffix = id_core(record_id)
        kind = id_entity(core, detections)
        if kind is None:
            continue
        counts[kind] += 1
        new = scrubber._pseudonym(core, kind) + suffix
        n = 1
        while new in used:
            n += 1
            new = f"{scrubber._pseudonym(core, kind)}{suffix}#{n}"
        used.add(new)
        mapping[record_id] = new
    return mapping, counts
