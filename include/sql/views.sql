-- DuckDB views over the sanitized zone, one per topic. `{root}` is the sanitized root
-- (s3://<bucket> or a local folder); partitions are Hive-style (ds=YYYY-MM-DD), so `ds` is a column.
-- Only committed files (part-*.parquet) are read; _manifest.json and _tmp-* objects are ignored.
-- pipeline_hub.query creates a view only when its topic has published files.
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
