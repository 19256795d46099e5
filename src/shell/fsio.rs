//! Reading and replacing the board file on disk.
//!
//! This module owns every byte the shell reads from or writes to the board: refusing what is not
//! a board (folders, FIFOs, huge or non-UTF-8 files) before reading it, waiting out an editor that
//! is mid-save, and replacing the file atomically with its permissions kept. It must not parse or
//! change the board's text (that is the pure core's job), take locks, or touch any other file
//! than the board and its own temporary file beside it (kept as `<temporary name>.kept`, never
//! removed, when it may hold a person's save that could not be put back).
//!
//! It also owns the one check every other read goes through ([`open_regular`]): a path that is
//! not a regular file (a FIFO, a socket, a device, a folder) is refused without blocking, so no
//! command can hang on a FIFO put where a board, `events.jsonl` or `taskboard.toml` belongs.
//! Two small helpers other modules use for their own files live here too: a file's stamp
//! ([`FileStamp`]: inode, length, modification time) and opening a file whose folder is made
//! only when the open finds it missing ([`open_making_folder`]).
//!
//! A board's identity is its real file, never the name it was reached by: [`resolve_board`]
//! follows a symlinked board to its target, so every command (and the state folder, locks and
//! watch beside it) works on the target's folder. Replacing by rename gives the board a new
//! inode, so a board with more than one hard link cannot be kept whole and is refused there.

pub use crate::core::hash::{content_hash, text_hash};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::lease::{NoLease, ReadLease, WriteLease};

mod retired;
pub use retired::{
    LATE_OPEN_GRACE, LateSave, report_late_saves_to, settle_all as settle_replaced_boards,
};

/// The largest board accepted: 64 MiB. Larger files are refused without being read.
pub const MAX_BOARD_BYTES: u64 = 64 * 1024 * 1024;

/// Why the board could not be read. Each displays as one line naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound(PathBuf),
    IsDir(PathBuf),
    Permission(PathBuf),
    TooLarge {
        path: PathBuf,
        size: u64,
        max: u64,
    },
    /// `offset` is the byte offset of the first invalid byte.
    NotUtf8 {
        path: PathBuf,
        offset: usize,
    },
    SymlinkLoop(PathBuf),
    /// Anything else, including files that are not regular files (FIFOs, sockets, devices).
    Io {
        path: PathBuf,
        err: String,
    },
}

impl ReadError {
    /// True when waiting may fix it: an editor saving by rename removes the file for a moment.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReadError::NotFound(_))
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::NotFound(p)
            | ReadError::IsDir(p)
            | ReadError::Permission(p)
            | ReadError::SymlinkLoop(p) => p,
            ReadError::TooLarge { path, .. }
            | ReadError::NotUtf8 { path, .. }
            | ReadError::Io { path, .. } => path,
        }
    }

    fn from_io(path: &Path, e: &io::Error) -> Self {
        let path = path.to_path_buf();
        if Errno::from_io_error(e) == Some(Errno::LOOP) {
            return ReadError::SymlinkLoop(path);
        }
        match e.kind() {
            io::ErrorKind::NotFound => ReadError::NotFound(path),
            io::ErrorKind::PermissionDenied => ReadError::Permission(path),
            io::ErrorKind::IsADirectory => ReadError::IsDir(path),
            _ => ReadError::Io {
                path,
                err: e.to_string(),
            },
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path().display();
        match self {
            ReadError::NotFound(_) => write!(f, "{p}: no such file"),
            ReadError::IsDir(_) => write!(f, "{p}: is a folder, not a file"),
            ReadError::Permission(_) => write!(f, "{p}: permission denied"),
            ReadError::TooLarge { size, max, .. } => {
                write!(
                    f,
                    "{p}: too large ({size} bytes; a board may be at most {} MiB)",
                    max / (1024 * 1024)
                )
            }
            ReadError::NotUtf8 { offset, .. } => write!(
                f,
                "{p}: not valid UTF-8 (first invalid byte at offset {offset})"
            ),
            ReadError::SymlinkLoop(_) => write!(f, "{p}: too many levels of symbolic links"),
            ReadError::Io { err, .. } => write!(f, "{p}: {err}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// One read of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRead {
    pub text: String,
    /// [`text_hash`] of the bytes.
    pub hash: u64,
    /// Length in bytes.
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

/// What went wrong with one read, with a hint for [`read_stable`].
struct Failed {
    err: ReadError,
    /// The file ended in the middle of a UTF-8 character: typical of a half-written file.
    cut_short: bool,
}

fn read_once(path: &Path) -> Result<BoardRead, Failed> {
    read_watching(path).map(|(snap, _)| snap)
}

/// One read, and whether the file held still across it: the same size and modification time
/// before and after the read, and as many bytes read as that size says.
fn read_watching(path: &Path) -> Result<(BoardRead, bool), Failed> {
    let fail = |err| Failed {
        err,
        cut_short: false,
    };
    let (mut file, meta) =
        open_regular_with_meta(path).map_err(|e| fail(ReadError::from_io(path, &e)))?;
    let too_large = |size| ReadError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_BOARD_BYTES,
    };
    if meta.len() > MAX_BOARD_BYTES {
        return Err(fail(too_large(meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never take more than the limit plus one byte.
    (&mut file)
        .take(MAX_BOARD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(ReadError::from_io(path, &e)))?;
    if bytes.len() as u64 > MAX_BOARD_BYTES {
        return Err(fail(too_large(bytes.len() as u64)));
    }
    let hash = text_hash(&bytes);
    let len = bytes.len() as u64;
    let still = len == meta.len()
        && file.metadata().is_ok_and(|after| {
            after.len() == meta.len() && after.modified().ok() == meta.modified().ok()
        });
    let text = String::from_utf8(bytes).map_err(|e| Failed {
        cut_short: e.utf8_error().error_len().is_none(),
        err: ReadError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
        },
    })?;
    let snap = BoardRead {
        text,
        hash,
        len,
        mtime: meta.modified().ok(),
    };
    Ok((snap, still))
}

/// A file that is not a regular file, refused by [`open_regular`]: displays as
/// `not a regular file (a FIFO)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRegular {
    /// What it is instead: `a FIFO`, `a socket`, `a character device`, `a block device`, `a folder`.
    pub kind: &'static str,
}

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a regular file ({})", self.kind)
    }
}

impl std::error::Error for NotRegular {}

/// Whether `e` is [`open_regular`]'s refusal of a file that is not a regular file.
pub fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotRegular>())
}

/// Refuses what `meta` shows is not a regular file, with the error [`open_regular`] gives: for a
/// file opened some other way (an append that creates it) and checked on its descriptor.
pub fn ensure_regular(meta: &fs::Metadata) -> io::Result<()> {
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            NotRegular { kind: "a folder" },
        ));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular {
                kind: kind_of(meta),
            },
        ));
    }
    Ok(())
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading only when it is a regular file (a symlink to one is fine); anything
/// else (a FIFO, a socket, a device, a folder) is an error displaying as
/// `not a regular file (a FIFO)` (see [`is_not_regular`]; a folder has the kind `IsADirectory`).
///
/// Every file the commands and the runtime read goes through here, so that none of them can hang:
/// the open itself is non-blocking (opening a FIFO for reading would otherwise wait for a
/// writer, and a signal does not interrupt that wait), and the type is checked on the opened
/// descriptor, so nothing can be swapped in between check and read. Reads from the returned file
/// block as usual.
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_regular_with_meta(path).map(|(file, _)| file)
}

/// [`open_regular`], then the whole file.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let (mut file, meta) = open_regular_with_meta(path)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
}

/// Enough of a file's identity to tell that it was replaced or written since it was stamped:
/// its inode, length and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(m: &fs::Metadata) -> FileStamp {
        FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }

    /// The file at `path` now; `None` when there is none.
    pub fn at(path: &Path) -> Option<FileStamp> {
        fs::metadata(path).ok().map(|m| FileStamp::of(&m))
    }
}

/// A small file's bytes (an owner record, a `/proc` file), read without asking the file its
/// size and position first as `fs::read` and `read_to_end` do: two system calls fewer, and
/// `/proc` reports no size anyway.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut bytes = vec![0; 1024];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// Opens a file with `open`, and when its folder is missing, makes it with `make_folder` and
/// opens again: a folder that is almost always there is not made (a failing `mkdir`) before
/// every open.
pub fn open_making_folder(
    open: impl Fn() -> io::Result<File>,
    make_folder: impl FnOnce() -> io::Result<()>,
) -> io::Result<File> {
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_folder()?;
            open()
        }
        other => other,
    }
}

/// [`open_regular`], with the opened file's metadata (what was opened, not what is there now).
pub fn open_regular_with_meta(path: &Path) -> io::Result<(File, fs::Metadata)> {
    let file = match open_nonblocking(path) {
        Ok(file) => file,
        // A socket cannot be opened at all (ENXIO): say what it is rather than why open failed.
        Err(e) => {
            if let Ok(meta) = fs::metadata(path) {
                ensure_regular(&meta)?;
            }
            return Err(e);
        }
    };
    let meta = file.metadata()?;
    ensure_regular(&meta)?;
    set_blocking(&file);
    Ok((file, meta))
}

/// Opens `path` for reading without waiting: a FIFO opens at once (and is then refused by the
/// caller). A file under another process's write lease (`shell::lease`: a taskboard swapping
/// the board in holds one for microseconds) fails with `WouldBlock`; that is retried for up to
/// [`LEASED_WAIT`], then said.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .custom_flags(open_flags(OFlags::NONBLOCK | OFlags::NOCTTY))
            .open(path)
    };
    let naps = (Duration::from_micros(50), Duration::from_millis(20));
    retry_until(LEASED_WAIT, naps, || match open() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        other => Some(other),
    })
    .unwrap_or_else(|| {
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: another program holds a lease on it", path.display()),
        ))
    })
}

/// Tries `attempt` until it gives an answer, for at most `within` (then `None`), napping
/// between tries from the first of `naps`, twice as long each time, up to the second: what is
/// waited for (a lease released, a file closed) sends no notice.
fn retry_until<T>(
    within: Duration,
    (mut nap, longest): (Duration, Duration),
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(answer) = attempt() {
            return Some(answer);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(longest);
    }
}

/// How long a read waits for a file lease held by another program to be released.
const LEASED_WAIT: Duration = Duration::from_secs(2);

/// Creates or truncates `path` for writing, like `File::create`, without ever waiting on a FIFO
/// that nobody reads: opening one for writing would block until a reader comes, so it is an
/// error (`a FIFO that nobody reads`) instead. A FIFO that is being read (`--html /dev/stdout`
/// into a pipe) is written as usual, with blocking writes.
pub fn create_no_wait(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(open_flags(OFlags::NONBLOCK | OFlags::NOCTTY))
        .open(path)
        .map_err(|e| {
            if Errno::from_io_error(&e) == Some(Errno::NXIO) {
                io::Error::new(e.kind(), "a FIFO that nobody reads")
            } else {
                e
            }
        })?;
    set_blocking(&file);
    Ok(file)
}

/// Back to blocking reads and writes: O_NONBLOCK was only there for the open.
fn set_blocking(file: &File) {
    if let Ok(flags) = rustix::fs::fcntl_getfl(file) {
        let _ = rustix::fs::fcntl_setfl(file, flags - OFlags::NONBLOCK);
    }
}

/// `open(2)` flags as [`OpenOptionsExt::custom_flags`] takes them (a C `int`).
fn open_flags(flags: OFlags) -> i32 {
    flags.bits() as i32
}

/// Read the board once. Folders, FIFOs and other non-regular files are refused, and so is a file
/// larger than [`MAX_BOARD_BYTES`], before any of its content is read.
pub fn read_board(path: &Path) -> Result<BoardRead, ReadError> {
    read_once(path).map_err(|f| f.err)
}

/// Read the board until it holds still: two consecutive reads `quiet` apart with the same hash.
///
/// An editor may be mid-save (VS Code truncates then writes; vim removes the file for a moment),
/// so a missing file, or one that ends in the middle of a UTF-8 character, is read again within
/// the same budget of `max_tries` reads. Other errors are returned at once. When the budget runs
/// out, the last successful read is returned, or the last error if no read succeeded. The
/// content may still be a half-saved file: callers must not act on a board that does not parse.
///
/// It sleeps between reads: it waits for a person's editor to finish.
pub fn read_stable(path: &Path, quiet: Duration, max_tries: usize) -> Result<BoardRead, ReadError> {
    read_stable_between(path, max_tries, || std::thread::sleep(quiet))
}

/// [`read_stable`], calling `between` where it would wait between two reads (the editor's save
/// goes on meanwhile). `read_stable` sleeps there; a test makes the next step of a save there.
pub fn read_stable_between(
    path: &Path,
    max_tries: usize,
    between: impl FnMut(),
) -> Result<BoardRead, ReadError> {
    // The hash and length of the previous read, when it succeeded.
    let mut previous: Option<(u64, u64)> = None;
    read_until(max_tries, between, || match read_once(path) {
        Ok(snap) if previous == Some((snap.hash, snap.len)) => Ok(Verdict::Take(snap)),
        Ok(snap) => {
            previous = Some((snap.hash, snap.len));
            Ok(Verdict::Again(snap))
        }
        Err(f) => {
            previous = None;
            Err(f)
        }
    })
}

/// Read the board once a quiet period has already passed (the watcher releases a save one
/// debounce after its last event): the first read is made at once, and taken if the file held
/// still across it (same size and modification time before and after, every byte read) and
/// does not end in the middle of a UTF-8 character. Otherwise (a writer still at work, a
/// missing file during a vim save) it reads again `quiet` later, within `max_tries` reads; when
/// they run out, the last successful read is returned, or the last error if none succeeded.
/// Other errors are returned at once. As with [`read_stable`], callers must not act on a board
/// that does not parse.
pub fn read_settled(
    path: &Path,
    quiet: Duration,
    max_tries: usize,
) -> Result<BoardRead, ReadError> {
    read_settled_between(path, max_tries, || std::thread::sleep(quiet))
}

/// [`read_settled`], calling `between` where it would wait between two reads (`read_settled`
/// sleeps there; a test makes the next step of a save there).
pub fn read_settled_between(
    path: &Path,
    max_tries: usize,
    between: impl FnMut(),
) -> Result<BoardRead, ReadError> {
    read_until(max_tries, between, || match read_watching(path)? {
        (snap, true) => Ok(Verdict::Take(snap)),
        (snap, false) => Ok(Verdict::Again(snap)),
    })
}

/// What one read of a board made of it: the one to take, or one to keep while reading again.
enum Verdict {
    Take(BoardRead),
    Again(BoardRead),
}

/// The read loop of [`read_stable`] and [`read_settled`]: up to `max_tries` reads with `between`
/// before each but the first. A missing file or one cut mid-character is read again; any other
/// error ends it. When the reads run out: the last successful read, else the last error.
fn read_until(
    max_tries: usize,
    mut between: impl FnMut(),
    mut read: impl FnMut() -> Result<Verdict, Failed>,
) -> Result<BoardRead, ReadError> {
    let mut last_ok: Option<BoardRead> = None;
    let mut last_err: Option<ReadError> = None;
    for attempt in 0..max_tries.max(1) {
        if attempt > 0 {
            between();
        }
        match read() {
            Ok(Verdict::Take(snap)) => return Ok(snap),
            Ok(Verdict::Again(snap)) => last_ok = Some(snap),
            Err(f) if f.err.is_transient() || f.cut_short => last_err = Some(f.err),
            Err(f) => return Err(f.err),
        }
    }
    match (last_ok, last_err) {
        (Some(snap), _) => Ok(snap),
        (None, Some(e)) => Err(e),
        (None, None) => unreachable!("at least one read is made"),
    }
}

/// Why a board path cannot be used. Each displays as one line naming the path and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardPathError {
    /// A symbolic link whose target does not exist.
    Dangling { link: PathBuf, target: PathBuf },
    /// The board file has more than one name: a rename would split them.
    HardLinked { path: PathBuf, links: u64 },
    /// The link cannot be followed: a loop, or a folder on the way that cannot be read.
    Unresolvable { path: PathBuf, err: String },
}

impl fmt::Display for BoardPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardPathError::Dangling { link, target } => write!(
                f,
                "{}: a symbolic link to {}, which does not exist",
                link.display(),
                target.display()
            ),
            BoardPathError::HardLinked { path, links } => write!(
                f,
                "{}: the board file has {links} hard links, and a write by rename would split \
                 them; use a symbolic link or a single file",
                path.display()
            ),
            BoardPathError::Unresolvable { path, err } => {
                write!(f, "{}: cannot follow the link: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for BoardPathError {}

/// The board's real file: a symbolic link (or a chain of them) is followed to its target, as an
/// absolute path, so two names for one board give one state folder, one set of locks and one
/// watch. Any other path is returned as given, including one that does not exist yet (the
/// commands say what is missing). A dangling link and a file with more than one hard link are
/// refused: the first has no board to serve, and the second cannot be written without
/// splitting its names.
pub fn resolve_board(path: &Path) -> Result<PathBuf, BoardPathError> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let real = if is_link {
        match fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BoardPathError::Dangling {
                    link: path.to_path_buf(),
                    target: write_target(path)
                        .or_else(|_| fs::read_link(path))
                        .unwrap_or_default(),
                });
            }
            Err(e) => {
                return Err(BoardPathError::Unresolvable {
                    path: path.to_path_buf(),
                    err: e.to_string(),
                });
            }
        }
    } else {
        path.to_path_buf()
    };
    match fs::metadata(&real) {
        Ok(m) if m.is_file() && m.nlink() > 1 => Err(BoardPathError::HardLinked {
            path: path.to_path_buf(),
            links: m.nlink(),
        }),
        _ => Ok(real),
    }
}

/// The folder for the runtime's own files: `<board's folder>/.taskboard`.
pub fn state_dir(board: &Path) -> PathBuf {
    match board.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(".taskboard"),
        _ => PathBuf::from(".taskboard"),
    }
}

/// Where a write to `path` must land: a symlink is followed to its final target, even a target
/// that does not exist yet. A path that does not exist is itself the target.
fn write_target(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => return Ok(p),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    // Missing: either a new file or a dangling symlink. Follow links by hand, within a limit.
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Errno::LOOP.into())
}

static NONCE: AtomicU64 = AtomicU64::new(0);

fn temp_name(name: &std::ffi::OsStr) -> OsString {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let mut s = copy_prefix(name);
    s.push(format!("{}-{:x}{:08x}.tmp", std::process::id(), n, nanos));
    s
}

/// How the name of every copy of the board named `name` begins, beside it: the new board being
/// written, one a write replaced and keeps for a moment, a late save kept (`.kept`).
pub fn copy_prefix(name: &std::ffi::OsStr) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(".taskboard-");
    s
}

/// Replace `path` with `contents` atomically: readers see the old file or the new one, never a
/// mix.
///
/// A symlinked board is resolved and its target replaced; the link stays a link. The new file
/// keeps the old one's permission bits (a new file gets 0644) and, when permitted, its owner. The
/// temporary file `.<name>.taskboard-<pid>-<nonce>.tmp` is made in the same folder, written,
/// synced and renamed over the target, then the folder is synced; on any error it is removed.
/// Hard links to the board are broken by the rename: they keep the old content.
pub fn atomic_write(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace(path, contents, None).map(|synced| synced.map_or((), FolderSync::finish))
}

/// Like [`atomic_write`], but only if the board is still the one `expected` was read from
/// (same length and modification time): a person's save that lands while the new content is
/// being written and synced is never replaced. `Ok(false)` when the board changed (the board is
/// as the person saved it). On Linux the new file is exchanged with the board atomically and
/// the board it replaced is checked once more, so a save landing between the check and the
/// exchange is put back too (see `swap_in_if_unchanged`); elsewhere a save in the microseconds
/// between the check and the rename cannot be excluded on a plain file.
pub fn replace_if_unchanged(
    path: &Path,
    contents: &[u8],
    expected: &BoardRead,
) -> io::Result<bool> {
    let replaced = replace_if_unchanged_then(path, contents, expected)?;
    Ok(replaced.is_some_and(|folder| {
        folder.finish();
        true
    }))
}

/// [`replace_if_unchanged`], leaving the last step to the caller: `Ok(Some(_))` when the board
/// was replaced, with its folder still to sync (until then the rename may not survive a power
/// cut), so that another file's sync can run beside it ([`FolderSync::finish_beside`]).
pub fn replace_if_unchanged_then(
    path: &Path,
    contents: &[u8],
    expected: &BoardRead,
) -> io::Result<Option<FolderSync>> {
    replace(path, contents, Some(expected))
}

/// The folder of a board just replaced, to sync so that the rename survives a power cut.
#[must_use = "the board's rename is not durable until its folder is synced"]
#[derive(Debug)]
pub struct FolderSync(PathBuf);

impl FolderSync {
    /// Syncs the folder. Some filesystems cannot sync a folder: not fatal, a warning.
    pub fn finish(self) {
        sync_board_folder(&self.0);
    }

    /// Syncs the folder on a thread of its own while `work` runs on this one, and returns
    /// `work`'s result once both are done: for a write whose next step is to sync another file
    /// (each sync waits on the disk, and the two do not depend on each other). Where no thread
    /// can be started, the folder is synced first.
    pub fn finish_beside<R>(self, work: impl FnOnce() -> R) -> R {
        let dir = self.0.as_path();
        std::thread::scope(|scope| {
            let beside = std::thread::Builder::new()
                .name("taskboard-sync".into())
                .spawn_scoped(scope, || sync_board_folder(dir));
            if beside.is_err() {
                sync_board_folder(dir);
            }
            work()
        })
    }
}

fn sync_board_folder(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(folder = %dir.display(), error = %e, "could not sync the board's folder");
    }
}

/// The board replaced (`Some`, its folder still to sync), or left as it is because it changed
/// since `expected` was read (`None`).
fn replace(
    path: &Path,
    contents: &[u8],
    expected: Option<&BoardRead>,
) -> io::Result<Option<FolderSync>> {
    let target = write_target(path)?;
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", target.display()),
        )
    })?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let old = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if old.as_ref().is_some_and(|m| !m.is_file()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", target.display()),
        ));
    }
    let mode = old
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let tmp = dir.join(temp_name(name));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let result = (|| {
        if let Some(m) = &old {
            // Keep the owner when we may (root editing someone's board); otherwise ignore.
            let me = (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            if (m.uid(), m.gid()) != me {
                let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
            }
        }
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        match expected {
            Some(expected) => swap_in_if_unchanged(&tmp, &target, contents.len() as u64, expected),
            None => fs::rename(&tmp, &target).map(|_| true),
        }
    })();
    match result {
        Ok(true) => {}
        Ok(false) => {
            let _ = fs::remove_file(&tmp);
            return Ok(None);
        }
        Err(e) => {
            if !is_kept(&e) {
                let _ = fs::remove_file(&tmp);
            }
            return Err(e);
        }
    }
    // The rename is done; the folder's sync makes it durable.
    Ok(Some(FolderSync(dir)))
}

/// How long a board that was just swapped out is left alone before it is checked, where no
/// lease can be had to tell when the writes under way in it have landed: an editor that opened
/// it just before the swap finishes its write into it well within this, unless it is stalled.
const SETTLE: Duration = Duration::from_millis(2);

/// How long a swap waits for a program that has the swapped-out board open for writing to close
/// it. One that keeps it open longer gets its board back: its write may still come.
const WRITERS_DEADLINE: Duration = Duration::from_secs(1);

/// Whether the file at `path` is still the board `expected` was read from.
fn unchanged(meta: &fs::Metadata, expected: &BoardRead) -> bool {
    meta.len() == expected.len && meta.modified().ok() == expected.mtime
}

/// Puts `tmp` in `target`'s place if `target` is still the board `expected` was read from.
///
/// A check followed by a rename leaves a gap in which a save can land and then be replaced. So
/// the two files are exchanged atomically instead, which keeps the replaced board under the
/// temporary name: once writes already under way have landed, it is checked, and if
/// a save did land in it, the exchange is undone and `Ok(false)` says the board changed. The
/// replaced board is removed only once it is known to hold nothing new. Where the exchange is
/// not supported (not Linux, or a filesystem without it), a plain rename after the check.
///
/// "Once writes under way have landed" (`shell::lease`): when a write lease taken before the
/// check is still unbroken after the exchange, nobody opened the board in that time, so none
/// can be under way and the check is made at once. Otherwise the replaced board is checked
/// under a read lease, which is had only once every program that has it open for writing has
/// closed it (see [`once_written`]). What neither sees: an `open` that looked the board up
/// before the exchange and reaches it only after the check (a stall of the editor inside that
/// one system call); and where no lease can be had, a write landing more than [`SETTLE`] after
/// the exchange. So a board taken out of place is never removed here: it is retired
/// ([`retired`]), looked at again [`LATE_OPEN_GRACE`] later, and a save found in it then goes
/// back in place.
fn swap_in_if_unchanged(
    tmp: &Path,
    target: &Path,
    written: u64,
    expected: &BoardRead,
) -> io::Result<bool> {
    // Taken before the check, so an open of the board between the check and the exchange breaks it.
    let lease = WriteLease::take(target);
    let before = fs::metadata(target)?;
    if !unchanged(&before, expected) {
        return Ok(false);
    }
    if !exchange(tmp, target)? {
        return fs::rename(tmp, target).map(|_| true);
    }
    let leased_board = lease
        .as_ref()
        .and_then(|l| l.metadata().ok())
        .is_some_and(|m| m.ino() == before.ino() && m.dev() == before.dev());
    if leased_board && lease.as_ref().is_some_and(WriteLease::unbroken) {
        // Nobody opened the board from before the check until after the exchange, so no write
        // can be under way in the board it replaced: nothing to wait for.
        let replaced = fs::symlink_metadata(tmp).map_err(|e| keep(tmp, &e.to_string()))?;
        if replaced.ino() == before.ino() && unchanged(&replaced, expected) {
            retired::retire(tmp, target, &replaced);
            return Ok(true);
        }
    }
    // Released before the wait: an editor's open the lease held back must get its write in now.
    drop(lease);
    // `tmp` now names the board as it was just before the exchange: never removed unchecked.
    match once_written(tmp).map_err(|e| keep(tmp, &e.to_string()))? {
        Written::Settled(replaced)
            if replaced.ino() == before.ino() && unchanged(&replaced, expected) =>
        {
            retired::retire(tmp, target, &replaced);
            return Ok(true);
        }
        // A save landed between the check and the exchange, or a program still has the board
        // open for writing: it goes back in place, unchanged.
        Written::Settled(_) | Written::StillOpen => {}
    }
    match exchange(tmp, target) {
        Ok(true) => {}
        Ok(false) => return Err(keep(tmp, "the exchange could not be undone")),
        Err(e) => return Err(keep(tmp, &format!("the exchange could not be undone: {e}"))),
    }
    // Our board was in place for a moment: an editor may have opened it and be saving into it.
    match once_written(tmp).map_err(|e| keep(tmp, &e.to_string()))? {
        Written::Settled(ours) if ours.len() == written => {
            retired::retire(tmp, target, &ours);
            Ok(false)
        }
        Written::Settled(_) | Written::StillOpen => Err(keep(
            tmp,
            "a save landed in the moment the board was replaced",
        )),
    }
}

/// A swapped-out file once the writes under way in it have landed.
enum Written {
    /// Its metadata, taken when nobody had it open for writing (or, where no lease can be had,
    /// [`SETTLE`] after the swap).
    Settled(fs::Metadata),
    /// A program kept it open for writing past [`WRITERS_DEADLINE`].
    StillOpen,
}

/// Waits until nobody has the file at `path` open for writing, then reads its metadata under a
/// read lease: a writer that opened it before has closed it, so its write is in the metadata,
/// and a lease still unbroken after the read says no writer opened it meanwhile. Where no lease
/// can be had, the metadata after [`SETTLE`].
fn once_written(path: &Path) -> io::Result<Written> {
    let naps = (Duration::from_micros(100), Duration::from_millis(5));
    retry_until(WRITERS_DEADLINE, naps, || match ReadLease::take(path) {
        Ok(lease) => match lease.metadata() {
            Ok(meta) if lease.unbroken() => Some(Ok(Written::Settled(meta))),
            // Opened for writing while leased: wait for that writer's close.
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        },
        // Still open for writing: wait for the close.
        Err(NoLease::InUse) => None,
        Err(NoLease::Unavailable) => {
            std::thread::sleep(SETTLE);
            Some(fs::symlink_metadata(path).map(Written::Settled))
        }
    })
    .unwrap_or(Ok(Written::StillOpen))
}

/// A swapped-out file that may hold a person's save: renamed to `<tmp>.kept` beside the board
/// where possible, and named in the error, which says it must not be removed.
fn keep(tmp: &Path, why: &str) -> io::Error {
    io::Error::other(Kept(format!(
        "{why}; the board as saved is kept in {}",
        kept_beside(tmp).display()
    )))
}

/// Renames `path` to `<path>.kept`, where it is never removed; the name it has now.
fn kept_beside(path: &Path) -> PathBuf {
    let mut kept = path.as_os_str().to_owned();
    kept.push(".kept");
    let kept = PathBuf::from(kept);
    match fs::rename(path, &kept) {
        Ok(()) => kept,
        Err(_) => path.to_path_buf(),
    }
}

/// An error after which the temporary file holds what may be a person's save.
#[derive(Debug)]
struct Kept(String);

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Kept {}

fn is_kept(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Kept>())
}

/// Atomically exchanges two paths in one folder. `Ok(false)` where that is not supported.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(content_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(content_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn state_dir_is_beside_the_board() {
        assert_eq!(
            state_dir(Path::new("/x/y/task-board.md")),
            Path::new("/x/y/.taskboard")
        );
        assert_eq!(
            state_dir(Path::new("task-board.md")),
            Path::new(".taskboard")
        );
    }

    #[test]
    fn a_replaced_board_is_in_place_before_its_folder_is_synced_and_the_work_beside_runs_once() {
        let dir = scratch("beside");
        let board = dir.join("task-board.md");
        fs::write(&board, "old\n").unwrap();
        let read = read_board(&board).unwrap();
        let folder = replace_if_unchanged_then(&board, b"new\n", &read)
            .unwrap()
            .expect("the board was not changed meanwhile");
        assert_eq!(fs::read_to_string(&board).unwrap(), "new\n");
        let mut ran = 0;
        let out = folder.finish_beside(|| {
            ran += 1;
            fs::read_to_string(&board).unwrap()
        });
        assert_eq!((ran, out.as_str()), (1, "new\n"));

        // Changed since it was read: nothing replaced, nothing to sync.
        fs::write(&board, "a person's save\n").unwrap();
        assert!(
            replace_if_unchanged_then(&board, b"ours\n", &read)
                .unwrap()
                .is_none()
        );
        assert_eq!(fs::read_to_string(&board).unwrap(), "a person's save\n");

        // A folder that cannot be synced any more (gone) is a warning: the work still runs.
        let read = read_board(&board).unwrap();
        let folder = replace_if_unchanged_then(&board, b"ours\n", &read)
            .unwrap()
            .unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(folder.finish_beside(|| 7), 7);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "taskboard-fsio-{name}-{}-{}",
            std::process::id(),
            NONCE.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn refusal(path: &Path) -> String {
        let e = open_regular(path).unwrap_err();
        assert!(
            is_not_regular(&e) || e.kind() == io::ErrorKind::IsADirectory,
            "{e:?}"
        );
        e.to_string()
    }

    #[test]
    fn a_small_read_takes_the_whole_file_whatever_its_size_says() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 1023, 1024, 1025, 5000] {
            let path = dir.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read_small(&path).unwrap(), bytes, "{len} bytes");
        }
        // /proc says its files are empty; they are not.
        if Path::new("/proc/self/stat").exists() {
            let stat = read_small(Path::new("/proc/self/stat")).unwrap();
            assert!(stat.ends_with(b"\n") && stat.len() > 50);
        }
        assert!(read_small(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn only_regular_files_are_opened_and_nothing_waits() {
        let dir = scratch("kinds");
        let fifo = dir.join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        assert_eq!(refusal(&fifo), "not a regular file (a FIFO)");
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(refusal(&socket), "not a regular file (a socket)");
        assert_eq!(
            refusal(Path::new("/dev/null")),
            "not a regular file (a character device)"
        );
        assert_eq!(refusal(&dir), "not a regular file (a folder)");
        // A symlink to a regular file is that file.
        fs::write(dir.join("file"), "text").unwrap();
        std::os::unix::fs::symlink(dir.join("file"), dir.join("link")).unwrap();
        assert_eq!(read_regular_to_string(&dir.join("link")).unwrap(), "text");
        // A symlink to a FIFO is a FIFO.
        std::os::unix::fs::symlink(&fifo, dir.join("fifo-link")).unwrap();
        assert_eq!(
            refusal(&dir.join("fifo-link")),
            "not a regular file (a FIFO)"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_or_missing_board_resolves_to_itself() {
        let dir = fs::canonicalize(scratch("plain")).unwrap();
        let board = dir.join("task-board.md");
        assert_eq!(resolve_board(&board), Ok(board.clone()));
        fs::write(&board, "# Board\n").unwrap();
        assert_eq!(resolve_board(&board), Ok(board.clone()));
        assert_eq!(
            resolve_board(Path::new("no-such-board.md")),
            Ok(PathBuf::from("no-such-board.md"))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlinked_board_resolves_to_its_real_file() {
        let dir = fs::canonicalize(scratch("link")).unwrap();
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::create_dir_all(dir.join("other")).unwrap();
        let real = dir.join("real/task-board.md");
        fs::write(&real, "# Board\n").unwrap();
        std::os::unix::fs::symlink("../real/task-board.md", dir.join("other/a.md")).unwrap();
        std::os::unix::fs::symlink("a.md", dir.join("other/b.md")).unwrap();
        assert_eq!(resolve_board(&dir.join("other/a.md")), Ok(real.clone()));
        assert_eq!(resolve_board(&dir.join("other/b.md")), Ok(real.clone()));
        assert_eq!(
            state_dir(&resolve_board(&dir.join("other/b.md")).unwrap()),
            dir.join("real/.taskboard")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_dangling_link_is_refused_naming_its_target() {
        let dir = fs::canonicalize(scratch("dangling")).unwrap();
        let link = dir.join("task-board.md");
        std::os::unix::fs::symlink("gone.md", &link).unwrap();
        let err = resolve_board(&link).unwrap_err();
        assert_eq!(
            err,
            BoardPathError::Dangling {
                link: link.clone(),
                target: dir.join("gone.md")
            }
        );
        assert!(err.to_string().contains("does not exist"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_hard_linked_board_is_refused_with_its_link_count() {
        let dir = fs::canonicalize(scratch("hard")).unwrap();
        let board = dir.join("task-board.md");
        fs::write(&board, "# Board\n").unwrap();
        fs::hard_link(&board, dir.join("alias.md")).unwrap();
        std::os::unix::fs::symlink("task-board.md", dir.join("link.md")).unwrap();
        let err = resolve_board(&board).unwrap_err();
        assert_eq!(
            err,
            BoardPathError::HardLinked {
                path: board.clone(),
                links: 2
            }
        );
        let line = err.to_string();
        assert!(
            line.contains("2 hard links") && line.contains("symbolic link") && !line.contains('\n'),
            "{line}"
        );
        // Reached through a symlink, the file still has two names.
        assert!(matches!(
            resolve_board(&dir.join("link.md")),
            Err(BoardPathError::HardLinked { links: 2, .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_names_differ() {
        let a = temp_name("b.md".as_ref());
        let b = temp_name("b.md".as_ref());
        assert_ne!(a, b);
        let a = a.to_string_lossy().into_owned();
        assert!(
            a.starts_with(".b.md.taskboard-") && a.ends_with(".tmp"),
            "{a}"
        );
    }
}
