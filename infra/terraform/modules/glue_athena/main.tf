# Glue catalog tables over the sanitized zone's Hive-partitioned Parquet, and an Athena workgroup with
# KMS-encrypted results. The columns, partitions and table properties come from the same source as
# include/sql/athena_tables.sql (pipeline_hub.analytics.athena, via tools/glue_tables.py), so the catalog cannot
# drift from the Parquet the publish stage writes. Partition projection makes a new ds= partition
# queryable at once: no crawler and no MSCK REPAIR TABLE (Athena user guide, "Partition projection").

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  partition      = data.aws_partition.current.partition
  account        = data.aws_caller_identity.current.account_id
  region         = data.aws_region.current.region
  sanitized_root = "s3://${var.sanitized_bucket_name}"
  sanitized_arn  = "arn:${local.partition}:s3:::${var.sanitized_bucket_name}"
  artifacts_arn  = "arn:${local.partition}:s3:::${var.artifacts_bucket_name}"
  table_prefixes = distinct([for t in var.tables : split("/", t.folder)[0]])
}

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "Prompt Pipeline Hub sanitized zone (${local.sanitized_root})"
  tags        = var.tags
}

resource "aws_glue_catalog_table" "this" {
  for_each = var.tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  description   = each.value.comment
  table_type    = "EXTERNAL_TABLE"
  parameters = merge(
    { for k, v in each.value.parameters : k => replace(v, "{sanitized_root}", local.sanitized_root) },
    { EXTERNAL = "TRUE", classification = "parquet" }
  )

  dynamic "partition_keys" {
    for_each = each.value.partitions

    content {
      name = partition_keys.value.name
      type = partition_keys.value.type
    }
  }

  storage_descriptor {
    location      = "${local.sanitized_root}/${each.value.folder}/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters            = { "serialization.format" = "1" }
    }

    dynamic "columns" {
      for_each = each.value.columns

      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

resource "aws_glue_data_catalog_encryption_settings" "this" {
  count = var.manage_catalog_encryption ? 1 : 0

  data_catalog_encryption_settings {
    connection_password_encryption {
      return_connection_password_encrypted = true
      aws_kms_key_id                       = var.kms_key_arn
    }

    encryption_at_rest {
      catalog_encryption_mode = "SSE-KMS"
      sse_aws_kms_key_id      = var.kms_key_arn
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = "${var.name}-analysts"
  description   = "Queries over the sanitized zone; results encrypted with the data key."
  state         = "ENABLED"
  force_destroy = false
  tags          = var.tags

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${var.artifacts_bucket_name}/${var.results_prefix}/"
      expected_bucket_owner = local.account

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}

# Attach to analysts' roles or groups: query the sanitized tables through the workgroup. Grants no
# access to the raw bucket or its key.
data "aws_iam_policy_document" "analyst" {
  statement {
    sid       = "UseWorkgroup"
    actions   = ["athena:BatchGetQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:GetQueryResultsStream", "athena:GetWorkGroup", "athena:ListQueryExecutions", "athena:StartQueryExecution", "athena:StopQueryExecution"]
    resources = [aws_athena_workgroup.this.arn]
  }

  statement {
    sid     = "ReadCatalog"
    actions = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetPartition", "glue:GetPartitions", "glue:GetTable", "glue:GetTables"]
    resources = [
      "arn:${local.partition}:glue:${local.region}:${local.account}:catalog",
      aws_glue_catalog_database.this.arn,
      "arn:${local.partition}:glue:${local.region}:${local.account}:table/${var.database_name}/*",
    ]
  }

  statement {
    sid       = "BucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.sanitized_arn, local.artifacts_arn]
  }

  statement {
    sid       = "ListTableData"
    actions   = ["s3:ListBucket"]
    resources = [local.sanitized_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for p in local.table_prefixes : [p, "${p}/*"]])
    }
  }

  statement {
    sid       = "ReadTableData"
    actions   = ["s3:GetObject"]
    resources = [for p in local.table_prefixes : "${local.sanitized_arn}/${p}/*"]
  }

  statement {
    sid       = "ListQueryResults"
    actions   = ["s3:ListBucket"]
    resources = [local.artifacts_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.results_prefix, "${var.results_prefix}/*"]
    }
  }

  statement {
    sid       = "WriteQueryResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.artifacts_arn}/${var.results_prefix}/*"]
  }

  statement {
    sid       = "DataKeyThroughServicesOnly"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "glue.${local.region}.amazonaws.com", "athena.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "analyst" {
  name        = "${var.name}-athena-analyst"
  description = "Query the Prompt Pipeline Hub sanitized zone with Athena (workgroup ${aws_athena_workgroup.this.name})."
  policy      = data.aws_iam_policy_document.analyst.json
  tags        = var.tags
}
