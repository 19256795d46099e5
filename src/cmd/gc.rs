//! `taskboard gc`: removes the worktrees of isolated runs that retention allows, and says why
//! each other one is kept.
//!
//! A worktree goes when its task's run is over, its change is in a snapshot, and either a newer
//! attempt of its task started afresh or it is older than its route's `keep_worktrees`
//! (`core::workspace::retention`). Its snapshot (under `refs/taskboard/`) and its run folder's
//! patch stay. A worktree with work that is not in its snapshot is never removed. Each removal
//! is a `workspace_removed` event. The runtime sweeps the same way on every rescan.

use std::path::PathBuf;
use std::time::SystemTime;

use chrono::Utc;

use super::{CmdResult, Failure};
use crate::core::event::{Event, EventKind};
use crate::exit::Exit;
use crate::shell::event_log::EventLog;
use crate::shell::worktrees::{self, Swept};
use crate::shell::{config_file, fsio};

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Configuration file (default: taskboard.toml beside the board).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &GcArgs) -> CmdResult {
    let board = super::resolve_board(&args.board)?;
    // Worktrees are recorded by absolute path.
    let board = std::path::absolute(&board).unwrap_or(board);
    let board_dir = board.parent().unwrap_or(std::path::Path::new("/"));
    let config = config_file::load(args.config.as_deref(), board_dir)
        .map_err(|e| Failure::new(Exit::Config, e.to_string()))?
        .config;
    let state_dir = fsio::state_dir(&board);
    let swept = worktrees::sweep(&state_dir, &config, SystemTime::now(), args.dry_run);
    if !args.dry_run {
        log_removals(&board_dir.join("events.jsonl"), &swept);
    }
    let mut out = String::new();
    for s in &swept {
        out.push_str(&line(s, args.dry_run));
        out.push('\n');
    }
    if swept.is_empty() {
        out.push_str("no worktrees\n");
    }
    super::output::print(&out)?;
    let failed = swept.iter().any(|s| matches!(s.removed, Some(Err(_))));
    Ok(if failed { Exit::Findings } else { Exit::Ok })
}

/// `removed|kept|would remove|failed  <folder>  (<task> attempt <n>: <why>)`.
fn line(s: &Swept, dry: bool) -> String {
    let name = s
        .found
        .path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let Some(owner) = &s.found.owner else {
        let what = match &s.removed {
            Some(Ok(())) => "removed",
            Some(Err(_)) => "failed ",
            None => "left   ",
        };
        return format!("{what}  {name}  (empty, or no attempt on record made it)");
    };
    let why = s.retention.map_or("", |r| r.describe());
    let who = format!("{} attempt {}", owner.task, owner.attempt);
    match (&s.removed, s.retention.is_some_and(|r| r.removes())) {
        (Some(Ok(())), _) => format!("removed  {name}  ({who}: {why})"),
        (Some(Err(e)), _) => format!("failed   {name}  ({who}: {why}): {e}"),
        (None, true) if dry => format!("would remove  {name}  ({who}: {why})"),
        _ => format!("kept     {name}  ({who}: {why})"),
    }
}

fn log_removals(path: &std::path::Path, swept: &[Swept]) {
    let Ok(log) = EventLog::open(path) else {
        return;
    };
    for s in swept {
        let (Some(owner), Some(Ok(())), Some(r)) = (&s.found.owner, &s.removed, s.retention) else {
            continue;
        };
        let _ = log.append(&Event::new(
            Utc::now(),
            Some(&owner.task),
            EventKind::WorkspaceRemoved {
                attempt: owner.attempt,
                repo: owner.record.name.clone(),
                path: s.found.path.display().to_string(),
                reason: r.as_str().to_string(),
            },
        ));
    }
}
