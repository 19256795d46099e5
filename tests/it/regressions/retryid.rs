//! `taskboard retry` racing a person's save, an ID that is a path, and one board reached by
//! more than one name (a symbolic link, a hard link).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{DEADLINE, Sandbox, exit_code_within, poll};

/// Every file and folder under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// A child process that is killed and reaped if the test ends early.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line on stderr, `taskboard: …`, and no backtrace.
fn assert_one_line_error(what: &str, stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
    assert!(stderr.starts_with("taskboard: "), "{what}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr:?}");
}

/// The `- saved <n>` lines on the board.
fn saved_lines(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("- saved "))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

const SAVER: &str = "i=0
while [ -e go ] && [ $i -lt 20000 ]; do
  i=$((i+1))
  echo \"- saved $i\" >> task-board.md
  sleep 0.005
done
echo $i > saved-count";

/// The saver process; stopped (its `go` file removed, then killed) if the test ends early.
struct Saver(Child, PathBuf);

impl Drop for Saver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_save_landing_while_retry_writes_is_never_overwritten() {
    const TASKS: usize = 50;
    let sb = Sandbox::new("retry-vs-save");
    let mut board = String::from("# Board\n\n");
    for i in 1..=TASKS {
        board.push_str(&format!("## R-{i}: task {i}\n- status: failed:boom\n\n"));
    }
    board.push_str("## Notes\n\n");
    sb.write_board(&board);
    // A person's saver: appends one unique line per save, in place, every few milliseconds,
    // until `go` is removed (or 20000 saves); then says how many it saved.
    std::fs::write(sb.path("go"), "").unwrap();
    let mut saver = Saver(
        Command::new("sh")
            .arg("-c")
            .arg(SAVER)
            .current_dir(&sb.dir)
            .spawn()
            .unwrap(),
        sb.path("go"),
    );
    assert!(
        poll(DEADLINE, || saved_lines(&sb.board_text()).len() >= 10),
        "the saver never saved"
    );

    let mut applied = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for i in 1..=TASKS {
        let id = format!("R-{i}");
        let out = sb.command(&["retry", &id]).output().unwrap();
        match out.status.code() {
            Some(0) => {
                applied.insert(id);
            }
            code => {
                assert_eq!(code, Some(5), "{id}: {}", stderr_of(&out));
                assert_one_line_error(&id, &stderr_of(&out));
                failed.insert(id);
            }
        }
    }
    std::fs::remove_file(sb.path("go")).unwrap();
    assert!(saver.0.wait().unwrap().success());

    let saved: u64 = std::fs::read_to_string(sb.path("saved-count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let lines = saved_lines(&sb.board_text());
    let missing: Vec<u64> = (1..=saved).filter(|n| !lines.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {saved} saved lines lost: {missing:?}",
        missing.len()
    );
    assert_eq!(lines.len() as u64, saved, "a saved line appears twice");
    // Applied means `ready` on the board; a clean failure means nothing changed.
    for i in 1..=TASKS {
        let id = format!("R-{i}");
        let want = if applied.contains(&id) {
            "ready"
        } else {
            "failed:boom"
        };
        assert_eq!(sb.status_of(&id), want, "{id}");
    }
    assert_eq!(applied.len() + failed.len(), TASKS);
    // Only applied retries leave a request for the runtime.
    let requests: BTreeSet<String> = std::fs::read_dir(sb.path(".taskboard/requests"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.trim_end_matches(".retry").to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(requests, applied);
    let debris: Vec<_> = tree(&sb.dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(debris.is_empty(), "temporary files left: {debris:?}");
}

#[test]
fn retry_with_an_id_that_is_a_path_creates_nothing_anywhere() {
    let sb = Sandbox::new("retry-path-id");
    // Headings whose first word is a path: not usable task IDs, but they do carry a status.
    let board = "# Board\n\n## ../../x: escape\n- status: failed:boom\n\n## a/b: nest\n- status: failed:boom\n\n## A-1: fine\n- status: failed:boom\n";
    sb.write_board(board);
    let before = tree(&sb.dir);
    for id in ["../../x", "a/b", "../A-1", "A-1/../A-1"] {
        let out = sb.command(&["retry", id]).output().unwrap();
        assert_eq!(tree(&sb.dir), before, "{id} created files");
        assert_eq!(out.status.code(), Some(64), "{id}: {}", stderr_of(&out));
        assert_one_line_error(id, &stderr_of(&out));
        assert!(stderr_of(&out).contains("not a task ID"), "{id}");
    }
    assert_eq!(sb.board_text(), board);
}

/// A board at `task-board.md` in the sandbox, and `other/link.md -> ../task-board.md`.
fn linked_sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    std::fs::create_dir_all(sb.path("other")).unwrap();
    std::os::unix::fs::symlink("../task-board.md", sb.path("other/link.md")).unwrap();
    sb
}

/// An executor that logs each start in `runs.log` and holds its task until `release` exists,
/// whichever runtime started it.
fn holding_executor(sb: &Sandbox) {
    sb.script(
        "exec.sh",
        &format!(
            "cat >/dev/null\necho \"$TASKBOARD_TASK_ID\" >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.02; done",
            sb.path("runs.log").display(),
            sb.path("release").display()
        ),
    );
    sb.config(
        "",
        &format!(
            "[executors.default]\ncommand = [\"{}\"]\n",
            sb.path("exec.sh").display()
        ),
    );
}

fn starts(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.path("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the three tasks of [`THREE_READY`] are done, stops the run, and checks that
/// each ran exactly once.
fn stop_when_all_done_and_each_ran_once(sb: &mut Sandbox, pid: u32) {
    sb.wait_until("all done", |s| {
        ["L-1", "L-2", "L-3"]
            .iter()
            .all(|id| s.status_of(id) == "done")
    });
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let mut runs = starts(sb);
    runs.sort();
    assert_eq!(
        runs,
        ["L-1", "L-2", "L-3"],
        "each task must run exactly once"
    );
}

const THREE_READY: &str = "# Board\n\n## L-1: one\n- status: ready\n\n## L-2: two\n- status: ready\n\n## L-3: three\n- status: ready\n";

#[test]
fn a_second_run_through_a_symlink_is_refused_by_the_real_boards_run_lock() {
    let mut sb = linked_sandbox("link-run");
    holding_executor(&sb);
    sb.write_board(THREE_READY);
    let pid = sb.start_run();
    sb.wait_until("three running", |s| starts(s).len() == 3);

    let mut second = sb
        .command(&["run", "other/link.md"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_code_within(&mut second, DEADLINE);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(4), "the second run was not refused: {stderr}");
    assert!(stderr.contains("already serving"), "{stderr}");
    assert!(!sb.path("other/.taskboard").exists());
    assert!(!sb.path("other/events.jsonl").exists());

    std::fs::write(sb.path("release"), "").unwrap();
    stop_when_all_done_and_each_ran_once(&mut sb, pid);
}

#[test]
fn a_once_through_a_symlink_beside_a_run_runs_each_task_exactly_once() {
    let mut sb = linked_sandbox("link-once");
    holding_executor(&sb);
    sb.write_board(THREE_READY);
    let pid = sb.start_run();
    sb.wait_until("three running", |s| starts(s).len() == 3);

    let mut once = sb
        .command(&["once", "other/link.md"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Either `once` finishes, leaving the live claims alone, or it starts a second run.
    let mut exited = None;
    poll(DEADLINE, || {
        exited = once.try_wait().unwrap().map(|s| s.code());
        exited.is_some() || starts(&sb).len() > 3
    });
    std::fs::write(sb.path("release"), "").unwrap();
    let code = exit_code_within(&mut once, DEADLINE);
    stop_when_all_done_and_each_ran_once(&mut sb, pid);
    assert_eq!(code, Some(0));
    assert!(!sb.path("other/.taskboard").exists());
    assert!(!sb.path("other/events.jsonl").exists());
}

#[test]
fn a_single_run_through_a_symlink_sees_saves_made_through_the_link() {
    let sb = linked_sandbox("link-saves");
    sb.script("exec.sh", "cat >/dev/null");
    sb.config(
        "",
        &format!(
            "[executors.default]\ncommand = [\"{}\"]\n",
            sb.path("exec.sh").display()
        ),
    );
    sb.write_board("# Board\n\n## S-1: one\n- status: blocked:me:later\n\n## S-2: two\n- status: blocked:me:later\n");
    let stderr = std::fs::File::create(sb.path("run-0.stderr")).unwrap();
    let mut run = Reaped(
        sb.command(&["run", "other/link.md"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    sb.wait_until("first pass", |s| s.count("pass") > 0);

    // An editor that replaces the link's target by rename.
    let st = Command::new("sed")
        .args([
            "-i",
            "--follow-symlinks",
            "s/blocked:me:later/ready/",
            "other/link.md",
        ])
        .current_dir(&sb.dir)
        .status()
        .unwrap();
    assert!(st.success());
    sb.wait_until("both done", |s| {
        s.status_of("S-1") == "done" && s.status_of("S-2") == "done"
    });
    // vim writes through the link.
    let st = Command::new("vim")
        .args([
            "-u",
            "NONE",
            "-i",
            "NONE",
            "-n",
            "-es",
            "-c",
            "%s/^## S-2: two/## S-2: two\\r\\r## S-3: three\\r- status: ready/",
            "-c",
            "wq",
            "other/link.md",
        ])
        .current_dir(&sb.dir)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    sb.wait_until("the task saved by vim done", |s| {
        s.status_of("S-3") == "done"
    });

    assert!(
        std::fs::symlink_metadata(sb.path("other/link.md"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link must stay a link"
    );
    assert_eq!(sb.count("task_dispatched"), 3);
    assert!(!sb.path("other/.taskboard").exists());
    assert!(!sb.path("other/events.jsonl").exists());
    unsafe { libc::kill(run.0.id() as i32, libc::SIGTERM) };
    assert_eq!(exit_code_within(&mut run.0, DEADLINE), Some(0));
}

#[test]
fn a_hard_linked_board_is_refused_by_every_command_and_nothing_is_created() {
    let sb = Sandbox::new("hardlink");
    sb.write_board("# Board\n\n## H-1: one\n- status: failed:boom\n");
    std::fs::create_dir_all(sb.path("other")).unwrap();
    std::fs::hard_link(&sb.board, sb.path("other/alias.md")).unwrap();
    std::fs::create_dir_all(sb.path("home")).unwrap();
    let before = tree(&sb.dir);
    let commands: &[&[&str]] = &[
        &["run", "task-board.md"],
        &["once", "task-board.md"],
        &["status", "task-board.md"],
        &["show", "H-1", "task-board.md"],
        &["lint", "task-board.md"],
        &["retry", "H-1", "task-board.md"],
        &["packet", "H-1", "task-board.md"],
        &["stats", "task-board.md"],
        &["tail", "task-board.md"],
        &["doctor", "task-board.md"],
        &["service", "install", "--systemd", "task-board.md"],
        &["run", "other/alias.md"],
        &["retry", "H-1", "other/alias.md"],
    ];
    for args in commands {
        let mut child = sb
            .command(args)
            .env("HOME", sb.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let code = exit_code_within(&mut child, DEADLINE);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_one_line_error(&format!("{args:?}"), &stderr);
        assert!(
            stderr.contains("2 hard links") && stderr.contains("symbolic link"),
            "{args:?}: {stderr}"
        );
        assert_eq!(tree(&sb.dir), before, "{args:?} created files");
    }
    assert_eq!(
        sb.board_text(),
        "# Board\n\n## H-1: one\n- status: failed:boom\n"
    );
}
