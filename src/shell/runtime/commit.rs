//! Committing a pass's status changes: one compare-and-swap write of the board, and what each
//! change that landed (or was refused) implies.
//!
//! Owns the order that keeps a crash harmless: endings on record before the board shows them,
//! a claim's attempt on record and the board's rename durable before its run starts (the two
//! syncs run at once), the write lock released before any run starts. Owns the retry of a write that failed. Must not plan (the changes come from `pass`,
//! `finish` and `approve`) nor edit the board except through `writeback`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::launch::Launch;
use super::pass::ReadMode;
use super::{Runtime, SharedStart};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::memory::PendingEnding;
use crate::core::settle::{Phase, SettlementKind};
use crate::core::status::Status;
use crate::core::writeback::{self, Change, Refusal};
use crate::shell::fsio;
use crate::shell::lock;

/// A write that failed (unreadable board, full disk) is tried again after this, doubling on
/// each failure in a row up to [`RETRY_WRITE_MAX`]; a save of the board tries at once.
pub(super) const RETRY_WRITE_MIN: Duration = Duration::from_millis(100);
pub(super) const RETRY_WRITE_MAX: Duration = Duration::from_secs(30);

/// What one write applied to the board, and the board's folder still to sync when the board
/// was replaced (nothing to sync when the changes left the text as it was).
type Replaced = (writeback::Outcome, Option<fsio::FolderSync>);

/// A status change on its way to the board, and what to do once it landed (or was refused).
pub(super) struct Outgoing {
    pub(super) change: Change,
    pub(super) follow_up: FollowUp,
}

/// What a status change implies once it is on the board.
pub(super) enum FollowUp {
    /// A task whose dependencies are done became ready.
    Promoted { deps: Vec<String> },
    /// A claim with no live owner was reset (to ready, or failed after its last attempt).
    Reset { reason: String, attempt: u32 },
    /// The runtime's own status was put back over a stale buffer's.
    Reasserted,
    /// The task is claimed: its run starts.
    Claimed { route: String, attempt: u32 },
    /// An attempt's ending (kept in the task's record until it lands).
    Ended { ending: PendingEnding },
    /// `done` over a change that landed on its branch (the task's lock is ours).
    Landed { attempt: u32 },
    /// `awaiting-approval` back over `approved`: the landing was refused (the lock is ours).
    StillWaiting,
    /// A person's rejection carried out: the status it settles to.
    Rejected {
        attempt: u32,
        note: String,
        kind: SettlementKind,
    },
}

impl Outgoing {
    fn is_claim(&self) -> bool {
        matches!(self.follow_up, FollowUp::Claimed { .. })
    }

    fn is_ending(&self) -> bool {
        matches!(self.follow_up, FollowUp::Ended { .. })
    }
}

impl Runtime {
    /// Endings that could not be written yet are retried on the next pass: on the next save,
    /// or after a wait that doubles while the failure lasts. Not at once: what stopped the
    /// write (an unreadable board, a full disk) is most likely still there, and an immediate
    /// pass would fail again, back to back, for as long as it lasts.
    pub(super) fn requeue(&mut self, outgoing: Vec<Outgoing>) {
        let endings_wait = self.store.with_endings().next().is_some();
        if outgoing.is_empty() && !endings_wait {
            return;
        }
        self.retry_wait = (self.retry_wait * 2).clamp(RETRY_WRITE_MIN, RETRY_WRITE_MAX);
        self.retry_at = Some(Instant::now() + self.retry_wait);
        // Endings stay in their tasks' records; claims and promotions are re-planned from the
        // board, so a claim's lock goes.
        for out in outgoing.iter().filter(|o| o.is_claim()) {
            let _ = self.locks.release(&out.change.id, &self.instance);
        }
    }

    /// Writes the outgoing changes in one compare-and-swap write against the board as it is
    /// now, then carries out what each applied change implies. Returns how many runs started,
    /// and the text the runtime last read or wrote with its board, for the next pass to
    /// re-parse from. `planned` is the text and board the pass planned on (its hash
    /// `planned_hash` is the board as read): the board as it is now is re-parsed from it, block
    /// by block.
    pub(super) fn write(
        &mut self,
        outgoing: Vec<Outgoing>,
        planned: (String, Board),
        planned_hash: u64,
    ) -> (usize, (String, Board)) {
        if outgoing.is_empty() {
            return (0, planned);
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
                self.requeue(outgoing);
                return (0, planned);
            }
        };
        let (outcome, (before_text, before)) = self.replace_board(&outgoing, planned, planned_hash);
        let Some((outcome, folder)) = outcome else {
            self.requeue(outgoing);
            return (0, (before_text, before));
        };
        self.retry_wait = Duration::ZERO;
        self.last_hash = Some(fsio::text_hash(outcome.text.as_bytes()));
        let refused: BTreeMap<String, Refusal> = outcome
            .refused
            .into_iter()
            .map(|(c, r)| (c.id, r))
            .collect();
        match folder {
            // The claims' attempts go on record while the board's folder is synced: two waits
            // on the disk at once, both over before any run starts.
            Some(folder) if outgoing.iter().any(Outgoing::is_claim) => {
                folder.finish_beside(|| self.note_landed(&outgoing, &outcome.applied));
            }
            folder => {
                if let Some(folder) = folder {
                    folder.finish();
                }
                self.note_landed(&outgoing, &outcome.applied);
            }
        }
        drop(write_lock);
        if outcome.applied.iter().any(|c| c.new == Status::Ready) {
            // A task became ready (promoted, reset, interrupted): let the next pass run it.
            self.dirty = true;
        }
        let applied: BTreeSet<String> = outcome.applied.into_iter().map(|c| c.id).collect();
        let text = outcome.text;
        // Block ranges moved with the write: the board now on disk, re-parsed from the one
        // read at the changed blocks only.
        let board = before.reparse_edits(&before_text, &text, &outcome.edits);
        let mut started = 0;
        self.shared_start = SharedStart::Open;
        for out in outgoing {
            let id = out.change.id.clone();
            if let Some(why) = refused.get(&id) {
                self.refused(out, why);
            } else if applied.contains(&id) && self.follow_up(out, (&board, &text), now) {
                started += 1;
            }
        }
        self.shared_start = SharedStart::Off;
        (started, (text, board))
    }

    /// Reads the board as it is now and replaces it with the outgoing changes applied, unless
    /// a save lands meanwhile. Returns what was applied to the board as read (`None` when
    /// nothing was written and the changes wait: reported, or a save to plan on again) with the
    /// board's folder still to sync when it was replaced, and the text it was applied to with
    /// its board (the planned ones when it could not be read).
    fn replace_board(
        &mut self,
        outgoing: &[Outgoing],
        (planned_text, planned): (String, Board),
        planned_hash: u64,
    ) -> (Option<Replaced>, (String, Board)) {
        let Some(snap) = self.read(ReadMode::Now) else {
            return (None, (planned_text, planned));
        };
        // Equal to a full parse (`Board::reparse`), at the cost of the blocks that differ.
        let board = planned.reparse(&planned_text, &snap.text);
        if snap.hash != planned_hash && self.held_by_conflict(&snap) {
            // A merge left conflict markers since the plan's read: write nothing into it.
            return (None, (snap.text, board));
        }
        if snap.hash != planned_hash {
            // A person saved between our read and this write: plan again afterwards.
            self.dirty = true;
        }
        let changes: Vec<Change> = outgoing.iter().map(|o| o.change.clone()).collect();
        let outcome = writeback::apply(&snap.text, &board, &changes);
        if !outcome.changed() {
            return (Some((outcome, None)), (snap.text, board));
        }
        if outgoing.iter().any(Outgoing::is_ending) {
            // Endings are on record before the board shows them: a crash between the two leaves
            // an ending the next start writes, never a finished task that looks unfinished.
            let saved = self.store.save();
            self.note_state_save(saved);
        }
        let folder =
            match fsio::replace_if_unchanged_then(&self.board, outcome.text.as_bytes(), &snap) {
                Ok(Some(folder)) => folder,
                Ok(None) => {
                    // A save landed while we wrote: nothing replaced; plan again on it.
                    self.dirty = true;
                    return (None, (snap.text, board));
                }
                Err(e) => {
                    self.error(None, "writeback", format!("cannot write the board: {e}"));
                    return (None, (snap.text, board));
                }
            };
        self.emit(
            None,
            EventKind::Writeback {
                tasks: outcome.applied.iter().map(|c| c.id.clone()).collect(),
                bytes: outcome.text.len() as u64,
            },
        );
        (Some((outcome, Some(folder))), (snap.text, board))
    }

    /// What landed is on record before any executor starts: a crash between a claim's write
    /// and its run then leaves the attempt counted, never an attempt number run twice.
    fn note_landed(&mut self, outgoing: &[Outgoing], applied: &[Change]) {
        let landed: BTreeSet<&str> = applied.iter().map(|c| c.id.as_str()).collect();
        for out in outgoing
            .iter()
            .filter(|o| landed.contains(o.change.id.as_str()))
        {
            let claimed = match &out.follow_up {
                FollowUp::Claimed { attempt, .. } => Some(*attempt),
                _ => None,
            };
            let rec = self.store.record_mut(&out.change.id);
            rec.memory.note_written(&out.change, claimed);
        }
        if outgoing.iter().any(Outgoing::is_claim) {
            let saved = self.store.save();
            self.note_state_save(saved);
        }
    }

    /// A change the write refused (the task's status is not what the plan read).
    fn refused(&mut self, out: Outgoing, why: &Refusal) {
        let id = &out.change.id;
        if out.is_ending() {
            // A save between the plan's read and this write changed the task: the ending
            // stays in its record and meets the new board on the next pass.
            self.dirty = true;
            return;
        }
        self.emit(
            Some(id),
            EventKind::WritebackConflict {
                expected: out.change.expected.to_string(),
                found: match why {
                    Refusal::Mismatch { found } => found.clone(),
                    other => other.to_string(),
                },
                wanted: out.change.new.to_string(),
            },
        );
        if out.is_claim()
            || matches!(
                out.follow_up,
                FollowUp::Landed { .. } | FollowUp::StillWaiting
            )
        {
            // A landing on record waits for the next pass (`FinishLanding`); a refused one for
            // the person. Either way this write's lock is over.
            let _ = self.locks.release(id, &self.instance);
        }
    }

    /// Carries out what a change that landed implies. `written` is the board as it now is.
    /// Returns whether a run started.
    fn follow_up(&mut self, out: Outgoing, written: (&Board, &str), now: DateTime<Utc>) -> bool {
        let Outgoing { change, follow_up } = out;
        let id = change.id.as_str();
        match follow_up {
            FollowUp::Promoted { deps } => {
                self.store.record_mut(id).deps = deps.clone();
                self.emit(Some(id), EventKind::DependencyPromoted { deps });
            }
            FollowUp::Reset { reason, attempt } => {
                self.store.record_mut(id).memory.attempts = attempt;
                self.emit(
                    Some(id),
                    EventKind::StaleClaimReset {
                        status: change.expected.to_string(),
                        reason,
                        attempt,
                    },
                );
                if matches!(change.new, Status::Failed { .. }) {
                    self.deadletter(id, "exhausted_retries (last claim went stale)", now);
                }
            }
            FollowUp::Reasserted => self.emit(
                Some(id),
                EventKind::StatusReasserted {
                    status: change.new.to_string(),
                    replaced: change.expected.to_string(),
                },
            ),
            FollowUp::Claimed { route, attempt } => {
                self.store.record_mut(id).memory.attempts = attempt;
                let review = self
                    .config
                    .executors
                    .get(&route)
                    .and_then(|e| e.review.clone());
                let launch = Launch {
                    id: id.to_string(),
                    route,
                    attempt,
                    running: change.new.clone(),
                    phase: Phase::Work { review },
                };
                return self.spawn(launch, written, now);
            }
            FollowUp::Ended { ending } => {
                self.kept_reported.remove(id);
                return self.land_ending(id, ending, written, now);
            }
            FollowUp::Landed { attempt } => self.landing_written(id, attempt),
            FollowUp::StillWaiting => {
                let _ = self.locks.release(id, &self.instance);
            }
            FollowUp::Rejected {
                attempt,
                note,
                kind,
            } => self.rejected(id, (attempt, note, kind), now),
        }
        false
    }
}
