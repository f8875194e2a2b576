//! What `vigil demo` shows: the alerts of the shipped NEWS2 alert pipeline, a
//! summary per ward, and the runs' throughput and lag, rendered as a screen for
//! a terminal or as plain lines for a log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use vigil_sim::Episode;

/// Alerts kept on screen.
const SHOWN_ALERTS: usize = 14;

/// A NEWS2 clinical-response band, in order of urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Band {
    /// Aggregate 0-4 with no single parameter scoring 3.
    Low,
    /// A single parameter scoring 3: urgent ward-based response.
    LowMedium,
    /// Aggregate 5-6: key threshold for urgent response.
    Medium,
    /// Aggregate 7 or more: emergency response.
    High,
}

impl Band {
    /// The band named as `news2_band` writes it.
    pub fn parse(text: &str) -> Option<Band> {
        match text {
            "low" => Some(Band::Low),
            "low-medium" => Some(Band::LowMedium),
            "medium" => Some(Band::Medium),
            "high" => Some(Band::High),
            _ => None,
        }
    }
}

/// An alert event of the alert pipeline, as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// When (the score's time, simulated), ms since the epoch.
    pub at_ms: i64,
    /// `raised`, `escalated`, `repeated` or `resolved`.
    pub event: String,
    /// The band alerted (for `resolved`, the last one).
    pub severity: String,
    /// The patient.
    pub patient: String,
    /// The patient's ward.
    pub ward: String,
    /// The NEWS2 score of the row that caused it.
    pub news2: Option<u64>,
    /// The patient's deterioration episode in the simulation, if any: its kind
    /// and onset (the ground truth the alert can be judged by).
    pub episode: Option<(String, i64)>,
}

impl Alert {
    /// One line: time, what, where, who, the score, and the ground truth.
    pub fn line(&self) -> String {
        let what = match self.event.as_str() {
            "resolved" => format!("resolved ({})", self.severity),
            event => format!("ALERT {:<10} {event}", self.severity),
        };
        let truth = match &self.episode {
            Some((kind, onset)) if *onset <= self.at_ms => {
                format!("{kind} since {}", clock(*onset))
            }
            Some((kind, onset)) => format!("{kind} from {} (not yet)", clock(*onset)),
            None => "no episode".to_owned(),
        };
        format!(
            "{}  {what:<27}  {:<5} {:<8}  NEWS2 {:>2}  {truth}",
            clock(self.at_ms),
            self.ward,
            self.patient,
            self.news2.map_or_else(|| "-".to_owned(), |n| n.to_string())
        )
    }
}

/// A ward's latest summary window, merged over the source partitions that each
/// report the patients they hold.
#[derive(Debug, Clone, Default, PartialEq)]
struct Ward {
    window_end: String,
    patients: u64,
    readings: u64,
    spo2_min: Option<f64>,
    resp_rate_max: Option<f64>,
}

#[derive(Debug, Clone)]
struct Patient {
    ward: String,
    band: Option<Band>,
}

/// Live counts of the runs, read by the caller from each run's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flow {
    /// Readings taken from the vitals topic (by the NEWS2 run).
    pub consumed: u64,
    /// Readings per second over the last interval.
    pub per_second: f64,
    /// Messages behind the ends of the vitals partitions (the larger of the runs').
    pub lag: Option<u64>,
    /// Messages dead-lettered (undecodable or late), both runs.
    pub dead_lettered: u64,
}

/// The view's state.
#[derive(Debug, Default)]
pub struct View {
    patients: HashMap<String, Patient>,
    wards: BTreeMap<String, Ward>,
    episodes: HashMap<String, (String, i64)>,
    alerts: VecDeque<Alert>,
    raised: BTreeMap<String, u64>,
    resolved: u64,
    scores: u64,
    latest_ms: Option<i64>,
}

impl View {
    /// A view that labels alerts with the simulation's ground truth.
    pub fn new(episodes: &[Episode]) -> View {
        View {
            episodes: episodes
                .iter()
                .map(|e| {
                    (
                        e.patient_id.clone(),
                        (e.kind.label().replace('_', " "), e.onset_ms),
                    )
                })
                .collect(),
            ..View::default()
        }
    }

    /// Takes one row of the NEWS2 pipeline's output: the patient's band now
    /// (a NULL band, a parameter missing, keeps the last one).
    pub fn score(&mut self, row: &serde_json::Value) {
        let Some(patient) = row["patient_id"].as_str() else {
            return;
        };
        let Some(at_ms) = time_ms(&row["scored_at"]) else {
            return;
        };
        self.scores += 1;
        self.latest_ms = Some(self.latest_ms.map_or(at_ms, |l| l.max(at_ms)));
        let state = self.patients.entry(patient.to_owned()).or_insert(Patient {
            ward: String::new(),
            band: None,
        });
        state.ward = row["ward"].as_str().unwrap_or("-").to_owned();
        if let Some(band) = row["news2_band"].as_str().and_then(Band::parse) {
            state.band = Some(band);
        }
    }

    /// Takes one row of the alert pipeline's output; returns it as shown.
    pub fn alert(&mut self, row: &serde_json::Value) -> Option<Alert> {
        let patient = row["patient_id"].as_str()?.to_owned();
        let alert = Alert {
            at_ms: time_ms(&row["last_seen"])?,
            event: row["event"].as_str()?.to_owned(),
            severity: row["severity"].as_str()?.to_owned(),
            ward: row["ward"].as_str().unwrap_or("-").to_owned(),
            news2: row["news2"].as_u64(),
            episode: self.episodes.get(&patient).cloned(),
            patient,
        };
        if alert.event == "resolved" {
            self.resolved += 1;
        } else {
            *self.raised.entry(alert.severity.clone()).or_default() += 1;
        }
        self.alerts.push_front(alert.clone());
        self.alerts.truncate(SHOWN_ALERTS);
        Some(alert)
    }

    /// Takes one row of the ward summary pipeline's output. A ward's patients
    /// sit on several partitions, each reporting its own share of a window; the
    /// shares of the newest window are added up.
    pub fn ward(&mut self, row: &serde_json::Value) {
        let Some(name) = row["ward"].as_str() else {
            return;
        };
        let Some(end) = row["window_end"].as_str() else {
            return;
        };
        let ward = self.wards.entry(name.to_owned()).or_default();
        if end < ward.window_end.as_str() {
            return; // an older window's share, arriving late
        }
        if end > ward.window_end.as_str() {
            *ward = Ward {
                window_end: end.to_owned(),
                ..Ward::default()
            };
        }
        ward.patients += row["patients"].as_u64().unwrap_or(0);
        ward.readings += row["readings"].as_u64().unwrap_or(0);
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        ward.spo2_min = min(ward.spo2_min, row["spo2_min"].as_f64());
        ward.resp_rate_max = max(ward.resp_rate_max, row["resp_rate_max"].as_f64());
    }

    /// Alerts raised so far (resolutions not counted).
    pub fn alerts_raised(&self) -> u64 {
        self.raised.values().sum()
    }

    /// One status line for a log.
    pub fn status(&self, flow: &Flow) -> String {
        format!(
            "[{}] {} readings consumed ({:.0}/s), lag {}, {} dead-lettered, {} scores, {} alerts ({}), {} resolved",
            self.latest_ms.map_or_else(|| "--:--".to_owned(), clock),
            flow.consumed,
            flow.per_second,
            flow.lag.map_or_else(|| "?".to_owned(), |l| l.to_string()),
            flow.dead_lettered,
            self.scores,
            self.alerts_raised(),
            self.raised_by_band(),
            self.resolved
        )
    }

    fn raised_by_band(&self) -> String {
        let parts: Vec<String> = ["high", "medium", "low-medium"]
            .iter()
            .filter_map(|band| Some(format!("{} {band}", self.raised.get(*band)?)))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The whole screen: `header` lines, the flow, the wards and the alerts.
    pub fn screen(&self, header: &[String], flow: &Flow) -> String {
        let mut out = String::new();
        for line in header {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "\n{}\n", self.status(flow));
        let _ = writeln!(
            out,
            "ward   patients  readings  SpO2 min  RR max   low-medium  medium  high   (last hour, window to {})",
            self.wards
                .values()
                .map(|w| w.window_end.as_str())
                .max()
                .map_or("--:--", |e| e.get(11..16).unwrap_or(e))
        );
        let mut bands: HashMap<&str, [u64; 3]> = HashMap::new();
        for p in self.patients.values() {
            let slot = match p.band {
                Some(Band::LowMedium) => 0,
                Some(Band::Medium) => 1,
                Some(Band::High) => 2,
                _ => continue,
            };
            bands.entry(p.ward.as_str()).or_default()[slot] += 1;
        }
        for (name, w) in &self.wards {
            let [lm, m, h] = bands.get(name.as_str()).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "{name:<6} {:>8}  {:>8}  {:>8}  {:>6}   {lm:>10}  {m:>6}  {h:>4}",
                w.patients,
                w.readings,
                w.spo2_min
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
                w.resp_rate_max
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            );
        }
        let _ = writeln!(out, "\nalerts, newest first:");
        if self.alerts.is_empty() {
            let _ = writeln!(out, "  (none yet)");
        }
        for alert in &self.alerts {
            let _ = writeln!(out, "  {}", alert.line());
        }
        out
    }
}

/// A JSON timestamp (RFC 3339 text or epoch milliseconds) in ms.
fn time_ms(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

/// `HH:MM` (UTC) of a time in ms.
fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "--:--".to_owned(), |t| t.format("%H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(view: &mut View, minute: u32, patient: &str, event: &str, severity: &str) -> Alert {
        view.alert(&json!({
            "alert_id": "x", "event": event, "severity": severity, "rule": "news2",
            "patient_id": patient, "ward": "w01", "news2": 7,
            "first_seen": "2026-11-24T10:00:00Z",
            "last_seen": format!("2026-11-24T10:{minute:02}:00Z"),
        }))
        .expect("an alert row")
    }

    #[test]
    fn alert_events_are_shown_and_counted_by_severity() {
        let mut view = View::new(&[]);
        let raised = alert(&mut view, 1, "p1", "raised", "medium");
        assert!(raised.line().contains("ALERT medium"), "{}", raised.line());
        assert!(raised.line().contains("raised"), "{}", raised.line());
        alert(&mut view, 5, "p1", "escalated", "high");
        let resolved = alert(&mut view, 9, "p1", "resolved", "high");
        assert!(
            resolved.line().contains("resolved (high)"),
            "{}",
            resolved.line()
        );
        assert_eq!(view.alerts_raised(), 2);
        let status = view.status(&Flow::default());
        assert!(
            status.contains("2 alerts (1 high, 1 medium), 1 resolved"),
            "{status}"
        );
        // Not an alert row: nothing shown.
        assert!(view.alert(&json!({"patient_id": "p1"})).is_none());
    }

    #[test]
    fn scores_keep_each_patients_band_and_a_missing_one_keeps_the_last() {
        let mut view = View::new(&[]);
        let score = |view: &mut View, band: Option<&str>| {
            view.score(&json!({"patient_id": "p1", "ward": "w01",
                "scored_at": "2026-11-24T10:00:00Z", "news2_band": band}));
        };
        score(&mut view, Some("high"));
        score(&mut view, None);
        assert_eq!(view.patients["p1"].band, Some(Band::High));
        assert_eq!(view.scores, 2);
    }

    #[test]
    fn ward_shares_of_the_newest_window_add_up() {
        let mut view = View::new(&[]);
        let share = |end: &str, patients: u64, spo2: f64| {
            json!({"ward": "w01", "window_end": end, "patients": patients,
                   "readings": patients * 10, "spo2_min": spo2, "resp_rate_max": 20.0})
        };
        view.ward(&share("2026-11-24T10:05:00Z", 3, 95.0));
        view.ward(&share("2026-11-24T10:10:00Z", 4, 93.0));
        view.ward(&share("2026-11-24T10:10:00Z", 5, 91.0));
        view.ward(&share("2026-11-24T10:05:00Z", 9, 80.0)); // late share: ignored
        let w = &view.wards["w01"];
        assert_eq!((w.patients, w.readings), (9, 90));
        assert_eq!(w.spo2_min, Some(91.0));
        let screen = view.screen(&["vigil demo".to_owned()], &Flow::default());
        assert!(screen.contains("w01"), "{screen}");
        assert!(screen.contains("(none yet)"), "{screen}");
    }

    #[test]
    fn alerts_name_the_ground_truth() {
        let mut view = View::new(&[]);
        view.episodes
            .insert("p1".to_owned(), ("sepsis".to_owned(), 1_795_514_400_000)); // 10:00
        let line = alert(&mut view, 30, "p1", "raised", "high").line();
        assert!(line.contains("sepsis since 10:00"), "{line}");
        let other = alert(&mut view, 31, "p2", "raised", "high").line();
        assert!(other.contains("no episode"), "{other}");
    }
}
