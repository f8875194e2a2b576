//! Scoring an alert stream against the simulation's ground truth: which
//! deterioration episodes were alerted before their clinical event and how early
//! (sensitivity, lead time), and how many alerts came when nothing was wrong (the
//! alarm burden, per patient-day).
//!
//! Definitions, chosen to match how early-warning systems are judged clinically:
//!
//! - An **alert** is an event that asks someone to act: raised, escalated or
//!   repeated (a reminder). A resolution is not an alert.
//! - An episode is **judged** when its clinical event falls inside the run; one
//!   whose event comes after the end cannot be called missed or caught.
//! - A judged episode is **detected** when an alert for the patient is timed at
//!   or after its onset and before its event; its **lead time** is from the first
//!   such alert to the event. An alert's time is the observation time of the
//!   score that caused it.
//! - An alert is **outside episodes** when its patient has no episode, or it is
//!   timed before the onset or after the patient has recovered
//!   ([`Episode::recovered_ms`]): the patient's vital signs were abnormal for a
//!   reason from onset to recovery, so alerts then are not false.
//! - The **burden** is alerts outside episodes per patient-day outside episodes
//!   (each patient's time in the run, less onset to recovery).

use std::collections::{BTreeMap, HashMap};

use crate::cohort::Episode;

const DAY_MS: f64 = 86_400_000.0;

/// The kind of an alert event, as an alert sink writes it in its `event` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A level held for the persistence, or an immediate level.
    Raised,
    /// A higher level than the one last alerted.
    Escalated,
    /// A level still held one cooldown after the last alert.
    Repeated,
    /// Every level clear again.
    Resolved,
}

impl EventKind {
    /// The kind named `text` (`raised`, `escalated`, `repeated`, `resolved`).
    pub fn parse(text: &str) -> Option<EventKind> {
        match text {
            "raised" => Some(EventKind::Raised),
            "escalated" => Some(EventKind::Escalated),
            "repeated" => Some(EventKind::Repeated),
            "resolved" => Some(EventKind::Resolved),
            _ => None,
        }
    }

    /// The name an alert sink writes (the inverse of [`EventKind::parse`]).
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Escalated => "escalated",
            EventKind::Repeated => "repeated",
            EventKind::Resolved => "resolved",
        }
    }

    /// Whether the event asks someone to act (all but a resolution).
    pub fn is_alert(self) -> bool {
        self != EventKind::Resolved
    }
}

/// One alert event, reduced to what scoring needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// The patient alerted about.
    pub patient_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The level (`low-medium`, `medium`, `high` for NEWS2).
    pub severity: String,
    /// Observation time of the score that caused it, ms since the epoch.
    pub at_ms: i64,
}

/// What happened to one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOutcome {
    /// The episode.
    pub episode: Episode,
    /// Whether its event falls inside the run.
    pub judged: bool,
    /// The first alert from onset to the event, if any: its time and severity.
    pub first_alert: Option<(i64, String)>,
}

impl EpisodeOutcome {
    /// Time from the first alert to the event, ms, if the episode was detected.
    pub fn lead_ms(&self) -> Option<i64> {
        self.first_alert
            .as_ref()
            .map(|(at, _)| self.episode.event_ms - at)
    }
}

/// Alerts outside episodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Burden {
    /// Patient-days outside episodes.
    pub patient_days: f64,
    /// Alerts outside episodes by kind (raised, escalated, repeated).
    pub by_kind: BTreeMap<EventKind, u64>,
    /// Alerts outside episodes by severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Patients with at least one alert outside an episode.
    pub patients: usize,
    /// The most alerts outside episodes that one patient had.
    pub most_for_one_patient: u64,
}

impl Burden {
    /// Every alert outside episodes.
    pub fn alerts(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Alerts outside episodes per patient-day outside episodes (`None` without
    /// any such time).
    pub fn per_patient_day(&self) -> Option<f64> {
        (self.patient_days > 0.0).then(|| self.alerts() as f64 / self.patient_days)
    }

    /// New alerts (raised, escalated; no reminders) per patient-day outside
    /// episodes.
    pub fn new_per_patient_day(&self) -> Option<f64> {
        let new = self.alerts() - self.by_kind.get(&EventKind::Repeated).copied().unwrap_or(0);
        (self.patient_days > 0.0).then(|| new as f64 / self.patient_days)
    }
}

/// An alert stream scored against the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Patients in the cohort.
    pub patients: usize,
    /// Every episode and what happened to it, in the order given.
    pub episodes: Vec<EpisodeOutcome>,
    /// Alerts outside episodes.
    pub burden: Burden,
}

impl Evaluation {
    /// Episodes whose event falls inside the run.
    pub fn judged(&self) -> usize {
        self.episodes.iter().filter(|e| e.judged).count()
    }

    /// Judged episodes alerted before their event.
    pub fn detected(&self) -> usize {
        self.episodes
            .iter()
            .filter(|e| e.judged && e.first_alert.is_some())
            .count()
    }

    /// Detected share of judged episodes (`None` when none was judged).
    pub fn sensitivity(&self) -> Option<f64> {
        let judged = self.judged();
        (judged > 0).then(|| self.detected() as f64 / judged as f64)
    }

    /// Lead times of the detected judged episodes, ms, shortest first.
    pub fn leads_ms(&self) -> Vec<i64> {
        let mut leads: Vec<i64> = self
            .episodes
            .iter()
            .filter(|e| e.judged)
            .filter_map(EpisodeOutcome::lead_ms)
            .collect();
        leads.sort_unstable();
        leads
    }

    /// Median lead time of the detected judged episodes, ms (the mean of the two
    /// middle ones for an even count).
    pub fn median_lead_ms(&self) -> Option<i64> {
        let leads = self.leads_ms();
        let n = leads.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(leads[n / 2]),
            _ => Some(leads[n / 2 - 1] + (leads[n / 2] - leads[n / 2 - 1]) / 2),
        }
    }
}

/// Scores `alerts` against `episodes` of a cohort of `patients` patients
/// simulated from `start_ms` to `end_ms` (see the module documentation for the
/// definitions).
pub fn evaluate(
    start_ms: i64,
    end_ms: i64,
    patients: usize,
    episodes: &[Episode],
    alerts: &[AlertEvent],
) -> Evaluation {
    let span_ms = (end_ms - start_ms).max(0);
    let by_patient: HashMap<&str, &Episode> = episodes
        .iter()
        .map(|e| (e.patient_id.as_str(), e))
        .collect();
    let in_episode = |alert: &AlertEvent| {
        by_patient
            .get(alert.patient_id.as_str())
            .is_some_and(|e| (e.onset_ms..=e.recovered_ms()).contains(&alert.at_ms))
    };

    let mut first: HashMap<&str, (i64, &str)> = HashMap::new();
    let mut burden = Burden::default();
    let mut outside_per_patient: HashMap<&str, u64> = HashMap::new();
    for alert in alerts.iter().filter(|a| a.kind.is_alert()) {
        if let Some(e) = by_patient.get(alert.patient_id.as_str())
            && (e.onset_ms..e.event_ms).contains(&alert.at_ms)
        {
            let entry = first
                .entry(alert.patient_id.as_str())
                .or_insert((alert.at_ms, alert.severity.as_str()));
            if alert.at_ms < entry.0 {
                *entry = (alert.at_ms, alert.severity.as_str());
            }
        }
        if !in_episode(alert) {
            *burden.by_kind.entry(alert.kind).or_default() += 1;
            *burden
                .by_severity
                .entry(alert.severity.clone())
                .or_default() += 1;
            *outside_per_patient
                .entry(alert.patient_id.as_str())
                .or_default() += 1;
        }
    }
    burden.patients = outside_per_patient.len();
    burden.most_for_one_patient = outside_per_patient.values().copied().max().unwrap_or(0);

    let episode_ms: i64 = episodes
        .iter()
        .map(|e| (e.recovered_ms().min(end_ms) - e.onset_ms.max(start_ms)).max(0))
        .sum();
    burden.patient_days = (patients as f64 * span_ms as f64 - episode_ms as f64).max(0.0) / DAY_MS;

    let outcomes = episodes
        .iter()
        .map(|e| EpisodeOutcome {
            episode: e.clone(),
            judged: e.event_ms <= end_ms && e.onset_ms >= start_ms,
            first_alert: first
                .get(e.patient_id.as_str())
                .map(|&(at, severity)| (at, severity.to_owned())),
        })
        .collect();
    Evaluation {
        patients,
        episodes: outcomes,
        burden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physiology::EpisodeKind;

    const H: i64 = 3_600_000;

    fn episode(patient: &str, onset_h: i64, event_h: i64) -> Episode {
        Episode {
            patient_id: patient.to_owned(),
            ward: "w00".to_owned(),
            kind: EpisodeKind::Sepsis,
            onset_ms: onset_h * H,
            event_ms: event_h * H,
        }
    }

    fn alert(patient: &str, kind: EventKind, at_ms: i64) -> AlertEvent {
        AlertEvent {
            patient_id: patient.to_owned(),
            kind,
            severity: "medium".to_owned(),
            at_ms,
        }
    }

    #[test]
    fn event_names_parse_back_to_their_kind() {
        for kind in [
            EventKind::Raised,
            EventKind::Escalated,
            EventKind::Repeated,
            EventKind::Resolved,
        ] {
            assert_eq!(EventKind::parse(kind.label()), Some(kind));
        }
        assert_eq!(EventKind::parse("paged"), None);
    }

    #[test]
    fn an_alert_between_onset_and_event_detects_the_episode_with_its_lead() {
        let episodes = [episode("a", 2, 6)];
        let alerts = [
            alert("a", EventKind::Raised, 3 * H),
            alert("a", EventKind::Escalated, 4 * H),
        ];
        let e = evaluate(0, 24 * H, 10, &episodes, &alerts);
        assert_eq!((e.judged(), e.detected()), (1, 1));
        assert_eq!(e.sensitivity(), Some(1.0));
        assert_eq!(e.median_lead_ms(), Some(3 * H));
        assert_eq!(e.burden.alerts(), 0);
    }

    #[test]
    fn alerts_at_the_event_or_before_onset_do_not_detect_it() {
        let episodes = [episode("a", 2, 6)];
        let alerts = [
            alert("a", EventKind::Raised, 2 * H - 1),
            alert("a", EventKind::Repeated, 6 * H),
        ];
        let e = evaluate(0, 24 * H, 1, &episodes, &alerts);
        assert_eq!(e.detected(), 0);
        assert_eq!(e.sensitivity(), Some(0.0));
        assert_eq!(e.median_lead_ms(), None);
        // The one before onset is outside the episode; the one at the event is not.
        assert_eq!(e.burden.alerts(), 1);
    }

    #[test]
    fn the_onset_itself_counts_and_a_resolution_is_not_an_alert() {
        let episodes = [episode("a", 2, 6)];
        let alerts = [
            alert("a", EventKind::Resolved, 2 * H + 5),
            alert("a", EventKind::Raised, 2 * H),
        ];
        let e = evaluate(0, 24 * H, 1, &episodes, &alerts);
        assert_eq!(e.leads_ms(), vec![4 * H]);
    }

    #[test]
    fn an_episode_whose_event_falls_after_the_run_is_not_judged() {
        let episodes = [episode("a", 20, 30), episode("b", 1, 5)];
        let e = evaluate(0, 24 * H, 2, &episodes, &[]);
        assert_eq!((e.judged(), e.detected()), (1, 0));
        assert!(!e.episodes[0].judged);
    }

    #[test]
    fn alerts_during_recovery_are_not_burden_but_after_it_they_are() {
        let episodes = [episode("a", 2, 6)];
        let recovered = episodes[0].recovered_ms();
        let alerts = [
            alert("a", EventKind::Repeated, recovered),
            alert("a", EventKind::Repeated, recovered + 1),
            alert("b", EventKind::Raised, H),
            alert("b", EventKind::Resolved, 2 * H),
        ];
        let e = evaluate(0, 24 * H, 2, &episodes, &alerts);
        assert_eq!(e.burden.alerts(), 2);
        assert_eq!(e.burden.by_kind.get(&EventKind::Repeated), Some(&1));
        assert_eq!(e.burden.patients, 2);
        assert_eq!(e.burden.most_for_one_patient, 1);
        // Two patient-days, less onset (2 h) to recovery (6 h + 6 h).
        let days = (48.0 - 10.0) / 24.0;
        assert!((e.burden.patient_days - days).abs() < 1e-9);
        assert!((e.burden.per_patient_day().unwrap_or(0.0) - 2.0 / days).abs() < 1e-9);
        assert!((e.burden.new_per_patient_day().unwrap_or(0.0) - 1.0 / days).abs() < 1e-9);
    }

    #[test]
    fn the_median_lead_of_an_even_count_is_the_mean_of_the_middle_two() {
        let episodes = [episode("a", 1, 5), episode("b", 1, 5)];
        let alerts = [
            alert("a", EventKind::Raised, 4 * H),
            alert("b", EventKind::Raised, 2 * H),
        ];
        let e = evaluate(0, 24 * H, 2, &episodes, &alerts);
        assert_eq!(e.median_lead_ms(), Some(2 * H));
    }

    #[test]
    fn no_episodes_and_no_time_give_no_figures_rather_than_zeros() {
        let e = evaluate(0, 0, 5, &[], &[alert("x", EventKind::Raised, 0)]);
        assert_eq!(e.sensitivity(), None);
        assert_eq!(e.burden.per_patient_day(), None);
        assert_eq!(e.burden.alerts(), 1);
    }
}
