//! `taskboard stats`: throughput, errors, latency and durations, from the events alone.

use std::path::PathBuf;

use super::{CmdResult, Failure};
use crate::exit::Exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The board file; its events.jsonl (and rotated files) are read.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// How far back to look: `7d`, `24h`, `90m`.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// A stable JSON document instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML dashboard to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(_args: &Args) -> CmdResult {
    Err(Failure::new(Exit::Usage, "stats: not built yet"))
}
