//! The event log on disk: the appender of `events.jsonl` lines and the one reader of them, which
//! tolerates what a crash leaves behind.
//!
//! Owns the way lines reach the file (each line built whole, then one `write_all` on an
//! `O_APPEND` descriptor, so lines from concurrent writers never interleave) and rotation: past a
//! size limit the live file is renamed to `events-<UTC time>.jsonl` beside it (see [`EventLog`]),
//! and readers see all files in order ([`log_files`]). Reading: raw lines ([`for_each_line`]),
//! typed events ([`for_each_event_in`]), lenient records of any version ([`for_each_record_in`]),
//! and following the live file like `tail -F` ([`Follower`]). What a line means is
//! `core::event`'s; what to print is the commands'.
//!
//! Must not touch: the board file, the runtime's locks, or any decision about what happened. It
//! never truncates the log. The line format is `core::event`'s.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::core::event::{Event, Record};
use crate::shell::fsio;

/// Appends events to `events.jsonl`. Shareable across threads (`&self` methods); several
/// `EventLog`s, in one process or many, may append to the same file at once.
///
/// Every append takes a shared `flock` on `events.jsonl.lock` beside the log and, before writing,
/// checks that its open file is still the one at the path (another appender may have rotated it
/// away, or a person removed it); if not, it reopens. With a size limit
/// ([`EventLog::with_rotation`]), the appender that sees the file past the limit takes the lock
/// exclusively, checks again, renames the file to `events-<UTC time>.jsonl` and reopens. A line is
/// always written whole to one file, and no line is written to a rotated file once it is renamed.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    max_bytes: Option<u64>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// `file`'s metadata as it was opened: its identity, for telling whether the path still
    /// names it without asking the open file again on every append.
    opened: std::fs::Metadata,
    /// `events.jsonl.lock`; `None` when it cannot be created (read-only folder): appends then go
    /// on without the lock and rotation is off.
    lock: Option<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o644);
    }
    options.open(path)
}

/// The lock file appenders share: `<log name>.lock` beside the log.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

impl EventLog {
    /// Open (creating with mode 0644 if missing) for appending. Does not create parent folders.
    /// Never rotates. Anything but a regular file (a FIFO, a device) is refused.
    pub fn open(path: impl AsRef<Path>) -> io::Result<EventLog> {
        EventLog::build(path.as_ref(), None)
    }

    /// Like [`EventLog::open`], and rotate the file to `events-<UTC time>.jsonl` in the same
    /// folder once it grows past `max_bytes` (0 turns rotation off).
    pub fn with_rotation(path: impl AsRef<Path>, max_bytes: u64) -> io::Result<EventLog> {
        EventLog::build(path.as_ref(), (max_bytes > 0).then_some(max_bytes))
    }

    fn build(path: &Path, max_bytes: Option<u64>) -> io::Result<EventLog> {
        let mut file = open_append(path)?;
        // A FIFO in the log's place would take lines until its buffer fills, then block the
        // appender (the runtime) for good: the record is a regular file or nothing.
        let opened = file.metadata()?;
        fsio::ensure_regular(&opened)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(path))
            .ok();
        // A crash mid-append can leave a last line without its newline: end it, or our first
        // line would share a line with the torn bytes and be lost to every reader. Appenders
        // hold the lock shared while they write, so holding it exclusively here means a line
        // without its newline is a crash's remnant, not another process's write in progress.
        if let Some(lock) = &lock {
            lock.lock()?;
        }
        let repaired = match ends_torn(&mut file) {
            Ok(true) => file.write_all(b"\n"),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(lock) = &lock {
            let _ = lock.unlock();
        }
        repaired?;
        Ok(EventLog {
            path: path.to_path_buf(),
            max_bytes,
            inner: Mutex::new(Inner { file, opened, lock }),
        })
    }

    /// The path appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event as one line, with a single `write_all` of the whole line.
    pub fn append(&self, ev: &Event) -> io::Result<()> {
        self.append_printed(ev.to_line())
    }

    /// Append one event already printed by [`Event::to_line`] (no newline), with a single write:
    /// for a caller that needed the line anyway.
    pub fn append_printed(&self, mut line: String) -> io::Result<()> {
        line.push('\n');
        self.append_line(line.as_bytes())
    }

    /// Append events in order, each line with its own single write.
    pub fn append_all(&self, evs: &[Event]) -> io::Result<()> {
        evs.iter().try_for_each(|ev| self.append(ev))
    }

    /// Append one already printed line (ending in `\n`) with a single write.
    fn append_line(&self, line: &[u8]) -> io::Result<()> {
        // A poisoned mutex only means another thread panicked mid-append; the file is still fine.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { file, opened, lock } = &mut *inner;
        if let Some(lock) = lock.as_ref() {
            lock.lock_shared()?;
        }
        let written = (|| {
            let before = self.reopen_if_moved(file, opened)?;
            (&*file).write_all(line)?;
            // The size as this line left it, give or take the lines of other appenders that
            // write at the same time: enough to tell when to rotate, which looks again.
            Ok::<u64, io::Error>(before + line.len() as u64)
        })();
        if let Some(lock) = lock.as_ref() {
            let _ = lock.unlock();
        }
        let size = written?;
        if let (Some(max), Some(lock)) = (self.max_bytes, lock.as_ref())
            && size > max
        {
            self.rotate(file, opened, lock, max)?;
        }
        Ok(())
    }

    /// Reopen when the path no longer names the open file (rotated away, removed, replaced).
    /// Returns the size of the file the path names now.
    fn reopen_if_moved(&self, file: &mut File, opened: &mut std::fs::Metadata) -> io::Result<u64> {
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match current {
            Some(m) if same_file(&m, opened) => Ok(m.len()),
            _ => {
                *file = open_append(&self.path)?;
                *opened = file.metadata()?;
                Ok(opened.len())
            }
        }
    }

    fn rotate(
        &self,
        file: &mut File,
        opened: &mut std::fs::Metadata,
        lock: &File,
        max: u64,
    ) -> io::Result<()> {
        lock.lock()?;
        let result = (|| {
            // Another appender may have rotated between our write and this lock.
            let current = match std::fs::metadata(&self.path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            if current.len() > max {
                let dir = self.path.parent().unwrap_or(Path::new("."));
                let target = rotation_target(dir, Utc::now());
                std::fs::rename(&self.path, target)?;
            }
            Ok(())
        })();
        let reopened = result.and_then(|()| self.reopen_if_moved(file, opened).map(drop));
        let _ = lock.unlock();
        reopened
    }
}

/// A rotated file's name for `now`, unique in `dir`: `events-20261122T031500Z.jsonl`, then
/// `events-20261122T031500Z-1.jsonl`, … when a rotation already took that second. Called under
/// the exclusive lock, so checking for existence is enough among appenders.
fn rotation_target(dir: &Path, now: DateTime<Utc>) -> PathBuf {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut candidate = dir.join(format!("events-{stamp}.jsonl"));
    let mut n = 1u32;
    while candidate.symlink_metadata().is_ok() {
        candidate = dir.join(format!("events-{stamp}-{n}.jsonl"));
        n += 1;
    }
    candidate
}

/// The order key of a rotated file name (`events-<stamp>[-<n>].jsonl`), or `None` for any other
/// name.
fn rotated_key(name: &str) -> Option<(String, u32)> {
    let body = name.strip_prefix("events-")?.strip_suffix(".jsonl")?;
    let (stamp, n) = match body.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse::<u32>().ok()?),
        None => (body, 0),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit());
    shape.then(|| (stamp.to_string(), n))
}

/// The log files of the board folder `board_dir`, in the order they were written: rotated files
/// (`events-<UTC time>.jsonl`) oldest first, then the live `events.jsonl` when it exists. Any
/// kind of file is listed: the readers refuse what is not a regular file (a FIFO) with an error
/// rather than skip it in silence.
pub fn log_files(board_dir: impl AsRef<Path>) -> Vec<PathBuf> {
    let dir = board_dir.as_ref();
    let mut rotated: Vec<((String, u32), PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name();
                    let key = rotated_key(name.to_str()?)?;
                    Some((key, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let live = dir.join("events.jsonl");
    if std::fs::symlink_metadata(&live).is_ok() {
        files.push(live);
    }
    files
}

/// Every line of one file, blank ones included, holding one line at a time: `f(line, terminated)`
/// where `line` excludes the newline and `terminated` says whether it had one. The one place
/// log lines are read from a file.
fn each_line(path: &Path, mut f: impl FnMut(&[u8], bool)) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 17, fsio::open_regular(path)?);
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let terminated = buf.last() == Some(&b'\n');
        let line = if terminated {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        f(line, terminated);
    }
}

/// Stream every line of one file, holding one line at a time: `f(line, terminated)` where `line`
/// excludes the newline and `terminated` says whether it had one (only the last line of a file
/// may lack it: a write cut short, or one still under way). Blank lines are skipped.
pub fn for_each_line(path: impl AsRef<Path>, mut f: impl FnMut(&[u8], bool)) -> io::Result<()> {
    each_line(path.as_ref(), |line, terminated| {
        if !line.iter().all(u8::is_ascii_whitespace) {
            f(line, terminated);
        }
    })
}

/// What [`for_each_record_in`] saw besides the records it handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordScan {
    /// How many log files there were (rotated ones and the live one).
    pub files: usize,
    /// Lines that could not be read as a [`Record`], a torn last line of a file excepted.
    pub bad_lines: u64,
}

/// Stream the lines of every log file of `board_dir` ([`log_files`] order) as lenient
/// [`Record`]s, for readers that take lines of any version. A line that does not read is counted
/// in `bad_lines`, except the last line of a file without its newline (a write cut short, or one
/// still under way), which is skipped. A file that disappears while being listed is skipped; any
/// other error names the file.
pub fn for_each_record_in(
    board_dir: impl AsRef<Path>,
    mut f: impl FnMut(&Record),
) -> io::Result<RecordScan> {
    let files = log_files(board_dir);
    let mut scan = RecordScan {
        files: files.len(),
        bad_lines: 0,
    };
    for file in &files {
        let read = for_each_line(file, |line, terminated| match Record::from_line(line) {
            Ok(rec) => f(&rec),
            Err(_) if !terminated => {}
            Err(_) => scan.bad_lines += 1,
        });
        match read {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display())));
            }
            _ => {}
        }
    }
    Ok(scan)
}

/// Follows one path like `tail -F`: new complete lines as they are appended, across rotation
/// (the file renamed away and a new one created), truncation and a missing file.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// Bytes read after the last newline: a line still being written.
    pending: Vec<u8>,
    /// The file was found shorter than what was read: [`Follower::take_truncated`] tells.
    truncated: bool,
}

impl Follower {
    /// A follower of `path`, reading from its start if it exists now (a file that is not
    /// regular is refused, never opened in a way that waits).
    pub fn open(path: &Path) -> io::Result<Follower> {
        let file = match fsio::open_regular(path) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            truncated: false,
        })
    }

    /// A follower of `path` reading from `file`, already opened at that path (or `None`: the
    /// path is looked at again on every poll).
    pub fn with_file(path: &Path, file: Option<File>) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            truncated: false,
        }
    }

    /// Bytes read after the last newline, taken: a last line without its newline.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a poll found the file truncated (and started over from its start) since the last
    /// call: the caller tells the person.
    pub fn take_truncated(&mut self) -> bool {
        std::mem::take(&mut self.truncated)
    }

    /// Complete lines appended to the open file since the last read.
    pub fn read_new(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.pending.extend_from_slice(&buf);
        let mut lines = Vec::new();
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            for line in self.pending.split(|&b| b == b'\n') {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    lines.push(line.to_vec());
                }
            }
            self.pending = rest;
        }
        Ok(lines)
    }

    /// New lines since the last poll, switching files when the path was rotated or recreated and
    /// starting over when the file was truncated.
    pub fn poll(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut lines = self.read_new()?;
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(at_path) = at_path else {
            return Ok(lines);
        };
        let same = match &self.file {
            Some(f) => same_file(&f.metadata()?, &at_path),
            None => false,
        };
        if !same {
            // Rotated away (or first appearance): the old file was drained above; a torn line
            // left in it will never complete.
            if self.file.is_some() {
                self.pending.clear();
            }
            self.file = Some(fsio::open_regular(&self.path)?);
            lines.extend(self.read_new()?);
        } else if let Some(f) = self.file.as_mut() {
            let pos = f.stream_position()?;
            if at_path.len() < pos {
                self.truncated = true;
                f.seek(SeekFrom::Start(0))?;
                self.pending.clear();
                lines.extend(self.read_new()?);
            }
        }
        Ok(lines)
    }
}

/// Stream the events of every log file of `board_dir` ([`log_files`] order), with the rules of
/// [`for_each_event`] applied to each file (so a torn last line of any file is skipped). Line
/// numbers in `bad_lines` count from the first line of the first file. A file that disappears
/// while being listed (rotated away and removed) is skipped; any other error names the file.
pub fn for_each_event_in(
    board_dir: impl AsRef<Path>,
    mut f: impl FnMut(Event),
) -> io::Result<LogScan> {
    let mut scan = LogScan::default();
    let mut line_no = 0usize;
    for file in log_files(board_dir) {
        match scan_file(&file, &mut f, &mut scan, &mut line_no) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display())));
            }
            _ => {}
        }
    }
    Ok(scan)
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_torn(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Everything read from a log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRead {
    pub events: Vec<Event>,
    /// Lines that could not be parsed (1-based line number, error), excluding a torn tail.
    pub bad_lines: Vec<(usize, String)>,
    /// The last line had no trailing newline and did not parse: a write cut short by a crash.
    pub torn_tail: bool,
}

/// What [`for_each_event`] saw besides the events it handed over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogScan {
    /// Number of events handed to the callback.
    pub events: usize,
    pub bad_lines: Vec<(usize, String)>,
    pub torn_tail: bool,
}

/// Read the whole log into memory. See [`for_each_event`] for the rules.
pub fn read_log(path: impl AsRef<Path>) -> io::Result<LogRead> {
    let mut events = Vec::new();
    let scan = for_each_event(path, |ev| events.push(ev))?;
    Ok(LogRead {
        events,
        bad_lines: scan.bad_lines,
        torn_tail: scan.torn_tail,
    })
}

/// Stream the log, calling `f` for each good event in file order, holding one line at a time.
///
/// Blank lines are skipped. A line that does not parse (bad JSON, invalid UTF-8, unknown event
/// name) is skipped and reported in `bad_lines`, except the last line when it has no trailing
/// newline: that is a torn tail, skipped and flagged with `torn_tail`. A last line without newline
/// that parses is accepted. Only I/O errors are errors.
pub fn for_each_event(path: impl AsRef<Path>, mut f: impl FnMut(Event)) -> io::Result<LogScan> {
    let mut scan = LogScan::default();
    let mut line_no = 0usize;
    scan_file(path.as_ref(), &mut f, &mut scan, &mut line_no)?;
    Ok(scan)
}

fn scan_file(
    path: &Path,
    f: &mut impl FnMut(Event),
    scan: &mut LogScan,
    line_no: &mut usize,
) -> io::Result<()> {
    each_line(path, |line, terminated| {
        *line_no += 1;
        let parsed = match std::str::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => return,
            Ok(text) => Event::from_line(text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("invalid UTF-8: {e}")),
        };
        match parsed {
            Ok(ev) => {
                scan.events += 1;
                f(ev);
            }
            Err(_) if !terminated => scan.torn_tail = true,
            Err(e) => scan.bad_lines.push((*line_no, e)),
        }
    })
}

#[cfg(test)]
mod rotation_tests {
    use super::*;
    use crate::core::event::EventKind;
    use std::collections::HashMap;
    use std::sync::{Arc, Barrier};

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "taskboard-rotation-{name}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn event(writer: &str, n: usize) -> Event {
        Event::new(
            Utc::now(),
            Some(writer),
            EventKind::Error {
                message: format!("line {n} {}", "x".repeat(n % 50)),
                context: Some(writer.to_string()),
            },
        )
    }

    const LINES: usize = 400;

    /// Appends `LINES` events as `writer` when run as the helper process of
    /// `concurrent_appenders_lose_and_split_nothing`.
    #[test]
    #[ignore = "helper process for concurrent_appenders_lose_and_split_nothing"]
    fn rotation_helper_process() {
        let (Some(path), Some(writer)) = (
            std::env::var_os("TASKBOARD_ROTATION_LOG"),
            std::env::var_os("TASKBOARD_ROTATION_WRITER"),
        ) else {
            return;
        };
        let writer = writer.to_string_lossy().into_owned();
        let log = EventLog::with_rotation(PathBuf::from(path), 2048).unwrap();
        for n in 0..LINES {
            log.append(&event(&writer, n)).unwrap();
        }
    }

    #[test]
    fn concurrent_appenders_lose_and_split_nothing() {
        let dir = temp_dir("concurrent");
        let path = dir.join("events.jsonl");
        let helper = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "shell::event_log::rotation_tests::rotation_helper_process",
                "--ignored",
                "--test-threads=1",
            ])
            .env("TASKBOARD_ROTATION_LOG", &path)
            .env("TASKBOARD_ROTATION_WRITER", "proc")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let writers = 3;
        let barrier = Arc::new(Barrier::new(writers));
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let barrier = Arc::clone(&barrier);
                let path = path.clone();
                std::thread::spawn(move || {
                    let log = EventLog::with_rotation(&path, 2048).unwrap();
                    barrier.wait();
                    for n in 0..LINES {
                        log.append(&event(&format!("t{w}"), n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(helper.wait_with_output().unwrap().status.success());

        let files = log_files(&dir);
        assert!(files.len() > 10, "expected many rotations, got {files:?}");
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Empty is fine: a rotation by the very last append leaves a fresh, empty live file.
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends mid-line",
                file.display()
            );
            for line in text.lines() {
                let ev =
                    Event::from_line(line).unwrap_or_else(|e| panic!("split line {line:?}: {e}"));
                let EventKind::Error { message, .. } = ev.kind else {
                    panic!("unexpected event {line}");
                };
                *seen.entry((ev.task.unwrap(), message)).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), (writers + 1) * LINES);
        assert!(seen.values().all(|&n| n == 1), "a line appears twice");
        // Rotated files stay near the limit: a file only grows past it by the lines written
        // before its rotation.
        for file in &files[..files.len() - 1] {
            let len = std::fs::metadata(file).unwrap().len();
            assert!(
                len > 2048 && len < 2048 + 4 * 512,
                "{}: {len}",
                file.display()
            );
        }
        let scan = for_each_event_in(&dir, |_| {}).unwrap();
        assert_eq!(scan.events, (writers + 1) * LINES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotated_names_sort_oldest_first_and_torn_tails_are_skipped() {
        let dir = temp_dir("order");
        let line = |n: u32| {
            let mut l =
                Event::new(Utc::now(), None, EventKind::TaskInterrupted { attempt: n }).to_line();
            l.push('\n');
            l
        };
        std::fs::write(dir.join("events-20261122T031500Z-1.jsonl"), line(2)).unwrap();
        std::fs::write(
            dir.join("events-20261122T031500Z.jsonl"),
            line(1) + "{\"ts\":\"2026",
        )
        .unwrap();
        std::fs::write(dir.join("events-20261121T000000Z.jsonl"), line(0)).unwrap();
        std::fs::write(dir.join("events.jsonl"), line(3)).unwrap();
        std::fs::write(dir.join("events-notes.jsonl"), "not a log").unwrap();
        let names: Vec<String> = log_files(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "events-20261121T000000Z.jsonl",
                "events-20261122T031500Z.jsonl",
                "events-20261122T031500Z-1.jsonl",
                "events.jsonl"
            ]
        );
        let mut attempts = Vec::new();
        let scan = for_each_event_in(&dir, |ev| {
            if let EventKind::TaskInterrupted { attempt } = ev.kind {
                attempts.push(attempt);
            }
        })
        .unwrap();
        assert_eq!(attempts, [0, 1, 2, 3]);
        assert!(scan.torn_tail);
        assert!(scan.bad_lines.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_same_second_rotation_gets_a_new_name() {
        let dir = temp_dir("unique");
        let now = Utc::now();
        let first = rotation_target(&dir, now);
        std::fs::write(&first, "").unwrap();
        let second = rotation_target(&dir, now);
        assert_ne!(first, second);
        assert!(rotated_key(&second.file_name().unwrap().to_string_lossy()).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
