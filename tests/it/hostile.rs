//! Hostile inputs: each has an expected, documented behaviour (docs/RELIABILITY.md).

use crate::support;

use std::time::Duration;

use support::{Sandbox, pid_alive, poll, read_pid, without_statuses};

/// How long a runtime that should be idle is watched for work it should not be doing.
const QUIET: Duration = Duration::from_millis(1000);

/// The `error` events whose message contains `needle`.
fn errors_saying(sb: &Sandbox, needle: &str) -> usize {
    sb.events_named("error")
        .iter()
        .filter(|e| e["message"].as_str().unwrap_or("").contains(needle))
        .count()
}

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

#[test]
fn an_unreadable_board_is_reported_and_served_again_when_readable() {
    use std::os::unix::fs::PermissionsExt;
    // Root reads any file whatever its mode, so as root the runtime runs as `nobody`.
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root && let Some(why) = support::cannot_run_as_nobody() {
        support::skip(&format!(
            "{why} (setpriv is in util-linux); the read error itself is covered by tests/it/fsio.rs"
        ));
        return;
    }
    let mut sb = Sandbox::new("unreadable");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = if as_root {
        sb.chown_to_nobody();
        sb.start_run_as_nobody()
    } else {
        sb.start_run()
    };
    let text = "# Board\n\nNotes.\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n";
    // Renamed into place already unreadable, so no read ever sees the text.
    let tmp = sb.path("board.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::rename(&tmp, &sb.board).unwrap();
    sb.wait_until("the unreadable board reported", |s| {
        errors_saying(s, "permission denied") > 0
    });
    assert_eq!(sb.board_text(), text, "an unreadable board was written");
    assert_eq!(sb.count_for("task_dispatched", "B-1"), 0);
    // Readable again: the next save is served.
    std::fs::set_permissions(&sb.board, std::fs::Permissions::from_mode(0o644)).unwrap();
    sb.write_board(text);
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(text));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_board_made_a_symlink_loop_is_reported_and_left_alone() {
    let mut sb = Sandbox::new("symloop");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let pid = sb.start_run();
    std::fs::remove_file(&sb.board).unwrap();
    std::os::unix::fs::symlink("task-board.md", &sb.board).unwrap();
    sb.wait_until("the symlink loop reported", |s| {
        errors_saying(s, "too many levels of symbolic links") > 0
    });
    let meta = std::fs::symlink_metadata(&sb.board).unwrap();
    assert!(meta.file_type().is_symlink(), "the loop was replaced");
    std::fs::remove_file(&sb.board).unwrap();
    let text = "# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: ready\n\nKeep this.\n";
    sb.write_board(text);
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(text));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_100_mb_board_is_refused_unread_and_left_alone() {
    let mut sb = Sandbox::new("huge");
    let ex = ok_executor(&sb);
    sb.config("", &ex);
    let text = "# Board\n\n## A-1\n- status: ready\n";
    sb.write_board("# Board\n\n## Z-1\n- status: done\n");
    let pid = sb.start_run();
    // 100 MB, nearly all of it a hole: the text above, then zero bytes; renamed into place
    // whole, so the runtime never sees the short text alone.
    let tmp = sb.path("huge.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    std::fs::rename(&tmp, &sb.board).unwrap();
    let mtime = std::fs::metadata(&sb.board).unwrap().modified().unwrap();
    sb.wait_until("the oversized board reported", |s| {
        errors_saying(s, "too large") > 0
    });
    let meta = std::fs::metadata(&sb.board).unwrap();
    assert_eq!(meta.len(), 100 * 1024 * 1024);
    assert_eq!(
        meta.modified().unwrap(),
        mtime,
        "the oversized board was written"
    );
    assert_eq!(sb.count_for("task_dispatched", "A-1"), 0);
    // Cut back to size, the board is served again.
    sb.write_board(text);
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn an_executor_that_never_reads_its_big_packet_does_not_stall_the_runtime() {
    let mut sb = Sandbox::new("deaf");
    // `deaf` ends at once without reading; `wait` keeps running, its stdin unread, until the
    // test creates `go` (the packet is far larger than a pipe holds, so the writer blocks).
    sb.script("deaf.sh", "echo ignoring stdin\nexit 0");
    sb.script("wait.sh", "while [ ! -e go ]; do sleep 0.02; done\nexit 0");
    let ok = ok_executor(&sb);
    sb.config(
        "",
        &format!(
            "{ok}\n[executors.deaf]\ncommand = [\"./deaf.sh\"]\n\n[executors.wait]\ncommand = [\"./wait.sh\"]\n"
        ),
    );
    let big = "A long description line for a big packet.\n".repeat(50_000); // ~2 MB
    let text = format!(
        "# Board\n\n## A-1\n- status: ready\n- route: deaf\n\n{big}\n## B-1\n- status: ready\n- route: wait\n\n{big}\n## C-1\n- status: ready\n"
    );
    sb.write_board(&text);
    let pid = sb.start_run();
    sb.wait_until("A-1 and C-1 done while B-1 waits", |s| {
        s.status_of("A-1") == "done" && s.status_of("C-1") == "done"
    });
    assert!(sb.status_of("B-1").starts_with("running:"));
    sb.write("go", "");
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(&text));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn an_executor_that_leaves_a_daemon_behind_still_finishes() {
    let mut sb = Sandbox::new("daemon");
    // The daemon leaves the executor's process group and keeps its stdout and stderr open.
    sb.script(
        "daemon.sh",
        "cat >/dev/null\nsetsid sleep 300 &\necho $! > daemon.pid\necho started a daemon\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./daemon.sh\"]\n");
    let text = "# Board\n\nNotes.\n\n## A-1\n- status: ready\n";
    sb.write_board(text);
    let pid = sb.start_run();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let daemon = read_pid(&sb.path("daemon.pid")).expect("daemon.pid");
    // A run is over only when its processes are: the daemon was stopped before the ending.
    assert!(!pid_alive(daemon), "the daemon outlived its run");
    let finished = sb.events_named("task_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["exit_code"], 0);
    // Still serving.
    let more = format!("{text}\n## B-1\n- status: ready\n");
    sb.write_board(&more);
    sb.wait_until("B-1 done", |s| s.status_of("B-1") == "done");
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(&more));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    // Should one have survived a failure above, stop it by pid.
    for p in [Some(daemon), read_pid(&sb.path("daemon.pid"))]
        .into_iter()
        .flatten()
    {
        if pid_alive(p) {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

#[test]
fn an_executor_killed_by_a_signal_is_reported_with_the_signal() {
    let mut sb = Sandbox::new("segv");
    sb.script("segv.sh", "cat >/dev/null\nkill -SEGV $$");
    let ok = ok_executor(&sb);
    sb.config(
        "max_attempts = 1",
        &format!("{ok}\n[executors.segv]\ncommand = [\"./segv.sh\"]\n"),
    );
    let text = "# Board\n\n## A-1\n- status: ready\n- route: segv\n\n## B-1\n- status: ready\n";
    sb.write_board(text);
    let pid = sb.start_run();
    sb.wait_until("both settled", |s| {
        s.status_of("A-1").starts_with("failed:") && s.status_of("B-1") == "done"
    });
    let finished: Vec<_> = sb
        .events_named("task_finished")
        .into_iter()
        .filter(|e| e["task"] == "A-1")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["signal"], libc::SIGSEGV);
    assert!(finished[0].get("exit_code").is_none());
    assert_eq!(finished[0]["note"], "signal_SIGSEGV");
    assert_eq!(sb.status_of("A-1"), "failed:exhausted_retries");
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(text));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn an_ending_that_cannot_be_written_waits_without_spinning() {
    let mut sb = Sandbox::new("unwritable");
    sb.script(
        "wait.sh",
        "cat >/dev/null\nwhile [ ! -e go ]; do sleep 0.02; done\nexit 0",
    );
    sb.config("", "[executors.default]\ncommand = [\"./wait.sh\"]\n");
    sb.write_board("# Board\n\nNotes.\n\n## A-1\n- status: ready\n");
    let pid = sb.start_run();
    sb.wait_until("A-1 running", |s| {
        s.status_of("A-1").starts_with("running:")
    });
    let running = sb.board_text();
    // While A-1 runs, the board becomes unreadable (binary); then A-1 ends.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x80)
        .collect();
    std::fs::write(&sb.board, &junk).unwrap();
    sb.wait_until("binary board reported", |s| s.errors_in("board") > 0);
    sb.write("go", "");
    sb.wait_until("A-1 finished", |s| s.count("task_finished") == 1);
    let n = sb.errors_in("board");
    // The ending is kept for a later pass, not retried back to back.
    assert!(
        sb.stays_false(QUIET, |s| s.errors_in("board") > n + 5),
        "the runtime retries an unwritable ending in a busy loop: {} board errors",
        sb.errors_in("board")
    );
    assert_eq!(std::fs::read(&sb.board).unwrap(), junk);
    // The board is back: the ending lands.
    sb.write_board(&running);
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    assert_eq!(
        without_statuses(&sb.board_text()),
        without_statuses(&running)
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// A tmpfs mounted over a folder for one test; unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

/// `mount` and `umount` as root: directly when the tests run as root, else through
/// `sudo -n` (never a password prompt; CI runners allow it).
fn as_root(program: &str) -> std::process::Command {
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new(program)
    } else {
        let mut sudo = std::process::Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        // Owned by whoever runs the tests, so the runtime can write there without root.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let out = as_root("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},uid={uid},gid={gid},mode=0755"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount (the `mount` package): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting a tmpfs was refused (needs root or passwordless sudo): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: detached now even while a process (a failed test's runtime) still uses it.
        let _ = as_root("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_and_serving_resumes_when_space_is_freed() {
    let mut sb = Sandbox::new("diskfull");
    let _fs = match Tmpfs::mount(&sb.dir, "1m") {
        Ok(m) => m,
        Err(why) => {
            support::skip(&why);
            return;
        }
    };
    sb.script("ok.sh", "cat >/dev/null\nexit 0");
    sb.script(
        "fill.sh",
        "cat >/dev/null\nhead -c 4000000 /dev/zero\nexit 0",
    );
    sb.config(
        "max_attempts = 1\noutput_cap = \"8MiB\"",
        "[executors.default]\ncommand = [\"./ok.sh\"]\n\n[executors.fill]\ncommand = [\"./fill.sh\"]\n",
    );
    let text = "# Board\n\nNotes.\n\n## A-1\n- status: ready\n- route: fill\n";
    sb.write_board(text);
    // The run's stderr goes outside the full disk, so what it says can be read.
    let outside = support::TempDir::new("e2e-diskfull");
    let stderr_path = outside.join("run.stderr");
    let pid = sb.spawn_run_logging_to(&stderr_path);
    let said = |needle: &str| {
        std::fs::read_to_string(&stderr_path)
            .unwrap_or_default()
            .contains(needle)
    };
    assert!(
        poll(support::DEADLINE, || said("No space left on device")),
        "no disk-full message on stderr:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let n = lines(&stderr_path);
    assert!(
        sb.stays_false(QUIET, |_| lines(&stderr_path) > n + 10),
        "the runtime retries on a full disk in a busy loop: {} stderr lines",
        lines(&stderr_path)
    );
    assert!(pid_alive(pid as i32), "the runtime died on a full disk");
    // Free the space: the executor's output goes, and the next save is served.
    let runs = sb.path(".taskboard/runs");
    std::fs::remove_dir_all(&runs).unwrap();
    std::fs::create_dir(&runs).unwrap();
    // The board still says A-1 is running: its ending was never written.
    let more = format!("{}\n## B-1\n- status: ready\n", sb.board_text());
    sb.write_board(&more);
    sb.wait_until("A-1 settled and B-1 done", |s| {
        s.status_of("A-1") == "done" && s.status_of("B-1") == "done"
    });
    assert_eq!(without_statuses(&sb.board_text()), without_statuses(&more));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let _ = std::fs::remove_file(&stderr_path);
}

#[test]
fn a_process_group_left_as_zombies_counts_as_gone() {
    use std::os::unix::process::CommandExt;
    // A live group is alive.
    let mut live = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(taskboard::shell::process::group_alive(live.id()));
    live.kill().unwrap();
    live.wait().unwrap();
    // A group whose only process has exited but is not reaped yet: a zombie. That is what an
    // executor is after `kill -9` of its runtime until init reaps it, which some inits do late
    // (the test VM's, after about 1.6 s) or never. Recovery must not wait on it.
    let mut dead = std::process::Command::new("true")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = dead.id() as i32;
    assert!(poll(support::DEADLINE, || !pid_alive(pid)), "not a zombie");
    assert!(
        !taskboard::shell::process::group_alive(pid as u32),
        "a group of zombies is reported alive"
    );
    dead.wait().unwrap();
}
