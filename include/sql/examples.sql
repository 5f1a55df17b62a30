-- Example analyst queries over the views of views.sql (run with `pipeline-hub query "..."`).

-- Companies per GICS sector, latest partition.
SELECT sector, count(*) AS companies, round(avg(confidence), 2) AS avg_confidence
FROM industry_classification GROUP BY sector ORDER BY companies DESC;

-- Which prompt version and model produced each partition.
SELECT ds, prompt_version, model, count(*) AS rows FROM industry_classification GROUP BY ALL ORDER BY ds;

-- Applicant names matched to the reference master list.
SELECT name, match_id, confidence FROM company_matching ORDER BY confidence DESC;

-- Contacts per organisation (names, e-mails and phones are keyed pseudonyms).
SELECT c.organisation, count(*) AS contacts
FROM contact_extraction, UNNEST(contacts) AS t(c) GROUP BY ALL ORDER BY contacts DESC;
