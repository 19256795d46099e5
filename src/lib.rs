//! taskboard: one Markdown file as the control plane for background work.
//!
//! The crate is split into a pure core (parse, lint, plan, write back: functions of text, config,
//! clock and a lock view) and an imperative shell (watch, lock, spawn, append, rename) around it.
//! See `ARCHITECTURE.md` at the repository root for the map.

// Pure core: no I/O, no clocks read, no processes.
pub mod board;
pub mod config;
pub mod folder;
pub mod handoff;
pub mod lint;
pub mod packet;
pub mod plan;
pub mod report;
pub mod status;
pub mod writeback;

// Imperative shell.
pub mod events;
pub mod evidence;
pub mod exec;
pub mod fsio;
pub mod lock;
pub mod logging;
pub mod procs;
pub mod runtime;
pub mod service;
pub mod state;
pub mod watch;

pub mod cmd;
pub mod exit;
