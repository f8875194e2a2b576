//! The SQL front end: parsing a pipeline file into declared tables, views and inserts.

pub mod checks;
pub mod ddl;
pub mod pipeline;
pub mod split;
