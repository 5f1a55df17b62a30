"""Edits of a topic's ``metadata.yaml`` that move its labels, keeping comments and layout; label checks.

A topic has two top-level pointers, ``dev`` and ``prod`` (``dev: v2`` / ``prod: v1`` lines), and named
labels in a top-level mapping (Langfuse/MLflow alias semantics)::

    prod: v1
    labels:
      canary: v2   # comments stay
      eu: v1

:func:`set_pointer` rewrites one top-level pointer line, :func:`set_label` adds, moves or removes one
entry of ``labels:`` (a block mapping, or a one-line flow mapping ``labels: {canary: v2}``); every other
line stays byte for byte. Each edit is checked by parsing the result back (only the intended value may
change) and the file is replaced atomically (``os.replace``). :func:`label_problems` is what
``pipeline-hub validate`` checks about ``labels:``. Callers (:mod:`pipeline_hub.lifecycle.promotion`)
pass the gate and write the audit log; nothing here does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline_hub.exceptions import PromptError
from pipeline_hub.prompts.registry import LABEL_PATTERN, RESERVED_LABELS

LABELS_KEY = "labels"


class PromotionError(PromptError, ValueError):
    """The request itself is wrong: unknown topic/version/label, already there, nothing to roll back to."""


_POINTER = r"^{name}:[ \t]*([^\s#]+)([ \t]*(#.*)?)$"
_HEADER = re.compile(r"^labels:[ \t]*(?P<rest>[^#\n]*?)(?P<comment>[ \t]*#.*)?$")
_ENTRY = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[^\s:#][^:#]*?):[ \t]*(?P<value>[^\s#]+)(?P<tail>[ \t]*(#.*)?)$")


def _replace(meta_path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``meta_path`` and rename it over (atomic on POSIX)."""
    tmp = meta_path.with_name(f".{meta_path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, meta_path)


def set_pointer(meta_path: Path, pointer: str, version: str) -> str:
    """Rewrite only the top-level ``<pointer>: vN`` line of ``meta_path``; return the previous version.

    Comments and layout are kept. The file is replaced atomically. Raises :class:`PromotionError` when
    the line is not found exactly once or the result does not parse back to ``version``.
    """
    text = meta_path.read_text()
    pattern = re.compile(_POINTER.format(name=re.escape(pointer)), re.MULTILINE)
    matches = list(pattern.finditer(text))
    if len(matches) != 1:
        raise PromotionError(f"{meta_path}: expected one top-level '{pointer}: <version>' line, found {len(matches)}")
    previous = matches[0].group(1)
    updated = pattern.sub(lambda m: f"{pointer}: {version}{m.group(2)}", text)
    if (yaml.safe_load(updated) or {}).get(pointer) != version:
        raise PromotionError(f"{meta_path}: rewriting '{pointer}' did not give {version}")
    _replace(meta_path, updated)
    return previous


def read_labels(meta_path: Path) -> dict[str, str]:
    """The named labels of ``meta_path`` (``labels:``) as ``{label: version}``; {} when there are none."""
    labels = (yaml.safe_load(meta_path.read_text()) or {}).get(LABELS_KEY) or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _key(label: str) -> str:
    """``label`` as a YAML key: quoted when YAML would read it as something else (``on``, ``null``, ``1e3``)."""
    return label if yaml.safe_load(f"{label}: x") == {label: "x"} else f'"{label}"'


def _flow(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_key(k)}: {v}" for k, v in labels.items()) + "}"


def _edit(lines: list[str], label: str, version: str | None, wanted: dict[str, str], meta_path: Path) -> None:
    """Apply the change to ``lines`` (in place): the ``labels:`` header, one entry, or a new block."""
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    if len(headers) > 1:
        raise PromotionError(f"{meta_path}: more than one top-level 'labels:' line")
    if not headers:
        if version is None:
            return
        prod = [i for i, line in enumerate(lines) if re.match(r"^prod:", line)]
        at = prod[0] + 1 if prod else len(lines)
        lines[at:at] = ["labels:", f"  {_key(label)}: {version}"]
        return
    h = headers[0]
    header = _HEADER.match(lines[h])
    rest, comment = header.group("rest").strip(), header.group("comment") or ""
    comment = f"  {comment}" if comment and not comment[0].isspace() else comment
    if rest:  # one-line flow mapping: write it again
        if not (rest.startswith("{") and rest.endswith("}")):
            raise PromotionError(
                f"{meta_path}: 'labels' must be a block mapping or a one-line flow mapping {{name: vN}}; "
                "rewrite it by hand, then retry"
            )
        lines[h] = f"labels: {_flow(wanted)}{comment}"
        return
    end = next((i for i in range(h + 1, len(lines)) if lines[i][:1] not in ("", " ", "\t", "#")), len(lines))
    entries = {i: m for i in range(h + 1, end) if (m := _ENTRY.match(lines[i]))}
    mine = [i for i, m in entries.items() if m.group("key").strip("\"'") == label]
    if mine:
        i = mine[0]
        if version is None:
            del lines[i]
            if len(entries) == 1:  # the last label: an empty mapping, or no block at all
                others = any(lines[j].strip() and lines[j][0] in " \t" for j in range(h + 1, end - 1))
                lines[h : h + 1] = [f"labels: {{}}{comment}"] if others else []
        else:
            m = entries[i]
            lines[i] = f"{m.group('indent')}{m.group('key')}: {version}{m.group('tail')}"
    elif version is not None:
        last = max(entries, default=h)
        indent = entries[last].group("indent") if entries else "  "
        lines.insert(last + 1, f"{indent}{_key(label)}: {version}")


def set_label(meta_path: Path, label: str, version: str | None) -> str | None:
    """Point named ``label`` of ``meta_path`` at ``version`` (None removes it); return its previous version.

    Only the label's own line changes (a new label is added after the last one, a first label starts a
    ``labels:`` block after the ``prod:`` line; a one-line flow mapping is written again as one line).
    The result is parsed back: every key but ``labels`` must be unchanged and ``labels`` exactly what
    was asked, else :class:`PromotionError` and the file is left as it was. Atomic replace.
    """
    text = meta_path.read_text()
    before = yaml.safe_load(text) or {}
    previous = read_labels(meta_path).get(label)
    wanted = {k: v for k, v in read_labels(meta_path).items() if k != label or version is not None}
    if version is not None:
        wanted[label] = version
    lines = text.splitlines()
    _edit(lines, label, version, wanted, meta_path)
    updated = "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")
    after = yaml.safe_load(updated) or {}
    got = {str(k): str(v) for k, v in (after.get(LABELS_KEY) or {}).items()}
    rest_same = {k: v for k, v in after.items() if k != LABELS_KEY} == {
        k: v for k, v in before.items() if k != LABELS_KEY
    }
    if got != wanted or not rest_same:
        raise PromotionError(f"{meta_path}: rewriting label '{label}' did not give {wanted}; edit 'labels' by hand")
    _replace(meta_path, updated)
    return previous


def label_problems(meta: dict[str, Any]) -> list[tuple[list[str], str, bool]]:
    """What ``pipeline-hub validate`` reports about ``labels:`` of a parsed ``metadata.yaml``.

    ``[(key path, message, at the key?)]``: a reserved name (``dev``/``prod`` are top-level keys), a name
    not matching :data:`~pipeline_hub.prompts.registry.LABEL_PATTERN`, a label naming an undeclared
    version. The mapping's type and the version form are the metadata schema's.
    """
    labels = meta.get(LABELS_KEY)
    if not isinstance(labels, dict):
        return []
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    declared = ", ".join(sorted(versions)) or "none"
    found = []
    for name, target in labels.items():
        path = [LABELS_KEY, str(name)]
        if name in RESERVED_LABELS:
            reserved = f"label '{name}' is reserved: dev and prod are top-level keys, not inside 'labels'"
            found.append((path, reserved, True))
        elif not isinstance(name, str) or not LABEL_PATTERN.match(name):
            found.append((path, f"label name '{name}' must match {LABEL_PATTERN.pattern}", True))
        if isinstance(target, str) and target not in versions:
            found.append(
                (
                    path,
                    f"label '{name}' names version '{target}', which is not declared under 'versions' "
                    f"(declared: {declared})",
                    False,
                )
            )
    return found
