//! Launching a run: a claimed task's work, or its review once the work succeeded.
//!
//! Owns the run folder, the packet kept in it, the executor's command line and environment,
//! the evidence snapshot taken before work, and the executor's pid in the task's lock. A run
//! that cannot start ends at once as a failed attempt (through `finish`). Must not touch the
//! board: the claim was written by `commit` before the run is launched.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::finish::RunFacts;
use super::{Active, Msg, Runtime};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::packet;
use crate::core::plan::{self, Ending, Phase};
use crate::core::status::Status;
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::packet_sources;

/// An executor run to start: the task's own work, or its review.
pub(super) struct Launch {
    pub(super) id: String,
    pub(super) route: String,
    pub(super) attempt: u32,
    /// The `running:` status on the board while it runs.
    pub(super) running: Status,
    pub(super) phase: Phase,
}

impl Runtime {
    /// Starts an executor run (a claimed task's work, or its review). On failure to start, the
    /// attempt is settled as failed right away (its status change goes out with the next write).
    pub(super) fn spawn(
        &mut self,
        launch: Launch,
        (board, text): (&Board, &str),
        now: DateTime<Utc>,
    ) -> bool {
        let Launch {
            id,
            route,
            attempt,
            running,
            phase,
        } = launch;
        let id = id.as_str();
        let route = route.as_str();
        let review_suffix = if phase == Phase::Review {
            "-review"
        } else {
            ""
        };
        let run_dir = self.state_dir.join("runs").join(id).join(format!(
            "{attempt}{review_suffix}-{}",
            now.format("%Y%m%dT%H%M%SZ")
        ));
        let result_path = run_dir.join("result.json");
        let active = Active {
            attempt,
            route: route.to_string(),
            phase: phase.clone(),
            handle: None,
            started: now,
            running,
            run_dir: run_dir.clone(),
            result_path: result_path.clone(),
            evidence_before: None,
        };
        let fail = |rt: &mut Runtime, active: Active, why: String, reason: &str| {
            rt.error(Some(id), "dispatch", why);
            if rt.conclude(
                id,
                &active,
                Ending::Failure(reason.into()),
                RunFacts::default(),
            ) {
                rt.dirty = true;
            }
            false
        };
        let Some(exec_cfg) = self.config.executors.get(route).cloned() else {
            return fail(
                self,
                active,
                format!("no executor `{route}` is configured"),
                "no_executor",
            );
        };
        if let Err(e) = std::fs::create_dir_all(&run_dir) {
            return fail(
                self,
                active,
                format!("cannot create {}: {e}", run_dir.display()),
                "run_dir_unavailable",
            );
        }
        let Some(task) = board.task(id) else {
            return fail(
                self,
                active,
                "the task vanished before it could start".into(),
                "vanished",
            );
        };
        let record = self.store.tasks.get(id);
        let review = (phase == Phase::Review).then(|| packet::Review {
            handoff: String::new(),
            diff: record.and_then(|r| r.history.last()).and_then(|a| {
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
        let packet =
            packet_sources::assemble(&source, id, attempt, review, budget).unwrap_or_default();
        if let Err(e) = std::fs::write(run_dir.join("packet.md"), &packet) {
            self.error(Some(id), "dispatch", format!("cannot keep the packet: {e}"));
        }
        let mut argv = exec_cfg.command.clone();
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = self.board_dir.join(&argv[0]).display().to_string();
        }
        let mut env: Vec<(String, String)> = exec_cfg.env.clone().into_iter().collect();
        env.extend([
            ("TASKBOARD_TASK_ID".to_string(), id.to_string()),
            // A NUL cannot cross exec; other control characters would only confuse a reader.
            (
                "TASKBOARD_TASK_TITLE".to_string(),
                task.title.replace(|c: char| c.is_control(), " "),
            ),
            ("TASKBOARD_ATTEMPT".to_string(), attempt.to_string()),
            ("TASKBOARD_ROUTE".to_string(), route.to_string()),
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
        ]);
        let spec = exec::Spec {
            argv,
            cwd: self.board_dir.clone(),
            env,
            stdin: packet.into_bytes(),
            run_dir: run_dir.clone(),
            timeout: exec_cfg.timeout,
            grace: self.config.runtime.grace,
            output_cap: self.config.runtime.output_cap,
        };
        let evidence_before = match phase {
            Phase::Work { .. } => self.git_root.as_deref().and_then(evidence::snapshot),
            Phase::Review => None,
        };
        let active = Active {
            evidence_before,
            ..active
        };
        let tx = self.tx.clone();
        let owned_id = id.to_string();
        match exec::start(spec, move |finished| {
            let _ = tx.send(Msg::Finished {
                id: owned_id,
                attempt,
                finished,
            });
        }) {
            Ok(handle) => {
                let pid = handle.pid();
                let run_id = Some(handle.run_id());
                let _ = self
                    .locks
                    .set_executor(id, &self.instance, pid as i32, run_id);
                self.emit(
                    Some(id),
                    EventKind::TaskDispatched {
                        attempt,
                        route: route.to_string(),
                        pid,
                        agent: match phase {
                            Phase::Review => plan::review_agent(&self.config.runtime.agent),
                            Phase::Work { .. } => self.config.runtime.agent.clone(),
                        },
                        phase: (phase == Phase::Review).then(|| "review".to_string()),
                    },
                );
                self.active.insert(
                    id.to_string(),
                    Active {
                        handle: Some(handle),
                        ..active
                    },
                );
                true
            }
            Err(e) => fail(
                self,
                active,
                format!("cannot start executor `{route}`: {e}"),
                "spawn_failed",
            ),
        }
    }
}
