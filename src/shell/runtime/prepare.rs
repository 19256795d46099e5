//! The thread that gets an isolated run going, and the job that saves what it changed.
//!
//! Owns, for each repository an attempt works in (the route's one, or each a task names in
//! `repos:`): fixing the base (branch and exact commit), making the worktree, copying the
//! untracked files it needs; then `workspace.json`, the route's `setup`, and starting the
//! executor, whose end is sent to the loop only after [`Msg::Prepared`]. When the run ends, the
//! [`SnapshotJob`] saves every repository's change (a snapshot commit, a patch) on the run's
//! supervisor thread. A stop asked meanwhile goes through the [`Gate`]. Must not touch the
//! board, the state file or the event log (the loop reports what arrives), nor any branch or
//! folder but the attempt's own.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Msg;
use crate::core::settle::{NO_BASE_BRANCH, ProcessEnd, StopCause};
use crate::core::workspace::{
    Glob, RunRepo, RunWorkspace, SavedSnapshot, WORKSPACE_FILE, attempt_names, patch_file,
};
use crate::shell::exec;
use crate::shell::workspace;

/// The environment variables an isolated run adds to the `TASKBOARD_*` set.
pub const WORKTREE_VAR: &str = "TASKBOARD_WORKTREE";
pub const BASE_BRANCH_VAR: &str = "TASKBOARD_BASE_BRANCH";
pub const BASE_COMMIT_VAR: &str = "TASKBOARD_BASE_COMMIT";
pub const REPOS_VAR: &str = "TASKBOARD_REPOS";

/// Between the loop and a run being prepared: a stop asked before or while it starts.
#[derive(Default)]
pub(super) struct Gate {
    inner: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    stop: Option<StopCause>,
    /// The process running now (the setup command, then the executor).
    running: Option<exec::LocalHandle>,
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
    fn running(&self, handle: Option<exec::LocalHandle>) {
        let mut state = self.state();
        if let (Some(cause), Some(h)) = (state.stop, &handle) {
            h.stop(cause);
        }
        state.running = handle;
    }
}

/// How getting an isolated run going ended.
pub enum Prepared {
    /// The executor runs in `home`, with a worktree of each repository in `repos`.
    Started {
        handle: exec::LocalHandle,
        home: PathBuf,
        repos: Vec<RunRepo>,
    },
    /// The attempt fails with `reason` (its status reason), `why` said in an `error` event.
    Failed { reason: &'static str, why: String },
    /// A stop was asked before the executor started.
    Stopped(StopCause),
}

/// What a finished isolated run's repositories saved, or why not (`None`: a shared run).
pub type SnapshotOutcome = Option<Box<Result<Vec<RunRepo>, String>>>;

/// One repository an attempt works in.
pub(super) struct RepoPlan {
    /// Its `[repos]` name; `None` for the route's one repository.
    pub(super) name: Option<String>,
    pub(super) repo: PathBuf,
    /// Where its worktree goes.
    pub(super) path: PathBuf,
    /// The base branch asked for; `None`: the repository's current branch.
    pub(super) base_branch: Option<String>,
}

/// Everything the preparing thread needs.
pub(super) struct Preparation {
    pub(super) id: String,
    pub(super) attempt: u32,
    pub(super) route: String,
    /// Where the executor works: the one worktree, or the folder holding one per repository.
    pub(super) home: PathBuf,
    pub(super) repos: Vec<RepoPlan>,
    pub(super) include: Vec<Glob>,
    /// The `setup` command, its program resolved like the executor's.
    pub(super) setup: Option<Vec<String>>,
    /// The worktrees of the attempt a review sent back: the work goes on there, from the same
    /// bases, when they are all still on disk.
    pub(super) continue_in: Option<Vec<RunRepo>>,
    /// The executor's spec (its `cwd` is set to `home`).
    pub(super) spec: exec::AttemptSpec,
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
    let (prepared, told) = match ready(&prep, gate) {
        Ok(repos) => start_executor(prep, repos, gate, tx),
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

fn failed(reason: &'static str) -> impl Fn(String) -> Prepared {
    move |why| Prepared::Failed { reason, why }
}

/// Every repository's worktree, `workspace.json` and the setup command.
fn ready(prep: &Preparation, gate: &Gate) -> Result<Vec<RunRepo>, Prepared> {
    if let Some(stop) = gate.stopped() {
        return Err(Prepared::Stopped(stop));
    }
    let record = |repos: &[RunRepo]| {
        write_record(&prep.spec.run_dir, &prep.route, repos).map_err(failed("run_dir_unavailable"))
    };
    if let Some(prev) = &prep.continue_in
        && prev
            .iter()
            .all(|r| Path::new(&r.path).join(".git").exists())
    {
        let repos: Vec<RunRepo> = prev
            .iter()
            .map(|r| RunRepo {
                snapshot: None,
                ..r.clone()
            })
            .collect();
        record(&repos)?;
        return Ok(repos);
    }
    let mut made: Vec<RunRepo> = Vec::new();
    for plan in &prep.repos {
        match make_worktree(prep, plan) {
            Ok(repo) => made.push(repo),
            Err(not) => {
                // Fresh and empty: nothing of anyone's is in them.
                for repo in &made {
                    let _ = workspace::cleanup_partial(
                        Path::new(&repo.repo),
                        Path::new(&repo.path),
                        &repo.branch,
                    );
                }
                return Err(not);
            }
        }
    }
    record(&made)?;
    if let Some(setup) = &prep.setup {
        run_setup(prep, setup, &made, gate)?;
    }
    match gate.stopped() {
        Some(stop) => Err(Prepared::Stopped(stop)),
        None => Ok(made),
    }
}

/// One repository's base, worktree and copied untracked files.
fn make_worktree(prep: &Preparation, plan: &RepoPlan) -> Result<RunRepo, Prepared> {
    let named = |e: workspace::GitError| match &plan.name {
        Some(name) => format!("repository `{name}`: {e}"),
        None => e.to_string(),
    };
    let base_branch = match &plan.base_branch {
        Some(b) => b.clone(),
        None => {
            workspace::current_branch(&plan.repo).map_err(|e| failed(NO_BASE_BRANCH)(named(e)))?
        }
    };
    let base_commit = workspace::resolve_branch(&plan.repo, &base_branch)
        .map_err(|e| failed(NO_BASE_BRANCH)(named(e)))?;
    let branch = attempt_names(&prep.id, prep.attempt).branch;
    workspace::create_worktree(&plan.repo, &plan.path, &branch, &base_commit)
        .map_err(|e| failed("workspace_failed")(named(e)))?;
    workspace::copy_untracked(&plan.repo, &plan.path, &prep.include)
        .map_err(|e| failed("workspace_failed")(named(e)))?;
    Ok(RunRepo {
        name: plan.name.clone(),
        repo: plan.repo.display().to_string(),
        path: plan.path.display().to_string(),
        branch,
        base_branch,
        base_commit,
        snapshot: None,
    })
}

/// The variables that tell a process where it works: the worktree (or the folder of them);
/// the base of a single repository, or the names of several.
pub(super) fn isolation_env(home: &Path, repos: &[RunRepo]) -> Vec<(String, String)> {
    let mut env = vec![(WORKTREE_VAR.to_string(), home.display().to_string())];
    match repos {
        [one] if one.name.is_none() => {
            env.push((BASE_BRANCH_VAR.to_string(), one.base_branch.clone()));
            env.push((BASE_COMMIT_VAR.to_string(), one.base_commit.clone()));
        }
        several => {
            let names: Vec<&str> = several.iter().filter_map(|r| r.name.as_deref()).collect();
            env.push((REPOS_VAR.to_string(), names.join(" ")));
        }
    }
    env
}

/// Runs the route's `setup` where the executor will run, as a run of its own (its output in
/// `setup/` of the run folder, the executor's timeout, stopped whole like any run).
fn run_setup(
    prep: &Preparation,
    argv: &[String],
    repos: &[RunRepo],
    gate: &Gate,
) -> Result<(), Prepared> {
    let run_dir = prep.spec.run_dir.join("setup");
    let failed = failed("setup_failed");
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", run_dir.display())))?;
    let mut env = prep.spec.env.clone();
    env.extend(isolation_env(&prep.home, repos));
    let spec = exec::AttemptSpec {
        argv: argv.to_vec(),
        cwd: prep.home.clone(),
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
                ProcessEnd::Lost(why) => why.clone(),
            };
            let last = finished.stderr_tail.trim().lines().last().unwrap_or("");
            Err(failed(format!(
                "the setup command ended with {how}: {last}"
            )))
        }
    }
}

/// Starts the executor in the ready worktrees. Its end is sent only once the returned sender
/// signals, which the caller does after sending [`Msg::Prepared`].
fn start_executor(
    prep: Preparation,
    repos: Vec<RunRepo>,
    gate: &Gate,
    tx: &Sender<Msg>,
) -> (Prepared, Option<Sender<()>>) {
    let mut spec = prep.spec;
    spec.cwd = prep.home.clone();
    spec.env.extend(isolation_env(&prep.home, &repos));
    let job = SnapshotJob {
        run_dir: spec.run_dir.clone(),
        route: prep.route.clone(),
        snapshot_ref: attempt_names(&prep.id, prep.attempt).snapshot_ref,
        repos: repos.clone(),
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
            evidence: None,
        });
    });
    match started {
        Ok(handle) => {
            gate.running(Some(handle.clone()));
            let prepared = Prepared::Started {
                handle,
                home: prep.home,
                repos,
            };
            (prepared, Some(told_tx))
        }
        Err(e) => (
            failed("spawn_failed")(format!("cannot start the executor: {e}")),
            None,
        ),
    }
}

/// Saving what an isolated run changed, in every repository it worked in.
pub(super) struct SnapshotJob {
    pub(super) run_dir: PathBuf,
    pub(super) route: String,
    /// The same ref name in each repository: `refs/taskboard/snapshots/<ID>/<attempt>`.
    pub(super) snapshot_ref: String,
    pub(super) repos: Vec<RunRepo>,
}

impl SnapshotJob {
    /// Each repository's snapshot commit under `refs/taskboard/`, its patch beside
    /// `workspace.json`, and the record updated with them. All or nothing: a repository that
    /// cannot be saved fails the job (the ones saved stay saved).
    pub(super) fn save(self) -> Result<Vec<RunRepo>, String> {
        let mut saved = Vec::new();
        for repo in &self.repos {
            let snapshot = save_one(&self.run_dir, repo, &self.snapshot_ref)?;
            saved.push(RunRepo {
                snapshot: Some(snapshot),
                ..repo.clone()
            });
        }
        write_record(&self.run_dir, &self.route, &saved)?;
        Ok(saved)
    }
}

fn save_one(run_dir: &Path, record: &RunRepo, snapshot_ref: &str) -> Result<SavedSnapshot, String> {
    let worktree = Path::new(&record.path);
    let repo = Path::new(&record.repo);
    let which = record
        .name
        .as_ref()
        .map_or(String::new(), |n| format!(" of repository `{n}`"));
    if !worktree.is_dir() {
        return Err(format!(
            "the worktree{which} {} is gone: nothing of this run could be saved",
            worktree.display()
        ));
    }
    let base = &record.base_commit;
    let snap = workspace::snapshot(worktree, base, snapshot_ref)
        .map_err(|e| format!("cannot save what the run changed{which}: {e}"))?;
    let patch = run_dir.join(patch_file(record.name.as_deref()));
    workspace::write_patch(repo, base, &snap.commit, &patch)
        .map_err(|e| format!("cannot write {}: {e}", patch.display()))?;
    Ok(SavedSnapshot {
        snapshot_ref: snapshot_ref.to_string(),
        commit: snap.commit,
        files: snap.files,
    })
}

/// Writes `workspace.json` into `run_dir` (a temporary file renamed into place).
fn write_record(run_dir: &Path, route: &str, repos: &[RunRepo]) -> Result<(), String> {
    let doc = RunWorkspace {
        route: Some(route.to_string()),
        repos: repos.to_vec(),
    };
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    let path = run_dir.join(WORKSPACE_FILE);
    let tmp = run_dir.join(format!(".{WORKSPACE_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
