//! `taskboard retry`.
use std::path::Path;

use super::{CmdResult, Failure};
use crate::exit::Exit;

pub fn run(_board: &Path, _id: &str) -> CmdResult {
    Err(Failure::new(Exit::Usage, "retry: not built yet"))
}
