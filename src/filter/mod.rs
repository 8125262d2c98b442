//! Selecting events with SQL: the DataFusion session (read-only), the `events` table over a
//! source stream, `--where` predicates, `--query` projections and the `--since`/`--until` window.
//!
//! Only SELECT runs: `--where` is parsed as a lone expression, and `--query` must be exactly one
//! query statement, planned with DDL, DML (INSERT, COPY) and session statements disallowed.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
pub mod pattern;

use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column, SchemaError};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Projection};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{col, lit, SQLOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::event::{self, COLUMNS};
use crate::{Error, Result};

/// The helper columns added to a `--query` projection so that each output row can be traced
/// back to its event; they are dropped before anything is written.
pub const HELPER_ID: &str = "__rehydrate_id";
pub const HELPER_ORIGIN: &str = "__rehydrate_origin";
pub const HELPER_POSITION: &str = "__rehydrate_position";
/// The original record ([`event::RAW`]) under a name of its own in a `--query` projection (the
/// optimizer would take the same name on both sides of an alias as ambiguous).
pub const HELPER_RAW: &str = "__rehydrate_record";

/// What the user asked to select.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    pub where_: Option<String>,
    pub query: Option<String>,
    /// Inclusive lower bound on `time`, UTC ms.
    pub since: Option<i64>,
    /// Exclusive upper bound on `time`, UTC ms.
    pub until: Option<i64>,
    /// Sort the selection by `time` first (DataFusion's sort, spilling to disk when large).
    pub order_by_time: bool,
    /// A SQL expression whose value groups events that must stay in order (`--ordering-key`).
    pub ordering_key: Option<String>,
    /// EventBridge event patterns (`--pattern`, a bus rule's), each ANDed with the rest.
    pub patterns: Vec<Arc<pattern::Pattern>>,
}

impl fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(w) = &self.where_ {
            parts.push(format!("WHERE {w}"));
        }
        for p in &self.patterns {
            parts.push(format!(
                "PATTERN {}",
                p.text().split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        if let Some(q) = &self.query {
            parts.push(q.trim().to_owned());
        }
        if let Some(s) = self.since {
            parts.push(format!("since {}", event::format_time(s)));
        }
        if let Some(u) = self.until {
            parts.push(format!("until {}", event::format_time(u)));
        }
        if self.order_by_time {
            parts.push("ordered by time".into());
        }
        if let Some(k) = &self.ordering_key {
            parts.push(format!("ordering key {k}"));
        }
        if parts.is_empty() {
            f.write_str("(all events)")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Which output columns identify the event each row came from.
#[derive(Debug, Clone)]
pub struct EventKeys {
    pub id: String,
    pub origin: String,
    pub position: String,
}

/// The planned selection, ready to execute.
pub struct Selection {
    pub df: DataFrame,
    /// `None` for queries whose rows are not single events (aggregations, DISTINCT).
    pub keys: Option<EventKeys>,
    /// Columns to drop before rows are written or shown.
    pub helper_columns: Vec<String>,
}

impl Selection {
    /// True when the output rows are whole events (no `--query`), so they can be turned back
    /// into EventBridge envelopes.
    pub fn is_whole_events(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| k.id == event::ID)
    }
}

/// `column = 'a'`, `column IN ('a', 'b')`, or an `OR` of those on one column: the column's name
/// and the values it may have.
fn literal_values(expr: &Expr) -> Option<(String, Vec<String>)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let text = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), v) | (v, Expr::Column(c)) => Some((c.name.clone(), vec![text(v)?])),
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, mut values) = literal_values(left)?;
            let (b, more) = literal_values(right)?;
            if a != b {
                return None;
            }
            values.extend(more);
            Some((a, values))
        }
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(c) => Some((c.name.clone(), list.list.iter().map(text).collect::<Option<Vec<_>>>()?)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the selection's rows come out in the order the source gave them (no sort, grouping,
/// join, union or window reorders them): then checkpoints of the source are meaningful.
pub fn keeps_source_order(selection: &Selection) -> bool {
    use datafusion::common::tree_node::TreeNode;
    !selection
        .df
        .logical_plan()
        .exists(|node| {
            Ok(matches!(
                node,
                LogicalPlan::Sort(_)
                    | LogicalPlan::Aggregate(_)
                    | LogicalPlan::Join(_)
                    | LogicalPlan::Union(_)
                    | LogicalPlan::Window(_)
                    | LogicalPlan::Distinct(_)
                    | LogicalPlan::Repartition(_)
            ))
        })
        .unwrap_or(true)
}

/// A DataFusion session set up for rehydrate: one partition so that source order is kept,
/// the PostgreSQL dialect so that `detail->>'a' = 'x'` parses as users expect, and the JSON
/// functions of datafusion-functions-json.
pub fn session(batch_size: usize) -> Result<SessionContext> {
    // A bounded memory pool makes a large sort (--order-by time) spill to disk instead of
    // holding the whole store.
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(256 << 20, 1.0)
        .build_arc()?;
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(batch_size)
        .with_information_schema(false)
        .set_str("datafusion.sql_parser.dialect", "PostgreSQL");
    let mut ctx = SessionContext::new_with_config_rt(config, runtime);
    datafusion_functions_json::register_all(&mut ctx)?;
    Ok(ctx)
}

/// A `--query` must read `events`: rows made from nothing (`SELECT * FROM generate_series(1, 5)`)
/// are not events, and would "populate" a store with `read` 0.
fn reads_events(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::TreeNode;
    let found = plan
        // The scan of the events source (whatever name the planner gave it: `events`, or the
        // view's inner table) is the one that has `_origin`.
        .exists(|p| {
            Ok(matches!(p, LogicalPlan::TableScan(t) if t.source.schema().column_with_name(event::ORIGIN).is_some()))
        })
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::Sql(
            "--query does not read the table `events`: select from it (SELECT … FROM events …), so that every row comes from an event".into(),
        ))
    }
}

/// A table partition over a stream that can be read once, which is what a run does.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for OneShot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneShot(events)")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().unwrap().take() {
            Some(s) => s,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal(
                        "the events source can be read only once per run".into(),
                    ))
                }),
            )),
        }
    }
}

/// Where a planned selection hands the source its row filters ([`event::Prefilter`]).
pub type Pushdown = Arc<OnceLock<Arc<event::Prefilter>>>;

/// The source as a table. Given a [`Pushdown`], it takes every row filter on it as exact and
/// has the decoding threads apply them (in parallel, before rows leave the source) instead of a
/// filter of the plan: the selection is the same, the work is spread and rows that fail are
/// never handed on.
#[derive(Debug)]
struct EventsTable {
    inner: StreamingTable,
    pushdown: Option<Pushdown>,
}

/// Whether a filter depends on its row alone (no subquery, aggregate, window or volatile
/// function), so that the source may apply it.
fn row_local(expr: &Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    !expr.is_volatile()
        && !expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::AggregateFunction(_)
                        | Expr::WindowFunction(_)
                        | Expr::OuterReferenceColumn(..)
                        | Expr::Placeholder(_)
                ))
            })
            .unwrap_or(true)
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        datafusion::catalog::TableProvider::schema(&self.inner)
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown::{Exact, Unsupported};
        Ok(filters
            .iter()
            .map(|f| match self.pushdown.is_some() && row_local(f) {
                true => Exact,
                false => Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        if let Some(predicate) = datafusion::logical_expr::utils::conjunction(filters.to_vec()) {
            let slot = self.pushdown.as_ref().ok_or_else(|| {
                DataFusionError::Internal("a filter was pushed to a source that cannot apply it".into())
            })?;
            let schema = datafusion::common::DFSchema::try_from(self.schema())?;
            let mut prefilter = event::Prefilter::default();
            for conjunct in datafusion::logical_expr::utils::split_conjunction(&predicate) {
                let Some((column, values)) = literal_values(conjunct) else {
                    continue;
                };
                let slot = match column.as_str() {
                    event::SOURCE => &mut prefilter.sources,
                    event::DETAIL_TYPE => &mut prefilter.detail_types,
                    _ => continue,
                };
                *slot = Some(match slot.take() {
                    // Two conjuncts on one column: both must hold.
                    Some(before) => before.into_iter().filter(|v| values.contains(v)).collect(),
                    None => values,
                });
            }
            prefilter.predicate = Some(state.create_physical_expr(predicate, &schema)?);
            slot.set(Arc::new(prefilter))
                .map_err(|_| DataFusionError::Internal("the events source was planned twice".into()))?;
        }
        self.inner.scan(state, projection, &[], limit).await
    }
}

/// Registers `events` over `stream` (with the time window applied) and plans the selection.
/// With `pushdown`, the source applies the selection's row filters itself (`EventsTable`);
/// the stream must then be made to read it from there before it starts.
pub async fn select(
    ctx: &SessionContext,
    stream: SendableRecordBatchStream,
    spec: &FilterSpec,
    pushdown: Option<Pushdown>,
) -> Result<Selection> {
    let partition = Arc::new(OneShot {
        schema: event::source_schema(),
        stream: Mutex::new(Some(stream)),
    });
    let table = EventsTable {
        inner: StreamingTable::try_new(event::source_schema(), vec![partition])?,
        pushdown,
    };
    let mut base = ctx.read_table(Arc::new(table))?;
    let ts = |ms: i64| lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())));
    if let Some(since) = spec.since {
        base = base.filter(col(event::TIME).gt_eq(ts(since)))?;
    }
    if let Some(until) = spec.until {
        base = base.filter(col(event::TIME).lt(ts(until)))?;
    }
    for (i, p) in spec.patterns.iter().enumerate() {
        let udf = datafusion::logical_expr::ScalarUDF::new_from_impl(pattern::PatternUdf::new(p.clone(), i));
        let args = [
            event::ID,
            event::SOURCE,
            event::DETAIL_TYPE,
            event::TIME,
            event::ACCOUNT,
            event::REGION,
            event::VERSION,
            event::RESOURCES,
            event::DETAIL,
        ]
        .map(col)
        .to_vec();
        base = base.filter(udf.call(args))?;
    }
    // `events` is the source without the original records; selections carry them as a
    // helper column (for dead letters) and drop them before rows are written or shown.
    let base_plan = base.logical_plan().clone();
    ctx.register_table("events", base.clone().select_columns(&COLUMNS)?.into_view())?;

    let whole_events = || EventKeys {
        id: event::ID.into(),
        origin: event::ORIGIN.into(),
        position: event::POSITION.into(),
    };

    if let Some(query) = &spec.query {
        check_single_select(query)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(query, options)
            .await
            .map_err(|e| sql_error("--query", e))?;
        let df = match &spec.where_ {
            Some(w) => filter_where(ctx, df, w).await?,
            None => df,
        };
        let plan = df.logical_plan().clone();
        reads_events(&plan)?;
        return Ok(match with_event_keys(&plan, &base_plan)? {
            Some(plan) => Selection {
                df: DataFrame::new(ctx.state(), plan),
                keys: Some(EventKeys {
                    id: HELPER_ID.into(),
                    origin: HELPER_ORIGIN.into(),
                    position: HELPER_POSITION.into(),
                }),
                helper_columns: vec![
                    HELPER_ID.into(),
                    HELPER_ORIGIN.into(),
                    HELPER_POSITION.into(),
                    HELPER_RAW.into(),
                ],
            },
            None => Selection {
                df,
                keys: None,
                helper_columns: vec![],
            },
        });
    }

    let mut df = match &spec.where_ {
        Some(w) => filter_where(ctx, base, w).await?,
        None => base,
    };
    let mut helper_columns = vec![event::RAW.to_owned()];
    if spec.order_by_time {
        // Source order breaks ties, so the order is the same on every run.
        df = df.sort(vec![
            col(event::TIME).sort(true, true),
            col(event::ORIGIN).sort(true, true),
            col(event::POSITION).sort(true, true),
        ])?;
    }
    if let Some(key) = &spec.ordering_key {
        let expr = ctx
            .parse_sql_expr(key, df.schema())
            .map_err(|e| sql_error("--ordering-key", e))?;
        df = df
            .with_column(crate::action::driver::ORDERING_KEY, expr)
            .map_err(|e| sql_error("--ordering-key", e))?;
        helper_columns.push(crate::action::driver::ORDERING_KEY.to_owned());
    }
    Ok(Selection {
        df,
        keys: Some(whole_events()),
        helper_columns,
    })
}

async fn filter_where(ctx: &SessionContext, df: DataFrame, predicate: &str) -> Result<DataFrame> {
    if predicate.trim().is_empty() {
        return Err(Error::usage(
            "--where is empty: give a condition, e.g. --where \"source = 'orders'\"",
        ));
    }
    let expr = ctx
        .parse_sql_expr(predicate, df.schema())
        .map_err(|e| sql_error("--where", e))?;
    let data_type = expr.get_type(df.schema()).map_err(|e| sql_error("--where", e))?;
    if !matches!(data_type, DataType::Boolean | DataType::Null) {
        return Err(Error::Sql(format!(
            "--where {predicate:?} is a {data_type} value, not a condition.\n  Compare it with something, e.g. --where \"({predicate}) = 'value'\""
        )));
    }
    df.filter(expr).map_err(|e| sql_error("--where", e))
}

/// Refuses anything but one plain query before DataFusion plans it, so the message can say what
/// was refused.
pub fn check_single_select(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .map_err(|e| Error::Sql(format!("cannot parse the SQL: {e}")))?;
    if statements.len() != 1 {
        return Err(Error::Sql(format!(
            "expected exactly one SELECT statement, found {}; remove the extra statements (separated by ';')",
            statements.len()
        )));
    }
    let refused = match &statements[0] {
        DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)) => return Ok(()),
        DfStatement::Statement(s) => {
            let text = s.to_string();
            text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        }
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".into(),
        DfStatement::CopyTo(_) => "COPY".into(),
        DfStatement::Explain(_) => "EXPLAIN".into(),
        DfStatement::Reset(_) => "RESET".into(),
    };
    Err(Error::Sql(format!(
        "refused {refused}: rehydrate runs read-only SQL; only SELECT … FROM events is allowed (no DDL, DML, COPY or session statements)"
    )))
}

/// Adds the event's id, origin and position to a projection so that outcomes can name events.
/// The helper columns are threaded up from the scan through projections, sorts, limits and
/// filters. Returns `None` where rows are not single events (aggregates, DISTINCT, unions, joins).
///
/// The scan of `events` itself is replaced by the source (`base`) with the helpers added, since
/// the original record ([`event::RAW`]) is not a column of `events`.
fn with_event_keys(plan: &LogicalPlan, base: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    const KEYS: [(&str, &str); 4] = [
        (event::ID, HELPER_ID),
        (event::ORIGIN, HELPER_ORIGIN),
        (event::POSITION, HELPER_POSITION),
        (event::RAW, HELPER_RAW),
    ];
    match plan {
        LogicalPlan::Projection(p) => {
            let input_schema = p.input.schema();
            let direct: Option<Vec<Expr>> = KEYS
                .iter()
                .map(|(name, alias)| {
                    let (qualifier, field) = input_schema.qualified_field_with_unqualified_name(name).ok()?;
                    Some(Expr::Column(Column::new(qualifier.cloned(), field.name())).alias(*alias))
                })
                .collect();
            let (input, extra) = match direct {
                Some(extra) => (p.input.clone(), extra),
                None => match with_event_keys(&p.input, base)? {
                    Some(input) => (Arc::new(input), KEYS.iter().map(|(_, alias)| col(*alias)).collect()),
                    None => return Ok(None),
                },
            };
            let mut exprs = p.expr.clone();
            exprs.extend(extra);
            Ok(Some(LogicalPlan::Projection(Projection::try_new(exprs, input)?)))
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            let inputs = plan.inputs();
            match with_event_keys(inputs[0], base)? {
                Some(input) => Ok(Some(plan.with_new_exprs(plan.expressions(), vec![input])?)),
                None => Ok(None),
            }
        }
        LogicalPlan::TableScan(t)
            if t.table_name.table() == "events" && t.source.schema().column_with_name(event::ORIGIN).is_some() =>
        {
            let mut exprs: Vec<Expr> = COLUMNS.iter().map(|c| col(*c)).collect();
            exprs.extend(KEYS.iter().map(|(name, alias)| col(*name).alias(*alias)));
            let scan = datafusion::logical_expr::LogicalPlanBuilder::from(base.clone())
                .project(exprs)?
                .alias("events")?
                .build()?;
            Ok(Some(scan))
        }
        _ => Ok(None),
    }
}

/// Turns DataFusion's errors about user SQL into messages that say what to do.
pub fn sql_error(flag: &str, e: DataFusionError) -> Error {
    let columns = "The columns of `events` are: ".to_owned()
        + &COLUMNS.join(", ")
        + ".\n  `detail` is JSON text: reach into it with detail->>'field', detail->'a'->>'b' or json_get_int(detail, 'qty').";
    if let DataFusionError::SchemaError(err, _) = e.find_root() {
        if let SchemaError::FieldNotFound { field, .. } = err.as_ref() {
            let name = field.name();
            let mut msg = format!("{flag}: unknown column `{name}`. {columns}");
            if matches!(name, "type" | "detail") || name.contains('-') {
                msg.push_str("\n  Envelope names with a dash are snake_case here: `detail-type` is detail_type.");
            }
            return Error::Sql(msg);
        }
    }
    let text = e.find_root().to_string();
    if text.contains("table") && text.contains("not found") {
        return Error::Sql(format!("{flag}: {text}. The events are in the table `events`."));
    }
    if text.contains("DDL not supported")
        || text.contains("DML not supported")
        || text.contains("Statement not supported")
    {
        return Error::Sql(format!(
            "{flag}: refused: rehydrate runs read-only SQL; only SELECT … FROM events is allowed ({text})"
        ));
    }
    Error::Sql(format!("{flag}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BatchDecoder;
    use arrow::array::AsArray;
    use datafusion::physical_plan::memory::MemoryStream;

    fn events(lines: &[&str]) -> SendableRecordBatchStream {
        let mut d = BatchDecoder::new(None, 8);
        for (i, l) in lines.iter().enumerate() {
            d.push(l.as_bytes(), "t.ndjson", i as u64 + 1).unwrap();
        }
        Box::pin(MemoryStream::try_new(vec![d.finish()], event::source_schema(), None).unwrap())
    }

    const A: &str = r#"{"id":"a","source":"orders","detail-type":"OrderPlaced","time":"2024-01-01T00:00:00Z","detail":{"qty":2,"customer":{"city":"Köln"}}}"#;
    const B: &str = r#"{"id":"b","source":"users","detail-type":"UserCreated","time":"2024-02-01T00:00:00Z","detail":{"name":"x"}}"#;

    /// The ids `spec` selects from A and B; the same whether the plan filters the rows or the
    /// source does (pushdown), which is checked on every call.
    async fn ids(spec: FilterSpec) -> Result<Vec<String>> {
        let plain = ids_with(&spec, false).await?;
        let pushed = ids_with(&spec, true).await?;
        assert_eq!(
            plain, pushed,
            "the source applying the filters selects what the plan does: {spec}"
        );
        Ok(plain)
    }

    async fn ids_with(spec: &FilterSpec, pushdown: bool) -> Result<Vec<String>> {
        let ctx = session(8192)?;
        let slot: Pushdown = Arc::new(OnceLock::new());
        let input = match pushdown {
            false => events(&[A, B]),
            true => {
                // As the run's source does: the prefilter is read at the first poll.
                let slot = slot.clone();
                let stream = futures::stream::once(async move {
                    let batch = {
                        use futures::StreamExt;
                        events(&[A, B]).next().await.unwrap()?
                    };
                    match slot.get() {
                        Some(p) => Ok(p.apply(batch)?.0),
                        None => Ok(batch),
                    }
                });
                Box::pin(RecordBatchStreamAdapter::new(event::source_schema(), stream)) as SendableRecordBatchStream
            }
        };
        let sel = select(&ctx, input, spec, pushdown.then_some(slot)).await?;
        let key = sel.keys.clone().unwrap().id;
        let batches = sel.df.collect().await?;
        Ok(batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name(&key).unwrap().as_string::<i32>();
                c.iter().map(|v| v.unwrap().to_owned()).collect::<Vec<_>>()
            })
            .collect())
    }

    fn where_(w: &str) -> FilterSpec {
        FilterSpec {
            where_: Some(w.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn where_with_json_operators_in_postgres_dialect() {
        assert_eq!(
            ids(where_("detail->'customer'->>'city' = 'Köln'")).await.unwrap(),
            ["a"]
        );
        assert_eq!(ids(where_("json_get_int(detail, 'qty') > 1")).await.unwrap(), ["a"]);
        assert_eq!(ids(where_("detail_type LIKE 'User%'")).await.unwrap(), ["b"]);
    }

    #[tokio::test]
    async fn time_window() {
        let spec = FilterSpec {
            since: Some(event::parse_time("2024-01-15T00:00:00Z").unwrap()),
            ..Default::default()
        };
        assert_eq!(ids(spec).await.unwrap(), ["b"]);
        let spec = FilterSpec {
            until: Some(event::parse_time("2024-01-15T00:00:00Z").unwrap()),
            ..Default::default()
        };
        assert_eq!(ids(spec).await.unwrap(), ["a"]);
    }

    #[tokio::test]
    async fn query_projection_keeps_event_keys() {
        let spec = FilterSpec {
            query: Some(
                "SELECT id AS event_id, detail->>'name' AS name FROM events WHERE source = 'users' ORDER BY time"
                    .into(),
            ),
            ..Default::default()
        };
        assert_eq!(ids(spec).await.unwrap(), ["b"]);
    }

    #[tokio::test]
    async fn wrong_column_lists_the_valid_ones() {
        let err = ids(where_("colour = 'red'")).await.unwrap_err().to_string();
        assert!(err.contains("unknown column `colour`"), "{err}");
        assert!(err.contains("detail_type"), "{err}");
    }

    #[rstest::rstest]
    #[case("DROP TABLE events")]
    #[case("CREATE TABLE x AS SELECT * FROM events")]
    #[case("INSERT INTO events VALUES (1)")]
    #[case("COPY events TO '/tmp/x.csv'")]
    #[case("SELECT 1; DROP TABLE events")]
    #[case("SET datafusion.execution.batch_size = 1")]
    #[case("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'")]
    fn refuses_anything_but_select(#[case] sql: &str) {
        let err = check_single_select(sql).unwrap_err().to_string();
        assert!(err.contains("refused") || err.contains("exactly one"), "{err}");
    }

    #[tokio::test]
    async fn where_cannot_smuggle_statements() {
        assert!(ids(where_("1=1; DROP TABLE events")).await.is_err());
        let err = ids(where_("detail->>'qty'")).await.unwrap_err().to_string();
        assert!(err.contains("not a condition"), "{err}");
    }
}
