//! `taskboard lint`.
use std::path::Path;

use super::{CmdResult, Failure};
use crate::exit::Exit;

pub fn run(_board: &Path, _json: bool, _config: Option<&Path>) -> CmdResult {
    Err(Failure::new(Exit::Usage, "lint: not built yet"))
}
