"""A model proxy in the cascade (issue 15): a cheaper LLM answers first, the oracle the records it is unsure of.

Industry classification on the bundled company sample, in-process, against the stub LLM over real HTTP. Two
connections point at the stub: ``llm_default`` (the oracle, model ``gpt-4.1``) and ``llm_small`` (the proxy,
``gpt-4.1-mini``); the stub tells them apart by the request's ``model`` and answers each from a table keyed by
the company name in the prompt. Both are priced by genai-prices, so costs are real figures.

Checked: a confident proxy answer is published without an oracle call (route ``proxy``, the proxy's model
and usage); an unsure, invalid or failed proxy answer goes to the oracle (route ``oracle``, both calls'
usage on the record); conservation and the manifest's ``usage.cascade`` (calls saved, proxy calls and cost,
net saving); the cascade's oracle route is the one that answers; a route the topic lacks is refused at load
time; ``pipeline-hub calibrate`` with a model proxy labels by agreement with the oracle, meets the target on
a synthetic set whose proxy quality is known, and writes ``v<N+1>`` (lower 0) for dev only.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline_hub.providers.pricing import cost_usd
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO, llm_conn

TOPIC = "industry_classification"
ORACLE, PROXY, OTHER = "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"
THRESHOLDS = {"upper": 0.9, "lower": 0.0, "sample_size": 100, "calibrated_at": "2026-12-04"}
NAMES = [row["name"] for row in csv.DictReader((REPO / "include/sample_data/companies/companies.csv").open())]
# What the proxy does per company of the sample: 8 sure, 6 unsure, 2 just under upper, 3 invalid, 2 failing.
SURE, NEAR, INVALID, FAILING = NAMES[:8], NAMES[14:16], NAMES[16:19], NAMES[19:21]
UNSURE = NAMES[8:14] + NAMES[21:]
PROXY_SAYS = {
    **{n: {"sector": "Energy", "confidence": 0.97} for n in SURE},
    **{n: {"sector": "Energy", "confidence": 0.5} for n in UNSURE},
    **{n: {"sector": "Energy", "confidence": 0.89} for n in NEAR},
    **{n: {"sector": "Not a sector", "confidence": 0.99} for n in INVALID},
}
ORACLE_SAYS = {"sector": "Financials", "confidence": 0.8}


def company(body: dict) -> str:
    """The company name in a request's last user message (the template's ``Company: …`` line)."""
    return re.search(r"Company: (.*)", body["messages"][-1]["content"]).group(1).strip()


def serve(stub, proxy: dict[str, dict], oracle=lambda name: ORACLE_SAYS, failing=()) -> None:
    """Answer proxy-model requests from ``proxy`` (by company), the others with ``oracle(company)``; requests
    of the proxy model about a company in ``failing`` get HTTP 500 (every retry)."""
    stub.responder = lambda body: proxy.get(company(body)) if body["model"] == PROXY else oracle(company(body))
    stub.fault_for = lambda body: "500" if body["model"] == PROXY and company(body) in failing else None


def asked(stub) -> Counter:
    """``Counter((company, model))`` of the chat requests the stub received."""
    return Counter((company(b), b["model"]) for b in stub.requests)


@pytest.fixture
def conns(stub, monkeypatch):
    """``llm_default`` = the oracle model, ``llm_small`` = the proxy model, ``llm_other`` = a third model;
    all on the stub, with quick retries."""
    quick = {"retry_backoff_s": 0.01, "retry_backoff_max_s": 0.02}
    for conn, model in (("LLM_DEFAULT", ORACLE), ("LLM_SMALL", PROXY), ("LLM_OTHER", OTHER)):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn}", llm_conn(stub.base_url, model=model, **quick))
    return stub


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry copy whose industry_classification v1 gets ``cascade`` (and ``provider``) from the test."""
    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    meta_path = include / "prompts" / TOPIC / "metadata.yaml"

    def set_cascade(block: dict | None, provider: dict | None = None) -> None:
        meta = yaml.safe_load(meta_path.read_text())
        meta["versions"]["v1"].pop("cascade", None)
        if block is not None:
            meta["versions"]["v1"]["cascade"] = block
        if provider is not None:
            meta["provider"] = provider
        meta_path.write_text(yaml.safe_dump(meta, sort_keys=False, default_flow_style=None))

    set_cascade.meta_path = meta_path
    return set_cascade


def cascade(thresholds=THRESHOLDS, **extra) -> dict:
    return {
        "proxy": f"model:llm_small/{PROXY}",
        "target": {"precision": 0.9, "recall": 0.9},
        "thresholds": thresholds,
        **extra,
    }


def publish(raw_zone, out):
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert not result.failed, result
    part = out / "sanitized_data" / TOPIC / f"ds={DS}"
    manifest = json.loads((part / "_manifest.json").read_text())
    return manifest, pq.read_table(part / "part-00000.parquet").to_pylist()


# -- the prompt stage -------------------------------------------------------------------------------


def test_a_sure_proxy_answers_alone_and_the_rest_goes_to_the_oracle(registry, conns, raw_zone, tmp_path):
    registry(cascade())
    serve(conns, PROXY_SAYS, failing=FAILING)
    manifest, rows = publish(raw_zone, tmp_path / "out")
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == set(NAMES)
    for name in SURE:  # confident: the proxy's answer, no oracle call
        assert (by_name[name]["route"], by_name[name]["model"], by_name[name]["sector"]) == ("proxy", PROXY, "Energy")
        assert by_name[name]["confidence"] == 0.97
        assert asked(conns)[(name, ORACLE)] == 0 and asked(conns)[(name, PROXY)] == 1
    for name in UNSURE + NEAR + INVALID + FAILING:  # unsure, invalid or failed: the oracle answers
        row = by_name[name]
        assert (row["route"], row["model"], row["sector"]) == ("oracle", ORACLE, "Financials"), name
        assert asked(conns)[(name, ORACLE)] == 1 and asked(conns)[(name, PROXY)] >= 1
    assert all(asked(conns)[(name, PROXY)] == 4 for name in FAILING)  # first call + 3 retries, then the oracle

    counts, usage = manifest["counts"], manifest["usage"]
    assert counts["in"] == counts["published"] + counts["quarantined_total"] == len(NAMES)
    assert counts["quarantined_total"] == 0, "a failed or invalid proxy answer never quarantines a record"
    assert usage["records_by_route"] == {"proxy": len(SURE), "primary": len(NAMES) - len(SURE)}
    summary = usage["cascade"]
    proxy_calls = len(NAMES) - len(FAILING) + 4 * len(FAILING)
    assert summary["proxy"] == summary["calls_saved"] == len(SURE) and summary["oracle"] == len(NAMES) - len(SURE)
    assert summary["proxy_calls"] == proxy_calls
    assert usage["llm_calls"] == conns.calls == proxy_calls + summary["oracle"]
    assert summary["proxy_outcomes"] == {
        "accepted": len(SURE),
        "unsure": len(UNSURE) + len(NEAR),
        "invalid": len(INVALID),
        "failed": len(FAILING),
    }
    assert 0 < summary["proxy_cost_usd"] < usage["cost_usd"]
    # Net: the oracle cost the proxy answers avoided (at the run's mean oracle cost) minus every proxy call.
    oracle_cost = usage["cost_usd"] - summary["proxy_cost_usd"]
    net = oracle_cost / summary["oracle"] * summary["proxy"] - summary["proxy_cost_usd"]
    assert summary["cost_saved_usd"] == pytest.approx(net, abs=2e-6)
    assert manifest["routes"]["proxy"] == {"conn_id": "llm_small", "model": PROXY}


def test_each_record_carries_the_usage_of_every_call_it_needed(registry, conns):
    from pipeline_hub.prompts.registry import load_topic
    from pipeline_hub.providers.routing import get_hook
    from pipeline_hub.stages.prompt import prompt_records

    registry(cascade())
    serve(conns, PROXY_SAYS)
    topic = load_topic(TOPIC)
    chosen = [SURE[0], UNSURE[0], INVALID[0]]
    rows = {row["name"]: row for row in csv.DictReader((REPO / "include/sample_data/companies/companies.csv").open())}
    records = [{"record_id": str(i), "source_uri": "t", "position": i, "fields": rows[n]} for i, n in enumerate(chosen)]
    results, stats = prompt_records(get_hook("llm_default"), topic, records)
    sure, unsure, invalid = (r["usage"] for r in results)
    assert all(r["status"] == "ok" for r in results)
    # The sure record: one proxy call, priced at the proxy's model.
    assert (sure["model"], sure["route"], sure["cascade"], sure["attempts"]) == (PROXY, "proxy", "proxy", 1)
    assert sure["proxy"]["outcome"] == "accepted"
    assert sure["cost_usd"] == pytest.approx(cost_usd(PROXY, sure["prompt_tokens"], sure["completion_tokens"]))
    for usage, outcome in ((unsure, "unsure"), (invalid, "invalid")):
        mine = usage["proxy"]
        assert (usage["model"], usage["route"], usage["cascade"], usage["attempts"]) == (ORACLE, "primary", "oracle", 2)
        assert mine["outcome"] == outcome and mine["model"] == PROXY and mine["cost_usd"] > 0
        oracle_tokens = (
            usage["prompt_tokens"] - mine["prompt_tokens"],
            usage["completion_tokens"] - mine["completion_tokens"],
        )
        assert min(oracle_tokens) > 0, "both calls' tokens are counted"
        assert usage["cost_usd"] == pytest.approx(mine["cost_usd"] + cost_usd(ORACLE, *oracle_tokens))
    assert stats.calls == 5 and stats.proxy_calls == 3 and stats.routes == {"proxy": 1, "primary": 2}
    assert stats.proxy_cost_usd == pytest.approx(sum(u["proxy"]["cost_usd"] for u in (sure, unsure, invalid)))
    assert stats.cost_usd == pytest.approx(sum(u["cost_usd"] for u in (sure, unsure, invalid)))


def test_an_uncalibrated_model_proxy_is_never_asked(registry, conns, raw_zone, tmp_path):
    registry(cascade(thresholds=None))
    serve(conns, PROXY_SAYS)
    manifest, rows = publish(raw_zone, tmp_path / "out")
    assert {r["route"] for r in rows} == {"oracle"} and not any(model == PROXY for _, model in asked(conns))
    assert manifest["usage"]["cascade"]["proxy_calls"] == 0 and "proxy" not in manifest["routes"]


@pytest.mark.parametrize(
    ("oracle", "provider"),
    [
        ("fallback", {"fallback": {"conn_id": "llm_other", "model": OTHER}}),
        ("long_input", {"long_input": {"threshold_tokens": 100000, "conn_id": "llm_other", "model": OTHER}}),
    ],
)
def test_the_oracle_records_go_to_the_route_the_cascade_names(registry, conns, raw_zone, tmp_path, oracle, provider):
    registry(cascade(oracle=oracle), provider=provider)
    serve(conns, PROXY_SAYS)
    manifest, rows = publish(raw_zone, tmp_path / "out")
    oracle_rows = [r for r in rows if r["route"] == "oracle"]
    assert oracle_rows and {r["model"] for r in oracle_rows} == {OTHER}
    assert not any(model == ORACLE for _, model in asked(conns)), "the primary model is not the oracle here"
    assert manifest["usage"]["records_by_route"] == {"proxy": len(SURE), oracle: len(NAMES) - len(SURE)}


def test_an_oracle_route_the_topic_does_not_configure_is_refused_at_load_time(registry, conns, raw_zone, tmp_path):
    from pipeline_hub.prompts.registry import RegistryError, load_topic

    registry(cascade(oracle="long_input"))
    with pytest.raises(RegistryError) as caught:
        load_topic(TOPIC)
    message = str(caught.value)
    assert message.startswith(str(registry.meta_path)) and "cascade.oracle: long_input" in message
    assert "provider.long_input" in message and "\n" not in message
    with pytest.raises(RegistryError, match="cascade.oracle: long_input"):
        run_pipeline(raw_root=str(raw_zone), output_root=str(tmp_path / "out"), ds=DS, topics=[TOPIC])
    assert conns.calls == 0, "refused before any call"


def test_a_model_proxy_needs_a_confidence_in_the_output_schema(registry, conns):
    from pipeline_hub.prompts.registry import RegistryError, load_topic

    meta = yaml.safe_load(registry.meta_path.read_text())
    meta["quality"]["confidence_field"] = "certainty"  # the schema has "confidence", not "certainty"
    meta["versions"]["v1"]["cascade"] = cascade()
    registry.meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(RegistryError, match=r"cascade.proxy: a model proxy is scored by its answer's 'certainty'"):
        load_topic(TOPIC)


# -- pipeline-hub calibrate -------------------------------------------------------------------------

# The synthetic set: 50 companies at each proxy confidence; how often the proxy agrees with the oracle there.
AGREEMENT = {0.3: 0.0, 0.6: 0.5, 0.7: 0.5, 0.85: 1.0, 0.95: 1.0}
PER_LEVEL = 50


def synthetic(path):
    """``(sample file, proxy answers, oracle answers)``: companies ``Synthetic NNN``, the proxy agreeing with
    the oracle on exactly ``AGREEMENT[c]`` of those at confidence ``c`` (every other one at 0.6 and 0.7)."""
    proxy, oracle, lines = {}, {}, []
    for level, (confidence, agree) in enumerate(AGREEMENT.items()):
        for i in range(PER_LEVEL):
            name = f"Synthetic {level}{i:02d}"
            oracle[name] = {"sector": "Utilities", "confidence": 0.9}
            agrees = i < agree * PER_LEVEL
            proxy[name] = {"sector": "Utilities" if agrees else "Energy", "confidence": confidence}
            ex = {"id": name, "input": {"name": name, "headquarters": "Testville"}, "expected": {"sector": "Energy"}}
            lines.append(json.dumps(ex))
    path.write_text("\n".join(lines) + "\n")
    return path, proxy, oracle


def population_precision(upper: float) -> float:
    """The proxy-accepted answers' agreement with the oracle on the synthetic population, at ``upper``."""
    accepted = [agree for confidence, agree in AGREEMENT.items() if confidence >= upper]
    return sum(accepted) / len(accepted) if accepted else 1.0


def test_calibrate_a_model_proxy_learns_upper_only_and_meets_the_target(registry, conns, tmp_path, capsys):
    from pipeline_hub.lifecycle.validation import validate_registry
    from pipeline_hub.prompts.registry import load_topic

    from lifecycle_helpers import hub

    registry(cascade(thresholds=None, sample=500))
    sample, proxy, oracle = synthetic(tmp_path / "sample.jsonl")
    serve(conns, proxy, oracle=lambda name: oracle.get(name))
    args = ("calibrate", "--topic", TOPIC, "--sample", str(sample), "--conn-id", "llm_default")
    code, stdout, stderr = hub(capsys, *args)
    assert code == 0, stderr
    result = json.loads(stdout)
    n = PER_LEVEL * len(AGREEMENT)
    assert (result["from"], result["version"], result["proxy"]) == ("v1", "v2", f"model:llm_small/{PROXY}")
    assert result["sample_size"] == n and result["left_out"] == 0
    assert result["positives"] == sum(int(a * PER_LEVEL) for a in AGREEMENT.values())
    assert result["lower"] == 0.0 and result["reason"] is None, result
    # The target holds on the population: only the always-agreeing levels are accepted, and some are.
    assert 0.7 < result["upper"] <= 0.85 and population_precision(result["upper"]) >= 0.9
    assert result["precision_bound"] >= 0.9 and result["achieved"]["oracle_share"] == pytest.approx(0.6)
    assert result["achieved"]["precision"] == 1.0 and result["achieved"]["recall"] is None
    # The proxy and the oracle each answered every record once (the second pass reads the cache where it can).
    assert sum(1 for _, model in asked(conns) if model == PROXY) == n
    assert sum(1 for _, model in asked(conns) if model == ORACLE) == n

    assert validate_registry(registry.meta_path.parent.parent, [TOPIC]) == []
    dev, prod = load_topic(TOPIC, pointer="dev"), load_topic(TOPIC)
    assert dev.version == "v2" and dev.prompt.cascade.thresholds.upper == result["upper"]
    assert dev.prompt.cascade.thresholds.lower == 0.0 and dev.prompt.cascade.thresholds.sample_size == n
    assert prod.version == "v1" and prod.prompt.cascade.thresholds is None
    assert dev.prompt.cascade.proxy == prod.prompt.cascade.proxy


def test_calibrate_names_an_undefined_proxy_connection_in_one_line(registry, conns, capsys):
    from lifecycle_helpers import hub

    registry({**cascade(thresholds=None), "proxy": "model:llm_nowhere/some-model"})
    code, _, stderr = hub(capsys, "calibrate", "--topic", TOPIC)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "cascade.proxy connection 'llm_nowhere' is not defined" in stderr and "metadata.yaml" in stderr
    code, _, stderr = hub(capsys, "calibrate", "--topic", TOPIC, "--conn-id", "llm_missing")
    assert code == 2 and "connection 'llm_missing' is not defined" in stderr
    assert conns.calls == 0


def test_agreement_with_the_oracle_follows_the_topics_evaluation():
    from pipeline_hub.lifecycle.calibration import answers_agree

    classification = {"task": "classification", "label_field": "sector"}
    assert answers_agree(
        classification,
        [{"sector": "Energy"}, {"sector": "Energy"}, None],
        [{"sector": "Energy"}, {"sector": "Utilities"}, {"sector": "Energy"}],
    ) == [True, False, False]
    matching = {"task": "matching", "match_field": "match_id"}
    assert answers_agree(matching, [{"match_id": 7}, {"match_id": None}], [{"match_id": "7"}, {"match_id": None}]) == [
        True,
        True,
    ]
    evaluation = yaml.safe_load((REPO / "include/prompts/contact_extraction/metadata.yaml").read_text())["evaluation"]
    ann = {"name": "Ann Lee", "title": None, "organisation": "Enron", "email": "ann@enron.com", "phone": "713-853-0380"}
    same = {**ann, "name": "ann lee", "email": "ANN@enron.com", "phone": "(713) 853-0380"}
    bob = {"name": "Bob Roe", "title": None, "organisation": None, "email": None, "phone": None}
    oracle = [{"contacts": [ann]}, {"contacts": [ann]}, {"contacts": []}, {"contacts": [ann, bob]}]
    proxy = [{"contacts": [same]}, {"contacts": [ann, bob]}, {"contacts": []}, {"contacts": [ann]}]
    assert answers_agree(evaluation, proxy, oracle) == [True, False, True, False]


def test_validate_reports_a_cascade_that_does_not_fit_its_topic(registry):
    from pipeline_hub.lifecycle.validation import validate_registry

    registry(cascade(oracle="fallback"))
    problems = validate_registry(registry.meta_path.parent.parent, [TOPIC])
    assert [p.message for p in problems] == [
        "versions.v1: cascade.oracle: fallback names provider.fallback, which this topic does not configure "
        "(add provider.fallback, or use oracle: primary)"
    ]
    assert problems[0].path.endswith("metadata.yaml") and problems[0].line > 1
    registry(cascade({**THRESHOLDS, "lower": 0.3}))
    (problem,) = validate_registry(registry.meta_path.parent.parent, [TOPIC])
    assert "cascade.thresholds.lower: must be 0 for a model proxy" in problem.message


def test_the_accept_only_bound_holds_over_many_samples_of_a_calibrated_proxy():
    """A proxy whose stated confidence is its agreement rate (P(agree | c) = c, c uniform on whole percents):
    over 200 seeded samples of 1000, the learned ``upper`` keeps the accepted answers' agreement >= 0.8 on the
    population in at least 1 - delta of them (plus binomial slack), and accepts something in most. (At 0.9 a
    sample of 1000 rarely certifies anything: about 100 records score >= 0.9, too few under Bonferroni.)"""
    import numpy as np

    from pipeline_hub.cascade.calibration import calibrate_accept_only

    levels = np.round(np.linspace(0, 1, 101), 2)

    def population_agreement(upper: float) -> float:
        kept = levels[levels >= upper]
        return float(kept.mean()) if kept.size else 1.0

    rng, misses, accepting = np.random.default_rng(15), 0, 0
    for _ in range(200):
        scores = rng.choice(levels, 1000)
        labels = rng.random(1000) < scores
        result = calibrate_accept_only(scores, labels, precision=0.8, delta=0.05)
        assert result.lower == 0.0 and result.recall_bound == 1.0
        misses += population_agreement(result.upper) < 0.8
        accepting += result.upper <= 1.0
    assert misses / 200 <= 0.05 + 0.02 and accepting >= 150


def test_a_run_refuses_an_undefined_proxy_connection_at_plan_time(registry, conns, raw_zone, tmp_path):
    from pipeline_hub.exceptions import ConfigError

    registry({**cascade(), "proxy": "model:llm_nowhere/some-model"})
    with pytest.raises(ConfigError) as caught:
        run_pipeline(raw_root=str(raw_zone), output_root=str(tmp_path / "out"), ds=DS, topics=[TOPIC])
    assert f"topic '{TOPIC}' v1: cascade.proxy connection 'llm_nowhere' is not defined" in str(caught.value)
    assert "\n" not in str(caught.value) and conns.calls == 0
