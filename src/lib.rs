//! rehydrate: read an event store as Arrow record batches, select events with SQL (DataFusion),
//! action them (populate a store; replay and invoke come next), and report every outcome.
//!
//! The binary (`src/main.rs`) is a thin shell over [`run`]; everything here is usable from tests.

pub mod action;
pub mod aws;
pub mod cli;
pub mod error;
pub mod event;
pub mod filter;
pub mod plan;
pub mod progress;
pub mod report;
pub mod resume;
pub mod run;
pub mod source;
#[cfg(test)]
mod testing;

pub use error::{Error, Result};
