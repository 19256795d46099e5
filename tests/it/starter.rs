//! The first hour with taskboard: `init` writes a board that runs nothing until a person says
//! so, a `.gitignore` that keeps the runtime's files out of git without touching a person's
//! lines, and a configuration that tells the truth about executors; read-only commands
//! create nothing.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::Sandbox;

/// Every variable the runtime sets for an executor (checked against a real run below).
const EXECUTOR_ENV: [&str; 8] = [
    "TASKBOARD_TASK_ID",
    "TASKBOARD_TASK_TITLE",
    "TASKBOARD_ATTEMPT",
    "TASKBOARD_ROUTE",
    "TASKBOARD_BOARD",
    "TASKBOARD_RUN_DIR",
    "TASKBOARD_RESULT",
    "TASKBOARD_RUN_ID",
];

/// What init's `.gitignore` holds, one pattern a line.
const IGNORED: [&str; 6] = [
    ".taskboard/",
    "events.jsonl",
    "events.jsonl.lock",
    "events-*.jsonl",
    "deadletter/",
    ".*.taskboard-*.tmp",
];

fn run(sb: &Sandbox, args: &[&str]) -> Output {
    sb.command(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every path under `dir` (relative), with its kind, size and contents for files.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if meta.is_file() {
                format!("file {:?}", std::fs::read(&path).unwrap())
            } else {
                format!("other {:?}", meta.file_type())
            };
            out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), what);
        }
    }
    out
}

fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

/// Replaces the starter's placeholder executor (keeping the starter's configuration) with one
/// that records each task it is run for.
fn record_runs(sb: &Sandbox) {
    sb.script(
        "demo-executor.sh",
        "cat >/dev/null\nprintf '%s\\n' \"$TASKBOARD_TASK_ID\" >> ran.txt\nexit 0",
    );
}

fn ran(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("ran.txt")).unwrap_or_default()
}

#[test]
fn init_writes_a_starter_board_that_runs_nothing() {
    let sb = Sandbox::new("starter-nothing");
    let out = run(&sb, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let board = sb.board_text();
    for line in board.lines() {
        let status = line.trim_start().strip_prefix("- status:").map(str::trim);
        if let Some(status) = status {
            assert!(
                status != "ready" && !status.starts_with("running:"),
                "{line}"
            );
        }
    }
    // It still teaches by example: a person's block, a dependency, a finished task.
    assert!(board.contains("- status: blocked:me:"), "{board}");
    assert!(board.contains("- status: blocked:task:"), "{board}");
    assert!(board.contains("- status: done"), "{board}");

    // Lint-clean against the starter's own configuration.
    let lint = run(&sb, &["lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", stdout(&lint));
    assert_eq!(stdout(&lint).trim(), "0 errors, 0 warnings");

    // A pass over the fresh board starts nothing and writes nothing into it.
    record_runs(&sb);
    assert_eq!(sb.once(), 0);
    assert_eq!(ran(&sb), "");
    assert_eq!(sb.count("task_dispatched"), 0);
    assert_eq!(sb.board_text(), board);

    // The recorder works: once the person finishes the first task, its dependant runs.
    sb.write_board(&board.replacen(
        "- status: blocked:me:choose-an-executor",
        "- status: done",
        1,
    ));
    // One pass promotes the dependant; the next runs it.
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("TASK-2"), "ready");
    assert_eq!(sb.once(), 0);
    assert_eq!(ran(&sb), "TASK-2\n");
    assert_eq!(sb.status_of("TASK-2"), "done");
}

#[test]
fn the_starter_configuration_names_what_an_executor_gets() {
    let sb = Sandbox::new("starter-env");
    assert_eq!(run(&sb, &["init"]).status.code(), Some(0));
    let config = std::fs::read_to_string(sb.path("taskboard.toml")).unwrap();
    for var in EXECUTOR_ENV {
        assert!(config.contains(var), "taskboard.toml does not name {var}");
    }
    assert!(config.contains("work packet"), "{config}");
    assert!(!config.contains("verbatim) on"), "{config}");
    // The recipes can edit files unattended.
    for flag in [
        "\"--permission-mode\", \"acceptEdits\"",
        "\"--dangerously-skip-permissions\"",
        "\"codex\", \"exec\", \"--full-auto\"",
    ] {
        assert!(config.contains(flag), "no {flag} recipe in {config}");
    }

    // The list above is what the runtime really sets: not one more, not one less.
    let sb = Sandbox::new("starter-env-real");
    sb.script(
        "exec.sh",
        "cat >/dev/null\nenv | sed -n 's/^\\(TASKBOARD_[A-Z_]*\\)=.*/\\1/p' | sort > env.txt",
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1: see the environment\n- status: ready\n");
    let out = sb
        .command(&["once", "task-board.md"])
        .env_remove("TASKBOARD_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen: Vec<String> = std::fs::read_to_string(sb.path("env.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected: Vec<String> = EXECUTOR_ENV.iter().map(|v| v.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn init_help_names_every_file_it_writes() {
    let sb = Sandbox::new("starter-help");
    let out = run(&sb, &["init", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for name in [
        "task-board.md",
        "taskboard.toml",
        "demo-executor.sh",
        ".gitignore",
    ] {
        assert!(
            help.contains(name),
            "init --help does not name {name}:\n{help}"
        );
    }
    assert_eq!(tree(&sb.dir), BTreeMap::new(), "--help wrote something");
}

#[test]
fn init_writes_a_gitignore_for_the_runtime_files() {
    let sb = Sandbox::new("starter-gitignore");
    let out = run(&sb, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(sb.path(".gitignore")).unwrap();
    for line in IGNORED {
        assert_eq!(count_lines(&text, line), 1, "{line} in {text}");
    }
    let said = stdout(&out);
    assert!(said.contains("wrote ./.gitignore"), "{said}");
    for what in IGNORED
        .iter()
        .chain(&["handoffs/", "taskboard.toml", "the board"])
    {
        assert!(
            said.contains(what),
            "the report does not mention {what}:\n{said}"
        );
    }

    // git agrees: after a run, only the person's files are left to commit.
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&sb.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    git(&["init", "-q"]);
    sb.write_board(&sb.board_text().replacen(
        "- status: blocked:me:choose-an-executor",
        "- status: done",
        1,
    ));
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("TASK-2"), "done");
    assert!(sb.path(".taskboard").is_dir() && sb.path("events.jsonl").is_file());
    let untracked: Vec<String> = git(&["status", "--porcelain", "--untracked-files=all"])
        .lines()
        .map(|l| l[3..].to_string())
        .filter(|p| !p.starts_with("out/"))
        .collect();
    assert_eq!(
        untracked,
        [
            ".gitignore",
            "demo-executor.sh",
            "handoffs/TASK-2.md",
            "task-board.md",
            "taskboard.toml"
        ]
    );
}

#[test]
fn init_appends_only_the_missing_lines_to_an_existing_gitignore() {
    let sb = Sandbox::new("starter-gitignore-merge");
    // One of init's lines, unrelated ones around it (one with a CRLF ending, a trailing
    // space, a comment naming a pattern), and no newline at the end.
    let mine = "# mine\r\ntarget/\nevents.jsonl\n  *.swp \n# deadletter/\n!keep.log";
    sb.write(".gitignore", mine);
    let out = run(&sb, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(sb.path(".gitignore")).unwrap();
    let added = text
        .strip_prefix(mine)
        .unwrap_or_else(|| panic!("the person's lines changed:\n{text}"));
    assert_eq!(
        added,
        "\n.taskboard/\nevents.jsonl.lock\nevents-*.jsonl\ndeadletter/\n.*.taskboard-*.tmp\n"
    );
    for line in IGNORED {
        assert_eq!(count_lines(&text, line), 1, "{line} in {text}");
    }
    assert!(
        stdout(&out).contains("added 5 lines to ./.gitignore"),
        "{}",
        stdout(&out)
    );

    // A second init refuses (the starter files are there) and adds nothing.
    let before = tree(&sb.dir);
    let again = run(&sb, &["init"]);
    assert_eq!(again.status.code(), Some(5));
    assert_eq!(stderr(&again).lines().count(), 1, "{}", stderr(&again));
    assert_eq!(tree(&sb.dir), before);

    // Even with the starter files gone, a .gitignore that has every line gets none again.
    for name in ["task-board.md", "taskboard.toml", "demo-executor.sh"] {
        std::fs::remove_file(sb.path(name)).unwrap();
    }
    let third = run(&sb, &["init"]);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(
        std::fs::read_to_string(sb.path(".gitignore")).unwrap(),
        text
    );
    assert!(
        !stdout(&third).contains("to ./.gitignore"),
        "{}",
        stdout(&third)
    );
}

#[test]
fn init_refuses_a_gitignore_it_cannot_read_and_writes_nothing() {
    let sb = Sandbox::new("starter-gitignore-dir");
    std::fs::create_dir(sb.path(".gitignore")).unwrap();
    let before = tree(&sb.dir);
    let out = run(&sb, &["init"]);
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(".gitignore") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(tree(&sb.dir), before);
}

/// The read-only commands, each as a person would type it in the board's folder.
const READ_ONLY: [&[&str]; 8] = [
    &["doctor"],
    &["status"],
    &["show", "A-1"],
    &["lint"],
    &["stats"],
    &["tail"],
    &["packet", "A-1"],
    &["diff", "A-1"],
];

#[test]
fn read_only_commands_create_nothing_in_a_fresh_folder() {
    for args in READ_ONLY {
        let sb = Sandbox::new("starter-read-only");
        sb.script("exec.sh", "cat >/dev/null");
        sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
        sb.write_board("# Board\n\n## A-1: first\n- status: ready\n\n## A-2: second\n- status: blocked:task:A-1\n");
        let before = tree(&sb.dir);
        let out = sb
            .command(args)
            .env("HOME", sb.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(tree(&sb.dir), before, "{args:?} changed the folder");
        if args == ["doctor"] {
            // Writable without trying: the first run creates the state folder.
            let said = stdout(&out);
            assert!(said.contains("ok    state: "), "{said}");
        }
    }
}

#[test]
fn read_only_commands_change_nothing_beside_a_board_that_has_run() {
    let sb = Sandbox::new("starter-read-only-ran");
    sb.script("exec.sh", "cat >/dev/null");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1: first\n- status: ready\n");
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("A-1"), "done");
    let before = tree(&sb.dir);
    for args in READ_ONLY {
        let out = sb
            .command(args)
            .env("HOME", sb.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(tree(&sb.dir), before, "{args:?} changed the folder");
    }
}
