"""The PII scrubber: Presidio analyzer and anonymizer from :class:`~pipeline_hub.pii.config.ScrubConfig`, with
the keyed pseudonym operator, applied to rows, answers and quarantine rows.

:class:`Scrubber` finds PII in every string leaf, anonymizes or pseudonymizes it per the topic's policy
(:class:`~pipeline_hub.pii.config.TopicPii`) and reports what is still there after scrubbing
(:class:`ScanResult`, the residual check: a ``keep_as_is`` detection other than
:data:`COUNTED_IN_KEEP_AS_IS`, or a match of the residual e-mail/phone patterns of
:data:`pipeline_hub.quality.checks.RESIDUAL_PII`). Used by the scrub stage
(:mod:`pipeline_hub.stages.scrub`), the prompt stage (input protection) and ``pipeline-hub scrub-file``.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pipeline_hub import reasons
from pipeline_hub.pii.config import ScrubConfig, TopicPii
from pipeline_hub.pii.engine import Detection, PiiAnalyzer
from pipeline_hub.pii.pseudonym import is_pseudonym, load_key, pseudonymize
from pipeline_hub.quality.checks import RESIDUAL_PII

# Whole-value kinds for pseudonymized paths, from the last path segment.
KIND_BY_FIELD = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "name": "PERSON"}
# Entity kind of each residual pattern of pipeline_hub.quality.checks.RESIDUAL_PII.
RESIDUAL_KINDS = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER"}
# Entities that a keep_as_is leaf may hold without quarantining its record (still counted, in
# ``pii_left``): keep_as_is fields hold company, agency and place names, which spaCy's NER often reads
# as persons ("Ralph Lauren Corporation", "Hamilton, Bermuda"). Pattern-based entities (e-mail,
# phone, card, IBAN, …) and the residual patterns always quarantine.
COUNTED_IN_KEEP_AS_IS = frozenset({"PERSON"})
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
        """Counts only: ``{"pii_found": {entity: n}, "pii_left": {entity: n}}``, entities sorted."""
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
    """Entity kinds of the residual patterns (:data:`pipeline_hub.quality.checks.RESIDUAL_PII`) ``text`` matches."""
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
        """Stop the analyzer's worker processes (if any were started)."""
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
        """The Presidio ``AnonymizerEngine`` (created on first use)."""
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

    def scrub_text(self, text: str) -> str:
        """One free text (an analyst's feedback note) scrubbed as a published free-text leaf.

        The ``presidio.yaml`` operators (e-mails, phones and names become keyed pseudonyms, so an
        erasure finds them), then the residual e-mail/phone patterns are replaced (:func:`redact_residual`).
        """
        return redact_residual(self.scrub_texts([text])[0][0])

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
