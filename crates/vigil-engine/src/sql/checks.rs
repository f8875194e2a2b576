//! Constructs a streaming engine cannot run correctly on an unbounded stream, found in
//! the SQL before planning so that the error names the construct and its line.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SetExpr, Spanned, TableFactor, visit_expressions,
};

use crate::error::{EngineError, Result};

/// Window functions: only meaningful as a GROUP BY key.
pub const WINDOW_FUNCTIONS: [&str; 3] = ["tumble", "hop", "session"];

fn line_of(node: &impl Spanned, fallback: u64) -> u64 {
    let line = node.span().start.line;
    if line == 0 { fallback } else { line }
}

/// Checks a query that reads streams. `known` says whether a name is a declared table
/// or view.
pub fn check_query(query: &Query, line: u64, known: &dyn Fn(&str) -> bool) -> Result<()> {
    if query.with.is_some() {
        return Err(EngineError::sql(
            line_of(query, line),
            "WITH (common table expressions) is not supported: declare a CREATE VIEW instead",
        ));
    }
    if let Some(order_by) = &query.order_by {
        return Err(EngineError::sql(
            line_of(order_by, line),
            "ORDER BY over a stream never finishes sorting; aggregate in a window instead",
        ));
    }
    if let Some(limit) = &query.limit_clause {
        return Err(EngineError::sql(
            line_of(limit, line),
            "LIMIT/OFFSET over a stream is not supported",
        ));
    }
    if query.fetch.is_some() {
        return Err(EngineError::sql(
            line,
            "FETCH over a stream is not supported",
        ));
    }
    check_set_expr(&query.body, line, known)
}

fn check_set_expr(body: &SetExpr, line: u64, known: &dyn Fn(&str) -> bool) -> Result<()> {
    match body {
        SetExpr::Select(select) => check_select(select, line, known),
        SetExpr::Query(query) => check_query(query, line, known),
        other => Err(EngineError::sql(
            line_of(other, line),
            format!(
                "{} is not supported in a streaming query (only SELECT)",
                set_expr_kind(other)
            ),
        )),
    }
}

fn set_expr_kind(body: &SetExpr) -> &'static str {
    match body {
        SetExpr::SetOperation { .. } => "UNION/INTERSECT/EXCEPT",
        SetExpr::Values(_) => "VALUES",
        _ => "this statement",
    }
}

fn check_select(select: &Select, line: u64, known: &dyn Fn(&str) -> bool) -> Result<()> {
    let line = line_of(select, line);
    if select.from.len() != 1 {
        return Err(EngineError::sql(
            line,
            if select.from.is_empty() {
                "a streaming SELECT needs FROM a declared table or view".to_owned()
            } else {
                "FROM with several tables is a join, which is not supported on streams".to_owned()
            },
        ));
    }
    let from = &select.from[0];
    if let Some(join) = from.joins.first() {
        return Err(EngineError::sql(
            line_of(join, line),
            "JOIN is not supported on streams",
        ));
    }
    match &from.relation {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let name = name.to_string();
            if !known(&name) {
                return Err(EngineError::sql(
                    line_of(&from.relation, line),
                    format!(
                        "{name} is not a declared table or view (declare it with CREATE TABLE ... WITH (connector = ...))"
                    ),
                ));
            }
        }
        TableFactor::Derived { subquery, .. } => check_query(subquery, line, known)?,
        other => {
            return Err(EngineError::sql(
                line_of(other, line),
                format!("FROM {other}: only declared tables, views and subqueries can be read"),
            ));
        }
    }
    if let GroupByExpr::All(_) = select.group_by {
        return Err(EngineError::sql(line, "GROUP BY ALL is not supported"));
    }
    let flow = visit_expressions(select, |expr: &Expr| match expr {
        Expr::Function(f) if f.over.is_some() => ControlFlow::Break(EngineError::sql(
            line_of(f, line),
            format!(
                "{}(...) OVER (...) is not supported on streams; use GROUP BY with tumble/hop/session",
                f.name
            ),
        )),
        Expr::Subquery(q)
        | Expr::Exists { subquery: q, .. }
        | Expr::InSubquery { subquery: q, .. } => ControlFlow::Break(EngineError::sql(
            line_of(q.as_ref(), line),
            "subqueries in expressions are not supported on streams",
        )),
        _ => ControlFlow::Continue(()),
    });
    if let ControlFlow::Break(e) = flow {
        return Err(e);
    }
    // Window functions are keys of a GROUP BY and nothing else.
    let in_group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => {
            exprs.iter().filter(|e| window_call(e).is_some()).count()
        }
        GroupByExpr::All(_) => 0,
    };
    if in_group_by > 1 {
        return Err(EngineError::sql(
            line,
            "GROUP BY may hold only one window function",
        ));
    }
    let mut outside = None;
    for item in &select.projection {
        let _ = visit_expressions(item, |e: &Expr| {
            if let Some(name) = window_call(e) {
                outside.get_or_insert((name, line_of(e, line)));
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if let Some(expr) = &select.selection {
        let _ = visit_expressions(expr, |e: &Expr| {
            if let Some(name) = window_call(e) {
                outside.get_or_insert((name, line_of(e, line)));
            }
            ControlFlow::<()>::Continue(())
        });
    }
    if let Some((name, at)) = outside {
        return Err(EngineError::sql(
            at,
            format!(
                "{name}(...) assigns rows to windows and belongs in GROUP BY; select window_start and window_end instead"
            ),
        ));
    }
    Ok(())
}

/// The window function an expression calls at its top, if any.
pub fn window_call(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            WINDOW_FUNCTIONS.contains(&name.as_str()).then_some(name)
        }
        Expr::Nested(inner) => window_call(inner),
        _ => None,
    }
}
