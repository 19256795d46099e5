//! `taskboard run` and `taskboard once`.
use std::path::Path;

use super::{CmdResult, Failure};
use crate::exit::Exit;

pub fn run(_board: &Path, _config: Option<&Path>) -> CmdResult {
    Err(Failure::new(Exit::Usage, "run: not built yet"))
}

pub fn once(_board: &Path, _config: Option<&Path>) -> CmdResult {
    Err(Failure::new(Exit::Usage, "once: not built yet"))
}
