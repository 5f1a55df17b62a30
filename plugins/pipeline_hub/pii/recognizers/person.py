"""``PERSON`` where e-mail layout says a name stands: headers, greetings, closings and signature lines.

spaCy's small English model misses about 3 in 10 names in real e-mail signatures (a lone ``Jeff`` under
``Thanks,``, ``Eric Bass/HOU/ECT@ECT`` in a Lotus Notes header). :class:`SignatureNameRecognizer`
reads the layout instead (conventions of RFC 5322 headers and of business letters):

* header lines ``From:``, ``To:``, ``Cc:``, ``Bcc:``, ``Sent by:``, ``X-From:`` …: each listed name,
  without its ``<address>`` or Lotus Notes ``/ORG/UNIT@DOMAIN`` suffix;
* a name line directly above a ``MM/DD/YYYY`` date line (the quoted-reply header of Outlook / Notes);
* a greeting: ``Hi Jill,``, ``Dear Mrs. Smith``, or a lone ``Jill,`` opening a paragraph;
* a closing: the name after ``Thanks,`` / ``Regards,`` / ``Best,`` / ``Cheers`` / ``--`` (same line or
  the next non-blank line), and a short last line of a paragraph holding only a name (``Jeff``).

A name is one to four capitalised words (initials, ``O'Neal``, ``Hardwicke-Brown``, ``McCullough``;
particles ``van``, ``de``, ``da``), never a word of :data:`NOT_NAMES` (greetings, closings, e-mail
words). Scores: 0.6 (headers, greetings, closings), 0.45 (a lone name line).
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from pipeline_hub.pii.recognizers.results import result

_TOKEN = r"(?:[A-Z][a-z]*\.?|[A-Z]{2,}(?:-[A-Z]+)?|[A-Z]['’][A-Z][a-z]+|Mc[A-Z][a-z]+|[A-Z][a-z]+(?:[-'’][A-Z][a-z]+)+)"
_NAME = rf"{_TOKEN}(?:[ \t]+(?:(?:van|von|de|da|del|der|du|la|le)[ \t]+)*{_TOKEN}){{0,3}}"
_NAME_RE = re.compile(rf"^{_NAME}$")
CLOSINGS = (
    r"thanks(?: (?:again|so much|a lot))?|thank you|many thanks|thx|regards|best regards|kind regards|"
    r"warm regards|warmest regards|best wishes|best|cheers|sincerely|yours(?: truly| sincerely)?|"
    r"all the best|take care|rgds|respectfully|ciao|love|--+|—"
)
_CLOSING_LINE = re.compile(rf"(?im)^[ \t>]*(?:{CLOSINGS})[ \t]*[,.!:]*[ \t]*$")
_CLOSING_INLINE = re.compile(rf"(?i)\b(?:{CLOSINGS})[ \t]*[,!][ \t]*(?-i:(?P<name>{_NAME}))(?=[ \t]*(?:[.!]|\n|$))")
_GREETING = re.compile(
    rf"(?im)^[ \t>]*(?:hi|hello|hey|dear|good morning|good afternoon|morning)[ \t]+"
    rf"(?:(?:Mr|Mrs|Ms|Dr|Prof)\.?[ \t]+)?(?-i:(?P<name>{_NAME}))[ \t]*(?=[,:!\n-])"
)
# A paragraph opened by a name: "Jill,", "Mark:  Just wanted", "Steve - ", "Martin, many thanks".
_LONE_OPENING = re.compile(rf"(?:\A|\n[ \t]*\n)[ \t>]*(?P<name>{_NAME})(?:[ \t]*[,:]|[ \t]+-+)(?=[ \t]|\n|\Z)")
# "- Bill", "-Teresa Glaze", "-- Many thanks -- Stacy", "Hope all is well.  Sara" at a paragraph's end.
_DASH_SIGN = re.compile(rf"(?m)(?:^|[.!?][ \t]+|--[ \t]*)[ \t>]*-+[ \t]*(?P<name>{_NAME})[ \t]*$")
_SENTENCE_SIGN = re.compile(rf"[.!?][ \t]{{1,3}}(?P<name>{_TOKEN})[ \t]*(?=\n[ \t]*\n|\n?\Z)")
# A header and its continuation lines (RFC 5322 folding: a line opening with blanks or after a comma).
_HEADER = re.compile(
    r"(?im)^[ \t>]*(?:x-)?(?:from|to|cc|bcc|sent by|reply-to)[ \t]*:[ \t]*"
    r"(?P<list>[^\n]+(?:\n(?:[ \t]+|(?<=,\n)|(?<=,[ \t]\n))[^\n]+)*)"
)
_ABOVE_DATE = re.compile(rf"(?m)^[ \t>]*(?P<name>{_NAME})(?:@[A-Za-z]+)?[ \t]*\n[ \t>]*\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b")
_LAST_LINE = re.compile(rf"(?m)(?<=\n)[ \t>]*(?P<name>{_NAME})[ \t]*(?=\n[ \t]*\n|\n?\Z)")
_ENTRY = re.compile(r"[^,;]+")
NOT_NAMES = frozenset(
    """hi hello hey dear thanks thank regards best cheers sincerely all team everyone folks guys
    gentlemen ladies fyi re fw fwd subject from to cc bcc sent date attached attachment note notes
    please ok okay yes no sure great good morning afternoon evening tomorrow today monday tuesday
    wednesday thursday friday saturday sunday january february march april may june july august
    september october november december the a an and or for of on in at by with this that these
    i we you he she they it my our your pm am enron ect hou corp inc ltd llc gmbh call phone tel
    fax mobile email mail www http confidential original message forwarded agenda update question
    questions comments summary regarding yours love take care rgds respectfully ciao also however
    unfortunately again anyway btw well so now then here there yesterday finally first second third
    meanwhile otherwise additionally currently basically ps importantly background action status
    issue issues result results name title company address location asap eol urgent legal reminder
    voicemail escalation contact contacts opportunity lead leads customer client order orders office
    meeting ticket invoice payment shipment delivery account accounts notice warning error alert
    login log vpn firewall request response reply report deadline project task todo action items
    welcome congratulations sorry apologies hope signed regarding department dept sales support billing
    marketing finance accounting procurement operations service services desk helpdesk group division
    management admin administrator staff committee board""".split()
)


def looks_like_name(candidate: str) -> bool:
    """One to four capitalised words, none of them a :data:`NOT_NAMES` word."""
    words = [w.strip(".") for w in candidate.split()]
    return bool(_NAME_RE.match(candidate)) and all(w.lower() not in NOT_NAMES for w in words if w)


class SignatureNameRecognizer(EntityRecognizer):
    """``PERSON`` spans from e-mail layout (see module docstring); character offsets of the text."""

    def __init__(
        self,
        supported_entity: str = "PERSON",
        supported_language: str = "en",
        score: float = 0.6,
        weak_score: float = 0.45,
        name: str | None = None,
    ) -> None:
        self.score, self.weak_score = score, weak_score
        super().__init__(
            supported_entities=[supported_entity], supported_language=supported_language, name=name, context=[]
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """PERSON results in ``text``."""
        spans: dict[tuple[int, int], float] = {}

        def add(start: int, end: int, score: float) -> None:
            if looks_like_name(" ".join(text[start:end].split())):
                spans[(start, end)] = max(score, spans.get((start, end), 0.0))

        for m in _HEADER.finditer(text):
            for entry in _ENTRY.finditer(m.group("list")):
                raw = entry.group()
                lead = len(raw) - len(raw.lstrip(' \t\n"'))
                body = raw[lead:]
                marks = (body.find("<"), body.find("/"), body.find("@"), body.find('"'), body.find(" - "))
                piece = body[: min((i for i in marks if i > 0), default=len(body))].rstrip(' \t\n"')
                start = m.start("list") + entry.start() + lead
                add(start, start + len(piece), self.score)
        for regex in (_ABOVE_DATE, _GREETING, _CLOSING_INLINE, _LONE_OPENING, _DASH_SIGN):
            for m in regex.finditer(text):
                add(m.start("name"), m.end("name"), self.score)
        for m in _CLOSING_LINE.finditer(text):
            nxt = re.compile(rf"\s*\n[ \t>]*(?P<name>{_NAME})[ \t]*(?=\n|$)").match(text, m.end())
            if nxt:
                add(nxt.start("name"), nxt.end("name"), self.score)
        for regex in (_LAST_LINE, _SENTENCE_SIGN):
            for m in regex.finditer(text):
                if len(m.group("name")) <= 30:
                    add(m.start("name"), m.end("name"), self.weak_score)
        return [self._result(s, e, score) for (s, e), score in sorted(spans.items())]

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return result(self, start, end, score, "name in e-mail layout")
