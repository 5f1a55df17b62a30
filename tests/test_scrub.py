"""Presidio scrubbing offline: free text anonymised, contact fields pseudonymised, config validated."""

from __future__ import annotations

import pytest

from pipeline_hub.scrub import Scrubber, ScrubConfig

KEY = bytes.fromhex("11" * 32)


@pytest.fixture(scope="module")
def scrubber():
    return Scrubber(key=KEY)


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


def test_config_rejects_unknown_operator(tmp_path):
    bad = tmp_path / "presidio.yaml"
    bad.write_text("nlp_engine: {}\noperators:\n  PERSON: {type: hash}\n")
    with pytest.raises(ValueError, match="presidio.yaml: operators.PERSON.type"):
        ScrubConfig.load(bad)
