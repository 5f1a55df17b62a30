"""Presidio scrubbing offline: configuration validated, every answer leaf scanned, keyed pseudonyms, counts only."""

from __future__ import annotations

import logging
import shutil

import pytest

from pipeline_hub.pii import engine as pii_engine
from pipeline_hub.pii.config import PiiConfigError, ScrubConfig, TopicPii, input_policy, is_loopback
from pipeline_hub.pii.engine import Detection, PiiAnalyzer, resolve_overlaps
from pipeline_hub.pii.pseudonym import is_pseudonym, pseudonymize
from pipeline_hub.pii.scrubber import Scrubber
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.stages.scrub import scrub_topic

from conftest import REPO

KEY = bytes.fromhex("11" * 32)
PII_DIR = REPO / "include" / "pii"


@pytest.fixture(scope="module")
def scrubber():
    with Scrubber(key=KEY) as s:
        yield s


def test_free_text_pii_is_replaced_and_counted(scrubber):
    rows = [{"summary": "Contact Maria Gonzalez at maria.gonzalez@agency-example.gov or 212-555-0147 for access."}]
    out, counts = scrubber.scrub_rows(rows, ["summary"], [])
    text = out[0]["summary"]
    assert "maria.gonzalez@agency-example.gov" not in text and "212-555-0147" not in text
    assert "Maria Gonzalez" not in text
    assert counts["EMAIL_ADDRESS"] == 1 and counts["PHONE_NUMBER"] >= 1
    assert rows[0]["summary"].startswith("Contact Maria")  # input untouched


def test_contact_fields_become_joinable_pseudonyms(scrubber):
    rows = [
        {
            "contacts": [
                {
                    "name": "Vince J Kaminski",
                    "email": "Vince.Kaminski@enron.com",
                    "phone": "(713) 853-3848",
                    "title": "Managing Director",
                    "organisation": "Enron",
                }
            ]
        },
        {
            "contacts": [
                {
                    "name": "vince j  kaminski",
                    "email": "vince.kaminski@enron.com",
                    "phone": None,
                    "title": None,
                    "organisation": None,
                }
            ]
        },
    ]
    out, counts = scrubber.scrub_rows(
        rows, ["contacts[].title"], ["contacts[].name", "contacts[].email", "contacts[].phone"]
    )
    a, b = out[0]["contacts"][0], out[1]["contacts"][0]
    assert a["name"].startswith("psn_") and a["name"] == b["name"] and a["email"] == b["email"]
    assert b["phone"] is None and a["title"] == "Managing Director"
    assert counts["PERSON"] == 2 and counts["EMAIL_ADDRESS"] == 2 and counts["PHONE_NUMBER"] == 1


def test_pseudonyms_in_free_text_match_whole_value_pseudonyms_and_are_not_hashed_twice(scrubber):
    texts, _ = scrubber.scrub_texts(["Regards, Vince Kaminski (vince.kaminski@enron.com)"])
    rows, _ = scrubber.scrub_rows([{"email": "Vince.Kaminski@enron.com"}], [], ["email"])
    assert rows[0]["email"] in texts[0] and is_pseudonym(rows[0]["email"])
    again, _ = scrubber.scrub_rows(rows, [], ["email"])  # e.g. a model answering with the pseudonym it was sent
    assert again[0]["email"] == rows[0]["email"]


def test_every_answer_leaf_is_scanned_and_counted_by_entity(scrubber):
    """PII the model invents anywhere is anonymized; enum values are counted but left; keep_as_is values are
    left unchanged, and a pattern entity in one (an e-mail) marks the row as holding residual PII."""
    pii = TopicPii.parse(
        "t",
        {"keep_fields": ["agency", "note"], "scrub_text": ["note"], "keep_as_is": ["agency"]},
        None,
        "metadata.yaml",
    )
    schema = {
        "properties": {
            "label": {"type": "string", "enum": ["Contact Maria Gonzalez at maria.gonzalez@example.org"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {"tags": {"type": "array"}}}},
            "score": {"type": "number"},
        }
    }
    rows = [
        {
            "record_id": "r1",
            "model": "m",
            "agency": "Office of Maria Gonzalez, maria.gonzalez@example.org",
            "note": "Ask for Maria Gonzalez",
            "label": "Contact Maria Gonzalez at maria.gonzalez@example.org",
            "items": [{"tags": ["nlp", "call +44 20 7946 0958"], "n": 3}],
            "score": 0.5,
        }
    ]
    out, scan = scrubber.scrub_topic_rows(rows, pii, schema)
    row = out[0]
    assert row["items"][0]["tags"][0] == "nlp" and "7946" not in row["items"][0]["tags"][1]
    assert "Maria Gonzalez" not in row["note"]
    assert row["agency"] == rows[0]["agency"] and row["label"] == rows[0]["label"]  # counted, not changed
    assert row["record_id"] == "r1" and row["score"] == 0.5 and row["items"][0]["n"] == 3
    assert scan.left["EMAIL_ADDRESS"] == 1 and scan.found["PHONE_NUMBER"] == 1  # the enum value's
    assert scan.residual == {0: {"agency": ["EMAIL_ADDRESS"]}}  # PERSON in keep_as_is: counted only (NER guess)
    assert scan.left["PERSON"] >= 2
    assert scan.found["EMAIL_ADDRESS"] == 2 and scan.found["PERSON"] >= 3
    assert scan.strings == 5


def test_scrub_topic_summary_holds_counts_only(scrubber):
    topic = load_topic("contact_extraction")
    rows = [
        {
            "record_id": "e1",
            "contacts": [
                {
                    "name": "Quentin Zarkowsky",
                    "title": "VP Finance, ask Mary Poppins",
                    "organisation": "Acme",
                    "email": "q.zarkowsky@example.net",
                    "phone": "+1 415 555 0199",
                }
            ],
        }
    ]
    quarantine = [
        {"record_id": "e2", "reason": "invalid_output", "detail": "x", "raw_answer": "{'name': 'Mary Poppins"}
    ]
    out, q, summary = scrub_topic(topic, rows, quarantine, scrubber)
    assert summary["pii_found"] == {"EMAIL_ADDRESS": 1, "PERSON": 2, "PHONE_NUMBER": 1}
    assert summary["pii_found_quarantine"] == {"PERSON": 1} and summary["rows"] == 1 and summary["quarantined"] == 1
    assert "Zarkowsky" not in str(out) + str(q) + str(summary) and "Poppins" not in str(out) + str(q)
    assert q[0]["reason"] == "invalid_output" and q[0]["record_id"] == "e2"


def test_config_file_of_the_project_is_valid():
    cfg = ScrubConfig.load()
    assert cfg.recognizers_path == (PII_DIR / "recognizers.yaml").resolve()
    assert {"PERSON", "PHONE_NUMBER", "VAT_ID"} <= set(cfg.entities)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("operators:\n  PERSON: {type: hash}\n", "operators.PERSON.type: Presidio's hash salts randomly"),
        ("operators:\n  PERSON: {type: encrypt}\n", "operators.PERSON.type: must be replace, mask, redact or pseudo"),
        ("operators:\n  PERSON: {type: mask, masking_char: '**'}\n", "operators.PERSON.masking_char: must be one"),
        ("operators:\n  PERSON: {type: replace, value: x}\n", "operators.PERSON.value: not a parameter of replace"),
        ("operators:\n  ZIP: {type: redact}\n", "operators.ZIP: 'ZIP' is not in entities"),
        ("score_threshold: 1.5\n", "score_threshold: must be within"),
        ("spacy_exclude: [ner]\n", "spacy_exclude: must be a list"),
        ("recognizers: missing.yaml\n", "recognizers: file"),
        ("colour: blue\n", "unknown keys ['colour']"),
        ("workers: many\n", "workers: must be 'auto'"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, patch, message):
    text = (PII_DIR / "presidio.yaml").read_text()
    key = patch.split(":")[0]
    kept = []
    skipping = False
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and line.startswith((" ", "-")):
            continue
        skipping = False
        kept.append(line)
    bad = tmp_path / "presidio.yaml"
    shutil.copy(PII_DIR / "recognizers.yaml", tmp_path / "recognizers.yaml")
    bad.write_text("\n".join(kept) + "\n" + patch)
    with pytest.raises(PiiConfigError, match="presidio.yaml: " + message.replace("(", r"\(").replace("[", r"\[")):
        ScrubConfig.load(bad)


def test_an_entity_without_recognizer_is_a_config_error(tmp_path):
    text = (PII_DIR / "presidio.yaml").read_text().replace("  - US_EIN\n", "  - US_EIN\n  - UK_NHS\n")
    (tmp_path / "presidio.yaml").write_text(text)
    shutil.copy(PII_DIR / "recognizers.yaml", tmp_path / "recognizers.yaml")
    cfg = ScrubConfig.load(tmp_path / "presidio.yaml")
    with pytest.raises(PiiConfigError, match=r"presidio.yaml: entities \['UK_NHS'\] have no recognizer"):
        pii_engine.build_analyzer(cfg)


def test_topic_policy_requires_a_treatment_per_kept_field():
    with pytest.raises(PiiConfigError, match="meta.yaml: kept field 'hq' must be listed in exactly one"):
        TopicPii.parse("t", {"keep_fields": ["hq"]}, None, "meta.yaml")
    with pytest.raises(PiiConfigError, match=r"meta.yaml: input_pii.remote must be one of"):
        TopicPii.parse("t", {}, {"remote": "encrypt"}, "meta.yaml")
    for name in ("company_matching", "contact_extraction", "industry_classification", "use_case_extraction"):
        TopicPii.from_topic(load_topic(name))  # every shipped topic is valid


def test_input_policy_redacts_for_remote_providers_by_default():
    default = TopicPii.parse("t", {}, None, "m")
    assert input_policy(default, ["http://127.0.0.1:8080/v1"]) == "allow"
    assert input_policy(default, ["http://127.0.0.1:8080/v1", "https://api.openai.com/v1"]) == "redact"
    assert input_policy(default, ["bedrock:us-east-1"]) == "redact"
    assert input_policy(TopicPii.parse("t", {}, "pseudonymize", "m"), ["http://localhost:1"]) == "pseudonymize"
    assert is_loopback("http://[::1]:8000") and is_loopback("http://127.8.0.1") and not is_loopback("https://10.0.0.1")


def test_overlaps_resolve_to_one_detection_per_stretch():
    text = "from 2a02:db8::a5ae or Vince Kaminski (vince@enron.com)"
    ip = Detection("IP_ADDRESS", 5, 19, 0.6)
    phone = Detection("PHONE_NUMBER", 5, 14, 0.4)  # inside the IP address: dropped
    person_in_ip = Detection("PERSON", 10, 19, 0.85)  # NER on half of an IPv6 address: dropped
    email = Detection("EMAIL_ADDRESS", 39, 54, 1.0)
    person = Detection("PERSON", 23, 54, 0.85)  # NER running into the e-mail address: cut before it
    assert resolve_overlaps([phone, ip, email], [person_in_ip, person], text) == [
        ip,
        Detection("PERSON", 23, 37, 0.85),
        email,
    ]
    wide = Detection("CREDIT_CARD", 5, 19, 1.0)
    assert resolve_overlaps([ip, wide], [], text) == [wide]


def test_identical_texts_are_analyzed_once(monkeypatch, scrubber):
    seen = []
    real = pii_engine._analyze_batch
    monkeypatch.setattr(pii_engine, "_analyze_batch", lambda a, c, texts: seen.append(list(texts)) or real(a, c, texts))
    found = scrubber.detect(["Call Jane Roe", "", "Call Jane Roe", "  ", "ok"])
    assert seen == [["Call Jane Roe", "ok"]]
    assert found[0] == found[2] and found[1] == found[3] == found[4] == []


def test_worker_processes_give_the_same_detections_as_in_process(scrubber):
    texts = [f"Ticket {i}: call Maria Gonzalez on +44 20 7946 {i:04d} or mail m{i}@acme.co.uk" for i in range(40)]
    config = ScrubConfig.load()
    config.workers, config.parallel_min_texts, config.batch_size = 2, 10, 8
    with PiiAnalyzer(config) as parallel:
        assert parallel.analyze(texts) == scrubber.detect(texts)
        assert parallel._pool is not None  # the work really went to the pool


def test_presidio_log_records_never_carry_their_arguments(scrubber, caplog):
    assert scrubber.analyzer  # building an engine guards Presidio's loggers
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("presidio-analyzer").error("Failed to validate text %s", "DE89 3704 0044 0532 0130 00")
        logging.getLogger("presidio-analyzer").debug("Context list is: %s", "jane roe")
    assert "<redacted>" in caplog.text and "3704" not in caplog.text and "jane roe" not in caplog.text


def test_operators_per_entity_and_allow_list_apply(scrubber):
    import dataclasses

    config = dataclasses.replace(
        scrubber.config,
        allow_list=["sales@acme-widgets.com"],
        operators={
            "DEFAULT": {"type": "replace"},
            "EMAIL_ADDRESS": {"type": "mask", "masking_char": "#", "chars_to_mask": 5, "from_end": True},
            "PHONE_NUMBER": {"type": "redact"},
            "PERSON": {"type": "replace", "new_value": "[name]"},
        },
    )
    with Scrubber(config, key=KEY) as s:
        (text,), counts = s.scrub_texts(
            ["Maria Gonzalez (maria@acme.io, +44 20 7946 0958) copied sales@acme-widgets.com; IBAN "
             "DE89 3704 0044 0532 0130 00"]
        )  # fmt: skip
    assert text == "[name] (maria@ac#####, ) copied sales@acme-widgets.com; IBAN <IBAN_CODE>"
    assert counts == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "IBAN_CODE": 1}


def test_only_outside_parts_of_a_detail_are_analyzed(scrubber):
    from pipeline_hub import reasons

    marked = reasons.detail("{obj} line {line}: invalid JSON", obj="s3://b/jane.roe@example.org/x.jsonl", line=3)
    rows, counts, _ = scrubber.scrub_quarantine(
        [
            {"record_id": "a", "reason": "unparseable", "detail": marked},
            {"record_id": "b", "reason": "unparseable", "detail": "invalid JSON"},  # no markers: outside text
            {"record_id": "c", "reason": "invalid_output", "detail": None, "raw_answer": "mail ops@x.internal"},
        ]
    )
    assert rows[0]["detail"].endswith("/x.jsonl line 3: invalid JSON") and "jane.roe" not in rows[0]["detail"]
    assert reasons.OPEN not in rows[0]["detail"] and rows[0]["reason"] == "unparseable"
    assert rows[1]["detail"] != "invalid JSON"  # analyzed whole, the NER model reads it as a person
    assert rows[2]["raw_answer"] == "mail <EMAIL_ADDRESS>"  # the residual pattern catches what the analyzer skips
    assert sum(counts.values()) >= 1  # counts only, never values


@pytest.mark.parametrize(
    ("record_id", "kind"),
    [
        ("jane.roe@example.org", "EMAIL_ADDRESS"),
        ("+1 415 555 0132", "PHONE_NUMBER"),
        ("415.555.0132x4471", "PHONE_NUMBER"),  # the residual pattern, where the analyzer finds nothing
        ("Maria Gonzalez", "PERSON"),
        ("SNPS", None),  # a ticker: NER says PERSON, not two letter-only words
        ("X-1", None),
        ("kaminski-v_all_documents_4060", None),
        ("0123456789abcdef0123456789abcdef", None),  # generated: never analyzed
        ("0123456789abcdef:7", None),
        ("psn_0123456789abcdef", None),
    ],
)
def test_record_ids_holding_pii_become_pseudonyms(scrubber, record_id, kind):
    from pipeline_hub.pii.record_ids import needs_analysis, published_ids

    ids = [record_id, f"{record_id}#0123abcd:9"] if needs_analysis(record_id) else []
    mapping, counts = published_ids(scrubber, ids, scrubber.detect(ids))
    if kind is None:
        assert mapping == {}
        return
    pseudonym = pseudonymize(record_id, kind, KEY)
    assert mapping == {record_id: pseudonym, f"{record_id}#0123abcd:9": f"{pseudonym}#0123abcd:9"}
    assert counts == {kind: 2}


def test_ids_whose_pseudonyms_coincide_stay_unique(scrubber):
    from pipeline_hub.pii.record_ids import published_ids

    ids = ["Jane.Roe@example.org", "jane.roe@example.org"]
    mapping, _ = published_ids(scrubber, ids, scrubber.detect(ids))
    assert mapping["jane.roe@example.org"] == mapping["Jane.Roe@example.org"] + "#2"


def test_answers_are_cast_to_published_types_and_kept_fields_become_json_text():
    import pyarrow as pa

    from pipeline_hub.stages.casting import CastError, cast_row, cast_value, json_text

    types = {"n": pa.int64(), "x": pa.float64(), "items": pa.list_(pa.struct([pa.field("t", pa.string())]))}
    row = {"record_id": "r", "hq": {"a": 1}, "n": 2.0, "x": 1, "items": [{"t": "a", "extra": 1}], "undeclared": 1}
    assert cast_row(row, types, ["hq"]) == {"record_id": "r", "hq": '{"a": 1}', "n": 2, "x": 1.0, "items": [{"t": "a"}]}
    assert (json_text([1, "é"]), json_text(True), json_text(None), json_text("s")) == ('[1, "é"]', "true", None, "s")
    for value, arrow, path in [
        (1e30, pa.int64(), "n"),
        (True, pa.int64(), "n"),
        ([{"t": 7}], types["items"], "items[].t"),
    ]:
        with pytest.raises(CastError) as err:
            cast_value(value, arrow, path.split("[")[0] if "[" in path else path)
        assert err.value.path == path
