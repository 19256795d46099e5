//! The runtime as a service manager sees it, with real processes: logs on stderr and in the
//! daily file, exit 0 after SIGTERM, a non-zero exit on a fatal error, and a quiet wait (no busy
//! loop, one message) while the board does not exist yet.

use crate::support;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use support::{DEADLINE, Sandbox};

/// A child process killed and reaped on drop, whatever the test's outcome.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.0.id() as i32, sig) };
    }

    /// Waits for the exit with a deadline; returns the exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let code = support::exit_code_within(&mut self.0, DEADLINE);
        assert!(code.is_some(), "the runtime did not exit in time");
        code
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `taskboard run task-board.md` with stderr into `run-0.stderr` (read by
/// `Sandbox::stderr`), without waiting for anything.
fn spawn_run(sb: &Sandbox, log: &str) -> Proc {
    let stderr = std::fs::File::create(sb.path("run-0.stderr")).unwrap();
    let child = sb
        .command(&["run", "task-board.md"])
        .env("TASKBOARD_LOG", log)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Proc(child)
}

/// User plus system CPU time of `pid`, in clock ticks (fields 14 and 15 of /proc/pid/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn waiting_lines(sb: &Sandbox) -> usize {
    sb.stderr()
        .lines()
        .filter(|l| l.contains("waiting for it to appear"))
        .count()
}

fn executor(sb: &Sandbox) {
    sb.script("exec.sh", "cat > /dev/null\necho ran >> ran.log\nexit 0");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
}

#[test]
fn a_missing_board_is_awaited_quietly_then_served() {
    let sb = Sandbox::new("bg-missing");
    executor(&sb);
    let mut run = spawn_run(&sb, "info");
    sb.wait_until("the waiting line", |s| waiting_lines(s) >= 1);

    // While waiting, the process must sleep: over a bounded window its CPU time barely moves,
    // and it says it is waiting only once. A busy loop burns ~100 ticks per second.
    let start = cpu_ticks(run.pid());
    let exited = support::poll(Duration::from_millis(1500), || {
        run.0.try_wait().unwrap().is_some()
    });
    assert!(!exited, "run exited while waiting");
    let used = cpu_ticks(run.pid()) - start;
    assert!(
        used <= 10,
        "run used {used} clock ticks of CPU while waiting"
    );
    assert_eq!(waiting_lines(&sb), 1, "{}", sb.stderr());
    let waiting_events = sb
        .events_named("error")
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("waiting for it to appear"))
        })
        .count();
    assert_eq!(waiting_events, 1);

    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    assert_eq!(
        std::fs::read_to_string(sb.path("ran.log")).unwrap(),
        "ran\n"
    );
    assert_eq!(waiting_lines(&sb), 1);

    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(), Some(0), "{}", sb.stderr());
}

#[test]
fn sigterm_stops_cleanly_with_exit_0_and_logs_on_stderr() {
    let sb = Sandbox::new("bg-sigterm");
    executor(&sb);
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    let mut run = spawn_run(&sb, "info");
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(), Some(0), "{}", sb.stderr());
    let stderr = sb.stderr();
    assert!(stderr.contains("taskboard run started"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour when stderr is not a terminal"
    );
    let stopped = sb.events_named("runtime_stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["reason"], "signal SIGTERM");
}

#[test]
fn a_fatal_error_exits_non_zero() {
    let sb = Sandbox::new("bg-fatal");
    sb.write_board("# Board\n");
    sb.write("taskboard.toml", "[runtime]\nmax_parallel = 0\n");
    let mut run = spawn_run(&sb, "info");
    assert_eq!(run.wait_exit(), Some(3));
    let stderr = sb.stderr();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("taskboard: ") && last.contains("taskboard.toml"),
        "{stderr}"
    );
}

fn log_files(sb: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sb.path(".taskboard/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("taskboard.log."))
        .collect();
    names.sort();
    names
}

#[test]
fn the_daily_file_has_plain_lines_and_old_files_are_pruned() {
    let sb = Sandbox::new("bg-logfile");
    executor(&sb);
    sb.config("log_keep = 3", "");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    // Twenty old daily files, created oldest first, and one file that is not a log.
    for day in 1..=20 {
        sb.write(
            &format!(".taskboard/logs/taskboard.log.2020-01-{day:02}"),
            "old\n",
        );
    }
    sb.write(".taskboard/logs/notes.txt", "keep me\n");

    let out = sb
        .command(&["once", "task-board.md"])
        .env("TASKBOARD_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("taskboard once started"), "{stderr}");

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let names = log_files(&sb);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"taskboard.log.2020-01-20".to_string()),
        "{names:?}"
    );
    let current = names
        .iter()
        .find(|n| !n.starts_with("taskboard.log.2020-"))
        .expect("today's file");
    // The date in the name is UTC; allow for midnight between the run and this check.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        *current == format!("taskboard.log.{today}")
            || *current == format!("taskboard.log.{yesterday}"),
        "{current}"
    );
    assert!(sb.path(".taskboard/logs/notes.txt").exists());
    let text = std::fs::read_to_string(sb.path(".taskboard/logs").join(current)).unwrap();
    assert!(text.contains("taskboard once started"), "{text}");
    assert!(!text.contains('\x1b'), "no ANSI in the file");
}

#[test]
fn when_the_logs_folder_cannot_be_made_stderr_alone_is_used() {
    let sb = Sandbox::new("bg-nologs");
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    // A file where the logs folder should be.
    sb.write(".taskboard/logs", "not a folder\n");
    let out = sb
        .command(&["once", "task-board.md"])
        .env("TASKBOARD_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("logging to stderr only").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("taskboard once started"), "{stderr}");
    let logs: PathBuf = sb.path(".taskboard/logs");
    assert!(logs.is_file());
}
