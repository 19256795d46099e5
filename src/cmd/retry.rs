//! `taskboard retry <ID>`: a person's explicit "run this again" for a failed, done, waiting or
//! person-blocked task. It sets the status back to `ready` (compare-and-swap), leaves a request
//! so a running runtime starts the task with fresh attempts instead of taking `ready` for a
//! stale buffer, and archives the task's deadletter entry.
//!
//! Nothing is created before the ID is known to be a task ID that names exactly one task on the
//! board. The board is written the way the runtime writes it: under the write lock, re-read,
//! compare-and-swap by task ID against the status first read, and replaced only if no save
//! landed meanwhile; a save that did land is read again and the change tried again on it, a
//! bounded number of times. A person's bytes are never replaced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use super::{CmdResult, Failure};
use crate::core::board::Board;
use crate::core::event::{Event, EventKind};
use crate::core::status::{self, Status};
use crate::exit::Exit;
use crate::shell::event_log::EventLog;
use crate::shell::fsio;
use crate::shell::lock::WriteLock;
use crate::shell::parallel::parse_board;

pub fn run(board_path: &Path, id: &str) -> CmdResult {
    let board_path = &super::resolve_board(board_path)?;
    if !status::is_task_id(id) {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "`{id}` is not a task ID (a letter, then letters, digits or `_`, a `-` and digits, like TASK-015)"
            ),
        ));
    }
    let snap = fsio::read_stable(board_path, Duration::from_millis(10), 10)
        .map_err(|e| Failure::new(Exit::Board, e))?;
    super::refuse_conflicted(board_path, &snap.text, "retry")?;
    let current = match retry_from(&parse_board(&snap.text), id, board_path)? {
        Some(current) => current,
        None => {
            super::output::print(&format!("{id} is already ready\n"))?;
            return Ok(Exit::Ok);
        }
    };
    let _write_lock = WriteLock::acquire(&fsio::state_dir(board_path)).map_err(|e| {
        Failure::new(
            Exit::State,
            format!("cannot take the board's write lock: {e}"),
        )
    })?;
    // Before the board says `ready`: a runtime must never see that `ready` without it.
    let request = record_request(board_path, id)?;
    if let Err(failure) = super::write_status(board_path, id, &current, Status::Ready, "retry") {
        // Nothing was written: a runtime must not forget the task's attempts for nothing.
        let _ = std::fs::remove_file(&request);
        return Err(failure);
    }
    let board_dir = super::board_dir(board_path);
    let now = Utc::now();
    let deadletter = board_dir.join("deadletter");
    let archived = if deadletter.join(format!("{id}.json")).exists() {
        let to = crate::shell::runtime::archive_deadletter(&deadletter, id, now).map_err(|e| {
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

/// The status `id` is retried from, `None` when it is already `ready`, or why it cannot be
/// retried: it is not on the board exactly once, or its status is not one a person retries.
fn retry_from(board: &Board, id: &str, board_path: &Path) -> Result<Option<Status>, Failure> {
    let mut tasks = board.tasks.iter().filter(|t| t.id == id);
    let task = tasks.next().ok_or_else(|| {
        Failure::new(
            Exit::Findings,
            format!("no task `{id}` on {}", board_path.display()),
        )
    })?;
    let others = tasks.count();
    if others > 0 {
        return Err(Failure::new(
            Exit::Findings,
            format!(
                "{} tasks have the ID `{id}` on {}; give each its own ID first",
                others + 1,
                board_path.display()
            ),
        ));
    }
    let current = task.status().cloned().ok_or_else(|| {
        Failure::new(
            Exit::Findings,
            format!("{id} has no valid status to retry from; fix it by hand"),
        )
    })?;
    match current {
        Status::Ready => Ok(None),
        Status::Running { .. } => Err(Failure::new(
            Exit::Findings,
            format!(
                "{id} is running ({current}); to stop it, set its status by hand (e.g. failed:stopped)"
            ),
        )),
        Status::BlockedOnTasks(_) => Err(Failure::new(
            Exit::Findings,
            format!("{id} waits on tasks ({current}); it becomes ready when they are done"),
        )),
        _ => Ok(Some(current)),
    }
}

/// Leaves `.taskboard/requests/<ID>.retry` for a running runtime; `id` is a checked task ID, so
/// the file stays inside that folder.
fn record_request(board_path: &Path, id: &str) -> Result<PathBuf, Failure> {
    let requests = fsio::state_dir(board_path).join("requests");
    let request = requests.join(format!("{id}.retry"));
    std::fs::create_dir_all(&requests)
        .and_then(|_| std::fs::write(&request, b""))
        .map_err(|e| {
            Failure::new(
                Exit::State,
                format!("cannot record the retry in {}: {e}", requests.display()),
            )
        })?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(board: &str, id: &str) -> Result<Option<String>, (Exit, String)> {
        retry_from(&Board::parse(board), id, Path::new("task-board.md"))
            .map(|s| s.map(|s| s.to_string()))
            .map_err(|f| (f.exit, f.message))
    }

    #[test]
    fn a_task_on_the_board_once_is_retried_from_its_status() {
        let board = "# B\n\n## A-1: a\n- status: failed:boom\n\n## A-2: b\n- status: ready\n";
        assert_eq!(from(board, "A-1"), Ok(Some("failed:boom".into())));
        assert_eq!(from(board, "A-2"), Ok(None));
    }

    #[test]
    fn a_missing_or_duplicated_task_is_refused() {
        let board = "# B\n\n## A-1: a\n- status: failed:x\n\n## A-1: again\n- status: done\n";
        let (exit, message) = from(board, "A-1").unwrap_err();
        assert_eq!(exit, Exit::Findings);
        assert!(
            message.starts_with("2 tasks have the ID `A-1`"),
            "{message}"
        );
        let (exit, message) = from(board, "B-1").unwrap_err();
        assert_eq!(exit, Exit::Findings);
        assert!(message.starts_with("no task `B-1`"), "{message}");
    }

    #[test]
    fn running_and_dependency_waits_are_not_retried() {
        let board = "# B\n\n## A-1: a\n- status: running:agent:2026-04-20T12:48Z\n\n## A-2: b\n- status: blocked:task:A-1\n";
        assert!(from(board, "A-1").unwrap_err().1.contains("is running"));
        assert!(from(board, "A-2").unwrap_err().1.contains("waits on tasks"));
    }
}
