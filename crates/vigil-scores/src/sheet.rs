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

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListBuilder, StringBuilder, StructArray, UInt8Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use vigil_core::Vital;
use vigil_core::consciousness::{Acvpu, INVALID_CODE};

use crate::bands::{Bands, Scored};
use crate::bits;
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

    /// Scores a numeric parameter on one chart row; values outside `vital`'s plausible
    /// range are invalid.
    #[inline(always)]
    pub fn numeric<const N: usize>(
        parameter: &'static str,
        input: Num<'_>,
        rows: usize,
        vital: Vital,
        bands: &Bands<N>,
    ) -> SubScore {
        let range = vital.plausible_range();
        match input {
            Num::Array(array) => {
                let Scored {
                    points,
                    implausible,
                } = bands.score(array.values(), range);
                let (missing, invalid) = match array.nulls() {
                    Some(nulls) if nulls.null_count() > 0 => {
                        (Some(!nulls.inner()), any_set(&implausible & nulls.inner()))
                    }
                    _ => (None, any_set(implausible)),
                };
                SubScore::new(parameter, points, missing, invalid, None)
            }
            Num::Scalar(value) => SubScore::new(
                parameter,
                vec![bands.points(value.unwrap_or(f64::NAN)); rows],
                constant(rows, value.is_none()),
                constant(rows, value.is_some_and(|v| !range.contains(v))),
                None,
            ),
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
                let points = flag_points(array.values(), when_true, when_false);
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
        let (points, invalid) = match one_letter_per_row(input) {
            Some(letters) => letter_points(&letters, by_level),
            None => code_points(&acvpu_codes(input, rows), by_level),
        };
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

/// `when_true` or `when_false` for every bit, a 64-bit word at a time.
fn flag_points(bits: &BooleanBuffer, when_true: u8, when_false: u8) -> Vec<u8> {
    let mut points = vec![0u8; bits.len()];
    let chunks = bits.inner().bit_chunks(bits.offset(), bits.len());
    let pick = |word: u64, out: &mut [u8]| {
        for (j, o) in out.iter_mut().enumerate() {
            *o = if (word >> j) & 1 == 1 {
                when_true
            } else {
                when_false
            };
        }
    };
    let mut blocks = points.chunks_mut(64);
    for (word, out) in chunks.iter().zip(&mut blocks) {
        pick(word, out);
    }
    if let Some(out) = blocks.next() {
        pick(chunks.remainder_bits(), out);
    }
    points
}

/// The ACVPU letters `a`, `c`, `v`, `p`, `u` in level order.
const LOWER_LETTERS: [u8; 5] = {
    let mut letters = [0u8; 5];
    let mut i = 0;
    while i < letters.len() {
        letters[i] = Acvpu::ALL[i].letter().as_bytes()[0] | 0x20;
        i += 1;
    }
    letters
};

/// The raw letter of every row when every row holds exactly one byte (the common
/// case: devices and decoders send letters), so that it can be scored with lane-wise
/// compares instead of per-row look-ups.
fn one_letter_per_row(input: Text<'_>) -> Option<Cow<'_, [u8]>> {
    match input {
        Text::Utf8(array) => {
            // One byte each: the offsets count up by one, and the letters lie side by
            // side in the data buffer.
            let offsets = array.value_offsets();
            let first = *offsets.first()?;
            let one_each = offsets
                .iter()
                .zip(0..)
                .fold(true, |all, (&o, i)| all & (o == first + i));
            let start = usize::try_from(first).ok()?;
            let letters = array.value_data().get(start..start + array.len())?;
            one_each.then_some(Cow::Borrowed(letters))
        }
        Text::Utf8View(array) => {
            // A view's low 32 bits are the length; strings of up to 12 bytes are
            // stored inline right after it.
            let views = array.views();
            let one_each = views.iter().fold(true, |all, &v| all & (v as u32 == 1));
            one_each.then(|| Cow::Owned(views.iter().map(|&v| (v >> 32) as u8).collect()))
        }
        Text::Scalar(_) => None,
    }
}

/// Points and invalid bits of one-letter levels, 64 rows at a time. A letter matches
/// a level in either case (`b | 0x20` folds only `A`/`a`-style pairs together).
fn letter_points(letters: &[u8], by_level: [u8; 5]) -> (Vec<u8>, BooleanBuffer) {
    let mut points = vec![0u8; letters.len()];
    let mut unknown = vec![0u8; letters.len()];
    for ((letter, out), unknown) in letters.iter().zip(&mut points).zip(&mut unknown) {
        let lower = letter | 0x20;
        let mut p = 0u8;
        let mut known = false;
        for (&level, &points) in LOWER_LETTERS.iter().zip(&by_level) {
            let hit = lower == level;
            p = if hit { points } else { p };
            known |= hit;
        }
        *out = p;
        *unknown = u8::from(!known);
    }
    (points, bits::pack(&unknown))
}

/// Points and invalid bits from level codes ([`INVALID_CODE`] for unknown text).
fn code_points(codes: &[u8], by_level: [u8; 5]) -> (Vec<u8>, BooleanBuffer) {
    let points = codes
        .iter()
        .map(|&c| by_level.get(usize::from(c)).copied().unwrap_or(0))
        .collect();
    let invalid = BooleanBuffer::collect_bool(codes.len(), |i| codes[i] == INVALID_CODE);
    (points, invalid)
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

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, StringViewArray};

    use super::*;

    const BY_LEVEL: [u8; 5] = [0, 1, 2, 3, 4];

    /// Points, invalid and missing rows of a consciousness sub-score.
    fn summary(s: &SubScore) -> Vec<(u8, bool, bool)> {
        (0..s.points().len())
            .map(|i| (s.points()[i], s.is_invalid(i), s.is_missing(i)))
            .collect()
    }

    /// The same text scored from offsets, from views, and row by row agrees, whether
    /// or not every row is one letter (the lane-wise path) and across bitmap words.
    #[test]
    fn letter_and_word_paths_agree_with_row_by_row_parsing() {
        let letters = ["A", "c", "V", "p", "U", "a", "x", "!", "C", "u"];
        let mixed = [Some("alert"), None, Some("VOICE"), Some("q"), Some(" P ")];
        let one_letter: Vec<Option<&str>> =
            letters.iter().cycle().take(150).map(|&l| Some(l)).collect();
        let with_words: Vec<Option<&str>> = mixed.iter().cycle().take(150).copied().collect();
        for rows in [one_letter, with_words] {
            let want: Vec<(u8, bool, bool)> = rows
                .iter()
                .map(|r| match r {
                    None => (0, false, true),
                    Some(t) => match Acvpu::parse(t) {
                        Some(level) => (BY_LEVEL[level as usize], false, false),
                        None => (0, true, false),
                    },
                })
                .collect();
            let offsets = StringArray::from(rows.clone());
            let views = StringViewArray::from(rows.clone());
            for input in [Text::Utf8(&offsets), Text::Utf8View(&views)] {
                let s = SubScore::consciousness("consciousness", input, rows.len(), BY_LEVEL);
                assert_eq!(summary(&s), want);
            }
        }
    }

    #[test]
    fn a_sliced_letter_array_scores_its_own_rows() {
        let all = StringArray::from(vec!["U", "A", "V", "A", "P"]);
        let slice = all.slice(1, 3);
        let s = SubScore::consciousness("c", Text::Utf8(&slice), 3, BY_LEVEL);
        assert_eq!(s.points(), &[0, 2, 0]);
    }

    #[test]
    fn oxygen_flag_points_follow_each_bit_across_words() {
        let flags: Vec<Option<bool>> = (0..130).map(|i| Some(i % 3 == 0)).collect();
        let array = arrow::array::BooleanArray::from(flags.clone());
        let sliced = array.slice(5, 120);
        let s = SubScore::flag("o2", Flag::Array(&sliced), 120, 2, 0);
        let want: Vec<u8> = flags[5..125]
            .iter()
            .map(|f| if *f == Some(true) { 2 } else { 0 })
            .collect();
        assert_eq!(s.points(), want.as_slice());
    }
}
