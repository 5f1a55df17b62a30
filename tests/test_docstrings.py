"""Every public name of ``plugins/pipeline_hub`` says what it does, and no module grows past ~400 lines.

Read with :mod:`ast` (nothing is imported): a module-level function or class whose name has no leading
underscore, and a public method of a public class (``__init__`` and other dunders excluded), must have
a docstring. Properties count as methods. Overloads and ``@typing.overload`` stubs are not used here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "plugins" / "pipeline_hub"
# The dev-services package (its own distribution) follows the same rules.
DEV = Path(__file__).resolve().parents[1] / "infra" / "devservices" / "pipeline_hub_dev"
MAX_LINES = 420
TOO_LONG_ALLOWED: set[str] = set()
UNDOCUMENTED_ALLOWED: set[str] = set()


def public(name: str) -> bool:
    return not name.startswith("_")


def undocumented(path: Path, root: Path | None = None) -> list[str]:
    """``"<file>:<line> <name>"`` for every public function, class or method of a public class without a docstring."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(root or PKG)
    missing = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and public(node.name):
            if ast.get_docstring(node) is None:
                missing.append(f"{rel}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                        and public(item.name)
                        and ast.get_docstring(item) is None
                    ):
                        missing.append(f"{rel}:{item.lineno} {node.name}.{item.name}")
    return missing


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def test_the_dev_services_package_follows_the_same_rules():
    paths = sorted(DEV.rglob("*.py"))
    assert paths, DEV
    long = {p.name: n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    missing = [m for p in paths for m in undocumented(p, DEV)]
    assert (long, missing) == ({}, [])


def test_every_public_function_class_and_method_has_a_docstring():
    missing = [
        m
        for path in modules()
        if path.relative_to(PKG).as_posix() not in UNDOCUMENTED_ALLOWED
        for m in undocumented(path)
    ]
    assert missing == [], "add docstrings (shapes, units, errors raised, sources):\n" + "\n".join(missing)


def test_no_module_is_over_the_size_limit():
    long = {
        path.relative_to(PKG).as_posix(): n
        for path in modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert {p: n for p, n in long.items() if p not in TOO_LONG_ALLOWED} == {}, f"split modules over {MAX_LINES} lines"


def test_the_checks_catch_a_missing_docstring_and_a_long_module(tmp_path, monkeypatch):
    fake = tmp_path / "pipeline_hub"
    fake.mkdir()
    (fake / "m.py").write_text(
        '"""Doc."""\n\n\ndef f():\n    pass\n\n\ndef _private():\n    pass\n\n\n'
        'class C:\n    """Doc."""\n\n    def __init__(self):\n        pass\n\n    def run(self):\n        pass\n'
    )
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    assert undocumented(fake / "m.py") == ["m.py:4 f", "m.py:18 C.run"]
