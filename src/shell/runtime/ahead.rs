//! The work tree's snapshot taken as a save begins, for the runs its pass starts
//! ([`evidence::Early`]).
//!
//! The watcher's thread calls [`Lookahead::begin`] on the first event of a batch naming the
//! board; a short-lived thread takes the snapshot while the save's quiet period runs, and a run
//! the pass after it starts takes it ([`Lookahead::take`]) instead of a `git status` of its own
//! between the save and its start. One is kept at a time, serving every save that begins
//! while it is kept, and one left unused is dropped after the last such save's pass
//! ([`Lookahead::forget_served_before`]) or once older than a burst can last:
//! the older a snapshot, the wider its fence.
//!
//! A snapshot costs a `git status` of the whole repository, and most saves of a board ready
//! nothing (an editor's autosave, a note in a description). After one goes unused, none is
//! taken for [`UNUSED_BACKOFF`] times as long as the last one took: in a repository whose
//! `git status` takes 300 ms, a person's saves that ready nothing cost at most a tenth of a
//! core, and a save that readies a task in that time gets a snapshot at its start, as without
//! one. Owns only that hand-over; what a snapshot is and when it still holds are `evidence`'s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::shell::evidence::{self, Early, Hashes, Repo, TreeState};

/// After an early snapshot went unused, how many times as long as the last one took no other
/// is taken.
pub(super) const UNUSED_BACKOFF: u32 = 10;

/// The early snapshot's hand-over between the watcher's thread and the loop.
pub(super) struct Lookahead {
    state: Mutex<AheadState>,
    hashes: Arc<Hashes>,
    /// How long the last snapshot took, in microseconds (set by its thread).
    last_took_us: Arc<AtomicU64>,
    /// The back-off after an unused one ([`UNUSED_BACKOFF`]).
    backoff: u32,
}

struct AheadState {
    /// Where to look: the repository, the board's folder and the board (`None` outside a
    /// repository: nothing is taken).
    aim: Option<(Repo, PathBuf, PathBuf)>,
    /// How old a snapshot may be when taken: a burst's longest span, and then some.
    max_age: Duration,
    slot: Slot,
    /// When the last snapshot was dropped unused, if the one after it has not been used yet.
    unused_since: Option<Instant>,
}

enum Slot {
    Empty,
    /// Being taken, or taken; its thread sends it when done.
    Taking {
        /// When it was asked for.
        asked: Instant,
        /// When the latest save it serves began: a save that begins while one is kept is
        /// served by it too.
        latest: Instant,
        rx: Receiver<Option<Early>>,
    },
}

impl Lookahead {
    pub(super) fn new(hashes: Arc<Hashes>) -> Lookahead {
        Lookahead::with_backoff(hashes, UNUSED_BACKOFF)
    }

    fn with_backoff(hashes: Arc<Hashes>, backoff: u32) -> Lookahead {
        Lookahead {
            state: Mutex::new(AheadState {
                aim: None,
                max_age: Duration::ZERO,
                slot: Slot::Empty,
                unused_since: None,
            }),
            hashes,
            last_took_us: Arc::default(),
            backoff,
        }
    }

    /// How long the last snapshot took (zero before the first has been taken).
    fn last_took(&self) -> Duration {
        Duration::from_micros(self.last_took_us.load(Ordering::Relaxed))
    }

    fn state(&self) -> MutexGuard<'_, AheadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where snapshots are taken from now on, and the watcher's debounce; a snapshot of the
    /// old place is dropped.
    pub(super) fn aim(
        &self,
        repo: Option<Repo>,
        (board_dir, board): (&Path, &Path),
        debounce: Duration,
    ) {
        let aim = repo.map(|r| (r, board_dir.to_path_buf(), board.to_path_buf()));
        let mut state = self.state();
        if state.aim != aim {
            state.aim = aim;
            state.slot = Slot::Empty;
        }
        let bursts = crate::core::quiet::MAX_BURSTS + 1;
        state.max_age = debounce.saturating_mul(bursts) + Duration::from_secs(1);
    }

    /// A save began: starts taking a snapshot, unless one is kept already (it serves as well),
    /// the last one went unused a short while ago ([`UNUSED_BACKOFF`]) or the board is not in
    /// a repository. Runs on the watcher's thread: no waiting.
    pub(super) fn begin(&self) {
        let mut state = self.state();
        let Some((repo, board_dir, board)) = state.aim.clone() else {
            return;
        };
        let max_age = state.max_age;
        if let Slot::Taking { asked, latest, .. } = &mut state.slot
            && asked.elapsed() < max_age
        {
            *latest = Instant::now();
            return;
        }
        if let Some(unused) = state.unused_since
            && unused.elapsed() < self.last_took().saturating_mul(self.backoff)
        {
            tracing::debug!("early snapshot skipped: the last one went unused");
            return;
        }
        let (tx, rx) = mpsc::channel();
        let hashes = Arc::clone(&self.hashes);
        let last_took_us = Arc::clone(&self.last_took_us);
        let spawned = std::thread::Builder::new()
            .name("taskboard-ahead".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let asked = Instant::now();
                let early = evidence::snapshot_early(&repo, &board_dir, &board, &hashes);
                let took = asked.elapsed();
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                last_took_us.store(micros, Ordering::Relaxed);
                let took = took.as_secs_f64() * 1e3;
                match &early {
                    Some(_) => tracing::debug!("early snapshot taken in {took:.1} ms"),
                    None => tracing::debug!("early snapshot failed after {took:.1} ms"),
                }
                let _ = tx.send(early);
            });
        let now = Instant::now();
        state.slot = match spawned {
            Ok(_) => Slot::Taking {
                asked: now,
                latest: now,
                rx,
            },
            Err(e) => {
                tracing::debug!("cannot start a thread for an early snapshot: {e}");
                Slot::Empty
            }
        };
    }

    /// The work tree before a run starting now, from the snapshot taken as the save began
    /// (waited for if still being taken) and fenced at this start; `None` when there is none,
    /// it is too old, or git moved `HEAD`, a branch or the index since ([`Early::at_start`]).
    /// Taken once.
    pub(super) fn take(&self) -> Option<TreeState> {
        let (slot, aim, max_age) = {
            let mut state = self.state();
            let slot = std::mem::replace(&mut state.slot, Slot::Empty);
            if matches!(slot, Slot::Taking { .. }) {
                state.unused_since = None;
            }
            (slot, state.aim.clone(), state.max_age)
        };
        let (Slot::Taking { asked, rx, .. }, Some((repo, _, board))) = (slot, aim) else {
            return None;
        };
        if asked.elapsed() >= max_age {
            return None;
        }
        let waited = Instant::now();
        let early = rx.recv().ok().flatten()?;
        let waited = waited.elapsed().as_secs_f64() * 1e3;
        let tree = early.at_start(&repo, &board);
        match tree {
            Some(_) => tracing::debug!("early snapshot used (waited {waited:.1} ms for it)"),
            None => tracing::debug!("early snapshot not used: HEAD, a branch or the index moved"),
        }
        tree
    }

    /// Drops a snapshot no save serves any more: the saves it serves all began before `at`,
    /// when the pass that had the use of it began.
    pub(super) fn forget_served_before(&self, at: Instant) {
        let mut state = self.state();
        if matches!(state.slot, Slot::Taking { latest, .. } if latest < at) {
            state.slot = Slot::Empty;
            state.unused_since = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::evidence::tests::{git_in, write_in};

    /// A repository with a board, and a lookahead aimed at it.
    fn aimed() -> (tempfile::TempDir, Lookahead) {
        aimed_with(UNUSED_BACKOFF)
    }

    fn aimed_with(backoff: u32) -> (tempfile::TempDir, Lookahead) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git_in(root, &["init", "-q"]);
        write_in(root, "task-board.md", "# Board\n");
        write_in(root, "README.md", "readme\n");
        git_in(root, &["add", "-A"]);
        git_in(root, &["commit", "-qm", "one"]);
        let lookahead = Lookahead::with_backoff(Arc::default(), backoff);
        let repo = Repo::find(root).expect("a repository");
        let board = root.join("task-board.md");
        lookahead.aim(Some(repo), (root, &board), Duration::from_millis(50));
        (dir, lookahead)
    }

    /// A save that begins while a snapshot is kept is served by it: the pass of the save
    /// before does not drop it, and the later save's pass takes it.
    #[test]
    fn a_snapshot_kept_serves_a_save_that_begins_meanwhile() {
        let (_dir, lookahead) = aimed();
        lookahead.begin();
        let first_pass = Instant::now();
        lookahead.begin();
        lookahead.forget_served_before(first_pass);
        assert!(lookahead.take().is_some(), "the second save's pass has it");
        assert!(lookahead.take().is_none(), "taken once");
    }

    /// One no save began after is dropped after the pass that had the use of it.
    #[test]
    fn a_snapshot_no_later_save_needs_is_dropped_after_the_pass() {
        let (_dir, lookahead) = aimed();
        lookahead.begin();
        lookahead.forget_served_before(Instant::now());
        assert!(lookahead.take().is_none());
        // Outside a repository nothing is taken.
        let other = tempfile::tempdir().unwrap();
        let board = other.path().join("task-board.md");
        lookahead.aim(None, (other.path(), &board), Duration::from_millis(50));
        lookahead.begin();
        assert!(lookahead.take().is_none());
    }

    /// Waits until the snapshot being taken is done, without taking it.
    fn done(lookahead: &Lookahead) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lookahead.last_took().is_zero() {
            assert!(Instant::now() < deadline, "the snapshot is not done");
            std::thread::yield_now();
        }
    }

    /// After a snapshot went unused, saves in the back-off take none; one used ends the
    /// back-off, and so does its time running out.
    #[test]
    fn after_an_unused_snapshot_saves_take_none_for_a_while() {
        // A back-off no test's pause can outlast: whether one is taken is the rule's alone.
        let (_dir, lookahead) = aimed_with(1_000_000);
        lookahead.begin();
        done(&lookahead);
        lookahead.forget_served_before(Instant::now());
        lookahead.begin();
        assert!(lookahead.take().is_none(), "none taken in the back-off");

        // Its time run out: a snapshot is taken again, and using it ends the back-off.
        let (_dir, lookahead) = aimed_with(0);
        lookahead.begin();
        done(&lookahead);
        lookahead.forget_served_before(Instant::now());
        lookahead.begin();
        assert!(
            lookahead.take().is_some(),
            "taken once the back-off is over"
        );
        assert_eq!(lookahead.state().unused_since, None, "a used one ends it");
    }
}
