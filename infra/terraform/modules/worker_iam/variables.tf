variable "name" {
  description = "Name of the worker role."
  type        = string
}

variable "trusted_services" {
  description = "Service principals that may assume the role (ECS tasks by default)."
  type        = list(string)
  default     = ["ecs-tasks.amazonaws.com"]
}

variable "raw_bucket_arn" {
  description = "ARN of the raw bucket."
  type        = string
}

variable "sanitized_bucket_arn" {
  description = "ARN of the sanitized bucket."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string
}

variable "raw_read_prefixes" {
  description = "Raw-bucket prefixes the worker reads and never writes or deletes (the raw batches)."
  type        = list(string)
}

variable "raw_scratch_prefixes" {
  description = "Raw-bucket prefixes the worker reads, writes and deletes (staging, response cache)."
  type        = list(string)
}

variable "sanitized_prefixes" {
  description = "Sanitized-bucket prefixes the worker reads, writes and deletes (atomic writes rename through a _tmp- object)."
  type        = list(string)
}

variable "append_only_prefixes" {
  description = "Sanitized-bucket prefixes the worker reads and writes but deletes only its own _tmp- objects in (audit records)."
  type        = list(string)
}

variable "artifacts_prefixes" {
  description = "Artifacts-bucket prefixes the worker reads, writes and deletes (prompt scores, evaluations)."
  type        = list(string)
}

variable "kms_key_arns" {
  description = "The customer-managed keys of the buckets; the worker may use them through S3 only."
  type        = list(string)
}

variable "bedrock_model_arns" {
  description = "Bedrock foundation-model or inference-profile ARNs the worker may invoke (for a cross-region profile also list its foundation-model ARNs; empty: no Bedrock access)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of the role."
  type        = map(string)
  default     = {}
}
