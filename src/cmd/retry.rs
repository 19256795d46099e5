//! `taskboard retry <ID>`: a person's explicit "run this again" for a failed, done, waiting or
//! person-blocked task. It sets the status back to `ready` (compare-and-swap), leaves a request
//! so a running runtime starts the task with fresh attempts instead of taking `ready` for a
//! stale buffer, and archives the task's deadletter entry.

use std::path::Path;

use chrono::Utc;

use super::{CmdResult, Failure};
use crate::board::Board;
use crate::events::{Event, EventKind, EventLog};
use crate::exit::Exit;
use crate::fsio;
use crate::lock::WriteLock;
use crate::status::Status;
use crate::writeback::{self, Change};

pub fn run(board_path: &Path, id: &str) -> CmdResult {
    let _write_lock = WriteLock::acquire(&fsio::state_dir(board_path)).map_err(|e| {
        Failure::new(
            Exit::State,
            format!("cannot take the board's write lock: {e}"),
        )
    })?;
    let snap = fsio::read_board(board_path).map_err(|e| Failure::new(Exit::Board, e))?;
    let board = Board::parse(&snap.text);
    let task = board.task(id).ok_or_else(|| {
        Failure::new(
            Exit::Findings,
            format!("no task `{id}` on {}", board_path.display()),
        )
    })?;
    let current = task.status().cloned().ok_or_else(|| {
        Failure::new(
            Exit::Findings,
            format!("{id} has no valid status to retry from; fix it by hand"),
        )
    })?;
    match current {
        Status::Ready => {
            super::output::print(&format!("{id} is already ready\n"))?;
            return Ok(Exit::Ok);
        }
        Status::Running { .. } => {
            return Err(Failure::new(
                Exit::Findings,
                format!(
                    "{id} is running ({current}); to stop it, set its status by hand (e.g. failed:stopped)"
                ),
            ));
        }
        Status::BlockedOnTasks(_) => {
            return Err(Failure::new(
                Exit::Findings,
                format!("{id} waits on tasks ({current}); it becomes ready when they are done"),
            ));
        }
        _ => {}
    }
    let board_dir = super::board_dir(board_path);
    let requests = fsio::state_dir(board_path).join("requests");
    std::fs::create_dir_all(&requests)
        .and_then(|_| std::fs::write(requests.join(format!("{id}.retry")), b""))
        .map_err(|e| {
            Failure::new(
                Exit::State,
                format!("cannot record the retry in {}: {e}", requests.display()),
            )
        })?;
    let outcome = writeback::apply(
        &snap.text,
        &board,
        &[Change {
            id: id.to_string(),
            expected: current.clone(),
            new: Status::Ready,
        }],
    );
    if let Some((_, why)) = outcome.refused.first() {
        return Err(Failure::new(
            Exit::Findings,
            format!("{id} not changed: {why}"),
        ));
    }
    fsio::atomic_write(board_path, outcome.text.as_bytes()).map_err(|e| {
        Failure::new(
            Exit::Write,
            format!("cannot write {}: {e}", board_path.display()),
        )
    })?;
    let now = Utc::now();
    let deadletter = board_dir.join("deadletter");
    let archived = if deadletter.join(format!("{id}.json")).exists() {
        let to = crate::runtime::archive_deadletter(&deadletter, id, now).map_err(|e| {
            Failure::new(
                Exit::Write,
                format!("status set to ready, but the deadletter entry could not be archived: {e}"),
            )
        })?;
        Some(to.display().to_string())
    } else {
        None
    };
    if let Ok(log) = EventLog::open(board_dir.join("events.jsonl")) {
        let _ = log.append(&Event::new(
            now,
            Some(id),
            EventKind::RetryRequested {
                from: current.to_string(),
                archived: archived.clone(),
            },
        ));
    }
    let done = format!("{id}: {current} -> ready");
    let mut report = format!("{done}\n");
    if let Some(a) = archived {
        report.push_str(&format!("deadletter entry archived to {a}\n"));
    }
    // The board is changed: a failing stdout is reported as such, never as a retry not made.
    super::output::print_after(&done, &report)?;
    Ok(Exit::Ok)
}
