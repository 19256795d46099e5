//! Landing an approved isolated run on its base branch, and removing its workspace after a
//! merge or a reject.
//!
//! Owns the landed commit's message, turning the git layer's refusals into what a person reads
//! (what moved, which files conflict, what to do), telling whether a landing begun before a
//! crash happened, and removing a worktree only when nothing in it is unsaved. Must not touch
//! the board, the state file or the event log: the runtime and `taskboard approve` record what
//! happened, in that order, around these calls.

use std::path::Path;

use crate::core::config::{Config, MergeStrategy, Workspace};
use crate::core::memory::TaskRecord;
use crate::core::workspace::RunRepo;
use crate::shell::workspace::{self, ComputedLanding, GitError, LandRequest, Strategy};

/// What a person approved, and how it is to land.
#[derive(Debug, Clone, Copy)]
pub struct ApprovedLanding<'a> {
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
pub struct LandingRefusal {
    pub reason: String,
    pub conflicts: Vec<String>,
}

impl LandingRefusal {
    fn of(e: GitError, id: &str) -> LandingRefusal {
        match e {
            GitError::BranchMoved { ref conflicts, .. } if conflicts.is_empty() => LandingRefusal {
                reason: format!(
                    "{e}; `taskboard approve {id} --onto-latest` lands it onto the new tip"
                ),
                conflicts: Vec::new(),
            },
            GitError::BranchMoved { ref conflicts, .. }
            | GitError::Conflict {
                files: ref conflicts,
            } => LandingRefusal {
                conflicts: conflicts.clone(),
                reason: format!("{e}; reject it with a note, or resolve it by hand"),
            },
            GitError::DirtyCheckout { ref files, .. } => LandingRefusal {
                conflicts: files.clone(),
                reason: format!("{e}; commit or stash them, then approve again"),
            },
            other => LandingRefusal {
                reason: other.to_string(),
                conflicts: Vec::new(),
            },
        }
    }
}

/// The landed commit's message: the task, its title and the handoff's summary, and a trailer
/// naming the task so `git log --grep` finds it.
pub fn message(a: &ApprovedLanding) -> String {
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
fn snapshot_of(record: &RunRepo) -> Result<&str, LandingRefusal> {
    record
        .snapshot
        .as_ref()
        .map(|s| s.commit.as_str())
        .ok_or_else(|| LandingRefusal {
            reason: "the run's change was never saved: there is nothing to land".into(),
            conflicts: Vec::new(),
        })
}

/// Computes the commit that lands `record`'s snapshot on its base branch as the branch is now.
/// Moves no ref and touches no work tree.
pub fn prepare(record: &RunRepo, a: &ApprovedLanding) -> Result<ComputedLanding, LandingRefusal> {
    let repo = Path::new(&record.repo);
    let snapshot = snapshot_of(record)?;
    let tip = workspace::resolve_branch(repo, &record.base_branch)
        .map_err(|e| LandingRefusal::of(e, a.id))?;
    let message = message(a);
    let req = LandRequest {
        branch: &record.base_branch,
        expected_tip: &tip,
        snapshot,
        strategy: strategy(a.strategy),
        message: &message,
        onto_latest: a.onto_latest,
    };
    workspace::prepare_land(repo, &req).map_err(|e| LandingRefusal::of(e, a.id))
}

/// Moves the base branch to the landing by compare-and-swap, and every clean checkout of it
/// along.
pub fn apply(record: &RunRepo, landing: &ComputedLanding, id: &str) -> Result<(), LandingRefusal> {
    workspace::apply_land(Path::new(&record.repo), landing).map_err(|e| LandingRefusal::of(e, id))
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

/// The run folder's note of a landing begun and not yet on record: written before any branch
/// moves, so a crash between the moves and the record is read back as what it was (landed
/// everywhere: done; landed somewhere: put back, then landed again whole), never landed twice.
const INTENT_FILE: &str = "landing.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Intent {
    repo: String,
    #[serde(default)]
    name: Option<String>,
    branch: String,
    old: String,
    new: String,
}

impl Intent {
    fn landing(&self) -> ComputedLanding {
        ComputedLanding {
            branch: self.branch.clone(),
            old: self.old.clone(),
            new: self.new.clone(),
            base: self.old.clone(),
            moved: false,
        }
    }
}

/// A landed change in one repository: the commit now on `into`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// The repository's `[repos]` name; `None` for a route's one repository.
    pub name: Option<String>,
    pub commit: String,
    pub into: String,
}

fn refusal(reason: String) -> LandingRefusal {
    LandingRefusal {
        reason,
        conflicts: Vec::new(),
    }
}

/// A refusal in repository `name`, said so.
fn in_repo(name: &Option<String>, r: LandingRefusal) -> LandingRefusal {
    match name {
        Some(name) => LandingRefusal {
            reason: format!("repository `{name}`: {}", r.reason),
            conflicts: r.conflicts,
        },
        None => r,
    }
}

/// Lands the change the attempt in `run_dir` saved, in every repository it worked in, as `a`
/// says: all of them or none, exactly once. Every repository is checked first; if a later one
/// then fails to land, the earlier ones are put back by compare-and-swap. A landing begun before
/// a crash is finished as it was found: reported as landed where it all happened, put back and
/// landed again where it happened in part. The caller records the landing (and then calls
/// [`forget_intent`]) before it tells anyone.
pub fn carry_out(run_dir: &Path, a: &ApprovedLanding) -> Result<Vec<Landed>, LandingRefusal> {
    let doc = crate::shell::worktrees::read_record(run_dir)
        .ok_or_else(|| refusal(format!("{} records no workspace", run_dir.display())))?;
    if doc.repos.is_empty() {
        return Err(refusal("the run worked in no repository".into()));
    }
    let intent_path = run_dir.join(INTENT_FILE);
    if let Some(done) = resume(&intent_path)? {
        return Ok(done);
    }
    let mut landings = Vec::new();
    for record in &doc.repos {
        let landing = prepare(record, a).map_err(|r| in_repo(&record.name, r))?;
        landings.push((record, landing));
    }
    let intents: Vec<Intent> = landings
        .iter()
        .map(|(r, l)| Intent {
            repo: r.repo.clone(),
            name: r.name.clone(),
            branch: l.branch.clone(),
            old: l.old.clone(),
            new: l.new.clone(),
        })
        .collect();
    write_synced(&intent_path, &intents).map_err(|e| {
        refusal(format!(
            "cannot note the landing in {}: {e}",
            intent_path.display()
        ))
    })?;
    for (k, (record, landing)) in landings.iter().enumerate() {
        if let Err(r) = apply(record, landing, a.id) {
            let r = in_repo(&record.name, r);
            let undone = put_back(&intents[..k]);
            let _ = std::fs::remove_file(&intent_path);
            return Err(match undone {
                Ok(()) => r,
                Err(why) => refusal(format!("{}; and {why}", r.reason)),
            });
        }
    }
    Ok(intents
        .into_iter()
        .map(|i| Landed {
            name: i.name,
            commit: i.new,
            into: i.branch,
        })
        .collect())
}

/// A landing noted before a crash: `Some` when it happened in every repository; otherwise what
/// did happen is put back and the note removed, for a fresh landing.
fn resume(intent_path: &Path) -> Result<Option<Vec<Landed>>, LandingRefusal> {
    let Some(prev) = std::fs::read_to_string(intent_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<Intent>>(&t).ok())
    else {
        return Ok(None);
    };
    let mut landed = Vec::new();
    for i in &prev {
        landed.push(is_landed(Path::new(&i.repo), &i.branch, &i.new).map_err(refusal)?);
    }
    if landed.iter().all(|l| *l) {
        return Ok(Some(
            prev.into_iter()
                .map(|i| Landed {
                    name: i.name,
                    commit: i.new,
                    into: i.branch,
                })
                .collect(),
        ));
    }
    let partial: Vec<Intent> = prev
        .into_iter()
        .zip(landed)
        .filter_map(|(i, l)| l.then_some(i))
        .collect();
    put_back(&partial).map_err(refusal)?;
    let _ = std::fs::remove_file(intent_path);
    Ok(None)
}

/// Puts back the branches of `landed` (newest first) by compare-and-swap, their clean checkouts
/// along: the landing of several repositories is all or nothing.
fn put_back(landed: &[Intent]) -> Result<(), String> {
    let mut failed = Vec::new();
    for i in landed.iter().rev() {
        let forward = i.landing();
        let back = ComputedLanding {
            old: forward.new.clone(),
            new: forward.old.clone(),
            ..forward
        };
        if let Err(e) = workspace::apply_land(Path::new(&i.repo), &back) {
            let which = i.name.as_deref().unwrap_or(&i.repo);
            failed.push(format!("{which} could not be put back ({e})"));
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

/// The landing is on record elsewhere: its note in the run folder can go.
pub fn forget_intent(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(INTENT_FILE));
}

fn write_synced(path: &Path, intent: &impl serde::Serialize) -> std::io::Result<()> {
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

/// A landing as the task's record keeps it: each repository's commit, `<name>:<commit>` for a
/// named one, space-separated.
pub fn on_record(landed: &[Landed]) -> String {
    landed
        .iter()
        .map(|l| match &l.name {
            Some(name) => format!("{name}:{}", l.commit),
            None => l.commit.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes every worktree (and branch) of the attempt in `run_dir`, then the folder holding
/// them when that is left empty; each repository with how its removal went.
pub fn remove_all(run_dir: &Path) -> Vec<(RunRepo, Result<(), String>)> {
    let Some(doc) = crate::shell::worktrees::read_record(run_dir) else {
        return Vec::new();
    };
    let results: Vec<(RunRepo, Result<(), String>)> = doc
        .repos
        .into_iter()
        .map(|r| {
            let result = remove(&r);
            (r, result)
        })
        .collect();
    for (r, _) in &results {
        if r.name.is_some()
            && let Some(home) = Path::new(&r.path).parent()
        {
            // Only when empty: a worktree that was kept stays with its folder.
            let _ = std::fs::remove_dir(home);
        }
    }
    results
}

/// The handoff's `What` line of attempt `attempt`'s section in a task's record, for the
/// landed commit's message.
pub fn summary_of(record: Option<&TaskRecord>, attempt: u32) -> Option<String> {
    let section = record?
        .history
        .iter()
        .rev()
        .find(|a| a.attempt == attempt)?
        .handoff
        .as_deref()?;
    section
        .lines()
        .find_map(|l| l.strip_prefix("- **What:** "))
        .map(|what| what.trim().to_string())
}

/// How the change of the attempt in `run_dir` lands: its route's `merge` (squash when that
/// route is gone or no longer works in worktrees).
pub fn strategy_for(config: &Config, run_dir: &Path) -> MergeStrategy {
    let route = crate::shell::worktrees::read_record(run_dir).and_then(|r| r.route);
    match route
        .and_then(|r| config.executors.get(&r))
        .map(|e| &e.workspace)
    {
        Some(Workspace::Worktree(w)) => w.merge,
        _ => MergeStrategy::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_task_and_carries_the_summary() {
        let a = ApprovedLanding {
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
        let bare = ApprovedLanding { summary: None, ..a };
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
        let r = LandingRefusal::of(moved, "A-1");
        assert!(r.reason.contains("--onto-latest"), "{}", r.reason);
        assert!(r.conflicts.is_empty());
        let clash = GitError::BranchMoved {
            branch: "main".into(),
            base: "aaaaaaaaaaaa".into(),
            tip: "bbbbbbbbbbbb".into(),
            conflicts: vec!["a.rs".into()],
        };
        let r = LandingRefusal::of(clash, "A-1");
        assert_eq!(r.conflicts, ["a.rs"]);
        assert!(!r.reason.contains("--onto-latest"), "{}", r.reason);
    }
}
