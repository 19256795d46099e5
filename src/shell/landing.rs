//! Landing an approved isolated run on its base branch, and removing its workspace after a
//! merge or a reject.
//!
//! Owns the landed commit's message, turning the git layer's refusals into what a person reads
//! (what moved, which files conflict, what to do), telling whether a landing begun before a
//! crash happened, and removing a worktree only when nothing in it is unsaved. Must not touch
//! the board, the state file or the event log: the runtime and `taskboard approve` record what
//! happened, in that order, around these calls.

use std::path::Path;

use crate::core::config::MergeStrategy;
use crate::core::workspace::RunRepo;
use crate::shell::workspace::{self, GitError, LandRequest, Landing, Strategy};

/// What a person approved, and how it is to land.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// The handoff's summary of the work, when the executor left one.
    pub summary: Option<&'a str>,
    pub strategy: MergeStrategy,
    /// Land onto the base branch's tip even if it moved since the run began, when that merges
    /// without conflict.
    pub onto_latest: bool,
}

/// Why an approval did not land: one line, and the files that would conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub conflicts: Vec<String>,
}

impl Refusal {
    fn of(e: GitError, id: &str) -> Refusal {
        match e {
            GitError::BranchMoved { ref conflicts, .. } if conflicts.is_empty() => Refusal {
                reason: format!(
                    "{e}; `taskboard approve {id} --onto-latest` lands it onto the new tip"
                ),
                conflicts: Vec::new(),
            },
            GitError::BranchMoved { ref conflicts, .. }
            | GitError::Conflict {
                files: ref conflicts,
            } => Refusal {
                conflicts: conflicts.clone(),
                reason: format!("{e}; reject it with a note, or resolve it by hand"),
            },
            GitError::DirtyCheckout { ref files, .. } => Refusal {
                conflicts: files.clone(),
                reason: format!("{e}; commit or stash them, then approve again"),
            },
            other => Refusal {
                reason: other.to_string(),
                conflicts: Vec::new(),
            },
        }
    }
}

/// The landed commit's message: the task, its title and the handoff's summary, and a trailer
/// naming the task so `git log --grep` finds it.
pub fn message(a: &Approval) -> String {
    let mut text = format!("{}: {}\n", a.id, a.title.trim());
    if let Some(summary) = a.summary.map(str::trim).filter(|s| !s.is_empty()) {
        text.push('\n');
        text.push_str(summary);
        text.push('\n');
    }
    text.push_str(&format!("\nTaskboard-Task: {}\n", a.id));
    text
}

fn strategy(s: MergeStrategy) -> Strategy {
    match s {
        MergeStrategy::Squash => Strategy::Squash,
        MergeStrategy::Merge => Strategy::Merge,
        MergeStrategy::Rebase => Strategy::Rebase,
    }
}

/// The saved snapshot's commit, or why there is none to land.
fn snapshot_of(record: &RunRepo) -> Result<&str, Refusal> {
    record
        .snapshot
        .as_ref()
        .map(|s| s.commit.as_str())
        .ok_or_else(|| Refusal {
            reason: "the run's change was never saved: there is nothing to land".into(),
            conflicts: Vec::new(),
        })
}

/// Computes the commit that lands `record`'s snapshot on its base branch as the branch is now.
/// Moves no ref and touches no work tree.
pub fn prepare(record: &RunRepo, a: &Approval) -> Result<Landing, Refusal> {
    let repo = Path::new(&record.repo);
    let snapshot = snapshot_of(record)?;
    let tip =
        workspace::resolve_branch(repo, &record.base_branch).map_err(|e| Refusal::of(e, a.id))?;
    let message = message(a);
    let req = LandRequest {
        branch: &record.base_branch,
        expected_tip: &tip,
        snapshot,
        strategy: strategy(a.strategy),
        message: &message,
        onto_latest: a.onto_latest,
    };
    workspace::prepare_land(repo, &req).map_err(|e| Refusal::of(e, a.id))
}

/// Moves the base branch to the landing by compare-and-swap, and every clean checkout of it
/// along.
pub fn apply(record: &RunRepo, landing: &Landing, id: &str) -> Result<(), Refusal> {
    workspace::apply_land(Path::new(&record.repo), landing).map_err(|e| Refusal::of(e, id))
}

/// Whether `new` is on `branch` (it is the tip, or the tip came after it): a landing recorded
/// before a crash happened.
pub fn is_landed(repo: &Path, branch: &str, new: &str) -> Result<bool, String> {
    let tip = workspace::resolve_branch(repo, branch).map_err(|e| e.to_string())?;
    if tip == new {
        return Ok(true);
    }
    let out = workspace::command(repo)
        .args(["merge-base", "--is-ancestor", new, &tip])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    Ok(out.status.success())
}

/// Removes the attempt's worktree and its branch; refused (and nothing removed) when the
/// worktree holds work that is not in its snapshot.
pub fn remove(record: &RunRepo) -> Result<(), String> {
    let Some(snapshot) = &record.snapshot else {
        return Err("the run's change was never saved: its worktree is kept".into());
    };
    workspace::remove_worktree(
        Path::new(&record.repo),
        Path::new(&record.path),
        &record.branch,
        &snapshot.snapshot_ref,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_task_and_carries_the_summary() {
        let a = Approval {
            id: "API-7",
            title: " Rate-limit the login endpoint ",
            summary: Some("Added a token bucket.\n"),
            strategy: MergeStrategy::Squash,
            onto_latest: false,
        };
        assert_eq!(
            message(&a),
            "API-7: Rate-limit the login endpoint\n\nAdded a token bucket.\n\nTaskboard-Task: API-7\n"
        );
        let bare = Approval { summary: None, ..a };
        assert_eq!(
            message(&bare),
            "API-7: Rate-limit the login endpoint\n\nTaskboard-Task: API-7\n"
        );
    }

    #[test]
    fn refusals_say_what_to_do() {
        let moved = GitError::BranchMoved {
            branch: "main".into(),
            base: "aaaaaaaaaaaa".into(),
            tip: "bbbbbbbbbbbb".into(),
            conflicts: Vec::new(),
        };
        let r = Refusal::of(moved, "A-1");
        assert!(r.reason.contains("--onto-latest"), "{}", r.reason);
        assert!(r.conflicts.is_empty());
        let clash = GitError::BranchMoved {
            branch: "main".into(),
            base: "aaaaaaaaaaaa".into(),
            tip: "bbbbbbbbbbbb".into(),
            conflicts: vec!["a.rs".into()],
        };
        let r = Refusal::of(clash, "A-1");
        assert_eq!(r.conflicts, ["a.rs"]);
        assert!(!r.reason.contains("--onto-latest"), "{}", r.reason);
    }
}
