"""The scrub stage: Presidio over every answer, kept field, record id and quarantine detail; keyed pseudonyms.

Configuration: ``include/pii/presidio.yaml`` (engine, entities, threshold, allow list, one anonymizer
operator per entity; :mod:`pipeline_hub.pii.config`) and ``include/pii/recognizers.yaml`` (the
Presidio recognizer registry). Per topic, ``metadata.yaml`` says how each kept input field is treated
and which answer paths are pseudonymized (:class:`~pipeline_hub.pii.config.TopicPii`).

Per topic (:func:`scrub_topic`), in this order:

1. **Types.** Every answer is cast to its published Arrow types and kept fields that are not strings
   become JSON text (:mod:`pipeline_hub.stages.casting`); a value that does not fit quarantines its record as
   ``invalid_output`` with the field path.
2. **Answers and kept fields.** Every string leaf is analyzed, so PII a model echoed or invented is
   found wherever it appears: leaves at ``pseudonymize`` paths become keyed pseudonyms, leaves whose
   schema fixes the value (``enum``/``const``) are only counted, every other leaf is anonymized
   except at ``keep_as_is`` paths, which are published unchanged.
3. **Residual PII, per record.** A record is quarantined as ``residual_pii`` (detail: ``field 'notes'
   holds PHONE_NUMBER after scrubbing``, never the value) when a ``keep_as_is`` leaf holds a detection
   (other than :data:`COUNTED_IN_KEEP_AS_IS`: company and place names the NER model reads as persons)
   or when any leaf not fixed by the schema still matches the residual e-mail/phone patterns of
   :data:`pipeline_hub.quality.RESIDUAL_PII` after scrubbing. The GX suite stays the last gate over
   the whole table; these records are no longer in it.
4. **Record ids.** The raw ``record_id`` of every published and quarantined record is analyzed
   (distinct ids, in the same analyzer batch as the rows). An id holding PII is published only as its
   keyed pseudonym (:func:`pipeline_hub.pii.pseudonym.pseudonymize` of the whole id, with the detected
   entity kind), so ``pipeline-hub erase`` finds the record by the raw value or by the pseudonym. Ids
   the pipeline generates (content hashes, ``<sha16>:<pos>``) are not analyzed (:data:`GENERATED_ID`);
   a ``PERSON`` detection counts in an id only when it spans two or more letter-only words
   (:data:`NAME_LIKE`): NER reads tickers and codes such as ``SNPS`` or ``X-1`` as persons.
5. **Quarantine rows.** ``reason`` codes are ours and never analyzed. ``detail`` strings are made by
   :func:`pipeline_hub.reasons.detail`: only their marked outside parts
   (:func:`~pipeline_hub.reasons.outside_parts`) are analyzed and replaced, our own words ("invalid
   JSON") stay, and the published detail is :func:`~pipeline_hub.reasons.plain`. ``raw_answer`` and
   ``source_uri`` are analyzed whole. Left-over matches of the residual patterns in those texts are
   replaced by ``<EMAIL_ADDRESS>`` / ``<PHONE_NUMBER>``.

Counts per entity (never values) go to the stage summary and from there to the manifest.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.pii.config import PiiConfigError, ScrubConfig, TopicPii
from pipeline_hub.pii.engine import Detection, PiiAnalyzer, _offline_tldextract  # noqa: F401 - re-exported
from pipeline_hub.pii.pseudonym import is_pseudonym, load_key, pseudonymize
from pipeline_hub.quality import RESIDUAL_PII
from pipeline_hub.stages.casting import CastError, answer_types, cast_row
from pipeline_hub.stages.plan import RunPlan, plan_topic

log = logging.getLogger(__name__)
QUARANTINE_FIELDS = ("record_id", "reason", "detail", "source_uri", "position", "raw_answer")

__all__ = [
    "KIND_BY_FIELD",
    "PiiConfigError",
    "ScanResult",
    "ScrubConfig",
    "Scrubber",
    "is_pseudonym",
    "scrub_topic",
]

# Whole-value kinds for pseudonymized paths, from the last path segment.
KIND_BY_FIELD = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "name": "PERSON"}
# Entity kind of each residual pattern of pipeline_hub.quality.RESIDUAL_PII.
RESIDUAL_KINDS = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER"}
# Entities that a keep_as_is leaf may hold without quarantining its record (still counted, in
# ``pii_left``): keep_as_is fields hold company, agency and place names, which spaCy's NER often reads
# as persons ("Ralph Lauren Corporation", "Hamilton, Bermuda"). Pattern-based entities (e-mail,
# phone, card, IBAN, …) and the residual patterns always quarantine.
COUNTED_IN_KEEP_AS_IS = frozenset({"PERSON"})
# Ids the pipeline generates (chunking: a content hash, or ``<object sha16>:<position>`` for a record
# that could not be parsed): no PII, never analyzed.
GENERATED_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{16}:\d+")
# The suffix chunking adds to a repeated id (``<id>#<object sha8>:<position>``): generated, kept as is.
GENERATED_SUFFIX = re.compile(r"#[0-9a-f]{8}:\d+$")
# A PERSON detection in an id counts only over two or more letter-only words ("Jane Doe", "maria-gonzalez").
NAME_LIKE = re.compile(r"[^\W\d_]{2,}(?:[\s._'-]+[^\W\d_]+)+")
RESIDUAL_PLACEHOLDER = {"email": "<EMAIL_ADDRESS>", "phone": "<PHONE_NUMBER>"}


@dataclass
class ScanResult:
    """What scrubbing found: ``found`` per entity (everything detected or pseudonymized), ``left`` per
    entity (detections published unchanged: schema-fixed values, and :data:`COUNTED_IN_KEEP_AS_IS`
    entities at ``keep_as_is`` paths), the number of strings scanned, and ``residual``: per row index,
    ``{field path: [entity, …]}`` of PII still there after scrubbing (the record must not be published).
    ``left_by_row`` splits ``left`` per row index."""

    found: Counter = field(default_factory=Counter)
    left: Counter = field(default_factory=Counter)
    strings: int = 0
    residual: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    left_by_row: dict[int, Counter] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"pii_found": dict(sorted(self.found.items())), "pii_left": dict(sorted(self.left.items()))}

    def flag(self, row: int, path: str, entities: Iterable[str]) -> None:
        """Record residual ``entities`` at ``path`` of row ``row``."""
        entities = list(dict.fromkeys(entities))
        if entities:
            held = self.residual.setdefault(row, {}).setdefault(path, [])
            held.extend(e for e in entities if e not in held)

    def leave(self, row: int, entities: Iterable[str]) -> None:
        """Count ``entities`` published unchanged in row ``row``."""
        entities = list(entities)
        self.left.update(entities)
        self.left_by_row.setdefault(row, Counter()).update(entities)


def residual_matches(text: str) -> list[str]:
    """Entity kinds of the residual patterns (:data:`pipeline_hub.quality.RESIDUAL_PII`) ``text`` matches."""
    return [RESIDUAL_KINDS[name] for name, rx in RESIDUAL_PII.items() if rx.search(text)]


def redact_residual(text: str) -> str:
    """``text`` with every match of the residual patterns replaced by ``<EMAIL_ADDRESS>`` / ``<PHONE_NUMBER>``."""
    for name, rx in RESIDUAL_PII.items():
        text = rx.sub(RESIDUAL_PLACEHOLDER[name], text)
    return text


class Scrubber:
    """Presidio analyzer + anonymizer configured from :class:`ScrubConfig`, with the keyed pseudonym operator.

    ``key`` is the HMAC key (default :func:`pipeline_hub.pii.pseudonym.load_key` when a pseudonym is first
    needed, which raises ``MissingKeyError`` when none is configured). Use as a context manager, or
    call :meth:`close`, to stop worker processes started for large inputs.
    """

    def __init__(self, config: ScrubConfig | None = None, key: bytes | None = None) -> None:
        self.config = config or ScrubConfig.load()
        self._key = key
        self.pii = PiiAnalyzer(self.config)

    def close(self) -> None:
        self.pii.close()

    def __enter__(self) -> Scrubber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key(self) -> bytes:
        """The HMAC key, loaded when first needed (redaction alone needs none)."""
        if self._key is None:
            self._key = load_key()
        return self._key

    @property
    def analyzer(self):
        """The Presidio ``AnalyzerEngine`` (loaded once per process and configuration)."""
        return self.pii.engine

    @cached_property
    def anonymizer(self):
        from presidio_anonymizer import AnonymizerEngine

        return AnonymizerEngine()

    def detect(self, texts: list[str]) -> list[list[Detection]]:
        """Detections per text (see :class:`~pipeline_hub.pii.engine.PiiAnalyzer`)."""
        return self.pii.analyze(texts)

    def _pseudonym(self, value: str, kind: str) -> str:
        return value if is_pseudonym(value.strip()) else pseudonymize(value, kind, self.key)

    def operators(self, policy: str | None = None) -> dict:
        """Presidio ``OperatorConfig`` per entity: from ``presidio.yaml``, or for an input policy
        (``redact``: ``<ENTITY>`` placeholders; ``pseudonymize``: keyed pseudonyms for every entity)."""
        from presidio_anonymizer.entities import OperatorConfig

        def pseudo(entity: str) -> OperatorConfig:
            return OperatorConfig("custom", {"lambda": lambda text, _e=entity: self._pseudonym(text, _e)})

        if policy == "redact":
            return {"DEFAULT": OperatorConfig("replace", {})}
        if policy == "pseudonymize":
            return {e: pseudo(e) for e in [*self.config.entities, "DEFAULT"]}
        ops = {}
        for entity, spec in self.config.operators.items():
            params = {k: v for k, v in spec.items() if k != "type"}
            if spec["type"] == "pseudonymize":
                ops[entity] = pseudo(entity)
            elif spec["type"] == "mask":
                ops[entity] = OperatorConfig(
                    "mask", {"masking_char": "*", "chars_to_mask": 100, "from_end": False, **params}
                )
            else:
                ops[entity] = OperatorConfig(spec["type"], params)
        return ops

    def anonymize(self, text: str, found: list[Detection], operators: dict) -> str:
        """``text`` with every detection replaced by its entity's operator."""
        if not found:
            return text
        from presidio_anonymizer.entities import RecognizerResult

        results = [RecognizerResult(d.entity, d.start, d.end, d.score) for d in found]
        return self.anonymizer.anonymize(text, results, operators=operators).text

    def scrub_texts(self, texts: list[str], policy: str | None = None) -> tuple[list[str], Counter]:
        """Anonymize every text; return the new texts (same order) and entity counts found (never values).

        ``policy`` None uses the ``presidio.yaml`` operators; ``redact`` / ``pseudonymize`` are the
        input policies of :func:`~pipeline_hub.pii.config.input_policy`.
        """
        detections = self.detect(texts)
        operators = self.operators(policy)
        counts: Counter = Counter()
        out = []
        for text, found in zip(texts, detections, strict=True):
            counts.update(d.entity for d in found)
            out.append(self.anonymize(text, found, operators))
        return out, counts

    def scrub_rows(
        self, rows: list[dict], scrub_text: Iterable[str], pseudo: Iterable[str]
    ) -> tuple[list[dict], Counter]:
        """Return deep copies of ``rows`` with ``scrub_text`` paths anonymized and ``pseudo`` paths pseudonymized.

        Paths: ``field`` or ``list[].field`` into each row. Counts are per entity type.
        """
        rows = copy.deepcopy(rows)
        counts: Counter = Counter()
        for path in pseudo:
            kind = KIND_BY_FIELD.get(path.split(".")[-1], "PERSON")
            for holder, key in _locate(rows, path):
                if isinstance(holder[key], str) and holder[key].strip():
                    holder[key] = self._pseudonym(holder[key], kind)
                    counts[kind] += 1
        slots = [(h, k) for path in scrub_text for h, k in _locate(rows, path) if isinstance(h[k], str)]
        if slots:
            new_texts, found = self.scrub_texts([h[k] for h, k in slots])
            counts.update(found)
            for (holder, key), text in zip(slots, new_texts, strict=True):
                holder[key] = text
        return rows, counts

    def scrub_topic_rows(
        self,
        rows: list[dict],
        pii: TopicPii,
        output_schema: dict[str, Any],
        skip: Iterable[str] = ("record_id", "model"),
    ) -> tuple[list[dict], ScanResult]:
        """Scrub rows made of a topic's kept fields and answer (deep copies; input untouched).

        Kept fields follow ``pii`` (``scrub_text``, ``pseudonymize`` or ``keep_as_is``); every string
        leaf of the answer is analyzed: pseudonymized at ``pii.pseudonymize`` paths, counted only where
        ``output_schema`` fixes the value (``enum``/``const``), left unchanged at ``pii.keep_as_is``
        paths, anonymized everywhere else. Keys in ``skip`` are neither scanned nor changed. Rows still
        holding PII afterwards are listed in ``ScanResult.residual`` (module docstring, step 3); they
        are returned too: the caller decides (:func:`scrub_topic` quarantines them).
        """
        rows, scan, _ = self._scrub_topic_rows(rows, pii, output_schema, skip, also=[])
        return rows, scan

    def _scrub_topic_rows(
        self,
        rows: list[dict],
        pii: TopicPii,
        output_schema: dict[str, Any],
        skip: Iterable[str],
        also: list[str],
    ) -> tuple[list[dict], ScanResult, list[list[Detection]]]:
        """:meth:`scrub_topic_rows`, analyzing the texts ``also`` in the same batch (their detections last)."""
        rows = copy.deepcopy(rows)
        scan = ScanResult()
        skip = set(skip)
        props = output_schema.get("properties", {})
        pseudo_slots, text_slots = [], []  # (container, key, path) / (row, container, key, path, mode)
        for i, row in enumerate(rows):
            for key in list(row):
                if key in skip:
                    continue
                node = {} if key in pii.keep_fields else props.get(key, {})
                for holder, k, path, fixed in _leaves(row, key, key, node):
                    if path in pii.pseudonymize:
                        pseudo_slots.append((holder, k, path))
                    else:
                        mode = "fixed" if fixed else "keep" if path in pii.keep_as_is else "scrub"
                        text_slots.append((i, holder, k, path, mode))
        for holder, k, path in pseudo_slots:
            if holder[k].strip():
                kind = KIND_BY_FIELD.get(path.split(".")[-1].removesuffix("[]"), "PERSON")
                holder[k] = self._pseudonym(holder[k], kind)
                scan.found[kind] += 1
        detections = self.detect([h[k] for _, h, k, _, _ in text_slots] + list(also))
        operators = self.operators()
        scan.strings = len(text_slots) + len(pseudo_slots)
        for (i, holder, k, path, mode), found in zip(text_slots, detections, strict=False):
            scan.found.update(d.entity for d in found)
            if mode == "fixed":
                scan.leave(i, (d.entity for d in found))
                continue
            if mode == "scrub":
                holder[k] = self.anonymize(holder[k], found, operators)
            else:  # keep_as_is: published unchanged, so any PII in it holds the record back
                scan.leave(i, (d.entity for d in found if d.entity in COUNTED_IN_KEEP_AS_IS))
                scan.flag(i, path, (d.entity for d in found if d.entity not in COUNTED_IN_KEEP_AS_IS))
            scan.flag(i, path, residual_matches(holder[k]))
        return rows, scan, detections[len(text_slots) :]

    def scrub_quarantine(self, quarantine: list[dict]) -> tuple[list[dict], Counter, int]:
        """Scrub quarantine rows (copies): ``(rows, entity counts, strings scanned)``.

        ``detail``: only its :func:`~pipeline_hub.reasons.outside_parts` are analyzed and replaced, the
        result is :func:`~pipeline_hub.reasons.plain`; ``raw_answer`` and ``source_uri`` are analyzed
        whole; then residual-pattern matches are replaced (:func:`redact_residual`). Other keys
        (``reason``, ``position``, ``record_id``) are left alone.
        """
        rows = [dict(q) for q in quarantine]
        slots = []  # (row, key, start, end)
        for i, q in enumerate(rows):
            if isinstance(q.get("detail"), str):
                slots += [(i, "detail", s, e) for s, e in reasons.outside_parts(q["detail"])]
            for key in ("raw_answer", "source_uri"):
                if isinstance(q.get(key), str):
                    slots.append((i, key, 0, len(q[key])))
        detections = self.detect([rows[i][k][s:e] for i, k, s, e in slots])
        operators = self.operators()
        counts: Counter = Counter()
        # Replace from the end of each text, so earlier offsets stay valid.
        for (i, key, s, e), found in sorted(zip(slots, detections, strict=True), key=lambda x: -x[0][2]):
            counts.update(d.entity for d in found)
            text = rows[i][key]
            part = redact_residual(self.anonymize(text[s:e], found, operators))
            rows[i][key] = text[:s] + part + text[e:]
        for q in rows:
            if isinstance(q.get("detail"), str):
                q["detail"] = reasons.plain(q["detail"])
        return rows, counts, len(slots)


def _leaves(holder: Any, key: Any, path: str, schema: dict[str, Any]) -> Iterator[tuple[Any, Any, str, bool]]:
    """Yield ``(container, key, path, fixed)`` for every string leaf under ``holder[key]``.

    ``path`` uses ``a[].b`` for list items; ``fixed`` is True when the leaf's schema has ``enum`` or
    ``const`` (the value comes from a closed set, not from the model's free text).
    """
    value = holder[key]
    if isinstance(value, str):
        yield holder, key, path, "enum" in schema or "const" in schema
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        for k in value:
            yield from _leaves(value, k, f"{path}.{k}", props.get(k, {}))
    elif isinstance(value, list):
        items = schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
        for i in range(len(value)):
            yield from _leaves(value, i, f"{path}[]", items)


def _locate(rows: list[dict], path: str):
    """Yield ``(container, key)`` pairs addressed by ``path`` (``a``, ``a[].b``) in every row."""
    parts = path.split(".")
    frontier: list[Any] = rows
    for i, part in enumerate(parts):
        is_list = part.endswith("[]")
        name = part[:-2] if is_list else part
        last = i == len(parts) - 1
        nxt: list[Any] = []
        for obj in frontier:
            if not isinstance(obj, dict) or name not in obj:
                continue
            if last and not is_list:
                yield obj, name
            elif is_list and isinstance(obj[name], list):
                nxt.extend(obj[name])
            else:
                nxt.append(obj[name])
        frontier = nxt


def _id_core(record_id: str) -> tuple[str, str]:
    """``(raw part, generated suffix)`` of a record id (``"a@b.org#0123abcd:7"`` → ``("a@b.org", "#0123abcd:7")``)."""
    m = GENERATED_SUFFIX.search(record_id)
    return (record_id[: m.start()], m.group(0)) if m else (record_id, "")


def needs_analysis(record_id: Any) -> bool:
    """True for a raw id that may hold PII: a non-empty string that is neither generated nor a pseudonym."""
    if not isinstance(record_id, str):
        return False
    core = _id_core(record_id)[0].strip()
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


def _published_ids(scrubber: Scrubber, ids: list[str], found: list[list[Detection]]) -> tuple[dict[str, str], Counter]:
    """``({raw id: published id}, entity counts)`` for the analyzed ``ids`` that hold PII.

    Two raw ids whose pseudonyms coincide (``A@x.org`` and ``a@x.org`` normalise alike) get ``#2``,
    ``#3``… appended in order, so ``record_id`` stays unique.
    """
    mapping: dict[str, str] = {}
    counts: Counter = Counter()
    used: set[str] = set()
    for record_id, detections in zip(ids, found, strict=True):
        core, suffix = _id_core(record_id)
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


def _quarantine_row(row: dict, origins: dict[str, dict], reason: str, detail: str, raw_answer: str | None) -> dict:
    origin = origins.get(row.get("record_id")) or {}
    return {
        "record_id": row.get("record_id"),
        "reason": reason,
        "detail": detail,
        "source_uri": origin.get("source_uri"),
        "position": origin.get("position"),
        "raw_answer": raw_answer,
    }


def residual_detail(paths: dict[str, list[str]]) -> str:
    """``field 'notes' holds PHONE_NUMBER after scrubbing`` (one clause per path; paths marked as outside text)."""
    ordered = sorted(paths)
    clauses = [f"field '{{p{n}}}' holds {', '.join(paths[p])}" for n, p in enumerate(ordered)]
    return reasons.detail("; ".join(clauses) + " after scrubbing", **{f"p{n}": p for n, p in enumerate(ordered)})


def cast_answers(
    rows: list[dict], output_schema: dict[str, Any], keep_fields: Iterable[str], origins: dict[str, dict]
) -> tuple[list[dict], list[dict]]:
    """``(typed rows, invalid_output quarantine rows)``: :func:`pipeline_hub.stages.casting.cast_row` per row.

    A row whose answer does not fit its published types is quarantined with a detail naming the field
    path and the type (never the value) and its answer (JSON) as ``raw_answer``, scrubbed like any.
    """
    types = answer_types(output_schema)
    typed, held = [], []
    for row in rows:
        try:
            typed.append(cast_row(row, types, keep_fields))
        except CastError as exc:
            expected = str(exc.expected).replace("{", "{{").replace("}", "}}")
            template = f"answer field '{{path}}' cannot be cast to its output type {expected}"
            detail = reasons.detail(template, path=exc.path)
            answer = json.dumps({k: v for k, v in row.items() if k in types}, ensure_ascii=False, default=str)
            held.append(_quarantine_row(row, origins, reasons.INVALID_OUTPUT, detail, answer))
    return typed, held


def scrub_topic(
    topic,
    rows: list[dict],
    quarantine: list[dict],
    scrubber: Scrubber | None = None,
    origins: dict[str, dict] | None = None,
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """The stage for one topic: ``(published rows, quarantine rows, summary)`` (module docstring, steps 1-5).

    ``rows`` are ``{"record_id", "model"?, **kept fields, **answer}``; ``quarantine`` rows are
    ``{"record_id", "reason", "detail", "source_uri", "position", "raw_answer"}``; ``origins`` maps a
    raw record id to its ``{"source_uri", "position"}`` (for records the stage quarantines). Records
    whose answer does not fit its types (``invalid_output``) or that still hold PII after scrubbing
    (``residual_pii``) move from the rows to the quarantine. The summary holds counts only: ``rows``,
    ``quarantined``, ``pii_found`` and ``pii_left`` (entity -> count, published rows),
    ``pii_found_quarantine``, ``pii_found_ids``, ``ids_pseudonymized``, ``quarantined_here``
    (reason -> records this stage quarantined), ``residual_pii`` (entity -> leaves) and
    ``strings_scanned``. Raises :class:`PiiConfigError` naming the topic's metadata.yaml when its PII
    policy is invalid.
    """
    pii = TopicPii.from_topic(topic)
    origins = origins or {}
    own = scrubber is None
    scrubber = scrubber or Scrubber()
    try:
        typed, held = cast_answers(rows, topic.prompt.output_schema, topic.keep_fields, origins)
        every_id = [r.get("record_id") for r in [*typed, *quarantine, *held]]
        ids = list(dict.fromkeys(i for i in every_id if needs_analysis(i)))
        scrubbed, scan, id_found = scrubber._scrub_topic_rows(
            typed, pii, topic.prompt.output_schema, ("record_id", "model"), also=[_id_core(i)[0] for i in ids]
        )
        id_map, id_counts = _published_ids(scrubber, ids, id_found)
        published, residual = [], Counter()
        for i, row in enumerate(scrubbed):
            paths = scan.residual.get(i)
            if paths:
                held.append(_quarantine_row(row, origins, reasons.RESIDUAL_PII, residual_detail(paths), None))
                residual.update(e for entities in paths.values() for e in entities)
            else:
                published.append(row)
        q_scrubbed, q_found, q_strings = scrubber.scrub_quarantine([*quarantine, *held])
    finally:
        if own:
            scrubber.close()
    for row in [*published, *q_scrubbed]:
        if row.get("record_id") in id_map:
            row["record_id"] = id_map[row["record_id"]]
    left = Counter()
    for i, counts in scan.left_by_row.items():
        if i not in scan.residual:
            left.update(counts)
    summary = {
        "topic": topic.name,
        "rows": len(published),
        "quarantined": len(q_scrubbed),
        "pii_found": dict(sorted(scan.found.items())),
        "pii_left": dict(sorted(left.items())),
        "pii_found_quarantine": dict(sorted(q_found.items())),
        "pii_found_ids": dict(sorted(id_counts.items())),
        "ids_pseudonymized": len(id_map),
        "quarantined_here": dict(sorted(Counter(q["reason"] for q in held).items())),
        "residual_pii": dict(sorted(residual.items())),
        "strings_scanned": scan.strings + q_strings + len(ids),
    }
    return published, q_scrubbed, summary


def run_scrub(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``scrub`` (per topic): types cast, Presidio over every answer, kept field, id and detail.

    Records whose answer does not fit its published types are quarantined as ``invalid_output``, records
    still holding PII after scrubbing as ``residual_pii`` (per record, with the field path), ids holding
    PII become keyed pseudonyms (see :func:`pipeline_hub.stages.scrub.scrub_topic`). Writes
    ``scrubbed/<topic>/rows.jsonl``, ``quarantine.jsonl`` and ``_summary.json`` (counts only: ``rows``,
    ``quarantined``, ``pii_found``, ``pii_left``, ``pii_found_quarantine``, ``pii_found_ids``,
    ``ids_pseudonymized``, ``quarantined_here``, ``residual_pii``, ``strings_scanned``) and returns the
    summary.
    """
    from pipeline_hub.stages.scrub import scrub_topic

    plan = RunPlan.load(plan_uri)
    tp, topic = plan_topic(plan, topic_name)
    answers_dir = storage.join(plan.staging, "answers", topic.name)
    rows, quarantine, origins = [], [], {}
    for path in storage.list_files(answers_dir):
        for r in storage.read_jsonl(path):
            if r["status"] == "ok":
                origins[r["record_id"]] = {"source_uri": r.get("source_uri"), "position": r.get("position")}
                collision = set(r["fields"]) & set(r["answer"])
                if collision:
                    raise ValueError(f"{topic.metadata_path}: kept fields {sorted(collision)} collide with answer keys")
                row = {"record_id": r["record_id"], **r["fields"], **r["answer"]}
                if (r.get("usage") or {}).get("model"):
                    row["model"] = r["usage"]["model"]  # per record: routing may pick another model
                rows.append(row)
            else:
                quarantine.append({k: r.get(k) for k in QUARANTINE_FIELDS})
    rejects = storage.read_jsonl(storage.join(plan.staging, "chunks", tp.source, "_rejects.jsonl"))
    quarantine += [{k: r.get(k) for k in QUARANTINE_FIELDS} for r in rejects]
    scrubbed, quarantine, summary = scrub_topic(topic, rows, quarantine, origins=origins)
    out = storage.join(plan.staging, "scrubbed", topic.name)
    storage.write_jsonl(out / "rows.jsonl", scrubbed)
    storage.write_jsonl(out / "quarantine.jsonl", quarantine)
    storage.write_json(out / "_summary.json", summary, atomic=False)
    log.info("scrub %s: %s", topic.name, summary)
    return summary
