//! A one-pass decoder of flat JSON objects into a declared schema of scalar
//! columns: TEXT, DOUBLE, BIGINT, BOOLEAN and TIMESTAMP (milliseconds), every
//! type a vigil table declares.
//!
//! arrow-json first builds a tape of the whole batch and then walks it per
//! column; [`RowsJsonDecoder`](super::RowsJsonDecoder) had to copy every
//! message aside as well, to find the bad ones when a flush failed. This decoder
//! reads each message once, straight into per-column slots, and appends them to
//! the column builders only when the whole message is good: a bad message is
//! rejected while it is fed, with its reason, and leaves nothing behind. Small
//! decimals (fifteen digits or fewer, a power of ten up to 22) are converted
//! with one exact multiplication or division, which is correctly rounded; any
//! other number goes to the standard library's parser, also correctly rounded.
//!
//! Values are read as arrow-json reads them (the differential tests hold the two
//! to the same rows): numbers and numeric text into DOUBLE and BIGINT (a BIGINT
//! from a fraction is truncated), RFC 3339 text or epoch milliseconds into
//! TIMESTAMP, only `true`/`false` into BOOLEAN, only strings into TEXT, the last
//! of a repeated key wins, unknown keys are skipped whatever they hold. Two
//! checks arrow-json leaves to the caller are made here: a DOUBLE must be finite
//! and a TIMESTAMP within [`TimeBounds::HISTORICAL`]. Syntax is strict RFC 8259
//! JSON, stricter than arrow-json, which lets a missing comma, a raw control
//! character in a string or a malformed number in an unknown field pass.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit};
use vigil_core::time::TimeBounds;

use crate::error::{DecodeError, Result};

/// The column type, as read from JSON.
#[derive(Debug, Clone)]
enum Kind {
    Text,
    Float,
    Int,
    Bool,
    /// Milliseconds; text is read in this time zone when it names none.
    Time(Tz),
}

impl Kind {
    fn of(data_type: &DataType) -> Option<Kind> {
        Some(match data_type {
            DataType::Utf8 => Kind::Text,
            DataType::Float64 => Kind::Float,
            DataType::Int64 => Kind::Int,
            DataType::Boolean => Kind::Bool,
            DataType::Timestamp(TimeUnit::Millisecond, zone) => {
                Kind::Time(zone.as_deref().unwrap_or("+00:00").parse().ok()?)
            }
            _ => return None,
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Float | Kind::Int => "a number",
            Kind::Bool => "true or false",
            Kind::Time(_) => "a timestamp (RFC 3339 text or epoch milliseconds)",
        }
    }
}

/// A column's builder.
#[derive(Debug)]
enum Builder {
    Text(StringBuilder),
    Float(Float64Builder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
}

impl Builder {
    fn new(kind: &Kind, data_type: &DataType, capacity: usize) -> Builder {
        match kind {
            Kind::Text => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 8)),
            Kind::Float => Builder::Float(Float64Builder::with_capacity(capacity)),
            Kind::Int => Builder::Int(Int64Builder::with_capacity(capacity)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Time(_) => Builder::Time(
                TimestampMillisecondBuilder::with_capacity(capacity)
                    .with_data_type(data_type.clone()),
            ),
        }
    }
}

/// A declared column.
#[derive(Debug)]
struct Column {
    name: Box<[u8]>,
    /// The name needs no escape in JSON (so a key can be matched in place).
    plain: bool,
    kind: Kind,
    data_type: DataType,
    nullable: bool,
    builder: Builder,
}

/// A string's text: in the message, or (it had escapes) in the scratch buffer.
#[derive(Debug, Clone, Copy)]
struct Text {
    unescaped: bool,
    start: usize,
    end: usize,
}

/// One column's value in the message being decoded.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Absent,
    Null,
    Text(Text),
    Float(f64),
    Int(i64),
    Bool(bool),
}

/// A JSON number as scanned: its extent, and its digits when they fit the
/// exact fast path.
#[derive(Debug, Clone, Copy)]
struct Number {
    start: usize,
    end: usize,
    negative: bool,
    /// The significant digits as an integer (valid when `digits <= 19`).
    mantissa: u64,
    /// Digits read into `mantissa` (leading zeros included).
    digits: u32,
    /// Power of ten to apply to `mantissa` (fraction digits and exponent).
    exponent: i64,
    /// No fraction and no exponent.
    integral: bool,
}

/// Exact powers of ten as `f64` (10^22 is the largest exactly representable).
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Decoder of flat JSON objects into a schema of scalar columns; see the
/// module documentation.
#[derive(Debug)]
pub(crate) struct FlatRows {
    schema: SchemaRef,
    columns: Vec<Column>,
    slots: Vec<Slot>,
    /// Unescaped strings of the message being decoded.
    scratch: String,
    /// An unescaped key.
    key: String,
    /// Open containers while an unknown key's value is skipped.
    nesting: Vec<u8>,
    /// Key order as last seen: `follows[i]` is the column whose key came after
    /// column `i`'s, `follows[columns.len()]` the first key's. Messages of one
    /// source list their keys in one or a few orders, whatever the schema's,
    /// so the next key is tried against its prediction before a search.
    follows: Vec<usize>,
    capacity: usize,
    rows: usize,
}

impl FlatRows {
    /// A decoder into `schema` sized for `capacity` rows per batch, or `None`
    /// if a column's type is not one it reads.
    pub(crate) fn new(schema: &SchemaRef, capacity: usize) -> Option<FlatRows> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let kind = Kind::of(f.data_type())?;
                Some(Column {
                    name: f.name().as_bytes().into(),
                    plain: f
                        .name()
                        .bytes()
                        .all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
                    builder: Builder::new(&kind, f.data_type(), capacity),
                    kind,
                    data_type: f.data_type().clone(),
                    nullable: f.is_nullable(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(FlatRows {
            schema: SchemaRef::clone(schema),
            slots: vec![Slot::Absent; columns.len()],
            // Schema order until messages say otherwise.
            follows: (0..=columns.len())
                .map(|i| if i == columns.len() { 0 } else { i + 1 })
                .collect(),
            columns,
            scratch: String::new(),
            key: String::new(),
            nesting: Vec::new(),
            capacity,
            rows: 0,
        })
    }

    /// Rows decoded since the last flush.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Decodes one message holding exactly one JSON object (surrounding
    /// whitespace allowed) and appends its row, or says why it cannot and
    /// appends nothing.
    pub(crate) fn decode(&mut self, message: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(message).map_err(|e| {
            DecodeError::Json(format!("not UTF-8 text (at byte {})", e.valid_up_to()))
        })?;
        self.slots.fill(Slot::Absent);
        self.scratch.clear();
        let mut cursor = Cursor {
            text,
            bytes: text.as_bytes(),
            at: 0,
        };
        self.read_object(&mut cursor)?;
        cursor.whitespace();
        if cursor.at != cursor.bytes.len() {
            return Err(DecodeError::Json(
                "more than one JSON value in the message".to_owned(),
            ));
        }
        for (column, slot) in self.columns.iter().zip(&self.slots) {
            if !column.nullable && matches!(slot, Slot::Absent | Slot::Null) {
                return Err(DecodeError::Json(format!(
                    "required field {} is missing or null",
                    String::from_utf8_lossy(&column.name)
                )));
            }
        }
        for (column, slot) in self.columns.iter_mut().zip(&self.slots) {
            append(&mut column.builder, *slot, text, &self.scratch);
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows decoded since the last flush (`None` if there are none).
    pub(crate) fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let capacity = self.capacity.max(self.rows);
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| {
                let fresh = Builder::new(&c.kind, &c.data_type, capacity);
                match std::mem::replace(&mut c.builder, fresh) {
                    Builder::Text(mut b) => Arc::new(b.finish()) as ArrayRef,
                    Builder::Float(mut b) => Arc::new(b.finish()),
                    Builder::Int(mut b) => Arc::new(b.finish()),
                    Builder::Bool(mut b) => Arc::new(b.finish()),
                    Builder::Time(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        Ok(Some(RecordBatch::try_new(
            SchemaRef::clone(&self.schema),
            arrays,
        )?))
    }

    /// Reads the object into the slots.
    fn read_object(&mut self, cursor: &mut Cursor<'_>) -> Result<()> {
        cursor.whitespace();
        cursor.expect(b'{', "'{'")?;
        cursor.whitespace();
        if cursor.peek() == Some(b'}') {
            cursor.at += 1;
            return Ok(());
        }
        // The column of the previous key (the start: `columns.len()`).
        let mut previous = self.columns.len();
        loop {
            cursor.expect(b'"', "a key")?;
            // The predicted key, matched in place: it has no character a JSON
            // string must escape, so it is the key if its closing quote follows.
            let hint = self.follows[previous];
            let found = match self.columns.get(hint) {
                Some(c)
                    if c.plain
                        && cursor.bytes.get(cursor.at + c.name.len()) == Some(&b'"')
                        && cursor.bytes[cursor.at..cursor.at + c.name.len()] == *c.name =>
                {
                    cursor.at += c.name.len() + 1;
                    Some(hint)
                }
                _ => {
                    let key = cursor.string(&mut self.key)?;
                    let name: &[u8] = if key.unescaped {
                        &self.key.as_bytes()[key.start..key.end]
                    } else {
                        &cursor.bytes[key.start..key.end]
                    };
                    let found = self.columns.iter().position(|c| *c.name == *name);
                    if let Some(i) = found {
                        self.follows[previous] = i;
                    }
                    found
                }
            };
            cursor.whitespace();
            cursor.expect(b':', "':'")?;
            cursor.whitespace();
            match found {
                Some(i) => {
                    read_value(
                        &self.columns[i],
                        cursor,
                        &mut self.scratch,
                        &mut self.slots[i],
                    )?;
                    previous = i;
                }
                None => cursor.skip_value(&mut self.nesting, &mut self.key)?,
            }
            if cursor.end_of_member()? {
                return Ok(());
            }
        }
    }
}

/// Reads the value of `column` at the cursor into `slot`.
fn read_value(
    column: &Column,
    cursor: &mut Cursor<'_>,
    scratch: &mut String,
    slot: &mut Slot,
) -> Result<()> {
    let wrong = |found: &str| {
        DecodeError::Json(format!(
            "{}: expected {}, found {found}",
            String::from_utf8_lossy(&column.name),
            column.kind.describe()
        ))
    };
    let name = || String::from_utf8_lossy(&column.name).into_owned();
    *slot = match cursor.peek() {
        Some(b'"') => {
            cursor.at += 1;
            let text = cursor.string(scratch)?;
            let s = if text.unescaped {
                &scratch[text.start..text.end]
            } else {
                cursor.str(text.start, text.end)
            };
            match &column.kind {
                Kind::Text => Slot::Text(text),
                Kind::Float => match Float64Type::parse(s) {
                    Some(v) => Slot::Float(finite(v, name)?),
                    None => {
                        return Err(DecodeError::Json(format!(
                            "{}: {s:?} is not a number",
                            name()
                        )));
                    }
                },
                Kind::Int => match Int64Type::parse(s) {
                    Some(v) => Slot::Int(v),
                    None => {
                        return Err(DecodeError::Json(format!(
                            "{}: {s:?} is not a whole number",
                            name()
                        )));
                    }
                },
                Kind::Bool => return Err(wrong("a string")),
                Kind::Time(zone) => match string_to_datetime(zone, s) {
                    Ok(t) => Slot::Int(TimeBounds::HISTORICAL.check(t.timestamp_millis())?),
                    Err(e) => {
                        return Err(DecodeError::Json(format!(
                            "{}: {s:?} is not a timestamp ({e})",
                            name()
                        )));
                    }
                },
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            let number = cursor.number()?;
            match &column.kind {
                Kind::Float => Slot::Float(finite(number.to_f64(cursor), name)?),
                Kind::Int => match number.to_i64(cursor) {
                    Some(v) => Slot::Int(v),
                    None => return Err(wrong("a number out of BIGINT's range")),
                },
                Kind::Time(_) => Slot::Int(TimeBounds::HISTORICAL.check(number.to_millis(cursor))?),
                Kind::Text | Kind::Bool => return Err(wrong("a number")),
            }
        }
        Some(b't') => {
            cursor.literal("true")?;
            match column.kind {
                Kind::Bool => Slot::Bool(true),
                _ => return Err(wrong("true")),
            }
        }
        Some(b'f') => {
            cursor.literal("false")?;
            match column.kind {
                Kind::Bool => Slot::Bool(false),
                _ => return Err(wrong("false")),
            }
        }
        Some(b'n') => {
            cursor.literal("null")?;
            Slot::Null
        }
        Some(b'{') => return Err(wrong("an object")),
        Some(b'[') => return Err(wrong("an array")),
        _ => return Err(cursor.unexpected("a value")),
    };
    Ok(())
}

/// A DOUBLE must be finite: a NaN vital sign would fall outside every band.
fn finite(v: f64, name: impl FnOnce() -> String) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::Value {
            column: name(),
            reason: "not a finite number".to_owned(),
        })
    }
}

/// Appends a checked slot to its column's builder.
fn append(builder: &mut Builder, slot: Slot, text: &str, scratch: &str) {
    let string = |t: Text| {
        if t.unescaped {
            scratch.get(t.start..t.end).unwrap_or_default()
        } else {
            text.get(t.start..t.end).unwrap_or_default()
        }
    };
    match (builder, slot) {
        (Builder::Text(b), Slot::Text(t)) => b.append_value(string(t)),
        (Builder::Float(b), Slot::Float(v)) => b.append_value(v),
        (Builder::Int(b), Slot::Int(v)) => b.append_value(v),
        (Builder::Time(b), Slot::Int(v)) => b.append_value(v),
        (Builder::Bool(b), Slot::Bool(v)) => b.append_value(v),
        (Builder::Text(b), _) => b.append_null(),
        (Builder::Float(b), _) => b.append_null(),
        (Builder::Int(b), _) => b.append_null(),
        (Builder::Time(b), _) => b.append_null(),
        (Builder::Bool(b), _) => b.append_null(),
    }
}

impl Number {
    /// The value as `f64`, correctly rounded.
    fn to_f64(self, cursor: &Cursor<'_>) -> f64 {
        // Both operands exact, so the one operation rounds correctly.
        if self.digits <= 15 && self.exponent.unsigned_abs() <= 22 {
            let m = self.mantissa as f64;
            let p = POWERS_OF_TEN[self.exponent.unsigned_abs() as usize];
            let v = if self.exponent < 0 { m / p } else { m * p };
            return if self.negative { -v } else { v };
        }
        cursor
            .str(self.start, self.end)
            .parse::<f64>()
            .unwrap_or(f64::NAN)
    }

    /// The value as BIGINT as arrow-json reads it: an integer if it is one,
    /// else the number truncated if it is within range.
    fn to_i64(self, cursor: &Cursor<'_>) -> Option<i64> {
        if self.integral && self.digits <= 18 {
            let v = self.mantissa as i64;
            return Some(if self.negative { -v } else { v });
        }
        let s = cursor.str(self.start, self.end);
        if let Ok(v) = s.parse::<i64>() {
            return Some(v);
        }
        let v = self.to_f64(cursor);
        // num-traits' bounds for a float to i64 cast (NaN fails both).
        (v > i64::MIN as f64 && v < i64::MAX as f64).then_some(v as i64)
    }

    /// Epoch milliseconds as arrow-json reads them: an integer, else the
    /// number truncated (saturating).
    fn to_millis(self, cursor: &Cursor<'_>) -> i64 {
        if self.integral && self.digits <= 18 {
            let v = self.mantissa as i64;
            return if self.negative { -v } else { v };
        }
        let s = cursor.str(self.start, self.end);
        s.parse::<i64>()
            .unwrap_or_else(|_| self.to_f64(cursor) as i64)
    }
}

/// A position in a message being decoded.
struct Cursor<'a> {
    /// The message, checked UTF-8 once.
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.at += 1;
        b
    }

    /// Text between two positions at ASCII delimiters of the message (char
    /// boundaries, so the slice needs no second UTF-8 check).
    fn str(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or_default()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn unexpected(&self, wanted: &str) -> DecodeError {
        let found = match self.bytes.get(self.at) {
            Some(b) if b.is_ascii_graphic() => format!("'{}'", *b as char),
            Some(b) => format!("byte 0x{b:02x}"),
            None => return DecodeError::Json("truncated JSON object".to_owned()),
        };
        DecodeError::Json(format!(
            "expected {wanted} at column {}, found {found}",
            self.at + 1
        ))
    }

    fn expect(&mut self, byte: u8, wanted: &str) -> Result<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn literal(&mut self, word: &str) -> Result<()> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.unexpected(word))
        }
    }

    /// Reads a string whose opening quote was consumed. Without escapes its
    /// text is left in the message; with them it is unescaped onto the end of
    /// `scratch`. Inlined: its result is returned in registers rather than
    /// through memory (measured: the copy stalled the decoder for a tenth of
    /// its time); strings with escapes go to [`Self::escaped`].
    #[inline(always)]
    fn string(&mut self, scratch: &mut String) -> Result<Text> {
        let start = self.at;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Text {
                        unescaped: false,
                        start,
                        end: self.at - 1,
                    });
                }
                Some(b'\\') => return self.escaped(start, scratch),
                Some(0..0x20) => return Err(self.unexpected("a string's closing quote")),
                Some(_) => self.at += 1,
                None => return Err(self.unexpected("a string's closing quote")),
            }
        }
    }

    /// The rest of a string begun at `start` from its first escape (at the
    /// cursor), unescaped onto the end of `scratch`.
    #[inline(never)]
    fn escaped(&mut self, start: usize, scratch: &mut String) -> Result<Text> {
        let from = scratch.len();
        scratch.push_str(self.str(start, self.at));
        loop {
            let run = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            scratch.push_str(self.str(run, self.at));
            match self.next() {
                Some(b'"') => {
                    return Ok(Text {
                        unescaped: true,
                        start: from,
                        end: scratch.len(),
                    });
                }
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => {
                            self.at -= 1;
                            return Err(self.unexpected("an escape sequence"));
                        }
                    };
                    scratch.push(c);
                }
                _ => {
                    self.at -= 1;
                    return Err(self.unexpected("a string's closing quote"));
                }
            }
        }
    }

    /// The character of a `\u` escape whose `\u` was consumed (a surrogate
    /// pair takes two escapes).
    fn unicode_escape(&mut self) -> Result<char> {
        let high = self.hex4()?;
        if let Some(c) = char::from_u32(u32::from(high)) {
            return Ok(c);
        }
        if (0xD800..0xDC00).contains(&high) && self.bytes[self.at..].starts_with(b"\\u") {
            self.at += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                let c = 0x1_0000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                if let Some(c) = char::from_u32(c) {
                    return Ok(c);
                }
            }
        }
        Err(DecodeError::Json(format!(
            "an unpaired UTF-16 surrogate escape before column {}",
            self.at + 1
        )))
    }

    fn hex4(&mut self) -> Result<u16> {
        let mut v = 0u16;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.unexpected("a hex digit"))?;
            v = (v << 4) | digit as u16;
            self.at += 1;
        }
        Ok(v)
    }

    /// Reads a number (RFC 8259 grammar) at the cursor. Inlined, as
    /// [`Self::string`] is, for its result's sake (a fifth of the decoder's
    /// time went to that copy).
    #[inline(always)]
    fn number(&mut self) -> Result<Number> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let (mut mantissa, mut digits) = (0u64, 0u32);
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                digits = 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.unexpected("no digit after a leading 0"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits(&mut mantissa, &mut digits);
            }
            _ => return Err(self.unexpected("a digit")),
        }
        let mut exponent = 0i64;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction = self.digits(&mut mantissa, &mut digits);
            if fraction == 0 {
                return Err(self.unexpected("a digit after '.'"));
            }
            exponent -= i64::from(fraction);
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let sign = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    -1
                }
                Some(b'+') => {
                    self.at += 1;
                    1
                }
                _ => 1,
            };
            let (mut e, mut n) = (0i64, 0);
            while let Some(b @ b'0'..=b'9') = self.peek() {
                e = (e * 10 + i64::from(b - b'0')).min(1 << 20);
                n += 1;
                self.at += 1;
            }
            if n == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
            exponent += sign * e;
            integral = false;
        }
        Ok(Number {
            start,
            end: self.at,
            negative,
            mantissa,
            digits,
            exponent,
            integral,
        })
    }

    /// After an object member: true at the closing brace, false after a comma
    /// (whitespace after either consumed).
    fn end_of_member(&mut self) -> Result<bool> {
        self.whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                self.whitespace();
                Ok(false)
            }
            Some(b'}') => {
                self.at += 1;
                Ok(true)
            }
            _ => Err(self.unexpected("',' or '}'")),
        }
    }

    /// Reads a run of digits into `mantissa` (up to 19 digits in all) and
    /// counts them in `digits`; returns how many there were.
    fn digits(&mut self, mantissa: &mut u64, digits: &mut u32) -> u32 {
        let mut n = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if *digits < 19 {
                *mantissa = *mantissa * 10 + u64::from(b - b'0');
            }
            *digits += 1;
            n += 1;
            self.at += 1;
        }
        n
    }

    /// Skips one value of any kind (an unknown key's), checking its syntax;
    /// nesting is followed on `nesting`, not on the call stack.
    fn skip_value(&mut self, nesting: &mut Vec<u8>, scratch: &mut String) -> Result<()> {
        nesting.clear();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b'{') => {
                    self.at += 1;
                    self.whitespace();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        nesting.push(b'}');
                        self.skip_key(scratch)?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    self.whitespace();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        nesting.push(b']');
                        continue;
                    }
                }
                Some(b'"') => {
                    self.at += 1;
                    scratch.clear();
                    self.string(scratch)?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                _ => return Err(self.unexpected("a value")),
            }
            // After a value: close what ends here, up to the next value.
            loop {
                let Some(&close) = nesting.last() else {
                    return Ok(());
                };
                self.whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if close == b'}' {
                            self.whitespace();
                            self.skip_key(scratch)?;
                        }
                        break;
                    }
                    Some(b) if b == close => {
                        self.at += 1;
                        nesting.pop();
                    }
                    _ => {
                        return Err(self.unexpected(if close == b'}' {
                            "',' or '}'"
                        } else {
                            "',' or ']'"
                        }));
                    }
                }
            }
        }
    }

    /// Skips an object's key and its colon.
    fn skip_key(&mut self, scratch: &mut String) -> Result<()> {
        self.expect(b'"', "a key")?;
        scratch.clear();
        self.string(scratch)?;
        self.whitespace();
        self.expect(b':', "':'")
    }
}

#[cfg(test)]
mod tests;
