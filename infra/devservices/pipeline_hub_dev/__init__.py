"""Dev services of Prompt Pipeline Hub: SeaweedFS as the local S3 server and the llama.cpp
OpenAI-compatible server, run as managed background processes from a checkout.

This is dev tooling, in its own distribution (``pipeline-hub-devservices``, ``infra/devservices/``):
runtime code (``pipeline_hub``) never imports it and the runtime wheel does not depend on it.
``pipeline-hub services up|down|status|env`` (:mod:`pipeline_hub_dev.cli`, entry point group
``pipeline_hub.cli``) calls :func:`~pipeline_hub_dev.manager.up`, ``down``, ``status`` and
``write_env_file``. Tests use :class:`~pipeline_hub_dev.seaweedfs.SeaweedFS` directly to run a
private S3 server on free ports in a temp dir::

    with SeaweedFS(tmp_path / "s3") as s3:          # picks free ports, starts, waits until ready
        s3.client().put_object(Bucket="raw", Key="k", Body=b"x")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(s3.airflow_connection())

Modules: :mod:`.config` (state directory, ports, :class:`~.config.ServicesConfig`), :mod:`.errors`,
:mod:`.process` (detached process groups, pid helpers, free ports), :mod:`.seaweedfs`, :mod:`.llama`
(server and model assembly), :mod:`.credentials` (S3 credentials, PII key, private files),
:mod:`.connections` (Airflow connection JSON, user overrides), :mod:`.state` (pid/state files),
:mod:`.manager` (up/down/status/endpoints/env file), :mod:`.cli`.

State lives under a home directory (:func:`~.config.resolve_home`: ``PIPELINE_HUB_HOME``, else
``<repo>/.local`` with the repository found from the current directory)::

    run/<service>.pid      pid of the detached process (it leads its own process group)
    run/<service>.json     what that process serves: endpoint, ports, log, start time
    logs/<service>.log     stdout + stderr of the service, appended
    s3/                    SeaweedFS data        models/   the GGUF model file
    secrets/               s3_credentials.json and pii_hmac.key (mode 0600)
    env.sh                 shell exports for Airflow connections (:func:`~.manager.write_env_file`)

SeaweedFS (``weed mini``): one process runs master, volume, filer, S3 gateway and an admin server. All
ports derive from one base (the S3 port, default 8333): S3, master, volume, filer and admin HTTP on
``base .. base+4``, each gRPC port at HTTP + 10000 (weed's own convention; the embedded maintenance
worker dials admin HTTP + 10000 whatever ``-admin.port.grpc`` says). Everything binds to 127.0.0.1;
WebDAV, the admin UI, the Iceberg and Lance catalog ports, the embedded IAM API and telemetry are off.

Authentication: with no identity configured, SeaweedFS's S3 API accepts *any* access key, and unsigned
requests too. When ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` are in its environment at start,
``weed mini`` makes them the only (admin) identity: other keys get ``InvalidAccessKeyId`` and anonymous
requests ``AccessDenied``; restarting with other values replaces the identity. We therefore always start
it with credentials: :func:`~.manager.up` generates them once per home (``secrets/s3_credentials.json``,
or ``PIPELINE_HUB_S3_ACCESS_KEY``/``PIPELINE_HUB_S3_SECRET_KEY``), :class:`~.seaweedfs.SeaweedFS` per
instance. Note that the filer, master and volume HTTP APIs are not authenticated; they only listen on
127.0.0.1.

Environment variables: ``PIPELINE_HUB_HOME``; ``PIPELINE_HUB_S3_PORT`` (base port, default 8333);
``PIPELINE_HUB_S3_BUCKETS`` (default ``raw,sanitized``); ``PIPELINE_HUB_LLM_PORT`` (default 8090);
``PIPELINE_HUB_LLM_MODEL_FILE`` (use this GGUF instead of assembling one); ``PIPELINE_HUB_WEED_BIN``.
User overrides: when ``AIRFLOW_CONN_AWS_DEFAULT`` is set (and does not point at the embedded endpoint)
SeaweedFS is not started; likewise the LLM for ``AIRFLOW_CONN_LLM_DEFAULT`` or ``PIPELINE_HUB_LLM_ENDPOINT``.
"""
