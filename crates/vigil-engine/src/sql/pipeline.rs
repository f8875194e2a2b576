//! A pipeline file interpreted: its tables, views and inserts, checked for what a
//! streaming engine can run.

use datafusion::sql::sqlparser::ast::{Query, Statement, TableObject};

use crate::error::{EngineError, Result};
use crate::sql::checks::check_query;
use crate::sql::ddl::TableDecl;
use crate::sql::split::parse_file;

/// `CREATE VIEW name AS query`.
#[derive(Debug, Clone)]
pub struct ViewDecl {
    /// View name.
    pub name: String,
    /// Line of the statement.
    pub line: u64,
    /// The view's query.
    pub query: Box<Query>,
}

/// `INSERT INTO sink query`.
#[derive(Debug, Clone)]
pub struct InsertDecl {
    /// The sink table.
    pub sink: String,
    /// Line of the statement.
    pub line: u64,
    /// The query whose rows go to the sink.
    pub query: Box<Query>,
}

/// Everything a pipeline file declares, in file order.
#[derive(Debug, Clone, Default)]
pub struct PipelineDef {
    /// Declared tables (sources and sinks).
    pub tables: Vec<TableDecl>,
    /// Views, each over tables or earlier views.
    pub views: Vec<ViewDecl>,
    /// The inserts: each is one streaming job from sources to a sink.
    pub inserts: Vec<InsertDecl>,
}

impl PipelineDef {
    /// Parses and checks a pipeline file.
    pub fn parse(sql: &str) -> Result<PipelineDef> {
        let mut def = PipelineDef::default();
        for parsed in parse_file(sql)? {
            let line = parsed.line;
            match parsed.statement {
                Statement::CreateTable(create) => {
                    let table = TableDecl::from_ast(&create, line, parsed.watermark.as_ref())?;
                    def.ensure_new(&table.name, line)?;
                    def.tables.push(table);
                }
                Statement::CreateView(view) => {
                    if view.materialized {
                        return Err(EngineError::sql(
                            line,
                            "CREATE MATERIALIZED VIEW is not supported: a view is a named query; write results with INSERT INTO",
                        ));
                    }
                    let name = view.name.to_string();
                    def.ensure_new(&name, line)?;
                    check_query(&view.query, line, &|n| def.is_readable(n))?;
                    def.views.push(ViewDecl {
                        name,
                        line,
                        query: view.query,
                    });
                }
                Statement::Insert(insert) => {
                    let TableObject::TableName(name) = &insert.table else {
                        return Err(EngineError::sql(line, "INSERT INTO needs a table name"));
                    };
                    let sink = name.to_string();
                    if def.table(&sink).is_none() {
                        return Err(EngineError::sql(
                            line,
                            format!(
                                "INSERT INTO {sink}: no such table; declare it with CREATE TABLE ... WITH (connector = ...)"
                            ),
                        ));
                    }
                    if !insert.columns.is_empty() {
                        return Err(EngineError::sql(
                            line,
                            "INSERT INTO with a column list is not supported: select the sink's columns in order",
                        ));
                    }
                    let Some(query) = insert.source else {
                        return Err(EngineError::sql(line, "INSERT INTO needs a SELECT"));
                    };
                    check_query(&query, line, &|n| def.is_readable(n))?;
                    def.inserts.push(InsertDecl { sink, line, query });
                }
                Statement::Query(_) => {
                    return Err(EngineError::sql(
                        line,
                        "a bare SELECT has nowhere to go: write INSERT INTO sink SELECT ...",
                    ));
                }
                other => {
                    let text = other.to_string();
                    let kind: String = text
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Err(EngineError::sql(
                        line,
                        format!(
                            "{kind} ... is not allowed in a pipeline (only CREATE TABLE, CREATE VIEW and INSERT INTO)"
                        ),
                    ));
                }
            }
        }
        if def.inserts.is_empty() {
            return Err(EngineError::sql(
                1,
                "the pipeline has no INSERT INTO: nothing would run",
            ));
        }
        Ok(def)
    }

    /// The declared table called `name` (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&TableDecl> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The view called `name` (case-insensitive).
    pub fn view(&self, name: &str) -> Option<&ViewDecl> {
        self.views
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    fn is_readable(&self, name: &str) -> bool {
        self.table(name).is_some() || self.view(name).is_some()
    }

    fn ensure_new(&self, name: &str, line: u64) -> Result<()> {
        if self.is_readable(name) {
            return Err(EngineError::sql(line, format!("{name} is declared twice")));
        }
        Ok(())
    }
}
