"""Presidio recognizers a CRM / B2B data set needs beyond Presidio's own, named in ``include/pii/recognizers.yaml``.

Presidio's ``RecognizerRegistryProvider`` instantiates ``type: predefined`` recognizers by class name
from every loaded subclass of ``EntityRecognizer``; importing this module makes the classes below
available to it. Pattern-only recognizers (VAT ids, company registration numbers, US EIN) need no code
and are declared as ``type: custom`` in the YAML itself.

* :class:`CrmPhoneRecognizer`: python-phonenumbers (Google's libphonenumber metadata) over candidate
  windows only, international formats of every country, national formats of configured regions, and
  ambiguous national forms only next to a context word.
* :class:`CrmCreditCardRecognizer`: Presidio's credit-card recognizer (Luhn-validated) plus the
  Mastercard 2-series BIN range 2221-2720 (in use since 2017) that its pattern misses.
* :class:`~pipeline_hub.pii.recognizers.address.StreetAddressRecognizer` (``STREET_ADDRESS``),
  :class:`~pipeline_hub.pii.recognizers.secrets.SecretRecognizer` (``SECRET``) and
  :class:`~pipeline_hub.pii.recognizers.person.SignatureNameRecognizer` (``PERSON``) live in their own
  modules, imported here so the registry finds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from presidio_analyzer import EntityRecognizer, Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, PhoneRecognizer

from pipeline_hub.pii.recognizers.address import StreetAddressRecognizer
from pipeline_hub.pii.recognizers.person import SignatureNameRecognizer
from pipeline_hub.pii.recognizers.results import result
from pipeline_hub.pii.recognizers.secrets import SecretRecognizer

__all__ = [
    "CrmCreditCardRecognizer",
    "CrmPhoneRecognizer",
    "SecretRecognizer",
    "SignatureNameRecognizer",
    "StreetAddressRecognizer",
]

# A run of digits with phone punctuation between them (at most two of " ().-", or one "/"), on one
# line, optionally opened by "+" or "(". " / " between two numbers ends a window.
# An extension after it (``x4471``, `` ext. 12``, `` extension 55``, `` #12``) belongs to the window, so
# the matcher includes it in the number's span and no extension digits are left raw.
_CANDIDATE = re.compile(
    r"(?P<main>[+(]?\d(?:(?:[ \t().\-]{0,2}|/)\d)+)(?:[ \t]{0,2}(?i:x|ext\.?|extn\.?|extension|\#)[ \t]{0,2}\d{1,6})?"
)
# Words before a bare digit run that make it a phone number; matched on the text itself because spaCy
# lists some of them ("call") as stop words, which Presidio's context enhancer never looks at.
_CONTEXT_BEFORE = re.compile(
    r"(?i)\b(?:call(?:ed|ing)?|phone|tel|telephone|cell|mobile|mob|fax|ring|text|sms|whatsapp|reach(?:ed|able)?|"
    r"dial|contact|direct|ph)\b[^\n\d]{0,16}$"
)
# Shapes a national-number matcher accepts that are dates or IPv4 addresses, not phone numbers.
_NOT_A_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{1,3}(?:\.\d{1,3}){3}")
_INTERNATIONAL = re.compile(r"^(?:\+|00|011)")


class CrmPhoneRecognizer(PhoneRecognizer):
    """Phone numbers by python-phonenumbers' ``PhoneNumberMatcher``, run only where a number can be.

    Presidio's ``PhoneRecognizer`` runs the matcher over the whole text once per region, the slowest
    step of an analysis. Here the matcher runs only over candidate windows (runs of at least
    ``min_digits`` digits with phone punctuation, one character of margin each side so the matcher's
    own boundary checks still apply), and per window only for the regions where it can be a number:
    an international number (``+``, ``00``, ``011``) once; a national one only for regions whose
    number lengths (libphonenumber's ``possible_length``) fit its digits, written with the region's
    trunk prefix (``0``) where it has one, as people write national numbers (``TRUNK_OPTIONAL``
    regions and NANP's optional ``1`` excepted). Text without a digit run costs one regex scan.

    Scores (``AnalyzerEngine`` drops results under the configured ``score_threshold``; a context word
    within Presidio's window adds its context boost, 0.35 by default):

    * ``score`` (0.4): an international number (``+``, ``00`` or ``011`` prefix) valid anywhere, or a
      national number of a ``supported_regions`` region written with punctuation (spaces, dots, hyphens,
      brackets);
    * ``weak_score`` (0.2): a national number valid only in a ``context_regions`` region (those without
      a trunk prefix, where any 8-9 digit id is also a valid number, e.g. SG, NO, DK, PL), or a bare run
      of digits (order, customer and registration numbers look the same): reported only next to a
      context word such as "phone", "mobile" or "tel".

    Dates (ISO 8601 or d.m.yyyy) and dotted quads are never phone numbers, nor are digits glued to a
    preceding word by ``-``, ``/`` or ``#`` (``PO-2023-126606``, ``INV/2024/5566``). ``leniency`` is
    phonenumbers' ``Leniency`` (1 = VALID: the number must be valid for its region).
    Raises ``ValueError`` for an unknown region code.
    """

    CONTEXT = [
        "phone",
        "telephone",
        "tel",
        "cell",
        "cellphone",
        "mobile",
        "mob",
        "call",
        "fax",
        "reach",
        "reachable",
        "direct",
        "landline",
        "switchboard",
        "voicemail",
        "whatsapp",
        "reception",
    ]
    # National formats accepted at ``score``: CRM markets whose numbers have a trunk prefix or a fixed
    # layout (Europe, the Americas, India, Australia, Japan).
    REGIONS = (
        "US",
        "CA",
        "GB",
        "IE",
        "DE",
        "AT",
        "CH",
        "FR",
        "BE",
        "NL",
        "IT",
        "SE",
        "FI",
        "IN",
        "AU",
        "BR",
        "JP",
        "MX",
    )
    # National formats accepted only next to a context word (no trunk prefix: ids look the same).
    CONTEXT_REGIONS = ("ES", "PT", "LU", "DK", "NO", "PL", "SG")
    # Regions with a trunk prefix whose numbers are also commonly written without it.
    TRUNK_OPTIONAL = ("BR", "IN")

    def __init__(
        self,
        context: list[str] | None = None,
        supported_language: str = "en",
        supported_entity: str = "PHONE_NUMBER",
        supported_regions: Iterable[str] = REGIONS,
        context_regions: Iterable[str] = CONTEXT_REGIONS,
        leniency: int = 1,
        min_digits: int = 7,
        score: float = 0.4,
        weak_score: float = 0.2,
        name: str | None = None,
    ) -> None:
        strong, weak = [r.upper() for r in supported_regions], [r.upper() for r in context_regions]
        unknown = sorted(set(strong + weak) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"CrmPhoneRecognizer: unknown region codes {unknown} (ISO 3166-1 alpha-2)")
        super().__init__(
            context=context or self.CONTEXT,
            supported_language=supported_language,
            supported_entity=supported_entity,
            supported_regions=tuple(strong),
            leniency=leniency,
            name=name,
        )
        self.context_regions = tuple(r for r in weak if r not in strong)
        self.min_digits, self.strong_score, self.weak_score = min_digits, score, weak_score
        self._shape = {}  # region -> (national number lengths, trunk prefix or None, trunk optional?)
        for region in self.supported_regions + self.context_regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            trunk = meta.national_prefix
            optional = trunk is None or trunk == "1" or region in self.TRUNK_OPTIONAL
            self._shape[region] = (frozenset(meta.general_desc.possible_length), trunk, optional)

    def _regions_for(self, core: str, digits: int) -> tuple[str, ...]:
        """The regions whose matcher can find a number in the window text ``core``."""
        if core.startswith("+") or core.startswith("00"):
            return ("DE",)  # "+" parses in any region; DE's international prefix is 00
        if core.startswith("011"):
            return ("US",)
        lead = core.lstrip("(")
        out = []
        for region in self.supported_regions + self.context_regions:
            lengths, trunk, optional = self._shape[region]
            if trunk and lead.startswith(trunk) and digits - len(trunk) in lengths:
                out.append(region)
            elif (optional or not trunk) and digits in lengths:
                out.append(region)
        return tuple(out)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Phone-number results in ``text`` (character offsets), at most one per span."""
        best: dict[tuple[int, int], tuple[float, str]] = {}
        for window in _CANDIDATE.finditer(text):
            core = window.group("main")
            digits = sum(c.isdigit() for c in core)
            if digits < self.min_digits or _NOT_A_PHONE.fullmatch(core):
                continue
            lo, hi = max(0, window.start() - 1), min(len(text), window.end() + 1)
            chunk = text[lo:hi]
            whole = (window.start(), window.end())
            for region in self._regions_for(core, digits):
                for match in phonenumbers.PhoneNumberMatcher(chunk, region, leniency=self.leniency):
                    raw = match.raw_string
                    if sum(c.isdigit() for c in raw) < self.min_digits or _NOT_A_PHONE.fullmatch(raw):
                        continue
                    span = (lo + match.start, lo + match.end)
                    if _glued_to_identifier(text, span[0]):
                        continue
                    score = self._score(raw, region)
                    if score < self.strong_score and _CONTEXT_BEFORE.search(text, max(0, span[0] - 24), span[0]):
                        score = self.strong_score
                    if score > best.get(span, (0.0, ""))[0]:
                        best[span] = (score, phonenumbers.region_code_for_number(match.number) or region)
                if best.get(whole, (0.0,))[0] >= self.strong_score:
                    break  # the whole window is a number at full score: no other region can do better
        results = [
            result(self, start, end, score, f"valid {region} phone number (python-phonenumbers)")
            for (start, end), (score, region) in best.items()
        ]
        return EntityRecognizer.remove_duplicates(results)

    def _score(self, raw: str, region: str) -> float:
        if _INTERNATIONAL.match(raw):
            return self.strong_score
        if region in self.context_regions:
            return self.weak_score
        punctuated = any(not c.isdigit() for c in raw)
        return self.strong_score if punctuated else self.weak_score


def _glued_to_identifier(text: str, start: int) -> bool:
    """True when the match at ``start`` continues an identifier such as ``PO-`` or ``INV/``."""
    return start >= 2 and text[start - 1] in "-/#" and text[start - 2].isalnum()


class CrmCreditCardRecognizer(CreditCardRecognizer):
    """Presidio's ``CreditCardRecognizer`` (pattern + Luhn checksum, ISO/IEC 7812-1) with Mastercard's
    2-series (IIN 2221-2720, issued since 2017; Mastercard "2-Series BIN expansion") in its pattern."""

    PATTERNS = [
        Pattern(
            "All Credit Cards (weak), with Mastercard 2-series",
            r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(2[2-7]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))"
            r"[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b",
            0.3,
        ),
    ]

    def validate_result(self, pattern_text: str) -> bool | None:
        """Luhn as Presidio does; 2-series numbers must also fall within 2221-2720."""
        digits = re.sub(r"\D", "", pattern_text)
        if digits.startswith("2") and not 2221 <= int(digits[:4]) <= 2720:
            return False
        return super().validate_result(pattern_text)
