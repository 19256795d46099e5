//! A board left with git conflict markers after a pull, and a clock that ran ahead and left a
//! retry time a year away.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::Sandbox;

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(3);

const EXECUTOR: &str = "[executors.default]\ncommand = [\"./exec.sh\"]\n";

/// An executor that appends its task's ID to `ran.log`.
fn logging_executor(sb: &Sandbox) {
    sb.script(
        "exec.sh",
        "cat > /dev/null\necho \"$TASKBOARD_TASK_ID\" >> ran.log\nexit 0",
    );
    sb.config("", EXECUTOR);
}

fn runs_of(sb: &Sandbox, id: &str) -> usize {
    std::fs::read_to_string(sb.path("ran.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == id)
        .count()
}

fn git(sb: &Sandbox, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(&sb.dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &sb.dir)
        .output()
        .unwrap()
}

fn git_ok(sb: &Sandbox, args: &[&str]) {
    let out = git(sb, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const BASE: &str = "# Board\n\n## A-1: On both sides\n- status: done\n";

/// A board as `git merge` leaves it when two branches each added a task at its end. The
/// runtime's own files are ignored, as a person would have them.
fn conflicted_by_git(sb: &Sandbox) -> String {
    sb.write(
        ".gitignore",
        ".taskboard/\nevents.jsonl*\nran.log\nexec.sh\ntaskboard.toml\n*.stderr\n",
    );
    git_ok(sb, &["init", "-q", "-b", "main"]);
    sb.write_board(BASE);
    git_ok(sb, &["add", "-A"]);
    git_ok(sb, &["commit", "-qm", "base"]);
    git_ok(sb, &["checkout", "-qb", "other"]);
    sb.write_board(&format!(
        "{BASE}\n## C-1: Added on the other branch\n- status: ready\n"
    ));
    git_ok(sb, &["commit", "-qam", "other adds C-1"]);
    git_ok(sb, &["checkout", "-q", "main"]);
    sb.write_board(&format!("{BASE}\n## B-1: Added here\n- status: ready\n"));
    git_ok(sb, &["commit", "-qam", "main adds B-1"]);
    let merge = git(sb, &["merge", "-q", "other"]);
    assert!(!merge.status.success(), "the merge was meant to conflict");
    let text = sb.board_text();
    assert!(
        text.contains("<<<<<<< HEAD\n") && text.contains(">>>>>>> other\n"),
        "{text}"
    );
    text
}

fn conflict_errors(sb: &Sandbox) -> usize {
    sb.events_named("error")
        .iter()
        .filter(|e| e["context"] == "board")
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("conflict markers"))
        })
        .count()
}

fn lint_events(sb: &Sandbox, code: &str) -> usize {
    sb.events_named("lint")
        .iter()
        .filter(|e| e["code"] == code)
        .count()
}

#[test]
fn a_board_with_git_conflict_markers_runs_nothing_and_is_not_written_until_resolved() {
    let mut sb = Sandbox::new("lintclock-conflict");
    let conflicted = conflicted_by_git(&sb);
    logging_executor(&sb);
    sb.spawn_run();
    sb.wait_until("the conflict reported", |s| {
        conflict_errors(s) == 1 && lint_events(s, "conflict-markers") == 1
    });
    // The same conflicted bytes saved again are not a new report.
    sb.write_board(&conflicted);
    assert!(
        sb.stays_false(QUIET, |s| s.path("ran.log").exists()
            || conflict_errors(s) > 1
            || s.board_text() != conflicted),
        "ran: {:?}; conflict errors: {}; board:\n{}",
        std::fs::read_to_string(sb.path("ran.log")).ok(),
        conflict_errors(&sb),
        sb.board_text()
    );
    assert_eq!(sb.count("task_dispatched"), 0);

    // Resolved: both tasks kept, markers gone.
    sb.write_board(&format!(
        "{BASE}\n## B-1: Added here\n- status: ready\n\n## C-1: Added on the other branch\n- status: ready\n"
    ));
    sb.wait_until("both tasks done", |s| {
        s.status_of("B-1") == "done" && s.status_of("C-1") == "done"
    });
    assert_eq!((runs_of(&sb, "B-1"), runs_of(&sb, "C-1")), (1, 1));
    assert_eq!(sb.count("task_dispatched"), 2);
    assert_eq!(conflict_errors(&sb), 1);
}

#[test]
fn a_run_that_ends_while_the_board_is_conflicted_writes_its_ending_after_the_resolution() {
    let mut sb = Sandbox::new("lintclock-ending");
    // The executor waits for `go`, so the conflict lands while it runs.
    sb.script(
        "exec.sh",
        "cat > /dev/null\nwhile [ ! -f go ]; do sleep 0.02; done\necho \"$TASKBOARD_TASK_ID\" >> ran.log\nexit 0",
    );
    sb.config("", EXECUTOR);
    sb.write_board("# Board\n\n## A-1: Long\n- status: ready\n");
    sb.spawn_run();
    sb.wait_until("A-1 running", |s| {
        s.status_of("A-1").starts_with("running:")
    });
    let running = sb.status_of("A-1");
    let conflicted = format!(
        "# Board\n\n## A-1: Long\n- status: {running}\n\n<<<<<<< HEAD\n## B-1: Here\n- status: blocked:me:later\n=======\n## C-1: There\n- status: blocked:me:later\n>>>>>>> other\n"
    );
    sb.write_board(&conflicted);
    sb.wait_until("the conflict reported", |s| conflict_errors(s) == 1);
    sb.write("go", "");
    sb.wait_until("A-1 finished", |s| s.count_for("task_finished", "A-1") == 1);
    assert!(
        sb.stays_false(QUIET, |s| s.board_text() != conflicted),
        "the conflicted board was written:\n{}",
        sb.board_text()
    );

    sb.write_board(&format!(
        "# Board\n\n## A-1: Long\n- status: {running}\n\n## B-1: Here\n- status: blocked:me:later\n"
    ));
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    assert_eq!(runs_of(&sb, "A-1"), 1);
    assert_eq!(sb.count_for("task_dispatched", "A-1"), 1);
    assert_eq!(sb.status_of("B-1"), "blocked:me:later");
}

#[test]
fn once_on_a_conflicted_board_exits_2_with_one_line_and_touches_nothing() {
    let sb = Sandbox::new("lintclock-once");
    let conflicted = conflicted_by_git(&sb);
    logging_executor(&sb);
    let out = sb.command(&["once", "task-board.md"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("taskboard: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("unresolved git conflict markers") && lines[0].contains("line 6"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!sb.path("ran.log").exists());
    assert_eq!(sb.board_text(), conflicted);
}

#[test]
fn lint_and_doctor_report_a_conflicted_board() {
    let sb = Sandbox::new("lintclock-lint");
    conflicted_by_git(&sb);
    logging_executor(&sb);
    let out = sb.command(&["lint", "task-board.md"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "task-board.md:6:1: error[conflict-markers]: the board has 1 unresolved git conflict"
        ),
        "{stdout}"
    );
    let out = sb
        .command(&["doctor", "task-board.md"])
        .env("HOME", sb.path("home"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL  board:") && l.contains("conflict markers from line 6")),
        "{stdout}"
    );
}

/// A UTC time `days` from now, as the runtime writes it.
fn days_ahead(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn a_retry_time_a_year_ahead_is_retried_now_and_reported() {
    let mut sb = Sandbox::new("lintclock-retry");
    logging_executor(&sb);
    sb.write_board(&format!(
        "# Board\n\n## R-1: Written while the clock was ahead\n- status: blocked:retry:{}\n",
        days_ahead(365)
    ));
    let out = sb.command(&["lint", "task-board.md"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("task-board.md:4:25: warning[retry-far-future]: task `R-1`"),
        "{stdout}"
    );

    sb.spawn_run();
    sb.wait_until("R-1 done", |s| s.status_of("R-1") == "done");
    assert_eq!(runs_of(&sb, "R-1"), 1);
    let dispatched = sb.events_named("task_dispatched");
    assert_eq!(dispatched.len(), 1);
    assert_eq!(dispatched[0]["attempt"], 1);
    assert_eq!(lint_events(&sb, "retry-far-future"), 1);
}

#[test]
fn doctor_reports_a_retry_a_year_ahead_and_a_claim_a_year_ahead() {
    let sb = Sandbox::new("lintclock-doctor");
    logging_executor(&sb);
    let doctor = |sb: &Sandbox| {
        let out = sb
            .command(&["doctor", "task-board.md"])
            .env("HOME", sb.path("home"))
            .output()
            .unwrap();
        let clock = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.get(6..).is_some_and(|r| r.starts_with("clock: ")))
            .map(str::to_string)
            .unwrap_or_default();
        (out.status.code(), clock)
    };
    sb.write_board(&format!(
        "# Board\n\n## R-1\n- status: blocked:retry:{}\n",
        days_ahead(365)
    ));
    let (_, clock) = doctor(&sb);
    assert!(
        clock.starts_with("warn  clock:") && clock.contains("R-1") && clock.contains(" — "),
        "{clock}"
    );

    sb.write_board(&format!(
        "# Board\n\n## R-1\n- status: blocked:retry:{}\n\n## C-1\n- status: running:someone:{}\n",
        days_ahead(365),
        days_ahead(365)
    ));
    let (code, clock) = doctor(&sb);
    assert_eq!(code, Some(1), "{clock}");
    assert!(
        clock.starts_with("FAIL  clock:") && clock.contains("C-1") && clock.contains("R-1"),
        "{clock}"
    );
}

/// User plus system CPU time of `pid`, in clock ticks (fields 14 and 15 of /proc/pid/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The CPU clock ticks `pid` uses over 1.5 s of watching, or fewer once it has used more than
/// `limit` (a bounded negative check, like `Sandbox::stays_false`: it ends early on the bad
/// outcome): a loop that re-reads a board burns about 100 a second.
fn ticks_over_a_while(pid: u32, limit: u64) -> u64 {
    let start = cpu_ticks(pid);
    crate::support::poll(Duration::from_millis(1500), || {
        cpu_ticks(pid) - start > limit
    });
    cpu_ticks(pid) - start
}

/// Polls until the clock is past `due`.
fn wait_past(due: chrono::DateTime<chrono::Utc>) {
    assert!(
        crate::support::poll(Duration::from_secs(10), || chrono::Utc::now()
            > due + chrono::Duration::milliseconds(200)),
        "the retry time never passed"
    );
}

#[test]
fn a_conflicted_board_is_waited_on_quietly_when_a_retry_on_it_falls_due() {
    let mut sb = Sandbox::new("lintclock-quiet");
    logging_executor(&sb);
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let retry = format!(
        "## R-1\n- status: blocked:retry:{}\n",
        due.format("%Y-%m-%dT%H:%M:%SZ")
    );
    sb.write_board(&format!("# Board\n\n{retry}"));
    let pid = sb.start_run();
    let conflicted = format!(
        "# Board\n\n{retry}\n<<<<<<< HEAD\n## B-1\n- status: done\n=======\n## C-1\n- status: done\n>>>>>>> other\n"
    );
    sb.write_board(&conflicted);
    sb.wait_until("the conflict reported", |s| conflict_errors(s) == 1);
    wait_past(due);

    // The runtime has nothing to do until the next save: it must sleep, not re-read the board
    // in a loop. A busy loop burns about 100 ticks per second.
    let used = ticks_over_a_while(pid, 10);
    assert!(used <= 10, "run used {used} clock ticks while held");
    assert!(!sb.path("ran.log").exists());
    assert_eq!(sb.board_text(), conflicted);
}

/// The same for a board that is gone (deleted, or mid-rename by a tool that took its time)
/// when a retry on it falls due: the runtime waits for the board to come back, asleep.
#[test]
fn a_missing_board_is_waited_on_quietly_when_a_retry_on_it_falls_due() {
    let mut sb = Sandbox::new("missing-quiet");
    logging_executor(&sb);
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let text = format!(
        "# Board\n\n## R-1\n- status: blocked:retry:{}\n",
        due.format("%Y-%m-%dT%H:%M:%SZ")
    );
    sb.write_board(&text);
    let pid = sb.start_run();
    std::fs::remove_file(&sb.board).unwrap();
    sb.wait_until("the missing board reported", |s| s.errors_in("board") == 1);
    wait_past(due);
    let used = ticks_over_a_while(pid, 10);
    assert!(
        used <= 10,
        "run used {used} clock ticks waiting for the board"
    );
    // The board is back: the retry runs.
    sb.write_board(&text);
    sb.wait_until("R-1 ran", |s| s.path("ran.log").exists());
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// `taskboard retry` writes nothing into a conflicted board either, and leaves no request.
#[test]
fn retry_on_a_conflicted_board_exits_2_with_one_line_and_touches_nothing() {
    let sb = Sandbox::new("retry-conflicted");
    let text = "# Board\n\n## R-1\n- status: failed:gave-up\n\n<<<<<<< HEAD\n## B-1\n- status: done\n=======\n## C-1\n- status: done\n>>>>>>> other\n";
    sb.write_board(text);
    let out = sb.command(&["retry", "R-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("unresolved git conflict markers"),
        "{stderr}"
    );
    assert_eq!(sb.board_text(), text);
    assert!(!sb.path(".taskboard/requests").exists());
}
