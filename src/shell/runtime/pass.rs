//! One pass of the runtime: read the board, plan over it, carry out the plan's steps.
//!
//! Owns what a pass reads (the board as the editor left it, the lock folders through
//! `recovery`, retry requests left by `taskboard retry`), which lint findings are news, and
//! turning the planner's steps into status changes for `commit`. It decides nothing the planner
//! decides; it never writes the board itself (that is `commit`'s compare-and-swap) and never
//! starts a run (that is `launch`, after the claim landed).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::commit::{After, Pending};
use super::{Mode, Runtime};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::lint;
use crate::core::plan::{self, Episode, LockView, Step};
use crate::core::status::Status;
use crate::core::writeback::{self, Change};
use crate::shell::exec;
use crate::shell::fsio;
use crate::shell::lock::Owner;

impl Runtime {
    /// Reads the board as it is now. `None` when it cannot be read (reported), or while its path
    /// leads elsewhere than the folder this runtime holds (`home` follows it first).
    pub(super) fn read(&mut self, settle_editor: bool) -> Option<fsio::Snapshot> {
        if !self.home_is_here() {
            return None;
        }
        let result = if settle_editor {
            let quiet = (self.config.runtime.debounce / 4)
                .clamp(Duration::from_millis(5), Duration::from_millis(100));
            fsio::read_stable(&self.board, quiet, 10)
        } else {
            fsio::read_board(&self.board)
        };
        match result {
            Ok(snap) if snap.text.trim().is_empty() => {
                // An editor that truncates and then writes (VS Code) shows an empty file for a
                // moment; a plan made on it would see no tasks at all. Wait for the next save.
                tracing::debug!("the board is empty; waiting for the save to finish");
                None
            }
            Ok(snap) => {
                if self.board_missing_reported {
                    tracing::info!("the board is back: {}", self.board.display());
                }
                self.board_missing_reported = false;
                Some(snap)
            }
            Err(e) if e.is_transient() => {
                if !self.board_missing_reported {
                    self.board_missing_reported = true;
                    self.error(None, "board", format!("{e}; waiting for it to appear"));
                }
                None
            }
            Err(e) => {
                self.error(None, "board", e.to_string());
                None
            }
        }
    }

    /// One pass: read, lint, plan, lock, write back, spawn.
    /// `touched`: the watcher saw the board change; `forced`: a timer, a rescan or the runtime
    /// itself asks for a pass whatever the board's content.
    pub(super) fn pass(&mut self, touched: bool, forced: bool) {
        let started = Instant::now();
        self.retry_at = None;
        let Some(snap) = self.read(touched) else {
            // The board cannot be read: endings wait in their records for the next readable save.
            self.requeue(Vec::new());
            // No time-based rule applies to a board that is not there: a retry falling due
            // meanwhile must not wake the loop into failing to read it back to back. The save
            // that brings it back plans again, even with the very bytes last read.
            self.wake_at = None;
            self.last_hash = None;
            return;
        };
        if self.held_by_conflict(&snap) {
            return;
        }
        let endings_wait = self.store.with_endings().next().is_some();
        if touched && !forced && !endings_wait && Some(snap.hash) == self.last_hash {
            // Our own write, or a save that changed nothing. A forced pass never stops here: the
            // watcher's echo of the write that made a task ready must not swallow the pass
            // that runs it.
            return;
        }
        if touched && Some(snap.hash) != self.last_hash {
            // Save to detection as a person experiences it: the debounce included.
            let latency_ms = snap
                .mtime
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            self.emit(
                None,
                EventKind::FileChanged {
                    latency_ms: latency_ms.map(|d| d.as_millis() as u64),
                    bytes: snap.len,
                },
            );
        }
        self.last_hash = Some(snap.hash);
        let now = self.now();
        // What other taskboard processes serving this board learnt since the last pass.
        self.store.refresh();
        self.consume_requests();
        let on_disk = Board::parse(&snap.text);
        let (mut locks, lock_wake) = self.lock_view(now);
        let (mut pending, settling, reviews) =
            self.gather_endings(&on_disk, &snap.text, &mut locks, now);
        // Plan over the board as it will be once the endings in hand are written, so that a
        // finished task's dependents are promoted in the same write.
        let (text, board) = if pending.is_empty() {
            (snap.text, on_disk)
        } else {
            let changes: Vec<Change> = pending.iter().map(|p| p.change.clone()).collect();
            let text = writeback::apply(&snap.text, &on_disk, &changes).text;
            let board = Board::parse(&text);
            (text, board)
        };
        self.report_findings(&text, &board, now);
        self.store.note_presence(|id| board.task(id).is_some(), now);

        let locks = self.defer_to_serving_run(locks, &board);
        // Runs of other taskboard processes on this board count against the same limit.
        let others_running = locks.values().filter(|v| **v == LockView::Live).count();
        let capacity = if self.stopping || (self.mode == Mode::Once && self.passes > 0) {
            0
        } else {
            self.config
                .runtime
                .max_parallel
                .saturating_sub(self.active.len() + others_running)
        };
        let active: BTreeSet<String> = self.active.keys().cloned().collect();
        // The memory as it will be once the pending changes land, matching the planned text.
        let mut memory = self.store.memory();
        for p in &pending {
            let m = memory.entry(p.change.id.clone()).or_default();
            Episode::record(&mut m.episode, &p.change.expected, &p.change.new);
        }
        let policy = self.policy();
        let spent_today = self.store.spend_on(now.date_naive());
        let planned = plan::plan(&plan::Inputs {
            board: &board,
            policy: &policy,
            now,
            locks: &locks,
            active: &active,
            memory: &memory,
            settling: &settling,
            capacity,
            spent_today: &spent_today,
        });
        self.wake_at = match (planned.wake_at, lock_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        for step in planned.steps {
            match step {
                Step::Promote { id, from, deps } => pending.push(Pending {
                    change: Change {
                        id,
                        expected: from,
                        new: Status::Ready,
                    },
                    after: After::Promoted { deps },
                }),
                Step::ResetStale {
                    id,
                    from,
                    to,
                    reason,
                    attempt,
                    break_lock,
                } => {
                    if break_lock && !self.break_lock(&id) {
                        continue;
                    }
                    pending.push(Pending {
                        change: Change {
                            id,
                            expected: from,
                            new: to,
                        },
                        after: After::Reset { reason, attempt },
                    });
                }
                Step::BreakLock { id, .. } => {
                    self.break_lock(&id);
                }
                Step::Dispatch {
                    id,
                    from,
                    to,
                    route,
                    attempt,
                } => {
                    let owner = Owner::current(&self.instance, now);
                    match self.locks.try_acquire(&id, &owner) {
                        Ok(Some(_)) => pending.push(Pending {
                            change: Change {
                                id,
                                expected: from,
                                new: to,
                            },
                            after: After::Claimed { route, attempt },
                        }),
                        Ok(None) => {} // another runtime claimed it first
                        Err(e) => self.error(
                            Some(&id),
                            "lock",
                            format!("cannot create the task's lock: {e}"),
                        ),
                    }
                }
                Step::Reassert { id, found, ours } => pending.push(Pending {
                    change: Change {
                        id,
                        expected: found,
                        new: ours,
                    },
                    after: After::Reasserted,
                }),
                Step::Forget { id, status } => {
                    let agent = &self.config.runtime.agent;
                    let kept = plan::memory_after_decision(memory.get(&id), &status, agent);
                    self.store.forget(&id);
                    if let Some(kept) = kept {
                        self.store.record_mut(&id).memory = kept;
                    }
                }
                Step::BudgetHeld {
                    route,
                    spent,
                    budget,
                    waiting,
                } => {
                    if self
                        .budget_announced
                        .insert((now.date_naive(), route.clone()))
                    {
                        self.emit(
                            None,
                            EventKind::BudgetExhausted {
                                route,
                                spent_usd: spent,
                                budget_usd: budget,
                                waiting,
                            },
                        );
                    }
                }
                Step::Cancel { id, status } => {
                    if let Some(handle) = self.active.get(&id).and_then(|a| a.handle.as_ref()) {
                        handle.stop(exec::StopReason::Cancelled);
                        self.emit(
                            Some(&id),
                            EventKind::TaskCancelled {
                                status: status.to_string(),
                            },
                        );
                    }
                }
            }
        }
        let dispatched = reviews + self.write(pending, snap.hash);
        self.save_state();
        self.passes += 1;
        self.emit(
            None,
            EventKind::Pass {
                tasks: board.tasks.len(),
                duration_us: started.elapsed().as_micros() as u64,
                dispatched,
            },
        );
    }

    /// Lint findings become events when they first appear (not again on every pass).
    pub(super) fn report_findings(&mut self, text: &str, board: &Board, now: DateTime<Utc>) {
        let routes: BTreeSet<String> = self.config.executors.keys().cloned().collect();
        let findings = lint::lint(
            text,
            board,
            &lint::LintContext {
                now,
                stale_after: self.config.runtime.stale_after,
                routes: Some(&routes),
                longest_backoff: Some(plan::longest_backoff_for(
                    self.config.runtime.retry_backoff,
                    self.config.runtime.max_attempts,
                )),
            },
        );
        let mut seen = BTreeSet::new();
        // `dependency-done` describes what this very pass does; `dependency_promoted` says it.
        for f in findings.into_iter().filter(|f| f.code != "dependency-done") {
            let key = (f.code.to_string(), f.task.clone(), f.message.clone());
            if !self.last_findings.contains(&key) {
                self.emit(
                    f.task.as_deref(),
                    EventKind::Lint {
                        code: f.code.to_string(),
                        severity: match f.severity {
                            lint::Severity::Error => "error".into(),
                            lint::Severity::Warning => "warning".into(),
                        },
                        line: f.line,
                        column: f.column,
                        message: f.message.clone(),
                    },
                );
            }
            seen.insert(key);
        }
        self.last_findings = seen;
    }

    /// `taskboard retry` leaves a request file: the person's `ready` is a fresh start.
    pub(super) fn consume_requests(&mut self) {
        let dir = self.state_dir.join("requests");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".retry") {
                self.start_series(id);
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }

    /// A `taskboard retry`: a fresh budget of attempts whose numbers go on from the last one,
    /// with the earlier attempts kept for the packet and `show`. Its `ready` is the person's
    /// decision, guarded like one against a stale buffer's old claim or retry wait.
    pub(super) fn start_series(&mut self, id: &str) {
        let Some(rec) = self.store.tasks.get(id) else {
            return;
        };
        let agent = &self.config.runtime.agent;
        let guard = plan::memory_after_decision(Some(&rec.memory), &Status::Ready, agent);
        let rec = self.store.record_mut(id);
        rec.memory.series_start = rec.memory.attempts;
        rec.memory.episode = guard.and_then(|m| m.episode);
        rec.review_feedback = None;
        rec.ending = None;
    }
}
