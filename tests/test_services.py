"""Dev services (``pipeline_hub_dev``): a private SeaweedFS on free ports, up/status/down for ``s3``, the
env file, the model assembly and the ``services`` commands."""

from __future__ import annotations

import inspect
import json
import os
import stat
import subprocess
import sys
import time
import types
from importlib.metadata import entry_points
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from typer.testing import CliRunner

import pipeline_hub
from pipeline_hub.exceptions import PipelineHubError
from pipeline_hub_dev import cli, llama, manager, process
from pipeline_hub_dev.errors import ServiceError
from pipeline_hub_dev.seaweedfs import SeaweedFS, SeaweedPorts, find_free_base_port

# Where pipeline_hub_dev and pipeline_hub come from, for subprocesses.
IMPORT_PATHS = [str(Path(module.__file__).resolve().parents[1]) for module in (manager, pipeline_hub)]
OVERRIDES = (
    "AIRFLOW_CONN_AWS_DEFAULT",
    "AIRFLOW_CONN_LLM_DEFAULT",
    "PIPELINE_HUB_LLM_ENDPOINT",
    "PIPELINE_HUB_S3_PORT",
    "PIPELINE_HUB_LLM_PORT",
    "PIPELINE_HUB_S3_BUCKETS",
    "PIPELINE_HUB_S3_ACCESS_KEY",
    "PIPELINE_HUB_S3_SECRET_KEY",
    "PIPELINE_HUB_LLM_MODEL_FILE",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated PIPELINE_HUB_HOME with no user overrides in the environment."""
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("PIPELINE_HUB_HOME", str(path))
    return path


def listening(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not process.process_group_alive(pgid)


def source_env(path, *names: str) -> dict[str, str]:
    script = f". {path} && " + " && ".join(f'printf "%s\\0" "${{{n}-<unset>}}"' for n in names)
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env=env).stdout
    return dict(zip(names, out.decode().split("\0")[:-1], strict=True))


def test_ports_derive_from_one_base():
    ports = SeaweedPorts(8333)
    assert ports.all() == (8333, 8334, 8335, 8336, 8337, 18333, 18334, 18335, 18336, 18337)
    assert "-s3.port=8333" in ports.flags() and "-admin.port.grpc=18337" in ports.flags()
    with pytest.raises(ValueError):
        SeaweedPorts(60000)


def test_private_seaweedfs_roundtrip_loopback_only_and_clean_stop(tmp_path):
    s3 = SeaweedFS(tmp_path / "s3", base_port=find_free_base_port(), buckets=("raw", "sanitized"))
    s3.start()
    pgid = s3.pid
    try:
        s3.wait_ready(timeout=60)
        client = s3.client()
        assert {"raw", "sanitized"} <= {b["Name"] for b in client.list_buckets()["Buckets"]}
        client.put_object(Bucket="raw", Key="src/2024-01-01/a.jsonl", Body=b'{"x": 1}\n')
        assert client.get_object(Bucket="raw", Key="src/2024-01-01/a.jsonl")["Body"].read() == b'{"x": 1}\n'
        listed = client.list_objects_v2(Bucket="raw", Prefix="src/")
        assert [o["Key"] for o in listed["Contents"]] == ["src/2024-01-01/a.jsonl"]
        assert s3.ensure_buckets(["raw", "extra"]) == ["extra"]

        # Only our credentials are accepted.
        stranger = boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            aws_access_key_id="not-a-key",
            aws_secret_access_key="nope",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
        )
        with pytest.raises(ClientError):
            stranger.list_buckets()

        # Every listening socket is on loopback, including the 10 ports derived from the base (weed may open
        # an extra ephemeral one for internal workers; what matters is that nothing listens beyond loopback).
        # weed binds its components' ports one after another, some after S3 already answers: wait (up to
        # 60 s) until every derived port is bound, then check where everything listens.
        deadline = time.monotonic() + 60
        sockets = listening(s3.pid)
        while not set(s3.ports.all()) <= {port for _, port in sockets} and time.monotonic() < deadline:
            time.sleep(0.5)
            sockets = listening(s3.pid)
        assert sockets and {ip for ip, _ in sockets} == {"127.0.0.1"}
        assert set(s3.ports.all()) <= {port for _, port in sockets}
    finally:
        outcome = s3.stop()
    assert outcome == "stopped"
    assert not s3.is_running()
    assert group_gone(pgid)
    assert not [p for p in Path("/tmp").glob("seaweedfs-*.sock") if str(s3.ports.s3) in p.name]


def test_up_status_down_s3(home, monkeypatch):
    base = find_free_base_port()
    monkeypatch.setenv("PIPELINE_HUB_S3_PORT", str(base))
    # Like `pipeline-hub services up` under make: a separate process whose pipes must not be held open by
    # the server it leaves behind (else this run() would hang until the timeout).
    code = "import json; from pipeline_hub_dev import manager; print(json.dumps(manager.up(services=('s3',))))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*IMPORT_PATHS, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    pid = first["services"]["s3"]["pid"]
    try:
        s3 = first["services"]["s3"]
        assert s3["state"] == "started" and s3["endpoint"] == f"http://127.0.0.1:{base}"
        assert (home / "run" / "s3.pid").read_text().strip() == str(pid)
        assert (home / "logs" / "s3.log").stat().st_size > 0
        assert (home / "s3").is_dir()
        assert "llm" not in first["services"]

        again = manager.up(services=("s3",))["services"]["s3"]
        assert again["state"] == "already running" and again["pid"] == pid

        by_name = {st.name: st for st in manager.status()}
        assert by_name["s3"].running and by_name["s3"].pid == pid
        assert by_name["s3"].endpoint == f"http://127.0.0.1:{base}"
        assert by_name["s3"].log == home / "logs" / "s3.log"
        assert not by_name["llm"].running
        assert str(by_name["s3"]).startswith("s3   running")

        # env.sh is valid shell and its AWS connection reaches the running server.
        env_file = home / "env.sh"
        assert first["env_file"] == str(env_file)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = source_env(env_file, "AIRFLOW_CONN_AWS_DEFAULT", "PIPELINE_HUB_PII_KEY_FILE")
        conn = json.loads(values["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == f"http://127.0.0.1:{base}"
        client = boto3.client(
            "s3",
            endpoint_url=conn["extra"]["endpoint_url"],
            aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"],
            region_name=conn["extra"]["region_name"],
        )
        assert {"raw", "sanitized"} <= {b["Name"] for b in client.list_buckets()["Buckets"]}

        key_file = home / "secrets" / "pii_hmac.key"
        assert values["PIPELINE_HUB_PII_KEY_FILE"] == str(key_file)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(bytes.fromhex(key_file.read_text().strip())) == 32

        # A shell that sourced env.sh still starts/sees the embedded server (its own conn is no override).
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", values["AIRFLOW_CONN_AWS_DEFAULT"])
        assert manager.up(services=("s3",))["services"]["s3"]["state"] == "already running"
    finally:
        outcome = manager.down(services=["s3"])
    assert outcome == {"s3": "stopped"}
    assert group_gone(pid)
    assert not [p for p in Path("/tmp").glob("seaweedfs-*.sock") if str(base) in p.name]
    assert not (home / "run" / "s3.pid").exists()
    assert {st.name: st.state for st in manager.status()}["s3"] == "stopped"
    assert manager.down() == {"s3": "not running", "llm": "not running"}


def test_stale_pid_file_is_cleaned(home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "run").mkdir(parents=True)
    (home / "run" / "s3.pid").write_text(f"{dead.pid}\n")
    assert {st.name: st for st in manager.status()}["s3"].detail.startswith("stale pid file")
    assert manager.down(services=["s3"]) == {"s3": "stale pid file removed"}
    assert not (home / "run" / "s3.pid").exists()


def test_user_overrides_and_missing_llama_cpp(home, monkeypatch):
    monkeypatch.setattr(manager, "llama_cpp_available", lambda: False)
    result = manager.up(services=("llm",))["services"]["llm"]
    assert result["state"] == "skipped" and "llama-cpp-python" in result["message"]

    external = json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "https://s3.example.com"}})
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", external)
    monkeypatch.setenv("PIPELINE_HUB_LLM_ENDPOINT", "http://gpu-box:8000/v1")
    out = manager.up(services=("s3", "llm"))["services"]
    assert out["s3"]["state"] == "external" and out["s3"]["endpoint"] == "https://s3.example.com"
    assert out["llm"]["state"] == "external"
    assert not (home / "run" / "s3.pid").exists()
    states = {st.name: st.state for st in manager.status()}
    assert states == {"s3": "external", "llm": "external"}


def test_env_file_is_valid_shell(home, monkeypatch, tmp_path):
    monkeypatch.setattr(manager, "llama_cpp_available", lambda: False)
    path = manager.write_env_file(tmp_path / "env.sh")
    text = path.read_text()
    assert "AIRFLOW_CONN_LLM_DEFAULT=" not in text  # no LLM configured
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_file = home / "secrets" / "pii_hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    manager.write_env_file(tmp_path / "env.sh")
    assert key_file.read_text() == key  # generated once

    # An LLM endpoint given by the user becomes the llm_default connection; quoting survives odd values.
    monkeypatch.setenv("PIPELINE_HUB_LLM_ENDPOINT", "http://host:9/v1?a='b' $HOME")
    manager.write_env_file(path)
    values = source_env(path, "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_LLM_DEFAULT")
    llm = json.loads(values["AIRFLOW_CONN_LLM_DEFAULT"])
    assert llm == {
        "conn_type": "openai",
        "host": "http://host:9/v1?a='b' $HOME",
        "password": "sk-local-no-key",
        "extra": {"model": "gemma-3-270m", "structured_output": "json_object_schema"},
    }
    aws = json.loads(values["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["extra"] == {"endpoint_url": "http://127.0.0.1:8333", "region_name": "us-east-1"}

    # With llama.cpp installed, the embedded server's connection is written.
    monkeypatch.delenv("PIPELINE_HUB_LLM_ENDPOINT")
    monkeypatch.setattr(manager, "llama_cpp_available", lambda: True)
    manager.write_env_file(path)
    llm = json.loads(source_env(path, "AIRFLOW_CONN_LLM_DEFAULT")["AIRFLOW_CONN_LLM_DEFAULT"])
    assert llm["host"] == "http://127.0.0.1:8090/v1"

    # The user's own connection is left alone.
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", '{"conn_type": "openai", "host": "https://api.openai.com/v1"}')
    manager.write_env_file(path)
    assert "export AIRFLOW_CONN_LLM_DEFAULT" not in path.read_text()


def _fake_model_package(monkeypatch, assemble):
    module = types.ModuleType(llama.MODEL_PACKAGE)
    module.assemble = assemble
    monkeypatch.setitem(sys.modules, llama.MODEL_PACKAGE, module)


def test_model_is_assembled_once_into_models_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_HUB_LLM_MODEL_FILE", raising=False)
    calls = []

    def assemble(target_dir=None):
        calls.append(target_dir)
        out = os.path.join(target_dir, "gemma.gguf")
        with open(out, "wb") as fh:
            fh.write(b"GGUF" + b"\0" * 16)
        return out

    _fake_model_package(monkeypatch, assemble)
    models = tmp_path / "models"
    path = llama.ensure_model(models)
    assert path == models / llama.MODEL_FILENAME and path.read_bytes().startswith(b"GGUF")
    assert llama.ensure_model(models) == path
    assert calls == [models]


def test_model_assembled_elsewhere_is_copied(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_HUB_LLM_MODEL_FILE", raising=False)
    elsewhere = tmp_path / "pkg" / "model.gguf"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"GGUF" + b"\1" * 8)
    _fake_model_package(monkeypatch, lambda: str(elsewhere))
    path = llama.ensure_model(tmp_path / "models")
    assert path.read_bytes() == elsewhere.read_bytes() and path.parent == tmp_path / "models"


def test_model_output_path_signature_replaces_partial_file(tmp_path, monkeypatch):
    """Mimics the real package: ``assemble(output_path=None, overwrite=False)`` takes a file path and
    refuses (FileExistsError) to reuse an existing file with the wrong content."""
    monkeypatch.delenv("PIPELINE_HUB_LLM_MODEL_FILE", raising=False)
    good = b"GGUF" + b"\2" * 32
    calls = []

    def assemble(output_path=None, overwrite=False):
        target = Path(output_path)
        calls.append(target)
        if target.exists() and not overwrite:
            if target.read_bytes() != good:
                raise FileExistsError(target)
            return target
        target.write_bytes(good)
        return target

    _fake_model_package(monkeypatch, assemble)
    models = tmp_path / "models"
    models.mkdir()
    (models / llama.MODEL_FILENAME).write_bytes(b"GGUF" + b"\2" * 5)  # interrupted earlier run
    path = llama.ensure_model(models)
    assert path.read_bytes() == good and calls == [path, path]
    assert llama.ensure_model(models) == path and len(calls) == 2  # cached by the .complete marker


def test_assemble_arguments_for_installed_model_package(tmp_path):
    package = pytest.importorskip(llama.MODEL_PACKAGE)
    target = tmp_path / llama.MODEL_FILENAME
    plans = llama._assemble_plans(package.assemble, tmp_path, target)
    # 1.0.0 has assemble(output_path=None, overwrite=False): a file path, so it gets one.
    params = inspect.signature(package.assemble).parameters
    if "output_path" in params:
        assert plans == [((), {"output_path": target})]
    else:
        assert plans and all(set(kw) <= set(params) for _, kw in plans)


def test_services_commands_are_an_entry_point_of_the_cli_group():
    (services,) = [ep for ep in entry_points(group="pipeline_hub.cli") if ep.name == "services"]
    assert services.value == "pipeline_hub_dev.cli:app" and services.load() is cli.app
    assert issubclass(ServiceError, PipelineHubError) and issubclass(ServiceError, RuntimeError)


def test_services_cli_status_env_and_errors(home, monkeypatch):
    monkeypatch.setattr(manager, "llama_cpp_available", lambda: False)
    runner = CliRunner()
    status = runner.invoke(cli.app, ["status"])
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert [line.split()[:2] for line in lines] == [["s3", "stopped"], ["llm", "stopped"]]
    assert "llama-cpp-python not installed" in lines[1]

    env = runner.invoke(cli.app, ["env"])
    assert env.exit_code == 0, env.output
    assert env.output.strip() == f"environment: source {home / 'env.sh'}"
    assert "export AIRFLOW_CONN_AWS_DEFAULT=" in (home / "env.sh").read_text()

    down = runner.invoke(cli.app, ["down", "--only", "s3"])
    assert down.exit_code == 0 and down.output == "s3   not running\n"

    monkeypatch.setenv("PIPELINE_HUB_S3_PORT", "eighty")
    bad = runner.invoke(cli.app, ["up", "--only", "s3"])
    assert bad.exit_code == 1
    assert bad.output.strip() == "error: PIPELINE_HUB_S3_PORT='eighty' is not an integer port"
