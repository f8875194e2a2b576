//! Score inputs: a column of values or one value broadcast to every row.
//!
//! A score's parameters arrive as whole Arrow arrays, or as a single value when the SQL
//! passes a literal (`news2(rr, spo2, 1, false, ...)`). Both forms are kept as they are:
//! a scalar is scored once and its points broadcast, never expanded into an array first.

use arrow::array::{Array, BooleanArray, Float64Array, StringArray, StringViewArray};

use crate::error::{Result, ScoreError};

/// A numeric parameter (a vital sign in its canonical unit).
#[derive(Debug, Clone, Copy)]
pub enum Num<'a> {
    /// One value per row; NULL means not measured.
    Array(&'a Float64Array),
    /// The same value (or NULL) for every row.
    Scalar(Option<f64>),
}

/// A yes/no parameter (such as supplemental oxygen).
#[derive(Debug, Clone, Copy)]
pub enum Flag<'a> {
    /// One value per row; NULL means not recorded.
    Array(&'a BooleanArray),
    /// The same value (or NULL) for every row.
    Scalar(Option<bool>),
}

/// A text parameter (the ACVPU level of consciousness).
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    /// One string per row, offset-encoded.
    Utf8(&'a StringArray),
    /// One string per row, view-encoded.
    Utf8View(&'a StringViewArray),
    /// The same string (or NULL) for every row.
    Scalar(Option<&'a str>),
}

impl Num<'_> {
    fn array_len(&self) -> Option<usize> {
        match self {
            Num::Array(a) => Some(a.len()),
            Num::Scalar(_) => None,
        }
    }
}

impl Flag<'_> {
    fn array_len(&self) -> Option<usize> {
        match self {
            Flag::Array(a) => Some(a.len()),
            Flag::Scalar(_) => None,
        }
    }
}

impl Text<'_> {
    fn array_len(&self) -> Option<usize> {
        match self {
            Text::Utf8(a) => Some(a.len()),
            Text::Utf8View(a) => Some(a.len()),
            Text::Scalar(_) => None,
        }
    }
}

/// Any one parameter, for code that handles the parameters of a score generically.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A numeric parameter.
    Num(Num<'a>),
    /// A yes/no parameter.
    Flag(Flag<'a>),
    /// A text parameter.
    Text(Text<'a>),
}

impl Arg<'_> {
    /// The number of rows if this is an array, `None` for a scalar.
    pub fn array_len(&self) -> Option<usize> {
        match self {
            Arg::Num(n) => n.array_len(),
            Arg::Flag(f) => f.array_len(),
            Arg::Text(t) => t.array_len(),
        }
    }
}

/// The number of rows the arguments describe: the common length of the arrays, or 1
/// when every argument is a scalar. Arrays of different lengths are an error.
pub fn row_count(function: &str, args: &[Arg<'_>]) -> Result<usize> {
    let mut rows = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(len) = arg.array_len() {
            match rows {
                None => rows = Some(len),
                Some(r) if r == len => {}
                Some(r) => {
                    return Err(ScoreError::LengthMismatch {
                        function: function.to_string(),
                        argument: i + 1,
                        expected: r,
                        actual: len,
                    });
                }
            }
        }
    }
    Ok(rows.unwrap_or(1))
}

/// Whether every argument is a scalar (the result is then a single value).
pub fn all_scalar(args: &[Arg<'_>]) -> bool {
    args.iter().all(|a| a.array_len().is_none())
}
