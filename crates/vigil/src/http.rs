//! The HTTP endpoints of a running instance: `/metrics` for Prometheus to scrape,
//! `/healthz` (the run loop is alive) and `/readyz` (partitions assigned, caught
//! up, a broker reachable) for an orchestrator's probes.

use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use vigil_kafka::LiveCounters;
use vigil_kafka::run::wall_clock_ms;

/// A loop that has not finished a step for this long is stuck (a step lasts at
/// most the poll wait, or the wait for a slow sink while consumption is paused,
/// which still steps the consumer but not the loop; a minute is far beyond both).
const STALLED_MS: i64 = 60_000;

/// More messages than this behind the ends of the owned partitions is catching
/// up, not ready.
pub const READY_LAG: u64 = 10_000;

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    registry: Registry,
    /// One per run the process serves (`vigil run`: one; `vigil demo`: several).
    runs: Vec<Arc<LiveCounters>>,
}

impl Endpoints {
    /// Endpoints over `registry` (to which the build information is added) and
    /// the live counters of every run: healthy and ready when each run is.
    pub fn new(registry: Registry, runs: Vec<Arc<LiveCounters>>) -> anyhow::Result<Endpoints> {
        let build = IntGaugeVec::new(
            Opts::new("vigil_build_info", "vigil's version; always 1."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        Ok(Endpoints { registry, runs })
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self)
    }
}

/// A server future for `endpoints` on `addr` (`off`: one that never ends and
/// serves nothing); says where on stderr, prefixed by `name`.
pub fn serve(
    name: &str,
    addr: &str,
    endpoints: Endpoints,
) -> anyhow::Result<Pin<Box<dyn Future<Output = ()> + Send>>> {
    if addr == "off" {
        return Ok(Box::pin(std::future::pending()));
    }
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("listening on {addr} (--http)"))?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "{name}: metrics on http://{}/metrics, health on /healthz and /readyz",
        listener.local_addr()?
    );
    let name = name.to_owned();
    Ok(Box::pin(async move {
        let served = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => axum::serve(listener, endpoints.router()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            eprintln!("{name}: the HTTP server stopped: {e}");
        }
    }))
}

async fn metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&endpoints.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn healthz(State(endpoints): State<Endpoints>) -> (StatusCode, String) {
    verdict(every(&endpoints.runs, |live| health(live, wall_clock_ms())))
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, String) {
    verdict(every(&endpoints.runs, |live| {
        readiness(live, wall_clock_ms())
    }))
}

/// The verdict over several runs: the first failure, else each run's text.
fn every(
    runs: &[Arc<LiveCounters>],
    check: impl Fn(&LiveCounters) -> Result<String, String>,
) -> Result<String, String> {
    let texts = runs
        .iter()
        .map(|live| check(live))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(texts.join("; "))
}

fn verdict(result: Result<String, String>) -> (StatusCode, String) {
    match result {
        Ok(text) => (StatusCode::OK, text + "\n"),
        Err(text) => (StatusCode::SERVICE_UNAVAILABLE, text + "\n"),
    }
}

/// Healthy while the run loop keeps stepping.
pub fn health(live: &LiveCounters, now_ms: i64) -> Result<String, String> {
    let last = live.last_step_ms.load(Ordering::Relaxed);
    if last == 0 {
        return Ok("starting".to_owned());
    }
    let idle = now_ms - last;
    if idle > STALLED_MS {
        return Err(format!(
            "the run loop has not stepped for {} s",
            idle / 1000
        ));
    }
    Ok("ok".to_owned())
}

/// Ready once partitions are assigned, a broker is up and the consumer is within
/// [`READY_LAG`] messages of the ends of its partitions.
pub fn readiness(live: &LiveCounters, now_ms: i64) -> Result<String, String> {
    health(live, now_ms)?;
    let assigned = live.assigned_partitions.load(Ordering::Relaxed);
    if assigned == 0 {
        return Err("no partitions assigned".to_owned());
    }
    if !live.lag_known.load(Ordering::Relaxed) {
        return Err("consumer lag not measured yet".to_owned());
    }
    if live.brokers_up.load(Ordering::Relaxed) == 0 {
        return Err("no broker reachable".to_owned());
    }
    let lag = live.lag.load(Ordering::Relaxed);
    if lag > READY_LAG {
        return Err(format!("catching up: {lag} messages behind"));
    }
    Ok(format!(
        "ready: {assigned} partitions, {lag} messages behind"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(assigned: u64, lag: Option<u64>, brokers: u64, last: i64) -> LiveCounters {
        let live = LiveCounters::default();
        live.assigned_partitions.store(assigned, Ordering::Relaxed);
        if let Some(lag) = lag {
            live.lag.store(lag, Ordering::Relaxed);
            live.lag_known.store(true, Ordering::Relaxed);
        }
        live.brokers_up.store(brokers, Ordering::Relaxed);
        live.last_step_ms.store(last, Ordering::Relaxed);
        live
    }

    #[test]
    fn ready_only_when_assigned_caught_up_and_connected() {
        let now = 1_000_000;
        assert!(readiness(&live(3, Some(0), 1, now), now).is_ok());
        assert!(readiness(&live(3, Some(READY_LAG), 1, now), now).is_ok());
        let says = |l: LiveCounters| readiness(&l, now).expect_err("not ready");
        assert!(says(live(0, Some(0), 1, now)).contains("no partitions"));
        assert!(says(live(3, None, 1, now)).contains("not measured"));
        assert!(says(live(3, Some(0), 0, now)).contains("no broker"));
        assert!(says(live(3, Some(READY_LAG + 1), 1, now)).contains("catching up"));
        assert!(says(live(3, Some(0), 1, now - STALLED_MS - 1)).contains("not stepped"));
    }

    #[test]
    fn healthy_while_stepping() {
        let now = 1_000_000;
        assert_eq!(health(&live(0, None, 0, 0), now), Ok("starting".to_owned()));
        assert!(health(&live(0, None, 0, now - 1000), now).is_ok());
        assert!(health(&live(0, None, 0, now - STALLED_MS - 1), now).is_err());
    }
}
