//! Launching a run: a claimed task's work, or its review once the work succeeded.
//!
//! Owns the run folder, the packet kept in it, the executor's command line and environment,
//! the evidence snapshot taken before work, where the run goes (started here, handed to
//! `remote` for a route's remote runner, or to `prepare`'s thread on a worktree route), and the
//! executor's pid in the task's lock. A run
//! that cannot start ends at once as a failed attempt (through `finish`). Must not touch the
//! board: the claim was written by `commit` before the run is launched.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::finish::RunEnd;
use super::{Active, Msg, Runtime, SharedStart, isolate, prepare};
use crate::core::board::{Board, Task};
use crate::core::config::{Runner, Workspace, WorktreeConfig};
use crate::core::packet;
use crate::core::settle::{AttemptEnd, NO_GIT, NO_REPOSITORY, Phase};
use crate::core::status::Status;
use crate::core::workspace::{Glob, RunRepo, base_branch_of, repos_of, touches_of};
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::packet_sources;
use crate::shell::run_dirs;

/// An executor run to start: the task's own work, or its review.
pub(super) struct Launch {
    pub(super) id: String,
    pub(super) route: String,
    pub(super) attempt: u32,
    /// The `running:` status on the board while it runs.
    pub(super) running: Status,
    pub(super) phase: Phase,
}

/// Why a run could not start: the error to report, and the attempt record's reason.
struct NotStarted {
    why: String,
    reason: &'static str,
}

impl NotStarted {
    fn new(why: impl Into<String>, reason: &'static str) -> NotStarted {
        NotStarted {
            why: why.into(),
            reason,
        }
    }
}

impl Runtime {
    /// Starts an executor run (a claimed task's work, or its review). On failure to start, the
    /// attempt ends as failed right away (its status change goes out with the next write).
    /// `board` is the board as it now is, with its text.
    pub(super) fn spawn(
        &mut self,
        launch: Launch,
        board: (&Board, &str),
        now: DateTime<Utc>,
    ) -> bool {
        let run_dir = self
            .state_dir
            .join("runs")
            .join(&launch.id)
            .join(run_dirs::name(
                launch.attempt,
                launch.phase == Phase::Review,
                now,
            ));
        let mut active = Active {
            attempt: launch.attempt,
            route: launch.route.clone(),
            phase: launch.phase.clone(),
            handle: None,
            started: now,
            running: launch.running.clone(),
            result_path: run_dir.join("result.json"),
            run_dir,
            evidence_before: None,
            touches: board.0.task(&launch.id).and_then(touches_of),
            isolation: None,
            remote: None,
        };
        let mut packet = None;
        let started = self.start_run(&launch, board, &mut active, &mut packet);
        // Kept once the executor is on its way: it reads the packet from its stdin, and on a
        // slow disk each file made before the start is a delay a person sees.
        if let Some(packet) = packet {
            self.keep_packet(&launch.id, &active.run_dir, &packet);
        }
        match started {
            Ok(handle) => {
                self.active.insert(launch.id.clone(), active);
                // An isolated run has no process yet: it starts once its worktree is ready.
                if let Some(handle) = handle {
                    self.started(&launch.id, handle);
                }
                true
            }
            Err(failed) => {
                let id = launch.id.as_str();
                self.error(Some(id), "dispatch", failed.why);
                let end = AttemptEnd::not_started(failed.reason);
                let now = self.now();
                if self.keep_ending(id, &active, end, RunEnd::default(), now) {
                    self.dirty = true;
                }
                false
            }
        }
    }

    /// A run that ended before its executor started (its worktree could not be made, or a stop
    /// came first): its ending is kept like any other. Returns whether there is one to write.
    pub(super) fn not_started(&mut self, id: &str, end: AttemptEnd) -> bool {
        let Some(active) = self.active.remove(id) else {
            return false;
        };
        let now = self.now();
        self.keep_ending(id, &active, end, RunEnd::default(), now)
    }

    /// Prepares and starts the run `active` describes (noting in it what the run started from).
    fn start_run(
        &mut self,
        launch: &Launch,
        (board, text): (&Board, &str),
        active: &mut Active,
        packet_out: &mut Option<String>,
    ) -> Result<Option<exec::LocalHandle>, NotStarted> {
        let (id, route) = (launch.id.as_str(), launch.route.as_str());
        let Some(exec_cfg) = self.config.executors.get(route).cloned() else {
            let why = format!("no executor `{route}` is configured");
            return Err(NotStarted::new(why, "no_executor"));
        };
        if let Err(e) = std::fs::create_dir_all(&active.run_dir) {
            let why = format!("cannot create {}: {e}", active.run_dir.display());
            return Err(NotStarted::new(why, "run_dir_unavailable"));
        }
        let Some(task) = board.task(id) else {
            let why = "the task vanished before it could start";
            return Err(NotStarted::new(why, "vanished"));
        };
        let packet = self.packet(launch, (board, text));
        *packet_out = Some(packet.clone());
        let mut argv = exec_cfg.command.clone();
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = self.board_dir.join(&argv[0]).display().to_string();
        }
        let mut env: Vec<(String, String)> = exec_cfg.env.clone().into_iter().collect();
        env.extend(self.run_env(launch, task, &active.run_dir, &active.result_path));
        let mut spec = exec::AttemptSpec {
            argv,
            cwd: self.board_dir.clone(),
            env,
            stdin: packet.into_bytes(),
            run_dir: active.run_dir.clone(),
            timeout: exec_cfg.timeout,
            grace: self.config.runtime.grace,
            output_cap: self.config.runtime.output_cap,
        };
        if !matches!(exec_cfg.runner, Runner::Local) {
            // The far side runs the command as written, from the run's own folder there.
            spec.argv = exec_cfg.command.clone();
            return self
                .start_remote(launch, spec, &exec_cfg.runner, active)
                .map(|()| None)
                .map_err(|(why, reason)| NotStarted::new(why, reason));
        }
        if let (Workspace::Worktree(cfg), Phase::Work { .. }) = (&exec_cfg.workspace, &launch.phase)
        {
            return self
                .prepare_isolated(launch, task, cfg, spec, active)
                .map(|()| None);
        }
        if launch.phase == Phase::Review
            && let Some(work) = self.work_workspace(id, launch.attempt)
            && let Some(home) = isolate::home_of(&work)
        {
            // A review of isolated work looks at the worktrees the work was done in.
            spec.env.extend(prepare::isolation_env(&home, &work));
            spec.cwd = home;
        }
        active.evidence_before = match launch.phase {
            Phase::Work { .. } => self.evidence_at_start(),
            Phase::Review => None,
        };
        let tx = self.tx.clone();
        let (owned_id, attempt) = (id.to_string(), launch.attempt);
        let hashes = Arc::clone(&self.hashes);
        let look = (active.evidence_before.clone())
            .map(|before| (before, self.board_dir.clone(), self.board.clone()));
        exec::start(spec, move |finished| {
            // What the run changed, seen here as soon as its processes are gone: a `git status`
            // of the whole repository, which on the loop thread held up every other run's end
            // and start behind it.
            let evidence = look.map(|(before, board_dir, board)| {
                Box::new(evidence::SeenAtEnd {
                    changes: evidence::since(&before, &board_dir, &board, &hashes),
                    root: before.root,
                    board_dir,
                })
            });
            let _ = tx.send(Msg::Finished {
                id: owned_id,
                attempt,
                finished,
                snapshot: None,
                evidence,
            });
        })
        .map(Some)
        .map_err(|e| {
            let why = format!("cannot start executor `{route}`: {e}");
            NotStarted::new(why, "spawn_failed")
        })
    }

    /// The work tree as a run starts, when the board is in one: the write's shared snapshot
    /// while a write starts its runs ([`SharedStart`]), else one of its own.
    fn evidence_at_start(&mut self) -> Option<evidence::TreeState> {
        if let SharedStart::Taken(snapshot) = &self.shared_start {
            return snapshot.clone();
        }
        // The one taken as the save began, else one now (on the path from the save to the
        // start: a `git status` of the whole repository).
        let snapshot = self.git_root.as_deref().and_then(|root| {
            (self.lookahead.take())
                .or_else(|| evidence::snapshot(root, &self.board_dir, &self.board, &self.hashes))
        });
        if matches!(self.shared_start, SharedStart::Open) {
            self.shared_start = SharedStart::Taken(snapshot.clone());
        }
        snapshot
    }

    /// Hands an isolated run to a thread that makes its worktrees and then starts it.
    fn prepare_isolated(
        &self,
        launch: &Launch,
        task: &Task,
        cfg: &WorktreeConfig,
        spec: exec::AttemptSpec,
        active: &mut Active,
    ) -> Result<(), NotStarted> {
        let continue_in = self.bounced_from(&launch.id, launch.attempt);
        // Work a review sent back goes on where it was done.
        let home = continue_in
            .as_deref()
            .and_then(isolate::home_of)
            .unwrap_or_else(|| self.worktree_path(&launch.id, launch.attempt));
        let repos = self.repo_plans(task, cfg, &home)?;
        let setup = cfg.setup.clone().map(|mut argv| {
            if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
                argv[0] = self.board_dir.join(&argv[0]).display().to_string();
            }
            argv
        });
        let prep = prepare::Preparation {
            id: launch.id.clone(),
            attempt: launch.attempt,
            route: launch.route.clone(),
            home: home.clone(),
            repos,
            include: cfg.include.iter().map(|g| Glob::parse(g)).collect(),
            setup,
            continue_in,
            spec,
        };
        let gate = Arc::new(prepare::Gate::default());
        prepare::prepare(prep, Arc::clone(&gate), self.tx.clone()).map_err(|e| {
            let why = format!("cannot start preparing the worktree: {e}");
            NotStarted::new(why, "spawn_failed")
        })?;
        active.isolation = Some(isolate::Isolation { path: home, gate });
        Ok(())
    }

    /// The repositories an isolated attempt works in: each the task names in `repos:` (a
    /// worktree of each in `home/<name>`), else the route's one (its worktree is `home`). A
    /// task's `base_branch:` wins over the repository's or the route's.
    fn repo_plans(
        &self,
        task: &Task,
        cfg: &WorktreeConfig,
        home: &Path,
    ) -> Result<Vec<prepare::RepoPlan>, NotStarted> {
        // Asked once per process: without git (or with one too old) nothing here can work.
        crate::shell::workspace::checked_version()
            .map_err(|e| NotStarted::new(e.to_string(), NO_GIT))?;
        let asked = base_branch_of(task).map(str::to_string);
        let Some(names) = repos_of(task) else {
            let repo = self
                .route_repo(cfg)
                .map_err(|why| NotStarted::new(why, NO_REPOSITORY))?;
            return Ok(vec![prepare::RepoPlan {
                name: None,
                repo,
                path: home.to_path_buf(),
                base_branch: asked.or_else(|| cfg.base_branch.clone()),
            }]);
        };
        names
            .into_iter()
            .map(|name| {
                let Some(rc) = self.config.repos.get(&name) else {
                    let why = format!("repos: names `{name}`, which taskboard.toml does not");
                    return Err(NotStarted::new(why, NO_REPOSITORY));
                };
                let repo = match rc.path.is_absolute() {
                    true => rc.path.clone(),
                    false => self.board_dir.join(&rc.path),
                };
                Ok(prepare::RepoPlan {
                    path: home.join(&name),
                    name: Some(name),
                    repo,
                    base_branch: asked.clone().or_else(|| rc.base_branch.clone()),
                })
            })
            .collect()
    }

    /// The workspace of the attempt before `attempt` when a review sent it back (the last thing
    /// on record is that review): the next attempt goes on in it.
    fn bounced_from(&self, id: &str, attempt: u32) -> Option<Vec<RunRepo>> {
        let prev = attempt.checked_sub(1)?;
        let last = self.store.tasks().get(id)?.history.last()?;
        let reviewed = last.attempt == prev && last.phase.as_deref() == Some("review");
        reviewed.then(|| self.work_workspace(id, prev)).flatten()
    }

    /// The repositories of attempt `attempt`'s work run of task `id`, as its run folder records
    /// them.
    pub(super) fn work_workspace(&self, id: &str, attempt: u32) -> Option<Vec<RunRepo>> {
        let rec = self.store.tasks().get(id)?;
        let work = rec
            .history
            .iter()
            .rev()
            .find(|a| a.attempt == attempt && a.phase.is_none())?;
        let record = crate::shell::worktrees::read_record(Path::new(&work.run_dir))?;
        (!record.repos.is_empty()).then_some(record.repos)
    }

    /// Assembles the run's packet: what its executor reads on stdin.
    fn packet(&self, launch: &Launch, (board, text): (&Board, &str)) -> String {
        let id = launch.id.as_str();
        let record = self.store.tasks().get(id);
        let review = (launch.phase == Phase::Review).then(|| packet::Review {
            handoff: String::new(),
            diff: record.and_then(|r| r.history.last()).and_then(|a| {
                // Isolated work: its saved patches, whatever happened to its worktrees since.
                if let Some(patches) = isolate::saved_patches(Path::new(&a.run_dir)) {
                    return Some(patches);
                }
                let paths = a.changed.as_deref()?;
                let root = self.git_root.as_deref()?;
                evidence::diff(root, a.base.as_deref(), paths)
            }),
        });
        let source = packet_sources::Source {
            board_dir: &self.board_dir,
            board,
            text,
            record,
        };
        let budget = self.config.runtime.packet_budget as usize;
        packet_sources::assemble(&source, id, launch.attempt, review, budget).unwrap_or_default()
    }

    /// Keeps the packet a run was given as `packet.md` in its run folder.
    fn keep_packet(&self, id: &str, run_dir: &Path, packet: &str) {
        if let Err(e) = std::fs::write(run_dir.join("packet.md"), packet) {
            self.error(Some(id), "dispatch", format!("cannot keep the packet: {e}"));
        }
    }

    /// The `TASKBOARD_*` variables a run sees (after the executor's own `env`).
    fn run_env(
        &self,
        launch: &Launch,
        task: &Task,
        run_dir: &Path,
        result_path: &Path,
    ) -> [(String, String); 7] {
        [
            ("TASKBOARD_TASK_ID".to_string(), launch.id.clone()),
            // A NUL cannot cross exec; other control characters would only confuse a reader.
            (
                "TASKBOARD_TASK_TITLE".to_string(),
                task.title.replace(|c: char| c.is_control(), " "),
            ),
            ("TASKBOARD_ATTEMPT".to_string(), launch.attempt.to_string()),
            ("TASKBOARD_ROUTE".to_string(), launch.route.clone()),
            (
                "TASKBOARD_BOARD".to_string(),
                self.board.display().to_string(),
            ),
            (
                "TASKBOARD_RUN_DIR".to_string(),
                run_dir.display().to_string(),
            ),
            (
                "TASKBOARD_RESULT".to_string(),
                result_path.display().to_string(),
            ),
        ]
    }

    /// A started run (already among the active ones): its pid into the task's lock,
    /// `task_dispatched`, and its supervision.
    pub(super) fn started(&mut self, id: &str, handle: exec::LocalHandle) {
        let pid = handle.pid();
        let run_id = Some(handle.run_id());
        let _ = self
            .locks
            .set_executor(id, &self.instance, pid as i32, run_id);
        let agent = &self.config.runtime.agent;
        let Some(active) = self.active.get_mut(id) else {
            return;
        };
        let dispatched = active.dispatched(agent, Some(pid), None);
        active.handle = Some(super::RunHandle::Local(handle));
        self.emit(Some(id), dispatched);
    }
}
