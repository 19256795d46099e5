//! The imperative shell: the loop behind `taskboard run` and `taskboard once`.
//!
//! Owns the [`Runtime`] and its state, starting it (paths, config, state folder, event log),
//! the loop [`Runtime::serve`] and the messages it receives, reloading the config, stopping,
//! and saving the state file. The loop's parts live beside it, one job each: `pass` (read,
//! plan, carry out), `commit` (the compare-and-swap write and what landed), `launch` (starting
//! a run), `finish` (a run's end to a kept ending, landing it), `recovery` (dead owners' locks
//! and endings), `files` (handoffs, deadletter), `home` (the board's folder), `conflicts`,
//! `isolate` and `prepare` (worktree runs), `approve` (landing or sending back an approved or
//! rejected change), `remote` (runs on other machines) and `ahead` (the work tree's snapshot
//! taken as a save begins).
//! The runtime makes no decision of its own that the core could make; it never edits a byte of
//! the board except through `writeback`, and every decision goes to `events.jsonl`.
//!
//! One thread owns all state and receives [`Msg`]s (watcher signals, executor endings, remote
//! runs' reports, prepared worktree runs, process signals) on one channel; executors are
//! supervised by `exec`'s threads here and `shell::remote`'s for other machines. Idle means blocked
//! in `recv_timeout` until the next event or the next time-based rule falls due.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::core::board::Board;
use crate::core::config::{Config, Workspace};
use crate::core::event::{Event, EventKind};
use crate::core::lint;
use crate::core::plan::Policy;
use crate::core::settle::{Phase, StopCause};
use crate::core::status::Status;
use crate::exit::{Exit, Failure};
use crate::shell::config_file;
use crate::shell::event_log::EventLog;
use crate::shell::evidence;
use crate::shell::exec;
use crate::shell::fsio;
use crate::shell::lock::{self, Locks};
use crate::shell::process;
use crate::shell::store::Store;
use crate::shell::watch::WatchSignal;

mod ahead;
mod approve;
mod commit;
mod conflicts;
mod files;
mod finish;
mod home;
mod isolate;
mod launch;
mod pass;
mod prepare;
mod recovery;
mod remote;

pub use files::archive_deadletter;
use pass::Trigger;
pub use prepare::{Prepared, SnapshotOutcome};

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

/// What the loop receives: the watcher's signals, an executor's end, a process signal.
pub enum Msg {
    Watch(WatchSignal),
    Finished {
        id: String,
        attempt: u32,
        finished: exec::Finished,
        /// What an isolated run changed, saved before this was sent; `None` for a shared run.
        snapshot: SnapshotOutcome,
        /// What git saw a shared run change, looked at before this was sent; `None` for an
        /// isolated or remote run, or one that started outside a git repository.
        evidence: Option<Box<evidence::SeenAtEnd>>,
    },
    /// What a remote run's driver learnt: where it went, that it reached a node, that it was
    /// taken over.
    Remote {
        id: String,
        attempt: u32,
        report: crate::shell::remote::Report,
    },
    /// An isolated run's worktree is ready and its executor started, or it could not be.
    Prepared {
        id: String,
        attempt: u32,
        prepared: Box<Prepared>,
    },
    Signal(i32),
    /// A save found in a board this process had just replaced (see `fsio`'s retired boards).
    LateSave(fsio::LateSave),
}

/// A started run: a child process here, or a run on another machine.
#[derive(Debug, Clone)]
enum RunHandle {
    Local(exec::LocalHandle),
    Remote(crate::shell::remote::RemoteHandle),
}

impl RunHandle {
    fn stop(&self, cause: StopCause) {
        match self {
            RunHandle::Local(h) => h.stop(cause),
            RunHandle::Remote(h) => h.stop(cause),
        }
    }

    /// The executor's process group here; none for a remote run.
    fn pid(&self) -> Option<u32> {
        match self {
            RunHandle::Local(h) => Some(h.pid()),
            RunHandle::Remote(_) => None,
        }
    }
}

impl Active {
    /// `task_dispatched` for this run: its pid here, or where it went (`remote`).
    fn dispatched(
        &self,
        agent: &str,
        pid: Option<u32>,
        remote: Option<crate::core::remote::Placement>,
    ) -> EventKind {
        let review = self.phase == Phase::Review;
        EventKind::TaskDispatched {
            attempt: self.attempt,
            route: self.route.clone(),
            pid,
            agent: if review {
                crate::core::plan::review_agent(agent)
            } else {
                agent.to_string()
            },
            phase: review.then(|| "review".to_string()),
            remote,
        }
    }

    /// Asks the run to stop, whether its executor runs yet or its worktree is being made.
    fn stop(&self, cause: StopCause) {
        match (&self.handle, &self.isolation) {
            (Some(handle), _) => handle.stop(cause),
            (None, Some(isolation)) => isolation.gate.stop(cause),
            (None, None) => {}
        }
    }
}

/// Whether the runs being started share one snapshot of the work tree to tell their changes
/// by. A write that claims several tasks starts their runs one after another within
/// milliseconds, and each snapshot is a `git status` of the whole repository (tens of
/// milliseconds in a large one): one taken before the first start serves them all. Nothing of
/// theirs has run when it is taken, and a change one of them makes before the next starts
/// would count for both in any case, as runs that share a folder cannot be told apart.
enum SharedStart {
    /// Each run takes its own (a run started on its own, a review).
    Off,
    /// A write's runs are starting; none has taken the snapshot yet.
    Open,
    /// Taken for this write's runs (`None`: git could not give one).
    Taken(Option<evidence::TreeState>),
}

/// A run this runtime supervises (or is starting).
struct Active {
    attempt: u32,
    route: String,
    phase: Phase,
    /// None until the executor has started.
    handle: Option<RunHandle>,
    started: DateTime<Utc>,
    running: Status,
    run_dir: PathBuf,
    result_path: PathBuf,
    /// The git work tree before the run, when the board is in one (work runs only).
    evidence_before: Option<evidence::TreeState>,
    /// The task's `touches:` globs when the run started, if it declares some.
    touches: Option<Vec<crate::core::workspace::Glob>>,
    /// Where an isolated run works (worktree routes' work runs only).
    isolation: Option<isolate::Isolation>,
    /// A remote run's record, as its lock holds it.
    remote: Option<crate::core::remote::RemoteRun>,
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
    /// The text the runtime last read or wrote, and its board: the next read is re-parsed from it
    /// (`Board::reparse`, equal to a full parse), so a one-line save costs about one block.
    parsed: Option<(String, Board)>,
    /// The board changed between a plan's read and its write: pass again.
    dirty: bool,
    /// The lint findings reported at the last pass.
    last_findings: BTreeSet<lint::FindingKey>,
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
    /// The work tree's snapshot the runs started by one write share ([`SharedStart`]).
    shared_start: SharedStart,
    /// The content hashes snapshots read, shared with the runs' threads that take the snapshot
    /// at each run's end.
    hashes: Arc<evidence::Hashes>,
    /// The work tree's snapshot taken as a save begins, shared with the watcher's thread.
    lookahead: Arc<ahead::Lookahead>,
    /// (UTC day, route) pairs whose spent budget has been announced.
    budget_announced: BTreeSet<(chrono::NaiveDate, String)>,
    /// Due tasks held back by an overlapping `touches:`, with the task that holds each, as last
    /// announced (a `task_held` event is written when that changes, not every pass).
    touches_announced: BTreeMap<String, String>,
    /// `approved`/`rejected:` statuses with no change to act on, as last reported per task.
    approval_noted: BTreeMap<String, String>,
    /// The board's folder held open, the run lock, the watch (see `home`).
    home: home::Home,
    /// SSH hosts that could not be reached, and when each is tried again.
    hosts_down: BTreeMap<String, DateTime<Utc>>,
    /// The wall clock.
    clock: fn() -> DateTime<Utc>,
}

impl Runtime {
    /// A runtime for the board at `board` (a link is followed to its target), with the config
    /// found beside it or at `explicit_config`. Fails on a board that cannot be one, a config
    /// that does not load, or a state folder or event log that cannot be made.
    pub fn new(
        mode: Mode,
        board: &Path,
        explicit_config: Option<&Path>,
    ) -> Result<Runtime, Failure> {
        let (board, board_dir) = board_paths(board, mode)?;
        let loaded = config_file::load(explicit_config, &board_dir)
            .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
        let state_dir = fsio::state_dir(&board);
        let log = open_state(
            &state_dir,
            &board_dir,
            loaded.config.runtime.events_max_size,
        )?;
        let (store, warning) = Store::load(&state_dir.join("state.json"));
        let (tx, rx) = mpsc::channel();
        let late = tx.clone();
        fsio::report_late_saves_to(move |save| {
            let _ = late.send(Msg::LateSave(save));
        });
        let instance = lock::instance_id();
        let hashes = Arc::default();
        let mut rt = Runtime {
            mode,
            locks: Locks::of_instance(state_dir.join("locks"), &instance),
            board,
            board_dir,
            state_dir,
            explicit_config: explicit_config.map(Path::to_path_buf),
            config: loaded.config,
            config_path: loaded.path,
            log,
            instance,
            store,
            active: BTreeMap::new(),
            last_hash: None,
            parsed: None,
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
            touches_announced: BTreeMap::new(),
            approval_noted: BTreeMap::new(),
            home: home::Home::default(),
            hosts_down: BTreeMap::new(),
            git_root: None,
            shared_start: SharedStart::Off,
            lookahead: Arc::new(ahead::Lookahead::new(Arc::clone(&hashes))),
            hashes,
            clock: Utc::now,
        };
        rt.find_repo();
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

    /// The time now: every reading of the wall clock in the runtime goes through here, once
    /// per step, and the core is handed the value.
    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn emit(&self, task: Option<&str>, kind: EventKind) {
        let ev = Event::new(self.now(), task, kind);
        let line = ev.to_line();
        // The log line reads as `tail` shows the event; a pass, one per pass, is noise there.
        if !matches!(ev.kind, EventKind::Pass { .. }) {
            crate::shell::logging::event(&ev);
        }
        if let Err(e) = self.log.append_printed(line) {
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
            approval_routes: self
                .config
                .executors
                .iter()
                .filter(|(_, e)| matches!(e.workspace, Workspace::Worktree(_)))
                .map(|(r, _)| r.clone())
                .collect(),
        }
    }

    /// Serves until a stop signal (run) or until the pass's runs have ended (once).
    pub fn serve(mut self) -> Result<(), Failure> {
        self.start_home()?;
        self.announce_start();
        self.pass(Trigger::Due);
        let mut next_rescan = Instant::now() + self.config.runtime.rescan_every;
        let mut stop_reason = String::from("finished");
        let mut closing_passes = 0;
        loop {
            if self.stopping && self.active.is_empty() {
                break;
            }
            if self.mode == Mode::Once && self.active.is_empty() {
                // Endings that came in with the last runs (or runs that could not start) are
                // written before `once` exits, not left for the next start: a few passes at
                // most, which dispatch nothing new.
                if self.dirty && closing_passes < 3 {
                    closing_passes += 1;
                    self.dirty = false;
                    self.pass(Trigger::Due);
                    continue;
                }
                break;
            }
            let Some(msgs) = self.receive(next_rescan) else {
                break;
            };
            let (saved, mut due) = self.handle(msgs, &mut stop_reason);
            if Instant::now() >= next_rescan {
                next_rescan = Instant::now() + self.config.runtime.rescan_every;
                self.find_repo();
                self.sweep_worktrees();
                due = true;
            }
            // Decided after the messages: a reload among them asks for a pass too, and that ask
            // must not be lost to the watcher's echo of our own last write in the same batch.
            if let Some(trigger) = Trigger::of(saved, due || self.dirty) {
                self.dirty = false;
                let began = Instant::now();
                self.pass(trigger);
                if saved {
                    // The early snapshot of the saves this pass read served its starts, or
                    // none; one a save that began since serves is kept.
                    self.lookahead.forget_served_before(began);
                }
            }
        }
        self.keep_endings_for_next_start();
        self.store.fold_on_next_save();
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

    /// Looks up the git work tree the board is in (a process: at start, on SIGHUP, on each
    /// rescan and when the board's folder moved, never per run) and aims the early snapshot
    /// there.
    fn find_repo(&mut self) {
        let repo = evidence::Repo::find(&self.board_dir);
        self.git_root = repo.as_ref().map(|r| r.root.clone());
        let debounce = self.config.runtime.debounce;
        (self.lookahead).aim(repo, (&self.board_dir, &self.board), debounce);
    }

    /// `runtime_started`, its log line, and what a start sets up besides the home.
    fn announce_start(&mut self) {
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
        if !process::become_subreaper() && cfg!(target_os = "linux") {
            tracing::warn!("cannot become a child subreaper; escaped processes go to init");
        }
        if let Err(e) = self.locks.sweep_debris() {
            tracing::warn!("cannot clear leftover lock folders: {e}");
        }
    }

    /// Waits for the next message, or until the next rescan, time-based rule, retry of a write
    /// or check of the home falls due (at once while a pass is owed), and takes every message
    /// already queued with it: they are handled in one pass and one write. An empty batch is a
    /// timer's; `None` when the channel is closed.
    fn receive(&mut self, next_rescan: Instant) -> Option<Vec<Msg>> {
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
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        let mut msgs: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = self.rx.try_recv() {
            msgs.push(m);
        }
        Some(msgs)
    }

    /// Handles a batch of messages. Returns whether the watcher saw the board saved, and
    /// whether anything else asks for a pass (a time-based rule or a write's retry falling due,
    /// an ending to write, a pass owed). A stop signal's reason goes into `stop_reason`.
    fn handle(&mut self, msgs: Vec<Msg>, stop_reason: &mut String) -> (bool, bool) {
        let mut saved = false;
        // The home's timed check is not among the timers that ask for a pass: it makes one
        // only when it finds something moved (`dirty`), so a live run does not cost a pass of
        // the whole board every second.
        let mut due = (msgs.is_empty() && self.pass_timer_due()) || self.dirty;
        self.check_home(&msgs);
        for msg in msgs {
            match msg {
                Msg::Watch(WatchSignal::BoardTouched { .. }) => saved = true,
                Msg::Watch(WatchSignal::Rescan) => due = true,
                Msg::Watch(WatchSignal::Error(e)) => self.error(None, "watch", e),
                Msg::Watch(WatchSignal::StateRemoved) => {} // put back by check_home
                Msg::Finished {
                    id,
                    attempt,
                    finished,
                    snapshot,
                    evidence,
                } => {
                    self.remote_ended(&id, attempt, &finished);
                    due |= self.run_ended(&id, attempt, finished, snapshot, evidence);
                }
                Msg::Remote {
                    id,
                    attempt,
                    report,
                } => self.remote_report(&id, attempt, report),
                Msg::Prepared {
                    id,
                    attempt,
                    prepared,
                } => due |= self.prepared(&id, attempt, *prepared),
                Msg::LateSave(fsio::LateSave::PutBack { .. }) => {
                    // The board is the person's save again: read like any save.
                    self.emit(None, EventKind::SavePutBack {});
                    saved = true;
                }
                Msg::LateSave(fsio::LateSave::Kept { kept, .. }) => self.error(
                    None,
                    "writeback",
                    format!(
                        "a save that landed in the board just after it was replaced is kept in {}, as the board had changed again since: merge it by hand",
                        kept.display()
                    ),
                ),
                Msg::Signal(signal_hook::consts::SIGHUP) => self.reload(),
                Msg::Signal(sig) => {
                    if !self.stopping {
                        *stop_reason = format!("signal {}", process::signal_name(sig));
                        self.begin_stop();
                    }
                }
            }
        }
        (saved, due)
    }

    /// Whether a timer that asks for a pass has fallen due: a time-based rule's (`wake_at`) or
    /// a kept write's retry (`retry_at`).
    fn pass_timer_due(&self) -> bool {
        self.wake_at.is_some_and(|at| at <= self.now())
            || self.retry_at.is_some_and(|at| at <= Instant::now())
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
        tracing::info!("stopping: interrupting {} run(s)", self.active.len());
        for active in self.active.values() {
            active.stop(StopCause::Shutdown);
        }
    }

    fn reload(&mut self) {
        match config_file::load(self.explicit_config.as_deref(), &self.board_dir) {
            Ok(loaded) => {
                self.config = loaded.config;
                self.config_path = loaded.path;
                self.find_repo();
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
}

/// The board's path (a link's target, made absolute) and its folder, checked: the folder
/// exists, the board is not a folder, a FIFO, socket or device, and (for `once`) it reads.
fn board_paths(board: &Path, mode: Mode) -> Result<(PathBuf, PathBuf), Failure> {
    // One board, one identity: a link's target, whatever name the board was reached by.
    let board = fsio::resolve_board(board).map_err(|e| Failure::new(Exit::Board, e.to_string()))?;
    let board = absolute(&board);
    let board_dir = board
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    if !board_dir.is_dir() {
        return Err(Failure::new(
            Exit::Board,
            format!(
                "{}: the folder {} does not exist",
                board.display(),
                board_dir.display()
            ),
        ));
    }
    if board.is_dir() {
        return Err(Failure::new(
            Exit::Board,
            format!("{}: is a folder, not a board file", board.display()),
        ));
    }
    // A FIFO, socket or device never becomes a board (a missing file may): refuse it now.
    if let Ok(meta) = std::fs::metadata(&board)
        && let Err(e) = fsio::ensure_regular(&meta)
    {
        return Err(Failure::new(
            Exit::Board,
            format!("{}: {e}", board.display()),
        ));
    }
    if mode == Mode::Once {
        // `once` is run by cron and timers: an unreadable board is an error to report now.
        fsio::read_board(&board).map_err(|e| Failure::new(Exit::Board, e.to_string()))?;
    }
    Ok((board, board_dir))
}

/// Makes the state folder (its `runs` and `locks`) and opens the event log beside the board.
fn open_state(
    state_dir: &Path,
    board_dir: &Path,
    events_max_size: u64,
) -> Result<EventLog, Failure> {
    std::fs::create_dir_all(state_dir.join("runs"))
        .and_then(|_| std::fs::create_dir_all(state_dir.join("locks")))
        .map_err(|e| {
            Failure::new(
                Exit::State,
                format!("cannot create {}: {e}", state_dir.display()),
            )
        })?;
    EventLog::with_rotation(board_dir.join("events.jsonl"), events_max_size).map_err(|e| {
        Failure::new(
            Exit::State,
            format!(
                "cannot open {}: {e}",
                board_dir.join("events.jsonl").display()
            ),
        )
    })
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
