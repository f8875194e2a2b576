//! The simulator: deterministic for a seed, readings in delivery order at the
//! documented rates, cohort statistics in their documented ranges, episodes that
//! move the vitals they should, faults at their rates, and messages vigil's own
//! decoders accept.

use std::collections::HashMap;

use vigil_core::schema::vitals_schema;
use vigil_core::time::TimeBounds;
use vigil_formats::{RowsJsonDecoder, VitalsJsonDecoder};
use vigil_sim::json::{self, Shape};
use vigil_sim::physiology::HEART_RATE;
use vigil_sim::{CohortConfig, DeviceKind, EpisodeKind, Faults, Reading, Simulation};

const HOUR: i64 = 3_600_000;

fn config(patients: usize, hours: i64) -> CohortConfig {
    CohortConfig {
        seed: 42,
        patients,
        duration_ms: hours * HOUR,
        ..CohortConfig::default()
    }
}

fn clean(patients: usize, hours: i64) -> CohortConfig {
    CohortConfig {
        faults: Faults::none(),
        ..config(patients, hours)
    }
}

#[test]
fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
    let take = |seed| -> Vec<String> {
        Simulation::new(CohortConfig {
            seed,
            ..config(50, 2)
        })
        .take(20_000)
        .flat_map(|r| json::messages(&r, Shape::Narrow))
        .collect()
    };
    let first = take(7);
    assert_eq!(first, take(7));
    assert_ne!(first, take(8));
    let episodes = |seed| {
        Simulation::new(CohortConfig {
            seed,
            ..config(500, 24)
        })
        .episodes()
    };
    assert_eq!(episodes(7), episodes(7));
}

#[test]
fn readings_come_in_delivery_order_and_stop_at_the_end_of_the_run() {
    let config = config(40, 3);
    let (start, end) = (config.start_ms, config.start_ms + config.duration_ms);
    let readings: Vec<Reading> = Simulation::new(config).collect();
    assert!(readings.len() > 10_000);
    assert!(
        readings
            .windows(2)
            .all(|w| w[0].delivered_at_ms <= w[1].delivered_at_ms)
    );
    assert!(
        readings.iter().all(|r| r.true_at_ms >= start
            && r.true_at_ms < end
            && r.delivered_at_ms >= r.true_at_ms)
    );
    // Delayed deliveries overtake later readings of the same device.
    let mut last_taken: HashMap<usize, i64> = HashMap::new();
    let mut out_of_order = 0;
    for r in readings.iter().filter(|r| !r.duplicate) {
        let last = last_taken.entry(r.device).or_insert(i64::MIN);
        if r.true_at_ms < *last {
            out_of_order += 1;
        }
        *last = (*last).max(r.true_at_ms);
    }
    assert!(out_of_order > 0);
}

#[test]
fn devices_report_at_their_documented_rates() {
    let config = clean(30, 8);
    let hours = 8.0;
    let sim = Simulation::new(config.clone());
    let patients = sim.patients().to_vec();
    let mut per_device: HashMap<(usize, DeviceKind), usize> = HashMap::new();
    for r in sim {
        assert_eq!(r.observed_at_ms, r.true_at_ms, "no skew without faults");
        assert_eq!(r.delivered_at_ms, r.true_at_ms, "no latency without faults");
        assert!(!r.artefact && !r.duplicate);
        *per_device.entry((r.patient, r.kind)).or_default() += 1;
    }
    for p in &patients {
        let (kind, every_s) = if p.monitored {
            (DeviceKind::Monitor, config.monitor_every_s)
        } else {
            (DeviceKind::Wearable, config.wearable_every_s)
        };
        let expected = hours * 3600.0 / every_s;
        let got = per_device[&(p.index, kind)] as f64;
        assert!(
            (got - expected).abs() <= 1.0,
            "{kind:?}: {got} vs {expected}"
        );
        let cuff = per_device[&(p.index, DeviceKind::Cuff)] as f64;
        assert!((cuff - hours * 60.0 / p.cuff_every_min).abs() <= 1.0);
        assert!((15.0..=60.0).contains(&p.cuff_every_min));
        assert_eq!(
            per_device[&(p.index, DeviceKind::Nurse)],
            2,
            "rounds every 4 h"
        );
    }
}

#[test]
fn cohort_statistics_fall_in_their_documented_ranges() {
    let sim = Simulation::new(config(4000, 24));
    let patients = sim.patients();
    let n = patients.len() as f64;
    let share = |f: &dyn Fn(&vigil_sim::Patient) -> bool| {
        patients.iter().filter(|p| f(p)).count() as f64 / n
    };
    let episodes = share(&|p| p.course.is_some());
    assert!((0.085..=0.115).contains(&episodes), "{episodes}");
    let monitored = share(&|p| p.monitored);
    assert!((0.27..=0.33).contains(&monitored), "{monitored}");
    let hypercapnic = share(&|p| p.baseline.hypercapnic);
    assert!((0.035..=0.065).contains(&hypercapnic), "{hypercapnic}");
    assert_eq!(
        patients.iter().filter(|p| p.ward == 3).count(),
        1000,
        "spread evenly over 4 wards"
    );
    let mean = |v: usize| patients.iter().map(|p| p.baseline.means[v]).sum::<f64>() / n;
    assert!(
        (76.0..=80.0).contains(&mean(HEART_RATE)),
        "{}",
        mean(HEART_RATE)
    );
    for p in patients {
        let [hr, rr, spo2, sys, dia, temp] = p.baseline.means;
        assert!((50.0..=110.0).contains(&hr) && (11.0..=22.0).contains(&rr));
        let spo2_range = if p.baseline.hypercapnic {
            86.0..=93.0
        } else {
            92.0..=100.0
        };
        assert!(spo2_range.contains(&spo2));
        assert!((95.0..=180.0).contains(&sys) && dia < sys && (36.0..=37.6).contains(&temp));
    }
    let kinds: HashMap<EpisodeKind, usize> =
        sim.episodes().iter().fold(HashMap::new(), |mut m, e| {
            *m.entry(e.kind).or_default() += 1;
            m
        });
    let total = kinds.values().sum::<usize>() as f64;
    let sepsis = kinds[&EpisodeKind::Sepsis] as f64 / total;
    assert!((0.38..=0.52).contains(&sepsis), "{sepsis}");
    for e in sim.episodes() {
        let hours = (e.event_ms - e.onset_ms) as f64 / HOUR as f64;
        let (lo, hi) = e.kind.hours_to_event();
        assert!(hours >= lo && hours <= hi);
    }
}

#[test]
fn faults_come_at_their_rates() {
    let config = config(100, 6);
    let faults = config.faults.clone();
    let readings: Vec<Reading> = Simulation::new(config).collect();
    let n = readings.len() as f64;
    let duplicates = readings.iter().filter(|r| r.duplicate).count() as f64 / n;
    assert!((0.003..=0.007).contains(&duplicates), "{duplicates}");
    let delayed = readings
        .iter()
        .filter(|r| r.delivered_at_ms - r.true_at_ms > faults.latency_ms.1 + 2_000)
        .count() as f64
        / n;
    assert!((0.007..=0.013).contains(&delayed), "{delayed}");
    let vital = readings
        .iter()
        .filter(|r| matches!(r.kind, DeviceKind::Monitor | DeviceKind::Wearable));
    let (mut artefacts, mut total) = (0.0, 0.0);
    for r in vital {
        total += 1.0;
        if r.artefact {
            artefacts += 1.0;
        }
    }
    assert!((0.001..=0.003).contains(&(artefacts / total)));
    let max_skew = (faults.max_skew_s * 1000.0) as i64;
    let skewed: std::collections::HashSet<usize> = readings
        .iter()
        .filter(|r| r.observed_at_ms != r.true_at_ms)
        .map(|r| r.device)
        .collect();
    assert!(!skewed.is_empty());
    assert!(
        readings
            .iter()
            .all(|r| (r.observed_at_ms - r.true_at_ms).abs() <= max_skew)
    );
}

#[test]
fn stable_patients_look_well_and_deteriorating_ones_do_not() {
    let config = CohortConfig {
        episode_share: 0.5,
        ..clean(120, 24)
    };
    let (start, end) = (config.start_ms, config.start_ms + config.duration_ms);
    let sim = Simulation::new(config);
    let patients = sim.patients().to_vec();
    let readings: Vec<Reading> = sim.collect();
    // Stable patients on scale 1: hardly a saturation below 92 %.
    let stable: Vec<&Reading> = readings
        .iter()
        .filter(|r| {
            let p = &patients[r.patient];
            p.course.is_none() && !p.baseline.hypercapnic
        })
        .filter(|r| r.values.spo2.is_some())
        .collect();
    let low = stable
        .iter()
        .filter(|r| r.values.spo2.is_some_and(|s| s < 92.0))
        .count() as f64;
    assert!(
        low / (stable.len() as f64) < 0.01,
        "{low} of {}",
        stable.len()
    );
    // The hour before the event against the hour before onset.
    let mut by_patient: HashMap<usize, Vec<&Reading>> = HashMap::new();
    for r in &readings {
        by_patient.entry(r.patient).or_default().push(r);
    }
    let mut checked = 0;
    for p in &patients {
        let Some(c) = p.course else { continue };
        if c.onset_ms - HOUR < start || c.event_ms > end {
            continue;
        }
        let mean = |from: i64, to: i64, f: &dyn Fn(&Reading) -> Option<f64>| {
            let v: Vec<f64> = by_patient[&p.index]
                .iter()
                .filter(|r| r.true_at_ms >= from && r.true_at_ms < to)
                .filter_map(|r| f(r))
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let hr = |r: &Reading| r.values.heart_rate;
        let spo2 = |r: &Reading| r.values.spo2;
        let (before, late) = (
            (c.onset_ms - HOUR, c.onset_ms),
            (c.event_ms - HOUR, c.event_ms),
        );
        match c.kind {
            EpisodeKind::Sepsis | EpisodeKind::Haemorrhage => {
                assert!(mean(late.0, late.1, &hr) > mean(before.0, before.1, &hr) + 15.0);
            }
            EpisodeKind::RespiratoryFailure => {
                assert!(mean(late.0, late.1, &spo2) < mean(before.0, before.1, &spo2) - 3.0);
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn every_message_decodes_with_vigils_own_decoders() {
    let readings: Vec<Reading> = Simulation::new(config(20, 2)).collect();
    let mut wide = VitalsJsonDecoder::new(TimeBounds::HISTORICAL);
    let mut narrow = RowsJsonDecoder::new(vitals_schema(), 1 << 16, 1024)
        .expect("decoder")
        .narrow();
    let mut narrow_messages = 0;
    for r in &readings {
        let message = json::wide(r);
        wide.decode(message.as_bytes())
            .unwrap_or_else(|e| panic!("{message}: {e}"));
        for message in json::narrow(r) {
            narrow
                .decode(message.as_bytes())
                .unwrap_or_else(|e| panic!("{message}: {e}"));
            narrow_messages += 1;
        }
    }
    let batch = wide.flush().expect("wide flush");
    assert_eq!(batch.num_rows(), readings.len());
    let flushed = narrow.flush().expect("narrow flush");
    assert!(flushed.rejected.is_empty(), "{:?}", flushed.rejected);
    assert_eq!(flushed.batch.map_or(0, |b| b.num_rows()), narrow_messages);
    let sim = Simulation::new(config(500, 24));
    for e in sim.episodes() {
        let parsed: serde_json::Value =
            serde_json::from_str(&json::episode(&e)).expect("episode JSON");
        assert_eq!(parsed["patient_id"], e.patient_id.as_str());
        assert!(
            parsed["onset_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
}
