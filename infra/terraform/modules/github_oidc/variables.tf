variable "name" {
  description = "Name of the CI/CD role."
  type        = string
}

variable "repository" {
  description = "GitHub repository allowed to assume the role, as owner/name."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.repository))
    error_message = "The repository must be owner/name, without wildcards."
  }
}

variable "branches" {
  description = "Branches whose workflow runs may assume the role (exact names, no wildcards)."
  type        = list(string)
  default     = ["main"]

  validation {
    condition     = length(var.branches) > 0 && alltrue([for b in var.branches : can(regex("^[A-Za-z0-9_./-]+$", b))])
    error_message = "Give at least one branch; branch names must not contain wildcards."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC identity provider (false when the account already has one)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com provider (when create_oidc_provider is false)."
  type        = string
  default     = null
}

variable "ecr_repository_arn" {
  description = "ECR repository CI pushes the worker image to."
  type        = string
}

variable "pass_role_arns" {
  description = "Roles CI may hand to ECS when it registers a task definition revision (task and execution role)."
  type        = list(string)
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket (CI publishes prompt-score and evaluation reports there)."
  type        = string
}

variable "artifacts_prefixes" {
  description = "Artifacts-bucket prefixes CI may write."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Key of the artifacts bucket (usable through S3 only)."
  type        = string
}

variable "tags" {
  description = "Tags of the role."
  type        = map(string)
  default     = {}
}
