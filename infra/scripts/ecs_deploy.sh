#!/usr/bin/env bash
# Deploy, smoke-test and roll back Prompt Pipeline Hub on Amazon ECS (used by .github/workflows/cd.yml).
#
# DAGs, plugins (the pipeline_hub package) and include/ are baked into the image (Dockerfile, target
# `airflow`), so one image tag is one release: deploying swaps the image of every Airflow service's task
# definition (new revisions, everything else as Terraform defined it), and rolling back puts the previous
# revisions back, DAGs included.
#
#   ecs_deploy.sh deployed-sha                 # git commit (image tag) the first service runs now, or nothing
#   ecs_deploy.sh snapshot FILE                # {service: task definition ARN} of every service, to FILE
#   ecs_deploy.sh deploy IMAGE                 # new revisions with IMAGE, update the services, wait until stable
#   ecs_deploy.sh smoke IMAGE                  # one-off task: seed the sample, `airflow dags test` on smoke roots
#   ecs_deploy.sh rollback FILE                # services back to the snapshot's revisions, wait until stable
#
# Environment (repository variables; credentials come from OIDC, never from keys):
#   ECS_CLUSTER, ECS_SERVICES (space-separated: api-server scheduler dag-processor triggerer worker),
#   SMOKE_SUBNETS, SMOKE_SECURITY_GROUPS (comma-separated, for the awsvpc one-off task),
#   SMOKE_RAW_URI, SMOKE_SANITIZED_URI (e.g. s3://aws_default@my-raw-bucket/smoke/raw_data and
#   s3://aws_default@my-sanitized-bucket/smoke: never the production roots), SMOKE_CONTAINER (default airflow),
#   SMOKE_DS (default 2025-01-15), SMOKE_ROW_LIMIT (default 5).
# Requires the AWS CLI v2 and jq (both on GitHub's ubuntu runners).
set -euo pipefail

die() { echo "ecs_deploy: $*" >&2; exit 2; }
need() { [[ -n "${!1:-}" ]] || die "$1 is not set"; }

service_td() {  # task definition ARN a service runs now
  aws ecs describe-services --cluster "$ECS_CLUSTER" --services "$1" \
    --query 'services[0].taskDefinition' --output text
}

wait_stable() {
  # shellcheck disable=SC2086 # ECS_SERVICES is a list
  aws ecs wait services-stable --cluster "$ECS_CLUSTER" --services $ECS_SERVICES
}

cmd_deployed_sha() {
  need ECS_CLUSTER; need ECS_SERVICES
  local first td image
  first=${ECS_SERVICES%% *}
  td=$(service_td "$first") || return 0
  [[ "$td" == arn:* ]] || return 0
  image=$(aws ecs describe-task-definition --task-definition "$td" \
    --query 'taskDefinition.containerDefinitions[0].image' --output text)
  local tag=${image##*:}
  [[ "$tag" =~ ^[0-9a-f]{40}$ ]] && echo "$tag" || true
}

cmd_snapshot() {
  need ECS_CLUSTER; need ECS_SERVICES
  local out=${1:?snapshot FILE}
  local json='{}'
  for service in $ECS_SERVICES; do
    json=$(jq --arg s "$service" --arg td "$(service_td "$service")" '. + {($s): $td}' <<<"$json")
  done
  echo "$json" >"$out"
  cat "$out"
}

cmd_deploy() {
  need ECS_CLUSTER; need ECS_SERVICES
  local image=${1:?deploy IMAGE}
  local repo=${image%:*}
  for service in $ECS_SERVICES; do
    local td new
    td=$(service_td "$service")
    # Same task definition, only the containers running this repository's image get the new tag.
    new=$(aws ecs describe-task-definition --task-definition "$td" --query taskDefinition \
      | jq --arg img "$image" --arg repo "$repo" '
          .containerDefinitions |= map(if (.image | split(":")[0]) == $repo then .image = $img else . end)
          | del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
                .registeredAt, .registeredBy, .deregisteredAt)')
    local arn
    arn=$(aws ecs register-task-definition --cli-input-json "$new" \
      --query 'taskDefinition.taskDefinitionArn' --output text)
    aws ecs update-service --cluster "$ECS_CLUSTER" --service "$service" --task-definition "$arn" \
      --query 'service.serviceName' --output text
  done
  wait_stable
}

cmd_smoke() {
  need ECS_CLUSTER; need ECS_SERVICES; need SMOKE_SUBNETS; need SMOKE_SECURITY_GROUPS
  need SMOKE_RAW_URI; need SMOKE_SANITIZED_URI
  local image=${1:?smoke IMAGE}
  local container=${SMOKE_CONTAINER:-airflow} ds=${SMOKE_DS:-2025-01-15} limit=${SMOKE_ROW_LIMIT:-5}
  local first=${ECS_SERVICES%% *}
  local td
  td=$(service_td "$first")
  [[ "$(aws ecs describe-task-definition --task-definition "$td" \
        --query 'taskDefinition.containerDefinitions[0].image' --output text)" == "$image" ]] \
    || die "service $first does not run $image yet"
  local script="pipeline-hub seed --ds $ds --raw $SMOKE_RAW_URI && airflow dags test prompt_pipeline $ds --conf '{\"row_limit\": $limit}'"
  local overrides
  overrides=$(jq -n --arg c "$container" --arg s "$script" --arg raw "$SMOKE_RAW_URI" \
    --arg out "$SMOKE_SANITIZED_URI" '{containerOverrides: [{name: $c, command: ["bash", "-c", $s],
      environment: [{name: "PIPELINE_HUB_RAW_URI", value: $raw},
                    {name: "PIPELINE_HUB_SANITIZED_URI", value: $out},
                    {name: "PIPELINE_HUB_STAGING_URI", value: ($raw + "/../staging")}]}]}')
  local task
  task=$(aws ecs run-task --cluster "$ECS_CLUSTER" --task-definition "$td" --launch-type FARGATE \
    --network-configuration "awsvpcConfiguration={subnets=[$SMOKE_SUBNETS],securityGroups=[$SMOKE_SECURITY_GROUPS],assignPublicIp=DISABLED}" \
    --overrides "$overrides" --started-by "cd-smoke" --query 'tasks[0].taskArn' --output text)
  echo "smoke task: $task"
  # `wait tasks-stopped` gives up after 10 minutes; a cold smoke run (spaCy, GX) takes a few.
  aws ecs wait tasks-stopped --cluster "$ECS_CLUSTER" --tasks "$task" \
    || aws ecs wait tasks-stopped --cluster "$ECS_CLUSTER" --tasks "$task"
  local code
  code=$(aws ecs describe-tasks --cluster "$ECS_CLUSTER" --tasks "$task" \
    --query "tasks[0].containers[?name=='$container'].exitCode | [0]" --output text)
  echo "smoke exit code: $code"
  [[ "$code" == "0" ]]
}

cmd_rollback() {
  need ECS_CLUSTER; need ECS_SERVICES
  local snapshot=${1:?rollback FILE}
  for service in $ECS_SERVICES; do
    local td
    td=$(jq -r --arg s "$service" '.[$s] // empty' "$snapshot")
    [[ -n "$td" ]] || die "$snapshot has no task definition for $service"
    aws ecs update-service --cluster "$ECS_CLUSTER" --service "$service" --task-definition "$td" \
      --query 'service.serviceName' --output text
  done
  wait_stable
}

case "${1:-}" in
  deployed-sha) shift; cmd_deployed_sha "$@" ;;
  snapshot) shift; cmd_snapshot "$@" ;;
  deploy) shift; cmd_deploy "$@" ;;
  smoke) shift; cmd_smoke "$@" ;;
  rollback) shift; cmd_rollback "$@" ;;
  *) sed -n '2,22p' "$0"; exit 2 ;;
esac
