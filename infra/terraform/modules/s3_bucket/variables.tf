variable "name" {
  description = "Bucket name (globally unique)."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts every object (SSE-KMS, bucket key on)."
  type        = string
}

variable "access_log_bucket" {
  description = "Name of the bucket that receives this bucket's S3 server access logs (prefix <name>/)."
  type        = string
}

variable "lifecycle_rules" {
  description = "Objects expired by key prefix: id, prefix (with trailing /) and days after creation."
  type = list(object({
    id              = string
    prefix          = string
    expiration_days = number
  }))
  default = []
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept (recovery window; also bounds how long an erased row survives in an old version)."
  type        = number
  default     = 7
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which unfinished multipart uploads are aborted."
  type        = number
  default     = 7
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
