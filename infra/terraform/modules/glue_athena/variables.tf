variable "name" {
  description = "Prefix of the Athena workgroup and the analyst policy names."
  type        = string
}

variable "database_name" {
  description = "Glue catalog database of the sanitized zone (lower case, digits, underscores)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.database_name))
    error_message = "Athena database names are lower case letters, digits and underscores."
  }
}

variable "sanitized_bucket_name" {
  description = "Bucket holding sanitized_data/, quarantine/ and metrics/."
  type        = string
}

variable "artifacts_bucket_name" {
  description = "Bucket receiving the Athena query results (under results_prefix/)."
  type        = string
}

variable "results_prefix" {
  description = "Prefix of the Athena query results in the artifacts bucket (expire it with a lifecycle rule)."
  type        = string
  default     = "athena-results"
}

variable "kms_key_arn" {
  description = "Key of the sanitized and artifacts buckets; also encrypts query results and the Glue catalog."
  type        = string
}

variable "tables" {
  description = "Tables: name -> {comment, folder, columns, partitions, parameters}, as written by tools/glue_tables.py from pipeline_hub.analytics.athena."
  type = map(object({
    comment    = string
    folder     = string
    columns    = list(object({ name = string, type = string }))
    partitions = list(object({ name = string, type = string }))
    parameters = map(string)
  }))
}

variable "manage_catalog_encryption" {
  description = "Encrypt the account's Glue Data Catalog in this region with kms_key_arn (an account-wide setting: disable when it is managed elsewhere)."
  type        = bool
  default     = true
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena cancels a query of this workgroup that scans more bytes (cost guard)."
  type        = number
  default     = 10737418240
}

variable "tags" {
  description = "Tags of the resources."
  type        = map(string)
  default     = {}
}
