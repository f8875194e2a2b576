//! vigil against Kafka: a real Kafka-protocol broker (tansu) and librdkafka's
//! mock cluster for injected faults (one test binary, to keep link time low).

mod alerts;
mod faults;
mod pipeline;
mod rebalances;
