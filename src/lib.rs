//! taskboard: one Markdown file as the control plane for background work.
//!
//! The crate is split into a pure core (parse, lint, plan, settle, write back: functions of text,
//! config, a clock value and a lock view) and an imperative shell (watch, lock, spawn, append,
//! rename) that gathers the core's inputs and carries out its decisions. The commands in `cmd`
//! use both. See `ARCHITECTURE.md` at the repository root for the map.

pub mod cmd;
pub mod core;
pub mod exit;
pub mod shell;
