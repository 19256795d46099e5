//! `taskboard init`.
use std::path::Path;

use super::{CmdResult, Failure};
use crate::exit::Exit;

pub fn run(_dir: &Path) -> CmdResult {
    Err(Failure::new(Exit::Usage, "init: not built yet"))
}
