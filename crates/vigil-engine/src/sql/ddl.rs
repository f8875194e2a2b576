//! Declared tables: `CREATE TABLE name (columns, WATERMARK ...) WITH (options)`.
//!
//! A table is a connector endpoint. One read in a `FROM` is a source, one written by
//! `INSERT INTO` is a sink. Column types map to the engine's Arrow types:
//!
//! | SQL | Arrow |
//! |---|---|
//! | `TEXT`, `VARCHAR`, `STRING` | Utf8 |
//! | `DOUBLE`, `FLOAT`, `REAL` | Float64 |
//! | `BIGINT`, `INT`, `INTEGER`, `SMALLINT` | Int64 |
//! | `BOOLEAN` | Boolean |
//! | `TIMESTAMP` | Timestamp(ms, UTC): event times are UTC milliseconds |
//!
//! A source may declare `PRIMARY KEY (columns)`: what identifies one reading, so
//! that a device's resent copies are recognised and taken in once (see
//! [`dedup`](crate::runtime::dedup)). The key must include the event-time column:
//! a reading is identified by when it was taken, and the memory of readings seen
//! is kept only as long as a copy could still be on time.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, ColumnOption, CreateTable, CreateTableOptions, DateTimeField, Expr,
    SqlOption, TableConstraint, Value,
};

use crate::error::{EngineError, Result};
use crate::sql::split::WatermarkClause;

/// The Arrow type of event-time columns.
pub fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A declared table.
#[derive(Debug, Clone)]
pub struct TableDecl {
    /// Table name, as written (unquoted names are matched case-insensitively).
    pub name: String,
    /// Line of the `CREATE TABLE`.
    pub line: u64,
    /// Declared columns (empty for a sink that takes its query's columns).
    pub schema: SchemaRef,
    /// Event time and watermark delay, from the `WATERMARK` clause.
    pub event_time: Option<EventTime>,
    /// The `WITH (...)` options, keys lower-cased.
    pub options: BTreeMap<String, String>,
    /// The declared `PRIMARY KEY` columns (empty if none): rows with the same
    /// values in them are copies of one reading.
    pub key: Vec<String>,
}

/// Which column carries event time, and how far the watermark trails it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTime {
    /// The event-time column (a `TIMESTAMP`).
    pub column: String,
    /// Watermark delay: the watermark is the maximum event time seen minus this.
    pub delay_ms: i64,
}

impl TableDecl {
    /// Interprets a `CREATE TABLE` statement.
    pub fn from_ast(
        create: &CreateTable,
        line: u64,
        watermark: Option<&WatermarkClause>,
    ) -> Result<TableDecl> {
        if create.query.is_some() {
            return Err(EngineError::sql(
                line,
                "CREATE TABLE ... AS SELECT is not supported: declare a sink table and INSERT INTO it",
            ));
        }
        let name = create.name.to_string();
        let mut fields = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            let data_type = arrow_type(&column.data_type).ok_or_else(|| {
                EngineError::sql(
                    line,
                    format!(
                        "column {} of table {name}: type {} is not supported (use TEXT, DOUBLE, BIGINT, BOOLEAN or TIMESTAMP)",
                        column.name, column.data_type
                    ),
                )
            })?;
            let not_null = column
                .options
                .iter()
                .any(|o| matches!(o.option, ColumnOption::NotNull));
            fields.push(Field::new(column.name.value.clone(), data_type, !not_null));
        }
        let schema = Arc::new(Schema::new(fields));
        let event_time = watermark
            .map(|w| event_time(&name, &schema, w))
            .transpose()?;
        let options = options(&create.table_options, line)?;
        let key = primary_key(create, &name, &schema, event_time.as_ref(), line)?;
        Ok(TableDecl {
            name,
            line,
            schema,
            event_time,
            options,
            key,
        })
    }

    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// A duration-valued option (`'30 s'`, `'5 minutes'`), if given.
    pub fn duration_option(&self, key: &str) -> Result<Option<i64>> {
        let Some(text) = self.option(key) else {
            return Ok(None);
        };
        duration_ms(text).map(Some).ok_or_else(|| {
            EngineError::sql(
                self.line,
                format!(
                    "table {}: option `{key}` = '{text}' is not a duration (e.g. '30 s', '5 minutes')",
                    self.name
                ),
            )
        })
    }

    /// The value of a required option.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.option(key).ok_or_else(|| {
            EngineError::sql(
                self.line,
                format!("table {} needs the option `{key}` in WITH (...)", self.name),
            )
        })
    }
}

/// The columns of a `PRIMARY KEY`, written as a table constraint or on one column,
/// checked: declared, none twice, the event-time column among them.
fn primary_key(
    create: &CreateTable,
    table: &str,
    schema: &Schema,
    event_time: Option<&EventTime>,
    line: u64,
) -> Result<Vec<String>> {
    let mut keys: Vec<Vec<String>> = Vec::new();
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => keys.push(
                pk.columns
                    .iter()
                    .map(|c| match &c.column.expr {
                        Expr::Identifier(ident) => Ok(ident.value.clone()),
                        other => Err(EngineError::sql(
                            line,
                            format!("PRIMARY KEY of table {table}: {other} is not a column name"),
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
            other => {
                return Err(EngineError::sql(
                    line,
                    format!(
                        "table {table}: constraint `{other}` is not supported (a source may declare PRIMARY KEY (...))"
                    ),
                ));
            }
        }
    }
    for column in &create.columns {
        for option in &column.options {
            match &option.option {
                ColumnOption::PrimaryKey(_) => keys.push(vec![column.name.value.clone()]),
                ColumnOption::Unique(_) | ColumnOption::ForeignKey(_) | ColumnOption::Check(_) => {
                    return Err(EngineError::sql(
                        line,
                        format!(
                            "column {} of table {table}: only NOT NULL and PRIMARY KEY are supported on a column",
                            column.name
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    if keys.len() > 1 {
        return Err(EngineError::sql(
            line,
            format!("table {table} declares more than one PRIMARY KEY"),
        ));
    }
    let Some(key) = keys.pop() else {
        return Ok(Vec::new());
    };
    for (i, column) in key.iter().enumerate() {
        if schema.field_with_name(column).is_err() {
            return Err(EngineError::sql(
                line,
                format!("PRIMARY KEY of table {table}: no column {column}"),
            ));
        }
        if key[..i].contains(column) {
            return Err(EngineError::sql(
                line,
                format!("PRIMARY KEY of table {table}: column {column} named twice"),
            ));
        }
    }
    let carried = schema.fields().len() - key.len();
    if carried > crate::runtime::dedup::MAX_CARRIED_COLUMNS {
        return Err(EngineError::sql(
            line,
            format!(
                "table {table} has {carried} columns besides its PRIMARY KEY; a keyed source may have at most {}",
                crate::runtime::dedup::MAX_CARRIED_COLUMNS
            ),
        ));
    }
    match event_time {
        Some(et) if key.contains(&et.column) => Ok(key),
        Some(et) => Err(EngineError::sql(
            line,
            format!(
                "PRIMARY KEY of table {table} must include its event-time column {}: a reading is identified by when it was taken",
                et.column
            ),
        )),
        None => Err(EngineError::sql(
            line,
            format!(
                "PRIMARY KEY of table {table} needs event time: declare a WATERMARK, which bounds how long readings are remembered"
            ),
        )),
    }
}

fn arrow_type(t: &ast::DataType) -> Option<DataType> {
    use ast::DataType as T;
    Some(match t {
        T::Text | T::Varchar(_) | T::String(_) | T::Char(_) | T::CharVarying(_) => DataType::Utf8,
        T::Double(_) | T::DoublePrecision | T::Float(_) | T::Real | T::Float64 => DataType::Float64,
        T::BigInt(_) | T::Int(_) | T::Integer(_) | T::SmallInt(_) | T::Int64 => DataType::Int64,
        T::Boolean | T::Bool => DataType::Boolean,
        T::Timestamp(_, _) => event_time_type(),
        _ => return None,
    })
}

fn event_time(table: &str, schema: &Schema, w: &WatermarkClause) -> Result<EventTime> {
    let column = w.column.value.clone();
    match schema.field_with_name(&column) {
        Ok(f) if f.data_type() == &event_time_type() => {}
        Ok(f) => {
            return Err(EngineError::sql(
                w.line,
                format!(
                    "WATERMARK FOR {column}: the event-time column must be a TIMESTAMP, not {}",
                    f.data_type()
                ),
            ));
        }
        Err(_) => {
            return Err(EngineError::sql(
                w.line,
                format!("WATERMARK FOR {column}: table {table} has no column {column}"),
            ));
        }
    }
    let same_column = |e: &Expr| matches!(e, Expr::Identifier(i) if i.value == column);
    let delay_ms = match &w.expr {
        e if same_column(e) => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if same_column(left) => match right.as_ref() {
            Expr::Interval(interval) => interval_ms(interval, w.line)?,
            other => {
                return Err(EngineError::sql(
                    w.line,
                    format!("WATERMARK delay must be an INTERVAL, not {other}"),
                ));
            }
        },
        other => {
            return Err(EngineError::sql(
                w.line,
                format!(
                    "WATERMARK FOR {column} AS {other}: write `{column}` or `{column} - INTERVAL '...'`"
                ),
            ));
        }
    };
    Ok(EventTime { column, delay_ms })
}

/// Milliseconds of an interval literal: `INTERVAL '30' SECOND`, `INTERVAL '5 minutes'`.
pub fn interval_ms(interval: &ast::Interval, line: u64) -> Result<i64> {
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    let unit = interval.leading_field.as_ref().map(|f| match f {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => "ms",
        DateTimeField::Second | DateTimeField::Seconds => "s",
        DateTimeField::Minute | DateTimeField::Minutes => "min",
        DateTimeField::Hour | DateTimeField::Hours => "h",
        DateTimeField::Day | DateTimeField::Days => "d",
        _ => "?",
    });
    let full = match unit {
        Some(u) => format!("{text} {u}"),
        None => text,
    };
    duration_ms(&full).ok_or_else(|| {
        EngineError::sql(
            line,
            format!(
                "interval {interval} is not a duration vigil understands (milliseconds to days, e.g. INTERVAL '30' SECOND)"
            ),
        )
    })
}

/// Parses a duration such as `30 s`, `5 minutes`, `1.5 hours`, `250ms` into
/// milliseconds. Used for intervals in SQL and duration-valued table options.
pub fn duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1.0,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return None,
    };
    let ms = number * per_unit;
    (0.0..1e15).contains(&ms).then_some(ms.round() as i64)
}

fn options(options: &CreateTableOptions, line: u64) -> Result<BTreeMap<String, String>> {
    let list = match options {
        CreateTableOptions::None => return Ok(BTreeMap::new()),
        CreateTableOptions::With(list) => list,
        _ => {
            return Err(EngineError::sql(
                line,
                "table options go in WITH (key = 'value', ...)",
            ));
        }
    };
    let mut map = BTreeMap::new();
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(EngineError::sql(
                line,
                format!("table option {option} must be written key = 'value'"),
            ));
        };
        let value = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        };
        map.insert(key.value.to_ascii_lowercase(), value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_common_spellings() {
        assert_eq!(duration_ms("30 s"), Some(30_000));
        assert_eq!(duration_ms("30"), Some(30_000));
        assert_eq!(duration_ms("5 minutes"), Some(300_000));
        assert_eq!(duration_ms("1.5 hours"), Some(5_400_000));
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("1 fortnight"), None);
        assert_eq!(duration_ms("-1 s"), None);
    }
}
