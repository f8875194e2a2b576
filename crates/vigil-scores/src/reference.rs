//! The scores written the plain way: one row at a time, chart bands as `if` chains.
//!
//! This is the readable definition the vectorised kernels are checked against (by
//! property tests) and measured against (by the benchmarks). It shares nothing with
//! the kernels except the plausible ranges of vigil-core.

use vigil_core::{Acvpu, Vital};

/// One row of inputs; `None` is a missing value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// Respiration rate, /min.
    pub resp_rate: Option<f64>,
    /// SpO2, %.
    pub spo2: Option<f64>,
    /// SpO2 scale (1 when missing).
    pub spo2_scale: Option<f64>,
    /// Supplemental oxygen.
    pub on_oxygen: Option<bool>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Option<f64>,
    /// Heart rate, /min.
    pub heart_rate: Option<f64>,
    /// Level of consciousness, letter or word.
    pub consciousness: Option<String>,
    /// Temperature, °C.
    pub temperature: Option<f64>,
}

/// One row's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScore {
    /// Aggregate; `None` unless every parameter was scored.
    pub total: Option<u8>,
    /// Sum of the parameters that could be scored.
    pub partial: u8,
    /// Points per parameter, `None` where unscored.
    pub subscores: Vec<Option<u8>>,
    /// Names of missing parameters.
    pub missing: Vec<&'static str>,
    /// Names of invalid parameters.
    pub invalid: Vec<&'static str>,
}

/// Outcome of scoring one parameter of one row.
enum Param {
    Scored(u8),
    Missing,
    Invalid,
    Undetermined,
}

fn numeric(value: Option<f64>, vital: Vital, chart: fn(f64) -> u8) -> Param {
    match value {
        None => Param::Missing,
        Some(x) if !vital.plausible_range().contains(x) => Param::Invalid,
        Some(x) => Param::Scored(chart(x)),
    }
}

fn level(text: &Option<String>, points: fn(Acvpu) -> u8) -> Param {
    match text {
        None => Param::Missing,
        Some(t) => match Acvpu::parse(t) {
            None => Param::Invalid,
            Some(l) => Param::Scored(points(l)),
        },
    }
}

fn sheet(params: Vec<(&'static str, Param)>) -> RowScore {
    let mut out = RowScore {
        total: Some(0),
        partial: 0,
        subscores: Vec::new(),
        missing: Vec::new(),
        invalid: Vec::new(),
    };
    for (name, p) in params {
        match p {
            Param::Scored(points) => {
                out.partial += points;
                out.total = out.total.map(|t| t + points);
                out.subscores.push(Some(points));
            }
            other => {
                out.total = None;
                out.subscores.push(None);
                match other {
                    Param::Missing => out.missing.push(name),
                    Param::Invalid => out.invalid.push(name),
                    _ => {}
                }
            }
        }
    }
    out
}

/// NEWS2 respiration rate points.
pub fn news2_resp_rate(x: f64) -> u8 {
    if x <= 8.0 {
        3
    } else if x <= 11.0 {
        1
    } else if x <= 20.0 {
        0
    } else if x <= 24.0 {
        2
    } else {
        3
    }
}

/// NEWS2 SpO2 Scale 1 points.
pub fn news2_spo2_scale1(x: f64) -> u8 {
    if x <= 91.0 {
        3
    } else if x <= 93.0 {
        2
    } else if x <= 95.0 {
        1
    } else {
        0
    }
}

/// NEWS2 SpO2 Scale 2 points; `None` when the answer depends on an unknown air/oxygen.
pub fn news2_spo2_scale2(x: f64, on_oxygen: Option<bool>) -> Option<u8> {
    if x <= 83.0 {
        Some(3)
    } else if x <= 85.0 {
        Some(2)
    } else if x <= 87.0 {
        Some(1)
    } else if x <= 92.0 {
        Some(0)
    } else {
        match on_oxygen? {
            false => Some(0),
            true if x <= 94.0 => Some(1),
            true if x <= 96.0 => Some(2),
            true => Some(3),
        }
    }
}

/// NEWS2 systolic blood pressure points.
pub fn news2_systolic_bp(x: f64) -> u8 {
    if x <= 90.0 {
        3
    } else if x <= 100.0 {
        2
    } else if x <= 110.0 {
        1
    } else if x <= 219.0 {
        0
    } else {
        3
    }
}

/// NEWS2 pulse points.
pub fn news2_heart_rate(x: f64) -> u8 {
    if x <= 40.0 {
        3
    } else if x <= 50.0 {
        1
    } else if x <= 90.0 {
        0
    } else if x <= 110.0 {
        1
    } else if x <= 130.0 {
        2
    } else {
        3
    }
}

/// NEWS2 temperature points.
pub fn news2_temperature(x: f64) -> u8 {
    if x <= 35.0 {
        3
    } else if x <= 36.0 {
        1
    } else if x <= 38.0 {
        0
    } else if x <= 39.0 {
        1
    } else {
        2
    }
}

/// NEWS2 of one row.
pub fn news2(row: &Row) -> RowScore {
    let spo2 = match row.spo2 {
        None => Param::Missing,
        Some(x) if !Vital::Spo2.plausible_range().contains(x) => Param::Invalid,
        Some(x) => match row.spo2_scale.unwrap_or(1.0) {
            1.0 => Param::Scored(news2_spo2_scale1(x)),
            2.0 => match news2_spo2_scale2(x, row.on_oxygen) {
                Some(p) => Param::Scored(p),
                None => Param::Undetermined,
            },
            _ => Param::Invalid,
        },
    };
    let oxygen = match row.on_oxygen {
        None => Param::Missing,
        Some(true) => Param::Scored(2),
        Some(false) => Param::Scored(0),
    };
    sheet(vec![
        (
            "resp_rate",
            numeric(row.resp_rate, Vital::RespRate, news2_resp_rate),
        ),
        ("spo2", spo2),
        ("air_or_oxygen", oxygen),
        (
            "systolic_bp",
            numeric(row.systolic_bp, Vital::SystolicBp, news2_systolic_bp),
        ),
        (
            "heart_rate",
            numeric(row.heart_rate, Vital::HeartRate, news2_heart_rate),
        ),
        (
            "consciousness",
            level(
                &row.consciousness,
                |l| if l == Acvpu::Alert { 0 } else { 3 },
            ),
        ),
        (
            "temperature",
            numeric(row.temperature, Vital::Temperature, news2_temperature),
        ),
    ])
}

/// The NEWS2 clinical risk band of one row's score, `None` when incomplete.
pub fn news2_band(score: &RowScore) -> Option<&'static str> {
    let total = score.total?;
    let any_three = score.subscores.contains(&Some(3));
    Some(if total >= 7 {
        "high"
    } else if total >= 5 {
        "medium"
    } else if any_three {
        "low-medium"
    } else {
        "low"
    })
}

/// qSOFA of one row.
pub fn qsofa(row: &Row) -> RowScore {
    sheet(vec![
        (
            "resp_rate",
            numeric(row.resp_rate, Vital::RespRate, |x| u8::from(x >= 22.0)),
        ),
        (
            "systolic_bp",
            numeric(row.systolic_bp, Vital::SystolicBp, |x| u8::from(x <= 100.0)),
        ),
        (
            "consciousness",
            level(&row.consciousness, |l| u8::from(l != Acvpu::Alert)),
        ),
    ])
}

/// SIRS vital-sign criteria of one row.
pub fn sirs(row: &Row) -> RowScore {
    sheet(vec![
        (
            "resp_rate",
            numeric(row.resp_rate, Vital::RespRate, |x| u8::from(x > 20.0)),
        ),
        (
            "heart_rate",
            numeric(row.heart_rate, Vital::HeartRate, |x| u8::from(x > 90.0)),
        ),
        (
            "temperature",
            numeric(row.temperature, Vital::Temperature, |x| {
                u8::from(!(36.0..=38.0).contains(&x))
            }),
        ),
    ])
}

/// MEWS of one row.
pub fn mews(row: &Row) -> RowScore {
    sheet(vec![
        (
            "resp_rate",
            numeric(row.resp_rate, Vital::RespRate, |x| {
                if x < 9.0 {
                    2
                } else if x <= 14.0 {
                    0
                } else if x <= 20.0 {
                    1
                } else if x <= 29.0 {
                    2
                } else {
                    3
                }
            }),
        ),
        (
            "systolic_bp",
            numeric(row.systolic_bp, Vital::SystolicBp, |x| {
                if x <= 70.0 {
                    3
                } else if x <= 80.0 {
                    2
                } else if x <= 100.0 {
                    1
                } else if x <= 199.0 {
                    0
                } else {
                    2
                }
            }),
        ),
        (
            "heart_rate",
            numeric(row.heart_rate, Vital::HeartRate, |x| {
                if x <= 40.0 {
                    2
                } else if x <= 50.0 {
                    1
                } else if x <= 100.0 {
                    0
                } else if x <= 110.0 {
                    1
                } else if x <= 129.0 {
                    2
                } else {
                    3
                }
            }),
        ),
        (
            "consciousness",
            level(&row.consciousness, |l| match l {
                Acvpu::Alert => 0,
                Acvpu::Confusion | Acvpu::Voice => 1,
                Acvpu::Pain => 2,
                Acvpu::Unresponsive => 3,
            }),
        ),
        (
            "temperature",
            numeric(row.temperature, Vital::Temperature, |x| {
                if x < 35.0 {
                    2
                } else if x <= 38.4 {
                    0
                } else {
                    2
                }
            }),
        ),
    ])
}
