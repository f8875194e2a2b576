//! vigil-sim: synthetic patient cohorts to run vigil against.
//!
//! A cohort of patients spread over wards, each with a baseline physiology that
//! wanders as real vital signs do; some deteriorate (sepsis, respiratory
//! failure, haemorrhage) from a labelled onset to a labelled clinical event, the
//! ground truth an evaluation scores alerts against. Their devices report at
//! realistic rates (bedside monitors every few seconds, wearables less often,
//! blood-pressure cuffs every 15-60 minutes, nurses at rounds) with the faults
//! real ones have: motion artefacts, dropouts, duplicates, late and out-of-order
//! delivery, and clocks that are off. The same configuration and seed give the
//! same stream.
//!
//! ```
//! use vigil_sim::{CohortConfig, Simulation, json};
//!
//! let config = CohortConfig { patients: 10, duration_ms: 60_000, ..CohortConfig::default() };
//! let mut sim = Simulation::new(config);
//! let first = sim.next().expect("a reading");
//! assert!(json::wide(&first).starts_with(r#"{"patient_id":"p0000"#));
//! ```

pub mod cohort;
pub mod evaluation;
pub mod json;
pub mod physiology;
pub mod stream;

pub use cohort::{CohortConfig, Episode, Faults, Patient};
pub use physiology::EpisodeKind;
pub use stream::{DeviceKind, Reading, Simulation, Values};
