output "database_name" {
  description = "Glue catalog database."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Glue catalog tables."
  value       = sort([for t in aws_glue_catalog_table.this : t.name])
}

output "workgroup_name" {
  description = "Athena workgroup."
  value       = aws_athena_workgroup.this.name
}

output "analyst_policy_arn" {
  description = "Managed policy to attach to analysts."
  value       = aws_iam_policy.analyst.arn
}
