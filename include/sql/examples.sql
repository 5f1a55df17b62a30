-- Example analyst queries over the views of views.sql (run one with `pipeline-hub query "..."`).
-- tests/test_query.py runs every statement of this file against a real published sample.

-- Companies per GICS sector, latest partition.
SELECT sector, count(*) AS companies, round(avg(confidence), 2) AS avg_confidence
FROM industry_classification
WHERE ds = (SELECT max(ds) FROM industry_classification)
GROUP BY sector ORDER BY companies DESC, sector;

-- Which prompt version and model produced each partition.
SELECT ds, prompt_name, prompt_version, model, count(*) AS rows
FROM industry_classification GROUP BY ALL ORDER BY ds;

-- Applicant names resolved to the reference master list (null reference_name: no match).
SELECT applicant_name, ref_id, reference_name, match_confidence
FROM company_matches ORDER BY match_confidence DESC, applicant_name;

-- Share of applicant names the LLM could not match, per partition.
SELECT ds, count(*) AS applicants, round(avg(CASE WHEN ref_id IS NULL THEN 1 ELSE 0 END), 2) AS unmatched_share
FROM company_matches GROUP BY ds ORDER BY ds;

-- Classified companies that also appear as (aliased) patent applicants.
SELECT company_id, name, sector, reference_name, applicant_names
FROM companies WHERE company_id IS NOT NULL AND ref_id IS NOT NULL ORDER BY name;

-- Contacts per organisation (names, e-mails and phones are keyed pseudonyms).
SELECT c.organisation, count(*) AS contacts
FROM contact_extraction, UNNEST(contacts) AS t(c) GROUP BY ALL ORDER BY contacts DESC;

-- The same person across e-mails: pseudonyms are stable, so they join and count.
SELECT c.email AS email_pseudonym, count(DISTINCT record_id) AS emails
FROM contact_extraction, UNNEST(contacts) AS t(c)
WHERE c.email IS NOT NULL GROUP BY ALL HAVING count(DISTINCT record_id) > 1 ORDER BY emails DESC;

-- AI techniques named across agencies' use cases.
SELECT lower(technique) AS technique, count(*) AS mentions, count(DISTINCT agency) AS agencies
FROM use_case_extraction, UNNEST(use_cases) AS u(uc), UNNEST(uc.techniques) AS t(technique)
GROUP BY ALL ORDER BY mentions DESC LIMIT 20;

-- Quarantined records per topic and reason (the topic is the folder under quarantine/).
SELECT regexp_extract(filename, 'quarantine/([^/]+)/', 1) AS topic, reason, count(*) AS records
FROM quarantine GROUP BY ALL ORDER BY records DESC;

-- LLM spend and cache hit rate per day and topic.
SELECT ds, topic, sum(llm_calls) AS calls, round(sum(cost_usd), 4) AS cost_usd, round(avg(cache_hit_rate), 2) AS hit_rate
FROM llm_usage GROUP BY ALL ORDER BY ds, topic;

-- Erasures: when, how many rows, which objects (never the subject's value).
SELECT erased_at, erasure_id, rows_removed, len(objects_rewritten) AS objects, cache.entries_purged AS cache_entries
FROM erasure_audit ORDER BY erased_at;
