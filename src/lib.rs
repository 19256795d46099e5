//! taskboard: one Markdown file as the control plane for background work.
//!
//! The crate is split into a pure core (parse, lint, plan, settle, write back: functions of text,
//! config, a clock value, a lock view and the runtime's memory) and an imperative shell (watch,
//! lock, spawn here or on another machine, git worktrees and landings, append, rename) that
//! gathers the core's inputs and carries out its decisions. The commands in `cmd` use both.
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod cmd;
pub mod core;
pub mod exit;
pub mod shell;
