//! SIRS, the vital-sign criteria of the Systemic Inflammatory Response Syndrome
//! (ACCP/SCCM consensus, Bone et al. 1992).
//!
//! One point each for temperature > 38 °C or < 36 °C, heart rate > 90/min and
//! respiration rate > 20/min. (The laboratory criteria, PaCO2 and white cell count,
//! are not vital signs and not part of this score.) Thresholds are applied literally:
//! 38.0 °C and 36.0 °C do not meet the temperature criterion.

use vigil_core::Vital;

use crate::bands::{Bands, Cut};
use crate::input::Num;
use crate::sheet::{Sheet, SubScore};

/// Parameter names, as used in sub-score fields and missing/invalid lists.
pub mod params {
    /// Respiration rate criterion.
    pub const RESP_RATE: &str = "resp_rate";
    /// Heart rate criterion.
    pub const HEART_RATE: &str = "heart_rate";
    /// Temperature criterion.
    pub const TEMPERATURE: &str = "temperature";
    /// All three, in argument order.
    pub const ALL: [&str; 3] = [RESP_RATE, HEART_RATE, TEMPERATURE];
}

/// Respiration rate > 20/min scores 1.
pub const RESP_RATE: Bands<1> = Bands::new(0, [Cut::above(20.0, 1)]);
/// Heart rate > 90/min scores 1.
pub const HEART_RATE: Bands<1> = Bands::new(0, [Cut::above(90.0, 1)]);
/// Temperature < 36 °C or > 38 °C scores 1.
pub const TEMPERATURE: Bands<2> = Bands::new(1, [Cut::at_least(36.0, 0), Cut::above(38.0, 1)]);

/// The SIRS inputs of a batch.
#[derive(Debug, Clone, Copy)]
pub struct SirsInputs<'a> {
    /// Respiration rate, /min.
    pub resp_rate: Num<'a>,
    /// Heart rate, /min.
    pub heart_rate: Num<'a>,
    /// Temperature, °C.
    pub temperature: Num<'a>,
}

/// The number of SIRS vital-sign criteria met (0-3) for `rows` rows.
pub fn sirs(inputs: &SirsInputs<'_>, rows: usize) -> Sheet {
    Sheet::new(
        rows,
        vec![
            SubScore::numeric(
                params::RESP_RATE,
                inputs.resp_rate,
                rows,
                Vital::RespRate,
                &RESP_RATE,
            ),
            SubScore::numeric(
                params::HEART_RATE,
                inputs.heart_rate,
                rows,
                Vital::HeartRate,
                &HEART_RATE,
            ),
            SubScore::numeric(
                params::TEMPERATURE,
                inputs.temperature,
                rows,
                Vital::Temperature,
                &TEMPERATURE,
            ),
        ],
    )
}
