"""Bad input from the provider side: failing, refusing, stalling and malformed answers, through the in-process run.

Every case runs ``run_pipeline`` on generated ``companies`` records (topic ``industry_classification``,
a two-field answer) against the stub LLM over real HTTP, and checks the issue's promises: a record
whose calls keep failing is quarantined as ``provider_error`` naming the connection and the failure
(and is not cached), a provider that is down fails the task with one clear ``ProviderUnavailable``
that a re-run resumes from the response cache, and no record text reaches outputs, logs or summaries.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
import traceback
import uuid

import pytest

from pipeline_hub import reasons
from pipeline_hub.providers.cache import open_cache
from pipeline_hub.providers.errors import ProviderError, ProviderUnavailable
from pipeline_hub.stages.runner import run_pipeline

from bad_input_support import assert_conservation, assert_nothing_raw, published_rows, quarantine_rows
from conftest import DS, llm_conn
from support.stub_llm import FaultPlan, closed_port

TOPIC = "industry_classification"
MARKER = f"zqmarker{uuid.uuid4().hex[:12]}"  # inside every record's description: must never leave


def name(i: int) -> str:
    return f"Company {i:05d}"


@pytest.fixture
def companies(tmp_path):
    """``make(n)``: a raw zone with ``n`` generated companies (the description holds :data:`MARKER`)."""

    def make(n: int):
        root = tmp_path / "raw"
        part = root / "companies" / DS
        part.mkdir(parents=True)
        with (part / "companies.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "name", "headquarters", "description"])
            for i in range(n):
                writer.writerow([f"C{i:05d}", name(i), "Springfield", f"{MARKER}-{i} makes widgets"])
        return root

    return make


@pytest.fixture
def fast(stub, monkeypatch):
    """``llm_default`` on the stub with quick retries (no Retry-After wait, millisecond backoff)."""

    def configure(base_url: str | None = None, **extra):
        options = {"max_concurrency": 16, "max_retries": 3, "retry_backoff_s": 0.001, "timeout": 5, **extra}
        monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(base_url or stub.base_url, **options))

    configure()
    return configure


def about(i: int):
    """A ``fault_for`` predicate: True for requests about record ``i``."""
    return lambda body: name(i) in str(body.get("messages"))


def run(raw, out, **kw):
    return run_pipeline(raw_root=str(raw), output_root=str(out), ds=DS, topics=[TOPIC], **kw)


def summaries(result) -> dict:
    return {"published": result.published, "skipped": result.skipped, "failed": result.failed}


def test_2000_records_under_20pc_429_500_and_5pc_malformed_all_accounted_99pc_published(
    stub, fast, companies, tmp_path, caplog
):
    n = 2000
    raw, out = companies(n), tmp_path / "out"
    stub.fault_plan = FaultPlan(
        rate_429=0.10, rate_500=0.10, rate_malformed=0.025, rate_wrong_schema=0.025, retry_after_s=0, seed=12
    )
    with caplog.at_level(logging.INFO):
        result = run(raw, out)
    assert not result.failed, result.failed
    assert_conservation(out)
    published, quarantined = published_rows(out, TOPIC, DS), quarantine_rows(out, TOPIC, DS)
    assert len(published) + len(quarantined) == n
    assert len(published) >= 0.99 * n
    assert {q["reason"] for q in quarantined} <= {reasons.PROVIDER_ERROR, reasons.INVALID_OUTPUT}
    assert stub.calls_by_status[429] and stub.calls_by_status[500]  # the faults were really injected
    assert_nothing_raw(out, [MARKER], caplog.text, summaries(result))


def test_a_record_failing_every_attempt_is_quarantined_naming_connection_and_status_and_not_cached(
    stub, fast, companies, tmp_path, caplog
):
    raw = companies(30)
    stub.fault_for = lambda body: "500" if about(7)(body) else None
    with caplog.at_level(logging.INFO):
        first = run(raw, tmp_path / "out")
    assert_conservation(tmp_path / "out")
    (bad,) = quarantine_rows(tmp_path / "out", TOPIC, DS)
    assert bad["record_id"] == "C00007" and bad["reason"] == reasons.PROVIDER_ERROR
    detail = reasons.plain(bad["detail"])
    assert "llm_default" in detail and "HTTP 500" in detail and "stub-model" in detail
    assert "companies.csv record" in detail
    assert len(published_rows(tmp_path / "out", TOPIC, DS)) == 29
    assert_nothing_raw(tmp_path / "out", [MARKER, name(7)], caplog.text, summaries(first))

    # The fault is gone: the next run sends only that record (the other 29 answers are cached).
    # A fresh output root keeps this independent of the publication index (see publish_topic).
    stub.reset()
    again = run(raw, tmp_path / "out2")
    assert stub.calls == 1
    assert len(published_rows(tmp_path / "out2", TOPIC, DS)) == 30
    assert quarantine_rows(tmp_path / "out2", TOPIC, DS) == []
    assert_nothing_raw(tmp_path / "out2", [MARKER], summaries(again))


def test_connection_refused_fails_in_one_line_naming_the_connection(stub, fast, companies, tmp_path, caplog):
    fast(f"http://127.0.0.1:{closed_port()}/v1", max_retries=1)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO), pytest.raises(ProviderUnavailable) as info:
        run(companies(40), out)
    message = str(info.value)
    assert "\n" not in message and "LLM connection 'llm_default'" in message and "connection refused" in message
    assert "timeout" not in message  # a refused connection is not reported as a timeout
    assert isinstance(info.value, ProviderError)
    assert published_rows(out, TOPIC, DS) == []
    trace = "".join(traceback.format_exception(info.value))
    assert_nothing_raw(out, [MARKER, "Company 0"], caplog.text, trace, message)


def test_a_timeout_is_quarantined_saying_timeout_and_naming_the_connection(stub, fast, companies, tmp_path, caplog):
    fast(timeout=0.3, max_retries=1)
    stub.fault_plan = FaultPlan(timeout_sleep_s=1.0)
    stub.fault_for = lambda body: "timeout" if about(2)(body) else None
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        result = run(companies(6), out)
    assert_conservation(out)
    (bad,) = quarantine_rows(out, TOPIC, DS)
    detail = reasons.plain(bad["detail"])
    assert bad["reason"] == reasons.PROVIDER_ERROR and "timeout after 0.3s" in detail and "llm_default" in detail
    assert len(published_rows(out, TOPIC, DS)) == 5
    assert_nothing_raw(out, [MARKER, name(2)], caplog.text, summaries(result))


def test_circuit_breaker_trips_when_the_provider_goes_down_and_a_rerun_resumes_from_the_cache(
    stub, fast, companies, tmp_path, caplog
):
    n, healthy = 240, 30
    raw, out = companies(n), tmp_path / "out"
    calls = itertools.count()
    stub.fault_for = lambda body: None if next(calls) < healthy else "500"  # down after 30 requests
    with caplog.at_level(logging.INFO), pytest.raises(ProviderUnavailable) as info:
        run(raw, out)
    message = str(info.value)
    assert "LLM connection 'llm_default'" in message and "HTTP 500" in message and "looks unavailable" in message
    sent = {m for body in stub.requests for m in re.findall(r"Company \d{5}", str(body["messages"]))}
    # Stopped sending instead of trying every record: at most the healthy ones, the trip's 10 and the
    # records already taken by the 2 × max_concurrency workers were sent.
    assert len(sent) <= healthy + 10 + 2 * 16 < n
    cached = len(list(open_cache().keys()))
    assert 0 < cached <= healthy  # answers finished before the trip were kept
    assert published_rows(out, TOPIC, DS) == []

    stub.reset()  # the provider is back: Airflow's task retry (here: a re-run) pays only for the rest
    result = run(raw, out)
    assert stub.calls == n - cached
    assert_conservation(out)
    assert len(published_rows(out, TOPIC, DS)) == n
    assert_nothing_raw(out, [MARKER], caplog.text, message, summaries(result))


def test_answers_still_malformed_after_the_repair_are_invalid_output_with_the_raw_answer_scrubbed(
    stub, fast, companies, tmp_path, caplog
):
    leaked = "jane.roe@example.com"

    def responder(body):
        if about(1)(body):
            return f'Sure! Write to {leaked} {{"sector": '  # not JSON, echoing an e-mail address
        if about(4)(body):
            return {"unexpected": "stub"}  # JSON, wrong schema
        return None

    stub.responder = responder
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        result = run(companies(20), out)  # 18 of 20 valid: above the topic's 80 % answer-validity gate
    assert_conservation(out)
    rows = {q["record_id"]: q for q in quarantine_rows(out, TOPIC, DS)}
    assert set(rows) == {"C00001", "C00004"} and {q["reason"] for q in rows.values()} == {reasons.INVALID_OUTPUT}
    assert "failed schema validation after one repair" in rows["C00001"]["detail"]
    assert "not valid" in rows["C00001"]["detail"] and "required" in rows["C00004"]["detail"]
    assert rows["C00001"]["raw_answer"] and leaked not in rows["C00001"]["raw_answer"]
    assert len(published_rows(out, TOPIC, DS)) == 18
    assert stub.calls == 20 + 2  # one repair each for the two bad records
    assert_nothing_raw(out, [MARKER, leaked], caplog.text, summaries(result))
