//! Deciding what a pass does: a pure function of (board, policy, clock, lock view, memory).
//!
//! Owns the runtime's rules: which tasks to promote, reset, claim, re-assert or cancel, which to
//! hold back (a route's spent daily budget, overlapping `touches:`), which changes waiting for
//! approval to land or send back, and how a kept ending meets the board
//! ([`landing`]). What an attempt's ending means for its task is `settle`'s; what the runtime
//! remembers, `memory`'s. It performs no I/O and reads no clock; the
//! shell (`runtime`) gathers the inputs, carries out the [`Step`]s and records them as events.
//!
//! The rules a person can rely on:
//! - A person's status decision always stands. The runtime only re-asserts its own status when a
//!   save puts back a status the runtime itself replaced (a stale editor buffer), and only while
//!   the runtime's last word was `running`, `done`, `ready` or a retry wait. After the runtime
//!   wrote `failed:…` or `blocked:<who>:…` (asking the person to act), `ready` is a decision.
//!   A token only the runtime writes (a retry wait, a claim in its agent's name) coming back is
//!   a stale buffer whatever was written since, a person's decision included
//!   ([`memory_after_decision`]).
//! - An attempt's ending is never dropped: it is kept ([`PendingEnding`]) until [`landing`] finds
//!   it on the board, writes it over its claim or a stale copy, or a person's decision
//!   supersedes it; meanwhile the plan leaves its task alone, as it leaves a task another live
//!   runtime holds.
//! - A claim needs a lock; a `running` task whose lock owner is dead is reset (counted as an
//!   attempt); a lock-less `running` task (an outside agent) is respected until `stale_after`; a
//!   claim time in the future is reported (lint) and never touched.
//! - Two tasks whose `touches:` globs can name a common file never run at the same time: the
//!   later one in board order waits ([`Step::TouchesHeld`]) until the other's run is over. A
//!   task without `touches:` declares nothing and waits for no one, as before the field existed.
//! - A change waiting for approval (its record's [`Approval`], `awaiting-approval` on the board)
//!   runs nothing: the task is not dispatched, not reset, and its lock and `touches:` hold no
//!   other task back (its worktree is idle). `approved` lands it ([`Step::Land`]) exactly once:
//!   once the record says it landed, `approved` or a stale `awaiting-approval` only gets `done`
//!   written ([`Step::FinishLanding`]), and after that a stale copy of either is put back to
//!   `done`. `rejected:<note>` sends it back as a review's bounce does ([`Step::Reject`]). An
//!   approval or rejection carried out for an earlier change coming back is a stale buffer: the
//!   wait is put back, nothing lands or goes back twice.
//!   Any other status a person writes over the wait is their decision, as ever: nothing lands.
//!   `approved` or `rejected:` with no change on record does nothing
//!   ([`Step::NoChangeToApprove`]).
//! - A retry time further ahead than the runtime ever writes one (the longest backoff plus
//!   [`CLOCK_SLACK`]) was written by a clock that ran ahead: it is reported (lint) and due now.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::core::board::{Board, Glance, IdFilter, Task};
use crate::core::fmt::{self, Precision::Coarse};
use crate::core::memory::{Approval, ApprovalPhase, Episode, PendingEnding, Recall, TaskMemory};
use crate::core::settle::{Settlement, in_series, rejection};
use crate::core::status::{Stamp, Status, StatusKind};
use crate::core::workspace::{Glob, touches_of, touches_overlap};

/// A claim time this far ahead of the clock is a clock anomaly, not a claim to act on.
pub const CLOCK_SLACK: TimeDelta = TimeDelta::minutes(5);

/// How soon to look again while a ready task waits on another live runtime's lock: its own, or
/// one that fills `max_parallel`. That runtime releases its locks without a save of the board
/// (after writing its ending), so nothing else would tell this one that the wait is over.
pub const FOREIGN_LOCK_RECHECK: TimeDelta = TimeDelta::seconds(1);

/// The parts of the configuration the rules depend on.
#[derive(Debug, Clone)]
pub struct Policy {
    pub agent: String,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub stale_after: Duration,
    /// Configured executor routes. A task's route is its `route:` field, else `default`.
    pub routes: BTreeSet<String>,
    /// Routes with a daily budget in US dollars (`daily_budget_usd`).
    pub daily_budget: BTreeMap<String, f64>,
    /// Routes whose successes wait for a person's approval (`workspace = "worktree"`).
    pub approval_routes: BTreeSet<String>,
}

/// What the shell knows about a task's lock folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockView {
    /// Held by this runtime instance for a run it supervises.
    Ours,
    /// Held by another live runtime (a `once` beside a `run`, say).
    Live,
    /// Held by an owner that is gone (its reason), or an owner record that never got written.
    Stale(String),
}

pub struct Inputs<'a> {
    pub board: &'a Board,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    pub locks: &'a BTreeMap<String, LockView>,
    /// Tasks with a live run supervised by this runtime.
    pub active: &'a BTreeSet<String>,
    pub memory: &'a dyn Recall,
    /// Tasks whose attempt has ended and whose ending is on its way to the board (this runtime's
    /// or one it adopted from a runtime that stopped): the ending decides them, not this plan.
    pub endings_on_the_way: &'a BTreeSet<String>,
    /// How many more runs this runtime may start now (0 while stopping), before the runs of
    /// other live runtimes on this board (their `Live` locks) count against the same limit.
    pub capacity: usize,
    /// Reported spend per route on `now`'s UTC day.
    pub spent_today: &'a BTreeMap<String, f64>,
    /// How many more runs each listed route can start now (an SSH route whose hosts are full
    /// or down); a route not listed has no limit of its own.
    pub route_room: &'a BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `blocked:task:…` whose dependencies are all done becomes ready.
    Promote {
        id: String,
        from: Status,
        deps: Vec<String>,
    },
    /// A claim with no live owner goes back to ready (or to failed when it was the last attempt).
    ResetStale {
        id: String,
        from: Status,
        to: Status,
        reason: String,
        /// The attempt the dead claim used.
        attempt: u32,
        break_lock: bool,
    },
    /// A lock left by a dead owner on a task that is not running.
    BreakLock { id: String, reason: String },
    /// Claim and run the task.
    Dispatch {
        id: String,
        from: Status,
        to: Status,
        route: String,
        attempt: u32,
    },
    /// A save put back a status the runtime replaced: write the runtime's status again.
    Reassert {
        id: String,
        found: Status,
        ours: Status,
    },
    /// A person's status decision: forget the runtime's episode and attempts.
    Forget { id: String, status: Status },
    /// A person's decision on a task this runtime is running: stop the run, keep their status.
    Cancel { id: String, status: Status },
    /// A due task waits, untouched, because a task running now declares `touches:` that
    /// overlap its own.
    TouchesHeld { id: String, by: String },
    /// `approved` over attempt `attempt`'s change waiting for approval. The shell lands it only
    /// while its record still says so (`TaskRecord::may_land`, on a store refreshed under the
    /// board's write lock), keeps it as landed (`TaskRecord::landed`, saved) before it writes
    /// `done` over `from`, and clears the record once `done` is on the board. A refused merge
    /// writes `awaiting-approval` over `from` instead: the change waits again.
    Land {
        id: String,
        from: Status,
        attempt: u32,
    },
    /// Attempt `attempt`'s change is on its branch as `commit`, but `done` is not on the board
    /// (a crash between the two, or a stale buffer's `awaiting-approval`): write `done` over
    /// `from`, and clear the record once it is there. Nothing lands again.
    FinishLanding {
        id: String,
        from: Status,
        attempt: u32,
        commit: String,
    },
    /// `rejected:<note>` over attempt `attempt`'s change waiting for approval: the change is
    /// discarded and `settlement` (settle's [`rejection`]: ready with the note for the next
    /// packet, or failed with a dead letter when the attempts are spent) is written over `from`
    /// and kept like a review's bounce; the record is cleared.
    Reject {
        id: String,
        from: Status,
        attempt: u32,
        note: String,
        settlement: Settlement,
    },
    /// `approved` or `rejected:` on a task with no change waiting for approval: nothing is
    /// landed or sent back (a finding to report; the status is the person's to change).
    NoChangeToApprove { id: String, status: Status },
    /// A route spent its daily budget: its ready tasks wait, untouched, for the next UTC day.
    BudgetHeld {
        route: String,
        spent: f64,
        budget: f64,
        waiting: usize,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// When a time-based rule next needs a pass (a retry falls due, a lock-less claim goes
    /// stale, a ready task waits on another live runtime's lock).
    pub wake_at: Option<DateTime<Utc>>,
}

impl Plan {
    fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// The route a task runs on.
pub fn route_of(task: &Task) -> &str {
    task.route().unwrap_or("default")
}

/// Plans one pass: the steps for every task on the board, in board order, and when a
/// time-based rule next needs a pass.
pub fn plan(inp: &Inputs) -> Plan {
    let mut planner = Planner::new(inp);
    for (task, glance) in inp.board.tasks.iter().zip(inp.board.glances()) {
        planner.task(task, glance);
    }
    planner.finish()
}

/// What the status on the board is to the runtime, given its memory of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The runtime's own status (or nothing remembered to compare with): the rules go on.
    Ours,
    /// A person's decision: the runtime forgets its episode and attempts, and the rules go on.
    Decision,
    /// Nothing more to do for the task in this pass (a stale buffer put right, a run of ours
    /// cancelled).
    Handled,
}

/// One plan in the making.
struct Planner<'a> {
    inp: &'a Inputs<'a>,
    plan: Plan,
    stale_after: TimeDelta,
    /// The IDs more than one task carries: such a task is never acted on.
    duplicated: HashSet<&'a str>,
    /// The IDs of the locks, of this runtime's runs and of the endings on their way.
    in_hand: IdFilter,
    /// How many more runs this runtime may start, others' runs aside.
    capacity: usize,
    /// Runs of other live runtimes on this board: they count against the same limit.
    others_running: usize,
    /// Routes whose budget is spent: (spent, budget, tasks waiting).
    held: BTreeMap<String, (f64, f64, usize)>,
    /// The tasks running now (or dispatched in this pass) that declare `touches:`, with theirs.
    touching: Vec<(&'a str, Vec<Glob>)>,
    /// What is left of `Inputs::route_room` in this pass.
    route_room: BTreeMap<String, usize>,
}

impl<'a> Planner<'a> {
    fn new(inp: &'a Inputs<'a>) -> Planner<'a> {
        let touching = running_touches(inp);
        let duplicated = inp.board.duplicated_ids();
        // A lock on a task whose change waits for approval holds no run: its worktree is idle.
        let others_running = inp
            .locks
            .iter()
            .filter(|(id, v)| {
                **v == LockView::Live && !state_of(inp.board, id).is_some_and(approval_token)
            })
            .count();
        let in_hand = (inp.locks.keys())
            .chain(inp.active)
            .chain(inp.endings_on_the_way)
            .map(String::as_str)
            .collect();
        Planner {
            inp,
            plan: Plan::default(),
            duplicated,
            in_hand,
            stale_after: TimeDelta::from_std(inp.policy.stale_after).unwrap_or(TimeDelta::MAX),
            capacity: inp.capacity,
            others_running,
            held: BTreeMap::new(),
            touching,
            route_room: inp.route_room.clone(),
        }
    }

    /// The steps for one task.
    fn task(&mut self, task: &'a Task, glance: &Glance) {
        let inp = self.inp;
        let Some(kind) = glance.status().filter(|_| glance.id_usable()) else {
            return;
        };
        if settled(kind) && !self.in_hand.may_hold(glance) && !inp.memory.may_recall(glance) {
            // Without a lock, a run, an ending or a memory of its own, no rule acts on a
            // settled task: most of a long board, passed over from its glance alone.
            return;
        }
        let Some(status) = task.status() else {
            return;
        };
        let id = task.id.as_str();
        if self.duplicated.contains(id) {
            return;
        }
        let memory = inp.memory.recall(id);
        let ours = inp.active.contains(id);
        let lock = inp.locks.get(id);
        let on_the_way = inp.endings_on_the_way.contains(id);
        if let (true, Status::RetryAt(at)) = (on_the_way, status) {
            // The ending being written is a retry wait: a pass is due when it falls due.
            self.plan.wake(at.at);
        }
        if on_the_way || lock == Some(&LockView::Live) {
            // An ending on its way decides this task; a task another live runtime holds is that
            // runtime's to decide (it shares this memory and sees the same board). A ready one
            // is ours to run once that lock is gone (the other's claim lost to a save, say).
            if !on_the_way && self.due(status) {
                self.held_by_others();
            }
            return;
        }
        if let Some(approval) = memory.and_then(|m| m.approval.as_ref())
            && approval_token(status)
        {
            self.approval(id, status, approval, memory, lock);
            return;
        }
        let reading = self.read_status(id, status, memory, ours);
        if reading == Reading::Handled || ours {
            // Our run is live and the board agrees (or the person left it alone).
            return;
        }
        let forgotten = reading == Reading::Decision;
        let attempts_used = if forgotten {
            0
        } else {
            memory.map_or(0, |m| m.attempts)
        };
        // Where this series' budget starts (a retry keeps the numbering, not the count).
        let series_start = if forgotten {
            0
        } else {
            memory.map_or(0, |m| m.series_start)
        };
        match status {
            Status::Running { since, agent } => {
                // A claim this runtime wrote was counted when it was made; anyone else's counts
                // now.
                let attempt = match memory.and_then(|m| m.episode.as_ref()) {
                    Some(ep) if status.prints_as(&ep.written) => attempts_used.max(1),
                    _ => attempts_used + 1,
                };
                let claim = Claim {
                    id,
                    status,
                    since: since.at,
                    agent,
                    attempt,
                    series_start,
                };
                self.running(claim, lock);
            }
            Status::Ready | Status::RetryAt(_) => self.ready(task, status, lock, attempts_used),
            Status::BlockedOnTasks(deps) => {
                self.break_stale_lock(id, lock);
                self.promote_when_done(id, status, deps);
            }
            Status::Blocked { .. }
            | Status::Done
            | Status::Failed { .. }
            | Status::AwaitingApproval => {
                self.break_stale_lock(id, lock);
            }
            // No change waits for approval (the rule above takes those that do).
            Status::Approved | Status::Rejected { .. } => {
                self.break_stale_lock(id, lock);
                self.plan.steps.push(Step::NoChangeToApprove {
                    id: id.into(),
                    status: status.clone(),
                });
            }
        }
    }

    /// A task whose record holds a change for approval, showing an approval status. Waiting:
    /// `awaiting-approval` leaves it alone, `approved` lands it, `rejected:` sends it back (an
    /// approval or rejection carried out for an earlier change coming back is a stale buffer:
    /// the wait is put back). Landed: whichever of the three the board shows, `done` is written and nothing
    /// lands again (a rejection can no longer undo a change on its branch).
    fn approval(
        &mut self,
        id: &str,
        status: &Status,
        approval: &Approval,
        memory: Option<&TaskMemory>,
        lock: Option<&LockView>,
    ) {
        self.break_stale_lock(id, lock);
        let (from, attempt) = (status.clone(), approval.attempt);
        let step = match (status, &approval.phase) {
            (_, ApprovalPhase::Landed { commit }) => Step::FinishLanding {
                id: id.into(),
                from,
                attempt,
                commit: commit.clone(),
            },
            (Status::AwaitingApproval, ApprovalPhase::Waiting) => return,
            (_, ApprovalPhase::Waiting) if approval.stale.contains(&status.to_string()) => {
                Step::Reassert {
                    id: id.into(),
                    found: from,
                    ours: Status::AwaitingApproval,
                }
            }
            (Status::Rejected { note }, ApprovalPhase::Waiting) => {
                let series_start = memory.map_or(0, |m| m.series_start);
                let settlement = rejection(self.inp.policy, in_series(attempt, series_start), note);
                Step::Reject {
                    id: id.into(),
                    from,
                    attempt,
                    note: note.clone(),
                    settlement,
                }
            }
            (_, ApprovalPhase::Waiting) => Step::Land {
                id: id.into(),
                from,
                attempt,
            },
        };
        self.plan.steps.push(step);
    }

    /// Is this status the runtime's own, a stale buffer, or a person's decision? A stale
    /// buffer is put right; a person's decision on a task the runtime is running stops the
    /// run.
    fn read_status(
        &mut self,
        id: &str,
        status: &Status,
        memory: Option<&TaskMemory>,
        ours: bool,
    ) -> Reading {
        let agent = &self.inp.policy.agent;
        // A claim in our agent's name is never a person's decision: it is one of our runs whose
        // memory a crash lost (or a stale buffer brought back). It keeps the attempts counted.
        let our_dead_claim =
            !ours && matches!(status, Status::Running { agent: a, .. } if a == agent);
        let Some(ep) = memory.and_then(|m| m.episode.as_ref()) else {
            return Reading::Ours;
        };
        if status.prints_as(&ep.written) {
            return Reading::Ours;
        }
        let current = status.to_string();
        let written = Status::parse(&ep.written).ok();
        // Our `running` is only ours to put back while our run is live: a claim from a run that
        // is gone (a crash lost the write of its ending) would have no owner. A token only the
        // runtime writes (a retry wait, a claim in its name) coming back is always a stale
        // buffer, whatever the runtime wrote since: no person decides by typing one.
        let reassertable = written.as_ref().is_some_and(|w| match w {
            Status::Running { .. } => ours,
            Status::Done | Status::Ready | Status::RetryAt(_) => true,
            _ => runtime_only(status, agent),
        });
        if reassertable && ep.replaced.contains(&current) {
            if let Some(ours_status) = written {
                self.plan.steps.push(Step::Reassert {
                    id: id.into(),
                    found: status.clone(),
                    ours: ours_status,
                });
            }
            return Reading::Handled;
        }
        if our_dead_claim {
            return Reading::Ours;
        }
        self.plan.steps.push(Step::Forget {
            id: id.into(),
            status: status.clone(),
        });
        if ours {
            self.plan.steps.push(Step::Cancel {
                id: id.into(),
                status: status.clone(),
            });
            return Reading::Handled;
        }
        Reading::Decision
    }

    /// A claim on the board: left alone while its owner lives, reset when its owner is gone
    /// (or, lock-less, when it is older than `stale_after`).
    fn running(&mut self, claim: Claim, lock: Option<&LockView>) {
        let inp = self.inp;
        let reason = match lock {
            Some(LockView::Live) | Some(LockView::Ours) => return,
            Some(LockView::Stale(reason)) => {
                self.reset_breaking_lock(&claim, format!("lock owner is gone: {reason}"));
                return;
            }
            // Our runs hold their lock from before the claim is written until after the
            // ending is: our claim without a lock names a run that is over (its ending was
            // refused, and a stale buffer put the claim back).
            None if *claim.agent == inp.policy.agent => {
                "a claim of ours without a lock: its run has ended".to_string()
            }
            // A clock anomaly: lint reports it; the runtime never touches it.
            None if claim.since > inp.now + CLOCK_SLACK => return,
            None if inp.now - claim.since >= self.stale_after => format!(
                "no lock and claimed {} ago (stale_after is {})",
                fmt::duration((inp.now - claim.since).to_std().unwrap_or_default(), Coarse),
                fmt::duration(self.stale_after.to_std().unwrap_or_default(), Coarse)
            ),
            None => {
                self.plan.wake(claim.since + self.stale_after);
                return;
            }
        };
        self.reset(&claim, reason);
    }

    /// Resets a stale claim whose lock folder is gone or was never taken.
    fn reset(&mut self, claim: &Claim, reason: String) {
        self.push_reset(claim, reason, false);
    }

    /// Resets a claim whose lock's owner is dead: the shell breaks that lock as it resets.
    fn reset_breaking_lock(&mut self, claim: &Claim, reason: String) {
        self.push_reset(claim, reason, true);
    }

    fn push_reset(&mut self, claim: &Claim, reason: String, break_lock: bool) {
        self.plan.steps.push(reset_stale(
            self.inp.policy,
            claim.id,
            claim.status,
            reason,
            claim.attempt,
            claim.series_start,
            break_lock,
        ));
    }

    /// A ready task (or a retry wait that fell due) is claimed and run, when its route is
    /// configured, its route's budget is not spent and there is capacity.
    fn ready(
        &mut self,
        task: &'a Task,
        status: &Status,
        lock: Option<&LockView>,
        attempts_used: u32,
    ) {
        let inp = self.inp;
        let id = task.id.as_str();
        if !self.due(status) {
            if let Status::RetryAt(at) = status {
                self.plan.wake(at.at);
            }
            return;
        }
        if let Some(LockView::Stale(reason)) = lock {
            self.plan.steps.push(Step::BreakLock {
                id: id.into(),
                reason: reason.clone(),
            });
        } else if lock.is_some() {
            // Someone live holds it (its writeback is on the way).
            return;
        }
        let route = route_of(task);
        if !inp.policy.routes.contains(route) || self.budget_spent(route) {
            return;
        }
        // A route whose hosts are all busy or down: the task stays due; a run's end or the
        // host's return (the shell's wake) brings the next pass.
        if self.route_room.get(route) == Some(&0) {
            return;
        }
        if self.capacity <= self.others_running {
            self.held_by_others();
            return;
        }
        let touches = touches_of(task);
        if let Some(globs) = &touches
            && self.held_by_touches(id, globs)
        {
            return;
        }
        self.capacity -= 1;
        if let Some(room) = self.route_room.get_mut(route) {
            *room -= 1;
        }
        if let Some(globs) = touches {
            self.touching.push((task.id.as_str(), globs));
        }
        self.plan.steps.push(Step::Dispatch {
            id: id.into(),
            from: status.clone(),
            to: Status::Running {
                agent: inp.policy.agent.clone(),
                since: Stamp::seconds(inp.now),
            },
            route: route.into(),
            attempt: attempts_used + 1,
        });
    }

    /// Whether a task with `status` is due to run: ready, or a retry wait that fell due (a wait
    /// longer than the runtime ever writes is a clock that ran ahead: due now).
    fn due(&self, status: &Status) -> bool {
        let inp = self.inp;
        match status {
            Status::Ready => true,
            Status::RetryAt(at) => {
                at.at <= inp.now || retry_out_of_reach(at.at, inp.now, longest_backoff(inp.policy))
            }
            _ => false,
        }
    }

    /// A due task waits on another live runtime's lock. When this runtime could start it were
    /// that lock gone, a pass looks again soon: the release comes with no save of the board.
    /// Waits for this runtime's own runs need no such look: their endings bring a pass.
    fn held_by_others(&mut self) {
        if self.capacity > 0 {
            self.plan.wake(self.inp.now + FOREIGN_LOCK_RECHECK);
        }
    }

    /// Whether a task running now touches what `id` declares it touches. The first such task
    /// holds it back; when that task is another live runtime's, a pass looks again soon (its
    /// end comes with no pass of this runtime's own).
    fn held_by_touches(&mut self, id: &str, globs: &[Glob]) -> bool {
        let Some(by) = self
            .touching
            .iter()
            .find(|(other, theirs)| *other != id && touches_overlap(globs, theirs))
            .map(|(other, _)| *other)
        else {
            return false;
        };
        if self.inp.locks.get(by) == Some(&LockView::Live) {
            self.plan.wake(self.inp.now + FOREIGN_LOCK_RECHECK);
        }
        self.plan.steps.push(Step::TouchesHeld {
            id: id.into(),
            by: by.into(),
        });
        true
    }

    /// Whether `route` spent its daily budget (a task that waits for it is counted).
    fn budget_spent(&mut self, route: &str) -> bool {
        let Some(budget) = self.inp.policy.daily_budget.get(route) else {
            return false;
        };
        let spent = self.inp.spent_today.get(route).copied().unwrap_or(0.0);
        if spent < *budget {
            return false;
        }
        self.held
            .entry(route.to_string())
            .or_insert((spent, *budget, 0))
            .2 += 1;
        true
    }

    /// `blocked:task:…` whose dependencies are all done becomes ready.
    fn promote_when_done(&mut self, id: &str, status: &Status, deps: &[String]) {
        let all_done = deps
            .iter()
            .all(|d| d != id && state_of(self.inp.board, d) == Some(&Status::Done));
        if all_done {
            self.plan.steps.push(Step::Promote {
                id: id.into(),
                from: status.clone(),
                deps: deps.to_vec(),
            });
        }
    }

    /// A lock left by a dead owner on a task that is not running is broken.
    fn break_stale_lock(&mut self, id: &str, lock: Option<&LockView>) {
        if let Some(LockView::Stale(reason)) = lock {
            self.plan.steps.push(Step::BreakLock {
                id: id.into(),
                reason: reason.clone(),
            });
        }
    }

    /// The plan, with the routes held by their budget.
    fn finish(mut self) -> Plan {
        let now = self.inp.now;
        if !self.held.is_empty() {
            // Budgets are per UTC day: look again when the next one starts.
            let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
            self.plan
                .wake(tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        }
        for (route, (spent, budget, waiting)) in self.held {
            self.plan.steps.push(Step::BudgetHeld {
                route,
                spent,
                budget,
                waiting,
            });
        }
        self.plan
    }
}

/// A status no rule acts on by itself: what acts on such a task is a lock, a run, an ending or
/// the runtime's memory of it (a stale lock to break, a stale buffer to put right, a person's
/// decision to note, a change waiting for approval).
fn settled(kind: StatusKind) -> bool {
    matches!(
        kind,
        StatusKind::Blocked | StatusKind::Done | StatusKind::Failed | StatusKind::AwaitingApproval
    )
}

/// The tasks with a run going on now that declare `touches:`: claimed on the board, run by this
/// runtime or held by another live one. A task whose ending is on its way has stopped touching.
fn running_touches<'a>(inp: &'a Inputs<'a>) -> Vec<(&'a str, Vec<Glob>)> {
    inp.board
        .tasks
        .iter()
        // Few tasks declare `touches:`: the field is looked for before the sets are searched.
        .filter(|t| t.declares_touches())
        .filter(|t| {
            matches!(t.status(), Some(Status::Running { .. }))
                || inp.active.contains(t.id.as_str())
                || inp.locks.get(t.id.as_str()) == Some(&LockView::Live)
        })
        .filter(|t| !inp.endings_on_the_way.contains(t.id.as_str()))
        .filter(|t| !t.status().is_some_and(approval_token))
        .filter(|t| state_of(inp.board, &t.id).is_some())
        .filter_map(|t| Some((t.id.as_str(), touches_of(t)?)))
        .collect()
}

/// The status of the one task with this ID: `None` when no task carries it, when more than
/// one does, or when it has no status.
fn state_of<'a>(board: &'a Board, id: &str) -> Option<&'a Status> {
    board.sole_task(id)?.status()
}

/// A claim on the board, as the reset rules need it.
struct Claim<'a> {
    id: &'a str,
    status: &'a Status,
    since: DateTime<Utc>,
    agent: &'a String,
    /// The attempt the claim used.
    attempt: u32,
    series_start: u32,
}

/// What the runtime remembers of a task once a person decided its status: no attempts, and, so
/// that a stale buffer cannot undo the decision, the runtime-only tokens of the episode before it
/// (a claim, a retry wait) and its `ready`: one of those coming back is put back to the person's
/// status, as it would be to a status the runtime wrote (`ready` only where the rules re-assert
/// over `ready`: after `done`, not after a status that asks the person to act).
pub fn memory_after_decision(
    before: Option<&TaskMemory>,
    decision: &Status,
    agent: &str,
) -> Option<TaskMemory> {
    let ep = before?.episode.as_ref()?;
    let tokens: Vec<String> = ep
        .replaced
        .iter()
        .chain(std::iter::once(&ep.written))
        .filter(|s| {
            Status::parse(s).is_ok_and(|st| st == Status::Ready || runtime_only(&st, agent))
        })
        .filter(|s| **s != decision.to_string())
        .cloned()
        .collect();
    (!tokens.is_empty()).then(|| TaskMemory {
        attempts: 0,
        series_start: 0,
        approval: None,
        episode: Some(Episode {
            written: decision.to_string(),
            replaced: tokens,
        }),
    })
}

/// Whether `status` is a token only the runtime writes: a retry wait, a change waiting for
/// approval, or a claim in the runtime's agent name (its work or its review).
pub fn runtime_only(status: &Status, agent: &str) -> bool {
    match status {
        Status::RetryAt(_) | Status::AwaitingApproval => true,
        Status::Running { agent: a, .. } => *a == agent || *a == review_agent(agent),
        _ => false,
    }
}

/// Whether `status` is one of the approval statuses: a change waiting, or a person's word on it.
/// A task showing one runs nothing: its lock and its `touches:` hold no one back.
fn approval_token(status: &Status) -> bool {
    matches!(
        status,
        Status::AwaitingApproval | Status::Approved | Status::Rejected { .. }
    )
}

fn reset_stale(
    policy: &Policy,
    id: &str,
    from: &Status,
    reason: String,
    attempt: u32,
    series_start: u32,
    break_lock: bool,
) -> Step {
    let to = if attempt.saturating_sub(series_start) >= policy.max_attempts {
        Status::failed("exhausted_retries")
    } else {
        Status::Ready
    };
    Step::ResetStale {
        id: id.into(),
        from: from.clone(),
        to,
        reason,
        attempt,
        break_lock,
    }
}

/// What to do with a pending ending, given the board as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    /// The board already shows it.
    Landed,
    /// Write it over this status: the claim, or a stale buffer's copy of a status the runtime
    /// itself replaced (a person does not decide by saving an old buffer).
    Write { over: Status },
    /// The task cannot be written now (not on the board, its ID duplicated, no usable status):
    /// keep the ending and try again after the next save.
    Wait { reason: String },
    /// A person set another status: theirs stands and the ending gives way.
    Superseded { found: String },
}

/// How `ending` meets task `id` on `board`. `episode` is the runtime's memory of the task before
/// the ending (what its writes replaced); `agent` names the runtime's claims.
pub fn landing(
    board: &Board,
    id: &str,
    ending: &PendingEnding,
    episode: Option<&Episode>,
    agent: &str,
) -> Landing {
    let Some(task) = board.sole_task(id) else {
        let reason = if board.task(id).is_some() {
            "more than one task has this ID"
        } else {
            "the task is not on the board"
        };
        return Landing::Wait {
            reason: reason.into(),
        };
    };
    let Some(field) = task.status.as_ref().filter(|_| task.id_problem.is_none()) else {
        return Landing::Wait {
            reason: "the task has no usable status field".into(),
        };
    };
    let Ok(current) = &field.parsed else {
        return Landing::Wait {
            reason: format!("its status `{}` does not parse", field.raw),
        };
    };
    let printed = current.to_string();
    if printed == ending.write {
        return Landing::Landed;
    }
    let replaced = episode.is_some_and(|ep| ep.replaced.contains(&printed));
    if printed == ending.claim || replaced || runtime_only(current, agent) {
        return Landing::Write {
            over: current.clone(),
        };
    }
    Landing::Superseded { found: printed }
}

/// The agent name a task under review shows: `running:review-<agent>:<time>`.
pub fn review_agent(agent: &str) -> String {
    format!("review-{agent}")
}

/// `retry_backoff · 2^(attempt-1)`, capped so it cannot overflow.
pub fn backoff(base: Duration, attempt: u32) -> TimeDelta {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    let d = base
        .saturating_mul(factor)
        .min(Duration::from_secs(30 * 24 * 3600));
    TimeDelta::from_std(d).unwrap_or(TimeDelta::days(30))
}

/// The longest wait the runtime ever writes into `blocked:retry:<time>`: the backoff after the
/// last attempt allowed (a bound: that attempt's failure writes `failed:…` instead).
pub fn longest_backoff(policy: &Policy) -> Duration {
    longest_backoff_for(policy.retry_backoff, policy.max_attempts)
}

/// [`longest_backoff`] from the two settings it depends on.
pub fn longest_backoff_for(retry_backoff: Duration, max_attempts: u32) -> Duration {
    backoff(retry_backoff, max_attempts)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// Whether a retry time lies further ahead than the runtime ever writes one: more than
/// `longest` (see [`longest_backoff`]) plus [`CLOCK_SLACK`] after `now`. Such a time was written
/// by a clock that ran ahead and has been set back since (or typed with a wrong date); it
/// cannot have been meant to wait that long, so the retry is due now rather than in a year.
pub fn retry_out_of_reach(at: DateTime<Utc>, now: DateTime<Utc>, longest: Duration) -> bool {
    let reach = TimeDelta::from_std(longest)
        .ok()
        .and_then(|d| d.checked_add(&CLOCK_SLACK))
        .and_then(|d| now.checked_add_signed(d));
    reach.is_some_and(|limit| at > limit)
}

/// What the planner's and the settling rules' tests share: a time, a status, a policy.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    pub(crate) fn st(s: &str) -> Status {
        Status::parse(s).unwrap()
    }
    /// Three attempts, a 30 s backoff, claims stale after two hours, routes `default` and
    /// `review`, no budget.
    pub(crate) fn policy() -> Policy {
        Policy {
            agent: "tb".into(),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(30),
            stale_after: Duration::from_secs(7200),
            routes: ["default".to_string(), "review".to_string()].into(),
            daily_budget: BTreeMap::new(),
            approval_routes: BTreeSet::new(),
        }
    }
    /// [`policy`] with route `isolated`, whose successes wait for approval.
    pub(crate) fn approval_policy() -> Policy {
        let mut p = policy();
        p.routes.insert("isolated".into());
        p.approval_routes.insert("isolated".into());
        p
    }
    pub(crate) const NOW: &str = "2026-04-20T16:00:00Z";
}

#[cfg(test)]
mod tests {
    use super::test_support::{NOW, policy, st, t};
    use super::*;
    use crate::core::memory::{Projected, records_of};
    use crate::core::settle::SettlementKind;
    use crate::core::writeback::Change;

    struct World {
        locks: BTreeMap<String, LockView>,
        active: BTreeSet<String>,
        memory: BTreeMap<String, TaskMemory>,
        endings_on_the_way: BTreeSet<String>,
        capacity: usize,
        spent: BTreeMap<String, f64>,
        route_room: BTreeMap<String, usize>,
    }
    impl Default for World {
        fn default() -> World {
            World {
                locks: BTreeMap::new(),
                active: BTreeSet::new(),
                memory: BTreeMap::new(),
                endings_on_the_way: BTreeSet::new(),
                route_room: BTreeMap::new(),
                capacity: 8,
                spent: BTreeMap::new(),
            }
        }
    }
    fn board(tasks: &[(&str, &str)]) -> Board {
        let mut text = String::from("# Board\n");
        for (id, status) in tasks {
            text.push_str(&format!("## {id}\n- status: {status}\n"));
        }
        Board::parse(&text)
    }
    fn run(tasks: &[(&str, &str)], w: &World) -> Plan {
        plan_board(&board(tasks), w)
    }
    fn plan_board(b: &Board, w: &World) -> Plan {
        let p = policy();
        plan(&Inputs {
            board: b,
            policy: &p,
            now: t(NOW),
            locks: &w.locks,
            active: &w.active,
            memory: &w.memory,
            endings_on_the_way: &w.endings_on_the_way,
            capacity: w.capacity,
            spent_today: &w.spent,
            route_room: &w.route_room,
        })
    }
    fn dispatched(p: &Plan) -> Vec<(String, u32)> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::Dispatch { id, attempt, .. } => Some((id.clone(), *attempt)),
                _ => None,
            })
            .collect()
    }
    fn episode(written: &str, replaced: &[&str]) -> TaskMemory {
        TaskMemory {
            attempts: 1,
            series_start: 0,
            episode: Some(Episode {
                written: written.into(),
                replaced: replaced.iter().map(|s| s.to_string()).collect(),
            }),
            approval: None,
        }
    }

    #[test]
    fn dispatches_ready_tasks_in_board_order_up_to_capacity() {
        let w = World {
            capacity: 2,
            ..World::default()
        };
        let p = run(
            &[
                ("A-1", "ready"),
                ("B-1", "done"),
                ("C-1", "ready"),
                ("D-1", "ready"),
            ],
            &w,
        );
        assert_eq!(dispatched(&p), vec![("A-1".into(), 1), ("C-1".into(), 1)]);
        let Step::Dispatch { to, route, .. } = &p.steps[0] else {
            panic!()
        };
        assert_eq!(to.to_string(), "running:tb:2026-04-20T16:00:00Z");
        assert_eq!(route, "default");
    }

    #[test]
    fn a_route_without_room_keeps_its_tasks_due_and_others_still_run() {
        let b = Board::parse(
            "# Board\n## A-1\n- status: ready\n- route: review\n\
             ## B-1\n- status: ready\n- route: review\n## C-1\n- status: ready\n",
        );
        let mut w = World::default();
        w.route_room.insert("review".into(), 1);
        assert_eq!(
            dispatched(&plan_board(&b, &w)),
            vec![("A-1".into(), 1), ("C-1".into(), 1)]
        );
        w.route_room.insert("review".into(), 0);
        assert_eq!(dispatched(&plan_board(&b, &w)), vec![("C-1".into(), 1)]);
    }

    #[test]
    fn unknown_routes_duplicates_and_bad_ids_are_never_dispatched() {
        let text = "## A-1\n- status: ready\n- route: nowhere\n## B-1\n- status: ready\n## B-1\n- status: ready\n## ../x\n- status: ready\n## C-1\n- status: ready\n- route: review\n";
        let b = Board::parse(text);
        let w = World::default();
        let p = plan(&Inputs {
            board: &b,
            policy: &policy(),
            now: t(NOW),
            locks: &w.locks,
            active: &w.active,
            memory: &w.memory,
            endings_on_the_way: &w.endings_on_the_way,
            capacity: 8,
            spent_today: &w.spent,
            route_room: &w.route_room,
        });
        assert_eq!(dispatched(&p), vec![("C-1".into(), 1)]);
    }

    #[test]
    fn promotes_when_every_dependency_is_done() {
        let p = run(
            &[
                ("A-1", "done"),
                ("B-1", "done"),
                ("C-1", "blocked:task:A-1,B-1"),
                ("D-1", "blocked:task:A-1,C-1"),
                ("E-1", "blocked:task:Z-9"),
                ("F-1", "blocked:task:F-1"),
            ],
            &World::default(),
        );
        assert_eq!(
            p.steps,
            vec![Step::Promote {
                id: "C-1".into(),
                from: st("blocked:task:A-1,B-1"),
                deps: vec!["A-1".into(), "B-1".into()],
            }]
        );
    }

    #[test]
    fn claims_with_live_locks_are_left_alone_and_dead_ones_reset() {
        let mut w = World::default();
        w.locks.insert("A-1".into(), LockView::Live);
        w.locks
            .insert("B-1".into(), LockView::Stale("pid 9 not running".into()));
        w.memory.insert(
            "B-1".into(),
            TaskMemory {
                attempts: 2,
                series_start: 0,
                episode: None,
                approval: None,
            },
        );
        w.locks
            .insert("C-1".into(), LockView::Stale("pid 9 not running".into()));
        let p = run(
            &[
                ("A-1", "running:x:2026-04-20T15:00Z"),
                ("B-1", "running:tb:2026-04-20T15:00Z"),
                ("C-1", "running:tb:2026-04-20T15:00Z"),
            ],
            &w,
        );
        let resets: Vec<_> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::ResetStale {
                    id,
                    to,
                    attempt,
                    break_lock,
                    ..
                } => (id.as_str(), to.to_string(), *attempt, *break_lock),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            resets,
            vec![
                ("B-1", "failed:exhausted_retries".to_string(), 3, true),
                ("C-1", "ready".to_string(), 1, true),
            ]
        );
    }

    #[test]
    fn a_claim_of_our_own_is_counted_once() {
        let mut w = World::default();
        w.locks
            .insert("A-1".into(), LockView::Stale("pid 9 not running".into()));
        w.memory.insert(
            "A-1".into(),
            episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
        );
        let p = run(&[("A-1", "running:tb:2026-04-20T15:00:00Z")], &w);
        assert!(
            matches!(&p.steps[..], [Step::ResetStale { attempt: 1, .. }]),
            "{p:?}"
        );
    }

    #[test]
    fn a_claim_whose_memory_a_crash_lost_keeps_the_attempts_counted() {
        // Attempt 2 ended in a retry wait; the claim of attempt 3 reached the board, then the
        // runtime died before saving its memory. The claim is the third attempt, not a fresh start.
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            TaskMemory {
                attempts: 2,
                series_start: 0,
                episode: Some(Episode {
                    written: "blocked:retry:2026-04-20T15:58:00Z".into(),
                    replaced: vec!["running:tb:2026-04-20T15:57:00Z".into()],
                }),
                approval: None,
            },
        );
        w.locks
            .insert("A-1".into(), LockView::Stale("pid 9 not running".into()));
        let p = run(&[("A-1", "running:tb:2026-04-20T15:59:00Z")], &w);
        let [Step::ResetStale { attempt, to, .. }] = &p.steps[..] else {
            panic!("{p:?}")
        };
        assert_eq!(
            (*attempt, to.to_string()),
            (3, "failed:exhausted_retries".into())
        );
        // A stale buffer bringing back a claim we replaced with `done` is still re-asserted.
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("done", &["ready", "running:tb:2026-04-20T15:59:00Z"]),
        );
        let p = run(&[("A-1", "running:tb:2026-04-20T15:59:00Z")], &w);
        assert!(
            matches!(&p.steps[..], [Step::Reassert { ours, .. }] if *ours == Status::Done),
            "{p:?}"
        );
    }

    #[test]
    fn our_own_claim_without_a_lock_is_reset_at_once() {
        // Our run ended, its ending was refused (the task had left the board), and a stale
        // buffer brought the claim back: nobody will ever settle it.
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("running:tb:2026-04-20T15:59:00Z", &["ready"]),
        );
        let p = run(&[("A-1", "running:tb:2026-04-20T15:59:00Z")], &w);
        assert!(
            matches!(
                &p.steps[..],
                [Step::ResetStale {
                    attempt: 1,
                    break_lock: false,
                    ..
                }]
            ),
            "{p:?}"
        );
        // Without any memory of it (the task had left the board) too.
        let p = run(
            &[("A-1", "running:tb:2026-04-20T15:59:00Z")],
            &World::default(),
        );
        assert!(matches!(&p.steps[..], [Step::ResetStale { .. }]), "{p:?}");
    }

    #[test]
    fn lockless_claims_are_respected_until_stale_and_future_ones_never_touched() {
        let p = run(
            &[("A-1", "running:bob:2026-04-20T15:00Z")],
            &World::default(),
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.wake_at, Some(t("2026-04-20T17:00:00Z")));
        let p = run(
            &[("A-1", "running:bob:2026-04-20T13:59Z")],
            &World::default(),
        );
        assert!(matches!(
            &p.steps[..],
            [Step::ResetStale {
                break_lock: false,
                ..
            }]
        ));
        let p = run(
            &[("A-1", "running:bob:2026-04-20T18:00Z")],
            &World::default(),
        );
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn retry_waits_fall_due() {
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode(
                "blocked:retry:2026-04-20T15:59:00Z",
                &["running:tb:2026-04-20T15:58:00Z"],
            ),
        );
        let p = run(
            &[
                ("A-1", "blocked:retry:2026-04-20T15:59:00Z"),
                ("B-1", "blocked:retry:2026-04-20T16:05:00Z"),
            ],
            &w,
        );
        assert_eq!(dispatched(&p), vec![("A-1".into(), 2)]);
        assert_eq!(p.wake_at, Some(t("2026-04-20T16:05:00Z")));
    }

    #[test]
    fn stale_buffer_is_reasserted_not_rerun() {
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("done", &["ready", "running:tb:2026-04-20T15:00:00Z"]),
        );
        w.memory.insert(
            "B-1".into(),
            episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
        );
        w.active.insert("B-1".into());
        w.locks.insert("B-1".into(), LockView::Ours);
        let p = run(&[("A-1", "ready"), ("B-1", "ready")], &w);
        assert_eq!(
            p.steps,
            vec![
                Step::Reassert {
                    id: "A-1".into(),
                    found: st("ready"),
                    ours: st("done")
                },
                Step::Reassert {
                    id: "B-1".into(),
                    found: st("ready"),
                    ours: st("running:tb:2026-04-20T15:00:00Z"),
                },
            ]
        );
    }

    #[test]
    fn a_claim_without_a_live_run_is_never_reasserted() {
        // A previous instance wrote `running`, the run ended, and the crash lost the memory of
        // its ending; the person then set the task to ready. Putting `running` back would leave
        // a claim nobody owns: the person's `ready` stands and the task runs.
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
        );
        let p = run(&[("A-1", "ready")], &w);
        assert!(
            matches!(
                &p.steps[..],
                [Step::Forget { .. }, Step::Dispatch { attempt: 1, .. }]
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_persons_decision_stands() {
        let mut w = World::default();
        // We asked the person for input; their `ready` is a decision: run again, fresh attempts.
        w.memory.insert(
            "A-1".into(),
            episode(
                "blocked:you:need-url",
                &["ready", "running:tb:2026-04-20T15:00:00Z"],
            ),
        );
        // They set a task we are running to done: cancel our run, keep their status.
        w.memory.insert(
            "B-1".into(),
            episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
        );
        w.active.insert("B-1".into());
        w.locks.insert("B-1".into(), LockView::Ours);
        let p = run(&[("A-1", "ready"), ("B-1", "done")], &w);
        assert_eq!(
            p.steps,
            vec![
                Step::Forget {
                    id: "A-1".into(),
                    status: st("ready")
                },
                Step::Dispatch {
                    id: "A-1".into(),
                    from: st("ready"),
                    to: st("running:tb:2026-04-20T16:00:00Z"),
                    route: "default".into(),
                    attempt: 1,
                },
                Step::Forget {
                    id: "B-1".into(),
                    status: st("done")
                },
                Step::Cancel {
                    id: "B-1".into(),
                    status: st("done")
                },
            ]
        );
    }

    #[test]
    fn dead_locks_on_settled_tasks_are_broken() {
        let mut w = World::default();
        w.locks
            .insert("A-1".into(), LockView::Stale("pid 4 not running".into()));
        let p = run(&[("A-1", "done")], &w);
        assert_eq!(
            p.steps,
            vec![Step::BreakLock {
                id: "A-1".into(),
                reason: "pid 4 not running".into()
            }]
        );
    }

    #[test]
    fn a_spent_budget_holds_its_route_until_the_next_utc_day() {
        let text = "## A-1\n- status: ready\n- route: review\n## B-1\n- status: ready\n- route: review\n## C-1\n- status: ready\n";
        let b = Board::parse(text);
        let mut p = policy();
        p.daily_budget.insert("review".into(), 10.0);
        let w = World::default();
        let spent: BTreeMap<String, f64> = [("review".to_string(), 10.0)].into();
        let plan_at = |now: &str, spent: &BTreeMap<String, f64>| {
            plan(&Inputs {
                board: &b,
                policy: &p,
                now: t(now),
                locks: &w.locks,
                active: &w.active,
                memory: &w.memory,
                endings_on_the_way: &w.endings_on_the_way,
                capacity: 8,
                spent_today: spent,
                route_room: &BTreeMap::new(),
            })
        };
        // Spent out today: the route's tasks stay ready and one step says why.
        let today = plan_at(NOW, &spent);
        assert_eq!(dispatched(&today), vec![("C-1".into(), 1)]);
        assert!(today.steps.contains(&Step::BudgetHeld {
            route: "review".into(),
            spent: 10.0,
            budget: 10.0,
            waiting: 2,
        }));
        assert_eq!(today.wake_at, Some(t("2026-04-21T00:00:00Z")));
        // The next UTC day starts with nothing spent: the route runs again.
        let tomorrow = plan_at("2026-04-21T00:00:01Z", &BTreeMap::new());
        assert_eq!(
            dispatched(&tomorrow),
            vec![("A-1".into(), 1), ("B-1".into(), 1), ("C-1".into(), 1)]
        );
        // Under budget: nothing held.
        let under: BTreeMap<String, f64> = [("review".to_string(), 9.99)].into();
        assert_eq!(dispatched(&plan_at(NOW, &under)).len(), 3);
    }

    #[test]
    fn a_retry_beyond_the_longest_backoff_is_a_clock_anomaly_and_due_now() {
        // Longest backoff with 30s and 3 attempts: 120s; plus the 5 minutes of slack.
        let p = run(
            &[
                ("A-1", "blocked:retry:2027-04-20T16:00:00Z"),
                ("B-1", "blocked:retry:2026-04-20T16:07:00Z"),
                ("C-1", "blocked:retry:2026-04-20T16:07:01Z"),
            ],
            &World::default(),
        );
        assert_eq!(dispatched(&p), vec![("A-1".into(), 1), ("C-1".into(), 1)]);
        assert_eq!(p.wake_at, Some(t("2026-04-20T16:07:00Z")));
        assert_eq!(longest_backoff(&policy()), Duration::from_secs(120));
        let now = t(NOW);
        let longest = Duration::from_secs(120);
        for (at, out) in [
            ("2026-04-20T16:07:00Z", false),
            ("2026-04-20T16:07:01Z", true),
            ("2026-04-20T15:00:00Z", false),
            ("9999-12-31T23:59:59Z", true),
        ] {
            assert_eq!(retry_out_of_reach(t(at), now, longest), out, "{at}");
        }
        assert!(!retry_out_of_reach(now, now, Duration::MAX));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_secs(30);
        assert_eq!(backoff(b, 1), TimeDelta::seconds(30));
        assert_eq!(backoff(b, 3), TimeDelta::seconds(120));
        assert_eq!(backoff(b, 400), TimeDelta::days(30));
        let claimed_for = TimeDelta::seconds(3 * 3600 + 12 * 60)
            .to_std()
            .unwrap_or_default();
        assert_eq!(fmt::duration(claimed_for, Coarse), "3h12m");
    }

    #[test]
    fn a_runtime_only_token_coming_back_is_stale_whatever_the_runtime_wrote_since() {
        // The runtime dead-lettered the task; a buffer from before still shows the retry wait
        // (or the claim of the last attempt). No person writes those tokens: it is a stale
        // buffer, and the dead letter stands.
        let mut w = World::default();
        let replaced = [
            "ready",
            "running:tb:2026-04-20T15:00:00Z",
            "blocked:retry:2026-04-20T15:01:00Z",
            "running:tb:2026-04-20T15:02:00Z",
        ];
        w.memory
            .insert("A-1".into(), episode("failed:exhausted_retries", &replaced));
        w.memory
            .insert("B-1".into(), episode("failed:exhausted_retries", &replaced));
        // The person's own `ready` after a failure is a decision: fresh attempts.
        w.memory
            .insert("C-1".into(), episode("failed:exhausted_retries", &replaced));
        let p = run(
            &[
                ("A-1", "blocked:retry:2026-04-20T15:01:00Z"),
                ("B-1", "running:tb:2026-04-20T15:02:00Z"),
                ("C-1", "ready"),
            ],
            &w,
        );
        assert_eq!(
            &p.steps[..2],
            &[
                Step::Reassert {
                    id: "A-1".into(),
                    found: st("blocked:retry:2026-04-20T15:01:00Z"),
                    ours: st("failed:exhausted_retries"),
                },
                Step::Reassert {
                    id: "B-1".into(),
                    found: st("running:tb:2026-04-20T15:02:00Z"),
                    ours: st("failed:exhausted_retries"),
                },
            ]
        );
        assert!(
            matches!(
                &p.steps[2..],
                [Step::Forget { .. }, Step::Dispatch { attempt: 1, .. }]
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_task_with_an_ending_on_its_way_is_left_to_the_ending() {
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("done", &["ready", "running:tb:2026-04-20T15:00:00Z"]),
        );
        w.endings_on_the_way.insert("A-1".into());
        w.locks.insert("A-1".into(), LockView::Ours);
        // Whatever the board shows meanwhile (here a stale `ready`), no second run starts.
        let p = run(&[("A-1", "ready")], &w);
        assert_eq!(p.steps, vec![]);
    }

    #[test]
    fn a_task_held_by_another_live_runtime_is_that_runtimes_to_decide() {
        // A `once` beside this `run` claimed the task; a stale buffer shows `ready`. This
        // runtime neither forgets the other's episode nor runs the task.
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
        );
        w.locks.insert("A-1".into(), LockView::Live);
        let p = run(&[("A-1", "ready")], &w);
        assert_eq!(p.steps, vec![]);
    }

    #[test]
    fn a_ready_task_waiting_on_another_runtimes_lock_is_looked_at_again_soon() {
        let soon = Some(t(NOW) + FOREIGN_LOCK_RECHECK);
        // Another runtime's B-1 (its ending written, its lock not yet released) takes one of
        // two places; C-1 runs, D-1 waits, and a pass looks again soon for that lock to go.
        let mut w = World {
            capacity: 2,
            ..World::default()
        };
        w.locks.insert("B-1".into(), LockView::Live);
        let tasks = [
            ("B-1", "done"),
            ("C-1", "ready"),
            ("D-1", "blocked:retry:2026-04-20T15:59:00Z"),
        ];
        let p = run(&tasks, &w);
        assert_eq!(dispatched(&p), vec![("C-1".into(), 1)]);
        assert_eq!(p.wake_at, soon);
        // Its lock gone, the place is free: D-1 runs and nothing waits.
        w.locks.clear();
        let p = run(&tasks, &w);
        assert_eq!(dispatched(&p), vec![("C-1".into(), 1), ("D-1".into(), 1)]);
        assert_eq!(p.wake_at, None);
        // A ready task whose own lock another runtime holds (a claim its write may yet lose).
        w.locks.insert("C-1".into(), LockView::Live);
        let p = run(&[("C-1", "ready")], &w);
        assert_eq!((dispatched(&p), p.wake_at), (vec![], soon));

        // No look again when the lock's release would start nothing: this runtime's own runs
        // fill the limit (their endings bring a pass), it is stopping, or nothing is due.
        let mut w = World {
            capacity: 0,
            ..World::default()
        };
        w.locks.insert("B-1".into(), LockView::Live);
        w.locks.insert("C-1".into(), LockView::Live);
        let p = run(&[("B-1", "done"), ("C-1", "ready"), ("D-1", "ready")], &w);
        assert_eq!((dispatched(&p), p.wake_at), (vec![], None));
        w.capacity = 8;
        let idle = [
            ("B-1", "running:tb:2026-04-20T15:00:00Z"),
            ("C-1", "blocked:task:B-1"),
            ("D-1", "blocked:me:later"),
            ("E-1", "done"),
        ];
        assert_eq!(run(&idle, &w), Plan::default());
        // An idle board without other runtimes' locks gets no wake-up either.
        assert_eq!(run(&idle[1..], &World::default()), Plan::default());
    }

    fn ending(write: &str) -> PendingEnding {
        PendingEnding {
            attempt: 1,
            claim: "running:tb:2026-04-20T15:00:00Z".into(),
            write: write.into(),
            settlement: SettlementKind::Finished,
            note: None,
        }
    }

    #[test]
    fn an_ending_lands_over_its_claim_or_a_stale_copy_and_gives_way_only_to_a_decision() {
        let ep = Episode {
            written: "running:tb:2026-04-20T15:00:00Z".into(),
            replaced: vec!["ready".into()],
        };
        let cases: &[(&str, &str, Landing)] = &[
            // (board text, ending, what happens)
            (
                "## A-1\n- status: running:tb:2026-04-20T15:00:00Z\n",
                "done",
                Landing::Write {
                    over: st("running:tb:2026-04-20T15:00:00Z"),
                },
            ),
            // A stale buffer put `ready` back just before the run ended.
            (
                "## A-1\n- status: ready\n",
                "done",
                Landing::Write { over: st("ready") },
            ),
            // An older claim of ours from a stale buffer.
            (
                "## A-1\n- status: running:tb:2026-04-20T14:00:00Z\n",
                "blocked:retry:2026-04-20T15:01:00Z",
                Landing::Write {
                    over: st("running:tb:2026-04-20T14:00:00Z"),
                },
            ),
            ("## A-1\n- status: done\n", "done", Landing::Landed),
            (
                "## A-1\n- status: blocked:me:later\n",
                "done",
                Landing::Superseded {
                    found: "blocked:me:later".into(),
                },
            ),
            (
                "## A-1\n- status: done\n",
                "blocked:retry:2026-04-20T15:01:00Z",
                Landing::Superseded {
                    found: "done".into(),
                },
            ),
            // Switched to a branch without the task, a pasted copy, a half-typed status.
            (
                "## B-1\n- status: ready\n",
                "done",
                Landing::Wait {
                    reason: "the task is not on the board".into(),
                },
            ),
            (
                "## A-1\n- status: running:tb:2026-04-20T15:00:00Z\n## A-1\n- status: running:tb:2026-04-20T15:00:00Z\n",
                "done",
                Landing::Wait {
                    reason: "more than one task has this ID".into(),
                },
            ),
            (
                "## A-1\n- status: runn\n",
                "done",
                Landing::Wait {
                    reason: "its status `runn` does not parse".into(),
                },
            ),
        ];
        for (text, write, want) in cases {
            let b = Board::parse(text);
            let got = landing(&b, "A-1", &ending(write), Some(&ep), "tb");
            assert_eq!(&got, want, "{text:?} with {write}");
        }
    }

    #[test]
    fn a_stale_claim_after_a_persons_decision_puts_the_decision_back() {
        // The person stopped a run by a decision; a stale buffer then brings back the claim of
        // that run. The claim is over: the person's decision is put back, nothing runs.
        let before = episode(
            "done",
            &[
                "ready",
                "running:tb:2026-04-20T15:00:00Z",
                "blocked:retry:2026-04-20T15:01:00Z",
            ],
        );
        let decision = st("failed:person-gave-up");
        let mem = memory_after_decision(Some(&before), &decision, "tb").unwrap();
        assert_eq!(mem.attempts, 0);
        let mut w = World::default();
        w.memory.insert("A-1".into(), mem);
        let p = run(&[("A-1", "running:tb:2026-04-20T15:00:00Z")], &w);
        assert_eq!(
            p.steps,
            vec![Step::Reassert {
                id: "A-1".into(),
                found: st("running:tb:2026-04-20T15:00:00Z"),
                ours: decision.clone(),
            }]
        );
        // The person's own `ready` later is a decision again.
        let p = run(&[("A-1", "ready")], &w);
        assert!(
            matches!(
                &p.steps[..],
                [Step::Forget { .. }, Step::Dispatch { attempt: 1, .. }]
            ),
            "{p:?}"
        );
        // Nothing to carry: nothing remembered.
        assert_eq!(memory_after_decision(None, &decision, "tb"), None);
    }

    #[test]
    fn after_a_retry_numbering_goes_on_and_the_budget_starts_afresh() {
        let mut w = World::default();
        w.memory.insert(
            "A-1".into(),
            TaskMemory {
                attempts: 3,
                series_start: 3,
                episode: None,
                approval: None,
            },
        );
        let p = run(&[("A-1", "ready")], &w);
        assert_eq!(dispatched(&p), vec![("A-1".into(), 4)]);
        // A claim left by a dead runtime after the first attempt of the new series is its second
        // attempt (5, two of three), not past the budget.
        w.memory.get_mut("A-1").unwrap().attempts = 4;
        w.locks
            .insert("A-1".into(), LockView::Stale("pid 1 is gone".into()));
        let p = run(&[("A-1", "running:tb:2026-04-20T15:00:00Z")], &w);
        let Step::ResetStale { to, attempt, .. } = &p.steps[0] else {
            panic!("{p:?}")
        };
        assert_eq!((to, *attempt), (&Status::Ready, 5));
    }

    fn with_touches(tasks: &[(&str, &str, Option<&str>)], w: &World) -> Plan {
        let mut text = String::from("# Board\n");
        for (id, status, touches) in tasks {
            text.push_str(&format!("## {id}\n- status: {status}\n"));
            if let Some(t) = touches {
                text.push_str(&format!("- touches: {t}\n"));
            }
        }
        plan_board(&Board::parse(&text), w)
    }

    fn held(p: &Plan) -> Vec<(String, String)> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::TouchesHeld { id, by } => Some((id.clone(), by.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tasks_whose_touches_overlap_never_run_together() {
        let w = World::default();
        let p = with_touches(
            &[
                ("A-1", "ready", Some("src/**")),
                ("B-1", "ready", Some("src/parser.rs, docs/*.md")),
                ("C-1", "ready", Some("docs/guide/*.md")),
                ("D-1", "ready", None),
                ("E-1", "ready", Some("README.md")),
            ],
            &w,
        );
        // B overlaps A (src/parser.rs is under src/); C does not overlap A (docs/guide/ is not
        // docs/*.md's folder) and runs; a task without `touches:` waits for no one.
        assert_eq!(
            dispatched(&p),
            vec![
                ("A-1".into(), 1),
                ("C-1".into(), 1),
                ("D-1".into(), 1),
                ("E-1".into(), 1)
            ]
        );
        assert_eq!(held(&p), vec![("B-1".to_string(), "A-1".to_string())]);
        assert_eq!(
            p.wake_at, None,
            "A-1 is dispatched by this pass: its end brings a pass"
        );
    }

    #[test]
    fn a_running_task_holds_an_overlapping_one_until_its_run_is_over() {
        let claim = "running:tb:2026-04-20T15:00Z";
        let tasks = [
            ("A-1", "ready", Some("src/lib.rs")),
            ("B-1", claim, Some("src/*.rs")),
        ];
        // Ours: its ending brings a pass, no wake-up needed.
        let mut w = World::default();
        w.active.insert("B-1".into());
        w.locks.insert("B-1".into(), LockView::Ours);
        w.memory.insert("B-1".into(), episode(claim, &["ready"]));
        let p = with_touches(&tasks, &w);
        assert_eq!(dispatched(&p), vec![]);
        assert_eq!(held(&p), vec![("A-1".to_string(), "B-1".to_string())]);
        assert_eq!(p.wake_at, None);
        // Another live runtime's: look again soon, as for its lock.
        let mut w = World::default();
        w.locks.insert("B-1".into(), LockView::Live);
        let p = with_touches(&tasks, &w);
        assert_eq!(held(&p), vec![("A-1".to_string(), "B-1".to_string())]);
        assert_eq!(p.wake_at, Some(t(NOW) + FOREIGN_LOCK_RECHECK));
        // Its run over (the ending on its way): it touches nothing any more.
        let mut w = World::default();
        w.endings_on_the_way.insert("B-1".into());
        let p = with_touches(&tasks, &w);
        assert_eq!(dispatched(&p), vec![("A-1".into(), 1)]);
        assert_eq!(held(&p), vec![]);
        // Done: nothing holds A-1.
        let p = with_touches(
            &[
                ("A-1", "ready", Some("src/lib.rs")),
                ("B-1", "done", Some("src/*.rs")),
            ],
            &World::default(),
        );
        assert_eq!(dispatched(&p), vec![("A-1".into(), 1)]);
    }

    const WORK_CLAIM: &str = "running:tb:2026-04-20T15:00:00Z";

    /// Attempt `attempt`'s change in `phase`, as the record holds it once `awaiting-approval`
    /// landed over the attempt's claim.
    fn approval_record(attempt: u32, phase: ApprovalPhase) -> TaskMemory {
        let mut m = episode("awaiting-approval", &["ready", WORK_CLAIM]);
        m.attempts = attempt;
        m.approval = Some(Approval {
            attempt,
            run_dir: format!("runs/A-1/{attempt}"),
            phase,
            stale: Vec::new(),
        });
        m
    }
    fn waiting(attempt: u32) -> TaskMemory {
        approval_record(attempt, ApprovalPhase::Waiting)
    }
    fn landed_as(attempt: u32, commit: &str) -> TaskMemory {
        approval_record(
            attempt,
            ApprovalPhase::Landed {
                commit: commit.into(),
            },
        )
    }
    fn world_with(id: &str, memory: TaskMemory) -> World {
        let mut w = World::default();
        w.memory.insert(id.into(), memory);
        w
    }

    #[test]
    fn a_change_waiting_for_approval_is_left_alone() {
        let w = world_with("A-1", waiting(1));
        let p = run(&[("A-1", "awaiting-approval")], &w);
        assert_eq!(p, Plan::default(), "not dispatched, not reset, no wake-up");
        // A dead owner's lock on it is broken, and nothing more.
        let mut w = world_with("A-1", waiting(1));
        w.locks
            .insert("A-1".into(), LockView::Stale("pid 1 is gone".into()));
        let p = run(&[("A-1", "awaiting-approval")], &w);
        assert_eq!(
            p.steps,
            vec![Step::BreakLock {
                id: "A-1".into(),
                reason: "pid 1 is gone".into()
            }]
        );
        // A stale buffer's claim over it is put back to the wait.
        let p = run(&[("A-1", WORK_CLAIM)], &world_with("A-1", waiting(1)));
        assert_eq!(
            p.steps,
            vec![Step::Reassert {
                id: "A-1".into(),
                found: st(WORK_CLAIM),
                ours: Status::AwaitingApproval
            }]
        );
    }

    #[test]
    fn an_approved_change_lands_exactly_once() {
        // Waiting: land it.
        let p = run(&[("A-1", "approved")], &world_with("A-1", waiting(2)));
        assert_eq!(
            p.steps,
            vec![Step::Land {
                id: "A-1".into(),
                from: Status::Approved,
                attempt: 2
            }]
        );
        // Landed, `done` not written (a crash in between), whatever approval status the board
        // shows: write `done`, never land again.
        for shown in ["approved", "awaiting-approval", "rejected:too late"] {
            let p = run(
                &[("A-1", shown)],
                &world_with("A-1", landed_as(2, "abc123")),
            );
            assert_eq!(
                p.steps,
                vec![Step::FinishLanding {
                    id: "A-1".into(),
                    from: st(shown),
                    attempt: 2,
                    commit: "abc123".into()
                }],
                "{shown}"
            );
        }
        // Landed and `done` on the board: nothing to do.
        let mut m = landed_as(2, "abc123");
        if let Some(ep) = &mut m.episode {
            ep.written = "done".into();
        }
        let p = run(&[("A-1", "done")], &world_with("A-1", m));
        assert_eq!(p, Plan::default());
    }

    /// The record once `done` is on the board after the landing and the approval is cleared.
    fn cleared_after_landing() -> TaskMemory {
        let mut rec = crate::core::memory::TaskRecord {
            memory: landed_as(2, "abc123"),
            ..Default::default()
        };
        rec.memory.note_written(
            &Change {
                id: "A-1".into(),
                expected: Status::Approved,
                new: Status::Done,
            },
            None,
        );
        rec.clear_approval();
        rec.memory
    }

    #[test]
    fn a_stale_buffer_never_lands_twice() {
        // After the landing and `done`: a buffer saved from before puts back `done`.
        for stale in ["awaiting-approval", "approved"] {
            let p = run(
                &[("A-1", stale)],
                &world_with("A-1", cleared_after_landing()),
            );
            assert_eq!(
                p.steps,
                vec![Step::Reassert {
                    id: "A-1".into(),
                    found: st(stale),
                    ours: Status::Done
                }],
                "{stale}"
            );
        }
        // A person who decided over the wait (here `done`): a stale wait coming back is put
        // back to their status, and nothing lands.
        let after = memory_after_decision(Some(&waiting(1)), &Status::Done, "tb");
        let w = World {
            memory: [("A-1".to_string(), after.unwrap())].into(),
            ..World::default()
        };
        let p = run(&[("A-1", "awaiting-approval")], &w);
        assert_eq!(
            p.steps,
            vec![Step::Reassert {
                id: "A-1".into(),
                found: Status::AwaitingApproval,
                ours: Status::Done
            }]
        );
    }

    #[test]
    fn a_rejected_change_goes_back_as_a_review_bounce_does() {
        let reject = |m: TaskMemory| {
            let p = run(&[("A-1", "rejected:too broad")], &world_with("A-1", m));
            let [
                Step::Reject {
                    id,
                    from,
                    attempt,
                    note,
                    settlement,
                },
            ] = p.steps.as_slice()
            else {
                panic!("{p:?}")
            };
            assert_eq!(
                (id.as_str(), from, note.as_str()),
                ("A-1", &st("rejected:too broad"), "too broad")
            );
            (*attempt, settlement.write.clone(), settlement.kind.clone())
        };
        assert_eq!(
            reject(waiting(1)),
            (1, Some(Status::Ready), SettlementKind::Bounced)
        );
        // The rejection counts toward `max_attempts`, as a bounce does.
        assert_eq!(
            reject(waiting(3)),
            (
                3,
                Some(st("failed:exhausted_retries")),
                SettlementKind::Exhausted
            )
        );
        // After a `taskboard retry` the series counts from its start.
        let mut m = waiting(4);
        m.series_start = 3;
        assert_eq!(reject(m), (4, Some(Status::Ready), SettlementKind::Bounced));
        // A rejection without a note.
        let p = run(&[("A-1", "rejected")], &world_with("A-1", waiting(1)));
        assert!(
            matches!(&p.steps[..], [Step::Reject { note, .. }] if note.is_empty()),
            "{p:?}"
        );
    }

    #[test]
    fn a_stale_buffer_never_lands_or_rejects_an_earlier_answer_again() {
        // Attempt 1 was approved, its landing refused (the wait written back), then rejected
        // (`ready` written over it); attempt 2's change waits now.
        let mut rec = crate::core::memory::TaskRecord::default();
        rec.memory.attempts = 2;
        rec.memory.episode = Some(Episode {
            written: "awaiting-approval".into(),
            replaced: [
                "ready",
                WORK_CLAIM,
                "approved",
                "awaiting-approval",
                "rejected:too broad",
            ]
            .map(String::from)
            .to_vec(),
        });
        rec.request_approval(2, "runs/A-1/2");
        let w = world_with("A-1", rec.memory.clone());
        // The old answers coming back put the wait back: nothing lands, nothing goes back.
        for stale in ["approved", "rejected:too broad"] {
            let p = run(&[("A-1", stale)], &w);
            assert_eq!(
                p.steps,
                vec![Step::Reassert {
                    id: "A-1".into(),
                    found: st(stale),
                    ours: Status::AwaitingApproval
                }],
                "{stale}"
            );
        }
        // A new rejection of attempt 2 is carried out.
        let p = run(&[("A-1", "rejected:still too broad")], &w);
        assert!(
            matches!(&p.steps[..], [Step::Reject { attempt: 2, .. }]),
            "{p:?}"
        );
    }

    #[test]
    fn a_change_whose_landing_was_refused_lands_when_approved_again() {
        let mut rec = crate::core::memory::TaskRecord::default();
        rec.memory.attempts = 1;
        rec.memory.episode = Some(Episode {
            written: "awaiting-approval".into(),
            replaced: vec!["ready".into(), WORK_CLAIM.into()],
        });
        rec.request_approval(1, "runs/A-1/1");
        // The landing refused: the wait written back over the person's `approved`.
        rec.memory.note_written(
            &Change {
                id: "A-1".into(),
                expected: Status::Approved,
                new: Status::AwaitingApproval,
            },
            None,
        );
        let p = run(&[("A-1", "approved")], &world_with("A-1", rec.memory));
        assert_eq!(
            p.steps,
            vec![Step::Land {
                id: "A-1".into(),
                from: Status::Approved,
                attempt: 1
            }]
        );
    }

    #[test]
    fn approval_words_without_a_change_do_nothing_and_are_reported() {
        for status in ["approved", "rejected:no"] {
            let p = run(&[("A-1", status)], &World::default());
            assert_eq!(
                p.steps,
                vec![Step::NoChangeToApprove {
                    id: "A-1".into(),
                    status: st(status)
                }],
                "{status}"
            );
            // Over a status of the runtime's with no change on record: the person's word is
            // their decision (the episode is forgotten), and nothing lands or goes back.
            let p = run(&[("A-1", status)], &world_with("A-1", episode("done", &[])));
            assert_eq!(
                p.steps,
                vec![
                    Step::Forget {
                        id: "A-1".into(),
                        status: st(status)
                    },
                    Step::NoChangeToApprove {
                        id: "A-1".into(),
                        status: st(status)
                    }
                ],
                "{status}"
            );
        }
        // A wait with nothing on record waits on a person, untouched.
        let p = run(&[("A-1", "awaiting-approval")], &World::default());
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_persons_other_status_over_a_wait_is_their_decision_and_lands_nothing() {
        for (status, runs) in [
            ("done", false),
            ("ready", true),
            ("failed:not wanted", false),
            ("blocked:siyao:look at it", false),
        ] {
            let p = run(&[("A-1", status)], &world_with("A-1", waiting(2)));
            assert_eq!(
                p.steps[0],
                Step::Forget {
                    id: "A-1".into(),
                    status: st(status)
                },
                "{status}"
            );
            assert!(
                !p.steps.iter().any(|s| matches!(
                    s,
                    Step::Land { .. } | Step::FinishLanding { .. } | Step::Reject { .. }
                )),
                "{status}: {p:?}"
            );
            // `ready` starts afresh, as a decision does.
            let expected: Vec<(String, u32)> = if runs {
                vec![("A-1".into(), 1)]
            } else {
                vec![]
            };
            assert_eq!(dispatched(&p), expected, "{status}");
        }
    }

    #[test]
    fn a_waiting_change_runs_nothing_and_holds_no_one_back() {
        // Its lock (another live runtime's, say, keeping its worktree) fills no `max_parallel`
        // slot and holds no overlapping `touches:`.
        for status in ["awaiting-approval", "approved", "rejected:no"] {
            let mut w = world_with("A-1", waiting(1));
            w.locks.insert("A-1".into(), LockView::Live);
            w.capacity = 1;
            let p = with_touches(
                &[
                    ("A-1", status, Some("src/**")),
                    ("B-1", "ready", Some("src/lib.rs")),
                ],
                &w,
            );
            assert_eq!(dispatched(&p), vec![("B-1".into(), 1)], "{status}");
            assert_eq!(held(&p), vec![], "{status}");
            // That runtime's to carry out: nothing is landed or sent back here.
            assert_eq!(p.steps.len(), 1, "{status}: {p:?}");
        }
        // Held by this runtime's memory alone (no lock): the same.
        let mut w = world_with("A-1", waiting(1));
        w.capacity = 1;
        let p = with_touches(
            &[
                ("A-1", "awaiting-approval", Some("src/**")),
                ("B-1", "ready", Some("src/lib.rs")),
            ],
            &w,
        );
        assert_eq!(dispatched(&p), vec![("B-1".into(), 1)]);
    }

    #[test]
    fn a_settled_task_is_passed_over_only_when_nothing_is_known_of_it() {
        // The planner passes over a settled task without reading its ID when neither a lock,
        // a run, an ending on its way nor the memory may name it. Each world knows something
        // of one settled task that a rule acts on; the plan on the runtime's memory (asked
        // through the parse's hashes of the IDs) must be the plan on the same memory asked by
        // ID, and must act.
        let settled = [
            "done",
            "failed:gave-up",
            "blocked:you:need-url",
            "awaiting-approval",
        ];
        for status in settled {
            let mut worlds: Vec<(&str, World)> = Vec::new();
            // A person's status over one the runtime wrote: forget the episode.
            worlds.push((
                "memory",
                world_with(
                    "B-2",
                    episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
                ),
            ));
            // The same status coming back over the runtime's `ready`: a stale buffer.
            worlds.push((
                "stale buffer",
                world_with("B-2", episode("ready", &[status])),
            ));
            let mut w = World::default();
            w.locks
                .insert("B-2".into(), LockView::Stale("owner gone".into()));
            worlds.push(("stale lock", w));
            let mut w = World::default();
            w.locks.insert("B-2".into(), LockView::Ours);
            w.active.insert("B-2".into());
            w.memory.insert(
                "B-2".into(),
                episode("running:tb:2026-04-20T15:00:00Z", &["ready"]),
            );
            worlds.push(("our run", w));
            if status == "awaiting-approval" {
                worlds.push(("landed", world_with("B-2", landed_as(1, "abc123"))));
            }
            for (what, w) in worlds {
                let b = board(&[("A-1", "done"), ("B-2", status), ("C-3", "done")]);
                let by_id = plan_board(&b, &w);
                let records = records_of(&w.memory);
                let projected = Projected::new(&records, []);
                let p = policy();
                let by_hash = plan(&Inputs {
                    board: &b,
                    policy: &p,
                    now: t(NOW),
                    locks: &w.locks,
                    active: &w.active,
                    memory: &projected,
                    endings_on_the_way: &w.endings_on_the_way,
                    capacity: w.capacity,
                    spent_today: &w.spent,
                    route_room: &w.route_room,
                });
                assert_eq!(by_hash, by_id, "{status}, {what}");
                assert!(
                    by_hash
                        .steps
                        .iter()
                        .all(|s| format!("{s:?}").contains("B-2")),
                    "{status}, {what}: {by_hash:?}"
                );
                assert!(!by_hash.steps.is_empty(), "{status}, {what}: nothing done");
            }
        }
    }
}
