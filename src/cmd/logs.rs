//! `taskboard logs ID`: what a task's run wrote on stdout and stderr, as captured in its run
//! folder (`.taskboard/runs/<ID>/<attempt>[-review]-<UTC time>/stdout.log`, `stderr.log`).
//!
//! This module owns finding a task's run folders (also used by `show` to say where a running
//! task's output is), choosing one (the latest, or `--attempt N`, `--review` for a review run),
//! printing its captured output as it is (the cap's omission marker included), and `-f`:
//! following it like `tail -F` while the run is live. The run is over when its `task_finished`
//! event is in `events.jsonl`, when a newer run of the task started, or when the task's lock is
//! gone or its owner dead (a runtime that was killed logs nothing); `-f` then prints what is
//! left and exits 0. SIGTERM and SIGINT end it at once with exit 0, as they end `tail -f`.
//! Reads only: it creates and changes nothing.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::lint::read_board_text;
use super::output::note;
use super::tail::stop_on_signals;
use super::{CmdResult, Failure};
use crate::core::event::Record;
use crate::exit::Exit;
use crate::shell::event_log::Follower;
use crate::shell::fsio;
use crate::shell::parallel::parse_board;
pub use crate::shell::run_dirs::{RunDir, runs};

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Keep printing what the run writes until it ends (like `tail -F`).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// This attempt's run instead of the latest run (with `--review`, its review run).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// The review run (of `--attempt N`, or the latest review run) instead of the work run.
    #[arg(long)]
    pub review: bool,
    /// Only stdout, without a header.
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,
    /// Only stderr, without a header.
    #[arg(long)]
    pub stderr: bool,
}

/// How often `-f` looks at the files.
const POLL: Duration = Duration::from_millis(200);

/// How often `-f` checks the task's lock and its run folders, and how long a missing lock must
/// stay missing before the run counts as over (a cleaned `.taskboard` is put back by the
/// runtime within a pass).
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

/// [`runs`], or the one-line reason the run folders cannot be read (exit 4).
pub fn readable_runs(state_dir: &Path, id: &str) -> Result<Vec<RunDir>, Failure> {
    runs(state_dir, id).map_err(|e| {
        Failure::new(
            Exit::State,
            format!(
                "cannot read {}: {e}",
                state_dir.join("runs").join(id).display()
            ),
        )
    })
}

pub fn run(args: &LogsArgs) -> CmdResult {
    let board = super::resolve_board(&args.board)?;
    let text = read_board_text(&board)?;
    let board_dir = super::board_dir(&board).to_path_buf();
    let state_dir = fsio::state_dir(&board);
    let run = choose_run(args, &board, &text, &state_dir)?;
    let streams: Vec<&str> = if args.stdout {
        vec!["stdout.log"]
    } else if args.stderr {
        vec!["stderr.log"]
    } else {
        vec!["stdout.log", "stderr.log"]
    };
    let mut out = Out {
        w: super::output::stdout(),
        headers: streams.len() > 1,
        shown: None,
        wrote_any: false,
        at_line_start: true,
    };
    let mut outputs: Vec<FollowedLog> = streams
        .iter()
        .map(|name| FollowedLog::new(run.path.join(name)))
        .collect();
    if !args.follow {
        for (i, f) in outputs.iter_mut().enumerate() {
            out.header(i, &f.path).map_err(Failure::output)?;
            let bytes = f.read_all().map_err(|e| cannot_read(&f.path, &e))?;
            out.bytes(i, &f.path, &bytes).map_err(Failure::output)?;
        }
        out.finish().map_err(Failure::output)?;
        return Ok(Exit::Ok);
    }
    follow(
        &board_dir,
        &state_dir,
        &args.id,
        &run,
        &mut out,
        &mut outputs,
    )
}

/// The run `args` asks for: the latest, or the one of `--attempt N` (and `--review`).
fn choose_run(
    args: &LogsArgs,
    board: &Path,
    text: &str,
    state_dir: &Path,
) -> Result<RunDir, Failure> {
    let id = args.id.as_str();
    let all = readable_runs(state_dir, id)?;
    all.iter()
        .rev()
        .find(|r| match args.attempt {
            Some(n) => r.attempt == n && r.review == args.review,
            None => !args.review || r.review,
        })
        .cloned()
        .ok_or_else(|| Failure::new(Exit::Findings, no_run(args, board, text)))
}

/// `-f`: prints the run's output as it grows until the run is over, then what is left.
fn follow(
    board_dir: &Path,
    state_dir: &Path,
    id: &str,
    run: &RunDir,
    out: &mut Out<impl Write>,
    outputs: &mut [FollowedLog],
) -> CmdResult {
    stop_on_signals()?;
    // The live event log is opened before the rotated ones are read, so that an ending
    // appended in between is not missed.
    let live = board_dir.join("events.jsonl");
    let mut events = Follower::open(&live).map_err(|e| cannot_read(&live, &e))?;
    let mut ended = ended_in_rotated(board_dir, &live, id, run)?;
    let locks = crate::shell::lock::Locks::new(state_dir.join("locks"));
    let mut lock_gone_since: Option<Instant> = None;
    let mut last_check = Instant::now();
    loop {
        if ended.is_none() {
            ended = ended_in_new_lines(&mut events, &live, id, run)?;
        }
        if ended.is_none() && last_check.elapsed() >= LIVENESS_EVERY {
            last_check = Instant::now();
            ended = liveness(&locks, state_dir, id, run, &mut lock_gone_since);
        }
        // The output is read after the ending was seen: the files are final before the
        // runtime logs `task_finished`, so this last read takes everything.
        for (i, f) in outputs.iter_mut().enumerate() {
            match f.poll() {
                Ok(bytes) => out.bytes(i, &f.path, &bytes).map_err(Failure::output)?,
                Err(e) if fsio::is_not_regular(&e) => return Err(cannot_read(&f.path, &e)),
                Err(e) => note(format!("{}: {e}", f.path.display())),
            }
        }
        out.flush().map_err(Failure::output)?;
        if let Some(why) = ended {
            out.finish().map_err(Failure::output)?;
            note(format!(
                "{} attempt {}{} {why}",
                id,
                run.attempt,
                if run.review { " (review)" } else { "" }
            ));
            return Ok(Exit::Ok);
        }
        std::thread::sleep(POLL);
    }
}

/// How `run` ended, when a rotated event log (all but `live`) already says so.
fn ended_in_rotated(
    board_dir: &Path,
    live: &Path,
    id: &str,
    run: &RunDir,
) -> Result<Option<String>, Failure> {
    let mut ended = None;
    for file in crate::shell::event_log::log_files(board_dir) {
        if file == live {
            continue;
        }
        let read = crate::shell::event_log::for_each_line(&file, |line, _| {
            if ended.is_none() {
                ended = ends(line, id, run);
            }
        });
        if let Err(e) = read
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(cannot_read(&file, &e));
        }
    }
    Ok(ended)
}

/// How `run` ended, when a line appended to the live event log since the last poll says so.
fn ended_in_new_lines(
    events: &mut Follower,
    live: &Path,
    id: &str,
    run: &RunDir,
) -> Result<Option<String>, Failure> {
    let polled = events.poll();
    if events.take_truncated() {
        note(format!("{} was truncated", live.display()));
    }
    let lines = match polled {
        Ok(lines) => lines,
        Err(e) if fsio::is_not_regular(&e) => return Err(cannot_read(live, &e)),
        Err(e) => {
            note(format!("{}: {e}", live.display()));
            Vec::new()
        }
    };
    Ok(lines.iter().find_map(|line| ends(line, id, run)))
}

/// The line for a task with no such run.
fn no_run(args: &LogsArgs, board: &Path, text: &str) -> String {
    let parsed = parse_board(text);
    let on_board = parsed.task(&args.id).map(|t| {
        t.status
            .as_ref()
            .map_or("no status".to_string(), |s| format!("status {}", s.raw))
    });
    let what = match (args.attempt, args.review) {
        (Some(n), true) => format!("no review run of attempt {n}"),
        (Some(n), false) => format!("no run of attempt {n}"),
        (None, true) => "no review run".to_string(),
        (None, false) => "no run yet".to_string(),
    };
    match on_board {
        Some(status) => format!("task `{}` has {what} ({status})", args.id),
        None => format!(
            "no task `{}` on {} and {what} for it",
            args.id,
            board.display()
        ),
    }
}

fn cannot_read(path: &Path, e: &io::Error) -> Failure {
    Failure::new(Exit::State, format!("cannot read {}: {e}", path.display()))
}

/// Whether this event line ends `run`: its own `task_finished` (same task, attempt and phase,
/// logged after it started). Returns how it ended.
fn ends(line: &[u8], id: &str, run: &RunDir) -> Option<String> {
    let e = Record::from_line(line).ok()?;
    let at = e.ts.parse::<DateTime<Utc>>().ok()?;
    let finished = &*e.event == "task_finished"
        && e.task.as_deref() == Some(id)
        && e.attempt == Some(run.attempt)
        && (e.phase.as_deref() == Some("review")) == run.review
        && at >= run.started;
    finished.then(|| match e.outcome.as_deref() {
        Some(o) => format!("ended: {o}"),
        None => "ended".to_string(),
    })
}

/// The run is over without an event saying so when a newer run of the task started, or when
/// the task's lock has been gone (or its owner dead) for [`LIVENESS_EVERY`].
fn liveness(
    locks: &crate::shell::lock::Locks,
    state_dir: &Path,
    id: &str,
    run: &RunDir,
    gone_since: &mut Option<Instant>,
) -> Option<String> {
    if runs(state_dir, id)
        .ok()
        .and_then(|all| all.last().cloned())
        .is_some_and(|last| last != *run)
    {
        return Some("ended: a newer run started".into());
    }
    let held = match locks.read(id) {
        Some(crate::shell::lock::LockState::Held(owner)) => !matches!(
            crate::shell::lock::liveness(&owner),
            crate::shell::lock::Liveness::Dead(_)
        ),
        Some(crate::shell::lock::LockState::Unreadable { .. }) => true,
        None => false,
    };
    if held {
        *gone_since = None;
        return None;
    }
    let since = *gone_since.get_or_insert_with(Instant::now);
    (since.elapsed() >= LIVENESS_EVERY).then(|| "ended: its lock is gone".to_string())
}

/// Where the output goes: a header before each file's bytes when both are shown (`==> path <==`,
/// as `tail` names files), again whenever `-f` switches from one to the other.
struct Out<W: Write> {
    w: W,
    headers: bool,
    shown: Option<usize>,
    wrote_any: bool,
    at_line_start: bool,
}

impl<W: Write> Out<W> {
    fn header(&mut self, i: usize, path: &Path) -> io::Result<()> {
        if !self.headers {
            return Ok(());
        }
        if !self.at_line_start {
            self.w.write_all(b"\n")?;
        }
        if self.wrote_any {
            self.w.write_all(b"\n")?;
        }
        writeln!(self.w, "==> {} <==", path.display())?;
        self.shown = Some(i);
        self.wrote_any = true;
        self.at_line_start = true;
        Ok(())
    }

    fn bytes(&mut self, i: usize, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.shown != Some(i) {
            self.header(i, path)?;
        }
        self.w.write_all(bytes)?;
        self.wrote_any = true;
        self.at_line_start = bytes.ends_with(b"\n");
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Ends the output on a line boundary when headers are shown (one stream alone is left
    /// byte for byte as captured).
    fn finish(&mut self) -> io::Result<()> {
        if self.headers && !self.at_line_start {
            self.w.write_all(b"\n")?;
            self.at_line_start = true;
        }
        self.w.flush()
    }
}

/// One captured output file, read from where the last read stopped.
struct FollowedLog {
    path: PathBuf,
    file: Option<File>,
    pos: u64,
    /// The file was seen shorter than what was read: the cap's final rewrite may be under way.
    shrunk: bool,
}

impl FollowedLog {
    fn new(path: PathBuf) -> FollowedLog {
        FollowedLog {
            path,
            file: None,
            pos: 0,
            shrunk: false,
        }
    }

    /// The whole file as it is now; a missing file is empty.
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        match fsio::open_regular(&self.path) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                Ok(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The bytes added since the last poll. An output over `output_cap` stops growing at the
    /// cap while the run lives, and at its end is rewritten as its first half, the omission
    /// marker and its last half: the follower then goes back to where the marker starts, so
    /// what follows is the marker and the last half, as the file has them.
    fn poll(&mut self) -> io::Result<Vec<u8>> {
        if self.file.is_none() {
            match fsio::open_regular(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let len = file.metadata()?.len();
        if len < self.pos {
            if !self.shrunk {
                // Maybe the instant between the cap's cut and its rewrite: look again next time.
                self.shrunk = true;
                return Ok(Vec::new());
            }
            note(format!("{} was truncated", self.path.display()));
            self.pos = 0;
        }
        self.shrunk = false;
        if len == self.pos {
            return Ok(Vec::new());
        }
        if let Some(at) = marker_at(file, len)
            && at < self.pos
        {
            self.pos = at;
        }
        file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        file.take(len - self.pos).read_to_end(&mut buf)?;
        self.pos += buf.len() as u64;
        Ok(buf)
    }
}

/// Where the omission marker starts if a file of `len` bytes has the layout of a capped output
/// (first half, marker, last half).
fn marker_at(file: &File, len: u64) -> Option<u64> {
    const PREFIX: &[u8] = b"\n[taskboard: ";
    for digits in 1..=20u64 {
        let marker_len = crate::shell::exec::marker(10u64.pow((digits - 1) as u32)).len() as u64;
        if len < marker_len {
            continue;
        }
        let at = (len - marker_len) / 2;
        let mut buf = vec![0u8; marker_len as usize];
        if file.read_exact_at(&mut buf, at).is_err() || !buf.starts_with(PREFIX) {
            continue;
        }
        let n: String = buf[PREFIX.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        if n.len() as u64 == digits
            && let Ok(n) = n.parse::<u64>()
            && crate::shell::exec::marker(n).as_bytes() == buf.as_slice()
        {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_output_is_followed_to_its_marker() {
        let dir = std::env::temp_dir().join(format!("taskboard-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stdout.log");
        // While the run lives: the first 8 bytes of the stream (the cap).
        std::fs::write(&path, b"aaaabbbb").unwrap();
        let mut f = FollowedLog::new(path.clone());
        assert_eq!(f.poll().unwrap(), b"aaaabbbb");
        // At its end: the first half, the marker, the last half.
        let mut last = b"aaaa".to_vec();
        last.extend(crate::shell::exec::marker(12).as_bytes());
        last.extend(b"zzzz");
        std::fs::write(&path, &last).unwrap();
        let mut expect = crate::shell::exec::marker(12).into_bytes();
        expect.extend(b"zzzz");
        assert_eq!(f.poll().unwrap(), expect);
        assert!(f.poll().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
