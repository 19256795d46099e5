//! What a person sees: `taskboard run` on a terminal (a pseudo-terminal from `script`) prints the
//! lines `taskboard tail` prints, coloured; under a plain pipe (a service manager) the same lines
//! without colour and with a severity word. `tail` hides `pass` events unless `--all`, leaves
//! out empty fields, and names the mode of a stopping runtime.

use crate::support;

use std::process::{Child, Command, Stdio};

use support::{DEADLINE, Sandbox};

/// A child process killed and reaped on drop, whatever the test's outcome.
struct Proc(Child);

impl Proc {
    /// Waits for the exit with a deadline.
    fn wait_exit(&mut self) {
        assert!(
            support::status_within(&mut self.0, DEADLINE).is_some(),
            "the process did not exit in time"
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A board whose one task fails every attempt: two attempts, then the deadletter.
fn failing_board(sb: &Sandbox) {
    sb.script("exec.sh", "cat > /dev/null\nexit 3");
    sb.config(
        "max_attempts = 2",
        "[executors.default]\ncommand = [\"./exec.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
}

/// Waits for the runtime to write its deadletter and stop, then returns.
fn until_deadlettered(sb: &Sandbox) -> u32 {
    sb.wait_until("A-1 deadlettered", |s| s.count("task_deadlettered") == 1);
    let started = sb.events_named("runtime_started");
    started[0]["pid"].as_u64().unwrap() as u32
}

/// `tail`'s lines for the sandbox's events (no colour: its stdout is a pipe), date lines left out.
fn tail_lines(sb: &Sandbox, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["tail", "task-board.md"];
    if !extra.contains(&"-n") {
        args.extend(["-n", "1000"]);
    }
    args.extend_from_slice(extra);
    let out = sb.command(&args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("── "))
        .map(str::to_owned)
        .collect()
}

/// Text with the ANSI colour sequences and carriage returns taken out.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn stop(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

#[test]
fn run_on_a_terminal_prints_what_tail_prints_coloured() {
    if Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        support::skip("`script` (util-linux) is not installed: no pseudo-terminal");
        return;
    }
    let sb = Sandbox::new("term-pty");
    failing_board(&sb);
    let shown = sb.path("terminal.out");
    let cmd = format!("{} run task-board.md", env!("CARGO_BIN_EXE_taskboard"));
    let mut script = Proc(
        Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .current_dir(&sb.dir)
            .env_remove("NO_COLOR")
            .env("TASKBOARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&shown).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = until_deadlettered(&sb);
    stop(pid);
    sb.wait_until("the runtime to stop", |s| s.count("runtime_stopped") == 1);
    script.wait_exit();
    let raw = std::fs::read_to_string(&shown).unwrap();

    assert!(!raw.contains("INFO {") && !raw.contains("INFO"), "{raw}");
    assert!(!raw.contains("Some("), "{raw}");
    assert!(raw.contains('\x1b'), "no colour on a terminal: {raw}");
    // The deadletter is red, as in `tail`.
    assert!(
        raw.lines()
            .any(|l| l.contains("\x1b[31mtask_deadlettered") && l.contains("A-1")),
        "{raw}"
    );
    let config = sb.path("taskboard.toml");
    let plain = strip_ansi(&raw);
    assert!(
        plain.contains(&format!(
            "taskboard run started: board {}, config {}",
            sb.board.display(),
            config.display()
        )),
        "{plain}"
    );
    // Every line `tail` shows is on the terminal as it is, in the same order; no `pass`.
    let lines: Vec<&str> = plain.lines().collect();
    assert!(!lines.iter().any(|l| l.contains(" pass ")), "{plain}");
    let mut at = 0;
    for want in tail_lines(&sb, &[]) {
        match lines[at..].iter().position(|l| *l == want) {
            Some(i) => at += i + 1,
            None => panic!("`{want}` is not on the terminal (in order):\n{plain}"),
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("runtime_stopped      run stopped: signal SIGTERM")),
        "{plain}"
    );
}

#[test]
fn run_under_a_pipe_prints_plain_lines_with_a_severity_word() {
    let sb = Sandbox::new("term-pipe");
    failing_board(&sb);
    let logged = sb.path("pipe.err");
    // Colour is not asked away: a pipe alone must be enough.
    let mut run = Proc(
        sb.command(&["run", "task-board.md"])
            .env_remove("NO_COLOR")
            .env("TASKBOARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&logged).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = until_deadlettered(&sb);
    stop(pid);
    sb.wait_until("the runtime to stop", |s| s.count("runtime_stopped") == 1);
    run.wait_exit();
    let text = std::fs::read_to_string(&logged).unwrap();

    assert!(!text.contains('\x1b'), "ANSI codes in a pipe: {text:?}");
    assert!(!text.contains('{') && !text.contains("Some("), "{text}");
    assert!(!text.lines().any(|l| l.contains(" pass ")), "{text}");
    // `tail`'s line with the severity word after the time: red in `tail` is ERROR here.
    let tail = tail_lines(&sb, &[]);
    let with_word = |event: &str, word: &str| {
        let line = tail
            .iter()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("no {event} in tail: {tail:?}"));
        let (time, rest) = line.split_once(' ').unwrap();
        format!("{time} {word:<5} {rest}")
    };
    for (event, word) in [
        ("task_deadlettered", "ERROR"),
        ("task_retry_scheduled", "WARN"),
        ("task_dispatched", "INFO"),
        ("runtime_stopped", "INFO"),
    ] {
        let want = with_word(event, word);
        assert!(text.lines().any(|l| l == want), "`{want}` not in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("INFO  taskboard run started: board ")),
        "{text}"
    );
}

#[test]
fn tail_hides_passes_unless_all_and_leaves_out_empty_fields() {
    let sb = Sandbox::new("term-tail");
    sb.write(
        "events.jsonl",
        concat!(
            r#"{"ts":"2026-11-22T15:25:01.000Z","event":"task_dispatched","task":"A-1","attempt":1,"route":"r","agent":"bot","pid":7}"#,
            "\n",
            r#"{"ts":"2026-11-22T15:25:01.500Z","event":"pass","tasks":1,"duration_us":1500,"dispatched":1}"#,
            "\n",
            r#"{"ts":"2026-11-22T15:25:03.000Z","event":"task_finished","task":"A-1","attempt":1,"exit_code":0,"duration_ms":2000,"outcome":"done","note":"","changed":[],"handoff":null}"#,
            "\n",
            r#"{"ts":"2026-11-22T15:25:03.100Z","event":"pass","tasks":1,"duration_us":900,"dispatched":0}"#,
            "\n",
        ),
    );
    sb.write_board("# Board\n");
    let shown = tail_lines(&sb, &[]);
    assert_eq!(
        shown,
        [
            "15:25:01.000 task_dispatched      A-1 attempt=1 route=r agent=bot pid=7",
            "15:25:03.000 task_finished        A-1 attempt=1 exit=0 2.0s -> done",
        ],
    );
    // `-n` counts what is shown: the two passes do not push the dispatch out.
    assert_eq!(tail_lines(&sb, &["-n", "2"]), shown);
    let all = tail_lines(&sb, &["--all"]);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(
        all[1],
        "15:25:01.500 pass                 tasks=1 dispatched=1 1.5ms"
    );
    // The machine record is never filtered but by --task.
    let json = sb
        .command(&["tail", "task-board.md", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&json.stdout).lines().count(), 4);
}

#[test]
fn a_once_beside_a_serving_run_does_not_read_as_the_service_stopping() {
    let mut sb = Sandbox::new("term-once");
    sb.script("exec.sh", "cat > /dev/null\nexit 0");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n");
    let run = sb.start_run();
    assert_eq!(sb.once(), 0);
    sb.wait_until("the once to stop", |s| s.count("runtime_stopped") == 1);
    let shown = tail_lines(&sb, &[]);
    let stopped: Vec<&String> = shown
        .iter()
        .filter(|l| l.contains("runtime_stopped"))
        .collect();
    assert_eq!(stopped.len(), 1, "{shown:?}");
    assert!(
        stopped[0].ends_with("runtime_stopped      once finished"),
        "{shown:?}"
    );
    assert!(support::pid_alive(run as i32), "the run stopped");
    assert_eq!(sb.stop(run, libc::SIGTERM), Some(0));
    let shown = tail_lines(&sb, &[]);
    assert!(
        shown
            .last()
            .is_some_and(|l| l.ends_with("runtime_stopped      run stopped: signal SIGTERM")),
        "{shown:?}"
    );
}

/// A sandbox whose log holds one deadletter, which `tail` shows in red when it colours.
fn deadletter_log(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.write_board("# Board\n\n## A-1\n- status: failed:exhausted_retries\n");
    sb.write(
        "events.jsonl",
        "{\"ts\":\"2026-11-22T15:25:03.123Z\",\"event\":\"task_deadlettered\",\"task\":\"A-1\",\"attempts\":2,\"path\":\"deadletter/A-1.json\"}\n",
    );
    sb
}

/// `tail`'s output with the colour variables as given (all others removed).
fn tail_with(sb: &Sandbox, vars: &[(&str, &str)]) -> String {
    let mut cmd = sb.command(&["tail", "task-board.md"]);
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "CI"] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn clicolor_force_colours_even_a_pipe_and_no_color_still_wins() {
    let sb = deadletter_log("term-force");
    assert!(!tail_with(&sb, &[]).contains('\x1b'), "a pipe is plain");
    let forced = tail_with(&sb, &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\x1b[31mtask_deadlettered"), "{forced:?}");
    let both = tail_with(&sb, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!both.contains('\x1b'), "{both:?}");
}

#[test]
fn a_dumb_terminal_gets_no_colour() {
    if Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        support::skip("`script` (util-linux) is not installed: no pseudo-terminal");
        return;
    }
    let sb = deadletter_log("term-dumb");
    let on_a_terminal = |term: &str| {
        let shown = sb.path(&format!("tail-{term}.out"));
        let cmd = format!("{} tail task-board.md", env!("CARGO_BIN_EXE_taskboard"));
        let mut script = Proc(
            Command::new("script")
                .args(["-qfec", &cmd, "/dev/null"])
                .current_dir(&sb.dir)
                .env_remove("NO_COLOR")
                .env_remove("CLICOLOR")
                .env_remove("CLICOLOR_FORCE")
                .env_remove("CI")
                .env("TERM", term)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&shown).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        script.wait_exit();
        std::fs::read_to_string(&shown).unwrap()
    };
    let xterm = on_a_terminal("xterm");
    assert!(xterm.contains("\x1b[31mtask_deadlettered"), "{xterm:?}");
    let dumb = on_a_terminal("dumb");
    assert!(dumb.contains("task_deadlettered"), "{dumb:?}");
    assert!(!dumb.contains('\x1b'), "{dumb:?}");
}

#[test]
fn paint_writes_the_plain_ansi_codes_and_nothing_without_colour() {
    use taskboard::cmd::Paint;
    let on = Paint(true);
    assert_eq!(on.red("x"), "\x1b[31mx\x1b[0m");
    assert_eq!(on.yellow("x"), "\x1b[33mx\x1b[0m");
    assert_eq!(on.green("x"), "\x1b[32mx\x1b[0m");
    assert_eq!(on.cyan("x"), "\x1b[36mx\x1b[0m");
    assert_eq!(on.dim("x"), "\x1b[2mx\x1b[0m");
    assert_eq!(on.bold("x"), "\x1b[1mx\x1b[0m");
    assert_eq!(Paint(false).red("x"), "x");
}
