//! Isolated runs as the loop sees them: an attempt on a `workspace = "worktree"` route works in
//! git worktrees of its own (made by `prepare`'s thread), and what it changed is saved when it
//! ends.
//!
//! Owns what the loop does with them: the repositories an attempt works in and where their
//! worktrees go, taking [`Prepared`] (events, the run's pid), reporting each repository's
//! snapshot as the run's evidence, saving what a dead runtime's run left, and on each rescan
//! removing the worktrees retention allows (`shell::worktrees::sweep`, as `gc` does). Making a
//! worktree takes seconds on a large repository, so it never runs on the loop: the run is
//! `Active` without a handle until [`Prepared`] arrives. Must not touch the board, nor any
//! branch or folder but the attempt's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Runtime;
use super::prepare::{Gate, Prepared, SnapshotJob};
use crate::core::config::WorktreeConfig;
use crate::core::event::EventKind;
use crate::core::settle::{AttemptEnd, ProcessEnd};
use crate::core::workspace::{RunRepo, attempt_names, patch_file};
use crate::shell::{run_dirs, worktrees};

/// Where an isolated run works, as the loop keeps it while the run is active.
pub(super) struct Isolation {
    /// The executor's folder: its one worktree, or the folder holding one per repository.
    pub(super) path: PathBuf,
    pub(super) gate: Arc<Gate>,
}

impl Runtime {
    /// Removes the worktrees retention allows (as `taskboard gc` does), on each rescan.
    pub(super) fn sweep_worktrees(&self) {
        let now = std::time::SystemTime::now();
        for swept in crate::shell::worktrees::sweep(&self.state_dir, &self.config, now, false) {
            let (Some(owner), Some(result), Some(retention)) =
                (&swept.found.owner, &swept.removed, swept.retention)
            else {
                continue;
            };
            match result {
                Ok(()) => self.emit(
                    Some(&owner.task),
                    EventKind::WorkspaceRemoved {
                        attempt: owner.attempt,
                        repo: owner.record.name.clone(),
                        path: swept.found.path.display().to_string(),
                        reason: retention.as_str().to_string(),
                    },
                ),
                Err(why) => self.error(
                    Some(&owner.task),
                    "workspace",
                    format!("the worktree {} is kept: {why}", swept.found.path.display()),
                ),
            }
        }
    }

    /// The repository a worktree route works in, made absolute: its `repo`, else the git work
    /// tree that holds the board.
    pub(super) fn route_repo(&self, cfg: &WorktreeConfig) -> Result<PathBuf, String> {
        match &cfg.repo {
            Some(repo) if repo.is_absolute() => Ok(repo.clone()),
            Some(repo) => Ok(self.board_dir.join(repo)),
            None => self.git_root.clone().ok_or_else(|| {
                format!(
                    "the route works in git worktrees, but {} is not in a git repository",
                    self.board_dir.display()
                )
            }),
        }
    }

    /// The folder an attempt's worktree is made in: under the state folder, ignored by git.
    pub(super) fn worktree_path(&self, id: &str, attempt: u32) -> PathBuf {
        let dir = self.state_dir.join(worktrees::FOLDER);
        // Whatever the person's ignore rules, git never lists what is in here.
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&ignore, "*\n"));
        }
        dir.join(attempt_names(id, attempt).folder)
    }

    /// An isolated run is going: `workspace_created` for each repository, then its pid into
    /// the lock and `task_dispatched`; or it ended before its executor started. Returns whether
    /// there is an ending to write.
    pub(super) fn prepared(&mut self, id: &str, attempt: u32, prepared: Prepared) -> bool {
        match self.active.get(id) {
            Some(active) if active.attempt == attempt => {}
            _ => return false,
        }
        match prepared {
            Prepared::Started {
                handle,
                home,
                repos,
            } => {
                if let Some(isolation) = self.active.get_mut(id).and_then(|a| a.isolation.as_mut())
                {
                    isolation.path = home;
                }
                for repo in repos {
                    self.emit(
                        Some(id),
                        EventKind::WorkspaceCreated {
                            attempt,
                            repo: repo.name,
                            path: repo.path,
                            branch: repo.branch,
                            base_branch: repo.base_branch,
                            base_commit: repo.base_commit,
                        },
                    );
                }
                self.started(id, handle);
                false
            }
            Prepared::Failed { reason, why } => {
                self.error(Some(id), "workspace", &why);
                self.not_started(id, AttemptEnd::not_started(reason))
            }
            Prepared::Stopped(cause) => {
                let end =
                    crate::core::settle::attempt_end(Some(cause), &ProcessEnd::Exited(-1), None);
                self.not_started(id, end)
            }
        }
    }

    /// What the snapshots of a finished isolated run say: `snapshot_saved` for each repository,
    /// and the files it changed (a named repository's under `<name>/`); or an `error` and
    /// `None`.
    pub(super) fn took_snapshot(
        &self,
        id: &str,
        attempt: u32,
        outcome: Result<Vec<RunRepo>, String>,
    ) -> Option<Vec<String>> {
        let repos = match outcome {
            Ok(repos) => repos,
            Err(why) => {
                self.error(Some(id), "snapshot", why);
                return None;
            }
        };
        let mut changed = Vec::new();
        for repo in repos {
            let Some(snap) = repo.snapshot else { continue };
            let (insertions, deletions) = snap.totals();
            self.emit(
                Some(id),
                EventKind::SnapshotSaved {
                    attempt,
                    repo: repo.name.clone(),
                    snapshot_ref: snap.snapshot_ref.clone(),
                    commit: snap.commit.clone(),
                    files: snap.files.len() as u64,
                    insertions,
                    deletions,
                },
            );
            changed.extend(snap.files.into_iter().map(|f| match &repo.name {
                Some(name) => format!("{name}/{}", f.path),
                None => f.path,
            }));
        }
        Some(changed)
    }

    /// Saves what a run left in its worktrees when the runtime that supervised it died (its
    /// lock is being broken): the newest isolated work attempt of `id` without snapshots gets
    /// them, so nothing the agent did is lost when the next attempt starts afresh.
    pub(super) fn save_left_work(&self, id: &str) {
        let Some((attempt, run_dir, route, repos)) = unsaved_attempt(&self.state_dir, id) else {
            return;
        };
        let job = SnapshotJob {
            run_dir,
            route,
            snapshot_ref: attempt_names(id, attempt).snapshot_ref,
            repos,
        };
        match job.save() {
            Ok(saved) => {
                let _ = self.took_snapshot(id, attempt, Ok(saved));
            }
            Err(why) => self.error(Some(id), "recovery", why),
        }
    }
}

/// The newest work attempt of `id` whose run folder names worktrees but no snapshots.
fn unsaved_attempt(state_dir: &Path, id: &str) -> Option<(u32, PathBuf, String, Vec<RunRepo>)> {
    let runs = run_dirs::runs(state_dir, id).ok()?;
    let newest = runs.into_iter().rfind(|r| !r.review)?;
    let doc = worktrees::read_record(&newest.path)?;
    let unsaved = doc.repos.iter().all(|r| r.snapshot.is_none()) && !doc.repos.is_empty();
    unsaved.then(|| {
        (
            newest.attempt,
            newest.path,
            doc.route.unwrap_or_default(),
            doc.repos,
        )
    })
}

/// The folder an isolated attempt's executor worked in: its one worktree, or the folder holding
/// one per named repository.
pub(super) fn home_of(repos: &[RunRepo]) -> Option<PathBuf> {
    match repos {
        [one] if one.name.is_none() => Some(PathBuf::from(&one.path)),
        [first, ..] => Path::new(&first.path).parent().map(Path::to_path_buf),
        [] => None,
    }
}

/// Every saved patch of the attempt in `run_dir`, a named repository's under a header naming
/// it; `None` when it saved none.
pub(super) fn saved_patches(run_dir: &Path) -> Option<String> {
    let doc = worktrees::read_record(run_dir)?;
    let mut out = String::new();
    for repo in &doc.repos {
        let bytes = std::fs::read(run_dir.join(patch_file(repo.name.as_deref()))).ok()?;
        if let Some(name) = &repo.name {
            out.push_str(&format!("# repository {name}\n"));
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    Some(out)
}
