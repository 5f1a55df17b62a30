"""Style is checked in CI like behaviour: ruff lint and format over the project's Python."""

import subprocess
import sys

from conftest import REPO

TARGETS = ["plugins", "dags", "tests", "benchmarks", "infra/devservices"]


def test_ruff_check():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", *TARGETS], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_ruff_format():
    cmd = [sys.executable, "-m", "ruff", "format", "--check", *TARGETS]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
