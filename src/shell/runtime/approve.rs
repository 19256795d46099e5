//! Carrying out a person's word on a change that waits for approval: `approved` lands it,
//! `rejected:<note>` sends the task back, and both remove the worktree afterwards.
//!
//! Owns the order that makes a landing happen exactly once: the task's lock, the git landing
//! (`shell::landing`, which notes it in the run folder before the branch moves), the landing on
//! record in the task's memory and saved, and only then `done` written and the worktree removed.
//! A refused landing puts `awaiting-approval` back and says why (`merge_refused`). The
//! decisions are the planner's (`Step::Land`, `FinishLanding`, `Reject`, `NoChangeToApprove`);
//! this module must not write the board itself (changes go to `commit`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::Runtime;
use super::commit::{FollowUp, Outgoing};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::plan::Step;
use crate::core::settle::{Settlement, SettlementKind};
use crate::core::status::Status;
use crate::core::writeback::Change;
use crate::shell::landing::{self, ApprovedLanding};

impl Runtime {
    /// Carries out one of the planner's approval steps.
    pub(super) fn take_approval_step(
        &mut self,
        step: Step,
        board: &Board,
        now: DateTime<Utc>,
        outgoing: &mut Vec<Outgoing>,
    ) {
        match step {
            Step::Land { id, from, attempt } => {
                self.land_approved((id, from, attempt), board, now, outgoing);
            }
            Step::FinishLanding {
                id, from, attempt, ..
            } => outgoing.push(Outgoing {
                change: Change {
                    id,
                    expected: from,
                    new: Status::Done,
                },
                follow_up: FollowUp::Landed { attempt },
            }),
            Step::Reject {
                id,
                from,
                attempt,
                note,
                settlement,
            } => self.reject((id, from, attempt), note, settlement, outgoing),
            Step::NoChangeToApprove { id, status } => self.no_change_to_approve(&id, &status),
            _ => {}
        }
    }

    /// An `awaiting-approval` ending is on the board: the change (in its attempt's run folder)
    /// waits for a person.
    pub(super) fn approval_requested(&mut self, id: &str, attempt: u32) {
        let run_dir = self
            .store
            .tasks()
            .get(id)
            .and_then(|r| {
                r.history
                    .iter()
                    .rev()
                    .find(|a| a.attempt == attempt && a.phase.is_none())
            })
            .map(|a| PathBuf::from(&a.run_dir));
        let Some(run_dir) = run_dir else {
            return;
        };
        let relative = run_dir.strip_prefix(&self.state_dir).unwrap_or(&run_dir);
        self.store
            .record_mut(id)
            .request_approval(attempt, &relative.display().to_string());
        self.emit(Some(id), EventKind::ApprovalRequested { attempt });
    }

    /// `approved` or `rejected:` on a task with no change waiting: said once, until the
    /// status changes.
    pub(super) fn no_change_to_approve(&mut self, id: &str, status: &Status) {
        let said = status.to_string();
        if self.approval_noted.get(id) == Some(&said) {
            return;
        }
        self.approval_noted.insert(id.to_string(), said.clone());
        self.error(
            Some(id),
            "approval",
            format!("`{said}` on a task with no change waiting for approval: nothing to do"),
        );
    }

    /// The run folder of the change waiting for approval of task `id`.
    fn approval_run_dir(&self, id: &str) -> Option<PathBuf> {
        let approval = self.store.tasks().get(id)?.memory.approval.as_ref()?;
        Some(self.state_dir.join(&approval.run_dir))
    }

    /// `approved` over a change waiting for approval: lands it and writes `done`, or puts
    /// `awaiting-approval` back with the reason.
    pub(super) fn land_approved(
        &mut self,
        (id, from, attempt): (String, Status, u32),
        board: &Board,
        now: DateTime<Utc>,
        outgoing: &mut Vec<Outgoing>,
    ) {
        if !self.take_task_lock(&id, now) {
            // Another taskboard process (`taskboard approve`) is landing it.
            return;
        }
        let Some(run_dir) = self.approval_run_dir(&id) else {
            let _ = self.locks.release(&id, &self.instance);
            return;
        };
        let title = board.task(&id).map_or("", |t| t.title.as_str()).to_string();
        let summary = landing::summary_of(self.store.tasks().get(&id), attempt);
        let strategy = landing::strategy_for(&self.config, &run_dir);
        let approval = ApprovedLanding {
            id: &id,
            title: &title,
            summary: summary.as_deref(),
            strategy,
            onto_latest: false,
        };
        let change = |new| Change {
            id: id.clone(),
            expected: from.clone(),
            new,
        };
        match landing::carry_out(&run_dir, &approval) {
            Ok(landed) => {
                self.store
                    .record_mut(&id)
                    .landed(attempt, &landing::on_record(&landed));
                self.save_state();
                landing::forget_intent(&run_dir);
                for l in landed {
                    self.emit(
                        Some(&id),
                        EventKind::Merged {
                            attempt,
                            repo: l.name,
                            commit: l.commit,
                            into: l.into,
                            strategy: strategy.as_str().to_string(),
                        },
                    );
                }
                outgoing.push(Outgoing {
                    change: change(Status::Done),
                    follow_up: FollowUp::Landed { attempt },
                });
            }
            Err(refusal) => {
                self.emit(
                    Some(&id),
                    EventKind::MergeRefused {
                        attempt,
                        repo: None,
                        reason: refusal.reason,
                        conflicts: refusal.conflicts,
                    },
                );
                outgoing.push(Outgoing {
                    change: change(Status::AwaitingApproval),
                    follow_up: FollowUp::StillWaiting,
                });
            }
        }
    }

    /// `rejected:<note>` over a change waiting for approval: the settlement's status goes out;
    /// the rest follows once it is on the board ([`Runtime::rejected`]).
    pub(super) fn reject(
        &mut self,
        (id, from, attempt): (String, Status, u32),
        note: String,
        settlement: Settlement,
        outgoing: &mut Vec<Outgoing>,
    ) {
        let Some(new) = settlement.write.clone() else {
            return;
        };
        outgoing.push(Outgoing {
            change: Change {
                id,
                expected: from,
                new,
            },
            follow_up: FollowUp::Rejected {
                attempt,
                note,
                kind: settlement.kind,
            },
        });
    }

    /// After `done` over a landed change is on the board: the approval is over, the worktree
    /// goes, the lock is released.
    pub(super) fn landing_written(&mut self, id: &str, attempt: u32) {
        let run_dir = self.approval_run_dir(id);
        self.store.record_mut(id).clear_approval();
        if let Some(run_dir) = run_dir {
            self.remove_workspace(id, attempt, &run_dir, "merged");
        }
        let _ = self.locks.release(id, &self.instance);
    }

    /// After a rejection's status is on the board: the note goes to the next packet (or the
    /// task to the dead letters), the worktree goes, `rejected` is logged.
    pub(super) fn rejected(
        &mut self,
        id: &str,
        (attempt, note, kind): (u32, String, SettlementKind),
        now: DateTime<Utc>,
    ) {
        let run_dir = self.approval_run_dir(id);
        self.emit(
            Some(id),
            EventKind::Rejected {
                attempt,
                note: note.clone(),
            },
        );
        let rec = self.store.record_mut(id);
        rec.clear_approval();
        match kind {
            SettlementKind::Exhausted => self.deadletter(id, "rejected; no attempts left", now),
            _ => {
                let feedback = if note.is_empty() {
                    "A person rejected the change without a note.".to_string()
                } else {
                    format!("A person rejected the change: {note}")
                };
                self.store.record_mut(id).review_feedback = Some(feedback);
            }
        }
        if let Some(run_dir) = run_dir {
            self.remove_workspace(id, attempt, &run_dir, "rejected");
        }
    }

    /// Removes an attempt's worktrees and branches (its snapshots stay): `workspace_removed`
    /// for each, or an `error` saying why one was kept.
    fn remove_workspace(&self, id: &str, attempt: u32, run_dir: &Path, reason: &str) {
        for (record, result) in landing::remove_all(run_dir) {
            match result {
                Ok(()) => self.emit(
                    Some(id),
                    EventKind::WorkspaceRemoved {
                        attempt,
                        repo: record.name.clone(),
                        path: record.path.clone(),
                        reason: reason.to_string(),
                    },
                ),
                Err(why) => self.error(
                    Some(id),
                    "workspace",
                    format!("the worktree {} is kept: {why}", record.path),
                ),
            }
        }
    }
}
