//! Hostile inputs: each has an expected, documented behaviour (docs/RELIABILITY.md).

mod support;

use support::Sandbox;

fn ok_executor(sb: &Sandbox) -> String {
    sb.script("ok.sh", "cat >/dev/null\nexit 0");
    "[executors.default]\ncommand = [\"./ok.sh\"]\n".into()
}

#[test]
fn a_deleted_board_is_waited_for_and_served_again() {
    let mut sb = Sandbox::new("deleted");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = sb.start_run();
    std::fs::remove_file(&sb.board).unwrap();
    sb.wait_until("the runtime says the board is missing", |s| {
        s.events_named("error").iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("waiting for it")
        })
    });
    sb.write_board("# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n");
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    // Said once, not on every pass.
    let waits = sb
        .events_named("error")
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("waiting for it")
        })
        .count();
    assert_eq!(waits, 1);
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_board_replaced_by_binary_or_a_folder_loses_nothing_and_service_resumes() {
    let mut sb = Sandbox::new("binary");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = sb.start_run();
    // Binary (invalid UTF-8): reported, the file is never written.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x80)
        .collect();
    std::fs::write(&sb.board, &junk).unwrap();
    sb.wait_until("binary board reported", |s| {
        s.events_named("error")
            .iter()
            .any(|e| e["context"] == "board")
    });
    assert_eq!(std::fs::read(&sb.board).unwrap(), junk);
    // A folder in its place.
    std::fs::remove_file(&sb.board).unwrap();
    std::fs::create_dir(&sb.board).unwrap();
    let n = sb.count("error");
    sb.wait_until("a folder in the board's place reported", |s| {
        s.count("error") > n
    });
    std::fs::remove_dir(&sb.board).unwrap();
    sb.write_board("# Board\n\n## B-1\n- status: ready\n");
    sb.wait_until("B-1 done after the board came back", |s| {
        s.status_of("B-1") == "done"
    });
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_config_with_wrong_types_or_unknown_keys_exits_3_with_one_line() {
    let sb = Sandbox::new("badconfig");
    sb.write_board("# Board\n");
    for bad in [
        "[runtime]\nmax_parallel = \"four\"\n",
        "[runtime]\nno_such_key = 1\n",
    ] {
        sb.write("taskboard.toml", bad);
        let out = sb.command(&["run", "task-board.md"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("taskboard:"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains("taskboard.toml"), "{err}");
    }
}

#[test]
fn a_bad_config_on_sighup_keeps_the_old_one() {
    let mut sb = Sandbox::new("hup");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = sb.start_run();
    sb.write("taskboard.toml", "[runtime]\nmax_parallel = \"four\"\n");
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    sb.wait_until("reload refused", |s| {
        s.events_named("error")
            .iter()
            .any(|e| e["context"] == "config")
    });
    sb.write_board("# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n");
    sb.wait_until("still serving with the old config", |s| {
        s.status_of("B-1") == "done"
    });
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn missing_or_non_executable_executors_fail_the_task_and_serving_goes_on() {
    let mut sb = Sandbox::new("noexec");
    std::fs::write(sb.path("plain.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    let ok = ok_executor(&sb);
    sb.config(
        "max_attempts = 1",
        &format!(
            "{ok}\n[executors.missing]\ncommand = [\"./does-not-exist\"]\n\n[executors.plain]\ncommand = [\"./plain.sh\"]\n"
        ),
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n- route: missing\n\n## B-1\n- status: ready\n- route: plain\n\n## C-1\n- status: ready\n");
    let pid = sb.start_run();
    sb.wait_until("all settled", |s| {
        s.status_of("A-1").starts_with("failed:")
            && s.status_of("B-1").starts_with("failed:")
            && s.status_of("C-1") == "done"
    });
    let dispatch_errors = sb
        .events_named("error")
        .iter()
        .filter(|e| e["context"] == "dispatch")
        .count();
    assert!(dispatch_errors >= 2);
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn hostile_ids_and_titles_are_refused_or_run_literally() {
    let mut sb = Sandbox::new("ids");
    sb.script(
        "echo.sh",
        "cat >/dev/null\nprintf '%s\\n' \"$TASKBOARD_TASK_TITLE\" > \"$TASKBOARD_RUN_DIR/title.txt\"\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./echo.sh\"]\n");
    let long = "x".repeat(10_000);
    let text = format!(
        "# Board\n\n## A-1: $(touch pwned) `rm -rf /` ; | & > <\n- status: ready\n\n## ../X-1: escape\n- status: ready\n\n## B-1: {long}\n- status: ready\n\n## C-1: bell\u{7} and tab\t\n- status: ready\n"
    );
    sb.write_board(&text);
    let pid = sb.start_run();
    sb.wait_until("safe tasks done", |s| {
        s.status_of("A-1") == "done" && s.status_of("B-1") == "done" && s.status_of("C-1") == "done"
    });
    assert!(!sb.path("pwned").exists(), "a title was run by a shell");
    // The unsafe ID never runs and its text is untouched.
    assert!(
        sb.board_text()
            .contains("## ../X-1: escape\n- status: ready\n")
    );
    assert!(!sb.path(".taskboard/X-1").exists());
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn an_executor_that_floods_stdout_keeps_memory_bounded_and_output_capped() {
    let mut sb = Sandbox::new("flood");
    sb.script(
        "flood.sh",
        "cat >/dev/null\nhead -c 1073741824 /dev/zero\nexit 0",
    );
    sb.config(
        "output_cap = \"1MiB\"",
        "[executors.default]\ncommand = [\"./flood.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    let pid = sb.start_run();
    let peak = std::cell::Cell::new(0u64);
    sb.wait_until("the flood ends", |s| {
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(l) = st.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak.set(l.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        s.status_of("A-1") == "done"
    });
    let peak_kib = peak.get();
    assert!(
        peak_kib > 0 && peak_kib < 100 * 1024,
        "runtime VmHWM {peak_kib} KiB"
    );
    let runs = sb.path(".taskboard/runs/A-1");
    let attempt = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let size = std::fs::metadata(attempt.join("stdout.log")).unwrap().len();
    assert!(size <= (1 << 20) + 200, "stdout.log is {size} bytes");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_runs_folder_that_cannot_be_created_fails_the_attempt_and_serving_goes_on() {
    let mut sb = Sandbox::new("enotdir");
    let ex = ok_executor(&sb);
    sb.config("max_attempts = 1", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = sb.start_run();
    // `.taskboard/runs` becomes a regular file: every run folder fails with ENOTDIR.
    std::fs::remove_dir_all(sb.path(".taskboard/runs")).unwrap();
    std::fs::write(sb.path(".taskboard/runs"), "not a folder").unwrap();
    let text = "# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n\nKeep this.\n";
    sb.write_board(text);
    sb.wait_until("B-1 failed with a reason", |s| {
        s.status_of("B-1").starts_with("failed:")
    });
    assert!(
        sb.events_named("error")
            .iter()
            .any(|e| e["context"] == "dispatch")
    );
    assert!(sb.board_text().contains("\nKeep this.\n"));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}
