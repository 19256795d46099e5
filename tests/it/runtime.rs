//! End-to-end tests of `taskboard run` and `taskboard once`: real processes, real files, waits
//! that poll `events.jsonl` with a deadline.

use crate::support;

use std::time::Duration;

use support::{Sandbox, pid_alive, read_pid};

const QUIET: Duration = Duration::from_millis(600);

fn simple_executor(sb: &Sandbox) -> String {
    sb.script(
        "exec.sh",
        r#"cat > "$TASKBOARD_RUN_DIR/stdin.md"
echo "ran $TASKBOARD_TASK_ID attempt $TASKBOARD_ATTEMPT" >> ran.log
exit 0"#,
    );
    "[executors.default]\ncommand = [\"./exec.sh\"]\n".into()
}

fn ran_count(sb: &Sandbox, id: &str) -> usize {
    std::fs::read_to_string(sb.path("ran.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("ran {id} ")))
        .count()
}

#[test]
fn ready_tasks_run_and_dependents_follow() {
    let mut sb = Sandbox::new("basic");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    sb.write_board(
        "# Board\n\n## A-1: first\n- status: ready\n- owner: me\n\nDo the thing.\n\n## B-1: second\n- status: blocked:task:A-1\n\n## C-1: not mine\n- status: blocked:bob:review\n",
    );
    sb.start_run();
    sb.wait_until("both done", |s| {
        s.status_of("A-1") == "done" && s.status_of("B-1") == "done"
    });
    assert_eq!(sb.status_of("C-1"), "blocked:bob:review");
    assert_eq!(sb.count_for("dependency_promoted", "B-1"), 1);
    // The dependent's packet carries its own block, then the block of what it waited on.
    let runs = sb.path(".taskboard/runs/B-1");
    let attempt = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let packet = std::fs::read_to_string(attempt.join("stdin.md")).unwrap();
    assert_eq!(
        packet,
        std::fs::read_to_string(attempt.join("packet.md")).unwrap(),
        "the run folder keeps exactly what the executor read"
    );
    assert!(
        packet.contains("# Task B-1\n\n## B-1: second\n"),
        "{packet}"
    );
    assert!(
        packet.contains("# Depends on\n\n## A-1 (done)\n\n### A-1: first\n"),
        "{packet}"
    );
    assert!(packet.contains("Do the thing."), "{packet}");
    assert!(
        packet.contains("### Handoff from A-1\n\n### Attempt 1 "),
        "{packet}"
    );
    assert!(
        packet.contains("None: this is the first attempt."),
        "{packet}"
    );
    // Each attempt left a handoff section beside the board.
    let handoffs = std::fs::read_to_string(sb.path("handoffs/A-1.md")).unwrap();
    assert!(handoffs.contains("## Attempt 1 · "), "{handoffs}");
    // Every other byte of the board is as it was.
    assert_eq!(
        sb.board_text(),
        "# Board\n\n## A-1: first\n- status: done\n- owner: me\n\nDo the thing.\n\n## B-1: second\n- status: done\n\n## C-1: not mine\n- status: blocked:bob:review\n"
    );
    // No lock is left behind: each is released right after its ending is on the board.
    sb.wait_until("every lock released", |s| s.lock_dirs().is_empty());
}

#[test]
fn each_save_style_starts_exactly_one_pass_and_self_writes_never_loop() {
    let mut sb = Sandbox::new("saves");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    sb.start_run();
    let changes = |s: &Sandbox| s.count("file_changed");

    // In place (echo >>).
    let n = changes(&sb);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&sb.board)
        .unwrap();
    std::io::Write::write_all(&mut f, b"\nappended\n").unwrap();
    drop(f);
    sb.wait_until("in-place save noticed", |s| changes(s) == n + 1);
    assert!(
        sb.stays_false(QUIET, |s| changes(s) > n + 1),
        "in-place save started more than one pass"
    );

    // Rename over (vim, sed -i, atomic writers).
    let n = changes(&sb);
    let text = sb.board_text() + "\nrenamed\n";
    std::fs::write(sb.path(".task-board.md.tmp"), text).unwrap();
    std::fs::rename(sb.path(".task-board.md.tmp"), &sb.board).unwrap();
    sb.wait_until("rename save noticed", |s| changes(s) == n + 1);
    assert!(sb.stays_false(QUIET, |s| changes(s) > n + 1));

    // Delete, then recreate.
    let n = changes(&sb);
    let text = sb.board_text() + "\nrecreated\n";
    std::fs::remove_file(&sb.board).unwrap();
    std::fs::write(&sb.board, text).unwrap();
    sb.wait_until("recreate noticed", |s| changes(s) == n + 1);
    assert!(sb.stays_false(QUIET, |s| changes(s) > n + 1));

    // A save that changes nothing starts no pass.
    let n = changes(&sb);
    let text = sb.board_text();
    std::fs::write(&sb.board, text).unwrap();
    assert!(
        sb.stays_false(QUIET, |s| changes(s) > n),
        "an identical save started a pass"
    );

    // A ready task: its own writebacks (running, done) start no further file_changed.
    let n = changes(&sb);
    let text = sb.board_text() + "\n## B-1\n- status: ready\n";
    std::fs::write(&sb.board, text).unwrap();
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    // The pass that wrote `done` logs its `pass` event after the write: wait for it.
    sb.wait_until("the writing pass to close", |s| {
        s.events().last().is_some_and(|e| e["event"] == "pass")
    });
    let passes = sb.count("pass");
    assert!(
        sb.stays_false(QUIET, |s| s.count("pass") > passes),
        "self-writes keep the runtime busy"
    );
    assert_eq!(changes(&sb), n + 1);
}

#[test]
fn git_checkout_is_noticed() {
    if std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip("git is not installed (apt-get install git; .ci/run does)");
        return;
    }
    let mut sb = Sandbox::new("git");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    let dir = sb.dir.clone();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    git(&["init", "-q"]);
    git(&["add", "task-board.md"]);
    git(&["commit", "-qm", "one"]);
    git(&["checkout", "-qb", "other"]);
    sb.write_board("# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n");
    git(&["commit", "-qam", "two"]);
    git(&["checkout", "-q", "main"]);
    sb.start_run();
    git(&["checkout", "-q", "other"]);
    sb.wait_until("B-1 done after checkout", |s| s.status_of("B-1") == "done");
}

#[test]
fn a_person_editing_while_tasks_run_loses_nothing() {
    let mut sb = Sandbox::new("edits");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nwhile [ ! -f release ]; do sleep 0.02; done\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1: runs\n- status: ready\n\nOriginal description.\n\n## B-1: idle\n- status: blocked:me:later\n");
    sb.start_run();
    sb.wait_until("A-1 running", |s| {
        s.status_of("A-1").starts_with("running:")
    });
    // The person edits descriptions, adds a task and a section, changes another task's status.
    let edited = sb
        .board_text()
        .replace(
            "Original description.",
            "Edited description, with ü and 🚀.\r\nAnd a CRLF line.",
        )
        .replace("blocked:me:later", "blocked:me:much-later")
        + "\n## Notes\nfree text\n\n## D-1: added\n- status: blocked:me:not-yet\n";
    std::fs::write(&sb.board, &edited).unwrap();
    sb.wait_until("edit noticed", |s| s.count("file_changed") >= 1);
    std::fs::write(sb.path("release"), "").unwrap();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let running = edited
        .lines()
        .find(|l| l.contains("running:"))
        .unwrap()
        .trim_start_matches("- status: ")
        .to_string();
    assert_eq!(sb.board_text(), edited.replace(&running, "done"));
}

#[test]
fn stale_buffer_is_reasserted_and_a_persons_decision_cancels() {
    let mut sb = Sandbox::new("buffer");
    sb.script("exec.sh", "cat >/dev/null\necho $$ > \"$TASKBOARD_TASK_ID.pid\"\nwhile [ ! -f release ]; do sleep 0.02; done\nexit 0");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    let original = "# Board\n\n## A-1\n- status: ready\n\n## B-1\n- status: ready\n";
    sb.write_board(original);
    sb.start_run();
    sb.wait_until("both running", |s| {
        s.status_of("A-1").starts_with("running:") && s.status_of("B-1").starts_with("running:")
    });
    let running_a = sb.status_of("A-1");
    // An editor saves a buffer read before the claims: both statuses go back to `ready`, and
    // the person also decided B-1 is done.
    std::fs::write(
        &sb.board,
        original.replacen(
            "- status: ready\n\n## B-1\n- status: ready",
            "- status: ready\n\n## B-1\n- status: done",
            1,
        ),
    )
    .unwrap();
    sb.wait_until("A-1 reasserted", |s| {
        s.count_for("status_reasserted", "A-1") == 1
    });
    sb.wait_until("B-1 cancelled", |s| {
        s.count_for("task_cancelled", "B-1") == 1
    });
    assert_eq!(sb.status_of("A-1"), running_a);
    let b_pid = read_pid(&sb.path("B-1.pid")).unwrap();
    sb.wait_until("B-1's executor stopped", |_| !pid_alive(b_pid));
    std::fs::write(sb.path("release"), "").unwrap();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    assert_eq!(sb.status_of("B-1"), "done");
    assert_eq!(
        sb.count_for("task_dispatched", "A-1"),
        1,
        "a stale buffer must not rerun a task"
    );
    assert_eq!(sb.count_for("task_dispatched", "B-1"), 1);
}

#[test]
fn kill9_then_restart_recovers_and_executor_does_not_outlive_runtime() {
    let mut sb = Sandbox::new("kill9");
    sb.script(
        "exec.sh",
        "cat >/dev/null\necho $$ >> pids\n[ \"$TASKBOARD_ATTEMPT\" -ge 2 ] && exit 0\nsleep 1000",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("running", |s| {
        s.count("task_dispatched") == 1 && s.path("pids").exists()
    });
    let first = read_pid(&sb.path("pids")).unwrap();
    sb.kill9_all();
    sb.wait_until("executor died with its runtime", |_| !pid_alive(first));
    assert!(sb.status_of("A-1").starts_with("running:"));
    sb.start_run();
    sb.wait_until("recovered and done", |s| s.status_of("A-1") == "done");
    let resets = sb.events_named("stale_claim_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0]["attempt"], 1);
    assert_eq!(sb.count("lock_broken"), 1, "{:#?}", sb.events());
    let dispatches = sb.events_named("task_dispatched");
    assert_eq!(dispatches.last().unwrap()["attempt"], 2);
}

#[test]
fn run_and_once_together_run_each_task_once() {
    let mut sb = Sandbox::new("runonce");
    sb.script(
        "exec.sh",
        "cat >/dev/null\necho \"ran $TASKBOARD_TASK_ID by $PPID\" >> ran.log\nsleep 0.3\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    let mut board = String::from("# Board\n");
    for i in 1..=12 {
        board.push_str(&format!("\n## T-{i}\n- status: ready\n"));
    }
    sb.write_board(&board);
    sb.start_run();
    let onces: Vec<_> = (0..2)
        .map(|_| {
            let mut c = sb.command(&["once", "task-board.md"]);
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().unwrap()
        })
        .collect();
    for mut c in onces {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    sb.wait_until("all done", |s| {
        (1..=12).all(|i| s.status_of(&format!("T-{i}")) == "done")
    });
    for i in 1..=12 {
        assert_eq!(
            ran_count(&sb, &format!("T-{i}")),
            1,
            "T-{i} ran more than once"
        );
    }
    assert_eq!(sb.count("task_dispatched"), 12);
}

/// The attempts a task's record counts in the state as read into `state` (the journal's whole
/// lines and the state file, in either order: a count only grows), if it has a record.
fn attempts_on_record(state: &str, id: &str) -> Option<u64> {
    state
        .lines()
        // A line being written as the executor read is not whole: passed over.
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let in_file = v["tasks"][id]["attempts"].as_u64();
            let in_journal = (v["task"] == id)
                .then(|| v["record"]["attempts"].as_u64())
                .flatten();
            in_file.or(in_journal)
        })
        .max()
}

#[test]
fn an_executor_starts_only_once_its_claim_is_on_the_board_and_its_attempt_on_record() {
    let mut sb = Sandbox::new("claimfirst");
    // What the executor finds as it starts: the board, and the state (the journal read first:
    // a fold between the two reads then leaves the record in the state file).
    sb.script(
        "exec.sh",
        r#"cat >/dev/null
cp task-board.md "$TASKBOARD_RUN_DIR/board-at-start.md"
{ cat .taskboard/state.journal; echo; cat .taskboard/state.json; echo; } \
  > "$TASKBOARD_RUN_DIR/state-at-start" 2>/dev/null
echo "$TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT $TASKBOARD_RUN_DIR" >> starts.log
[ "$TASKBOARD_TASK_ID" = T-3 ] && [ "$TASKBOARD_ATTEMPT" = 1 ] && exit 1
exit 0"#,
    );
    sb.config(
        "max_parallel = 4\nretry_backoff = \"0s\"",
        "[executors.default]\ncommand = [\"./exec.sh\"]\n",
    );
    let mut board = String::from("# Board\n");
    for i in 1..=12 {
        board.push_str(&format!("\n## T-{i}\n- status: ready\n"));
    }
    sb.write_board(&board);
    sb.start_run();
    sb.wait_until("all done", |s| {
        (1..=12).all(|i| s.status_of(&format!("T-{i}")) == "done")
    });
    let starts = std::fs::read_to_string(sb.path("starts.log")).unwrap();
    assert_eq!(starts.lines().count(), 13, "{starts}");
    for line in starts.lines() {
        let mut parts = line.split(' ');
        let (id, attempt, run_dir) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse::<u64>().unwrap(),
            parts.next().unwrap(),
        );
        let run_dir = std::path::Path::new(run_dir);
        let board = std::fs::read_to_string(run_dir.join("board-at-start.md")).unwrap();
        let parsed = taskboard::core::board::Board::parse(&board);
        let status = parsed
            .task(id)
            .and_then(|t| t.status.as_ref())
            .map(|s| s.raw.to_string())
            .unwrap_or_default();
        assert!(
            status.starts_with("running:"),
            "{id} attempt {attempt} started with its status {status:?} on the board"
        );
        let state = std::fs::read_to_string(run_dir.join("state-at-start")).unwrap();
        assert_eq!(
            attempts_on_record(&state, id),
            Some(attempt),
            "{id} attempt {attempt} started before its attempt was on record:\n{state}"
        );
    }
}

#[test]
fn a_second_run_on_the_same_board_is_refused() {
    let mut sb = Sandbox::new("tworuns");
    sb.config("", "");
    sb.write_board("# Board\n");
    sb.start_run();
    let out = sb.command(&["run", "task-board.md"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let mut sb = Sandbox::new("timeout");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nsleep 1000 &\necho $! > grandchild.pid\nsleep 1000",
    );
    sb.config(
        "max_attempts = 1",
        "[executors.default]\ncommand = [\"./exec.sh\"]\ntimeout = \"500ms\"\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("failed", |s| {
        s.status_of("A-1") == "failed:exhausted_retries"
    });
    let finished = sb.events_named("task_finished");
    assert_eq!(finished[0]["stopped"], "timeout");
    let grandchild = read_pid(&sb.path("grandchild.pid")).unwrap();
    sb.wait_until("grandchild gone", |_| !pid_alive(grandchild));
}

#[test]
fn retries_back_off_then_deadletter_and_retry_command_revives() {
    let mut sb = Sandbox::new("deadletter");
    sb.script("exec.sh", "cat >/dev/null\necho \"boom on attempt $TASKBOARD_ATTEMPT\" >&2\n[ -f fixed ] && exit 0\nexit 3");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1: flaky\n- status: ready\n");
    sb.start_run();
    sb.wait_until("deadlettered", |s| s.count("task_deadlettered") == 1);
    assert_eq!(sb.status_of("A-1"), "failed:exhausted_retries");
    let retries = sb.events_named("task_retry_scheduled");
    assert_eq!(retries.len(), 2);
    let attempts: Vec<_> = sb
        .events_named("task_dispatched")
        .iter()
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let dl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("deadletter/A-1.json")).unwrap())
            .unwrap();
    assert_eq!(dl["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(dl["attempts"][2]["exit_code"], 3);
    assert!(
        dl["attempts"][2]["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("boom on attempt 3")
    );
    assert!(dl["block"].as_str().unwrap().starts_with("## A-1: flaky"));

    std::fs::write(sb.path("fixed"), "").unwrap();
    let out = sb.command(&["retry", "A-1"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.wait_until("done after retry", |s| s.status_of("A-1") == "done");
    assert!(!sb.path("deadletter/A-1.json").exists());
    assert_eq!(
        std::fs::read_dir(sb.path("deadletter/archive"))
            .unwrap()
            .count(),
        1
    );
    // A retry gives a fresh budget, but the numbering goes on and the earlier attempts stay
    // known: the next packet lists them and `show` numbers every attempt once.
    assert_eq!(
        sb.events_named("task_dispatched").last().unwrap()["attempt"],
        4
    );
    let out = sb.command(&["show", "A-1", "--json"]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let numbers: Vec<u64> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let fourth = std::fs::read_dir(sb.path(".taskboard/runs/A-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("4-"))
        .unwrap();
    let packet = std::fs::read_to_string(fourth.join("packet.md")).unwrap();
    assert!(
        !packet.contains("None: this is the first attempt."),
        "{packet}"
    );
    assert!(packet.contains("boom on attempt 3"), "{packet}");
}

#[test]
fn result_file_hands_the_task_back_to_a_person() {
    let mut sb = Sandbox::new("result");
    sb.script("exec.sh", "cat >/dev/null\nprintf '{\"status\": \"blocked:siyao:need-portfolio-url\", \"note\": \"no URL in the task\"}' > \"$TASKBOARD_RESULT\"\nexit 0");
    sb.script(
        "bad.sh",
        "cat >/dev/null\necho 'not json' > \"$TASKBOARD_RESULT\"\nexit 0",
    );
    sb.config("max_attempts = 1", "[executors.default]\ncommand = [\"./exec.sh\"]\n[executors.bad]\ncommand = [\"./bad.sh\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n\n## B-1\n- status: ready\n- route: bad\n");
    sb.start_run();
    sb.wait_until("handed back", |s| {
        s.status_of("A-1") == "blocked:siyao:need-portfolio-url"
    });
    let fin = sb.events_named("task_finished");
    let a = fin.iter().find(|e| e["task"] == "A-1").unwrap();
    assert_eq!(a["note"], "no URL in the task");
    sb.wait_until("bad result is a failed attempt", |s| {
        s.status_of("B-1") == "failed:exhausted_retries"
    });
    let b = sb
        .events_named("task_finished")
        .into_iter()
        .find(|e| e["task"] == "B-1")
        .unwrap();
    assert!(
        b["note"].as_str().unwrap().contains("not valid JSON"),
        "{b}"
    );
}

#[test]
fn sigterm_mid_run_puts_the_task_back_and_exits_zero() {
    let mut sb = Sandbox::new("sigterm");
    sb.script("exec.sh", "cat >/dev/null\necho $$ > exec.pid\nsleep 1000");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("running", |s| s.path("exec.pid").exists());
    let pid = read_pid(&sb.path("exec.pid")).unwrap();
    sb.signal_all(libc::SIGTERM);
    assert_eq!(sb.wait_all(), vec![Some(0)]);
    assert!(!pid_alive(pid));
    assert_eq!(sb.status_of("A-1"), "ready");
    assert_eq!(sb.count_for("task_interrupted", "A-1"), 1);
    assert_eq!(sb.count("runtime_stopped"), 1);
    // The interrupted attempt is not counted: the next run starts at attempt 1 again.
    sb.script("exec.sh", "cat >/dev/null\nexit 0");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(
        sb.events_named("task_dispatched").last().unwrap()["attempt"],
        1
    );
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one() {
    let mut sb = Sandbox::new("sighup");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n");
    sb.start_run();
    std::fs::write(
        sb.path("taskboard.toml"),
        "[runtime]\nmax_parallel = \"lots\"\n",
    )
    .unwrap();
    sb.signal_all(libc::SIGHUP);
    sb.wait_until("reload refused", |s| {
        s.events_named("error")
            .iter()
            .any(|e| e["context"] == "config")
    });
    assert_eq!(sb.count("config_reloaded"), 0);
    let text = sb.board_text() + "\n## A-1\n- status: ready\n";
    std::fs::write(&sb.board, text).unwrap();
    sb.wait_until("old config still serves", |s| s.status_of("A-1") == "done");
    // A good config is taken.
    sb.config("", &ex);
    sb.signal_all(libc::SIGHUP);
    sb.wait_until("reloaded", |s| s.count("config_reloaded") == 1);
}

#[test]
fn shell_metacharacters_in_titles_stay_data() {
    let mut sb = Sandbox::new("meta");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nprintf '%s' \"$TASKBOARD_TASK_TITLE\" > title.txt\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    let marker = sb.path("pwned");
    let title = format!(
        "$(touch {m}); `touch {m}` && rm -rf ~ | tee {m}",
        m = marker.display()
    );
    sb.write_board(&format!("# Board\n\n## A-1: {title}\n- status: ready\n"));
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert!(!marker.exists());
    assert_eq!(
        std::fs::read_to_string(sb.path("title.txt")).unwrap(),
        title
    );
}

#[test]
fn a_stale_lock_is_broken() {
    let mut sb = Sandbox::new("stalelock");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    // A lock left by a process that no longer exists.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let owner = taskboard::shell::lock::Owner {
        pid: dead_pid,
        ..taskboard::shell::lock::Owner::current("gone", chrono::Utc::now())
    };
    let owner = taskboard::shell::lock::Owner {
        start_time: None,
        ..owner
    };
    std::fs::create_dir_all(sb.path(".taskboard/locks/A-1")).unwrap();
    std::fs::write(
        sb.path(".taskboard/locks/A-1/owner.json"),
        serde_json::to_string(&owner).unwrap(),
    )
    .unwrap();
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    let broken = sb.events_named("lock_broken");
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0]["owner_pid"], dead_pid);
}

#[test]
fn once_makes_one_pass_and_waits_for_its_runs() {
    let sb = Sandbox::new("once");
    let ex = simple_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: ready\n\n## B-1\n- status: blocked:task:A-1\n");
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("A-1"), "done");
    // A runtime that stopped left its whole memory in state.json, which every version reads.
    assert!(sb.path(".taskboard/state.json").is_file());
    assert!(!sb.path(".taskboard/state.journal").exists());
    // One pass of dispatch: B-1 was promoted after A-1 finished, and waits for the next pass.
    assert_eq!(sb.status_of("B-1"), "ready");
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("B-1"), "done");
    let missing = sb.command(&["once", "nope.md"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn demo_runs_the_bundled_board_until_interrupted() {
    let sb = Sandbox::new("demo");
    let dir = sb.path("demo");
    let mut child = sb
        .command(&["demo", "demo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = |id: &str| {
        let text = std::fs::read_to_string(dir.join("task-board.md")).unwrap_or_default();
        taskboard::core::board::Board::parse(&text)
            .task(id)
            .and_then(|t| t.status.as_ref().map(|s| s.raw.to_string()))
            .unwrap_or_default()
    };
    sb.wait_until("the demo chain, hand-back and isolated change", |_| {
        status("DEMO-4") == "done"
            && status("DEMO-5") == "blocked:you:provide-the-input"
            && status("DEMO-11") == "awaiting-approval"
    });
    assert!(dir.join("out/DEMO-1.md").exists());
    // The isolated task worked in its worktree, and nothing reached main without approval.
    assert!(!dir.join("out/DEMO-11.md").exists());
    assert_eq!(support::git(&dir, &["rev-list", "--count", "main"]), "1");
    let diff = sb
        .command(&["diff", "DEMO-11", "demo/task-board.md"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+++ b/out/DEMO-11.md"));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let code = support::exit_code_within(&mut child, support::DEADLINE);
    assert_eq!(code, Some(0), "demo did not stop with exit 0");
    // Nothing a person wrote in the template changed: only status values differ.
    let template = include_str!("../../board-template/task-board.md");
    let now = std::fs::read_to_string(dir.join("task-board.md")).unwrap();
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.trim_start().starts_with("- status:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&now), strip(template));
}

#[test]
fn control_characters_in_a_title_do_not_stop_the_task() {
    let mut sb = Sandbox::new("control");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nprintf '%s' \"$TASKBOARD_TASK_TITLE\" > title.txt\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1: bell\u{7} and nul\u{0} inside\n- status: ready\n");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(
        std::fs::read_to_string(sb.path("title.txt")).unwrap(),
        "bell  and nul  inside"
    );
}

#[test]
fn an_empty_board_mid_save_is_not_acted_on() {
    let mut sb = Sandbox::new("emptysave");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nwhile [ ! -f release ]; do sleep 0.02; done\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    let original = "# Board\n\n## A-1\n- status: ready\n";
    sb.write_board(original);
    sb.start_run();
    sb.wait_until("running", |s| s.status_of("A-1").starts_with("running:"));
    let running = sb.status_of("A-1");
    // An editor truncates the file and pauses well past the debounce before writing.
    std::fs::write(&sb.board, "").unwrap();
    let passes = sb.count("pass");
    assert!(
        sb.stays_false(QUIET, |s| s.count("pass") > passes),
        "a pass ran on an empty board"
    );
    // Then it writes a buffer read before the claim: the runtime still knows its claim.
    std::fs::write(&sb.board, original).unwrap();
    sb.wait_until("reasserted", |s| {
        s.count_for("status_reasserted", "A-1") == 1
    });
    assert_eq!(sb.status_of("A-1"), running);
    std::fs::write(sb.path("release"), "").unwrap();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(sb.count_for("task_dispatched", "A-1"), 1);
}

/// Two tasks whose `touches:` overlap run one after the other, each once; a third that touches
/// something else runs beside them; the one held back is said to be, naming what holds it.
#[test]
fn tasks_touching_the_same_files_run_one_at_a_time() {
    let mut sb = Sandbox::new("touches");
    sb.script("sim.sh", support::SIM_EXECUTOR);
    sb.config(
        "max_parallel = 4",
        "[executors.default]\ncommand = [\"./sim.sh\"]\nenv = { SIM_LOG = \"runs.log\" }\n",
    );
    sb.write_board(
        "# Board\n\n\
         ## A-1: parser\n- status: ready\n- touches: src/parser/**\n- sim: nap 0.6\n\n\
         ## B-1: parser tests\n- status: ready\n- touches: src/parser/tests.rs, tests/**\n- sim: nap 0.6\n\n\
         ## C-1: docs\n- status: ready\n- touches: docs/**\n- sim: nap 0.6\n",
    );
    sb.start_run();
    sb.wait_until("all done", |s| {
        ["A-1", "B-1", "C-1"]
            .iter()
            .all(|id| s.status_of(id) == "done")
    });
    let runs = support::read_runs(&sb.path("runs.log"));
    let span = |id: &str| {
        let of: Vec<_> = runs.iter().filter(|r| r.id == id).collect();
        assert_eq!(of.len(), 1, "{id} ran exactly once: {runs:?}");
        (of[0].start, of[0].end.expect("the run wrote its end"))
    };
    let (a, b, c) = (span("A-1"), span("B-1"), span("C-1"));
    assert!(
        b.0 >= a.1 || a.0 >= b.1,
        "A-1 {a:?} and B-1 {b:?} touch src/parser/tests.rs and ran at the same time"
    );
    assert!(
        c.0 < a.1 && a.0 < c.1,
        "C-1 {c:?} touches docs/ only and should have run beside A-1 {a:?}"
    );
    let held = sb.events_named("task_held");
    assert_eq!(held.len(), 1, "one announcement of the hold: {held:?}");
    assert_eq!(held[0]["task"], "B-1");
    assert_eq!(held[0]["by"], "A-1");
}

#[test]
fn once_writes_the_ending_of_a_run_that_could_not_start_before_it_exits() {
    let sb = Sandbox::new("once-nostart");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./no-such-executor.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1: first\n- status: ready\n");
    assert_eq!(sb.once(), 0);
    // Not left `running` for the next start to settle: the failed attempt is on the board.
    let status = sb.status_of("A-1");
    assert!(status.starts_with("blocked:retry:"), "{status}");
    assert_eq!(sb.count_for("ending_kept", "A-1"), 0);
}
