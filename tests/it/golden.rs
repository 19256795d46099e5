//! What `taskboard status`, `show`, `tail` and `stats` print, byte for byte, against expected
//! output files: the text a person reads and the `--json` a script parses.
//!
//! Each folder under `tests/golden/` is one case: a board and what lies beside it (an
//! `events.jsonl`, `handoffs/`, a `.taskboard/` with run folders), a `commands` file naming the
//! commands to run (`<name>: <arguments>`, one a line, `#` for comments), and `<name>.out`, what
//! `taskboard <arguments>` prints. Each command runs in a fresh copy of the folder with colour
//! off (`NO_COLOR=1`; its stdout is a pipe, so colour would be off anyway). The file holds its
//! stdout, then `--- stderr` and what it wrote there when it wrote anything, then `--- exit <code>`
//! when the code is not 0. These commands only read: the copy must be as it was afterwards.
//!
//! Arguments starting with `@tty` run the command on a pseudo-terminal (`script`, from
//! util-linux) without `NO_COLOR`, so it prints in colour as a person sees it; stdout and stderr
//! are one stream there. In its `.out` file each escape character reads `␛` and the terminal's
//! `\r\n` reads `\n`, so the file stays readable; nothing else is changed. Words `NAME=value`
//! before the command set its environment, as in a shell (`@tty NO_COLOR=1 status`).
//!
//! The commands have no option for a fixed "now", so the parts of their output derived from the
//! clock are replaced before the comparison, and only those (see [`normalise`]): a running
//! claim's age (`status`, `show`), and the window `stats` looks at (its bounds and its days). The
//! cases' events lie long before any day these tests run, so that window holds none of them:
//! there `stats` is checked for its layout and its queue. The copy's path, where a command
//! prints it, reads `[DIR]`.
//!
//! For the report over events in its window, arguments starting with `@now=<UTC time>` (only
//! before `stats`, and only in a case without a board) print it as `taskboard stats` would at
//! that time: the case's event logs go, as the command reads them, through the same report
//! builder and renderer, in this process. The binary's own part (reading the files, the exit,
//! the queue counted from a board) is what the cases without `@now` check.
//!
//! `UPDATE_EXPECT=1 cargo test --test it golden::` writes every `.out` file from what the
//! commands print now (a missing one too); review the diff, the files are the specification.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::support::{self, TempDir};

fn cases_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1")
}

/// `(name, arguments)` for each line of a `commands` file.
fn commands(case: &Path) -> Vec<(String, Vec<String>)> {
    let path = case.join("commands");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, args) = l.split_once(':').unwrap_or_else(|| {
                panic!("{}: `{l}` is not `<name>: <arguments>`", path.display())
            });
            let name = name.trim().to_string();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{}: the name `{name}` is not letters, digits and dashes",
                path.display()
            );
            (name, args.split_whitespace().map(String::from).collect())
        })
        .collect()
}

/// Copies the folder `from` into `to`; at the top of a case (`top`), all but its `commands`
/// and `.out` files.
fn copy_case(from: &Path, to: &Path, top: bool) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a folder entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let expectation =
            entry.file_name() == "commands" || src.extension().is_some_and(|e| e == "out");
        if top && expectation {
            continue;
        }
        if entry.file_type().expect("a file type").is_dir() {
            std::fs::create_dir_all(&dst).expect("create a folder");
            copy_case(&src, &dst, false);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
    }
}

/// Runs `taskboard <args>` in `dir` on a pseudo-terminal, without `NO_COLOR` unless `env` sets
/// it; `None` (after saying why) where `script` is missing.
fn on_a_terminal(args: &[String], env: &[(&str, &str)], dir: &Path) -> Option<support::Output> {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        support::skip("`script` (util-linux) is not installed: no pseudo-terminal");
        return None;
    }
    let mut line = shell_quote(env!("CARGO_BIN_EXE_taskboard"));
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let mut out = support::finish(
        std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .env_remove("NO_COLOR")
            .env("TZ", "UTC")
            .env_remove("TASKBOARD_LOG")
            .envs(env.iter().copied()),
    );
    out.stdout = out.stdout.replace("\r\n", "\n").replace('\x1b', "␛");
    Some(out)
}

/// What `taskboard stats <args>` prints (stdout) in `dir` at the time `at`, in colour when
/// `color`: the event logs through the report builder and the text or JSON renderer that
/// `taskboard stats` uses, read as it reads them.
fn stats_at(at: &str, args: &[String], dir: &Path, color: bool) -> Result<support::Output, String> {
    use taskboard::core::report::{Builder, parse_window};
    let now = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| format!("@now={at}: {e}"))?
        .with_timezone(&chrono::Utc);
    if args.first().map(String::as_str) != Some("stats") {
        return Err(format!("@now goes with `stats` only, not {args:?}"));
    }
    if dir.join("task-board.md").exists() {
        return Err(
            "a case with @now has no board: `stats` counts the queue from a board, \
                    which happens outside the report"
                .into(),
        );
    }
    let (mut since, mut json) = ("7d".to_string(), false);
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--json" => json = true,
            "--since" => since = rest.next().ok_or("--since needs a value")?.clone(),
            other => return Err(format!("@now stats takes --since and --json, not {other}")),
        }
    }
    let window = parse_window(&since).map_err(|e| format!("--since {e}"))?;
    let mut builder = Builder::new(now, window);
    let scan = taskboard::shell::event_log::for_each_record_in(dir, |rec| builder.add(rec))
        .map_err(|e| e.to_string())?;
    builder.add_bad_lines(scan.bad_lines);
    let report = builder.finish();
    let stdout = if json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
    } else {
        let text =
            taskboard::cmd::stats::text::render(&report, &since, taskboard::cmd::Paint(color));
        text.replace('\x1b', "␛")
    };
    Ok(support::Output {
        code: 0,
        stdout,
        stderr: String::new(),
    })
}

/// Whether `word` is `NAME=value` (an environment variable's name in capitals).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// `s` as one word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Every file under `dir` (its path inside `dir`) with its bytes, and every folder.
fn tree(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a folder of the copy") {
            let path = entry.expect("a folder entry").path();
            let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
            if path.is_dir() {
                stack.push(path);
                out.push((rel, None));
            } else {
                out.push((rel, Some(std::fs::read(&path).expect("a file of the copy"))));
            }
        }
    }
    out.sort();
    out
}

/// The command's output as its `.out` file holds it.
fn transcript(out: &support::Output) -> String {
    let mut t = out.stdout.clone();
    if !t.is_empty() && !t.ends_with('\n') {
        t.push_str("\n--- no newline at the end of stdout\n");
    }
    if !out.stderr.is_empty() {
        t.push_str("--- stderr\n");
        t.push_str(&out.stderr);
        if !out.stderr.ends_with('\n') {
            t.push_str("\n--- no newline at the end of stderr\n");
        }
    }
    if out.code != 0 {
        let _ = writeln!(t, "--- exit {}", out.code);
    }
    t
}

/// Replaces what depends on the clock, and nothing else, in what `command` printed; and the
/// copy's folder `dir` with `[DIR]`.
fn normalise(command: &str, text: &str, dir: &Path) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[DIR]");
    let rules: &[(&str, &str)] = match command {
        // The age of a running claim: `for 3h20m` or `claimed 5m ahead of this clock` (text),
        // `"age_s":12000` (JSON).
        "status" => &[
            (r"(?m)^(  \S+ +\S+) for [0-9dhms]+  ", "${1} for [AGE]  "),
            (
                r"(?m)^(  \S+ +\S+) claimed [0-9dhms]+ ahead of this clock  ",
                "${1} claimed [AGE] ahead of this clock  ",
            ),
            (r#""age_s":-?[0-9]+"#, r#""age_s":"[AGE]""#),
        ],
        // The same in `running since <time> (3h20m ago)`.
        "show" => &[
            (
                r"(?m)^(running since \S+) \([0-9dhms]+ ago\)",
                "${1} ([AGE] ago)",
            ),
            (
                r"(?m)^(running since \S+) \([0-9dhms]+ ahead of this clock\)",
                "${1} ([AGE] ahead of this clock)",
            ),
            (r#""age_s":-?[0-9]+"#, r#""age_s":"[AGE]""#),
        ],
        // The window ends now: its bounds, and the date of each of its days.
        "stats" => &[
            (
                r"(?m)^(\S*taskboard stats\S*  )\d{4}-\d\d-\d\d \d\d:\d\d:\d\d → \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ",
                "${1}[SINCE] → [NOW] ",
            ),
            (r"(?m)^\d{4}-\d\d-\d\d( +\d+ )", "[DAY]${1}"),
            (r#""now": "[^"]*""#, r#""now": "[NOW]""#),
            (r#""since": "[^"]*""#, r#""since": "[SINCE]""#),
            (r#""date": "[^"]*""#, r#""date": "[DAY]""#),
        ],
        _ => &[],
    };
    for (pattern, with) in rules {
        let re = Regex::new(pattern).expect("a valid pattern");
        text = re.replace_all(&text, *with).into_owned();
    }
    text
}

/// Runs every command of one case; returns what went wrong, one message per command.
fn check_case(case: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let listed = commands(case);
    for (name, args) in &listed {
        let dir = TempDir::new("golden");
        copy_case(case, &dir, true);
        let tty = args.first().is_some_and(|a| a == "@tty");
        let args = &args[usize::from(tty)..];
        let at = args.first().and_then(|a| a.strip_prefix("@now="));
        let args = &args[usize::from(at.is_some())..];
        // `NAME=value` words before the command set its environment, as in a shell.
        let assigned = args.iter().take_while(|a| is_assignment(a)).count();
        let env: Vec<(&str, &str)> = args[..assigned]
            .iter()
            .filter_map(|a| a.split_once('='))
            .collect();
        let args = &args[assigned..];
        let before = tree(dir.path());
        let out = if let Some(at) = at {
            if !env.is_empty() {
                failures.push(format!(
                    "{}: `{name}`: @now takes no environment",
                    case.display()
                ));
                continue;
            }
            match stats_at(at, args, dir.path(), tty) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{}: `{name}`: {e}", case.display()));
                    continue;
                }
            }
        } else if tty {
            match on_a_terminal(args, &env, dir.path()) {
                Some(out) => out,
                None => continue,
            }
        } else {
            support::finish(
                support::bin()
                    .args(args)
                    .current_dir(dir.path())
                    .env("NO_COLOR", "1")
                    .env("TZ", "UTC")
                    .env_remove("TASKBOARD_LOG")
                    .envs(env.iter().copied()),
            )
        };
        // These commands only read: the folder is as it was.
        let after = tree(dir.path());
        if after != before {
            let changed: Vec<String> = before
                .iter()
                .filter(|entry| !after.contains(entry))
                .chain(after.iter().filter(|entry| !before.contains(entry)))
                .map(|(path, _)| path.display().to_string())
                .collect();
            failures.push(format!(
                "`taskboard {}` changed its folder, which it only reads: {}",
                args.join(" "),
                changed.join(", ")
            ));
        }
        // At a fixed time nothing depends on the clock.
        let command = if at.is_some() {
            ""
        } else {
            args.first().map_or("", String::as_str)
        };
        let actual = normalise(command, &transcript(&out), dir.path());
        let path = case.join(format!("{name}.out"));
        if bless() {
            std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "`taskboard {}` differs from {}\n{}\n(if the change is meant, \
                 `UPDATE_EXPECT=1 cargo test --test it golden::` rewrites the file; review the diff)",
                args.join(" "),
                path.display(),
                diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{}: {e}: create it with `UPDATE_EXPECT=1 cargo test --test it golden::`, then \
                 read it: it is what `taskboard {}` prints now",
                path.display(),
                args.join(" ")
            )),
        }
    }
    // An expectation no command produces any more is a leftover, not a check.
    for entry in std::fs::read_dir(case).expect("the case folder") {
        let path = entry.expect("a folder entry").path();
        let Some(stem) = path
            .extension()
            .filter(|e| *e == "out")
            .and(path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        if !listed.iter().any(|(name, _)| name == stem) {
            failures.push(format!(
                "{}: no command in {} is named `{stem}`",
                path.display(),
                case.join("commands").display()
            ));
        }
    }
    failures
}

/// The lines that differ, each marked `-` (expected) or `+` (actual), with the line number.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            if let Some(x) = x {
                let _ = writeln!(out, "{:>4} - {x}", i + 1);
            }
            if let Some(y) = y {
                let _ = writeln!(out, "{:>4} + {y}", i + 1);
            }
        }
    }
    if out.is_empty() {
        out.push_str("(the same lines; the line endings or the final newline differ)\n");
    }
    out
}

#[test]
fn every_command_prints_what_its_case_expects() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_root())
        .expect("tests/golden")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no case under tests/golden");
    let failures: Vec<String> = cases.iter().flat_map(|c| check_case(c)).collect();
    assert!(
        failures.is_empty(),
        "{} of the expected outputs differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn clock_derived_parts_are_all_that_is_normalised() {
    let dir = Path::new("/tmp/x");
    // A title that happens to read like an age stays as it is.
    let status = "  A-1  taskboard for 3h20m  Wait for 5m  done\n  B-2  x  Wait for 5m\n";
    assert_eq!(
        normalise("status", status, dir),
        "  A-1  taskboard for [AGE]  Wait for 5m  done\n  B-2  x  Wait for 5m\n"
    );
    assert_eq!(
        normalise(
            "show",
            "running since 2026-04-20T15:40Z (223d21h ago) by t\n",
            dir
        ),
        "running since 2026-04-20T15:40Z ([AGE] ago) by t\n"
    );
    assert_eq!(
        normalise(
            "stats",
            "␛[1mtaskboard stats␛[0m  2026-11-23 12:54:12 → 2026-11-30 12:54:12 UTC (last 7d)\n",
            dir
        ),
        "␛[1mtaskboard stats␛[0m  [SINCE] → [NOW] UTC (last 7d)\n",
        "in colour too"
    );
    assert_eq!(
        normalise("stats", "  2026-04-20T15:21:37Z  DEMO-6  attempt 1\n", dir),
        "  2026-04-20T15:21:37Z  DEMO-6  attempt 1\n",
        "a failure's own time is kept"
    );
    assert_eq!(
        normalise(
            "tail",
            "15:21:37.042 runtime_started  board=/tmp/x/task-board.md 1h\n",
            dir
        ),
        "15:21:37.042 runtime_started  board=[DIR]/task-board.md 1h\n"
    );
}
