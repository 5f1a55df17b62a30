variable "name" {
  description = "Name of the cluster, task definition family, ECR repository and log group."
  type        = string
}

variable "task_role_arn" {
  description = "Role the worker containers run as (the worker_iam module's role)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed key for the image repository and the log group (must allow CloudWatch Logs)."
  type        = string
}

variable "image_tag" {
  description = "Tag of the worker image in the module's ECR repository (tags are immutable: one per release)."
  type        = string
}

variable "container_name" {
  description = "Name of the worker container (AIRFLOW__AWS_ECS_EXECUTOR__CONTAINER_NAME)."
  type        = string
  default     = "worker"
}

variable "command" {
  description = "Container command. The ECS executor overrides it per Airflow task; a Celery worker service uses the default."
  type        = list(string)
  default     = ["celery", "worker"]
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Task memory in MiB (spaCy, Presidio and Great Expectations need several GiB)."
  type        = number
  default     = 8192
}

variable "ephemeral_storage_gib" {
  description = "Task scratch disk in GiB (21-200)."
  type        = number
  default     = 30
}

variable "environment" {
  description = "Plain environment variables of the worker container (no secrets)."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables filled from Secrets Manager: variable name -> secret ARN."
  type        = map(string)
  default     = {}
}

variable "secrets_kms_key_arns" {
  description = "Customer-managed keys that encrypt those secrets (empty when they use aws/secretsmanager)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the worker logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "keep_images" {
  description = "Number of most recent images kept in the repository."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of the resources."
  type        = map(string)
  default     = {}
}
