//! Running real child processes through `taskboard::shell::exec`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use taskboard::core::settle::{ProcessEnd, StopCause};
use taskboard::shell::exec::{self, AttemptSpec, Finished, LocalHandle, SpawnError};

const WAIT: Duration = Duration::from_secs(20);

use crate::support::TempDir;

fn spec(dir: &TempDir, script: &str) -> AttemptSpec {
    AttemptSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: dir.path().to_path_buf(),
        env: Vec::new(),
        stdin: Vec::new(),
        run_dir: dir.path().to_path_buf(),
        timeout: None,
        grace: Duration::from_millis(300),
        output_cap: 1 << 20,
    }
}

fn start(spec: AttemptSpec) -> (LocalHandle, mpsc::Receiver<Finished>) {
    let (tx, rx) = mpsc::channel();
    let handle = exec::start(spec, move |f| tx.send(f).unwrap()).expect("start");
    (handle, rx)
}

fn run(spec: AttemptSpec) -> Finished {
    let (_handle, rx) = start(spec);
    rx.recv_timeout(WAIT).expect("child did not finish in time")
}

/// Polls `cond` until it holds or the deadline passes.
fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        crate::support::poll(WAIT, cond),
        "timed out waiting for {what}"
    );
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

fn read_pid(path: &Path) -> i32 {
    let mut text = String::new();
    eventually("pid file", || {
        text = fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    text.trim().parse().unwrap()
}

/// Killed by signal `number`, which events name `name`.
fn signaled(number: i32, name: &str) -> ProcessEnd {
    ProcessEnd::Signaled {
        number,
        name: name.into(),
    }
}

fn kill(pid: i32) {
    // SAFETY: plain syscall on a process this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[test]
fn exit_codes_are_reported() {
    let dir = TempDir::new("exit");
    let ok = run(spec(&dir, "exit 0"));
    assert_eq!(ok.ending, ProcessEnd::Exited(0));
    assert_eq!(ok.stopped, None);
    let three = run(spec(&dir, "exit 3"));
    assert_eq!(three.ending, ProcessEnd::Exited(3));
    assert_eq!(three.stopped, None);
}

#[test]
fn death_by_signal_is_reported() {
    let dir = TempDir::new("signal");
    let f = run(spec(&dir, "kill -9 $$"));
    assert_eq!(f.ending, signaled(libc::SIGKILL, "SIGKILL"));
    assert_eq!(f.stopped, None);
}

#[test]
fn stdin_reaches_the_child() {
    let dir = TempDir::new("stdin");
    let mut s = spec(&dir, "cat > got.txt");
    s.stdin = b"line one\nline two\n".to_vec();
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(
        fs::read(dir.path().join("got.txt")).unwrap(),
        b"line one\nline two\n"
    );
}

/// A packet larger than a pipe holds: what does not fit at once is written as the child reads,
/// every byte in order, then stdin is closed.
#[test]
fn a_stdin_larger_than_the_pipe_reaches_the_child_whole() {
    let dir = TempDir::new("stdin-large");
    let mut s = spec(&dir, "cat > got.bin");
    let input: Vec<u8> = (0..(3u32 << 20)).map(|n| (n % 251) as u8).collect();
    s.stdin = input.clone();
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert!(
        fs::read(dir.path().join("got.bin")).unwrap() == input,
        "stdin arrived cut or out of order"
    );
}

/// Both output streams full at once: each is read as it fills, so neither blocks the child,
/// and every byte of each is counted and kept whole in its own log.
#[test]
fn stdout_and_stderr_filling_together_are_both_read_whole() {
    let dir = TempDir::new("two-streams");
    let script = "i=0; while [ $i -lt 400 ]; do \
                  head -c 2000 /dev/zero | tr '\\0' o; head -c 2000 /dev/zero | tr '\\0' e >&2; \
                  i=$((i+1)); done; echo end-out; echo end-err >&2";
    let mut s = spec(&dir, script);
    s.output_cap = 8 << 20;
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!((f.stdout_bytes, f.stderr_bytes), (800_008, 800_008));
    let out = fs::read(dir.path().join("stdout.log")).unwrap();
    let err = fs::read(dir.path().join("stderr.log")).unwrap();
    assert!(out.len() == 800_008 && out[..800_000].iter().all(|&b| b == b'o'));
    assert!(err.len() == 800_008 && err[..800_000].iter().all(|&b| b == b'e'));
    assert!(f.stdout_tail.ends_with("end-out\n") && f.stderr_tail.ends_with("end-err\n"));
}

#[test]
fn child_that_ignores_a_large_stdin_still_finishes() {
    let dir = TempDir::new("stdin-ignored");
    let mut s = spec(&dir, "echo done");
    s.stdin = vec![b'x'; 1 << 20];
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(f.stdout_tail, "done\n");
}

#[test]
fn env_and_cwd_are_applied() {
    let dir = TempDir::new("env");
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let mut s = spec(
        &dir,
        "printf '%s|%s|%s' \"$TB_ONE\" \"$TB_TWO\" \"$(pwd -P)\"",
    );
    s.cwd = work.clone();
    s.env = vec![
        ("TB_ONE".into(), "first".into()),
        ("TB_TWO".into(), "second value".into()),
    ];
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    let expected = format!(
        "first|second value|{}",
        fs::canonicalize(&work).unwrap().display()
    );
    assert_eq!(f.stdout_tail, expected);
    assert_eq!(
        fs::read_to_string(dir.path().join("stdout.log")).unwrap(),
        expected
    );
}

#[test]
fn missing_program_is_not_found() {
    let dir = TempDir::new("notfound");
    let mut s = spec(&dir, "");
    s.argv = vec!["taskboard-test-no-such-program".into()];
    let err = exec::start(s, |_| panic!("on_exit must not run")).unwrap_err();
    assert!(matches!(err, SpawnError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("taskboard-test-no-such-program"));
}

#[test]
fn missing_working_directory_is_an_error() {
    let dir = TempDir::new("nocwd");
    let mut s = spec(&dir, "exit 0");
    s.cwd = dir.path().join("missing");
    let err = exec::start(s, |_| panic!("on_exit must not run")).unwrap_err();
    assert!(matches!(err, SpawnError::NotFound(_)), "{err:?}");
}

#[test]
fn program_without_execute_permission_is_not_executable() {
    let dir = TempDir::new("noexec");
    let script = dir.path().join("script.sh");
    fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = spec(&dir, "");
    s.argv = vec![script.to_string_lossy().into_owned()];
    let err = exec::start(s, |_| panic!("on_exit must not run")).unwrap_err();
    assert!(matches!(err, SpawnError::NotExecutable(_)), "{err:?}");
    assert!(err.to_string().contains("script.sh"));
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = TempDir::new("timeout");
    let mut s = spec(&dir, "sleep 1000 & echo $! > gc.pid; sleep 1000");
    s.timeout = Some(Duration::from_millis(500));
    let (handle, rx) = start(s);
    let grandchild = read_pid(&dir.path().join("gc.pid"));
    let f = rx
        .recv_timeout(WAIT)
        .expect("timeout did not end the child");
    assert_eq!(f.stopped, Some(StopCause::Timeout));
    assert_eq!(f.ending, signaled(libc::SIGTERM, "SIGTERM"));
    assert!(f.duration >= Duration::from_millis(500), "{:?}", f.duration);
    eventually("grandchild to be gone", || !alive(grandchild));
    // Stopping after the end does nothing and does not change the report.
    handle.stop(StopCause::Cancelled);
    if alive(grandchild) {
        kill(grandchild);
    }
}

#[test]
fn grandchild_holding_stdout_does_not_hang_completion() {
    let dir = TempDir::new("grandchild");
    let f = run(spec(&dir, "sleep 1000 & echo $! > gc.pid; echo started"));
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(f.stopped, None);
    assert_eq!(f.stdout_tail, "started\n");
    let grandchild = read_pid(&dir.path().join("gc.pid"));
    eventually("leftover grandchild to be gone", || !alive(grandchild));
}

/// A leftover process of the run that writes after the leader has ended (here, when the
/// run's end tells it to stop) has its words kept like the leader's.
#[test]
fn output_written_after_the_leader_ended_is_kept() {
    let dir = TempDir::new("late-output");
    let f = run(spec(
        &dir,
        "sh -c \"trap 'echo late; exit 0' TERM; : > gc.ready; while :; do sleep 0.01; done\" & \
         while [ ! -e gc.ready ]; do sleep 0.01; done; echo early",
    ));
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(f.stdout_tail, "early\nlate\n");
    assert_eq!(
        fs::read_to_string(dir.path().join("stdout.log")).unwrap(),
        "early\nlate\n"
    );
}

#[test]
fn daemon_outside_the_group_holding_stdout_does_not_hang_completion() {
    let dir = TempDir::new("daemon");
    let started = Instant::now();
    let f = run(spec(
        &dir,
        // The leader waits until the daemon has left the group, or the group's SIGTERM
        // could reach it first.
        "setsid sh -c 'echo $$ > d.pid; exec sleep 1000' & \
         while [ ! -s d.pid ]; do sleep 0.01; done; echo started",
    ));
    let daemon = read_pid(&dir.path().join("d.pid"));
    kill(daemon);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(f.stdout_tail, "started\n");
    assert!(started.elapsed() < exec::OUTPUT_DRAIN + Duration::from_secs(5));
}

#[test]
fn stop_ends_a_running_child_and_first_reason_wins() {
    let dir = TempDir::new("cancel");
    let (handle, rx) = start(spec(&dir, "echo ready; exec sleep 1000"));
    eventually("child to start", || {
        fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default() == "ready\n"
    });
    let other = handle.clone();
    thread::spawn(move || other.stop(StopCause::Cancelled))
        .join()
        .unwrap();
    handle.stop(StopCause::Shutdown);
    let f = rx.recv_timeout(WAIT).expect("stop did not end the child");
    assert_eq!(f.stopped, Some(StopCause::Cancelled));
    assert_eq!(f.ending, signaled(libc::SIGTERM, "SIGTERM"));
    assert!(handle.pid() > 0);
}

#[test]
fn child_ignoring_sigterm_is_killed_after_grace() {
    let dir = TempDir::new("ignore-term");
    let mut s = spec(&dir, "trap '' TERM; echo ready; sleep 1000");
    s.grace = Duration::from_millis(400);
    let (handle, rx) = start(s);
    eventually("child to start", || {
        fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default() == "ready\n"
    });
    let asked = Instant::now();
    handle.stop(StopCause::Shutdown);
    let f = rx
        .recv_timeout(WAIT)
        .expect("SIGKILL did not end the child");
    assert!(asked.elapsed() >= Duration::from_millis(400));
    assert_eq!(f.stopped, Some(StopCause::Shutdown));
    assert_eq!(f.ending, signaled(libc::SIGKILL, "SIGKILL"));
}

#[test]
fn output_over_the_cap_keeps_head_marker_and_tail() {
    let dir = TempDir::new("cap");
    let cap: u64 = 1 << 20;
    let mut s = spec(
        &dir,
        "head -c 20000000 /dev/zero | tr '\\0' a; echo LAST-LINE; echo oops >&2",
    );
    s.output_cap = cap;
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    let total = 20_000_000 + "LAST-LINE\n".len() as u64;
    assert_eq!(f.stdout_bytes, total);
    assert!(f.stdout_tail.ends_with("aaaaLAST-LINE\n"));
    assert!(f.stdout_tail.len() <= exec::TAIL_BYTES);
    assert_eq!(f.stderr_tail, "oops\n");
    assert_eq!(f.stderr_bytes, 5);

    let log = fs::read(dir.path().join("stdout.log")).unwrap();
    let marker = exec::marker(total - cap);
    assert!(
        log.len() as u64 <= cap + marker.len() as u64,
        "{}",
        log.len()
    );
    assert_eq!(log.len() as u64, cap + marker.len() as u64);
    let head = (cap / 2) as usize;
    assert!(log[..head].iter().all(|b| *b == b'a'));
    assert_eq!(&log[head..head + marker.len()], marker.as_bytes());
    assert!(log.ends_with(b"aaaaLAST-LINE\n"));
    assert_eq!(fs::read(dir.path().join("stderr.log")).unwrap(), b"oops\n");
}

#[test]
fn output_under_the_cap_is_kept_whole() {
    let dir = TempDir::new("under-cap");
    let mut s = spec(&dir, "seq 1 1000");
    s.output_cap = 1 << 16;
    let f = run(s);
    let expected: String = (1..=1000).map(|n| format!("{n}\n")).collect();
    assert_eq!(f.stdout_bytes, expected.len() as u64);
    assert_eq!(
        fs::read_to_string(dir.path().join("stdout.log")).unwrap(),
        expected
    );
    assert!(expected.ends_with(&f.stdout_tail));
    assert_eq!(f.stderr_bytes, 0);
    assert_eq!(f.stderr_tail, "");
}

#[test]
fn grandchild_ignoring_sigterm_after_leader_exit_is_killed() {
    let dir = TempDir::new("gc-ignore-term");
    let mut s = spec(
        &dir,
        "(trap '' TERM; exec sleep 1000) & echo $! > gc.pid; exit 0",
    );
    s.grace = Duration::from_millis(200);
    let f = run(s);
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    let grandchild = read_pid(&dir.path().join("gc.pid"));
    eventually("grandchild to be killed", || !alive(grandchild));
}

#[test]
fn child_outlives_the_thread_that_started_it() {
    let dir = TempDir::new("thread-exit");
    let s = spec(
        &dir,
        "while [ ! -e go ]; do sleep 0.01; done; echo survived",
    );
    let (_handle, rx) = thread::spawn(move || start(s)).join().unwrap();
    fs::write(dir.path().join("go"), "").unwrap();
    let f = rx.recv_timeout(WAIT).expect("child did not finish");
    assert_eq!(f.ending, ProcessEnd::Exited(0));
    assert_eq!(f.stdout_tail, "survived\n");
}

const HELPER_DIR: &str = "TASKBOARD_EXEC_TEST_HELPER_DIR";

/// Runs inside a separate process started by `killed_runtime_takes_the_executor_with_it`.
#[test]
#[ignore = "helper process for killed_runtime_takes_the_executor_with_it"]
fn helper_runtime_that_starts_a_child_and_waits() {
    let Some(dir) = std::env::var_os(HELPER_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let s = AttemptSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo $$ > child.pid; exec sleep 1000".into(),
        ],
        cwd: dir.clone(),
        env: Vec::new(),
        stdin: Vec::new(),
        run_dir: dir,
        timeout: None,
        grace: Duration::from_millis(300),
        output_cap: 1 << 16,
    };
    let _handle = exec::start(s, |_| {}).expect("start");
    loop {
        thread::park();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn killed_runtime_takes_the_executor_with_it() {
    let dir = TempDir::new("pdeathsig");
    let mut runtime = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exec::helper_runtime_that_starts_a_child_and_waits",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = read_pid(&dir.path().join("child.pid"));
    assert!(alive(child));
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    eventually("executor to die with its runtime", || !alive(child));
}
