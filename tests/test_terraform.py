"""Terraform under infra/terraform: every file parses (python-hcl2) and is in ``terraform fmt``'s canonical
layout, checked by ``terraform fmt -check`` itself (skipped where the binary is not installed). The Terraform
stays consistent with the project: Glue tables generated from pipeline_hub.analytics.athena, bucket prefixes and
retention from README "Data layout", infra/s3/raw-lifecycle.json and pipeline_hub.governance.retention, and the
security properties of issue 6 (KMS rotation, TLS/KMS-only bucket policies, no delete on raw batches, CI
role bound to one repository and branch). Checkov runs separately (``make checkov``)."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

from pipeline_hub.analytics import athena
from pipeline_hub.config import include_dir
from pipeline_hub.governance import retention

from conftest import REPO

TF = REPO / "infra" / "terraform"
ROOT = TF / "envs" / "prod"
TF_FILES = sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tf_{name}", TF / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


glue_tables = _tool("glue_tables")


@functools.cache
def load(path: Path) -> dict:
    """``path`` parsed by python-hcl2 (strings unquoted, no comments); cached, do not mutate."""
    return hcl2.loads(path.read_text(), serialization_options=OPTIONS)


def blocks(doc: dict, kind: str) -> dict:
    """``{label: body}`` (one label: variable, module, output) or ``{(type, name): body}`` (resource, data)."""
    found = {}
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            if kind in ("resource", "data"):
                found.update({(label, name): b for name, b in body.items()})
            else:
                found[label] = body
    return found


def module_tf(module: str) -> dict:
    """Merged blocks of ``modules/<module>/*.tf``."""
    merged: dict = {}
    for f in sorted((TF / "modules" / module).glob("*.tf")):
        for kind, entries in load(f).items():
            merged.setdefault(kind, []).extend(entries)
    return merged


def statements(doc: dict, name: str) -> dict:
    """Statements of ``data "aws_iam_policy_document" name`` by sid (dynamic ones included)."""
    body = blocks(doc, "data")[("aws_iam_policy_document", name)]
    found = {s.get("sid", ""): s for s in body.get("statement", [])}
    for dyn in body.get("dynamic", []):
        for s in dyn.get("statement", {}).get("content", []):
            found[s["sid"]] = s
    return found


@pytest.fixture(scope="module")
def root() -> dict:
    merged: dict = {}
    for f in sorted(ROOT.glob("*.tf")):
        for kind, entries in load(f).items():
            merged.setdefault(kind, []).extend(entries)
    return merged


@pytest.fixture(scope="module")
def root_locals(root) -> dict:
    return {k: v for entry in root["locals"] for k, v in entry.items()}


# --- Syntax and layout ---------------------------------------------------------------------------------


def test_terraform_files_exist():
    names = {p.relative_to(TF).as_posix() for p in TF_FILES}
    for module in ("kms_key", "s3_bucket", "s3_access_logs", "worker_iam", "github_oidc", "glue_athena", "ecs_worker"):
        assert {f"modules/{module}/{f}.tf" for f in ("main", "variables", "outputs", "versions")} <= names
    assert {"envs/prod/main.tf", "envs/prod/variables.tf", "envs/prod/versions.tf"} <= names


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.relative_to(TF).as_posix())
def test_hcl_parses(path):
    assert load(path), f"{path}: parsed to nothing"


TERRAFORM = shutil.which("terraform")
NO_TERRAFORM = "terraform not found on PATH: install Terraform >= 1.6 to check the canonical layout (infra/README.md)"


def test_canonical_terraform_fmt_layout():
    """Every file is in ``terraform fmt``'s canonical layout, checked by ``terraform fmt`` itself (needs no
    network and no ``terraform init``); skipped where the binary is not installed."""
    if TERRAFORM is None:
        pytest.skip(NO_TERRAFORM)
    cmd = [TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TF)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (
        "infra/terraform: files not in terraform fmt's layout (run: terraform fmt -recursive infra/terraform)\n"
        + out.stdout
        + out.stderr
    )


# --- Glue tables from pipeline_hub.analytics.athena ----------------------------------------------------------------


def test_glue_tables_json_is_generated_from_athena():
    committed = (TF / "glue_tables.json").read_text()
    assert committed == glue_tables.render(), "stale: run make glue-tables (tools/glue_tables.py --write)"


def test_glue_tables_match_athena_ddl():
    """The catalog Terraform creates has the columns, partitions and folders of include/sql/athena_tables.sql."""
    tables = json.loads((TF / "glue_tables.json").read_text())["tables"]
    ddl = athena.parse_ddl((include_dir() / "sql" / athena.DDL_FILE).read_text())
    assert set(tables) == set(ddl)
    for name, table in tables.items():
        assert [(c["name"], c["type"]) for c in table["columns"]] == ddl[name]["columns"], name
        assert [(p["name"], p["type"]) for p in table["partitions"]] == ddl[name]["partitions"], name
        assert ddl[name]["location"] == "{sanitized_root}/" + table["folder"] + "/"
        assert table["parameters"]["projection.enabled"] == "true"
        assert table["parameters"]["storage.location.template"].startswith("{sanitized_root}/" + table["folder"])


def test_terraform_reads_the_generated_tables(root, root_locals):
    assert root_locals["glue_tables"] == '${jsondecode(file("${path.module}/../../glue_tables.json")).tables}'
    assert blocks(root, "module")["glue_athena"]["tables"] == "${local.glue_tables}"
    table = blocks(module_tf("glue_athena"), "resource")[("aws_glue_catalog_table", "this")]
    assert table["for_each"] == "${var.tables}"
    descriptor = table["storage_descriptor"][0]
    assert descriptor["ser_de_info"][0]["serialization_library"].endswith("ParquetHiveSerDe")
    assert "{sanitized_root}" in table["parameters"]


# --- Layout and retention consistent with the pipeline ----------------------------------------------------


def test_raw_lifecycle_matches_lifecycle_json_and_retention_default(root):
    rules = json.loads((REPO / "infra" / "s3" / "raw-lifecycle.json").read_text())["Rules"]
    raw = blocks(root, "module")["raw_bucket"]
    tf_rules = {r["id"]: r for r in raw["lifecycle_rules"]}
    assert set(tf_rules) == {r["ID"] for r in rules}
    for rule in rules:
        assert tf_rules[rule["ID"]]["prefix"] == rule["Filter"]["Prefix"]
        assert tf_rules[rule["ID"]]["expiration_days"] == "${var.raw_retention_days}"
        assert rule["Expiration"]["Days"] == retention.DEFAULT_DAYS
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == raw["noncurrent_version_days"]
    assert blocks(root, "variable")["raw_retention_days"]["default"] == retention.DEFAULT_DAYS
    quarantine = blocks(root, "module")["sanitized_bucket"]["lifecycle_rules"]
    assert [r["prefix"] for r in quarantine] == ["quarantine/"]


def test_prefixes_cover_readme_data_layout(root_locals):
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Data layout", 1)[1].split("```", 2)[1]
    used = {(m.group(1), m.group(2)) for m in re.finditer(r"s3://(raw|sanitized)/([A-Za-z_-]+)/", layout)}
    assert used, "README Data layout block not found"
    zones = {
        "raw": root_locals["raw_read_prefixes"] + root_locals["raw_scratch_prefixes"],
        "sanitized": root_locals["sanitized_prefixes"] + root_locals["append_only_prefixes"],
    }
    for zone, prefix in used:
        assert prefix in zones[zone], f"README prefix {zone}/{prefix}/ has no IAM grant"
    assert root_locals["raw_read_prefixes"] == ["raw_data"]
    assert retention.REPORT_PREFIX[0] in root_locals["append_only_prefixes"]
    for prefix in ("metrics", "reports"):  # llm_usage metrics, GX Data Docs (reports/quality/)
        assert prefix in root_locals["sanitized_prefixes"]


def test_worker_environment_points_at_the_buckets(root_locals):
    env = root_locals["worker_environment"]
    for expected in (
        'PIPELINE_HUB_RAW_URI = "s3://aws_default@${local.buckets.raw}/raw_data"',
        'PIPELINE_HUB_STAGING_URI = "s3://aws_default@${local.buckets.raw}/staging"',
        'PIPELINE_HUB_LLM_CACHE = "s3://aws_default@${local.buckets.raw}/llm-cache"',
        'PIPELINE_HUB_SANITIZED_URI = "s3://aws_default@${local.buckets.sanitized}"',
        "PIPELINE_HUB_RAW_RETENTION_DAYS = tostring(var.raw_retention_days)",
    ):
        assert expected in env


# --- Security properties ---------------------------------------------------------------------------------


def test_region_defaults_to_the_eu(root):
    region = blocks(root, "variable")["region"]
    assert region["default"] == "eu-central-1"
    assert "^eu-" in region["validation"][0]["condition"]


def test_kms_keys_rotate():
    key = blocks(module_tf("kms_key"), "resource")[("aws_kms_key", "this")]
    assert key["enable_key_rotation"] is True


def test_data_buckets_are_kms_encrypted_versioned_private_and_tls_only():
    doc = module_tf("s3_bucket")
    res = blocks(doc, "resource")
    sse = res[("aws_s3_bucket_server_side_encryption_configuration", "this")]["rule"][0]
    default = sse["apply_server_side_encryption_by_default"][0]
    assert (default["sse_algorithm"], default["kms_master_key_id"]) == ("aws:kms", "${var.kms_key_arn}")
    assert res[("aws_s3_bucket_versioning", "this")]["versioning_configuration"][0]["status"] == "Enabled"
    pab = res[("aws_s3_bucket_public_access_block", "this")]
    assert all(pab[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls"))
    assert pab["restrict_public_buckets"] is True
    ownership = res[("aws_s3_bucket_ownership_controls", "this")]["rule"][0]["object_ownership"]
    assert ownership == "BucketOwnerEnforced"
    assert res[("aws_s3_bucket_logging", "this")]["target_bucket"] == "${var.access_log_bucket}"
    policy = statements(doc, "bucket")
    tls = policy["DenyInsecureTransport"]
    assert tls["effect"] == "Deny" and tls["condition"][0]["variable"] == "aws:SecureTransport"
    assert policy["DenyOtherKmsKey"]["condition"][1]["values"] == ["${var.kms_key_arn}"]
    # The all-objects lifecycle rule (checkov CKV_AWS_300 cannot see it next to dynamic rules).
    rule = res[("aws_s3_bucket_lifecycle_configuration", "this")]["rule"][0]
    assert rule["filter"] == [{}] and rule["status"] == "Enabled"
    abort = rule["abort_incomplete_multipart_upload"][0]
    assert abort["days_after_initiation"] == "${var.abort_incomplete_multipart_days}"
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == "${var.noncurrent_version_days}"


def test_every_bucket_module_gets_a_customer_managed_key_and_access_logs(root):
    modules = blocks(root, "module")
    for name in ("raw_bucket", "sanitized_bucket", "artifacts_bucket"):
        assert modules[name]["kms_key_arn"] in ("${module.raw_key.arn}", "${module.data_key.arn}")
        assert modules[name]["access_log_bucket"] == "${module.access_logs.name}"
    assert modules["raw_bucket"]["kms_key_arn"] == "${module.raw_key.arn}"  # analysts never get the raw key


def test_worker_cannot_change_raw_batches_or_delete_versions_or_audit():
    doc = module_tf("worker_iam")
    policy = statements(doc, "worker")
    assert policy["ReadRawBatches"]["actions"] == ["s3:GetObject"]
    assert "var.raw_read_prefixes" in policy["ReadRawBatches"]["resources"]
    for sid, statement in policy.items():
        actions = statement["actions"]
        assert not any(a.endswith("*") for a in actions), sid
        assert "s3:DeleteObjectVersion" not in actions, sid
        if "s3:PutObject" in actions or "s3:DeleteObject" in actions:
            assert "raw_read_prefixes" not in str(statement["resources"]), sid
    assert "s3:DeleteObject" not in policy["AppendAuditRecords"]["actions"]
    assert policy["RemoveOwnTemporaryAuditObjects"]["resources"].endswith('/${p}/*_tmp-*"]}')
    kms = policy["BucketKeysThroughS3Only"]
    assert kms["resources"] == "${var.kms_key_arns}"
    assert kms["condition"][0]["variable"] == "kms:ViaService"


def test_ci_role_trusts_one_repository_and_branch():
    doc = module_tf("github_oidc")
    trust = statements(doc, "trust")[""]
    conditions = {c["variable"]: c for c in trust["condition"]}
    assert conditions["token.actions.githubusercontent.com:aud"]["values"] == ["sts.amazonaws.com"]
    sub = conditions["token.actions.githubusercontent.com:sub"]
    assert sub["test"] == "StringEquals" and sub["values"] == "${local.subjects}"
    subjects = next(e for e in doc["locals"] if "subjects" in e)["subjects"]
    assert subjects == '${[for b in var.branches : "repo:${var.repository}:ref:refs/heads/${b}"]}'
    assert "*" not in blocks(doc, "variable")["branches"]["default"][0]


def test_ecs_worker_runs_read_only_with_encrypted_logs():
    res = blocks(module_tf("ecs_worker"), "resource")
    assert res[("aws_ecr_repository", "worker")]["image_tag_mutability"] == "IMMUTABLE"
    assert res[("aws_cloudwatch_log_group", "worker")]["kms_key_id"] == "${var.kms_key_arn}"
    task = res[("aws_ecs_task_definition", "worker")]
    assert task["task_role_arn"] == "${var.task_role_arn}"
    assert task["execution_role_arn"] == "${aws_iam_role.execution.arn}"
    text = (TF / "modules" / "ecs_worker" / "main.tf").read_text()
    assert re.search(r"readonlyRootFilesystem\s+= true", text)


def test_checkov_skips_are_justified_and_documented():
    readme = (REPO / "infra" / "README.md").read_text()
    skips = [m for f in TF_FILES for m in re.findall(r"#checkov:skip=(CKV2?_AWS_\d+):(.*)", f.read_text())]
    assert skips, "expected the documented skips"
    for check, reason in skips:
        assert len(reason.strip()) > 40, f"{check}: skip without a real justification"
        assert check in readme, f"{check}: skip not listed in infra/README.md"
