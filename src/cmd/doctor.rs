//! `taskboard doctor`: checks what a person would otherwise debug by hand.

use std::path::PathBuf;

use super::{CmdResult, Failure};
use crate::exit::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Configuration file (default: taskboard.toml beside the board).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

pub fn run(_args: &Args) -> CmdResult {
    Err(Failure::new(Exit::Usage, "doctor: not built yet"))
}
