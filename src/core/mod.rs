//! The pure core: what taskboard decides, as functions of board text, config, a clock value, a
//! lock view and the runtime's memory.
//!
//! Must not touch: files, clocks, processes, the network or libc. `tests/tidy.rs` checks that no
//! file under `src/core/` names them; the shell reads and writes, then hands the core values.

pub mod board;
pub mod config;
pub mod event;
pub mod fmt;
pub mod folder;
pub mod handoff;
pub mod hash;
pub mod lint;
pub mod memory;
pub mod packet;
pub mod plan;
pub mod quiet;
pub mod remote;
pub mod report;
pub mod service_files;
pub mod settle;
pub mod status;
pub mod workspace;
pub mod writeback;
