"""Detached server processes (own session and process group), pid/pgid helpers and free TCP ports.

Linux ``/proc`` based, with portable fallbacks. :class:`ManagedProcess` is the base of
:class:`pipeline_hub_dev.seaweedfs.SeaweedFS` and :class:`pipeline_hub_dev.llama.LlamaServer`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from .config import HOST, STOP_TIMEOUT
from .errors import ServiceError, ServiceStartError

# Popen objects of processes started by this interpreter, so that they are reaped (no zombies) and
# Python does not warn about still-running children being garbage-collected.
_CHILDREN: dict[int, subprocess.Popen] = {}


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


# --------------------------------------------------------------------------------------------------
# Processes and process groups


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


def process_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` (arguments joined by spaces) from /proc, or None when unreadable."""
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


class ManagedProcess:
    """A server process started fully detached: own session/process group, stdin from /dev/null,
    stdout+stderr appended to ``log_path``. Subclasses define :meth:`command` and :meth:`wait_ready`."""

    name = "process"

    def __init__(self, log_path: Path, cwd: Path | None = None):
        self.log_path = Path(log_path).resolve()
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self._pid: int | None = None

    def command(self) -> list[str]:
        """The command line to run."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Environment of the server process (default: a copy of ours)."""
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
        :meth:`preflight` raises (e.g. :class:`~pipeline_hub_dev.errors.PortInUseError`).
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
        """Block until the server answers; raise :class:`ServiceStartError` after ``timeout`` s."""
        raise NotImplementedError
