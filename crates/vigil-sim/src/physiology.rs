//! A patient's physiology: a baseline per vital sign, slow variation around it,
//! and what a deterioration episode does to it as it progresses.
//!
//! Each continuous vital follows an Ornstein-Uhlenbeck process around its
//! baseline plus the episode's shift: it wanders (standard deviation and time
//! constant per vital below) and returns to its mean, so readings minutes apart
//! are correlated as real ones are, and a device adds its own measurement noise
//! on top.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The continuous vital signs the simulator models, in this order everywhere.
pub const VITALS: usize = 6;

/// Index of heart rate (beats/min) in a vitals array.
pub const HEART_RATE: usize = 0;
/// Index of respiration rate (breaths/min).
pub const RESP_RATE: usize = 1;
/// Index of SpO2 (%).
pub const SPO2: usize = 2;
/// Index of systolic blood pressure (mmHg).
pub const SYSTOLIC_BP: usize = 3;
/// Index of diastolic blood pressure (mmHg).
pub const DIASTOLIC_BP: usize = 4;
/// Index of temperature (°C).
pub const TEMPERATURE: usize = 5;

/// How each vital wanders around its mean: stationary standard deviation and
/// time constant (minutes).
const WANDER: [(f64, f64); VITALS] = [
    (4.0, 20.0),
    (1.2, 30.0),
    (0.8, 20.0),
    (6.0, 40.0),
    (4.0, 40.0),
    (0.15, 90.0),
];

/// Physiologically possible bounds: nothing the simulator produces (artefacts
/// aside) leaves them.
const BOUNDS: [(f64, f64); VITALS] = [
    (30.0, 220.0),
    (4.0, 60.0),
    (50.0, 100.0),
    (50.0, 250.0),
    (25.0, 150.0),
    (33.0, 42.0),
];

/// A patient's resting values, drawn once per patient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Means of heart rate, respiration, SpO2, systolic and diastolic pressure
    /// and temperature, in that order.
    pub means: [f64; VITALS],
    /// Chronic hypercapnic respiratory failure (COPD): SpO2 target 88-92 %,
    /// scored on NEWS2 SpO2 scale 2.
    pub hypercapnic: bool,
    /// On supplemental oxygen at rest.
    pub on_oxygen: bool,
}

impl Baseline {
    /// Draws a stable adult inpatient: heart rate N(78, 10) within 50-110,
    /// respiration N(16, 2) within 11-22, SpO2 N(96.5, 1.5) within 92-100 (a
    /// hypercapnic patient N(90, 1.5) within 86-93, half of them on oxygen),
    /// systolic N(128, 15) within 95-180, diastolic about 62 % of it, temperature
    /// N(36.8, 0.3) within 36.0-37.6.
    pub fn draw(rng: &mut impl Rng, hypercapnic_share: f64) -> Baseline {
        let hypercapnic = rng.random_bool(hypercapnic_share.clamp(0.0, 1.0));
        let systolic = normal(rng, 128.0, 15.0).clamp(95.0, 180.0);
        let spo2 = if hypercapnic {
            normal(rng, 90.0, 1.5).clamp(86.0, 93.0)
        } else {
            normal(rng, 96.5, 1.5).clamp(92.0, 100.0)
        };
        Baseline {
            means: [
                normal(rng, 78.0, 10.0).clamp(50.0, 110.0),
                normal(rng, 16.0, 2.0).clamp(11.0, 22.0),
                spo2,
                systolic,
                (systolic * normal(rng, 0.62, 0.04)).clamp(50.0, 110.0),
                normal(rng, 36.8, 0.3).clamp(36.0, 37.6),
            ],
            hypercapnic,
            on_oxygen: hypercapnic && rng.random_bool(0.5),
        }
    }
}

/// The kinds of deterioration the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EpisodeKind {
    /// Infection turning septic: fever (or hypothermia), tachycardia, tachypnoea,
    /// falling pressure, then new confusion.
    Sepsis,
    /// Respiratory failure: tachypnoea and falling saturation; oxygen is started
    /// halfway and slows, but does not stop, the fall.
    RespiratoryFailure,
    /// Bleeding: rising heart rate and falling pressure, fast; drowsy at the end.
    Haemorrhage,
}

impl EpisodeKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EpisodeKind; 3] = [
        EpisodeKind::Sepsis,
        EpisodeKind::RespiratoryFailure,
        EpisodeKind::Haemorrhage,
    ];

    /// The label used in ground truth.
    pub fn label(self) -> &'static str {
        match self {
            EpisodeKind::Sepsis => "sepsis",
            EpisodeKind::RespiratoryFailure => "respiratory_failure",
            EpisodeKind::Haemorrhage => "haemorrhage",
        }
    }

    /// Range of hours from onset to the clinical event (the moment the patient
    /// needs rescue: critical care, a rapid response call).
    pub fn hours_to_event(self) -> (f64, f64) {
        match self {
            EpisodeKind::Sepsis => (4.0, 10.0),
            EpisodeKind::RespiratoryFailure => (2.0, 8.0),
            EpisodeKind::Haemorrhage => (1.0, 4.0),
        }
    }

    /// Shift of each vital at the event (progress 1); `hypothermic` turns a
    /// septic fever into a fall in temperature.
    fn shift_at_event(self, hypothermic: bool) -> [f64; VITALS] {
        match self {
            EpisodeKind::Sepsis => [
                45.0,
                12.0,
                -4.0,
                -45.0,
                -25.0,
                if hypothermic { -1.8 } else { 2.2 },
            ],
            EpisodeKind::RespiratoryFailure => [25.0, 16.0, -14.0, 5.0, 3.0, 0.5],
            EpisodeKind::Haemorrhage => [50.0, 8.0, -2.0, -60.0, -30.0, -0.4],
        }
    }
}

/// An episode's course: how far it has gone at a time, and what that does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Course {
    /// The kind of episode.
    pub kind: EpisodeKind,
    /// Onset (ms since the epoch): the first change in physiology.
    pub onset_ms: i64,
    /// The clinical event (ms since the epoch), when the shift is complete.
    pub event_ms: i64,
    /// Sepsis with hypothermia instead of fever.
    pub hypothermic: bool,
}

/// Hours after the event over which treatment brings the patient back.
pub const RECOVERY_HOURS: f64 = 6.0;

impl Course {
    /// Progress at `t_ms`: 0 before onset, rising (slowly at first, the way early
    /// signs are subtle) to 1 at the event, then falling back to 0 over the
    /// recovery after treatment.
    pub fn progress(&self, t_ms: i64) -> f64 {
        if t_ms <= self.onset_ms {
            return 0.0;
        }
        if t_ms <= self.event_ms {
            let span = (self.event_ms - self.onset_ms).max(1) as f64;
            return ((t_ms - self.onset_ms) as f64 / span).powf(1.5);
        }
        let after = (t_ms - self.event_ms) as f64 / 3_600_000.0;
        (1.0 - after / RECOVERY_HOURS).max(0.0)
    }

    /// The shift of each vital's mean at `t_ms`.
    pub fn shift(&self, t_ms: i64) -> [f64; VITALS] {
        let p = self.progress(t_ms);
        let mut shift = self.kind.shift_at_event(self.hypothermic);
        for s in &mut shift {
            *s *= p;
        }
        if self.kind == EpisodeKind::RespiratoryFailure && self.oxygen(t_ms) {
            // Oxygen started: saturation recovers part of what it lost.
            shift[SPO2] *= 0.6;
        }
        shift
    }

    /// Whether the episode has put the patient on oxygen by `t_ms`.
    pub fn oxygen(&self, t_ms: i64) -> bool {
        self.kind == EpisodeKind::RespiratoryFailure && self.progress(t_ms) >= 0.5
    }

    /// The consciousness level the episode causes at `t_ms`: new confusion late in
    /// sepsis, responding to voice only at the end of a haemorrhage.
    pub fn consciousness(&self, t_ms: i64) -> char {
        let p = self.progress(t_ms);
        match self.kind {
            EpisodeKind::Sepsis if p >= 0.75 => 'C',
            EpisodeKind::Haemorrhage if p >= 0.9 => 'V',
            EpisodeKind::RespiratoryFailure if p >= 0.95 => 'C',
            _ => 'A',
        }
    }
}

/// The current value of each vital of one patient, wandering around its mean.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Deviation from the mean, per vital.
    deviation: [f64; VITALS],
    /// When each deviation was last advanced (ms).
    at: [i64; VITALS],
}

impl State {
    /// A state starting at the mean at `t_ms`, with a deviation drawn from the
    /// stationary spread.
    pub fn new(rng: &mut impl Rng, t_ms: i64) -> State {
        let mut deviation = [0.0; VITALS];
        for (d, (sd, _)) in deviation.iter_mut().zip(WANDER) {
            *d = normal(rng, 0.0, sd);
        }
        State {
            deviation,
            at: [t_ms; VITALS],
        }
    }

    /// The true value of vital `v` at `t_ms` (not before the last call for `v`):
    /// the baseline, the episode's shift and the wandering deviation advanced to
    /// `t_ms`, within physiological bounds.
    pub fn value(
        &mut self,
        rng: &mut impl Rng,
        v: usize,
        t_ms: i64,
        baseline: &Baseline,
        course: Option<&Course>,
    ) -> f64 {
        let (sd, tau_min) = WANDER[v];
        let dt_min = (t_ms - self.at[v]).max(0) as f64 / 60_000.0;
        let keep = (-dt_min / tau_min).exp();
        self.deviation[v] =
            self.deviation[v] * keep + sd * (1.0 - keep * keep).sqrt() * standard(rng);
        self.at[v] = t_ms;
        let shift = course.map_or(0.0, |c| c.shift(t_ms)[v]);
        let (lo, hi) = BOUNDS[v];
        (baseline.means[v] + shift + self.deviation[v]).clamp(lo, hi)
    }
}

/// A draw from N(mean, sd).
pub fn normal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    mean + sd * standard(rng)
}

fn standard(rng: &mut impl Rng) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn course(kind: EpisodeKind) -> Course {
        Course {
            kind,
            onset_ms: 0,
            event_ms: 4 * HOUR,
            hypothermic: false,
        }
    }

    #[test]
    fn progress_rises_to_the_event_and_recovers_after() {
        let c = course(EpisodeKind::Sepsis);
        assert_eq!(c.progress(-1), 0.0);
        assert!(c.progress(HOUR) > 0.0 && c.progress(HOUR) < 0.25);
        assert_eq!(c.progress(4 * HOUR), 1.0);
        assert!((c.progress(7 * HOUR) - 0.5).abs() < 1e-9);
        assert_eq!(c.progress(11 * HOUR), 0.0);
    }

    #[test]
    fn each_kind_moves_the_vitals_it_should() {
        let at = 4 * HOUR;
        let sepsis = course(EpisodeKind::Sepsis).shift(at);
        assert!(sepsis[HEART_RATE] > 30.0 && sepsis[SYSTOLIC_BP] < -30.0);
        assert!(sepsis[TEMPERATURE] > 1.5);
        let cold = Course {
            hypothermic: true,
            ..course(EpisodeKind::Sepsis)
        };
        assert!(cold.shift(at)[TEMPERATURE] < -1.0);
        let resp = course(EpisodeKind::RespiratoryFailure);
        assert!(resp.shift(at)[RESP_RATE] > 10.0 && resp.shift(at)[SPO2] < -5.0);
        assert!(resp.oxygen(at) && !resp.oxygen(HOUR));
        let bleed = course(EpisodeKind::Haemorrhage);
        assert!(bleed.shift(at)[SYSTOLIC_BP] < -50.0);
        assert_eq!(bleed.consciousness(at), 'V');
        assert_eq!(course(EpisodeKind::Sepsis).consciousness(at), 'C');
        assert_eq!(course(EpisodeKind::Sepsis).consciousness(HOUR), 'A');
    }

    #[test]
    fn the_wander_stays_near_its_spread_and_within_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let baseline = Baseline::draw(&mut rng, 0.0);
        let mut state = State::new(&mut rng, 0);
        let values: Vec<f64> = (0..20_000)
            .map(|i| state.value(&mut rng, HEART_RATE, i * 60_000, &baseline, None))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        assert!((mean - baseline.means[HEART_RATE]).abs() < 1.0, "{mean}");
        assert!((sd - 4.0).abs() < 0.6, "{sd}");
        let mut state = State::new(&mut rng, 0);
        let worst = course(EpisodeKind::Haemorrhage);
        for i in 0..1000 {
            let v = state.value(&mut rng, SYSTOLIC_BP, i * 15_000, &baseline, Some(&worst));
            assert!((50.0..=250.0).contains(&v));
        }
    }
}
