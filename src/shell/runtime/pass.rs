//! One pass of the runtime: read the board, plan over it, carry out the plan's steps.
//!
//! Owns what a pass reads (the board as the editor left it, the lock folders through
//! `recovery`, retry requests left by `taskboard retry`), which lint findings are news, and
//! turning the planner's steps into status changes for `commit` (approval steps through
//! `approve`); a dead runtime's remote runs are taken over first (`remote`), never started
//! again. It decides nothing the planner decides; it never writes the board itself (that is
//! `commit`'s compare-and-swap) and never starts a run (that is `launch`, after the claim
//! landed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::commit::{FollowUp, Outgoing};
use super::finish::Gathered;
use super::{Mode, Runtime};
use crate::core::board::{Board, Marker};
use crate::core::event::EventKind;
use crate::core::lint;
use crate::core::memory::{Projected, Recall, TaskMemory};
use crate::core::plan::{self, LockView, Plan, Step};
use crate::core::settle::StopCause;
use crate::core::status::Status;
use crate::core::writeback::{self, Change};
use crate::shell::fsio;
use crate::shell::lock::Owner;
use crate::shell::parallel::{lint_findings, parse_board};

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The watcher saw the board saved, and nothing else asks for a pass: a save that changed
    /// nothing (the watcher's echo of our own write, say) is passed over.
    Saved,
    /// The start, a timer, a rescan, a reload, an ending or a write that left work asks for a
    /// pass whatever the board holds.
    Due,
    /// A save, and something else asks for a pass too.
    SavedAndDue,
}

impl Trigger {
    /// The pass the loop's messages ask for, if any: `saved` when the watcher saw the board
    /// change, `due` when anything else asks.
    pub(super) fn of(saved: bool, due: bool) -> Option<Trigger> {
        match (saved, due) {
            (true, false) => Some(Trigger::Saved),
            (false, true) => Some(Trigger::Due),
            (true, true) => Some(Trigger::SavedAndDue),
            (false, false) => None,
        }
    }

    fn saved(self) -> bool {
        matches!(self, Trigger::Saved | Trigger::SavedAndDue)
    }
}

/// How to read the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMode {
    /// Just after a save, which the watcher releases once it has been quiet for the debounce:
    /// read at once, again only if the file is still changing or cut mid-character.
    AfterSave,
    /// As it is now.
    Now,
}

impl Runtime {
    /// Reads the board as it is now. `None` when it cannot be read (reported), or while its path
    /// leads elsewhere than the folder this runtime holds (`home` follows it first).
    pub(super) fn read(&mut self, mode: ReadMode) -> Option<fsio::BoardRead> {
        if !self.home_is_here() {
            return None;
        }
        let result = match mode {
            ReadMode::AfterSave => {
                let quiet = (self.config.runtime.debounce / 4)
                    .clamp(Duration::from_millis(5), Duration::from_millis(100));
                fsio::read_settled(&self.board, quiet, 10)
            }
            ReadMode::Now => fsio::read_board(&self.board),
        };
        match result {
            Ok(snap) if snap.text.trim().is_empty() => {
                // An editor that truncates and then writes (VS Code) shows an empty file for a
                // moment; a plan made on it would see no tasks at all. Wait for the next save.
                tracing::debug!("the board is empty; waiting for the save to finish");
                None
            }
            Ok(snap) => {
                if self.board_missing_reported {
                    tracing::info!("the board is back: {}", self.board.display());
                }
                self.board_missing_reported = false;
                Some(snap)
            }
            Err(e) if e.is_transient() => {
                if !self.board_missing_reported {
                    self.board_missing_reported = true;
                    self.error(None, "board", format!("{e}; waiting for it to appear"));
                }
                None
            }
            Err(e) => {
                self.error(None, "board", e.to_string());
                None
            }
        }
    }

    /// One pass: read, lint, plan, lock, write back, spawn.
    pub(super) fn pass(&mut self, trigger: Trigger) {
        let started = Instant::now();
        self.retry_at = None;
        let mode = if trigger.saved() {
            ReadMode::AfterSave
        } else {
            ReadMode::Now
        };
        let Some(snap) = self.read(mode) else {
            // The board cannot be read: endings wait in their records for the next readable save.
            self.requeue(Vec::new());
            // No time-based rule applies to a board that is not there: a retry falling due
            // meanwhile must not wake the loop into failing to read it back to back. The save
            // that brings it back plans again, even with the very bytes last read.
            self.wake_at = None;
            self.last_hash = None;
            return;
        };
        if self.held_by_conflict(&snap) || !self.worth_a_pass(&snap, trigger) {
            return;
        }
        let now = self.now();
        // What other taskboard processes serving this board learnt since the last pass.
        self.store.refresh();
        self.consume_requests();
        let on_disk = match self.parsed.take() {
            Some((old_text, old)) => old.reparse(&old_text, &snap.text),
            None => parse_board(&snap.text),
        };
        let (mut locks, lock_wake) = self.locks_for_the_plan(now);
        let Gathered {
            mut outgoing,
            on_the_way,
            reviews,
        } = self.gather_endings(&on_disk, &snap.text, &mut locks, now);
        // Plan over the board as it will be once the endings in hand are written, so that a
        // finished task's dependents are promoted in the same write.
        let (text, board) = if outgoing.is_empty() {
            (snap.text, on_disk)
        } else {
            let changes: Vec<Change> = outgoing.iter().map(|o| o.change.clone()).collect();
            let text = writeback::apply(&snap.text, &on_disk, &changes).text;
            let board = on_disk.reparse(&snap.text, &text);
            (text, board)
        };
        // `held_by_conflict` found no conflict marker in the text read, and none is in the
        // text planned on: a status value (no control characters) never starts a line.
        self.report_findings(&text, &board, &[], now);
        // Through the board's index by ID, which a re-parse keeps while no ID changed (a set of
        // the IDs made here cost a hash of every ID on every pass); while none changed, only the
        // records missing before or made since are looked up.
        self.store.note_presence(&board, now);

        let locks = self.defer_to_serving_run(locks, &board);
        let (planned, kept) = self.plan(&board, &locks, &outgoing, &on_the_way, now);
        let host_back = self.route_room(now).1;
        self.wake_at = [planned.wake_at, lock_wake, host_back]
            .into_iter()
            .flatten()
            .min();
        // A hold no longer planned is over: the next one is announced again.
        let held: BTreeSet<&String> = planned
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::TouchesHeld { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        self.touches_announced.retain(|id, _| held.contains(id));
        let unheeded: BTreeSet<&String> = planned
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::NoChangeToApprove { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        self.approval_noted.retain(|id, _| unheeded.contains(id));
        for step in planned.steps {
            self.take_step(step, (&board, &kept), now, &mut outgoing);
        }
        let tasks = board.tasks.len();
        let (started_runs, known) = self.write(outgoing, (text, board), snap.hash);
        self.save_state();
        self.passes += 1;
        self.emit(
            None,
            EventKind::Pass {
                tasks,
                duration_us: started.elapsed().as_micros() as u64,
                dispatched: reviews + started_runs,
            },
        );
        self.parsed = Some(known);
    }

    /// The lock view the planner gets, with when an owner-less lock is due to be broken.
    /// Remote runs whose runtime died are followed, not started again: their locks become ours
    /// before the planner sees them. One listing of the lock folders serves both, unless a
    /// take-over changed them; a folder that cannot be listed shows no locks to either.
    fn locks_for_the_plan(
        &mut self,
        now: DateTime<Utc>,
    ) -> (BTreeMap<String, LockView>, Option<DateTime<Utc>>) {
        let listed = self.locks.list().unwrap_or_default();
        let listed = match self.adopt_remote_runs(&listed, now) {
            true => self.locks.list().unwrap_or_default(),
            false => listed,
        };
        self.lock_view(listed, now)
    }

    /// Whether the board as read is worth a pass, noting a save as seen (`file_changed`).
    fn worth_a_pass(&mut self, snap: &fsio::BoardRead, trigger: Trigger) -> bool {
        let endings_wait = self.store.with_endings().next().is_some();
        if trigger == Trigger::Saved && !endings_wait && Some(snap.hash) == self.last_hash {
            // Our own write, or a save that changed nothing. A due pass never stops here: the
            // watcher's echo of the write that made a task ready must not swallow the pass
            // that runs it.
            return false;
        }
        if trigger.saved() && Some(snap.hash) != self.last_hash {
            // Save to detection as a person experiences it: the debounce included.
            let latency_ms = snap
                .mtime
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            self.emit(
                None,
                EventKind::FileChanged {
                    latency_ms: latency_ms.map(|d| d.as_millis() as u64),
                    bytes: snap.len,
                },
            );
        }
        self.last_hash = Some(snap.hash);
        true
    }

    /// Asks the planner what to do with `board`, planning on the memory as it will be once the
    /// `outgoing` endings land (matching the board). Returns the plan, and for each task whose
    /// status the plan takes for a person's decision, what the runtime keeps of its memory.
    fn plan(
        &self,
        board: &Board,
        locks: &BTreeMap<String, LockView>,
        outgoing: &[Outgoing],
        on_the_way: &BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> (Plan, BTreeMap<String, Option<TaskMemory>>) {
        // Runs of other taskboard processes on this board count against the same limit: the
        // planner counts them from the lock view.
        let capacity = if self.stopping || (self.mode == Mode::Once && self.passes > 0) {
            0
        } else {
            self.config
                .runtime
                .max_parallel
                .saturating_sub(self.active.len())
        };
        let active: BTreeSet<String> = self.active.keys().cloned().collect();
        let memory = Projected::new(self.store.tasks(), outgoing.iter().map(|o| &o.change));
        let policy = self.policy();
        let spent_today = self.store.spend_on(now.date_naive());
        let (route_room, _) = self.route_room(now);
        let planned = plan::plan(&plan::Inputs {
            board,
            policy: &policy,
            now,
            locks,
            active: &active,
            memory: &memory,
            endings_on_the_way: on_the_way,
            capacity,
            spent_today: &spent_today,
            route_room: &route_room,
        });
        let agent = &self.config.runtime.agent;
        let kept = planned
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Forget { id, status } => {
                    let kept = plan::memory_after_decision(memory.recall(id), status, agent);
                    Some((id.clone(), kept))
                }
                _ => None,
            })
            .collect();
        (planned, kept)
    }

    /// Carries out one step of the plan; a status change joins `outgoing` for the pass's write.
    /// `kept` is what the runtime keeps of the memory of each task a person decided.
    fn take_step(
        &mut self,
        step: Step,
        (board, kept): (&Board, &BTreeMap<String, Option<TaskMemory>>),
        now: DateTime<Utc>,
        outgoing: &mut Vec<Outgoing>,
    ) {
        let change = |id, expected, new| Change { id, expected, new };
        match step {
            Step::Promote { id, from, deps } => outgoing.push(Outgoing {
                change: change(id, from, Status::Ready),
                follow_up: FollowUp::Promoted { deps },
            }),
            Step::ResetStale {
                id,
                from,
                to,
                reason,
                attempt,
                break_lock,
            } => {
                if break_lock && !self.break_lock(&id) {
                    return;
                }
                outgoing.push(Outgoing {
                    change: change(id, from, to),
                    follow_up: FollowUp::Reset { reason, attempt },
                });
            }
            Step::BreakLock { id, .. } => {
                self.break_lock(&id);
            }
            Step::Dispatch {
                id,
                from,
                to,
                route,
                attempt,
            } => {
                if self.take_task_lock(&id, now) {
                    outgoing.push(Outgoing {
                        change: change(id, from, to),
                        follow_up: FollowUp::Claimed { route, attempt },
                    });
                }
            }
            Step::Reassert { id, found, ours } => outgoing.push(Outgoing {
                change: change(id, found, ours),
                follow_up: FollowUp::Reasserted,
            }),
            Step::Forget { id, .. } => self.forget(&id, kept.get(&id).cloned().flatten()),
            Step::TouchesHeld { id, by } => {
                if self.touches_announced.get(&id) != Some(&by) {
                    self.touches_announced.insert(id.clone(), by.clone());
                    self.emit(Some(&id), EventKind::TaskHeld { by });
                }
            }
            Step::BudgetHeld {
                route,
                spent,
                budget,
                waiting,
            } => {
                if self
                    .budget_announced
                    .insert((now.date_naive(), route.clone()))
                {
                    self.emit(
                        None,
                        EventKind::BudgetExhausted {
                            route,
                            spent_usd: spent,
                            budget_usd: budget,
                            waiting,
                        },
                    );
                }
            }
            step @ (Step::Land { .. }
            | Step::FinishLanding { .. }
            | Step::Reject { .. }
            | Step::NoChangeToApprove { .. }) => {
                self.take_approval_step(step, board, now, outgoing);
            }
            Step::Cancel { id, status } => {
                if let Some(active) = self.active.get(&id) {
                    active.stop(StopCause::Cancelled);
                    self.emit(
                        Some(&id),
                        EventKind::TaskCancelled {
                            status: status.to_string(),
                        },
                    );
                }
            }
        }
    }

    /// A person's decision on task `id`: what the runtime keeps of its episode (`kept`) is what
    /// guards the person's status against a stale buffer.
    fn forget(&mut self, id: &str, kept: Option<TaskMemory>) {
        self.store.forget(id);
        if let Some(kept) = kept {
            self.store.record_mut(id).memory = kept;
        }
    }

    /// Takes task `id`'s lock for a claim; `false` when another runtime claimed it first or the
    /// lock cannot be made (reported).
    pub(super) fn take_task_lock(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        let owner = Owner::current(&self.instance, now);
        match self.locks.try_acquire(id, &owner) {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                self.error(
                    Some(id),
                    "lock",
                    format!("cannot create the task's lock: {e}"),
                );
                false
            }
        }
    }

    /// Lint findings become events when they first appear (not again on every pass).
    /// `markers` are the text's conflict markers, which the caller has looked for.
    pub(super) fn report_findings(
        &mut self,
        text: &str,
        board: &Board,
        markers: &[Marker],
        now: DateTime<Utc>,
    ) {
        let routes: BTreeSet<String> = self.config.executors.keys().cloned().collect();
        let workspaces = lint::WorkspaceContext::of(&self.config);
        let findings = lint_findings(
            text,
            board,
            &lint::LintContext {
                now,
                stale_after: self.config.runtime.stale_after,
                routes: Some(&routes),
                longest_backoff: Some(plan::longest_backoff_for(
                    self.config.runtime.retry_backoff,
                    self.config.runtime.max_attempts,
                )),
                conflict_markers: Some(markers),
            },
            Some(&workspaces),
        );
        let (news, seen) = lint::news(findings, &self.last_findings);
        for f in news {
            self.emit(
                f.task.as_deref(),
                EventKind::Lint {
                    code: f.code.to_string(),
                    severity: match f.severity {
                        lint::Severity::Error => "error".into(),
                        lint::Severity::Warning => "warning".into(),
                    },
                    line: f.line,
                    column: f.column,
                    message: f.message,
                },
            );
        }
        self.last_findings = seen;
    }

    /// `taskboard retry` leaves a request file: the person's `ready` is a fresh start.
    pub(super) fn consume_requests(&mut self) {
        let dir = self.state_dir.join("requests");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".retry") {
                self.start_series(id);
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }

    /// A `taskboard retry` of task `id` (see [`crate::core::memory::TaskRecord::start_series`]).
    pub(super) fn start_series(&mut self, id: &str) {
        if !self.store.tasks().contains_key(id) {
            return;
        }
        let agent = self.config.runtime.agent.clone();
        self.store.record_mut(id).start_series(&agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_runs_for_a_save_for_anything_else_or_both() {
        let cases = [
            (false, false, None),
            (true, false, Some(Trigger::Saved)),
            (false, true, Some(Trigger::Due)),
            (true, true, Some(Trigger::SavedAndDue)),
        ];
        for (saved, due, trigger) in cases {
            assert_eq!(Trigger::of(saved, due), trigger, "saved {saved}, due {due}");
        }
        // Only a save alone may be passed over as an echo; any save is read after the editor.
        assert!(Trigger::Saved.saved() && Trigger::SavedAndDue.saved());
        assert!(!Trigger::Due.saved());
    }
}
