"""The PII benchmark still runs and scores every method: behaviour only, never timing.

``benchmarks/pii.py`` is run by hand (results in ``benchmarks/RESULTS.md``); this runs it on a few texts
with the worker pool forced on, so a change that breaks it shows up in ``make test``.
"""

from __future__ import annotations

import json
import sys

from conftest import REPO


def test_benchmark_reports_speed_and_recall_for_each_method(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("pii", None)
    import pii

    records = pii.make_texts(40, dup_rate=0.25)
    assert len(records) == 40 and len({r["text"] for r in records}) < 40
    monkeypatch.setattr(pii, "make_texts", lambda n, dup_rate=0.0: records)
    assert pii.main(["--texts", "40", "--workers", "2", "--parallel-min", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    methods = [r["method"] for r in out["rows"]]
    assert methods == [
        "scrubber (cold: workers start)",
        "scrubber (warm)",
        "scrubber (1 process)",
        "floor: spacy nlp.pipe (ner only)",
        "spacy nlp.pipe (full pipeline)",
        "plain",
    ]
    for row in out["rows"]:
        assert row["texts_per_s"] > 0 and 0 <= row["recall"]["micro"] <= 1
    assert out["rows"][0]["processes"] == 2
    assert out["rows"][0]["recall"]["micro"] >= out["rows"][-1]["recall"]["micro"]  # never below plain Presidio


def test_floor_runs_ner_only_and_the_ratio_is_reported(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("pii", None)
    import pii

    records = pii.make_texts(30)
    monkeypatch.setattr(pii, "make_texts", lambda n, dup_rate=0.0: records)
    assert pii.main(["--texts", "30", "--repeat", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    scrub, floor = out["rows"]
    assert scrub["method"] == "scrubber (1 process)" and scrub["processes"] == 1
    assert floor["method"] == "floor: spacy nlp.pipe (ner only)" and floor["components"] == ["ner"]
    assert len(scrub["runs_texts_per_s"]) == len(floor["runs_texts_per_s"]) == 2
    assert out["meta"]["ratio_vs_floor"] == round(scrub["texts_per_s"] / floor["texts_per_s"], 3)
    assert scrub["recall"]["per_entity"]["PERSON"] >= floor["recall"]["per_entity"]["PERSON"]
