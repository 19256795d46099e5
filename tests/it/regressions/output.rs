//! Output errors and odd files: no command panics when its stdout or stderr fails (a closed pipe
//! ends it quietly with exit 0; a full disk gives one line and exit 6), `retry` reports a change
//! it made as made, and no command waits on a FIFO where the board, `events.jsonl` or
//! `taskboard.toml` belongs: each is refused with one line at once. `tail -f` ends on SIGTERM in
//! every state, a blocked write to a pipe nobody reads included.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{self, Sandbox};

const BOARD: &str =
    "# Board\n\n## A-1: Write the notes\n- status: failed:exit_3\n\n## A-2: Ship\n- status: done\n";

/// How long any of these commands may take before it counts as hanging.
const HANG: Duration = Duration::from_secs(10);

/// The documented exit code for "the output could not be written".
const OUTPUT_FAILED: i32 = 6;

/// A board with a failed and a done task, and events from one `once`.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.write_board(BOARD);
    assert_eq!(sb.once(), 0, "once on a clean board");
    assert!(sb.count("runtime_started") > 0, "the events exist");
    sb
}

/// What a finished command left behind.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs `taskboard args` with `stdout` (`None`: a file read back) and stderr into a file, and
/// waits for it with a deadline: a command still running at [`HANG`] is killed and fails the test.
fn run(sb: &Sandbox, args: &[&str], stdout: Option<Stdio>) -> Ran {
    run_with(sb, args, stdout, None)
}

fn run_with(sb: &Sandbox, args: &[&str], stdout: Option<Stdio>, stderr: Option<Stdio>) -> Ran {
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let out_path = sb.path(&format!("out-{n}.txt"));
    let err_path = sb.path(&format!("err-{n}.txt"));
    let stdout = stdout.unwrap_or_else(|| File::create(&out_path).unwrap().into());
    let stderr = stderr.unwrap_or_else(|| File::create(&err_path).unwrap().into());
    let child = command(sb, args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let code = finish(child, &format!("taskboard {args:?}"));
    Ran {
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn command(sb: &Sandbox, args: &[&str]) -> std::process::Command {
    let mut cmd = sb.command(args);
    // `service install` writes under HOME: keep it in the sandbox.
    cmd.env("HOME", &sb.dir)
        .env("XDG_CONFIG_HOME", sb.path("xdg"))
        .env("TASKBOARD_LOG", "warn");
    cmd
}

/// The exit code, or a failed test if the process is still running at the deadline.
fn finish(mut child: Child, what: &str) -> Option<i32> {
    let mut status = None;
    let exited = support::poll(HANG, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} was still running after {HANG:?}: it hangs");
    }
    status.unwrap().code()
}

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn dev_full() -> Stdio {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// The commands that print a listing or a report, each with something to print.
const LISTINGS: &[&[&str]] = &[
    &["doctor"],
    &["service", "install", "--print"],
    &["status"],
    &["status", "--json"],
    &["lint"],
    &["show", "A-1"],
    &["packet", "A-1"],
    &["stats"],
    &["tail"],
    &["tail", "-f"],
    &["--help"],
];

#[test]
fn a_closed_pipe_ends_every_listing_quietly_with_exit_0() {
    let sb = sandbox("closed-pipe");
    for args in LISTINGS {
        let r = run(&sb, args, Some(closed_pipe()));
        assert!(
            !r.stderr.contains("panicked"),
            "{args:?} panicked:\n{}",
            r.stderr
        );
        assert_eq!(r.code, Some(0), "{args:?}: stderr:\n{}", r.stderr);
        assert_eq!(r.stderr, "", "{args:?} says nothing on a closed pipe");
    }
}

#[test]
fn a_full_stdout_gives_one_line_and_exit_6_from_every_listing() {
    let sb = sandbox("dev-full");
    for args in LISTINGS {
        let r = run(&sb, args, Some(dev_full()));
        assert!(
            !r.stderr.contains("panicked"),
            "{args:?} panicked:\n{}",
            r.stderr
        );
        assert_eq!(
            r.code,
            Some(OUTPUT_FAILED),
            "{args:?}: stderr:\n{}",
            r.stderr
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line:\n{}", r.stderr);
        assert!(
            lines[0].starts_with("taskboard: ") && lines[0].contains("No space left on device"),
            "{args:?}: {}",
            lines[0]
        );
    }
}

#[test]
fn an_error_with_stderr_full_keeps_its_documented_exit_code() {
    let sb = sandbox("stderr-full");
    // The board is missing: exit 2, whose line cannot be written.
    let r = run_with(&sb, &["lint", "missing.md"], None, Some(dev_full()));
    assert_eq!(r.code, Some(2), "not a panic's 101");
    // Both stdout and stderr full: exit 6, said nowhere.
    let r = run_with(&sb, &["status"], Some(dev_full()), Some(dev_full()));
    assert_eq!(r.code, Some(OUTPUT_FAILED), "not a panic's 101");
    // A usage error with stderr full.
    let r = run_with(&sb, &["lint", "--no-such-flag"], None, Some(dev_full()));
    assert_eq!(r.code, Some(64));
}

#[test]
fn retry_into_a_closed_pipe_exits_0_and_the_task_is_ready() {
    let sb = sandbox("retry-pipe");
    let r = run(&sb, &["retry", "A-1"], Some(closed_pipe()));
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sb.status_of("A-1"), "ready", "the retry happened");
    assert_eq!(sb.count_for("retry_requested", "A-1"), 1);
}

#[test]
fn retry_into_a_full_stdout_says_the_task_is_ready_and_exits_6() {
    let sb = sandbox("retry-full");
    let r = run(&sb, &["retry", "A-1"], Some(dev_full()));
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(r.code, Some(OUTPUT_FAILED), "{}", r.stderr);
    assert_eq!(sb.status_of("A-1"), "ready", "the retry happened");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains("A-1: failed:exit_3 -> ready")
            && lines[0].contains("the report could not be printed"),
        "the line says the retry was made: {}",
        lines[0]
    );
    // Stderr full as well: still 6, still done.
    sb.write_board(BOARD);
    let r = run_with(&sb, &["retry", "A-1"], Some(dev_full()), Some(dev_full()));
    assert_eq!(r.code, Some(OUTPUT_FAILED));
    assert_eq!(sb.status_of("A-1"), "ready");
}

/// `(args, expected exit code)`; a code of 1 is doctor's, whose finding is on stdout.
fn assert_refused_at_once(sb: &Sandbox, cases: &[(&[&str], i32)], file: &str) {
    let line = format!("{file}: not a regular file (a FIFO)");
    for (args, code) in cases {
        let r = run(sb, args, None);
        assert_eq!(r.code, Some(*code), "{args:?}: stderr:\n{}", r.stderr);
        let said = if *code == 1 { &r.stdout } else { &r.stderr };
        assert!(said.contains(&line), "{args:?} names the FIFO:\n{said}");
        assert!(!r.stderr.contains("panicked"), "{args:?}:\n{}", r.stderr);
        assert!(is_fifo(&sb.path(file)), "{args:?} left the FIFO in place");
    }
}

#[test]
fn a_fifo_board_is_refused_at_once_by_every_command() {
    let sb = sandbox("fifo-board");
    mkfifo(&sb.board);
    let cases: &[(&[&str], i32)] = &[
        (&["stats"], 2),
        (&["status"], 2),
        (&["show", "A-1"], 2),
        (&["lint"], 2),
        (&["packet", "A-1"], 2),
        (&["diff", "A-1"], 2),
        (&["retry", "A-1"], 2),
        (&["once", "task-board.md"], 2),
        (&["run", "task-board.md"], 2),
        (&["doctor"], 1),
    ];
    assert_refused_at_once(&sb, cases, "task-board.md");
    // A symlink to a regular board stays a board.
    sb.write("real.md", BOARD);
    std::os::unix::fs::symlink(sb.path("real.md"), sb.path("link.md")).unwrap();
    let r = run(&sb, &["status", "link.md"], None);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("A-1"), "{}", r.stdout);
}

#[test]
fn a_fifo_event_log_is_refused_at_once_by_tail_stats_show_and_the_runtime() {
    let sb = sandbox("fifo-events");
    mkfifo(&sb.path("events.jsonl"));
    let cases: &[(&[&str], i32)] = &[
        (&["tail"], 4),
        (&["tail", "-f"], 4),
        (&["stats"], 4),
        (&["show", "A-1"], 4),
        (&["once", "task-board.md"], 4),
        (&["run", "task-board.md"], 4),
    ];
    assert_refused_at_once(&sb, cases, "events.jsonl");
}

#[test]
fn a_fifo_config_is_refused_at_once() {
    let sb = sandbox("fifo-config");
    mkfifo(&sb.path("taskboard.toml"));
    let cases: &[(&[&str], i32)] = &[
        (&["lint"], 3),
        (&["packet", "A-1"], 3),
        (&["once", "task-board.md"], 3),
        (&["run", "task-board.md"], 3),
        (&["doctor"], 1),
    ];
    assert_refused_at_once(&sb, cases, "taskboard.toml");
}

/// Starts `tail -f` with stdout to `stdout` and stderr to a file; returns it and that file.
fn start_tail_f(sb: &Sandbox, stdout: Stdio, extra: &[&str]) -> (Child, PathBuf) {
    let err = sb.path("tail-f.stderr");
    let mut args = vec!["tail", "-f"];
    args.extend_from_slice(extra);
    let child = command(sb, &args)
        .stdout(stdout)
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    (child, err)
}

fn sigterm_ends(child: Child, state: &str) {
    // SAFETY: kill(2) on our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let code = finish(child, &format!("tail -f after SIGTERM while {state}"));
    assert_eq!(code, Some(0), "tail -f exits 0 on SIGTERM while {state}");
}

#[test]
fn tail_f_exits_promptly_on_sigterm_in_every_state() {
    // Waiting for a log that does not exist yet.
    let sb = Sandbox::new("tail-f-waiting");
    sb.write_board(BOARD);
    let (child, err) = start_tail_f(&sb, Stdio::null(), &[]);
    assert!(
        support::poll(HANG, || std::fs::read_to_string(&err)
            .is_ok_and(|e| e.contains("waiting for"))),
        "tail -f waits for the log"
    );
    sigterm_ends(child, "waiting for the log to appear");

    // Following the log.
    let sb = sandbox("tail-f-following");
    let out = sb.path("tail-f.stdout");
    let (child, _) = start_tail_f(&sb, File::create(&out).unwrap().into(), &[]);
    assert!(
        support::poll(HANG, || std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)),
        "tail -f printed the history"
    );
    sigterm_ends(child, "following");

    // Blocked in a write to a pipe nobody reads: far more history than a pipe holds (64 KiB).
    let first = std::fs::read_to_string(sb.path("events.jsonl")).unwrap();
    let line = first.lines().next().unwrap().to_string() + "\n";
    let mut log = OpenOptions::new()
        .append(true)
        .open(sb.path("events.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut log, line.repeat(4000).as_bytes()).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let (child, _) = start_tail_f(&sb, writer.into(), &["-n", "100000"]);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
    // SAFETY: F_GETPIPE_SZ on a pipe we own only reads its capacity.
    let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    assert!(capacity > 0, "pipe capacity");
    let level = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD on a pipe's read end we own writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        if rc == 0 { n } else { -1 }
    };
    // Blocked: the pipe is mostly full and has stopped filling, so tail waits in a write for a
    // reader that never comes.
    let mut last = (-1, Instant::now());
    let blocked = support::poll(HANG, || {
        let n = level();
        if n != last.0 {
            last = (n, Instant::now());
        }
        n >= capacity / 2 && last.1.elapsed() >= Duration::from_millis(200)
    });
    assert!(
        blocked,
        "the pipe filled up: {} of {capacity} bytes",
        level()
    );
    sigterm_ends(child, "blocked writing to a full pipe");
    drop(reader);
}

#[test]
fn tail_f_stops_with_one_line_when_a_fifo_takes_the_logs_place() {
    let sb = sandbox("tail-f-fifo");
    let out = sb.path("tail-f.stdout");
    let (child, err) = start_tail_f(&sb, File::create(&out).unwrap().into(), &[]);
    assert!(
        support::poll(HANG, || std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)),
        "tail -f printed the history"
    );
    std::fs::rename(sb.path("events.jsonl"), sb.path("events-old.jsonl")).unwrap();
    mkfifo(&sb.path("events.jsonl"));
    let code = finish(child, "tail -f with a FIFO in the log's place");
    assert_eq!(code, Some(4));
    let err = std::fs::read_to_string(err).unwrap();
    assert!(
        err.contains("events.jsonl: not a regular file (a FIFO)"),
        "{err}"
    );
}

#[test]
fn a_dashboard_into_a_fifo_nobody_reads_is_refused_at_once() {
    let sb = sandbox("fifo-html");
    mkfifo(&sb.path("dash.html"));
    let r = run(&sb, &["stats", "--html", "dash.html"], None);
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains("dash.html: a FIFO that nobody reads"),
        "{}",
        lines[0]
    );
    assert!(is_fifo(&sb.path("dash.html")), "the FIFO is left in place");
}
