//! The built `taskboard` binary, run in fresh temporary folders: exit codes, output formats,
//! refusals that leave files alone, and `init`.
//!
//! Owns nothing in `src/`; every test creates and removes its own folder under the system
//! temporary directory.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use support::{Output as Run, TempDir as Dir};

/// Runs the binary in `cwd`, polling for its exit with a deadline (a hang is a failure).
fn taskboard(cwd: &Path, args: &[&str]) -> Run {
    support::finish(
        support::bin()
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1"),
    )
}

/// Every entry under `dir` with its size, mtime and content hash, to prove nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let hash = if meta.is_file() && meta.len() < 1 << 20 {
                std::fs::read(&p).expect("read").iter().fold(0u64, |h, &b| {
                    h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
                })
            } else {
                0
            };
            out.insert(p, (meta.len(), meta.modified().ok(), hash));
        }
    }
    out
}

const CLEAN: &str =
    "# Board\n\n## A-1: First\n- status: ready\n\n## A-2: Second\n- status: blocked:task:A-1\n";
const WARN: &str = "## A-1: No status yet\n- owner: me\n";
const ERRORS: &str =
    "## A-1: one\n- status: Ready\n- status: done\n\n## A-1: two\n- status: blocked:task:Z-9\n";

#[test]
fn lint_exit_codes_and_text_format() {
    let dir = Dir::new("lint");
    dir.write("task-board.md", CLEAN);
    let r = taskboard(dir.path(), &["lint"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "0 errors, 0 warnings\n", "")
    );

    dir.write("warn.md", WARN);
    let r = taskboard(dir.path(), &["lint", "warn.md"]);
    assert_eq!(r.code, 0, "warnings alone exit 0: {}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0]
            .starts_with("warn.md:1:4: warning[missing-status]: task `A-1` has no `status` field"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "0 errors, 1 warning");

    dir.write("errors.md", ERRORS);
    let r = taskboard(dir.path(), &["lint", "errors.md"]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..4]
            .iter()
            .map(|l| l.split(": ").take(2).collect::<Vec<_>>().join(": "))
            .collect::<Vec<_>>(),
        [
            "errors.md:2:11: error[unknown-status]",
            "errors.md:3:3: warning[duplicate-field]",
            "errors.md:5:4: error[duplicate-id]",
            "errors.md:6:24: error[broken-dependency]",
        ]
    );
    assert_eq!(lines[4], "3 errors, 1 warning");
    assert!(lines[0].ends_with("statuses are lower case: `ready`"));
    assert!(!r.stdout.contains('\x1b'), "no colour when NO_COLOR is set");
}

#[test]
fn lint_json_is_one_object_per_line() {
    let dir = Dir::new("json");
    dir.write("b.md", ERRORS);
    let r = taskboard(dir.path(), &["lint", "b.md", "--json"]);
    assert_eq!(r.code, 1);
    let objects: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(objects.len(), 4, "no summary line in JSON mode");
    for o in &objects {
        let keys: Vec<&str> = o
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec!["code", "column", "line", "message", "severity", "task"];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
    }
    assert_eq!(
        objects[0],
        serde_json::json!({
            "line": 2, "column": 11, "severity": "error", "code": "unknown-status", "task": "A-1",
            "message": "status `Ready` is not valid: statuses are lower case: `ready`"
        })
    );
    assert_eq!(objects[1]["severity"], "warning");

    dir.write("clean.md", CLEAN);
    let r = taskboard(dir.path(), &["lint", "--json", "clean.md"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

/// Each unreadable board: exit 2, exactly one line on stderr, nothing on stdout, no file
/// created or changed.
#[test]
fn unreadable_boards_are_refused_in_one_line() {
    let dir = Dir::new("unreadable");
    std::fs::create_dir(dir.path().join("folder.md")).expect("mkdir");
    dir.write("latin1.md", b"## A-1: Caf\xe9\n- status: ready\n");
    let sparse = std::fs::File::create(dir.path().join("huge.md")).expect("create");
    sparse.set_len(100 * 1024 * 1024).expect("set_len");
    drop(sparse);

    let cases: &[(&str, &str)] = &[
        ("missing.md", "does not exist"),
        ("folder.md", "is a folder"),
        ("latin1.md", "error[invalid-utf8]"),
        ("huge.md", "at most 64 MiB"),
    ];
    for (board, needle) in cases {
        for args in [
            vec!["lint", board],
            vec!["lint", "--json", board],
            vec!["status", board],
            vec!["status", "--json", board],
        ] {
            let before = snapshot(dir.path());
            let r = taskboard(dir.path(), &args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert_eq!(r.stdout, "", "{args:?}");
            assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
            assert!(r.stderr.ends_with('\n'));
            assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains(board),
                "{args:?}: names the file: {}",
                r.stderr
            );
            assert_eq!(snapshot(dir.path()), before, "{args:?} changed the folder");
        }
    }
    let r = taskboard(dir.path(), &["lint", "latin1.md"]);
    assert!(
        r.stderr.contains("latin1.md:1:12: error[invalid-utf8]") && r.stderr.contains("offset 11"),
        "{}",
        r.stderr
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = Dir::new("fifo");
    let made = Command::new("mkfifo")
        .arg(dir.path().join("pipe.md"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        support::skip("mkfifo is not available (coreutils)");
        return;
    }
    let r = taskboard(dir.path(), &["lint", "pipe.md"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

#[test]
fn lint_checks_routes_against_the_config() {
    let dir = Dir::new("config");
    dir.write("task-board.md", CLEAN);
    // No configuration file: the board alone is linted.
    let r = taskboard(dir.path(), &["lint"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A configuration without the `default` route: ready tasks would never run.
    dir.write("other.toml", "[executors.review]\ncommand = [\"true\"]\n");
    let r = taskboard(dir.path(), &["lint", "--config", "other.toml"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("error[unknown-route]"), "{}", r.stdout);
    assert!(r.stdout.contains("(configured: review)"), "{}", r.stdout);
    // The same config found beside the board.
    dir.write(
        "taskboard.toml",
        "[executors.review]\ncommand = [\"true\"]\n",
    );
    assert_eq!(taskboard(dir.path(), &["lint"]).code, 1);
    // A named config that is missing or invalid: one line, exit 3.
    for (args, file) in [
        (vec!["lint", "--config", "missing.toml"], None),
        (
            vec!["lint", "--config", "bad.toml"],
            Some("[runtime]\nmax_parallel = \"x\"\n"),
        ),
    ] {
        if let Some(text) = file {
            dir.write("bad.toml", text);
        }
        let r = taskboard(dir.path(), &args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
}

const STATUS_BOARD: &str = "# Board\n\n## S-1: Build\n- status: running:agent-a:2026-04-20T12:48Z\n\n## S-2: Review\n- status: blocked:task:S-1,S-9\n\n## S-3: Decide\n- status: blocked:siyao:send-brief\n\n## S-4: Deploy\n- status: failed:exit_3\n\n## S-5: Typo\n- status: Done\n\n## S-6: Ship\n- status: ready\n\n## S-7: Old\n- status: done\n\n## S-8: Later\n- status: blocked:retry:2026-04-20T16:10Z\n";

#[test]
fn status_text_lists_what_needs_attention() {
    let dir = Dir::new("status");
    dir.write("task-board.md", STATUS_BOARD);
    let r = taskboard(dir.path(), &["status"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let first = r.stdout.lines().next().expect("a counts line");
    assert_eq!(
        first,
        "task-board.md: 1 ready, 1 running, 3 blocked, 1 done, 1 failed, 1 invalid (8 tasks)"
    );
    for needle in [
        "\nrunning\n  S-1  agent-a for ",
        "\nblocked\n",
        "  S-2  waits on S-1 (running), S-9 (not on the board)  Review",
        "  S-3  waits on siyao: send-brief  Decide",
        "  S-8  retries at 2026-04-20T16:10Z  Later",
        "\nfailed\n  S-4  exit_3  Deploy",
        "\ninvalid\n  S-5  status `Done`: ",
    ] {
        assert!(
            r.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("S-6"), "ready tasks need no attention");
    assert!(!r.stdout.contains('\x1b'));
}

#[test]
fn status_json_has_the_documented_shape() {
    let dir = Dir::new("status-json");
    dir.write("b.md", STATUS_BOARD);
    let r = taskboard(dir.path(), &["status", "--json", "b.md"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["board"], "b.md");
    assert_eq!(
        v["counts"],
        serde_json::json!({"ready":1,"running":1,"blocked":3,"done":1,"failed":1,"invalid":1,"none":0})
    );
    let tasks = v["tasks"].as_array().expect("tasks");
    let ids: Vec<&str> = tasks
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["S-1", "S-2", "S-3", "S-4", "S-5", "S-6", "S-7", "S-8"]
    );
    for t in tasks {
        for key in ["id", "title", "state", "status", "line"] {
            assert!(t.get(key).is_some(), "{key} missing in {t}");
        }
    }
    let s1 = &tasks[0];
    assert_eq!(
        (&s1["state"], &s1["agent"], &s1["since"]),
        (
            &"running".into(),
            &"agent-a".into(),
            &"2026-04-20T12:48Z".into()
        )
    );
    assert!(s1["age_s"].as_i64().expect("age_s") > 0);
    assert_eq!(s1["line"], 3);
    assert_eq!(
        tasks[1]["waiting_on"],
        serde_json::json!([{"id":"S-1","state":"running"},{"id":"S-9","state":"absent"}])
    );
    assert_eq!(
        (&tasks[2]["who"], &tasks[2]["reason"]),
        (&"siyao".into(), &"send-brief".into())
    );
    assert_eq!(tasks[3]["reason"], "exit_3");
    assert_eq!(
        (&tasks[4]["state"], &tasks[4]["status"]),
        (&"invalid".into(), &"Done".into())
    );
    assert!(tasks[4]["error"].is_string());
    assert_eq!(
        tasks[5].as_object().expect("object").len(),
        5,
        "a ready task has only the common keys"
    );
    assert_eq!(tasks[7]["retry_at"], "2026-04-20T16:10Z");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

const STARTER: [&str; 3] = ["task-board.md", "taskboard.toml", "demo-executor.sh"];

#[test]
fn init_writes_the_starter_files_and_never_overwrites() {
    let dir = Dir::new("init");
    let target = dir.path().join("new/project");
    let r = taskboard(dir.path(), &["init", "new/project"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    for name in STARTER {
        let p = target.join(name);
        assert!(p.is_file(), "{name} not written");
        assert!(std::fs::metadata(&p).expect("metadata").len() > 100);
        assert!(
            r.stdout.contains(&format!("wrote new/project/{name}")),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout.contains("taskboard run new/project/task-board.md"),
        "{}",
        r.stdout
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&target.join("demo-executor.sh")), 0o755);
        assert_eq!(mode(&target.join("task-board.md")) & 0o111, 0);
        assert_eq!(mode(&target.join("taskboard.toml")) & 0o111, 0);
    }

    // The starter board lints clean of errors and summarises.
    let r = taskboard(&target, &["lint"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("error["), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("0 errors")),
        "{}",
        r.stdout
    );
    let r = taskboard(&target, &["status", "--json"]);
    assert_eq!(r.code, 0);

    // A second init refuses and changes nothing.
    let before = snapshot(dir.path());
    let r = taskboard(dir.path(), &["init", "new/project"]);
    assert_eq!(r.code, 5);
    assert_eq!(r.stderr.lines().count(), 1);
    assert!(
        r.stderr.contains("task-board.md already exists"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn init_writes_nothing_when_any_target_exists() {
    for existing in STARTER {
        let dir = Dir::new("init-partial");
        dir.write(existing, "mine\n");
        let before = snapshot(dir.path());
        let r = taskboard(dir.path(), &["init"]);
        assert_eq!(r.code, 5, "{existing}");
        assert!(r.stderr.contains(existing), "{}", r.stderr);
        assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{existing}: init touched the folder"
        );
    }
}

#[test]
fn init_into_a_path_that_is_a_file_fails_cleanly() {
    let dir = Dir::new("init-file");
    dir.write("taken", "x");
    let r = taskboard(dir.path(), &["init", "taken"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    assert_eq!(
        std::fs::read(dir.path().join("taken")).expect("still there"),
        b"x"
    );
}
