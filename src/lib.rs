//! `cutover`: a terminal wizard that walks an engineer through a production PostgreSQL
//! migration. The layers, in one direction: `runbook` (data) → `engine` and `probes` (do
//! things) → `Event`s → `output` and `tui` (and later the journal). `main.rs` wires them.

pub mod approval;
pub mod check;
pub mod cluster;
pub mod db;
pub mod demo;
pub mod engine;
pub mod journal;
pub mod migrate;
pub mod monitor;
pub mod outcome;
pub mod output;
pub mod probes;
pub mod redact;
pub mod runbook;
pub mod target;
pub mod tui;
