//! Every integration test in one binary, so the crate is linked once: `cargo test --test it`
//! runs them all, `cargo test --test it torture::` one family. Each module is one subject; the
//! shared sandbox, temp folders, waits and helpers are in `support`. (`tests/tidy.rs` stays a
//! binary of its own: it reads the source tree, not a board.)

mod support;

mod approval;
mod background;
mod cli;
mod config;
mod crash;
mod dashboard;
mod diff;
mod doctor;
mod engines;
mod events;
mod evidence;
mod exec;
mod first_look;
mod fixtures;
mod fsio;
mod golden;
mod hostile;
mod isolated;
mod lock;
mod logs;
mod properties;
mod regressions;
mod remote;
mod remote_display;
mod routes;
mod runtime;
mod service;
mod starter;
mod stats;
mod tail;
mod terminal;
mod torture;
mod watch;
mod workspace;
