"""Named prompt labels (``labels:`` in metadata.yaml): validation, resolution, gated moves, audit, run pinning."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from pipeline_hub import cli
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.lifecycle.pointers import set_label, set_pointer
from pipeline_hub.lifecycle.promotion import (
    AUDIT_FILE,
    GateRefused,
    PromotionError,
    delete_label,
    promote,
    read_audit,
    rollback,
    rollback_target,
)
from pipeline_hub.lifecycle.scoring import score_version
from pipeline_hub.lifecycle.validation import validate_registry
from pipeline_hub.prompts.registry import RegistryError, load_topic
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS
from lifecycle_helpers import add_version, copy_registry, oracle, responder

TOPIC = "industry_classification"
runner = CliRunner()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry copy (the run's include/) with v2 (dev) and v3 of TOPIC; prod is v1, no labels."""
    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    monkeypatch.setenv("PIPELINE_HUB_ACTOR", "alice")
    prompts = include / "prompts"
    add_version(prompts, TOPIC, "v2")
    add_version(prompts, TOPIC, "v3", dev=False)
    return prompts


def meta_path(prompts):
    return prompts / TOPIC / "metadata.yaml"


def labels_of(prompts):
    return yaml.safe_load(meta_path(prompts).read_text()).get("labels")


def test_validate_accepts_labels_and_names_each_bad_one(registry):
    meta = meta_path(registry)
    text = meta.read_text()
    meta.write_text(text.replace("\nprod: v1\n", "\nprod: v1\nlabels:\n  canary: v2\n  eu-west_1: v1\n"))
    assert validate_registry(registry) == []
    meta.write_text(text.replace("\nprod: v1\n", "\nprod: v1\nlabels:\n  prod: v2\n  Canary: v2\n  eu: v9\n"))
    problems = [str(p) for p in validate_registry(registry)]
    shown = f"prompts/{TOPIC}/metadata.yaml"
    assert len(problems) == 3 and all(shown in p for p in problems), problems
    assert any("label 'prod' is reserved: dev and prod are top-level keys" in p for p in problems)
    assert any("label name 'Canary' must match ^[a-z][a-z0-9_-]{0,39}$" in p for p in problems)
    assert any(
        "label 'eu' names version 'v9', which is not declared under 'versions' (declared: v1, v2, v3)" in p
        for p in problems
    )


def test_load_topic_resolves_dev_prod_and_named_labels(registry):
    set_label(meta_path(registry), "canary", "v3")
    assert load_topic(TOPIC, registry, pointer="canary").version == "v3"
    assert load_topic(TOPIC, registry, pointer="dev").version == "v2"
    topic = load_topic(TOPIC, registry)
    assert topic.version == "v1" and topic.label == "prod"
    assert topic.pointers == {"dev": "v2", "prod": "v1", "canary": "v3"} and topic.labels == {"canary": "v3"}
    with pytest.raises(
        RegistryError, match=r"metadata.yaml: label 'eu' is not set \(known labels: dev, prod, canary\)"
    ):
        load_topic(TOPIC, registry, pointer="eu")


def test_set_label_changes_only_its_own_line(tmp_path):
    meta = tmp_path / "metadata.yaml"
    head = "# top comment\nname: t\nversions: {v1: {}, v2: {}}\ndev: v2  # dev comment\nprod: v1   # prod comment\n"
    tail = "# about inputs\ninputs: {x: {field: x}}  # trailing\n"
    meta.write_text(head + tail)
    assert set_label(meta, "canary", "v2") is None
    assert meta.read_text() == head + "labels:\n  canary: v2\n" + tail
    meta.write_text(head + "labels:\n    canary: v2   # keep me\n" + tail)
    assert set_label(meta, "canary", "v1") == "v2"
    assert set_label(meta, "on", "v2") is None  # YAML would read on: as true: the key is quoted
    assert meta.read_text() == head + 'labels:\n    canary: v1   # keep me\n    "on": v2\n' + tail
    assert set_label(meta, "on", None) == "v2"
    assert set_label(meta, "canary", None) == "v1"
    assert meta.read_text() == head + tail
    meta.write_text(head + "labels: {canary: v2}  # flow\n" + tail)
    set_label(meta, "eu", "v1")
    assert meta.read_text() == head + "labels: {canary: v2, eu: v1}  # flow\n" + tail
    meta.write_text(head + "labels: {canary:\n  v2}\n" + tail)
    with pytest.raises(PromotionError, match="rewrite it by hand"):
        set_label(meta, "eu", "v1")
    assert meta.read_text() == head + "labels: {canary:\n  v2}\n" + tail  # untouched on refusal


def test_promote_label_passes_the_gate_rolls_back_and_deletes_audited(stub, registry):
    prompts = registry
    stub.responder = responder(
        oracle(TOPIC, prompts, "v1"), oracle(TOPIC, prompts, "v2", wrong=True), oracle(TOPIC, prompts, "v3")
    )
    for version in ("v1", "v2", "v3"):
        score_version(TOPIC, version=version, prompts_dir=prompts)
    original = meta_path(prompts).read_text()

    with pytest.raises(GateRefused, match="promotion of industry_classification v2 to label canary refused") as no:
        promote(TOPIC, "v2", label="canary", prompts_dir=prompts)
    assert "below the gate minimum 0.600 (gate.min)" in no.value.failures[0]
    assert labels_of(prompts) is None and read_audit(prompts) == []
    with pytest.raises(PromotionError, match="label 'dev' is not moved by promote"):
        promote(TOPIC, "v3", label="dev", prompts_dir=prompts)
    with pytest.raises(PromotionError, match="must match"):
        promote(TOPIC, "v3", label="Canary!", prompts_dir=prompts)

    created = promote(TOPIC, "v3", label="canary", prompts_dir=prompts)
    assert meta_path(prompts).read_text() == original.replace("\nprod: v1\n", "\nprod: v1\nlabels:\n  canary: v3\n")
    assert created["label"] == "canary" and created["from"] is None and created["to"] == "v3"
    assert created["action"] == "promote" and created["actor"] == "alice" and created["gate"]["metric"] == "macro_f1"
    assert created["scores"]["to"]["value"] == 1.0 and created["scores"]["prod"]["version"] == "v1"
    assert load_topic(TOPIC, prompts).version == "v1"  # prod did not move
    moved = promote(TOPIC, "v1", label="canary", prompts_dir=prompts)  # prod's version passes the gate too
    assert (moved["from"], moved["to"]) == ("v3", "v1") and labels_of(prompts) == {"canary": "v1"}
    with pytest.raises(PromotionError, match="v1 is already canary"):
        promote(TOPIC, "v1", label="canary", prompts_dir=prompts)

    back = rollback(TOPIC, label="canary", prompts_dir=prompts)
    assert (back["action"], back["label"], back["from"], back["to"]) == ("rollback", "canary", "v1", "v3")
    assert labels_of(prompts) == {"canary": "v3"}
    with pytest.raises(PromotionError, match="first recorded canary version.*label delete"):
        rollback(TOPIC, label="canary", prompts_dir=prompts)
    with pytest.raises(PromotionError, match="no promotion of prod"):
        rollback(TOPIC, prompts_dir=prompts)  # prod's history is its own

    gone = delete_label(TOPIC, "canary", prompts_dir=prompts)
    assert (gone["action"], gone["from"], gone["to"]) == ("delete", "v3", None)
    assert meta_path(prompts).read_text() == original  # comments and layout as before the first label
    with pytest.raises(PromotionError, match="has no label 'canary' \\(known: prod\\)"):
        delete_label(TOPIC, "canary", prompts_dir=prompts)
    with pytest.raises(PromotionError, match="prod cannot be deleted"):
        delete_label(TOPIC, "prod", prompts_dir=prompts)

    entries = read_audit(prompts, TOPIC)
    assert [(e["action"], e["label"], e["from"], e["to"]) for e in entries] == [
        ("promote", "canary", None, "v3"),
        ("promote", "canary", "v3", "v1"),
        ("rollback", "canary", "v1", "v3"),
        ("delete", "canary", "v3", None),
    ]
    assert all({"at", "actor", "topic", "scores"} <= set(e) for e in entries[:3])
    changelog = (prompts / TOPIC / "CHANGELOG.md").read_text()
    assert "**promote** label canary: (new) → v3 by alice: macro_f1 1.000" in changelog
    assert "**rollback** label canary: v1 → v3 by alice" in changelog
    assert "**delete** label canary (was v3) by alice" in changelog

    # Re-created after a delete, the label starts a new history.
    promote(TOPIC, "v3", label="canary", prompts_dir=prompts)
    with pytest.raises(PromotionError, match="first recorded canary version"):
        rollback(TOPIC, label="canary", prompts_dir=prompts)


def test_audit_entries_without_label_are_prod(registry):
    prompts = registry
    set_pointer(meta_path(prompts), "prod", "v3")
    set_label(meta_path(prompts), "canary", "v2")
    legacy = {"at": "2026-11-01T00:00:00+00:00", "actor": "bob", "topic": TOPIC, "scores": {}}
    lines = [
        {**legacy, "action": "promote", "from": "v1", "to": "v3"},  # written before labels existed
        {**legacy, "action": "promote", "label": "canary", "from": None, "to": "v1"},
        {**legacy, "action": "promote", "label": "canary", "from": "v1", "to": "v2"},
    ]
    (prompts / AUDIT_FILE).write_text("".join(json.dumps(e) + "\n" for e in lines))
    assert rollback_target(TOPIC, prompts) == ("v3", "v1")
    assert rollback_target(TOPIC, prompts, label="canary") == ("v2", "v1")


def test_cli_promote_rollback_list_and_delete_a_label(stub, registry):
    prompts = registry
    stub.responder = responder(oracle(TOPIC, prompts, "v1"), oracle(TOPIC, prompts, "v3"))
    for version in ("v1", "v3"):
        assert runner.invoke(cli.app, ["score", "--topic", TOPIC, "--version", version]).exit_code == 0
    made = runner.invoke(cli.app, ["promote", "--topic", TOPIC, "--version", "v3", "--label", "eu", "--by", "bob"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["label"] == "eu" and labels_of(prompts) == {"eu": "v3"}
    moved = runner.invoke(cli.app, ["promote", "--topic", TOPIC, "--version", "v1", "--label", "eu"])
    assert moved.exit_code == 0, moved.output
    listed = runner.invoke(cli.app, ["label", "list", "--topic", TOPIC])
    assert json.loads(listed.stdout) == {"dev": "v2", "prod": "v1", "eu": "v1"}
    assert runner.invoke(cli.app, ["rollback", "--topic", TOPIC, "--label", "eu"]).exit_code == 0
    assert labels_of(prompts) == {"eu": "v3"}
    dev = runner.invoke(cli.app, ["promote", "--topic", TOPIC, "--version", "v3", "--label", "dev"])
    assert dev.exit_code == 2 and "label 'dev' is not moved by promote" in dev.output
    deleted = runner.invoke(cli.app, ["label", "delete", "--topic", TOPIC, "--label", "eu"])
    assert deleted.exit_code == 0 and json.loads(deleted.stdout)["action"] == "delete"
    assert labels_of(prompts) is None
    assert [(e["action"], e["label"]) for e in read_audit(prompts)] == [
        ("promote", "eu"),
        ("promote", "eu"),
        ("rollback", "eu"),
        ("delete", "eu"),
    ]


def manifest(out):
    return json.loads((out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())


def test_a_run_pinned_to_a_label_publishes_its_version(stub, registry, raw_zone, tmp_path, capsys):
    prompts = registry
    set_label(meta_path(prompts), "canary", "v3")
    set_label(meta_path(prompts), "eu", "v3")
    out = tmp_path / "out"
    args = {"raw_root": str(raw_zone), "output_root": str(out), "ds": DS, "topics": [TOPIC], "row_limit": 4}
    result = run_pipeline(**args, prompt_labels={TOPIC: "canary"})
    assert [(p["prompt_version"], p["prompt_label"]) for p in result.published] == [("v3", "canary")]
    m = manifest(out)
    assert m["prompt"]["version"] == "v3" and m["prompt"]["label"] == "canary"
    assert m["prompt"]["template_sha256"] == load_topic(TOPIC, prompts, version="v3").prompt.template_sha256
    users = [r["messages"][-1]["content"] for r in stub.requests]
    assert users and all(u.rstrip().endswith("Answer (v3):") for u in users)  # v3's wording

    # The label is not part of the publication's identity: another label at v3 is the same publication.
    stub.reset()
    again = run_pipeline(**args, prompt_labels={TOPIC: "eu"})
    assert again.published == [] and again.skipped == {TOPIC: "skipped_published"} and stub.calls == 0
    prod = run_pipeline(**args)  # prod (v1) is another publication of the partition
    assert [(p["prompt_version"], p["prompt_label"]) for p in prod.published] == [("v1", "prod")]

    stub.reset()
    for bad, needle in (
        ({TOPIC: "nope"}, f"prompt_labels: topic '{TOPIC}' has no label 'nope'; known labels: prod, canary, eu"),
        ({TOPIC: "dev"}, "(dev is not gated: promote the version to a named label)"),
        ({"no_such_topic": "canary"}, "prompt_labels: unknown topic 'no_such_topic' (known topics: company_matching"),
    ):
        with pytest.raises(ConfigError) as exc:
            run_pipeline(**args, prompt_labels=bad)
        assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert stub.calls == 0

    capsys.readouterr()
    base = ["run", "--input", str(raw_zone), "--output", str(out), "--ds", DS, "--topics", TOPIC]
    with pytest.raises(SystemExit) as code:
        cli.main([*base, "--label", f"{TOPIC}=nope"])
    err = capsys.readouterr().err.splitlines()
    assert code.value.code == 2 and len(err) == 1 and "prompt_labels" in err[0] and "known labels: prod" in err[0]
    with pytest.raises(SystemExit) as code:
        cli.main([*base, "--label", TOPIC])
    assert code.value.code == 2 and "must be topic=label" in capsys.readouterr().err
    stub.reset()
    with pytest.raises(SystemExit) as code:
        cli.main([*base, "--label", f"{TOPIC}=canary", "--row-limit", "4"])
    assert code.value.code == 0
    assert manifest(out)["prompt"]["label"] == "canary" and manifest(out)["prompt"]["version"] == "v3"
