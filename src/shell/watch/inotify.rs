//! The watch's source on Linux: inotify, asked for only what can concern the board.
//!
//! Each watched folder is watched for names coming and going (created, removed, renamed in or
//! out) and for its own removal or move; the file each board name holds is watched for writes
//! (written, closed after writing, attributes changed). The folder's other files are not
//! watched for writes, so the runtime's appends to `events.jsonl` beside the board, and its
//! reads of the board, wake no thread: a folder-wide watch (notify's, which also asks for every
//! open) woke one for each. After a batch that names a board name, the file watch moves to the
//! file the name holds then (an editor's save renames a new file into place); a write to that
//! file between its arrival and the move is earlier than the arrival's event as read, so the
//! quiet period after the last event still covers it.
//!
//! Events are handed on as `notify` events, the type the rest of the watch reads, with the path
//! they name: a folder's event names the folder or the entry in it, a file's the board's path.
//!
//! Must not touch: anything but the inotify descriptor and its thread.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::thread::JoinHandle;

use notify::event::{
    AccessKind, AccessMode, CreateKind, DataChange, Flag, MetadataKind, ModifyKind, RemoveKind,
    RenameMode,
};
use notify::{Event, EventKind};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// What a folder is watched for: names, and the folder itself.
const FOLDER_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// What the board's file is watched for: writes.
const FILE_EVENTS: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::ATTRIB);

/// What a folder is watched for while a board name there holds a file that cannot be watched
/// itself (unreadable to this process, a symlink loop): names, and its entries' writes.
const FOLDER_AND_WRITES: WatchFlags = FOLDER_EVENTS.union(FILE_EVENTS);

/// The `notify` kind of each change inotify reports, for a file and for a folder (the watched
/// folder itself, or an entry that is one): a record's first change in this list names it.
const KINDS: [(ReadFlags, EventKind, EventKind); 11] = {
    use EventKind::{Access, Create, Modify, Remove};
    let renamed = Modify(ModifyKind::Name(RenameMode::Any));
    let from = Modify(ModifyKind::Name(RenameMode::From));
    let to = Modify(ModifyKind::Name(RenameMode::To));
    let written = Access(AccessKind::Close(AccessMode::Write));
    let data = Modify(ModifyKind::Data(DataChange::Any));
    let meta = Modify(ModifyKind::Metadata(MetadataKind::Any));
    let opened = Access(AccessKind::Open(AccessMode::Any));
    let read = Access(AccessKind::Close(AccessMode::Read));
    let gone = Remove(RemoveKind::Folder);
    [
        (ReadFlags::DELETE_SELF, gone, gone),
        (ReadFlags::MOVE_SELF, renamed, renamed),
        (
            ReadFlags::CREATE,
            Create(CreateKind::File),
            Create(CreateKind::Folder),
        ),
        (ReadFlags::DELETE, Remove(RemoveKind::File), gone),
        (ReadFlags::MOVED_FROM, from, from),
        (ReadFlags::MOVED_TO, to, to),
        (ReadFlags::CLOSE_WRITE, written, written),
        (ReadFlags::MODIFY, data, data),
        (ReadFlags::ATTRIB, meta, meta),
        (ReadFlags::OPEN, opened, opened),
        (ReadFlags::CLOSE_NOWRITE, read, read),
    ]
};

/// Receives each event, or an error that stops nothing.
pub type Handler = Box<dyn FnMut(notify::Result<Event>) + Send>;

/// A running inotify watch; dropping it stops its thread.
pub struct Watch {
    /// Written to on drop: wakes the thread to end.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    /// The inotify descriptor's number, for a test to read its watches from `/proc`.
    #[cfg(test)]
    fd: i32,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = rustix::io::write(&stop, &[1]);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches `folders` for names, and, when `files` is set, the file each of `names` holds in
/// them for writes. The folders are watched before this returns.
pub fn watch(
    folders: &[PathBuf],
    names: &[OsString],
    files: bool,
    handler: Handler,
) -> Result<Watch, (PathBuf, notify::Error)> {
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
        .map_err(|e| (folders[0].clone(), error(e)))?;
    let mut state = Watched {
        folders: HashMap::new(),
        files: HashMap::new(),
        boards: if files {
            board_paths(folders, names)
        } else {
            Vec::new()
        },
        names: names.to_vec(),
        folder_writes: false,
        handler,
    };
    for f in folders {
        let wd = inotify::add_watch(&fd, f, FOLDER_EVENTS).map_err(|e| (f.clone(), error(e)))?;
        state.folders.insert(wd, f.clone());
    }
    state.follow_boards(fd.as_fd());
    let (stop_read, stop_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| (folders[0].clone(), error(e)))?;
    #[cfg(test)]
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let thread = std::thread::Builder::new()
        .name("taskboard-inotify".into())
        .stack_size(128 * 1024)
        .spawn(move || state.run(&fd, &stop_read))
        .map_err(|e| (folders[0].clone(), notify::Error::io(e)))?;
    Ok(Watch {
        stop: Some(stop_write),
        thread: Some(thread),
        #[cfg(test)]
        fd: raw,
    })
}

fn error(e: Errno) -> notify::Error {
    match e {
        // Out of watches (ENOSPC) or of inotify instances (EMFILE): what notify says.
        Errno::NOSPC | Errno::MFILE => notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        e => notify::Error::io(e.into()),
    }
}

struct Watched {
    /// Folder watches.
    folders: HashMap<i32, PathBuf>,
    /// File watches, by watch, and the board path each was taken for.
    files: HashMap<i32, PathBuf>,
    /// The board paths whose files are watched (none when only names matter).
    boards: Vec<PathBuf>,
    /// The board names, as in the folders' events.
    names: Vec<OsString>,
    /// Whether the folders are watched for their entries' writes too ([`FOLDER_AND_WRITES`]).
    folder_writes: bool,
    handler: Handler,
}

impl Watched {
    fn run(mut self, fd: &OwnedFd, stop: &OwnedFd) {
        // Aligned for the kernel's records by the reader; one read takes many.
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut records: Vec<(i32, ReadFlags, Option<OsString>)> = Vec::new();
        loop {
            let mut fds = [
                PollFd::new(fd, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => {
                    (self.handler)(Err(error(e)));
                    return;
                }
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            let mut reader = inotify::Reader::new(fd.as_fd(), &mut buf);
            loop {
                match reader.next() {
                    Ok(ev) => records.push((
                        ev.wd(),
                        ev.events(),
                        ev.file_name()
                            .map(|n| OsStr::from_bytes(n.to_bytes()).to_owned()),
                    )),
                    Err(Errno::AGAIN) | Err(Errno::INTR) => break,
                    Err(e) => {
                        (self.handler)(Err(error(e)));
                        return;
                    }
                }
            }
            let mut names_moved = false;
            for (wd, mask, name) in records.drain(..) {
                // Lost events may have moved the board's name too.
                names_moved |= name.as_ref().is_some_and(|n| self.names.contains(n))
                    || mask.contains(ReadFlags::QUEUE_OVERFLOW);
                if let Some(ev) = self.event(wd, mask, name.as_deref()) {
                    (self.handler)(Ok(ev));
                }
            }
            if names_moved {
                self.follow_boards(fd.as_fd());
            }
        }
    }

    /// The `notify` event for one inotify record, if it says anything: any change the kernel
    /// reports, named by the folder's entry, the folder, or the board's path.
    fn event(&mut self, wd: i32, mask: ReadFlags, name: Option<&OsStr>) -> Option<Event> {
        if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
            return Some(Event::new(EventKind::Other).set_flag(Flag::Rescan));
        }
        if mask.contains(ReadFlags::IGNORED) {
            // The watch is gone (its file or folder is, or it was moved off): forget it. A
            // folder's removal was reported by its own event.
            self.files.remove(&wd);
            self.folders.remove(&wd);
            return None;
        }
        let path = match (self.folders.get(&wd), name) {
            (Some(folder), Some(n)) => folder.join(n),
            (Some(folder), None) => folder.clone(),
            (None, _) => self.files.get(&wd)?.clone(),
        };
        let folder = mask.contains(ReadFlags::ISDIR);
        let kind = KINDS.iter().find(|(flag, ..)| mask.contains(*flag)).map_or(
            EventKind::Other,
            |&(_, file, dir)| if folder { dir } else { file },
        );
        Some(Event::new(kind).add_path(path))
    }

    /// Watches the file each board path holds now, and stops watching the files they held
    /// before: a file renamed away from the board's name is no longer the board.
    /// A board name whose file cannot be watched turns the folders' watch of their entries'
    /// writes on, until every board file can be: its change of mode, or a new file, is then
    /// a folder event naming the board, and this runs again.
    fn follow_boards(&mut self, fd: BorrowedFd<'_>) {
        let mut now: HashMap<i32, PathBuf> = HashMap::new();
        let mut unwatchable = false;
        for board in &self.boards {
            match inotify::add_watch(fd, board, FILE_EVENTS) {
                Ok(wd) => {
                    now.entry(wd).or_insert_with(|| board.clone());
                }
                // No file by that name now (between an editor's rename and its new file, or
                // deleted): its arrival is a folder event, and this runs again then.
                Err(Errno::NOENT) => {}
                Err(Errno::ACCESS) | Err(Errno::PERM) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    unwatchable = true;
                }
                Err(e) => {
                    unwatchable = true;
                    (self.handler)(Err(error(e)));
                }
            }
        }
        for (wd, _) in self.files.iter().filter(|(wd, _)| !now.contains_key(wd)) {
            let _ = inotify::remove_watch(fd, *wd);
        }
        self.files = now;
        if unwatchable != self.folder_writes {
            let mask = if unwatchable {
                FOLDER_AND_WRITES
            } else {
                FOLDER_EVENTS
            };
            let folders: Vec<PathBuf> = self.folders.values().cloned().collect();
            for f in folders {
                // The same folder keeps its watch, with the new mask.
                match inotify::add_watch(fd, &f, mask) {
                    Ok(wd) => {
                        self.folders.insert(wd, f);
                    }
                    Err(e) => (self.handler)(Err(error(e))),
                }
            }
            self.folder_writes = unwatchable;
        }
    }
}

/// The board paths a watch of `folders` and `names` follows: each name in each folder (a
/// symlinked board's name and its target's, in the link's folder and the target's).
fn board_paths(folders: &[PathBuf], names: &[OsString]) -> Vec<PathBuf> {
    folders
        .iter()
        .flat_map(|f| names.iter().map(move |n| f.join(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{self, Receiver};
    use std::time::{Duration, Instant};

    use super::*;

    /// A watch of `dir` for `task-board.md`, and what it hands on.
    fn watching(dir: &std::path::Path) -> (Watch, Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        let handler: Handler = Box::new(move |r| {
            let _ = tx.send(r.unwrap());
        });
        let names = ["task-board.md".into()];
        let w = watch(
            std::slice::from_ref(&dir.to_path_buf()),
            &names,
            true,
            handler,
        )
        .unwrap();
        (w, rx)
    }

    /// Changes the board's mode until that is seen (a file that just arrived is watched only
    /// once its arrival is read) and returns every event handed on up to and including the one
    /// that says so: the queue is in order, so what came before it was caused before it.
    fn up_to_a_mode_change(board: &std::path::Path, rx: &Receiver<Event>) -> Vec<Event> {
        use std::os::unix::fs::PermissionsExt;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let mode = std::fs::metadata(board).unwrap().permissions().mode();
            let flipped = if mode & 0o4 != 0 {
                mode & !0o4
            } else {
                mode | 0o4
            };
            std::fs::set_permissions(board, std::fs::Permissions::from_mode(flipped)).unwrap();
            while let Ok(e) = rx.recv_timeout(Duration::from_millis(50)) {
                let marker = matches!(e.kind, EventKind::Modify(ModifyKind::Metadata(_)));
                seen.push(e);
                if marker {
                    return seen;
                }
            }
        }
        panic!("the board's mode change was not seen; before it: {seen:?}");
    }

    /// How many watches the kernel holds for `w`: its folder's, and one per file followed.
    fn watches(w: &Watch) -> usize {
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", w.fd))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .count()
    }

    fn paths(events: &[Event]) -> Vec<&std::path::Path> {
        events
            .iter()
            .flat_map(|e| &e.paths)
            .map(PathBuf::as_path)
            .collect()
    }

    #[test]
    fn appends_beside_the_board_and_reads_of_it_hand_on_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let board = dir.join("task-board.md");
        std::fs::write(&board, "# B\n").unwrap();
        std::fs::write(dir.join("events.jsonl"), "").unwrap();
        let (w, rx) = watching(&dir);
        {
            use std::io::Write;
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("events.jsonl"))
                .unwrap();
            for _ in 0..50 {
                log.write_all(b"{}\n").unwrap();
            }
        }
        let _ = std::fs::read(&board).unwrap();
        let seen = up_to_a_mode_change(&board, &rx);
        assert_eq!(paths(&seen), [board.as_path()], "{seen:?}");
        drop(w);
    }

    #[test]
    fn a_write_into_the_file_renamed_into_place_is_seen_and_one_into_the_old_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let board = dir.join("task-board.md");
        let backup = dir.join("task-board.md~");
        std::fs::write(&board, "# old\n").unwrap();
        let (w, rx) = watching(&dir);
        // An editor's save: the old file renamed away, a new one renamed into place.
        std::fs::rename(&board, &backup).unwrap();
        std::fs::write(dir.join("new.tmp"), "# new\n").unwrap();
        std::fs::rename(dir.join("new.tmp"), &board).unwrap();
        let arrival = up_to_a_mode_change(&board, &rx);
        assert!(
            arrival.iter().any(
                |e| e.kind == EventKind::Modify(ModifyKind::Name(RenameMode::To))
                    && e.paths == [board.clone()]
            ),
            "{arrival:?}"
        );
        // Written into the new file: seen.
        std::fs::write(&board, "# new, edited\n").unwrap();
        let edit = up_to_a_mode_change(&board, &rx);
        assert!(
            edit.iter()
                .any(|e| matches!(e.kind, EventKind::Modify(ModifyKind::Data(_)))),
            "{edit:?}"
        );
        // The kernel follows the folder and the new file only: the old one's watch goes (just
        // after the new one is taken).
        let deadline = Instant::now() + Duration::from_secs(10);
        while watches(&w) != 2 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(watches(&w), 2);
        // Written into the old one, now under another name: not the board any more.
        std::fs::write(&backup, "# old, written again\n").unwrap();
        let stray = up_to_a_mode_change(&board, &rx);
        assert!(
            stray
                .iter()
                .all(|e| matches!(e.kind, EventKind::Modify(ModifyKind::Metadata(_)))),
            "{stray:?}"
        );
        drop(w);
    }
}
