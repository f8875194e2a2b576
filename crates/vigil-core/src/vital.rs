//! The numeric vital signs: their units and physiologically plausible ranges.
//!
//! A value outside its plausible range is not a very abnormal patient, it is a device
//! fault, a unit mix-up (Fahrenheit sent as Celsius) or a typing error. Scores never
//! treat such a value as a measurement: they report it as *invalid* and leave the
//! parameter unscored. The ranges are deliberately wide, so that every value a living
//! patient can truly show (including the extremes that score 3 in NEWS2) is accepted.

use crate::schema::fields;

/// An inclusive range `[min, max]` of physiologically plausible values of one vital.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlausibleRange {
    /// Smallest plausible value (inclusive).
    pub min: f64,
    /// Largest plausible value (inclusive).
    pub max: f64,
}

impl PlausibleRange {
    /// Whether `x` is a plausible measurement: finite and within `[min, max]`.
    /// NaN and infinities are never plausible.
    #[inline(always)]
    pub fn contains(&self, x: f64) -> bool {
        x >= self.min && x <= self.max
    }
}

/// A numeric vital sign of the canonical schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vital {
    /// Respiration rate, breaths/min; plausible 1-80.
    RespRate,
    /// Peripheral oxygen saturation, %; plausible 40-100.
    Spo2,
    /// Systolic blood pressure, mmHg; plausible 30-300.
    SystolicBp,
    /// Diastolic blood pressure, mmHg; plausible 10-250.
    DiastolicBp,
    /// Heart (pulse) rate, beats/min; plausible 20-300.
    HeartRate,
    /// Body temperature, degrees Celsius; plausible 25-45.
    Temperature,
}

impl Vital {
    /// Every numeric vital, in schema order.
    pub const ALL: [Vital; 6] = [
        Vital::RespRate,
        Vital::Spo2,
        Vital::SystolicBp,
        Vital::DiastolicBp,
        Vital::HeartRate,
        Vital::Temperature,
    ];

    /// The column / JSON field name of this vital.
    pub const fn field_name(self) -> &'static str {
        match self {
            Vital::RespRate => fields::RESP_RATE,
            Vital::Spo2 => fields::SPO2,
            Vital::SystolicBp => fields::SYSTOLIC_BP,
            Vital::DiastolicBp => fields::DIASTOLIC_BP,
            Vital::HeartRate => fields::HEART_RATE,
            Vital::Temperature => fields::TEMPERATURE,
        }
    }

    /// The unit the value is expressed in (UCUM code).
    pub const fn unit(self) -> &'static str {
        match self {
            Vital::RespRate => "/min",
            Vital::Spo2 => "%",
            Vital::SystolicBp | Vital::DiastolicBp => "mm[Hg]",
            Vital::HeartRate => "/min",
            Vital::Temperature => "Cel",
        }
    }

    /// The physiologically plausible range of this vital.
    ///
    /// Chosen so that every value seen in a living patient, however ill, is inside:
    /// respiration 1-80/min, SpO2 40-100 %, systolic 30-300 mmHg, diastolic 10-250 mmHg,
    /// heart rate 20-300/min, temperature 25-45 °C. A heart rate of 0 or 400, an SpO2
    /// of 130 or a temperature of 10 °C are outside and so invalid.
    pub const fn plausible_range(self) -> PlausibleRange {
        let (min, max) = match self {
            Vital::RespRate => (1.0, 80.0),
            Vital::Spo2 => (40.0, 100.0),
            Vital::SystolicBp => (30.0, 300.0),
            Vital::DiastolicBp => (10.0, 250.0),
            Vital::HeartRate => (20.0, 300.0),
            Vital::Temperature => (25.0, 45.0),
        };
        PlausibleRange { min, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples_of_invalid_values_are_rejected() {
        assert!(!Vital::HeartRate.plausible_range().contains(0.0));
        assert!(!Vital::HeartRate.plausible_range().contains(400.0));
        assert!(!Vital::Spo2.plausible_range().contains(130.0));
        assert!(!Vital::Temperature.plausible_range().contains(10.0));
    }

    #[test]
    fn range_edges_are_inclusive_and_non_finite_is_never_plausible() {
        for v in Vital::ALL {
            let r = v.plausible_range();
            assert!(r.contains(r.min) && r.contains(r.max), "{v:?}");
            assert!(!r.contains(f64::NAN) && !r.contains(f64::INFINITY), "{v:?}");
            assert!(!r.contains(f64::NEG_INFINITY), "{v:?}");
        }
    }

    #[test]
    fn extreme_but_real_values_stay_plausible() {
        // Values that score the maximum in NEWS2 must still be scoreable.
        assert!(Vital::RespRate.plausible_range().contains(6.0));
        assert!(Vital::RespRate.plausible_range().contains(40.0));
        assert!(Vital::Spo2.plausible_range().contains(70.0));
        assert!(Vital::SystolicBp.plausible_range().contains(60.0));
        assert!(Vital::SystolicBp.plausible_range().contains(240.0));
        assert!(Vital::HeartRate.plausible_range().contains(35.0));
        assert!(Vital::HeartRate.plausible_range().contains(180.0));
        assert!(Vital::Temperature.plausible_range().contains(34.0));
        assert!(Vital::Temperature.plausible_range().contains(41.0));
    }
}
