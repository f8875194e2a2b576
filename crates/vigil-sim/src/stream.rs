//! The simulation as a stream of device readings in the order they arrive.
//!
//! Every device has a schedule (a monitor every few seconds, a cuff every 15-60
//! minutes, the nurse at each round); the next reading is always the one of the
//! device due first. A reading is delivered after a latency, some much later
//! (held back by a gateway), some twice; readings are yielded in delivery order,
//! so delayed ones arrive out of order, as they do from real devices. Memory is
//! one entry per device plus the readings still in flight, whatever the length
//! of the run.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cohort::{CohortConfig, Episode, Patient, episodes, patients};
use crate::physiology::{
    DIASTOLIC_BP, HEART_RATE, RESP_RATE, SPO2, SYSTOLIC_BP, State, TEMPERATURE,
};

const SECOND_MS: f64 = 1_000.0;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: f64 = 86_400_000.0;

/// What kind of device took a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Bedside monitor: heart rate, SpO2, respiration.
    Monitor,
    /// Wearable patch: heart rate, SpO2, respiration, less often.
    Wearable,
    /// Automatic blood-pressure cuff: systolic and diastolic pressure.
    Cuff,
    /// The nurse at a round: temperature, consciousness, counted respiration.
    Nurse,
}

impl DeviceKind {
    /// The prefix of this kind's device identifiers.
    pub fn prefix(self) -> &'static str {
        match self {
            DeviceKind::Monitor => "mon",
            DeviceKind::Wearable => "wear",
            DeviceKind::Cuff => "cuff",
            DeviceKind::Nurse => "round",
        }
    }
}

/// The values one reading carries; absent means not measured by this device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    /// Beats/min.
    pub heart_rate: Option<f64>,
    /// Breaths/min.
    pub resp_rate: Option<f64>,
    /// %.
    pub spo2: Option<f64>,
    /// NEWS2 SpO2 scale (2 for a hypercapnic patient).
    pub spo2_scale: Option<u8>,
    /// On supplemental oxygen.
    pub on_oxygen: Option<bool>,
    /// mmHg.
    pub systolic_bp: Option<f64>,
    /// mmHg.
    pub diastolic_bp: Option<f64>,
    /// °C.
    pub temperature: Option<f64>,
    /// ACVPU letter.
    pub consciousness: Option<char>,
}

/// One device reading as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When it arrives (true time, ms since the epoch).
    pub delivered_at_ms: i64,
    /// When it was taken, by the device's clock (which may be off).
    pub observed_at_ms: i64,
    /// When it was taken, true time.
    pub true_at_ms: i64,
    /// The patient's position in the cohort.
    pub patient: usize,
    /// The patient's ward.
    pub ward: usize,
    /// The device's number in the cohort.
    pub device: usize,
    /// The device's kind.
    pub kind: DeviceKind,
    /// What it measured.
    pub values: Values,
    /// Spoiled by motion (values not the patient's).
    pub artefact: bool,
    /// A second delivery of a reading already delivered.
    pub duplicate: bool,
}

/// A device and its schedule.
#[derive(Debug, Clone)]
struct Device {
    patient: usize,
    kind: DeviceKind,
    every_ms: i64,
    skew_ms: i64,
    /// Readings before this time are lost (a dropout).
    gap_until: i64,
}

/// A reading in flight, ordered by delivery time then by when it was sent.
#[derive(Debug)]
struct InFlight {
    key: (i64, u64),
    reading: Reading,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// A running simulation: an iterator of readings in delivery order.
#[derive(Debug)]
pub struct Simulation {
    config: CohortConfig,
    rng: ChaCha8Rng,
    patients: Vec<Patient>,
    states: Vec<State>,
    devices: Vec<Device>,
    due: BinaryHeap<Reverse<(i64, usize)>>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    sent: u64,
    end_ms: i64,
}

impl Simulation {
    /// Draws the cohort of `config` and schedules its devices.
    pub fn new(config: CohortConfig) -> Simulation {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let patients = patients(&config, &mut rng);
        let states = patients
            .iter()
            .map(|_| State::new(&mut rng, config.start_ms))
            .collect();
        let mut devices = Vec::with_capacity(patients.len() * 3);
        let faults = &config.faults;
        for p in &patients {
            let (kind, every_s) = if p.monitored {
                (DeviceKind::Monitor, config.monitor_every_s)
            } else {
                (DeviceKind::Wearable, config.wearable_every_s)
            };
            for (kind, every_ms) in [
                (kind, every_s * SECOND_MS),
                (DeviceKind::Cuff, p.cuff_every_min * MINUTE_MS as f64),
                (DeviceKind::Nurse, config.round_every_h * 3_600_000.0),
            ] {
                let skew_s = if kind != DeviceKind::Nurse
                    && rng.random_bool(faults.skewed_devices.clamp(0.0, 1.0))
                {
                    let max = faults.max_skew_s.abs();
                    rng.random_range(-max..=max)
                } else {
                    0.0
                };
                devices.push(Device {
                    patient: p.index,
                    kind,
                    every_ms: (every_ms as i64).max(1),
                    skew_ms: (skew_s * SECOND_MS) as i64,
                    gap_until: i64::MIN,
                });
            }
        }
        // Devices start at random points of their period, not all at once.
        let due = devices
            .iter()
            .enumerate()
            .map(|(d, device)| Reverse((config.start_ms + rng.random_range(0..device.every_ms), d)))
            .collect();
        let end_ms = config.start_ms.saturating_add(config.duration_ms.max(0));
        Simulation {
            config,
            rng,
            patients,
            states,
            devices,
            due,
            in_flight: BinaryHeap::new(),
            sent: 0,
            end_ms,
        }
    }

    /// The cohort's patients.
    pub fn patients(&self) -> &[Patient] {
        &self.patients
    }

    /// The ground truth: every deterioration episode of the cohort.
    pub fn episodes(&self) -> Vec<Episode> {
        episodes(&self.patients)
    }

    /// Number of devices (monitors or wearables, cuffs, and one nursing round per
    /// patient).
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Takes the reading of device `d` at true time `t` and sends it on its way,
    /// unless the device is in a dropout.
    fn take(&mut self, d: usize, t: i64) {
        let device = self.devices[d].clone();
        let faults = self.config.faults.clone();
        if device.kind != DeviceKind::Nurse {
            if t < device.gap_until {
                return;
            }
            let p_gap = faults.dropouts_per_day * device.every_ms as f64 / DAY_MS;
            if self.rng.random_bool(p_gap.clamp(0.0, 1.0)) {
                let minutes = self.rng.random_range(5..=30);
                self.devices[d].gap_until = t + minutes * MINUTE_MS;
                return;
            }
        }
        let (values, artefact) = self.measure(&device, t);
        let patient = &self.patients[device.patient];
        let (lo, hi) = faults.latency_ms;
        let mut delivered = t + if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo.max(0)
        };
        if self.rng.random_bool(faults.delayed.clamp(0.0, 1.0)) {
            delivered += self.rng.random_range(10_000..=600_000);
        }
        let reading = Reading {
            delivered_at_ms: delivered,
            observed_at_ms: t + device.skew_ms,
            true_at_ms: t,
            patient: device.patient,
            ward: patient.ward,
            device: d,
            kind: device.kind,
            values,
            artefact,
            duplicate: false,
        };
        if self.rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            let again = Reading {
                delivered_at_ms: delivered + self.rng.random_range(0..=2_000),
                duplicate: true,
                ..reading.clone()
            };
            self.send(again);
        }
        self.send(reading);
    }

    fn send(&mut self, reading: Reading) {
        self.sent += 1;
        self.in_flight.push(Reverse(InFlight {
            key: (reading.delivered_at_ms, self.sent),
            reading,
        }));
    }

    /// What `device` measures at `t`, rounded as devices report it, and whether
    /// motion spoiled it.
    fn measure(&mut self, device: &Device, t: i64) -> (Values, bool) {
        let patient = &self.patients[device.patient];
        let (baseline, course) = (patient.baseline, patient.course);
        let course = course.as_ref();
        let state = &mut self.states[device.patient];
        let rng = &mut self.rng;
        let on_oxygen = baseline.on_oxygen || course.is_some_and(|c| c.oxygen(t));
        let scale = baseline.hypercapnic.then_some(2);
        let mut values = Values::default();
        let mut artefact = false;
        let mut noisy = |rng: &mut ChaCha8Rng, v: usize, sd: f64| {
            let truth = state.value(rng, v, t, &baseline, course);
            truth + crate::physiology::normal(rng, 0.0, sd)
        };
        match device.kind {
            DeviceKind::Monitor | DeviceKind::Wearable => {
                let mut hr = noisy(rng, HEART_RATE, 1.5);
                let mut spo2 = noisy(rng, SPO2, 0.5);
                let rr = noisy(rng, RESP_RATE, 0.8);
                if rng.random_bool(self.config.faults.artefact.clamp(0.0, 1.0)) {
                    artefact = true;
                    spo2 -= rng.random_range(10.0..=25.0);
                    hr += rng.random_range(30.0..=60.0);
                }
                values.heart_rate = Some(hr.round().max(20.0));
                values.spo2 = Some(spo2.round().clamp(40.0, 100.0));
                values.resp_rate = Some(rr.round().max(4.0));
                values.spo2_scale = scale;
                values.on_oxygen = Some(on_oxygen);
            }
            DeviceKind::Cuff => {
                let sys = noisy(rng, SYSTOLIC_BP, 4.0);
                let dia = noisy(rng, DIASTOLIC_BP, 3.0).min(sys - 10.0);
                values.systolic_bp = Some(sys.round());
                values.diastolic_bp = Some(dia.round());
            }
            DeviceKind::Nurse => {
                let temp = noisy(rng, TEMPERATURE, 0.1);
                let rr = noisy(rng, RESP_RATE, 1.0);
                values.temperature = Some((temp * 10.0).round() / 10.0);
                values.resp_rate = Some(rr.round().max(4.0));
                values.consciousness = Some(course.map_or('A', |c| c.consciousness(t)));
                values.on_oxygen = Some(on_oxygen);
                values.spo2_scale = scale;
            }
        }
        (values, artefact)
    }
}

impl Iterator for Simulation {
    type Item = Reading;

    fn next(&mut self) -> Option<Reading> {
        loop {
            let next_due = self
                .due
                .peek()
                .map(|Reverse((t, _))| *t)
                .filter(|&t| t < self.end_ms);
            // Every reading still to be taken arrives at or after its time, so
            // one in flight that arrives before the next is due goes first.
            if let Some(Reverse(first)) = self.in_flight.peek()
                && next_due.is_none_or(|t| first.key.0 <= t)
            {
                return self.in_flight.pop().map(|Reverse(f)| f.reading);
            }
            let t = next_due?;
            let Reverse((_, d)) = self.due.pop()?;
            self.take(d, t);
            self.due.push(Reverse((t + self.devices[d].every_ms, d)));
        }
    }
}
