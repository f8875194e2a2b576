//! A compact grouped accumulator for "the value at the latest (or earliest) time":
//! `last_value(v ORDER BY t)` and `first_value(v ORDER BY t DESC)` and their mirror
//! images, where `t` is one non-null BIGINT or TIMESTAMP expression.
//!
//! This is the aggregate of vigil's flagship pipeline (the latest reading of each
//! vital). DataFusion's grouped `first_value`/`last_value` keep each group's ordering
//! as a `Vec<ScalarValue>` (an allocation and some 80 bytes per group, and a
//! `ScalarValue` built per row compared), which made it the largest cost and the
//! largest state of the pipeline. Here a group is its value, one `i64` and two bits.
//!
//! Semantics match DataFusion's: a row replaces the group's pick only if its
//! ordering is strictly better (ties keep the row seen first); with IGNORE NULLS,
//! rows whose value is NULL are skipped; the state is `[value, ordering, is_set]`,
//! the layout DataFusion uses, so checkpoints look the same either way.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, PrimitiveArray, StringArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

/// What the accumulator picks and how, from the aggregate's definition.
#[derive(Debug, Clone)]
pub(crate) struct LatestSpec {
    /// Keep the row with the greatest ordering (`last_value ... ASC`,
    /// `first_value ... DESC`) or the least.
    pub(crate) keep_greatest: bool,
    /// IGNORE NULLS.
    pub(crate) ignore_nulls: bool,
    /// Type of the value (and of the result).
    pub(crate) value_type: DataType,
    /// Type of the ordering expression (BIGINT or a TIMESTAMP).
    pub(crate) order_type: DataType,
    /// The ordering expression's column name, when it is a plain column (a window
    /// operator can then tell whether the ordering is its own event time).
    pub(crate) order_column: Option<String>,
}

impl LatestSpec {
    /// Whether values of `value_type` are supported and orderings of `order_type`.
    pub(crate) fn supports(value_type: &DataType, order_type: &DataType) -> bool {
        let value = matches!(
            value_type,
            DataType::Float64
                | DataType::Float32
                | DataType::Int64
                | DataType::Int32
                | DataType::Int16
                | DataType::Int8
                | DataType::UInt64
                | DataType::UInt32
                | DataType::UInt16
                | DataType::UInt8
                | DataType::Utf8
                | DataType::Timestamp(_, _)
        );
        value && matches!(order_type, DataType::Int64 | DataType::Timestamp(_, _))
    }

    /// A fresh grouped accumulator.
    pub(crate) fn accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.column()?.into_accumulator())
    }

    /// A fresh grouped accumulator that can also be read without being consumed.
    pub(crate) fn column(&self) -> Result<Box<dyn PickColumn>> {
        let spec = self.clone();
        Ok(match &self.value_type {
            DataType::Float64 => {
                Box::new(Latest::<Primitive<Float64Type>>::new(spec)) as Box<dyn PickColumn>
            }
            DataType::Float32 => Box::new(Latest::<Primitive<Float32Type>>::new(spec)),
            DataType::Int64 => Box::new(Latest::<Primitive<Int64Type>>::new(spec)),
            DataType::Int32 => Box::new(Latest::<Primitive<Int32Type>>::new(spec)),
            DataType::Int16 => Box::new(Latest::<Primitive<Int16Type>>::new(spec)),
            DataType::Int8 => Box::new(Latest::<Primitive<Int8Type>>::new(spec)),
            DataType::UInt64 => Box::new(Latest::<Primitive<UInt64Type>>::new(spec)),
            DataType::UInt32 => Box::new(Latest::<Primitive<UInt32Type>>::new(spec)),
            DataType::UInt16 => Box::new(Latest::<Primitive<UInt16Type>>::new(spec)),
            DataType::UInt8 => Box::new(Latest::<Primitive<UInt8Type>>::new(spec)),
            DataType::Utf8 => Box::new(Latest::<Text>::new(spec)),
            DataType::Timestamp(unit, _) => match unit {
                TimeUnit::Second => Box::new(Latest::<Primitive<TimestampSecondType>>::new(spec)),
                TimeUnit::Millisecond => {
                    Box::new(Latest::<Primitive<TimestampMillisecondType>>::new(spec))
                }
                TimeUnit::Microsecond => {
                    Box::new(Latest::<Primitive<TimestampMicrosecondType>>::new(spec))
                }
                TimeUnit::Nanosecond => {
                    Box::new(Latest::<Primitive<TimestampNanosecondType>>::new(spec))
                }
            },
            other => {
                return Err(DataFusionError::Internal(format!(
                    "latest-value accumulator for {other}"
                )));
            }
        })
    }
}

/// A latest-value accumulator whose groups can be read and cleared one by one, for
/// operators that emit some groups and keep all of them (updating aggregates):
/// DataFusion's `evaluate`/`state` hand over every group at once and consume it.
pub(crate) trait PickColumn: GroupsAccumulator {
    /// The picked values of `groups` (NULL where unset), state untouched.
    fn values_at(&self, groups: &[usize]) -> Result<ArrayRef>;
    /// The picked values of `groups` whose ordering is at or after `since` (NULL
    /// otherwise), state untouched: a window's values from a merged state.
    fn values_since(&self, groups: &[usize], since: i64) -> Result<ArrayRef>;
    /// The orderings of `groups` (`None` where unset), state untouched.
    fn orders_at(&self, groups: &[usize]) -> Vec<Option<i64>>;
    /// The state (`[value, ordering, is_set]`) of `groups`, untouched.
    fn state_at(&self, groups: &[usize]) -> Result<Vec<ArrayRef>>;
    /// Forgets `group`, so that its slot can serve a new group.
    fn clear(&mut self, group: usize);
    /// Makes room for `groups` groups, the new ones unset, so that they can be
    /// read before any row reaches them.
    fn reserve(&mut self, groups: usize);
    /// As a plain grouped accumulator.
    fn into_accumulator(self: Box<Self>) -> Box<dyn GroupsAccumulator>;
}

/// Storage of the picked values, one slot per group, NULL allowed.
trait Slots: Default + Send {
    fn resize(&mut self, groups: usize);
    /// The values of `groups`, NULL where unset or `set(group)` is false.
    fn values_at(&self, groups: &[usize], set: &dyn Fn(usize) -> bool, ty: &DataType) -> ArrayRef;
    /// Empties slot `group`.
    fn clear(&mut self, group: usize);
    /// Copies `values[row]` into slot `group`, for each pair.
    fn assign(&mut self, values: &ArrayRef, picks: &[(usize, usize)]) -> Result<()>;
    /// The first `n` slots as an array (NULL where `unset`), removed from storage.
    fn take(&mut self, n: usize, unset: Option<NullBuffer>, ty: &DataType) -> Result<ArrayRef>;
    fn size(&self) -> usize;
}

/// Primitive values and their validity.
struct Primitive<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    valid: BooleanBufferBuilder,
}

impl<T: ArrowPrimitiveType> Default for Primitive<T> {
    fn default() -> Self {
        Primitive {
            values: Vec::new(),
            valid: BooleanBufferBuilder::new(0),
        }
    }
}

impl<T: ArrowPrimitiveType> Slots for Primitive<T> {
    fn resize(&mut self, groups: usize) {
        if groups > self.values.len() {
            self.values.resize(groups, T::Native::default());
            self.valid.append_n(groups - self.valid.len(), false);
        }
    }

    fn values_at(&self, groups: &[usize], set: &dyn Fn(usize) -> bool, ty: &DataType) -> ArrayRef {
        let array: PrimitiveArray<T> = groups
            .iter()
            .map(|&g| (set(g) && self.valid.get_bit(g)).then(|| self.values[g]))
            .collect();
        Arc::new(array.with_data_type(ty.clone()))
    }

    fn clear(&mut self, group: usize) {
        self.valid.set_bit(group, false);
    }

    fn assign(&mut self, values: &ArrayRef, picks: &[(usize, usize)]) -> Result<()> {
        let values = values.as_primitive_opt::<T>().ok_or_else(|| {
            DataFusionError::Internal("latest-value input of an unexpected type".to_owned())
        })?;
        for &(group, row) in picks {
            self.values[group] = values.value(row);
            self.valid.set_bit(group, values.is_valid(row));
        }
        Ok(())
    }

    fn take(&mut self, n: usize, unset: Option<NullBuffer>, ty: &DataType) -> Result<ArrayRef> {
        let rest = self.values.split_off(n);
        let values = std::mem::replace(&mut self.values, rest);
        let valid = take_bits(&mut self.valid, n);
        let nulls = NullBuffer::union(Some(&NullBuffer::new(valid)), unset.as_ref());
        Ok(Arc::new(
            PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(ty.clone()),
        ))
    }

    fn size(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<T::Native>() + self.valid.capacity() / 8
    }
}

/// Text values.
#[derive(Default)]
struct Text {
    values: Vec<Option<Box<str>>>,
    bytes: usize,
}

impl Slots for Text {
    fn resize(&mut self, groups: usize) {
        if groups > self.values.len() {
            self.values.resize(groups, None);
        }
    }

    fn values_at(&self, groups: &[usize], set: &dyn Fn(usize) -> bool, _ty: &DataType) -> ArrayRef {
        let array: StringArray = groups
            .iter()
            .map(|&g| self.values[g].as_deref().filter(|_| set(g)))
            .collect();
        Arc::new(array)
    }

    fn clear(&mut self, group: usize) {
        if let Some(old) = self.values[group].take() {
            self.bytes -= old.len();
        }
    }

    fn assign(&mut self, values: &ArrayRef, picks: &[(usize, usize)]) -> Result<()> {
        let values = values.as_string_opt::<i32>().ok_or_else(|| {
            DataFusionError::Internal("latest-value input of an unexpected type".to_owned())
        })?;
        for &(group, row) in picks {
            let slot = &mut self.values[group];
            self.bytes -= slot.as_ref().map_or(0, |s| s.len());
            *slot = values.is_valid(row).then(|| Box::from(values.value(row)));
            self.bytes += slot.as_ref().map_or(0, |s| s.len());
        }
        Ok(())
    }

    fn take(&mut self, n: usize, unset: Option<NullBuffer>, _ty: &DataType) -> Result<ArrayRef> {
        let rest = self.values.split_off(n);
        let values = std::mem::replace(&mut self.values, rest);
        self.bytes = self.values.iter().flatten().map(|s| s.len()).sum();
        let array: StringArray = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let set = unset.as_ref().is_none_or(|u| u.is_valid(i));
                v.as_deref().filter(|_| set)
            })
            .collect();
        Ok(Arc::new(array))
    }

    fn size(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Option<Box<str>>>() + self.bytes
    }
}

/// The first `n` bits of `bits`, removed from it.
fn take_bits(bits: &mut BooleanBufferBuilder, n: usize) -> arrow::buffer::BooleanBuffer {
    let all = bits.finish();
    let taken = all.slice(0, n);
    let rest = all.slice(n, all.len() - n);
    bits.append_buffer(&rest);
    taken
}

/// Per-group orderings. Event times of one stream lie close together, so they are
/// kept as 32-bit offsets from a base (a span of about 24 days in milliseconds),
/// half the bytes of an `i64`; a batch whose orderings would not fit widens them
/// to `i64` for good.
enum Orders {
    Narrow {
        base: Option<i64>,
        offsets: Vec<i32>,
    },
    Wide(Vec<i64>),
}

/// Reads and writes a group's ordering.
trait OrderStore {
    fn get(&self, group: usize) -> i64;
    /// Stores `order`; `false` (and nothing stored) if it is out of reach.
    fn set(&mut self, group: usize, order: i64) -> bool;
}

/// Narrow orderings with their base fixed.
struct Offsets<'a> {
    base: i64,
    offsets: &'a mut [i32],
}

impl OrderStore for Offsets<'_> {
    fn get(&self, group: usize) -> i64 {
        self.base + i64::from(self.offsets[group])
    }

    fn set(&mut self, group: usize, order: i64) -> bool {
        match order.checked_sub(self.base).map(i32::try_from) {
            Some(Ok(offset)) => {
                self.offsets[group] = offset;
                true
            }
            _ => false,
        }
    }
}

impl OrderStore for [i64] {
    fn get(&self, group: usize) -> i64 {
        self[group]
    }

    fn set(&mut self, group: usize, order: i64) -> bool {
        self[group] = order;
        true
    }
}

impl Orders {
    fn len(&self) -> usize {
        match self {
            Orders::Narrow { offsets, .. } => offsets.len(),
            Orders::Wide(wide) => wide.len(),
        }
    }

    fn resize(&mut self, groups: usize) {
        match self {
            Orders::Narrow { offsets, .. } => offsets.resize(groups, 0),
            Orders::Wide(wide) => wide.resize(groups, 0),
        }
    }

    fn get(&self, group: usize) -> i64 {
        match self {
            Orders::Narrow { base, offsets } => base.unwrap_or(0) + i64::from(offsets[group]),
            Orders::Wide(wide) => wide[group],
        }
    }

    /// Widens narrow orderings to `i64`.
    fn widen(&mut self) {
        if let Orders::Narrow { base, offsets } = self {
            let b = base.unwrap_or(0);
            let wide = offsets.iter().map(|&o| b + i64::from(o)).collect();
            *self = Orders::Wide(wide);
        }
    }

    /// The first `n` orderings, removed.
    fn take(&mut self, n: usize) -> Vec<i64> {
        match self {
            Orders::Narrow { base, offsets } => {
                let rest = offsets.split_off(n);
                let b = base.unwrap_or(0);
                std::mem::replace(offsets, rest)
                    .into_iter()
                    .map(|o| b + i64::from(o))
                    .collect()
            }
            Orders::Wide(wide) => {
                let rest = wide.split_off(n);
                std::mem::replace(wide, rest)
            }
        }
    }

    fn size(&self) -> usize {
        match self {
            Orders::Narrow { offsets, .. } => offsets.capacity() * 4,
            Orders::Wide(wide) => wide.capacity() * 8,
        }
    }
}

/// Offers each row from `from` on that `take` admits to its group: a strictly
/// better ordering than the group's pick (or no pick yet) replaces it. Records
/// `(group, row)` of each replacement in `picks`. Stops at a row whose ordering
/// the store cannot hold, and returns it.
#[allow(clippy::too_many_arguments)]
fn pick_rows(
    store: &mut (impl OrderStore + ?Sized),
    is_set: &mut BooleanBufferBuilder,
    picks: &mut Vec<(usize, usize)>,
    orders: &PrimitiveArray<Int64Type>,
    group_indices: &[usize],
    from: usize,
    greatest: bool,
    take: &impl Fn(usize) -> bool,
) -> Option<usize> {
    for (row, &group) in group_indices.iter().enumerate().skip(from) {
        if !take(row) || orders.is_null(row) {
            continue;
        }
        let order = orders.value(row);
        let better = !is_set.get_bit(group)
            || if greatest {
                order > store.get(group)
            } else {
                order < store.get(group)
            };
        if better {
            if !store.set(group, order) {
                return Some(row);
            }
            is_set.set_bit(group, true);
            picks.push((group, row));
        }
    }
    None
}

/// The grouped accumulator.
struct Latest<S: Slots> {
    spec: LatestSpec,
    slots: S,
    orders: Orders,
    is_set: BooleanBufferBuilder,
    /// Reused per batch: (group, row) of every row that improved its group's pick.
    picks: Vec<(usize, usize)>,
}

impl<S: Slots> Latest<S> {
    fn new(spec: LatestSpec) -> Self {
        Latest {
            spec,
            slots: S::default(),
            orders: Orders::Narrow {
                base: None,
                offsets: Vec::new(),
            },
            is_set: BooleanBufferBuilder::new(0),
            picks: Vec::new(),
        }
    }

    fn resize(&mut self, groups: usize) {
        if groups > self.orders.len() {
            self.orders.resize(groups);
            self.is_set.append_n(groups - self.is_set.len(), false);
            self.slots.resize(groups);
        }
    }

    /// Offers rows (value, ordering) to their groups; `take(row)` says whether the
    /// row counts at all.
    fn offer(
        &mut self,
        values: &ArrayRef,
        orders: &ArrayRef,
        group_indices: &[usize],
        total: usize,
        take: impl Fn(usize) -> bool,
    ) -> Result<()> {
        self.resize(total);
        let orders = cast(orders, &DataType::Int64)?;
        let orders = orders.as_primitive::<Int64Type>();
        self.picks.clear();
        let greatest = self.spec.keep_greatest;
        let mut from = 0;
        if let Orders::Narrow { base, offsets } = &mut self.orders {
            // The first ordering ever seen is the base.
            let first = (0..orders.len()).find(|&r| orders.is_valid(r));
            let b = *base.get_or_insert_with(|| first.map_or(0, |r| orders.value(r)));
            let mut store = Offsets {
                base: b,
                offsets: offsets.as_mut_slice(),
            };
            let (is_set, picks) = (&mut self.is_set, &mut self.picks);
            match pick_rows(
                &mut store,
                is_set,
                picks,
                orders,
                group_indices,
                0,
                greatest,
                &take,
            ) {
                None => return self.slots.assign(values, &self.picks),
                Some(row) => from = row,
            }
        }
        // Out of the narrow reach (or wide already): widen and go on from there.
        self.orders.widen();
        if let Orders::Wide(wide) = &mut self.orders {
            let (is_set, picks) = (&mut self.is_set, &mut self.picks);
            pick_rows(
                wide.as_mut_slice(),
                is_set,
                picks,
                orders,
                group_indices,
                from,
                greatest,
                &take,
            );
        }
        self.slots.assign(values, &self.picks)
    }

    fn emit_count(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.orders.len(),
            EmitTo::First(n) => n.min(self.orders.len()),
        }
    }

    /// Takes the first `n` groups: values (NULL where unset), orderings, is_set.
    fn take(&mut self, n: usize) -> Result<(ArrayRef, ArrayRef, BooleanArray)> {
        let set = take_bits(&mut self.is_set, n);
        let unset = NullBuffer::new(set.clone());
        let values = self.slots.take(n, Some(unset), &self.spec.value_type)?;
        let orders = self.orders.take(n);
        let orders: ArrayRef = Arc::new(PrimitiveArray::<Int64Type>::new(orders.into(), None));
        let orders = cast(&orders, &self.spec.order_type)?;
        Ok((values, orders, BooleanArray::new(set, None)))
    }
}

impl<S: Slots + 'static> PickColumn for Latest<S> {
    fn values_at(&self, groups: &[usize]) -> Result<ArrayRef> {
        let set = |g: usize| self.is_set.get_bit(g);
        Ok(self.slots.values_at(groups, &set, &self.spec.value_type))
    }

    fn values_since(&self, groups: &[usize], since: i64) -> Result<ArrayRef> {
        let set = |g: usize| self.is_set.get_bit(g) && self.orders.get(g) >= since;
        Ok(self.slots.values_at(groups, &set, &self.spec.value_type))
    }

    fn orders_at(&self, groups: &[usize]) -> Vec<Option<i64>> {
        groups
            .iter()
            .map(|&g| self.is_set.get_bit(g).then(|| self.orders.get(g)))
            .collect()
    }

    fn state_at(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        let values = self.values_at(groups)?;
        let orders: ArrayRef = Arc::new(PrimitiveArray::<Int64Type>::from_iter_values(
            groups.iter().map(|&g| self.orders.get(g)),
        ));
        let is_set: BooleanArray = groups
            .iter()
            .map(|&g| Some(self.is_set.get_bit(g)))
            .collect();
        Ok(vec![
            values,
            cast(&orders, &self.spec.order_type)?,
            Arc::new(is_set),
        ])
    }

    fn clear(&mut self, group: usize) {
        if group < self.orders.len() {
            self.is_set.set_bit(group, false);
            self.slots.clear(group);
        }
    }

    fn reserve(&mut self, groups: usize) {
        self.resize(groups);
    }

    fn into_accumulator(self: Box<Self>) -> Box<dyn GroupsAccumulator> {
        self
    }
}

impl<S: Slots + 'static> GroupsAccumulator for Latest<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [value, order] = values else {
            return Err(DataFusionError::Internal(
                "latest-value takes a value and one ordering".to_owned(),
            ));
        };
        let ignore_nulls = self.spec.ignore_nulls;
        let value_nulls = value.logical_nulls();
        let filter = opt_filter.cloned();
        self.offer(value, order, group_indices, total_num_groups, |row| {
            filter
                .as_ref()
                .is_none_or(|f| f.is_valid(row) && f.value(row))
                && !(ignore_nulls && value_nulls.as_ref().is_some_and(|n| n.is_null(row)))
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [value, order, is_set] = values else {
            return Err(DataFusionError::Internal(
                "latest-value state is a value, an ordering and a flag".to_owned(),
            ));
        };
        let is_set = is_set.as_boolean_opt().cloned().ok_or_else(|| {
            DataFusionError::Internal("latest-value state flag is not BOOLEAN".to_owned())
        })?;
        self.offer(value, order, group_indices, total_num_groups, |row| {
            is_set.is_valid(row) && is_set.value(row)
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emit_count(emit_to);
        Ok(self.take(n)?.0)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emit_count(emit_to);
        let (values, orders, is_set) = self.take(n)?;
        Ok(vec![values, orders, Arc::new(is_set)])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own group: set where the row counts and has an ordering.
        let [value, order] = values else {
            return Err(DataFusionError::Internal(
                "latest-value takes a value and one ordering".to_owned(),
            ));
        };
        let value_nulls = value.logical_nulls();
        let set: BooleanArray = (0..value.len())
            .map(|row| {
                Some(
                    opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row))
                        && order.is_valid(row)
                        && !(self.spec.ignore_nulls
                            && value_nulls.as_ref().is_some_and(|n| n.is_null(row))),
                )
            })
            .collect();
        let orders = cast(order, &self.spec.order_type)?;
        Ok(vec![Arc::clone(value), orders, Arc::new(set)])
    }

    fn size(&self) -> usize {
        self.slots.size() + self.orders.size() + self.is_set.capacity() / 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};

    fn spec() -> LatestSpec {
        LatestSpec {
            keep_greatest: true,
            ignore_nulls: true,
            value_type: DataType::Float64,
            order_type: DataType::Int64,
            order_column: None,
        }
    }

    /// Orderings start as 32-bit offsets and widen when a batch reaches beyond
    /// them, keeping every pick and every ordering exact.
    #[test]
    fn orderings_far_apart_widen_without_changing_picks() {
        for keep_greatest in [true, false] {
            let spec = LatestSpec {
                keep_greatest,
                ..spec()
            };
            let mut acc = spec.column().expect("column");
            let batch = |values: Vec<f64>, orders: Vec<i64>| -> [ArrayRef; 2] {
                [
                    Arc::new(Float64Array::from(values)),
                    Arc::new(Int64Array::from(orders)),
                ]
            };
            // Near each other: narrow.
            acc.update_batch(&batch(vec![1.0, 2.0], vec![1_000, 2_000]), &[0, 1], None, 2)
                .expect("update");
            // Billions of milliseconds away on both sides: widened.
            let far = 5_000_000_000_i64;
            acc.update_batch(
                &batch(vec![3.0, 4.0], vec![1_000 + far, 2_000 - far]),
                &[0, 1],
                None,
                2,
            )
            .expect("update");
            let state = acc.state_at(&[0, 1]).expect("state");
            let orders = state[1].as_primitive::<Int64Type>();
            let values = state[0].as_primitive::<Float64Type>();
            if keep_greatest {
                assert_eq!(orders.values().to_vec(), [1_000 + far, 2_000]);
                assert_eq!(values.values().to_vec(), [3.0, 2.0]);
            } else {
                assert_eq!(orders.values().to_vec(), [1_000, 2_000 - far]);
                assert_eq!(values.values().to_vec(), [1.0, 4.0]);
            }
        }
    }

    #[test]
    fn state_in_parts_merges_back_to_the_same_picks() {
        let mut acc = spec().accumulator().expect("acc");
        let values: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(2.0),
            None,
            Some(4.0),
        ]));
        let orders: ArrayRef = Arc::new(Int64Array::from(vec![10, 5, 20, 1]));
        // Groups 0, 0, 0, 2: group 1 never sees a row.
        acc.update_batch(&[values, orders], &[0, 0, 0, 2], None, 3)
            .expect("update");
        let first = acc.state(EmitTo::First(2)).expect("state");
        let rest = acc.state(EmitTo::All).expect("state");
        assert_eq!(first[0].len(), 2);
        assert_eq!(rest[0].len(), 1);
        let mut merged = spec().accumulator().expect("acc");
        merged.merge_batch(&first, &[0, 1], 3).expect("merge");
        merged.merge_batch(&rest, &[2], 3).expect("merge");
        let out = merged.evaluate(EmitTo::All).expect("evaluate");
        let out = out.as_primitive::<Float64Type>();
        // Group 0: the NULL at t=20 is ignored, t=10 wins; group 1 has nothing.
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some(1.0), None, Some(4.0)]);
        assert_eq!(merged.size(), spec().accumulator().expect("acc").size());
    }
}
