-- DuckDB views over the sanitized zone, one per topic, plus quarantine and two joined company views.
-- `{root}` is the sanitized root (s3://<bucket> or a local folder), `{include}` the project's include/
-- folder. Partitions are Hive-style (ds=YYYY-MM-DD), so `ds` is a column. Only committed files
-- (part-*.parquet) are read; _manifest.json and _tmp-* objects are ignored.
-- pipeline_hub.analytics.query creates a topic view only when its topic has published files, and a joined view
-- only when every view it reads exists. Athena/Glue tables for the same layout: athena_tables.sql.

CREATE OR REPLACE VIEW industry_classification AS
  SELECT * FROM read_parquet('{root}/sanitized_data/industry_classification/*/part-*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW use_case_extraction AS
  SELECT * FROM read_parquet('{root}/sanitized_data/use_case_extraction/*/part-*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW contact_extraction AS
  SELECT * FROM read_parquet('{root}/sanitized_data/contact_extraction/*/part-*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW company_matching AS
  SELECT * FROM read_parquet('{root}/sanitized_data/company_matching/*/part-*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW quarantine AS
  SELECT * FROM read_parquet('{root}/quarantine/*/*/part-*.parquet', hive_partitioning = false, filename = true, union_by_name = true);

-- The master list company_matching matches against (include/reference/companies_reference.csv).
CREATE OR REPLACE VIEW reference_companies AS
  SELECT ref_id, name FROM read_csv('{include}/reference/companies_reference.csv', header = true, all_varchar = true);

-- company_key(name): a join key for one company's names across sources. Lower case; dots dropped
-- (N.V. -> nv); other non-alphanumerics -> space; legal forms (Inc, Corp, Ltd, N.V., B.V., GmbH, AG,
-- S.A., ...), "the", "holdings", "group" and share classes dropped; spaces collapsed.
-- 'Pfizer Inc.' and 'PFIZER LIMITED' both give 'pfizer'; 'Akzo Nobel N.V.' gives 'akzo nobel'.
CREATE OR REPLACE MACRO company_key(company_name) AS
  trim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    lower(company_name), '[.]', '', 'g'),
    '[^a-z0-9]+', ' ', 'g'),
    '\b(inc|incorporated|corp|corporation|co|company|companies|ltd|limited|llc|plc|nv|bv|cv|ag|gmbh|kg|sa|se|spa|ab|the|holdings?|group|class [a-z])\b', ' ', 'g'),
    '\s+', ' ', 'g'));

-- Applicant names resolved to the reference master list: one row per company_matching record, with
-- the canonical reference name when the LLM picked a candidate (match_id is null for "no match").
CREATE OR REPLACE VIEW company_matches AS
  SELECT m.ds, m.record_id AS applicant_id, m.name AS applicant_name, m.match_id AS ref_id,
         r.name AS reference_name, m.confidence AS match_confidence, m.prompt_version, m.model
  FROM company_matching AS m
  LEFT JOIN reference_companies AS r ON r.ref_id = m.match_id;

-- One row per company seen by either topic, joined on company_key:
--   * classified side: industry_classification (S&P 500-style companies: ticker as record_id, name,
--     headquarters, GICS sector), the latest partition per company;
--   * matched side: reference companies that company_matching resolved at least one applicant name
--     to, with every applicant name and the best match confidence.
-- A FULL OUTER JOIN keeps companies seen by one side only (their other columns are null); a row with
-- both sides links a classified company to its patent-applicant aliases and reference id. The bundled
-- sample's two sources barely overlap (S&P 500 constituents vs Dutch PATSTAT applicants), so most
-- rows carry one side; tests/test_query.py adds an overlapping company to show the join.
-- Pseudonymised names (psn_...) never join: they carry no company name.
CREATE OR REPLACE VIEW companies AS
  WITH classified AS (
    SELECT company_key(name) AS company_key, record_id AS company_id, name, headquarters, sector,
           confidence AS sector_confidence, ds AS classified_ds
    FROM industry_classification
    QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY ds DESC) = 1
  ), matched AS (
    SELECT company_key(reference_name) AS company_key, ref_id, reference_name,
           list(DISTINCT applicant_name ORDER BY applicant_name) AS applicant_names,
           max(match_confidence) AS match_confidence, max(ds) AS matched_ds
    FROM company_matches
    WHERE ref_id IS NOT NULL
    GROUP BY ALL
  )
  SELECT coalesce(c.company_key, m.company_key) AS company_key, c.company_id, c.name, c.headquarters,
         c.sector, c.sector_confidence, m.ref_id, m.reference_name, m.applicant_names,
         m.match_confidence, c.classified_ds, m.matched_ds
  FROM classified AS c
  FULL OUTER JOIN matched AS m ON c.company_key = m.company_key;

-- LLM usage per publication (tokens, cost in USD, cache hit rate, latency), see README "Cost and budget".
CREATE OR REPLACE VIEW llm_usage AS
  SELECT * FROM read_parquet('{root}/metrics/llm_usage/*/*.parquet', hive_partitioning = true, union_by_name = true);

-- Drift per topic and ds against the trailing baseline (PSI, chi-square p, confidence, invalid-output rate,
-- input length), see README "Drift".
CREATE OR REPLACE VIEW drift AS
  SELECT * FROM read_parquet('{root}/metrics/drift/*/*.parquet', hive_partitioning = true, union_by_name = true);

-- GDPR erasure audit log (pipeline_hub.governance.erasure): one record per erasure, never the subject's value.
CREATE OR REPLACE VIEW erasure_audit AS
  SELECT * FROM read_json('{root}/_audit/erasure/*.jsonl', format = 'newline_delimited', union_by_name = true);
