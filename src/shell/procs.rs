//! The old path of [`crate::shell::process`], kept only for the runtime's callers until they
//! name `process`; it owns nothing and must not grow.

pub use crate::shell::process::{Target, Tracker, become_subreaper, find};
