//! The board's home: the folder the board lives in, and the runtime's state folder inside it.
//!
//! Owns what keeps a runtime serving the right place when that place changes under it: the
//! folder held open (its identity, not its path, says where the board is), the run lock (an
//! `flock` on that folder), the watch on it, and putting back what a cleaning removed (`rm -rf
//! .taskboard`, `git clean -fdX`): the state folder, the lock folders of live runs and of
//! endings waiting to be written, with their owner records, `state.json` from memory and the
//! run lock's information file. Another taskboard process must never see a live run as
//! ownerless.
//!
//! Checked on every watcher signal, on every wake-up of the loop's own timers, and every
//! [`CHECK_EVERY`] while runs are live. An ending waiting to be written needs no timed check:
//! its lock is put back on the watcher's signal that the state folder went and by every pass,
//! and only a save can bring its task back. A timed check makes no pass unless it changed
//! something, so an idle board, or one whose endings wait, gets no extra wake-up.
//!
//! A folder renamed or moved is followed ([`Runtime::relocate`] moves every path derived from
//! the board at once); a folder deleted and created again is held, watched and locked anew, or,
//! when another `run` took its lock meanwhile, served no further than the live runs' endings.
//! A runtime that does not serve the board (a `once` beside a `run`) leaves the serving `run`'s
//! lock-less claims alone ([`Runtime::defer_to_serving_run`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Mode, Msg, Runtime};
use crate::core::board::Board;
use crate::core::folder::{self, Identity, Sighting, Whereabouts};
use crate::core::plan::LockView;
use crate::exit::{Exit, Failure};
use crate::shell::event_log::EventLog;
use crate::shell::fsio;
use crate::shell::lock::{self, LockState, Locks, Owner, RunLock};
use crate::shell::watch::{self, BoardWatcher, WatchError};

/// How often the home is checked while runs are live.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the runtime holds of its home.
#[derive(Default)]
pub(super) struct Home {
    /// The board's folder, held open.
    folder: Option<File>,
    /// Its identity when it was opened.
    identity: Option<Identity>,
    /// The state folder's identity as last seen: another one means it was removed.
    state: Option<Identity>,
    /// The run lock (`run` only; dropped if another `run` took the folder).
    run_lock: Option<RunLock>,
    watcher: Option<BoardWatcher>,
    /// Watches the parent folder while the board's folder is gone.
    return_watcher: Option<BoardWatcher>,
    /// The folder is gone and that was reported.
    gone: bool,
    /// When the next timed check is due (set only while runs are live).
    next_check: Option<Instant>,
    /// Tasks whose ending waits to be written under a lock this runtime took (when the run
    /// ended, or when it took over a stopped runtime's ending) and still held at the last check.
    ending_locks: BTreeSet<String>,
}

impl Runtime {
    /// The board's folder.
    pub fn board_dir(&self) -> &Path {
        &self.board_dir
    }

    /// Keeps the run lock for as long as this runtime serves the board.
    pub fn hold_run_lock(&mut self, lock: RunLock) {
        self.home.run_lock = Some(lock);
    }

    /// Holds the board's folder open and, for `run`, watches it.
    pub(super) fn start_home(&mut self) -> Result<(), Failure> {
        let folder = match &self.home.run_lock {
            // The very folder the lock was taken on, even if it was renamed since.
            Some(l) => l.folder().try_clone().ok(),
            None => lock::open_folder(&self.board_dir).ok(),
        };
        self.hold_folder(folder);
        self.home.state = dir_identity(&self.state_dir);
        if self.mode == Mode::Run {
            let watcher = self
                .watch_here()
                .map_err(|e| Failure::new(Exit::Board, e.to_string()))?;
            self.home.watcher = Some(watcher);
        }
        Ok(())
    }

    fn hold_folder(&mut self, folder: Option<File>) {
        self.home.identity = folder
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| identity(&m));
        self.home.folder = folder;
    }

    fn watch_here(&self) -> Result<BoardWatcher, WatchError> {
        let tx = self.tx.clone();
        let lookahead = Arc::clone(&self.lookahead);
        let debounce = self.config.runtime.debounce;
        watch::watch_board_and_bursts(
            &self.board,
            debounce,
            move || lookahead.begin(),
            move |s| {
                let _ = tx.send(Msg::Watch(s));
            },
        )
    }

    /// Notes that this runtime holds the lock of task `id`'s ending waiting to be written, so
    /// that a check puts it back if it is removed before the ending lands.
    pub(super) fn note_ending_lock(&mut self, id: &str) {
        self.home.ending_locks.insert(id.to_string());
    }

    /// The loop's deadline, brought forward to the next timed check while runs are live (a
    /// second run of a live task is what a removed lock would let in).
    pub(super) fn home_deadline(&mut self, deadline: Instant) -> Instant {
        if self.active.is_empty() {
            self.home.next_check = None;
            return deadline;
        }
        let at = *self
            .home
            .next_check
            .get_or_insert_with(|| Instant::now() + CHECK_EVERY);
        deadline.min(at)
    }

    /// Checks the home when the watcher said anything, when the loop woke on a timer, or when
    /// the timed check is due.
    /// The state folder is looked at before every pass whatever woke the loop: a pass that
    /// read the shared state file from a folder put there by another process would take its
    /// contents for all there is to know.
    pub(super) fn check_home(&mut self, msgs: &[Msg]) {
        let signalled = msgs.is_empty() || msgs.iter().any(|m| matches!(m, Msg::Watch(_)));
        let due = self.home.next_check.is_some_and(|at| Instant::now() >= at);
        if signalled || due {
            self.home.next_check = None;
            self.follow_folder();
        }
        let state_replaced = dir_identity(&self.state_dir) != self.home.state;
        if !self.home.gone && (signalled || due || state_replaced) {
            self.restore_state();
        }
    }

    /// Whether the board's path still leads into the folder this runtime holds (and, for a
    /// `run`, has locked). Until a check has followed a move or taken a new folder in, the
    /// board at that path is not one to act on: reads wait for the check.
    pub(super) fn home_is_here(&self) -> bool {
        self.home
            .identity
            .is_none_or(|held| dir_identity(&self.board_dir) == Some(held))
    }

    /// Compares the folder held open with what its path names now, and acts on the difference.
    fn follow_folder(&mut self) {
        let (Some(folder), Some(held)) = (&self.home.folder, self.home.identity) else {
            return;
        };
        let held_deleted = folder.metadata().map_or(true, |m| links(&m) == 0);
        let now_at = path_of(folder);
        let now_at_id = now_at.as_deref().and_then(dir_identity);
        let whereabouts = folder::judge(&Sighting {
            path: &self.board_dir,
            held,
            held_deleted,
            at_path: dir_identity(&self.board_dir),
            held_now_at: now_at.as_deref().map(|p| (p, now_at_id)),
        });
        match whereabouts {
            Whereabouts::Here if self.home.gone => {
                // Put back where it was before it could be followed (or asked about).
                self.home.gone = false;
                self.rewatch();
                self.dirty = true;
            }
            Whereabouts::Here => {}
            Whereabouts::Moved(to) => self.follow_move(&to),
            Whereabouts::Replaced => self.move_into_new_folder(),
            Whereabouts::Gone => self.wait_for_folder(),
        }
    }

    /// The folder was renamed or moved: serve the board at its new place.
    fn follow_move(&mut self, to: &Path) {
        let from = self.board_dir.clone();
        self.relocate(to);
        self.rewatch();
        self.error(
            None,
            "board",
            format!(
                "the board's folder moved from {} to {}; serving {} there",
                from.display(),
                to.display(),
                self.board.display()
            ),
        );
    }

    /// Every path derived from the board moves to the folder `to`, together: the board, its
    /// folder, the state folder, the task locks, the event log, the state file, the live runs'
    /// folders and result files, and a configuration file that lived in the folder.
    pub(super) fn relocate(&mut self, to: &Path) {
        let from = self.board_dir.clone();
        let moved = |p: &Path| folder::relocated(p, &from, to);
        self.board = moved(&self.board)
            .unwrap_or_else(|| to.join(self.board.file_name().unwrap_or_default()));
        self.board_dir = to.to_path_buf();
        self.state_dir = fsio::state_dir(&self.board);
        self.locks = Locks::of_instance(self.state_dir.join("locks"), &self.instance);
        let log_path = self.board_dir.join("events.jsonl");
        match EventLog::with_rotation(&log_path, self.config.runtime.events_max_size) {
            Ok(log) => self.log = log,
            Err(e) => tracing::error!("cannot open {}: {e}", log_path.display()),
        }
        self.store.moved_to(&self.state_dir.join("state.json"));
        for active in self.active.values_mut() {
            if let Some(p) = moved(&active.run_dir) {
                active.run_dir = p;
            }
            if let Some(p) = moved(&active.result_path) {
                active.result_path = p;
            }
            if let Some(before) = active.evidence_before.as_mut()
                && let Some(root) = moved(&before.root)
            {
                before.root = root;
            }
        }
        if let Some(p) = self.config_path.as_deref().and_then(moved) {
            self.config_path = Some(p);
        }
        if let Some(p) = self.explicit_config.as_deref().and_then(moved) {
            self.explicit_config = Some(p);
        }
        self.find_repo();
        // Saves made before the new watch began were not seen: read the board now.
        self.dirty = true;
    }

    /// Watch the board's folder as it is now (`run` only).
    fn rewatch(&mut self) {
        if self.mode != Mode::Run {
            return;
        }
        match self.watch_here() {
            Ok(w) => {
                self.home.watcher = Some(w);
                self.home.return_watcher = None;
            }
            Err(e) => self.error(None, "watch", e),
        }
    }

    /// Another folder stands where the board's folder was (deleted and created again, a fresh
    /// clone): hold it, watch it, take its run lock, and put the state folder back.
    fn move_into_new_folder(&mut self) {
        let dir = self.board_dir.clone();
        self.hold_folder(lock::open_folder(&dir).ok());
        self.home.gone = false;
        // Same paths, new files: reopen the event log and write the state file anew.
        self.relocate(&dir);
        self.home.state = None;
        self.rewatch();
        if self.home.run_lock.is_none() {
            self.error(
                None,
                "board",
                format!("the board's folder {} was created again", dir.display()),
            );
            return;
        }
        let info = self.state_dir.join("run.lock");
        let taken = match RunLock::try_acquire(&dir, &info) {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(holder)) => Err(match holder {
                Some(pid) => format!("another `taskboard run` (pid {pid}) serves it now"),
                None => "another `taskboard run` serves it now".to_string(),
            }),
            Err(e) => Err(format!("its run lock cannot be taken: {e}")),
        };
        match taken {
            Ok(l) => {
                self.home.run_lock = Some(l);
                self.error(
                    None,
                    "board",
                    format!(
                        "the board's folder {} was deleted and created again; serving the new one",
                        dir.display()
                    ),
                );
            }
            Err(why) => {
                self.home.run_lock = None;
                self.stopping = true;
                self.error(
                    None,
                    "board",
                    format!(
                        "the board's folder {} was deleted and created again, and {why}; \
                         this runtime starts nothing more and stops once its {} live run(s) end",
                        dir.display(),
                        self.active.len()
                    ),
                );
            }
        }
    }

    /// The folder is gone: say so once, and watch its parent for it to come back.
    fn wait_for_folder(&mut self) {
        if self.home.gone {
            return;
        }
        self.home.gone = true;
        self.error(
            None,
            "board",
            format!(
                "the board's folder {} was removed; waiting for it to come back ({} live run(s) go on)",
                self.board_dir.display(),
                self.active.len()
            ),
        );
        if self.mode != Mode::Run {
            return;
        }
        let tx = self.tx.clone();
        match watch::watch_for_folder(&self.board_dir, self.config.runtime.debounce, move |s| {
            let _ = tx.send(Msg::Watch(s));
        }) {
            Ok(w) => self.home.return_watcher = Some(w),
            Err(e) => self.error(None, "watch", e),
        }
        if dir_identity(&self.board_dir).is_some() {
            // It came back before its parent was watched: no event will say so.
            let _ = self.tx.send(Msg::Watch(watch::WatchSignal::Rescan));
        }
    }

    /// The locks this runtime must hold now: its live runs', and those of endings not yet
    /// written that it took or held at the last check (a lock is released only after its
    /// ending is on the board). Notes the latter for the next check.
    fn held_locks(&mut self) -> Vec<(String, Owner)> {
        let now = self.now();
        let mut out: Vec<(String, Owner)> = self
            .active
            .iter()
            .map(|(id, a)| {
                let mut owner = Owner::current(&self.instance, a.started);
                owner.executor_pgid = a.handle.as_ref().and_then(|h| h.pid()).map(|p| p as i32);
                owner.remote = a.remote.clone().map(Box::new);
                (id.clone(), owner)
            })
            .collect();
        let mut ending_locks = BTreeSet::new();
        for id in self.endings_of_past_runs() {
            match self.locks.read(&id) {
                Some(LockState::Held(o)) if o.instance == self.instance => {}
                None if self.home.ending_locks.contains(&id) => {
                    out.push((id.clone(), Owner::current(&self.instance, now)));
                }
                _ => continue,
            }
            ending_locks.insert(id);
        }
        self.home.ending_locks = ending_locks;
        out
    }

    /// Puts back what was removed from the state folder while this runtime needs it, and says
    /// what it put back (an `error` event, context `state`).
    fn restore_state(&mut self) {
        let held = self.held_locks();
        let state_now = dir_identity(&self.state_dir);
        let replaced = state_now.is_none() || state_now != self.home.state;
        if !replaced && held.is_empty() {
            return;
        }
        if let Err(e) = lock::create_state_dir(&self.state_dir)
            .and_then(|_| std::fs::create_dir_all(self.state_dir.join("runs")))
            .and_then(|_| std::fs::create_dir_all(self.state_dir.join("locks")))
        {
            if e.kind() == std::io::ErrorKind::NotFound && dir_identity(&self.board_dir).is_none() {
                // The board's folder went since it was checked: the next check says so.
                return;
            }
            self.error(
                None,
                "state",
                format!("cannot create {}: {e}", self.state_dir.display()),
            );
            return;
        }
        let mut restored = self.put_back_locks(held);
        restored.extend(self.put_back_run_folders());
        if replaced {
            restored.extend(self.put_back_state_files());
            self.home.state = dir_identity(&self.state_dir);
        }
        if restored.is_empty() {
            return;
        }
        let what = if replaced {
            format!("{} was removed", self.state_dir.display())
        } else {
            format!("part of {} was removed", self.state_dir.display())
        };
        self.error(
            None,
            "state",
            format!(
                "{what} while this runtime served the board; put back {}",
                restored.join(", ")
            ),
        );
    }

    /// Re-creates the lock folders (with their owner records) this runtime must hold.
    fn put_back_locks(&self, held: Vec<(String, Owner)>) -> Vec<String> {
        let mut restored = Vec::new();
        for (id, owner) in held {
            match self.locks.read(&id) {
                Some(LockState::Held(o)) if o.instance == self.instance => {}
                None => match self.locks.try_acquire(&id, &owner) {
                    Ok(Some(_)) => restored.push(format!("the lock of {id}")),
                    Ok(None) => {}
                    Err(e) => self.error(
                        Some(&id),
                        "state",
                        format!("cannot put back the lock of a live run: {e}"),
                    ),
                },
                // Being removed, or being written: the next check sees which.
                Some(LockState::Unreadable { .. }) => {}
                Some(LockState::Held(other)) => self.error(
                    Some(&id),
                    "state",
                    format!(
                        "the lock of a live run of this runtime was removed and taken by pid {} \
                         (instance {})",
                        other.pid, other.instance
                    ),
                ),
            }
        }
        restored
    }

    /// Re-creates the live runs' folders: their executors write their result files there.
    fn put_back_run_folders(&self) -> Vec<String> {
        self.active
            .values()
            .filter(|a| !a.run_dir.is_dir() && std::fs::create_dir_all(&a.run_dir).is_ok())
            .map(|a| format!("the run folder {}", a.run_dir.display()))
            .collect()
    }

    /// Writes `state.json` from memory and our pid into `run.lock`. A `run` whose new folder
    /// another `run` locked leaves that one's files alone.
    fn put_back_state_files(&mut self) -> Vec<String> {
        let mut restored = Vec::new();
        if self.mode == Mode::Run && self.home.run_lock.is_none() {
            return restored;
        }
        self.store.file_lost();
        let saved = lock::WriteLock::acquire(&self.state_dir).and_then(|_lock| self.store.save());
        match saved {
            Ok(()) => restored.push("state.json".to_string()),
            Err(e) => self.error(None, "state", format!("cannot save runtime state: {e}")),
        }
        let info = self.state_dir.join("run.lock");
        if let Some(l) = &self.home.run_lock
            && !RunLock::info_is_ours(&info)
        {
            match l.write_info(&info) {
                Ok(()) => restored.push("run.lock".to_string()),
                Err(e) => self.error(
                    None,
                    "state",
                    format!("cannot write {}: {e}", info.display()),
                ),
            }
        }
        restored
    }

    /// For a runtime that does not serve the board: while a `run` does, the claims in the
    /// shared agent's name that show no lock are the `run`'s, so they count as live.
    pub(super) fn defer_to_serving_run(
        &self,
        mut locks: BTreeMap<String, LockView>,
        board: &Board,
    ) -> BTreeMap<String, LockView> {
        if self.home.run_lock.is_some() {
            return locks;
        }
        let active: BTreeSet<String> = self.active.keys().cloned().collect();
        let claims = folder::served_claims(board, &self.config.runtime.agent, &locks, &active);
        if claims.is_empty() {
            return locks;
        }
        let info = self.state_dir.join("run.lock");
        if let Ok(Some(_)) = RunLock::probe(&self.board_dir, &info) {
            for id in claims {
                locks.insert(id, LockView::Live);
            }
        }
        locks
    }
}

fn identity(meta: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    Identity {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

fn links(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

/// The identity of the folder at `path`, if a folder is there.
fn dir_identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| identity(&m))
}

/// Where the system says an open folder is now.
#[cfg(target_os = "linux")]
fn path_of(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// Where the system says an open folder is now.
#[cfg(target_vendor = "apple")]
fn path_of(file: &File) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    // fcntl(F_GETPATH).
    let path = rustix::fs::getpath(file).ok()?;
    Some(PathBuf::from(std::ffi::OsString::from_vec(
        path.into_bytes(),
    )))
}

/// Elsewhere the runtime cannot ask: a moved folder counts as gone.
#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn path_of(_file: &File) -> Option<PathBuf> {
    None
}
