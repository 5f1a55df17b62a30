"""The ``cascade:`` block of a topic's ``metadata.yaml``, parsed and checked.

::

    cascade:
      proxy: rapidfuzz            # rapidfuzz | none | model:<conn_id>/<model>
      oracle: primary             # the route answering the band: primary | long_input | fallback
      target: {precision: 0.95, recall: 0.95}
      delta: 0.05                 # failure probability of the guarantee (default 0.05)
      sample: 200                 # records to label for calibration (default 200)
      thresholds:                 # absent (or null) until calibrated
        upper: 0.91               # accept as positive when score >= upper (> 1: never)
        lower: 0.42               # answer negative when score < lower (0: never)
        sample_size: 1000
        calibrated_at: 2026-12-04
        achieved: {precision: 0.99, recall: 0.97, oracle_share: 0.31}   # on the sample

The same constraints are in ``include/prompts/metadata.schema.json`` (``cascade``), except
``lower <= upper``, which JSON Schema cannot say, and ``lower == 0`` for a ``model:`` proxy: a model proxy
has no "reject" answer (it either answers the record, when its confidence reaches ``upper``, or hands it
to the oracle), so only ``upper`` is learned and ``target.recall`` is not used (nothing is rejected).
Every error is a :class:`CascadeError` whose one-line message names the topic and the field.

How large a sample must be: the recall bound alone needs ``recall ** m <= delta / 2`` for ``m`` labelled
positives (``m >= 72`` at 0.95 / 0.05), so 200 records certify nothing at a low positive rate; an
uncalibrated or uncertifiable cascade sends every record to the oracle
(:mod:`~pipeline_hub.cascade.calibration`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_hub.exceptions import ConfigError

# Scores live in [0, 1]; an ``upper`` above 1 means the proxy never accepts.
NEVER_ACCEPT = 1.01
# The oracle routes; the same names as pipeline_hub.providers.routing.ROUTES (a test keeps them equal).
ORACLE_ROUTES = ("primary", "long_input", "fallback")
PROXY_KINDS = ("rapidfuzz", "none", "model")
_MODEL_PROXY = re.compile(r"^model:(?P<conn>[A-Za-z0-9_.-]+)/(?P<model>\S+)$")
DEFAULT_DELTA = 0.05
DEFAULT_SAMPLE = 200


class CascadeError(ConfigError):
    """A topic's ``cascade`` block is invalid; the message is ``<topic>: cascade.<field>: <what is wrong>``."""


@dataclass(frozen=True)
class ProxySpec:
    """The proxy: ``kind`` in :data:`PROXY_KINDS`; ``conn_id`` and ``model`` only for ``model:<conn>/<model>``."""

    kind: str
    conn_id: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Achieved:
    """Point estimates on the calibration sample, each in [0, 1] or None when undefined (e.g. no positives)."""

    precision: float | None = None
    recall: float | None = None
    oracle_share: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """Calibrated thresholds: accept when ``score >= upper``, reject when ``score < lower``, else the oracle.

    ``upper`` in [0, :data:`NEVER_ACCEPT`], ``lower`` in [0, 1], ``lower <= upper``; ``sample_size`` is the
    number of labelled records they were learned on, ``calibrated_at`` the day.
    """

    upper: float
    lower: float
    sample_size: int
    calibrated_at: dt.date
    achieved: Achieved = Achieved()

    def as_metadata(self) -> dict[str, Any]:
        """The ``cascade.thresholds`` mapping to write into ``metadata.yaml`` (what :meth:`CascadeSpec.parse` reads)."""
        return {
            "upper": self.upper,
            "lower": self.lower,
            "sample_size": self.sample_size,
            "calibrated_at": self.calibrated_at.isoformat(),
            "achieved": {k: v for k, v in vars(self.achieved).items() if v is not None},
        }


@dataclass(frozen=True)
class CascadeSpec:
    """A topic's cascade: proxy, oracle route, targets in (0, 1], ``delta`` in (0, 1), sample size >= 1."""

    topic: str
    proxy: ProxySpec
    oracle: str
    precision: float
    recall: float
    delta: float = DEFAULT_DELTA
    sample: int = DEFAULT_SAMPLE
    thresholds: Thresholds | None = None

    @classmethod
    def parse(cls, section: Any, topic: str) -> CascadeSpec:
        """Parse the ``cascade`` mapping of ``topic``; raises :class:`CascadeError` (one line) when invalid."""
        fields = _Fields(topic)
        block = fields.mapping(section, "cascade", {"proxy", "oracle", "target", "delta", "sample", "thresholds"})
        for key in ("proxy", "target"):
            if key not in block:
                raise fields.error(f"cascade.{key}", "is required")
        target = fields.mapping(block["target"], "cascade.target", {"precision", "recall"})
        for key in ("precision", "recall"):
            if key not in target:
                raise fields.error(f"cascade.target.{key}", "is required")
        raw_thresholds = block.get("thresholds")
        proxy = fields.proxy(block["proxy"])
        thresholds = None if raw_thresholds is None else fields.thresholds(raw_thresholds)
        if proxy.kind == "model" and thresholds is not None and thresholds.lower > 0:
            raise fields.error(
                "cascade.thresholds.lower",
                f"must be 0 for a model proxy (it answers or hands the record to the oracle, never rejects), "
                f"not {thresholds.lower}",
            )
        return cls(
            topic=topic,
            proxy=proxy,
            oracle=fields.oracle(block.get("oracle", "primary")),
            precision=fields.number(target["precision"], "cascade.target.precision", 0, 1, low_open=True),
            recall=fields.number(target["recall"], "cascade.target.recall", 0, 1, low_open=True),
            delta=fields.number(
                block.get("delta", DEFAULT_DELTA), "cascade.delta", 0, 1, low_open=True, high_open=True
            ),
            sample=fields.integer(block.get("sample", DEFAULT_SAMPLE), "cascade.sample", 1),
            thresholds=thresholds,
        )


def from_metadata(meta: Mapping[str, Any], topic: str) -> CascadeSpec | None:
    """The :class:`CascadeSpec` of a topic's parsed ``metadata.yaml``, None when it has no ``cascade`` block.

    Raises :class:`CascadeError` when the block is invalid.
    """
    section = meta.get("cascade")
    return None if section is None else CascadeSpec.parse(section, topic)


class _Fields:
    """Checks of single values; each failure is a :class:`CascadeError` naming ``topic`` and the field."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def error(self, field: str, what: str) -> CascadeError:
        return CascadeError(f"{self.topic}: {field}: {what}")

    def mapping(self, value: Any, field: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(field, f"must be a mapping, not {type(value).__name__}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.error(field, f"unknown keys {unknown} (allowed: {', '.join(sorted(allowed))})")
        return value

    def number(
        self, value: Any, field: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
    ) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok:
            interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise self.error(field, f"must be a number in {interval}, not {value!r}")
        return float(value)

    def integer(self, value: Any, field: str, low: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.error(field, f"must be an integer >= {low}, not {value!r}")
        return value

    def proxy(self, value: Any) -> ProxySpec:
        if value in ("rapidfuzz", "none"):
            return ProxySpec(value)
        match = _MODEL_PROXY.match(value) if isinstance(value, str) else None
        if match is None:
            raise self.error("cascade.proxy", f"must be rapidfuzz, none or model:<conn_id>/<model>, not {value!r}")
        return ProxySpec("model", match["conn"], match["model"])

    def oracle(self, value: Any) -> str:
        if value not in ORACLE_ROUTES:
            raise self.error("cascade.oracle", f"must be one of {', '.join(ORACLE_ROUTES)}, not {value!r}")
        return value

    def date(self, value: Any, field: str) -> dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(field, f"must be a date YYYY-MM-DD, not {value!r}")

    def thresholds(self, value: Any) -> Thresholds:
        field = "cascade.thresholds"
        block = self.mapping(value, field, {"upper", "lower", "sample_size", "calibrated_at", "achieved"})
        for key in ("upper", "lower", "sample_size", "calibrated_at"):
            if key not in block:
                raise self.error(f"{field}.{key}", "is required")
        upper = self.number(block["upper"], f"{field}.upper", 0, NEVER_ACCEPT)
        lower = self.number(block["lower"], f"{field}.lower", 0, 1)
        if lower > upper:
            raise self.error(f"{field}.lower", f"must not exceed upper ({lower} > {upper})")
        keys = {"precision", "recall", "oracle_share"}
        achieved = self.mapping(block.get("achieved") or {}, f"{field}.achieved", keys)
        estimates = {
            key: None if achieved.get(key) is None else self.number(achieved[key], f"{field}.achieved.{key}", 0, 1)
            for key in ("precision", "recall", "oracle_share")
        }
        return Thresholds(
            upper=upper,
            lower=lower,
            sample_size=self.integer(block["sample_size"], f"{field}.sample_size", 0),
            calibrated_at=self.date(block["calibrated_at"], f"{field}.calibrated_at"),
            achieved=Achieved(**estimates),
        )
