"""Model cascades (issue 15, core slice): spec, schema, calibration guarantee, decision rule, proxies.

The guarantee is checked the way it is stated: over many independent labelled samples (seeded), the
learned thresholds meet the targets on the population in at least ``1 - delta`` of the trials. The
population is either the score distribution itself (Beta scores, exact recall and precision from their
CDFs) or a fresh draw of 200,000 records with whole-percent scores (ties, as RapidFuzz gives).

Not tested here (later slice): that calibrated thresholds count in a topic's version identity (run plan,
lineage), and the wiring into stages, the CLI and the DAGs.
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import shutil
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from scipy import stats

from pipeline_hub.cascade.calibration import GRID, calibrate, cascade_outcome
from pipeline_hub.cascade.proxy import decide, matching_proxy, none_score, rapidfuzz_score
from pipeline_hub.cascade.spec import (
    NEVER_ACCEPT,
    ORACLE_ROUTES,
    Achieved,
    CascadeError,
    CascadeSpec,
    Thresholds,
    from_metadata,
)
from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import ConfigError, InputError
from pipeline_hub.lifecycle.problems import jsonable
from pipeline_hub.lifecycle.validation import validate_registry
from pipeline_hub.providers.routing import ROUTES

TOPIC = "company_matching"
TRIALS = 200
SLACK = 0.02  # allowed excess of the empirical failure rate over delta (binomial noise of 200 trials)
TARGET = {"precision": 0.95, "recall": 0.95, "delta": 0.05}
VALID = {
    "proxy": "rapidfuzz",
    "oracle": "primary",
    "target": {"precision": 0.95, "recall": 0.9},
    "delta": 0.05,
    "sample": 500,
    "thresholds": {
        "upper": 0.93,
        "lower": 0.41,
        "sample_size": 500,
        "calibrated_at": "2026-12-04",
        "achieved": {"precision": 0.99, "recall": 0.96, "oracle_share": 0.3},
    },
}


def draw(rng, n, prevalence, a, b):
    """``n`` labelled records: positives score ~ Beta(a, b), negatives ~ Beta(b, a)."""
    y = rng.random(n) < prevalence
    return np.where(y, rng.beta(a, b, n), rng.beta(b, a, n)), y


def population_metrics(upper, lower, prevalence, a, b):
    """Exact recall, precision and oracle share of ``(upper, lower)`` on the Beta population."""
    pos, neg = stats.beta(a, b), stats.beta(b, a)
    recall = pos.sf(lower)
    false_pos = 0.0 if upper > 1 else (1 - prevalence) * neg.sf(upper)
    precision = prevalence * recall / (prevalence * recall + false_pos)
    top = min(upper, 1.0)
    band = prevalence * (pos.cdf(top) - pos.cdf(lower)) + (1 - prevalence) * (neg.cdf(top) - neg.cdf(lower))
    if upper > 1:
        band = prevalence * pos.sf(lower) + (1 - prevalence) * neg.sf(lower)
    return precision, recall, band


# -- the guarantee -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "prevalence", "a", "b"),
    [(1000, 0.3, 5.0, 1.0), (2000, 0.5, 3.0, 1.5), (3000, 0.1, 4.0, 1.0)],
    ids=["strong-proxy", "medium-proxy", "rare-positives"],
)
def test_thresholds_meet_the_targets_in_at_least_1_minus_delta_of_trials(n, prevalence, a, b):
    rng = np.random.default_rng(20261204)
    failures, shares = 0, []
    for _ in range(TRIALS):
        s, y = draw(rng, n, prevalence, a, b)
        cal = calibrate(s, y, **TARGET)
        precision, recall, share = population_metrics(cal.upper, cal.lower, prevalence, a, b)
        failures += precision < TARGET["precision"] or recall < TARGET["recall"]
        shares.append(share)
    assert failures / TRIALS <= TARGET["delta"] + SLACK, failures
    if (a, b) == (5.0, 1.0):
        assert np.mean(shares) < 0.2, "an informative proxy should spare most oracle calls"


def test_the_trial_check_has_teeth_a_loose_delta_fails_it():
    rng = np.random.default_rng(11)
    loose = TARGET | {"delta": 0.9}
    failures = 0
    for _ in range(TRIALS):
        s, y = draw(rng, 1000, 0.3, 5.0, 1.0)
        cal = calibrate(s, y, **loose)
        precision, recall, _ = population_metrics(cal.upper, cal.lower, 0.3, 5.0, 1.0)
        failures += precision < TARGET["precision"] or recall < TARGET["recall"]
    assert failures / TRIALS > TARGET["delta"] + SLACK


def test_the_guarantee_holds_with_tied_whole_percent_scores_on_a_fresh_population():
    rng = np.random.default_rng(7)
    population = draw(rng, 200_000, 0.3, 4.0, 1.0)
    pop_scores = np.round(population[0], 2)
    failures = 0
    for _ in range(TRIALS):
        s, y = draw(rng, 1500, 0.3, 4.0, 1.0)
        cal = calibrate(np.round(s, 2), y, **TARGET)
        got = cascade_outcome(pop_scores, population[1], cal.upper, cal.lower)
        failures += got.precision < TARGET["precision"] or got.recall < TARGET["recall"]
    assert failures / TRIALS <= TARGET["delta"] + SLACK, failures


@pytest.mark.parametrize("seed", range(10))
def test_an_uninformative_proxy_sends_almost_everything_to_the_oracle(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(2000) < 0.3
    cal = calibrate(rng.random(2000), y, **TARGET)
    assert cal.upper > 1.0, "nothing may be accepted: the accepted records are only 30 % positive"
    assert "nothing is accepted" in cal.reason
    fresh = rng.random(100_000)
    assert cascade_outcome(fresh, rng.random(100_000) < 0.3, cal.upper, cal.lower).oracle_share >= 0.9


def test_a_calibration_reports_sample_estimates_and_its_certified_bounds():
    s, y = draw(np.random.default_rng(1), 2000, 0.3, 5.0, 1.0)
    cal = calibrate(s, y, **TARGET)
    assert cal.reason is None and cal.sample_size == 2000 and 0 < cal.lower <= cal.upper <= 1
    assert cal.achieved == cascade_outcome(s, y, cal.upper, cal.lower)
    assert cal.achieved.recall >= cal.recall_bound >= TARGET["recall"]
    assert cal.achieved.precision >= cal.precision_bound >= TARGET["precision"]
    assert 0 < cal.achieved.oracle_share < 0.2
    assert cal.upper in GRID


# -- degenerate and bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "reason"),
    [
        ([], [], "empty sample"),
        ([0.9, 0.8, 0.95] * 100, [True] * 300, "only positives"),
        ([0.1, 0.2, 0.05] * 100, [False] * 300, "only negatives"),
        ([0.9] * 10 + [0.1] * 10, [True] * 10 + [False] * 10, "too few to bound recall"),
    ],
    ids=["empty", "all-positive", "all-negative", "too-small"],
)
def test_degenerate_samples_send_everything_to_the_oracle_with_a_reason(scores, labels, reason):
    cal = calibrate(scores, labels, **TARGET)
    assert cal.all_to_oracle and cal.lower == 0.0 and cal.upper == NEVER_ACCEPT
    assert reason in cal.reason and "\n" not in cal.reason
    assert cal.sample_size == len(scores)
    assert all(decide(x, cal) == "oracle" for x in (0.0, 0.5, 1.0))


def test_a_positive_scored_0_at_the_recall_bound_is_not_mistaken_for_no_bound():
    s, y = draw(np.random.default_rng(5), 2000, 0.3, 5.0, 1.0)
    positives = np.flatnonzero(y)
    s[positives[: len(positives) // 10]] = 0.0  # a tenth of the positives at exactly 0: the bound lands there
    cal = calibrate(s, y, **TARGET)
    assert cal.lower == 0.0 and cal.recall_bound < 1.0 and cal.reason is None


def test_targets_of_1_cannot_be_certified_and_send_everything_to_the_oracle():
    s, y = draw(np.random.default_rng(3), 2000, 0.5, 5.0, 1.0)
    cal = calibrate(s, y, precision=1.0, recall=1.0, delta=0.05)
    assert cal.all_to_oracle and cal.achieved == Achieved(1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("scores", "labels", "kwargs", "message"),
    [
        ([0.5, 0.6], [True], {}, "2 scores but 1 labels"),
        ([0.5, 1.5], [True, False], {}, "finite number in [0, 1]"),
        ([0.5, float("nan")], [True, False], {}, "finite number in [0, 1]"),
        ([0.5, 0.6], [2, 0], {}, "labels must be booleans"),
        ([0.5], [True], {"precision": 0.0}, "target precision"),
        ([0.5], [True], {"delta": 1.0}, "delta must be in (0, 1)"),
    ],
)
def test_malformed_inputs_raise_an_input_error(scores, labels, kwargs, message):
    with pytest.raises(InputError) as err:
        calibrate(scores, labels, **(TARGET | kwargs))
    assert message in str(err.value)


# -- the decision rule and the proxies --------------------------------------------------------------


def test_decide_accepts_at_upper_rejects_below_lower_and_sends_the_band_to_the_oracle():
    t = Thresholds(upper=0.9, lower=0.4, sample_size=100, calibrated_at=dt.date(2026, 12, 4))
    assert [decide(x, t) for x in (1.0, 0.9, 0.89, 0.4, 0.39, 0.0)] == [
        "accept",
        "accept",
        "oracle",
        "oracle",
        "reject",
        "reject",
    ]
    assert decide(None, t) == decide(float("nan"), t) == decide(0.99, None) == "oracle"
    never = Thresholds(upper=NEVER_ACCEPT, lower=0.0, sample_size=0, calibrated_at=dt.date(2026, 12, 4))
    assert decide(1.0, never) == decide(0.0, never) == "oracle"


def test_the_rapidfuzz_proxy_keeps_the_best_candidate_by_token_sort_ratio():
    got = rapidfuzz_score("ACME Corp.", ["Acme Holdings Bank", "Corp Acme", "Zenith"])
    assert (got.score, got.candidate, got.index) == (1.0, "Corp Acme", 1)
    # WRatio would score the contained name 90; token_sort_ratio compares whole names.
    assert rapidfuzz_score("Acme", ["Acme Holdings Bank"]).score < 0.5
    assert rapidfuzz_score("Acme", []).score is None
    t = Thresholds(upper=0.0, lower=0.0, sample_size=1, calibrated_at=dt.date(2026, 12, 4))
    assert decide(rapidfuzz_score("Acme", []).score, t) == "oracle"


def test_the_none_proxy_sends_everything_to_the_oracle_and_a_model_proxy_is_no_matching_scorer():
    spec = CascadeSpec.parse(VALID | {"proxy": "none"}, TOPIC)
    assert matching_proxy(spec) is none_score
    t = Thresholds(upper=0.0, lower=0.0, sample_size=1, calibrated_at=dt.date(2026, 12, 4))
    assert decide(matching_proxy(spec)("Acme", ["Acme"]).score, t) == "oracle"
    assert matching_proxy(CascadeSpec.parse(VALID, TOPIC)) is rapidfuzz_score
    model = VALID | {"proxy": "model:llm_small/gpt-4.1-nano"}
    # A model proxy never rejects: a lower threshold above 0 is refused, naming the field.
    with pytest.raises(CascadeError, match=r"^company_matching: cascade.thresholds.lower: must be 0 for a model proxy"):
        CascadeSpec.parse(model, TOPIC)
    spec = CascadeSpec.parse(model | {"thresholds": {**VALID["thresholds"], "lower": 0.0}}, TOPIC)
    assert (spec.proxy.conn_id, spec.proxy.model, spec.thresholds.lower) == ("llm_small", "gpt-4.1-nano", 0.0)
    with pytest.raises(CascadeError, match=r"^company_matching: cascade.proxy: model:llm_small/gpt-4.1-nano is a"):
        matching_proxy(spec)


# -- the spec ---------------------------------------------------------------------------------------


def test_a_valid_block_parses_with_defaults_and_round_trips_its_thresholds():
    spec = CascadeSpec.parse(VALID, TOPIC)
    assert (spec.proxy.kind, spec.oracle, spec.precision, spec.recall, spec.sample) == (
        "rapidfuzz",
        "primary",
        0.95,
        0.9,
        500,
    )
    assert spec.thresholds.calibrated_at == dt.date(2026, 12, 4) and spec.thresholds.achieved.oracle_share == 0.3
    minimal = CascadeSpec.parse({"proxy": "model:llm_small/meta/llama-3", "target": VALID["target"]}, TOPIC)
    assert (minimal.proxy.conn_id, minimal.proxy.model) == ("llm_small", "meta/llama-3")
    assert (minimal.oracle, minimal.delta, minimal.sample, minimal.thresholds) == ("primary", 0.05, 200, None)
    again = CascadeSpec.parse(VALID | {"thresholds": spec.thresholds.as_metadata()}, TOPIC)
    assert again == spec
    s, y = draw(np.random.default_rng(2), 2000, 0.3, 5.0, 1.0)
    stored = calibrate(s, y, **TARGET).thresholds(dt.date(2026, 12, 4)).as_metadata()
    assert CascadeSpec.parse(VALID | {"thresholds": stored}, TOPIC).thresholds.upper == stored["upper"]
    assert from_metadata({"name": TOPIC}, TOPIC) is None
    assert from_metadata({"cascade": VALID}, TOPIC) == spec
    assert yaml.safe_load(yaml.safe_dump({"cascade": VALID}))["cascade"] == VALID
    as_yaml = yaml.safe_load("upper: 0.93\nlower: 0.41\nsample_size: 500\ncalibrated_at: 2026-12-04\n")
    assert CascadeSpec.parse(VALID | {"thresholds": as_yaml}, TOPIC).thresholds.calibrated_at == dt.date(2026, 12, 4)


def with_change(path: str, value):
    """``VALID`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    block = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = block
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return block


BAD = [
    ("proxy", "levenshtein", "cascade.proxy"),
    ("proxy", "model:no-model", "cascade.proxy"),
    ("proxy", ..., "cascade.proxy"),
    ("oracle", "secondary", "cascade.oracle"),
    ("target.precision", 0, "cascade.target.precision"),
    ("target.recall", 1.5, "cascade.target.recall"),
    ("target.recall", ..., "cascade.target.recall"),
    ("target.f1", 0.9, "cascade.target"),
    ("delta", 1, "cascade.delta"),
    ("delta", "0.05", "cascade.delta"),
    ("sample", 0, "cascade.sample"),
    ("sample", True, "cascade.sample"),
    ("sample", 2.5, "cascade.sample"),
    ("thresholds.upper", 2.0, "cascade.thresholds.upper"),
    ("thresholds.lower", -0.1, "cascade.thresholds.lower"),
    ("thresholds.calibrated_at", ..., "cascade.thresholds.calibrated_at"),
    ("thresholds.calibrated_at", "2026-13-01", "cascade.thresholds.calibrated_at"),
    ("thresholds.sample_size", -1, "cascade.thresholds.sample_size"),
    ("thresholds.achieved.recall", 1.2, "cascade.thresholds.achieved.recall"),
    ("thresholds.achieved.f1", 0.9, "cascade.thresholds.achieved"),
    ("thresholds.extra", 1, "cascade.thresholds"),
]
# JSON Schema cannot compare two values: lower <= upper is the spec's alone.
SPEC_ONLY = [("thresholds.lower", 0.95, "cascade.thresholds.lower")]


@pytest.mark.parametrize(("path", "value", "field"), BAD + SPEC_ONLY)
def test_an_invalid_block_raises_one_line_naming_the_topic_and_field(path, value, field):
    with pytest.raises(CascadeError) as err:
        CascadeSpec.parse(with_change(path, value), TOPIC)
    message = str(err.value)
    assert message.startswith(f"{TOPIC}: {field}: ") and "\n" not in message, message
    assert isinstance(err.value, ConfigError)


def test_a_block_that_is_not_a_mapping_is_refused():
    with pytest.raises(CascadeError, match=r"^company_matching: cascade: must be a mapping, not list$"):
        from_metadata({"cascade": ["rapidfuzz"]}, TOPIC)


def test_the_oracle_routes_are_the_routing_routes():
    assert ORACLE_ROUTES == ROUTES


# -- the metadata JSON Schema -----------------------------------------------------------------------


def schema_errors(block):
    meta = yaml.safe_load((include_dir() / "prompts" / TOPIC / "metadata.yaml").read_text())
    meta["versions"]["v1"]["cascade"] = block  # a version's cascade
    schema = yaml.safe_load((include_dir() / "prompts" / "metadata.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [list(e.absolute_path) for e in validator.iter_errors(jsonable(meta))]


def test_the_schema_accepts_a_valid_block_and_the_minimal_one():
    assert schema_errors(VALID) == []
    assert schema_errors({"proxy": "none", "target": {"precision": 0.9, "recall": 0.9}, "thresholds": None}) == []


@pytest.mark.parametrize(("path", "value", "field"), BAD)
def test_the_schema_refuses_what_the_spec_refuses(path, value, field):
    assert schema_errors(with_change(path, value)) != []


@pytest.fixture
def prompts(tmp_path, monkeypatch):
    shutil.copytree(include_dir() / "prompts", tmp_path / "prompts")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "prompts"


def with_version_cascade(text: str, block) -> str:
    """``metadata.yaml`` text with ``block`` as v1's cascade."""
    meta = yaml.safe_load(text)
    meta["versions"]["v1"]["cascade"] = block
    return yaml.safe_dump(jsonable(meta), sort_keys=False)


def test_validate_accepts_a_cascade_block_and_locates_a_bad_one(prompts):
    meta = prompts / TOPIC / "metadata.yaml"
    original = meta.read_text()
    meta.write_text(with_version_cascade(original, VALID))
    assert validate_registry("prompts", topics=[TOPIC]) == []
    meta.write_text(with_version_cascade(original, with_change("oracle", "secondary")))
    problems = [str(p) for p in validate_registry("prompts", topics=[TOPIC])]
    assert len(problems) == 1 and "cascade.oracle" in problems[0], problems


# -- imports ----------------------------------------------------------------------------------------


def test_the_package_imports_only_base_modules_numpy_scipy_and_rapidfuzz():
    allowed = {"pipeline_hub.exceptions", "pipeline_hub.config", "numpy", "scipy", "rapidfuzz"}
    package = Path(__file__).resolve().parents[1] / "plugins" / "pipeline_hub" / "cascade"
    found = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module)
    outside = {
        m
        for m in found
        if m.split(".")[0] not in sys.stdlib_module_names
        and not m.startswith("pipeline_hub.cascade")
        and not any(m == a or m.startswith(a + ".") for a in allowed)
    }
    assert outside == set()
