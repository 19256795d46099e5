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

/// The run folder's note of a landing begun and not yet on record: written before the branch
/// moves, so a crash between the move and the record is read as landed, never landed twice.
const INTENT_FILE: &str = "landing.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Intent {
    branch: String,
    old: String,
    new: String,
}

/// A landed change: the commit now on `into`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub commit: String,
    pub into: String,
}

/// Lands the change the attempt in `run_dir` saved, as `a` says, exactly once: a landing begun
/// before a crash that did happen is reported as landed, not made again. The caller records
/// the landing (and then calls [`forget_intent`]) before it tells anyone.
pub fn carry_out(run_dir: &Path, a: &Approval) -> Result<Landed, Refusal> {
    let refusal = |reason: String| Refusal {
        reason,
        conflicts: Vec::new(),
    };
    let doc = crate::shell::worktrees::read_record(run_dir)
        .ok_or_else(|| refusal(format!("{} records no workspace", run_dir.display())))?;
    let record = doc
        .repos
        .first()
        .ok_or_else(|| refusal("the run worked in no repository".into()))?;
    let repo = Path::new(&record.repo);
    let intent_path = run_dir.join(INTENT_FILE);
    if let Some(prev) = std::fs::read_to_string(&intent_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Intent>(&t).ok())
    {
        if is_landed(repo, &prev.branch, &prev.new).map_err(refusal)? {
            return Ok(Landed {
                commit: prev.new,
                into: prev.branch,
            });
        }
        let _ = std::fs::remove_file(&intent_path);
    }
    let landing = prepare(record, a)?;
    let intent = Intent {
        branch: landing.branch.clone(),
        old: landing.old.clone(),
        new: landing.new.clone(),
    };
    write_synced(&intent_path, &intent).map_err(|e| {
        refusal(format!(
            "cannot note the landing in {}: {e}",
            intent_path.display()
        ))
    })?;
    if let Err(r) = apply(record, &landing, a.id) {
        let _ = std::fs::remove_file(&intent_path);
        return Err(r);
    }
    Ok(Landed {
        commit: landing.new,
        into: landing.branch,
    })
}

/// The landing is on record elsewhere: its note in the run folder can go.
pub fn forget_intent(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(INTENT_FILE));
}

fn write_synced(path: &Path, intent: &Intent) -> std::io::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string(intent).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The workspace record of the attempt in `run_dir` (its one repository).
pub fn record_of(run_dir: &Path) -> Option<RunRepo> {
    crate::shell::worktrees::read_record(run_dir)?
        .repos
        .into_iter()
        .next()
}

/// The handoff's `What` line of an attempt's section, for the landed commit's message.
pub fn summary_of(section: &str) -> Option<&str> {
    section
        .lines()
        .find_map(|l| l.strip_prefix("- **What:** "))
        .map(str::trim)
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
