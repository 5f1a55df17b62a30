"""One Presidio ``RecognizerResult`` of our recognizers, built the way Presidio's own recognizers build it.

Presidio's ``EntityRecognizer`` subclasses return results carrying an ``AnalysisExplanation`` and the
recognizer's name and id in ``recognition_metadata`` (presidio-analyzer ``PatternRecognizer.analyze``);
the analyzer uses the id to deduplicate and the decision process to explain a hit.
"""

from __future__ import annotations

from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult


def result(recognizer: EntityRecognizer, start: int, end: int, score: float, explanation: str) -> RecognizerResult:
    """A result of ``recognizer``'s first entity over ``text[start:end]`` (character offsets), score 0..1."""
    return RecognizerResult(
        entity_type=recognizer.supported_entities[0],
        start=start,
        end=end,
        score=score,
        analysis_explanation=AnalysisExplanation(
            recognizer=type(recognizer).__name__, original_score=score, textual_explanation=explanation
        ),
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )
