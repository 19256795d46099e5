//! Watching the board for changes made by people, editors and tools.
//!
//! This module owns the file-system watch: it watches the board's folder (not only the file,
//! which editors replace on save), drops every event that does not name the board, and turns
//! what is left into at most one [`WatchSignal`] per debounced batch. On Linux the folder is
//! watched for names only and the board's file for writes (`watch/inotify.rs`), so writes
//! beside the board wake nothing; elsewhere notify watches the folder for everything. It must
//! not read or write the board, interpret event kinds as edits (any event naming the board
//! means "read it again"), or do any work or logging for events about other files: the
//! runtime's own writes beside the board (events.jsonl, temporary files) would otherwise feed
//! back into an endless loop.
//!
//! Opening or reading the board is not a change: those events are dropped, or the runtime's own
//! re-read after each signal would signal again.
//!
//! A symlinked board is resolved once, when the watch starts: the folder of its target is watched
//! too. Pointing the link elsewhere later is not followed: the new target's folder is not
//! watched (on Linux, writes into the new target are still seen, through the link's name).
//!
//! Debouncing is a quiet period: a batch is released one debounce after its last event
//! ([`crate::core::quiet`]), by a thread that blocks until that deadline and, with nothing
//! pending, until the next event: an idle watch never wakes. Events about other files never
//! reach that thread. A batch's first event may also call a hook at once
//! ([`watch_board_and_bursts`]), for work a signal will need that can start in the quiet period.
//!
//! Two more things in the board's folder concern the runtime: the folder itself going away
//! (removed, or renamed: reported as an [`WatchSignal::Error`]) and the runtime's state folder
//! beside the board being removed or renamed ([`WatchSignal::StateRemoved`]). Neither is
//! followed here: the runtime checks where the folder is and rebuilds the watch. While the
//! board's folder is gone, [`watch_for_folder`] watches its parent for it to come back.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use notify::EventKind;
use notify::event::{AccessKind, AccessMode};

use crate::core::quiet::{self, Quiet};

#[cfg(target_os = "linux")]
mod inotify;

// Where the events come from, held for as long as the watch runs: on Linux, inotify asked for
// only what can concern the board; elsewhere, notify's watcher of the folders.
#[cfg(target_os = "linux")]
use inotify::Watch as EventSource;
#[cfg(not(target_os = "linux"))]
use notify::RecommendedWatcher as EventSource;

/// What the watcher tells the runtime.
#[derive(Debug, Clone)]
pub enum WatchSignal {
    /// Something happened to the board: read it again. `detected` is when the first event of
    /// the batch arrived.
    BoardTouched { detected: SystemTime },
    /// Events were lost (queue overflow): read the board again, it may have changed.
    Rescan,
    /// The watch is in trouble (e.g. out of inotify watches, the folder was removed).
    Error(String),
    /// The runtime's state folder beside the board (`.taskboard`) was removed or renamed.
    StateRemoved,
}

/// Why the watch could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// The board's folder does not exist or is not a folder.
    NoFolder(PathBuf),
    /// The board path has no file name (e.g. `/` or `..`).
    NotAFile(PathBuf),
    /// The operating system refused the watch.
    Notify { path: PathBuf, err: String },
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::NoFolder(p) => write!(f, "{}: folder does not exist", p.display()),
            WatchError::NotAFile(p) => write!(f, "{}: not a file name", p.display()),
            WatchError::Notify { path, err } => {
                write!(f, "{}: cannot watch: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for WatchError {}

/// A running watch. Dropping it stops the watch.
pub struct BoardWatcher {
    watcher: Option<EventSource>,
    /// To the debounce thread: tells it to stop.
    tx: Sender<Raw>,
    thread: Option<JoinHandle<()>>,
    folders: Vec<PathBuf>,
}

impl BoardWatcher {
    /// The folders being watched: the board's, and its symlink target's when that differs.
    pub fn folders(&self) -> &[PathBuf] {
        &self.folders
    }

    /// Stop the watch and wait for the debounce thread to end. A batch still pending is dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.watcher.take());
        let _ = self.tx.send(Raw::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BoardWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the notify thread hands the debounce thread.
enum Raw {
    /// An event that concerns the board, its folder or the state folder, and when it came.
    Event(notify::Event, Instant),
    /// The watch failed.
    Error(String),
    /// The watch is stopping.
    Stop,
}

impl fmt::Debug for BoardWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoardWatcher")
            .field("folders", &self.folders)
            .finish_non_exhaustive()
    }
}

/// Which paths concern the board.
#[derive(Debug, Clone)]
struct Filter {
    /// File names of the board (and of its symlink target).
    names: Vec<OsString>,
    /// Watched folders, as notify reports them.
    folders: Vec<PathBuf>,
    /// The name of the runtime's state folder, in the first watched folder.
    state: Option<OsString>,
}

impl Filter {
    fn names_board(&self, p: &Path) -> bool {
        p.file_name()
            .is_some_and(|n| self.names.iter().any(|b| b == n))
    }

    /// Whether `p` is the state folder beside the board.
    fn names_state(&self, p: &Path) -> bool {
        self.state.as_ref().is_some_and(|name| {
            p.file_name() == Some(name.as_os_str())
                && p.parent() == self.folders.first().map(|f| f.as_path())
        })
    }

    /// Whether `ev` can matter to [`Filter::classify`]: only those events are passed on (and
    /// wake the debounce thread); the rest are dropped before any work.
    fn concerns(&self, ev: &notify::Event) -> bool {
        if ev.need_rescan() {
            return true;
        }
        if let EventKind::Access(kind) = ev.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return false;
        }
        ev.paths.iter().any(|p| {
            self.names_board(p) || self.names_state(p) || self.folders.iter().any(|f| f == p)
        })
    }

    /// Turn one batch into signals: at most one `BoardTouched` (or one `Rescan`, which covers
    /// it), plus an `Error` when a watched folder disappeared and a `StateRemoved` when the
    /// state folder was removed or renamed. Only those kinds of event about the state folder
    /// count: the runtime creates it itself, and must not hear its own doing.
    fn classify<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a notify::Event, Instant)>,
    ) -> Vec<WatchSignal> {
        let mut first_touch: Option<Instant> = None;
        let mut rescan = false;
        let mut folder_gone: Option<&Path> = None;
        let mut state_removed = false;
        for (ev, time) in events {
            if ev.need_rescan() {
                rescan = true;
                continue;
            }
            // Opening, reading and closing without writing change nothing.
            if let EventKind::Access(kind) = ev.kind
                && kind != AccessKind::Close(AccessMode::Write)
            {
                continue;
            }
            let removal = matches!(
                ev.kind,
                EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            for p in &ev.paths {
                if removal && self.names_state(p) {
                    state_removed = true;
                } else if self.names_board(p) {
                    first_touch = Some(first_touch.map_or(time, |t| t.min(time)));
                } else if let Some(f) = self.folders.iter().find(|f| *f == p)
                    && !f.is_dir()
                {
                    folder_gone = Some(f);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(f) = folder_gone {
            out.push(WatchSignal::Error(format!(
                "{}: the board's folder was removed or renamed",
                f.display()
            )));
        }
        if state_removed {
            out.push(WatchSignal::StateRemoved);
        }
        if rescan {
            out.push(WatchSignal::Rescan);
        } else if let Some(t) = first_touch {
            let now = SystemTime::now();
            let detected = now.checked_sub(t.elapsed()).unwrap_or(now);
            out.push(WatchSignal::BoardTouched { detected });
        }
        out
    }
}

fn notify_message(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => "out of file watches (on Linux raise \
             fs.inotify.max_user_watches, or close other watching programs)"
            .to_string(),
        _ => e.to_string().replace('\n', " "),
    }
}

fn folder_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Watch `board` and call `on_signal` for each debounced batch that concerns it.
///
/// The board's folder must exist; the board itself need not (it may appear later). `debounce` is
/// the quiet period: a batch is released once no event has come for that long (or once it has
/// gone on for [`quiet::MAX_BURSTS`] debounces without a pause).
/// `on_signal` runs on the watcher's thread: keep it short (send on a channel).
pub fn watch_board(
    board: &Path,
    debounce: Duration,
    on_signal: impl Fn(WatchSignal) + Send + 'static,
) -> Result<BoardWatcher, WatchError> {
    watch_board_and_bursts(board, debounce, || {}, on_signal)
}

/// [`watch_board`], calling `on_burst` too as each batch's first event arrives, a quiet
/// period before the batch's signal: time for work the signal may need to be done ahead
/// (the runtime's early snapshot of the work tree). `on_burst` runs on the watcher's thread
/// and must not wait; what it starts may be in vain (the batch may be the runtime's own write).
pub fn watch_board_and_bursts(
    board: &Path,
    debounce: Duration,
    on_burst: impl Fn() + Send + 'static,
    on_signal: impl Fn(WatchSignal) + Send + 'static,
) -> Result<BoardWatcher, WatchError> {
    let name = board
        .file_name()
        .ok_or_else(|| WatchError::NotAFile(board.to_path_buf()))?;
    let folder = folder_of(board);
    let folder = match std::fs::canonicalize(&folder) {
        Ok(f) if f.is_dir() => f,
        _ => return Err(WatchError::NoFolder(folder)),
    };
    let state = crate::shell::fsio::state_dir(board)
        .file_name()
        .map(|n| n.to_os_string());
    let mut filter = Filter {
        names: vec![name.to_os_string()],
        folders: vec![folder],
        state,
    };
    // A symlinked board: its target may live elsewhere and be edited there.
    if let Ok(target) = std::fs::canonicalize(board)
        && let Some(target_name) = target.file_name()
    {
        if !filter.names.iter().any(|n| n == target_name) {
            filter.names.push(target_name.to_os_string());
        }
        let target_folder = folder_of(&target);
        if !filter.folders.contains(&target_folder) {
            filter.folders.push(target_folder);
        }
    }

    start(filter, true, debounce, on_burst, on_signal)
}

/// Watch the parent of `folder` for `folder` to appear again (created, renamed into place):
/// each batch naming it gives one [`WatchSignal::Rescan`]. For a board whose folder is gone.
pub fn watch_for_folder(
    folder: &Path,
    debounce: Duration,
    on_signal: impl Fn(WatchSignal) + Send + 'static,
) -> Result<BoardWatcher, WatchError> {
    let name = folder
        .file_name()
        .ok_or_else(|| WatchError::NotAFile(folder.to_path_buf()))?;
    let parent = folder_of(folder);
    let parent = match std::fs::canonicalize(&parent) {
        Ok(f) if f.is_dir() => f,
        _ => return Err(WatchError::NoFolder(parent)),
    };
    let filter = Filter {
        names: vec![name.to_os_string()],
        folders: vec![parent],
        state: None,
    };
    start(
        filter,
        false,
        debounce,
        || {},
        move |signal| match signal {
            WatchSignal::BoardTouched { .. } => on_signal(WatchSignal::Rescan),
            other => on_signal(other),
        },
    )
}

/// The longest debounce honoured: keeps every deadline within what an `Instant` can hold.
const MAX_DEBOUNCE: Duration = Duration::from_secs(3600);

/// Starts the source and the debounce thread. `writes`: the board's own file is watched for
/// writes (not only its name), as it is for a board but not for a folder awaited.
fn start(
    filter: Filter,
    writes: bool,
    debounce: Duration,
    on_burst: impl Fn() + Send + 'static,
    on_signal: impl Fn(WatchSignal) + Send + 'static,
) -> Result<BoardWatcher, WatchError> {
    let (tx, rx) = mpsc::channel();
    let handler_filter = filter.clone();
    let handler_tx = tx.clone();
    // Runs on notify's thread: drop what does not concern the board before anything else.
    let handler = move |result: notify::Result<notify::Event>| {
        let raw = match result {
            Ok(ev) if handler_filter.concerns(&ev) => Raw::Event(ev, Instant::now()),
            Ok(_) => return,
            Err(e) => Raw::Error(notify_message(&e)),
        };
        let _ = handler_tx.send(raw);
    };
    let notify_err = |path: &Path, e: notify::Error| WatchError::Notify {
        path: path.to_path_buf(),
        err: notify_message(&e),
    };
    #[cfg(target_os = "linux")]
    let watcher = inotify::watch(&filter.folders, &filter.names, writes, Box::new(handler))
        .map_err(|(path, e)| notify_err(&path, e))?;
    #[cfg(not(target_os = "linux"))]
    let watcher = {
        use notify::{RecursiveMode, Watcher};
        let _ = writes;
        let mut watcher =
            notify::recommended_watcher(handler).map_err(|e| notify_err(&filter.folders[0], e))?;
        for f in &filter.folders {
            watcher
                .watch(f, RecursiveMode::NonRecursive)
                .map_err(|e| notify_err(f, e))?;
        }
        watcher
    };
    let debounce = debounce.min(MAX_DEBOUNCE);
    let thread_filter = filter.clone();
    let thread = std::thread::Builder::new()
        .name("taskboard-watch".into())
        .stack_size(128 * 1024)
        .spawn(move || debounce_loop(&rx, &thread_filter, debounce, &on_burst, &on_signal))
        .map_err(|e| WatchError::Notify {
            path: filter.folders[0].clone(),
            err: e.to_string(),
        })?;
    Ok(BoardWatcher {
        watcher: Some(watcher),
        tx,
        thread: Some(thread),
        folders: filter.folders,
    })
}

/// The debounce thread: collects a burst of events and releases it as signals once
/// [`quiet::decide`] says it is over. With nothing pending it blocks until the next event.
fn debounce_loop(
    rx: &Receiver<Raw>,
    filter: &Filter,
    debounce: Duration,
    on_burst: &dyn Fn(),
    on_signal: &dyn Fn(WatchSignal),
) {
    let mut pending: Vec<(notify::Event, Instant)> = Vec::new();
    // The burst's first and last event times.
    let mut burst: Option<(Instant, Instant)> = None;
    loop {
        let received = match burst {
            None => match rx.recv() {
                Ok(raw) => raw,
                Err(_) => return,
            },
            Some((first, last)) => {
                let now = Instant::now();
                match quiet::decide(first, last, debounce, now) {
                    Quiet::Fire => {
                        let batch = pending.iter().map(|(e, t)| (e, *t));
                        for signal in filter.classify(batch) {
                            on_signal(signal);
                        }
                        pending.clear();
                        burst = None;
                        continue;
                    }
                    Quiet::WaitUntil(at) => match rx.recv_timeout(at - now) {
                        Ok(raw) => raw,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    },
                }
            }
        };
        match received {
            Raw::Event(ev, time) => {
                if burst.is_none() {
                    on_burst();
                }
                burst = Some(burst.map_or((time, time), |(first, last)| {
                    (first.min(time), last.max(time))
                }));
                pending.push((ev, time));
            }
            Raw::Error(msg) => on_signal(WatchSignal::Error(msg)),
            Raw::Stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::Event;
    use notify::event::{CreateKind, DataChange, Flag, ModifyKind, RemoveKind, RenameMode};

    fn filter() -> Filter {
        Filter {
            names: vec!["task-board.md".into()],
            folders: vec![PathBuf::from("/nonexistent-taskboard-dir")],
            state: Some(".taskboard".into()),
        }
    }

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    fn classify(events: &[Event]) -> Vec<WatchSignal> {
        let now = Instant::now();
        filter().classify(events.iter().map(|e| (e, now)))
    }

    const DIR: &str = "/nonexistent-taskboard-dir";

    #[test]
    fn other_files_are_dropped() {
        let evs = [
            ev(EventKind::Create(CreateKind::File), &["/d/events.jsonl"]),
            ev(
                EventKind::Create(CreateKind::File),
                &["/d/.task-board.md.taskboard-1-2.tmp"],
            ),
            ev(EventKind::Create(CreateKind::File), &["/d/4913"]),
            ev(EventKind::Remove(RemoveKind::File), &["/d/task-board.md~"]),
            ev(
                EventKind::Create(CreateKind::File),
                &["/d/.task-board.md.swp"],
            ),
            ev(EventKind::Create(CreateKind::File), &["/d/.#task-board.md"]),
            ev(
                EventKind::Create(CreateKind::File),
                &["/d/sub/x/task-board.mdx"],
            ),
        ];
        assert!(classify(&evs).is_empty());
    }

    #[test]
    fn one_signal_per_batch() {
        let evs = [
            ev(EventKind::Remove(RemoveKind::File), &["/d/task-board.md"]),
            ev(EventKind::Create(CreateKind::File), &["/d/task-board.md"]),
            ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/d/task-board.md"],
            ),
            ev(EventKind::Create(CreateKind::File), &["/d/events.jsonl"]),
        ];
        let s = classify(&evs);
        assert_eq!(s.len(), 1);
        assert!(matches!(s[0], WatchSignal::BoardTouched { .. }));
    }

    #[test]
    fn renames_match_on_either_path() {
        let to = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/d/.task-board.md.tmp", "/d/task-board.md"],
        );
        let from = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/d/task-board.md", "/d/task-board.md~"],
        );
        assert_eq!(classify(&[to]).len(), 1);
        assert_eq!(classify(&[from]).len(), 1);
    }

    #[test]
    fn reading_the_board_is_not_a_change() {
        let evs = [
            ev(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["/d/task-board.md"],
            ),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/d/task-board.md"],
            ),
            ev(EventKind::Access(AccessKind::Read), &["/d/task-board.md"]),
        ];
        assert!(classify(&evs).is_empty());
        let write = ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &["/d/task-board.md"],
        );
        assert_eq!(classify(&[write]).len(), 1);
    }

    #[test]
    fn rescan_covers_touches() {
        let evs = [
            ev(EventKind::Other, &[]).set_flag(Flag::Rescan),
            ev(EventKind::Create(CreateKind::File), &["/d/task-board.md"]),
        ];
        let s = classify(&evs);
        assert_eq!(s.len(), 1);
        assert!(matches!(s[0], WatchSignal::Rescan));
    }

    #[test]
    fn folder_gone_is_an_error() {
        let s = classify(&[ev(EventKind::Remove(RemoveKind::Folder), &[DIR])]);
        assert_eq!(s.len(), 1);
        assert!(matches!(&s[0], WatchSignal::Error(m) if m.contains("folder was removed")));
    }

    #[test]
    fn the_state_folder_removed_or_renamed_is_signalled_but_not_its_creation() {
        let state = "/nonexistent-taskboard-dir/.taskboard";
        for kind in [
            EventKind::Remove(RemoveKind::Folder),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            let s = classify(&[ev(kind, &[state])]);
            assert!(matches!(&s[..], [WatchSignal::StateRemoved]), "{s:?}");
        }
        assert!(classify(&[ev(EventKind::Create(CreateKind::Folder), &[state])]).is_empty());
        // A `.taskboard` elsewhere (a sub-folder's) is not ours.
        let other = ev(EventKind::Remove(RemoveKind::Folder), &["/d/x/.taskboard"]);
        assert!(classify(&[other]).is_empty());
    }

    #[test]
    fn only_events_that_can_matter_are_passed_on() {
        let f = filter();
        let state = "/nonexistent-taskboard-dir/.taskboard";
        let passed = [
            ev(EventKind::Create(CreateKind::File), &["/d/task-board.md"]),
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/d/.task-board.md.tmp", "/d/task-board.md"],
            ),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/d/task-board.md"],
            ),
            ev(EventKind::Remove(RemoveKind::Folder), &[state]),
            ev(EventKind::Remove(RemoveKind::Folder), &[DIR]),
            ev(EventKind::Other, &[]).set_flag(Flag::Rescan),
        ];
        for e in &passed {
            assert!(f.concerns(e), "{e:?}");
        }
        let dropped = [
            ev(EventKind::Create(CreateKind::File), &["/d/events.jsonl"]),
            ev(EventKind::Create(CreateKind::File), &["/d/4913"]),
            ev(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["/d/task-board.md"],
            ),
            ev(EventKind::Access(AccessKind::Read), &["/d/task-board.md"]),
        ];
        for e in &dropped {
            assert!(!f.concerns(e), "{e:?}");
        }
    }

    #[test]
    fn detected_is_the_first_event() {
        let later = Instant::now();
        let earlier = later - Duration::from_millis(500);
        let a = ev(EventKind::Create(CreateKind::File), &["/d/task-board.md"]);
        let b = ev(EventKind::Create(CreateKind::File), &["/d/task-board.md"]);
        let s = filter().classify([(&a, later), (&b, earlier)]);
        let WatchSignal::BoardTouched { detected } = s[0] else {
            panic!("{s:?}")
        };
        let age = SystemTime::now().duration_since(detected).unwrap();
        assert!(age >= Duration::from_millis(500), "{age:?}");
    }
}
