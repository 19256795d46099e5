//! The work tree's snapshot taken as a save begins, for the runs its pass starts
//! ([`evidence::Early`]).
//!
//! The watcher's thread calls [`Lookahead::begin`] on the first event of a batch naming the
//! board; a short-lived thread takes the snapshot while the save's quiet period runs, and a run
//! the pass after it starts takes it ([`Lookahead::take`]) instead of a `git status` of its own
//! between the save and its start. One is kept at a time, serving every save that begins
//! while it is kept, and one left unused is dropped after the last such save's pass
//! ([`Lookahead::forget_served_before`]) or once older than a burst can last:
//! the older a snapshot, the wider its fence. Owns only that hand-over; what a snapshot is and
//! when it still holds are `evidence`'s.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::shell::evidence::{self, Early, Hashes, Repo, TreeState};

/// The early snapshot's hand-over between the watcher's thread and the loop.
pub(super) struct Lookahead {
    state: Mutex<AheadState>,
    hashes: Arc<Hashes>,
}

struct AheadState {
    /// Where to look: the repository, the board's folder and the board (`None` outside a
    /// repository: nothing is taken).
    aim: Option<(Repo, PathBuf, PathBuf)>,
    /// How old a snapshot may be when taken: a burst's longest span, and then some.
    max_age: Duration,
    slot: Slot,
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
        Lookahead {
            state: Mutex::new(AheadState {
                aim: None,
                max_age: Duration::ZERO,
                slot: Slot::Empty,
            }),
            hashes,
        }
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

    /// A save began: starts taking a snapshot, unless one is being taken already (it serves as
    /// well) or the board is not in a repository. Runs on the watcher's thread: no waiting.
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
        let (tx, rx) = mpsc::channel();
        let hashes = Arc::clone(&self.hashes);
        let spawned = std::thread::Builder::new()
            .name("taskboard-ahead".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let asked = Instant::now();
                let early = evidence::snapshot_early(&repo, &board_dir, &board, &hashes);
                let took = asked.elapsed().as_secs_f64() * 1e3;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::evidence::tests::{git_in, write_in};

    /// A repository with a board, and a lookahead aimed at it.
    fn aimed() -> (tempfile::TempDir, Lookahead) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git_in(root, &["init", "-q"]);
        write_in(root, "task-board.md", "# Board\n");
        write_in(root, "README.md", "readme\n");
        git_in(root, &["add", "-A"]);
        git_in(root, &["commit", "-qm", "one"]);
        let lookahead = Lookahead::new(Arc::default());
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
}
