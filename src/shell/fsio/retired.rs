//! Boards taken out of place by an exchange, kept under their temporary name for a while
//! before they are removed.
//!
//! Why: the check of a board just swapped out sees every program that has it open, but not an
//! `open` that looked the board's name up before the exchange and was descheduled before the
//! kernel counted it as a writer. Its write lands in the swapped-out file after the check; were
//! that file removed at once, the save would go with it (seen under load: an editor's in-place
//! save, made as the runtime wrote a run's ending, was lost). So each one is retired here and
//! looked at again [`LATE_OPEN_GRACE`] after it was last seen unchanged, by one thread: left as it
//! was, it is removed; written to, the save in it goes back in the board's place if the board is
//! still the one put there, and is otherwise kept beside the board as `<temporary name>.kept`.
//!
//! Owns: the retired files and that thread. Must not touch any other file than the board and
//! its temporary files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{FileStamp, Written, exchange, kept_beside, once_written};
use crate::shell::lease::{NoLease, ReadLease};

/// What became of a save found in a board after it was taken out of place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LateSave {
    /// It is the board again.
    PutBack { board: PathBuf },
    /// The board had changed again since: the save is kept in `kept`, beside it.
    Kept { board: PathBuf, kept: PathBuf },
}

/// Where [`LateSave`]s are told (the runtime's event log, which logs them); unset, they are
/// logged here.
type Reporter = Box<dyn Fn(LateSave) + Send + Sync>;

fn reporter() -> &'static Mutex<Option<Reporter>> {
    static REPORTER: OnceLock<Mutex<Option<Reporter>>> = OnceLock::new();
    REPORTER.get_or_init(|| Mutex::new(None))
}

/// Tells every [`LateSave`] from now on to `report` (replacing any earlier one).
pub fn report_late_saves_to(report: impl Fn(LateSave) + Send + Sync + 'static) {
    *reporter().lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(report));
}

/// Tells the reporter, or, where none is set (a command), the log.
fn report(late: LateSave) {
    let reporter = reporter().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(report) = reporter.as_ref() {
        return report(late);
    }
    match &late {
        LateSave::PutBack { board } => {
            tracing::warn!(board = %board.display(), "a save that landed in the board just after it was replaced is put back in place");
        }
        LateSave::Kept { board, kept } => {
            tracing::error!(board = %board.display(), kept = %kept.display(), "a save that landed in the board just after it was replaced is kept beside it");
        }
    }
}

/// How long a swapped-out board is kept after it was last seen unchanged: far longer than a
/// program stays descheduled inside one `open` on a loaded machine.
pub const LATE_OPEN_GRACE: Duration = Duration::from_millis(500);

/// A board taken out of place, waiting under its temporary name.
#[derive(Debug)]
struct Retired {
    path: PathBuf,
    /// The board's path (the real file, never a link to it).
    board: PathBuf,
    /// The retired file when it was last seen unchanged.
    seen: FileStamp,
    /// The board in place once this one was taken out (none when it was gone): a save found in
    /// this one goes back only over that.
    put: Option<FileStamp>,
    due: Instant,
}

#[derive(Default)]
struct RetiredBoards {
    state: Mutex<RetiredList>,
    changed: Condvar,
}

#[derive(Default)]
struct RetiredList {
    waiting: Vec<Retired>,
    /// How many are being looked at now, out of `waiting`.
    busy: usize,
}

fn queue() -> &'static RetiredBoards {
    static QUEUE: OnceLock<RetiredBoards> = OnceLock::new();
    QUEUE.get_or_init(RetiredBoards::default)
}

impl RetiredBoards {
    fn lock(&self) -> std::sync::MutexGuard<'_, RetiredList> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Retires `path`, just taken out of `board`'s place and checked unchanged (`seen`), with `put`
/// the board now in place. Where no thread can be started, it is looked at here, once its time
/// has come.
pub(super) fn retire(path: &Path, board: &Path, seen: &fs::Metadata) {
    queue_or_wait(Retired {
        path: path.to_path_buf(),
        board: board.to_path_buf(),
        seen: FileStamp::of(seen),
        put: FileStamp::at(board),
        due: Instant::now() + LATE_OPEN_GRACE,
    });
}

fn queue_or_wait(retired: Retired) {
    static THREAD: OnceLock<bool> = OnceLock::new();
    let started = *THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("taskboard-retired".into())
            .spawn(watch)
            .is_ok()
    });
    if started {
        let q = queue();
        q.lock().waiting.push(retired);
        q.changed.notify_all();
    } else {
        std::thread::sleep(retired.due.saturating_duration_since(Instant::now()));
        for again in look(retired) {
            queue_or_wait(again);
        }
    }
}

/// The thread: looks at each retired board once its time has come.
fn watch() {
    let q = queue();
    let mut state = q.lock();
    loop {
        let now = Instant::now();
        let (due, waiting): (Vec<Retired>, Vec<Retired>) = std::mem::take(&mut state.waiting)
            .into_iter()
            .partition(|r| r.due <= now);
        state.waiting = waiting;
        if !due.is_empty() {
            state.busy = due.len();
            drop(state);
            let again: Vec<Retired> = due.into_iter().flat_map(look).collect();
            state = q.lock();
            state.busy = 0;
            state.waiting.extend(again);
            q.changed.notify_all();
            continue;
        }
        state = match state.waiting.iter().map(|r| r.due).min() {
            Some(next) => {
                let wait = next.saturating_duration_since(now);
                (q.changed.wait_timeout(state, wait))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => q
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// Waits until every board retired so far has been looked at and settled (at most
/// [`LATE_OPEN_GRACE`] and the time a writer keeps one open), so that a process leaves none of
/// its temporary files behind.
pub fn settle_all() {
    let q = queue();
    let mut state = q.lock();
    while !state.waiting.is_empty() || state.busy > 0 {
        state = q
            .changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Looks at one retired board now; what is still to be looked at later.
fn look(r: Retired) -> Vec<Retired> {
    let now = match fs::metadata(&r.path) {
        Ok(meta) => FileStamp::of(&meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %r.path.display(), error = %e, "a replaced board could not be looked at; it is left in place");
            return Vec::new();
        }
    };
    if now == r.seen {
        return match ReadLease::take(&r.path) {
            // Someone has it open for writing after all: look again once they are done.
            Err(NoLease::InUse) => vec![Retired {
                due: Instant::now() + LATE_OPEN_GRACE,
                ..r
            }],
            _ => {
                let _ = fs::remove_file(&r.path);
                Vec::new()
            }
        };
    }
    // Written since: a save that came late. Once its writer is done, it goes back in place.
    let written = match once_written(&r.path) {
        Ok(Written::Settled(meta)) => FileStamp::of(&meta),
        Ok(Written::StillOpen) => {
            return vec![Retired {
                due: Instant::now() + LATE_OPEN_GRACE,
                ..r
            }];
        }
        Err(e) => {
            tracing::error!(path = %r.path.display(), error = %e, "a replaced board that was written to could not be looked at");
            report(LateSave::Kept {
                kept: kept_beside(&r.path),
                board: r.board,
            });
            return Vec::new();
        }
    };
    if let Some(put) = r.put
        && FileStamp::at(&r.board) == Some(put)
        && exchange(&r.path, &r.board).unwrap_or(false)
    {
        match FileStamp::at(&r.path) {
            // What came out is what was there (the two share a folder, so an inode names a
            // file): the late save is the board now.
            Some(out) if out.ino == put.ino => {
                report(LateSave::PutBack {
                    board: r.board.clone(),
                });
                // The board taken out now may take a late write in its turn.
                return vec![Retired {
                    path: r.path,
                    board: r.board.clone(),
                    seen: out,
                    put: FileStamp::at(&r.board).or(Some(written)),
                    due: Instant::now() + LATE_OPEN_GRACE,
                }];
            }
            // The board changed in between: undo, and keep the save beside it.
            _ => {
                let _ = exchange(&r.path, &r.board);
            }
        }
    }
    report(LateSave::Kept {
        kept: kept_beside(&r.path),
        board: r.board,
    });
    Vec::new()
}
