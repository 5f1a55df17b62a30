"""GDPR erasure (Regulation (EU) 2016/679, Art. 17 "right to erasure") over the sanitized zone.

``pipeline-hub erase --subject VALUE`` (:func:`erase_subject`):

1. **Pseudonyms.** The subject's value (an e-mail address, phone number or name; several variants of
   one person may be given) is turned into the keyed pseudonym (:mod:`pipeline_hub.pii.pseudonym`) of
   every entity kind it could have been published as: ``PERSON`` always, ``EMAIL_ADDRESS`` when it
   contains ``@``, ``PHONE_NUMBER`` when it has at least 7 digits (ITU-T E.164 numbers have at most
   15; shorter digit runs are extensions or postcodes, whose pseudonym would match unrelated rows).
   A value that already is a pseudonym (``psn_`` + 16 hex, e.g. a published ``record_id``) is taken as
   it is (kind ``PSEUDONYM``).
2. **Rows.** A row matches when any string leaf of any column (nested lists and structs included)
   contains one of those pseudonyms. This includes ``record_id``: an id holding PII is published as
   the pseudonym of the whole id (:mod:`pipeline_hub.pii.record_ids`), so the record is found by the raw id
   (an e-mail address, a phone number) or by that pseudonym. Topics' ``output.pseudonymize`` paths
   name where whole values become pseudonyms (``contact_extraction.contacts[].name|email|phone``),
   but Presidio's ``pseudonymize`` operator also writes them inside free text (``output.scrub_text``, e.g.
   ``company_matching.name`` = ``"BOSCH psn_…"``), and older partitions may have older columns, so
   every string leaf is scanned (vectorised with pyarrow compute) rather than only today's paths.
   Every ``part-*.parquet`` under ``sanitized_data/<topic>/ds=*/`` and ``quarantine/<topic>/ds=*/``
   is scanned; a file with matches is rewritten without them (same schema, zstd, key-value metadata
   kept plus ``pipeline_hub.erased_rows``) through :func:`pipeline_hub.storage.write_bytes_atomic`, so
   readers see the old or the new file, never a part. A file whose every row matches becomes a
   0-row file (its schema stays readable by DuckDB and Athena). Analysts' feedback
   (``feedback/<topic>/*.parquet``) loses the rows holding a pseudonym (in the scrubbed note) or about a
   record removed here (:mod:`pipeline_hub.governance.feedback_erasure`).
3. **Manifests.** The partition's ``_manifest.json`` is rewritten atomically after its data:
   ``counts.published`` (or ``counts.quarantined[reason]`` and ``quarantined_total``) now describe
   what the files hold, ``counts.erased`` accumulates the rows removed, so conservation reads
   ``in = published + quarantined_total + erased``, and an ``erasures`` list records each erasure
   (id, time, zone, object, rows removed) — no number changes without an entry saying why.
4. **Response cache.** The cache (:mod:`pipeline_hub.providers.cache`) holds *unscrubbed* answers
   keyed by a request hash, so it cannot be searched by pseudonym. An entry is purged when its stored
   answer text contains a subject value: compared in memory after case folding and whitespace
   collapsing, as a whole word (names, e-mail addresses), or, for a value without ``@`` with 7+
   digits, also as that digit sequence with any of `` ().+-/`` between digits (phone formats). The
   JSON answer is compared both as stored and with its string escapes decoded. Over-matching is
   cheap (a purged entry costs one LLM call if its request recurs); under-matching is not.
5. **Audit.** One JSON Lines object per erasure under ``<sanitized root>/_audit/erasure/`` (an
   append-only log as immutable objects: S3 has no append, and concurrent erasures never overwrite
   each other's record; put S3 Object Lock on the prefix for WORM in production). It holds the time,
   the pseudonyms, the objects rewritten, the rows removed and the cache entries purged — never the
   value.

The raw zone and staging hold the subject's raw text until retention
(:mod:`pipeline_hub.governance.retention`, S3 lifecycle) expires them; so that re-processing such a
batch (a backfill, a new prompt version) does not publish the subject again, the publish stage applies
:func:`~pipeline_hub.governance.register.suppress_erased` with the pseudonyms of every audit record
(:func:`~pipeline_hub.governance.register.erased_pseudonyms`). Run an erasure when no
``prompt_pipeline`` run is publishing the same partitions (a concurrent publish can overwrite the
rewritten file). The subject value is never logged, raised or written; pseudonyms are (they
identify nobody without the key).
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import storage
from pipeline_hub.exceptions import GovernanceError
from pipeline_hub.governance.register import pseudonym_pattern, write_audit
from pipeline_hub.pii.pseudonym import is_pseudonym, load_key, normalise, pseudonymize

log = logging.getLogger(__name__)

ZONES = ("sanitized_data", "quarantine")
MIN_PHONE_DIGITS = 7
PSEUDONYM_KIND = "PSEUDONYM"  # the kind of a subject value given as a pseudonym
PHONE_SEPARATORS = r"[\s().+\-/]*"
_WS = re.compile(r"\s+")


class SubjectError(GovernanceError, ValueError):
    """The subject value is empty or cannot be pseudonymised (the message never contains the value)."""


def subject_kinds(value: str) -> list[str]:
    """Entity kinds ``value`` could have been pseudonymised as (see the module docstring, step 1)."""
    kinds = ["PERSON"]
    if "@" in value:
        kinds.append("EMAIL_ADDRESS")
    if len(re.sub(r"\D", "", value)) >= MIN_PHONE_DIGITS:
        kinds.append("PHONE_NUMBER")
    return kinds


def subject_pseudonyms(values: Iterable[str], key: bytes, kinds: Iterable[str] | None = None) -> dict[str, str]:
    """``{pseudonym: kind}`` for every value × kind (``kinds`` default: :func:`subject_kinds` per value).

    A value that is a pseudonym already maps to itself with kind ``PSEUDONYM``. Raises
    :class:`SubjectError` when no value is given or one normalises to nothing for every kind.
    """
    values, kinds = list(values), list(kinds or [])
    if not values:
        raise SubjectError("no subject value given")
    found: dict[str, str] = {}
    for i, value in enumerate(values, 1):
        if is_pseudonym(value.strip()):
            found[value.strip()] = PSEUDONYM_KIND
            continue
        chosen = [k for k in (kinds or subject_kinds(value)) if normalise(value, k)]
        if not chosen:
            raise SubjectError(f"subject value #{i} is empty after normalisation")
        for kind in chosen:
            found[pseudonymize(value, kind, key)] = kind
    return found


def matching_rows(table, pattern: str):
    """NumPy bool array, one per row of the pyarrow ``table``: any string leaf matches ``pattern``.

    Recurses through struct, list, large_list, fixed_size_list and dictionary columns; other types
    never match. Vectorised: one ``match_substring_regex`` per string leaf column (Apache Arrow
    compute functions ``match_substring_regex``, ``list_flatten``, ``list_parent_indices``).
    """
    import numpy as np

    mask = np.zeros(table.num_rows, dtype=bool)
    for column in table.columns:
        for chunk_start, chunk in _chunks(column):
            mask[chunk_start : chunk_start + len(chunk)] |= _array_mask(chunk, pattern)
    return mask


def _chunks(column) -> Iterator[tuple[int, Any]]:
    start = 0
    for chunk in column.chunks:
        yield start, chunk
        start += len(chunk)


def _array_mask(arr, pattern: str):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_dictionary(t):
        return _array_mask(arr.dictionary_decode(), pattern)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.match_substring_regex(arr, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    if pa.types.is_struct(t):
        out = np.zeros(len(arr), dtype=bool)
        for i in range(t.num_fields):
            out |= _array_mask(pc.struct_field(arr, [i]), pattern)
        return out & arr.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        child = _array_mask(pc.list_flatten(arr), pattern)
        parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        out = np.zeros(len(arr), dtype=bool)
        out[parents[child]] = True
        return out
    return np.zeros(len(arr), dtype=bool)


def raw_value_matcher(values: Iterable[str]) -> Callable[[str], bool]:
    """A predicate ``text -> bool``: ``text`` contains one of ``values`` (module docstring, step 4).

    Values match as whole words (not inside a longer word or address). A value without ``@`` and
    with 7+ digits also matches as its digit sequence with phone separators between the digits.
    """
    folded = [f for f in (_WS.sub(" ", v.strip()).casefold() for v in values) if f]
    patterns = [re.compile(r"(?<!\w)" + re.escape(f) + r"(?!\w)") for f in folded]
    for f in folded:
        digits = re.sub(r"\D", "", f)
        if "@" not in f and len(digits) >= MIN_PHONE_DIGITS and not is_pseudonym(f):
            patterns.append(re.compile(r"(?<!\d)" + PHONE_SEPARATORS.join(digits) + r"(?!\d)"))

    def matches(text: str) -> bool:
        text = _WS.sub(" ", text).casefold()
        return any(p.search(text) for p in patterns)

    return matches


def _answer_texts(entry: dict[str, Any]) -> list[str]:
    """The stored answer as written and with its JSON string escapes decoded (every string leaf)."""
    content = entry.get("content")
    if not isinstance(content, str):
        return [json.dumps(entry, ensure_ascii=False, default=str)]
    texts = [content]
    try:
        decoded = json.loads(content)
    except ValueError:
        return texts
    leaves: list[str] = []
    stack = [decoded]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            leaves.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return [*texts, "\n".join(leaves)]


def purge_cache(cache, values: Iterable[str], *, dry_run: bool = False) -> int:
    """Delete every response-cache entry whose answer contains one of ``values``; returns how many.

    ``cache`` must offer ``keys()``, ``get(key)`` and ``delete(key)``
    (:class:`pipeline_hub.providers.cache.PurgeableCache`); raises ``TypeError`` otherwise.
    """
    if not all(hasattr(cache, m) for m in ("keys", "get", "delete")):
        raise TypeError(f"{type(cache).__name__} cannot enumerate or delete entries")
    matches = raw_value_matcher(values)
    purged = 0
    for key in cache.keys():
        entry = cache.get(key)
        if entry is not None and any(matches(t) for t in _answer_texts(entry)):
            if not dry_run:
                cache.delete(key)
            purged += 1
    return purged


@dataclass
class ErasedObject:
    """One Parquet object rewritten: public URI, zone, topic, partition date, rows removed."""

    uri: str
    zone: str
    topic: str
    ds: str
    rows_removed: int


@dataclass
class ErasureResult:
    """Outcome of :func:`erase_subject` (also the audit record, see :meth:`audit_record`)."""

    erasure_id: str
    erased_at: str
    pseudonyms: dict[str, str]
    objects_scanned: int = 0
    objects: list[ErasedObject] = field(default_factory=list)
    cache_backend: str = "none"
    cache_entries_purged: int = 0
    dry_run: bool = False
    audit_uri: str | None = None

    @property
    def rows_removed(self) -> int:
        """Rows removed over every rewritten object (both zones)."""
        return sum(o.rows_removed for o in self.objects)

    def audit_record(self) -> dict[str, Any]:
        """The JSON audit record: time, pseudonyms, objects rewritten, rows removed, cache purge."""
        from pipeline_hub.stages.parquet import code_version

        return {
            "erasure_id": self.erasure_id,
            "erased_at": self.erased_at,
            "pseudonyms": [{"pseudonym": p, "kind": k} for p, k in sorted(self.pseudonyms.items())],
            "objects_scanned": self.objects_scanned,
            "objects_rewritten": [asdict(o) for o in self.objects],
            "rows_removed": self.rows_removed,
            "cache": {"backend": self.cache_backend, "entries_purged": self.cache_entries_purged},
            "dry_run": self.dry_run,
            "code_version": code_version(),
        }


def partition_files(sanitized_root: str) -> Iterator[tuple[str, str, str, Any]]:
    """``(zone, topic, ds, path)`` of every ``part-*.parquet`` in the sanitized and quarantine zones."""
    for zone in ZONES:
        zone_dir = storage.join(sanitized_root, zone)
        if not zone_dir.exists():
            continue
        for topic_dir in sorted(zone_dir.iterdir(), key=lambda p: p.name):
            if topic_dir.name.startswith(("_", ".")) or not topic_dir.is_dir():
                continue
            for part_dir in sorted(topic_dir.iterdir(), key=lambda p: p.name):
                if not part_dir.name.startswith("ds=") or not part_dir.is_dir():
                    continue
                for f in storage.list_files(part_dir):
                    if f.name.startswith("part-") and f.name.endswith(".parquet"):
                        yield zone, topic_dir.name, part_dir.name[len("ds=") :], f


def erase_file(path, pattern: str, *, dry_run: bool = False, removed_ids: set | None = None) -> tuple[int, Counter]:
    """Rewrite the Parquet object at ``path`` without rows matching ``pattern``, atomically.

    Returns ``(rows removed, Counter of the removed rows' quarantine reason)`` (the Counter is empty
    for files without a ``reason`` column). Nothing is written when no row matches or ``dry_run``.
    The removed rows' ``record_id`` values are added to ``removed_ids`` when given.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline_hub.stages.parquet import parquet_bytes

    table = pq.read_table(io.BytesIO(path.read_bytes()))
    mask = matching_rows(table, pattern)
    removed = int(mask.sum())
    if not removed:
        return 0, Counter()
    if removed_ids is not None and "record_id" in table.column_names:
        removed_ids.update(table.filter(pa.array(mask)).column("record_id").to_pylist())
    reasons = Counter()
    if "reason" in table.column_names:
        reasons = Counter(table.filter(pa.array(mask)).column("reason").to_pylist())
    if not dry_run:
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        previous = int(meta.get("pipeline_hub.erased_rows", "0"))
        kept = table.filter(pa.array(~mask))
        storage.write_bytes_atomic(path, parquet_bytes(kept, {"pipeline_hub.erased_rows": str(previous + removed)}))
    return removed, reasons


def _manifest_path(sanitized_root: str, zone: str, topic: str, ds: str):
    """The manifest counting a partition's rows: its own, or for quarantine files the topic's manifest."""
    own = storage.join(sanitized_root, zone, topic, f"ds={ds}", "_manifest.json")
    if zone == "sanitized_data" or own.exists():
        return own
    return storage.join(sanitized_root, "sanitized_data", topic, f"ds={ds}", "_manifest.json")


def record_in_manifest(manifest: dict[str, Any], obj: ErasedObject, reasons: Counter, result: ErasureResult) -> None:
    """Update ``manifest`` in place for ``obj``'s removed rows (module docstring, step 3)."""
    counts = manifest.setdefault("counts", {})
    if obj.zone == "sanitized_data":
        counts["published"] = counts.get("published", obj.rows_removed) - obj.rows_removed
    else:
        by_reason = counts.setdefault("quarantined", {})
        for reason, n in reasons.items():
            by_reason[reason] = by_reason.get(reason, n) - n
        counts["quarantined_total"] = counts.get("quarantined_total", obj.rows_removed) - obj.rows_removed
    counts["erased"] = counts.get("erased", 0) + obj.rows_removed
    manifest.setdefault("erasures", []).append(
        {
            "erasure_id": result.erasure_id,
            "erased_at": result.erased_at,
            "zone": obj.zone,
            "object": obj.uri,
            "rows_removed": obj.rows_removed,
        }
    )


def erase_subject(
    sanitized_root: str,
    values: Iterable[str],
    *,
    key: bytes | None = None,
    kinds: Iterable[str] | None = None,
    cache: Any = None,
    dry_run: bool = False,
) -> ErasureResult:
    """Erase one data subject (``values``: every variant of their e-mail, phone or name) everywhere.

    ``key`` defaults to :func:`pipeline_hub.pii.pseudonym.load_key` (raises ``MissingKeyError``);
    ``cache`` is a purgeable response cache (default: :func:`pipeline_hub.providers.cache.open_cache`
    on ``PIPELINE_HUB_LLM_CACHE``), ``False`` to leave the cache alone. ``dry_run`` counts what would
    be removed and writes nothing (no audit record either). See the module docstring for semantics.
    """
    values = [v for v in values if v is not None]
    pseudonyms = subject_pseudonyms(values, key if key is not None else load_key(), kinds)
    pattern = pseudonym_pattern(pseudonyms)
    result = ErasureResult(
        erasure_id=uuid.uuid4().hex[:12],
        erased_at=datetime.now(UTC).isoformat(),
        pseudonyms=pseudonyms,
        dry_run=dry_run,
    )
    from pipeline_hub.governance.feedback_erasure import erase_feedback

    erased_ids: dict[str, set[str]] = {}  # topic -> record_ids removed, for their feedback
    for zone, topic, ds, path in partition_files(sanitized_root):
        result.objects_scanned += 1
        removed, reasons = erase_file(path, pattern, dry_run=dry_run, removed_ids=erased_ids.setdefault(topic, set()))
        if not removed:
            continue
        obj = ErasedObject(storage.public_uri(path), zone, topic, ds, removed)
        result.objects.append(obj)
        manifest_path = _manifest_path(sanitized_root, zone, topic, ds)
        if not dry_run and manifest_path.exists():
            manifest = storage.read_json(manifest_path)
            record_in_manifest(manifest, obj, reasons, result)
            storage.write_json(manifest_path, manifest)
    scanned, feedback_objects = erase_feedback(sanitized_root, pattern, erased_ids, dry_run=dry_run)
    result.objects_scanned += scanned
    result.objects += feedback_objects
    if cache is None:
        from pipeline_hub.providers.cache import open_cache

        cache = open_cache()
    if cache is not False:
        result.cache_backend = type(cache).__name__
        result.cache_entries_purged = purge_cache(cache, values, dry_run=dry_run)
    if not dry_run:
        result.audit_uri = storage.public_uri(write_audit(sanitized_root, result.audit_record()))
    log.info(
        "erasure %s%s: %d rows removed from %d of %d objects, %d cache entries purged",
        result.erasure_id,
        " (dry run)" if dry_run else "",
        result.rows_removed,
        len(result.objects),
        result.objects_scanned,
        result.cache_entries_purged,
    )
    return result
