"""The scrub stage: Presidio over every answer and kept field, keyed pseudonyms for contact fields.

Configuration: ``include/pii/presidio.yaml`` (engine, entities, threshold, allow list, one anonymizer
operator per entity; :mod:`pipeline_hub.pii_config`) and ``include/pii/recognizers.yaml`` (the
Presidio recognizer registry). Per topic, ``metadata.yaml`` says how each kept input field is treated
and which answer paths are pseudonymized (:class:`~pipeline_hub.pii_config.TopicPii`).

Every string leaf of every answer is analyzed, so PII a model echoed or invented is found wherever it
appears: leaves at ``pseudonymize`` paths become keyed pseudonyms, leaves at ``keep_as_is`` paths and
leaves whose schema fixes the value (``enum``/``const``) are only counted, every other leaf is
anonymized. Counts per entity (never values) go to the stage summary and from there to the manifest.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pipeline_hub.pii_config import PiiConfigError, ScrubConfig, TopicPii
from pipeline_hub.pii_engine import Detection, PiiAnalyzer, _offline_tldextract  # noqa: F401 - re-exported
from pipeline_hub.pseudonym import PREFIX, load_key, pseudonymize

__all__ = ["KIND_BY_FIELD", "PiiConfigError", "ScanResult", "ScrubConfig", "Scrubber", "scrub_topic"]

# Whole-value kinds for pseudonymized paths, from the last path segment.
KIND_BY_FIELD = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "name": "PERSON"}
_PSEUDONYM = re.compile(rf"^{PREFIX}[0-9a-f]{{16}}$")


def is_pseudonym(value: str) -> bool:
    """True for a value that already is one of our pseudonyms (``psn_`` + 16 hex), e.g. one the LLM was sent."""
    return bool(_PSEUDONYM.match(value))


@dataclass
class ScanResult:
    """What scrubbing found: ``found`` per entity (everything detected or pseudonymized), ``left`` per
    entity (detections published unchanged: ``keep_as_is`` paths and schema-fixed values) and the number
    of strings scanned."""

    found: Counter = field(default_factory=Counter)
    left: Counter = field(default_factory=Counter)
    strings: int = 0

    def summary(self) -> dict[str, Any]:
        return {"pii_found": dict(sorted(self.found.items())), "pii_left": dict(sorted(self.left.items()))}


class Scrubber:
    """Presidio analyzer + anonymizer configured from :class:`ScrubConfig`, with the keyed pseudonym operator.

    ``key`` is the HMAC key (default :func:`pipeline_hub.pseudonym.load_key` when a pseudonym is first
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
        """Detections per text (see :class:`~pipeline_hub.pii_engine.PiiAnalyzer`)."""
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
        input policies of :func:`~pipeline_hub.pii_config.input_policy`.
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
        leaf of the answer is analyzed: pseudonymized at ``pii.pseudonymize`` paths, counted only at
        ``pii.keep_as_is`` paths and where ``output_schema`` fixes the value (``enum``/``const``),
        anonymized everywhere else. Keys in ``skip`` are neither scanned nor changed.
        """
        rows = copy.deepcopy(rows)
        result = ScanResult()
        skip = set(skip)
        props = output_schema.get("properties", {})
        pseudo_slots, text_slots = [], []  # (container, key, path) / (container, key, anonymize?)
        for row in rows:
            for key in list(row):
                if key in skip:
                    continue
                node = {} if key in pii.keep_fields else props.get(key, {})
                for holder, k, path, fixed in _leaves(row, key, key, node):
                    if path in pii.pseudonymize:
                        pseudo_slots.append((holder, k, path))
                    else:
                        scrub = path not in pii.keep_as_is and not fixed
                        text_slots.append((holder, k, scrub))
        for holder, k, path in pseudo_slots:
            if holder[k].strip():
                kind = KIND_BY_FIELD.get(path.split(".")[-1].removesuffix("[]"), "PERSON")
                holder[k] = self._pseudonym(holder[k], kind)
                result.found[kind] += 1
        detections = self.detect([h[k] for h, k, _ in text_slots])
        operators = self.operators()
        result.strings = len(text_slots) + len(pseudo_slots)
        for (holder, k, scrub), found in zip(text_slots, detections, strict=True):
            result.found.update(d.entity for d in found)
            if scrub:
                holder[k] = self.anonymize(holder[k], found, operators)
            else:
                result.left.update(d.entity for d in found)
        return rows, result


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


QUARANTINE_TEXT = ("raw_answer", "detail")


def scrub_topic(
    topic, rows: list[dict], quarantine: list[dict], scrubber: Scrubber | None = None
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """The stage for one topic: ``(scrubbed rows, scrubbed quarantine rows, summary)``.

    ``rows`` are ``{"record_id", "model"?, **kept fields, **answer}``; quarantine rows have their
    ``raw_answer`` (the model may have echoed PII) and ``detail`` anonymized. The summary holds counts
    only: ``rows``, ``quarantined``, ``pii_found`` and ``pii_left`` (entity -> count, published rows),
    ``pii_found_quarantine`` and ``strings_scanned``. Raises :class:`PiiConfigError` naming the topic's
    metadata.yaml when its PII policy is invalid.
    """
    pii = TopicPii.from_topic(topic)
    own = scrubber is None
    scrubber = scrubber or Scrubber()
    try:
        scrubbed, scan = scrubber.scrub_topic_rows(rows, pii, topic.prompt.output_schema)
        q_pii = TopicPii(topic.name, (), QUARANTINE_TEXT, (), (), pii.input_pii)
        q_scrubbed, q_scan = scrubber.scrub_topic_rows(
            quarantine, q_pii, {}, skip=[k for q in quarantine for k in q if k not in QUARANTINE_TEXT]
        )
    finally:
        if own:
            scrubber.close()
    summary = {
        "topic": topic.name,
        "rows": len(scrubbed),
        "quarantined": len(q_scrubbed),
        **scan.summary(),
        "pii_found_quarantine": dict(sorted(q_scan.found.items())),
        "strings_scanned": scan.strings + q_scan.strings,
    }
    return scrubbed, q_scrubbed, summary
