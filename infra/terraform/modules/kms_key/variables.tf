variable "alias" {
  description = "Alias of the key, without the alias/ prefix (e.g. pipeline-hub-prod-raw)."
  type        = string
}

variable "description" {
  description = "What the key protects."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion takes effect (7-30 days)."
  type        = number
  default     = 30
}

variable "rotation_period_in_days" {
  description = "Automatic rotation period of the key material (90-2560 days)."
  type        = number
  default     = 365
}

variable "allow_cloudwatch_logs" {
  description = "Let CloudWatch Logs in this region use the key for log groups of this account."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the key."
  type        = map(string)
  default     = {}
}
