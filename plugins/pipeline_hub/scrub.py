"""The scrub stage: Microsoft Presidio over free-text fields, keyed pseudonyms for contact fields.

Configuration comes from ``include/pii/presidio.yaml`` (NLP engine, entities, score threshold, allow
list, one anonymizer operator per entity). Per topic, ``metadata.yaml`` names which output paths are
free text to scrub (``output.scrub_text``) and which hold a personal value as a whole to pseudonymize
(``output.pseudonymize``); paths use ``field`` or ``list[].field``.

Presidio runs offline: the spaCy model is an installed package and ``tldextract`` (used by the e-mail
recognizer) is pointed at its bundled public-suffix snapshot instead of downloading one.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.config import include_dir
from pipeline_hub.pseudonym import load_key, pseudonymize

# Whole-value kinds for pseudonymized paths, from the last path segment.
KIND_BY_FIELD = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "name": "PERSON"}


def _offline_tldextract() -> None:
    """Make ``tldextract.extract`` use the bundled suffix-list snapshot (no network at run time)."""
    import tldextract.tldextract as tld

    if tld.TLD_EXTRACTOR.suffix_list_urls:
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


@dataclass
class ScrubConfig:
    """Parsed ``presidio.yaml``; raises ``ValueError`` naming the file on unknown keys or operators."""

    nlp_engine: dict[str, Any]
    language: str = "en"
    score_threshold: float = 0.35
    entities: list[str] = field(default_factory=list)
    allow_list: list[str] = field(default_factory=list)
    operators: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ScrubConfig:
        path = path or include_dir() / "pii" / "presidio.yaml"
        raw = yaml.safe_load(path.read_text()) or {}
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        cfg = cls(**raw)
        for entity, op in cfg.operators.items():
            if op.get("type") not in ("replace", "mask", "redact", "pseudonymize"):
                raise ValueError(f"{path}: operators.{entity}.type must be replace, mask, redact or pseudonymize")
        if not 0 <= cfg.score_threshold <= 1:
            raise ValueError(f"{path}: score_threshold must be within [0, 1]")
        return cfg


class Scrubber:
    """Presidio analyzer + anonymizer configured from :class:`ScrubConfig`, with a keyed pseudonym operator."""

    def __init__(self, config: ScrubConfig | None = None, key: bytes | None = None) -> None:
        self.config = config or ScrubConfig.load()
        self.key = key if key is not None else load_key()

    @cached_property
    def analyzer(self):
        _offline_tldextract()
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        nlp = NlpEngineProvider(nlp_configuration=self.config.nlp_engine).create_engine()
        return AnalyzerEngine(nlp_engine=nlp, supported_languages=[self.config.language])

    @cached_property
    def batch_analyzer(self):
        from presidio_analyzer import BatchAnalyzerEngine

        return BatchAnalyzerEngine(analyzer_engine=self.analyzer)

    @cached_property
    def anonymizer(self):
        from presidio_anonymizer import AnonymizerEngine

        return AnonymizerEngine()

    def _operators(self) -> dict:
        from presidio_anonymizer.entities import OperatorConfig

        ops = {}
        for entity, spec in self.config.operators.items():
            kind = spec["type"]
            if kind == "pseudonymize":
                ops[entity] = OperatorConfig(
                    "custom", {"lambda": lambda text, _e=entity: pseudonymize(text, _e, self.key)}
                )
            elif kind == "replace":
                ops[entity] = OperatorConfig("replace", {k: v for k, v in spec.items() if k != "type"})
            elif kind == "mask":
                params = {"masking_char": "*", "chars_to_mask": 100, "from_end": False}
                params.update({k: v for k, v in spec.items() if k != "type"})
                ops[entity] = OperatorConfig("mask", params)
            else:
                ops[entity] = OperatorConfig("redact", {})
        return ops

    def scrub_texts(self, texts: list[str]) -> tuple[list[str], Counter]:
        """Anonymize every text; return the new texts (same order) and entity counts found.

        Identical texts are analyzed once. Counts are per entity type, never values.
        """
        unique = list(dict.fromkeys(t for t in texts if t))
        results = self.batch_analyzer.analyze_iterator(
            unique,
            language=self.config.language,
            entities=self.config.entities or None,
            score_threshold=self.config.score_threshold,
            allow_list=self.config.allow_list or None,
        )
        operators = self._operators()
        counts: Counter = Counter()
        scrubbed: dict[str, str] = {}
        for text, found in zip(unique, results, strict=True):
            counts.update(r.entity_type for r in found)
            scrubbed[text] = self.anonymizer.anonymize(text, found, operators=operators).text if found else text
        return [scrubbed.get(t, t) if t else t for t in texts], counts

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
                    holder[key] = pseudonymize(holder[key], kind, self.key)
                    counts[kind] += 1
        slots = [(h, k) for path in scrub_text for h, k in _locate(rows, path) if isinstance(h[k], str)]
        if slots:
            new_texts, found = self.scrub_texts([h[k] for h, k in slots])
            counts.update(found)
            for (holder, key), text in zip(slots, new_texts, strict=True):
                holder[key] = text
        return rows, counts


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
