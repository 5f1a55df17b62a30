"""The hashed lock files (README "Dependencies and the lock") agree with the pins in the pyproject files.

A pin changed in pyproject.toml without `make lock` fails here, before `make install` would install the old
version (it installs the lock with `--no-deps`) and `pip check` would complain.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

LOCKS = ("infra/lock/base.lock", "infra/lock/demo.lock", "infra/lock/scale.lock", "infra/lock/image.lock")
FIRST_PARTY = {"prompt-pipeline-hub", "pipeline-hub-devservices"}
# One locked requirement: `name==version [; marker] \` then its `--hash=sha256:...` lines.
ENTRY = re.compile(
    r"^([A-Za-z0-9][\w.-]*)==(\S+?)(?: ;[^\\\n]*)? \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.MULTILINE
)


def locked(name: str) -> dict[str, set[str]]:
    """Map canonical package name -> locked versions (several only where a marker splits them) of one lock."""
    versions: dict[str, set[str]] = {}
    for package, version, _hashes in ENTRY.findall((REPO / name).read_text()):
        versions.setdefault(canonicalize_name(package), set()).add(version)
    return versions


def pins(path: str, *, extras: tuple[str, ...] = (), base: bool = True) -> dict[str, str]:
    """Map canonical name -> pinned version of a pyproject's dependencies (if `base`) and the given extras."""
    project = tomllib.loads((REPO / path).read_text())["project"]
    lines = list(project["dependencies"]) if base else []
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    out = {}
    for line in lines:
        req = Requirement(line)
        if canonicalize_name(req.name) in FIRST_PARTY:
            continue
        (spec,) = req.specifier  # every direct dependency is pinned with ==
        assert spec.operator == "==", line
        out[canonicalize_name(req.name)] = spec.version
    return out


def expected(lock: str) -> dict[str, str]:
    """The direct pins each lock must carry (the inputs `make lock` compiles it from)."""
    devservices = (REPO / "infra/devservices/pyproject.toml").exists()
    dev = pins("infra/devservices/pyproject.toml") if devservices else {}
    base = pins("pyproject.toml", extras=("test",)) | dev
    if lock == "infra/lock/base.lock":
        return base
    if lock == "infra/lock/demo.lock":
        demo = pins("infra/devservices/pyproject.toml", extras=("llm",)) if devservices else {}
        return base | (demo or pins("pyproject.toml", extras=("demo",), base=False))
    if lock == "infra/lock/scale.lock":
        return base | pins("pyproject.toml", extras=("scale",), base=False)
    return pins("pyproject.toml", extras=("scale",))


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_pinned_and_hashed(lock):
    text = (REPO / lock).read_text()
    requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert requirements and len(requirements) == len(ENTRY.findall(text)), "a requirement without == or hashes"
    assert not FIRST_PARTY & set(locked(lock)), "first-party packages are installed editable, not from the lock"
    assert "file:" not in text and "-e " not in text


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_carries_the_pyproject_pins(lock):
    versions = locked(lock)
    for name, version in expected(lock).items():
        assert versions.get(name) == {version}, f"{lock}: {name} is not locked at {version}: run `make lock`"


@pytest.mark.parametrize("lock", LOCKS[1:3])
def test_add_on_locks_keep_the_base_pins(lock):
    # install-demo / install-scale install these over infra/lock/base.lock: shared packages must not move.
    base, add_on = locked("infra/lock/base.lock"), locked(lock)
    assert {name: add_on[name] for name in base if name in add_on} == base
    assert set(base) <= set(add_on)


def test_image_lock_has_no_test_tools():
    assert not set(pins("pyproject.toml", extras=("test",), base=False)) & set(locked("infra/lock/image.lock"))
