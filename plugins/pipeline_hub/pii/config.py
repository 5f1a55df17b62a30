"""PII configuration: ``include/pii/presidio.yaml`` (engine, entities, operators) and each topic's PII policy.

``presidio.yaml`` keys (all validated at load; a bad file raises :class:`PiiConfigError` naming the
file and the key):

``nlp_engine``
    Presidio ``NlpEngineProvider`` configuration (``nlp_engine_name: spacy``, ``models`` with one
    entry for ``language``, optional ``ner_model_configuration``).
``spacy_exclude``
    spaCy pipeline components not loaded (default none). PERSON needs only ``ner``; the others cost
    time (see ``benchmarks/RESULTS.md``). Without the lemmatizer, context words are matched against
    lower-cased tokens (Presidio's default "substring" context matching still catches plurals).
``language``, ``score_threshold``, ``entities``, ``allow_list``
    As in ``AnalyzerEngine.analyze``: entities searched, minimum score, values never reported.
``recognizers``
    Presidio recognizer-registry YAML (``RecognizerRegistryProvider``), relative to ``presidio.yaml``.
``operators``
    One anonymizer operator per entity (``DEFAULT`` for the rest): ``replace`` (``new_value``,
    default ``<ENTITY>``), ``mask`` (``masking_char``, ``chars_to_mask``, ``from_end``), ``redact``
    (removes the value) or ``pseudonymize`` (keyed HMAC-SHA256, :mod:`pipeline_hub.pii.pseudonym`).
    Presidio's ``hash`` is refused: since presidio-anonymizer 2.2.361 it salts randomly per call
    unless given a salt, so its output is not joinable, and a salt in this file would not be secret.
``batch_size``, ``workers``, ``parallel_min_texts``
    Analysis speed: texts per spaCy ``nlp.pipe`` batch; processes analyzing a large input, the
    calling one included (``auto`` = usable CPUs, at most 4; 1 = in-process only); below
    ``parallel_min_texts`` distinct texts no worker process is started.

Per topic (``include/prompts/<topic>/metadata.yaml``), :class:`TopicPii` reads ``output.keep_fields``
and how each is treated (``output.scrub_text``, ``output.pseudonymize``, ``output.keep_as_is``), and
``input_pii``: what record text may be sent to the LLM provider (see :func:`input_policy`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import PiiError

OPERATOR_PARAMS = {
    "replace": {"new_value": str},
    "mask": {"masking_char": str, "chars_to_mask": int, "from_end": bool},
    "redact": {},
    "pseudonymize": {},
}
INPUT_POLICIES = ("redact", "pseudonymize", "allow")


class PiiConfigError(PiiError, ValueError):
    """A PII configuration file is invalid; the message names the file and the offending key."""


def default_config_path() -> Path:
    """``include/pii/presidio.yaml``."""
    return include_dir() / "pii" / "presidio.yaml"


@dataclass
class ScrubConfig:
    """Parsed and validated ``presidio.yaml`` (see module docstring for every key)."""

    nlp_engine: dict[str, Any]
    language: str = "en"
    score_threshold: float = 0.35
    entities: list[str] = field(default_factory=list)
    allow_list: list[str] = field(default_factory=list)
    operators: dict[str, dict[str, Any]] = field(default_factory=dict)
    recognizers: str | None = None
    spacy_exclude: list[str] = field(default_factory=list)
    batch_size: int = 64
    workers: int | str = "auto"
    parallel_min_texts: int = 2000
    source: str = ""  # the file it was read from, for messages

    @classmethod
    def load(cls, path: Path | None = None) -> ScrubConfig:
        """Read and validate ``path`` (default ``include/pii/presidio.yaml``); raises :class:`PiiConfigError`."""
        path = Path(path or default_config_path())
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PiiConfigError(f"{path}: cannot read: {exc}") from None
        if not isinstance(raw, dict):
            raise PiiConfigError(f"{path}: expected a mapping of settings")
        known = set(cls.__dataclass_fields__) - {"source"}
        unknown = set(raw) - known
        if unknown:
            raise PiiConfigError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        if "nlp_engine" not in raw:
            raise PiiConfigError(f"{path}: missing key 'nlp_engine'")
        cfg = cls(**raw, source=str(path))
        cfg._validate(path)
        return cfg

    @property
    def recognizers_path(self) -> Path | None:
        """The recognizer-registry YAML, resolved against this file's folder (None: Presidio's defaults)."""
        if not self.recognizers:
            return None
        return (Path(self.source).parent / self.recognizers).resolve()

    def worker_count(self) -> int:
        """Processes analyzing a large input, this one included: ``workers``, or the usable CPUs (at most 4)."""
        if self.workers != "auto":
            return int(self.workers)
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(4, cpus))

    def _validate(self, path: Path) -> None:  # noqa: C901 - one check per key, in file order
        def fail(key: str, message: str) -> None:
            raise PiiConfigError(f"{path}: {key}: {message}")

        engine = self.nlp_engine
        if not isinstance(engine, dict) or engine.get("nlp_engine_name") != "spacy":
            fail("nlp_engine.nlp_engine_name", "must be 'spacy' (the only engine installed)")
        models = engine.get("models")
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            fail("nlp_engine.models", "must be a list of {lang_code, model_name}")
        if not any(m.get("lang_code") == self.language and m.get("model_name") for m in models):
            fail("nlp_engine.models", f"no model_name for language '{self.language}'")
        if not isinstance(self.spacy_exclude, list) or "ner" in self.spacy_exclude:
            fail("spacy_exclude", "must be a list of spaCy component names and keep 'ner' (PERSON needs it)")
        if isinstance(self.score_threshold, bool) or not isinstance(self.score_threshold, int | float):
            fail("score_threshold", "must be a number")
        if not 0 <= self.score_threshold <= 1:
            fail("score_threshold", "must be within [0, 1]")
        if not self.entities or not all(isinstance(e, str) and e.isupper() for e in self.entities):
            fail("entities", "must be a non-empty list of Presidio entity names such as PERSON")
        if not isinstance(self.allow_list, list) or not all(isinstance(a, str) for a in self.allow_list):
            fail("allow_list", "must be a list of strings")
        if self.recognizers is not None:
            rec = self.recognizers_path
            if rec is None or not rec.is_file():
                fail("recognizers", f"file {rec} does not exist")
        if not isinstance(self.operators, dict):
            fail("operators", "must map entity names to {type: …}")
        for entity, spec in self.operators.items():
            key = f"operators.{entity}"
            if entity != "DEFAULT" and entity not in self.entities:
                fail(key, f"'{entity}' is not in entities {self.entities} (or DEFAULT)")
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind == "hash":
                fail(
                    f"{key}.type",
                    "Presidio's hash salts randomly per call (presidio-anonymizer >= 2.2.361), so it is not "
                    "joinable; use pseudonymize (keyed HMAC-SHA256)",
                )
            if kind not in OPERATOR_PARAMS:
                fail(f"{key}.type", f"must be replace, mask, redact or pseudonymize (got {kind!r})")
            for param, value in spec.items():
                if param == "type":
                    continue
                expected = OPERATOR_PARAMS[kind].get(param)
                if expected is None:
                    fail(f"{key}.{param}", f"not a parameter of {kind} (allowed: {sorted(OPERATOR_PARAMS[kind])})")
                if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                    fail(f"{key}.{param}", f"must be {expected.__name__}")
            if kind == "mask" and len(spec.get("masking_char", "*")) != 1:
                fail(f"{key}.masking_char", "must be one character")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            fail("batch_size", "must be a positive integer")
        if self.workers != "auto" and (not isinstance(self.workers, int) or self.workers < 1):
            fail("workers", "must be 'auto' or a positive integer")
        if not isinstance(self.parallel_min_texts, int) or self.parallel_min_texts < 1:
            fail("parallel_min_texts", "must be a positive integer")

    def fingerprint(self) -> tuple:
        """Hashable identity of what builds an analyzer (engine, exclusions, recognizers file and its bytes)."""
        rec = self.recognizers_path
        return (
            yaml.safe_dump(self.nlp_engine, sort_keys=True),
            tuple(self.spacy_exclude),
            self.language,
            str(rec),
            rec.read_bytes() if rec else b"",
        )


@dataclass(frozen=True)
class TopicPii:
    """A topic's PII policy from its ``metadata.yaml``.

    ``scrub_text``: paths anonymized with the ``presidio.yaml`` operators; ``pseudonymize``: paths whose
    whole value becomes a keyed pseudonym; ``keep_as_is``: paths published unchanged (still scanned
    and counted). Paths are ``field`` or ``list[].field``. Every kept input field must be in exactly one
    of the three; answer fields not listed are anonymized like ``scrub_text`` unless their schema
    fixes the value (``enum``/``const``). ``input_pii`` maps provider locality (``loopback``,
    ``remote``) to what may be sent (see :func:`input_policy`).
    """

    topic: str
    keep_fields: tuple[str, ...]
    scrub_text: tuple[str, ...]
    pseudonymize: tuple[str, ...]
    keep_as_is: tuple[str, ...]
    input_pii: dict[str, str]

    @classmethod
    def from_topic(cls, topic) -> TopicPii:
        """Policy of a :class:`~pipeline_hub.prompts.registry.Topic`.

        Raises :class:`PiiConfigError` naming its metadata.yaml.
        """
        path = topic.metadata_path
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls.parse(topic.name, topic.output, raw.get("input_pii"), str(path))

    @classmethod
    def parse(cls, name: str, output: dict[str, Any], input_pii: Any, where: str) -> TopicPii:
        """Validate the ``output`` section's PII keys and ``input_pii``; ``where`` names the file in errors."""
        lists = {}
        for key in ("keep_fields", "scrub_text", "pseudonymize", "keep_as_is"):
            value = output.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise PiiConfigError(f"{where}: output.{key} must be a list of field paths")
            lists[key] = tuple(value)
        treated = lists["scrub_text"] + lists["pseudonymize"] + lists["keep_as_is"]
        for f in lists["keep_fields"]:
            n = treated.count(f)
            if n != 1:
                raise PiiConfigError(
                    f"{where}: kept field '{f}' must be listed in exactly one of output.scrub_text, "
                    f"output.pseudonymize or output.keep_as_is (found in {n})"
                )
        policy = {"loopback": "allow", "remote": "redact"}
        if isinstance(input_pii, str):
            policy = {"loopback": input_pii, "remote": input_pii}
        elif isinstance(input_pii, dict):
            unknown = set(input_pii) - set(policy)
            if unknown:
                raise PiiConfigError(f"{where}: input_pii: unknown keys {sorted(unknown)} (loopback, remote)")
            policy.update(input_pii)
        elif input_pii is not None:
            raise PiiConfigError(f"{where}: input_pii must be a policy name or {{loopback: …, remote: …}}")
        for scope, value in policy.items():
            if value not in INPUT_POLICIES:
                raise PiiConfigError(f"{where}: input_pii.{scope} must be one of {INPUT_POLICIES} (got {value!r})")
        return cls(name, **lists, input_pii=policy)


def is_loopback(provider: str) -> bool:
    """True when ``provider`` (a base URL or ``bedrock:<region>``) is this machine: 127.0.0.0/8, ::1, localhost."""
    host = urlparse(provider if "://" in provider else f"//{provider}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def input_policy(pii: TopicPii, providers: list[str]) -> str:
    """What record text may leave for ``providers`` (every route a record may take).

    Returns ``allow``, ``pseudonymize`` or ``redact``.

    The ``remote`` policy (default ``redact``) applies as soon as one provider is outside loopback;
    the ``loopback`` policy (default ``allow``) when all are local.
    """
    scope = "loopback" if providers and all(is_loopback(p) for p in providers) else "remote"
    return pii.input_pii[scope]
