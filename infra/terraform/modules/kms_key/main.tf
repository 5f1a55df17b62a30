# A customer-managed KMS key with automatic rotation. Administration stays with the account's IAM
# policies (the key policy delegates to the account root), so IAM decides who may use the key; the
# worker, CI and analyst policies grant use of exactly this key, through S3 (kms:ViaService).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  log_groups   = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:log-group:*"
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:This is a key policy, not an IAM policy: Resource "*" means this key only, and the account-root statement is the AWS default key policy that delegates access control to IAM.
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" is this key only; who may use it is decided by IAM policies (worker, CI, analyst), each limited to this key through S3.
  #checkov:skip=CKV_AWS_356:Key policy: a key policy's Resource must be "*" and denotes the key it is attached to (AWS KMS developer guide, "Key policies").
  # A key policy's Resource "*" means this key only (AWS KMS developer guide, "Key policies").
  statement {
    sid       = "AccountIamPoliciesDecide"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  dynamic "statement" {
    for_each = var.allow_cloudwatch_logs ? [1] : []

    content {
      sid       = "CloudWatchLogsOfThisAccount"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = [local.log_groups]
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  rotation_period_in_days = var.rotation_period_in_days
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
