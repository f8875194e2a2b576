//! vigil against Kafka: a real Kafka-protocol broker (tansu) and librdkafka's
//! mock cluster for injected faults (one test binary, to keep link time low).

mod alerts;
mod align;
mod faults;
mod fetch;
mod pipeline;
mod rebalances;

/// Logs the runs' events to the test output when `VIGIL_TEST_LOG` gives a
/// filter (`vigil_kafka=info`, say).
fn log_if_asked() {
    if let Ok(filter) = std::env::var("VIGIL_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
