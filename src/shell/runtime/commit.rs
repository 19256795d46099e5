//! Committing a pass's status changes: one compare-and-swap write of the board, and what each
//! change that landed (or was refused) implies.
//!
//! Owns the order that keeps a crash harmless: endings on record before the board shows them,
//! a claim's attempt on record before its run starts, the write lock released before any run
//! starts. Owns the retry of a write that failed. Must not plan (the changes come from `pass`
//! and `finish`) nor edit the board except through `writeback`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::Runtime;
use super::launch::Launch;
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::plan::{Episode, PendingEnding, Phase, SettlementKind};
use crate::core::status::Status;
use crate::core::writeback::{self, Change, Refusal};
use crate::shell::fsio;
use crate::shell::lock::{self};

/// A write that failed (unreadable board, full disk) is tried again after this, doubling on
/// each failure in a row up to [`RETRY_WRITE_MAX`]; a save of the board tries at once.
pub(super) const RETRY_WRITE_MIN: Duration = Duration::from_millis(100);
pub(super) const RETRY_WRITE_MAX: Duration = Duration::from_secs(30);

/// A status change on its way to the board, and what to do once it landed (or was refused).
pub(super) struct Pending {
    pub(super) change: Change,
    pub(super) after: After,
}

pub(super) enum After {
    Promoted {
        deps: Vec<String>,
    },
    Reset {
        reason: String,
        attempt: u32,
    },
    Reasserted,
    Claimed {
        route: String,
        attempt: u32,
    },
    /// An attempt's ending (kept in the task's record until it lands).
    Settled {
        ending: PendingEnding,
    },
}

impl Runtime {
    /// Endings that could not be written yet are retried on the next pass: on the next save,
    /// or after a wait that doubles while the failure lasts. Not at once: what stopped the
    /// write (an unreadable board, a full disk) is most likely still there, and an immediate
    /// pass would fail again, back to back, for as long as it lasts.
    pub(super) fn requeue(&mut self, pending: Vec<Pending>) {
        let endings_wait = self.store.with_endings().next().is_some();
        if pending.is_empty() && !endings_wait {
            return;
        }
        self.retry_wait = (self.retry_wait * 2).clamp(RETRY_WRITE_MIN, RETRY_WRITE_MAX);
        self.retry_at = Some(Instant::now() + self.retry_wait);
        // Endings stay in their tasks' records; claims and promotions are re-planned from the
        // board, so a claim's lock goes.
        for p in pending {
            if let After::Claimed { .. } = p.after {
                let _ = self.locks.release(&p.change.id, &self.instance);
            }
        }
    }

    /// Writes pending changes in one compare-and-swap write against the board as it is now,
    /// then carries out what each applied change implies. Returns how many runs started.
    pub(super) fn write(&mut self, pending: Vec<Pending>, planned_hash: u64) -> usize {
        if pending.is_empty() {
            return 0;
        }
        let now = self.now();
        let write_lock = match lock::WriteLock::acquire(&self.state_dir) {
            Ok(l) => l,
            Err(e) => {
                self.error(
                    None,
                    "writeback",
                    format!("cannot take the board's write lock: {e}"),
                );
                self.requeue(pending);
                return 0;
            }
        };
        let Some(snap) = self.read(false) else {
            self.requeue(pending);
            return 0;
        };
        if snap.hash != planned_hash && self.held_by_conflict(&snap) {
            // A merge left conflict markers since the plan's read: write nothing into it.
            self.requeue(pending);
            return 0;
        }
        if snap.hash != planned_hash {
            // A person saved between our read and this write: plan again afterwards.
            self.dirty = true;
        }
        let board = Board::parse(&snap.text);
        let changes: Vec<Change> = pending.iter().map(|p| p.change.clone()).collect();
        let outcome = writeback::apply(&snap.text, &board, &changes);
        if outcome.changed()
            && pending
                .iter()
                .any(|p| matches!(p.after, After::Settled { .. }))
        {
            // Endings are on record before the board shows them: a crash between the two leaves
            // an ending the next start writes, never a finished task that looks unfinished.
            let saved = self.store.save();
            self.note_state_save(saved);
        }
        if outcome.changed() {
            match fsio::replace_if_unchanged(&self.board, outcome.text.as_bytes(), &snap) {
                Ok(true) => {}
                Ok(false) => {
                    // A save landed while we wrote: nothing replaced; plan again on it.
                    self.dirty = true;
                    self.requeue(pending);
                    return 0;
                }
                Err(e) => {
                    self.error(None, "writeback", format!("cannot write the board: {e}"));
                    self.requeue(pending);
                    return 0;
                }
            }
            self.emit(
                None,
                EventKind::Writeback {
                    tasks: outcome.applied.iter().map(|c| c.id.clone()).collect(),
                    bytes: outcome.text.len() as u64,
                },
            );
        }
        self.retry_wait = Duration::ZERO;
        self.last_hash = Some(fsio::content_hash(outcome.text.as_bytes()));
        let refused: BTreeMap<String, Refusal> = outcome
            .refused
            .into_iter()
            .map(|(c, r)| (c.id, r))
            .collect();
        // What landed is on record before any executor starts: a crash between a claim's write
        // and its run then leaves the attempt counted, never an attempt number run twice.
        let landed: BTreeSet<&str> = outcome.applied.iter().map(|c| c.id.as_str()).collect();
        for p in pending
            .iter()
            .filter(|p| landed.contains(p.change.id.as_str()))
        {
            let rec = self.store.record_mut(&p.change.id);
            Episode::record(&mut rec.memory.episode, &p.change.expected, &p.change.new);
            if let After::Claimed { attempt, .. } = &p.after {
                rec.memory.attempts = *attempt;
            }
        }
        if pending
            .iter()
            .any(|p| matches!(p.after, After::Claimed { .. }))
        {
            let saved = self.store.save();
            self.note_state_save(saved);
        }
        drop(write_lock);
        if outcome.applied.iter().any(|c| c.new == Status::Ready) {
            // A task became ready (promoted, reset, interrupted): let the next pass run it.
            self.dirty = true;
        }
        let applied: BTreeSet<String> = outcome.applied.into_iter().map(|c| c.id).collect();
        let text = outcome.text;
        // Block ranges moved with the write: parse what is now on disk, once, if needed.
        let written = pending
            .iter()
            .any(|p| match &p.after {
                After::Claimed { .. } => true,
                After::Settled { ending } => {
                    matches!(ending.settlement, SettlementKind::ToReview { .. })
                }
                _ => false,
            })
            .then(|| Board::parse(&text));

        let mut started = 0;
        for p in pending {
            let id = p.change.id.clone();
            if let (Some(_), After::Settled { .. }) = (refused.get(&id), &p.after) {
                // A save between the plan's read and this write changed the task: the ending
                // stays in its record and meets the new board on the next pass.
                self.dirty = true;
                continue;
            }
            if let Some(why) = refused.get(&id) {
                self.emit(
                    Some(&id),
                    EventKind::WritebackConflict {
                        expected: p.change.expected.to_string(),
                        found: match why {
                            Refusal::Mismatch { found } => found.clone(),
                            other => other.to_string(),
                        },
                        wanted: p.change.new.to_string(),
                    },
                );
                if let After::Claimed { .. } = p.after {
                    let _ = self.locks.release(&id, &self.instance);
                }
                continue;
            }
            if !applied.contains(&id) {
                continue;
            }
            match p.after {
                After::Promoted { deps } => {
                    self.store.record_mut(&id).deps = deps.clone();
                    self.emit(Some(&id), EventKind::DependencyPromoted { deps });
                }
                After::Reset { reason, attempt } => {
                    self.store.record_mut(&id).memory.attempts = attempt;
                    self.emit(
                        Some(&id),
                        EventKind::StaleClaimReset {
                            status: p.change.expected.to_string(),
                            reason,
                            attempt,
                        },
                    );
                    if matches!(p.change.new, Status::Failed { .. }) {
                        self.deadletter(&id, "exhausted_retries (last claim went stale)", now);
                    }
                }
                After::Reasserted => self.emit(
                    Some(&id),
                    EventKind::StatusReasserted {
                        status: p.change.new.to_string(),
                        replaced: p.change.expected.to_string(),
                    },
                ),
                After::Claimed { route, attempt } => {
                    self.store.record_mut(&id).memory.attempts = attempt;
                    let board = written.as_ref().expect("parsed when a claim is pending");
                    let review = self
                        .config
                        .executors
                        .get(&route)
                        .and_then(|e| e.review.clone());
                    let launch = Launch {
                        id: id.clone(),
                        route,
                        attempt,
                        running: p.change.new.clone(),
                        phase: Phase::Work { review },
                    };
                    if self.spawn(launch, (board, &text), now) {
                        started += 1;
                    }
                }
                After::Settled { ending } => {
                    self.kept_reported.remove(&id);
                    let board = written.as_ref().map(|b| (b, text.as_str()));
                    if self.ending_landed(&id, ending, board, now) {
                        started += 1;
                    }
                }
            }
        }
        started
    }
}
