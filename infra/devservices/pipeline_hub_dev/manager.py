"""``up``, ``down``, ``status``, ``endpoints`` and ``write_env_file`` of the dev services (``s3``: SeaweedFS,
``llm``: the llama.cpp server), recorded in pid/state files under the home directory."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import connections
from .config import (
    LLM_READY_TIMEOUT,
    S3_READY_TIMEOUT,
    SERVICES,
    STOP_TIMEOUT,
    ServiceEndpoints,
    ServicesConfig,
)
from .connections import aws_connection, llm_connection
from .credentials import ensure_pii_key, s3_credentials, write_private
from .errors import ServiceStartError
from .llama import LlamaServer, ensure_model, llama_cpp_available
from .process import ManagedProcess, process_group_alive, terminate_process_group
from .seaweedfs import SeaweedFS, SeaweedPorts, remove_weed_sockets
from .state import clear, live_pid, locked, read_state, record, running_port


@dataclass(frozen=True)
class ServiceStatus:
    """One service as seen by :func:`status`.

    ``state``: ``"running"``, ``"stopped"`` or ``"external"`` (a user override is configured);
    ``pid``: of the running process (else None); ``endpoint``: URL it serves (or would serve);
    ``log``: its log file; ``detail``: extra remarks (stale pid file, not installed, ...).
    """

    name: str
    state: str
    pid: int | None
    endpoint: str | None
    log: Path
    detail: str = ""

    @property
    def running(self) -> bool:
        """True when the service's process is alive."""
        return self.state == "running"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: the fields, ``log`` as a string."""
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "endpoint": self.endpoint,
            "log": str(self.log),
            "detail": self.detail,
        }

    def __str__(self) -> str:
        pid = f"pid={self.pid}" if self.pid else "pid=-"
        text = f"{self.name:<4} {self.state:<8} {pid:<12} {self.endpoint or '-'}  log={self.log}"
        return f"{text}  ({self.detail})" if self.detail else text


def _check_names(services: Iterable[str] | None) -> tuple[str, ...]:
    names = tuple(SERVICES if services is None else services)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service(s) {unknown}; choose from {list(SERVICES)}")
    return names


def _seaweed_for(config: ServicesConfig, base_port: int | None = None) -> SeaweedFS:
    creds = s3_credentials(config.home)
    return SeaweedFS(
        config.s3_dir,
        base_port=base_port or config.s3_port,
        buckets=config.buckets,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        log_path=config.log_file("s3"),
        host=config.host,
    )


def _up_s3(config: ServicesConfig, timeout: float | None) -> dict[str, Any]:
    if override := connections.s3_override(config):
        var, url = override
        return {"state": "external", "endpoint": url, "message": f"{var} is set; not starting SeaweedFS"}
    notes = []
    pid, alive = live_pid(config, "s3")
    if alive and pid is not None:
        recorded = read_state(config, "s3").get("port")
        server = _seaweed_for(config, int(recorded) if recorded else None)
        server.attach(pid)
        try:  # make sure the (possibly reconfigured) buckets exist
            server.wait_ready(timeout=10)
        except ServiceStartError as exc:
            notes.append(f"running but not answering: {str(exc).splitlines()[0]}")
        return {
            "state": "already running",
            "pid": pid,
            "endpoint": server.endpoint_url,
            "log": str(server.log_path),
            "message": "; ".join(notes),
        }
    if pid is not None:
        clear(config, "s3")
        notes.append(f"removed stale pid file (pid {pid})")
    server = _seaweed_for(config)
    state = {
        "endpoint": server.endpoint_url,
        "port": server.ports.base,
        "ports": server.ports.as_dict(),
        "buckets": list(server.buckets),
        "log": str(server.log_path),
        "data_dir": str(server.data_dir),
    }
    return _start_recorded(config, "s3", server, state, timeout or S3_READY_TIMEOUT, notes)


def _start_recorded(
    config: ServicesConfig,
    name: str,
    server: ManagedProcess,
    state: dict[str, Any],
    timeout: float,
    notes: list[str],
) -> dict[str, Any]:
    """Start ``server``, record its pid and ``state``, wait until ready (stopping it on failure)."""
    pid = server.start()
    record(config, name, pid, {**state, "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
    try:
        server.wait_ready(timeout=timeout)
    except BaseException:
        server.stop()
        clear(config, name)
        raise
    return {
        "state": "started",
        "pid": pid,
        "endpoint": state["endpoint"],
        "log": state["log"],
        "message": "; ".join(notes),
    }


def _up_llm(config: ServicesConfig, timeout: float | None) -> dict[str, Any]:
    if override := connections.llm_override(config):
        var, url = override
        return {
            "state": "external",
            "endpoint": url,
            "message": f"{var} is set; not starting the llama.cpp server",
        }
    notes = []
    pid, alive = live_pid(config, "llm")
    if alive and pid is not None:
        state = read_state(config, "llm")
        return {
            "state": "already running",
            "pid": pid,
            "endpoint": state.get("endpoint", config.llm_base_url),
            "log": str(config.log_file("llm")),
            "message": "",
        }
    if pid is not None:
        clear(config, "llm")
        notes.append(f"removed stale pid file (pid {pid})")
    if not llama_cpp_available():
        return {
            "state": "skipped",
            "endpoint": None,
            "log": str(config.log_file("llm")),
            "message": "llama-cpp-python is not installed (optional; `make demo` installs it): llm service skipped",
        }
    model = ensure_model(config.models_dir)
    server = LlamaServer(model, config.llm_port, log_path=config.log_file("llm"), host=config.host)
    state = {
        "endpoint": server.base_url,
        "port": server.port,
        "model": str(model),
        "alias": server.model_alias,
        "log": str(server.log_path),
    }
    return _start_recorded(config, "llm", server, state, timeout or LLM_READY_TIMEOUT, notes)


def up(
    services: Iterable[str] = SERVICES,
    home: Path | str | None = None,
    *,
    config: ServicesConfig | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Start the requested embedded services (idempotent), then write ``env.sh``.

    ``services``: subset of ``("s3", "llm")``; ``home``: state dir (see :func:`resolve_home`);
    ``config``: overrides ports/buckets (default :meth:`ServicesConfig.from_env`); ``timeout``: readiness
    timeout in seconds per service (default 60 for s3, 180 for llm).

    Returns ``{"home": str, "env_file": str, "pii_key_file": str, "services": {name: {"state", "pid",
    "endpoint", "log", "message"}}}`` where state is ``started``, ``already running``, ``external``
    (user override, not started) or ``skipped`` (llm without llama-cpp-python).

    Raises ValueError for unknown names, :class:`PortInUseError`, :class:`ServiceStartError` (process
    died or not ready; the message names the log), :class:`ModelAssemblyError`.
    """
    names = _check_names(services)
    config = config or ServicesConfig.from_env(home)
    ensure_pii_key(config.home)
    results: dict[str, Any] = {}
    with locked(config):
        try:
            for name in SERVICES:  # s3 first: it is quick and needed by everything
                if name in names:
                    results[name] = (_up_s3 if name == "s3" else _up_llm)(config, timeout)
        finally:
            env_file = write_env_file(config.env_file, config=config)
    return {
        "home": str(config.home),
        "env_file": str(env_file),
        "pii_key_file": str(config.pii_key_file),
        "services": results,
    }


def down(
    services: Iterable[str] | None = None,
    home: Path | str | None = None,
    *,
    timeout: float = STOP_TIMEOUT,
) -> dict[str, str]:
    """Stop the embedded services (default: all): SIGTERM to the process group, SIGKILL after
    ``timeout`` s; pid and state files are removed. Returns ``{name: outcome}`` with outcome
    ``stopped``, ``killed``, ``not running`` or ``stale pid file removed``. Raises ValueError for
    unknown names."""
    names = _check_names(services)
    config = ServicesConfig.from_env(home)
    outcomes: dict[str, str] = {}
    with locked(config):
        for name in names:
            pid, alive = live_pid(config, name)
            if pid is None:
                outcome = "not running"
            elif not alive:
                outcome = "stale pid file removed"
            else:
                outcome = terminate_process_group(pid, timeout)
                port = read_state(config, name).get("port")
                if name == "s3" and port and not process_group_alive(pid):
                    remove_weed_sockets(SeaweedPorts(int(port)))
            clear(config, name)
            outcomes[name] = outcome
    return outcomes


def status(home: Path | str | None = None) -> list[ServiceStatus]:
    """State of every embedded service (``s3``, ``llm``), read from pid/state files; changes nothing."""
    config = ServicesConfig.from_env(home)
    out = []
    for name in SERVICES:
        log = config.log_file(name)
        pid, alive = live_pid(config, name)
        default_url = config.s3_endpoint_url if name == "s3" else config.llm_base_url
        if alive:
            endpoint = read_state(config, name).get("endpoint", default_url)
            out.append(ServiceStatus(name, "running", pid, endpoint, log))
            continue
        override = connections.s3_override(config) if name == "s3" else connections.llm_override(config)
        if override:
            out.append(ServiceStatus(name, "external", None, override[1], log, f"{override[0]} is set"))
            continue
        detail = f"stale pid file (pid {pid})" if pid is not None else ""
        if name == "llm" and not llama_cpp_available():
            detail = "; ".join(filter(None, [detail, "llama-cpp-python not installed"]))
        out.append(ServiceStatus(name, "stopped", None, default_url, log, detail))
    return out


def endpoints(home: Path | str | None = None) -> ServiceEndpoints:
    """Endpoint URLs to use: user overrides if configured, else the running embedded services' (or the
    configured ports when they are not running)."""
    config = ServicesConfig.from_env(home)
    s3_override, llm_override = connections.s3_override(config), connections.llm_override(config)
    s3_port = running_port(config, "s3") or config.s3_port
    llm_port = running_port(config, "llm") or config.llm_port
    return ServiceEndpoints(
        s3=s3_override[1] if s3_override else f"http://{config.host}:{s3_port}",
        llm=llm_override[1] if llm_override else f"http://{config.host}:{llm_port}/v1",
        s3_external=s3_override is not None,
        llm_external=llm_override is not None,
    )


def write_env_file(
    path: Path | str | None = None,
    home: Path | str | None = None,
    *,
    config: ServicesConfig | None = None,
) -> Path:
    """Write a shell-sourceable file (default ``<home>/env.sh``, mode 0600: it holds the S3 secret).

    Exports ``AIRFLOW_CONN_AWS_DEFAULT`` (embedded SeaweedFS; omitted when the user's environment
    already configures S3), ``AIRFLOW_CONN_LLM_DEFAULT`` (only when an LLM is configured: a
    ``PIPELINE_HUB_LLM_ENDPOINT``, or the embedded llama.cpp server being installed or running; omitted
    when the user's environment already has it) and ``PIPELINE_HUB_PII_KEY_FILE`` (key generated if
    missing). Values are quoted with :func:`shlex.quote`. Returns the path written.
    """
    config = config or ServicesConfig.from_env(home)
    path = Path(path) if path else config.env_file
    key_file = ensure_pii_key(config.home)
    s3_port = running_port(config, "s3") or config.s3_port
    llm_port = running_port(config, "llm")
    lines = [
        "# Generated by pipeline_hub_dev.manager.write_env_file (pipeline-hub services up). Source it:",
        f"#   . {shlex.quote(str(path))}",
    ]

    def export(name: str, value: str) -> None:
        lines.append(f"export {name}={shlex.quote(value)}")

    if s3_override := connections.s3_override(config):
        lines.append(f"# AIRFLOW_CONN_AWS_DEFAULT not written: {s3_override[0]} is set in the environment")
    else:
        creds = s3_credentials(config.home)
        conn = aws_connection(f"http://{config.host}:{s3_port}", creds.access_key, creds.secret_key)
        export("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    llm_override = connections.llm_override(config)
    if llm_override and llm_override[0] == "AIRFLOW_CONN_LLM_DEFAULT":
        lines.append("# AIRFLOW_CONN_LLM_DEFAULT not written: already set in the environment")
    elif llm_override and llm_override[1]:
        export("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(llm_connection(llm_override[1])))
    elif llm_port is not None or llama_cpp_available():
        base_url = f"http://{config.host}:{llm_port or config.llm_port}/v1"
        export("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(llm_connection(base_url)))
    else:
        lines.append("# AIRFLOW_CONN_LLM_DEFAULT not written: no LLM configured (install the llm extra to run")
        lines.append("# llama.cpp locally, or set PIPELINE_HUB_LLM_ENDPOINT / AIRFLOW_CONN_LLM_DEFAULT)")
    export("PIPELINE_HUB_PII_KEY_FILE", str(key_file))
    write_private(path, "\n".join(lines) + "\n")
    return path
