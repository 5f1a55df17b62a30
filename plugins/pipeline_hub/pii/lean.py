"""Presidio's analysis with less work per text and the same results (used by :mod:`pipeline_hub.pii.engine`).

* :func:`lean_spacy_engine_class`: spaCy loaded without the components PERSON does not need, and the
  token-level NLP artifacts (lemmas, keywords) built only when a context enhancer asks for them;
* :func:`in_place_enhancer`: Presidio's ``LemmaContextAwareEnhancer`` without a deep copy per text;
* :func:`analyze_text`: ``AnalyzerEngine.analyze`` step for step, without the per-text registry lookup.

``benchmarks/pii.py`` times them (``benchmarks/RESULTS.md``); the PII tests and ``pipeline-hub pii-eval``
check the results did not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, cached_property

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
        """Presidio's ``NlpArtifacts`` whose ``lemmas``, ``keywords`` and ``tokens_indices`` are built
        on first use, with the same values: the lemma, or the lower-cased token without a lemmatizer
        (Presidio's ``LemmaContextAwareEnhancer`` matches context words as substrings of these forms),
        and keywords by :meth:`NlpArtifacts.set_keywords`."""

        def __init__(self, entities, doc, nlp_engine, language, scores) -> None:  # noqa: D107
            # NlpArtifacts.__init__ would compute the keywords at once: set its attributes here instead.
            self.entities, self.tokens, self.nlp_engine, self.language = entities, doc, nlp_engine, language
            self.scores = scores if scores else [0.85] * len(entities)

        @cached_property
        def lemmas(self) -> list[str]:
            return [t.lemma_ or t.lower_ for t in self.tokens]

        @cached_property
        def tokens_indices(self) -> list[int]:
            return [t.idx for t in self.tokens]

        @cached_property
        def keywords(self) -> list[str]:
            return NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self.language)

    return LazyNlpArtifacts


def in_place_enhancer():
    """Presidio's ``LemmaContextAwareEnhancer`` without its deep copy of every text's results.

    Presidio copies the results so it can raise scores in place; here they are the analyzer's own,
    created for this one call and read by nothing else, so they are raised in place (same scores).
    Texts with no result from a recognizer that has context words skip the enhancer altogether.
    """
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class _Owned(list):
        def __deepcopy__(self, memo):
            return list(self)

    class InPlaceEnhancer(LemmaContextAwareEnhancer):
        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            if not context and not any(r.context for r in recognizers if _has_result(r, raw_results)):
                return list(raw_results)
            return super().enhance_using_context(text, _Owned(raw_results), nlp_artifacts, recognizers, context)

    return InPlaceEnhancer()


def _has_result(recognizer, results) -> bool:
    from presidio_analyzer import RecognizerResult

    key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
    return any((r.recognition_metadata or {}).get(key) == recognizer.id for r in results)


def loaded_recognizers(analyzer, language: str, entities: list[str]) -> list:
    """The registry's recognizers for ``entities``, loaded (as ``AnalyzerEngine.analyze`` does on every
    call; here once per batch)."""
    found = analyzer.registry.get_recognizers(language=language, entities=entities)
    for recognizer in found:
        if not recognizer.is_loaded:
            recognizer.load()
            recognizer.is_loaded = True
    return found


def analyze_text(
    analyzer, recognizers: list, text: str, nlp_artifacts, entities: list[str], score_threshold: float, allow: set
) -> list:
    """Presidio ``AnalyzerEngine.analyze(text, nlp_artifacts=…)`` with the same results, less per-text work.

    The same steps in the same order: every recognizer's results tagged with its id, recognizer-level
    context enhancement (only for recognizers that override it; the base method returns its input),
    the context-aware enhancer (:func:`in_place_enhancer`), results below ``score_threshold`` dropped, then
    ``EntityRecognizer.remove_duplicates`` and the exact-match allow list. Left out: the recognizer
    lookup and loading per text (:func:`loaded_recognizers` does them once), the decision-process tracing
    (off) and the removal of explanations (the caller keeps only entity, offsets and score).
    """
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    id_key, name_key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, RecognizerResult.RECOGNIZER_NAME_KEY
    results: list = []
    for recognizer in recognizers:
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
