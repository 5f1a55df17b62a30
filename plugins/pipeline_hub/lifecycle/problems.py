"""Findings of the registry checks (:mod:`pipeline_hub.lifecycle.validation`) and where they are: a
:class:`Problem` is ``path:line: message``; :class:`Located` maps a key path of a YAML/JSON document to
its line (PyYAML node marks; PyYAML's composer also reads JSON).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: the file, its 1-based line, and what is wrong (never record content beyond ids)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class Located:
    """A YAML (or JSON) document with node positions, to turn a key path into a line number."""

    def __init__(self, text: str) -> None:
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def line(self, path: Sequence[str | int], *, key: bool = False) -> int:
        """1-based line of the value at ``path`` (of its key when ``key``); the deepest found parent otherwise."""
        node, line = self.root, 1
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
                if match is None:
                    return line
                line = (match[0] if key else match[1]).start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def jsonable(value: Any) -> Any:
    """YAML data as JSON data: dates (``created: 2026-11-22``) become ISO strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def path_text(path: Iterable[str | int]) -> str:
    """A key path as text: ``["versions", "1.0.0", "template"]`` → ``versions.1.0.0.template``, list items as
    ``[i]``; ``(top level)`` for the empty path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shorten(text: str, limit: int = 160) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with a trailing ``…``."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
