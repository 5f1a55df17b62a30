"""The PII analyzer: Presidio ``AnalyzerEngine`` built from ``include/pii/``, batched and parallel.

Speed, without losing recall (``benchmarks/pii.py``, results in ``benchmarks/RESULTS.md``):

* only the recognizers in ``recognizers.yaml`` are registered (Presidio's registry YAML), and only the
  configured entities are asked for;
* spaCy runs as ``nlp.pipe`` batches (Presidio ``BatchAnalyzerEngine``) with the pipeline components
  PERSON does not need excluded (``spacy_exclude``);
* identical texts are analyzed once;
* large inputs are split across worker processes, each with its own engine (spaCy's own
  ``n_process`` would parallelise only the NLP step, not the regex and phone recognizers);
* the phone recognizer, the slowest, runs only over digit runs (:mod:`pipeline_hub.pii.recognizers`).

Presidio runs offline: the spaCy model is an installed package and ``tldextract`` (used by the e-mail
recognizer) uses its bundled public-suffix snapshot instead of downloading one.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from functools import cached_property
from typing import Any, NamedTuple

from pipeline_hub.pii.config import PiiConfigError, ScrubConfig

log = logging.getLogger(__name__)


class Detection(NamedTuple):
    """One PII span: entity type, character offsets ``[start, end)`` and recognizer score in [0, 1]."""

    entity: str
    start: int
    end: int
    score: float


def _offline_tldextract() -> None:
    """Make ``tldextract.extract`` use the bundled suffix-list snapshot (no network at run time)."""
    import tldextract.tldextract as tld

    if tld.TLD_EXTRACTOR.suffix_list_urls:
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


PRESIDIO_LOGGERS = ("presidio-analyzer", "presidio-anonymizer")


class _NoRecordText(logging.Filter):
    """Presidio logs matched text (IBAN validation errors) and context words (debug): keep its message
    templates, drop their arguments, and drop debug records (some are pre-formatted f-strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        if record.args:
            record.args = tuple("<redacted>" for _ in record.args) if isinstance(record.args, tuple) else {}
        return True


def guard_presidio_logs() -> None:
    """Install :class:`_NoRecordText` on Presidio's loggers (once)."""
    for name in PRESIDIO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRecordText) for f in logger.filters):
            logger.addFilter(_NoRecordText())


def _nlp_engine_class():
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class LeanSpacyNlpEngine(SpacyNlpEngine):
        """Presidio's spaCy engine loading the model without ``exclude``d components.

        Without a lemmatizer spaCy leaves ``lemma_`` empty; the lower-cased token then stands in for
        it, so Presidio's context words still match (its ``LemmaContextAwareEnhancer`` matches
        context words as substrings of these forms).
        """

        def __init__(self, models, ner_model_configuration=None, exclude: Iterable[str] = ()) -> None:
            super().__init__(models=models, ner_model_configuration=ner_model_configuration)
            self.exclude = list(exclude)

        def load(self) -> None:
            import spacy

            self.nlp = {}
            for model in self.models:
                self._validate_model_params(model)
                nlp = spacy.load(model["model_name"], exclude=self.exclude)
                if not nlp.has_pipe("ner"):
                    raise PiiConfigError(f"spaCy model {model['model_name']} has no 'ner' component")
                self.nlp[model["lang_code"]] = nlp

        def _doc_to_nlp_artifact(self, doc, language):
            # SpacyNlpEngine._doc_to_nlp_artifact in one pass over the tokens, lemma or lower-case form.
            from presidio_analyzer.nlp_engine import NlpArtifacts

            lemmas = [t.lemma_ or t.lower_ for t in doc]
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(
                entities=entities,
                tokens=doc,
                tokens_indices=[t.idx for t in doc],
                lemmas=lemmas,
                nlp_engine=self,
                language=language,
                scores=scores,
            )

    return LeanSpacyNlpEngine


def build_analyzer(config: ScrubConfig):
    """A Presidio ``AnalyzerEngine`` for ``config``: lean spaCy engine + the YAML recognizer registry.

    Raises :class:`PiiConfigError` naming the file when the registry YAML is invalid or an entity of
    ``presidio.yaml`` has no recognizer in it.
    """
    _offline_tldextract()
    guard_presidio_logs()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NerModelConfiguration
    from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider

    import pipeline_hub.pii.recognizers  # noqa: F401 - registers the Crm* classes the registry YAML names

    models = [m for m in config.nlp_engine["models"] if m["lang_code"] == config.language]
    ner_conf = config.nlp_engine.get("ner_model_configuration")
    nlp = _nlp_engine_class()(
        models=models,
        ner_model_configuration=NerModelConfiguration.from_dict(ner_conf) if ner_conf else None,
        exclude=config.spacy_exclude,
    )
    nlp.load()
    registry = None
    if config.recognizers_path is not None:
        try:
            provider = RecognizerRegistryProvider(conf_file=config.recognizers_path, nlp_engine=nlp)
            registry = provider.create_recognizer_registry()
        except Exception as exc:  # Presidio raises ValueError, pydantic errors, its own not-found error
            raise PiiConfigError(f"{config.recognizers_path}: invalid recognizer registry: {exc}") from None
    analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=[config.language])
    supported = set(analyzer.get_supported_entities(config.language))
    missing = [e for e in config.entities if e not in supported]
    if missing:
        raise PiiConfigError(
            f"{config.source}: entities {missing} have no recognizer in {config.recognizers_path or 'the defaults'}"
        )
    return analyzer


def resolve_overlaps(found: Iterable[Detection], ner: Iterable[Detection] = (), text: str = "") -> list[Detection]:
    """One detection per stretch of text; sorted by start.

    ``found`` (pattern and parser results: e-mail, phone, IBAN, …) are taken by score, then length: a
    detection overlapping one already kept is dropped, unless it strictly contains every kept one it
    overlaps, which it then replaces (an IP address is not also counted as a phone number).
    ``ner`` results (spaCy's PERSON spans) come last and are cut around what was kept, keeping the
    pieces of ``text`` that still hold a letter: the small model's spans sometimes run into a
    neighbouring e-mail address or cover half of an IPv6 address, and its fixed score (0.85) says
    nothing about that. ``text`` is the analyzed text (needed when ``ner`` is given).
    """
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: (-d.score, -(d.end - d.start), d.start)):
        hit = [k for k in kept if d.start < k.end and k.start < d.end]
        if not hit:
            kept.append(d)
        elif all(d.start <= k.start and k.end <= d.end and (d.end - d.start) > (k.end - k.start) for k in hit):
            kept = [k for k in kept if k not in hit] + [d]
    fixed = sorted(kept, key=lambda d: d.start)
    for d in ner:
        start = d.start
        for k in [k for k in fixed if d.start < k.end and k.start < d.end] + [Detection("", d.end, d.end, 0.0)]:
            piece = _trim(text, start, min(k.start, d.end))
            if piece and any(c.isalpha() for c in text[piece[0] : piece[1]]):
                kept.append(Detection(d.entity, piece[0], piece[1], d.score))
            start = max(start, k.end)
    return sorted(kept, key=lambda d: d.start)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``[start, end)`` without leading and trailing characters that are neither letters nor digits."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return (start, end) if end > start else None


_ENGINES: dict[tuple, Any] = {}
_ENGINES_LOCK = threading.Lock()


def shared_analyzer(config: ScrubConfig):
    """One ``AnalyzerEngine`` per configuration and process (loading spaCy takes seconds)."""
    key = config.fingerprint()
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = build_analyzer(config)
        return _ENGINES[key]


def _analyze_batch(analyzer, config: ScrubConfig, texts: list[str]) -> list[list[Detection]]:
    """Presidio's batch analysis of ``texts``, inside a spaCy memory zone: the strings spaCy adds to its
    vocabulary for these texts are dropped afterwards (only our :class:`Detection` tuples leave), so a
    long scrub task does not grow with every distinct token it has seen (spaCy 3.8 docs,
    ``Language.memory_zone``)."""
    from presidio_analyzer import BatchAnalyzerEngine

    with analyzer.nlp_engine.nlp[config.language].memory_zone():
        results = BatchAnalyzerEngine(analyzer_engine=analyzer).analyze_iterator(
            texts,
            language=config.language,
            batch_size=config.batch_size,
            entities=config.entities,
            score_threshold=config.score_threshold,
            allow_list=config.allow_list or None,
        )
        out = []
        for text, found in zip(texts, results, strict=True):
            ner, other = [], []
            for r in found:
                d = Detection(r.entity_type, r.start, r.end, r.score)
                if (r.recognition_metadata or {}).get("recognizer_name") != "SpacyRecognizer":
                    other.append(d)
                elif plausible(text, d.entity, d.start, d.end):
                    ner.append(d)
            out.append(resolve_overlaps(other, ner, text))
    return out


def plausible(text: str, entity: str, start: int, end: int) -> bool:
    """False for NER results that cannot be right: a PERSON span without a letter (the small spaCy
    model sometimes labels a phone number such as ``+15062323670`` as a person)."""
    return entity != "PERSON" or any(c.isalpha() for c in text[start:end])


# Worker processes: each builds its own engine once, from the pickled configuration.
_WORKER: dict[str, Any] = {}


def _worker_init(config: ScrubConfig) -> None:
    _WORKER["config"] = config
    _WORKER["analyzer"] = build_analyzer(config)


def _worker_analyze(texts: list[str]) -> list[list[Detection]]:
    return _analyze_batch(_WORKER["analyzer"], _WORKER["config"], texts)


class PiiAnalyzer:
    """Finds PII in many texts at once: ``analyze(texts) -> [[Detection, …], …]`` in input order.

    Uses the process-wide engine for ``config`` and, when there are at least
    ``config.parallel_min_texts`` distinct texts and ``config.worker_count()`` is above 1, that many
    processes: this one and a pool of ``worker_count() - 1`` worker processes (``spawn``: nothing
    inherited from this process), kept until :meth:`close`.
    """

    def __init__(self, config: ScrubConfig) -> None:
        self.config = config
        self._pool: ProcessPoolExecutor | None = None

    @cached_property
    def engine(self):
        """The in-process Presidio ``AnalyzerEngine`` (shared by every analyzer of this configuration)."""
        return shared_analyzer(self.config)

    def analyze(self, texts: list[str]) -> list[list[Detection]]:
        """Detections per text (same order); repeated texts are analyzed once, blank ones not at all.

        Raises ``TypeError`` for a non-string.
        """
        bad = next((type(t).__name__ for t in texts if not isinstance(t, str)), None)
        if bad:
            raise TypeError(f"PiiAnalyzer.analyze takes strings, got {bad}")
        unique = list(dict.fromkeys(t for t in texts if t.strip()))
        found = dict(zip(unique, self._analyze_unique(unique), strict=True))
        return [found.get(t, []) for t in texts]

    def _analyze_unique(self, texts: list[str]) -> list[list[Detection]]:
        procs = self.config.worker_count()
        if procs < 2 or len(texts) < self.config.parallel_min_texts:
            return _analyze_batch(self.engine, self.config, texts) if texts else []
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=procs - 1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self.config,),
            )
        # Small slices, shared out as they are asked for: the workers always have the next slice queued,
        # and this process analyzes a slice itself whenever they do, from the first moment (while the
        # workers still load spaCy) to the last (no process idles while another holds a long tail).
        size = max(self.config.batch_size, -(-len(texts) // (procs * 8)))
        slices = [texts[i : i + size] for i in range(0, len(texts), size)]
        log.info("PII analysis: %d distinct texts in %d slices over %d processes", len(texts), len(slices), procs)
        results: list[list[list[Detection]] | None] = [None] * len(slices)
        pending: dict[Future, int] = {}
        nxt = 0
        while nxt < len(slices) or pending:
            while nxt < len(slices) and len(pending) < 2 * (procs - 1):
                pending[self._pool.submit(_worker_analyze, slices[nxt])] = nxt
                nxt += 1
            for future in [f for f in pending if f.done()]:
                results[pending.pop(future)] = future.result()
            if nxt < len(slices):
                results[nxt] = _analyze_batch(self.engine, self.config, slices[nxt])
                nxt += 1
            elif pending:
                wait(pending, return_when=FIRST_COMPLETED)
        return [found for part in results for found in part]

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> PiiAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
