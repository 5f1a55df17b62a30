"""Alerts of ``prompt_pipeline``: callbacks that send a mail (and a chat message) through Airflow notifiers.

Senders are the providers' notifiers: the SMTP provider's ``SmtpNotifier`` on the connection
``PIPELINE_HUB_ALERT_CONN_ID`` (sender = its extra ``from_email``) to ``PIPELINE_HUB_ALERT_TO``, and the
Apprise provider's ``AppriseNotifier`` (Slack, Teams, ...) on ``PIPELINE_HUB_ALERT_APPRISE_CONN_ID``.
Neither set: no alert, one info log line per alert.

What sends an alert (the reason code is the mail's subject):

* ``run_failed``: the DAG run failed (:func:`run_failed`, the DAG's ``on_failure_callback``);
* ``no_input``: no requested source had a raw object for the ``ds`` (:func:`hash_failed`, ``hash``'s
  ``on_failure_callback``; the prefixes come from the task's ``run_summary`` XCom), or some sources had
  none while others ran (:func:`hash_succeeded`, ``hash``'s ``on_success_callback``; the run stays green);
* ``quality_failed``: a topic failed its GX gate and was quarantined (:func:`publish_failed`,
  ``publish``'s ``on_failure_callback``; the failed expectation names come from the manifest);
* ``quarantine_rate`` / ``budget_exceeded``: a published topic quarantined more than
  ``PIPELINE_HUB_ALERT_QUARANTINE_RATE`` of its records, or reached the run's budget
  (:func:`publish_succeeded`, ``publish``'s ``on_success_callback``, from the publish summary counts);
* ``drift``: a topic's drift score over its threshold (:func:`alert_drift`, called by the drift check).

Every message names the DAG, run id, ds, topic (where there is one), reason code and counts, plus our
own names (task ids, object prefixes, expectation names, URIs). Never record values, exception
messages or object contents: an :class:`Alert` is built from names and numbers only. Texts are passed to
the notifiers' ``notify`` as they are, not rendered as Jinja templates (``BaseNotifier.__call__`` would
render them, and an object prefix holding ``{{`` would then be evaluated).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RUN_FAILED = "run_failed"
QUARANTINE_RATE = "quarantine_rate"
DRIFT = "drift"
QUARANTINED_QUALITY = "quarantined_quality"  # publish summary status of a topic that failed its gate


@dataclass(frozen=True)
class Alert:
    """One alert: who (DAG, run, ds, topic), why (reason code) and how much (counts), names only.

    ``counts`` maps a name to a number (records, rates in [0, 1], USD); ``facts`` maps a label to one of
    our own names (task id, object prefix, expectation, URI). Neither may hold record text.
    """

    reason: str
    dag_id: str
    run_id: str
    ds: str
    topic: str | None = None
    counts: Mapping[str, int | float] = field(default_factory=dict)
    facts: Mapping[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``[pipeline-hub] <reason>: <dag> ds=<ds>[ topic=<topic>] run=<run id>``."""
        topic = f" topic={self.topic}" if self.topic else ""
        return f"[pipeline-hub] {self.reason}: {self.dag_id} ds={self.ds}{topic} run={self.run_id}"

    def text(self) -> str:
        """The plain-text body: one ``label: value`` line each, counts and facts sorted by label."""
        lines = [
            f"DAG: {self.dag_id}",
            f"Run: {self.run_id}",
            f"ds: {self.ds}",
            f"Topic: {self.topic or '-'}",
            f"Reason: {self.reason}",
            "Counts: " + (", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())) or "-"),
        ]
        lines += [f"{k}: {v}" for k, v in sorted(self.facts.items())]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The mail body: :meth:`text`, HTML-escaped in a ``<pre>`` block."""
        return f"<pre>{html.escape(self.text())}</pre>"


def notifiers(alert: Alert, settings=None) -> list[Any]:
    """The configured notifiers carrying ``alert``: ``SmtpNotifier`` and/or ``AppriseNotifier`` (maybe none).

    ``settings`` is a :class:`pipeline_hub.config.HubSettings` (default: the environment's). SMTP needs
    both ``alert_conn_id`` and ``alert_to`` (comma-separated); a connection without recipients is logged
    and skipped.
    """
    from pipeline_hub.config import get_settings

    s = settings or get_settings()
    out: list[Any] = []
    if s.alert_conn_id:
        to = [a.strip() for a in (s.alert_to or "").split(",") if a.strip()]
        if to:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            out.append(
                SmtpNotifier(to=to, subject=alert.subject, html_content=alert.html(), smtp_conn_id=s.alert_conn_id)
            )
        else:
            log.warning("alert %s: PIPELINE_HUB_ALERT_TO is unset, no mail sent", alert.reason)
    if s.alert_apprise_conn_id:
        from airflow.providers.apprise.notifications.apprise import AppriseNotifier

        out.append(AppriseNotifier(title=alert.subject, body=alert.text(), apprise_conn_id=s.alert_apprise_conn_id))
    return out


def send(alert: Alert, settings=None) -> int:
    """Send ``alert`` through every configured notifier; returns how many sent it.

    A failing notifier is logged (its exception class and message: connection or server errors) and
    does not stop the others or the caller; no notifier configured is one info line. The notifiers get
    an empty context: the texts are final, only the sender address comes from the SMTP connection.
    """
    senders = notifiers(alert, settings)
    if not senders:
        log.info(
            "alert %s not sent: PIPELINE_HUB_ALERT_CONN_ID and PIPELINE_HUB_ALERT_APPRISE_CONN_ID are unset",
            alert.reason,
        )
        return 0
    sent = 0
    for notifier in senders:
        try:
            notifier.notify({})
            sent += 1
        except Exception as exc:  # an alert must never fail its task or hide the original failure
            kind = type(notifier).__name__
            log.warning("alert %s not sent by %s: %s: %s", alert.reason, kind, type(exc).__name__, exc)
    log.info("alert %s sent by %d notifier(s): %s", alert.reason, sent, alert.subject)
    return sent


def _ids(context: Mapping[str, Any]) -> dict[str, str]:
    """``{"dag_id", "run_id", "ds"}`` of a task or DAG callback context (``ds`` as the DAG's tasks choose it:
    the ``ds`` param, else the logical date, else the run's ``run_after`` date; ``?`` when unknown)."""
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None)
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
    params = context.get("params") or {}
    ds = params.get("ds") or context.get("ds")
    if not ds and getattr(dag_run, "run_after", None) is not None:
        ds = dag_run.run_after.date().isoformat()
    return {"dag_id": str(dag_id or "?"), "run_id": str(run_id or "?"), "ds": str(ds or "?")}


def _task_label(ti) -> str:
    """``task_id`` or ``task_id[map_index]`` of a task instance."""
    map_index = getattr(ti, "map_index", -1)
    return f"{ti.task_id}[{map_index}]" if map_index not in (None, -1) else str(ti.task_id)


def run_failed(context: Mapping[str, Any]) -> None:
    """DAG ``on_failure_callback``: alert ``run_failed`` naming the failed task (Airflow's callback context)."""
    ti = context.get("ti") or context.get("task_instance")
    facts = {"Airflow reason": str(context.get("reason") or "-")}
    counts: dict[str, int | float] = {}
    if ti is not None:
        facts["Failed task"] = _task_label(ti)
        if getattr(ti, "try_number", None) is not None:
            counts["try_number"] = int(ti.try_number)
    send(Alert(RUN_FAILED, **_ids(context), counts=counts, facts=facts))


def no_input_alert(ids: Mapping[str, str], run_summary: Mapping[str, Any]) -> Alert:
    """The ``no_input`` alert of a ``hash`` run summary (``{"no_input": {source: prefix}, "pending", ...}``)."""
    from pipeline_hub.reasons import NO_INPUT

    no_input = dict(run_summary.get("no_input") or {})
    facts = {f"Empty prefix ({src})": str(prefix) for src, prefix in sorted(no_input.items())}
    counts = {"sources_without_input": len(no_input), "topics_pending": len(run_summary.get("pending") or [])}
    return Alert(NO_INPUT, **ids, counts=counts, facts=facts)


def hash_failed(context: Mapping[str, Any]) -> None:
    """``hash``'s ``on_failure_callback``: alert ``no_input`` when its ``run_summary`` XCom says so.

    Other failures of the task are left to :func:`run_failed`.
    """
    from pipeline_hub.reasons import NO_INPUT

    ti = context["ti"]
    summary = ti.xcom_pull(task_ids=ti.task_id, key="run_summary") or {}
    if summary.get("outcome") == NO_INPUT:
        send(no_input_alert(_ids(context), summary))


def hash_succeeded(context: Mapping[str, Any]) -> None:
    """``hash``'s ``on_success_callback``: alert ``no_input`` for the sources of a run that had none.

    The run goes on with the topics whose source has input (it stays green), so this mail is the only
    sign that one source of the ``ds`` was empty. Nothing is sent when every source had input.
    """
    ti = context["ti"]
    summary = ti.xcom_pull(task_ids=ti.task_id, key="run_summary") or {}
    if summary.get("no_input"):
        send(no_input_alert(_ids(context), summary))


def _summary_counts(summary: Mapping[str, Any]) -> dict[str, int | float]:
    """``in``, ``published``, ``quarantined_total`` and one ``quarantined.<reason>`` per reason of a publish summary."""
    counts: dict[str, int | float] = {k: int(summary.get(k) or 0) for k in ("in", "published", "quarantined_total")}
    counts.update({f"quarantined.{r}": int(n) for r, n in (summary.get("quarantined") or {}).items()})
    return counts


def publish_alerts(ids: Mapping[str, str], summary: Mapping[str, Any], max_rate: float) -> list[Alert]:
    """The alerts of one published topic's summary: ``quarantine_rate`` over ``max_rate``, ``budget_exceeded``."""
    from pipeline_hub.reasons import BUDGET_EXCEEDED

    counts, topic = _summary_counts(summary), summary.get("topic")
    alerts = []
    rate = counts["quarantined_total"] / counts["in"] if counts["in"] else 0.0
    if rate > max_rate:
        alerts.append(
            Alert(QUARANTINE_RATE, **ids, topic=topic, counts={**counts, "rate": round(rate, 4), "threshold": max_rate})
        )
    usage = summary.get("usage") or {}
    if usage.get("budget_exceeded") or counts.get(f"quarantined.{BUDGET_EXCEEDED}"):
        spent = {"cost_usd": usage["cost_usd"]} if usage.get("cost_usd") is not None else {}
        alerts.append(Alert(BUDGET_EXCEEDED, **ids, topic=topic, counts={**counts, **spent}))
    return alerts


def publish_succeeded(context: Mapping[str, Any]) -> None:
    """``publish``'s ``on_success_callback``: :func:`publish_alerts` of the operator's publish summary."""
    from pipeline_hub.config import get_settings

    summary = getattr(context.get("task"), "summary", None) or {}
    for alert in publish_alerts(_ids(context), summary, get_settings().alert_quarantine_rate):
        send(alert)


def quality_alert(ids: Mapping[str, str], summary: Mapping[str, Any], manifest: Mapping[str, Any]) -> Alert:
    """The ``quality_failed`` alert of a quarantined topic: counts, failed expectation names, manifest URI."""
    from pipeline_hub.quality.checks import failed_expectations
    from pipeline_hub.reasons import QUALITY_FAILED

    facts = {"Quarantine manifest": str(summary.get("manifest") or "-")}
    if manifest.get("quality"):
        facts["Failed expectations"] = ", ".join(failed_expectations(manifest["quality"])) or "-"
        if manifest["quality"].get("data_docs"):
            facts["Data Docs"] = str(manifest["quality"]["data_docs"])
    return Alert(QUALITY_FAILED, **ids, topic=summary.get("topic"), counts=_summary_counts(summary), facts=facts)


def publish_failed(context: Mapping[str, Any]) -> None:
    """``publish``'s ``on_failure_callback``: alert ``quality_failed`` when the topic failed its GX gate.

    Reads the operator's ``summary``/``manifest`` (set before it raised); other failures are left to
    :func:`run_failed`.
    """
    task = context.get("task")
    summary = getattr(task, "summary", None) or {}
    if summary.get("status") == QUARANTINED_QUALITY:
        send(quality_alert(_ids(context), summary, getattr(task, "manifest", None) or {}))


def alert_drifted(context: Mapping[str, Any], results: list[dict[str, Any]]) -> int:
    """Alert ``drift`` for every result of the DAG's ``drift`` task whose status is ``drift``.

    ``results`` are the task's summaries (``topic``, ``ds``, ``status``, ``drifted``, ``max_psi``,
    ``psi_threshold``; :func:`pipeline_hub.analytics.drift.record_drift`). Returns the number of alerts sent.
    """
    sent = 0
    for r in results:
        if r.get("status") == "drift" and r.get("max_psi") is not None:
            sent += alert_drift(context, r["topic"], r["ds"], float(r["max_psi"]), float(r["psi_threshold"]))
    return sent


def alert_drift(
    context_or_run: Mapping[str, Any] | str, topic: str, ds: str, score: float, threshold: float, **counts: float
) -> int:
    """Alert ``drift``: ``topic``'s drift ``score`` for ``ds`` is over ``threshold``; returns notifiers that sent it.

    ``context_or_run`` is an Airflow task context (DAG and run from it) or a run id (e.g. of the CLI, DAG
    shown as ``-``). ``counts`` adds named numbers (e.g. ``psi=0.31``, ``records=1200``). Sends nothing
    when ``score <= threshold``.
    """
    if score <= threshold:
        return 0
    if isinstance(context_or_run, Mapping):
        ids = {**_ids(context_or_run), "ds": ds}
    else:
        ids = {"dag_id": "-", "run_id": str(context_or_run), "ds": ds}
    return send(Alert(DRIFT, **ids, topic=topic, counts={"score": score, "threshold": threshold, **counts}))
