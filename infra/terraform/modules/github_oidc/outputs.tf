output "role_arn" {
  description = "ARN of the CI/CD role (aws-actions/configure-aws-credentials role-to-assume)."
  value       = aws_iam_role.this.arn
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub OIDC provider used."
  value       = local.provider_arn
}
