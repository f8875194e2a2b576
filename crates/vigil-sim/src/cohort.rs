//! A cohort: its configuration, its patients with their baselines and wards, and
//! the deterioration episodes (the ground truth an evaluation scores alerts
//! against).

use rand::Rng;

use crate::physiology::{Baseline, Course, EpisodeKind, RECOVERY_HOURS};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// What to simulate. Every field has a documented default ([`Default`]); the same
/// configuration and seed give the same stream, reading for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortConfig {
    /// Seed of the whole simulation.
    pub seed: u64,
    /// Patients in the cohort (default 100).
    pub patients: usize,
    /// Wards they are spread over, evenly (default 4).
    pub wards: usize,
    /// Start of simulated time, ms since the epoch (default 2026-11-24T00:00Z).
    pub start_ms: i64,
    /// Length of simulated time, ms (default 24 hours).
    pub duration_ms: i64,
    /// Share of patients who deteriorate during the run (default 0.1).
    pub episode_share: f64,
    /// Share of patients with chronic hypercapnic respiratory failure, scored on
    /// NEWS2 SpO2 scale 2 (default 0.05).
    pub hypercapnic_share: f64,
    /// Share of patients on a bedside monitor; the others wear a wearable
    /// (default 0.3).
    pub monitored_share: f64,
    /// Seconds between a bedside monitor's readings of heart rate, SpO2 and
    /// respiration (default 5).
    pub monitor_every_s: f64,
    /// Seconds between a wearable's readings (default 15).
    pub wearable_every_s: f64,
    /// Range of minutes between automatic blood-pressure cuff readings, drawn per
    /// patient (default 15 to 60).
    pub cuff_every_min: (f64, f64),
    /// Hours between nursing rounds: temperature, consciousness, counted
    /// respiration, oxygen (default 4).
    pub round_every_h: f64,
    /// Device and network faults.
    pub faults: Faults,
}

impl Default for CohortConfig {
    fn default() -> CohortConfig {
        CohortConfig {
            seed: 0,
            patients: 100,
            wards: 4,
            start_ms: 1_795_478_400_000,
            duration_ms: 24 * HOUR_MS,
            episode_share: 0.1,
            hypercapnic_share: 0.05,
            monitored_share: 0.3,
            monitor_every_s: 5.0,
            wearable_every_s: 15.0,
            cuff_every_min: (15.0, 60.0),
            round_every_h: 4.0,
            faults: Faults::default(),
        }
    }
}

/// The faults real devices and networks have, each with its rate. Defaults are
/// those of a busy ward; [`Faults::none`] gives a clean stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Share of monitor and wearable readings spoiled by motion: SpO2 dips 10-25
    /// points and heart rate jumps 30-60 beats (default 0.002).
    pub artefact: f64,
    /// Dropouts (device off, out of range) per device and day, each lasting 5 to
    /// 30 minutes (default 1).
    pub dropouts_per_day: f64,
    /// Share of messages delivered twice, the copy up to 2 s later (default 0.005).
    pub duplicate: f64,
    /// Share of messages held back 10 s to 10 min by a gateway, so that they
    /// arrive out of order (default 0.01).
    pub delayed: f64,
    /// Range of ordinary delivery latency, ms (default 50 to 500; readings close
    /// together may swap places).
    pub latency_ms: (i64, i64),
    /// Share of devices whose clock is off (default 0.05).
    pub skewed_devices: f64,
    /// Largest clock error of such a device, either way, seconds (default 300).
    pub max_skew_s: f64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            artefact: 0.002,
            dropouts_per_day: 1.0,
            duplicate: 0.005,
            delayed: 0.01,
            latency_ms: (50, 500),
            skewed_devices: 0.05,
            max_skew_s: 300.0,
        }
    }
}

impl Faults {
    /// No faults at all, and no latency: every reading delivered once, when taken,
    /// by a device with a right clock.
    pub fn none() -> Faults {
        Faults {
            artefact: 0.0,
            dropouts_per_day: 0.0,
            duplicate: 0.0,
            delayed: 0.0,
            latency_ms: (0, 0),
            skewed_devices: 0.0,
            max_skew_s: 0.0,
        }
    }
}

/// A deterioration episode, as ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The patient's identifier.
    pub patient_id: String,
    /// The patient's ward.
    pub ward: String,
    /// What happens.
    pub kind: EpisodeKind,
    /// First change in physiology, ms since the epoch.
    pub onset_ms: i64,
    /// The clinical event (rescue needed), ms since the epoch; may fall after the
    /// end of the run.
    pub event_ms: i64,
}

impl Episode {
    /// When the patient is back to baseline after treatment ([`RECOVERY_HOURS`]
    /// after the event), ms since the epoch: until then the patient's vital
    /// signs are abnormal for a reason, and alerts about them are not false.
    pub fn recovered_ms(&self) -> i64 {
        self.event_ms + (RECOVERY_HOURS * HOUR_MS as f64) as i64
    }
}

/// One simulated patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    /// Position in the cohort.
    pub index: usize,
    /// Ward number.
    pub ward: usize,
    /// Resting physiology.
    pub baseline: Baseline,
    /// Monitored at the bedside (else by a wearable).
    pub monitored: bool,
    /// Minutes between blood-pressure readings.
    pub cuff_every_min: f64,
    /// The patient's deterioration, if any.
    pub course: Option<Course>,
}

impl Patient {
    /// The patient's identifier in messages.
    pub fn id(&self) -> String {
        patient_id(self.index)
    }
}

/// The identifier of patient `index`: `p` and six digits.
pub fn patient_id(index: usize) -> String {
    format!("p{index:06}")
}

/// The name of ward `index`: `w` and two digits.
pub fn ward_name(index: usize) -> String {
    format!("w{index:02}")
}

/// Draws the cohort's patients.
pub fn patients(config: &CohortConfig, rng: &mut impl Rng) -> Vec<Patient> {
    let wards = config.wards.max(1);
    let (cuff_lo, cuff_hi) = ordered(config.cuff_every_min);
    (0..config.patients)
        .map(|index| {
            let baseline = Baseline::draw(rng, config.hypercapnic_share);
            let monitored = rng.random_bool(config.monitored_share.clamp(0.0, 1.0));
            let cuff_every_min = rng.random_range(cuff_lo..=cuff_hi);
            let course = rng
                .random_bool(config.episode_share.clamp(0.0, 1.0))
                .then(|| course(config, rng));
            Patient {
                index,
                ward: index % wards,
                baseline,
                monitored,
                cuff_every_min,
                course,
            }
        })
        .collect()
}

/// An episode starting between 30 minutes into the run and its end; the kind
/// weighted sepsis 45 %, respiratory failure 35 %, haemorrhage 20 %.
fn course(config: &CohortConfig, rng: &mut impl Rng) -> Course {
    let kind = match rng.random_range(0..20) {
        0..=8 => EpisodeKind::Sepsis,
        9..=15 => EpisodeKind::RespiratoryFailure,
        _ => EpisodeKind::Haemorrhage,
    };
    let earliest = config.start_ms + 30 * MINUTE_MS;
    let latest = (config.start_ms + config.duration_ms).max(earliest + 1);
    let onset_ms = rng.random_range(earliest..latest);
    let (lo, hi) = kind.hours_to_event();
    let hours = rng.random_range(lo..=hi);
    Course {
        kind,
        onset_ms,
        event_ms: onset_ms + (hours * HOUR_MS as f64) as i64,
        hypothermic: kind == EpisodeKind::Sepsis && rng.random_bool(0.2),
    }
}

/// The ground truth: every patient's episode.
pub fn episodes(patients: &[Patient]) -> Vec<Episode> {
    patients
        .iter()
        .filter_map(|p| {
            p.course.map(|c| Episode {
                patient_id: p.id(),
                ward: ward_name(p.ward),
                kind: c.kind,
                onset_ms: c.onset_ms,
                event_ms: c.event_ms,
            })
        })
        .collect()
}

fn ordered((a, b): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo.max(1.0), hi.max(1.0))
}
