//! The run folders under `.taskboard/runs/<ID>/`, one per attempt's run: their names
//! (`<attempt>[-review]-<UTC start, to the second>`) and reading them back.
//!
//! Owns the one name format: the runtime makes a run folder's name here and every reader
//! (`logs`, `diff`, `show`, recovery, the worktrees inventory) parses it here. Must not read or
//! write what is inside a run folder.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

/// The name of the run folder of `attempt` (its review when `review`) started at `started`.
pub fn name(attempt: u32, review: bool, started: DateTime<Utc>) -> String {
    format!(
        "{attempt}{}-{}",
        if review { "-review" } else { "" },
        started.format("%Y%m%dT%H%M%SZ")
    )
}

/// One run folder of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
    pub attempt: u32,
    pub review: bool,
    /// When the run started, to the second (from the folder's name).
    pub started: DateTime<Utc>,
}

impl RunDir {
    /// `<attempt>[-review]-<YYYYMMDDTHHMMSSZ>`; anything else is not a run folder.
    fn parse(path: PathBuf, name: &str) -> Option<RunDir> {
        let (head, time) = name.rsplit_once('-')?;
        let (head, review) = match head.strip_suffix("-review") {
            Some(h) => (h, true),
            None => (head, false),
        };
        if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let attempt = head.parse().ok()?;
        let started = NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%SZ")
            .ok()?
            .and_utc();
        Some(RunDir {
            path,
            attempt,
            review,
            started,
        })
    }
}

/// Every run folder of task `id` under `state_dir` (`.taskboard`), oldest first; a work run and
/// its review started in the same second keep that order. None for an ID that is not a task ID
/// (it never names a folder).
pub fn runs(state_dir: &Path, id: &str) -> io::Result<Vec<RunDir>> {
    if !crate::core::status::is_task_id(id) {
        return Ok(Vec::new());
    }
    let dir = state_dir.join("runs").join(id);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(run) = RunDir::parse(entry.path(), &name) {
            out.push(run);
        }
    }
    out.sort_by_key(|r| (r.started, r.attempt, r.review));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_names_parse() {
        let r = RunDir::parse("x".into(), "2-review-20261130T112703Z").unwrap();
        assert_eq!((r.attempt, r.review), (2, true));
        assert_eq!(r.started.to_rfc3339(), "2026-11-30T11:27:03+00:00");
        let r = RunDir::parse("x".into(), "12-20261130T112703Z").unwrap();
        assert_eq!((r.attempt, r.review), (12, false));
        // What the runtime names a folder reads back as what it was.
        let at = r.started;
        for (attempt, review) in [(1, false), (3, true)] {
            let back = RunDir::parse("x".into(), &name(attempt, review, at)).unwrap();
            assert_eq!(
                (back.attempt, back.review, back.started),
                (attempt, review, at)
            );
        }
        for bad in [
            "x-20261130T112703Z",
            "1-yesterday",
            "-20261130T112703Z",
            "1",
        ] {
            assert!(RunDir::parse("x".into(), bad).is_none(), "{bad}");
        }
    }
}
