//! `taskboard logs`: a run's captured output while it runs and after, `-f` until the run ends
//! or a signal, and `show` naming where a running task's output is.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use support::{Sandbox, poll};

const BOARD: &str = "# Board\n\n### A-1: Talk slowly\n- status: ready\n\nSay two things.\n";

/// A board whose task prints a line on each stream, waits for `gate`, then prints another.
fn gated(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.script(
        "exec.sh",
        "echo first line\necho a warning >&2\nwhile [ ! -e gate ]; do sleep 0.05; done\necho second line",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board(BOARD);
    sb
}

/// The task's only run folder, once its stdout has `text`.
fn run_dir_with(sb: &Sandbox, text: &str) -> PathBuf {
    let runs = sb.path(".taskboard/runs/A-1");
    let mut found = None;
    let seen = poll(Duration::from_secs(30), || {
        found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                std::fs::read_to_string(p.join("stdout.log")).is_ok_and(|s| s.contains(text))
            });
        found.is_some()
    });
    assert!(seen, "no run folder with {text:?}:\n{}", sb.stderr());
    found.unwrap()
}

/// A `taskboard logs … -f` process and its stdout lines.
struct Follow {
    child: Child,
    lines: Receiver<String>,
}

impl Follow {
    fn start(sb: &Sandbox, args: &[&str]) -> Follow {
        let mut child = sb
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// Waits (with a deadline) for a line equal to `want`; returns the lines before it.
    fn until(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return before,
                Ok(line) => before.push(line),
                Err(_) => panic!("`logs -f` never printed {want:?}; it printed {before:?}"),
            }
        }
    }

    /// Polls for the process to exit within `within`; its exit code.
    fn exit_within(&mut self, within: Duration) -> Option<i32> {
        let mut code = None;
        let exited = poll(within, || match self.child.try_wait().unwrap() {
            Some(status) => {
                code = Some(status.code().unwrap_or(-1));
                true
            }
            None => false,
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        code
    }
}

fn stop(mut sb: Sandbox) {
    sb.signal_all(libc::SIGTERM);
    assert_eq!(sb.wait_all(), vec![Some(0)]);
}

#[test]
fn logs_shows_a_running_task_output_and_follows_it_to_its_end() {
    let mut sb = gated("follow");
    sb.start_run();
    let run_dir = run_dir_with(&sb, "first line\n");
    let folder = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(folder.starts_with("1-"), "{folder}");

    // While it runs: what it has written so far, each file under a header naming it.
    let out = sb.command(&["logs", "A-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "==> .taskboard/runs/A-1/{folder}/stdout.log <==\nfirst line\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "==> .taskboard/runs/A-1/{folder}/stderr.log <==\na warning\n"
        )),
        "{text}"
    );
    assert!(!text.contains("second line"), "{text}");
    let only = sb.command(&["logs", "A-1", "--stderr"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&only.stdout), "a warning\n");

    // `show` says since when, on which route, which attempt, and where its output is.
    let out = sb.command(&["show", "A-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running since "), "{text}");
    assert!(text.contains("attempt 1 on `default`"), "{text}");
    assert!(
        text.contains(&format!(".taskboard/runs/A-1/{folder}")),
        "{text}"
    );
    assert!(text.contains("taskboard logs A-1 -f"), "{text}");
    assert!(!text.contains("none yet"), "{text}");
    let out = sb.command(&["show", "A-1", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let running = &v["running"];
    assert_eq!(running["route"], "default", "{v}");
    assert_eq!(running["attempt"], 1, "{v}");
    assert!(running["since"].is_string(), "{v}");
    assert!(running["age_s"].as_i64().is_some_and(|a| a >= 0), "{v}");
    assert!(
        running["run_dir"]
            .as_str()
            .is_some_and(|d| d.ends_with(&format!(".taskboard/runs/A-1/{folder}"))),
        "{v}"
    );

    // `-f` started while it runs prints both lines, then exits 0 by itself once the run ends.
    let mut follow = Follow::start(&sb, &["logs", "A-1", "-f", "--stdout"]);
    follow.until("first line");
    sb.write("gate", "");
    follow.until("second line");
    assert_eq!(follow.exit_within(Duration::from_secs(30)), Some(0));
    sb.wait_until("the task is done", |s| s.status_of("A-1") == "done");

    // After the run, `show` no longer says it runs, and `logs` has the whole output.
    let out = sb.command(&["show", "A-1", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["running"].is_null(), "{v}");
    let out = sb
        .command(&["logs", "A-1", "--attempt", "1", "--stdout"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "first line\nsecond line\n"
    );
    stop(sb);
}

#[test]
fn logs_follow_ends_promptly_on_sigterm() {
    let mut sb = gated("sigterm");
    sb.start_run();
    run_dir_with(&sb, "first line\n");
    let mut follow = Follow::start(&sb, &["logs", "A-1", "-f"]);
    follow.until("first line");
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    let rc = unsafe { libc::kill(follow.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert_eq!(follow.exit_within(Duration::from_secs(5)), Some(0));
    sb.write("gate", "");
    sb.wait_until("the task is done", |s| s.status_of("A-1") == "done");
    stop(sb);
}

#[test]
fn a_task_without_a_run_is_one_line_and_exit_1_and_nothing_is_created() {
    let sb = Sandbox::new("norun");
    sb.write_board(BOARD);
    for (args, says) in [
        (
            &["logs", "A-1"][..],
            "task `A-1` has no run yet (status ready)",
        ),
        (
            &["logs", "A-1", "-f"][..],
            "task `A-1` has no run yet (status ready)",
        ),
        (
            &["logs", "Z-9"][..],
            "no task `Z-9` on task-board.md and no run yet for it",
        ),
        (
            &["logs", "../../etc", "--attempt", "2"][..],
            "no task `../../etc` on task-board.md and no run of attempt 2 for it",
        ),
    ] {
        let out = sb.command(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("taskboard: {says}\n"),
            "{args:?}"
        );
    }
    // `show` says the same kind of thing with the same code.
    let out = sb.command(&["show", "Z-9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let usage = sb
        .command(&["logs", "A-1", "--stdout", "--stderr"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(64));
    let mut left: Vec<String> = std::fs::read_dir(&sb.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["task-board.md"]);
}

#[test]
fn a_closed_stdout_pipe_ends_logs_quietly_with_exit_0() {
    let sb = Sandbox::new("pipe");
    // More than a pipe holds, so the write meets the closed pipe.
    sb.script("exec.sh", "head -c 300000 /dev/zero | tr '\\0' x");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board(BOARD);
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("A-1"), "done");
    for args in [&["logs", "A-1"][..], &["logs", "A-1", "-f"][..]] {
        let mut child = sb
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {:?}", out.stderr);
    }
}

#[test]
fn a_review_run_is_asked_for_by_attempt_and_review() {
    let sb = Sandbox::new("review");
    sb.script("work.sh", "echo the work");
    sb.script("judge.sh", "echo the verdict");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\nreview = \"review\"\n\n\
         [executors.review]\ncommand = [\"./judge.sh\"]\n",
    );
    sb.write_board(BOARD);
    sb.once();
    sb.wait_until("the review accepted it", |s| s.status_of("A-1") == "done");
    let out = |args: &[&str]| {
        let out = sb.command(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // The latest run is the review; `--attempt 1` is the work, `--review` its review.
    assert_eq!(out(&["logs", "A-1", "--stdout"]), "the verdict\n");
    assert_eq!(
        out(&["logs", "A-1", "--attempt", "1", "--stdout"]),
        "the work\n"
    );
    let review = out(&["logs", "A-1", "--attempt", "1", "--review"]);
    assert!(review.contains("/1-review-"), "{review}");
    assert!(review.contains("the verdict\n"), "{review}");
    // A finished run followed: printed at once, and `-f` exits 0 by itself.
    assert_eq!(out(&["logs", "A-1", "-f", "--stdout"]), "the verdict\n");
}

#[test]
fn a_followed_output_over_its_cap_ends_with_the_marker_and_the_last_half() {
    let mut sb = Sandbox::new("cap");
    // 170 bytes before the gate, 150 after; 100 bytes are kept.
    sb.script(
        "exec.sh",
        "i=0; while [ $i -lt 20 ]; do echo \"early $i\"; i=$((i+1)); done\n\
         while [ ! -e gate ]; do sleep 0.05; done\n\
         i=0; while [ $i -lt 20 ]; do echo \"late $i\"; i=$((i+1)); done",
    );
    sb.config(
        "output_cap = \"100B\"",
        "[executors.default]\ncommand = [\"./exec.sh\"]\n",
    );
    sb.write_board(BOARD);
    sb.start_run();
    let run_dir = run_dir_with(&sb, "early 9");
    let mut follow = Follow::start(&sb, &["logs", "A-1", "-f", "--stdout"]);
    follow.until("early 9");
    sb.write("gate", "");
    let before = follow.until("late 19");
    assert_eq!(follow.exit_within(Duration::from_secs(30)), Some(0));
    // What -f printed after the first half is the file's marker and last half, as kept.
    let kept = std::fs::read_to_string(run_dir.join("stdout.log")).unwrap();
    let marker = kept
        .lines()
        .find(|l| l.starts_with("[taskboard: "))
        .unwrap();
    assert_eq!(marker, "[taskboard: 220 bytes omitted]", "{kept}");
    let at = before.iter().position(|l| l == marker).expect("no marker");
    let tail: Vec<&str> = kept.split_once(marker).unwrap().1.lines().skip(1).collect();
    let mut printed: Vec<&str> = before[at + 1..].iter().map(String::as_str).collect();
    printed.push("late 19");
    assert_eq!(printed, tail);
    stop(sb);
}
