//! Recovery from runtimes that are gone: stale locks, the processes they left, and their
//! endings.
//!
//! Owns the lock folders as the planner sees them, breaking a dead owner's lock (after stopping
//! what its run left on this boot), adopting an ending a stopped runtime left in the state
//! file, and keeping this runtime's own unwritten endings for the next start. Must not write
//! the board nor decide an ending's status.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Runtime;
use crate::core::event::EventKind;
use crate::core::memory::PendingEnding;
use crate::core::plan::LockView;
use crate::shell::lock::{self, LockState, Owner};
use crate::shell::process;

/// A lock folder without an owner record younger than this may still be mid-claim.
pub(super) const UNREADABLE_LOCK_GRACE: Duration = Duration::from_secs(30);

impl Runtime {
    /// Takes over an ending a stopped runtime left (its lock's owner is gone, or the lock folder
    /// was removed): stops whatever that owner left running, then holds the lock as ours.
    pub(super) fn adopt_ending(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        if self.locks.read(id).is_some() && !self.break_lock(id) {
            return false;
        }
        let owner = Owner::current(&self.instance, now);
        match self.locks.try_acquire(id, &owner) {
            Ok(Some(_)) => {
                self.note_ending_lock(id);
                if let Some(ending) = self.store.tasks().get(id).and_then(|r| r.ending.clone()) {
                    self.emit(
                        Some(id),
                        EventKind::EndingKept {
                            attempt: ending.attempt,
                            wanted: ending.write,
                            reason: "left by a runtime that stopped; writing it now".into(),
                        },
                    );
                }
                true
            }
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

    /// On the way out: endings that could not be written stay in the state file with their
    /// locks, and the next start writes them first.
    pub(super) fn keep_endings_for_next_start(&mut self) {
        let kept: Vec<(String, PendingEnding)> = self
            .store
            .tasks()
            .iter()
            .filter_map(|(id, r)| Some((id.clone(), r.ending.clone()?)))
            .filter(|(id, _)| {
                self.locks.read(id).is_some_and(
                    |l| matches!(&l, LockState::Held(o) if o.instance == self.instance),
                )
            })
            .collect();
        for (id, ending) in kept {
            self.emit(
                Some(&id),
                EventKind::EndingKept {
                    attempt: ending.attempt,
                    wanted: ending.write,
                    reason: "the runtime is stopping; the next start writes it".into(),
                },
            );
        }
    }

    /// The lock folders (`listed`) as the planner sees them, and when an owner-less one (a
    /// claim cut short by a crash, or still being made) is old enough to be broken: a pass is
    /// due then.
    pub(super) fn lock_view(
        &self,
        listed: Vec<(String, LockState)>,
        now: DateTime<Utc>,
    ) -> (BTreeMap<String, LockView>, Option<DateTime<Utc>>) {
        let mut view = BTreeMap::new();
        let mut wake: Option<DateTime<Utc>> = None;
        for (id, state) in listed {
            if let LockState::Unreadable { age } = &state
                && *age <= UNREADABLE_LOCK_GRACE
            {
                let left = UNREADABLE_LOCK_GRACE - *age + Duration::from_millis(10);
                let at = now + chrono::TimeDelta::from_std(left).unwrap_or_default();
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            let v = match &state {
                // Ours: a live run, or an ending on its way to the board (released after).
                LockState::Held(owner) if owner.instance == self.instance => LockView::Ours,
                _ => match lock::is_stale(&state, UNREADABLE_LOCK_GRACE) {
                    Some(reason) => LockView::Stale(reason),
                    None => LockView::Live,
                },
            };
            view.insert(id, v);
        }
        (view, wake)
    }

    /// Breaks a dead owner's lock, first stopping every process of the run it left behind on
    /// this boot: its executor's process group and whatever carries its run id.
    pub(super) fn break_lock(&mut self, id: &str) -> bool {
        let Some(seen) = self.locks.read(id) else {
            return true;
        };
        let Some(reason) = lock::is_stale(&seen, UNREADABLE_LOCK_GRACE) else {
            return false;
        };
        if let LockState::Held(owner) = &seen
            && owner.boot_id == Owner::current(&self.instance, self.now()).boot_id
        {
            let pgid = owner.executor_pgid.filter(|g| *g > 1);
            let target = process::Target {
                run_id: owner.run_id.as_deref(),
                pgid: pgid.and_then(|g| u32::try_from(g).ok()),
                // Unknown here: every process's environment is asked (a rare, one-off search).
                since: None,
            };
            let left: Vec<String> = process::find(target)
                .iter()
                .map(|p| p.pid.to_string())
                .collect();
            if !left.is_empty() || target.pgid.is_some_and(process::group_alive) {
                let what = match (pgid, left.is_empty()) {
                    (Some(g), true) => format!("executor process group {g}"),
                    (Some(g), false) => {
                        format!("executor process group {g} (pid {})", left.join(", "))
                    }
                    (None, _) => format!("executor processes (pid {})", left.join(", ")),
                };
                self.error(
                    Some(id),
                    "recovery",
                    format!("{what} outlived its runtime; stopping it before recovery"),
                );
                process::stop_orphaned_run(target, self.config.runtime.grace);
            }
        }
        if matches!(seen, LockState::Held(_)) {
            self.save_left_work(id);
        }
        match self.locks.break_stale(id, &seen) {
            Ok(true) => {
                let (owner_pid, owner_instance) = match &seen {
                    LockState::Held(o) => (Some(o.pid), Some(o.instance.clone())),
                    LockState::Unreadable { .. } => (None, None),
                };
                self.emit(
                    Some(id),
                    EventKind::LockBroken {
                        owner_pid,
                        owner_instance,
                        reason,
                    },
                );
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.error(Some(id), "lock", format!("cannot break stale lock: {e}"));
                false
            }
        }
    }
}
