"""Pid and state files of the dev services (``<home>/run/<service>.pid`` and ``.json``) and the lock
that serialises up/down on one home directory."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from .config import ServicesConfig
from .credentials import write_private
from .process import pid_alive, process_cmdline


def read_state(config: ServicesConfig, service: str) -> dict[str, Any]:
    """``run/<service>.json`` as a dict (endpoint, port, log, ...); ``{}`` when missing or unreadable."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(config.state_file(service).read_text())
        if isinstance(data, dict):
            return data
    return {}


def read_pid(config: ServicesConfig, service: str) -> int | None:
    """The pid in ``run/<service>.pid``, or None when missing or not an integer."""
    with contextlib.suppress(OSError, ValueError):
        return int(config.pid_file(service).read_text().strip())
    return None


# Words the command line of a pid-file process must contain to be taken for our service (pid reuse).
_TOKENS = {"s3": ("weed", "mini"), "llm": ("llama_cpp.server",)}


def live_pid(config: ServicesConfig, service: str) -> tuple[int | None, bool]:
    """(pid from the pid file, whether it is alive and still our service's process)."""
    pid = read_pid(config, service)
    if pid is None or pid <= 1 or pid == os.getpid():
        return pid, False
    if not pid_alive(pid):
        return pid, False
    cmdline = process_cmdline(pid)
    return pid, cmdline is None or all(token in cmdline for token in _TOKENS[service])


def running_port(config: ServicesConfig, service: str) -> int | None:
    """The port recorded for ``service`` when its process is alive, else None."""
    pid, alive = live_pid(config, service)
    if not alive:
        return None
    port = read_state(config, service).get("port")
    return int(port) if port else None


def clear(config: ServicesConfig, service: str) -> None:
    """Remove the pid and state files of ``service``."""
    for path in (config.pid_file(service), config.state_file(service)):
        path.unlink(missing_ok=True)


def record(config: ServicesConfig, service: str, pid: int, state: dict[str, Any]) -> None:
    """Write ``run/<service>.json`` (``{"pid": pid, **state}``) and ``run/<service>.pid``, mode 0600."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    write_private(config.state_file(service), json.dumps({"pid": pid, **state}, indent=2) + "\n")
    write_private(config.pid_file(service), f"{pid}\n")


@contextlib.contextmanager
def locked(config: ServicesConfig) -> Iterator[None]:
    """Serialise up/down on one home directory."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with open(config.run_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
