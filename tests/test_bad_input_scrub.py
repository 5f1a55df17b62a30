"""Bad input at the scrub stage, through the in-process run against the stub LLM over HTTP.

Residual PII quarantines its record (not the topic) naming the field; ids holding PII are published
as keyed pseudonyms and erasure finds them by either form; our own words in quarantine details are
never rewritten by the analyzer while outside values in them are; answers are cast to their
published types (or quarantined as ``invalid_output``) and kept fields that are not strings are
published as JSON text. Every case checks conservation and that no raw value reaches an output file,
a log line or the run's result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest

from pipeline_hub import reasons
from pipeline_hub.governance.erasure import erase_subject
from pipeline_hub.pii.pseudonym import load_key, pseudonymize
from pipeline_hub.stages import chunk as chunking
from pipeline_hub.stages.runner import run_pipeline

from bad_input_support import assert_conservation, assert_nothing_raw, published_rows, quarantine_rows
from conftest import DS, REPO
from support.stub_llm import schema_of

TOPIC = "industry_classification"  # keep_fields name, headquarters (both keep_as_is), source companies


def run(raw_zone, out, caplog, topics=(TOPIC,)):
    with caplog.at_level(logging.DEBUG):
        return run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=list(topics))


def check(out, raw_values, caplog, result):
    """Conservation in every manifest, and no raw value in outputs, logs or the run's result."""
    assert_conservation(out)
    assert_nothing_raw(out, raw_values, caplog.text, dataclasses.asdict(result))


def add_companies(raw_zone, lines: str) -> None:
    with (raw_zone / "companies" / DS / "companies.csv").open("a") as fh:
        fh.write(lines)


@pytest.mark.parametrize(
    ("value", "entity"),
    [
        ("(415)555-0132", "PHONE_NUMBER"),
        ("415.555.0132x4471", "PHONE_NUMBER"),  # the analyzer misses these two: the residual pattern does not
        ("001-415-555-0132x9221", "PHONE_NUMBER"),
        ("ceo@leaky-example.com", "EMAIL_ADDRESS"),
    ],
)
def test_keep_as_is_field_with_pii_quarantines_only_its_record(stub, raw_zone, tmp_path, caplog, value, entity):
    add_companies(raw_zone, f'LEAK-1,Leaky Corp,"reach {value} for the office"\n')
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog)
    assert not result.failed and [p["topic"] for p in result.published] == [TOPIC]  # topic not withheld
    (held,) = quarantine_rows(out, TOPIC, DS)
    assert held["record_id"] == "LEAK-1" and held["reason"] == reasons.RESIDUAL_PII
    assert held["detail"] == f"field 'headquarters' holds {entity} after scrubbing"
    assert held["source_uri"].endswith("companies.csv") and held["position"] == 24
    rows = published_rows(out, TOPIC, DS)
    (m,) = assert_conservation(out)
    assert len(rows) == m["counts"]["in"] - 1 == 22 and "LEAK-1" not in {r["record_id"] for r in rows}
    assert m["quality"]["success"] and m["counts"]["quarantined"] == {reasons.RESIDUAL_PII: 1}
    check(out, [value], caplog, result)


def test_residual_email_in_an_answer_leaf_quarantines_its_record(stub, raw_zone, tmp_path, caplog):
    """An internal address (``.internal`` is no public suffix, so the analyzer skips it) stays after
    scrubbing: the residual pattern catches it in the answer's nested leaf."""
    leak = "helpdesk@permits-office.internal"
    case = {"id": "UC-RES-1", "agency": "Permit Office", "summary": "A chatbot answers permit questions. MARK-77"}
    with (raw_zone / "ai_use_cases" / DS / "use_cases.jsonl").open("a") as fh:
        fh.write(json.dumps(case) + "\n")

    def model(body):
        if "MARK-77" in body["messages"][-1]["content"] and "use_cases" in schema_of(body)["properties"]:
            summary = f"Residents write to {leak} for a permit."
            return {"use_cases": [{"name": "Permit bot", "summary": summary, "techniques": ["chatbot"]}]}
        return None

    stub.responder = model
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog, topics=["use_case_extraction"])
    assert not result.failed
    (held,) = quarantine_rows(out, "use_case_extraction", DS)
    assert (held["record_id"], held["reason"]) == ("UC-RES-1", reasons.RESIDUAL_PII)
    assert held["detail"] == "field 'use_cases[].summary' holds EMAIL_ADDRESS after scrubbing"
    assert held["source_uri"].endswith("use_cases.jsonl") and held["position"] > 0
    rows = published_rows(out, "use_case_extraction", DS)
    assert rows and "UC-RES-1" not in {r["record_id"] for r in rows}
    check(out, [leak], caplog, result)


@pytest.mark.parametrize(
    ("raw_id", "kind", "erase_by"),
    [
        ("ceo@leaky-example.com", "EMAIL_ADDRESS", "raw"),
        ("Ceo@Leaky-Example.com", "EMAIL_ADDRESS", "pseudonym"),
        ("+1 415 555 0132", "PHONE_NUMBER", "raw"),
        ("(415)555-0132", "PHONE_NUMBER", "raw"),
    ],
)
def test_id_holding_pii_is_published_as_its_pseudonym_and_erased_by_either_form(
    stub, raw_zone, tmp_path, caplog, raw_id, kind, erase_by
):
    other = "jane.roe@example.org"  # an id holding PII on a quarantined record (no name: missing_field)
    add_companies(raw_zone, f'{raw_id},Id Corp,"Austin, Texas"\n{other},,"Austin, Texas"\n')
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog)
    assert not result.failed
    key = load_key()
    pseudonym = pseudonymize(raw_id, kind, key)
    rows = published_rows(out, TOPIC, DS)
    (row,) = [r for r in rows if r["name"] == "Id Corp"]
    assert row["record_id"] == pseudonym
    assert {r["record_id"] for r in rows} >= {"NWS", "TKO", "SNPS"}  # ordinary ids (and a ticker NER misreads) stay
    (held,) = quarantine_rows(out, TOPIC, DS)
    assert held["reason"] == "missing_field" and held["record_id"] == pseudonymize(other, "EMAIL_ADDRESS", key)
    check(out, [raw_id, raw_id.lower(), other], caplog, result)

    erased = erase_subject(str(out), [raw_id if erase_by == "raw" else pseudonym], cache=False)
    assert erased.rows_removed == 1 and pseudonym in erased.pseudonyms
    assert pseudonym not in {r["record_id"] for r in published_rows(out, TOPIC, DS)}
    assert len(published_rows(out, TOPIC, DS)) == len(rows) - 1
    assert_nothing_raw(out, [raw_id, raw_id.lower(), other])


def test_our_words_in_details_survive_while_outside_values_are_scrubbed(stub, raw_zone, tmp_path, caplog, monkeypatch):
    """A reader detail (as readers write it with ``reasons.detail``): "invalid JSON" is ours and stays
    (analyzed alone, the NER model reads it as a person), the object name holding an e-mail is scrubbed."""
    obj = "s3://partner-exports/alice.smith@example.com/cases.jsonl"
    real = chunking.iter_records

    def marked(name, data, *args):
        for item in real(name, data, *args):
            if isinstance(item, chunking.RecordError):
                detail = reasons.detail(
                    "{obj}: line {line}: invalid JSON ({msg})", obj=obj, line=item.position, msg="Expecting value"
                )
                item = dataclasses.replace(item, detail=detail)
            yield item

    monkeypatch.setattr(chunking, "iter_records", marked)
    (raw_zone / "ai_use_cases" / DS / "more.jsonl").write_text("{not json\n")
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog, topics=["use_case_extraction"])
    assert not result.failed
    (held,) = quarantine_rows(out, "use_case_extraction", DS)
    assert held["detail"].endswith("/cases.jsonl: line 1: invalid JSON (Expecting value)")
    assert held["detail"].startswith("s3://partner-exports/")
    assert reasons.OPEN not in held["detail"] and reasons.CLOSE not in held["detail"]
    check(out, ["alice.smith@example.com", reasons.OPEN, reasons.CLOSE], caplog, result)


@pytest.fixture
def typed_topic(tmp_path, monkeypatch):
    """industry_classification with two more answer fields: ``employees`` (integer) and ``tags`` (an
    array without ``items``: published as a list of strings)."""
    include = tmp_path / "include"
    shutil.copytree(REPO / "include", include)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    path = include / "prompts" / TOPIC / "schemas" / "output_v1.json"
    schema = json.loads(path.read_text())
    schema["properties"].update({"employees": {"type": ["integer", "null"]}, "tags": {"type": "array"}})
    path.write_text(json.dumps(schema))
    return include


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("employees", 1e30, "answer field 'employees' cannot be cast to its output type int64"),  # valid JSON Schema
        ("tags", ["call 415-555-0132", 7], "answer field 'tags[]' cannot be cast to its output type string"),
    ],
)
def test_answer_of_a_wrong_type_is_quarantined_naming_the_field(
    stub, raw_zone, tmp_path, caplog, typed_topic, field, value, detail
):
    def model(body):
        answer = {"sector": "Energy", "confidence": 0.5, "employees": 12.0, "tags": ["energy"]}  # 12.0 → 12
        if any("Devon Energy" in m["content"] for m in body["messages"][1:]):  # the repair call too
            answer[field] = value
        return answer

    stub.responder = model
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog)
    assert not result.failed
    (held,) = quarantine_rows(out, TOPIC, DS)
    assert held["reason"] == reasons.INVALID_OUTPUT and held["detail"] == detail
    rows = published_rows(out, TOPIC, DS)
    assert len(rows) == 21 and all(r["employees"] == 12 and r["tags"] == ["energy"] for r in rows)
    assert all(type(r["employees"]) is int for r in rows)
    check(out, ["415-555-0132"], caplog, result)  # the kept raw answer is scrubbed too


def test_kept_fields_that_are_not_strings_are_published_as_json_text(stub, raw_zone, tmp_path, caplog):
    records = [
        {"id": "DICT-1", "name": "Nested Corp", "headquarters": {"city": "Austin", "state": "Texas"}},
        {"id": "LIST-1", "name": "Listed Corp", "headquarters": ["Austin", "Texas"]},
        {"id": "NUM-1", "name": "Numbered Corp", "headquarters": 42},
        {"id": "BOOL-1", "name": "True Corp", "headquarters": True},
    ]
    (raw_zone / "companies" / DS / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    result = run(raw_zone, out, caplog)
    assert not result.failed
    by_id = {r["record_id"]: r["headquarters"] for r in published_rows(out, TOPIC, DS)}
    assert by_id["DICT-1"] == '{"city": "Austin", "state": "Texas"}' and json.loads(by_id["DICT-1"])["city"] == "Austin"
    assert (by_id["LIST-1"], by_id["NUM-1"], by_id["BOOL-1"]) == ('["Austin", "Texas"]', "42", "true")
    assert not any(v.startswith(("{'", "['")) or v == "True" for v in by_id.values())
    check(out, ["{'city'", "['Austin'"], caplog, result)
