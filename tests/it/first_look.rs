//! What a person sees first: `status` on a board with tasks that can never run, `--help` for
//! every argument, and what `service install --print` tells them to type next.
//!
//! Each test runs the built binary in its own sandbox folder.

use crate::support;

use serde_json::Value;
use support::Sandbox;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn taskboard(sb: &Sandbox, args: &[&str]) -> Out {
    let out = sb.command(args).output().expect("run taskboard");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Two tasks sharing an ID, an ID that would escape a folder, a heading with no ID, all marked
/// `ready`, and one task that really is ready.
const NEVER_RUNS: &str = "# Board\n\n## A-1: first\n- status: ready\n\n## A-1: pasted copy\n- status: ready\n\n## ../../etc: escape\n- status: ready\n\n## Fix the login\n- status: ready\n\n## C-1: real\n- status: ready\n";

#[test]
fn status_never_counts_a_task_that_cannot_run_as_ready() {
    let sb = Sandbox::new("first-look-status");
    sb.write_board(NEVER_RUNS);

    let text = taskboard(&sb, &["status"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let header = text.stdout.lines().next().expect("a counts line");
    assert!(
        header.ends_with(": 1 ready, 0 running, 0 blocked, 0 done, 0 failed, 4 invalid (5 tasks)"),
        "{}",
        text.stdout
    );
    let invalid = text
        .stdout
        .split("\ninvalid\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no invalid section in\n{}", text.stdout));
    assert_eq!(invalid.lines().count(), 4, "{}", text.stdout);
    assert_eq!(
        invalid.matches("duplicate ID").count(),
        2,
        "{}",
        text.stdout
    );
    assert!(invalid.contains("(unsafe)") && invalid.contains("(malformed)"));

    let json = taskboard(&sb, &["status", "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert_eq!(v["counts"]["ready"], 1, "{v}");
    assert_eq!(v["counts"]["invalid"], 4, "{v}");
    let tasks = v["tasks"].as_array().unwrap();
    let states: Vec<(&str, &str, Option<&str>)> = tasks
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["id_problem"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("A-1", "invalid", Some("duplicate")),
            ("A-1", "invalid", Some("duplicate")),
            ("../../etc", "invalid", Some("unsafe")),
            ("Fix", "invalid", Some("malformed")),
            ("C-1", "ready", None),
        ]
    );
    assert!(tasks.iter().all(|t| t["status"] == "ready"), "{v}");

    // The queue `stats` counts from the board agrees.
    let stats = taskboard(&sb, &["stats", "--json"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let s: Value = serde_json::from_str(&stats.stdout).expect("one JSON document");
    assert_eq!(s["queue"]["source"], "board", "{s}");
    assert_eq!(s["queue"]["ready"], 1, "{s}");
}

#[test]
fn retry_help_names_every_status_it_accepts() {
    let sb = Sandbox::new("first-look-retry-help");
    let help = taskboard(&sb, &["retry", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    // What `retry` sets back to ready, and what it refuses.
    for needle in [
        "failed",
        "done",
        "blocked:retry",
        "person-blocked",
        "already ready",
        "running task",
        "blocked:task",
    ] {
        assert!(
            help.stdout.contains(needle),
            "retry --help does not mention {needle:?}:\n{}",
            help.stdout
        );
    }
    assert!(
        !help.stdout.contains("a failed task back"),
        "{}",
        help.stdout
    );
}

#[test]
fn flags_that_were_blank_in_help_are_described() {
    let sb = Sandbox::new("first-look-help");
    for (args, flag) in [
        (&["once", "--help"][..], "--config"),
        (&["lint", "--help"][..], "--config"),
        (&["service", "uninstall", "--help"][..], "--launchd"),
        (&["service", "uninstall", "--help"][..], "--systemd"),
    ] {
        let help = taskboard(&sb, args);
        assert_eq!(help.code, 0, "{}", help.stderr);
        let line = help
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("no {flag} in {args:?}:\n{}", help.stdout));
        let described = line.trim_start()[flag.len()..]
            .trim_start_matches(" <PATH>")
            .trim();
        assert!(
            !described.is_empty(),
            "{args:?}: {line:?} has no description"
        );
    }
}

/// `service install --print` for `manager`, with a repeating PATH and HOME inside the sandbox.
fn print_units(sb: &Sandbox, manager: &str) -> String {
    let out = sb
        .command(&["service", "install", manager, "--print", "task-board.md"])
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .env(
            "PATH",
            "/opt/tools/bin:/usr/bin:/bin:/opt/tools/bin:/usr/bin",
        )
        .output()
        .expect("run taskboard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn service_print_ends_with_the_load_command_and_a_path_without_repeats() {
    let sb = Sandbox::new("first-look-service");
    sb.write_board("# Board\n\n## A-1\n- status: done\n");

    let systemd = print_units(&sb, "--systemd");
    let units: Vec<&str> = systemd
        .lines()
        .filter_map(|l| l.strip_prefix("# /"))
        .filter_map(|p| p.rsplit('/').next())
        .collect();
    assert_eq!(units.len(), 3, "{systemd}");
    let tail: Vec<&str> = systemd.lines().rev().take(2).collect();
    assert_eq!(tail[1], "# Load them with:", "{systemd}");
    assert_eq!(
        tail[0],
        format!(
            "#   systemctl --user daemon-reload && systemctl --user enable --now {} {}",
            units[0], units[2]
        ),
        "{systemd}"
    );
    let paths: Vec<&str> = systemd
        .lines()
        .filter(|l| l.starts_with("Environment=\"PATH="))
        .collect();
    assert_eq!(paths.len(), 2, "{systemd}");
    for line in paths {
        assert_eq!(line, "Environment=\"PATH=/opt/tools/bin:/usr/bin:/bin\"");
    }

    let launchd = print_units(&sb, "--launchd");
    let plists: Vec<&str> = launchd
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|p| p.starts_with('/') && p.ends_with(".plist"))
        .collect();
    assert_eq!(plists.len(), 2, "{launchd}");
    let last = launchd.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "#   launchctl bootstrap gui/$(id -u) {} {}",
            plists[0], plists[1]
        ),
        "{launchd}"
    );
    assert_eq!(
        launchd
            .matches("<string>/opt/tools/bin:/usr/bin:/bin</string>")
            .count(),
        2,
        "{launchd}"
    );
}
