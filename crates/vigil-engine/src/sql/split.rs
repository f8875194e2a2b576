//! Splitting a pipeline file into statements, each with its line, and lifting out the
//! Flink-style `WATERMARK FOR col AS expr` clause that the SQL parser does not know.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::{EngineError, Result};

/// One statement of a pipeline file.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Line where the statement starts (1-based).
    pub line: u64,
    /// The statement, without its watermark clause.
    pub statement: Statement,
    /// The `WATERMARK FOR ... AS ...` clause of a `CREATE TABLE`, if any.
    pub watermark: Option<WatermarkClause>,
}

/// `WATERMARK FOR column AS expr`, as written.
#[derive(Debug, Clone)]
pub struct WatermarkClause {
    /// The event-time column.
    pub column: Ident,
    /// The watermark expression (`column` or `column - INTERVAL ...`).
    pub expr: Expr,
    /// Line of the clause.
    pub line: u64,
}

/// Parses every statement of a pipeline file.
pub fn parse_file(sql: &str) -> Result<Vec<Parsed>> {
    let tokens = Tokenizer::new(&DIALECT, sql)
        .tokenize_with_location()
        .map_err(|e| EngineError::sql(e.location.line, e.message))?;
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    tokens
        .split(|t| t.token == Token::SemiColon)
        .filter(|group| !group.is_empty())
        .map(|group| parse_statement(group.to_vec()))
        .collect()
}

fn parse_statement(mut tokens: Vec<TokenWithSpan>) -> Result<Parsed> {
    let line = tokens.first().map_or(1, |t| t.span.start.line);
    let watermark = take_watermark(&mut tokens)?;
    let end = tokens.last().map_or(line, |t| t.span.end.line);
    let mut parser = parser_over(tokens);
    let statement = parser
        .parse_statement()
        .map_err(|e| parser_error(e, line))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(EngineError::sql(
            next.span.start.line.max(line).min(end),
            format!("unexpected {} after the end of the statement", next.token),
        ));
    }
    Ok(Parsed {
        line,
        statement,
        watermark,
    })
}

/// The SQL dialect of pipeline files (DataFusion's default).
static DIALECT: GenericDialect = GenericDialect {};

/// A parser over `tokens`, ended by EOF.
fn parser_over(mut tokens: Vec<TokenWithSpan>) -> Parser<'static> {
    tokens.push(TokenWithSpan::wrap(Token::EOF));
    Parser::new(&DIALECT).with_tokens_with_locations(tokens)
}

/// A parser error with the line it names (sqlparser writes "Line: N, Column: M").
fn parser_error(e: ParserError, fallback: u64) -> EngineError {
    let text = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_owned(),
    };
    let line = text
        .find("Line: ")
        .and_then(|at| {
            let digits: String = text[at + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .filter(|&l| l > 0)
        .unwrap_or(fallback);
    let message = match text.find(" at Line: ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    EngineError::sql(line, message)
}

fn is_word(t: &TokenWithSpan, text: &str) -> bool {
    matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text))
}

/// Removes `WATERMARK FOR col AS expr` (and its separating comma) from the column list
/// of a `CREATE TABLE`, returning it parsed.
fn take_watermark(tokens: &mut Vec<TokenWithSpan>) -> Result<Option<WatermarkClause>> {
    let Some(start) = tokens
        .windows(2)
        .position(|w| is_word(&w[0], "WATERMARK") && is_word(&w[1], "FOR"))
    else {
        return Ok(None);
    };
    let line = tokens[start].span.start.line;
    let mut depth = 0usize;
    let mut end = tokens.len();
    for (i, t) in tokens.iter().enumerate().skip(start) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                end = i;
                break;
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let clause: Vec<TokenWithSpan> = tokens[start + 2..end].to_vec();
    // Drop the clause and one comma that separated it from its neighbours.
    let (from, to) = if start > 0 && tokens[start - 1].token == Token::Comma {
        (start - 1, end)
    } else if tokens.get(end).is_some_and(|t| t.token == Token::Comma) {
        (start, end + 1)
    } else {
        (start, end)
    };
    tokens.drain(from..to);

    let mut parser = parser_over(clause);
    let column = parser
        .parse_identifier()
        .map_err(|e| parser_error(e, line))?;
    parser
        .expect_keyword(Keyword::AS)
        .map_err(|e| parser_error(e, line))?;
    let expr = parser.parse_expr().map_err(|e| parser_error(e, line))?;
    if parser.peek_token().token != Token::EOF {
        return Err(EngineError::sql(
            line,
            "WATERMARK must be `WATERMARK FOR column AS column - INTERVAL '...'`",
        ));
    }
    Ok(Some(WatermarkClause { column, expr, line }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_their_lines_and_the_watermark_is_lifted_out() {
        let sql = "-- vitals\nCREATE TABLE v (\n  id TEXT,\n  at TIMESTAMP,\n  WATERMARK FOR at AS at - INTERVAL '30' SECOND\n) WITH (connector = 'file');\n\nINSERT INTO o SELECT id FROM v;\n";
        let parsed = parse_file(sql).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].line, 2);
        assert_eq!(parsed[1].line, 8);
        let w = parsed[0].watermark.as_ref().expect("watermark");
        assert_eq!(w.column.value, "at");
        assert_eq!(w.line, 5);
        assert_eq!(w.expr.to_string(), "at - INTERVAL '30' SECOND");
    }

    #[test]
    fn a_watermark_first_in_the_list_also_parses() {
        let sql = "CREATE TABLE v (WATERMARK FOR at AS at, at TIMESTAMP) WITH (connector = 'file')";
        let parsed = parse_file(sql).expect("parses");
        assert!(parsed[0].watermark.is_some());
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let err = parse_file("CREATE TABLE v (a TEXT);\n\nSELEC 1;").expect_err("bad");
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }
}
