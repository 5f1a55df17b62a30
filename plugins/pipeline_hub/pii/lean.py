"""Presidio's analysis with less work per text and the same results (used by :mod:`pipeline_hub.pii.engine`).

* :func:`lean_spacy_engine_class`: spaCy loaded without the components PERSON does not need, and the
  token-level NLP artifacts (lemmas, keywords) built only when a context enhancer asks for them;
* :func:`in_place_enhancer`: Presidio's ``LemmaContextAwareEnhancer`` without a deep copy per text;
* :func:`analyze_text`: ``AnalyzerEngine.analyze`` step for step, without the per-text registry lookup,
  skipping pattern recognizers on texts their patterns cannot match (:func:`prefilter`).

``benchmarks/pii.py`` times them (``benchmarks/RESULTS.md``); the PII tests and ``pipeline-hub pii-eval``
check the results did not change.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import cache, cached_property, lru_cache

from pipeline_hub.pii.config import PiiConfigError


def lean_spacy_engine_class():
    """The ``SpacyNlpEngine`` subclass below (a function: Presidio is imported only when an engine is built)."""
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
            # SpacyNlpEngine._doc_to_nlp_artifact with the token-level fields (lemmas, keywords, token
            # offsets) computed only when a context enhancer asks for them (most texts have no result
            # whose recognizer has context words).
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return _lazy_artifacts_class()(entities, doc, self, language, scores)

    return LeanSpacyNlpEngine


@cache
def _lazy_artifacts_class():
    from presidio_analyzer.nlp_engine import NlpArtifacts

    class LazyNlpArtifacts(NlpArtifacts):
        """Presidio's ``NlpArtifacts`` whose ``lemmas``, ``keywords``, ``tokens_indices`` (and
        ``token_ends``) are built on first use, from one ``Doc.to_array`` rather than a ``Token`` object
        per token, with the same values: the lemma, or the lower-cased token without a lemmatizer
        (Presidio's ``LemmaContextAwareEnhancer`` matches context words as substrings of these forms),
        and the keywords :meth:`NlpArtifacts.set_keywords` returns."""

        def __init__(self, entities, doc, nlp_engine, language, scores) -> None:  # noqa: D107
            # NlpArtifacts.__init__ would compute the keywords at once: set its attributes here instead.
            self.entities, self.tokens, self.nlp_engine, self.language = entities, doc, nlp_engine, language
            self.scores = scores if scores else [0.85] * len(entities)

        @cached_property
        def _columns(self) -> list[list[int]]:
            from spacy.attrs import IDX, LEMMA, LENGTH, LOWER

            return self.tokens.to_array([LEMMA, LOWER, IDX, LENGTH]).tolist() if len(self.tokens) else []

        @cached_property
        def lemmas(self) -> list[str]:
            strings = self.tokens.vocab.strings
            return [strings[lemma or lower] for lemma, lower, _, _ in self._columns]  # hash 0: no lemma

        @cached_property
        def tokens_indices(self) -> list[int]:
            return [idx for _, _, idx, _ in self._columns]

        @cached_property
        def token_ends(self) -> list[int]:
            """End offset of each token (spaCy tokens are never empty)."""
            return [idx + length for _, _, idx, length in self._columns]

        @cached_property
        def keywords(self) -> list[str]:
            keep = _keyword_filter(self.nlp_engine, self.language)
            return [part for k in self.lemmas if keep(k) for part in k.lower().split(":")]

        @cached_property
        def keyword_set(self) -> frozenset[str]:
            return frozenset(self.keywords)

    return LazyNlpArtifacts


@cache
def _keyword_filter(nlp_engine, language: str):
    """``NlpArtifacts.set_keywords``' test of one lemma, memoised per engine (the same words recur)."""

    @lru_cache(maxsize=1 << 16)
    def keep(lemma: str) -> bool:
        return (
            not nlp_engine.is_stopword(lemma, language)
            and not nlp_engine.is_punct(lemma, language)
            and lemma != "-PRON-"
            and lemma != "be"
        )

    return keep


def in_place_enhancer():
    """Presidio's ``LemmaContextAwareEnhancer`` with the same scores and less work per text.

    * No deep copy of the results: Presidio copies them so it can raise scores in place; here they are
      the analyzer's own, created for this one call and read by nothing else.
    * Skipped when no result can change: none comes from a recognizer with context words, or each such
      result already has the highest score (1.0, which a context word cannot raise).
    * The token under a result found by bisection over token end offsets (Presidio scans the tokens),
      and the context words looked up in a set of the text's keywords (Presidio: in their list).
    """
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer

    id_key, boosted_key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY

    class _Owned(list):
        def __deepcopy__(self, memo):
            return list(self)

    class InPlaceEnhancer(LemmaContextAwareEnhancer):
        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            with_context = {r.id for r in recognizers if r.context}
            if not context and not any(
                (r.recognition_metadata or {}).get(id_key) in with_context
                and r.score != ContextAwareEnhancer.MAX_SCORE
                and not r.recognition_metadata.get(boosted_key)
                for r in raw_results
            ):
                return list(raw_results)
            return super().enhance_using_context(text, _Owned(raw_results), nlp_artifacts, recognizers, context)

        def _extract_surrounding_words(self, nlp_artifacts, word, start):
            ends = getattr(nlp_artifacts, "token_ends", None)
            if ends is None or not nlp_artifacts.tokens:
                return super()._extract_surrounding_words(nlp_artifacts, word, start)
            # Presidio's loop: the first token starting at ``start`` or ending after it.
            index = bisect_right(ends, start)
            if index == len(ends):
                raise ValueError(f"no token at offset {start} although a result starts there")  # no record text
            lemmas, keywords = nlp_artifacts.lemmas, nlp_artifacts.keyword_set  # Presidio: ``in`` on the list
            words = self._add_n_words_backward(index, self.context_prefix_count, lemmas, keywords)
            words += self._add_n_words_forward(index, self.context_suffix_count, lemmas, keywords)
            return list(set(words))

    return InPlaceEnhancer()


def loaded_recognizers(analyzer, language: str, entities: list[str]) -> list:
    """The registry's recognizers for ``entities``, loaded (as ``AnalyzerEngine.analyze`` does on every
    call; here once per batch)."""
    found = analyzer.registry.get_recognizers(language=language, entities=entities)
    for recognizer in found:
        if not recognizer.is_loaded:
            recognizer.load()
            recognizer.is_loaded = True
    return found


_IPV4_HINT = re.compile(r"\d\.\d")
_THREE_DIGITS = re.compile(r"\d{3}")


def _could_match_ip(text: str) -> bool:
    # Every IpRecognizer pattern has two colons (IPv6 forms, "::") or a digit, dot, digit (IPv4).
    return text.count(":") >= 2 or _IPV4_HINT.search(text) is not None


def _could_match_ssn(text: str) -> bool:
    # Every UsSsnRecognizer pattern starts with three digits ([0-9]{3}, {5} or {9}).
    return _THREE_DIGITS.search(text) is not None


@cache
def _prefilters() -> dict:
    """Presidio recognizer class -> a test every text it can find something in passes (a superset)."""
    from presidio_analyzer.predefined_recognizers import IpRecognizer, UsSsnRecognizer

    return {IpRecognizer: _could_match_ip, UsSsnRecognizer: _could_match_ssn}


def prefilter(recognizer):
    """A cheap test every text ``recognizer`` can find something in passes, or None (no test).

    The hand-written tests above for Presidio's IP and SSN classes with their own patterns; for any
    other ``PatternRecognizer`` whose ``analyze`` is Presidio's (it finds nothing where no pattern
    matches), one search with all its patterns as one alternation, with the recognizer's flags
    (Presidio scans once per pattern and builds an explanation per match). Computed once per recognizer.
    """
    key = id(recognizer)
    if key not in _PREFILTER or _PREFILTER[key][0] is not recognizer:
        _PREFILTER[key] = (recognizer, _make_prefilter(recognizer))
    return _PREFILTER[key][1]


_PREFILTER: dict[int, tuple] = {}
_UNSAFE_TO_JOIN = re.compile(r"\\[1-9]|\(\?P=|\(\?[a-zA-Z-]+\)")  # backreferences, global inline flags


def _make_prefilter(recognizer):
    from presidio_analyzer import PatternRecognizer

    test = _prefilters().get(type(recognizer))
    if test is not None and recognizer.patterns is type(recognizer).PATTERNS and not recognizer.deny_list:
        return test
    if not isinstance(recognizer, PatternRecognizer) or type(recognizer).analyze is not PatternRecognizer.analyze:
        return None
    regexes = [p.regex for p in recognizer.patterns]
    if not regexes or any(_UNSAFE_TO_JOIN.search(r) for r in regexes):
        return None
    import regex as regex_module  # the engine Presidio's patterns are written for

    try:
        joined = regex_module.compile("|".join(f"(?:{r})" for r in regexes), flags=recognizer.global_regex_flags)
    except Exception:  # noqa: BLE001 - no prefilter then: the recognizer runs on every text
        return None

    def any_pattern(text: str) -> bool:
        try:
            return joined.search(text, timeout=1.0) is not None
        except TimeoutError:
            return True

    return any_pattern


def analyze_text(
    analyzer, recognizers: list, text: str, nlp_artifacts, entities: list[str], score_threshold: float, allow: set
) -> list:
    """Presidio ``AnalyzerEngine.analyze(text, nlp_artifacts=…)`` with the same results, less per-text work.

    The same steps in the same order: every recognizer's results tagged with its id, recognizer-level
    context enhancement (only for recognizers that override it; the base method returns its input),
    the context-aware enhancer (:func:`in_place_enhancer`), results below ``score_threshold`` dropped, then
    ``EntityRecognizer.remove_duplicates`` and the exact-match allow list. Left out: the recognizer
    lookup and loading per text (:func:`loaded_recognizers` does them once), recognizers whose
    :func:`prefilter` says their patterns cannot match the text, the decision-process tracing
    (off) and the removal of explanations (the caller keeps only entity, offsets and score).
    """
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    id_key, name_key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, RecognizerResult.RECOGNIZER_NAME_KEY
    results: list = []
    for recognizer in recognizers:
        test = prefilter(recognizer)
        if test is not None and not test(text):
            continue  # its patterns cannot match: it would return no result
        found = recognizer.analyze(text=text, entities=entities, nlp_artifacts=nlp_artifacts)
        if found:
            for r in found:
                if not r.recognition_metadata:
                    r.recognition_metadata = {}
                r.recognition_metadata.setdefault(id_key, recognizer.id)
                r.recognition_metadata.setdefault(name_key, recognizer.name)
            results.extend(found)
    if not results:
        return results
    if any(type(r).enhance_using_context is not EntityRecognizer.enhance_using_context for r in recognizers):
        enhanced = []
        for recognizer in recognizers:
            own = [r for r in results if r.recognition_metadata[id_key] == recognizer.id]
            others = [r for r in results if r.recognition_metadata[id_key] != recognizer.id]
            enhanced += recognizer.enhance_using_context(
                text=text,
                raw_recognizer_results=own,
                other_raw_recognizer_results=others,
                nlp_artifacts=nlp_artifacts,
                context=None,
            )
        results = enhanced
    results = analyzer.context_aware_enhancer.enhance_using_context(
        text=text, raw_results=results, nlp_artifacts=nlp_artifacts, recognizers=recognizers, context=None
    )
    results = [r for r in results if r.score >= score_threshold]
    results = EntityRecognizer.remove_duplicates(results)
    if allow:
        results = [r for r in results if text[r.start : r.end] not in allow]
    return results
