//! What the runtime remembers of each task between passes and across restarts, as plain data:
//! its planner memory (attempts, the episode of its own writes), the dependencies a promoted
//! task had, each attempt's record for the deadletter file, its spend and an ending on its way
//! to the board; and the rules that update it when the runtime's writes land
//! ([`TaskMemory::note_written`], [`project`]), when an attempt's ending is kept
//! ([`TaskRecord::hold_ending`]) or lands ([`TaskRecord::land_ending`]), and when a
//! `taskboard retry` starts a series ([`TaskRecord::start_series`]).
//!
//! Must not touch: files or clocks. `shell::store` keeps these records in `.taskboard/state.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// How long a task may be absent from the board before its record is dropped. A read caught
/// mid-save can miss tasks that are still there; a day is far past any save.
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

impl TaskRecord {
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
            SettlementKind::Finished => self.review_feedback = None,
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
        project(&mut memory, &changes);
        assert_eq!(memory, landed);
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
}
