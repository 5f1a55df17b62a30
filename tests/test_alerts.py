"""Alerts: the callbacks of ``prompt_pipeline`` send mail through the SMTP provider's ``SmtpNotifier`` to a
local SMTP server (aiosmtpd, started and stopped here); every mail names DAG, run, ds, topic and reason
and holds no record text. One real ``airflow dags test`` run without input proves the DAG wiring."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pipeline_hub.config import get_settings
from pipeline_hub.orchestration import alerts

from conftest import DS, REPO, llm_conn

SAMPLE = "Zarkowsky ledger reconciliation note 7731"  # a record value that must never reach a mail
RUN_ID = "scheduled__2025-01-15T02:00:00+00:00"


class Inbox:
    """aiosmtpd handler keeping every message it receives (parsed, ``email.message.EmailMessage``)."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def texts(self) -> list[str]:
        """``subject + body`` of every message, the body decoded."""
        return [m["subject"] + "\n" + m.get_body(("html", "plain")).get_content() for m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A local SMTP server on loopback (aiosmtpd), with the Airflow connection JSON pointing at it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "pipeline-hub@example.org", "timeout": 10},
    }
    try:
        yield SimpleNamespace(inbox=inbox, conn=json.dumps(conn))
    finally:
        controller.stop()


@pytest.fixture
def alert_env(smtp_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", smtp_server.conn)
    monkeypatch.setenv("PIPELINE_HUB_ALERT_CONN_ID", "alert_smtp")
    monkeypatch.setenv("PIPELINE_HUB_ALERT_TO", "oncall@example.org, data@example.org")
    get_settings.cache_clear()
    return smtp_server.inbox


def context(task_id="publish", map_index=-1, **extra):
    """A task callback context with the keys the callbacks read (as Airflow passes them)."""
    ti = SimpleNamespace(dag_id="prompt_pipeline", task_id=task_id, run_id=RUN_ID, map_index=map_index, try_number=3)
    return {
        "dag": SimpleNamespace(dag_id="prompt_pipeline"),
        "run_id": RUN_ID,
        "ds": DS,
        "params": {"ds": None},
        "ti": ti,
        "task_instance": ti,
        **extra,
    }


def assert_names(text: str, reason: str, topic: str | None = None) -> None:
    for part in (
        "DAG: prompt_pipeline",
        f"Run: {RUN_ID}",
        f"ds: {DS}",
        f"Reason: {reason}",
        f"[pipeline-hub] {reason}",
    ):
        assert part in text, (part, text)
    if topic:
        assert f"Topic: {topic}" in text and f"topic={topic}" in text
    assert SAMPLE not in text


def test_failed_run_sends_a_mail_naming_the_failed_task(alert_env):
    # The exception of a record-processing failure may echo record text: it never reaches the mail.
    alerts.run_failed(context("prompt", 3, reason="task_failure", exception=RuntimeError(f"bad answer: {SAMPLE}")))
    [msg] = alert_env.messages
    assert msg["to"] == "oncall@example.org, data@example.org" and msg["from"] == "pipeline-hub@example.org"
    [text] = alert_env.texts()
    assert_names(text, "run_failed")
    assert "Failed task: prompt[3]" in text and "try_number=3" in text


def test_no_input_sends_a_mail_naming_the_empty_prefix(alert_env):
    summary = {
        "outcome": "no_input",
        "no_input": {"companies": f"s3://aws_default@raw/raw_data/companies/{DS}/"},
        "pending": [],
    }
    ti = SimpleNamespace(task_id="hash", map_index=-1, xcom_pull=lambda task_ids, key: summary)
    alerts.hash_failed({**context("hash"), "ti": ti})
    [text] = alert_env.texts()
    assert_names(text, "no_input")
    assert f"Empty prefix (companies): s3://aws_default@raw/raw_data/companies/{DS}/" in text
    assert "sources_without_input=1" in text


def test_hash_failing_for_another_reason_sends_no_no_input_mail(alert_env):
    ti = SimpleNamespace(task_id="hash", map_index=-1, xcom_pull=lambda task_ids, key: {"outcome": "ok"})
    alerts.hash_failed({**context("hash"), "ti": ti})
    assert alert_env.messages == []


def test_a_source_without_input_next_to_others_mails_no_input_and_the_run_goes_on(alert_env):
    summary = {"outcome": "ok", "no_input": {"emails": f"s3://aws_default@raw/raw_data/emails/{DS}/"}, "pending": ["a"]}
    ti = SimpleNamespace(task_id="hash", map_index=-1, xcom_pull=lambda task_ids, key: summary)
    alerts.hash_succeeded({**context("hash"), "ti": ti})
    [text] = alert_env.texts()
    assert_names(text, "no_input")
    assert f"Empty prefix (emails): s3://aws_default@raw/raw_data/emails/{DS}/" in text
    assert "sources_without_input=1" in text and "topics_pending=1" in text
    alert_env.messages.clear()
    full = {"outcome": "ok", "no_input": {}, "pending": ["a", "b"]}
    alerts.hash_succeeded({**context("hash"), "ti": SimpleNamespace(task_id="hash", xcom_pull=lambda **_: full)})
    assert alert_env.messages == []


def test_drift_alert_sends_a_mail_over_the_threshold_only(alert_env):
    assert alerts.alert_drift(context("drift"), "industry_classification", DS, score=0.12, threshold=0.25) == 0
    assert alerts.alert_drift(context("drift"), "industry_classification", DS, 0.31, 0.25, records=120) == 1
    [text] = alert_env.texts()
    assert_names(text, "drift", "industry_classification")
    assert "score=0.31" in text and "threshold=0.25" in text and "records=120" in text
    # Without an Airflow context (the CLI): a run id only.
    assert alerts.alert_drift("manual-check", "industry_classification", DS, 0.4, 0.25) == 1
    assert "Run: manual-check" in alert_env.texts()[1]


def test_drift_task_results_over_threshold_send_one_mail_each(alert_env):
    """What the DAG's ``drift`` teardown passes on: summaries of analytics.drift.record_drift."""
    results = [
        {
            "topic": "industry_classification",
            "ds": DS,
            "status": "drift",
            "drifted": ["label"],
            "max_psi": 0.41,
            "psi_threshold": 0.2,
        },
        {
            "topic": "use_case_extraction",
            "ds": DS,
            "status": "ok",
            "drifted": [],
            "max_psi": 0.01,
            "psi_threshold": 0.2,
        },
        {
            "topic": "contact_extraction",
            "ds": DS,
            "status": "no_baseline",
            "drifted": [],
            "max_psi": None,
            "psi_threshold": 0.2,
        },
        {"topic": "company_matching", "ds": DS, "status": "not_computed", "reason": "InputError"},
    ]
    assert alerts.alert_drifted(context("drift"), results) == 1
    [text] = alert_env.texts()
    assert_names(text, "drift", "industry_classification")
    assert "score=0.41" in text and "threshold=0.2" in text


def test_quarantined_topic_sends_a_mail_naming_topic_and_failed_expectations(alert_env):
    summary = {
        "topic": "industry_classification",
        "status": "quarantined_quality",
        "in": 10,
        "published": 0,
        "quarantined_total": 10,
        "quarantined": {"invalid_output": 7, "quality_failed": 3},
        "manifest": f"s3://sanitized/quarantine/industry_classification/ds={DS}/_manifest.json",
    }
    quality = {
        "expectations": [
            {"type": "expect_column_values_to_be_in_set", "column": "_answer", "success": False},
            {"type": "expect_column_to_exist", "column": "sector", "success": True},
        ],
        "data_docs": f"s3://sanitized/reports/quality/industry_classification/ds={DS}/index.html",
    }
    task = SimpleNamespace(summary=summary, manifest={"quality": quality, "records": [{"text": SAMPLE}]})
    alerts.publish_failed({**context("publish", 0), "task": task, "exception": Exception(SAMPLE)})
    [text] = alert_env.texts()
    assert_names(text, "quality_failed", "industry_classification")
    assert "Failed expectations: expect_column_values_to_be_in_set(_answer)" in text
    assert "quarantined.invalid_output=7" in text and "in=10" in text


def test_publish_summary_over_the_quarantine_rate_or_the_budget_sends_mails(alert_env, monkeypatch):
    monkeypatch.setenv("PIPELINE_HUB_ALERT_QUARANTINE_RATE", "0.25")
    summary = {
        "topic": "use_case_extraction",
        "status": "published",
        "in": 10,
        "published": 7,
        "quarantined_total": 3,
        "quarantined": {"budget_exceeded": 3},
        "usage": {"budget_exceeded": True, "cost_usd": 0.5},
    }
    alerts.publish_succeeded({**context("publish", 1), "task": SimpleNamespace(summary=summary)})
    texts = alert_env.texts()
    assert len(texts) == 2
    assert_names(texts[0], "quarantine_rate", "use_case_extraction")
    assert "rate=0.3" in texts[0] and "threshold=0.25" in texts[0]
    assert_names(texts[1], "budget_exceeded", "use_case_extraction")
    assert "cost_usd=0.5" in texts[1]
    alert_env.messages.clear()
    ok = {**summary, "published": 10, "quarantined_total": 0, "quarantined": {}, "usage": {"budget_exceeded": False}}
    alerts.publish_succeeded({**context("publish", 1), "task": SimpleNamespace(summary=ok)})
    assert alert_env.messages == []


def test_no_connection_means_no_alert_and_one_info_line(monkeypatch, caplog):
    monkeypatch.delenv("PIPELINE_HUB_ALERT_CONN_ID", raising=False)
    monkeypatch.delenv("PIPELINE_HUB_ALERT_APPRISE_CONN_ID", raising=False)
    get_settings.cache_clear()
    caplog.set_level("INFO", logger=alerts.__name__)
    assert alerts.alert_drift("r", "industry_classification", DS, 1.0, 0.5) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "alert drift not sent: PIPELINE_HUB_ALERT_CONN_ID and PIPELINE_HUB_ALERT_APPRISE_CONN_ID are unset"
    ]


def test_object_names_are_not_rendered_as_templates(alert_env):
    """A prefix is an outside name: ``{{ … }}`` in it is sent as it is, never evaluated."""
    summary = {"outcome": "no_input", "no_input": {"emails": "raw_data/emails/{{ 7 * 7 }}/"}, "pending": []}
    ti = SimpleNamespace(task_id="hash", map_index=-1, xcom_pull=lambda task_ids, key: summary)
    alerts.hash_failed({**context("hash"), "ti": ti})
    [text] = alert_env.texts()
    assert "raw_data/emails/{{ 7 * 7 }}/" in text and "49" not in text


@pytest.mark.slow
def test_airflow_run_without_input_mails_no_input_and_run_failed(smtp_server, tmp_path):
    """``airflow dags test`` on a ``ds`` with no raw object: ``hash`` fails; its callback mails ``no_input``
    naming the empty prefix and the DAG's callback mails ``run_failed``, with the real Airflow context."""
    raw = tmp_path / "raw"
    (raw / "emails" / "2025-01-14").mkdir(parents=True)  # a record of another day: never read, never mailed
    (raw / "emails" / "2025-01-14" / "e.jsonl").write_text(json.dumps({"id": "e1", "text": SAMPLE}) + "\n")
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PIPELINE_HUB_INCLUDE_DIR": str(REPO / "include"),
        "PIPELINE_HUB_RAW_URI": str(raw),
        "PIPELINE_HUB_SANITIZED_URI": str(tmp_path / "sanitized"),
        "PIPELINE_HUB_STAGING_URI": str(tmp_path / "staging"),
        "PIPELINE_HUB_LLM_CACHE": "off",
        "AIRFLOW_CONN_LLM_DEFAULT": llm_conn("http://127.0.0.1:9/v1"),  # planned, never called
        "AIRFLOW_CONN_ALERT_SMTP": smtp_server.conn,
        "PIPELINE_HUB_ALERT_CONN_ID": "alert_smtp",
        "PIPELINE_HUB_ALERT_TO": "oncall@example.org",
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "dags",
            "test",
            "prompt_pipeline",
            DS,
            "--conf",
            '{"topics": ["contact_extraction"]}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode != 0, "a run without input fails"
    inbox = smtp_server.inbox
    texts = {m["subject"].split(":")[0]: t for m, t in zip(inbox.messages, inbox.texts(), strict=True)}
    assert set(texts) == {"[pipeline-hub] no_input", "[pipeline-hub] run_failed"}, (
        run.stdout[-3000:] + run.stderr[-3000:]
    )
    for reason in ("no_input", "run_failed"):
        text = texts[f"[pipeline-hub] {reason}"]
        assert "DAG: prompt_pipeline" in text and f"ds: {DS}" in text and f"Reason: {reason}" in text
        assert "Run: manual__" in text and SAMPLE not in text
    assert f"Empty prefix (emails): file://{raw / 'emails' / DS}" in texts["[pipeline-hub] no_input"]
    assert "Failed task: hash" in texts["[pipeline-hub] run_failed"]


def test_apprise_notifier_sends_the_same_alert_to_a_chat_webhook(monkeypatch):
    """The Apprise provider's notifier: a ``json://`` service (Apprise's generic webhook) on a local server."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    posts: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = f"json://127.0.0.1:{server.server_port}/alerts"
        monkeypatch.setenv(
            "AIRFLOW_CONN_ALERT_CHAT", json.dumps({"conn_type": "apprise", "extra": {"config": {"path": path}}})
        )
        monkeypatch.setenv("PIPELINE_HUB_ALERT_APPRISE_CONN_ID", "alert_chat")
        monkeypatch.delenv("PIPELINE_HUB_ALERT_CONN_ID", raising=False)
        get_settings.cache_clear()
        assert alerts.alert_drift(context("drift"), "industry_classification", DS, 0.5, 0.25) == 1
    finally:
        server.shutdown()
        server.server_close()
    [post] = posts
    assert post["title"].startswith("[pipeline-hub] drift: prompt_pipeline")
    assert_names(post["title"] + "\n" + post["message"], "drift", "industry_classification")
