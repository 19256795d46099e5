//! The imperative shell: gathers the core's inputs (the board's bytes, locks, processes, git, the
//! clock) and carries out its decisions (writes, runs here or on another machine, worktrees and
//! landings, events, files beside the board).
//!
//! Must not decide: what a status means, what to run next, how an ending reads or what a person's
//! edit was are `core`'s; the shell asks it.

pub mod config_file;
pub mod event_log;
pub mod evidence;
pub mod exec;
pub mod fsio;
pub mod landing;
pub mod lease;
pub mod lock;
pub mod logging;
pub mod packet_sources;
pub mod parallel;
pub mod process;
pub mod remote;
pub mod run_dirs;
pub mod runtime;
pub mod store;
pub mod watch;
pub mod workers;
pub mod workspace;
pub mod worktrees;
