//! Isolated runs: an attempt on a `workspace = "worktree"` route works in a git worktree of its
//! own, and what it changed is saved when it ends.
//!
//! Owns getting the worktree ready (base branch and commit, the worktree, the untracked files
//! it needs, the `setup` command) and then starting the executor there; the snapshot when the
//! run ends, taken on the run's supervisor thread before its ending reaches the loop; the run
//! folder's `workspace.json` and patch; saving what a dead runtime's run left; the workspace
//! events; and, on each rescan, removing the worktrees retention allows
//! (`shell::worktrees::sweep`, as `gc` does). Making a worktree on a large repository takes
//! seconds, so it never runs on the loop: the run is `Active` without a handle until
//! [`Msg::Prepared`] arrives. A stop asked meanwhile (a person's decision, the runtime stopping)
//! goes through the [`Gate`]: the preparation ends at its next step and the executor never
//! starts, or is stopped as soon as it has. Must not touch the board, nor any branch or folder
//! but the attempt's own.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Msg, Runtime};
use crate::core::config::WorktreeConfig;
use crate::core::event::EventKind;
use crate::core::settle::{AttemptEnd, NO_BASE_BRANCH, ProcessEnd, StopCause};
use crate::core::workspace::{
    Glob, RunRepo, RunWorkspace, SavedSnapshot, WORKSPACE_FILE, attempt_names, patch_file,
};
use crate::shell::exec;
use crate::shell::{workspace, worktrees};

/// The environment variables an isolated run adds to the `TASKBOARD_*` set.
pub const WORKTREE_VAR: &str = "TASKBOARD_WORKTREE";
pub const BASE_BRANCH_VAR: &str = "TASKBOARD_BASE_BRANCH";
pub const BASE_COMMIT_VAR: &str = "TASKBOARD_BASE_COMMIT";

/// Where an isolated run works, as the loop keeps it while the run is active.
pub(super) struct Isolation {
    pub(super) path: PathBuf,
    pub(super) gate: Arc<Gate>,
}

/// Between the loop and a run being prepared: a stop asked before or while it starts.
#[derive(Default)]
pub(super) struct Gate {
    inner: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    stop: Option<StopCause>,
    /// The process running now (the setup command, then the executor).
    running: Option<exec::RunHandle>,
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the run to stop: what runs now is stopped, and nothing more starts.
    pub(super) fn stop(&self, cause: StopCause) {
        let mut state = self.state();
        state.stop.get_or_insert(cause);
        if let Some(handle) = &state.running {
            handle.stop(cause);
        }
    }

    fn stopped(&self) -> Option<StopCause> {
        self.state().stop
    }

    /// Notes the process now running; one started after a stop was asked is stopped at once.
    fn running(&self, handle: Option<exec::RunHandle>) {
        let mut state = self.state();
        if let (Some(cause), Some(h)) = (state.stop, &handle) {
            h.stop(cause);
        }
        state.running = handle;
    }
}

/// How getting an isolated run going ended.
pub enum Prepared {
    /// The executor runs in the worktree.
    Started {
        handle: exec::RunHandle,
        base_branch: String,
        base_commit: String,
        branch: String,
        path: PathBuf,
    },
    /// The attempt fails with `reason` (its status reason), `why` said in an `error` event.
    Failed { reason: &'static str, why: String },
    /// A stop was asked before the executor started.
    Stopped(StopCause),
}

/// The snapshot of a finished isolated run, or why there is none (`None`: a shared run).
pub type SnapshotOutcome = Option<Box<Result<SavedSnapshot, String>>>;

/// Everything the preparing thread needs.
pub(super) struct Preparation {
    pub(super) id: String,
    pub(super) attempt: u32,
    pub(super) route: String,
    pub(super) repo: PathBuf,
    pub(super) path: PathBuf,
    /// The task's or the route's base branch; `None`: the repository's current branch.
    pub(super) base_branch: Option<String>,
    pub(super) include: Vec<Glob>,
    /// The `setup` command, its program resolved like the executor's.
    pub(super) setup: Option<Vec<String>>,
    /// The worktree of the attempt a review sent back: the work goes on there, from the same
    /// base, when it is still on disk.
    pub(super) continue_in: Option<RunRepo>,
    /// The executor's spec; its `cwd` is the worktree.
    pub(super) spec: exec::Spec,
}

/// Starts preparing `prep` on a thread of its own; its end arrives as [`Msg::Prepared`], and the
/// executor's end (with its snapshot) as [`Msg::Finished`] after that.
pub(super) fn prepare(prep: Preparation, gate: Arc<Gate>, tx: Sender<Msg>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("prepare:{}", prep.id))
        .spawn(move || prepare_and_start(prep, &gate, &tx))
        .map(|_| ())
}

fn prepare_and_start(prep: Preparation, gate: &Gate, tx: &Sender<Msg>) {
    let (id, attempt) = (prep.id.clone(), prep.attempt);
    let (prepared, told) = match ready_worktree(&prep, gate) {
        Ok(record) => start_executor(prep, record, gate, tx),
        Err(not) => (not, None),
    };
    let _ = tx.send(Msg::Prepared {
        id,
        attempt,
        prepared: Box::new(prepared),
    });
    // Only now may the executor's end follow: the loop learns that the run started first.
    if let Some(told) = told {
        let _ = told.send(());
    }
}

/// The base, the worktree, its untracked files, `workspace.json` and the setup command.
fn ready_worktree(prep: &Preparation, gate: &Gate) -> Result<RunRepo, Prepared> {
    let stopped = || gate.stopped().map(Prepared::Stopped);
    if let Some(stop) = stopped() {
        return Err(stop);
    }
    let failed = |reason: &'static str| {
        move |e: workspace::GitError| Prepared::Failed {
            reason,
            why: e.to_string(),
        }
    };
    if let Some(prev) = &prep.continue_in
        && Path::new(&prev.path).join(".git").exists()
    {
        let record = RunRepo {
            snapshot: None,
            ..prev.clone()
        };
        write_record(&prep.spec.run_dir, &prep.route, &record).map_err(|why| Prepared::Failed {
            reason: "run_dir_unavailable",
            why,
        })?;
        return Ok(record);
    }
    let base_branch = match &prep.base_branch {
        Some(b) => b.clone(),
        None => workspace::current_branch(&prep.repo).map_err(failed(NO_BASE_BRANCH))?,
    };
    let base_commit =
        workspace::resolve_branch(&prep.repo, &base_branch).map_err(failed(NO_BASE_BRANCH))?;
    let names = attempt_names(&prep.id, prep.attempt);
    workspace::create_worktree(&prep.repo, &prep.path, &names.branch, &base_commit)
        .map_err(failed("workspace_failed"))?;
    workspace::copy_untracked(&prep.repo, &prep.path, &prep.include)
        .map_err(failed("workspace_failed"))?;
    let record = RunRepo {
        name: None,
        repo: prep.repo.display().to_string(),
        path: prep.path.display().to_string(),
        branch: names.branch,
        base_branch,
        base_commit,
        snapshot: None,
    };
    write_record(&prep.spec.run_dir, &prep.route, &record).map_err(|why| Prepared::Failed {
        reason: "run_dir_unavailable",
        why,
    })?;
    if let Some(setup) = &prep.setup {
        run_setup(prep, setup, &record, gate)?;
    }
    match stopped() {
        Some(stop) => Err(stop),
        None => Ok(record),
    }
}

/// The variables that tell a process where it works.
pub(super) fn isolation_env(record: &RunRepo) -> [(String, String); 3] {
    [
        (WORKTREE_VAR.to_string(), record.path.clone()),
        (BASE_BRANCH_VAR.to_string(), record.base_branch.clone()),
        (BASE_COMMIT_VAR.to_string(), record.base_commit.clone()),
    ]
}

/// Runs the route's `setup` in the worktree as a run of its own (its output in `setup/` of the
/// run folder, the executor's timeout, stopped whole like any run).
fn run_setup(
    prep: &Preparation,
    argv: &[String],
    record: &RunRepo,
    gate: &Gate,
) -> Result<(), Prepared> {
    let run_dir = prep.spec.run_dir.join("setup");
    let failed = |why: String| Prepared::Failed {
        reason: "setup_failed",
        why,
    };
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", run_dir.display())))?;
    let mut env = prep.spec.env.clone();
    env.extend(isolation_env(record));
    let spec = exec::Spec {
        argv: argv.to_vec(),
        env,
        stdin: Vec::new(),
        run_dir,
        ..prep.spec.clone()
    };
    let (done_tx, done_rx) = mpsc::channel();
    let handle = exec::start(spec, move |finished| {
        let _ = done_tx.send(finished);
    })
    .map_err(|e| failed(format!("cannot start the setup command: {e}")))?;
    gate.running(Some(handle));
    let finished = done_rx.recv();
    gate.running(None);
    let finished = finished.map_err(|_| failed("the setup command's end was lost".into()))?;
    match (finished.stopped, &finished.ending) {
        (Some(StopCause::Timeout), _) => Err(failed("the setup command timed out".into())),
        (Some(cause), _) => Err(Prepared::Stopped(cause)),
        (None, ProcessEnd::Exited(0)) => Ok(()),
        (None, ending) => {
            let how = match ending {
                ProcessEnd::Exited(code) => format!("exit code {code}"),
                ProcessEnd::Signaled { name, .. } => name.clone(),
            };
            let last = finished.stderr_tail.trim().lines().last().unwrap_or("");
            Err(failed(format!(
                "the setup command ended with {how}: {last}"
            )))
        }
    }
}

/// Starts the executor in the ready worktree. Its end is sent only once the returned sender
/// signals, which the caller does after sending [`Msg::Prepared`].
fn start_executor(
    prep: Preparation,
    record: RunRepo,
    gate: &Gate,
    tx: &Sender<Msg>,
) -> (Prepared, Option<Sender<()>>) {
    let mut spec = prep.spec;
    spec.cwd = PathBuf::from(&record.path);
    spec.env.extend(isolation_env(&record));
    let names = attempt_names(&prep.id, prep.attempt);
    let job = SnapshotJob {
        run_dir: spec.run_dir.clone(),
        route: prep.route.clone(),
        record: record.clone(),
        snapshot_ref: names.snapshot_ref,
    };
    let (told_tx, told_rx) = mpsc::channel::<()>();
    let (tx, id, attempt) = (tx.clone(), prep.id.clone(), prep.attempt);
    let started = exec::start(spec, move |finished| {
        let _ = told_rx.recv();
        let snapshot = Some(Box::new(job.save()));
        let _ = tx.send(Msg::Finished {
            id,
            attempt,
            finished,
            snapshot,
        });
    });
    match started {
        Ok(handle) => {
            gate.running(Some(handle.clone()));
            let prepared = Prepared::Started {
                handle,
                base_branch: record.base_branch,
                base_commit: record.base_commit,
                branch: record.branch,
                path: PathBuf::from(record.path),
            };
            (prepared, Some(told_tx))
        }
        Err(e) => {
            let failed = Prepared::Failed {
                reason: "spawn_failed",
                why: format!("cannot start the executor: {e}"),
            };
            (failed, None)
        }
    }
}

/// Saving what an isolated run changed.
struct SnapshotJob {
    run_dir: PathBuf,
    route: String,
    record: RunRepo,
    snapshot_ref: String,
}

impl SnapshotJob {
    /// The snapshot commit under `refs/taskboard/`, the patch beside `workspace.json`, and the
    /// record updated with both.
    fn save(self) -> Result<SavedSnapshot, String> {
        let worktree = Path::new(&self.record.path);
        let repo = Path::new(&self.record.repo);
        if !worktree.is_dir() {
            return Err(format!(
                "the worktree {} is gone: nothing of this run could be saved",
                worktree.display()
            ));
        }
        let base = &self.record.base_commit;
        let snap = workspace::snapshot(worktree, base, &self.snapshot_ref)
            .map_err(|e| format!("cannot save what the run changed: {e}"))?;
        let patch = self.run_dir.join(patch_file(None));
        workspace::write_patch(repo, base, &snap.commit, &patch)
            .map_err(|e| format!("cannot write {}: {e}", patch.display()))?;
        let saved = SavedSnapshot {
            snapshot_ref: self.snapshot_ref,
            commit: snap.commit,
            files: snap.files,
        };
        let record = RunRepo {
            snapshot: Some(saved.clone()),
            ..self.record
        };
        write_record(&self.run_dir, &self.route, &record)?;
        Ok(saved)
    }
}

/// Writes `workspace.json` for `record` into `run_dir` (a temporary file renamed into place).
fn write_record(run_dir: &Path, route: &str, record: &RunRepo) -> Result<(), String> {
    let doc = RunWorkspace {
        route: Some(route.to_string()),
        repos: vec![record.clone()],
    };
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    let path = run_dir.join(WORKSPACE_FILE);
    let tmp = run_dir.join(format!(".{WORKSPACE_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
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

    /// An isolated run is going: its pid into the lock, `workspace_created`, `task_dispatched`.
    /// Returns false when the run is not this runtime's any more.
    pub(super) fn prepared(&mut self, id: &str, attempt: u32, prepared: Prepared) -> bool {
        let Some(active) = self.active.get(id) else {
            return false;
        };
        if active.attempt != attempt {
            return false;
        }
        match prepared {
            Prepared::Started {
                handle,
                base_branch,
                base_commit,
                branch,
                path,
            } => {
                if let Some(isolation) = self.active.get_mut(id).and_then(|a| a.isolation.as_mut())
                {
                    isolation.path = path.clone();
                }
                self.emit(
                    Some(id),
                    EventKind::WorkspaceCreated {
                        attempt,
                        repo: None,
                        path: path.display().to_string(),
                        branch,
                        base_branch,
                        base_commit,
                    },
                );
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

    /// What the snapshot of a finished isolated run says: `snapshot_saved` and the files it
    /// changed, or an `error` and `None`.
    pub(super) fn took_snapshot(
        &self,
        id: &str,
        attempt: u32,
        outcome: Result<SavedSnapshot, String>,
    ) -> Option<Vec<String>> {
        match outcome {
            Ok(snap) => {
                let (insertions, deletions) = snap.totals();
                self.emit(
                    Some(id),
                    EventKind::SnapshotSaved {
                        attempt,
                        repo: None,
                        snapshot_ref: snap.snapshot_ref.clone(),
                        commit: snap.commit.clone(),
                        files: snap.files.len() as u64,
                        insertions,
                        deletions,
                    },
                );
                Some(snap.files.into_iter().map(|f| f.path).collect())
            }
            Err(why) => {
                self.error(Some(id), "snapshot", why);
                None
            }
        }
    }

    /// Saves what a run left in its worktree when the runtime that supervised it died (its
    /// lock is being broken): the newest isolated work attempt of `id` without a snapshot gets
    /// one, so nothing the agent did is lost when the next attempt starts afresh.
    pub(super) fn save_left_work(&self, id: &str) {
        let Some((attempt, run_dir, route, record)) = unsaved_attempt(&self.state_dir, id) else {
            return;
        };
        let job = SnapshotJob {
            run_dir,
            route,
            snapshot_ref: attempt_names(id, attempt).snapshot_ref,
            record,
        };
        match job.save() {
            Ok(snap) => {
                let _ = self.took_snapshot(id, attempt, Ok(snap));
            }
            Err(why) => self.error(Some(id), "recovery", why),
        }
    }
}

/// The newest work attempt of `id` whose run folder names a worktree but no snapshot.
fn unsaved_attempt(state_dir: &Path, id: &str) -> Option<(u32, PathBuf, String, RunRepo)> {
    let runs = std::fs::read_dir(state_dir.join("runs").join(id)).ok()?;
    let mut found: Vec<(u32, String, PathBuf)> = runs
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (n, rest) = name.split_once('-')?;
            (!rest.starts_with("review")).then_some(())?;
            Some((n.parse().ok()?, rest.to_string(), e.path()))
        })
        .collect();
    found.sort();
    let (attempt, _, run_dir) = found.pop()?;
    let doc = worktrees::read_record(&run_dir)?;
    let route = doc.route.unwrap_or_default();
    let record = doc.repos.into_iter().next()?;
    record
        .snapshot
        .is_none()
        .then_some((attempt, run_dir, route, record))
}
