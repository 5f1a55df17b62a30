"""Style is checked in CI like behaviour: ruff lint and format over the project's Python, and deptry over
the runtime code (plugins/, dags/) against pyproject.toml ([tool.deptry] there says what it ignores, and
why)."""

import subprocess
import sys

from conftest import REPO

TARGETS = ["plugins", "dags", "tests", "benchmarks", "infra/devservices"]
RUNTIME = ["plugins", "dags"]  # runtime code: the pipeline_hub package and the DAGs


def test_ruff_check():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", *TARGETS], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_ruff_format():
    cmd = [sys.executable, "-m", "ruff", "format", "--check", *TARGETS]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_deptry_dependencies_match_imports():
    """Runtime code imports only declared runtime dependencies (no transitive or test/demo-only packages),
    and every declared runtime dependency is used or listed, with its reason, in [tool.deptry]."""
    cmd = [sys.executable, "-m", "deptry", "--no-ansi", *RUNTIME]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    # deptry reports on stderr, after a note for each declared package that is not installed here.
    report = [line for line in out.stderr.splitlines() if not line.startswith("Assuming the corresponding module")]
    assert out.returncode == 0, f"deptry {' '.join(RUNTIME)} (pyproject.toml [tool.deptry]):\n" + "\n".join(report)
