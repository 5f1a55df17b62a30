"""Analysts' feedback (`pipeline-hub feedback add|list`, `score --with-feedback`) on a real published partition:
the sample's companies and patent applicants run in-process against the stub LLM over HTTP; feedback is
checked against the published row and the output schema, its note is scrubbed, and an erasure removes it."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from pipeline_hub.governance import erasure
from pipeline_hub.pii.pseudonym import load_key, pseudonymize
from pipeline_hub.pii.scrubber import Scrubber
from pipeline_hub.prompts import feedback
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO, llm_conn
from lifecycle_helpers import hub

TOPICS = ["industry_classification", "company_matching"]
EMAIL = "jane.roe@example.com"
ROBERT_RECORD = "3400399"  # company_matching: name "BOSCH Robert …", Presidio pseudonymises "Robert"


@pytest.fixture(scope="module")
def published(tmp_path_factory, stub_server):
    """industry_classification and company_matching published from the bundled sample (stub answers)."""
    tmp = tmp_path_factory.mktemp("feedback")
    for source in ("companies", "applicants"):
        shutil.copytree(
            REPO / "include" / "sample_data" / source,
            tmp / "raw" / source / DS,
            ignore=shutil.ignore_patterns("*.md", "LICENSE*"),
        )
    with pytest.MonkeyPatch.context() as mp:
        stub_server.reset()
        mp.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub_server.base_url))
        mp.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{tmp / 'cache'}")
        result = run_pipeline(raw_root=str(tmp / "raw"), output_root=str(tmp / "out"), ds=DS, topics=TOPICS)
    assert not result.failed and len(result.published) == 2
    return tmp / "out"


@pytest.fixture
def out(published, tmp_path, monkeypatch):
    """A private copy of the published sanitized root; the feedback author is PIPELINE_HUB_ACTOR."""
    monkeypatch.setenv("PIPELINE_HUB_ACTOR", "analyst-ann")
    shutil.copytree(published, tmp_path / "out")
    return tmp_path / "out"


def rows(out, topic="industry_classification") -> list[dict]:
    return pq.read_table(out / "sanitized_data" / topic / f"ds={DS}" / "part-00000.parquet").to_pylist()


def other_sector(sector: str) -> str:
    return "Energy" if sector != "Energy" else "Utilities"


def test_add_stores_one_row_with_lineage_a_scrubbed_note_and_list_shows_it(out, capsys):
    row = rows(out)[0]
    manifest = json.loads(
        (out / "sanitized_data" / "industry_classification" / f"ds={DS}" / "_manifest.json").read_text()
    )
    right = other_sector(row["sector"])
    code, stdout, stderr = hub(
        capsys,
        "feedback", "add", "--topic", "industry_classification", "--record-id", row["record_id"],
        "--label", right.lower(), "--note", f"wrong sector, ask {EMAIL} (Jane Roe)", "--output", str(out),
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    shown = json.loads(stdout)
    files = list((out / "feedback" / "industry_classification").glob("*.parquet"))
    assert len(files) == 1 and shown["uri"] == f"file://{files[0]}"
    stored = pq.read_table(files[0]).to_pylist()
    assert len(stored) == 1
    fb = stored[0]
    assert fb["record_id"] == row["record_id"] and fb["topic"] == "industry_classification" and fb["ds"] == DS
    assert fb["label"] == right  # spelt as in the schema's enum
    assert fb["published_label"] == row["sector"]
    assert (fb["prompt_version"], fb["model"], fb["batch_hash"]) == ("v1", "stub-model", manifest["batch_hash"])
    assert fb["author"] == "analyst-ann" and fb["created_at"].tzinfo is not None
    # Nothing raw is stored: the e-mail in the note became its keyed pseudonym (so erasure finds it).
    assert EMAIL not in fb["note"] and pseudonymize(EMAIL, "EMAIL_ADDRESS", load_key()) in fb["note"]
    assert fb["note"].startswith("wrong sector, ask psn_")
    assert EMAIL not in files[0].read_bytes().decode("latin-1")

    code, stdout, _ = hub(capsys, "feedback", "list", "--topic", "industry_classification", "--output", str(out))
    listed = json.loads(stdout)
    assert code == 0 and [r["record_id"] for r in listed["rows"]] == [row["record_id"]]
    assert listed["rows"][0]["note"] == fb["note"] and listed["by_version"]["v1"]["corrections"] == 1
    code, stdout, _ = hub(
        capsys, "feedback", "list", "--topic", "industry_classification", "--ds", "2025-01-01", "--output", str(out)
    )
    assert code == 0 and json.loads(stdout)["rows"] == []


def test_unknown_record_is_one_line_exit_2_and_writes_nothing(out, capsys):
    code, stdout, stderr = hub(
        capsys,
        "feedback", "add", "--topic", "industry_classification", "--record-id", "no-such-id-42",
        "--label", "Energy", "--output", str(out),
    )  # fmt: skip
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("error: topic industry_classification: no published")
    assert "no-such-id-42" not in stderr  # the id is not echoed
    assert not (out / "feedback").exists()
    # A partition that does not hold the record is the same error.
    with pytest.raises(feedback.FeedbackError, match="ds=2025-01-01"):
        feedback.add_feedback(
            str(out), "industry_classification", rows(out)[0]["record_id"], "Energy", scrub=str, ds="2025-01-01"
        )


def test_invalid_label_is_one_line_exit_2_naming_the_allowed_values(out, capsys):
    code, _, stderr = hub(
        capsys,
        "feedback", "add", "--topic", "industry_classification", "--record-id", rows(out)[0]["record_id"],
        "--label", "Aerospace", "--output", str(out),
    )  # fmt: skip
    assert code == 2 and len(stderr.splitlines()) == 1
    assert "not a valid 'sector'" in stderr and "Information Technology" in stderr
    assert not (out / "feedback").exists()


def test_matching_labels_follow_the_schema_and_extraction_topics_are_refused(out):
    record = rows(out, "company_matching")[0]["record_id"]
    row = feedback.add_feedback(str(out), "company_matching", record, "none", scrub=str)
    assert row["label"] is None  # "no match": JSON null, allowed by match_id's schema
    topic = feedback.load_topic("contact_extraction")
    with pytest.raises(feedback.FeedbackError, match="no single label field"):
        feedback.check_label(topic, "x")


def test_agreement_per_version_and_score_with_feedback(out, capsys, stub, tmp_path):
    published = rows(out)[:3]
    for r in published[:2]:  # two corrections
        feedback.add_feedback(str(out), "industry_classification", r["record_id"], other_sector(r["sector"]), scrub=str)
    feedback.add_feedback(
        str(out), "industry_classification", published[2]["record_id"], published[2]["sector"], scrub=str
    )
    expected = {
        "v1": {"feedback": 3, "agreed": 1, "corrections": 2, "agreement_rate": 0.3333, "models": ["stub-model"]}
    }
    assert feedback.agreement(feedback.read_feedback(str(out), "industry_classification")) == expected

    code, stdout, stderr = hub(
        capsys,
        "score", "--topic", "industry_classification", "--with-feedback", "--feedback-root", str(out),
        "--artifacts", str(tmp_path / "art"), "--json",
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    assert json.loads(stdout)["feedback"] == expected
    report = (tmp_path / "art" / "reports" / "industry_classification" / "v1" / "score.md").read_text()
    assert "## Analysts' feedback" in report and "| v1 | 3 | 1 | 2 | 0.333 | stub-model |" in report
    _, stdout, _ = hub(capsys, "score", "--topic", "industry_classification", "--artifacts", str(tmp_path), "--json")
    assert "feedback" not in json.loads(stdout)  # only when asked


def test_erasure_removes_the_feedback_of_the_subject_and_of_its_erased_records(out):
    industry = rows(out)
    noted, plain = industry[0]["record_id"], industry[1]["record_id"]
    assert ROBERT_RECORD in {r["record_id"] for r in rows(out, "company_matching")}
    with Scrubber() as s:  # the pipeline's scrubber, as `feedback add` uses it
        feedback.add_feedback(
            str(out), "industry_classification", noted, "Energy", scrub=s.scrub_text, note=f"per {EMAIL}"
        )
        feedback.add_feedback(str(out), "industry_classification", plain, "Energy", scrub=s.scrub_text, note="typo")
        feedback.add_feedback(str(out), "company_matching", ROBERT_RECORD, "null", scrub=s.scrub_text, note="no match")

    result = erasure.erase_subject(str(out), [EMAIL], cache=False)
    assert [(o.zone, o.topic, o.rows_removed) for o in result.objects] == [("feedback", "industry_classification", 1)]
    assert [r["record_id"] for r in feedback.read_feedback(str(out), "industry_classification")] == [plain]
    audit = json.loads(next((out / "_audit" / "erasure").glob("*.jsonl")).read_text())
    assert audit["objects_rewritten"][0]["zone"] == "feedback" and EMAIL not in json.dumps(audit)

    # The feedback names nobody, but its record held the subject: it goes with the record.
    result = erasure.erase_subject(str(out), ["ROBERT"], cache=False)
    assert {(o.zone, o.topic, o.rows_removed) for o in result.objects} == {
        ("sanitized_data", "company_matching", 1),
        ("feedback", "company_matching", 1),
    }
    assert feedback.read_feedback(str(out), "company_matching") == []
    assert [r["record_id"] for r in feedback.read_feedback(str(out), "industry_classification")] == [plain]


def test_a_note_naming_an_erased_subject_and_a_bad_ds_are_refused(out, capsys):
    record = rows(out)[0]["record_id"]
    erasure.erase_subject(str(out), [EMAIL], cache=False)
    add = ["feedback", "add", "--topic", "industry_classification", "--record-id", record, "--label", "Energy"]
    code, _, stderr = hub(capsys, *add, "--note", f"see {EMAIL}", "--output", str(out))
    assert code == 2 and "erased earlier" in stderr and EMAIL not in stderr and len(stderr.splitlines()) == 1
    code, _, stderr = hub(capsys, *add, "--ds", "../2025-01-15", "--output", str(out))
    assert code == 2 and stderr.startswith("error: --ds must be a date")
    assert not (out / "feedback").exists()
