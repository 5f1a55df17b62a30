"""``STREET_ADDRESS``: US, Canadian and UK street addresses (entity name as in Presidio's research data sets).

:class:`StreetAddressRecognizer` finds candidate windows with one regular expression (a house number,
one to four capitalised or ordinal words, a street-type word: USPS Publication 28 Appendix C1 suffixes
and their standard abbreviations, the common UK / Canadian street types), then runs ``pyap`` (MIT,
regex-based US / CA / GB address parser, 0.3.1) on the text from the window on only, so text without a
house number and street type costs one regex scan.

Span: the street line (number, name, type, an optional unit such as ``Apt. 4B`` / ``Suite 5100``) and,
when pyap parses a full address starting there, everything pyap covers (city, state or province,
ZIP / postal code). A ``PO Box`` number is an address too. Continental European layouts
(``Hauptstraße 12``, ``12 rue de Lyon``) are not covered.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from pipeline_hub.pii.recognizers.results import result

# USPS Pub. 28 C1 suffixes (common ones) and abbreviations, UK / CA street types.
STREET_TYPES = (
    "Street St Avenue Ave Av Road Rd Boulevard Blvd Drive Dr Lane Ln Court Ct Place Pl Parkway Pkwy "
    "Highway Hwy Way Circle Cir Terrace Ter Trail Trl Square Sq Plaza Plz Loop Crescent Cres Close "
    "Gardens Gdns Grove Row Mews Walk Hill Park Pike Alley Aly Expressway Expy Freeway Fwy Turnpike "
    "Tpke Center Ctr Crossing Xing Point Pt Ridge Rdg Run Path Pass Landing Lndg Cove Cv Bend Heights "
    "Hts Estates Est Commons Parade Broadway Esplanade Quay Wharf"
).split()
_UNIT = (
    r"(?:,?[ \t]*(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Room|Rm|Bldg|Building|\#)\.?[ \t]*"
    r"[A-Z0-9][A-Z0-9-]{0,5}\b)?"
)
_WORD = r"(?:[A-Z][A-Za-z'’\-]*\.?|\d{1,3}(?:st|nd|rd|th))"
_CANDIDATE = re.compile(
    r"\b\d{1,6}[A-Za-z]?(?:-\d{1,4})?[ \t]+(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?[ \t]+)?"
    rf"(?:{_WORD}[ \t]+){{1,4}}?(?:{'|'.join(STREET_TYPES)})\b\.?"
    r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?" + _UNIT
)
# The city line after a street line: "Houston, TX 77002", "Calgary, Alberta T2P 4J8", "London SW1A 2AA".
_CITY_LINE = re.compile(
    r"[^\n]{0,24}?(?:,[ \t]*|\n[ \t]*)(?:[A-Z][A-Za-z.'\-]+[ \t]?){1,3},?[ \t]+"
    r"(?:(?:[A-Z]{2}|[A-Z][a-z]+(?:[ \t][A-Z][a-z]+)?)\.?,?[ \t]+\d{5}(?:-\d{4})?|"
    r"(?:(?:[A-Z]{2}|[A-Z][a-z]+),?[ \t]+)?[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2})\b"
)
_PO_BOX = re.compile(r"\b(?:P\.?[ \t]?O\.?|Post Office)[ \t]*Box[ \t]+\d{1,6}\b", re.IGNORECASE)
COUNTRIES = ("US", "CA", "GB")


def _after_alnum(text: str, count: int) -> int:
    """Offset just after the ``count``-th letter or digit of ``text`` (``len(text)`` if fewer)."""
    for i, c in enumerate(text):
        if c.isalnum():
            count -= 1
            if count == 0:
                return i + 1
    return len(text)


class StreetAddressRecognizer(EntityRecognizer):
    """``STREET_ADDRESS`` results: street lines by regex, extended by ``pyap`` to the full address.

    ``score`` (0.6) when pyap parses a full address from the street line on, ``street_score`` (0.5) for
    a street line (or PO box) alone; both are above the scrub stage's ``score_threshold`` (0.35).
    ``window`` characters from the candidate on are given to pyap (one line break at most).
    """

    def __init__(
        self,
        supported_entity: str = "STREET_ADDRESS",
        supported_language: str = "en",
        score: float = 0.6,
        street_score: float = 0.5,
        window: int = 120,
        name: str | None = None,
    ) -> None:
        self.score, self.street_score, self.window = score, street_score, window
        super().__init__(
            supported_entities=[supported_entity], supported_language=supported_language, name=name, context=[]
        )

    def load(self) -> None:
        """Nothing to load (pyap compiles its patterns on import)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Street-address results in ``text`` (character offsets)."""
        out = []
        for m in _CANDIDATE.finditer(text):
            end, score = m.end(), self.street_score
            full = self._full_address(text, m.start())
            city = _CITY_LINE.match(text, end)
            if city and city.end() > (full or 0):
                full = city.end()
            if full and full > end:
                end, score = full, self.score
            while end > m.start() and text[end - 1] in " \t\r\n,;":
                end -= 1  # pyap's match may end with the line break or comma after the address
            out.append(self._result(m.start(), end, score))
        out += [self._result(m.start(), m.end(), self.street_score) for m in _PO_BOX.finditer(text)]
        return EntityRecognizer.remove_duplicates(out)

    def _full_address(self, text: str, start: int) -> int | None:
        """End offset of the address pyap parses from ``start`` on, if any."""
        import pyap

        chunk = text[start : start + self.window]
        lines = chunk.split("\n")
        chunk = "\n".join(lines[:2]) if len(lines) > 1 and len(lines[0]) < 60 else lines[0]
        # pyap reports offsets into its normalized copy of the text (blanks, line breaks and commas
        # collapsed, dashes unified), which changes lengths but never letters and digits: the end is
        # mapped back by counting letters and digits.
        normalized = pyap.parser.AddressParser._normalize_string(chunk)
        for country in COUNTRIES:
            try:
                found = pyap.parse(chunk, country=country)
            except Exception:  # noqa: BLE001 - a third-party parser must not fail the scrub stage
                found = []
            for address in found:
                if any(c.isalnum() for c in normalized[: address.match_start]):
                    continue  # an address found further on, not from the candidate
                wanted = sum(c.isalnum() for c in normalized[: address.match_end])
                return start + _after_alnum(chunk, wanted)
        return None

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return result(self, start, end, score, "street address (pyap)" if score == self.score else "street line")
