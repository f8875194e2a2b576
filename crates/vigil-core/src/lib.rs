//! vigil's vitals data model.
//!
//! Everything else in vigil agrees on what a vital-sign reading looks like through this
//! crate: the canonical Arrow schema and its JSON field names ([`schema`]), each vital's
//! unit and physiologically plausible range ([`vital`]), the ACVPU consciousness scale
//! ([`consciousness`]), event-time handling ([`time`]) and the error vocabulary that lets
//! the streaming layer choose between retrying and dead-lettering ([`error`]).

pub mod consciousness;
pub mod error;
pub mod schema;
pub mod time;
pub mod vital;

pub use consciousness::Acvpu;
pub use error::{Disposition, Error, Result};
pub use schema::{fields, vitals_schema};
pub use vital::{PlausibleRange, Vital};
