//! One executor attempt on another machine: a Slurm job or a process on an SSH host.
//!
//! Owns a remote run from its launch to its end: putting its folder on the far side (packet,
//! `env`, the wrapper script from `core::remote`), starting it, following it, stopping it
//! whole (a timeout, a person's cancel, the runtime stopping), and bringing its logs, result
//! file and exit code back into the attempt's run folder here, then removing its far folder.
//! The end is reported through `on_exit` as the same [`exec::Finished`] a local run gives, so
//! the runtime settles both alike; where the run went is reported through `on_report` as soon
//! as it is known, so the runtime can name it in the task's lock before anything else happens.
//! A run whose host cannot be reached or whose job vanished ends as [`ProcessEnd::Lost`].
//!
//! It must not know about boards, statuses, events or locks, and it signals nothing on this
//! machine but the `ssh`, `sbatch`, `squeue` and `scancel` processes it starts.
//!
//! Threads per run: a driver (launch, wait, collect), a watchdog for the timeout, and a
//! stopper while a stop is under way. The far side enforces the timeout too, so a run this
//! side lost contact with still ends.

pub mod command;
pub mod slurm;
pub mod ssh;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::core::remote::{self, FarEnding, Placement};
use crate::core::settle::{ProcessEnd, StopCause};
use crate::shell::exec::{self, CappedLog};
use crate::shell::process;

/// How long past its deadline (timeout + grace + the far side's margin) a run this side cannot
/// reach is given before it is taken for lost: the far side has stopped it by then.
pub const LOST_AFTER_DEADLINE: Duration = Duration::from_secs(10);

/// How long a stop waits for an unreachable far side before the run is taken for lost.
pub const STOP_GIVE_UP: Duration = Duration::from_secs(30);

/// The engine a run goes to.
#[derive(Debug, Clone)]
pub enum Engine {
    Ssh(ssh::Ssh),
    Slurm(slurm::Slurm),
}

impl Engine {
    fn launch(&self, job: &Job, launch: &RemoteLaunch) -> Result<Placement, (String, String)> {
        match self {
            Engine::Ssh(s) => s.launch(job, launch),
            Engine::Slurm(s) => s.launch(job, launch),
        }
    }

    /// Whether the run's `status` is there already.
    fn ended(&self, placement: &Placement) -> bool {
        match self {
            Engine::Ssh(s) => s.ended(placement),
            Engine::Slurm(s) => s.ended(placement),
        }
    }

    fn wait(&self, shared: &RemoteRunShared, job: &Job, on_report: &dyn Fn(Report)) -> WaitEnd {
        match self {
            Engine::Ssh(s) => s.wait(shared, job),
            Engine::Slurm(s) => s.wait(shared, job, on_report),
        }
    }

    fn collect(&self, placement: &Placement, job: &Job) -> Collected {
        match self {
            Engine::Ssh(s) => s.collect(placement, job),
            Engine::Slurm(s) => s.collect(placement, job),
        }
    }

    fn remove(&self, placement: &Placement) {
        match self {
            Engine::Ssh(s) => s.remove(placement),
            Engine::Slurm(s) => s.remove(placement),
        }
    }

    fn signal(&self, placement: &Placement, sig: &str, why: &str) {
        match self {
            Engine::Ssh(s) => s.signal(placement, sig, why),
            Engine::Slurm(s) => s.signal(placement, sig, why),
        }
    }

    /// Why a run that failed on its own ended, when the engine knows better than its exit code
    /// (Slurm: its node failed, an administrator cancelled it, it was preempted).
    fn why_failed(&self, placement: &Placement) -> Option<String> {
        match self {
            Engine::Ssh(_) => None,
            Engine::Slurm(s) => s
                .final_state(placement)
                .filter(|state| state != "failed")
                .map(|state| format!("slurm_{state}")),
        }
    }
}

/// A new run's command line, environment and packet.
#[derive(Debug, Clone)]
pub struct RemoteLaunch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// One remote run as the driver follows it.
#[derive(Debug, Clone)]
pub struct Job {
    pub engine: Engine,
    /// Where it is; `dir` is set before launch, the rest as the engine reports it.
    pub placement: Placement,
    /// The attempt's run folder here: logs and the result file are copied into it.
    pub run_dir: PathBuf,
    pub result_path: PathBuf,
    pub output_cap: u64,
    pub grace: Duration,
    /// When this side's timeout stops it, if it has one.
    pub deadline: Option<Instant>,
    /// A name for it the engine shows (Slurm's job name): `taskboard-<ID>-<attempt>`.
    pub name: String,
}

/// What the driver learns on the way, for the runtime to record.
#[derive(Debug, Clone)]
pub enum Report {
    /// Started (SSH: its process group; Slurm: its job ID).
    Placed(Placement),
    /// A Slurm job left the queue for a node.
    Running(Placement),
    /// A run a runtime that died left is followed now; whether it had already ended.
    Adopted { finished: bool },
}

/// What the far side said while the run was followed.
pub(crate) enum WaitEnd {
    /// Its `status` is there.
    Ended,
    /// It is gone without one: the reason.
    Lost(String),
}

/// A cheap, cloneable handle on a remote run.
#[derive(Clone)]
pub struct RemoteHandle {
    shared: Arc<RemoteRunShared>,
}

impl std::fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHandle")
            .field("placement", &self.shared.lock().placement)
            .finish()
    }
}

pub(crate) struct RemoteRunShared {
    engine: Engine,
    grace: Duration,
    state: Mutex<RemoteRunState>,
    changed: Condvar,
}

pub(crate) struct RemoteRunState {
    pub(crate) placement: Placement,
    /// Why this side stopped the run, and when it asked.
    stopped: Option<(StopCause, Instant)>,
    ended: bool,
}

impl RemoteRunShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RemoteRunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the run has ended or `until` has passed; whether it ended.
    fn ended_by(&self, until: Instant) -> bool {
        let mut state = self.lock();
        while !state.ended && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.ended
    }

    /// A stop was asked for this long ago, if one was.
    pub(crate) fn stop_age(&self) -> Option<Duration> {
        self.lock().stopped.map(|(_, at)| at.elapsed())
    }
}

impl RemoteHandle {
    /// Where the run is now.
    pub fn placement(&self) -> Placement {
        self.shared.lock().placement.clone()
    }

    /// Stops the whole remote run: SIGTERM to its process group now (Slurm: to the job),
    /// SIGKILL after the grace period. Non-blocking; only the first call has an effect.
    pub fn stop(&self, cause: StopCause) {
        request_stop(&self.shared, cause);
    }
}

fn request_stop(shared: &Arc<RemoteRunShared>, cause: StopCause) {
    {
        let mut state = shared.lock();
        if state.ended || state.stopped.is_some() {
            return;
        }
        state.stopped = Some((cause, Instant::now()));
        shared.changed.notify_all();
    }
    spawn_stopper(shared, cause);
}

fn spawn_stopper(shared: &Arc<RemoteRunShared>, cause: StopCause) {
    let shared = Arc::clone(shared);
    let _ = thread::Builder::new()
        .name("remote-stop".into())
        .spawn(move || stopper(&shared, cause));
}

/// SIGTERM, then SIGKILL once the grace period is over and the run has not ended.
fn stopper(shared: &RemoteRunShared, cause: StopCause) {
    let why = match cause {
        StopCause::Cancelled => "cancelled",
        StopCause::Shutdown => "shutdown",
        StopCause::Timeout => "timeout",
    };
    let placement = shared.lock().placement.clone();
    shared.engine.signal(&placement, "TERM", why);
    if !shared.ended_by(Instant::now() + shared.grace) {
        let placement = shared.lock().placement.clone();
        shared.engine.signal(&placement, "KILL", why);
    }
}

/// Starts a new remote run (`launch`), or follows one a runtime that died left (`None`):
/// a driver thread launches it if new, follows it to its end, brings its files back and
/// calls `on_exit` exactly once.
pub fn start(
    job: Job,
    launch: Option<RemoteLaunch>,
    on_report: impl Fn(Report) + Send + 'static,
    on_exit: impl FnOnce(exec::Finished) + Send + 'static,
) -> std::io::Result<RemoteHandle> {
    let shared = Arc::new(RemoteRunShared {
        engine: job.engine.clone(),
        grace: job.grace,
        state: Mutex::new(RemoteRunState {
            placement: job.placement.clone(),
            stopped: None,
            ended: false,
        }),
        changed: Condvar::new(),
    });
    let driver_shared = Arc::clone(&shared);
    thread::Builder::new()
        .name(format!("remote:{}", job.placement.runner.as_str()))
        .spawn(move || {
            let finished = drive(&driver_shared, job, launch, &on_report);
            driver_shared.lock().ended = true;
            driver_shared.changed.notify_all();
            on_exit(finished);
        })?;
    Ok(RemoteHandle { shared })
}

/// Launch (when new), wait, collect, clean up: the run's end as a local run would report it.
fn drive(
    shared: &Arc<RemoteRunShared>,
    job: Job,
    launch: Option<RemoteLaunch>,
    on_report: &dyn Fn(Report),
) -> exec::Finished {
    let began = Instant::now();
    let engine = &job.engine;
    if let Some(launch) = launch {
        match engine.launch(&job, &launch) {
            Ok(placement) => {
                shared.lock().placement = placement.clone();
                on_report(Report::Placed(placement));
            }
            Err((reason, message)) => return lost(shared, &job, began, reason, &message),
        }
        // A stop asked for before the run had a place reaches it now.
        if let Some((cause, _)) = shared.lock().stopped {
            spawn_stopper(shared, cause);
        }
    } else {
        let finished = engine.ended(&job.placement);
        on_report(Report::Adopted { finished });
    }
    if let Some(deadline) = job.deadline {
        let watched = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("remote-watchdog".into())
            .spawn(move || watchdog(&watched, deadline));
    }
    let end = engine.wait(shared, &job, on_report);
    let placement = shared.lock().placement.clone();
    let collected = engine.collect(&placement, &job);
    let outcome = match (&end, collected.outcome.clone()) {
        // A failure taskboard did not cause: the engine may say why, which is then the
        // attempt's reason.
        (_, Some(o)) if o.process != ProcessEnd::Exited(0) && !stopped_here(shared) => {
            engine.why_failed(&placement).map_or(Ok(o), Err)
        }
        (_, Some(o)) => Ok(o),
        (WaitEnd::Lost(reason), None) => Err(reason.clone()),
        (WaitEnd::Ended, None) => Err(remote::REMOTE_LOST.to_string()),
    };
    // The far folder goes once the run is surely over there; a run out of reach keeps it.
    let out_of_reach = matches!(
        &outcome,
        Err(r) if r == remote::HOST_UNREACHABLE || r == remote::CLUSTER_UNREACHABLE
    );
    if !out_of_reach {
        engine.remove(&placement);
    }
    finished(shared, began, outcome, collected)
}

fn stopped_here(shared: &RemoteRunShared) -> bool {
    shared.lock().stopped.is_some()
}

/// The watchdog: stops the run with [`StopCause::Timeout`] at its deadline.
fn watchdog(shared: &Arc<RemoteRunShared>, deadline: Instant) {
    if !shared.ended_by(deadline) {
        request_stop(shared, StopCause::Timeout);
    }
}

/// What came back from the far side.
#[derive(Default)]
pub(crate) struct Collected {
    pub(crate) outcome: Option<FarEnding>,
    pub(crate) stdout: (String, u64),
    pub(crate) stderr: (String, u64),
}

/// The files a run leaves, in the order they are collected.
pub(crate) const COLLECTED: [&str; 5] = [
    remote::files::STATUS,
    remote::files::STOPPED,
    remote::files::RESULT,
    remote::files::STDOUT,
    remote::files::STDERR,
];

/// The largest result file taken back (a result file is a few lines of JSON).
pub(crate) const RESULT_MAX: u64 = 1 << 20;

/// Takes the run's files as they arrive (`name`, bytes): logs into capped logs here, the
/// result file beside them, `status` and `stopped` read.
pub(crate) struct Receiver<'a> {
    job: &'a Job,
    status: Option<String>,
    stopped: Option<String>,
    stdout: Option<CappedLog>,
    stderr: Option<CappedLog>,
    result: Vec<u8>,
    result_seen: bool,
}

impl<'a> Receiver<'a> {
    pub(crate) fn new(job: &'a Job) -> Receiver<'a> {
        let log = |name: &str| CappedLog::create(&job.run_dir.join(name), job.output_cap).ok();
        Receiver {
            job,
            status: None,
            stopped: None,
            stdout: log(remote::files::STDOUT),
            stderr: log(remote::files::STDERR),
            result: Vec::new(),
            result_seen: false,
        }
    }

    /// A piece of file `name`.
    pub(crate) fn push(&mut self, name: &str, chunk: &[u8]) {
        let text = |into: &mut Option<String>| {
            let s = into.get_or_insert_with(String::new);
            if s.len() < 4096 {
                s.push_str(&String::from_utf8_lossy(chunk));
            }
        };
        match name {
            remote::files::STATUS => text(&mut self.status),
            remote::files::STOPPED => text(&mut self.stopped),
            remote::files::STDOUT => self.stdout.iter_mut().for_each(|l| l.push(chunk)),
            remote::files::STDERR => self.stderr.iter_mut().for_each(|l| l.push(chunk)),
            remote::files::RESULT => {
                self.result_seen = true;
                if (self.result.len() as u64) < RESULT_MAX {
                    self.result.extend_from_slice(chunk);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn finish(self) -> Collected {
        if self.result_seen
            && let Err(e) = std::fs::write(&self.job.result_path, &self.result)
        {
            tracing::warn!(error = %e, "cannot keep a remote run's result file");
        }
        let done = |l: Option<CappedLog>| l.map(CappedLog::finish).unwrap_or_default();
        Collected {
            outcome: self
                .status
                .as_deref()
                .and_then(|s| remote::outcome(s, self.stopped.as_deref(), process::signal_name)),
            stdout: done(self.stdout),
            stderr: done(self.stderr),
        }
    }
}

/// The report of a run that could not be launched or followed.
fn lost(
    shared: &RemoteRunShared,
    job: &Job,
    began: Instant,
    reason: String,
    message: &str,
) -> exec::Finished {
    let path = job.run_dir.join(remote::files::STDERR);
    let line = format!("taskboard: {message}\n");
    let _ = std::fs::write(&path, &line);
    let _ = CappedLog::create(&job.run_dir.join(remote::files::STDOUT), job.output_cap)
        .map(CappedLog::finish);
    let collected = Collected {
        outcome: None,
        stdout: (String::new(), 0),
        stderr: (line.clone(), line.len() as u64),
    };
    finished(shared, began, Err(reason), collected)
}

fn finished(
    shared: &RemoteRunShared,
    began: Instant,
    outcome: Result<FarEnding, String>,
    collected: Collected,
) -> exec::Finished {
    let stopped_here = shared.lock().stopped.map(|(cause, _)| cause);
    let (ending, stopped) = match outcome {
        Ok(o) => {
            let there = match o.stopped_there.as_deref() {
                Some("timeout") => Some(StopCause::Timeout),
                _ => None,
            };
            (o.process, stopped_here.or(there))
        }
        Err(reason) => (ProcessEnd::Lost(reason), stopped_here),
    };
    exec::Finished {
        ending,
        stopped,
        duration: began.elapsed(),
        stdout_tail: collected.stdout.0,
        stderr_tail: collected.stderr.0,
        stdout_bytes: collected.stdout.1,
        stderr_bytes: collected.stderr.1,
        escaped: Vec::new(),
        survivors: Vec::new(),
    }
}

/// Whether a run that cannot be reached now is past the point where the far side has surely
/// stopped it (its deadline, or a stop asked for long enough ago).
pub(crate) fn beyond_reach(shared: &RemoteRunShared, job: &Job) -> bool {
    let past_deadline = job.deadline.is_some_and(|d| {
        Instant::now() > d + job.grace + remote::FAR_SIDE_MARGIN + LOST_AFTER_DEADLINE
    });
    past_deadline
        || shared
            .stop_age()
            .is_some_and(|a| a > job.grace + STOP_GIVE_UP)
}
