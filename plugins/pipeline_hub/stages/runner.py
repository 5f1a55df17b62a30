"""Run the ``prompt_pipeline`` stages in-process, without Airflow (``pipeline-hub run``, scripts, tests).

The stages are the same functions the DAG's tasks call (:mod:`pipeline_hub.stages`), executed in the
DAG's order; the mapped prompt stage runs its (topic, chunk) items one after another.

Staging (raw record text, chunks, answers) lives in ``<staging root>/<run>/``: the ``staging_root``
argument, else ``<state dir>/staging`` (:func:`pipeline_hub.config.state_dir`, XDG state directory),
never the system temp dir. A local staging root and run directory are created with mode 0700; next
to the run directory a ``<run>.pid`` file records the owning process (pid, host, process start
time). The run directory is removed when the run ends, also on an exception; a run killed before
that (SIGKILL, power loss) leaves it behind, and the next run on the same staging root removes every
run directory whose owning process is gone (:func:`sweep_staging`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_hub import reasons, stages, storage
from pipeline_hub.config import Settings, state_dir
from pipeline_hub.stages.plan import safe_run_id

log = logging.getLogger(__name__)
PRIVATE = 0o700  # owner only: staging holds raw record text


@dataclass
class RunResult:
    """Outcome of :func:`run_pipeline`: per-topic publish summaries, skipped topics, failures, seconds."""

    run_id: str
    ds: str
    published: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    # Requested sources with nothing to read: {source: prefix URI} (their topics are skipped as no_input).
    no_input: dict[str, str] = field(default_factory=dict)
    # "ok", "failed" (a topic failed its quality gate) or "no_input" (no requested topic had input).
    outcome: str = "ok"


def _process_started(pid: int) -> float | None:
    """Start time (epoch s) of process ``pid``, None when it does not exist (psutil)."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # exists, someone else's


def _owner_alive(pid_file: Path) -> bool:
    """Whether the process recorded in ``pid_file`` still runs (same pid, same start time, this host)."""
    try:
        owner = json.loads(pid_file.read_text())
        pid, host, started = int(owner["pid"]), owner["host"], float(owner["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable or half-written by a crashed run
    if host != socket.gethostname():
        return True  # another machine's run on a shared disk: not ours to judge
    now_started = _process_started(pid)
    return now_started is not None and (now_started < 0 or abs(now_started - started) < 1.0)


def sweep_staging(root: Path) -> list[str]:
    """Remove run directories under ``root`` whose ``<run>.pid`` owner is gone; return their names.

    Only directories with a pid file are touched (a staging root may be shared with other tools).
    """
    removed = []
    for pid_file in sorted(root.glob("*.pid")):
        if _owner_alive(pid_file):
            continue
        run_dir = root / pid_file.name.removesuffix(".pid")
        shutil.rmtree(run_dir, ignore_errors=True)
        pid_file.unlink(missing_ok=True)
        removed.append(run_dir.name)
    if removed:
        log.info("staging: removed %d run directories left by crashed runs under %s", len(removed), root)
    return removed


def _private_dir(path: Path) -> None:
    path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE)  # mkdir's mode is masked by the umask


@contextlib.contextmanager
def run_staging(staging_root: str | None, run_id: str) -> Iterator[str]:
    """Staging root for one run (yielded as a string for :class:`Settings`); its run directory
    ``<root>/<safe run id>`` is created private, registered with a pid file and removed on exit.

    ``staging_root`` None: ``<state dir>/staging``. A remote root (``s3://…``) gets no pid file or
    mode; its run directory is still removed on exit.
    """
    name = safe_run_id(run_id)
    remote = staging_root is not None and "://" in staging_root and not staging_root.startswith("file://")
    if remote:
        try:
            yield staging_root
        finally:
            run_dir = storage.join(staging_root, name)
            with contextlib.suppress(FileNotFoundError):
                run_dir.fs.rm(run_dir.path, recursive=True)
        return
    root = Path(staging_root.removeprefix("file://")) if staging_root else state_dir() / "staging"
    if not staging_root:
        _private_dir(root.parent)  # the state dir itself (XDG: create with 0700)
    _private_dir(root)
    sweep_staging(root)
    pid_file = root / f"{name}.pid"
    me = os.getpid()
    pid_file.write_text(json.dumps({"pid": me, "host": socket.gethostname(), "started": _process_started(me)}))
    _private_dir(root / name)
    try:
        yield str(root)
    finally:
        shutil.rmtree(root / name, ignore_errors=True)
        pid_file.unlink(missing_ok=True)


def run_pipeline(
    *,
    raw_root: str,
    output_root: str,
    ds: str,
    topics: list[str] | None = None,
    source: str | None = None,
    row_limit: int | None = None,
    llm_conn_id: str = "llm_default",
    staging_root: str | None = None,
    chunk_size: int | None = None,
    run_id: str | None = None,
    budget_usd: float | None = None,
    prompt_labels: dict[str, str] | None = None,
) -> RunResult:
    """Discover → hash → chunk → prompt → scrub → validate → publish for one ``ds``.

    ``raw_root`` holds ``<source>/<ds>/<files>``; ``output_root`` receives ``sanitized_data/`` and
    ``quarantine/``. Staging: see the module docstring (``staging_root``, default ``<state dir>/staging``;
    the run's directory is removed at the end). A topic that fails its quality gate is quarantined and
    reported in ``failed``; other topics still publish. Sources with nothing to read are listed in
    ``no_input`` (the others run); ``outcome`` is ``no_input`` when no requested topic had input.
    ``budget_usd`` caps the run's LLM spend: records beyond it are quarantined as ``budget_exceeded``.
    ``prompt_labels`` pins a label per topic (``{topic: label}``, others ``prod``; an unknown topic or
    label is a ``ConfigError`` at plan time, before any LLM call).
    Topics in batch mode are called streaming here: provider batch jobs need the DAG's deferrable operator.
    Raises ``ConfigError`` before anything is read when a root names an Airflow connection that does not
    exist (:func:`pipeline_hub.storage.check_connection`).
    """
    for root in (raw_root, output_root, staging_root):
        if root:
            storage.check_connection(root)  # before staging or listing: an unknown connection is one ConfigError
    started = time.monotonic()
    run_id = run_id or f"manual__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    result = RunResult(run_id=run_id, ds=ds)
    with run_staging(staging_root, run_id) as staging:
        settings = Settings.from_env(
            raw_root=raw_root,
            sanitized_root=output_root,
            staging_root=staging,
            llm_conn_id=llm_conn_id,
            chunk_size=chunk_size,
        )
        found = stages.run_discover(settings, ds, topics, source)
        planned = stages.run_hash(
            settings,
            found,
            run_id=run_id,
            row_limit=row_limit,
            llm_conn_id=llm_conn_id,
            budget_usd=budget_usd,
            prompt_labels=prompt_labels,
        )
        result.skipped = planned["skipped"]
        result.no_input = planned["no_input"]
        if planned["pending"]:
            for item in stages.run_chunk(planned["plan_uri"]):
                if item["mode"] == "batch" and item["chunk_index"] == 0:
                    log.info("topic %s is in batch mode: in-process runs call it streaming", item["topic"])
                stages.run_prompt(item)
            for topic in planned["pending"]:
                stages.run_scrub(planned["plan_uri"], topic)
                stages.run_validate(planned["plan_uri"], topic)
                try:
                    result.published.append(stages.run_publish(planned["plan_uri"], topic))
                except stages.QualityGateFailed as exc:
                    result.failed[topic] = str(exc)
    if result.failed:
        result.outcome = "failed"
    elif planned["outcome"] == reasons.NO_INPUT:
        result.outcome = reasons.NO_INPUT
    result.duration_s = round(time.monotonic() - started, 2)
    return result
