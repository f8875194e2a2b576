//! Clinical early-warning scores as vectorised Arrow kernels and DataFusion functions.
//!
//! Scores: [`news2`] (NEWS2, the primary score), [`qsofa`], [`mews`] and [`sirs`].
//! Each takes whole Arrow arrays (or scalars broadcast to every row) and produces a
//! [`Sheet`]: per-parameter points with the rows that could not be scored and why.
//! From a sheet come the aggregate (NULL when any parameter is missing or invalid,
//! because missing is never normal), the partial sum and the detail struct.
//!
//! Band look-ups are branch-free compare-and-select chains ([`bands`]), so the kernels
//! vectorise; [`reference`] holds the same scores written one row at a time, which
//! the tests and benchmarks compare against. [`udf`] registers every score as a SQL
//! function; [`vitals::score_vitals`] scores a batch of the canonical vitals schema.
//!
//! ```
//! use arrow::array::{BooleanArray, Float64Array, StringArray};
//! use vigil_scores::input::{Flag, Num, Text};
//! use vigil_scores::news2::{News2Inputs, band, news2};
//!
//! let rr = Float64Array::from(vec![Some(18.0), Some(26.0), None]);
//! let consciousness = StringArray::from(vec!["A", "V", "alert"]);
//! let sheet = news2(
//!     &News2Inputs {
//!         resp_rate: Num::Array(&rr),
//!         spo2: Num::Scalar(Some(97.0)),
//!         spo2_scale: Num::Scalar(Some(1.0)),
//!         on_oxygen: Flag::Scalar(Some(false)),
//!         systolic_bp: Num::Scalar(Some(120.0)),
//!         heart_rate: Num::Scalar(Some(80.0)),
//!         consciousness: Text::Utf8(&consciousness),
//!         temperature: Num::Scalar(Some(37.0)),
//!     },
//!     3,
//! );
//! let total = sheet.total();
//! assert_eq!(total.value(0), 0);
//! assert_eq!(total.value(1), 6); // respiration 3 + Voice 3
//! assert!(total.is_null(2)); // respiration missing: no aggregate ...
//! assert_eq!(sheet.partial().value(2), 0); // ... but a partial sum of what was scored
//! assert_eq!(band(&sheet).value(1), "medium");
//! # use arrow::array::Array;
//! ```

pub mod bands;
mod bits;
pub mod error;
pub mod input;
pub mod mews;
pub mod news2;
pub mod qsofa;
pub mod reference;
pub mod sheet;
pub mod sirs;
pub mod trend;
pub mod udf;
pub mod vitals;

pub use error::{Result, ScoreError};
pub use sheet::{Sheet, SubScore};
