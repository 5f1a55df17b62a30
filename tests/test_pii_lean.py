"""The lean analysis path (``pipeline_hub.pii.lean``) gives what Presidio's ``AnalyzerEngine.analyze`` gives.

Same entity, offsets and score per result on the labelled evaluation set and on texts made for the
shortcuts (the context enhancer skipped or run, the IP and SSN prefilters); no timing.
"""

from __future__ import annotations

import json

import pytest

from pipeline_hub.pii.config import ScrubConfig
from pipeline_hub.pii.engine import PiiAnalyzer
from pipeline_hub.pii.lean import analyze_text, loaded_recognizers, prefilter

from conftest import REPO

EXTRA = [
    "Server 10.0.0.12 and fe80::1ff:fe23:4567:890a; mapped ::ffff:192.168.1.1, unspecified :: here",
    "SSN 123-45-6789, also 123 45 6789 and 123456789; ZIP+4 12345-6789",
    "Call me on 020 7946 0958 (phone), email maria@example.com. Tax ID: 12-3456789",
    "No digits at all, only Maria Gonzalez from Springfield.",
    "ratio 3:2:1 and version 1.2",
    "VAT DE123456789, HRB 12345 B, company number 01234567, SC123456, card 4111 1111 1111 1111",
    "EIN: 12-3456789 and IBAN DE89 3704 0044 0532 0130 00",
    "",
]


@pytest.fixture(scope="module")
def engine_and_config():
    config = ScrubConfig.load()
    return PiiAnalyzer(config).engine, config


def _texts() -> list[str]:
    lines = (REPO / "tests" / "data" / "pii_eval.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()] + EXTRA


def _raw(recognizers, text: str, artifacts, config) -> list:
    """Fresh results of every recognizer, tagged with its id as ``AnalyzerEngine.analyze`` does."""
    from presidio_analyzer import RecognizerResult

    out = []
    for r in recognizers:
        for found in r.analyze(text=text, entities=config.entities, nlp_artifacts=artifacts):
            found.recognition_metadata = {
                **(found.recognition_metadata or {}),
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: r.id,
            }
            out.append(found)
    return out


def _key(results) -> list[tuple]:
    return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in results)


def test_analyze_text_matches_presidio_analyze(engine_and_config):
    engine, config = engine_and_config
    recognizers = loaded_recognizers(engine, config.language, config.entities)
    texts = _texts()
    artifacts = dict(engine.nlp_engine.process_batch(texts=texts, language=config.language, batch_size=16))
    for text in texts:
        ours = analyze_text(engine, recognizers, text, artifacts[text], config.entities, config.score_threshold, set())
        theirs = engine.analyze(
            text, language=config.language, entities=config.entities, score_threshold=config.score_threshold
        )
        assert _key(ours) == _key(theirs), text


def test_prefilters_pass_every_text_their_recognizer_finds_something_in(engine_and_config):
    engine, config = engine_and_config
    filtered = [(r, prefilter(r)) for r in loaded_recognizers(engine, config.language, config.entities)]
    filtered = [(r, test) for r, test in filtered if test is not None]
    assert {r.name for r, _ in filtered} == {
        "IpRecognizer",
        "UsSsnRecognizer",
        "EmailRecognizer",
        "CrmCreditCardRecognizer",
        "VatIdRecognizer",
        "CompanyRegistrationRecognizer",
        "UsEinRecognizer",
    }  # the pattern recognizers whose analyze is Presidio's (IBAN has its own)
    for text in _texts():
        for recognizer, test in filtered:
            if recognizer.analyze(text, config.entities):
                assert test(text), (recognizer.name, text)
    assert not any(test("No digits at all, only Maria Gonzalez.") for _, test in filtered)


def test_in_place_enhancer_and_lazy_artifacts_score_as_presidio_does(engine_and_config):
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts

    engine, config = engine_and_config
    recognizers = loaded_recognizers(engine, config.language, config.entities)
    stock = LemmaContextAwareEnhancer()
    texts = _texts()
    boosted = 0
    for text, lazy in engine.nlp_engine.process_batch(texts=texts, language=config.language, batch_size=16):
        doc = lazy.tokens
        plain = NlpArtifacts(
            entities=lazy.entities,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lemma_ or t.lower_ for t in doc],
            nlp_engine=engine.nlp_engine,
            language=config.language,
            scores=lazy.scores,
        )
        assert lazy.lemmas == plain.lemmas and lazy.keywords == plain.keywords
        assert lazy.tokens_indices == plain.tokens_indices
        theirs = stock.enhance_using_context(text, _raw(recognizers, text, lazy, config), plain, recognizers)
        before = _key(_raw(recognizers, text, lazy, config))
        ours = engine.context_aware_enhancer.enhance_using_context(
            text, _raw(recognizers, text, lazy, config), lazy, recognizers
        )
        assert _key(ours) == _key(theirs), text
        boosted += _key(ours) != before
    assert boosted > 10  # the enhancer did raise scores, not only skip
