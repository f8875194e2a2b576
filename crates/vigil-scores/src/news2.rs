//! NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).
//!
//! Seven parameters, each scored 0-3 from the chart, summed to 0-20:
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | respiration rate (/min) | ≤8 | | 9–11 | 12–20 | | 21–24 | ≥25 |
//! | SpO2 Scale 1 (%) | ≤91 | 92–93 | 94–95 | ≥96 | | | |
//! | SpO2 Scale 2 (%) | ≤83 | 84–85 | 86–87 | 88–92, ≥93 on air | 93–94 on O2 | 95–96 on O2 | ≥97 on O2 |
//! | air or oxygen | | oxygen | | air | | | |
//! | systolic BP (mmHg) | ≤90 | 91–100 | 101–110 | 111–219 | | | ≥220 |
//! | pulse (/min) | ≤40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥131 |
//! | consciousness | | | | Alert | | | new Confusion, Voice, Pain, Unresponsive |
//! | temperature (°C) | ≤35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥39.1 | |
//!
//! **Fractional values.** Every band is closed at its printed upper bound and open
//! below it, so every real value lands in exactly one band: respiration 8.5 is in 9–11,
//! temperature 36.05 in 36.1–38.0, SpO2 91.5 in 92–93, pulse 90.5 in 91–110.
//!
//! **SpO2 scale.** `spo2_scale` 1 (or NULL) uses Scale 1; 2 uses Scale 2 (for
//! confirmed hypercapnic respiratory failure); any other value makes SpO2 *invalid*.
//! On Scale 2 at 93 % or above the points depend on air vs oxygen, so SpO2 is unscored
//! when air/oxygen is missing there.
//!
//! **Clinical risk band** (of a complete score): `high` for 7 or more, `medium` for
//! 5–6, `low-medium` for 0–4 with a 3 in any single parameter, `low` for 0–4.
//!
//! **Missing and invalid.** The aggregate is NULL when any parameter is missing or
//! invalid; the partial sum and the lists of missing and invalid parameters say why.

use arrow::array::{Array, StringArray};
use arrow::buffer::BooleanBuffer;
use vigil_core::Vital;

use crate::bands::{Bands, Cut};
use crate::input::{Flag, Num, Text};
use crate::sheet::{Sheet, SubScore, or};

/// Parameter names, as used in sub-score fields and missing/invalid lists.
pub mod params {
    /// Respiration rate.
    pub const RESP_RATE: &str = "resp_rate";
    /// Oxygen saturation (on the patient's SpO2 scale).
    pub const SPO2: &str = "spo2";
    /// Air or supplemental oxygen.
    pub const AIR_OR_OXYGEN: &str = "air_or_oxygen";
    /// Systolic blood pressure.
    pub const SYSTOLIC_BP: &str = "systolic_bp";
    /// Pulse.
    pub const HEART_RATE: &str = "heart_rate";
    /// Level of consciousness (ACVPU).
    pub const CONSCIOUSNESS: &str = "consciousness";
    /// Temperature.
    pub const TEMPERATURE: &str = "temperature";
    /// All seven, in chart order.
    pub const ALL: [&str; 7] = [
        RESP_RATE,
        SPO2,
        AIR_OR_OXYGEN,
        SYSTOLIC_BP,
        HEART_RATE,
        CONSCIOUSNESS,
        TEMPERATURE,
    ];
}

/// Respiration rate chart row.
pub const RESP_RATE: Bands<4> = Bands::new(
    3,
    [
        Cut::above(8.0, 1),
        Cut::above(11.0, 0),
        Cut::above(20.0, 2),
        Cut::above(24.0, 3),
    ],
);
/// SpO2 Scale 1 chart row.
pub const SPO2_SCALE_1: Bands<3> = Bands::new(
    3,
    [
        Cut::above(91.0, 2),
        Cut::above(93.0, 1),
        Cut::above(95.0, 0),
    ],
);
/// SpO2 Scale 2 chart row for a patient on air.
pub const SPO2_SCALE_2_AIR: Bands<3> = Bands::new(
    3,
    [
        Cut::above(83.0, 2),
        Cut::above(85.0, 1),
        Cut::above(87.0, 0),
    ],
);
/// SpO2 Scale 2 chart row for a patient on oxygen.
pub const SPO2_SCALE_2_OXYGEN: Bands<6> = Bands::new(
    3,
    [
        Cut::above(83.0, 2),
        Cut::above(85.0, 1),
        Cut::above(87.0, 0),
        Cut::above(92.0, 1),
        Cut::above(94.0, 2),
        Cut::above(96.0, 3),
    ],
);
/// Systolic blood pressure chart row.
pub const SYSTOLIC_BP: Bands<4> = Bands::new(
    3,
    [
        Cut::above(90.0, 2),
        Cut::above(100.0, 1),
        Cut::above(110.0, 0),
        Cut::above(219.0, 3),
    ],
);
/// Pulse chart row.
pub const HEART_RATE: Bands<5> = Bands::new(
    3,
    [
        Cut::above(40.0, 1),
        Cut::above(50.0, 0),
        Cut::above(90.0, 1),
        Cut::above(110.0, 2),
        Cut::above(130.0, 3),
    ],
);
/// Temperature chart row.
pub const TEMPERATURE: Bands<4> = Bands::new(
    3,
    [
        Cut::above(35.0, 1),
        Cut::above(36.0, 0),
        Cut::above(38.0, 1),
        Cut::above(39.0, 2),
    ],
);
/// Points of supplemental oxygen (air scores 0).
pub const OXYGEN_POINTS: u8 = 2;
/// Points per ACVPU level: Alert 0, new Confusion, Voice, Pain, Unresponsive 3.
pub const CONSCIOUSNESS_POINTS: [u8; 5] = [0, 3, 3, 3, 3];

/// The NEWS2 inputs of a batch, one entry per chart parameter.
#[derive(Debug, Clone, Copy)]
pub struct News2Inputs<'a> {
    /// Respiration rate, /min.
    pub resp_rate: Num<'a>,
    /// SpO2, %.
    pub spo2: Num<'a>,
    /// SpO2 scale: 1 (or NULL) or 2.
    pub spo2_scale: Num<'a>,
    /// Supplemental oxygen (true) or air (false).
    pub on_oxygen: Flag<'a>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Num<'a>,
    /// Pulse, /min.
    pub heart_rate: Num<'a>,
    /// ACVPU level of consciousness, letter or word.
    pub consciousness: Text<'a>,
    /// Temperature, °C.
    pub temperature: Num<'a>,
}

/// NEWS2 for `rows` rows (scalar inputs are broadcast to every row).
pub fn news2(inputs: &News2Inputs<'_>, rows: usize) -> Sheet {
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
            spo2(inputs, rows),
            SubScore::flag(
                params::AIR_OR_OXYGEN,
                inputs.on_oxygen,
                rows,
                OXYGEN_POINTS,
                0,
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

/// The SpO2 sub-score: Scale 1 for every row, then the few rows on another scale
/// amended one by one.
fn spo2(inputs: &News2Inputs<'_>, rows: usize) -> SubScore {
    let range = Vital::Spo2.plausible_range();
    let scale1 = SubScore::numeric(params::SPO2, inputs.spo2, rows, Vital::Spo2, &SPO2_SCALE_1);
    let scale_at = |i: usize| -> Option<f64> {
        match inputs.spo2_scale {
            Num::Array(a) => a.is_valid(i).then(|| a.value(i)),
            Num::Scalar(s) => s,
        }
    };
    let other_scale: Vec<usize> = match inputs.spo2_scale {
        Num::Scalar(None) => return scale1,
        Num::Scalar(Some(1.0)) => return scale1,
        Num::Scalar(Some(_)) => (0..rows).collect(),
        // Nearly every patient is on Scale 1: one vectorised pass over the raw values
        // (NULL slots included) proves it, and only otherwise are rows examined.
        Num::Array(a) if a.values().iter().all(|&s| s == 1.0) => return scale1,
        Num::Array(_) => (0..rows)
            .filter(|&i| scale_at(i).is_some_and(|s| s != 1.0))
            .collect(),
    };
    if other_scale.is_empty() {
        return scale1;
    }
    let spo2_at = |i: usize| -> Option<f64> {
        match inputs.spo2 {
            Num::Array(a) => a.is_valid(i).then(|| a.value(i)),
            Num::Scalar(s) => s,
        }
    };
    let oxygen_at = |i: usize| -> Option<bool> {
        match inputs.on_oxygen {
            Flag::Array(a) => a.is_valid(i).then(|| a.value(i)),
            Flag::Scalar(s) => s,
        }
    };
    let (mut points, missing, invalid) = scale1.into_parts();
    let mut bad_scale = vec![false; rows];
    let mut undetermined = vec![false; rows];
    for i in other_scale {
        let Some(x) = spo2_at(i).filter(|&x| range.contains(x)) else {
            continue; // already missing or invalid
        };
        if scale_at(i) != Some(2.0) {
            bad_scale[i] = true;
            continue;
        }
        points[i] = match (x > 92.0, oxygen_at(i)) {
            (false, _) | (true, Some(false)) => SPO2_SCALE_2_AIR.points(x),
            (true, Some(true)) => SPO2_SCALE_2_OXYGEN.points(x),
            (true, None) => {
                undetermined[i] = true;
                0
            }
        };
    }
    let bad_scale = BooleanBuffer::from(bad_scale);
    let invalid = or(invalid.as_ref(), Some(&bad_scale)).filter(|b| b.count_set_bits() > 0);
    let undetermined = Some(BooleanBuffer::from(undetermined)).filter(|b| b.count_set_bits() > 0);
    SubScore::new(params::SPO2, points, missing, invalid, undetermined)
}

/// The NEWS2 clinical risk band of a complete score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RiskBand {
    /// Aggregate 0-4 with no single parameter scoring 3.
    Low,
    /// Aggregate 0-4 with a 3 in a single parameter: urgent ward-based response.
    LowMedium,
    /// Aggregate 5-6: key threshold for urgent response.
    Medium,
    /// Aggregate 7 or more: emergency response.
    High,
}

impl RiskBand {
    /// The band of an aggregate score whose highest single parameter scored
    /// `max_points`.
    pub fn of(total: u8, max_points: u8) -> RiskBand {
        match total {
            7.. => RiskBand::High,
            5..=6 => RiskBand::Medium,
            _ if max_points >= 3 => RiskBand::LowMedium,
            _ => RiskBand::Low,
        }
    }

    /// The band's name as vigil writes it: `low`, `low-medium`, `medium`, `high`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::LowMedium => "low-medium",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
        }
    }
}

/// The clinical risk band of every row of a NEWS2 sheet; NULL where the score is.
pub fn band(sheet: &Sheet) -> StringArray {
    let total = sheet.sum();
    let max = sheet.max_points();
    let complete = sheet.complete();
    (0..sheet.rows())
        .map(|i| {
            complete
                .as_ref()
                .is_none_or(|c| c.is_valid(i))
                .then(|| RiskBand::of(total[i], max[i]).as_str())
        })
        .collect()
}
