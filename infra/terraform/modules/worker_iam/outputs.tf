output "role_arn" {
  description = "ARN of the worker role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the worker role."
  value       = aws_iam_role.this.name
}

output "policy_json" {
  description = "The worker's permission policy (JSON), for review."
  value       = data.aws_iam_policy_document.worker.json
}
