//! A runtime whose process group and session began outside its PID namespace (a container
//! started without a session of its own, as many CI runners are): `/proc` and the system calls
//! show those ids as 0 there, and taking a run's ending must still work.

use std::process::Command;

use crate::support::{Sandbox, finish};

/// Whether this machine lets us make a PID namespace with its own `/proc`.
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_run_ends_and_its_leftovers_are_stopped_when_this_session_began_outside_the_namespace() {
    if !can_unshare() {
        // Creating a namespace needs privileges a CI container may lack; such a container is
        // usually the very case this test builds, and the unit tests of `Me` run in it.
        eprintln!(
            "SKIPPED {}: `unshare --pid --fork --mount-proc` is not permitted here (run as root \
             to include it)",
            module_path!()
        );
        return;
    }
    let sb = Sandbox::new("pid-namespace");
    // The run leaves a grandchild behind, so taking the ending has to look for leftovers.
    sb.script("work.sh", "sleep 300 &\necho $! > leftover.pid\nexit 0");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\ntimeout = \"60s\"\n",
    );
    sb.write_board("# Board\n\n## A-1: work\n- status: ready\n");
    let taskboard = env!("CARGO_BIN_EXE_taskboard");
    let out = finish(
        Command::new("unshare")
            // The namespace's processes die with `unshare` if the deadline kills it.
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c"])
        // Inside, the shell is pid 1 and its group and session ids read as 0.
        .arg(format!(
            "grep -q ') [A-Z] [0-9]* 0 0 ' /proc/self/stat && exec {taskboard} once task-board.md"
        ))
            .current_dir(&sb.dir)
            .env("NO_COLOR", "1"),
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        sb.board_text().contains("- status: done"),
        "{}",
        sb.board_text()
    );
    assert_eq!(sb.count_for("task_finished", "A-1"), 1);
}
