output "cluster_name" {
  description = "ECS cluster (AIRFLOW__AWS_ECS_EXECUTOR__CLUSTER)."
  value       = aws_ecs_cluster.this.name
}

output "task_definition_family" {
  description = "Task definition family (AIRFLOW__AWS_ECS_EXECUTOR__TASK_DEFINITION; the latest ACTIVE revision is used)."
  value       = aws_ecs_task_definition.worker.family
}

output "task_definition_arn" {
  description = "ARN of the task definition revision created by this apply."
  value       = aws_ecs_task_definition.worker.arn
}

output "container_name" {
  description = "Name of the worker container (AIRFLOW__AWS_ECS_EXECUTOR__CONTAINER_NAME)."
  value       = var.container_name
}

output "repository_url" {
  description = "ECR repository of the worker image."
  value       = aws_ecr_repository.worker.repository_url
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.worker.arn
}

output "execution_role_arn" {
  description = "ARN of the ECS task execution role."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the worker containers."
  value       = aws_cloudwatch_log_group.worker.name
}
