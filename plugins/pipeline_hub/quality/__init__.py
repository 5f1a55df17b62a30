"""Quality: a Great Expectations (GX Core 1.x) suite per topic, with Data Docs (run by the validate stage).

Imports: base modules and ``prompts`` (a topic's schema and metadata); never ``pii``, ``stages`` or above.

Modules: :mod:`~pipeline_hub.quality.checks` (lineage columns, residual PII patterns, failed
expectations), :mod:`~pipeline_hub.quality.suites` (generating, storing and loading the suites) and
:mod:`~pipeline_hub.quality.gate` (the validation run and its Data Docs).

**The suite.** One per topic, stored as JSON at ``include/quality/<topic>.json`` so reviewers can read
it. Its *generated* expectations (``meta.generated: true``) are derived from the topic's
``metadata.yaml`` and output JSON Schema by :func:`~pipeline_hub.quality.suites.generated_expectations`;
``pipeline-hub quality export`` rewrites them and a test keeps the files in sync. Expectations added to the file by hand
(without ``meta.generated``) are kept by the export and run too. Checks, each tagged ``meta.check``:

``schema``
    the validation frame has exactly the expected columns (``record_id``, ``model``, kept fields,
    the answer's top-level properties and the three helper columns below);
``types``
    ``record_id`` is a string; each answer property holds the Python type of its JSON Schema type
    (string → ``str``, number → ``float``/``int``, integer → ``int``, boolean → ``bool``,
    object → ``dict``, array → ``list``); required, non-nullable properties are non-null in every
    answered row;
``record_id``
    non-null and unique over every record of the topic (answered and quarantined);
``labels``
    the label field (``quality.label_field``) within the schema's ``enum``;
``confidence``
    the confidence field (``quality.confidence_field``) within [0, 1];
``answer_validity``
    share of valid answers among records the LLM answered (valid or ``invalid_output``) at least
    ``quality.min_answer_valid_rate`` (default
    :data:`~pipeline_hub.quality.suites.DEFAULT_MIN_ANSWER_VALID_RATE`), as
    ``expect_column_values_to_be_in_set(_answer, ["valid"], mostly=rate)``; records never sent to the
    model (rejects, ``missing_field``, ``budget_exceeded``) do not count;
``residual_pii``
    zero rows whose published text (every string leaf except lineage columns, joined into the helper
    column ``_published_text``) matches the e-mail or phone pattern
    (:data:`~pipeline_hub.quality.checks.RESIDUAL_PII`). The scrub stage already quarantines each
    record still matching them (reason ``residual_pii``, naming the field), so this check fails only
    when something after it put PII back: the last gate;
``conservation``
    the frame has one row per record in (``records_in`` = staged + rejected, a suite parameter), i.e.
    in = answered + quarantined before the gate.

Every generated expectation is ``critical`` (GX ``severity``): a failed critical expectation fails the
topic's gate, and publish quarantines the topic (write-audit-publish). Hand-added expectations may use
``"severity": "warning"`` or ``"info"`` to be reported without blocking.

**The run.** GX runs inside the task on an in-memory pandas frame (one row per record of the topic)
in a throw-away file-backed GX project, through a Checkpoint whose ``UpdateDataDocsAction`` builds the
local Data Docs site; its HTML pages and stylesheets are copied to
``<sanitized root>/reports/quality/<topic>/ds=<ds>/`` (``index.html`` links the validation page) and
the manifest's ``quality.data_docs`` names it. Results use GX's ``SUMMARY`` format with
``partial_unexpected_count: 0``: counts and aggregates, never record values, reach results, Data Docs,
logs or the manifest.

The GX Airflow provider is not used: it pins ``structlog<25.5``, which conflicts with Airflow 3.3,
and loads data at DAG-parse time.
"""
