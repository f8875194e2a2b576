//! Score sheets: the per-parameter points of a score for a batch, and what follows from
//! them (aggregate, partial sum, which parameters were missing or invalid).
//!
//! Every score in vigil is a sum of parameter points. A [`SubScore`] holds one
//! parameter's points for every row together with *why* a row could not be scored:
//! the input was missing (NULL) or invalid (outside its plausible range, or text that
//! is no ACVPU level). A [`Sheet`] combines them: the aggregate is NULL unless every
//! parameter was scored, the partial sum adds up what could be scored, and the detail
//! form names the absent and invalid parameters. Nothing missing is ever counted as
//! normal.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListBuilder, StringBuilder, StructArray, UInt8Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use vigil_core::PlausibleRange;
use vigil_core::consciousness::{Acvpu, INVALID_CODE};

use crate::input::{Flag, Num, Text};

/// One parameter's points for a batch of rows.
#[derive(Debug, Clone)]
pub struct SubScore {
    parameter: &'static str,
    points: Vec<u8>,
    missing: Option<BooleanBuffer>,
    invalid: Option<BooleanBuffer>,
    scoreable: Option<BooleanBuffer>,
}

/// `Some(buffer)` if any bit is set, else `None` (the common, cheap case).
fn any_set(buffer: BooleanBuffer) -> Option<BooleanBuffer> {
    (buffer.count_set_bits() > 0).then_some(buffer)
}

pub(crate) fn or(a: Option<&BooleanBuffer>, b: Option<&BooleanBuffer>) -> Option<BooleanBuffer> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a | b),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

/// A buffer of `rows` bits all equal to `bit`, or `None` when `bit` is false.
fn constant(rows: usize, bit: bool) -> Option<BooleanBuffer> {
    bit.then(|| BooleanBuffer::new_set(rows))
}

impl SubScore {
    /// Builds a sub-score from raw points and the rows that could not be scored.
    ///
    /// `missing`: the input was NULL. `invalid`: the input was present but not a
    /// plausible value. `undetermined`: the input was fine but the points depend on
    /// another parameter that is missing (NEWS2 SpO2 Scale 2 without air/oxygen).
    /// Points of unscoreable rows are set to 0 so that partial sums only add what was
    /// really scored.
    pub fn new(
        parameter: &'static str,
        mut points: Vec<u8>,
        missing: Option<BooleanBuffer>,
        invalid: Option<BooleanBuffer>,
        undetermined: Option<BooleanBuffer>,
    ) -> SubScore {
        let unscoreable = or(
            or(missing.as_ref(), invalid.as_ref()).as_ref(),
            undetermined.as_ref(),
        );
        if let Some(unscoreable) = &unscoreable {
            for i in unscoreable.set_indices() {
                points[i] = 0;
            }
        }
        SubScore {
            parameter,
            points,
            missing,
            invalid,
            scoreable: unscoreable.map(|u| !&u),
        }
    }

    /// Scores a numeric parameter: `score` maps a slice of values to points, `range`
    /// says which values are plausible.
    #[inline(always)]
    pub fn numeric(
        parameter: &'static str,
        input: Num<'_>,
        rows: usize,
        range: PlausibleRange,
        score: impl Fn(&[f64], &mut Vec<u8>),
    ) -> SubScore {
        match input {
            Num::Array(array) => {
                let values: &[f64] = array.values();
                let mut points = Vec::with_capacity(values.len());
                score(values, &mut points);
                let implausible =
                    BooleanBuffer::collect_bool(values.len(), |i| !range.contains(values[i]));
                let (missing, invalid) = match array.nulls() {
                    Some(nulls) if nulls.null_count() > 0 => {
                        (Some(!nulls.inner()), any_set(&implausible & nulls.inner()))
                    }
                    _ => (None, any_set(implausible)),
                };
                SubScore::new(parameter, points, missing, invalid, None)
            }
            Num::Scalar(value) => {
                let mut one = Vec::with_capacity(1);
                score(&[value.unwrap_or(f64::NAN)], &mut one);
                SubScore::new(
                    parameter,
                    vec![one[0]; rows],
                    constant(rows, value.is_none()),
                    constant(rows, value.is_some_and(|v| !range.contains(v))),
                    None,
                )
            }
        }
    }

    /// Scores a yes/no parameter: `when_true` or `when_false` points.
    pub fn flag(
        parameter: &'static str,
        input: Flag<'_>,
        rows: usize,
        when_true: u8,
        when_false: u8,
    ) -> SubScore {
        match input {
            Flag::Array(array) => {
                let bits = array.values();
                let points = (0..bits.len())
                    .map(|i| if bits.value(i) { when_true } else { when_false })
                    .collect();
                let missing = array
                    .nulls()
                    .filter(|n| n.null_count() > 0)
                    .map(|n| !n.inner());
                SubScore::new(parameter, points, missing, None, None)
            }
            Flag::Scalar(value) => SubScore::new(
                parameter,
                vec![
                    if value == Some(true) {
                        when_true
                    } else {
                        when_false
                    };
                    rows
                ],
                constant(rows, value.is_none()),
                None,
                None,
            ),
        }
    }

    /// Scores the ACVPU level of consciousness: `by_level[level as usize]` points;
    /// text that is no ACVPU level is invalid.
    pub fn consciousness(
        parameter: &'static str,
        input: Text<'_>,
        rows: usize,
        by_level: [u8; 5],
    ) -> SubScore {
        let codes = acvpu_codes(input, rows);
        let points = codes
            .iter()
            .map(|&c| by_level.get(c as usize).copied().unwrap_or(0))
            .collect();
        let invalid = BooleanBuffer::collect_bool(rows, |i| codes[i] == INVALID_CODE);
        let (missing, invalid) = match text_nulls(input, rows) {
            Some(nulls) => (Some(!nulls.inner()), any_set(&invalid & nulls.inner())),
            None => (None, any_set(invalid)),
        };
        SubScore::new(parameter, points, missing, invalid, None)
    }

    /// The parameter's name as reported in `missing` / `invalid` lists.
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// Splits the sub-score into points, missing and invalid rows, so that a score with
    /// rules beyond one band table (NEWS2 SpO2 Scale 2) can amend it.
    pub(crate) fn into_parts(self) -> (Vec<u8>, Option<BooleanBuffer>, Option<BooleanBuffer>) {
        (self.points, self.missing, self.invalid)
    }

    /// The points per row (0 where the row could not be scored).
    pub fn points(&self) -> &[u8] {
        &self.points
    }

    /// Whether row `i` was scored.
    pub fn is_scored(&self, i: usize) -> bool {
        self.scoreable.as_ref().is_none_or(|s| s.value(i))
    }

    /// Whether row `i`'s input was missing.
    pub fn is_missing(&self, i: usize) -> bool {
        self.missing.as_ref().is_some_and(|m| m.value(i))
    }

    /// Whether row `i`'s input was present but invalid.
    pub fn is_invalid(&self, i: usize) -> bool {
        self.invalid.as_ref().is_some_and(|m| m.value(i))
    }

    /// The points as a nullable array: NULL where the row could not be scored.
    pub fn to_array(&self) -> UInt8Array {
        UInt8Array::new(
            self.points.clone().into(),
            self.scoreable.clone().map(NullBuffer::new),
        )
    }
}

/// ACVPU level codes of every row ([`INVALID_CODE`] for unknown text; NULL rows get an
/// arbitrary code and are masked by the null buffer).
fn acvpu_codes(input: Text<'_>, rows: usize) -> Vec<u8> {
    match input {
        Text::Utf8(array) => {
            let offsets = array.value_offsets();
            let data = array.value_data();
            offsets
                .windows(2)
                .map(|w| Acvpu::code_of(&data[w[0] as usize..w[1] as usize]))
                .collect()
        }
        Text::Utf8View(array) => array
            .views()
            .iter()
            .enumerate()
            .map(|(i, &view)| {
                // A view's low 32 bits are the length; strings of up to 12 bytes are
                // stored inline right after it, so one-letter levels need no lookup.
                if view as u32 == 1 {
                    Acvpu::code_of(&[(view >> 32) as u8])
                } else {
                    Acvpu::code_of(array.value(i).as_bytes())
                }
            })
            .collect(),
        Text::Scalar(value) => {
            vec![value.map_or(INVALID_CODE, |v| Acvpu::code_of(v.as_bytes())); rows]
        }
    }
}

fn text_nulls(input: Text<'_>, rows: usize) -> Option<NullBuffer> {
    let nulls = match input {
        Text::Utf8(a) => a.nulls().cloned(),
        Text::Utf8View(a) => a.nulls().cloned(),
        Text::Scalar(None) => Some(NullBuffer::new_null(rows)),
        Text::Scalar(Some(_)) => None,
    };
    nulls.filter(|n| n.null_count() > 0)
}

/// All parameters of one score for one batch.
#[derive(Debug, Clone)]
pub struct Sheet {
    rows: usize,
    params: Vec<SubScore>,
}

impl Sheet {
    /// A sheet of `rows` rows from its parameters' sub-scores (each of `rows` rows).
    pub fn new(rows: usize, params: Vec<SubScore>) -> Sheet {
        debug_assert!(params.iter().all(|p| p.points.len() == rows));
        Sheet { rows, params }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The parameters, in chart order.
    pub fn params(&self) -> &[SubScore] {
        &self.params
    }

    /// Sum of the scored points per row.
    pub fn sum(&self) -> Vec<u8> {
        let mut sum = vec![0u8; self.rows];
        for p in &self.params {
            for (s, &x) in sum.iter_mut().zip(&p.points) {
                *s += x;
            }
        }
        sum
    }

    /// Rows where every parameter was scored, as a validity buffer (`None`: all rows).
    pub fn complete(&self) -> Option<NullBuffer> {
        let mut all: Option<BooleanBuffer> = None;
        for s in self.params.iter().filter_map(|p| p.scoreable.as_ref()) {
            all = Some(match all {
                Some(a) => &a & s,
                None => s.clone(),
            });
        }
        all.map(NullBuffer::new)
    }

    /// The aggregate score: NULL unless every parameter was scored.
    pub fn total(&self) -> UInt8Array {
        UInt8Array::new(self.sum().into(), self.complete())
    }

    /// The partial score: the sum of whatever parameters could be scored; never NULL.
    pub fn partial(&self) -> UInt8Array {
        UInt8Array::new(self.sum().into(), None)
    }

    /// Per row, the highest points of any single scored parameter.
    pub fn max_points(&self) -> Vec<u8> {
        let mut max = vec![0u8; self.rows];
        for p in &self.params {
            for (m, &x) in max.iter_mut().zip(&p.points) {
                *m = (*m).max(x);
            }
        }
        max
    }

    /// The sub-scores as a struct with one nullable UInt8 field per parameter.
    pub fn subscores(&self) -> StructArray {
        let arrays: Vec<ArrayRef> = self
            .params
            .iter()
            .map(|p| Arc::new(p.to_array()) as ArrayRef)
            .collect();
        StructArray::new(
            subscore_fields(self.params.iter().map(|p| p.parameter)),
            arrays,
            None,
        )
    }

    /// Per row, the names of the parameters whose input was missing.
    pub fn missing(&self) -> ArrayRef {
        self.name_lists(SubScore::is_missing)
    }

    /// Per row, the names of the parameters whose input was present but invalid.
    pub fn invalid(&self) -> ArrayRef {
        self.name_lists(SubScore::is_invalid)
    }

    fn name_lists(&self, pick: fn(&SubScore, usize) -> bool) -> ArrayRef {
        let mut lists = ListBuilder::with_capacity(StringBuilder::new(), self.rows)
            .with_field(name_list_item());
        for i in 0..self.rows {
            for p in &self.params {
                if pick(p, i) {
                    lists.values().append_value(p.parameter);
                }
            }
            lists.append(true);
        }
        Arc::new(lists.finish())
    }

    /// The detail form: `score`, `partial`, optionally `band`, `subscores`, `missing`,
    /// `invalid` (see [`detail_type`]).
    pub fn detail(&self, band: Option<ArrayRef>) -> StructArray {
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.total()), Arc::new(self.partial())];
        let with_band = band.is_some();
        arrays.extend(band);
        arrays.push(Arc::new(self.subscores()));
        arrays.push(self.missing());
        arrays.push(self.invalid());
        let fields = detail_fields(self.params.iter().map(|p| p.parameter), with_band);
        StructArray::new(fields, arrays, None)
    }
}

fn name_list_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

fn subscore_fields<'a>(names: impl Iterator<Item = &'a str>) -> Fields {
    names
        .map(|n| Field::new(n, DataType::UInt8, true))
        .collect()
}

/// The Arrow type of a score's detail struct for the given parameter names.
pub fn detail_type<'a>(parameters: impl Iterator<Item = &'a str>, with_band: bool) -> DataType {
    DataType::Struct(detail_fields(parameters, with_band))
}

fn detail_fields<'a>(parameters: impl Iterator<Item = &'a str>, with_band: bool) -> Fields {
    let list = DataType::List(name_list_item());
    let mut fields = vec![
        Field::new("score", DataType::UInt8, true),
        Field::new("partial", DataType::UInt8, false),
    ];
    if with_band {
        fields.push(Field::new("band", DataType::Utf8, true));
    }
    fields.push(Field::new(
        "subscores",
        DataType::Struct(subscore_fields(parameters)),
        false,
    ));
    fields.push(Field::new("missing", list.clone(), false));
    fields.push(Field::new("invalid", list, false));
    fields.into()
}
