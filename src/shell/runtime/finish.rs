//! Taking an ending: a run's end becomes an attempt's ending kept in the task's record, and an
//! ending that reaches the board is landed.
//!
//! Owns what is recorded of a finished attempt (spend, evidence, handoff section, attempt
//! record, `task_finished`), meeting each kept ending with the board as it is now (write it,
//! wait, or give way to a person), and what a landed ending implies (memory, events,
//! deadletter, the review run that follows, the lock's release). The decisions themselves
//! (the status to write, the outcome words) are the core's; this module must not write the
//! board (it hands changes to `commit`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::commit::{After, Pending};
use super::launch::Launch;
use super::{Active, Runtime, signal_name};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::handoff;
use crate::core::memory::AttemptRecord;
use crate::core::plan::{
    self, Ending, Episode, Landing, LockView, PendingEnding, Phase, ResultFile, SettlementKind,
};
use crate::core::status::Status;
use crate::core::writeback::Change;
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::fsio;

/// What the runtime saw of a run that ended.
#[derive(Default)]
pub(super) struct RunFacts {
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) duration: Duration,
    pub(super) stderr_tail: String,
    /// The result file, when it parsed (cost and handoff count whatever the exit).
    pub(super) reported: Option<ResultFile>,
}

impl Runtime {
    /// The endings this runtime holds (its own, and those a stopped runtime left behind, which it
    /// takes over with their locks), each turned into a change against the board as it is now.
    /// Returns the changes to write, every task whose ending is still on its way (the planner
    /// leaves those alone), and how many review runs started for endings already on the board.
    pub(super) fn gather_endings(
        &mut self,
        board: &Board,
        text: &str,
        locks: &mut BTreeMap<String, LockView>,
        now: DateTime<Utc>,
    ) -> (Vec<Pending>, BTreeSet<String>, usize) {
        let mut pending = Vec::new();
        let mut settling = BTreeSet::new();
        let mut reviews = 0;
        for id in self.endings_of_past_runs() {
            match locks.get(&id) {
                Some(LockView::Ours) => {}
                // Another live runtime's ending: it writes it.
                Some(LockView::Live) => {
                    settling.insert(id);
                    continue;
                }
                Some(LockView::Stale(_)) | None => {
                    if !self.adopt_ending(&id, now) {
                        settling.insert(id);
                        continue;
                    }
                    locks.insert(id.clone(), LockView::Ours);
                }
            }
            let rec = &self.store.tasks[&id];
            let Some(ending) = rec.ending.clone() else {
                continue;
            };
            let agent = &self.config.runtime.agent;
            match plan::landing(board, &id, &ending, rec.memory.episode.as_ref(), agent) {
                Landing::Landed => {
                    self.kept_reported.remove(&id);
                    if self.ending_landed(&id, ending, Some((board, text)), now) {
                        reviews += 1;
                    }
                }
                Landing::Write { over } => {
                    let Ok(new) = Status::parse(&ending.write) else {
                        continue;
                    };
                    settling.insert(id.clone());
                    pending.push(Pending {
                        change: Change {
                            id,
                            expected: over,
                            new,
                        },
                        after: After::Settled { ending },
                    });
                }
                Landing::Wait { reason } => {
                    settling.insert(id.clone());
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
        (pending, settling, reviews)
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
    /// now is (parsed when a review is to start). Returns whether a review run started.
    pub(super) fn ending_landed(
        &mut self,
        id: &str,
        ending: PendingEnding,
        written: Option<(&Board, &str)>,
        now: DateTime<Utc>,
    ) -> bool {
        let rec = self.store.record_mut(id);
        rec.ending = None;
        let attempt = ending.attempt;
        match ending.settlement {
            SettlementKind::Finished => {
                // The attempts stay on record: a `taskboard retry` goes on from them.
                rec.review_feedback = None;
            }
            SettlementKind::ToReview { route } => {
                // The task stays claimed: the lock passes to the review run.
                let Some(board) = written else {
                    return false;
                };
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
                return self.spawn(launch, board, now);
            }
            SettlementKind::Bounced => rec.review_feedback = ending.note.clone(),
            SettlementKind::Retry { at } => {
                self.emit(Some(id), EventKind::TaskRetryScheduled { attempt, at });
            }
            SettlementKind::Exhausted => self.deadletter(id, "exhausted_retries", now),
            SettlementKind::Interrupted => {
                rec.memory.attempts = attempt.saturating_sub(1);
                self.emit(Some(id), EventKind::TaskInterrupted { attempt });
            }
            SettlementKind::Cancelled => {}
        }
        let _ = self.locks.release(id, &self.instance);
        false
    }

    /// Records an executor's ending; returns whether there is a status to write.
    pub(super) fn settle(&mut self, id: &str, attempt: u32, finished: exec::Finished) -> bool {
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
            .map(|text| plan::parse_result(&text, &active.phase));
        let ending = match finished.stopped {
            Some(exec::StopReason::Cancelled) => Ending::Cancelled,
            Some(exec::StopReason::Shutdown) => Ending::Interrupted,
            Some(exec::StopReason::Timeout) => Ending::Failure("timeout".into()),
            None => match finished.ending {
                exec::Ending::Exited(0) => match &result {
                    Some(Ok(r)) => Ending::Success {
                        result: Some(r.clone()),
                    },
                    Some(Err(why)) => Ending::BadResult(why.clone()),
                    None => Ending::Success { result: None },
                },
                exec::Ending::Exited(code) => match &result {
                    // Its own words on why (a reviewer's "no, because…") beat the exit code.
                    Some(Ok(ResultFile {
                        note: Some(note), ..
                    })) => Ending::Rejected {
                        reason: format!("exit_{code}"),
                        note: note.clone(),
                    },
                    _ => Ending::Failure(format!("exit_{code}")),
                },
                exec::Ending::Signaled(sig) => {
                    Ending::Failure(format!("signal_{}", signal_name(sig)))
                }
            },
        };
        let (exit_code, signal) = match finished.ending {
            exec::Ending::Exited(c) => (Some(c), None),
            exec::Ending::Signaled(s) => (None, Some(s)),
        };
        let facts = RunFacts {
            exit_code,
            signal,
            duration: finished.duration,
            stderr_tail: finished.stderr_tail,
            reported: result.and_then(Result::ok),
        };
        self.conclude(id, &active, ending, facts)
    }

    /// Records an attempt's ending (spend, handoff, attempt record, `task_finished`) and keeps
    /// the status it calls for in the task's record until it lands. Returns whether there is one.
    pub(super) fn conclude(
        &mut self,
        id: &str,
        active: &Active,
        ending: Ending,
        facts: RunFacts,
    ) -> bool {
        let now = self.now();
        // The budget counts this series' attempts; after a retry the numbering goes on.
        let series_start = self
            .store
            .tasks
            .get(id)
            .map_or(0, |r| r.memory.series_start);
        let in_series = active.attempt.saturating_sub(series_start);
        let settlement = plan::settle(&self.policy(), in_series, &active.phase, &ending, now);
        let outcome = match (&settlement.write, &ending) {
            (_, Ending::Cancelled) => "cancelled".to_string(),
            (_, Ending::Interrupted) => "interrupted".to_string(),
            (Some(s), _) => s.to_string(),
            (None, _) => "none".to_string(),
        };
        let reason = match &ending {
            Ending::Success { .. } => outcome.clone(),
            Ending::BadResult(_) => "bad_result".to_string(),
            Ending::Failure(r) | Ending::Rejected { reason: r, .. } => r.clone(),
            Ending::Cancelled => "cancelled".to_string(),
            Ending::Interrupted => "interrupted".to_string(),
        };
        let phase = (active.phase == Phase::Review).then(|| "review".to_string());
        let reported = facts.reported.as_ref();
        let cost = reported.and_then(|r| r.cost_usd);
        if let Some(cost) = cost {
            self.store.add_spend(now.date_naive(), &active.route, cost);
            self.store.record_mut(id).cost_usd += cost;
            let cap = self
                .config
                .executors
                .get(&active.route)
                .and_then(|e| e.max_cost_usd);
            if let Some(cap) = cap.filter(|cap| cost > *cap) {
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
        let duration_ms = facts.duration.as_millis() as u64;
        let seen = match active.evidence_before.as_ref().map(|before| {
            let since = evidence::since(before, &self.board_dir, &self.board);
            (since, before.root.clone())
        }) {
            Some((Ok(Some(paths)), root)) => Some((paths, root)),
            Some((Err(why), _)) => {
                self.error(Some(id), "evidence", why);
                None
            }
            _ => None,
        };
        if let (Some((seen, root)), Some(claims)) = (
            &seen,
            reported
                .and_then(|r| r.handoff.as_ref())
                .map(|h| &h.evidence.changed),
        ) {
            let (claimed_not_seen, seen_not_claimed) =
                evidence::mismatch(claims, seen, &self.board_dir, root);
            if !claimed_not_seen.is_empty() || !seen_not_claimed.is_empty() {
                self.emit(
                    Some(id),
                    EventKind::EvidenceMismatch {
                        attempt: active.attempt,
                        claimed_not_seen,
                        seen_not_claimed,
                    },
                );
            }
        }
        let seen = seen.map(|(paths, _)| paths);
        // Every attempt leaves a breadcrumb, a failure included; an interrupted one is retried
        // under the same number, so it leaves none.
        let handoff = (!matches!(ending, Ending::Interrupted)).then(|| {
            let succeeded = matches!(ending, Ending::Success { .. });
            let headline = match &settlement.kind {
                SettlementKind::ToReview { route } => {
                    format!("succeeded; sent to `{route}` for review")
                }
                SettlementKind::Bounced => "sent back to ready by the review".to_string(),
                _ => reason.clone(),
            };
            handoff::render(&handoff::Attempt {
                attempt: active.attempt,
                route: &active.route,
                ended: now,
                outcome: &headline,
                review: active.phase == Phase::Review,
                exit_code: facts.exit_code,
                signal: facts.signal,
                duration_ms,
                cost_usd: cost,
                note: settlement.note.as_deref(),
                handoff: reported.and_then(|r| r.handoff.as_ref()),
                seen_changed: seen.as_deref(),
                stderr_tail: (!succeeded).then_some(facts.stderr_tail.as_str()),
            })
        });
        let handoff_path = handoff
            .as_ref()
            .and_then(|section| self.append_handoff(id, section));
        let rec = self.store.record_mut(id);
        rec.history.push(AttemptRecord {
            attempt: active.attempt,
            route: active.route.clone(),
            started: active.started,
            ended: now,
            duration_ms,
            exit_code: facts.exit_code,
            signal: facts.signal,
            outcome: reason,
            stderr_tail: facts.stderr_tail.clone(),
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
                exit_code: facts.exit_code,
                signal: facts.signal,
                duration_ms,
                outcome,
                note: settlement.note.clone(),
                stopped: match &ending {
                    Ending::Cancelled => Some("cancelled".into()),
                    Ending::Interrupted => Some("shutdown".into()),
                    Ending::Failure(r) if r == "timeout" => Some("timeout".into()),
                    _ => None,
                },
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
        // The episode takes the ending now: a stale buffer that shows the claim (or what the
        // claim replaced) is recognised as one from here on, wherever the ending is.
        Episode::record(&mut rec.memory.episode, &active.running, &new);
        rec.ending = Some(PendingEnding {
            attempt: active.attempt,
            claim: active.running.to_string(),
            write: new.to_string(),
            settlement: settlement.kind,
            note: settlement.note,
        });
        true
    }
}
