//! A sandbox for end-to-end tests: a board folder, a real `taskboard` process, and waits that
//! poll `events.jsonl` with a deadline (never a fixed sleep).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod engines;
mod run;
mod temp;

pub use run::{Output, bin, finish};
pub use temp::TempDir;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Sandbox {
    pub dir: PathBuf,
    pub board: PathBuf,
    children: Vec<Child>,
    /// Variables every `taskboard` this sandbox starts gets (`SLURM_CONF`, say).
    env: Vec<(String, String)>,
    /// Removed after the children are stopped (kept when the test failed).
    _temp: TempDir,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let temp = TempDir::new(&format!("e2e-{name}"));
        let dir = temp.to_path_buf();
        let board = dir.join("task-board.md");
        Sandbox {
            dir,
            board,
            children: Vec::new(),
            env: Vec::new(),
            _temp: temp,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
    }

    pub fn write_board(&self, text: &str) {
        std::fs::write(&self.board, text).unwrap();
    }

    pub fn board_text(&self) -> String {
        std::fs::read_to_string(&self.board).unwrap()
    }

    /// Writes an executable shell script.
    pub fn script(&self, rel: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(rel);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A config with a fast debounce; `runtime_overrides` lines (`key = value`) replace the
    /// defaults of the same key, and `executors` tables are appended.
    pub fn config(&self, runtime_overrides: &str, executors: &str) {
        let mut runtime: Vec<(String, String)> = [
            ("debounce_ms", "50"),
            ("max_parallel", "4"),
            ("max_attempts", "3"),
            ("retry_backoff", "\"100ms\""),
            ("grace", "\"1s\""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for line in runtime_overrides.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("key = value");
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            match runtime.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => runtime.push((k, v)),
            }
        }
        let mut text = String::from("[runtime]\n");
        for (k, v) in runtime {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text.push('\n');
        text.push_str(executors);
        self.write("taskboard.toml", &text);
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("TASKBOARD_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Gives every `taskboard` this sandbox starts from now on `key=value`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts `taskboard run` and waits until it has made its first pass.
    pub fn start_run(&mut self) -> u32 {
        let before = self.count("pass");
        let pid = self.spawn_run();
        self.wait_until("first pass", |s| s.count("pass") > before);
        pid
    }

    /// Runs `taskboard once` to completion and returns its exit code.
    pub fn once(&self) -> i32 {
        let out = self.command(&["once", "task-board.md"]).output().unwrap();
        out.status.code().unwrap_or(-1)
    }

    pub fn signal_all(&self, sig: i32) {
        for c in &self.children {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for every started runtime to exit; returns their exit codes.
    pub fn wait_all(&mut self) -> Vec<Option<i32>> {
        let deadline = Instant::now() + DEADLINE;
        let mut codes = Vec::new();
        for mut c in self.children.drain(..) {
            let status = status_within(&mut c, deadline.saturating_duration_since(Instant::now()));
            assert!(status.is_some(), "runtime did not exit in time");
            codes.extend(status.map(|st| st.code()));
        }
        codes
    }

    pub fn kill9_all(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir)
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.events_named(name).len()
    }

    pub fn count_for(&self, name: &str, task: &str) -> usize {
        self.events_named(name)
            .iter()
            .filter(|e| e["task"] == task)
            .count()
    }

    /// Polls until `cond` holds, failing with the event log when the deadline passes.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&Sandbox) -> bool) {
        if !poll(DEADLINE, || cond(self)) {
            panic!(
                "timed out waiting for {what}\nboard:\n{}\nevents:\n{}\nstderr:\n{}",
                std::fs::read_to_string(&self.board).unwrap_or_default(),
                std::fs::read_to_string(self.path("events.jsonl")).unwrap_or_default(),
                self.stderr()
            );
        }
    }

    /// Asserts `cond` stays false for `window` (a bounded negative check).
    pub fn stays_false(&self, window: Duration, cond: impl Fn(&Sandbox) -> bool) -> bool {
        // `poll` looks once more after the window ends, so a late `cond` is seen too.
        !poll(window, || cond(self))
    }

    /// The one run folder of attempt `attempt` of task `id` (its work run, not a review).
    pub fn run_dir(&self, id: &str, attempt: u32) -> PathBuf {
        let all = taskboard::shell::run_dirs::runs(&self.path(".taskboard"), id).unwrap();
        let found: Vec<PathBuf> = all
            .into_iter()
            .filter(|r| r.attempt == attempt && !r.review)
            .map(|r| r.path)
            .collect();
        assert_eq!(found.len(), 1, "{id} attempt {attempt}: {found:?}");
        found.into_iter().next().unwrap()
    }

    pub fn status_of(&self, id: &str) -> String {
        let text = self.board_text();
        let board = taskboard::core::board::Board::parse(&text);
        board
            .task(id)
            .and_then(|t| t.status.as_ref())
            .map(|s| s.raw.to_string())
            .unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        let mut out = String::new();
        for i in 0..4 {
            if let Ok(s) = std::fs::read_to_string(self.path(&format!("run-{i}.stderr"))) {
                out.push_str(&s);
            }
        }
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The events of the board folder `dir` as JSON, oldest first: the rotated files, then
/// `events.jsonl` (a long run rotates it); none when there is no log yet. A line that is not
/// JSON (a torn last line) is left out.
pub fn read_events(dir: &Path) -> Vec<Value> {
    (taskboard::shell::event_log::log_files(dir).iter())
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            (text.lines())
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// True while a process with this pid exists (and is not a zombie we could reap).
pub fn pid_alive(pid: i32) -> bool {
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // A zombie still answers kill(0); read its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A tiny deterministic generator (xorshift64*), so a failing run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The seed from `TASKBOARD_SEED`, else one from the clock; printed either way.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("TASKBOARD_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: TASKBOARD_SEED={seed}");
        Rng::new(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Whether long variants were asked for (`TASKBOARD_LONG=1`).
pub fn long_run() -> bool {
    std::env::var("TASKBOARD_LONG").is_ok_and(|v| v == "1")
}

/// One executor run as its own log tells it: `start <id> <attempt> <pid> <t>` and
/// `end <id> <attempt> <pid> <t>` lines (times in seconds since the epoch).
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: String,
    pub attempt: u32,
    pub pid: i32,
    pub start: f64,
    pub end: Option<f64>,
}

/// The executor script shared by the torture and crash tests: it records its runs in `runs.log`
/// and behaves as the task's `- sim:` field says (`ok`, `fail`, `block`, `sleep`, `hang`, or
/// `nap <seconds>`: succeed after that long).
pub const SIM_EXECUTOR: &str = r#"packet=$(cat)
now() { date +%s.%N; }
echo "start $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT $$ $(now)" >> "$SIM_LOG"
sim=$(printf '%s\n' "$packet" | sed -n 's/^- sim: *//p' | head -n 1)
case "$sim" in
  fail) code=1 ;;
  block) printf '{"status":"blocked:sim:need-input"}' > "$TASKBOARD_RESULT"; code=0 ;;
  sleep) sleep 0.3; code=0 ;;
  hang) sleep 30; code=0 ;;
  "nap "*) sleep "${sim#nap }"; code=0 ;;
  *) code=0 ;;
esac
echo "end $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT $$ $(now)" >> "$SIM_LOG"
exit $code"#;

pub fn read_runs(path: &Path) -> Vec<RunRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: Vec<RunRecord> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 5 {
            continue;
        }
        let (Ok(attempt), Ok(pid), Ok(t)) = (f[2].parse(), f[3].parse(), f[4].parse::<f64>())
        else {
            continue;
        };
        match f[0] {
            "start" => runs.push(RunRecord {
                id: f[1].to_string(),
                attempt,
                pid,
                start: t,
                end: None,
            }),
            "end" => {
                if let Some(r) = runs.iter_mut().rev().find(|r| r.pid == pid && r.id == f[1]) {
                    r.end = Some(t);
                }
            }
            _ => {}
        }
    }
    runs
}

/// Panics when two runs of one task overlap in time. `gone` gives, for a run that never wrote
/// its end line, the time by which it was known to be dead.
pub fn assert_no_overlapping_runs(runs: &[RunRecord], gone: impl Fn(&RunRecord) -> f64) {
    let mut by_task: std::collections::BTreeMap<&str, Vec<(f64, f64, &RunRecord)>> =
        Default::default();
    for r in runs {
        let end = r.end.unwrap_or_else(|| gone(r));
        by_task.entry(&r.id).or_default().push((r.start, end, r));
    }
    for (id, mut spans) in by_task {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "two runs of {id} overlap: {:?} and {:?}",
                w[0].2,
                w[1].2
            );
        }
    }
}

impl Sandbox {
    /// Starts `taskboard run` without waiting for anything; returns its pid.
    pub fn spawn_run(&mut self) -> u32 {
        let stderr =
            std::fs::File::create(self.path(&format!("run-{}.stderr", self.children.len() % 4)))
                .unwrap();
        let child = self
            .command(&["run", "task-board.md"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// SIGKILLs the runtime with this pid and reaps it.
    pub fn kill9(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to the runtime with this pid and waits for it to exit; returns its exit code.
    pub fn stop(&mut self, pid: u32, sig: i32) -> Option<i32> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let mut c = self.children.remove(i);
        unsafe { libc::kill(pid as i32, sig) };
        let status = status_within(&mut c, DEADLINE);
        assert!(status.is_some(), "runtime {pid} did not exit in time");
        status.and_then(|st| st.code())
    }

    /// The lock folders under `.taskboard/locks` (debris from breaking/releasing excluded).
    pub fn lock_dirs(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.path(".taskboard/locks")) else {
            return Vec::new();
        };
        let mut out: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        out
    }

    /// Every task's (id, raw status) on the board now.
    pub fn statuses(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.board).unwrap_or_default();
        taskboard::core::board::Board::parse(&text)
            .tasks
            .iter()
            .map(|t| {
                (
                    t.id.to_string(),
                    t.status
                        .as_ref()
                        .map(|s| s.raw.to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Polls `cond` until it holds or `deadline` passes; returns whether it held.
pub fn poll(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Waits for `child` to exit within the deadline; a child still running then is killed and
/// reported as `None`.
pub fn exit_code_within(child: &mut Child, deadline: Duration) -> Option<i32> {
    status_within(child, deadline).map(|st| st.code().unwrap_or(-1))
}

/// Like [`exit_code_within`], with the whole exit status.
pub fn status_within(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    poll(deadline, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Seconds since the epoch, as the executor scripts print them.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The board with every status token removed: the bytes the runtime must never change.
pub fn without_statuses(text: &str) -> String {
    let b = taskboard::core::board::Board::parse(text);
    let mut out = text.to_string();
    let mut ranges: Vec<_> = b
        .tasks
        .iter()
        .filter_map(|t| t.status.as_ref().map(|s| s.range.clone()))
        .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
    for r in ranges {
        out.replace_range(r, "");
    }
    out
}

/// Why `taskboard run` cannot be started as the unprivileged user `nobody` here, if it cannot:
/// `setpriv` must exist and the current user must be allowed to switch (root).
pub fn cannot_run_as_nobody() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root, so cannot switch to nobody".into());
    }
    match Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(st) if st.success() => None,
        Ok(st) => Some(format!("`setpriv --reuid=nobody … true` failed: {st}")),
        Err(e) => Some(format!("setpriv is not available: {e}")),
    }
}

impl Sandbox {
    /// Gives the sandbox folder and everything in it to `nobody:nogroup`.
    pub fn chown_to_nobody(&self) {
        fn walk(p: &Path) {
            std::os::unix::fs::lchown(p, Some(65534), Some(65534)).unwrap();
            if p.is_dir() && !p.is_symlink() {
                for e in std::fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path());
                }
            }
        }
        walk(&self.dir);
    }

    /// Starts `taskboard run` as `nobody` (through `setpriv`) and waits for its first pass.
    pub fn start_run_as_nobody(&mut self) -> u32 {
        let before = self.count("pass");
        let stderr =
            std::fs::File::create(self.path(&format!("run-{}.stderr", self.children.len() % 4)))
                .unwrap();
        let child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_taskboard"))
            .args(["run", "task-board.md"])
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("TASKBOARD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        self.wait_until("first pass", |s| s.count("pass") > before);
        pid
    }

    /// The `error` events whose `context` is `context`.
    pub fn errors_in(&self, context: &str) -> usize {
        self.events_named("error")
            .iter()
            .filter(|e| e["context"] == context)
            .count()
    }
}

impl Sandbox {
    /// Starts `taskboard run` with its stderr in `stderr` (a path outside the sandbox, say);
    /// waits for nothing; returns its pid.
    pub fn spawn_run_logging_to(&mut self, stderr: &Path) -> u32 {
        let child = self
            .command(&["run", "task-board.md"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

/// Says that the running test cannot run here and why, where a person sees it, and fails
/// instead when `CI` is set: `.ci/run` installs everything the tests need, so a skip there
/// would be a hole in the coverage nobody notices. The line goes straight to the process's
/// stderr, since the test harness swallows what a passing test prints with `eprintln!`. The
/// caller returns right after.
pub fn skip(why: &str) {
    use std::io::Write;
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run here, and CI is set so it may not skip: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (with CI set, this fails instead)"
    );
}

/// Like [`skip`] for a whole family of tests that need one engine (a Slurm cluster, an sshd):
/// one line says so for all of them, the first time one of them finds it missing.
pub fn skip_engine(engine: &str, why: &str) {
    use std::io::Write;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if std::env::var_os("CI").is_some() {
        let current = std::thread::current();
        let test = current.name().unwrap_or("a test");
        panic!("{test} cannot run here, and CI is set so it may not skip: {why}");
    }
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.iter().any(|e| e == engine) {
        return;
    }
    said.push(engine.to_string());
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED every test that needs {engine}: {why} (with CI set, they fail instead)"
    );
}

/// Runs `git` in `dir` as a throwaway identity whose new repositories start on `main`; fails
/// the test with git's stderr when it fails. Returns what it printed, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `script` with `sh -c` in `dir` (several commands a person types in one go); fails the
/// test with their stderr when one fails.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
