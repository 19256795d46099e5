//! `taskboard tail`: the events as a person reads them.

use std::path::PathBuf;

use super::{CmdResult, Failure};
use crate::exit::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The board file; its events.jsonl is read.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Keep following new events, across rotation and truncation (like `tail -F`).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events about this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Print the JSON lines unchanged (for jq).
    #[arg(long)]
    pub json: bool,
    /// How many past events to show first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
}

pub fn run(_args: &Args) -> CmdResult {
    Err(Failure::new(Exit::Usage, "tail: not built yet"))
}
