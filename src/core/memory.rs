//! What the runtime remembers of each task between passes and across restarts, as plain data:
//! its planner memory (attempts, the episode of its own writes), the dependencies a promoted
//! task had, each attempt's record for the deadletter file, its spend and an ending on its way
//! to the board; and the rules that update it when the runtime's writes land
//! ([`TaskMemory::note_written`], [`project`]), when an attempt's ending is kept
//! ([`TaskRecord::hold_ending`]) or lands ([`TaskRecord::land_ending`]), and when a
//! `taskboard retry` starts a series ([`TaskRecord::start_series`]); and an isolated run's
//! change on its way from `awaiting-approval` to its branch ([`Approval`]:
//! [`TaskRecord::request_approval`], [`TaskRecord::landed`], [`TaskRecord::clear_approval`]).
//!
//! Must not touch: files or clocks. `shell::store` keeps these records in `.taskboard/state.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::board::{Glance, IdFilter};
use crate::core::hash::IdMap;
use crate::core::plan;
use crate::core::settle::SettlementKind;
use crate::core::status::Status;
use crate::core::writeback::Change;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    #[serde(flatten)]
    pub memory: TaskMemory,
    /// The tasks it waited on before it was promoted: their blocks go into its packet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    /// The attempts of the current episode, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
    /// The note of the review that last sent this task back, for its next packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_feedback: Option<String>,
    /// Spend reported by this task's runs, in US dollars.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost_usd: f64,
    /// When the task was first found missing from the board (cleared when it is back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<DateTime<Utc>>,
    /// The last attempt's ending, while it is not on the board yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<PendingEnding>,
}

/// What this runtime remembers about a task across passes (persisted across restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMemory {
    /// The number of the task's latest attempt since a person's decision (0: none yet). After
    /// `taskboard retry` numbering goes on from here while the budget starts afresh.
    pub attempts: u32,
    /// Attempts before the current series (set by `taskboard retry`): `max_attempts` counts from
    /// here.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub series_start: u32,
    /// The runtime's own latest status for the task and what its writes replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
    /// The change of an isolated run waiting for a person's approval, or landed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// An isolated run's change between `awaiting-approval` on the board and `done`: the planner
/// lands it once on `approved` and sends it back on `rejected:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The attempt whose change it is.
    pub attempt: u32,
    /// The attempt's run folder, relative to the state folder.
    pub run_dir: String,
    #[serde(flatten)]
    pub phase: ApprovalPhase,
    /// `approved` and `rejected:…` tokens the runtime carried out for an earlier change of the
    /// same episode (printed form): one of them coming back is a stale buffer, not a decision
    /// on this change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum ApprovalPhase {
    /// `awaiting-approval` is on the board (or on its way back after a refused landing).
    Waiting,
    /// The change is on its branch as `commit`; `done` may not be on the board yet. It never
    /// lands again.
    Landed { commit: String },
}

fn is_zero_count(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The status the runtime wrote last (printed form).
    pub written: String,
    /// Statuses the runtime's writes replaced since the episode began (printed form).
    pub replaced: Vec<String>,
}

impl Episode {
    /// Records one more write of ours.
    pub fn record(episode: &mut Option<Episode>, from: &Status, to: &Status) {
        let ep = episode.get_or_insert_with(Episode::default);
        let from = from.to_string();
        if !ep.replaced.contains(&from) {
            ep.replaced.push(from);
        }
        ep.written = to.to_string();
    }
}

/// An attempt's ending that the runtime decided and has not seen land on the board yet. It is
/// kept (in memory and in the state file) until it lands or a person's decision supersedes it:
/// an ending is never dropped, so a finished task never runs again for want of its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEnding {
    pub attempt: u32,
    /// The claim the ending replaces (printed form).
    pub claim: String,
    /// The status to write (printed form).
    pub write: String,
    pub settlement: SettlementKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How long a task may be absent from the board before its record is dropped (never while an
/// ending waits in it: [`TaskRecord::may_forget`]). A read caught mid-save can miss tasks that
/// are still there; a day is far past any save.
pub const FORGET_MISSING_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// One attempt, as recorded by the runtime (not as claimed by the executor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub route: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// What the runtime made of it: `done`, `exit_3`, `timeout`, `bad_result`, …
    pub outcome: String,
    pub stderr_tail: String,
    pub run_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// `review` for a review run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// This attempt's section of `handoffs/<ID>.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
    /// Files git saw change during the run (repository-relative), when in a work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// The commit `HEAD` named when the run started: a review's diff is taken from it, so work
    /// the run committed is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl TaskMemory {
    /// One of the runtime's own writes landed: the episode takes it (what it replaced is then
    /// recognised as a stale copy), and a claim counts its attempt.
    pub fn note_written(&mut self, change: &Change, claimed: Option<u32>) {
        Episode::record(&mut self.episode, &change.expected, &change.new);
        if let Some(attempt) = claimed {
            self.attempts = attempt;
        }
    }
}

/// The memory as it will be once `changes` (the runtime's own, not yet written) land: what a
/// plan over the board with those changes applied must see. The same rule as
/// [`TaskMemory::note_written`], applied ahead to a copy.
pub fn project<'a>(
    memory: &mut BTreeMap<String, TaskMemory>,
    changes: impl IntoIterator<Item = &'a Change>,
) {
    for change in changes {
        memory
            .entry(change.id.clone())
            .or_default()
            .note_written(change, None);
    }
}

/// Where the planner looks up what the runtime remembers of a task.
pub trait Recall {
    fn recall(&self, id: &str) -> Option<&TaskMemory>;

    /// Whether anything may be remembered of the task `glance` is of: `false` only when
    /// [`Recall::recall`] of its ID finds nothing. The planner asks it first of every task on
    /// every pass, most of which a long board has settled long ago.
    fn may_recall(&self, glance: &Glance) -> bool {
        let _ = glance;
        true
    }
}

impl Recall for BTreeMap<String, TaskMemory> {
    fn recall(&self, id: &str) -> Option<&TaskMemory> {
        self.get(id)
    }
}

/// The records' memory with changes about to be written [`project`]ed over it, copying only
/// the memory of the tasks the changes name: a pass plans on every task's memory, and a copy of
/// all of it per pass grew with the board. Looked up through a hash index made once: the
/// planner asks for every task's memory on every pass, and a search of the ordered records
/// compares IDs a dozen times a task.
pub struct Projected<'a> {
    memory: IdMap<'a, &'a TaskMemory>,
    changed: BTreeMap<String, TaskMemory>,
    /// The IDs of both, asked by the hash the parse took of each task's ID.
    known: IdFilter,
}

impl<'a> Projected<'a> {
    pub fn new(
        records: &'a BTreeMap<String, TaskRecord>,
        changes: impl IntoIterator<Item = &'a Change>,
    ) -> Projected<'a> {
        let mut changed = BTreeMap::new();
        for change in changes {
            changed
                .entry(change.id.clone())
                .or_insert_with(|| {
                    records
                        .get(&change.id)
                        .map(|r| r.memory.clone())
                        .unwrap_or_default()
                })
                .note_written(change, None);
        }
        let mut memory = IdMap::with_capacity_and_hasher(records.len(), Default::default());
        memory.extend(records.iter().map(|(id, r)| (id.as_str(), &r.memory)));
        let known = (memory.keys().copied())
            .chain(changed.keys().map(String::as_str))
            .collect();
        Projected {
            memory,
            changed,
            known,
        }
    }
}

impl Recall for Projected<'_> {
    fn recall(&self, id: &str) -> Option<&TaskMemory> {
        self.changed
            .get(id)
            .or_else(|| self.memory.get(id).copied())
    }

    fn may_recall(&self, glance: &Glance) -> bool {
        self.known.may_hold(glance)
    }
}

impl TaskRecord {
    /// Whether the record of a task missing from the board may be dropped at `now`: once the
    /// task has been gone for [`FORGET_MISSING_AFTER`], unless an ending waits in it. A task
    /// can be away for longer than that (a branch switched for a week) and come back still
    /// showing the claim of a run that has ended; without its ending that claim would look
    /// abandoned, and the task would run again.
    pub fn may_forget(&self, now: DateTime<Utc>) -> bool {
        self.ending.is_none()
            && self
                .missing_since
                .is_some_and(|since| now - since >= FORGET_MISSING_AFTER)
    }

    /// Keeps attempt `attempt`'s ending until it lands: the status `write` over the run's
    /// `claim`. The episode takes it at once, so a stale buffer that shows the claim (or what
    /// the claim replaced) is recognised as one from here on, wherever the ending is.
    pub fn hold_ending(
        &mut self,
        attempt: u32,
        claim: &Status,
        write: &Status,
        settlement: SettlementKind,
        note: Option<String>,
    ) {
        Episode::record(&mut self.memory.episode, claim, write);
        self.ending = Some(PendingEnding {
            attempt,
            claim: claim.to_string(),
            write: write.to_string(),
            settlement,
            note,
        });
    }

    /// The ending is on the board: it is no longer kept; a finish clears the review's last
    /// note, a bounce keeps the review's note for the next packet, an interrupted attempt is
    /// not counted (it runs again under the same number). The attempts of a finished task stay
    /// on record: a `taskboard retry` goes on from them.
    pub fn land_ending(&mut self, ending: &PendingEnding) {
        self.ending = None;
        match &ending.settlement {
            SettlementKind::Finished | SettlementKind::AwaitingApproval => {
                self.review_feedback = None
            }
            SettlementKind::Bounced => self.review_feedback = ending.note.clone(),
            SettlementKind::Interrupted => {
                self.memory.attempts = ending.attempt.saturating_sub(1);
            }
            SettlementKind::ToReview { .. }
            | SettlementKind::Retry { .. }
            | SettlementKind::Exhausted
            | SettlementKind::Cancelled => {}
        }
    }

    /// The route the latest work run in the record's history ran on (not its review's): a
    /// review settles for it.
    pub fn work_route(&self) -> Option<&str> {
        self.history
            .iter()
            .rev()
            .find(|a| a.phase.is_none())
            .map(|a| a.route.as_str())
    }

    /// Attempt `attempt`'s `awaiting-approval` ending landed on the board: its change (in
    /// `run_dir`, relative to the state folder) waits for a person. A newer attempt's request
    /// replaces an older one's. The approvals and rejections the runtime already carried out in
    /// this episode are stale from here on: they were about earlier changes.
    pub fn request_approval(&mut self, attempt: u32, run_dir: &str) {
        let stale = self
            .memory
            .episode
            .iter()
            .flat_map(|ep| &ep.replaced)
            .filter(|s| {
                matches!(
                    Status::parse(s),
                    Ok(Status::Approved | Status::Rejected { .. })
                )
            })
            .cloned()
            .collect();
        self.memory.approval = Some(Approval {
            attempt,
            run_dir: run_dir.to_string(),
            phase: ApprovalPhase::Waiting,
            stale,
        });
    }

    /// Whether attempt `attempt`'s change is waiting for approval and may land now. The shell
    /// asks this (on a store refreshed under the board's write lock) right before landing: a
    /// change that another pass or process landed is never landed again.
    pub fn may_land(&self, attempt: u32) -> bool {
        matches!(
            &self.memory.approval,
            Some(Approval { attempt: a, phase: ApprovalPhase::Waiting, .. }) if *a == attempt
        )
    }

    /// Attempt `attempt`'s change is on its branch as `commit`: from here the planner only
    /// writes `done`. Kept before the `done` write, so a crash between the two never lands it
    /// twice. Returns false (and changes nothing) when that change was not waiting to land.
    pub fn landed(&mut self, attempt: u32, commit: &str) -> bool {
        if !self.may_land(attempt) {
            return false;
        }
        if let Some(approval) = &mut self.memory.approval {
            approval.phase = ApprovalPhase::Landed {
                commit: commit.to_string(),
            };
        }
        true
    }

    /// The approval is over: `done` is on the board after the landing, or the rejection's status
    /// is. A stale buffer bringing back `awaiting-approval` (or, after a landing, `approved`) is
    /// recognised from here on and put back to the runtime's status, so it neither waits again
    /// nor lands twice.
    pub fn clear_approval(&mut self) {
        let Some(approval) = self.memory.approval.take() else {
            return;
        };
        let Some(ep) = &mut self.memory.episode else {
            return;
        };
        let mut stale = vec![Status::AwaitingApproval.to_string()];
        if matches!(approval.phase, ApprovalPhase::Landed { .. }) {
            stale.push(Status::Approved.to_string());
        }
        for token in stale {
            if token != ep.written && !ep.replaced.contains(&token) {
                ep.replaced.push(token);
            }
        }
    }

    /// A `taskboard retry`: a fresh budget of attempts whose numbers go on from the last one,
    /// with the earlier attempts kept for the packet and `show`. Its `ready` is the person's
    /// decision, guarded like one against a stale buffer's old claim or retry wait (`agent`
    /// names the runtime's claims).
    pub fn start_series(&mut self, agent: &str) {
        let guard = plan::memory_after_decision(Some(&self.memory), &Status::Ready, agent);
        self.memory.series_start = self.memory.attempts;
        self.memory.episode = guard.and_then(|m| m.episode);
        self.review_feedback = None;
        self.ending = None;
    }
}

/// Records holding only `memory`, as the store would keep them.
#[cfg(test)]
pub(crate) fn records_of(memory: &BTreeMap<String, TaskMemory>) -> BTreeMap<String, TaskRecord> {
    (memory.iter())
        .map(|(id, m)| {
            let record = TaskRecord {
                memory: m.clone(),
                ..TaskRecord::default()
            };
            (id.clone(), record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> Status {
        Status::parse(s).unwrap()
    }
    fn change(id: &str, from: &str, to: &str) -> Change {
        Change {
            id: id.into(),
            expected: st(from),
            new: st(to),
        }
    }
    fn episode(written: &str, replaced: &[&str]) -> Option<Episode> {
        Some(Episode {
            written: written.into(),
            replaced: replaced.iter().map(|s| s.to_string()).collect(),
        })
    }
    const CLAIM: &str = "running:tb:2026-04-20T15:00:00Z";

    #[test]
    fn a_landed_write_joins_the_episode_and_a_claim_counts_its_attempt() {
        // (writes landed in order, claimed attempt of the last, attempts, episode after)
        type Writes<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Writes, Option<u32>, u32, Option<Episode>)] = &[
            (&[("ready", CLAIM)], Some(2), 2, episode(CLAIM, &["ready"])),
            (&[("ready", CLAIM)], None, 0, episode(CLAIM, &["ready"])),
            (
                &[("ready", CLAIM), (CLAIM, "done")],
                None,
                0,
                episode("done", &["ready", CLAIM]),
            ),
            // What a write replaced is listed once, however often it is replaced.
            (
                &[("ready", CLAIM), (CLAIM, "ready"), ("ready", CLAIM)],
                Some(3),
                3,
                episode(CLAIM, &["ready", CLAIM]),
            ),
        ];
        for (writes, claimed, attempts, after) in cases {
            let mut m = TaskMemory::default();
            for (i, (from, to)) in writes.iter().enumerate() {
                let last = i + 1 == writes.len();
                m.note_written(&change("A-1", from, to), claimed.filter(|_| last));
            }
            assert_eq!((m.attempts, &m.episode), (*attempts, after), "{writes:?}");
        }
    }

    #[test]
    fn the_projection_is_the_landed_write_rule_applied_ahead() {
        let mut memory = BTreeMap::new();
        memory.insert(
            "A-1".to_string(),
            TaskMemory {
                attempts: 1,
                series_start: 0,
                episode: episode(CLAIM, &["ready"]),
                approval: None,
            },
        );
        let changes = [
            change("A-1", CLAIM, "done"),
            change("B-1", "blocked:task:A-1", "ready"),
        ];
        let mut landed = memory.clone();
        for c in &changes {
            landed
                .entry(c.id.clone())
                .or_default()
                .note_written(c, None);
        }
        let records = records_of(&memory);
        let projected = Projected::new(&records, &changes);
        project(&mut memory, &changes);
        assert_eq!(memory, landed);
        for id in ["A-1", "B-1", "C-1"] {
            assert_eq!(projected.recall(id), memory.recall(id), "{id}");
        }
        assert_eq!(memory["A-1"].episode, episode("done", &["ready", CLAIM]));
        assert_eq!(
            memory["B-1"].episode,
            episode("ready", &["blocked:task:A-1"])
        );
        assert_eq!(memory["A-1"].attempts, 1, "a projection counts no attempt");
    }

    #[test]
    fn a_kept_ending_joins_the_episode_at_once() {
        let mut rec = TaskRecord::default();
        rec.memory.episode = episode(CLAIM, &["ready"]);
        rec.hold_ending(
            1,
            &st(CLAIM),
            &st("done"),
            SettlementKind::Finished,
            Some("all good".into()),
        );
        assert_eq!(rec.memory.episode, episode("done", &["ready", CLAIM]));
        assert_eq!(
            rec.ending,
            Some(PendingEnding {
                attempt: 1,
                claim: CLAIM.into(),
                write: "done".into(),
                settlement: SettlementKind::Finished,
                note: Some("all good".into()),
            })
        );
    }

    #[test]
    fn a_landed_ending_leaves_what_its_kind_says() {
        let at = DateTime::parse_from_rfc3339("2026-04-20T16:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // (kind, review note before, attempts after, review note after)
        let cases: Vec<(SettlementKind, u32, Option<&str>)> = vec![
            (SettlementKind::Finished, 3, None),
            (SettlementKind::AwaitingApproval, 3, None),
            (SettlementKind::Bounced, 3, Some("tests are missing")),
            (SettlementKind::Interrupted, 2, Some("old note")),
            (
                SettlementKind::ToReview {
                    route: "review".into(),
                },
                3,
                Some("old note"),
            ),
            (SettlementKind::Retry { at }, 3, Some("old note")),
            (SettlementKind::Exhausted, 3, Some("old note")),
            (SettlementKind::Cancelled, 3, Some("old note")),
        ];
        for (kind, attempts, feedback) in cases {
            let mut rec = TaskRecord::default();
            rec.memory.attempts = 3;
            rec.review_feedback = Some("old note".into());
            let ending = PendingEnding {
                attempt: 3,
                claim: CLAIM.into(),
                write: "ready".into(),
                settlement: kind.clone(),
                note: Some("tests are missing".into()),
            };
            rec.ending = Some(ending.clone());
            rec.land_ending(&ending);
            assert_eq!(rec.ending, None, "{kind:?}");
            assert_eq!(rec.memory.attempts, attempts, "{kind:?}");
            assert_eq!(rec.review_feedback.as_deref(), feedback, "{kind:?}");
        }
    }

    #[test]
    fn a_retry_starts_a_series_guarded_against_the_old_claim() {
        let mut rec = TaskRecord::default();
        rec.memory.attempts = 3;
        rec.memory.episode = episode("failed:exhausted_retries", &["ready", CLAIM]);
        rec.review_feedback = Some("note".into());
        rec.ending = Some(PendingEnding {
            attempt: 3,
            claim: CLAIM.into(),
            write: "failed:exhausted_retries".into(),
            settlement: SettlementKind::Exhausted,
            note: None,
        });
        rec.start_series("tb");
        assert_eq!((rec.memory.attempts, rec.memory.series_start), (3, 3));
        // The old claim coming back is put back to the person's `ready`.
        assert_eq!(rec.memory.episode, episode("ready", &[CLAIM]));
        assert_eq!((rec.review_feedback, rec.ending), (None, None));
        // Nothing of ours to guard against: nothing remembered of the episode.
        let mut fresh = TaskRecord::default();
        fresh.start_series("tb");
        assert_eq!(fresh.memory.episode, None);
    }

    fn waiting(attempt: u32) -> Option<Approval> {
        Some(Approval {
            attempt,
            run_dir: "runs/A-1/2".into(),
            phase: ApprovalPhase::Waiting,
            stale: Vec::new(),
        })
    }

    #[test]
    fn a_change_lands_exactly_once() {
        let mut rec = TaskRecord::default();
        rec.memory.episode = episode("awaiting-approval", &["ready", CLAIM]);
        rec.request_approval(2, "runs/A-1/2");
        assert_eq!(rec.memory.approval, waiting(2));
        assert!(!rec.may_land(1), "only the attempt that waits lands");
        assert!(rec.may_land(2));
        assert!(rec.landed(2, "abc123"));
        assert_eq!(
            rec.memory.approval.as_ref().map(|a| &a.phase),
            Some(&ApprovalPhase::Landed {
                commit: "abc123".into()
            })
        );
        // Another pass, or another process that merged this record, finds it landed.
        assert!(!rec.may_land(2));
        assert!(!rec.landed(2, "def456"), "a second landing is refused");
        assert_eq!(
            rec.memory.approval.as_ref().map(|a| &a.phase),
            Some(&ApprovalPhase::Landed {
                commit: "abc123".into()
            }),
            "the first commit stays on record"
        );
        // Nothing waiting: nothing lands.
        let mut none = TaskRecord::default();
        assert!(!none.landed(1, "abc123"));
        assert_eq!(none.memory.approval, None);
    }

    #[test]
    fn a_review_settles_for_the_route_of_the_work_it_reviews() {
        let at = DateTime::parse_from_rfc3339("2026-04-20T16:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let attempt = |route: &str, phase: Option<&str>| AttemptRecord {
            attempt: 1,
            route: route.into(),
            started: at,
            ended: at,
            duration_ms: 0,
            exit_code: Some(0),
            signal: None,
            outcome: "done".into(),
            stderr_tail: String::new(),
            run_dir: "runs/A-1/1".into(),
            cost_usd: None,
            phase: phase.map(str::to_string),
            handoff: None,
            changed: None,
            base: None,
        };
        let mut rec = TaskRecord::default();
        assert_eq!(rec.work_route(), None);
        rec.history.push(attempt("default", None));
        rec.history.push(attempt("isolated", None));
        rec.history.push(attempt("review", Some("review")));
        assert_eq!(rec.work_route(), Some("isolated"));
    }

    #[test]
    fn a_newer_request_replaces_an_older_one() {
        let mut rec = TaskRecord::default();
        rec.request_approval(1, "runs/A-1/1");
        rec.request_approval(2, "runs/A-1/2");
        assert_eq!(rec.memory.approval, waiting(2));
    }

    #[test]
    fn a_request_takes_the_approvals_and_rejections_already_carried_out_as_stale() {
        let mut rec = TaskRecord::default();
        // Attempt 1: approved, its landing refused (the wait written back), then rejected.
        rec.memory.episode = episode(
            "awaiting-approval",
            &[
                "ready",
                CLAIM,
                "approved",
                "awaiting-approval",
                "rejected:too broad",
            ],
        );
        rec.request_approval(2, "runs/A-1/2");
        assert_eq!(
            rec.memory.approval.map(|a| a.stale),
            Some(vec![
                "approved".to_string(),
                "rejected:too broad".to_string()
            ])
        );
    }

    #[test]
    fn a_cleared_approval_makes_its_tokens_stale_copies() {
        // After the landing and the `done` write.
        let mut rec = TaskRecord::default();
        rec.memory.episode = episode("done", &["ready", CLAIM, "approved"]);
        rec.request_approval(1, "runs/A-1/1");
        rec.landed(1, "abc123");
        rec.clear_approval();
        assert_eq!(rec.memory.approval, None);
        assert_eq!(
            rec.memory.episode,
            episode("done", &["ready", CLAIM, "approved", "awaiting-approval"])
        );
        // After a rejection sent it back: `approved` never landed, so only the wait is stale.
        let mut rec = TaskRecord::default();
        rec.memory.episode = episode("ready", &[CLAIM, "rejected:no"]);
        rec.request_approval(1, "runs/A-1/1");
        rec.clear_approval();
        assert_eq!(
            rec.memory.episode,
            episode("ready", &[CLAIM, "rejected:no", "awaiting-approval"])
        );
        // Nothing to clear: nothing changes.
        let mut rec = TaskRecord::default();
        rec.memory.episode = episode("done", &[CLAIM]);
        rec.clear_approval();
        assert_eq!(rec.memory.episode, episode("done", &[CLAIM]));
    }

    #[test]
    fn an_approval_is_kept_in_the_state_file_and_older_files_still_load() {
        let mut rec = TaskRecord::default();
        rec.memory.attempts = 2;
        rec.request_approval(2, "runs/A-1/2");
        rec.landed(2, "abc123");
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains(r#""approval":{"attempt":2,"run_dir":"runs/A-1/2","phase":"landed","commit":"abc123"}"#), "{json}");
        let back: TaskRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
        let old: TaskRecord = serde_json::from_str(r#"{"attempts":1}"#).unwrap();
        assert_eq!(old.memory.approval, None);
        let plain = serde_json::to_string(&TaskRecord::default()).unwrap();
        assert!(!plain.contains("approval"), "{plain}");
    }
}
