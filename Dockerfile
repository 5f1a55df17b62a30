# The project on the official Airflow image, with the pinned dependencies of constraints.txt.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml constraints.txt README.md /opt/pipeline-hub/
COPY --chown=airflow:root plugins /opt/pipeline-hub/plugins
RUN pip install --no-cache-dir -c /opt/pipeline-hub/constraints.txt /opt/pipeline-hub
COPY --chown=airflow:root include /opt/airflow/include
ENV PIPELINE_HUB_INCLUDE_DIR=/opt/airflow/include
