//! One test per situation in which a task ran twice, a save was lost, or a command misbehaved,
//! written from the promise a person relies on ("this task ran exactly once", "this byte
//! survived") and counting the bad outcome directly. Each module below is one family of
//! situations; each test's name says the situation. docs/RELIABILITY.md lists them with what
//! taskboard does now.

mod escape;
mod exactly_once;
mod home;
mod lintclock;
mod namespace;
mod output;
mod retryid;
