# CI/CD from GitHub Actions without stored AWS keys: the workflow exchanges its OIDC token for this
# role, which trusts only the given repository and branches (GitHub docs, "Configuring OpenID Connect
# in Amazon Web Services"; IAM user guide, "Create a role for OpenID Connect federation"). It may push
# the worker image, register task definition revisions that use the existing worker roles, and
# publish reports to the artifacts bucket; it cannot read the raw or sanitized data.

data "aws_region" "current" {}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  tags           = var.tags
}

locals {
  provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.oidc_provider_arn
  subjects     = [for b in var.branches : "repo:${var.repository}:ref:refs/heads/${b}"]
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.subjects
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "GitHub Actions CI/CD for ${var.repository} (${join(", ", var.branches)})."
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "ci" {
  # GetAuthorizationToken, RegisterTaskDefinition and DescribeTaskDefinition support no resource-level
  # permissions (Service Authorization Reference, Amazon ECR and Amazon ECS), hence "*".
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PushWorkerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "RegisterWorkerTaskDefinition"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "PassWorkerRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = var.pass_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "ListReports"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for p in var.artifacts_prefixes : [p, "${p}/*"]])
    }
  }

  statement {
    sid       = "PublishReports"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.artifacts_prefixes : "${var.artifacts_bucket_arn}/${p}/*"]
  }

  # Atomic writes (pipeline_hub.storage.write_bytes_atomic) rename through a _tmp- object.
  statement {
    sid       = "RemoveOwnTemporaryReportObjects"
    actions   = ["s3:DeleteObject"]
    resources = [for p in var.artifacts_prefixes : "${var.artifacts_bucket_arn}/${p}/*_tmp-*"]
  }

  statement {
    sid       = "ArtifactsKeyThroughS3Only"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "ci" {
  name   = "ci-deploy"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.ci.json
}
