"""`pipeline-hub score`: metrics, reports and caching, through the production prompt stage and the stub."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.config import include_dir
from pipeline_hub.lifecycle import metrics
from pipeline_hub.lifecycle.scoring import examples_sha256, load_examples, score_version

from lifecycle_helpers import oracle, responder

TOPICS = ["company_matching", "contact_extraction", "industry_classification", "use_case_extraction"]


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(root))
    return root


def test_every_topic_has_at_least_50_examples_with_a_source_note():
    for topic in TOPICS:
        examples, digest = load_examples(include_dir() / "prompts" / topic)
        assert len(examples) >= 50 and len(digest) == 64
        assert (include_dir() / "prompts" / topic / "examples" / "SOURCE.md").is_file()


def test_classification_metrics_by_hand():
    gold = ["A", "A", "B", "B", "C"]
    pred = ["A", "B", "B", None, "A"]
    m = metrics.classification_metrics(gold, pred, ["A", "B", "C"])
    assert m["accuracy"] == 0.4
    # A: tp1 fp1 fn1 -> P .5 R .5 F1 .5; B: tp1 fp1 fn1 -> .5; C: tp0 fp0 fn1 -> 0
    assert m["per_class"]["A"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1, "support": 2}
    assert m["per_class"]["C"]["f1"] == 0.0 and m["macro_f1"] == round((0.5 + 0.5 + 0) / 3, 4)
    assert m["confusion"]["columns"][-1] == metrics.INVALID
    assert m["confusion"]["matrix"][1] == [0, 1, 0, 1]  # B: once B, once invalid


def test_extraction_normalises_case_whitespace_email_and_phone():
    fields = {"name": "text", "email": "email", "phone": "phone"}
    gold = [[{"name": "Jane  Roe", "email": "Jane.Roe@Example.com", "phone": "(713) 853-1234"}], []]
    pred = [[{"name": "jane roe.", "email": "mailto:jane.roe@example.com", "phone": "+1 713.853.1234"}], []]
    m = metrics.extraction_metrics(gold, pred, fields)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0) and m["empty_correct"] == 1
    extra = [[{"name": "Jane Roe", "email": None, "phone": "555"}], [{"name": "Bob"}]]
    m = metrics.extraction_metrics(gold, extra, fields)
    assert m["per_field"]["name"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "tp": 1, "fp": 1, "fn": 0}
    assert m["per_field"]["email"]["fn"] == 1 and m["per_field"]["phone"]["fp"] == 1
    fuzzy = metrics.extraction_metrics(
        [[{"name": "AI Curated Synthetic Data", "techniques": ["Computer Vision"]}]],
        [[{"name": "Curated synthetic data (AI)", "techniques": ["computer vision", "NLP"]}]],
        {"name": "fuzzy", "techniques": "text"},
    )
    assert (fuzzy["tp"], fuzzy["fp"], fuzzy["fn"]) == (2, 1, 0)


def test_matching_counts_correct_no_match():
    gold = ["1", "2", None, None, "3"]
    pred = ["1", None, None, "9", "4"]
    m = metrics.matching_metrics(gold, pred, [False] * 5)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 2, 2)
    assert m["no_match"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}
    assert m["accuracy"] == 0.4
    assert m["decisions"]["matrix"] == [[1, 1, 1, 0], [0, 1, 1, 0]]


@pytest.mark.parametrize("topic", TOPICS)
def test_score_every_topic_against_the_stub_with_gold_answers(stub, artifacts, topic):
    stub.responder = responder(oracle(topic))
    score = score_version(topic)
    m = score["metrics"]
    assert score["full"] and score["examples_scored"] == score["examples_total"] >= 50
    assert score["examples_sha256"] == examples_sha256(topic) and score["model"] == "stub-model"
    assert score["invalid"] == {"count": 0, "rate": 0.0, "by_reason": {}}
    assert stub.calls == score["examples_total"] and score["usage"]["llm_calls"] == stub.calls
    assert score["usage"]["prompt_tokens"] > 0 and score["usage"]["cost_usd"] == 0.0  # stub-model is free
    assert score["usage"]["latency_p50_s"] is not None and score["usage"]["latency_p95_s"] >= 0
    if score["task"] == "classification":
        assert m["accuracy"] == m["macro_f1"] == 1.0 and len(m["confusion"]["matrix"]) == 11
    elif score["task"] == "matching":
        # Gold outside the five RapidFuzz candidates cannot be answered: the oracle says "no match" there.
        assert m["precision"] == 1.0 and 0.5 < m["recall"] <= 1.0 and m["no_match"]["recall"] == 1.0
    else:
        assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert score["gate_value"] == m[score["gate_metric"]]
    report = artifacts / "reports" / topic / "v1"
    assert json.loads((report / "score.json").read_text())["metrics"] == m
    assert (report / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (report / "score.md").read_text()
    assert f"# Score: {topic} v1" in md and "![" in md and "invalid-answer rate" in md

    # Re-scoring the unchanged version is answered by the response cache: no call, same metrics.
    stub.reset()
    again = score_version(topic)
    assert stub.calls == 0 and again["usage"]["cache_hits"] == again["examples_total"]
    assert again["metrics"] == m and again["usage"]["spent_usd"] == 0.0


def test_limited_score_does_not_replace_the_full_one_and_cli_prints_json(stub, artifacts):
    runner = CliRunner()
    result = runner.invoke(app, ["score", "--topic", "industry_classification", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    score = json.loads(result.stdout)
    assert score["examples_scored"] == 3 and not score["full"] and stub.calls == 3
    folder = artifacts / "reports" / "industry_classification" / "v1"
    assert sorted(p.name for p in folder.iterdir()) == ["score_limit3.json", "score_limit3.md", "score_limit3.png"]
    result = runner.invoke(app, ["score", "--topic", "industry_classification", "--limit", "2"])
    assert result.exit_code == 0 and "# Score: industry_classification v1" in result.stdout
    assert runner.invoke(app, ["score", "--topic", "industry_classification", "--version", "v9"]).exit_code == 2


def test_invalid_answers_count_against_the_score(stub, artifacts):
    stub.responder = lambda body: '{"sector": "Not a sector", "confidence": 0.5}'
    score = score_version("industry_classification", limit=5, write=False)
    assert score["invalid"] == {"count": 5, "rate": 1.0, "by_reason": {"invalid_output": 5}}
    assert score["metrics"]["accuracy"] == 0.0 and stub.calls == 10  # one repair each


def test_list_price_prices_a_model_proxy_call_at_the_proxy_model():
    """A record the oracle answered after a model proxy's call pays both at their own prices (USD)."""
    from pipeline_hub.lifecycle.scoring import _list_price
    from pipeline_hub.providers.pricing import cost_usd

    proxy = {"model": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 100}
    escalated = {
        "model": "gpt-4o",
        "prompt_tokens": 2000,
        "completion_tokens": 200,
        "cascade": "oracle",
        "proxy": proxy,
    }
    assert _list_price(escalated, cost_usd) == pytest.approx(0.00021 + 0.0035)
    accepted = {"model": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 100, "cascade": "proxy"}
    assert _list_price({**accepted, "proxy": proxy}, cost_usd) == pytest.approx(0.00021)
    rapidfuzz = {"model": "rapidfuzz:token_sort_ratio", "prompt_tokens": 0, "completion_tokens": 0, "cascade": "proxy"}
    assert _list_price(rapidfuzz, cost_usd) == 0.0
    assert _list_price({**escalated, "model": "unpriced-model"}, cost_usd) is None
