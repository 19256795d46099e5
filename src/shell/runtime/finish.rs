//! Taking an ending: a run's end becomes an attempt's ending kept in the task's record, and an
//! ending that reaches the board is landed.
//!
//! Owns what is recorded of a finished attempt (spend, evidence or an isolated run's snapshot,
//! handoff section, attempt record, `task_finished`), meeting each kept ending with the board as
//! it is now (write it, wait, or give way to a person), and what a landed ending implies (memory,
//! events, deadletter, the review run that follows, a change put up for approval, the lock's
//! release). The decisions themselves
//! (the status to write, the outcome words) are the core's; this module must not write the
//! board (it hands changes to `commit`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::commit::{FollowUp, Outgoing};
use super::launch::Launch;
use super::{Active, Runtime, SnapshotOutcome};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::handoff;
use crate::core::memory::{AttemptRecord, PendingEnding};
use crate::core::plan::{self, Landing, LockView};
use crate::core::settle::{self, AttemptEnd, Phase, ProcessEnd, ResultFile, SettlementKind};
use crate::core::status::Status;
use crate::core::workspace::{outside_touches, patch_file};
use crate::core::writeback::Change;
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::fsio;

/// What the runtime saw of a run that ended (no process at all, for a run that never started).
#[derive(Default)]
pub(super) struct RunEnd {
    pub(super) process: Option<ProcessEnd>,
    pub(super) duration: Duration,
    pub(super) stderr_tail: String,
    /// The result file, when it parsed (cost and handoff count whatever the exit).
    pub(super) reported: Option<ResultFile>,
    /// What an isolated run changed, from its snapshot (a shared run's comes from git status).
    pub(super) changed: Option<Vec<String>>,
    /// An isolated run's saved patch and the command that shows it, for its handoff (and so
    /// for the next attempt's packet).
    pub(super) saved_diff: Option<(String, String)>,
    /// What git saw a shared run change, looked at on its supervising thread.
    pub(super) seen_at_end: Option<Box<evidence::SeenAtEnd>>,
}

/// The kept endings, met with the board as it is now.
#[derive(Default)]
pub(super) struct Gathered {
    /// The endings to write, as changes for `commit`.
    pub(super) outgoing: Vec<Outgoing>,
    /// Every task whose ending is still on its way: the planner leaves those alone.
    pub(super) on_the_way: BTreeSet<String>,
    /// How many review runs started for endings already on the board.
    pub(super) reviews: usize,
}

impl Runtime {
    /// The endings this runtime holds (its own, and those a stopped runtime left behind, which it
    /// takes over with their locks), each met with the board as it is now: landed already,
    /// turned into a change to write, kept waiting, or given way to a person's decision.
    pub(super) fn gather_endings(
        &mut self,
        board: &Board,
        text: &str,
        locks: &mut BTreeMap<String, LockView>,
        now: DateTime<Utc>,
    ) -> Gathered {
        let mut gathered = Gathered::default();
        for id in self.endings_of_past_runs() {
            if !self.hold_ending_lock(&id, locks, now) {
                gathered.on_the_way.insert(id);
                continue;
            }
            let rec = &self.store.tasks()[&id];
            let Some(ending) = rec.ending.clone() else {
                continue;
            };
            let agent = &self.config.runtime.agent;
            let landing = plan::landing(board, &id, &ending, rec.memory.episode.as_ref(), agent);
            self.meet_ending(id, ending, landing, (board, text), now, &mut gathered);
        }
        gathered
    }

    /// Whether this runtime holds the lock of task `id`'s kept ending (taking over a stopped
    /// runtime's): only then does it write the ending. Another live runtime's ending is that
    /// runtime's to write.
    fn hold_ending_lock(
        &mut self,
        id: &str,
        locks: &mut BTreeMap<String, LockView>,
        now: DateTime<Utc>,
    ) -> bool {
        match locks.get(id) {
            Some(LockView::Ours) => true,
            Some(LockView::Live) => false,
            Some(LockView::Stale(_)) | None => {
                if !self.adopt_ending(id, now) {
                    return false;
                }
                locks.insert(id.to_string(), LockView::Ours);
                true
            }
        }
    }

    /// Carries out how a kept ending meets the board (see [`plan::landing`]).
    fn meet_ending(
        &mut self,
        id: String,
        ending: PendingEnding,
        landing: Landing,
        board: (&Board, &str),
        now: DateTime<Utc>,
        gathered: &mut Gathered,
    ) {
        match landing {
            Landing::Landed => {
                self.kept_reported.remove(&id);
                if self.land_ending(&id, ending, board, now) {
                    gathered.reviews += 1;
                }
            }
            Landing::Write { over } => {
                let Ok(new) = Status::parse(&ending.write) else {
                    return;
                };
                gathered.on_the_way.insert(id.clone());
                gathered.outgoing.push(Outgoing {
                    change: Change {
                        id,
                        expected: over,
                        new,
                    },
                    follow_up: FollowUp::Ended { ending },
                });
            }
            Landing::Wait { reason } => {
                gathered.on_the_way.insert(id.clone());
                if self.kept_reported.get(&id) != Some(&reason) {
                    self.kept_reported.insert(id.clone(), reason.clone());
                    self.emit(
                        Some(&id),
                        EventKind::EndingKept {
                            attempt: ending.attempt,
                            wanted: ending.write,
                            reason,
                        },
                    );
                }
            }
            Landing::Superseded { found } => {
                // A person's decision: theirs stands, and the run it ends is over.
                self.kept_reported.remove(&id);
                self.emit(
                    Some(&id),
                    EventKind::WritebackConflict {
                        expected: ending.claim,
                        found,
                        wanted: ending.write,
                    },
                );
                self.store.record_mut(&id).ending = None;
                let _ = self.locks.release(&id, &self.instance);
            }
        }
    }

    /// The tasks with an ending on its way whose run is over (an ending always is; the check
    /// keeps a new run of the task apart from it).
    pub(super) fn endings_of_past_runs(&self) -> Vec<String> {
        self.store
            .with_endings()
            .filter(|id| !self.active.contains_key(*id))
            .map(str::to_string)
            .collect()
    }

    /// What an ending on the board implies: the task's memory, its events, its deadletter file,
    /// the review run that follows, and the release of its lock. `written` is the board as it
    /// now is. Returns whether a review run started.
    pub(super) fn land_ending(
        &mut self,
        id: &str,
        ending: PendingEnding,
        written: (&Board, &str),
        now: DateTime<Utc>,
    ) -> bool {
        self.store.record_mut(id).land_ending(&ending);
        let attempt = ending.attempt;
        match ending.settlement {
            SettlementKind::ToReview { route } => {
                // The task stays claimed: the lock passes to the review run.
                let Ok(running) = Status::parse(&ending.write) else {
                    return false;
                };
                let launch = Launch {
                    id: id.to_string(),
                    route,
                    attempt,
                    running,
                    phase: Phase::Review,
                };
                return self.spawn(launch, written, now);
            }
            SettlementKind::Retry { at } => {
                self.emit(Some(id), EventKind::TaskRetryScheduled { attempt, at });
            }
            SettlementKind::Exhausted => self.deadletter(id, "exhausted_retries", now),
            SettlementKind::Interrupted => {
                self.emit(Some(id), EventKind::TaskInterrupted { attempt });
            }
            SettlementKind::Finished | SettlementKind::Bounced | SettlementKind::Cancelled => {}
            SettlementKind::AwaitingApproval => self.approval_requested(id, attempt),
        }
        let _ = self.locks.release(id, &self.instance);
        false
    }

    /// Takes an executor's end: the attempt's ending is recorded and kept. Returns whether there
    /// is a status to write.
    pub(super) fn run_ended(
        &mut self,
        id: &str,
        attempt: u32,
        finished: exec::Finished,
        snapshot: SnapshotOutcome,
        seen_at_end: Option<Box<evidence::SeenAtEnd>>,
    ) -> bool {
        let Some(active) = self.active.remove(id) else {
            return false;
        };
        if active.attempt != attempt {
            return false;
        }
        if let Some(report) = finished.escape_report() {
            self.error(Some(id), "escaped", report);
        }
        let result = fsio::read_regular_to_string(&active.result_path)
            .ok()
            .map(|text| settle::parse_result(&text, &active.phase));
        let mut end = settle::attempt_end(finished.stopped, &finished.ending, result.as_ref());
        let changed = snapshot.map(|outcome| self.took_snapshot(id, attempt, *outcome));
        if let (Some(None), AttemptEnd::Success { .. }) = (&changed, &end) {
            // A change that was not saved cannot be reviewed, approved or landed.
            end = AttemptEnd::Failure("snapshot_failed".into());
        }
        let changed = changed.flatten();
        let saved_diff = changed.as_ref().map(|_| {
            let patch = active.run_dir.join(patch_file(None));
            let command = format!("taskboard diff {id} --attempt {attempt}");
            (patch.display().to_string(), command)
        });
        let run = RunEnd {
            process: Some(finished.ending),
            duration: finished.duration,
            stderr_tail: finished.stderr_tail,
            reported: result.and_then(Result::ok),
            changed,
            saved_diff,
            seen_at_end,
        };
        let now = self.now();
        self.keep_ending(id, &active, end, run, now)
    }

    /// Records an attempt that ended at `now` (spend, evidence, handoff, attempt record,
    /// `task_finished`) and keeps the status its ending calls for in the task's record until it
    /// lands. Returns whether there is one.
    pub(super) fn keep_ending(
        &mut self,
        id: &str,
        active: &Active,
        end: AttemptEnd,
        run: RunEnd,
        now: DateTime<Utc>,
    ) -> bool {
        let series_start = self
            .store
            .tasks()
            .get(id)
            .map_or(0, |r| r.memory.series_start);
        let in_series = settle::in_series(active.attempt, series_start);
        // A review settles for the route of the work it reviews.
        let route = match &active.phase {
            Phase::Review => self.store.tasks().get(id).and_then(|r| r.work_route()),
            Phase::Work { .. } => None,
        }
        .unwrap_or(&active.route)
        .to_string();
        let settlement =
            settle::settlement(&self.policy(), &route, in_series, &active.phase, &end, now);
        let told = settle::summary(&end, &settlement);
        let reported = run.reported.as_ref();
        let cost = reported.and_then(|r| r.cost_usd);
        if let Some(cost) = cost {
            self.count_spend(id, active, cost, now);
        }
        let seen = self.seen_changes(id, active, &run);
        let exit_code = run.process.as_ref().and_then(ProcessEnd::exit_code);
        let signal = run.process.as_ref().and_then(ProcessEnd::signal);
        let duration_ms = run.duration.as_millis() as u64;
        // Every attempt leaves a breadcrumb, a failure included; an interrupted one is retried
        // under the same number, so it leaves none.
        let handoff = told.headline.as_deref().map(|headline| {
            let stderr = told.shows_stderr;
            let note = settlement.note.as_deref();
            handoff_section(active, &run, headline, stderr, note, seen.as_deref(), now)
        });
        let handoff_path = handoff
            .as_ref()
            .and_then(|section| self.append_handoff(id, section));
        let phase = (active.phase == Phase::Review).then(|| "review".to_string());
        self.store.record_mut(id).history.push(AttemptRecord {
            attempt: active.attempt,
            route: active.route.clone(),
            started: active.started,
            ended: now,
            duration_ms,
            exit_code,
            signal,
            outcome: told.reason,
            stderr_tail: run.stderr_tail.clone(),
            run_dir: active.run_dir.display().to_string(),
            cost_usd: cost,
            phase: phase.clone(),
            handoff,
            changed: seen.clone(),
            base: active
                .evidence_before
                .as_ref()
                .and_then(|b| b.head().map(str::to_string)),
        });
        self.emit(
            Some(id),
            EventKind::TaskFinished {
                attempt: active.attempt,
                exit_code,
                signal,
                duration_ms,
                outcome: told.outcome,
                note: settlement.note.clone(),
                stopped: told.stopped,
                phase,
                cost_usd: cost,
                tokens_in: reported.and_then(|r| r.tokens_in),
                tokens_out: reported.and_then(|r| r.tokens_out),
                handoff: handoff_path,
                changed: seen,
            },
        );
        let Some(new) = settlement.write else {
            let _ = self.locks.release(id, &self.instance);
            return false;
        };
        let rec = self.store.record_mut(id);
        rec.hold_ending(
            active.attempt,
            &active.running,
            &new,
            settlement.kind,
            settlement.note,
        );
        // The run's lock now keeps its ending.
        self.note_ending_lock(id);
        true
    }

    /// Counts a run's reported cost against its route's day and its task, and reports a cost
    /// over the route's cap.
    fn count_spend(&mut self, id: &str, active: &Active, cost: f64, now: DateTime<Utc>) {
        self.store.add_spend(now.date_naive(), &active.route, cost);
        self.store.record_mut(id).cost_usd += cost;
        let cap = self
            .config
            .executors
            .get(&active.route)
            .and_then(|e| e.max_cost_usd);
        if let Some(cap) = settle::over_cap(cost, cap) {
            self.emit(
                Some(id),
                EventKind::CostOverCap {
                    route: active.route.clone(),
                    attempt: active.attempt,
                    cost_usd: cost,
                    cap_usd: cap,
                },
            );
        }
    }

    /// The files git saw change during a work run (when the board is in a work tree), and a
    /// report of where they differ from what the run's handoff claims it changed.
    fn seen_changes(&self, id: &str, active: &Active, run: &RunEnd) -> Option<Vec<String>> {
        let reported = run.reported.as_ref();
        // An isolated run's changes are its snapshot's, relative to its worktree's root; the
        // executor's claims are relative to where it ran, which is that root.
        let (seen, root) = match (run.changed.clone(), &active.isolation) {
            (Some(seen), Some(isolation)) => (seen, isolation.path.clone()),
            _ => {
                let before = active.evidence_before.as_ref()?;
                let changes = match &run.seen_at_end {
                    // Looked at where the run started, unless the board's folder (or the
                    // repository around it) moved since: then the runtime's files lie elsewhere.
                    Some(seen) if seen.root == before.root && seen.board_dir == self.board_dir => {
                        seen.changes.clone()
                    }
                    _ => evidence::since(before, &self.board_dir, &self.board, &self.hashes),
                };
                match changes {
                    Ok(Some(paths)) => (paths, before.root.clone()),
                    Ok(None) => return None,
                    Err(why) => {
                        self.error(Some(id), "evidence", why);
                        return None;
                    }
                }
            }
        };
        let claims = reported
            .and_then(|r| r.handoff.as_ref())
            .map(|h| &h.evidence.changed);
        let cwd = match &active.isolation {
            Some(isolation) => isolation.path.clone(),
            None => self.board_dir.clone(),
        };
        let (claimed_not_seen, seen_not_claimed) = match claims {
            Some(claims) => evidence::mismatch(claims, &seen, &cwd, &root),
            None => (Vec::new(), Vec::new()),
        };
        let outside_touches: Option<Vec<String>> = active
            .touches
            .as_ref()
            .map(|globs| {
                outside_touches(globs, &seen)
                    .into_iter()
                    .map(String::from)
                    .collect()
            })
            .filter(|outside: &Vec<String>| !outside.is_empty());
        if !claimed_not_seen.is_empty() || !seen_not_claimed.is_empty() || outside_touches.is_some()
        {
            self.emit(
                Some(id),
                EventKind::EvidenceMismatch {
                    attempt: active.attempt,
                    claimed_not_seen,
                    seen_not_claimed,
                    outside_touches,
                },
            );
        }
        Some(seen)
    }
}

/// The attempt's section of `handoffs/<ID>.md`, under `headline`; `stderr` says whether the
/// run's stderr goes in.
fn handoff_section(
    active: &Active,
    run: &RunEnd,
    headline: &str,
    stderr: bool,
    note: Option<&str>,
    seen: Option<&[String]>,
    now: DateTime<Utc>,
) -> String {
    let reported = run.reported.as_ref();
    handoff::render(&handoff::Attempt {
        attempt: active.attempt,
        route: &active.route,
        ended: now,
        outcome: headline,
        review: active.phase == Phase::Review,
        exit_code: run.process.as_ref().and_then(ProcessEnd::exit_code),
        signal: run.process.as_ref().and_then(ProcessEnd::signal),
        duration_ms: run.duration.as_millis() as u64,
        cost_usd: reported.and_then(|r| r.cost_usd),
        note,
        handoff: reported.and_then(|r| r.handoff.as_ref()),
        seen_changed: seen,
        saved_diff: run
            .saved_diff
            .as_ref()
            .map(|(patch, command)| (patch.as_str(), command.as_str())),
        stderr_tail: stderr.then_some(run.stderr_tail.as_str()),
    })
}
