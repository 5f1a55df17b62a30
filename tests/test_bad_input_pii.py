"""Bad input, PII part (issue 12 item 4): records carrying a phone with extension, a street address, cloud and
API credentials or a signature name run through the in-process pipeline; no raw value reaches any output
file or log line, and every record is published or quarantined.

Topic ``use_case_extraction``: its kept field ``summary`` is ``scrub_text`` (anonymized with the
``presidio.yaml`` operators), so the record text itself is published after scrubbing.
"""

from __future__ import annotations

import json
import logging

import pytest

from pipeline_hub.stages.runner import run_pipeline

from bad_input_support import assert_conservation, assert_nothing_raw, published_rows, quarantine_rows
from conftest import DS

TOPIC = "use_case_extraction"
# (case id, summary text, raw values that must never be published, what the scrubbed text holds instead)
CASES = [
    (
        "phone-extension",
        "Pilot owner can be reached at 415.555.0132x4471 for the model card.",
        ["415.555.0132x4471", "555.0132", "x4471"],
        "psn_",
    ),
    (
        "street-address",
        "Results are mailed to 1600 Mission Street, Suite 400, San Francisco, CA 94103 each quarter.",
        ["1600 Mission Street", "San Francisco, CA 94103"],
        "<STREET_ADDRESS>",
    ),
    (
        "aws-access-key",
        "The scoring job reads S3 with key AKIAQX7Z3LMN4PQR8STU from the shared account.",
        ["AKIAQX7Z3LMN4PQR8STU"],
        "<SECRET>",
    ),
    (
        "github-token",
        "Models are pulled in CI with ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sX1 nightly.",
        ["ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sX1", "R4nd0mT0k3n"],
        "<SECRET>",
    ),
    (
        "openai-key",
        "The summarizer calls the API with sk-proj-Zx81Qw0rTy_Uu7Ii-Oo9Pp2Aa3Ss4Dd5Ff6Gg7Hh8Jj9Kk0Ll1 today.",
        ["sk-proj-Zx81Qw0rTy_Uu7Ii-Oo9Pp2Aa3Ss4Dd5Ff6Gg7Hh8Jj9Kk0Ll1", "Zx81Qw0rTy"],
        "<SECRET>",
    ),
    (
        "signature-name",
        "The triage model flags duplicate tickets for review.\n\nThanks,\nOrlaith\n",
        ["Orlaith"],
        "psn_",
    ),
]


def _raw_batch(raw_zone, case_id: str, summary: str) -> None:
    part = raw_zone / "ai_use_cases" / DS
    for f in part.iterdir():
        f.unlink()
    records = [
        {"id": f"PII-{case_id}", "agency": "Department of Energy", "summary": summary},
        {"id": "PLAIN-1", "agency": "Department of Energy", "summary": "Grid load forecasting with gradient boosting."},
    ]
    (part / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.parametrize(("case_id", "summary", "raw", "replacement"), CASES, ids=[c[0] for c in CASES])
def test_pii_in_scrubbed_text_never_reaches_outputs(
    stub, raw_zone, tmp_path, caplog, case_id, summary, raw, replacement
):
    _raw_batch(raw_zone, case_id, summary)
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert_conservation(out)
    published = published_rows(out, TOPIC, DS)
    quarantined = quarantine_rows(out, TOPIC, DS)
    assert len(published) + len(quarantined) == 2
    assert any(r["summary"] == "Grid load forecasting with gradient boosting." for r in published)
    row = next((r for r in published if r["summary"] != "Grid load forecasting with gradient boosting."), None)
    if row is not None:  # published: the value was replaced by the configured operator
        assert replacement in row["summary"], row["summary"]
    assert_nothing_raw(out, raw, caplog.text, result.published, result.failed)
