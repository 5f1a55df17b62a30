"""``pipeline-hub`` errors: one line on stderr naming the connection/setting and an exit code; ``--debug`` traces."""

from __future__ import annotations

import csv
import importlib
import os
import socket
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from pipeline_hub import cli
from pipeline_hub.config import INCLUDE_NOT_FOUND
from pipeline_hub.exceptions import ConfigError

from conftest import DS, llm_conn


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub(args: list[str], cwd, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline_hub", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def no_include(tmp_path, monkeypatch):
    """An environment (and cwd) where no include dir can be found."""
    monkeypatch.delenv("PIPELINE_HUB_INCLUDE_DIR", raising=False)
    monkeypatch.delenv("PIPELINE_HUB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return {k: v for k, v in os.environ.items() if k != "PIPELINE_HUB_INCLUDE_DIR"}


def test_missing_include_dir_is_one_line_naming_the_setting(no_include, tmp_path):
    proc = hub(["validate"], tmp_path, no_include)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {INCLUDE_NOT_FOUND}"]
    assert "PIPELINE_HUB_INCLUDE_DIR" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(no_include, tmp_path, monkeypatch):
    proc = hub(["--debug", "validate"], tmp_path, no_include)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
    monkeypatch.setenv("PIPELINE_HUB_DEBUG", "1")
    with pytest.raises(ConfigError, match="include dir not found"):  # in-process: re-raised
        cli.main(["validate"])


def test_main_exits_with_the_errors_code(no_include, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["validate"])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: {INCLUDE_NOT_FOUND}\n"


def test_unreachable_provider_is_one_error_line_naming_the_connection(tmp_path):
    part = tmp_path / "raw" / "companies" / DS
    part.mkdir(parents=True)
    with (part / "companies.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name", "headquarters", "description"])
        writer.writerows([f"C{i:05d}", f"Company {i:05d}", "Springfield", "makes widgets"] for i in range(40))
    env = {
        **os.environ,
        "PIPELINE_HUB_STATE_DIR": str(tmp_path / "state"),
        "PIPELINE_HUB_LLM_CACHE": f"disk:{tmp_path / 'cache'}",
        "AIRFLOW_CONN_LLM_DEFAULT": llm_conn(
            f"http://127.0.0.1:{closed_port()}/v1", max_retries=1, retry_backoff_s=0.001, max_concurrency=16
        ),
    }
    env.pop("PIPELINE_HUB_DEBUG", None)
    args = ["run", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"), "--ds", DS]
    proc = hub([*args, "--topics", "industry_classification"], tmp_path, env)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 4, proc.stderr
    assert len(errors) == 1 and "LLM connection 'llm_default'" in errors[0] and "connection refused" in errors[0]
    assert "Traceback" not in proc.stderr


def test_services_without_the_dev_services_says_how_to_install(monkeypatch):
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    app = typer.Typer()
    app.command()(lambda: None)
    assert cli.register_plugins(app) == []
    result = CliRunner().invoke(app, ["services", "up", "--only", "s3"])
    assert result.exit_code == 2
    assert result.output.strip() == cli.SERVICES_MISSING


def test_entry_points_become_sub_commands(monkeypatch):
    sub = typer.Typer()
    sub.command("ping")(lambda: typer.echo("pong"))

    class EP:
        name, value = "extra", "tests:sub"

        def load(self):
            return sub

    monkeypatch.setattr(cli, "entry_points", lambda group: [EP()] if group == cli.ENTRY_POINT_GROUP else [])
    app = typer.Typer()
    app.command("noop")(lambda: None)
    assert cli.register_plugins(app) == ["extra"]
    assert CliRunner().invoke(app, ["extra", "ping"]).output.strip() == "pong"


class _FrozenNow:
    """Stands in for ``datetime`` in ``pipeline_hub.cli.app``: ``now()`` is ``moment`` (UTC)."""

    moment = None

    @classmethod
    def now(cls, tz=None):
        return cls.moment.astimezone(tz)


def test_ds_defaults_to_yesterday_utc_computed_at_call_time(monkeypatch, tmp_path):
    from datetime import UTC, datetime, timedelta, timezone

    app_module = importlib.import_module("pipeline_hub.cli.app")  # the module, not the Typer app
    monkeypatch.setattr(app_module, "datetime", _FrozenNow)
    # 00:30 UTC on 1 March is still 28 February in New York: the default follows UTC, not local time.
    _FrozenNow.moment = datetime(2026, 3, 1, 0, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    assert app_module.resolve_ds(None) == "2026-02-28"
    _FrozenNow.moment = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)  # the same process, a day later
    assert app_module.resolve_ds(None) == "2026-03-01"
    result = CliRunner().invoke(cli.app, ["report", "--root", str(tmp_path)])  # no --ds
    assert result.exit_code == 1 and "ds=2026-03-01" in result.output
    help_text = CliRunner().invoke(cli.app, ["run", "--help"], terminal_width=200).output
    assert "yesterday" in help_text and "UTC" in help_text


def test_bad_ds_is_one_line_naming_the_option(tmp_path):
    for bad in ("2025-02-30", "15.01.2025", "2025-01-15' OR '1'='1"):
        result = CliRunner().invoke(cli.app, ["report", "--ds", bad, "--root", str(tmp_path)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "--ds" in lines[0] and "YYYY-MM-DD" in lines[0], lines


def test_unknown_s3_connection_is_one_line_before_any_request(monkeypatch, tmp_path, capsys):
    import s3fs

    created = []

    def no_s3(*args, **kwargs):  # recorded: Airflow's ObjectStoragePath swallows errors of a lazy fs
        created.append(kwargs)
        raise AssertionError("an S3 file system was created for an unknown connection")

    monkeypatch.setattr(s3fs.S3FileSystem, "__init__", no_s3)
    monkeypatch.delenv("AIRFLOW_CONN_NOSUCHCONN", raising=False)
    monkeypatch.delenv("PIPELINE_HUB_DEBUG", raising=False)
    monkeypatch.setenv("PIPELINE_HUB_STATE_DIR", str(tmp_path / "state"))
    commands = [
        ["run", "--input", "s3://nosuchconn@bucket/prefix", "--output", str(tmp_path / "out"), "--ds", DS],
        ["run", "--input", str(tmp_path), "--output", "s3://nosuchconn@sanitized", "--ds", DS],
        ["report", "--ds", DS, "--root", "s3://nosuchconn@sanitized"],
        ["query", "SELECT 1", "--root", "s3://nosuchconn@sanitized"],
    ]
    for args in commands:
        with pytest.raises(SystemExit) as info:
            cli.main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2, (args, err)
        assert len(err) == 1 and err[0].startswith("error: unknown connection 'nosuchconn'"), (args, err)
        assert "AIRFLOW_CONN_NOSUCHCONN" in err[0] and "anonymous" in err[0]
    assert not created  # no S3 file system, so no request, anonymous or not
    assert not (tmp_path / "state").exists()  # stopped before staging was created
