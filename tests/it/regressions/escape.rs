//! Situation: a process leaves the executor's process group (`setsid`, a shell with job control)
//! and survives the group's SIGTERM, or stays in the group without the run id (`env -i`).
//! Promise: a run is over only when every process it started is gone, so a task never has two
//! live runs, whether the run timed out, the runtime was stopped, or the runtime was killed and
//! restarted.

use std::time::Duration;

use crate::support::{Sandbox, pid_alive, poll, read_pid};

const WAIT: Duration = Duration::from_secs(20);

/// Shell lines that record, for each `escaped-*.pid` left by an earlier attempt, whether that
/// process is alive as this attempt starts (a zombie counts as dead), in `checks.log`.
const CHECK_EARLIER: &str = r#"cat >/dev/null
alive() { kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
for f in escaped-*.pid; do
  [ -e "$f" ] || continue
  if alive "$(cat "$f")"; then state=alive; else state=dead; fi
  echo "attempt $TASKBOARD_ATTEMPT: $f $state" >> checks.log
done
echo "attempt $TASKBOARD_ATTEMPT: start" >> checks.log"#;

/// Starts a process that leaves the group with `setsid`, records its pid in `escaped-1.pid`
/// once it has left, and goes on.
const SETSID_ESCAPE: &str = r#"setsid sh -c 'echo $$ > escaped-1.tmp; mv escaped-1.tmp escaped-1.pid; exec sleep 600' &
while [ ! -s escaped-1.pid ]; do sleep 0.01; done"#;

/// An executor that, on its first attempt, leaves an escaped process behind and then does
/// `rest`; on a later attempt (an `escaped-1.pid` exists) it only records the check and exits 0.
fn escaping_executor(sb: &Sandbox, escape: &str, rest: &str, timeout: Option<&str>) {
    sb.script(
        "esc.sh",
        &format!("{CHECK_EARLIER}\n[ -e escaped-1.pid ] && exit 0\n{escape}\n{rest}"),
    );
    let timeout = timeout.map_or_else(String::new, |t| format!("timeout = \"{t}\"\n"));
    sb.config(
        "",
        &format!("[executors.default]\ncommand = [\"./esc.sh\"]\n{timeout}"),
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
}

fn escaped_pid(sb: &Sandbox) -> i32 {
    let path = sb.path("escaped-1.pid");
    assert!(
        poll(WAIT, || read_pid(&path).is_some()),
        "the executor never recorded its escaped process"
    );
    read_pid(&path).unwrap()
}

fn checks(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("checks.log")).unwrap_or_default()
}

/// The pids of live processes whose environment holds `TASKBOARD_RUN_ID=<run_id>`.
fn processes_with_run_id(run_id: &str) -> Vec<i32> {
    let wanted = format!("TASKBOARD_RUN_ID={run_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == wanted.as_bytes()))
        })
        .filter(|pid| pid_alive(*pid))
        .collect()
}

fn run_id_of(pid: i32) -> Option<String> {
    // Read while the process is in the middle of its `exec`, the environment is empty for an
    // instant: ask again until it reads, or the process is gone.
    let mut found = None;
    poll(WAIT, || {
        found = read_run_id(pid);
        found.is_some() || !pid_alive(pid)
    });
    found
}

fn read_run_id(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"TASKBOARD_RUN_ID="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Waits until the lock of A-1 names its executor's process group, as another process reads it.
fn wait_for_the_executor_in_the_lock(sb: &Sandbox) {
    sb.wait_until("the executor in the lock", |s| {
        let locks = taskboard::shell::lock::Locks::new(s.path(".taskboard/locks"));
        matches!(
            locks.read("A-1"),
            Some(taskboard::shell::lock::LockState::Held(owner)) if owner.executor_pgid.is_some()
        )
    });
}

/// Starts a runtime again after a kill and waits for A-1 to be done: the process `escaped` the
/// killed run left must be dead when the next attempt starts and after. Returns the runtime.
fn restart_and_find_it_dead(sb: &mut Sandbox, escaped: i32) -> u32 {
    let restarted = sb.start_run();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let alive_after = pid_alive(escaped);
    kill_if_alive(escaped);
    let log = checks(sb);
    assert!(
        log.contains("escaped-1.pid dead"),
        "the next attempt did not check the escaped process:\n{log}"
    );
    assert_eq!(log.matches("alive").count(), 0, "{log}");
    assert!(!alive_after, "the escaped process outlived the restart");
    restarted
}

fn kill_if_alive(pid: i32) {
    if pid_alive(pid) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The timed-out attempt is over only when its escaped process is gone: the next attempt starts
/// after, and an `error` event names the process.
fn assert_timeout_stops_the_escaped_process(sb: &mut Sandbox) {
    let pid = sb.start_run();
    let escaped = escaped_pid(sb);
    sb.wait_until("the first attempt to time out", |s| {
        s.count_for("task_finished", "A-1") >= 1
    });
    let finished = &sb.events_named("task_finished")[0];
    assert_eq!(finished["stopped"], "timeout", "{finished}");
    let gone = poll(WAIT, || !pid_alive(escaped));
    kill_if_alive(escaped);
    assert!(
        gone,
        "the escaped process {escaped} outlived its timed-out run"
    );
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let log = checks(sb);
    assert!(
        log.contains("attempt 2: escaped-1.pid dead"),
        "attempt 2 did not see the escaped process dead:\n{log}"
    );
    assert_eq!(log.matches("alive").count(), 0, "{log}");
    let named = sb
        .events_named("error")
        .iter()
        .filter(|e| e["context"] == "escaped")
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains(&escaped.to_string()))
        })
        .count();
    assert_eq!(named, 1, "no error event names pid {escaped}");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_setsid_process_dies_with_its_timed_out_run_before_the_next_attempt() {
    let mut sb = Sandbox::new("escape-setsid");
    escaping_executor(&sb, SETSID_ESCAPE, "exec sleep 600", Some("1s"));
    assert_timeout_stops_the_escaped_process(&mut sb);
}

#[test]
fn a_job_control_process_dies_with_its_timed_out_run_before_the_next_attempt() {
    let mut sb = Sandbox::new("escape-jobs");
    // `set -m`: background jobs get their own process groups (bash does this without a tty).
    let escape = r#"exec bash -c 'set -m
sleep 600 &
echo $! > escaped-1.tmp; mv escaped-1.tmp escaped-1.pid
wait'"#;
    escaping_executor(&sb, escape, "", Some("1s"));
    assert_timeout_stops_the_escaped_process(&mut sb);
}

#[test]
fn stopping_the_runtime_leaves_no_process_of_a_run_alive() {
    let mut sb = Sandbox::new("escape-stop");
    escaping_executor(&sb, SETSID_ESCAPE, "exec sleep 600", None);
    let pid = sb.start_run();
    let escaped = escaped_pid(&sb);
    let run_id = run_id_of(escaped);
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let escaped_alive = pid_alive(escaped);
    kill_if_alive(escaped);
    assert!(
        !escaped_alive,
        "the escaped process outlived `taskboard run`"
    );
    let run_id = run_id.expect("the escaped process carried the run id");
    let left = processes_with_run_id(&run_id);
    for p in &left {
        kill_if_alive(*p);
    }
    assert_eq!(
        left,
        Vec::<i32>::new(),
        "processes of the run outlived `taskboard run`"
    );
}

#[test]
fn after_kill_9_the_restarted_runtime_stops_the_escaped_process_before_running_the_task_again() {
    let mut sb = Sandbox::new("escape-kill9");
    escaping_executor(&sb, SETSID_ESCAPE, "exec sleep 600", None);
    let pid = sb.start_run();
    let escaped = escaped_pid(&sb);
    wait_for_the_executor_in_the_lock(&sb);
    sb.kill9(pid);
    // The situation: the escaped process survived its runtime.
    assert!(
        pid_alive(escaped),
        "the escaped process died with the runtime"
    );
    let restarted = restart_and_find_it_dead(&mut sb, escaped);
    assert_eq!(sb.count_for("stale_claim_reset", "A-1"), 1);
    let named = sb
        .events_named("error")
        .iter()
        .filter(|e| e["context"] == "recovery")
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains(&escaped.to_string()))
        })
        .count();
    assert_eq!(named, 1, "no recovery error names pid {escaped}");
    assert_eq!(sb.stop(restarted, libc::SIGTERM), Some(0));
}

#[test]
fn a_daemon_left_by_a_successful_executor_is_stopped_and_named() {
    let mut sb = Sandbox::new("escape-daemon");
    escaping_executor(&sb, SETSID_ESCAPE, "echo left a daemon\nexit 0", None);
    let pid = sb.start_run();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let escaped = read_pid(&sb.path("escaped-1.pid")).expect("escaped-1.pid");
    let alive_when_done = pid_alive(escaped);
    kill_if_alive(escaped);
    assert!(
        !alive_when_done,
        "the daemon outlived the run that reported done"
    );
    let errors: Vec<_> = sb
        .events_named("error")
        .into_iter()
        .filter(|e| e["context"] == "escaped")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains(&escaped.to_string())
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

#[test]
fn a_child_that_cleared_its_environment_and_ignores_sigterm_dies_with_its_timed_out_run() {
    let mut sb = Sandbox::new("escape-noenv");
    // The escaped shell starts a child without the run id (env -i) that ignores SIGTERM; once
    // the shell dies of the timeout's SIGTERM, nothing links that child to the run any more.
    let escape = r#"setsid sh -c '/usr/bin/env -i /bin/sh -c "trap \"\" TERM; echo \$\$ > escaped-1.tmp; /bin/mv escaped-1.tmp escaped-1.pid; exec /bin/sleep 600" & wait' &
while [ ! -s escaped-1.pid ]; do sleep 0.01; done"#;
    escaping_executor(&sb, escape, "exec sleep 600", Some("1s"));
    assert_timeout_stops_the_escaped_process(&mut sb);
}

#[test]
fn after_kill_9_a_child_known_only_by_its_process_group_is_stopped_before_the_task_runs_again() {
    let mut sb = Sandbox::new("escape-group");
    // The child stays in the executor's process group but carries no run id (env -i): once the
    // runtime is killed (and the executor with it), only the group recorded in the lock leads
    // the next runtime to it.
    let escape = r#"/usr/bin/env -i /bin/sh -c 'echo $$ > escaped-1.tmp; /bin/mv escaped-1.tmp escaped-1.pid; exec /bin/sleep 600' &
while [ ! -s escaped-1.pid ]; do sleep 0.01; done"#;
    escaping_executor(&sb, escape, "exec sleep 600", None);
    let pid = sb.start_run();
    let escaped = escaped_pid(&sb);
    assert_eq!(read_run_id(escaped), None, "the child carries the run id");
    wait_for_the_executor_in_the_lock(&sb);
    sb.kill9(pid);
    assert!(pid_alive(escaped), "the child died with the runtime");
    let restarted = restart_and_find_it_dead(&mut sb, escaped);
    assert_eq!(sb.stop(restarted, libc::SIGTERM), Some(0));
}
