//! Statistics over the event log: a pure function of events and the current time.
//!
//! Owns the definitions behind `taskboard stats`. Feed lines (or parsed [`Record`]s) oldest first to
//! a [`Builder`], then [`Builder::finish`] gives a [`Stats`]. No file, clock or board is read
//! here; the command streams the log files and may replace the queue with counts from the board.
//!
//! # Definitions
//!
//! - An *attempt finished* is a `task_finished` whose outcome is not `cancelled` or
//!   `interrupted` (each run once: a review run is one, apart from the work it reviews); it
//!   *failed* when its outcome is `blocked:retry:…` or `failed:…`.
//! - Tasks *done* and *failed* count each task once, by its latest outcome in the window: its
//!   last `task_finished` with outcome `done` (done) or `failed:…` (failed), or a
//!   `task_deadlettered` that does not follow such a `failed:…` finish of the same failure (a
//!   claim that went stale too often, or a finish before the window: failed). A deadletter right
//!   after a `failed:…` finish (no run of the task in between) is that same failure. Other
//!   outcomes (`blocked:…`, `ready` from a review, `running:review-…`) leave the latest outcome
//!   as it was. So a task that failed, was retried (automatically, or by a person with
//!   `taskboard retry`) and failed again is one failed task; one that failed, was retried and
//!   was then done is one done task (its failed attempts stay in the error rate). Per day, a task
//!   counts under the UTC day of its latest outcome: the days add up to the totals.
//! - *Retried* counts each `task_retry_scheduled` (an automatic retry), on its day.
//! - Error rate = failed attempts / finished attempts; retry rate = retries / finished attempts.
//! - Throughput: tasks done over the *span*, from the earliest to the latest event time in the
//!   window (by time, not by place in the files). Per hour only when the span is at least an
//!   hour, per day only when it is at least a day (24 h); a shorter span is reported as a count
//!   and a span, never extrapolated.
//! - Latency: `file_changed.latency_ms` (save to detection). Duration per route:
//!   `task_finished.duration_ms`, joined to the route of the `task_dispatched` with the same task,
//!   attempt and phase (dispatches before the window are joined too). A review run has the same
//!   attempt number as the work it reviews; its duration counts under its route with phase
//!   `review`, apart from the work runs.
//! - Spend: `task_finished.cost_usd` (any outcome, cancelled and interrupted included), by the
//!   route of the joined dispatch (`-` when that dispatch is not in the log) and by the UTC day of
//!   the finish; tokens from `tokens_in` and `tokens_out`. A negative or non-finite cost is
//!   ignored.
//! - Reviews: a `task_finished` with phase `review` that was not cancelled or interrupted is a
//!   review run; it *accepted* when its outcome is `done`, *bounced* when `ready`. (Other outcomes:
//!   the last attempt's bounce, `failed:exhausted_retries`, or a status the reviewer chose.)
//! - Runners: each `task_dispatched` in the window counts once where it went: this machine
//!   (no `remote`), its SSH host, or Slurm; a Slurm run's node counts from its
//!   `remote_running`. `run_adopted` and `host_down` events are counted (a host's downs also
//!   under that host). The text report's line and the JSON's `runners` are there only when a run
//!   went elsewhere or a host was down.
//! - Over cap, budget holds and evidence mismatches count the `cost_over_cap`,
//!   `budget_exhausted` and `evidence_mismatch` events in the window.
//! - Failures: the tasks counted failed, each once with its latest failure, the last
//!   [`LAST_FAILURES`] in the order those failures were logged. Its deadletter file is the one
//!   `task_deadlettered` named, or where a later `retry_requested` archived it.
//! - Queue: the last known status of each task, replayed from all events (not only the window):
//!   `task_dispatched` → running, `task_finished.outcome`, `task_retry_scheduled` → blocked,
//!   `dependency_promoted`, `stale_claim_reset`, `retry_requested`, `task_interrupted` → ready,
//!   `status_reasserted.status`, `task_deadlettered` → failed. A `cancelled` finish forgets the
//!   task (a person changed its status).
//!
//! # JSON (`taskboard stats --json`)
//!
//! [`Stats`] serializes to the document the README describes key by key (its unit and what it
//! counts), under "`stats --json` schema"; a test holds that every key emitted is described
//! there. Version 2: `totals.done`, `totals.failed`, the days' `done` and `failed` and the
//! failures count each task once, and `throughput` is over the span with its rates nullable.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::core::event::{Record, format_ts};

/// Upper bounds (ms, inclusive) of the latency histogram buckets; a last bucket holds the rest.
pub const LATENCY_BUCKETS: [u64; 9] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// How many failures the report keeps.
pub const LAST_FAILURES: usize = 20;

/// How many over-cap runs and budget holds the report lists.
pub const LAST_LISTED: usize = 20;

/// The coarse states the queue counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QState {
    Ready,
    Running,
    Blocked,
    Failed,
    Done,
}

fn state_of(status: &str) -> Option<QState> {
    let head = status.split(':').next().unwrap_or("");
    Some(match head {
        "ready" | "interrupted" => QState::Ready,
        "running" => QState::Running,
        // The approval statuses wait, as the board counts them (`Status::state`).
        "blocked" | "awaiting-approval" | "approved" | "rejected" => QState::Blocked,
        "failed" => QState::Failed,
        "done" => QState::Done,
        _ => return None,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
    pub attempts_finished: u64,
    pub attempts_failed: u64,
    pub error_rate: Option<f64>,
    /// Reported cost of the runs that finished this day.
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
    pub attempts_finished: u64,
    pub attempts_failed: u64,
}

/// Tasks done over the time the window's events cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Throughput {
    /// Tasks done (as [`Totals::done`]).
    pub done: u64,
    /// The first and last event in the window; `None` when the window has no event.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `to - from`.
    pub span_ms: u64,
    /// Done per hour over the span; `None` when the span is shorter than an hour.
    pub per_hour: Option<f64>,
    /// Done per day over the span; `None` when the span is shorter than a day.
    pub per_day: Option<f64>,
}

/// The shortest span given a rate per hour: a shorter one is reported as a count and a span,
/// never extrapolated to a period that was not observed.
pub const HOUR_MS: u64 = 3_600_000;

/// The shortest span given a rate per day (24 hours, not a calendar day).
pub const DAY_MS: u64 = 24 * HOUR_MS;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Inclusive upper bound in ms; `None` for the last, open bucket.
    pub le: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Route {
    pub route: String,
    /// `"review"` for the route's review runs; `None` for work runs.
    pub phase: Option<String>,
    pub runs: u64,
    pub failed: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Queue {
    /// `"events"` (replayed) or `"board"` (counted from the board file).
    pub source: String,
    pub ready: u64,
    pub running: u64,
    pub blocked: u64,
    pub failed: u64,
    pub done: u64,
}

/// A task counted failed, with its latest failure in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailedTask {
    pub ts: String,
    pub task: String,
    pub attempt: Option<u32>,
    pub outcome: String,
    pub note: Option<String>,
    /// The task's deadletter file for this failure: as `task_deadlettered` named it, or where a
    /// later `retry_requested` archived it.
    pub deadletter: Option<String>,
}

/// Reported spend of one route (work and review runs together).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteSpend {
    /// The route of the run's dispatch; `"-"` when the dispatch is not in the log.
    pub route: String,
    pub cost_usd: f64,
    /// Runs that reported a cost.
    pub runs: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// Reported spend of one route on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DaySpend {
    pub date: String,
    pub route: String,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spend {
    pub cost_usd: f64,
    /// Runs that reported a cost.
    pub runs: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Sorted by route.
    pub routes: Vec<RouteSpend>,
    /// Days and routes with a reported cost, oldest first, then by route.
    pub days: Vec<DaySpend>,
}

/// One `cost_over_cap`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OverCap {
    pub ts: String,
    pub task: String,
    pub route: String,
    pub attempt: Option<u32>,
    pub cost_usd: f64,
    pub cap_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OverCaps {
    pub count: u64,
    /// The last [`LAST_LISTED`], oldest first.
    pub last: VecDeque<OverCap>,
}

/// One `budget_exhausted`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BudgetHold {
    pub ts: String,
    /// The UTC day the budget was spent.
    pub date: String,
    pub route: String,
    pub spent_usd: f64,
    pub budget_usd: f64,
    pub waiting: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BudgetHolds {
    pub count: u64,
    /// The last [`LAST_LISTED`], oldest first.
    pub last: VecDeque<BudgetHold>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reviews {
    /// Review runs that finished (not cancelled or interrupted).
    pub run: u64,
    /// Review runs that finished `done`.
    pub accepted: u64,
    /// Review runs that finished `ready` (sent back for another attempt).
    pub bounced: u64,
}

/// Changes of isolated runs that waited for a person, in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Approvals {
    /// Changes that came to wait for approval (`approval_requested`).
    pub requested: u64,
    /// Approvals that landed (`merged`; one for a change across several repositories).
    pub merged: u64,
    /// Approvals refused at landing (`merge_refused`): the change kept waiting.
    pub refused: u64,
    /// Changes a person sent back (`rejected`).
    pub rejected: u64,
}

impl Approvals {
    pub fn any(&self) -> bool {
        self.requested + self.merged + self.refused + self.rejected > 0
    }
}

/// Runs on one SSH host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostRuns {
    pub host: String,
    /// Dispatches to it.
    pub runs: u64,
    /// `host_down` events naming it.
    pub down: u64,
}

/// Slurm runs that started on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeRuns {
    pub node: String,
    pub runs: u64,
}

/// Runs sent to Slurm.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlurmRuns {
    /// Dispatches (submitted or not).
    pub runs: u64,
    /// Where they started, by node, sorted by node.
    pub nodes: Vec<NodeRuns>,
}

/// Where runs ran: this machine, SSH hosts, Slurm.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Runners {
    pub local: u64,
    /// Sorted by host.
    pub ssh: Vec<HostRuns>,
    pub slurm: SlurmRuns,
    /// `run_adopted`: remote runs a restarted runtime took over.
    pub adopted: u64,
    /// `host_down`: times an SSH host could not be reached.
    pub host_down: u64,
}

impl Runners {
    /// Whether every run ran here and no host was down: no runners line, no `runners` key.
    pub fn local_only(&self) -> bool {
        self.ssh.is_empty() && self.slurm.runs == 0 && self.adopted + self.host_down == 0
    }
}

/// Everything `taskboard stats` shows. Serializes to the documented JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub version: u32,
    pub now: String,
    pub since: String,
    pub events: u64,
    pub bad_lines: u64,
    pub totals: Totals,
    pub throughput: Throughput,
    pub error_rate: Option<f64>,
    pub retry_rate: Option<f64>,
    pub days: Vec<Day>,
    pub latency_ms: Latency,
    pub routes: Vec<Route>,
    pub queue: Queue,
    pub failures: VecDeque<FailedTask>,
    pub spend: Spend,
    pub over_cap: OverCaps,
    pub budget_exhausted: BudgetHolds,
    pub reviews: Reviews,
    pub approvals: Approvals,
    pub evidence_mismatches: u64,
    /// Absent when every run ran on this machine and no host was down, so a board without
    /// remote runners reports exactly as before.
    #[serde(skip_serializing_if = "Runners::local_only")]
    pub runners: Runners,
}

/// Accumulates events (oldest first) into a [`Stats`]. Keeps per-task state and the numbers
/// needed for percentiles, never the events themselves.
#[derive(Debug)]
pub struct Builder {
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    since_key: String,
    first_day: NaiveDate,
    days: Vec<Day>,
    /// The last day key seen and its index (events come mostly in order).
    day_cache: Option<(String, Option<usize>)>,
    /// The first and last event time in the window, in the log's own form (compares as text).
    first_key: Option<String>,
    last_key: Option<String>,
    events: u64,
    bad_lines: u64,
    totals: Totals,
    latencies: Vec<u64>,
    routes: HashMap<(String, bool), (Vec<u64>, u64)>,
    /// Route of each running dispatch by (task, attempt, review run).
    dispatched: HashMap<(String, u32, bool), String>,
    spend: Spend,
    spend_routes: HashMap<String, RouteSpend>,
    spend_days: HashMap<(usize, String), f64>,
    over_cap: OverCaps,
    budget_exhausted: BudgetHolds,
    reviews: Reviews,
    approvals: Approvals,
    /// (task, attempt) of every `merged` seen: a landing across repositories is one.
    merged: std::collections::HashSet<(String, u32)>,
    evidence_mismatches: u64,
    runners: Runners,
    hosts: HashMap<String, HostRuns>,
    nodes: HashMap<String, u64>,
    queue: HashMap<String, QState>,
    /// Each task's latest outcome in the window: what `done`, `failed` and the failures count.
    outcomes: HashMap<String, LatestOutcome>,
    outcome_seq: u64,
}

/// A task's latest outcome in the window.
#[derive(Debug)]
struct LatestOutcome {
    /// Order of arrival, so the failures list keeps the log's order.
    seq: u64,
    day: Option<usize>,
    /// `None` when done.
    failure: Option<FailedTask>,
    /// A `failed:…` finish not yet followed by its deadletter: a `task_deadlettered` now names
    /// this failure's file rather than a new failure.
    awaits_deadletter: bool,
}

impl Builder {
    /// A report of the window `[now - window, now]`.
    pub fn new(now: DateTime<Utc>, window: Duration) -> Builder {
        let since = now - window;
        let first_day = since.date_naive();
        let mut days = Vec::new();
        let mut d = first_day;
        while d <= now.date_naive() {
            days.push(Day {
                date: d.format("%Y-%m-%d").to_string(),
                ..Day::default()
            });
            d = d.succ_opt().unwrap_or(d);
            if days.len() > 100_000 {
                break;
            }
        }
        Builder {
            now,
            since,
            since_key: format_ts(&since),
            first_day,
            days,
            day_cache: None,
            first_key: None,
            last_key: None,
            events: 0,
            bad_lines: 0,
            totals: Totals::default(),
            latencies: Vec::new(),
            routes: HashMap::new(),
            dispatched: HashMap::new(),
            spend: Spend::default(),
            spend_routes: HashMap::new(),
            spend_days: HashMap::new(),
            over_cap: OverCaps::default(),
            budget_exhausted: BudgetHolds::default(),
            reviews: Reviews::default(),
            approvals: Approvals::default(),
            merged: Default::default(),
            evidence_mismatches: 0,
            runners: Runners::default(),
            hosts: HashMap::new(),
            nodes: HashMap::new(),
            queue: HashMap::new(),
            outcomes: HashMap::new(),
            outcome_seq: 0,
        }
    }

    /// Parse and add one line; a line that does not parse is counted in `bad_lines`.
    pub fn add_line(&mut self, line: &[u8]) {
        match Record::from_line(line) {
            Ok(rec) => self.add(&rec),
            Err(_) => self.bad_lines += 1,
        }
    }

    /// Count lines that could not be read as events.
    pub fn add_bad_lines(&mut self, n: u64) {
        self.bad_lines += n;
    }

    fn day_index(&mut self, ts: &str) -> Option<usize> {
        let key = ts.get(..10)?;
        if let Some((k, i)) = &self.day_cache
            && k == key
        {
            return *i;
        }
        let idx = NaiveDate::parse_from_str(key, "%Y-%m-%d")
            .ok()
            .and_then(|d| usize::try_from((d - self.first_day).num_days()).ok())
            .filter(|&i| i < self.days.len());
        self.day_cache = Some((key.to_string(), idx));
        idx
    }

    /// Whether `ts` falls in the window; if so, it widens the span the window's events cover.
    /// The log's own form (`…T15:25:03.123Z`) compares as text; any other RFC 3339 form is
    /// parsed (and put in that form for the span).
    fn in_window(&mut self, ts: &str) -> bool {
        let key: Cow<str> = if ts.len() == 24 && ts.ends_with('Z') {
            if ts < self.since_key.as_str() {
                return false;
            }
            if !log_form(ts) {
                // In the window as text, but no time: it cannot bound the span.
                return true;
            }
            Cow::Borrowed(ts)
        } else {
            match DateTime::parse_from_rfc3339(ts) {
                Ok(t) if t >= self.since => Cow::Owned(format_ts(&t.with_timezone(&Utc))),
                _ => return false,
            }
        };
        match &mut self.first_key {
            Some(k) if k.as_str() <= &*key => {}
            slot => *slot = Some(key.to_string()),
        }
        match &mut self.last_key {
            Some(k) if k.as_str() >= &*key => {}
            Some(k) => {
                k.clear();
                k.push_str(&key);
            }
            slot => *slot = Some(key.to_string()),
        }
        true
    }

    /// Add one event. Events before the window only feed the queue and the route join.
    pub fn add(&mut self, rec: &Record) {
        let route_of_finish = self.replay(rec);
        if !self.in_window(&rec.ts) {
            return;
        }
        self.events += 1;
        let day = self.day_index(&rec.ts);
        let task = rec.task.as_deref();
        match (&*rec.event, task) {
            ("file_changed", _) => {
                if let Some(ms) = rec.latency_ms {
                    self.latencies.push(ms);
                }
            }
            ("task_finished", Some(t)) => self.add_finish(rec, t, day, route_of_finish),
            ("cost_over_cap", _) => self.add_over_cap(rec),
            ("budget_exhausted", _) => self.add_budget_hold(rec),
            ("evidence_mismatch", _) => self.evidence_mismatches += 1,
            ("approval_requested", _) => self.approvals.requested += 1,
            ("merge_refused", _) => self.approvals.refused += 1,
            ("rejected", _) => self.approvals.rejected += 1,
            ("merged", Some(t)) => {
                let key = (t.to_string(), rec.attempt.unwrap_or(0));
                if self.merged.insert(key) {
                    self.approvals.merged += 1;
                }
            }
            ("task_retry_scheduled", _) => {
                self.totals.retried += 1;
                if let Some(d) = day.and_then(|i| self.days.get_mut(i)) {
                    d.retried += 1;
                }
            }
            ("task_deadlettered", Some(t)) => self.add_deadletter(rec, t, day),
            ("retry_requested", Some(t)) => {
                // `taskboard retry` moved the task's deadletter file into the archive.
                if let Some(archived) = rec.archived.as_deref()
                    && let Some(f) = self
                        .outcomes
                        .get_mut(t)
                        .and_then(|o| o.failure.as_mut())
                        .filter(|f| f.deadletter.is_some())
                {
                    f.deadletter = Some(archived.to_owned());
                }
            }
            ("task_dispatched", Some(t)) => {
                if let Some(o) = self.outcomes.get_mut(t) {
                    o.awaits_deadletter = false;
                }
                self.add_dispatch_place(rec);
            }
            ("remote_running", _) => {
                if let Some(node) = rec.remote.as_ref().and_then(|r| r.node.as_deref()) {
                    *self.nodes.entry(node.to_string()).or_default() += 1;
                }
            }
            ("run_adopted", _) => self.runners.adopted += 1,
            ("host_down", _) => {
                self.runners.host_down += 1;
                if let Some(host) = rec.host.as_deref() {
                    self.host(host).down += 1;
                }
            }
            _ => {}
        }
    }

    /// What every event says about the queue and the dispatch join, in the window or not.
    /// Returns the route of the dispatch a `task_finished` ends.
    fn replay(&mut self, rec: &Record) -> Option<String> {
        let review = rec.phase.as_deref() == Some("review");
        let t = rec.task.as_deref()?;
        match &*rec.event {
            "task_dispatched" => {
                if let (Some(a), Some(r)) = (rec.attempt, rec.route.as_deref()) {
                    self.dispatched
                        .insert((t.to_string(), a, review), r.to_string());
                }
                self.set_state(t, Some(QState::Running));
            }
            "task_finished" => {
                let route = rec
                    .attempt
                    .and_then(|a| self.dispatched.remove(&(t.to_string(), a, review)));
                let outcome = rec.outcome.as_deref().unwrap_or("");
                if outcome == "cancelled" {
                    self.queue.remove(t);
                } else {
                    self.set_state(t, state_of(outcome));
                }
                return route;
            }
            "task_retry_scheduled" => self.set_state(t, Some(QState::Blocked)),
            "dependency_promoted"
            | "stale_claim_reset"
            | "retry_requested"
            | "task_interrupted" => {
                self.set_state(t, Some(QState::Ready));
            }
            "status_reasserted" => {
                let s = rec.status.as_deref().and_then(state_of);
                self.set_state(t, s);
            }
            "task_deadlettered" => self.set_state(t, Some(QState::Failed)),
            _ => {}
        }
        None
    }

    /// A run's end in the window: spend, attempts, reviews, route durations and the task's
    /// latest outcome.
    fn add_finish(&mut self, rec: &Record, t: &str, day: Option<usize>, route: Option<String>) {
        let outcome = rec.outcome.as_deref().unwrap_or("");
        let review = rec.phase.as_deref() == Some("review");
        // A cancelled or interrupted run may still have reported what it spent.
        self.add_spend(rec, day, route.as_deref());
        if outcome == "cancelled" || outcome == "interrupted" {
            return;
        }
        if review {
            self.reviews.run += 1;
            // A route whose changes need approval: the review accepted it for a person.
            self.reviews.accepted += u64::from(outcome == "done" || outcome == "awaiting-approval");
            self.reviews.bounced += u64::from(outcome == "ready");
        }
        let attempt_failed =
            outcome.starts_with("blocked:retry:") || outcome.starts_with("failed:");
        self.totals.attempts_finished += 1;
        self.totals.attempts_failed += u64::from(attempt_failed);
        if let Some(d) = day.and_then(|i| self.days.get_mut(i)) {
            d.attempts_finished += 1;
            d.attempts_failed += u64::from(attempt_failed);
        }
        if let Some(route) = route {
            let entry = self.routes.entry((route, review)).or_default();
            if let Some(ms) = rec.duration_ms {
                entry.0.push(ms);
            }
            entry.1 += u64::from(attempt_failed);
        }
        if outcome == "done" {
            self.set_outcome(t, day, None, false);
        } else if outcome.starts_with("failed:") {
            let failure = FailedTask {
                ts: rec.ts.to_string(),
                task: t.to_string(),
                attempt: rec.attempt,
                outcome: outcome.to_string(),
                note: rec.note.as_deref().map(str::to_owned),
                deadletter: None,
            };
            self.set_outcome(t, day, Some(failure), true);
        } else if let Some(o) = self.outcomes.get_mut(t) {
            // Another run ended in between: a deadletter after it is a new failure.
            o.awaits_deadletter = false;
        }
    }

    /// Where a dispatch went: here, an SSH host or Slurm.
    fn add_dispatch_place(&mut self, rec: &Record) {
        let Some(place) = &rec.remote else {
            self.runners.local += 1;
            return;
        };
        match place.runner.as_deref() {
            Some("slurm") => self.runners.slurm.runs += 1,
            _ => {
                let host = place.host.as_deref().unwrap_or("?").to_string();
                self.host(&host).runs += 1;
            }
        }
    }

    fn host(&mut self, host: &str) -> &mut HostRuns {
        self.hosts
            .entry(host.to_string())
            .or_insert_with(|| HostRuns {
                host: host.to_string(),
                ..HostRuns::default()
            })
    }

    fn add_over_cap(&mut self, rec: &Record) {
        self.over_cap.count += 1;
        push_last(
            &mut self.over_cap.last,
            OverCap {
                ts: rec.ts.to_string(),
                task: rec.task.as_deref().unwrap_or("").to_string(),
                route: rec.route.as_deref().unwrap_or("").to_string(),
                attempt: rec.attempt,
                cost_usd: rec.cost_usd.unwrap_or(0.0),
                cap_usd: rec.cap_usd.unwrap_or(0.0),
            },
        );
    }

    fn add_budget_hold(&mut self, rec: &Record) {
        self.budget_exhausted.count += 1;
        push_last(
            &mut self.budget_exhausted.last,
            BudgetHold {
                ts: rec.ts.to_string(),
                date: rec.ts.get(..10).unwrap_or("").to_string(),
                route: rec.route.as_deref().unwrap_or("").to_string(),
                spent_usd: rec.spent_usd.unwrap_or(0.0),
                budget_usd: rec.budget_usd.unwrap_or(0.0),
                waiting: rec.waiting.unwrap_or(0),
            },
        );
    }

    /// A deadletter in the window: the file of the failure just before, or a failure of its own.
    fn add_deadletter(&mut self, rec: &Record, t: &str, day: Option<usize>) {
        let path = rec.path.as_deref().map(str::to_owned);
        match self.outcomes.get_mut(t) {
            // The file of the `failed:…` finish just before: the same failure.
            Some(o) if o.awaits_deadletter => {
                o.awaits_deadletter = false;
                if let Some(f) = &mut o.failure {
                    f.deadletter = path;
                }
            }
            // A claim that went stale too often, or a finish before the window.
            _ => {
                let failure = FailedTask {
                    ts: rec.ts.to_string(),
                    task: t.to_string(),
                    attempt: rec.attempt,
                    outcome: "failed:exhausted_retries".into(),
                    note: None,
                    deadletter: path,
                };
                self.set_outcome(t, day, Some(failure), false);
            }
        }
    }

    /// Records `task`'s latest outcome: done (`failure` is `None`) or a failure.
    fn set_outcome(
        &mut self,
        task: &str,
        day: Option<usize>,
        failure: Option<FailedTask>,
        awaits_deadletter: bool,
    ) {
        let outcome = LatestOutcome {
            seq: self.outcome_seq,
            day,
            failure,
            awaits_deadletter,
        };
        self.outcome_seq += 1;
        if let Some(slot) = self.outcomes.get_mut(task) {
            *slot = outcome;
        } else {
            self.outcomes.insert(task.to_string(), outcome);
        }
    }

    /// Adds a finished run's reported cost and tokens.
    fn add_spend(&mut self, rec: &Record, day: Option<usize>, route: Option<&str>) {
        if rec.cost_usd.is_none() && rec.tokens_in.is_none() && rec.tokens_out.is_none() {
            return;
        }
        let route = route.unwrap_or("-");
        let entry = match self.spend_routes.get_mut(route) {
            Some(e) => e,
            None => self
                .spend_routes
                .entry(route.to_string())
                .or_insert_with(|| RouteSpend {
                    route: route.to_string(),
                    ..RouteSpend::default()
                }),
        };
        let tokens_in = rec.tokens_in.unwrap_or(0);
        let tokens_out = rec.tokens_out.unwrap_or(0);
        entry.tokens_in += tokens_in;
        entry.tokens_out += tokens_out;
        self.spend.tokens_in += tokens_in;
        self.spend.tokens_out += tokens_out;
        // A negative or non-finite cost is a broken report, not a refund.
        let Some(cost) = rec.cost_usd.filter(|c| c.is_finite() && *c >= 0.0) else {
            return;
        };
        entry.cost_usd += cost;
        entry.runs += 1;
        self.spend.cost_usd += cost;
        self.spend.runs += 1;
        if let Some(i) = day {
            if let Some(d) = self.days.get_mut(i) {
                d.cost_usd += cost;
            }
            *self.spend_days.entry((i, route.to_string())).or_default() += cost;
        }
    }

    fn set_state(&mut self, task: &str, state: Option<QState>) {
        match state {
            Some(s) => {
                if let Some(slot) = self.queue.get_mut(task) {
                    *slot = s;
                } else {
                    self.queue.insert(task.to_string(), s);
                }
            }
            None => {
                self.queue.remove(task);
            }
        }
    }

    pub fn finish(mut self) -> Stats {
        let failures = self.count_outcomes();
        let throughput = throughput(self.first_key, self.last_key, self.totals.done);
        for d in &mut self.days {
            d.error_rate = rate(d.attempts_failed, d.attempts_finished);
            d.cost_usd = round_usd(d.cost_usd);
        }
        let spend = spend(self.spend, self.spend_routes, self.spend_days, &self.days);
        let mut runners = self.runners;
        runners.ssh = self.hosts.into_values().collect();
        runners.ssh.sort_by(|a, b| a.host.cmp(&b.host));
        runners.slurm.nodes = self
            .nodes
            .into_iter()
            .map(|(node, runs)| NodeRuns { node, runs })
            .collect();
        runners.slurm.nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Stats {
            version: 2,
            now: format_ts(&self.now),
            since: format_ts(&self.since),
            events: self.events,
            bad_lines: self.bad_lines,
            error_rate: rate(self.totals.attempts_failed, self.totals.attempts_finished),
            retry_rate: rate(self.totals.retried, self.totals.attempts_finished),
            totals: self.totals,
            throughput,
            days: self.days,
            latency_ms: latency(self.latencies),
            routes: routes(self.routes),
            queue: queue(&self.queue),
            failures,
            spend,
            over_cap: self.over_cap,
            budget_exhausted: self.budget_exhausted,
            reviews: self.reviews,
            approvals: self.approvals,
            evidence_mismatches: self.evidence_mismatches,
            runners,
        }
    }

    /// Counts each task once, by its latest outcome, under the day of that outcome; returns the
    /// last [`LAST_FAILURES`] failed tasks in the order their failures were logged.
    fn count_outcomes(&mut self) -> VecDeque<FailedTask> {
        let mut failed: Vec<(u64, FailedTask)> = Vec::new();
        for o in std::mem::take(&mut self.outcomes).into_values() {
            let day = o.day.and_then(|i| self.days.get_mut(i));
            match o.failure {
                None => {
                    self.totals.done += 1;
                    if let Some(d) = day {
                        d.done += 1;
                    }
                }
                Some(f) => {
                    self.totals.failed += 1;
                    if let Some(d) = day {
                        d.failed += 1;
                    }
                    failed.push((o.seq, f));
                }
            }
        }
        failed.sort_unstable_by_key(|(seq, _)| *seq);
        let skip = failed.len().saturating_sub(LAST_FAILURES);
        failed.into_iter().skip(skip).map(|(_, f)| f).collect()
    }
}

/// A ratio rounded to three decimals; `None` over nothing.
fn rate(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| round3(n as f64 / d as f64))
}

/// Tasks done over the span from the first to the last event time of the window, with a rate
/// only for the periods the span covers.
fn throughput(first: Option<String>, last: Option<String>, done: u64) -> Throughput {
    let parse = |k: &Option<String>| {
        k.as_deref()
            .and_then(|k| DateTime::parse_from_rfc3339(k).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let span_ms = match (parse(&first), parse(&last)) {
        (Some(a), Some(b)) => u64::try_from((b - a).num_milliseconds()).unwrap_or(0),
        _ => 0,
    };
    let per = |period: u64| {
        (span_ms >= period).then(|| round3(done as f64 * period as f64 / span_ms as f64))
    };
    Throughput {
        done,
        from: first,
        to: last,
        span_ms,
        per_hour: per(HOUR_MS),
        per_day: per(DAY_MS),
    }
}

/// Percentiles and the histogram of save-to-detection latencies.
fn latency(mut latencies: Vec<u64>) -> Latency {
    let mut histogram: Vec<Bucket> = LATENCY_BUCKETS
        .iter()
        .map(|&le| Bucket {
            le: Some(le),
            count: 0,
        })
        .chain(std::iter::once(Bucket::default()))
        .collect();
    for &ms in &latencies {
        let i = LATENCY_BUCKETS.partition_point(|&le| le < ms);
        histogram[i].count += 1;
    }
    latencies.sort_unstable();
    Latency {
        count: latencies.len() as u64,
        p50: percentile(&latencies, 50.0),
        p95: percentile(&latencies, 95.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied(),
        histogram,
    }
}

/// Run durations per route and phase, sorted by route then phase.
fn routes(by_route: HashMap<(String, bool), (Vec<u64>, u64)>) -> Vec<Route> {
    let mut routes: Vec<Route> = by_route
        .into_iter()
        .map(|((route, review), (mut ms, failed))| {
            ms.sort_unstable();
            Route {
                route,
                phase: review.then(|| "review".to_string()),
                runs: ms.len() as u64,
                failed,
                p50_ms: percentile(&ms, 50.0),
                p95_ms: percentile(&ms, 95.0),
            }
        })
        .collect();
    routes.sort_by(|a, b| (&a.route, &a.phase).cmp(&(&b.route, &b.phase)));
    routes
}

/// The spend totals, by route and by day and route, rounded to the cent.
fn spend(
    mut spend: Spend,
    by_route: HashMap<String, RouteSpend>,
    by_day: HashMap<(usize, String), f64>,
    days: &[Day],
) -> Spend {
    spend.cost_usd = round_usd(spend.cost_usd);
    spend.routes = by_route
        .into_values()
        .map(|mut r| {
            r.cost_usd = round_usd(r.cost_usd);
            r
        })
        .collect();
    spend.routes.sort_by(|a, b| a.route.cmp(&b.route));
    let mut by_day: Vec<((usize, String), f64)> = by_day.into_iter().collect();
    by_day.sort_by(|a, b| a.0.cmp(&b.0));
    spend.days = by_day
        .into_iter()
        .filter_map(|((i, route), cost)| {
            Some(DaySpend {
                date: days.get(i)?.date.clone(),
                route,
                cost_usd: round_usd(cost),
            })
        })
        .collect();
    spend
}

/// The queue replayed from the events: each task's last known state, counted.
fn queue(states: &HashMap<String, QState>) -> Queue {
    let mut queue = Queue {
        source: "events".into(),
        ..Queue::default()
    };
    for s in states.values() {
        match s {
            QState::Ready => queue.ready += 1,
            QState::Running => queue.running += 1,
            QState::Blocked => queue.blocked += 1,
            QState::Failed => queue.failed += 1,
            QState::Done => queue.done += 1,
        }
    }
    queue
}

/// Whether `ts` has the shape of the log's own time form, `2026-11-22T15:25:03.123Z`.
fn log_form(ts: &str) -> bool {
    ts.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        19 => b == b'.',
        23 => b == b'Z',
        _ => b.is_ascii_digit(),
    })
}

fn push_last<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() == LAST_LISTED {
        list.pop_front();
    }
    list.push_back(item);
}

/// Dollars rounded to a millionth, so sums print without float noise.
fn round_usd(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A report over lines (oldest first): the convenience form of [`Builder`].
pub fn report<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    now: DateTime<Utc>,
    window: Duration,
) -> Stats {
    let mut b = Builder::new(now, window);
    for line in lines {
        b.add_line(line);
    }
    b.finish()
}

/// Parse a window like `7d`, `24h`, `90m`, `30s` or `2w`: any duration in the one grammar of
/// [`crate::core::fmt::parse_duration`], from one second to ten years.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);
    let d = crate::core::fmt::parse_duration(s)?;
    if d < std::time::Duration::from_secs(1) || d > LONGEST {
        return Err(format!(
            "`{}`: the window must be between 1s and 10 years",
            s.trim()
        ));
    }
    Duration::from_std(d).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn lines(text: &str) -> Stats {
        report(text.lines().map(str::as_bytes), now(), Duration::days(7))
    }

    #[test]
    fn runs_count_where_they_ran_and_only_remote_ones_show() {
        let local = r#"{"ts":"2026-11-22T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"sh","pid":7,"agent":"bot"}"#;
        assert!(lines(local).runners.local_only());
        assert_eq!(lines(local).runners.local, 1);
        let text = [
            local,
            r#"{"ts":"2026-11-22T10:01:00.000Z","event":"task_dispatched","task":"B","attempt":1,"route":"gpu","agent":"bot","remote":{"runner":"ssh","host":"g2","dir":"d"}}"#,
            r#"{"ts":"2026-11-22T10:02:00.000Z","event":"task_dispatched","task":"C","attempt":1,"route":"gpu","agent":"bot","remote":{"runner":"ssh","host":"g1","pgid":5,"dir":"d"}}"#,
            r#"{"ts":"2026-11-22T10:03:00.000Z","event":"task_dispatched","task":"D","attempt":1,"route":"hpc","agent":"bot","remote":{"runner":"slurm","job_id":"9","dir":"d"}}"#,
            r#"{"ts":"2026-11-22T10:04:00.000Z","event":"remote_running","task":"D","attempt":1,"remote":{"runner":"slurm","job_id":"9","node":"n3","dir":"d"}}"#,
            r#"{"ts":"2026-11-22T10:05:00.000Z","event":"run_adopted","task":"D","attempt":1,"remote":{"runner":"slurm","job_id":"9","node":"n3","dir":"d"},"finished":true}"#,
            r#"{"ts":"2026-11-22T10:06:00.000Z","event":"host_down","route":"gpu","host":"g2","until":"2026-11-22T10:07:00.000Z","reason":"host_unreachable"}"#,
        ]
        .join("\n");
        let r = lines(&text).runners;
        assert!(!r.local_only());
        assert_eq!(r.local, 1);
        let hosts: Vec<(&str, u64, u64)> = r
            .ssh
            .iter()
            .map(|h| (h.host.as_str(), h.runs, h.down))
            .collect();
        assert_eq!(hosts, [("g1", 1, 0), ("g2", 1, 1)]);
        assert_eq!(r.slurm.runs, 1);
        assert_eq!(
            r.slurm.nodes,
            [NodeRuns {
                node: "n3".into(),
                runs: 1
            }]
        );
        assert_eq!((r.adopted, r.host_down), (1, 1));
    }

    #[test]
    fn counts_attempts_tasks_and_routes() {
        let r = lines(concat!(
            r#"{"ts":"2026-11-21T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"sh","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:01.000Z","event":"task_finished","task":"A","attempt":1,"exit_code":3,"duration_ms":1000,"outcome":"blocked:retry:2026-11-21T10:01:00Z","note":"bad"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:01.001Z","event":"task_retry_scheduled","task":"A","attempt":1,"at":"2026-11-21T10:01:00Z"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:00.000Z","event":"task_dispatched","task":"A","attempt":2,"route":"sh","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:03.000Z","event":"task_finished","task":"A","attempt":2,"exit_code":3,"duration_ms":3000,"outcome":"failed:exhausted_retries"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:03.010Z","event":"task_deadlettered","task":"A","attempts":2,"path":"/b/deadletter/A.json"}"#,
            "\n",
            r#"{"ts":"2026-11-22T09:00:00.000Z","event":"task_dispatched","task":"B","attempt":1,"route":"py","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-22T09:00:02.000Z","event":"task_finished","task":"B","attempt":1,"exit_code":0,"duration_ms":2000,"outcome":"done"}"#,
            "\n",
            r#"{"ts":"2026-11-22T09:00:03.000Z","event":"file_changed","latency_ms":12,"bytes":10}"#,
            "\n",
            r#"{"ts":"2026-11-22T09:00:0"#,
        ));
        assert_eq!(r.totals.done, 1);
        assert_eq!(
            r.totals.failed, 1,
            "a deadletter after failed:* is one failure"
        );
        assert_eq!(r.totals.retried, 1);
        assert_eq!(r.totals.attempts_finished, 3);
        assert_eq!(r.totals.attempts_failed, 2);
        assert_eq!(r.error_rate, Some(0.667));
        assert_eq!(r.bad_lines, 1);
        assert_eq!(r.days.len(), 8);
        let d21 = r.days.iter().find(|d| d.date == "2026-11-21").unwrap();
        assert_eq!((d21.failed, d21.retried, d21.done), (1, 1, 0));
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].route, "sh");
        assert_eq!(r.routes[1].p95_ms, Some(3000));
        assert_eq!(r.latency_ms.p50, Some(12));
        assert_eq!(r.latency_ms.histogram[2].count, 1);
        assert_eq!((r.queue.failed, r.queue.done), (1, 1));
        assert_eq!(r.failures.len(), 1, "only tasks that failed are listed");
        assert_eq!(
            r.failures[0].deadletter.as_deref(),
            Some("/b/deadletter/A.json")
        );
        assert_eq!(r.failures[0].attempt, Some(2));
    }

    /// One event line: `ts` is the time on 2026-11-21 (`HH:MM:SS`), `rest` the fields after the
    /// task.
    fn ev(time: &str, event: &str, task: &str, rest: &str) -> String {
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(",{rest}")
        };
        format!(r#"{{"ts":"2026-11-21T{time}.000Z","event":"{event}","task":"{task}"{rest}}}"#)
    }

    /// Attempt `n` of `task` dispatched at `time` and finished a second later with `outcome`.
    fn attempt(time: &str, task: &str, n: u32, outcome: &str) -> Vec<String> {
        let end = format!("{}1", &time[..7]);
        vec![
            ev(
                time,
                "task_dispatched",
                task,
                &format!(r#""attempt":{n},"route":"sh""#),
            ),
            ev(
                &end,
                "task_finished",
                task,
                &format!(r#""attempt":{n},"duration_ms":1000,"outcome":"{outcome}""#),
            ),
        ]
    }

    fn report_of(events: &[String]) -> Stats {
        report(
            events.iter().map(|l| l.as_bytes()),
            now(),
            Duration::days(7),
        )
    }

    /// Fails (retried automatically once, then deadlettered), is retried by a person (its file
    /// archived) and fails the same way again.
    fn fail_retry_fail() -> Vec<String> {
        let mut e = Vec::new();
        e.extend(attempt(
            "10:00:00",
            "A",
            1,
            "blocked:retry:2026-11-21T10:01:00Z",
        ));
        e.push(ev(
            "10:00:01",
            "task_retry_scheduled",
            "A",
            r#""attempt":1"#,
        ));
        e.extend(attempt("10:01:00", "A", 2, "failed:exhausted_retries"));
        e.push(ev(
            "10:01:01",
            "task_deadlettered",
            "A",
            r#""attempts":2,"path":"/b/deadletter/A.json""#,
        ));
        e.push(ev(
            "11:00:00",
            "retry_requested",
            "A",
            r#""from":"failed:exhausted_retries","archived":"/b/deadletter/archive/A-20261121T110000.000Z.json""#,
        ));
        e.extend(attempt(
            "11:00:10",
            "A",
            1,
            "blocked:retry:2026-11-21T11:01:00Z",
        ));
        e.push(ev(
            "11:00:11",
            "task_retry_scheduled",
            "A",
            r#""attempt":1"#,
        ));
        e.extend(attempt("11:01:00", "A", 2, "failed:exhausted_retries"));
        e.push(ev(
            "11:01:01",
            "task_deadlettered",
            "A",
            r#""attempts":2,"path":"/b/deadletter/A.json""#,
        ));
        e
    }

    #[test]
    fn a_task_that_fails_is_retried_and_fails_again_is_one_failed_task() {
        let r = report_of(&fail_retry_fail());
        assert_eq!((r.totals.done, r.totals.failed), (0, 1));
        // Every run and every automatic retry still counts once.
        assert_eq!(r.totals.attempts_finished, 4);
        assert_eq!(r.totals.attempts_failed, 4);
        assert_eq!(r.totals.retried, 2);
        let d21 = r.days.iter().find(|d| d.date == "2026-11-21").unwrap();
        assert_eq!((d21.done, d21.failed, d21.retried), (0, 1, 2));
        assert_eq!(r.failures.len(), 1, "listed once: {:?}", r.failures);
        let f = &r.failures[0];
        assert_eq!(f.ts, "2026-11-21T11:01:01.000Z");
        assert_eq!(f.deadletter.as_deref(), Some("/b/deadletter/A.json"));
        assert_eq!(r.queue.failed, 1);
    }

    #[test]
    fn a_failure_retried_by_a_person_links_to_its_archived_file() {
        let mut e = fail_retry_fail();
        e.truncate(8); // up to the person's retry
        e.push(ev(
            "11:00:10",
            "task_dispatched",
            "A",
            r#""attempt":1,"route":"sh""#,
        ));
        let r = report_of(&e);
        assert_eq!(
            r.totals.failed, 1,
            "its latest outcome is still the failure"
        );
        assert_eq!(
            r.failures[0].deadletter.as_deref(),
            Some("/b/deadletter/archive/A-20261121T110000.000Z.json")
        );
        assert_eq!(r.queue.running, 1);
    }

    #[test]
    fn a_task_retried_after_a_failure_and_then_done_is_done_only() {
        let mut e = fail_retry_fail();
        e.truncate(8);
        e.extend(attempt("11:00:10", "A", 1, "done"));
        let r = report_of(&e);
        assert_eq!((r.totals.done, r.totals.failed), (1, 0));
        assert!(r.failures.is_empty());
        // The failed attempts still show in the error rate.
        assert_eq!(
            (r.totals.attempts_failed, r.totals.attempts_finished),
            (2, 3)
        );
        assert_eq!(r.throughput.done, 1);
    }

    #[test]
    fn each_deadlettered_task_is_listed_once_with_its_latest_failure() {
        let mut e = Vec::new();
        for (i, hour) in ["10", "11", "12"].iter().enumerate() {
            e.extend(attempt(
                &format!("{hour}:00:00"),
                "A",
                1,
                "failed:exhausted_retries",
            ));
            e.push(ev(
                &format!("{hour}:00:02"),
                "task_deadlettered",
                "A",
                r#""attempts":1,"path":"/b/deadletter/A.json""#,
            ));
            e.extend(attempt(
                &format!("{hour}:30:00"),
                &format!("B-{i}"),
                1,
                "done",
            ));
        }
        // A claim that went stale too often: deadlettered without a failed finish.
        e.push(ev(
            "13:00:00",
            "task_deadlettered",
            "C",
            r#""attempts":3,"path":"/b/deadletter/C.json""#,
        ));
        let r = report_of(&e);
        assert_eq!((r.totals.done, r.totals.failed), (3, 2));
        let listed: Vec<(&str, &str)> = r
            .failures
            .iter()
            .map(|f| (f.task.as_str(), f.ts.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("A", "2026-11-21T12:00:01.000Z"),
                ("C", "2026-11-21T13:00:00.000Z")
            ]
        );
    }

    #[test]
    fn a_deadletter_whose_finish_is_before_the_window_is_one_failure() {
        let mut e = attempt("10:00:00", "A", 1, "failed:exhausted_retries");
        e.push(ev(
            "10:00:02",
            "task_deadlettered",
            "A",
            r#""attempts":1,"path":"/b/deadletter/A.json""#,
        ));
        let since = DateTime::parse_from_rfc3339("2026-11-21T10:00:01.500Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = report(e.iter().map(|l| l.as_bytes()), now(), now() - since);
        assert_eq!(r.totals.failed, 1);
        assert_eq!(r.totals.attempts_finished, 0);
        assert_eq!(
            r.failures[0].deadletter.as_deref(),
            Some("/b/deadletter/A.json")
        );
    }

    #[test]
    fn throughput_is_over_the_span_the_events_cover() {
        // Seven tasks done within five minutes: a count and a span, no rate.
        let mut e = Vec::new();
        for i in 0..5 {
            e.extend(attempt(
                &format!("10:0{i}:00"),
                &format!("T-{i}"),
                1,
                "done",
            ));
        }
        e.push(ev(
            "10:04:30",
            "task_finished",
            "T-5",
            r#""attempt":1,"outcome":"done""#,
        ));
        e.push(ev(
            "10:05:00",
            "task_finished",
            "T-6",
            r#""attempt":1,"outcome":"done""#,
        ));
        let r = report_of(&e);
        let t = &r.throughput;
        assert_eq!(t.done, 7);
        assert_eq!(t.from.as_deref(), Some("2026-11-21T10:00:00.000Z"));
        assert_eq!(t.to.as_deref(), Some("2026-11-21T10:05:00.000Z"));
        assert_eq!(t.span_ms, 300_000);
        assert_eq!((t.per_hour, t.per_day), (None, None));

        // Over two hours: per hour, still no per day.
        e.push(ev("12:00:00", "file_changed", "-", r#""latency_ms":3"#));
        let t = report_of(&e).throughput;
        assert_eq!(t.span_ms, 2 * HOUR_MS);
        assert_eq!((t.per_hour, t.per_day), (Some(3.5), None));

        // Exactly a day: both; an event earlier in the file than the first does not shorten it.
        let mut e2 = e.clone();
        e2.push(r#"{"ts":"2026-11-22T10:00:00.000Z","event":"pass"}"#.to_string());
        e2.push(r#"{"ts":"2026-11-21T11:00:00+01:00","event":"pass"}"#.to_string());
        let t = report_of(&e2).throughput;
        assert_eq!(t.span_ms, DAY_MS);
        assert_eq!(t.per_day, Some(7.0));
        assert_eq!(t.per_hour, Some(0.292));

        // A time of the right length that is no time does not bound the span.
        let mut e3 = e.clone();
        e3.push(r#"{"ts":"2026-11-21T99:xx:00.000Z","event":"pass"}"#.to_string());
        assert_eq!(report_of(&e3).throughput.span_ms, 2 * HOUR_MS);

        // No event in the window: nothing to rate.
        let t = report_of(&[]).throughput;
        assert_eq!((t.done, t.from, t.span_ms, t.per_day), (0, None, 0, None));
    }

    #[test]
    fn a_change_waiting_for_approval_is_blocked_in_the_queue_and_its_review_accepted() {
        let r = lines(concat!(
            r#"{"ts":"2026-11-22T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"sh","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:01.000Z","event":"task_finished","task":"A","attempt":1,"duration_ms":1,"outcome":"awaiting-approval"}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:00.000Z","event":"task_dispatched","task":"B","attempt":1,"route":"review","pid":2,"agent":"review-x","phase":"review"}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:03.000Z","event":"task_finished","task":"B","attempt":1,"duration_ms":2,"outcome":"awaiting-approval","phase":"review"}"#,
        ));
        assert_eq!(r.queue.blocked, 2);
        assert_eq!((r.reviews.run, r.reviews.accepted), (1, 1));
        assert_eq!(r.totals.done, 0, "done comes with the landing");
    }

    #[test]
    fn events_before_the_window_only_feed_the_queue() {
        let r = lines(concat!(
            r#"{"ts":"2026-10-01T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"sh","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-10-01T10:00:01.000Z","event":"task_finished","task":"A","attempt":1,"duration_ms":1,"outcome":"done"}"#,
            "\n",
            r#"{"ts":"2026-11-20T10:00:00.000Z","event":"task_dispatched","task":"B","attempt":1,"route":"sh","pid":1,"agent":"x"}"#,
        ));
        assert_eq!(r.totals.done, 0);
        assert_eq!(r.events, 1);
        assert_eq!((r.queue.done, r.queue.running), (1, 1));
    }

    #[test]
    fn spend_reviews_caps_and_budgets() {
        let r = lines(concat!(
            // Work run of A, then its review under the same attempt on another route.
            r#"{"ts":"2026-11-21T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"claude","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:00.500Z","event":"cost_over_cap","task":"A","route":"claude","attempt":1,"cost_usd":1.5,"cap_usd":1.0}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:00.000Z","event":"task_finished","task":"A","attempt":1,"exit_code":0,"duration_ms":60000,"outcome":"running:review-x:2026-11-21T10:01:00Z","cost_usd":1.5,"tokens_in":1000,"tokens_out":200}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:00.100Z","event":"task_dispatched","task":"A","attempt":1,"route":"review","pid":2,"agent":"review-x","phase":"review"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:01:02.000Z","event":"task_finished","task":"A","attempt":1,"exit_code":0,"duration_ms":2000,"outcome":"ready","phase":"review","cost_usd":0.1,"tokens_in":50,"tokens_out":5}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:02:00.000Z","event":"task_dispatched","task":"A","attempt":2,"route":"claude","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:00.000Z","event":"evidence_mismatch","task":"A","attempt":2,"claimed_not_seen":["a"],"seen_not_claimed":[]}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:00.000Z","event":"task_finished","task":"A","attempt":2,"exit_code":0,"duration_ms":80000,"outcome":"running:review-x:2026-11-22T10:00:00Z","cost_usd":0.2}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:00.100Z","event":"task_dispatched","task":"A","attempt":2,"route":"review","pid":2,"agent":"review-x","phase":"review"}"#,
            "\n",
            r#"{"ts":"2026-11-22T10:00:03.000Z","event":"task_finished","task":"A","attempt":2,"exit_code":0,"duration_ms":3000,"outcome":"done","phase":"review","cost_usd":0.1}"#,
            "\n",
            r#"{"ts":"2026-11-22T11:00:00.000Z","event":"budget_exhausted","route":"claude","spent_usd":10.02,"budget_usd":10.0,"waiting":3}"#,
            "\n",
            // A finish whose dispatch is not in the log.
            r#"{"ts":"2026-11-22T11:30:00.000Z","event":"task_finished","task":"Z","attempt":1,"duration_ms":1,"outcome":"cancelled","cost_usd":0.3}"#,
        ));
        assert_eq!(r.spend.cost_usd, 2.2);
        assert_eq!(r.spend.runs, 5);
        assert_eq!((r.spend.tokens_in, r.spend.tokens_out), (1050, 205));
        let routes: Vec<(&str, f64, u64)> = r
            .spend
            .routes
            .iter()
            .map(|x| (x.route.as_str(), x.cost_usd, x.runs))
            .collect();
        assert_eq!(
            routes,
            [("-", 0.3, 1), ("claude", 1.7, 2), ("review", 0.2, 2)]
        );
        let days: Vec<(&str, &str, f64)> = r
            .spend
            .days
            .iter()
            .map(|d| (d.date.as_str(), d.route.as_str(), d.cost_usd))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-11-21", "claude", 1.5),
                ("2026-11-21", "review", 0.1),
                ("2026-11-22", "-", 0.3),
                ("2026-11-22", "claude", 0.2),
                ("2026-11-22", "review", 0.1),
            ]
        );
        let d22 = r.days.iter().find(|d| d.date == "2026-11-22").unwrap();
        assert_eq!(d22.cost_usd, 0.6);
        // Work and review runs of one attempt stay apart in durations.
        let durations: Vec<(&str, Option<&str>, u64, Option<u64>)> = r
            .routes
            .iter()
            .map(|x| (x.route.as_str(), x.phase.as_deref(), x.runs, x.p95_ms))
            .collect();
        assert_eq!(
            durations,
            [
                ("claude", None, 2, Some(80000)),
                ("review", Some("review"), 2, Some(3000)),
            ]
        );
        assert_eq!(
            (r.reviews.run, r.reviews.accepted, r.reviews.bounced),
            (2, 1, 1)
        );
        assert_eq!(r.over_cap.count, 1);
        assert_eq!(
            r.over_cap.last[0],
            OverCap {
                ts: "2026-11-21T10:00:00.500Z".into(),
                task: "A".into(),
                route: "claude".into(),
                attempt: Some(1),
                cost_usd: 1.5,
                cap_usd: 1.0,
            }
        );
        assert_eq!(r.budget_exhausted.count, 1);
        let hold = &r.budget_exhausted.last[0];
        assert_eq!(
            (hold.date.as_str(), hold.route.as_str(), hold.waiting),
            ("2026-11-22", "claude", 3)
        );
        assert_eq!((hold.spent_usd, hold.budget_usd), (10.02, 10.0));
        assert_eq!(r.evidence_mismatches, 1);
    }

    #[test]
    fn a_review_dispatch_does_not_take_the_work_runs_route() {
        // The review is dispatched before the work's finish is logged: the work finish still
        // joins its own dispatch.
        let r = lines(concat!(
            r#"{"ts":"2026-11-21T10:00:00.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"claude","pid":1,"agent":"x"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:01.000Z","event":"task_dispatched","task":"A","attempt":1,"route":"review","pid":1,"agent":"x","phase":"review"}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:02.000Z","event":"task_finished","task":"A","attempt":1,"duration_ms":5,"outcome":"running:review-x:2026-11-21T10:01:00Z","cost_usd":0.5}"#,
            "\n",
            r#"{"ts":"2026-11-21T10:00:03.000Z","event":"task_finished","task":"A","attempt":1,"duration_ms":7,"outcome":"done","phase":"review"}"#,
        ));
        assert_eq!(r.spend.routes.len(), 1);
        assert_eq!(r.spend.routes[0].route, "claude");
        assert_eq!(r.routes[0].route, "claude");
        assert_eq!(r.routes[0].p50_ms, Some(5));
        assert_eq!(r.routes[1].route, "review");
        assert_eq!(r.routes[1].p50_ms, Some(7));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_window("90m"), Ok(Duration::minutes(90)));
        assert!(parse_window("7").is_err());
        assert!(parse_window("d").is_err());
        assert!(parse_window("0h").is_err());
    }

    #[test]
    fn approvals_count_a_landing_across_repositories_once() {
        let lines = [
            r#"{"ts":"2026-11-30T10:00:00.000Z","event":"approval_requested","task":"A-1","attempt":1}"#,
            r#"{"ts":"2026-11-30T10:01:00.000Z","event":"merge_refused","task":"A-1","attempt":1,"reason":"x"}"#,
            r#"{"ts":"2026-11-30T10:02:00.000Z","event":"merged","task":"A-1","attempt":1,"repo":"api","commit":"a","into":"main","strategy":"squash"}"#,
            r#"{"ts":"2026-11-30T10:02:00.001Z","event":"merged","task":"A-1","attempt":1,"repo":"web","commit":"b","into":"main","strategy":"squash"}"#,
            r#"{"ts":"2026-11-30T10:03:00.000Z","event":"approval_requested","task":"B-1","attempt":1}"#,
            r#"{"ts":"2026-11-30T10:04:00.000Z","event":"rejected","task":"B-1","attempt":1,"note":""}"#,
        ];
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut b = Builder::new(now, Duration::days(1));
        for l in lines {
            b.add_line(l.as_bytes());
        }
        let r = b.finish();
        assert_eq!(
            r.approvals,
            Approvals {
                requested: 2,
                merged: 1,
                refused: 1,
                rejected: 1
            }
        );
        assert!(r.approvals.any());
        assert!(!Approvals::default().any());
    }
}
