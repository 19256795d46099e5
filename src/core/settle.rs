//! Settling an attempt: from the facts of a run's end to the ending its task gets, and the
//! words the events, the attempt record and the handoff file use for it.
//!
//! Owns the rules: what a process's end and its result file make of the attempt
//! ([`attempt_end`]), what status that ending writes and what follows it ([`settlement`]: a
//! retry wait, the review, a person's approval, exhaustion; a person's rejection,
//! [`rejection`]), how it is told ([`Summary`]: outcome, reason, why it
//! was stopped, the handoff headline) and when a reported cost is over its cap. It reads no
//! clock (the time the run ended is passed in), no file (the result file's text is passed in)
//! and knows no process: the shell's executor reports its ending as [`ProcessEnd`] and
//! [`StopCause`].

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::core::plan::{Policy, backoff, review_agent};
use crate::core::status::{Stamp, State, Status};

/// The reason word of an attempt whose time ran out, in its status and its events.
pub const TIMEOUT: &str = "timeout";

/// Why the runtime stopped a run before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A person changed the task's status.
    Cancelled,
    /// The runtime is stopping.
    Shutdown,
    /// The executor's time ran out.
    Timeout,
}

/// How the executor's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i32),
    /// Killed by a signal: its number and its name (`SIGKILL`, or the number when unnamed).
    Signaled {
        number: i32,
        name: String,
    },
    /// A remote run whose end could not be learnt: its host could not be reached, its node
    /// lost it, its job vanished. The reason (`host_unreachable`, `node_fail`, ...) is the
    /// attempt's.
    Lost(String),
}

impl ProcessEnd {
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ProcessEnd::Exited(code) => Some(*code),
            ProcessEnd::Signaled { .. } | ProcessEnd::Lost(_) => None,
        }
    }

    pub fn signal(&self) -> Option<i32> {
        match self {
            ProcessEnd::Exited(_) | ProcessEnd::Lost(_) => None,
            ProcessEnd::Signaled { number, .. } => Some(*number),
        }
    }
}

/// What a run's end makes of its attempt. `stopped` is why the runtime stopped it, if it did;
/// `result` is the result file as parsed ([`parse_result`]), if there was one.
pub fn attempt_end(
    stopped: Option<StopCause>,
    process: &ProcessEnd,
    result: Option<&Result<ResultFile, String>>,
) -> AttemptEnd {
    match stopped {
        Some(StopCause::Cancelled) => return AttemptEnd::Cancelled,
        Some(StopCause::Shutdown) => return AttemptEnd::Interrupted,
        Some(StopCause::Timeout) => return AttemptEnd::TimedOut,
        None => {}
    }
    match process {
        ProcessEnd::Exited(0) => match result {
            Some(Ok(r)) => AttemptEnd::Success {
                result: Some(r.clone()),
            },
            Some(Err(why)) => AttemptEnd::BadResult(why.clone()),
            None => AttemptEnd::Success { result: None },
        },
        ProcessEnd::Exited(code) => match result {
            // Its own words on why (a reviewer's "no, because…") beat the exit code.
            Some(Ok(ResultFile {
                note: Some(note), ..
            })) => AttemptEnd::Rejected {
                reason: format!("exit_{code}"),
                note: note.clone(),
            },
            _ => AttemptEnd::Failure(format!("exit_{code}")),
        },
        ProcessEnd::Signaled { name, .. } => AttemptEnd::Failure(format!("signal_{name}")),
        ProcessEnd::Lost(reason) => AttemptEnd::Failure(reason.clone()),
    }
}

/// How a settled attempt is told: in `task_finished`, in its attempt record and in its handoff
/// section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `task_finished`'s outcome: the status written, `cancelled`, `interrupted` or `none`.
    pub outcome: String,
    /// The attempt record's outcome: `done`, `exit_3`, `timeout`, `bad_result`, …
    pub reason: String,
    /// Why the runtime stopped the run: `cancelled`, `shutdown`, `timeout`.
    pub stopped: Option<String>,
    /// The handoff section's headline; `None` when the attempt leaves no section (an
    /// interrupted attempt is run again under the same number).
    pub headline: Option<String>,
    /// Whether the handoff section shows the run's stderr (every attempt but a success).
    pub shows_stderr: bool,
}

/// Tells the attempt that ended as `end` and was settled as `settlement`.
pub fn summary(end: &AttemptEnd, settlement: &Settlement) -> Summary {
    let outcome = match (&settlement.write, end) {
        (_, AttemptEnd::Cancelled) => "cancelled".to_string(),
        (_, AttemptEnd::Interrupted) => "interrupted".to_string(),
        (Some(s), _) => s.to_string(),
        (None, _) => "none".to_string(),
    };
    let reason = match end {
        AttemptEnd::Success { .. } => outcome.clone(),
        AttemptEnd::BadResult(_) => "bad_result".to_string(),
        AttemptEnd::Failure(r)
        | AttemptEnd::Unrunnable(r)
        | AttemptEnd::Rejected { reason: r, .. } => r.clone(),
        AttemptEnd::TimedOut => TIMEOUT.to_string(),
        AttemptEnd::Cancelled => "cancelled".to_string(),
        AttemptEnd::Interrupted => "interrupted".to_string(),
    };
    let stopped = match end {
        AttemptEnd::Cancelled => Some("cancelled".into()),
        AttemptEnd::Interrupted => Some("shutdown".into()),
        AttemptEnd::TimedOut => Some(TIMEOUT.into()),
        _ => None,
    };
    let headline = (!matches!(end, AttemptEnd::Interrupted)).then(|| match &settlement.kind {
        SettlementKind::ToReview { route } => format!("succeeded; sent to `{route}` for review"),
        SettlementKind::AwaitingApproval => "succeeded; its change waits for approval".to_string(),
        SettlementKind::Bounced => "sent back to ready by the review".to_string(),
        _ => reason.clone(),
    });
    Summary {
        outcome,
        reason,
        stopped,
        headline,
        shows_stderr: !matches!(end, AttemptEnd::Success { .. }),
    }
}

/// The cap a reported cost went over (`max_cost_usd`), if it did. A cost equal to its cap is
/// within it.
pub fn over_cap(cost: f64, cap: Option<f64>) -> Option<f64> {
    cap.filter(|cap| cost > *cap)
}

/// The attempt's number within its series: the budget counts this series' attempts (after a
/// `taskboard retry` the numbering goes on from `series_start`).
pub fn in_series(attempt: u32, series_start: u32) -> u32 {
    attempt.saturating_sub(series_start)
}

/// How an attempt ended, as the rules need to know it (a process's own ending, its exit code or
/// signal, is [`ProcessEnd`]).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEnd {
    /// Exit 0. `result` is the executor's result file, if it wrote one.
    Success { result: Option<ResultFile> },
    /// Exit 0 but the result file was unusable (the message says why).
    BadResult(String),
    /// Non-zero exit or killed by a signal: the reason, e.g. `exit_3`, `signal_SIGKILL`.
    Failure(String),
    /// The runtime stopped it because its time ran out (reason `timeout`).
    TimedOut,
    /// Non-zero exit with a note in the result file (a reviewer's "no, because…"): the reason
    /// and the executor's own words, which are what the next attempt needs.
    Rejected { reason: String, note: String },
    /// The runtime stopped it because the person changed the task's status.
    Cancelled,
    /// The runtime stopped it because the runtime itself is stopping.
    Interrupted,
    /// It could not run, and no retry can help until a person changes something (its base
    /// branch does not exist, its board is in no repository): the reason, written as the
    /// task's `failed:` status at once.
    Unrunnable(String),
}

/// Why an isolated run could not start: its base branch does not exist (or the repository is on
/// a detached `HEAD` and names none).
pub const NO_BASE_BRANCH: &str = "no_base_branch";
/// Why an isolated run could not start: there is no git repository to work in.
pub const NO_REPOSITORY: &str = "no_repository";
/// Why an isolated run could not start: git is not installed, or too old.
pub const NO_GIT: &str = "no_git";

impl AttemptEnd {
    /// The ending of a run that could not start for `reason`: one no retry can help with (see
    /// [`NO_BASE_BRANCH`], [`NO_REPOSITORY`], [`NO_GIT`]) fails the task at once; any other is a failure
    /// retried like a failed run.
    pub fn not_started(reason: &str) -> AttemptEnd {
        match reason {
            NO_BASE_BRANCH | NO_REPOSITORY | NO_GIT => AttemptEnd::Unrunnable(reason.to_string()),
            _ => AttemptEnd::Failure(reason.to_string()),
        }
    }
}

/// The executor's optional result file (`$TASKBOARD_RESULT`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultFile {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub tokens_in: Option<u64>,
    #[serde(default)]
    pub tokens_out: Option<u64>,
    #[serde(default)]
    pub handoff: Option<crate::core::handoff::Handoff>,
}

/// Which run of an attempt ended: the work itself, or its review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The task's own run; `review` names the route that must accept a success.
    Work {
        review: Option<String>,
    },
    Review,
}

/// What to do with a task whose attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The status to write (compare-and-swap against the running status), if any.
    pub write: Option<Status>,
    pub kind: SettlementKind,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SettlementKind {
    /// Done, or a status the executor chose (blocked on a person, failed by its own word).
    Finished,
    /// The work succeeded; the review route runs next (the task stays claimed).
    ToReview { route: String },
    /// The review sent the task back to ready; its note goes into the next packet. A person's
    /// rejection of a change waiting for approval settles the same way ([`rejection`]).
    Bounced,
    /// The work (and its review, if any) succeeded on a route whose changes need a person's
    /// approval: `awaiting-approval`, not `done`.
    AwaitingApproval,
    /// Failed; another attempt at `at`.
    Retry { at: DateTime<Utc> },
    /// Failed; no attempts left.
    Exhausted,
    /// Stopped for a person's decision; their status stands.
    Cancelled,
    /// Stopped because the runtime is stopping; back to ready, not counted.
    Interrupted,
}

/// Parses an executor's result file. `ready` is allowed only from a review (a bounce).
pub fn parse_result(text: &str, phase: &Phase) -> Result<ResultFile, String> {
    let result: ResultFile =
        serde_json::from_str(text).map_err(|e| format!("result file is not valid JSON: {e}"))?;
    if let Some(c) = result.cost_usd
        && (!c.is_finite() || c < 0.0)
    {
        return Err(format!("result cost_usd {c} is not a non-negative amount"));
    }
    if let Some(s) = &result.status {
        let status =
            Status::parse(s).map_err(|e| format!("result status `{s}` is not valid: {e}"))?;
        let bounce = *phase == Phase::Review && status == Status::Ready;
        // The approval statuses are the runtime's and a person's words, never an executor's.
        if !bounce
            && (!matches!(status.state(), State::Done | State::Failed | State::Blocked)
                || matches!(
                    status,
                    Status::RetryAt(_)
                        | Status::AwaitingApproval
                        | Status::Approved
                        | Status::Rejected { .. }
                ))
        {
            return Err(format!(
                "result status `{s}` is not allowed: use done, blocked:<who>:<reason>, blocked:task:<ID> or failed:<reason>"
            ));
        }
    }
    Ok(result)
}

/// Decides the outcome of attempt number `attempt` (1-based, within its series) that ended at
/// `now`. `route` is the task's route, the one its work ran on, also when `phase` is that
/// work's review: a success on a route in `policy.approval_routes` waits for approval.
pub fn settlement(
    policy: &Policy,
    route: &str,
    attempt: u32,
    phase: &Phase,
    end: &AttemptEnd,
    now: DateTime<Utc>,
) -> Settlement {
    let approval = policy.approval_routes.contains(route);
    if *phase == Phase::Review {
        return review_settlement(policy, attempt, end, approval);
    }
    let failure = |reason: &str, note: Option<String>| {
        if attempt >= policy.max_attempts {
            Settlement {
                write: Some(Status::failed("exhausted_retries")),
                kind: SettlementKind::Exhausted,
                note: note.or_else(|| Some(reason.to_string())),
            }
        } else {
            // Rounded up to the second the board can show: never retry before the backoff.
            let at = now + backoff(policy.retry_backoff, attempt) + TimeDelta::milliseconds(999);
            let at = Stamp::seconds(at);
            Settlement {
                write: Some(Status::RetryAt(at)),
                kind: SettlementKind::Retry { at: at.at },
                note: note.or_else(|| Some(reason.to_string())),
            }
        }
    };
    match end {
        AttemptEnd::Success { result } => {
            let status = result
                .as_ref()
                .and_then(|r| r.status.as_deref())
                .and_then(|s| Status::parse(s).ok())
                .unwrap_or(Status::Done);
            let note = result.as_ref().and_then(|r| r.note.clone());
            if let (
                Status::Done,
                Phase::Work {
                    review: Some(route),
                },
            ) = (&status, phase)
            {
                return Settlement {
                    write: Some(Status::Running {
                        agent: review_agent(&policy.agent),
                        since: Stamp::seconds(now),
                    }),
                    kind: SettlementKind::ToReview {
                        route: route.clone(),
                    },
                    note,
                };
            }
            if status == Status::Done && approval {
                return awaiting_approval(note);
            }
            Settlement {
                write: Some(status),
                kind: SettlementKind::Finished,
                note,
            }
        }
        AttemptEnd::BadResult(why) => failure("bad_result", Some(why.clone())),
        AttemptEnd::Failure(reason) => failure(reason, None),
        AttemptEnd::Unrunnable(reason) => Settlement {
            write: Some(Status::failed(reason)),
            kind: SettlementKind::Finished,
            note: None,
        },
        AttemptEnd::TimedOut => failure(TIMEOUT, None),
        AttemptEnd::Rejected { reason, note } => failure(reason, Some(note.clone())),
        AttemptEnd::Cancelled => Settlement {
            write: None,
            kind: SettlementKind::Cancelled,
            note: None,
        },
        AttemptEnd::Interrupted => Settlement {
            write: Some(Status::Ready),
            kind: SettlementKind::Interrupted,
            note: None,
        },
    }
}

/// A success whose change waits for a person's approval.
fn awaiting_approval(note: Option<String>) -> Settlement {
    Settlement {
        write: Some(Status::AwaitingApproval),
        kind: SettlementKind::AwaitingApproval,
        note,
    }
}

/// A task sent back with `note` after attempt `attempt` (within its series): to ready, counted
/// as an attempt, or `failed:exhausted_retries` when that was the last one.
fn bounced(policy: &Policy, attempt: u32, note: String) -> Settlement {
    if attempt >= policy.max_attempts {
        Settlement {
            write: Some(Status::failed("exhausted_retries")),
            kind: SettlementKind::Exhausted,
            note: Some(note),
        }
    } else {
        Settlement {
            write: Some(Status::Ready),
            kind: SettlementKind::Bounced,
            note: Some(note),
        }
    }
}

/// A person's `rejected:<note>` of attempt `attempt`'s change (`attempt` within its series,
/// [`in_series`]): the same rule as a review's bounce. `ready` with the note for the next packet
/// ([`SettlementKind::Bounced`]), or `failed:exhausted_retries` and a dead letter when the
/// attempts are spent ([`SettlementKind::Exhausted`]). An empty note is told as such.
pub fn rejection(policy: &Policy, attempt: u32, note: &str) -> Settlement {
    let note = if note.is_empty() {
        "Rejected without a note.".to_string()
    } else {
        note.to_string()
    };
    bounced(policy, attempt, note)
}

/// A review's ending: accept (done, or awaiting approval on a route that needs it), bounce
/// (ready, counted as an attempt), or the status the reviewer chose for a person.
fn review_settlement(
    policy: &Policy,
    attempt: u32,
    end: &AttemptEnd,
    approval: bool,
) -> Settlement {
    let bounce = |note: String| bounced(policy, attempt, note);
    match end {
        AttemptEnd::Success { result } => {
            let note = result.as_ref().and_then(|r| r.note.clone());
            match result
                .as_ref()
                .and_then(|r| r.status.as_deref())
                .and_then(|s| Status::parse(s).ok())
            {
                None | Some(Status::Done) if approval => awaiting_approval(note),
                None | Some(Status::Done) => Settlement {
                    write: Some(Status::Done),
                    kind: SettlementKind::Finished,
                    note,
                },
                Some(Status::Ready) => {
                    bounce(note.unwrap_or_else(|| "The review sent it back without a note.".into()))
                }
                Some(other) => Settlement {
                    write: Some(other),
                    kind: SettlementKind::Finished,
                    note,
                },
            }
        }
        AttemptEnd::BadResult(why) => bounce(format!("The review's result was unusable: {why}")),
        AttemptEnd::Failure(reason) | AttemptEnd::Unrunnable(reason) => {
            bounce(format!("The review did not accept it ({reason})."))
        }
        AttemptEnd::TimedOut => bounce(format!("The review did not accept it ({TIMEOUT}).")),
        AttemptEnd::Rejected { note, .. } => bounce(note.clone()),
        AttemptEnd::Cancelled => Settlement {
            write: None,
            kind: SettlementKind::Cancelled,
            note: None,
        },
        AttemptEnd::Interrupted => Settlement {
            write: Some(Status::Ready),
            kind: SettlementKind::Interrupted,
            note: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::test_support::{NOW, approval_policy, policy, st, t};

    fn work() -> Phase {
        Phase::Work { review: None }
    }

    #[test]
    fn settling_attempts() {
        let p = policy();
        let now = t(NOW);
        let s = settlement(
            &p,
            "default",
            1,
            &work(),
            &AttemptEnd::Success { result: None },
            now,
        );
        assert_eq!(
            (s.write, s.kind),
            (Some(Status::Done), SettlementKind::Finished)
        );
        let r = parse_result(
            r#"{"status": "blocked:siyao:need-url", "note": "no URL"}"#,
            &work(),
        )
        .unwrap();
        let s = settlement(
            &p,
            "default",
            1,
            &work(),
            &AttemptEnd::Success { result: Some(r) },
            now,
        );
        assert_eq!(s.write, Some(st("blocked:siyao:need-url")));
        assert_eq!(s.note.as_deref(), Some("no URL"));
        let s = settlement(
            &p,
            "default",
            2,
            &work(),
            &AttemptEnd::Failure("exit_3".into()),
            now,
        );
        assert_eq!(s.write, Some(st("blocked:retry:2026-04-20T16:01:00Z")));
        assert_eq!(
            s.kind,
            SettlementKind::Retry {
                at: t("2026-04-20T16:01:00Z")
            }
        );
        let s = settlement(&p, "default", 3, &work(), &AttemptEnd::TimedOut, now);
        assert_eq!(
            (s.write, s.kind),
            (
                Some(st("failed:exhausted_retries")),
                SettlementKind::Exhausted
            )
        );
        assert_eq!(
            settlement(&p, "default", 1, &work(), &AttemptEnd::Cancelled, now).write,
            None
        );
        assert_eq!(
            settlement(&p, "default", 1, &work(), &AttemptEnd::Interrupted, now).write,
            Some(Status::Ready)
        );
    }

    #[test]
    fn result_files_are_checked() {
        assert!(
            parse_result("{", &work())
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_result(r#"{"status": "Done"}"#, &work())
                .unwrap_err()
                .contains("not valid")
        );
        assert!(
            parse_result(r#"{"status": "ready"}"#, &work())
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(parse_result(r#"{"status": "running:x:2026-04-20T15:25Z"}"#, &work()).is_err());
        assert!(parse_result(r#"{"note": "fine"}"#, &work()).is_ok());
        assert!(parse_result(r#"{"status": "failed:no_input"}"#, &work()).is_ok());
    }

    #[test]
    fn a_reviewed_route_goes_to_review_before_done() {
        let p = policy();
        let now = t(NOW);
        let phase = Phase::Work {
            review: Some("review".into()),
        };
        let s = settlement(
            &p,
            "default",
            1,
            &phase,
            &AttemptEnd::Success { result: None },
            now,
        );
        assert_eq!(s.write, Some(st("running:review-tb:2026-04-20T16:00:00Z")));
        assert_eq!(
            s.kind,
            SettlementKind::ToReview {
                route: "review".into()
            }
        );
        // An executor that hands the task to a person skips the review.
        let r = parse_result(r#"{"status": "blocked:you:need-url"}"#, &phase).unwrap();
        let s = settlement(
            &p,
            "default",
            1,
            &phase,
            &AttemptEnd::Success { result: Some(r) },
            now,
        );
        assert_eq!(s.kind, SettlementKind::Finished);
        // A failed run is retried as usual.
        let s = settlement(
            &p,
            "default",
            1,
            &phase,
            &AttemptEnd::Failure("exit_1".into()),
            now,
        );
        assert!(matches!(s.kind, SettlementKind::Retry { .. }));
    }

    #[test]
    fn a_review_accepts_or_bounces_counting_the_attempt() {
        let p = policy();
        let now = t(NOW);
        let review = Phase::Review;
        let s = settlement(
            &p,
            "default",
            1,
            &review,
            &AttemptEnd::Success { result: None },
            now,
        );
        assert_eq!(
            (s.write, s.kind),
            (Some(Status::Done), SettlementKind::Finished)
        );
        let r = parse_result(
            r#"{"status": "ready", "note": "tests are missing"}"#,
            &review,
        )
        .unwrap();
        let s = settlement(
            &p,
            "default",
            1,
            &review,
            &AttemptEnd::Success {
                result: Some(r.clone()),
            },
            now,
        );
        assert_eq!(
            (s.write, s.kind),
            (Some(Status::Ready), SettlementKind::Bounced)
        );
        assert_eq!(s.note.as_deref(), Some("tests are missing"));
        let s = settlement(
            &p,
            "default",
            2,
            &review,
            &AttemptEnd::Failure("exit_2".into()),
            now,
        );
        assert_eq!(s.kind, SettlementKind::Bounced);
        assert!(s.note.unwrap().contains("exit_2"));
        // The last attempt's bounce exhausts the task.
        let s = settlement(
            &p,
            "default",
            3,
            &review,
            &AttemptEnd::Success { result: Some(r) },
            now,
        );
        assert_eq!(s.kind, SettlementKind::Exhausted);
        // Only a review may ask for `ready`.
        assert!(parse_result(r#"{"status": "ready"}"#, &work()).is_err());
    }

    #[test]
    fn a_success_on_an_approval_route_waits_for_approval_not_done() {
        let p = approval_policy();
        let now = t(NOW);
        let ok = AttemptEnd::Success { result: None };
        let s = settlement(&p, "isolated", 1, &work(), &ok, now);
        assert_eq!(
            (s.write, s.kind),
            (
                Some(Status::AwaitingApproval),
                SettlementKind::AwaitingApproval
            )
        );
        // An explicit `done` in the result file is the same success.
        let done = parse_result(r#"{"status": "done", "note": "all green"}"#, &work()).unwrap();
        let s = settlement(
            &p,
            "isolated",
            1,
            &work(),
            &AttemptEnd::Success { result: Some(done) },
            now,
        );
        assert_eq!(s.write, Some(Status::AwaitingApproval));
        assert_eq!(s.note.as_deref(), Some("all green"));
        // Other routes finish as before.
        let s = settlement(&p, "default", 1, &work(), &ok, now);
        assert_eq!(s.write, Some(Status::Done));
        // Handing the task to a person, or failing, behaves as today.
        let blocked = parse_result(r#"{"status": "blocked:you:need-url"}"#, &work()).unwrap();
        let s = settlement(
            &p,
            "isolated",
            1,
            &work(),
            &AttemptEnd::Success {
                result: Some(blocked),
            },
            now,
        );
        assert_eq!(
            (s.write, s.kind),
            (Some(st("blocked:you:need-url")), SettlementKind::Finished)
        );
        let failed = parse_result(r#"{"status": "failed:no_input"}"#, &work()).unwrap();
        let s = settlement(
            &p,
            "isolated",
            1,
            &work(),
            &AttemptEnd::Success {
                result: Some(failed),
            },
            now,
        );
        assert_eq!(s.write, Some(st("failed:no_input")));
        let s = settlement(
            &p,
            "isolated",
            1,
            &work(),
            &AttemptEnd::Failure("exit_1".into()),
            now,
        );
        assert!(matches!(s.kind, SettlementKind::Retry { .. }));
        let s = settlement(&p, "isolated", 3, &work(), &AttemptEnd::TimedOut, now);
        assert_eq!(s.kind, SettlementKind::Exhausted);
    }

    #[test]
    fn a_reviewed_approval_route_is_reviewed_first_and_its_accept_waits_for_approval() {
        let p = approval_policy();
        let now = t(NOW);
        let ok = AttemptEnd::Success { result: None };
        let reviewed = Phase::Work {
            review: Some("review".into()),
        };
        let s = settlement(&p, "isolated", 1, &reviewed, &ok, now);
        assert!(matches!(s.kind, SettlementKind::ToReview { .. }));
        let s = settlement(&p, "isolated", 1, &Phase::Review, &ok, now);
        assert_eq!(
            (s.write, s.kind),
            (
                Some(Status::AwaitingApproval),
                SettlementKind::AwaitingApproval
            )
        );
        // The review's bounce and its hand-over to a person are as today.
        let bounce = parse_result(r#"{"status": "ready", "note": "no"}"#, &Phase::Review).unwrap();
        let s = settlement(
            &p,
            "isolated",
            1,
            &Phase::Review,
            &AttemptEnd::Success {
                result: Some(bounce),
            },
            now,
        );
        assert_eq!(s.kind, SettlementKind::Bounced);
        let person = parse_result(r#"{"status": "blocked:you:look"}"#, &Phase::Review).unwrap();
        let s = settlement(
            &p,
            "isolated",
            1,
            &Phase::Review,
            &AttemptEnd::Success {
                result: Some(person),
            },
            now,
        );
        assert_eq!(s.write, Some(st("blocked:you:look")));
        // A review of another route's work accepts to done.
        let s = settlement(&p, "default", 1, &Phase::Review, &ok, now);
        assert_eq!(s.write, Some(Status::Done));
    }

    #[test]
    fn a_wait_for_approval_is_told_as_one() {
        let p = approval_policy();
        let end = AttemptEnd::Success { result: None };
        let settled = settlement(&p, "isolated", 1, &work(), &end, t(NOW));
        let told = summary(&end, &settled);
        assert_eq!(told.outcome, "awaiting-approval");
        assert_eq!(told.reason, "awaiting-approval");
        assert_eq!(
            told.headline.as_deref(),
            Some("succeeded; its change waits for approval")
        );
        assert!(!told.shows_stderr);
    }

    #[test]
    fn a_rejection_follows_the_review_bounce_rule() {
        let p = approval_policy();
        let s = rejection(&p, 1, "too broad");
        assert_eq!(
            (s.write, s.kind, s.note.as_deref()),
            (
                Some(Status::Ready),
                SettlementKind::Bounced,
                Some("too broad")
            )
        );
        let s = rejection(&p, 3, "too broad");
        assert_eq!(
            (s.write, s.kind),
            (
                Some(st("failed:exhausted_retries")),
                SettlementKind::Exhausted
            )
        );
        // The same rule as a review's bounce at every attempt.
        for attempt in 1..=4 {
            let review = AttemptEnd::Rejected {
                reason: "exit_1".into(),
                note: "too broad".into(),
            };
            let bounced = settlement(&p, "default", attempt, &Phase::Review, &review, t(NOW));
            assert_eq!(rejection(&p, attempt, "too broad"), bounced, "{attempt}");
        }
        let s = rejection(&p, 1, "");
        assert_eq!(s.note.as_deref(), Some("Rejected without a note."));
    }

    #[test]
    fn an_executor_cannot_claim_the_approval_statuses() {
        for status in ["awaiting-approval", "approved", "rejected", "rejected:no"] {
            let text = format!(r#"{{"status": "{status}"}}"#);
            for phase in [work(), Phase::Review] {
                let e = parse_result(&text, &phase).unwrap_err();
                assert!(e.contains("not allowed"), "{status}: {e}");
            }
        }
    }

    #[test]
    fn result_files_carry_cost_tokens_and_a_handoff() {
        let r = parse_result(
            r#"{"cost_usd": 0.42, "tokens_in": 1200, "tokens_out": 300, "handoff": {"what": "x", "evidence": {"changed": ["a.rs"]}, "next": "y"}}"#,
            &work(),
        )
        .unwrap();
        assert_eq!(r.cost_usd, Some(0.42));
        assert_eq!((r.tokens_in, r.tokens_out), (Some(1200), Some(300)));
        assert_eq!(r.handoff.unwrap().evidence.changed, ["a.rs"]);
        assert!(parse_result(r#"{"cost_usd": -1}"#, &work()).is_err());
        assert!(
            parse_result(r#"{"stauts": "done"}"#, &work()).is_err(),
            "a misspelt key is an error"
        );
    }

    #[test]
    fn a_reviewer_that_says_no_with_a_note_and_a_non_zero_exit_is_heard() {
        let p = policy();
        let now = t(NOW);
        let end = AttemptEnd::Rejected {
            reason: "exit_1".into(),
            note: "missing tests".into(),
        };
        let s = settlement(&p, "default", 1, &Phase::Review, &end, now);
        assert_eq!(s.kind, SettlementKind::Bounced);
        assert_eq!(s.write, Some(Status::Ready));
        assert_eq!(s.note.as_deref(), Some("missing tests"));
        // A work run's own words on failure go with the retry too.
        let work = Phase::Work { review: None };
        let s = settlement(&p, "default", 1, &work, &end, now);
        assert!(matches!(s.kind, SettlementKind::Retry { .. }));
        assert_eq!(s.note.as_deref(), Some("missing tests"));
    }

    fn exited(code: i32) -> ProcessEnd {
        ProcessEnd::Exited(code)
    }
    fn killed() -> ProcessEnd {
        ProcessEnd::Signaled {
            number: 9,
            name: "SIGKILL".into(),
        }
    }
    fn result(text: &str) -> Result<ResultFile, String> {
        parse_result(text, &work())
    }

    #[test]
    fn a_runs_end_makes_its_attempts_ending() {
        let noted = result(r#"{"note": "no, because"}"#);
        let blocked = result(r#"{"status": "blocked:you:need-url"}"#);
        let unusable: Result<ResultFile, String> = Err("result file is not valid JSON".into());
        // (stopped, process, result file, ending)
        type Row<'a> = (
            Option<StopCause>,
            ProcessEnd,
            Option<&'a Result<ResultFile, String>>,
            AttemptEnd,
        );
        let cases: Vec<Row> = vec![
            (None, exited(0), None, AttemptEnd::Success { result: None }),
            (
                None,
                exited(0),
                Some(&blocked),
                AttemptEnd::Success {
                    result: Some(blocked.clone().unwrap()),
                },
            ),
            (
                None,
                exited(0),
                Some(&unusable),
                AttemptEnd::BadResult("result file is not valid JSON".into()),
            ),
            (None, exited(3), None, AttemptEnd::Failure("exit_3".into())),
            (
                None,
                exited(3),
                Some(&blocked),
                AttemptEnd::Failure("exit_3".into()),
            ),
            (
                None,
                exited(3),
                Some(&unusable),
                AttemptEnd::Failure("exit_3".into()),
            ),
            // Its own words on why beat the exit code.
            (
                None,
                exited(1),
                Some(&noted),
                AttemptEnd::Rejected {
                    reason: "exit_1".into(),
                    note: "no, because".into(),
                },
            ),
            (
                None,
                killed(),
                None,
                AttemptEnd::Failure("signal_SIGKILL".into()),
            ),
            (
                None,
                ProcessEnd::Signaled {
                    number: 64,
                    name: "64".into(),
                },
                None,
                AttemptEnd::Failure("signal_64".into()),
            ),
            // Why the runtime stopped it beats how the process ended.
            (
                Some(StopCause::Cancelled),
                killed(),
                Some(&noted),
                AttemptEnd::Cancelled,
            ),
            (
                Some(StopCause::Shutdown),
                exited(0),
                None,
                AttemptEnd::Interrupted,
            ),
            (
                Some(StopCause::Timeout),
                exited(0),
                Some(&blocked),
                AttemptEnd::TimedOut,
            ),
        ];
        for (stopped, process, result, end) in cases {
            assert_eq!(
                attempt_end(stopped, &process, result),
                end,
                "{stopped:?} {process:?} {result:?}"
            );
        }
        assert_eq!((exited(3).exit_code(), exited(3).signal()), (Some(3), None));
        assert_eq!((killed().exit_code(), killed().signal()), (None, Some(9)));
    }

    #[test]
    fn an_ending_is_told_in_outcome_reason_stopped_and_headline() {
        let p = policy();
        let now = t(NOW);
        let reviewed = Phase::Work {
            review: Some("review".into()),
        };
        let bounce = result(r#"{"note": "tests are missing"}"#).unwrap();
        let bounce = ResultFile {
            status: Some("ready".into()),
            ..bounce
        };
        // (phase, attempt, ending, outcome, reason, stopped, headline, shows stderr)
        type Row = (
            Phase,
            u32,
            AttemptEnd,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let cases: Vec<Row> = vec![
            (
                work(),
                1,
                AttemptEnd::Success { result: None },
                "done",
                "done",
                None,
                Some("done"),
                false,
            ),
            (
                reviewed.clone(),
                1,
                AttemptEnd::Success { result: None },
                "running:review-tb:2026-04-20T16:00:00Z",
                "running:review-tb:2026-04-20T16:00:00Z",
                None,
                Some("succeeded; sent to `review` for review"),
                false,
            ),
            (
                Phase::Review,
                1,
                AttemptEnd::Success {
                    result: Some(bounce),
                },
                "ready",
                "ready",
                None,
                Some("sent back to ready by the review"),
                false,
            ),
            (
                work(),
                1,
                AttemptEnd::Failure("exit_3".into()),
                "blocked:retry:2026-04-20T16:00:30Z",
                "exit_3",
                None,
                Some("exit_3"),
                true,
            ),
            (
                work(),
                3,
                AttemptEnd::TimedOut,
                "failed:exhausted_retries",
                "timeout",
                Some("timeout"),
                Some("timeout"),
                true,
            ),
            (
                work(),
                1,
                AttemptEnd::BadResult("not JSON".into()),
                "blocked:retry:2026-04-20T16:00:30Z",
                "bad_result",
                None,
                Some("bad_result"),
                true,
            ),
            (
                work(),
                1,
                AttemptEnd::Rejected {
                    reason: "exit_1".into(),
                    note: "no".into(),
                },
                "blocked:retry:2026-04-20T16:00:30Z",
                "exit_1",
                None,
                Some("exit_1"),
                true,
            ),
            (
                work(),
                1,
                AttemptEnd::Cancelled,
                "cancelled",
                "cancelled",
                Some("cancelled"),
                Some("cancelled"),
                true,
            ),
            // An interrupted attempt runs again under the same number: no handoff section.
            (
                work(),
                1,
                AttemptEnd::Interrupted,
                "interrupted",
                "interrupted",
                Some("shutdown"),
                None,
                true,
            ),
        ];
        for (phase, attempt, end, outcome, reason, stopped, headline, stderr) in cases {
            let settled = settlement(&p, "default", attempt, &phase, &end, now);
            let told = summary(&end, &settled);
            assert_eq!(
                told,
                Summary {
                    outcome: outcome.into(),
                    reason: reason.into(),
                    stopped: stopped.map(str::to_string),
                    headline: headline.map(str::to_string),
                    shows_stderr: stderr,
                },
                "{end:?} in {phase:?}"
            );
        }
        // A settlement that writes nothing is told as `none`.
        let nothing = Settlement {
            write: None,
            kind: SettlementKind::Finished,
            note: None,
        };
        let told = summary(&AttemptEnd::Success { result: None }, &nothing);
        assert_eq!(
            (told.outcome.as_str(), told.reason.as_str()),
            ("none", "none")
        );
    }

    #[test]
    fn a_cost_over_its_cap_is_reported_and_one_at_its_cap_is_not() {
        let cases = [
            (0.5, None, None),
            (0.5, Some(1.0), None),
            (1.0, Some(1.0), None),
            (1.5, Some(1.0), Some(1.0)),
            (0.0, Some(0.0), None),
        ];
        for (cost, cap, over) in cases {
            assert_eq!(over_cap(cost, cap), over, "{cost} against {cap:?}");
        }
    }

    #[test]
    fn the_budget_counts_the_attempts_of_the_series() {
        assert_eq!(in_series(1, 0), 1);
        assert_eq!(in_series(4, 3), 1);
        assert_eq!(in_series(6, 3), 3);
        assert_eq!(in_series(2, 3), 0, "never below zero");
    }

    #[test]
    fn an_attempt_that_cannot_run_fails_at_once_with_its_reason() {
        let p = policy();
        let now = t(NOW);
        let end = AttemptEnd::not_started(NO_BASE_BRANCH);
        assert_eq!(
            AttemptEnd::not_started("setup_failed"),
            AttemptEnd::Failure("setup_failed".into())
        );
        let work = Phase::Work { review: None };
        // Not retried, whatever attempts are left: nothing changes until a person acts.
        let s = settlement(&p, "default", 1, &work, &end, now);
        assert_eq!(s.write, Some(st("failed:no_base_branch")));
        assert_eq!(s.kind, SettlementKind::Finished);
        let told = summary(&end, &s);
        assert_eq!(told.reason, "no_base_branch");
        assert_eq!(told.headline.as_deref(), Some("no_base_branch"));
    }
}
