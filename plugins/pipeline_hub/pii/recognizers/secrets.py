"""``SECRET``: credentials in free text, from Yelp's detect-secrets plugins (``detect-secrets`` 1.5.0).

:class:`SecretRecognizer` runs the ``denylist`` regexes of detect-secrets' regex plugins (imported from
the installed package, not copied) over each text and reports each hit as one ``SECRET`` span that
covers the whole secret, however the plugin's regex ends:

* a token regex that stops early (OpenAI's ``sk-…T3BlbkFJ…`` pattern takes 20 characters after the
  marker; ``sk-proj-`` keys are longer) is extended over the token characters that follow;
* a private-key header (detect-secrets matches ``BEGIN RSA PRIVATE KEY`` only) becomes the whole PEM /
  OpenSSH / PGP block, from ``-----BEGIN`` through its ``-----END … -----`` line (or through the base64
  lines that follow when the end line is missing);
* a basic-auth URL (``scheme://user:password@host``) covers ``user:password@host``.

Formats the 1.5.0 plugins miss and this module adds, citing the issuer's documented key format:
OpenAI keys without the ``T3BlbkFJ`` marker (``sk-``, ``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``),
Stripe test and restricted keys (``sk_test_``, ``rk_live_``), GitHub fine-grained tokens
(``github_pat_``), and a value after a credential keyword (detect-secrets' ``KeywordDetector``
denylist words plus ``token``, ``api key``, ``access key``: ``password: Tr0ub4dor&3``,
``aws_secret_access_key = wJalr…``), reported when the value holds a digit or symbol or has high
Shannon entropy (detect-secrets' ``HighEntropyString`` measure), so ``password: expired`` is not.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from pipeline_hub.pii.recognizers.results import result

# Characters a token continues with (base64url, base64, hex, the separators of the formats above).
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=]*")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*(?:PRIVATE KEY|KEY BLOCK)-----|(?:\r?\n[ \t]*){2}")
_PEM_BODY = re.compile(r"(?:[-A-Za-z0-9+/=:, \t]*\r?\n)*[A-Za-z0-9+/=]*")
_URL_HOST = re.compile(r"[^\s/?#:@]*")
# Issuers' key formats detect-secrets 1.5.0 does not match (OpenAI, Stripe, GitHub docs).
EXTRA_PATTERNS = (
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("Stripe secret / restricted key", re.compile(r"\b(?:sk|rk)_(?:test|live)_[0-9a-zA-Z]{16,}")),
    ("GitHub fine-grained token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
)
# detect-secrets KeywordDetector.DENYLIST words (plus token / api key / access key) then ":" "=" or "is".
_KEYWORD = re.compile(
    r"(?i)\b(?:api[_ -]?key|apikey|auth[_ -]?(?:key|token)|access[_ -]?(?:key|token)|service[_ -]?key|"
    r"account[_ -]?key|db[_ -]?(?:key|pass)|database[_ -]?(?:key|pass)|priv(?:ate)?[_ -]?key|"
    r"client[_ -]?(?:key|secret)|key[_ -]?pass|password|passwd|pwd|pass(?:code|phrase)?|"
    r"(?:[a-z]+[_ -])?secret(?:[_ -](?:access[_ -])?key)?|token|bearer|contrase[ñn]a)"
    r"(?:[\"']?[ \t]*(?P<sep>[:=]|=>|\bis\b|\bwas\b)[ \t]*[\"']?|[ \t]+[\"']?)(?P<value>[^\s\"'`,;<>()\[\]{}]{8,200})"
)
_TRAILING = ".:"  # sentence punctuation after a value; "!" and "?" are kept (common in passwords)


def _shannon_entropy(value: str) -> float:
    """Bits per character (detect-secrets' ``HighEntropyStringsPlugin.calculate_shannon_entropy``)."""
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    return Base64HighEntropyString().calculate_shannon_entropy(value)


def detect_secrets_patterns() -> list[tuple[str, re.Pattern]]:
    """``(plugin secret_type, regex)`` of the detect-secrets regex plugins used here, in order."""
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.private_key import PrivateKeyDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector
    from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
    from detect_secrets.plugins.twilio import TwilioKeyDetector

    plugins = (
        AWSKeyDetector,
        GitHubTokenDetector,
        GitLabTokenDetector,
        SlackDetector,
        StripeDetector,
        OpenAIDetector,
        JwtTokenDetector,
        PrivateKeyDetector,
        BasicAuthDetector,
        AzureStorageKeyDetector,
        SendGridDetector,
        PypiTokenDetector,
        SquareOAuthDetector,
        DiscordBotTokenDetector,
        MailchimpDetector,
        TwilioKeyDetector,
        TelegramBotTokenDetector,
    )
    return [(p.secret_type, regex) for p in plugins for regex in p.denylist]


class SecretRecognizer(EntityRecognizer):
    """``SECRET`` spans: detect-secrets' plugin regexes (see module docstring), whole secret per span.

    ``score`` (1.0) for a plugin or issuer-format match, ``keyword_score`` (0.6) for a value after a
    credential keyword. A JWT must decode as detect-secrets' ``JwtTokenDetector.is_formally_valid``
    requires. Offsets are characters of the analyzed text.
    """

    def __init__(
        self,
        supported_entity: str = "SECRET",
        supported_language: str = "en",
        score: float = 1.0,
        keyword_score: float = 0.6,
        name: str | None = None,
    ) -> None:
        from detect_secrets.plugins.jwt import JwtTokenDetector

        self.score, self.keyword_score = score, keyword_score
        self._jwt_ok = JwtTokenDetector.is_formally_valid
        self._patterns = detect_secrets_patterns() + list(EXTRA_PATTERNS)
        super().__init__(
            supported_entities=[supported_entity], supported_language=supported_language, name=name, context=[]
        )

    def load(self) -> None:
        """Nothing to load (patterns are compiled by detect-secrets at import)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """``SECRET`` results in ``text``; overlapping hits are merged into one span."""
        spans: list[tuple[int, int, float, str]] = []
        for kind, regex in self._patterns:
            for m in regex.finditer(text):
                span = self._whole(text, kind, m)
                if span:
                    spans.append((*span, self.score, kind))
        for m in _KEYWORD.finditer(text):
            value = m.group("value").rstrip(_TRAILING)
            bare = m.group("sep") is None  # "password Xyz": only a value with letters and digits
            if bare and not (re.search(r"\d", value) and re.search(r"[A-Za-z]", value)):
                continue
            if len(value) >= 8 and "@" not in value and _looks_secret(value):
                start = m.start("value")
                spans.append((start, start + len(value), self.keyword_score, "value after a credential keyword"))
        return [self._result(*s) for s in _merge(spans)]

    def _whole(self, text: str, kind: str, m: re.Match) -> tuple[int, int] | None:
        start, end = m.span()
        if kind == "Private Key":
            begin = text.rfind("-----", 0, start)
            start = begin if begin != -1 and start - begin <= 5 else start
            after = _PEM_END.search(text, end)
            end = after.end() if after and after.group().startswith("-----END") else _PEM_BODY.match(text, end).end()
            return start, end
        if kind == "Basic Auth Credentials":
            return start + 3, _URL_HOST.match(text, end).end()
        if m.re.groups and m.lastindex:  # AWS secret keys: the quoted value only
            start, end = m.span(m.lastindex)
        end = _TOKEN_TAIL.match(text, end).end()
        while end > start and text[end - 1] in "=-_/+" and text[end - 2 : end] != "==":
            end -= 1  # a trailing dash or slash is punctuation, "==" is base64 padding
        if kind == "JSON Web Token" and not self._jwt_ok(text[start:end]):
            return None
        return start, end

    def _result(self, start: int, end: int, score: float, kind: str) -> RecognizerResult:
        return result(self, start, end, score, f"{kind} (detect-secrets)")


def _looks_secret(value: str) -> bool:
    """A keyword's value is a secret when it has a digit or symbol, or ≥ 3.0 bits/char of entropy."""
    if re.fullmatch(r"[a-z]+", value) or re.fullmatch(r"[A-Z]?[a-z]+(?:[-_][a-z]+)*", value):
        return _shannon_entropy(value) >= 3.5 and len(value) >= 16
    return any(not c.isalpha() for c in value) or _shannon_entropy(value) >= 3.0


def _merge(spans: list[tuple[int, int, float, str]]) -> list[tuple[int, int, float, str]]:
    """Overlapping spans as one (highest score, its kind), sorted by start."""
    out: list[tuple[int, int, float, str]] = []
    for s in sorted(spans):
        if out and s[0] < out[-1][1]:
            last = out[-1]
            best = last if last[2] >= s[2] else s
            out[-1] = (last[0], max(last[1], s[1]), best[2], best[3])
        else:
            out.append(s)
    return out
