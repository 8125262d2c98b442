//! The command line (clap definitions only), and its translation into validated specs before
//! any I/O happens.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::action::driver::SendPolicy;
use crate::action::dynamodb::{DynamoDbPopulate, TimeAs};
use crate::action::eventbridge::{self, EventBridgeReplay};
use crate::action::lambda::{Invocation, LambdaInvoke};
use crate::action::parquet::ParquetPopulate;
use crate::action::policy::{RateLimiter, RetryPolicy};
use crate::action::sql::{Dialect, Load, SqlPopulate, SqlSettings};
use crate::action::Action;
use crate::aws::{self, AwsArgs};
use crate::event::{self, FieldMap};
use crate::filter::FilterSpec;
use crate::report::query::TableFormat;
use crate::run::{OutputFormat, PreviewFormat, RunSpec};
use crate::source::SourceSpec;
use crate::{Error, Result};

const EXAMPLES: &str = "\
Examples:
  # What would a filter select? (nothing is actioned)
  rehydrate preview --from testdata/events.ndjson --where \"source = 'com.shop.orders'\" --limit 5

  # Rebuild an analytics table: orders events as Parquet, partitioned by event type
  rehydrate populate parquet --from testdata/events.ndjson \\
      --where \"source = 'com.shop.orders'\" --to out/orders --partition-by detail_type

  # A projection of detail, for a since/until window
  rehydrate populate parquet --from testdata/events.ndjson --since 2026-03-01 --until 2026-04-01 \\
      --query @queries/order_totals.sql --to out/order_totals

  # Replay orders events onto a rebuild bus (see what would be sent first)
  rehydrate replay --from testdata/events.ndjson --where \"source = 'com.shop.orders'\" \\
      --bus orders-rebuild --dry-run

  # Feed a projector Lambda, in order per order id, eight orders at a time
  rehydrate invoke --from testdata/events.ndjson --where \"source = 'com.shop.orders'\" \\
      --function orders-projector --ordering-key \"detail->>'orderId'\" --concurrency 8

  # Records of another shape, mapped onto the envelope
  rehydrate preview --from testdata/eventstore.ndjson --map detail-type=eventType \\
      --map detail=payload --map time=createdAt --map source=aggregate --map id=eventId

  # Load a read model into DynamoDB, PostgreSQL or MySQL (upserts on the key)
  rehydrate populate dynamodb --from testdata/events.ndjson --query @queries/user_profiles.sql --table users
  rehydrate populate postgres --from testdata/events.ndjson --query @queries/order_totals.sql \\
      --url postgres://app@db.example:5432/shop --table order_totals --key id --create-table

  # What happened in the saved runs?
  rehydrate report \"SELECT status, count(*) FROM outcomes GROUP BY status\"

Exit codes: 0 every matched event actioned; 1 the run could not proceed;
            2 usage error; 3 finished, but some events failed or were rejected.
AWS conventions apply to AWS targets: standard credentials, AWS_REGION, AWS_ENDPOINT_URL.";

#[derive(Debug, Parser)]
#[command(
    name = "rehydrate",
    version,
    about = "Rebuild event-driven services from their event store",
    long_about = "Reads an event store as Apache Arrow batches, selects events with SQL (DataFusion), \
                  actions each selected event, and reports every outcome as a table you can query.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a filter selects, without actioning anything.
    Preview(PreviewArgs),
    /// Put the selected events back onto an EventBridge bus (PutEvents), marked as replays.
    #[command(
        after_help = "Examples:\n  rehydrate replay --from testdata/events.ndjson --where \"source = 'com.shop.orders'\" --bus orders-rebuild --dry-run\n  rehydrate replay --from export/ --since 2026-03-01 --bus arn:aws:events:eu-west-1:123456789012:event-bus/rebuild --rate 500"
    )]
    Replay(ReplayArgs),
    /// Call a Lambda function with each selected event, as an EventBridge rule would deliver it.
    #[command(
        after_help = "Examples:\n  rehydrate invoke --from testdata/events.ndjson --where \"source = 'com.shop.orders'\" --function orders-projector\n  rehydrate invoke --from export/ --function orders-projector --ordering-key \"detail->>'orderId'\" --concurrency 8"
    )]
    Invoke(InvokeArgs),
    /// Write the selected events (or a SQL projection of them) into a store.
    #[command(subcommand)]
    Populate(PopulateTarget),
    /// Continue a stopped or killed run: the same command, leaving out every event it finished.
    #[command(
        after_help = "Examples:\n  rehydrate resume 20261201T083351.419Z-027b\n  rehydrate resume --report-dir runs/ 20261201T083351.419Z-027b\n\nEvents that were in flight when the run was killed had no outcome yet: they are sent again."
    )]
    Resume(ResumeArgs),
    /// Run a saved run again on only its events that ended failed, rejected or skipped.
    #[command(
        after_help = "Examples:\n  rehydrate redrive 20261201T083351.419Z-027b\n\nThe saved command runs again (same --map, filter and target) on exactly those events."
    )]
    Redrive(ResumeArgs),
    /// Run a plan: one source read once, and many routes (a filter and an action each).
    #[command(
        after_help = "Examples:\n  rehydrate run --check queries/rebuild.plan.toml\n  rehydrate run queries/rebuild.plan.toml --dry-run\n  rehydrate run queries/rebuild.plan.toml --report-dir runs/ --output json\n\nA route's options are its command's flags: bus = \"rebuild\" is --bus rebuild, partition_by = [\"source\"] is --partition-by source."
    )]
    Run(RunPlanArgs),
    /// Query saved runs with SQL: the tables `runs` and `outcomes`.
    #[command(
        after_help = "Examples:\n  rehydrate report \"SELECT status, count(*) FROM outcomes GROUP BY status\"\n  rehydrate report \"SELECT run_id, command, read, matched, failed, exit_code FROM runs ORDER BY started_at DESC LIMIT 5\"\n  rehydrate report --format ndjson \"SELECT origin, position, error_message FROM outcomes WHERE status = 'rejected'\""
    )]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct RunPlanArgs {
    /// The plan: TOML, or the same document as JSON (see queries/rebuild.plan.toml).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Check the plan (its options, SQL and patterns) and print its routes, without reading the store or contacting a target.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl RunPlanArgs {
    /// The flags every route's command line gets from `rehydrate run`'s own.
    pub fn forwarded(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.run.dry_run || self.check {
            out.push("--dry-run".to_owned());
        }
        for (flag, v) in [
            ("--region", &self.aws.region),
            ("--profile", &self.aws.profile),
            ("--endpoint-url", &self.aws.endpoint_url),
        ] {
            if let Some(v) = v {
                out.push(flag.to_owned());
                out.push(v.clone());
            }
        }
        out.push("--request-timeout".to_owned());
        out.push(self.aws.request_timeout.to_string());
        out
    }
}

impl Command {
    /// The AWS settings of a command that has them.
    pub fn aws_args(&self) -> Option<&AwsArgs> {
        Some(match self {
            Command::Preview(a) => &a.aws,
            Command::Replay(a) => &a.aws,
            Command::Invoke(a) => &a.aws,
            Command::Run(a) => &a.aws,
            Command::Populate(PopulateTarget::Parquet(a)) => &a.aws,
            Command::Populate(PopulateTarget::Dynamodb(a)) => &a.aws,
            Command::Populate(PopulateTarget::Postgres(a)) | Command::Populate(PopulateTarget::Mysql(a)) => &a.aws,
            Command::Populate(PopulateTarget::Opensearch(a)) => &a.aws,
            Command::Populate(PopulateTarget::Redshift(a)) => &a.aws,
            _ => return None,
        })
    }

    /// The filter flags of an actioning command.
    pub fn filter_args(&self) -> Option<&FilterArgs> {
        Some(match self {
            Command::Replay(a) => &a.filter,
            Command::Invoke(a) => &a.filter,
            Command::Populate(PopulateTarget::Parquet(a)) => &a.filter,
            Command::Populate(PopulateTarget::Dynamodb(a)) => &a.filter,
            Command::Populate(PopulateTarget::Postgres(a)) | Command::Populate(PopulateTarget::Mysql(a)) => &a.filter,
            Command::Populate(PopulateTarget::Opensearch(a)) => &a.filter,
            Command::Populate(PopulateTarget::Redshift(a)) => &a.filter,
            _ => return None,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum PopulateTarget {
    /// Parquet files (zstd) under a directory or an S3 prefix, optionally Hive-partitioned, for Athena, DuckDB, Spark.
    #[command(
        after_help = "Examples:\n  rehydrate populate parquet --from testdata/events.ndjson --to out/events --partition-by source\n  rehydrate populate parquet --from s3://store/events/ --to s3://lake/events/ --partition-by source,date --athena-ddl events.sql\n  rehydrate populate parquet --from s3://store/events/ --where \"time >= '2026-03-01'\" --to s3://lake/events/ --partition-by date --overwrite\n\ndate and hour partitions are derived from time (UTC); --overwrite replaces, after the run, only the partitions it wrote."
    )]
    Parquet(ParquetArgs),
    /// Items in a DynamoDB table (BatchWriteItem); columns become attributes, detail a map.
    #[command(
        after_help = "Examples:\n  rehydrate populate dynamodb --from testdata/events.ndjson --query @queries/user_profiles.sql --table users\n  rehydrate populate dynamodb --from export/ --where \"source = 'com.shop.orders'\" --table events --dry-run"
    )]
    Dynamodb(DynamoDbArgs),
    /// Rows upserted into a PostgreSQL table (RDS or any server), a transaction per batch.
    #[command(
        after_help = "Examples:\n  rehydrate populate postgres --from testdata/events.ndjson --query @queries/order_totals.sql --url postgres://app@localhost/shop --table order_totals --key id --create-table\n  PGPASSWORD=… rehydrate populate postgres --from export/ --url 'postgres://app@db.example/shop?sslmode=require' --table events --key id"
    )]
    Postgres(SqlArgs),
    /// Rows upserted into a MySQL or MariaDB table (RDS or any server), a transaction per batch.
    #[command(
        after_help = "Examples:\n  rehydrate populate mysql --from testdata/events.ndjson --query @queries/order_totals.sql --url mysql://app@localhost/shop --table order_totals --key id --create-table\n  MYSQL_PWD=… rehydrate populate mysql --from export/ --url 'mysql://app@db.example/shop?ssl-mode=REQUIRED' --table events --key id"
    )]
    Mysql(SqlArgs),
    /// Documents in OpenSearch (or Amazon OpenSearch Service / Serverless) through _bulk; every item's result is read.
    #[command(
        after_help = "Examples:\n  rehydrate populate opensearch --from testdata/events.ndjson --url http://localhost:9200 --index 'events-{source}-{time:%Y.%m}'\n  rehydrate populate opensearch --from export/ --query @queries/user_profiles.sql --id user_id --url https://search-shop.eu-west-1.es.amazonaws.com --aws-sigv4 es --index users\n  OPENSEARCH_USERNAME=admin OPENSEARCH_PASSWORD=… rehydrate populate opensearch --from export/ --url https://search.internal:9200 --ca-cert ca.pem --index events --op create\n\nThe document is the selected row (detail as an object); _id is --id (default: the event id), so a re-run overwrites instead of duplicating."
    )]
    Opensearch(OpenSearchArgs),
    /// A Redshift table (Serverless or provisioned), loaded with COPY from Parquet staged on S3, through the Data API.
    #[command(
        after_help = "Examples:\n  rehydrate populate redshift --from s3://store/events/ --where \"source = 'com.shop.orders'\" --staging s3://my-staging/rehydrate/ --workgroup analytics --database dev --table public.orders --iam-role arn:aws:iam::123456789012:role/redshift-copy --create-table\n  rehydrate populate redshift --from export/ --query @queries/order_totals.sql --staging s3://my-staging/rh/ --cluster-id prod --db-user loader --database shop --table analytics.order_totals\n\nEach load (--load-rows rows) is one staged Parquet object and one COPY with a manifest naming exactly it; a failed COPY fails that load's events with Redshift's error."
    )]
    Redshift(RedshiftArgs),
}

/// Where events come from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Event files or directories (NDJSON or a JSON array, optionally .gz; Parquet), S3 prefixes (s3://bucket/prefix/), a DynamoDB table (dynamodb://TABLE), a DynamoDB export (dynamodb-export://bucket/prefix/AWSDynamoDB/EXPORT-ID/), or - for stdin.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub from: Vec<String>,
    /// Read records of another shape: FIELD=PATH, e.g. detail-type=eventType, time=meta.createdAt, detail=payload.
    #[arg(long = "map", value_name = "FIELD=PATH")]
    pub map: Vec<String>,
    /// Events per Arrow batch (1 to 1048576).
    #[arg(long, default_value_t = 8192, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub batch_size: u32,
    /// DynamoDB scan: parallel Scan segments (1 to 1000000; default one per 2 GB of table, from DescribeTable).
    #[arg(long, value_name = "N", help_heading = "DynamoDB table source")]
    pub segments: Option<u32>,
    /// DynamoDB scan: strongly consistent reads (twice the read capacity).
    #[arg(long, help_heading = "DynamoDB table source")]
    pub consistent_read: bool,
    /// DynamoDB scan: at most this many read capacity units a second (from ConsumedCapacity), over all segments.
    #[arg(long, value_name = "RCU", help_heading = "DynamoDB table source")]
    pub read_rate: Option<f64>,
    /// This worker's part of the store, INDEX/COUNT (0 <= INDEX < COUNT) [default: from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job), with --shards].
    #[arg(long, value_name = "I/N", help_heading = "Scale-out")]
    pub shard: Option<String>,
    /// How many workers share the store, with the index from the engine's environment.
    #[arg(long, env = "REHYDRATE_SHARDS", value_name = "N", help_heading = "Scale-out")]
    pub shards: Option<u32>,
    /// DynamoDB scan: items per Scan page (Scan's Limit, 1 to 1000000; default: as many as fit in DynamoDB's 1 MB page).
    #[arg(long, value_name = "N", help_heading = "DynamoDB table source", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub page_items: Option<u32>,
}

/// Which events are selected.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// A SQL condition over the table `events` (or @file), e.g. "source = 'orders' AND detail->>'status' = 'PAID'".
    #[arg(long = "where", value_name = "PREDICATE", conflicts_with = "query")]
    pub where_: Option<String>,
    /// A SELECT … FROM events (or @file.sql): a projection of the events to action.
    #[arg(long, value_name = "SQL|@FILE")]
    pub query: Option<String>,
    /// An EventBridge event pattern (JSON, or @rule.json), ANDed with --where, --since and --until, e.g. '{"source":["com.shop.orders"],"detail":{"total":[{"numeric":[">",100]}]}}'.
    #[arg(long, value_name = "JSON|@FILE")]
    pub pattern: Option<String>,
    /// Only events at or after this time (RFC 3339, or a date: 2026-03-01).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, or a date).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// What every actioning command takes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Read and select, but write nothing; every matched event is reported as skipped.
    #[arg(long)]
    pub dry_run: bool,
    /// Where run reports are saved (one folder per run): a directory, or an S3 prefix (s3://bucket/prefix/) that the workers of a job share.
    #[arg(
        long,
        env = "REHYDRATE_REPORT_DIR",
        default_value = "rehydrate-runs",
        value_name = "DIR|s3://…"
    )]
    pub report_dir: PathBuf,
    /// The job this run is one worker of, in the runs table [default: REHYDRATE_JOB_ID, the AWS Batch job (AWS_BATCH_JOB_ID), or JOB_NAME (set from the Kubernetes Job's name)].
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// The NDJSON file failed and rejected events are appended to [default: <report-dir>/<run-id>/dead-letter.ndjson].
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// text: a summary on stderr; json: the run summary on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// After Ctrl-C / SIGTERM, seconds that requests in flight may take to finish (0 to 600).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub grace_period: f64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rehydrate preview --from testdata/events.ndjson --where \"detail->'customer'->>'city' = 'Berlin'\"\n  rehydrate preview --from testdata/ --format count --where \"detail_type = 'OrderPlaced'\""
)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show at most N events [default for table: 20].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = PreviewFormat::Table)]
    pub format: PreviewFormat,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, Args)]
pub struct ParquetArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The directory or S3 prefix (s3://bucket/prefix/) to write into.
    #[arg(long, value_name = "DIR|S3_URL")]
    pub to: String,
    /// Hive-style partition columns (col=value/ folders), e.g. --partition-by source,detail_type.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub partition_by: Vec<String>,
    /// Start a new file after this many rows.
    #[arg(long, default_value_t = 500_000, value_name = "N")]
    pub max_rows_per_file: usize,
    /// Files open at once at most (one per partition being written); past it the least recently written is committed (1 to 10000).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_open_files: u32,
    /// Start a new file once a file holds about this much (e.g. 128MB, 1GiB); row groups are a quarter of it.
    #[arg(long, default_value = "128MB", value_name = "SIZE", value_parser = parse_size)]
    pub target_file_size: usize,
    /// After the run, remove the files of earlier runs in the partitions this run wrote (and only those).
    #[arg(long)]
    pub overwrite: bool,
    /// The zstd compression level of the Parquet pages (1 to 22): higher writes smaller files, more slowly.
    #[arg(long, default_value_t = crate::action::parquet::DEFAULT_ZSTD_LEVEL, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
    /// Write Athena's CREATE EXTERNAL TABLE (with partition projection) for the written schema to FILE, or stdout.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub athena_ddl: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How hard to push a target.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Attempts per event (the first included) for throttling and other retryable errors (1 to 100).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// At most this many events per second (0.01 to 10000000).
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// Lower the request size limit, for accounts or partitions still on an older limit (e.g. 262144).
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
}

/// The most requests in flight `--concurrency` allows.
const MAX_CONCURRENCY: usize = 1024;

impl SendArgs {
    fn policy(&self, concurrency: usize, continue_on_error: bool) -> Result<SendPolicy> {
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(Error::usage(format!(
                "--concurrency {concurrency}: must be between 1 and {MAX_CONCURRENCY}"
            )));
        }
        let rate = match self.rate {
            Some(r) if !(0.01..=10_000_000.0).contains(&r) => {
                return Err(Error::usage(format!(
                    "--rate {r}: must be between 0.01 and 10000000 events per second"
                )))
            }
            Some(r) => Some(Arc::new(RateLimiter::new(r))),
            None => None,
        };
        Ok(SendPolicy {
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                ..RetryPolicy::default()
            },
            rate,
            concurrency,
            continue_on_error,
        })
    }

    /// `--max-request-bytes`, checked against the service's own limit.
    fn request_bytes(&self, service_max: usize, what: &str) -> Result<usize> {
        match self.max_request_bytes {
            None => Ok(service_max),
            Some(n) if (1024..=service_max).contains(&n) => Ok(n),
            Some(n) => Err(Error::usage(format!(
                "--max-request-bytes {n}: must be between 1024 and {service_max} ({what})"
            ))),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The target event bus: a name or an ARN. Use a bus of its own to keep replays away from live rules.
    #[arg(long, value_name = "NAME|ARN")]
    pub bus: String,
    /// Replace every event's source (e.g. to keep replays apart from live traffic by source).
    #[arg(long = "source", value_name = "SOURCE")]
    pub source_override: Option<String>,
    /// Replace every event's detail-type.
    #[arg(long = "detail-type", value_name = "TYPE")]
    pub detail_type_override: Option<String>,
    /// Do not add the replay marker resource (arn:aws:rehydrate:::run/<run-id>).
    #[arg(long)]
    pub no_marker: bool,
    /// PutEvents requests in flight.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The function: a name, an ARN, or name:alias.
    #[arg(
        long,
        value_name = "NAME|ARN",
        required_unless_present = "rules_from_bus",
        conflicts_with = "rules_from_bus"
    )]
    pub function: Option<String>,
    /// Route as this bus's rules do: every event is matched against every rule's pattern, and each matching rule's Lambda targets are invoked with what EventBridge would deliver (Input, InputPath, InputTransformer).
    #[arg(long, value_name = "BUS")]
    pub rules_from_bus: Option<String>,
    /// With --rules-from-bus: only this rule (repeat for more).
    #[arg(long = "rule", value_name = "NAME", requires = "rules_from_bus")]
    pub rules: Vec<String>,
    /// With --rules-from-bus: disabled rules too.
    #[arg(long, requires = "rules_from_bus")]
    pub include_disabled: bool,
    #[arg(long, value_enum, default_value_t = Invocation::RequestResponse)]
    pub invocation_type: Invocation,
    /// Sort all selected events by time before invoking (spills to disk for large stores).
    #[arg(long, value_enum, value_name = "COLUMN")]
    pub order_by: Option<OrderBy>,
    /// A SQL expression (e.g. "detail->>'orderId'"): events with the same value are invoked in order, keys in parallel.
    #[arg(long, value_name = "SQL")]
    pub ordering_key: Option<String>,
    /// Invocations in flight (1: one at a time, in order).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub concurrency: usize,
    /// With an ordering key, keep invoking a key's later events after one of them failed.
    #[arg(long)]
    pub continue_on_error: bool,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct DynamoDbArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The table (its key attributes must be columns of the selection).
    #[arg(long, value_name = "NAME")]
    pub table: String,
    /// How timestamps are stored: RFC 3339 UTC strings (S) or epoch milliseconds (N).
    #[arg(long, value_enum, default_value_t = TimeAs::Rfc3339)]
    pub time_as: TimeAs,
    /// Keep JSON text columns (detail) as strings instead of maps.
    #[arg(long)]
    pub json_as_string: bool,
    /// BatchWriteItem requests in flight (1 to 1024).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The server: postgres://user@host:port/db or mysql://user@host:port/db; the password from the URL or PGPASSWORD / MYSQL_PWD. TLS: ?sslmode=require / ?ssl-mode=REQUIRED.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The table: NAME or SCHEMA.NAME.
    #[arg(long, value_name = "[SCHEMA.]TABLE")]
    pub table: String,
    /// The column(s) to upsert on: the table's primary key or a unique index.
    #[arg(long, value_delimiter = ',', required = true, value_name = "COL[,COL]")]
    pub key: Vec<String>,
    /// Create the table from the selection when it does not exist (JSON as jsonb/JSON, the key as primary key).
    #[arg(long)]
    pub create_table: bool,
    /// Rows per transaction (1 to 100000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch_rows: usize,
    /// PostgreSQL: load batches with COPY into a staging table, or with multi-row INSERTs.
    #[arg(long, value_enum, default_value_t = Load::Copy)]
    pub load: Load,
    #[command(flatten)]
    pub send: SendArgs,
    /// --region, --profile, --endpoint-url (for s3:// sources), and --request-timeout: seconds
    /// that connecting, or one batch's transaction, may take.
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct OpenSearchArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The server: https://host:9200 (user:password@ in the URL, or OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The index, or a template over the row: events-{source}-{time:%Y.%m} (values lowercased).
    #[arg(long, value_name = "TEMPLATE")]
    pub index: String,
    /// The column whose value is the document _id.
    #[arg(long, default_value = "id", value_name = "COLUMN")]
    pub id: String,
    /// index: create or replace each document; create: only new ones (an existing one is reported skipped).
    #[arg(long, value_enum, default_value_t = crate::action::opensearch::Op::Index)]
    pub op: crate::action::opensearch::Op,
    /// Sign requests with AWS SigV4 for Amazon OpenSearch Service (es) or Serverless (aoss), with the standard AWS credentials.
    #[arg(long, value_enum, value_name = "SERVICE")]
    pub aws_sigv4: Option<crate::action::opensearch::SigV4Service>,
    /// Trust this CA certificate (PEM) besides the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Documents per _bulk request (1 to 100000).
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub bulk_documents: u32,
    /// _bulk requests in flight (1 to 1024).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub concurrency: usize,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RedshiftArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Where rows are staged as Parquet before COPY: s3://bucket/prefix/ (the COPY role must read it).
    #[arg(long, value_name = "S3_URL")]
    pub staging: String,
    /// Redshift Serverless workgroup.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "cluster_id",
        required_unless_present = "cluster_id"
    )]
    pub workgroup: Option<String>,
    /// Provisioned cluster identifier.
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    #[arg(long, value_name = "DB")]
    pub database: String,
    /// A Secrets Manager secret with the database credentials.
    #[arg(long, value_name = "ARN", conflicts_with = "db_user")]
    pub secret_arn: Option<String>,
    /// A database user (temporary credentials; provisioned clusters).
    #[arg(long, value_name = "USER")]
    pub db_user: Option<String>,
    /// The table: SCHEMA.TABLE (or TABLE, in public).
    #[arg(long, value_name = "[SCHEMA.]TABLE")]
    pub table: String,
    /// The role COPY reads the staged files with [default: the warehouse's default IAM role].
    #[arg(long, value_name = "ARN")]
    pub iam_role: Option<String>,
    /// Create the table from the selection when it does not exist (JSON text and nested values as SUPER, times as TIMESTAMPTZ).
    #[arg(long)]
    pub create_table: bool,
    /// Remove a load's staged files once its COPY finished (failed loads keep theirs).
    #[arg(long)]
    pub cleanup_staging: bool,
    /// Rows per load: one staged object and one COPY (1 to 100000000).
    #[arg(long, default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub load_rows: u64,
    /// Seconds one statement (a COPY) may run before its load counts as timed out (1 to 86400).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub statement_timeout: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl RedshiftArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        use crate::action::redshift::{DbAuth, RedshiftPopulate, Warehouse};
        let send = self.send.policy(1, false)?;
        let (bucket, key) = aws::s3_location("--staging", &self.staging)?;
        let (schema, table) = match self.table.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => (s.to_owned(), t.to_owned()),
            None if !self.table.is_empty() => ("public".to_owned(), self.table.clone()),
            _ => {
                return Err(Error::usage(format!(
                    "--table {}: write SCHEMA.TABLE or TABLE",
                    self.table
                )))
            }
        };
        let warehouse = match (&self.workgroup, &self.cluster_id) {
            (Some(w), _) => Warehouse::Workgroup(w.clone()),
            (None, Some(c)) => Warehouse::Cluster(c.clone()),
            (None, None) => return Err(Error::usage("give --workgroup NAME or --cluster-id ID")),
        };
        let auth = match (&self.secret_arn, &self.db_user) {
            (Some(a), _) => DbAuth::SecretArn(a.clone()),
            (None, Some(u)) => DbAuth::DbUser(u.clone()),
            (None, None) if matches!(warehouse, Warehouse::Cluster(_)) => {
                return Err(Error::usage("--cluster-id needs --secret-arn ARN or --db-user USER"))
            }
            (None, None) => DbAuth::Iam,
        };
        let source = self.source.to_spec(&self.aws).await?;
        let filter = self.filter.to_spec()?;
        let config = aws::connect(&self.aws, self.run.dry_run).await?;
        let populate = RedshiftPopulate {
            client: aws_sdk_redshiftdata::Client::new(&config),
            warehouse,
            database: self.database.clone(),
            auth,
            schema,
            table,
            iam_role: self.iam_role.clone(),
            create_table: self.create_table,
            cleanup_staging: self.cleanup_staging,
            staging: aws::s3_store(&config, bucket)?,
            staging_bucket: bucket.to_owned(),
            staging_prefix: object_store::path::Path::from(key.trim_matches('/')),
            rows_per_load: self.load_rows as usize,
            statement_timeout: std::time::Duration::from_secs(self.statement_timeout),
        };
        self.run
            .apply(source, filter, Action::Redshift(Arc::new(populate)), send)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderBy {
    Time,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to continue (its folder name under the report directory).
    pub run_id: String,
    #[arg(
        long,
        env = "REHYDRATE_REPORT_DIR",
        default_value = "rehydrate-runs",
        value_name = "DIR"
    )]
    pub report_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A SELECT over `runs` and `outcomes`.
    pub sql: String,
    #[arg(
        long,
        env = "REHYDRATE_REPORT_DIR",
        default_value = "rehydrate-runs",
        value_name = "DIR"
    )]
    pub report_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

impl SourceArgs {
    /// The inputs, resolved: local files checked, S3 prefixes listed (with `aws`' region,
    /// profile and endpoint), before any work starts.
    pub async fn to_spec(&self, aws: &AwsArgs) -> Result<SourceSpec> {
        let map = FieldMap::parse(&self.map)?;
        let scan = crate::source::dynamodb::ScanOptions {
            segments: self.segments,
            consistent_read: self.consistent_read,
            read_rate: self.read_rate,
            page_items: self.page_items,
        };
        let shard = self.shard()?;
        let mut spec = SourceSpec::resolve(&self.from, map, self.batch_size as usize, aws, &scan).await?;
        if let Some(shard) = shard {
            shard.apply(&mut spec)?;
        }
        Ok(spec)
    }

    /// `--shard I/N`, or the index the engine sets (Kubernetes Indexed Jobs:
    /// JOB_COMPLETION_INDEX; AWS Batch array jobs: AWS_BATCH_JOB_ARRAY_INDEX) with `--shards N`.
    pub fn shard(&self) -> Result<Option<crate::source::Shard>> {
        if let Some(s) = &self.shard {
            return crate::source::Shard::parse(s).map(Some);
        }
        let index = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"]
            .iter()
            .find_map(|v| std::env::var(v).ok().map(|i| (*v, i)));
        match (index, self.shards) {
            (None, None) => Ok(None),
            (None, Some(n)) => Err(Error::usage(format!(
                "--shards {n} (or REHYDRATE_SHARDS) without an index: give --shard I/{n}, or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX)"
            ))),
            (Some((var, i)), None) => Err(Error::usage(format!(
                "{var}={i} is set but not how many shards there are: give --shards N or REHYDRATE_SHARDS (the job's completions / array size)"
            ))),
            (Some((var, i)), Some(n)) => crate::source::Shard::parse(&format!("{i}/{n}"))
                .map(Some)
                .map_err(|_| Error::usage(format!("{var}={i} with --shards {n}: the index must be below the count"))),
        }
    }
}

/// RFC 3339, or a bare date taken as midnight UTC.
fn parse_bound(flag: &str, value: &str) -> Result<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis());
    }
    event::parse_time(value).map_err(|_| {
        Error::usage(format!(
            "{flag} {value:?}: not a time; use RFC 3339 (2026-03-01T12:00:00Z) or a date (2026-03-01)"
        ))
    })
}

/// `@path` reads SQL from a file; anything else is the SQL itself.
fn read_at_file(value: &str) -> Result<String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|source| Error::Input {
            path: PathBuf::from(path),
            source,
        }),
        None => Ok(value.to_owned()),
    }
}

impl FilterArgs {
    pub fn to_spec(&self) -> Result<FilterSpec> {
        let query = self.query.as_deref().map(read_at_file).transpose()?;
        let where_ = self.where_.as_deref().map(read_at_file).transpose()?;
        let since = self.since.as_deref().map(|s| parse_bound("--since", s)).transpose()?;
        let until = self.until.as_deref().map(|s| parse_bound("--until", s)).transpose()?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(Error::usage("--since must be before --until"));
            }
        }
        let patterns = match &self.pattern {
            Some(p) => {
                let text = read_at_file(p)?;
                let compiled = crate::filter::pattern::Pattern::compile(&text).map_err(|reason| {
                    Error::usage(format!(
                        "--pattern: {reason} (EventBridge event-pattern syntax: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html)"
                    ))
                })?;
                vec![Arc::new(compiled)]
            }
            None => Vec::new(),
        };
        Ok(FilterSpec {
            where_,
            query,
            since,
            until,
            patterns,
            ..FilterSpec::default()
        })
    }
}

impl RunArgs {
    fn apply(&self, source: SourceSpec, filter: FilterSpec, action: Action, send: SendPolicy) -> Result<RunSpec> {
        let route = crate::run::Route {
            name: None,
            filter,
            action,
            send,
        };
        self.spec(source, vec![route], None)
    }

    /// The run spec of `routes` over one read of `source`, with this command line's run settings.
    pub fn spec(&self, source: SourceSpec, routes: Vec<crate::run::Route>, command: Option<String>) -> Result<RunSpec> {
        if !(0.0..=600.0).contains(&self.grace_period) {
            return Err(Error::usage(format!(
                "--grace-period {}: must be between 0 and 600 seconds",
                self.grace_period
            )));
        }
        let job_id = self.job_id.clone().or_else(|| {
            std::env::var("REHYDRATE_JOB_ID")
                .ok()
                .or_else(|| {
                    // An array job's children are PARENT:INDEX; the job is the parent.
                    std::env::var("AWS_BATCH_JOB_ID")
                        .ok()
                        .map(|j| j.split(':').next().unwrap_or(&j).to_owned())
                })
                .or_else(|| std::env::var("JOB_NAME").ok())
                .filter(|j| !j.is_empty())
        });
        Ok(RunSpec {
            source,
            routes,
            command,
            job_id,
            report_remote: None,
            dry_run: self.dry_run,
            report_dir: self.report_dir.clone(),
            dead_letter: self.dead_letter.clone(),
            output: self.output,
            grace_period: std::time::Duration::from_secs_f64(self.grace_period),
            argv: std::env::args().skip(1).collect(),
            resume: None,
            in_flight: None,
        })
    }
}

impl ReplayArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        let send = self.send.policy(self.concurrency, false)?;
        let max_request_bytes = self.send.request_bytes(
            eventbridge::MAX_REQUEST_BYTES,
            "PutEvents takes at most 1 MB by EventBridge's size formula",
        )?;
        let source = self.source.to_spec(&self.aws).await?;
        let filter = self.filter.to_spec()?;
        let config = aws::connect(&self.aws, self.run.dry_run).await?;
        let replay = EventBridgeReplay {
            client: aws_sdk_eventbridge::Client::new(&config),
            bus: self.bus.clone(),
            source_override: self.source_override.clone(),
            detail_type_override: self.detail_type_override.clone(),
            marker: !self.no_marker,
            max_request_bytes,
        };
        self.run.apply(source, filter, Action::Replay(Arc::new(replay)), send)
    }
}

impl InvokeArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        let send = self.send.policy(self.concurrency, self.continue_on_error)?;
        let max_request_bytes = self.send.request_bytes(
            self.invocation_type.max_payload(),
            "Lambda's payload limit for this invocation type",
        )?;
        let source = self.source.to_spec(&self.aws).await?;
        let mut filter = self.filter.to_spec()?;
        if filter.query.is_some() && (self.order_by.is_some() || self.ordering_key.is_some()) {
            return Err(Error::usage(
                "--order-by and --ordering-key work with --where, not --query",
            ));
        }
        filter.order_by_time = self.order_by == Some(OrderBy::Time);
        filter.ordering_key = self.ordering_key.clone();
        let config = aws::connect(&self.aws, self.run.dry_run).await?;
        let client = aws_sdk_lambda::Client::new(&config);
        let Some(bus) = &self.rules_from_bus else {
            let invoke = LambdaInvoke {
                client,
                function: self.function.clone().unwrap_or_default(),
                invocation: self.invocation_type,
                max_request_bytes,
                delivery: Default::default(),
                input: None,
            };
            return self.run.apply(source, filter, Action::Invoke(Arc::new(invoke)), send);
        };
        // The bus's rules are read even in a dry run: the routing table is what it shows.
        let events = aws_sdk_eventbridge::Client::new(&config);
        let (targets, left_out) =
            crate::action::rules::read_bus(&events, bus, &self.rules, self.include_disabled).await?;
        for l in &left_out {
            eprintln!("rehydrate: rule {l}: left out");
        }
        if targets.is_empty() {
            return Err(Error::usage(format!(
                "--rules-from-bus {bus}: no enabled rule with an event pattern and a target{}",
                if self.rules.is_empty() { "" } else { " among --rule" }
            )));
        }
        let mut routes = Vec::new();
        for t in targets {
            let pattern = crate::filter::pattern::Pattern::compile(&t.pattern).map_err(|reason| {
                Error::usage(format!("rule {} of {bus}: its event pattern: {reason}", t.rule_name))
            })?;
            let mut route_filter = filter.clone();
            route_filter.patterns.push(Arc::new(pattern));
            let action = if t.is_lambda() {
                let invoke = LambdaInvoke {
                    client: client.clone(),
                    function: t.arn.clone(),
                    invocation: self.invocation_type,
                    max_request_bytes,
                    delivery: Default::default(),
                    input: Some(Arc::new(crate::action::rules::TargetInput {
                        input: t.input.clone(),
                        rule_name: t.rule_name.clone(),
                        rule_arn: t.rule_arn.clone(),
                    })),
                };
                if let Some(d) = crate::action::rules::delivery_of(&t.rule_arn) {
                    let _ = invoke.delivery.set(d);
                }
                Action::Invoke(Arc::new(invoke))
            } else {
                eprintln!(
                    "rehydrate: rule {} target {} ({}) is not a Lambda function: its events are reported skipped",
                    t.rule_name, t.target_id, t.arn
                );
                Action::Skip(Arc::new(crate::action::SkipTarget {
                    target: t.arn.clone(),
                    command: "invoke",
                    code: "NotLambda",
                    reason: format!(
                        "target {} of rule {} is not a Lambda function; rehydrate invoke calls only Lambda targets",
                        t.arn, t.rule_name
                    ),
                }))
            };
            routes.push(crate::run::Route {
                name: Some(t.route()),
                filter: route_filter,
                action,
                send: send.clone(),
            });
        }
        self.run.spec(source, routes, Some("invoke".to_owned()))
    }
}

/// A size: bytes, or with a unit (KB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024).
fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 128MB, 1GiB or 500000"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit {other:?}; use KB, MB, GB, KiB, MiB or GiB")),
    };
    let bytes = n * factor;
    if !(1024.0 * 1024.0..=64.0 * 1024.0 * 1024.0 * 1024.0).contains(&bytes) {
        return Err(format!("{text}: must be between 1 MiB and 64 GiB"));
    }
    Ok(bytes as usize)
}

impl ParquetArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        let mut populate = if self.to.starts_with("s3://") {
            ParquetPopulate::new_s3(&self.to, self.partition_by.clone(), self.max_rows_per_file, &self.aws).await?
        } else {
            ParquetPopulate::new(&self.to, self.partition_by.clone(), self.max_rows_per_file)?
        };
        populate.max_open_files = self.max_open_files as usize;
        populate.zstd_level = self.zstd_level;
        populate.target_file_bytes = self.target_file_size;
        populate.overwrite = self.overwrite;
        if self.athena_ddl.as_deref().is_some_and(|p| p.as_os_str() == "-") && self.run.output == OutputFormat::Json {
            return Err(Error::usage(
                "--athena-ddl without a FILE prints to stdout, where --output json writes the summary: give --athena-ddl FILE",
            ));
        }
        populate.athena_ddl = self.athena_ddl.clone();
        self.run.apply(
            self.source.to_spec(&self.aws).await?,
            self.filter.to_spec()?,
            Action::Parquet(Arc::new(populate)),
            SendPolicy::default(),
        )
    }
}

impl DynamoDbArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        let send = self.send.policy(self.concurrency, false)?;
        if self.send.max_request_bytes.is_some() {
            return Err(Error::usage(
                "--max-request-bytes does not apply to DynamoDB (BatchWriteItem: 25 items, 16 MB, 400 KB an item)",
            ));
        }
        let source = self.source.to_spec(&self.aws).await?;
        let filter = self.filter.to_spec()?;
        let config = aws::connect(&self.aws, self.run.dry_run).await?;
        let populate = DynamoDbPopulate {
            client: aws_sdk_dynamodb::Client::new(&config),
            table: self.table.clone(),
            time_as: self.time_as,
            json_as_string: self.json_as_string,
            key: Default::default(),
        };
        self.run
            .apply(source, filter, Action::DynamoDb(Arc::new(populate)), send)
    }
}

impl OpenSearchArgs {
    pub async fn to_spec(&self) -> Result<RunSpec> {
        use crate::action::opensearch::{self as os, Auth, Connection, IndexTemplate, OpenSearchPopulate};
        let send = self.send.policy(self.concurrency, false)?;
        let max_request_bytes = match self.send.max_request_bytes {
            None => os::DEFAULT_MAX_REQUEST_BYTES,
            Some(_) => self
                .send
                .request_bytes(os::MAX_REQUEST_BYTES, "OpenSearch's http.max_content_length is 100 MiB")?,
        };
        let index = IndexTemplate::parse(&self.index)?;
        let (base, in_url) = os::split_url(&self.url)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // A user in the URL without a password (as a resumed run's saved URL is) takes the
        // password from OPENSEARCH_PASSWORD.
        let user = match in_url {
            Some((u, p)) if p.is_empty() => Some((u, env("OPENSEARCH_PASSWORD").unwrap_or_default())),
            Some(up) => Some(up),
            None => env("OPENSEARCH_USERNAME").map(|u| (u, env("OPENSEARCH_PASSWORD").unwrap_or_default())),
        };
        let auth = match (self.aws_sigv4, user) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "--aws-sigv4 and a user and password both authenticate: give one (the password came from --url or OPENSEARCH_USERNAME)",
                ))
            }
            (Some(service), None) => {
                let config = aws::connect(&self.aws, self.run.dry_run).await?;
                let region = config.region().map(|r| r.to_string()).unwrap_or_default();
                let Some(credentials) = config.credentials_provider() else {
                    return Err(Error::usage("--aws-sigv4: no AWS credentials are configured"));
                };
                Auth::SigV4 {
                    service,
                    region,
                    credentials: aws::CachedCredentials::new(credentials),
                }
            }
            (None, Some((u, p))) => Auth::basic(&u, &p),
            (None, None) => Auth::None,
        };
        let connection = Connection::new(
            base,
            auth,
            std::time::Duration::from_secs(self.aws.request_timeout),
            self.ca_cert.as_deref(),
        )?;
        let populate = OpenSearchPopulate {
            connection,
            index,
            id: self.id.clone(),
            op: self.op,
            max_request_bytes,
            max_documents: self.bulk_documents as usize,
        };
        self.run.apply(
            self.source.to_spec(&self.aws).await?,
            self.filter.to_spec()?,
            Action::OpenSearch(Arc::new(populate)),
            send,
        )
    }
}

impl SqlArgs {
    pub async fn to_spec(&self, dialect: Dialect) -> Result<RunSpec> {
        let send = self.send.policy(1, false)?;
        let populate = SqlPopulate::new(
            dialect,
            SqlSettings {
                url: self.url.clone(),
                table: self.table.clone(),
                key: self.key.clone(),
                create_table: self.create_table,
                rows_per_batch: self.batch_rows,
                load: self.load,
                concurrency: 1,
                timeout: std::time::Duration::from_secs(self.aws.request_timeout),
            },
        )?;
        self.run.apply(
            self.source.to_spec(&self.aws).await?,
            self.filter.to_spec()?,
            Action::Sql(Arc::new(populate)),
            send,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn time_bounds() {
        assert_eq!(parse_bound("--since", "1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_bound("--since", "1970-01-01T00:00:01+00:00").unwrap(), 1000);
        assert!(parse_bound("--since", "last tuesday").is_err());
    }
}
