//! The imperative shell: the loop behind `taskboard run` and `taskboard once`.
//!
//! Owns the order of effects: read the board, ask `plan` what to do, take locks, write the board
//! back (compare-and-swap, atomically), spawn executors through `exec`, settle their endings
//! (kept in the task's record until they land, adopted from a runtime that stopped), and append
//! every decision to `events.jsonl`. It makes no decision of its own that the planner could make;
//! it never edits a byte of the board except through `writeback`.
//!
//! One thread owns all state and receives [`Msg`]s (watcher signals, executor endings, process
//! signals) on one channel; executors are supervised by `exec`'s threads. Idle means blocked
//! in `recv_timeout` until the next event or the next time-based rule falls due.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::core::board::Board;
use crate::core::config::Config;
use crate::core::event::{Event, EventKind};
use crate::core::handoff;
use crate::core::lint;
use crate::core::memory::AttemptRecord;
use crate::core::packet;
use crate::core::plan::{
    self, Ending, Episode, Landing, LockView, PendingEnding, Phase, Policy, ResultFile,
    SettlementKind, Step,
};
use crate::core::status::Status;
use crate::core::writeback::{self, Change, Refusal};
use crate::exit::Exit;
use crate::shell::config_file;
use crate::shell::event_log::EventLog;
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::fsio;
use crate::shell::lock::{self, LockState, Locks, Owner};
use crate::shell::packet_sources;
use crate::shell::procs;
use crate::shell::store::Store;
use crate::shell::watch::WatchSignal;

mod conflicts;
mod home;

/// A lock folder without an owner record younger than this may still be mid-claim.
const UNREADABLE_LOCK_GRACE: Duration = Duration::from_secs(30);

/// A write that failed (unreadable board, full disk) is tried again after this, doubling on
/// each failure in a row up to [`RETRY_WRITE_MAX`]; a save of the board tries at once.
const RETRY_WRITE_MIN: Duration = Duration::from_millis(100);
const RETRY_WRITE_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Watch and serve until stopped.
    Run,
    /// One pass, wait for the runs it started, exit.
    Once,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Once => "once",
        }
    }
}

/// A fatal error: the exit code and a line for stderr.
#[derive(Debug)]
pub struct Fatal {
    pub exit: Exit,
    pub message: String,
}

fn fatal(exit: Exit, message: impl Into<String>) -> Fatal {
    Fatal {
        exit,
        message: message.into(),
    }
}

pub enum Msg {
    Watch(WatchSignal),
    Finished {
        id: String,
        attempt: u32,
        finished: exec::Finished,
    },
    Signal(i32),
}

struct Active {
    attempt: u32,
    route: String,
    phase: Phase,
    /// None until the executor has started.
    handle: Option<exec::RunHandle>,
    started: DateTime<Utc>,
    running: Status,
    run_dir: PathBuf,
    result_path: PathBuf,
    /// The git work tree before the run, when the board is in one (work runs only).
    evidence_before: Option<evidence::Snapshot>,
}

/// A status change on its way to the board, and what to do once it landed (or was refused).
struct Pending {
    change: Change,
    after: After,
}

enum After {
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

/// An executor run to start: the task's own work, or its review.
struct Launch {
    id: String,
    route: String,
    attempt: u32,
    /// The `running:` status on the board while it runs.
    running: Status,
    phase: Phase,
}

/// What the runtime saw of a run that ended.
#[derive(Default)]
struct RunFacts {
    exit_code: Option<i32>,
    signal: Option<i32>,
    duration: Duration,
    stderr_tail: String,
    /// The result file, when it parsed (cost and handoff count whatever the exit).
    reported: Option<ResultFile>,
}

pub struct Runtime {
    mode: Mode,
    board: PathBuf,
    board_dir: PathBuf,
    state_dir: PathBuf,
    explicit_config: Option<PathBuf>,
    config: Config,
    config_path: Option<PathBuf>,
    log: EventLog,
    locks: Locks,
    instance: String,
    store: Store,
    active: BTreeMap<String, Active>,
    /// Hash of the board as this runtime last read or wrote it.
    last_hash: Option<u64>,
    /// The board changed between a plan's read and its write: pass again.
    dirty: bool,
    last_findings: BTreeSet<(String, Option<String>, String)>,
    wake_at: Option<DateTime<Utc>>,
    board_missing_reported: bool,
    /// The reason last reported for each ending that waits (reported again when it changes).
    kept_reported: BTreeMap<String, String>,
    /// A failure to save the state was reported and no save succeeded since.
    state_error_reported: bool,
    /// When to try a failed write again, and the wait before that try.
    retry_at: Option<Instant>,
    retry_wait: Duration,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    stopping: bool,
    passes: u64,
    /// The git work tree the board is in, if any (looked up at start, on SIGHUP and on each
    /// rescan, not per run: a lookup is a process).
    git_root: Option<PathBuf>,
    /// (UTC day, route) pairs whose spent budget has been announced.
    budget_announced: BTreeSet<(chrono::NaiveDate, String)>,
    /// The board's folder held open, the run lock, the watch (see `home`).
    home: home::Home,
}

impl Runtime {
    pub fn new(mode: Mode, board: &Path, explicit_config: Option<&Path>) -> Result<Runtime, Fatal> {
        // One board, one identity: a link's target, whatever name the board was reached by.
        let board = fsio::resolve_board(board).map_err(|e| fatal(Exit::Board, e.to_string()))?;
        let board = absolute(&board);
        let board_dir = board
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        if !board_dir.is_dir() {
            return Err(fatal(
                Exit::Board,
                format!(
                    "{}: the folder {} does not exist",
                    board.display(),
                    board_dir.display()
                ),
            ));
        }
        if board.is_dir() {
            return Err(fatal(
                Exit::Board,
                format!("{}: is a folder, not a board file", board.display()),
            ));
        }
        // A FIFO, socket or device never becomes a board (a missing file may): refuse it now.
        if let Ok(meta) = std::fs::metadata(&board)
            && let Err(e) = fsio::ensure_regular(&meta)
        {
            return Err(fatal(Exit::Board, format!("{}: {e}", board.display())));
        }
        if mode == Mode::Once {
            // `once` is run by cron and timers: an unreadable board is an error to report now.
            fsio::read_board(&board).map_err(|e| fatal(Exit::Board, e.to_string()))?;
        }
        let loaded = config_file::load(explicit_config, &board_dir)
            .map_err(|e| fatal(Exit::Config, e.to_string()))?;
        let state_dir = fsio::state_dir(&board);
        std::fs::create_dir_all(state_dir.join("runs"))
            .and_then(|_| std::fs::create_dir_all(state_dir.join("locks")))
            .map_err(|e| {
                fatal(
                    Exit::State,
                    format!("cannot create {}: {e}", state_dir.display()),
                )
            })?;
        let log = EventLog::with_rotation(
            board_dir.join("events.jsonl"),
            loaded.config.runtime.events_max_size,
        )
        .map_err(|e| {
            fatal(
                Exit::State,
                format!(
                    "cannot open {}: {e}",
                    board_dir.join("events.jsonl").display()
                ),
            )
        })?;
        let (store, warning) = Store::load(&state_dir.join("state.json"));
        let (tx, rx) = mpsc::channel();
        let git_root = evidence::root(&board_dir);
        let rt = Runtime {
            mode,
            locks: Locks::new(state_dir.join("locks")),
            board,
            board_dir,
            state_dir,
            explicit_config: explicit_config.map(Path::to_path_buf),
            config: loaded.config,
            config_path: loaded.path,
            log,
            instance: lock::instance_id(),
            store,
            active: BTreeMap::new(),
            last_hash: None,
            dirty: false,
            last_findings: BTreeSet::new(),
            wake_at: None,
            board_missing_reported: false,
            kept_reported: BTreeMap::new(),
            state_error_reported: false,
            retry_at: None,
            retry_wait: Duration::ZERO,
            tx,
            rx,
            stopping: false,
            passes: 0,
            budget_announced: BTreeSet::new(),
            home: home::Home::default(),
            git_root,
        };
        if let Some(w) = warning {
            rt.error(None, "state", w);
        }
        Ok(rt)
    }

    /// A sender for messages into the loop (signals, tests).
    pub fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    pub fn board(&self) -> &Path {
        &self.board
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn emit(&self, task: Option<&str>, kind: EventKind) {
        let ev = Event::new(Utc::now(), task, kind);
        // The log line reads as `tail` shows the event; a pass, one per pass, is noise there.
        if !matches!(ev.kind, EventKind::Pass { .. }) {
            crate::shell::logging::event(&ev.to_line());
        }
        if let Err(e) = self.log.append(&ev) {
            tracing::error!("cannot append to events.jsonl: {e}");
        }
    }

    /// An `error` event (and a log line): something went wrong that the runtime works around.
    fn error(&self, task: Option<&str>, context: &str, message: impl std::fmt::Display) {
        let message = message.to_string();
        self.emit(
            task,
            EventKind::Error {
                message,
                context: Some(context.to_string()),
            },
        );
    }

    fn policy(&self) -> Policy {
        let rc = &self.config.runtime;
        Policy {
            agent: rc.agent.clone(),
            max_attempts: rc.max_attempts,
            retry_backoff: rc.retry_backoff,
            stale_after: rc.stale_after,
            routes: self.config.executors.keys().cloned().collect(),
            daily_budget: self
                .config
                .executors
                .iter()
                .filter_map(|(r, e)| e.daily_budget_usd.map(|b| (r.clone(), b)))
                .collect(),
        }
    }

    /// Serves until a stop signal (run) or until the pass's runs have ended (once).
    pub fn serve(mut self) -> Result<(), Fatal> {
        self.start_home()?;
        self.emit(
            None,
            EventKind::RuntimeStarted {
                pid: std::process::id(),
                instance: self.instance.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                board: self.board.display().to_string(),
                mode: self.mode.as_str().into(),
            },
        );
        tracing::info!(
            "taskboard {} started: board {}, config {}",
            self.mode.as_str(),
            self.board.display(),
            self.config_path.as_ref().map_or_else(
                || "none (defaults)".to_string(),
                |p| p.display().to_string()
            )
        );
        // Orphans of our executors' descendants are handed to us, not to init, to be found.
        if !procs::become_subreaper() && cfg!(target_os = "linux") {
            tracing::warn!("cannot become a child subreaper; escaped processes go to init");
        }
        if let Err(e) = self.locks.sweep_debris() {
            tracing::warn!("cannot clear leftover lock folders: {e}");
        }
        self.pass(false, true);
        let mut next_rescan = Instant::now() + self.config.runtime.rescan_every;
        let mut stop_reason = String::from("finished");
        loop {
            if self.stopping && self.active.is_empty() {
                break;
            }
            if self.mode == Mode::Once && self.active.is_empty() {
                break;
            }
            let mut deadline = next_rescan;
            if let Some(at) = self.wake_at {
                let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
                deadline = deadline.min(Instant::now() + wait);
            }
            if let Some(at) = self.retry_at {
                deadline = deadline.min(at);
            }
            deadline = self.home_deadline(deadline);
            if self.dirty {
                deadline = Instant::now();
            }
            let first = match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Coalesce: everything already queued is handled in one pass and one write.
            let mut msgs: Vec<Msg> = first.into_iter().collect();
            while let Ok(m) = self.rx.try_recv() {
                msgs.push(m);
            }
            let mut touched = false;
            let mut timer = msgs.is_empty() || self.dirty;
            let mut ended = false;
            self.check_home(&msgs);
            for msg in msgs {
                match msg {
                    Msg::Watch(WatchSignal::BoardTouched { .. }) => {
                        touched = true;
                    }
                    Msg::Watch(WatchSignal::Rescan) => timer = true,
                    Msg::Watch(WatchSignal::Error(e)) => self.error(None, "watch", e),
                    Msg::Watch(WatchSignal::StateRemoved) => {} // put back by check_home
                    Msg::Finished {
                        id,
                        attempt,
                        finished,
                    } => ended |= self.settle(&id, attempt, finished),
                    Msg::Signal(sig) => match sig {
                        signal_hook::consts::SIGHUP => self.reload(),
                        _ => {
                            if !self.stopping {
                                stop_reason = format!("signal {}", signal_name(sig));
                                self.begin_stop();
                            }
                        }
                    },
                }
            }
            if Instant::now() >= next_rescan {
                next_rescan = Instant::now() + self.config.runtime.rescan_every;
                self.git_root = evidence::root(&self.board_dir);
                timer = true;
            }
            // Decided after the messages: a reload among them asks for a pass too, and that ask
            // must not be lost to the watcher's echo of our own last write in the same batch.
            let forced = timer || self.dirty || ended;
            if touched || forced {
                self.dirty = false;
                self.pass(touched, forced);
            }
        }
        self.keep_endings_for_next_start();
        self.save_state();
        self.emit(
            None,
            EventKind::RuntimeStopped {
                reason: stop_reason,
                mode: Some(self.mode.as_str().into()),
            },
        );
        Ok(())
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
        tracing::info!("stopping: interrupting {} run(s)", self.active.len());
        for handle in self.active.values().filter_map(|a| a.handle.as_ref()) {
            handle.stop(exec::StopReason::Shutdown);
        }
    }

    fn reload(&mut self) {
        match config_file::load(self.explicit_config.as_deref(), &self.board_dir) {
            Ok(loaded) => {
                self.git_root = evidence::root(&self.board_dir);
                self.config = loaded.config;
                self.config_path = loaded.path;
                self.emit(
                    None,
                    EventKind::ConfigReloaded {
                        path: self.config_path.as_ref().map(|p| p.display().to_string()),
                    },
                );
                self.dirty = true;
            }
            Err(e) => {
                self.error(
                    None,
                    "config",
                    format!("config not reloaded, keeping the old one: {e}"),
                );
            }
        }
    }

    /// Reads the board as it is now. `None` when it cannot be read (reported), or while its path
    /// leads elsewhere than the folder this runtime holds (`home` follows it first).
    fn read(&mut self, settle_editor: bool) -> Option<fsio::Snapshot> {
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
    fn pass(&mut self, touched: bool, forced: bool) {
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

    /// Endings that could not be written yet are retried on the next pass: on the next save,
    /// or after a wait that doubles while the failure lasts. Not at once: what stopped the
    /// write (an unreadable board, a full disk) is most likely still there, and an immediate
    /// pass would fail again, back to back, for as long as it lasts.
    fn requeue(&mut self, pending: Vec<Pending>) {
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

    /// Merges this process's memory into the shared state file, under the board's write lock.
    fn save_state(&mut self) {
        let result = lock::WriteLock::acquire(&self.state_dir).and_then(|_guard| self.store.save());
        self.note_state_save(result);
    }

    /// Reports a failure to save the state once until a save succeeds again (a full disk fails
    /// every save; one line says so).
    fn note_state_save(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.state_error_reported = false,
            Err(e) if !self.state_error_reported => {
                self.state_error_reported = true;
                self.error(None, "state", format!("cannot save runtime state: {e}"));
            }
            Err(_) => {}
        }
    }

    /// The endings this runtime holds (its own, and those a stopped runtime left behind, which it
    /// takes over with their locks), each turned into a change against the board as it is now.
    /// Returns the changes to write, every task whose ending is still on its way (the planner
    /// leaves those alone), and how many review runs started for endings already on the board.
    fn gather_endings(
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
    fn endings_of_past_runs(&self) -> Vec<String> {
        self.store
            .with_endings()
            .filter(|id| !self.active.contains_key(*id))
            .map(str::to_string)
            .collect()
    }

    /// Takes over an ending a stopped runtime left (its lock's owner is gone, or the lock folder
    /// was removed): stops whatever that owner left running, then holds the lock as ours.
    fn adopt_ending(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        if self.locks.read(id).is_some() && !self.break_lock(id) {
            return false;
        }
        let owner = Owner::current(&self.instance, now);
        match self.locks.try_acquire(id, &owner) {
            Ok(Some(_)) => {
                if let Some(ending) = self.store.tasks.get(id).and_then(|r| r.ending.clone()) {
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
    fn keep_endings_for_next_start(&mut self) {
        let kept: Vec<(String, PendingEnding)> = self
            .store
            .tasks
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

    /// Lint findings become events when they first appear (not again on every pass).
    fn report_findings(&mut self, text: &str, board: &Board, now: DateTime<Utc>) {
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
    fn consume_requests(&mut self) {
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
    fn start_series(&mut self, id: &str) {
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

    /// The lock folders as the planner sees them, and when an owner-less one (a claim cut short
    /// by a crash, or still being made) is old enough to be broken: a pass is due then.
    fn lock_view(&self, now: DateTime<Utc>) -> (BTreeMap<String, LockView>, Option<DateTime<Utc>>) {
        let mut view = BTreeMap::new();
        let mut wake: Option<DateTime<Utc>> = None;
        let Ok(list) = self.locks.list() else {
            return (view, wake);
        };
        for (id, state) in list {
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
    fn break_lock(&mut self, id: &str) -> bool {
        let Some(seen) = self.locks.read(id) else {
            return true;
        };
        let Some(reason) = lock::is_stale(&seen, UNREADABLE_LOCK_GRACE) else {
            return false;
        };
        if let LockState::Held(owner) = &seen
            && owner.boot_id == Owner::current(&self.instance, Utc::now()).boot_id
        {
            let pgid = owner.executor_pgid.filter(|g| *g > 1);
            let target = procs::Target {
                run_id: owner.run_id.as_deref(),
                pgid: pgid.and_then(|g| u32::try_from(g).ok()),
            };
            let left: Vec<String> = procs::find(target)
                .iter()
                .map(|p| p.pid.to_string())
                .collect();
            if !left.is_empty() || pgid.is_some_and(lock::process_group_alive) {
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
                kill_group(target, self.config.runtime.grace);
            }
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

    /// Writes pending changes in one compare-and-swap write against the board as it is now,
    /// then carries out what each applied change implies. Returns how many runs started.
    fn write(&mut self, pending: Vec<Pending>, planned_hash: u64) -> usize {
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

    /// What an ending on the board implies: the task's memory, its events, its deadletter file,
    /// the review run that follows, and the release of its lock. `written` is the board as it
    /// now is (parsed when a review is to start). Returns whether a review run started.
    fn ending_landed(
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
    fn settle(&mut self, id: &str, attempt: u32, finished: exec::Finished) -> bool {
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
    fn conclude(&mut self, id: &str, active: &Active, ending: Ending, facts: RunFacts) -> bool {
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

    /// Appends one attempt's section to `handoffs/<ID>.md`; the path relative to the board's
    /// folder, or `None` (reported) when it cannot be written.
    fn append_handoff(&self, id: &str, section: &str) -> Option<String> {
        use std::io::Write;
        let path = handoff::file_path(&self.board_dir, id);
        let result = std::fs::create_dir_all(path.parent().unwrap_or(&self.board_dir))
            .and_then(|_| {
                use std::os::unix::fs::OpenOptionsExt;
                // Never wait on a FIFO someone put there: open without blocking, then insist on
                // a regular file.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path)
            })
            .and_then(|mut f| {
                let meta = f.metadata()?;
                fsio::ensure_regular(&meta)?;
                let header = if meta.len() == 0 {
                    handoff::file_header(id)
                } else {
                    String::new()
                };
                f.write_all(format!("{header}{section}").as_bytes())
            });
        match result {
            Ok(()) => Some(format!("handoffs/{id}.md")),
            Err(e) => {
                self.error(
                    Some(id),
                    "handoff",
                    format!("cannot write {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// Starts an executor run (a claimed task's work, or its review). On failure to start, the
    /// attempt is settled as failed right away (its status change goes out with the next write).
    fn spawn(&mut self, launch: Launch, (board, text): (&Board, &str), now: DateTime<Utc>) -> bool {
        let Launch {
            id,
            route,
            attempt,
            running,
            phase,
        } = launch;
        let id = id.as_str();
        let route = route.as_str();
        let review_suffix = if phase == Phase::Review {
            "-review"
        } else {
            ""
        };
        let run_dir = self.state_dir.join("runs").join(id).join(format!(
            "{attempt}{review_suffix}-{}",
            now.format("%Y%m%dT%H%M%SZ")
        ));
        let result_path = run_dir.join("result.json");
        let active = Active {
            attempt,
            route: route.to_string(),
            phase: phase.clone(),
            handle: None,
            started: now,
            running,
            run_dir: run_dir.clone(),
            result_path: result_path.clone(),
            evidence_before: None,
        };
        let fail = |rt: &mut Runtime, active: Active, why: String, reason: &str| {
            rt.error(Some(id), "dispatch", why);
            if rt.conclude(
                id,
                &active,
                Ending::Failure(reason.into()),
                RunFacts::default(),
            ) {
                rt.dirty = true;
            }
            false
        };
        let Some(exec_cfg) = self.config.executors.get(route).cloned() else {
            return fail(
                self,
                active,
                format!("no executor `{route}` is configured"),
                "no_executor",
            );
        };
        if let Err(e) = std::fs::create_dir_all(&run_dir) {
            return fail(
                self,
                active,
                format!("cannot create {}: {e}", run_dir.display()),
                "run_dir_unavailable",
            );
        }
        let Some(task) = board.task(id) else {
            return fail(
                self,
                active,
                "the task vanished before it could start".into(),
                "vanished",
            );
        };
        let record = self.store.tasks.get(id);
        let review = (phase == Phase::Review).then(|| packet::Review {
            handoff: String::new(),
            diff: record.and_then(|r| r.history.last()).and_then(|a| {
                let paths = a.changed.as_deref()?;
                let root = self.git_root.as_deref()?;
                evidence::diff(root, a.base.as_deref(), paths)
            }),
        });
        let source = packet_sources::Source {
            board_dir: &self.board_dir,
            board,
            text,
            record,
        };
        let budget = self.config.runtime.packet_budget as usize;
        let packet =
            packet_sources::assemble(&source, id, attempt, review, budget).unwrap_or_default();
        if let Err(e) = std::fs::write(run_dir.join("packet.md"), &packet) {
            self.error(Some(id), "dispatch", format!("cannot keep the packet: {e}"));
        }
        let mut argv = exec_cfg.command.clone();
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = self.board_dir.join(&argv[0]).display().to_string();
        }
        let mut env: Vec<(String, String)> = exec_cfg.env.clone().into_iter().collect();
        env.extend([
            ("TASKBOARD_TASK_ID".to_string(), id.to_string()),
            // A NUL cannot cross exec; other control characters would only confuse a reader.
            (
                "TASKBOARD_TASK_TITLE".to_string(),
                task.title.replace(|c: char| c.is_control(), " "),
            ),
            ("TASKBOARD_ATTEMPT".to_string(), attempt.to_string()),
            ("TASKBOARD_ROUTE".to_string(), route.to_string()),
            (
                "TASKBOARD_BOARD".to_string(),
                self.board.display().to_string(),
            ),
            (
                "TASKBOARD_RUN_DIR".to_string(),
                run_dir.display().to_string(),
            ),
            (
                "TASKBOARD_RESULT".to_string(),
                result_path.display().to_string(),
            ),
        ]);
        let spec = exec::Spec {
            argv,
            cwd: self.board_dir.clone(),
            env,
            stdin: packet.into_bytes(),
            run_dir: run_dir.clone(),
            timeout: exec_cfg.timeout,
            grace: self.config.runtime.grace,
            output_cap: self.config.runtime.output_cap,
        };
        let evidence_before = match phase {
            Phase::Work { .. } => self.git_root.as_deref().and_then(evidence::snapshot),
            Phase::Review => None,
        };
        let active = Active {
            evidence_before,
            ..active
        };
        let tx = self.tx.clone();
        let owned_id = id.to_string();
        match exec::start(spec, move |finished| {
            let _ = tx.send(Msg::Finished {
                id: owned_id,
                attempt,
                finished,
            });
        }) {
            Ok(handle) => {
                let pid = handle.pid();
                let run_id = Some(handle.run_id());
                let _ = self
                    .locks
                    .set_executor(id, &self.instance, pid as i32, run_id);
                self.emit(
                    Some(id),
                    EventKind::TaskDispatched {
                        attempt,
                        route: route.to_string(),
                        pid,
                        agent: match phase {
                            Phase::Review => plan::review_agent(&self.config.runtime.agent),
                            Phase::Work { .. } => self.config.runtime.agent.clone(),
                        },
                        phase: (phase == Phase::Review).then(|| "review".to_string()),
                    },
                );
                self.active.insert(
                    id.to_string(),
                    Active {
                        handle: Some(handle),
                        ..active
                    },
                );
                true
            }
            Err(e) => fail(
                self,
                active,
                format!("cannot start executor `{route}`: {e}"),
                "spawn_failed",
            ),
        }
    }

    /// Writes `deadletter/<ID>.json` (archiving an older one) with the task and its attempts.
    fn deadletter(&mut self, id: &str, reason: &str, now: DateTime<Utc>) {
        let dir = self.board_dir.join("deadletter");
        let path = dir.join(format!("{id}.json"));
        let (title, block) = match fsio::read_board(&self.board) {
            Ok(snap) => {
                let board = Board::parse(&snap.text);
                board
                    .task(id)
                    .map(|t| (t.title.clone(), snap.text[t.block.clone()].to_string()))
                    .unwrap_or_default()
            }
            Err(_) => Default::default(),
        };
        let attempts = self
            .store
            .tasks
            .get(id)
            .map(|r| r.history.clone())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "task": id,
            "title": title,
            "status": "failed:exhausted_retries",
            "reason": reason,
            "failed_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "attempts": attempts,
            "block": block,
        });
        let result = std::fs::create_dir_all(&dir).and_then(|_| {
            if path.exists() {
                archive_deadletter(&dir, id, now)?;
            }
            let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
            fsio::atomic_write(&path, &bytes)
        });
        match result {
            Ok(()) => self.emit(
                Some(id),
                EventKind::TaskDeadlettered {
                    attempts: attempts.len() as u32,
                    path: path.display().to_string(),
                },
            ),
            Err(e) => self.error(
                Some(id),
                "deadletter",
                format!("cannot write {}: {e}", path.display()),
            ),
        }
    }
}

/// Moves `deadletter/<ID>.json` to `deadletter/archive/<ID>-<time>.json`.
pub fn archive_deadletter(dir: &Path, id: &str, now: DateTime<Utc>) -> std::io::Result<PathBuf> {
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    let to = archive.join(format!("{id}-{}.json", now.format("%Y%m%dT%H%M%S%.3fZ")));
    std::fs::rename(dir.join(format!("{id}.json")), &to)?;
    Ok(to)
}

/// Stops a dead runtime's run: SIGTERM to its process group and to every process carrying its
/// run id (or descending from one), SIGKILL after `grace` to whatever still lives, and waits until
/// they are gone (where `/proc` exists; elsewhere the group is signalled and waited for only).
fn kill_group(target: procs::Target<'_>, grace: Duration) {
    let pgid = target.pgid.and_then(|g| i32::try_from(g).ok());
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    procs::Tracker::default().stop_run(target, None, true, deadline);
    let Some(pgid) = pgid else {
        return;
    };
    let mut wait = Duration::from_millis(5);
    while lock::process_group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(200));
    }
    if lock::process_group_alive(pgid) {
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        other => other.to_string(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
