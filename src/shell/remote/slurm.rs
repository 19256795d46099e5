//! Runs as Slurm batch jobs: the run's folder is under the route's `shared_dir`, which this
//! machine and the compute nodes both see, so files are written and read here directly and
//! only `sbatch`, `squeue` and `scancel` talk to the cluster.
//!
//! Owns those command lines and the job's life as Slurm reports it: submission (the wrapper
//! as the batch script, `--time` only as a late backstop), following the job's state (pending,
//! on a node, over) and the `status` file, stopping it (`scancel`), and the files it leaves.
//! `sacct` is not used: it needs Slurm's database, and the wrapper's `status` file says how
//! the run ended. Must not decide what an end means.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use super::command;
use super::{
    COLLECTED, Collected, Job, Receiver, RemoteLaunch, RemoteRunShared, Report, WaitEnd,
    beyond_reach,
};
use crate::core::remote::{self, JobState, Placement};

/// A route's way to its cluster.
#[derive(Debug, Clone)]
pub struct Slurm {
    /// The route's `sbatch_args`.
    pub sbatch_args: Vec<String>,
}

/// How often a job is asked after.
const POLL: Duration = Duration::from_millis(500);

/// The limit of one `sbatch`, `squeue` or `scancel`.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// How many looks in a row a job may be over (or unknown) with no `status` file before it is
/// taken for lost: a shared file system may show a file a moment late.
const GONE_LOOKS: u32 = 4;

/// Slurm's own log of the job (its messages, not the executor's output).
pub const SLURM_LOG: &str = "slurm.log";

impl Slurm {
    /// Writes the run's folder and submits it. `Err((reason, message))` when it was not
    /// submitted.
    pub fn launch(&self, job: &Job, launch: &RemoteLaunch) -> Result<Placement, (String, String)> {
        let dir = Path::new(&job.placement.dir);
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            fs::write(dir.join(remote::files::STDIN), &launch.stdin)?;
            fs::write(dir.join(remote::files::WRAPPER), remote::WRAPPER)?;
            let env = remote::env_file(&launch.env, None, &launch.argv, launch.timeout, job.grace);
            fs::write(dir.join(remote::files::ENV), env)
        };
        if let Err(e) = write() {
            return Err((
                "shared_dir_unavailable".to_string(),
                format!("cannot write the run's folder {}: {e}", dir.display()),
            ));
        }
        let mut cmd = Command::new("sbatch");
        cmd.args(["--parsable", "--job-name", &job.name, "--chdir"])
            .arg(dir)
            .arg("--output")
            .arg(dir.join(SLURM_LOG));
        if let Some(minutes) = remote::slurm_time_limit(launch.timeout, job.grace) {
            cmd.arg(format!("--time={minutes}"));
        }
        cmd.args(&self.sbatch_args)
            .arg(dir.join(remote::files::WRAPPER))
            .arg(dir);
        let out = command::run(cmd, b"", Some(CALL_LIMIT)).map_err(|e| {
            (
                "submit_failed".to_string(),
                format!("cannot run sbatch: {e}"),
            )
        })?;
        let id = out.text();
        let id = id.split(';').next().unwrap_or("").trim().to_string();
        if !out.ok() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            let why = if out.overran {
                "no answer within 30 s".to_string()
            } else {
                out.last_error()
            };
            return Err(("submit_failed".to_string(), format!("sbatch: {why}")));
        }
        let mut placement = job.placement.clone();
        placement.job_id = Some(id);
        Ok(placement)
    }

    /// Whether the run's `status` file is there already.
    pub fn ended(&self, placement: &Placement) -> bool {
        Path::new(&placement.dir)
            .join(remote::files::STATUS)
            .exists()
    }

    /// Follows the job until its `status` file appears or it is over without one; tells
    /// `on_report` once it is on a node.
    pub(crate) fn wait(
        &self,
        shared: &RemoteRunShared,
        job: &Job,
        on_report: &dyn Fn(Report),
    ) -> WaitEnd {
        let dir = Path::new(&job.placement.dir);
        let status = dir.join(remote::files::STATUS);
        let mut gone = 0u32;
        loop {
            if status.exists() {
                return WaitEnd::Ended;
            }
            let placement = shared.lock().placement.clone();
            let Some(id) = placement.job_id.clone() else {
                // A runtime that died between `sbatch` and noting its answer: the job, if it
                // was submitted, is found by its name and folder.
                match self.find(&job.name, &job.placement.dir) {
                    Ok(Some(id)) => {
                        shared.lock().placement.job_id = Some(id);
                        continue;
                    }
                    Ok(None) => return WaitEnd::Lost(remote::REMOTE_LOST.to_string()),
                    Err(why) => {
                        tracing::warn!(error = %why, "cannot ask Slurm about a job; trying again");
                        if beyond_reach(shared, job) {
                            return WaitEnd::Lost(remote::CLUSTER_UNREACHABLE.to_string());
                        }
                        thread::sleep(POLL);
                        continue;
                    }
                }
            };
            match self.state(&id) {
                Ok(Some((JobState::Running, node))) => {
                    gone = 0;
                    if placement.node.is_none() && node.is_some() {
                        let mut state = shared.lock();
                        state.placement.node = node;
                        let placement = state.placement.clone();
                        drop(state);
                        on_report(Report::Running(placement));
                    }
                }
                Ok(Some((JobState::Waiting, _))) => gone = 0,
                Ok(Some((JobState::Over(state), _))) => {
                    gone += 1;
                    if gone >= GONE_LOOKS && !status.exists() {
                        return WaitEnd::Lost(format!("slurm_{state}"));
                    }
                }
                Ok(None) => {
                    gone += 1;
                    if gone >= GONE_LOOKS && !status.exists() {
                        return WaitEnd::Lost(remote::REMOTE_LOST.to_string());
                    }
                }
                Err(why) => {
                    tracing::warn!(error = %why, "cannot ask Slurm about a job; trying again");
                    if beyond_reach(shared, job) {
                        return WaitEnd::Lost(remote::CLUSTER_UNREACHABLE.to_string());
                    }
                }
            }
            thread::sleep(POLL);
        }
    }

    /// How Slurm says the job ended, once it says so (a few looks at most): `node_fail`,
    /// `cancelled`, `timeout`, ... `None` when it ended normally or Slurm does not tell.
    pub(crate) fn final_state(&self, placement: &Placement) -> Option<String> {
        let id = placement.job_id.as_deref()?;
        for _ in 0..GONE_LOOKS * 3 {
            match self.state(id) {
                Ok(Some((JobState::Over(state), _))) => {
                    return (state != "completed").then_some(state);
                }
                Ok(None) => return None,
                _ => thread::sleep(POLL),
            }
        }
        None
    }

    /// The ID of the job named `name` working in `dir`, if Slurm knows one.
    fn find(&self, name: &str, dir: &str) -> Result<Option<String>, String> {
        let mut cmd = Command::new("squeue");
        cmd.args(["-h", "--name", name, "-o", "%i %Z"]);
        let out = command::run(cmd, b"", Some(CALL_LIMIT)).map_err(|e| e.to_string())?;
        if !out.ok() {
            return Err(format!("squeue: {}", out.last_error()));
        }
        Ok(out.text().lines().find_map(|l| {
            let (id, wd) = l.trim().split_once(' ')?;
            (wd.trim() == dir).then(|| id.to_string())
        }))
    }

    /// The job's state and node; `Ok(None)` when Slurm no longer knows it.
    fn state(&self, id: &str) -> Result<Option<(JobState, Option<String>)>, String> {
        let mut cmd = Command::new("squeue");
        cmd.args(["-h", "-t", "all", "-j", id, "-o", "%T %N"]);
        let out = command::run(cmd, b"", Some(CALL_LIMIT)).map_err(|e| e.to_string())?;
        if !out.ok() {
            let err = out.last_error();
            // A job purged from the controller's memory is an "invalid" one.
            if err.to_ascii_lowercase().contains("invalid job id") {
                return Ok(None);
            }
            return Err(if out.overran {
                "squeue gave no answer within 30 s".to_string()
            } else {
                format!("squeue: {err}")
            });
        }
        Ok(out.text().lines().next().and_then(remote::job_state))
    }

    /// Stops the job: notes why in its folder, then SIGTERM to every step of it (a job still
    /// queued is cancelled outright); `KILL` cancels it, which Slurm finishes with SIGKILL.
    pub fn signal(&self, placement: &Placement, sig: &str, why: &str) {
        let stopped = Path::new(&placement.dir).join(remote::files::STOPPED);
        if !stopped.exists() {
            let _ = fs::write(&stopped, format!("{why}\n"));
        }
        let Some(id) = &placement.job_id else {
            return;
        };
        let queued = matches!(self.state(id), Ok(Some((JobState::Waiting, _))));
        let mut cmd = Command::new("scancel");
        if sig == "TERM" && !queued {
            cmd.args(["--signal=TERM", "--full"]);
        }
        cmd.arg(id);
        match command::run(cmd, b"", Some(CALL_LIMIT)) {
            Ok(out) if out.ok() => {}
            Ok(out) => tracing::warn!(job = %id, error = %out.last_error(), "scancel failed"),
            Err(e) => tracing::warn!(error = %e, "cannot run scancel"),
        }
    }

    /// Reads the run's files from the shared folder; keeps Slurm's own log beside them.
    pub(crate) fn collect(&self, placement: &Placement, job: &Job) -> Collected {
        let dir = Path::new(&placement.dir);
        let mut receiver = Receiver::new(job);
        for name in COLLECTED {
            let Ok(mut file) = fs::File::open(dir.join(name)) else {
                continue;
            };
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match std::io::Read::read(&mut file, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => receiver.push(name, &buf[..n]),
                }
            }
        }
        let log = dir.join(SLURM_LOG);
        if fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            let _ = fs::copy(&log, job.run_dir.join(SLURM_LOG));
        }
        receiver.finish()
    }

    /// Removes the run's folder from the shared folder once its files are here.
    pub fn remove(&self, placement: &Placement) {
        let dir = Path::new(&placement.dir);
        if let Err(e) = fs::remove_dir_all(dir) {
            tracing::warn!(error = %e, dir = %placement.dir, "cannot remove a remote run's folder");
        }
        // The task's folder goes too once no run of it is left there.
        if let Some(task) = dir.parent() {
            let _ = fs::remove_dir(task);
        }
    }
}
