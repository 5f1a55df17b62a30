"""The labelled PII evaluation set and `pipeline-hub pii-eval`: recall targets per entity (issue 4's done-when)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.pii.engine import Detection
from pipeline_hub.pii.evaluate import RECALL_TARGETS, default_set, load_set, missed_targets, score


@pytest.fixture(scope="module")
def report():
    result = CliRunner().invoke(app, ["pii-eval", "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output[result.output.index("{") :])


def test_recall_meets_the_targets_for_every_entity(report):
    assert report["missed_targets"] == []
    for entity, target in RECALL_TARGETS.items():
        assert report["entities"][entity]["recall"] >= target, entity


def test_precision_is_reported_and_sane(report):
    for entity in RECALL_TARGETS:
        assert report["entities"][entity]["precision"] >= 0.8, entity  # look-alikes in the set keep it honest


def test_the_set_is_large_and_varied_enough():
    records = load_set()
    support = {e: sum(s["entity"] == e for r in records for s in r["spans"]) for e in RECALL_TARGETS}
    assert sum(support.values()) >= 600 and min(support.values()) >= 50, support
    assert sum(1 for r in records if not r["spans"]) >= 30  # sentences without PII, with look-alikes


def test_committed_set_is_what_the_generator_makes():
    spec = importlib.util.spec_from_file_location("make_pii_eval", default_set().with_name("make_pii_eval.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == default_set().read_text(encoding="utf-8")


def test_scoring_counts_overlap_per_entity():
    records = [
        {"text": "Jane Roe, +1 212 555 0147", "spans": [{"entity": "PERSON", "start": 0, "end": 8}]},
        {"text": "nothing", "spans": [{"entity": "EMAIL_ADDRESS", "start": 0, "end": 7}]},
    ]
    detections = [
        [Detection("PERSON", 0, 4, 0.85), Detection("PHONE_NUMBER", 10, 25, 0.4)],  # half of the name: found
        [Detection("PERSON", 0, 7, 0.85)],  # the right place, the wrong entity
    ]
    r = score(records, detections)
    assert r["PERSON"]["recall"] == 1.0 and r["PERSON"]["precision"] == 0.5 and r["PERSON"]["coverage"] == 0.5
    assert r["EMAIL_ADDRESS"]["recall"] == 0.0 and r["EMAIL_ADDRESS"]["coverage"] == 1.0
    assert r["PHONE_NUMBER"]["precision"] == 0.0 and r["PHONE_NUMBER"]["recall"] is None
    assert missed_targets(r) and "EMAIL_ADDRESS recall 0.0 < 0.98" in missed_targets(r)


def test_malformed_set_names_file_and_line(tmp_path):
    bad = tmp_path / "set.jsonl"
    bad.write_text('{"text": "a", "spans": []}\n{"text": "ab", "spans": [{"entity": "X", "start": 1, "end": 5}]}\n')
    with pytest.raises(ValueError, match="set.jsonl line 2: malformed evaluation record"):
        load_set(bad)
