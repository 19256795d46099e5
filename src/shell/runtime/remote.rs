//! Remote runs, the loop's side: starting a run on a route's Slurm cluster or SSH host,
//! recording where it went, marking hosts down, and following the remote runs a runtime that
//! died left behind.
//!
//! Owns the choice of engine and far folder for a run, the remote record in the task's lock
//! (written before the run is launched, completed as the driver reports), `task_dispatched`,
//! `remote_running`, `run_adopted` and `host_down`, the room each SSH route has left, and
//! taking over a dead owner's lock in place when it names a remote run. The run itself is
//! `shell::remote`'s; its end comes back as `Msg::Finished` like a local run's. Must not write
//! the board.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::launch::Launch;
use super::recovery::UNREADABLE_LOCK_GRACE;
use super::{Active, Msg, RunHandle, Runtime};
use crate::core::config::Runner;
use crate::core::event::EventKind;
use crate::core::hash::content_hash;
use crate::core::remote::{self, Placement, RemoteRun, RunnerKind};
use crate::core::settle::{Phase, ProcessEnd};
use crate::core::status::Status;
use crate::shell::exec;
use crate::shell::lock::{self, LockState, Owner};
use crate::shell::remote::{
    self as far, Engine, Job, RemoteHandle, Report, slurm::Slurm, ssh::Ssh,
};

/// Why a remote run could not start: the error, and the attempt record's reason.
pub(super) type NotLaunched = (String, &'static str);

impl Runtime {
    /// Starts `launch`'s run on the route's remote `runner`: picks the host (SSH), names the run
    /// in the task's lock, then hands it to a driver thread.
    pub(super) fn start_remote(
        &mut self,
        launch: &Launch,
        spec: exec::AttemptSpec,
        runner: &Runner,
        active: &mut Active,
    ) -> Result<(), NotLaunched> {
        let (id, attempt) = (launch.id.as_str(), launch.attempt);
        let now = self.now();
        let folder = active
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = self.board_key();
        let (engine, placement) = match runner {
            Runner::Local => return Err(("not a remote route".into(), "spawn_failed")),
            Runner::Slurm(cfg) => {
                let base = self.board_dir.join(&cfg.shared_dir);
                let dir = base.join(&key).join(id).join(&folder);
                let engine = Engine::Slurm(Slurm {
                    sbatch_args: cfg.sbatch_args.clone(),
                });
                (
                    engine,
                    placement(RunnerKind::Slurm, None, dir.display().to_string()),
                )
            }
            Runner::Ssh(cfg) => {
                let busy = self.hosts_busy();
                let Some(host) = remote::pick_host(&cfg.hosts, &busy, &self.hosts_down, now) else {
                    let why = format!("every host of `{}` is busy or down", launch.route);
                    return Err((why, "no_host"));
                };
                let root = cfg.remote_dir.trim_end_matches('/');
                let dir = format!("{root}/{key}/{id}/{folder}");
                let engine = Engine::Ssh(Ssh {
                    host: host.destination.clone(),
                    args: cfg.ssh_args.clone(),
                });
                let host = Some(host.destination.clone());
                (engine, placement(RunnerKind::Ssh, host, dir))
            }
        };
        let record = RemoteRun {
            placement,
            attempt,
            route: launch.route.clone(),
            review: launch.phase == Phase::Review,
            run_dir: active.run_dir.display().to_string(),
            started: active.started,
            running: active.running.to_string(),
        };
        // Named in the lock before anything starts over there: a restart finds it.
        if let Err(e) = self.locks.set_remote(id, &self.instance, &record) {
            let why = format!("cannot record the remote run in the task's lock: {e}");
            return Err((why, "lock_unavailable"));
        }
        let far_launch = far::RemoteLaunch {
            argv: spec.argv,
            // The far side sets the run folder's own paths itself.
            env: spec
                .env
                .into_iter()
                .filter(|(k, _)| k != "TASKBOARD_RUN_DIR" && k != "TASKBOARD_RESULT")
                .collect(),
            stdin: spec.stdin,
            timeout: spec.timeout,
        };
        let job = self.job(id, engine, &record, spec.timeout, Instant::now());
        let handle = self
            .follow(id, attempt, job, Some(far_launch))
            .map_err(|e| (format!("cannot start the remote run: {e}"), "spawn_failed"))?;
        active.remote = Some(record);
        active.handle = Some(RunHandle::Remote(handle));
        Ok(())
    }

    /// A driver thread for `job`: its reports and its end come back as messages.
    fn follow(
        &self,
        id: &str,
        attempt: u32,
        job: Job,
        launch: Option<far::RemoteLaunch>,
    ) -> std::io::Result<RemoteHandle> {
        let (reports, ends) = (self.tx.clone(), self.tx.clone());
        let (rid, eid) = (id.to_string(), id.to_string());
        far::start(
            job,
            launch,
            move |report| {
                let id = rid.clone();
                let _ = reports.send(Msg::Remote {
                    id,
                    attempt,
                    report,
                });
            },
            move |finished| {
                let _ = ends.send(Msg::Finished {
                    id: eid,
                    attempt,
                    finished,
                    snapshot: None,
                    evidence: None,
                });
            },
        )
    }

    fn job(
        &self,
        id: &str,
        engine: Engine,
        record: &RemoteRun,
        timeout: Option<Duration>,
        started: Instant,
    ) -> Job {
        let run_dir = std::path::PathBuf::from(&record.run_dir);
        Job {
            engine,
            placement: record.placement.clone(),
            result_path: run_dir.join("result.json"),
            run_dir,
            output_cap: self.config.runtime.output_cap,
            grace: self.config.runtime.grace,
            deadline: timeout.map(|t| started + t),
            name: format!("taskboard-{id}-{}", record.attempt),
        }
    }

    /// A short, stable name for this board among the boards sharing a remote folder.
    fn board_key(&self) -> String {
        format!(
            "{:016x}",
            content_hash(self.board.as_os_str().as_encoded_bytes())
        )
    }

    /// Runs per SSH host now.
    fn hosts_busy(&self) -> BTreeMap<String, usize> {
        let mut busy = BTreeMap::new();
        for host in self
            .active
            .values()
            .filter_map(|a| a.remote.as_ref()?.placement.host.clone())
        {
            *busy.entry(host).or_insert(0) += 1;
        }
        busy
    }

    /// How many more runs each SSH route can start now, and when a host that is down comes
    /// back (a pass is due then).
    pub(super) fn route_room(
        &self,
        now: DateTime<Utc>,
    ) -> (BTreeMap<String, usize>, Option<DateTime<Utc>>) {
        let busy = self.hosts_busy();
        let mut room = BTreeMap::new();
        for (route, exec) in &self.config.executors {
            if let Runner::Ssh(cfg) = &exec.runner
                && let Some(n) = remote::room(&cfg.hosts, &busy, &self.hosts_down, now)
            {
                room.insert(route.clone(), n);
            }
        }
        (room, remote::next_return(&self.hosts_down, now))
    }

    /// What a driver reported: recorded in the lock, told in an event.
    pub(super) fn remote_report(&mut self, id: &str, attempt: u32, report: Report) {
        let agent = self.config.runtime.agent.clone();
        let instance = self.instance.clone();
        let Some(active) = self.active.get_mut(id).filter(|a| a.attempt == attempt) else {
            return;
        };
        let Some(known) = active.remote.as_ref().map(|r| r.placement.clone()) else {
            return;
        };
        let (kind, placement) = match report {
            Report::Placed(p) => (active.dispatched(&agent, None, Some(p.clone())), p),
            Report::Running(p) => {
                let kind = EventKind::RemoteRunning {
                    attempt,
                    remote: p.clone(),
                };
                (kind, p)
            }
            Report::Adopted { finished } => {
                let kind = EventKind::RunAdopted {
                    attempt,
                    remote: known.clone(),
                    finished,
                };
                (kind, known)
            }
        };
        let Some(record) = active.remote.as_mut() else {
            return;
        };
        record.placement = placement;
        let record = record.clone();
        if let Err(e) = self.locks.set_remote(id, &instance, &record) {
            self.error(
                Some(id),
                "lock",
                format!("cannot record the remote run: {e}"),
            );
        }
        self.emit(Some(id), kind);
    }

    /// A remote run's end: a host that could not be reached is left out for a while.
    pub(super) fn remote_ended(&mut self, id: &str, attempt: u32, finished: &exec::Finished) {
        let ProcessEnd::Lost(reason) = &finished.ending else {
            return;
        };
        if reason != remote::HOST_UNREACHABLE {
            return;
        }
        let Some(active) = self.active.get(id).filter(|a| a.attempt == attempt) else {
            return;
        };
        let Some(host) = active
            .remote
            .as_ref()
            .and_then(|r| r.placement.host.clone())
        else {
            return;
        };
        let route = active.route.clone();
        let down_for = match self.config.executors.get(&route).map(|e| &e.runner) {
            Some(Runner::Ssh(cfg)) => cfg.host_down_for,
            _ => crate::core::config::DEFAULT_HOST_DOWN_FOR,
        };
        let now = self.now();
        let until = now + chrono::TimeDelta::from_std(down_for).unwrap_or_default();
        self.hosts_down.insert(host.clone(), until);
        let said = finished.stderr_tail.trim().lines().last().unwrap_or("");
        // About the host, not the task: the task's own ending says what it did to the attempt.
        self.emit(
            None,
            EventKind::HostDown {
                route,
                host,
                until,
                reason: said.trim_start_matches("taskboard: ").to_string(),
            },
        );
    }

    /// Follows the remote runs whose runtime died: each such lock is taken over in place (it is
    /// never free in between) and its run followed to its end like one started here. `listed`
    /// is the lock listing of this pass; returns whether any lock was taken over (the listing
    /// is then out of date).
    pub(super) fn adopt_remote_runs(
        &mut self,
        listed: &[(String, LockState)],
        now: DateTime<Utc>,
    ) -> bool {
        let mut adopted = false;
        for (id, seen) in listed {
            let LockState::Held(owner) = &seen else {
                continue;
            };
            if owner.instance == self.instance || self.active.contains_key(id) {
                continue;
            }
            let Some(record) = owner.remote.as_deref().cloned() else {
                continue;
            };
            if lock::is_stale(seen, UNREADABLE_LOCK_GRACE).is_none() {
                continue;
            }
            let mut ours = Owner::current(&self.instance, now);
            ours.remote = Some(Box::new(record.clone()));
            match self.locks.take_over(id, seen, &ours) {
                Ok(true) => {
                    adopted = true;
                    self.adopt(id, record, owner);
                }
                Ok(false) => {}
                Err(e) => self.error(Some(id), "lock", format!("cannot take over a lock: {e}")),
            }
        }
        adopted
    }

    /// Follows `record`'s run, whose lock is now ours.
    fn adopt(&mut self, id: &str, record: RemoteRun, dead: &Owner) {
        let exec = self.config.executors.get(&record.route).cloned();
        let engine = match record.placement.runner {
            RunnerKind::Slurm => Engine::Slurm(Slurm {
                sbatch_args: Vec::new(),
            }),
            RunnerKind::Ssh => Engine::Ssh(Ssh {
                host: record.placement.host.clone().unwrap_or_default(),
                args: match exec.as_ref().map(|e| &e.runner) {
                    Some(Runner::Ssh(cfg)) => cfg.ssh_args.clone(),
                    _ => Vec::new(),
                },
            }),
        };
        let timeout = exec.as_ref().and_then(|e| e.timeout);
        // Its deadline is where the dead runtime put it.
        let ran = (self.now() - record.started).to_std().unwrap_or_default();
        let started = Instant::now().checked_sub(ran).unwrap_or_else(Instant::now);
        let job = self.job(id, engine, &record, timeout, started);
        self.emit(
            Some(id),
            EventKind::LockBroken {
                owner_pid: Some(dead.pid),
                owner_instance: Some(dead.instance.clone()),
                reason: "its runtime is gone; following its remote run".to_string(),
            },
        );
        let Ok(running) = Status::parse(&record.running) else {
            self.error(
                Some(id),
                "recovery",
                "a remote run's recorded status is unreadable",
            );
            return;
        };
        let phase = if record.review {
            Phase::Review
        } else {
            Phase::Work {
                review: exec.as_ref().and_then(|e| e.review.clone()),
            }
        };
        let run_dir = std::path::PathBuf::from(&record.run_dir);
        let mut active = Active {
            attempt: record.attempt,
            route: record.route.clone(),
            phase,
            handle: None,
            started: record.started,
            running,
            result_path: run_dir.join("result.json"),
            run_dir,
            evidence_before: None,
            touches: None,
            isolation: None,
            remote: Some(record.clone()),
        };
        match self.follow(id, record.attempt, job, None) {
            Ok(handle) => {
                active.handle = Some(RunHandle::Remote(handle));
                self.active.insert(id.to_string(), active);
            }
            Err(e) => self.error(
                Some(id),
                "recovery",
                format!("cannot follow the remote run it left: {e}"),
            ),
        }
    }
}

fn placement(runner: RunnerKind, host: Option<String>, dir: String) -> Placement {
    Placement {
        runner,
        host,
        job_id: None,
        node: None,
        pgid: None,
        dir,
    }
}
