# Prompt Pipeline Hub on AWS, one environment: buckets, keys, IAM, Glue/Athena and ECS workers.
# The bucket layout follows README "Data layout"; infra/README.md explains the choices.

locals {
  tags = merge({ Project = "prompt-pipeline-hub", Environment = var.environment, ManagedBy = "terraform" }, var.tags)

  buckets = {
    raw       = "${var.name_prefix}-raw"
    sanitized = "${var.name_prefix}-sanitized"
    artifacts = "${var.name_prefix}-artifacts"
    logs      = "${var.name_prefix}-access-logs"
  }

  # README "Data layout". Raw zone: batches (read-only for the worker), then scratch holding raw text.
  raw_read_prefixes    = ["raw_data"]
  raw_scratch_prefixes = ["staging", "llm-cache"]
  # Sanitized zone: published Parquet, quarantine, indexes, batch manifests, metrics, Data Docs, audit.
  sanitized_prefixes   = ["sanitized_data", "quarantine", "_index", "_batches", "metrics", "reports"]
  append_only_prefixes = ["_audit"]
  # Artifacts (PIPELINE_HUB_ARTIFACTS_URI): prompt scores and evaluation reports; Athena results.
  artifacts_prefixes    = ["reports", "evaluations"]
  athena_results_prefix = "athena-results"
  glue_tables           = jsondecode(file("${path.module}/../../glue_tables.json")).tables

  # The locations of README "Pointing it at AWS S3 and OpenAI"; credentials come from the task role.
  worker_environment = merge({
    AIRFLOW_CONN_AWS_DEFAULT        = jsonencode({ conn_type = "aws", extra = { region_name = var.region } })
    PIPELINE_HUB_RAW_URI            = "s3://aws_default@${local.buckets.raw}/raw_data"
    PIPELINE_HUB_STAGING_URI        = "s3://aws_default@${local.buckets.raw}/staging"
    PIPELINE_HUB_LLM_CACHE          = "s3://aws_default@${local.buckets.raw}/llm-cache"
    PIPELINE_HUB_SANITIZED_URI      = "s3://aws_default@${local.buckets.sanitized}"
    PIPELINE_HUB_ARTIFACTS_URI      = "s3://aws_default@${local.buckets.artifacts}"
    PIPELINE_HUB_RAW_RETENTION_DAYS = tostring(var.raw_retention_days)
    GX_ANALYTICS_ENABLED            = "False"
  }, var.worker_environment)
}

module "raw_key" {
  source = "../../modules/kms_key"

  alias       = "${var.name_prefix}-raw"
  description = "Raw zone of ${var.name_prefix}: unscrubbed record text (raw_data/, staging/, llm-cache/)."
}

module "data_key" {
  source = "../../modules/kms_key"

  alias                 = "${var.name_prefix}-data"
  description           = "Sanitized zone, artifacts, Athena results, Glue catalog, worker logs and image of ${var.name_prefix}."
  allow_cloudwatch_logs = true
}

module "access_logs" {
  source = "../../modules/s3_access_logs"

  name                = local.buckets.logs
  source_bucket_names = [local.buckets.raw, local.buckets.sanitized, local.buckets.artifacts]
  retention_days      = var.access_log_retention_days
  force_destroy       = var.force_destroy_buckets
}

# Same rules as infra/s3/raw-lifecycle.json: raw text lives raw_retention_days, old versions one day.
module "raw_bucket" {
  source = "../../modules/s3_bucket"

  name                    = local.buckets.raw
  kms_key_arn             = module.raw_key.arn
  access_log_bucket       = module.access_logs.name
  force_destroy           = var.force_destroy_buckets
  noncurrent_version_days = 1
  lifecycle_rules = [
    { id = "expire-raw-data", prefix = "raw_data/", expiration_days = var.raw_retention_days },
    { id = "expire-staging", prefix = "staging/", expiration_days = var.raw_retention_days },
    { id = "expire-llm-cache", prefix = "llm-cache/", expiration_days = var.raw_retention_days },
  ]
}

module "sanitized_bucket" {
  source = "../../modules/s3_bucket"

  name                    = local.buckets.sanitized
  kms_key_arn             = module.data_key.arn
  access_log_bucket       = module.access_logs.name
  force_destroy           = var.force_destroy_buckets
  noncurrent_version_days = var.noncurrent_version_days
  lifecycle_rules = [
    { id = "expire-quarantine", prefix = "quarantine/", expiration_days = var.quarantine_retention_days },
  ]
}

module "artifacts_bucket" {
  source = "../../modules/s3_bucket"

  name                    = local.buckets.artifacts
  kms_key_arn             = module.data_key.arn
  access_log_bucket       = module.access_logs.name
  force_destroy           = var.force_destroy_buckets
  noncurrent_version_days = var.noncurrent_version_days
  lifecycle_rules = [
    { id = "expire-athena-results", prefix = "${local.athena_results_prefix}/", expiration_days = var.athena_results_retention_days },
  ]
}

module "worker_iam" {
  source = "../../modules/worker_iam"

  name                 = "${var.name_prefix}-worker"
  raw_bucket_arn       = module.raw_bucket.arn
  sanitized_bucket_arn = module.sanitized_bucket.arn
  artifacts_bucket_arn = module.artifacts_bucket.arn
  raw_read_prefixes    = local.raw_read_prefixes
  raw_scratch_prefixes = local.raw_scratch_prefixes
  sanitized_prefixes   = local.sanitized_prefixes
  append_only_prefixes = local.append_only_prefixes
  artifacts_prefixes   = local.artifacts_prefixes
  kms_key_arns         = [module.raw_key.arn, module.data_key.arn]
  bedrock_model_arns   = var.bedrock_model_arns
}

module "ecs_worker" {
  source = "../../modules/ecs_worker"

  name                 = "${var.name_prefix}-worker"
  task_role_arn        = module.worker_iam.role_arn
  kms_key_arn          = module.data_key.arn
  image_tag            = var.worker_image_tag
  cpu                  = var.worker_cpu
  memory               = var.worker_memory
  secrets              = var.worker_secrets
  secrets_kms_key_arns = var.worker_secrets_kms_key_arns
  log_retention_days   = var.worker_log_retention_days
  environment          = local.worker_environment
}

module "github_oidc" {
  source = "../../modules/github_oidc"

  name                 = "${var.name_prefix}-github-actions"
  repository           = var.github_repository
  branches             = var.github_branches
  create_oidc_provider = var.create_github_oidc_provider
  oidc_provider_arn    = var.github_oidc_provider_arn
  ecr_repository_arn   = module.ecs_worker.repository_arn
  pass_role_arns       = [module.worker_iam.role_arn, module.ecs_worker.execution_role_arn]
  artifacts_bucket_arn = module.artifacts_bucket.arn
  artifacts_prefixes   = local.artifacts_prefixes
  kms_key_arn          = module.data_key.arn
}

module "glue_athena" {
  source = "../../modules/glue_athena"

  name                           = var.name_prefix
  database_name                  = var.glue_database_name
  sanitized_bucket_name          = module.sanitized_bucket.name
  artifacts_bucket_name          = module.artifacts_bucket.name
  results_prefix                 = local.athena_results_prefix
  kms_key_arn                    = module.data_key.arn
  tables                         = local.glue_tables
  manage_catalog_encryption      = var.manage_glue_catalog_encryption
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff
}
