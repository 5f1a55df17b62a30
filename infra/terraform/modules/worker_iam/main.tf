# The role of the pipeline's worker tasks, least privilege over the layout in README "Data layout":
# raw batches are read-only (no put, no delete), scratch prefixes and the sanitized zone are read-write,
# audit records cannot be deleted, no object version can be deleted (only lifecycle removes versions),
# and the KMS keys are usable only through S3 in this region.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.region

  raw_listable       = flatten([for p in concat(var.raw_read_prefixes, var.raw_scratch_prefixes) : [p, "${p}/*"]])
  sanitized_listable = flatten([for p in concat(var.sanitized_prefixes, var.append_only_prefixes) : [p, "${p}/*"]])
  artifacts_listable = flatten([for p in var.artifacts_prefixes : [p, "${p}/*"]])
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = var.trusted_services
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "Prompt Pipeline Hub worker tasks: read raw batches, write the sanitized zone."
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "worker" {
  # s3fs probes a bucket with HeadBucket, then GetBucketLocation, before writing (mkdir); the prefix-
  # limited ListBucket grants below do not cover HeadBucket, GetBucketLocation answers the probe.
  statement {
    sid       = "BucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.raw_bucket_arn, var.sanitized_bucket_arn, var.artifacts_bucket_arn]
  }

  statement {
    sid       = "ListRawZone"
    actions   = ["s3:ListBucket"]
    resources = [var.raw_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.raw_listable
    }
  }

  statement {
    sid       = "ReadRawBatches"
    actions   = ["s3:GetObject"]
    resources = [for p in var.raw_read_prefixes : "${var.raw_bucket_arn}/${p}/*"]
  }

  statement {
    sid       = "RawScratch"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.raw_scratch_prefixes : "${var.raw_bucket_arn}/${p}/*"]
  }

  statement {
    sid       = "ListSanitizedZone"
    actions   = ["s3:ListBucket"]
    resources = [var.sanitized_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.sanitized_listable
    }
  }

  statement {
    sid       = "WriteSanitizedZone"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.sanitized_prefixes : "${var.sanitized_bucket_arn}/${p}/*"]
  }

  statement {
    sid       = "AppendAuditRecords"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.append_only_prefixes : "${var.sanitized_bucket_arn}/${p}/*"]
  }

  statement {
    sid       = "RemoveOwnTemporaryAuditObjects"
    actions   = ["s3:DeleteObject"]
    resources = [for p in var.append_only_prefixes : "${var.sanitized_bucket_arn}/${p}/*_tmp-*"]
  }

  statement {
    sid       = "ListArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.artifacts_listable
    }
  }

  statement {
    sid       = "WriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.artifacts_prefixes : "${var.artifacts_bucket_arn}/${p}/*"]
  }

  statement {
    sid       = "BucketKeysThroughS3Only"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = var.kms_key_arns

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.bedrock_model_arns) > 0 ? [1] : []

    content {
      sid       = "InvokeBedrockModels"
      actions   = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
      resources = var.bedrock_model_arns
    }
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "pipeline-data-access"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.worker.json
}
