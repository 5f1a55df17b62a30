"""No PII leaves a task: seeded values are grepped in logs, task results (XCom), exceptions, quarantine and output.

The stages run in-process through the task functions (as the DAG calls them), with a stub LLM that
echoes and invents personal data, plus what leaves for a remote provider under each input_pii policy.
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from pipeline_hub import stages
from pipeline_hub.config import Settings
from pipeline_hub.pii.pseudonym import load_key, pseudonymize
from pipeline_hub.stages import prompt as prompting

from conftest import DS
from support.stub_llm import schema_of

SEEDED = {
    "name": "Quentin Zarkowsky",
    "email": "quentin.zarkowsky@zarkowsky-example.net",
    "phone": "+44 20 7946 0321",
    "iban": "DE89 3704 0044 0532 0130 00",
    "card": "4111 1111 1111 1111",
}
SIGNATURE = f"Best regards,\n{SEEDED['name']}\nVP Finance\nAcme Widgets\n{SEEDED['email']}\n{SEEDED['phone']}\n"
SUMMARY = (
    f"A chatbot answers refund questions; contact {SEEDED['name']} ({SEEDED['email']}, {SEEDED['phone']}). "
    f"Refunds go to IBAN {SEEDED['iban']} or card {SEEDED['card']}."
)
PSEUDONYM = re.compile(r"psn_[0-9a-f]{16}")


def leaky_model(body: dict) -> str | dict | None:
    """A model that echoes the person it reads, invents contact data in free text, or answers broken JSON."""
    text = body["messages"][-1]["content"]
    props = schema_of(body).get("properties", {})
    if any("INVALID-MARKER" in m["content"] for m in body["messages"][1:]):  # the repair call too
        return f'{{"use_cases": "broken answer about {SEEDED["name"]}, {SEEDED["email"]}'
    if SEEDED["name"] not in text:
        return None
    if "contacts" in props:
        return {
            "contacts": [
                {
                    "name": SEEDED["name"],
                    "title": f"VP Finance (assistant to {SEEDED['name']})",
                    "organisation": "Acme Widgets",
                    "email": SEEDED["email"],
                    "phone": SEEDED["phone"],
                }
            ]
        }
    if "use_cases" in props:
        return {
            "use_cases": [
                {
                    "name": f"Refund bot by {SEEDED['name']}",
                    "summary": f"Write to {SEEDED['email']} or call {SEEDED['phone']}; IBAN {SEEDED['iban']}.",
                    "techniques": ["natural language processing", f"card {SEEDED['card']}"],
                }
            ]
        }
    return None


def seed(raw_zone):
    emails = raw_zone / "emails" / DS / "seeded.jsonl"
    emails.write_text(
        json.dumps({"id": "seeded-1", "text": f"Hi team, invoices attached.\n\n{SIGNATURE}"})
        + "\n"
        + f"{{not json {SEEDED['name']} {SEEDED['email']}\n"
    )
    cases = raw_zone / "ai_use_cases" / DS / "seeded.jsonl"
    cases.write_text(
        "\n".join(
            [
                json.dumps({"id": "seeded-uc", "agency": "Refund Office", "summary": SUMMARY}),
                json.dumps({"id": "seeded-bad", "agency": "Refund Office", "summary": f"INVALID-MARKER {SUMMARY}"}),
                json.dumps({"id": "seeded-missing", "agency": f"{SEEDED['name']} {SEEDED['email']}"}),
            ]
        )
        + "\n"
    )
    with (raw_zone / "companies" / DS / "companies.csv").open("a") as fh:
        fh.write(f'LEAK,Leaky Corp,"ask {SEEDED["email"]}"\n')  # a keep_as_is field: its record is held back


def run_stages(raw_zone, out, caplog):
    """The DAG's stages in order; returns every task result (what XCom would carry) and exception text."""
    settings = Settings.from_env(
        raw_root=str(raw_zone),
        sanitized_root=str(out),
        staging_root=str(out.parent / "staging"),
        llm_conn_id="llm_default",
    )
    results, errors = [], []
    with caplog.at_level(logging.DEBUG):
        found = stages.run_discover(settings, DS, None, None)
        planned = stages.run_hash(settings, found, run_id="leak_test", row_limit=None, llm_conn_id="llm_default")
        items = stages.run_chunk(planned["plan_uri"])
        results += [found, planned, items]
        results += [stages.run_prompt(item) for item in items]
        for topic in planned["pending"]:
            results.append(stages.run_scrub(planned["plan_uri"], topic))
            results.append(stages.run_validate(planned["plan_uri"], topic))
            try:
                results.append(stages.run_publish(planned["plan_uri"], topic))
            except stages.QualityGateFailed as exc:
                errors.append(str(exc))
    return results, errors


def test_seeded_pii_never_leaves_a_task(stub, raw_zone, tmp_path, caplog):
    seed(raw_zone)
    stub.responder = leaky_model
    out = tmp_path / "sanitized"
    results, errors = run_stages(raw_zone, out, caplog)
    assert errors == []  # the leaky kept field holds back its record, not its topic
    import pyarrow.parquet as pq

    held = pq.read_table(out / "quarantine" / "industry_classification" / f"ds={DS}" / "part-00000.parquet")
    assert [(r["record_id"], r["reason"], r["detail"]) for r in held.to_pylist()] == [
        ("LEAK", "residual_pii", "field 'headquarters' holds EMAIL_ADDRESS after scrubbing")
    ]

    published = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    surfaces = {
        "logs": caplog.text,
        "task results": json.dumps(results, default=str),
        "exceptions": "\n".join(errors),
        "sanitized zone": published.decode("latin-1"),
    }
    for where, text in surfaces.items():
        for kind, value in SEEDED.items():
            assert value not in text, f"seeded {kind} leaked into {where}"
            assert value.replace(" ", "") not in text.replace(" ", ""), f"seeded {kind} (spaces dropped) in {where}"

    # The counts the manifest gets (never values): the model's inventions were found in every leaf.
    manifest = json.loads((out / "sanitized_data" / "use_case_extraction" / f"ds={DS}" / "_manifest.json").read_text())
    found = manifest["pii_found"]
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "CREDIT_CARD", "PERSON"} <= set(found)
    scrub = next(
        r for r in results if isinstance(r, dict) and r.get("topic") == "use_case_extraction" and "pii_found" in r
    )
    assert scrub["pii_found_quarantine"]  # the broken answer kept in quarantine was scrubbed too
    key = load_key()
    contacts = out / "sanitized_data" / "contact_extraction" / f"ds={DS}" / "part-00000.parquet"
    assert pseudonymize(SEEDED["email"], "EMAIL_ADDRESS", key).encode() in contacts.read_bytes()


@pytest.mark.parametrize("policy", ["pseudonymize", "redact"])
def test_what_leaves_for_a_remote_provider_follows_input_pii(stub, raw_zone, tmp_path, caplog, monkeypatch, policy):
    """A provider outside 127.0.0.1 gets pseudonyms (contact_extraction) or placeholders (the default)."""
    seed(raw_zone)
    monkeypatch.setattr(prompting, "route_providers", lambda hook, routes: ["https://api.example.com/v1"])
    topic = "contact_extraction" if policy == "pseudonymize" else "use_case_extraction"

    def model(body):  # extracts what it can see: pseudonyms, in reading order
        tokens = PSEUDONYM.findall(body["messages"][-1]["content"])
        if "contacts" in schema_of(body).get("properties", {}) and len(tokens) >= 3:
            return {
                "contacts": [
                    {"name": tokens[0], "title": None, "organisation": None, "email": tokens[1], "phone": tokens[2]}
                ]
            }
        return None

    stub.responder = model
    out = tmp_path / "sanitized"
    settings = Settings.from_env(
        raw_root=str(raw_zone),
        sanitized_root=str(out),
        staging_root=str(tmp_path / "staging"),
        llm_conn_id="llm_default",
    )
    with caplog.at_level(logging.INFO):
        found = stages.run_discover(settings, DS, [topic], None)
        planned = stages.run_hash(settings, found, run_id="remote", row_limit=None, llm_conn_id="llm_default")
        for item in stages.run_chunk(planned["plan_uri"]):
            stages.run_prompt(item)
        stages.run_scrub(planned["plan_uri"], topic)
        stages.run_validate(planned["plan_uri"], topic)
        stages.run_publish(planned["plan_uri"], topic)
    sent = json.dumps(stub.requests)
    for kind, value in SEEDED.items():
        assert value not in sent, f"seeded {kind} was sent to the remote provider"
    assert f"input_pii={policy}" in caplog.text
    if policy == "redact":
        assert "<PERSON>" in sent and "<EMAIL_ADDRESS>" in sent and "<IBAN_CODE>" in sent
        return
    # The answer's contact is the pseudonym the model was sent, i.e. the one the scrub stage publishes.
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "sanitized_data" / topic / f"ds={DS}" / "part-00000.parquet").to_pylist()
    contact = next(r for r in rows if r["record_id"] == "seeded-1")["contacts"][0]
    key = load_key()
    assert contact["name"] == pseudonymize(SEEDED["name"], "PERSON", key)
    assert contact["email"] == pseudonymize(SEEDED["email"], "EMAIL_ADDRESS", key)
    assert contact["phone"] == pseudonymize(SEEDED["phone"], "PHONE_NUMBER", key)
