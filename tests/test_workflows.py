"""The GitHub Actions workflows (.github/workflows/) and the deployment scripts they call.

Structural lint without network or runner: the files load, every job is well-formed, every `make` target,
`pipeline-hub` command and repository path they use exists, actions are pinned, credentials come only
from OIDC and repository secrets, and CD gates, smoke-tests and rolls back in that order. The prompt gate's
choice of changed topics is tested on a real git repository.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
# `make` targets the Terraform slice of issue 6 adds (required once infra/terraform/ is in the tree).
TERRAFORM_SLICE_TARGETS = {"checkov"}


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def workflows() -> dict[str, dict]:
    return {p.name: load(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


def run_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, re.MULTILINE))


def cli_commands() -> set[str]:
    from typer.main import get_command

    from pipeline_hub.cli import app

    return set(get_command(app).commands)


def test_workflows_exist_and_load():
    assert set(workflows()) >= {"ci.yml", "cd.yml"}
    for name, wf in workflows().items():
        assert wf.get("name") and wf["on"] and wf["jobs"], name


def test_jobs_are_well_formed():
    for name, wf in workflows().items():
        jobs = wf["jobs"]
        for job_id, job in jobs.items():
            assert job.get("runs-on"), (name, job_id)
            assert job.get("timeout-minutes"), (name, job_id)  # no job may hang for 6 hours
            needs = job.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                assert need in jobs, (name, job_id, need)
            for step in job["steps"]:
                assert ("uses" in step) != ("run" in step), (name, job_id, step)
                if "uses" in step:  # pinned to a release (major tag) or a commit, never a branch
                    assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]), step["uses"]


def test_scripts_only_call_existing_make_targets():
    targets = make_targets()
    terraform_slice = (REPO / "infra" / "terraform").is_dir()
    for name, wf in workflows().items():
        for script in run_scripts(wf):
            for target in re.findall(r"(?:^|[;&|]\s*|\n\s*)make\s+([A-Za-z0-9_.-]+)", script):
                if target in TERRAFORM_SLICE_TARGETS and not terraform_slice:
                    continue  # comes with infra/terraform/
                assert target in targets, f"{name}: make {target} is not a Makefile target"


def test_scripts_only_call_existing_cli_commands():
    commands = cli_commands()
    used = set()
    for wf in workflows().values():
        for script in run_scripts(wf):
            used.update(re.findall(r"pipeline-hub\s+([a-z][a-z-]*)", script))
    assert used, "the workflows run no pipeline-hub command"
    assert used <= commands, used - commands
    # The prompt gate script drives the CLI too.
    gate = (REPO / "infra" / "scripts" / "prompt_gate.py").read_text()
    assert '"pipeline_hub", "score"' in gate and "score" in commands and "promote" in commands


def test_scripts_reference_existing_paths():
    for name, wf in workflows().items():
        for script in run_scripts(wf):
            for path in re.findall(r"(?:^|\s)((?:infra|benchmarks|tests|\.venv/bin)/[\w./-]+)", script):
                if path.startswith(".venv/bin/"):
                    assert path.rsplit("/", 1)[1] in ("python", "pipeline-hub", "airflow", "pytest", "ruff"), path
                    continue
                assert (REPO / path).exists(), f"{name}: {path} does not exist"


def test_ci_runs_lint_registry_tests_iac_and_image():
    ci = load("ci.yml")
    scripts = "\n".join(run_scripts(ci))
    assert "ruff check" in scripts and "ruff format --check" in scripts
    assert "pipeline-hub validate" in scripts and ".ci/run" in scripts and "make checkov" in scripts
    assert "make test" in (REPO / ".ci" / "run").read_text()  # the README's test command, after chromium
    assert 'terraform fmt -check -recursive "$TF_ROOT"' in scripts
    assert "init -backend=false" in scripts and "validate" in scripts
    assert "docker compose config" in scripts
    builds = [s for j in ci["jobs"].values() for s in j["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert builds and builds[0]["with"]["push"] is False and builds[0]["with"]["target"] == "airflow"
    uses = [s["uses"] for j in ci["jobs"].values() for s in j["steps"] if "uses" in s]
    assert any(u.startswith("hashicorp/setup-terraform@") for u in uses)
    # The Terraform layout is named once, as a workflow variable.
    assert ci["env"]["TF_ROOT"] == "infra/terraform"
    assert len(re.findall(r"infra/terraform", (WORKFLOWS / "ci.yml").read_text())) == 1
    # The ruff CI installs is the one pinned for the tests.
    assert "grep -oE 'ruff==[0-9.]+' pyproject.toml" in scripts
    assert re.search(r'"ruff==[0-9.]+"', (REPO / "pyproject.toml").read_text())


def test_ci_has_no_credentials():
    text = (WORKFLOWS / "ci.yml").read_text()
    assert "secrets." not in text and "id-token" not in text
    assert load("ci.yml")["permissions"] == {"contents": "read"}


def test_cd_runs_after_ci_on_main_only():
    cd, ci = load("cd.yml"), load("ci.yml")
    trigger = cd["on"]["workflow_run"]
    assert trigger["workflows"] == [ci["name"]] and trigger["types"] == ["completed"]
    assert trigger["branches"] == ["main"]
    assert "success" in cd["jobs"]["deployed"]["if"]
    assert cd["concurrency"]["cancel-in-progress"] is False


def test_cd_credentials_come_from_oidc_and_repository_secrets():
    cd = load("cd.yml")
    text = (WORKFLOWS / "cd.yml").read_text()
    assert cd["permissions"] == {"contents": "read"}  # id-token only where AWS is assumed
    for job_id, job in cd["jobs"].items():
        steps = job["steps"]
        assumes = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        if assumes:
            assert job["permissions"]["id-token"] == "write", job_id
            for step in assumes:
                assert set(step["with"]) == {"role-to-assume", "aws-region"}, step["with"]
                assert step["with"]["role-to-assume"].startswith("${{ secrets."), job_id
        else:
            assert "id-token" not in job.get("permissions", {}), job_id
    assert not re.search(r"aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID", text)
    for ref in re.findall(r"\$\{\{\s*secrets\.(\w+)", text):
        assert ref in {"AWS_DEPLOY_ROLE_ARN", "LLM_CONN_DEFAULT"}, ref


def test_cd_gates_then_deploys_then_smokes_then_rolls_back():
    jobs = load("cd.yml")["jobs"]
    gate = "\n".join(s.get("run", "") for s in jobs["prompt-gate"]["steps"])
    assert "infra/scripts/prompt_gate.py" in gate
    deploy = jobs["deploy"]
    assert "prompt-gate" in deploy["needs"] and deploy["environment"] == "production"
    runs = [s.get("run", "") for s in deploy["steps"]]
    order = [
        next(i for i, r in enumerate(runs) if f"ecs_deploy.sh {cmd}" in r)
        for cmd in ("snapshot", "deploy", "smoke", "rollback")
    ]
    assert order == sorted(order)
    rollback = deploy["steps"][order[3]]
    assert rollback["if"].startswith("failure()") and "previous-release.json" in rollback["run"]
    build = next(s for s in deploy["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["push"] is True and build["with"]["tags"].endswith(":${{ env.RELEASE_SHA }}")


def test_deploy_script_has_valid_syntax_and_every_subcommand():
    script = REPO / "infra" / "scripts" / "ecs_deploy.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2
    for cmd in ("deployed-sha", "snapshot", "deploy", "smoke", "rollback"):
        assert f"ecs_deploy.sh {cmd}" in usage.stdout, cmd
    missing = subprocess.run(
        ["bash", str(script), "snapshot", "x.json"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert missing.returncode == 2 and "ECS_CLUSTER is not set" in missing.stderr


# --- the prompt gate's choice of topics, on a real git repository ---------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def prompt_repo(tmp_path):
    repo = tmp_path / "repo"
    for topic in ("alpha", "beta"):
        d = repo / "include" / "prompts" / topic
        d.mkdir(parents=True)
        (d / "metadata.yaml").write_text("versions:\n  v1: {}\n  v2: {}\ndev: v1\nprod: v1\n")
        (d / "prompts").mkdir()
        (d / "prompts" / f"{topic}_v1.j2").write_text("{{ record }}")
    (repo / "include" / "prompts" / "_shared").mkdir()
    (repo / "include" / "prompts" / "_shared" / "base.j2").write_text("base")
    (repo / "README.md").write_text("x")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


@pytest.fixture
def gate_module():
    sys.path.insert(0, str(REPO / "infra" / "scripts"))
    try:
        import prompt_gate

        yield prompt_gate
    finally:
        sys.path.remove(str(REPO / "infra" / "scripts"))


def test_gate_picks_the_topics_a_release_changes(prompt_repo, gate_module):
    base = _git(prompt_repo, "rev-parse", "HEAD")
    assert gate_module.changed_topics(base, "HEAD", cwd=prompt_repo) == []
    assert gate_module.changed_topics(None, "HEAD", cwd=prompt_repo) == ["alpha", "beta"]  # first deployment

    (prompt_repo / "README.md").write_text("y")  # not a prompt
    meta = prompt_repo / "include" / "prompts" / "beta" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("prod: v1", "prod: v2"))
    _git(prompt_repo, "commit", "-qam", "promote beta")
    assert gate_module.changed_topics(base, "HEAD", cwd=prompt_repo) == ["beta"]
    assert gate_module.prod_at(base, "beta", cwd=prompt_repo) == "v1"
    assert gate_module.prod_at("HEAD", "beta", cwd=prompt_repo) == "v2"
    assert gate_module.prod_at("HEAD", "gamma", cwd=prompt_repo) is None

    (prompt_repo / "include" / "prompts" / "_audit.jsonl").write_text("{}\n")  # the audit log alone: no topic
    _git(prompt_repo, "add", ".")
    _git(prompt_repo, "commit", "-qm", "audit")
    assert gate_module.changed_topics(base, "HEAD", cwd=prompt_repo) == ["beta"]

    (prompt_repo / "include" / "prompts" / "_shared" / "base.j2").write_text("base 2")  # shared partial: all
    _git(prompt_repo, "commit", "-qam", "shared")
    assert gate_module.changed_topics(base, "HEAD", cwd=prompt_repo) == ["alpha", "beta"]


def test_gate_cli_names_its_usage(gate_module):
    out = subprocess.run(
        [sys.executable, str(REPO / "infra" / "scripts" / "prompt_gate.py"), "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--base" in out.stdout and shlex.quote("--conn") in out.stdout


def test_gate_refuses_a_prod_version_below_its_minimum(stub, tmp_path):
    """The CD gate end to end: `pipeline-hub score` against the stub (schema-valid but arbitrary labels),
    then the promote gate: below gate.min, so exit 1 naming the check, and gate.json records it."""
    import json
    import os

    env = {
        **os.environ,
        "PIPELINE_HUB_ARTIFACTS_URI": str(tmp_path / "artifacts"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "PYTHONPATH": str(REPO / "plugins"),
    }
    env.pop("GATE_BASE", None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "infra" / "scripts" / "prompt_gate.py"), "--topics", "industry_classification"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "industry_classification: prod v1 against v1: FAILED" in proc.stdout
    assert "(gate.min)" in proc.stdout
    report = json.loads((tmp_path / "artifacts" / "gate.json").read_text())
    topic = report["topics"]["industry_classification"]
    assert topic["passed"] is False and any("gate.min" in f for f in topic["failures"])
    assert stub.calls > 0  # really scored through the model connection
    assert (tmp_path / "artifacts" / "reports" / "industry_classification" / "v1" / "score.json").is_file()


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_gate_report_goes_to_the_artifacts_uri_local_or_object_store(gate_module, tmp_path, monkeypatch, scheme):
    """``gate.json`` lands under ``PIPELINE_HUB_ARTIFACTS_URI`` whether it is a path or a URI (was: a URI
    was turned into a local ``s3:/…`` folder, or skipped)."""
    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", f"{scheme}{tmp_path / 'artifacts'}")
    assert gate_module.main(["--base", "HEAD", "--head", "HEAD"]) == 0  # no prompt change: nothing to gate
    report = json.loads((tmp_path / "artifacts" / "gate.json").read_text())
    assert report["topics"] == {} and len(report["head"]) == 40
