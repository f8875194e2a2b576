//! Builders shared by the score tests.

use arrow::array::{Array, BooleanArray, Float64Array, StringArray};
use vigil_scores::Sheet;
use vigil_scores::input::{Flag, Num, Text};
use vigil_scores::mews::{MewsInputs, mews};
use vigil_scores::news2::{News2Inputs, news2};
use vigil_scores::qsofa::{QsofaInputs, qsofa};
use vigil_scores::reference::Row;
use vigil_scores::sirs::{SirsInputs, sirs};

/// A row whose every NEWS2 parameter scores 0.
pub fn normal() -> Row {
    Row {
        resp_rate: Some(14.0),
        spo2: Some(97.0),
        spo2_scale: Some(1.0),
        on_oxygen: Some(false),
        systolic_bp: Some(120.0),
        heart_rate: Some(70.0),
        consciousness: Some("A".into()),
        temperature: Some(37.0),
    }
}

/// Rows as Arrow columns.
pub struct Columns {
    pub rr: Float64Array,
    pub spo2: Float64Array,
    pub scale: Float64Array,
    pub oxygen: BooleanArray,
    pub sbp: Float64Array,
    pub hr: Float64Array,
    pub consciousness: StringArray,
    pub temp: Float64Array,
}

impl Columns {
    pub fn of(rows: &[Row]) -> Columns {
        let f = |get: fn(&Row) -> Option<f64>| rows.iter().map(get).collect::<Float64Array>();
        Columns {
            rr: f(|r| r.resp_rate),
            spo2: f(|r| r.spo2),
            scale: f(|r| r.spo2_scale),
            oxygen: rows.iter().map(|r| r.on_oxygen).collect(),
            sbp: f(|r| r.systolic_bp),
            hr: f(|r| r.heart_rate),
            consciousness: rows.iter().map(|r| r.consciousness.as_deref()).collect(),
            temp: f(|r| r.temperature),
        }
    }

    pub fn rows(&self) -> usize {
        self.rr.len()
    }

    pub fn news2(&self) -> Sheet {
        news2(
            &News2Inputs {
                resp_rate: Num::Array(&self.rr),
                spo2: Num::Array(&self.spo2),
                spo2_scale: Num::Array(&self.scale),
                on_oxygen: Flag::Array(&self.oxygen),
                systolic_bp: Num::Array(&self.sbp),
                heart_rate: Num::Array(&self.hr),
                consciousness: Text::Utf8(&self.consciousness),
                temperature: Num::Array(&self.temp),
            },
            self.rows(),
        )
    }

    pub fn qsofa(&self) -> Sheet {
        qsofa(
            &QsofaInputs {
                resp_rate: Num::Array(&self.rr),
                systolic_bp: Num::Array(&self.sbp),
                consciousness: Text::Utf8(&self.consciousness),
            },
            self.rows(),
        )
    }

    pub fn mews(&self) -> Sheet {
        mews(
            &MewsInputs {
                resp_rate: Num::Array(&self.rr),
                systolic_bp: Num::Array(&self.sbp),
                heart_rate: Num::Array(&self.hr),
                consciousness: Text::Utf8(&self.consciousness),
                temperature: Num::Array(&self.temp),
            },
            self.rows(),
        )
    }

    pub fn sirs(&self) -> Sheet {
        sirs(
            &SirsInputs {
                resp_rate: Num::Array(&self.rr),
                heart_rate: Num::Array(&self.hr),
                temperature: Num::Array(&self.temp),
            },
            self.rows(),
        )
    }
}

/// The sub-score of `parameter` in every row (None where unscored).
pub fn subscores(sheet: &Sheet, parameter: &str) -> Vec<Option<u8>> {
    let p = sheet
        .params()
        .iter()
        .find(|p| p.parameter() == parameter)
        .unwrap_or_else(|| panic!("no parameter {parameter}"));
    (0..sheet.rows())
        .map(|i| p.is_scored(i).then(|| p.points()[i]))
        .collect()
}

/// The aggregate of every row.
pub fn totals(sheet: &Sheet) -> Vec<Option<u8>> {
    let t = sheet.total();
    (0..t.len())
        .map(|i| t.is_valid(i).then(|| t.value(i)))
        .collect()
}
