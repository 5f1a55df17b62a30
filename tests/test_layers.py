"""The package's import layers: no module imports from a layer above its own (README "Project layout").

Every ``import`` and ``from … import`` in ``plugins/pipeline_hub`` is read with :mod:`ast`, including the
ones inside functions (a lazy import is still a dependency). A module may import its own package and
any lower layer; the top-level packages of one layer (``lifecycle``, ``governance``, ``analytics``,
``orchestration``) may not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "plugins" / "pipeline_hub"

# Lowest first. A name is a module or package path below pipeline_hub; the longest prefix decides.
LAYERS: list[set[str]] = [
    {"exceptions", "reasons"},
    {"config"},
    {"hashing", "storage", "readers"},
    # Model cascades (issue 15): only base modules, numpy/scipy/rapidfuzz; the registry parses a version's.
    {"cascade"},
    {"providers"},
    {"prompts"},
    {"quality"},
    {"pii"},
    {"governance.register"},
    {"stages"},
    {"lifecycle", "governance", "analytics", "orchestration"},
    # The Prompt Hub view reads what every use of the pipeline writes (registry audit, manifests, DuckDB).
    {"cli", "__main__", "orchestration.ui"},
]
# Siblings that must not import each other (the other layers' members may).
INDEPENDENT = {"lifecycle", "governance", "analytics", "orchestration"}
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def unit(dotted: str) -> str | None:
    """The layer unit of ``pipeline_hub.<dotted>``: the longest prefix named in :data:`LAYERS`."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def imported(path: Path, dotted: str) -> set[str]:
    """Project modules ``path`` imports, as dotted names below ``pipeline_hub``."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline_hub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["pipeline_hub", *dotted.split(".")] if dotted else ["pipeline_hub"]
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "pipeline_hub":
                found |= {f"pipeline_hub.{a.name}" for a in node.names}
            elif mod.startswith("pipeline_hub."):
                found.add(mod)
    return {m.removeprefix("pipeline_hub.") for m in found if m != "pipeline_hub" and m != "pipeline_hub.__version__"}


def violations() -> list[str]:
    bad = []
    for dotted, path in modules():
        if not dotted:
            continue  # the package's own __init__ (version only)
        me = unit(dotted)
        assert me is not None, f"{path}: module not in any layer of tests/test_layers.py LAYERS"
        for target in sorted(imported(path, dotted)):
            them = unit(target)
            if them is None:
                bad.append(f"{path.relative_to(PKG)}: imports pipeline_hub.{target}, which is in no layer")
            elif them.split(".")[0] == me.split(".")[0] and not (them == "governance.register" and me != them):
                continue  # own package
            elif RANK[them] > RANK[me] or (RANK[them] == RANK[me] and them != me and me in INDEPENDENT):
                bad.append(
                    f"{path.relative_to(PKG)} ({me}) imports pipeline_hub.{target} ({them}), a layer above or beside"
                )
    return bad


def test_every_module_is_in_a_layer_and_imports_flow_down():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "pipeline_hub"
    (fake / "providers").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "providers" / "__init__.py").write_text("")
    (fake / "providers" / "hook.py").write_text("def f():\n    from pipeline_hub.stages import prompt\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    assert violations() == [
        "providers/hook.py (providers) imports pipeline_hub.stages (stages), a layer above or beside"
    ]


@pytest.mark.parametrize(
    "dotted",
    [
        "stages",
        "pii",
        "providers",
        "lifecycle",
        "governance",
        "analytics",
        "orchestration",
        "prompts",
        "quality",
        "cascade",
        "cli",
    ],
)
def test_each_package_says_what_lives_there_and_what_it_may_import(dotted):
    doc = ast.get_docstring(ast.parse((PKG / dotted / "__init__.py").read_text())) or ""
    assert len(doc) > 80 and "import" in doc.lower(), (
        f"pipeline_hub.{dotted}: module docstring must say what it may import"
    )
