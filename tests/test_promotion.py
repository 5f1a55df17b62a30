"""The promotion gate, rollback and their audit trail; runs pin the prompt version they started with."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from pipeline_hub import stages
from pipeline_hub.cli import app
from pipeline_hub.config import Settings
from pipeline_hub.lifecycle.promotion import GateRefused, PromotionError, promote, read_audit, rollback, set_pointer
from pipeline_hub.lifecycle.scoring import score_version
from pipeline_hub.lifecycle.validation import validate_registry
from pipeline_hub.prompts.registry import load_topic

from conftest import DS
from lifecycle_helpers import add_version, copy_registry, oracle, responder

TOPIC = "industry_classification"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry copy (the run's include/) with v2 (dev) and v3 of TOPIC; prod is v1."""
    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    monkeypatch.setenv("PIPELINE_HUB_ACTOR", "alice")
    prompts = include / "prompts"
    add_version(prompts, TOPIC, "v2")
    add_version(prompts, TOPIC, "v3", dev=False)
    return prompts


def prod_of(prompts):
    return yaml.safe_load((prompts / TOPIC / "metadata.yaml").read_text())["prod"]


def partly_wrong(prompts, version, wrong_count):
    good, bad = oracle(TOPIC, prompts, version), oracle(TOPIC, prompts, version, wrong=True)
    for key in list(good)[:wrong_count]:
        good[key] = bad[key]
    return good


def test_gate_refuses_a_bad_version_accepts_a_good_one_and_rollback_restores(stub, registry):
    prompts = registry
    assert validate_registry(prompts) == []  # the added versions are well-formed
    stub.responder = responder(
        oracle(TOPIC, prompts, "v1"), oracle(TOPIC, prompts, "v2", wrong=True), oracle(TOPIC, prompts, "v3")
    )
    scores = {v: score_version(TOPIC, version=v, prompts_dir=prompts) for v in ("v1", "v2", "v3")}
    assert scores["v1"]["gate_value"] == scores["v3"]["gate_value"] == 1.0 and scores["v2"]["gate_value"] == 0.0

    with pytest.raises(GateRefused) as refused:
        promote(TOPIC, "v2", prompts_dir=prompts)
    assert refused.value.failures == [
        "macro_f1 0.000 is below the gate minimum 0.600 (gate.min)",
        "macro_f1 0.000 is worse than prod v1's 1.000 by 1.000, more than the allowed 0.020 (gate.max_regression)",
    ]
    assert prod_of(prompts) == "v1" and read_audit(prompts) == []

    meta_before = (prompts / TOPIC / "metadata.yaml").read_text()
    entry = promote(TOPIC, "v3", prompts_dir=prompts)
    assert prod_of(prompts) == "v3" and load_topic(TOPIC, prompts).version == "v3"
    meta_after = (prompts / TOPIC / "metadata.yaml").read_text()
    assert meta_after == meta_before.replace("\nprod: v1\n", "\nprod: v3\n")  # only that line changed
    assert entry["from"] == "v1" and entry["to"] == "v3" and entry["actor"] == "alice"
    assert entry["scores"]["to"]["value"] == 1.0 and entry["scores"]["from"]["version"] == "v1"
    assert read_audit(prompts, TOPIC) == [entry]
    changelog = (prompts / TOPIC / "CHANGELOG.md").read_text()
    assert "**promote** v1 → v3 by alice: macro_f1 1.000" in changelog

    back = rollback(TOPIC, prompts_dir=prompts)
    assert prod_of(prompts) == "v1" and back["from"] == "v3" and back["to"] == "v1" and back["action"] == "rollback"
    assert [e["action"] for e in read_audit(prompts, TOPIC)] == ["promote", "rollback"]
    assert "**rollback** v3 → v1 by alice" in (prompts / TOPIC / "CHANGELOG.md").read_text()
    with pytest.raises(PromotionError, match="first recorded prod version"):
        rollback(TOPIC, prompts_dir=prompts)


def test_gate_refuses_a_regression_beyond_the_margin_even_above_the_minimum(stub, registry):
    prompts = registry
    stub.responder = responder(oracle(TOPIC, prompts, "v1"), partly_wrong(prompts, "v2", 4))
    score_version(TOPIC, version="v1", prompts_dir=prompts)
    candidate = score_version(TOPIC, version="v2", prompts_dir=prompts)
    assert 0.6 < candidate["gate_value"] < 0.98
    with pytest.raises(GateRefused) as refused:
        promote(TOPIC, "v2", prompts_dir=prompts)
    assert len(refused.value.failures) == 1 and "(gate.max_regression)" in refused.value.failures[0]


def test_stale_or_missing_scores_do_not_pass(stub, registry):
    prompts = registry
    stub.responder = responder(oracle(TOPIC, prompts, "v1"), oracle(TOPIC, prompts, "v3"))
    with pytest.raises(GateRefused, match="no score for v3: run `pipeline-hub score --topic"):
        promote(TOPIC, "v3", prompts_dir=prompts)
    score_version(TOPIC, version="v3", prompts_dir=prompts)
    with pytest.raises(GateRefused, match="cannot compare with prod v1: no score for v1"):
        promote(TOPIC, "v3", prompts_dir=prompts)
    score_version(TOPIC, version="v1", prompts_dir=prompts)
    score_version(TOPIC, version="v3", prompts_dir=prompts, limit=5)  # a limited score is not the gate's
    examples = prompts / TOPIC / "examples" / "examples.jsonl"
    first = json.loads(examples.read_text().splitlines()[0])
    with examples.open("a") as fh:
        fh.write(json.dumps({**first, "id": "EXTRA", "input": {**first["input"], "id": "EXTRA"}}) + "\n")
    with pytest.raises(GateRefused, match="the score of v3 is stale: the examples changed"):
        promote(TOPIC, "v3", prompts_dir=prompts)
    assert prod_of(prompts) == "v1"
    with pytest.raises(PromotionError, match="already prod"):
        promote(TOPIC, "v1", prompts_dir=prompts)
    with pytest.raises(PromotionError, match="version 'v9' is not declared"):
        promote(TOPIC, "v9", prompts_dir=prompts)


def test_cli_promote_and_rollback(stub, registry):
    prompts = registry
    stub.responder = responder(oracle(TOPIC, prompts, "v1"), oracle(TOPIC, prompts, "v2", wrong=True))
    runner = CliRunner()
    for version in ("v1", "v2"):
        assert runner.invoke(app, ["score", "--topic", TOPIC, "--version", version]).exit_code == 0
    refused = runner.invoke(app, ["promote", "--topic", TOPIC, "--version", "v2"])
    assert refused.exit_code == 1 and "below the gate minimum 0.600 (gate.min)" in refused.output
    assert runner.invoke(app, ["rollback", "--topic", TOPIC]).exit_code == 2  # nothing promoted yet
    # The same request is answered by the cache: fixing the model's answers needs a new version.
    stub.responder = responder(oracle(TOPIC, prompts, "v2"), oracle(TOPIC, prompts, "v3"))
    assert runner.invoke(app, ["score", "--topic", TOPIC, "--version", "v2"]).exit_code == 0
    assert runner.invoke(app, ["promote", "--topic", TOPIC, "--version", "v2"]).exit_code == 1
    assert runner.invoke(app, ["score", "--topic", TOPIC, "--version", "v3"]).exit_code == 0
    accepted = runner.invoke(app, ["promote", "--topic", TOPIC, "--version", "v3", "--by", "bob"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["actor"] == "bob" and prod_of(prompts) == "v3"
    back = runner.invoke(app, ["rollback", "--topic", TOPIC])
    assert back.exit_code == 0 and prod_of(prompts) == "v1"
    assert [(e["action"], e["from"], e["to"]) for e in read_audit(prompts)] == [
        ("promote", "v1", "v3"),
        ("rollback", "v3", "v1"),
    ]


def test_a_promotion_between_plan_and_prompt_does_not_change_the_run_version(stub, registry, raw_zone, tmp_path):
    prompts = registry
    settings = Settings(
        raw_root=str(raw_zone), sanitized_root=str(tmp_path / "out"), staging_root=str(tmp_path / "staging")
    )
    found = stages.run_discover(settings, DS, [TOPIC], None)
    planned = stages.run_hash(settings, found, run_id="pinned", row_limit=4, llm_conn_id="llm_default")
    v1_sha = load_topic(TOPIC, prompts).prompt.template_sha256

    set_pointer(prompts / TOPIC / "metadata.yaml", "prod", "v2")  # what `promote` does, mid-run
    assert load_topic(TOPIC, prompts).version == "v2"

    for item in stages.run_chunk(planned["plan_uri"]):
        stages.run_prompt(item)
    stages.run_scrub(planned["plan_uri"], TOPIC)
    stages.run_validate(planned["plan_uri"], TOPIC)
    published = stages.run_publish(planned["plan_uri"], TOPIC)
    manifest = json.loads((tmp_path / "out" / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())
    assert manifest["prompt"]["version"] == "v1" and manifest["prompt"]["template_sha256"] == v1_sha
    assert published["published"] == 4
    users = [r["messages"][-1]["content"] for r in stub.requests]
    assert users and all(u.rstrip().endswith("Answer:") for u in users)  # v1's wording, never v2's

    # The next run resolves the new prod version and pins it.
    planned = stages.run_hash(settings, found, run_id="next", row_limit=4, llm_conn_id="llm_default")
    plan = json.loads((tmp_path / "staging" / "next" / "plan.json").read_text())
    assert plan["topics"][0]["prompt_version"] == "v2" and planned["pending"] == [TOPIC]
