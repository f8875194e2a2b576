//! vigil's streaming SQL engine.
//!
//! A pipeline is a SQL file: source and sink tables declared with
//! `CREATE TABLE ... WITH (connector = ...)`, views, and `INSERT INTO sink SELECT ...`.
//! DataFusion plans each query; the engine lowers the plan into streaming operators
//! (filter/project, windowed and updating aggregates) that carry event-time
//! watermarks between them, and runs them over Arrow batches from its connectors.

pub mod error;
pub mod files;
pub mod plan;
pub mod run;
pub mod runtime;
pub mod sql;
pub mod window;

pub use error::{EngineError, Result};
