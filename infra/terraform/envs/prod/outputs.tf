output "buckets" {
  description = "Bucket names: raw, sanitized, artifacts, access logs."
  value = {
    raw       = module.raw_bucket.name
    sanitized = module.sanitized_bucket.name
    artifacts = module.artifacts_bucket.name
    logs      = module.access_logs.name
  }
}

output "kms_key_arns" {
  description = "Customer-managed keys: raw (raw zone) and data (everything else)."
  value = {
    raw  = module.raw_key.arn
    data = module.data_key.arn
  }
}

output "worker_role_arn" {
  description = "Role of the worker tasks."
  value       = module.worker_iam.role_arn
}

output "github_actions_role_arn" {
  description = "Role for aws-actions/configure-aws-credentials (role-to-assume)."
  value       = module.github_oidc.role_arn
}

output "ecr_repository_url" {
  description = "Where CI pushes the worker image."
  value       = module.ecs_worker.repository_url
}

output "ecs_executor_environment" {
  description = "Airflow settings for the Amazon provider's ECS executor (add subnets and security groups of your VPC)."
  value = {
    AIRFLOW__CORE__EXECUTOR                     = "airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor"
    AIRFLOW__AWS_ECS_EXECUTOR__REGION_NAME      = var.region
    AIRFLOW__AWS_ECS_EXECUTOR__CLUSTER          = module.ecs_worker.cluster_name
    AIRFLOW__AWS_ECS_EXECUTOR__TASK_DEFINITION  = module.ecs_worker.task_definition_family
    AIRFLOW__AWS_ECS_EXECUTOR__CONTAINER_NAME   = module.ecs_worker.container_name
    AIRFLOW__AWS_ECS_EXECUTOR__LAUNCH_TYPE      = "FARGATE"
    AIRFLOW__AWS_ECS_EXECUTOR__ASSIGN_PUBLIC_IP = "False"
  }
}

output "glue_database" {
  description = "Glue catalog database of the sanitized tables."
  value       = module.glue_athena.database_name
}

output "athena_workgroup" {
  description = "Athena workgroup for analysts."
  value       = module.glue_athena.workgroup_name
}

output "athena_analyst_policy_arn" {
  description = "Managed policy granting analysts query access to the sanitized tables only."
  value       = module.glue_athena.analyst_policy_arn
}

output "pipeline_environment" {
  description = "The worker's pipeline locations (also for a scheduler or a CLI user)."
  value       = local.worker_environment
}
