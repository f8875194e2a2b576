//! MEWS, the Modified Early Warning Score (Subbe, Kruger, Rutherford and Gemmel, QJM
//! 2001;94:521-6).
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | systolic BP (mmHg) | ≤70 | 71–80 | 81–100 | 101–199 | | ≥200 | |
//! | heart rate (/min) | | ≤40 | 41–50 | 51–100 | 101–110 | 111–129 | ≥130 |
//! | respiration rate (/min) | | <9 | | 9–14 | 15–20 | 21–29 | ≥30 |
//! | temperature (°C) | | <35 | | 35–38.4 | | ≥38.5 | |
//! | AVPU | | | | Alert | Voice | Pain | Unresponsive |
//!
//! Fractional values follow the same rule as NEWS2: a band is closed at its printed
//! upper bound and open below it (heart rate 100.5 scores 1; temperature 38.45 scores
//! 2). Bands printed with a strict bound keep it (respiration 8.9 is `<9` and scores
//! 2; temperature 35.0 scores 0). The paper prints the lowest systolic and heart-rate
//! bands as `<70` and `<40`, leaving 70 and 40 themselves unbanded; vigil puts them in
//! the more severe band (`≤70`, `≤40`).
//!
//! The paper's AVPU has no *new confusion*; vigil scores ACVPU `C` like `V` (1), the
//! lowest point for a change from Alert, and documents it here as its own mapping.

use vigil_core::Vital;

use crate::bands::{Bands, Cut};
use crate::input::{Num, Text};
use crate::sheet::{Sheet, SubScore};

/// Parameter names, as used in sub-score fields and missing/invalid lists.
pub mod params {
    /// Respiration rate.
    pub const RESP_RATE: &str = "resp_rate";
    /// Systolic blood pressure.
    pub const SYSTOLIC_BP: &str = "systolic_bp";
    /// Heart rate.
    pub const HEART_RATE: &str = "heart_rate";
    /// Level of consciousness.
    pub const CONSCIOUSNESS: &str = "consciousness";
    /// Temperature.
    pub const TEMPERATURE: &str = "temperature";
    /// All five, in argument order.
    pub const ALL: [&str; 5] = [
        RESP_RATE,
        SYSTOLIC_BP,
        HEART_RATE,
        CONSCIOUSNESS,
        TEMPERATURE,
    ];
}

/// Systolic blood pressure chart row.
pub const SYSTOLIC_BP: Bands<4> = Bands::new(
    3,
    [
        Cut::above(70.0, 2),
        Cut::above(80.0, 1),
        Cut::above(100.0, 0),
        Cut::above(199.0, 2),
    ],
);
/// Heart rate chart row.
pub const HEART_RATE: Bands<5> = Bands::new(
    2,
    [
        Cut::above(40.0, 1),
        Cut::above(50.0, 0),
        Cut::above(100.0, 1),
        Cut::above(110.0, 2),
        Cut::above(129.0, 3),
    ],
);
/// Respiration rate chart row.
pub const RESP_RATE: Bands<4> = Bands::new(
    2,
    [
        Cut::at_least(9.0, 0),
        Cut::above(14.0, 1),
        Cut::above(20.0, 2),
        Cut::above(29.0, 3),
    ],
);
/// Temperature chart row.
pub const TEMPERATURE: Bands<2> = Bands::new(2, [Cut::at_least(35.0, 0), Cut::above(38.4, 2)]);
/// Points per ACVPU level: Alert 0, Confusion 1 (vigil's mapping), Voice 1, Pain 2,
/// Unresponsive 3.
pub const CONSCIOUSNESS_POINTS: [u8; 5] = [0, 1, 1, 2, 3];

/// The MEWS inputs of a batch.
#[derive(Debug, Clone, Copy)]
pub struct MewsInputs<'a> {
    /// Respiration rate, /min.
    pub resp_rate: Num<'a>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Num<'a>,
    /// Heart rate, /min.
    pub heart_rate: Num<'a>,
    /// ACVPU level of consciousness, letter or word.
    pub consciousness: Text<'a>,
    /// Temperature, °C.
    pub temperature: Num<'a>,
}

/// MEWS (0-14) for `rows` rows.
pub fn mews(inputs: &MewsInputs<'_>, rows: usize) -> Sheet {
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
            SubScore::numeric(
                params::HEART_RATE,
                inputs.heart_rate,
                rows,
                Vital::HeartRate,
                &HEART_RATE,
            ),
            SubScore::consciousness(
                params::CONSCIOUSNESS,
                inputs.consciousness,
                rows,
                CONSCIOUSNESS_POINTS,
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
