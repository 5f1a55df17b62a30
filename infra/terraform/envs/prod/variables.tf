variable "region" {
  description = "AWS region of every resource. EU by default for EU data residency of the raw and sanitized data."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^eu-[a-z]+-[0-9]$", var.region))
    error_message = "The pipeline processes personal data under EU data residency: choose an EU region (eu-*)."
  }
}

variable "allowed_account_ids" {
  description = "AWS accounts this configuration may be applied to (guards against the wrong credentials); null for any."
  type        = list(string)
  default     = null
}

variable "environment" {
  description = "Environment name (tag and name suffix)."
  type        = string
  default     = "prod"
}

variable "name_prefix" {
  description = "Prefix of every name; bucket names are <name_prefix>-raw, -sanitized, -artifacts and -access-logs, so make it globally unique (e.g. acme-pipeline-hub-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{2,40}[a-z0-9]$", var.name_prefix))
    error_message = "Use 4-42 lower-case letters, digits and hyphens (it becomes part of S3 bucket names)."
  }
}

variable "raw_retention_days" {
  description = "Days raw batches, staging and the LLM response cache are kept (keep equal to PIPELINE_HUB_RAW_RETENTION_DAYS)."
  type        = number
  default     = 90

  validation {
    condition     = var.raw_retention_days >= 1
    error_message = "Retention is at least one day."
  }
}

variable "quarantine_retention_days" {
  description = "Days quarantined records (sanitized bucket, quarantine/) are kept for review."
  type        = number
  default     = 90
}

variable "noncurrent_version_days" {
  description = "Days replaced or deleted object versions of the sanitized and artifacts buckets are kept (recovery window; an erased row disappears from old versions after it)."
  type        = number
  default     = 7
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept in the artifacts bucket."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept."
  type        = number
  default     = 365
}

variable "worker_log_retention_days" {
  description = "Days worker container logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose workflows may assume the CI/CD role."
  type        = string
}

variable "github_branches" {
  description = "Branches whose workflow runs may assume the CI/CD role."
  type        = list(string)
  default     = ["main"]
}

variable "create_github_oidc_provider" {
  description = "Create the GitHub OIDC provider (false when the account already has token.actions.githubusercontent.com)."
  type        = bool
  default     = true
}

variable "github_oidc_provider_arn" {
  description = "ARN of the existing GitHub OIDC provider when create_github_oidc_provider is false."
  type        = string
  default     = null
}

variable "worker_image_tag" {
  description = "Tag of the worker image in the ECR repository (pushed by CI)."
  type        = string
  default     = "0.1.0"
}

variable "worker_cpu" {
  description = "Worker task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 2048
}

variable "worker_memory" {
  description = "Worker task memory in MiB."
  type        = number
  default     = 8192
}

variable "worker_secrets" {
  description = "Worker environment variables read from Secrets Manager: name -> secret ARN (e.g. PIPELINE_HUB_PII_KEY, AIRFLOW_CONN_LLM_DEFAULT)."
  type        = map(string)
  default     = {}
}

variable "worker_secrets_kms_key_arns" {
  description = "Customer-managed keys of those secrets (empty when they use aws/secretsmanager)."
  type        = list(string)
  default     = []
}

variable "worker_environment" {
  description = "Extra plain environment variables of the worker (merged over the pipeline locations)."
  type        = map(string)
  default     = {}
}

variable "bedrock_model_arns" {
  description = "Bedrock models or inference profiles the worker may invoke (empty: no Bedrock)."
  type        = list(string)
  default     = []
}

variable "glue_database_name" {
  description = "Glue catalog database of the sanitized tables."
  type        = string
  default     = "pipeline_hub"
}

variable "manage_glue_catalog_encryption" {
  description = "Encrypt this account's Glue Data Catalog (region-wide setting) with the data key."
  type        = bool
  default     = true
}

variable "athena_bytes_scanned_cutoff" {
  description = "Bytes an Athena query may scan before it is cancelled."
  type        = number
  default     = 10737418240
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete non-empty buckets (test accounts only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags of every resource."
  type        = map(string)
  default     = {}
}
