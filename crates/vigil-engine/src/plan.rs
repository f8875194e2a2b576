//! Planning: each `INSERT INTO sink SELECT ...` planned by DataFusion and lowered into
//! a chain of streaming stages, checked for what the engine can run on a stream.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::catalog::view::ViewTable;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Query, SetExpr, Statement, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{EngineError, Result};
use crate::runtime::alerts::AlertSettings;
use crate::sql::checks::window_call;
use crate::sql::ddl::TableDecl;
use crate::sql::pipeline::PipelineDef;
use crate::window::{self, WINDOW_END, WINDOW_START, WindowKind, interval_arg_ms};

/// Connectors the engine knows.
pub const CONNECTORS: [&str; 2] = ["file", "kafka"];

/// Formats the engine knows: `json` (one object per message or line, every field a
/// column) and, for sources, `json-narrow` (one measurement per message, widened
/// into the vitals columns; see `vigil_formats::json::narrow`).
pub const FORMATS: [&str; 2] = ["json", NARROW];

const NARROW: &str = "json-narrow";

/// Whether a table's messages are narrow (one measurement each).
pub fn is_narrow(table: &TableDecl) -> bool {
    table.option("format") == Some(NARROW)
}

/// One step of a job, in data-flow order.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Keep rows where the predicate is true.
    Filter {
        /// The predicate.
        predicate: Expr,
        /// Schema of the rows coming in.
        input: DFSchemaRef,
    },
    /// Compute the output columns.
    Project {
        /// One expression per output column.
        exprs: Vec<Expr>,
        /// Schema of the rows coming in.
        input: DFSchemaRef,
        /// Schema of the rows going out.
        output: DFSchemaRef,
    },
    /// Group rows into event-time windows and aggregate each window when it closes.
    WindowAggregate {
        /// Group keys other than the window.
        keys: Vec<Expr>,
        /// The window and its event-time column.
        window: WindowKind,
        /// Event-time column the window reads.
        time_column: String,
        /// Position of the window among the aggregate's output columns.
        window_position: usize,
        /// Aggregate expressions.
        aggregates: Vec<Expr>,
        /// Schema of the rows coming in.
        input: DFSchemaRef,
        /// Schema of the rows going out: group columns (the window among them), then
        /// aggregates.
        output: DFSchemaRef,
    },
    /// A GROUP BY without a window: emits changed groups after every batch.
    UpdatingAggregate {
        /// Group keys.
        keys: Vec<Expr>,
        /// Aggregate expressions.
        aggregates: Vec<Expr>,
        /// Schema of the rows coming in.
        input: DFSchemaRef,
        /// Schema of the rows going out: group columns, then aggregates.
        output: DFSchemaRef,
    },
}

/// Default idle timeout of a source partition (option `idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 60_000;
/// Default tolerance for event times ahead of their messages' arrival (option
/// `max_clock_skew`): none.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 0;
/// Default event-time drift between a source's partitions while they catch
/// up (option `max_drift`): 5 minutes, five pending windows of a one-minute
/// slide per patient at most.
pub const DEFAULT_MAX_DRIFT_MS: i64 = 300_000;
/// Default state TTL of an updating aggregate's groups (sink option `state_ttl`).
pub const DEFAULT_STATE_TTL_MS: i64 = 86_400_000;

/// How a job treats event time, from its tables' `WITH` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSettings {
    /// How long after the watermark passes a window's end the window stays open
    /// (source option `allowed_lateness`, default 0). Rows older than the watermark
    /// minus this are late.
    pub allowed_lateness_ms: i64,
    /// Processing time after which a silent source partition stops holding the
    /// watermark back (source option `idle_timeout`, default 1 minute).
    pub idle_timeout_ms: i64,
    /// How far a row's event time may be ahead of its message's arrival time (the
    /// Kafka record timestamp) and still move the watermark (source option
    /// `max_clock_skew`, default 0). A device whose clock runs fast would
    /// otherwise drag the watermark ahead and make every other device's readings
    /// late; its rows are kept, but the watermark follows the arrival time plus
    /// this, never the device's future. Sources without an arrival time (files)
    /// trust their event times.
    pub max_clock_skew_ms: i64,
    /// How far, in event time, a source partition catching up on a backlog may
    /// run ahead of the slowest active one before it is held back (source option
    /// `max_drift`, default 5 minutes; `'off'` never holds back): the windows of
    /// partitions ahead wait for the slowest, so their state grows with the
    /// gap. `None` when off or without event time. See
    /// [`Watermarks::ahead`](crate::runtime::watermark::Watermarks::ahead).
    pub max_drift_ms: Option<i64>,
    /// Index (in the source's declared columns) of a TIMESTAMP column holding
    /// each row's arrival time (source option `arrival_time`): for files, where
    /// there is no message timestamp, what bounds the watermark as a Kafka
    /// message's timestamp does; for Kafka, used instead of the message's.
    pub arrival_time: Option<usize>,
    /// Event time after which an updating aggregate's idle group is dropped (sink
    /// option `state_ttl`, default 1 day; `None` without an event-time column).
    pub state_ttl_ms: Option<i64>,
}

impl TimeSettings {
    fn of(source: &TableDecl, sink: &TableDecl, line: u64) -> Result<TimeSettings> {
        let ttl = sink.duration_option("state_ttl")?;
        if ttl.is_some() && source.event_time.is_none() {
            return Err(EngineError::sql(
                line,
                format!(
                    "state_ttl on {} needs event time: declare a WATERMARK on {}",
                    sink.name, source.name
                ),
            ));
        }
        let arrival_time = match source.option("arrival_time") {
            None => None,
            Some(column) => {
                let index = source.schema.index_of(column).map_err(|_| {
                    EngineError::sql(
                        source.line,
                        format!(
                            "table {}: arrival_time {column} is not one of its columns",
                            source.name
                        ),
                    )
                })?;
                if !matches!(
                    source.schema.field(index).data_type(),
                    DataType::Timestamp(_, _)
                ) || source.event_time.is_none()
                {
                    return Err(EngineError::sql(
                        source.line,
                        format!(
                            "table {}: arrival_time {column} must be a TIMESTAMP column of a table with a WATERMARK",
                            source.name
                        ),
                    ));
                }
                Some(index)
            }
        };
        Ok(TimeSettings {
            arrival_time,
            allowed_lateness_ms: source.duration_option("allowed_lateness")?.unwrap_or(0),
            idle_timeout_ms: source
                .duration_option("idle_timeout")?
                .unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
            max_clock_skew_ms: source
                .duration_option("max_clock_skew")?
                .unwrap_or(DEFAULT_MAX_CLOCK_SKEW_MS),
            max_drift_ms: match source.option("max_drift") {
                Some(off) if off.eq_ignore_ascii_case("off") => None,
                _ if source.event_time.is_none() => None,
                _ => Some(
                    source
                        .duration_option("max_drift")?
                        .unwrap_or(DEFAULT_MAX_DRIFT_MS),
                ),
            },
            state_ttl_ms: source
                .event_time
                .as_ref()
                .map(|_| ttl.unwrap_or(DEFAULT_STATE_TTL_MS)),
        })
    }
}

/// One `INSERT INTO`: a source, stages, and a sink.
#[derive(Debug, Clone)]
pub struct Job {
    /// Line of the INSERT in the pipeline file.
    pub line: u64,
    /// The source table.
    pub source: TableDecl,
    /// Stages from source to sink.
    pub stages: Vec<Stage>,
    /// The sink table.
    pub sink: TableDecl,
    /// Schema of the rows written to the sink (the alerts' when the sink has an
    /// alert policy).
    pub output_schema: SchemaRef,
    /// The sink's alert policy, if it declares one (see
    /// [`alerts`](crate::runtime::alerts)): the query's rows become alert events.
    pub alerts: Option<AlertSettings>,
    /// The analysed DataFusion plan the stages came from.
    pub logical_plan: LogicalPlan,
    /// Lateness, idleness and state expiry.
    pub time: TimeSettings,
}

/// A planned pipeline: every job, with the DataFusion context that planned it (and
/// that turns its expressions into physical ones).
pub struct Pipeline {
    /// The pipeline's name: in every alert it raises (`vigil run` names a
    /// pipeline after its file's stem).
    pub name: String,
    /// The declarations.
    pub def: PipelineDef,
    /// One job per INSERT.
    pub jobs: Vec<Job>,
    /// The planning context (functions, declared tables and views).
    pub ctx: SessionContext,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("def", &self.def)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// A change to a declared table's `WITH` options, made before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The table (matched as the file's names are: case-insensitively).
    pub table: String,
    /// Options to set (keys lower-cased), replacing the file's.
    pub set: BTreeMap<String, String>,
    /// Options to remove.
    pub remove: Vec<String>,
}

impl Binding {
    /// Makes `table` the Kafka topic `topic` (removing its file options), in the
    /// format it declares.
    pub fn topic(table: &str, topic: &str) -> Binding {
        Binding {
            table: table.to_owned(),
            set: BTreeMap::from([
                ("connector".to_owned(), "kafka".to_owned()),
                ("topic".to_owned(), topic.to_owned()),
            ]),
            remove: vec!["path".to_owned(), "late_path".to_owned()],
        }
    }

    /// Sets one option of `table`.
    pub fn option(table: &str, key: &str, value: &str) -> Binding {
        Binding {
            table: table.to_owned(),
            set: BTreeMap::from([(key.to_ascii_lowercase(), value.to_owned())]),
            remove: Vec::new(),
        }
    }

    fn apply(&self, def: &mut PipelineDef) -> Result<()> {
        let Some(table) = def
            .tables
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(&self.table))
        else {
            let declared: Vec<&str> = def.tables.iter().map(|t| t.name.as_str()).collect();
            return Err(EngineError::Binding(format!(
                "no table {} to bind (declared: {})",
                self.table,
                declared.join(", ")
            )));
        };
        for key in &self.remove {
            table.options.remove(key);
        }
        for (key, value) in &self.set {
            table.options.insert(key.clone(), value.clone());
        }
        Ok(())
    }
}

/// A DataFusion context with vigil's functions, reading nothing but what is declared.
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    vigil_scores::udf::register(&ctx);
    window::register(&ctx);
    ctx
}

/// The name of the pipeline in the file at `path`: its stem
/// (`pipelines/news2_alerts.sql` is `news2_alerts`), or [`UNNAMED`].
pub fn name_of(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNNAMED.to_owned())
}

/// The name of a pipeline planned without one.
pub const UNNAMED: &str = "pipeline";

impl Pipeline {
    /// Parses, checks and plans a pipeline file (named [`UNNAMED`]).
    pub async fn plan(sql: &str) -> Result<Pipeline> {
        Pipeline::plan_with(sql, &[]).await
    }

    /// [`plan`](Self::plan), with `WITH` options of declared tables replaced first:
    /// the same pipeline file over other files or topics (`vigil run --topic`,
    /// `vigil demo`). Naming a table the file does not declare is an error.
    pub async fn plan_with(sql: &str, bindings: &[Binding]) -> Result<Pipeline> {
        Pipeline::plan_named(UNNAMED, sql, bindings).await
    }

    /// [`plan_with`](Self::plan_with), naming the pipeline (see
    /// [`name_of`]).
    pub async fn plan_named(name: &str, sql: &str, bindings: &[Binding]) -> Result<Pipeline> {
        let mut def = PipelineDef::parse(sql)?;
        for binding in bindings {
            binding.apply(&mut def)?;
        }
        let ctx = session();
        for table in &def.tables {
            check_connector(table)?;
            if table.schema.fields().is_empty() {
                continue; // a sink that takes its query's columns
            }
            let empty = MemTable::try_new(Arc::clone(&table.schema), vec![vec![]])?;
            ctx.register_table(table.name.as_str(), Arc::new(empty))?;
        }
        for view in &def.views {
            let plan = plan_query(&ctx, &view.query, view.line).await?;
            ctx.register_table(view.name.as_str(), Arc::new(ViewTable::new(plan, None)))?;
        }
        let mut jobs = Vec::with_capacity(def.inserts.len());
        for insert in &def.inserts {
            let plan = plan_query(&ctx, &insert.query, insert.line).await?;
            let mut stages = Vec::new();
            let source_name = lower(&plan, &mut stages, insert.line)?;
            let source = def.table(&source_name).cloned().ok_or_else(|| {
                EngineError::sql(
                    insert.line,
                    format!("{source_name} is not a declared table"),
                )
            })?;
            let sink = def
                .table(&insert.sink)
                .cloned()
                .ok_or_else(|| EngineError::sql(insert.line, format!("no sink {}", insert.sink)))?;
            check_windows(&stages, &source, insert.line)?;
            let query_schema = Arc::clone(plan.schema().inner());
            let alerts = AlertSettings::of(&sink, &query_schema, name, insert.line)?;
            let output_schema = match &alerts {
                Some(_) => AlertSettings::output_schema(&query_schema),
                None => query_schema,
            };
            check_sink(&sink, &output_schema, insert.line)?;
            let time = TimeSettings::of(&source, &sink, insert.line)?;
            jobs.push(Job {
                line: insert.line,
                source,
                stages,
                sink,
                output_schema,
                alerts,
                logical_plan: plan,
                time,
            });
        }
        for table in def.tables.iter().filter(|t| !t.key.is_empty()) {
            if !jobs.iter().any(|j| j.source.name == table.name) {
                return Err(EngineError::sql(
                    table.line,
                    format!(
                        "table {}: a PRIMARY KEY recognises copies of readings read from a source, and no query reads {}",
                        table.name, table.name
                    ),
                ));
            }
        }
        Ok(Pipeline {
            name: name.to_owned(),
            def,
            jobs,
            ctx,
        })
    }

    /// A readable description of the streaming plan, for `vigil check`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, job) in self.jobs.iter().enumerate() {
            let _ = writeln!(
                out,
                "job {} (line {}): INSERT INTO {}",
                i + 1,
                job.line,
                job.sink.name
            );
            let source = &job.source;
            let _ = writeln!(out, "  source {} [{}]", source.name, options_text(source));
            match &source.event_time {
                Some(et) => {
                    let _ = writeln!(
                        out,
                        "    event time {}, watermark delay {}",
                        et.column,
                        window::ms(et.delay_ms)
                    );
                }
                None => {
                    let _ = writeln!(out, "    no event time declared (no windows possible)");
                }
            }
            let _ = writeln!(out, "    schema {}", schema_text(&source.schema));
            if !source.key.is_empty() {
                let _ = writeln!(
                    out,
                    "    key ({}): copies of a reading are taken in once",
                    source.key.join(", ")
                );
            }
            for stage in &job.stages {
                let _ = writeln!(out, "  {}", stage_text(stage));
            }
            let sink = &job.sink;
            if let Some(a) = &job.alerts {
                let _ = writeln!(
                    out,
                    "  alert policy {}: levels {} (immediate from {}, confirmed after {}s), persistence {}s, cooldown {}s, resolve after {}s",
                    a.rule,
                    a.levels.join(" < "),
                    a.levels
                        .get(a.immediate_from)
                        .map_or("none", String::as_str),
                    a.confirm_ms / 1000,
                    a.persistence_ms / 1000,
                    a.cooldown_ms / 1000,
                    a.resolve_after_ms / 1000
                );
            }
            let _ = writeln!(out, "  sink {} [{}]", sink.name, options_text(sink));
            let _ = writeln!(out, "    schema {}", schema_text(&job.output_schema));
        }
        out
    }
}

fn options_text(t: &TableDecl) -> String {
    t.options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn schema_text(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{} {}{}",
                f.name(),
                f.data_type(),
                if f.is_nullable() { "" } else { " NOT NULL" }
            )
        })
        .collect();
    format!("({})", fields.join(", "))
}

fn exprs_text(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.human_display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage_text(stage: &Stage) -> String {
    match stage {
        Stage::Filter { predicate, .. } => format!("filter {}", predicate.human_display()),
        Stage::Project { exprs, .. } => format!("project {}", exprs_text(exprs)),
        Stage::WindowAggregate {
            keys,
            window,
            time_column,
            aggregates,
            ..
        } => format!(
            "window aggregate {window} on {time_column}, keys [{}], aggregates [{}], panes of {}",
            exprs_text(keys),
            exprs_text(aggregates),
            window
                .pane_ms()
                .map_or_else(|| "one per session".to_owned(), window::ms),
        ),
        Stage::UpdatingAggregate {
            keys, aggregates, ..
        } => format!(
            "updating aggregate, keys [{}], aggregates [{}], emits changed groups per batch",
            exprs_text(keys),
            exprs_text(aggregates)
        ),
    }
}

fn check_connector(table: &TableDecl) -> Result<()> {
    let connector = table.required("connector")?;
    if !CONNECTORS.contains(&connector) {
        return Err(EngineError::sql(
            table.line,
            format!(
                "table {}: unknown connector '{connector}' (known: {})",
                table.name,
                CONNECTORS.join(", ")
            ),
        ));
    }
    if let Some(format) = table.option("format")
        && !FORMATS.contains(&format)
    {
        return Err(EngineError::sql(
            table.line,
            format!(
                "table {}: unknown format '{format}' (known: {})",
                table.name,
                FORMATS.join(", ")
            ),
        ));
    }
    match connector {
        "file" => table.required("path").map(|_| ()),
        _ => table.required("topic").map(|_| ()),
    }
}

/// Rewrites `window_start` / `window_end` in a SELECT grouped by a window into reads
/// of that window, then plans and analyses the query with DataFusion.
async fn plan_query(ctx: &SessionContext, query: &Query, line: u64) -> Result<LogicalPlan> {
    let mut query = query.clone();
    rewrite_window_bounds(&mut query, line)?;
    let state = ctx.state();
    let statement = DfStatement::Statement(Box::new(Statement::Query(Box::new(query))));
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| EngineError::sql(line, e.strip_backtrace()))?;
    state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})
        .map_err(|e| EngineError::sql(line, e.strip_backtrace()))
}

fn rewrite_window_bounds(query: &mut Query, line: u64) -> Result<()> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(());
    };
    let call = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => {
            exprs.iter().find(|e| window_call(e).is_some()).cloned()
        }
        ast::GroupByExpr::All(_) => None,
    };
    let Some(call) = call else {
        return Ok(());
    };
    let bound = |name: &str| -> Result<ast::Expr> {
        Parser::new(&GenericDialect {})
            .try_with_sql(&format!("{name}({call})"))
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| EngineError::sql(line, e.to_string()))
    };
    let (start, end) = (bound(WINDOW_START)?, bound(WINDOW_END)?);
    let replace = |e: &mut ast::Expr| {
        if let ast::Expr::Identifier(id) = e {
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case(WINDOW_START) {
                *e = start.clone();
            } else if id.quote_style.is_none() && id.value.eq_ignore_ascii_case(WINDOW_END) {
                *e = end.clone();
            }
        }
        ControlFlow::<()>::Continue(())
    };
    for item in &mut select.projection {
        // A bare `window_start` keeps its name in the output.
        if let ast::SelectItem::UnnamedExpr(ast::Expr::Identifier(id)) = item {
            let name = id.value.to_ascii_lowercase();
            if id.quote_style.is_none() && (name == WINDOW_START || name == WINDOW_END) {
                *item = ast::SelectItem::ExprWithAlias {
                    expr: ast::Expr::Identifier(id.clone()),
                    alias: ast::Ident::new(name),
                };
            }
        }
        let _ = visit_expressions_mut(item, replace);
    }
    if let Some(having) = &mut select.having {
        let _ = visit_expressions_mut(having, replace);
    }
    Ok(())
}

/// Lowers an analysed plan into stages (appended in data-flow order); returns the
/// source table's name.
fn lower(plan: &LogicalPlan, stages: &mut Vec<Stage>, line: u64) -> Result<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !scan.filters.is_empty() || scan.fetch.is_some() {
                return Err(EngineError::sql(
                    line,
                    "internal: a scan with pushed-down filters",
                ));
            }
            if let Some(projection) = &scan.projection {
                let schema = scan.source.schema();
                let exprs = projection
                    .iter()
                    .map(|&i| {
                        Expr::Column(datafusion::common::Column::from_name(
                            schema.field(i).name(),
                        ))
                    })
                    .collect();
                let input =
                    DFSchema::try_from_qualified_schema(scan.table_name.clone(), schema.as_ref())?;
                stages.push(Stage::Project {
                    exprs,
                    input: Arc::new(input),
                    output: Arc::clone(&scan.projected_schema),
                });
            }
            Ok(scan.table_name.table().to_owned())
        }
        LogicalPlan::Projection(p) => {
            let source = lower(&p.input, stages, line)?;
            stages.push(Stage::Project {
                exprs: p.expr.clone(),
                input: Arc::clone(p.input.schema()),
                output: Arc::clone(&p.schema),
            });
            Ok(source)
        }
        LogicalPlan::Filter(f) => {
            let source = lower(&f.input, stages, line)?;
            stages.push(Stage::Filter {
                predicate: f.predicate.clone(),
                input: Arc::clone(f.input.schema()),
            });
            Ok(source)
        }
        LogicalPlan::SubqueryAlias(a) => lower(&a.input, stages, line),
        LogicalPlan::Aggregate(agg) => {
            let source = lower(&agg.input, stages, line)?;
            if stages
                .iter()
                .any(|s| !matches!(s, Stage::Filter { .. } | Stage::Project { .. }))
            {
                return Err(EngineError::sql(
                    line,
                    "an aggregation over the result of another aggregation is not supported yet: write the first to a sink and read it back",
                ));
            }
            let mut keys = Vec::new();
            let mut window = None;
            for (i, key) in agg.group_expr.iter().enumerate() {
                match window_of(key, line)? {
                    Some((kind, column)) => window = Some((kind, column, i)),
                    None => keys.push(key.clone()),
                }
            }
            let aggregates = agg.aggr_expr.clone();
            let input = Arc::clone(agg.input.schema());
            let output = Arc::clone(&agg.schema);
            stages.push(match window {
                Some((window, time_column, window_position)) => Stage::WindowAggregate {
                    keys,
                    window,
                    time_column,
                    window_position,
                    aggregates,
                    input,
                    output,
                },
                None => Stage::UpdatingAggregate {
                    keys,
                    aggregates,
                    input,
                    output,
                },
            });
            Ok(source)
        }
        other => Err(EngineError::sql(line, unsupported(other))),
    }
}

fn unsupported(plan: &LogicalPlan) -> String {
    let what = match plan {
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Join(_) => "JOIN",
        LogicalPlan::Window(_) => "window functions (OVER)",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT (use GROUP BY)",
        LogicalPlan::Values(_) => "VALUES",
        LogicalPlan::EmptyRelation(_) => "a SELECT without FROM",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "recursive queries",
        _ => "this construct",
    };
    format!("{what} is not supported on a stream")
}

/// The window and its time column if `key` is a window function call.
fn window_of(key: &Expr, line: u64) -> Result<Option<(WindowKind, String)>> {
    let Expr::ScalarFunction(f) = key else {
        return Ok(None);
    };
    let name = f.func.name();
    if !crate::sql::checks::WINDOW_FUNCTIONS.contains(&name) {
        return Ok(None);
    }
    let column = match f.args.first() {
        Some(Expr::Column(c)) => c.name.clone(),
        _ => {
            return Err(EngineError::sql(
                line,
                format!("{name}: the first argument must be the source's event-time column"),
            ));
        }
    };
    let mut lengths = Vec::new();
    for arg in &f.args[1..] {
        let ms = match arg {
            Expr::Literal(value, _) => interval_arg_ms(value),
            _ => None,
        };
        match ms {
            Some(ms) if ms > 0 => lengths.push(ms),
            _ => {
                return Err(EngineError::sql(
                    line,
                    format!(
                        "{name}: window lengths must be positive INTERVAL literals of days or less, got {arg}"
                    ),
                ));
            }
        }
    }
    let kind = match (name, lengths.as_slice()) {
        ("tumble", &[size_ms]) => WindowKind::Tumble { size_ms },
        ("hop", &[slide_ms, size_ms]) => {
            if slide_ms > size_ms || size_ms % slide_ms != 0 {
                return Err(EngineError::sql(
                    line,
                    format!(
                        "hop(slide {}, size {}): the size must be a whole multiple of the slide",
                        window::ms(slide_ms),
                        window::ms(size_ms)
                    ),
                ));
            }
            WindowKind::Hop { slide_ms, size_ms }
        }
        ("session", &[gap_ms]) => WindowKind::Session { gap_ms },
        _ => {
            return Err(EngineError::sql(
                line,
                format!("{name}: wrong number of arguments"),
            ));
        }
    };
    Ok(Some((kind, column)))
}

fn check_windows(stages: &[Stage], source: &TableDecl, line: u64) -> Result<()> {
    for stage in stages {
        if let Stage::WindowAggregate { time_column, .. } = stage {
            match &source.event_time {
                Some(et) if et.column == *time_column => {}
                Some(et) => {
                    return Err(EngineError::sql(
                        line,
                        format!(
                            "windows must be on the event-time column {} of {}, not {time_column}",
                            et.column, source.name
                        ),
                    ));
                }
                None => {
                    return Err(EngineError::sql(
                        line,
                        format!(
                            "table {} declares no WATERMARK, so its windows could never close: add WATERMARK FOR {time_column} AS {time_column} - INTERVAL '...'",
                            source.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_sink(sink: &TableDecl, output: &Schema, line: u64) -> Result<()> {
    if is_narrow(sink) {
        return Err(EngineError::sql(
            line,
            format!(
                "table {}: format '{NARROW}' is for sources; a sink writes 'json'",
                sink.name
            ),
        ));
    }
    let declared = sink.schema.fields();
    if declared.is_empty() {
        return Ok(());
    }
    if declared.len() != output.fields().len() {
        return Err(EngineError::sql(
            line,
            format!(
                "INSERT INTO {}: the query yields {} columns, the table declares {}",
                sink.name,
                output.fields().len(),
                declared.len()
            ),
        ));
    }
    for (want, got) in declared.iter().zip(output.fields()) {
        if !arrow::compute::can_cast_types(got.data_type(), want.data_type()) {
            return Err(EngineError::sql(
                line,
                format!(
                    "INSERT INTO {}: column {} is {}, the query gives {} ({})",
                    sink.name,
                    want.name(),
                    want.data_type(),
                    got.data_type(),
                    got.name()
                ),
            ));
        }
    }
    Ok(())
}
