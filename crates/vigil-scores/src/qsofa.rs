//! qSOFA, the quick Sequential Organ Failure Assessment (Singer et al., Sepsis-3, 2016).
//!
//! One point each for respiration rate ≥ 22/min, systolic blood pressure ≤ 100 mmHg
//! and altered mentation (any ACVPU level other than Alert). A score of 2 or more
//! flags a patient with suspected infection at risk of a poor outcome. The thresholds
//! are applied literally to fractional values (21.5/min is below 22).

use vigil_core::Vital;

use crate::bands::{Bands, Cut};
use crate::input::{Num, Text};
use crate::sheet::{Sheet, SubScore};

/// Parameter names, as used in sub-score fields and missing/invalid lists.
pub mod params {
    /// Respiration rate criterion.
    pub const RESP_RATE: &str = "resp_rate";
    /// Systolic blood pressure criterion.
    pub const SYSTOLIC_BP: &str = "systolic_bp";
    /// Altered mentation criterion.
    pub const CONSCIOUSNESS: &str = "consciousness";
    /// All three, in argument order.
    pub const ALL: [&str; 3] = [RESP_RATE, SYSTOLIC_BP, CONSCIOUSNESS];
}

/// Respiration rate ≥ 22/min scores 1.
pub const RESP_RATE: Bands<1> = Bands::new(0, [Cut::at_least(22.0, 1)]);
/// Systolic blood pressure ≤ 100 mmHg scores 1.
pub const SYSTOLIC_BP: Bands<1> = Bands::new(1, [Cut::above(100.0, 0)]);
/// Any level other than Alert scores 1.
pub const CONSCIOUSNESS_POINTS: [u8; 5] = [0, 1, 1, 1, 1];

/// The qSOFA inputs of a batch.
#[derive(Debug, Clone, Copy)]
pub struct QsofaInputs<'a> {
    /// Respiration rate, /min.
    pub resp_rate: Num<'a>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Num<'a>,
    /// ACVPU level of consciousness, letter or word.
    pub consciousness: Text<'a>,
}

/// qSOFA (0-3) for `rows` rows.
pub fn qsofa(inputs: &QsofaInputs<'_>, rows: usize) -> Sheet {
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
                params::SYSTOLIC_BP,
                inputs.systolic_bp,
                rows,
                Vital::SystolicBp,
                &SYSTOLIC_BP,
            ),
            SubScore::consciousness(
                params::CONSCIOUSNESS,
                inputs.consciousness,
                rows,
                CONSCIOUSNESS_POINTS,
            ),
        ],
    )
}
