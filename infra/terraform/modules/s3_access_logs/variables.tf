variable "name" {
  description = "Name of the access-log bucket (globally unique)."
  type        = string
}

variable "source_bucket_names" {
  description = "Buckets allowed to deliver server access logs here."
  type        = list(string)
}

variable "retention_days" {
  description = "Days an access-log object is kept."
  type        = number
  default     = 365
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket (keep false outside test accounts)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the bucket."
  type        = map(string)
  default     = {}
}
