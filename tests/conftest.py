"""Shared fixtures: a local OpenAI-compatible stub over real HTTP, Airflow connections from env, sample data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DS = "2025-01-15"

# Tests never reach a real provider or the network, and never write into the checkout's .local/.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PIPELINE_HUB_PII_KEY", "5e" * 32)
# The checkout's include/ wherever a test (or the Airflow it starts) runs; tests may point it elsewhere.
os.environ.setdefault("PIPELINE_HUB_INCLUDE_DIR", str(REPO / "include"))


def llm_conn(base_url: str, dialect: str = "json_object_schema", **extra) -> str:
    """``AIRFLOW_CONN_*`` JSON for an OpenAI-compatible endpoint."""
    return json.dumps(
        {
            "conn_type": "openai",
            "host": base_url,
            "password": "sk-test",
            "extra": {
                "model": "stub-model",
                "structured_output": dialect,
                "max_concurrency": 4,
                "max_retries": 3,
                "timeout": 5,
                **extra,
            },
        }
    )


@pytest.fixture(autouse=True)
def llm_cache(tmp_path, monkeypatch):
    """Each test gets its own response cache (never the checkout's .local/)."""
    path = tmp_path / "llm-cache"
    monkeypatch.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{path}")
    return path


@pytest.fixture(scope="session")
def stub_server():
    from support.stub_llm import StubLLMServer

    server = StubLLMServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stub(stub_server, monkeypatch):
    """The session stub, reset, configured as ``llm_default`` (llama.cpp dialect)."""
    stub_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub_server.base_url))
    yield stub_server
    stub_server.reset()


@pytest.fixture
def raw_zone(tmp_path) -> Path:
    """A raw-zone root holding the bundled sample under ``<source>/<DS>/``."""
    root = tmp_path / "raw"
    for src in (REPO / "include" / "sample_data").iterdir():
        if src.is_dir():
            dest = root / src.name / DS
            dest.mkdir(parents=True)
            for f in src.iterdir():
                if f.suffix in (".csv", ".jsonl", ".json", ".parquet", ".gz"):
                    shutil.copy(f, dest / f.name)
    return root


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    """A private SeaweedFS S3 server on loopback for one test module, with buckets ``raw`` and ``sanitized``."""
    from pipeline_hub_dev.seaweedfs import SeaweedFS

    s3 = SeaweedFS(tmp_path_factory.mktemp("s3"), buckets=("raw", "sanitized"))
    s3.start()
    s3.wait_ready(60)
    yield s3
    s3.stop()


def airflow_subprocess_env(home: Path, seaweed, stub_server, **extra: str) -> dict[str, str]:
    """Environment for ``airflow …`` subprocesses on the project's DAGs: SQLite metadata under ``home``,
    ``aws_default`` = ``seaweed``, ``llm_default`` = the stub, raw/sanitized/staging zones and the
    response cache on that S3; ``extra`` adds or overrides variables."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(seaweed.airflow_connection()),
        "AIRFLOW_CONN_LLM_DEFAULT": llm_conn(stub_server.base_url),
        "PIPELINE_HUB_RAW_URI": "s3://aws_default@raw/raw_data",
        "PIPELINE_HUB_SANITIZED_URI": "s3://aws_default@sanitized",
        "PIPELINE_HUB_STAGING_URI": "s3://aws_default@raw/staging",
        "PIPELINE_HUB_LLM_CACHE": "s3://aws_default@raw/llm-cache",  # the shared backend, in the raw zone
        "PIPELINE_HUB_PII_KEY": "7a" * 32,
        **extra,
    }
