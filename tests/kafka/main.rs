//! vigil against a real Kafka-protocol broker (one test binary, to keep link time
//! low).

mod pipeline;
