//! Evidence against real git: a run that edits, or commits, the files it claims matches its
//! claims; editors' side files appearing during a run are nobody's work; a run after which
//! `HEAD` names another history says so instead of guessing; what a person changes while a save
//! settles, after the snapshot the runtime takes as the save begins, is not a run's work, and a
//! branch switch then leaves the run its evidence. And, for the same person reading what went
//! wrong, `doctor` and `lint` agree on a board's findings when the configuration has a typo.

use crate::support;

use std::process::Command;

use support::{Sandbox, git, sh};

fn has_git() -> bool {
    if Command::new("git").arg("--version").output().is_err() {
        support::skip("git is not installed (apt-get install git; .ci/run does)");
        return false;
    }
    true
}

/// A repository holding a README and a `.gitignore` (the test harness keeps the runtime's
/// stderr in the folder, and the flags tests use to pace an executor are not its work), with
/// the board beside them and an executor running `body`.
fn repo(name: &str, body: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.script("exec.sh", &format!("cat >/dev/null\n{body}"));
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.write("README.md", "readme\n");
    sb.write(".gitignore", "run-*.stderr\n*.flag\n");
    git(&sb.dir, &["init", "-q"]);
    git(&sb.dir, &["add", "README.md", ".gitignore"]);
    git(&sb.dir, &["commit", "-qm", "init"]);
    sb
}

const CLAIM_REAL: &str = r#"printf '{"handoff": {"what": "edited", "evidence": {"changed": ["src/real.rs"]}}}' > "$TASKBOARD_RESULT""#;

fn finished_changes(sb: &Sandbox) -> serde_json::Value {
    let fin = sb.events_named("task_finished");
    assert_eq!(fin.len(), 1, "{fin:?}");
    fin[0]["changed"].clone()
}

#[test]
fn a_run_that_edits_what_it_claims_matches() {
    if !has_git() {
        return;
    }
    let mut sb = repo(
        "evidence-edit",
        &format!("mkdir -p src && echo 'fn x() {{}}' > src/real.rs\n{CLAIM_REAL}\nexit 0"),
    );
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(finished_changes(&sb), serde_json::json!(["src/real.rs"]));
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
}

#[test]
fn a_run_that_commits_what_it_claims_matches() {
    if !has_git() {
        return;
    }
    // Commits its file the way aider does: the work tree is clean again when it ends.
    let mut sb = repo(
        "evidence-commit",
        &format!(
            "mkdir -p src && echo 'fn x() {{}}' > src/real.rs\n\
             git add src/real.rs && git -c user.name=t -c user.email=t@t commit -qm work || exit 9\n\
             {CLAIM_REAL}\nexit 0"
        ),
    );
    let start = git(&sb.dir, &["rev-parse", "HEAD"]);
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_ne!(git(&sb.dir, &["rev-parse", "HEAD"]), start, "it committed");
    assert_eq!(git(&sb.dir, &["status", "--porcelain", "src"]), "");
    assert_eq!(finished_changes(&sb), serde_json::json!(["src/real.rs"]));
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
    assert_eq!(sb.errors_in("evidence"), 0);
}

#[test]
fn a_review_of_committed_work_gets_its_diff() {
    if !has_git() {
        return;
    }
    let mut sb = repo(
        "evidence-review",
        &format!(
            "mkdir -p src && echo 'fn committed() {{}}' > src/real.rs\n\
             git add src/real.rs && git -c user.name=t -c user.email=t@t commit -qm work || exit 9\n\
             {CLAIM_REAL}\nexit 0"
        ),
    );
    sb.script("review.sh", "cat >/dev/null\nexit 0");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./exec.sh\"]\nreview = \"review\"\n\n[executors.review]\ncommand = [\"./review.sh\"]\n",
    );
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    let review_dir = std::fs::read_dir(sb.path(".taskboard/runs/A-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("review"))
        .expect("a review run folder");
    let packet = std::fs::read_to_string(review_dir.join("packet.md")).unwrap();
    assert!(packet.contains("+fn committed() {}"), "{packet}");
}

/// The runs one write starts share one snapshot of the work tree, taken before the first of
/// them starts. Each run's changes still hold the file it made; a file a person made before
/// is none of theirs; and a run started by a later write does not count the earlier runs'
/// files as its own (a snapshot kept past its write would).
#[test]
fn runs_started_by_one_write_each_see_their_own_work_and_a_later_run_none_of_it() {
    if !has_git() {
        return;
    }
    let mut sb = repo(
        "evidence-one-write",
        r#"echo "$TASKBOARD_TASK_ID" > "out-$TASKBOARD_TASK_ID.txt"
exit 0"#,
    );
    sb.write("notes.txt", "a person's\n");
    let first = ["A-1", "A-2", "A-3"];
    let tasks = |ids: &[&str], status: &str| -> String {
        ids.iter()
            .map(|id| format!("\n## {id}\n- status: {status}\n"))
            .collect()
    };
    sb.write_board(&format!("# Board\n{}", tasks(&first, "ready")));
    sb.start_run();
    sb.wait_until("the first three done", |s| {
        first.iter().all(|id| s.status_of(id) == "done")
    });
    sb.write_board(&format!(
        "# Board\n{}{}",
        tasks(&first, "done"),
        tasks(&["A-4"], "ready")
    ));
    sb.wait_until("A-4 done", |s| s.status_of("A-4") == "done");
    let finished = sb.events_named("task_finished");
    assert_eq!(finished.len(), 4, "{finished:?}");
    for ev in &finished {
        let id = ev["task"].as_str().expect("a task");
        let changed: Vec<&str> = (ev["changed"].as_array().expect("changes").iter())
            .filter_map(|c| c.as_str())
            .collect();
        if id == "A-4" {
            assert_eq!(changed, ["out-A-4.txt"], "{ev}");
        } else {
            // The three ran at once in one folder: each may count the others' files too.
            assert!(changed.contains(&format!("out-{id}.txt").as_str()), "{ev}");
            assert!(!changed.contains(&"notes.txt"), "{ev}");
            assert!(!changed.contains(&"out-A-4.txt"), "{ev}");
        }
    }
}

#[test]
fn editor_side_files_appearing_during_a_run_are_not_its_work() {
    if !has_git() {
        return;
    }
    // Touches nothing: says it started, then waits (bounded) for the test to let it go.
    let mut sb = repo(
        "evidence-editor",
        "touch started.flag\n\
         i=0; while [ ! -e go.flag ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n\
         exit 0",
    );
    sb.start_run();
    sb.wait_until("the run to start", |s| s.path("started.flag").exists());
    // A person opens the board in vim meanwhile: its swap file, its write probe, a backup.
    sb.write(".task-board.md.swp", "swap");
    sb.write("4913", "");
    sb.write("task-board.md~", "backup");
    sb.write("go.flag", "");
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(finished_changes(&sb), serde_json::json!([]));
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
}

#[test]
fn head_moved_to_another_history_is_said_not_guessed() {
    if !has_git() {
        return;
    }
    // Goes back to the first commit: the start commit is not in that history.
    let mut sb = repo(
        "evidence-elsewhere",
        &format!(
            "git checkout -q --detach HEAD~1 || exit 9\n\
             mkdir -p src && echo 'fn x() {{}}' > src/real.rs\n{CLAIM_REAL}\nexit 0"
        ),
    );
    sb.write("NOTES.md", "notes\n");
    git(&sb.dir, &["add", "NOTES.md"]);
    git(&sb.dir, &["commit", "-qm", "notes"]);
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(finished_changes(&sb), serde_json::Value::Null);
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
    let errors = sb.events_named("error");
    let said = errors
        .iter()
        .find(|e| e["context"] == "evidence")
        .unwrap_or_else(|| panic!("no evidence error in {errors:?}"));
    let message = said["message"].as_str().unwrap_or_default();
    assert!(message.contains("HEAD moved from"), "{message}");
}

/// A repository whose board has A-1 blocked, configured with a long quiet period (time for a
/// person's other changes after the board's save, before the pass), and an executor that
/// writes `src/real.rs`.
fn repo_with_a_slow_quiet_period(name: &str) -> Sandbox {
    let sb = repo(
        name,
        &format!("mkdir -p src && echo 'fn x() {{}}' > src/real.rs\n{CLAIM_REAL}\nexit 0"),
    );
    sb.config(
        "debounce_ms = 2000",
        "[executors.default]\ncommand = [\"./exec.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: blocked:ops:wait\n");
    sb.write("src/person.rs", "// a person's\n");
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "board"]);
    sb
}

/// Waits for the snapshot of the work tree the runtime takes as a save begins.
fn wait_for_early_snapshot(sb: &Sandbox, before: usize) {
    sb.wait_until("the early snapshot", |s| {
        s.stderr().matches("early snapshot taken").count() > before
    });
}

/// An editor's "save all": the board, then the person's other files, while the save's quiet
/// period runs, after the snapshot the runtime takes as the save begins. Only what the run
/// wrote is its work.
#[test]
fn files_a_person_saves_with_the_board_are_not_the_runs_work() {
    if !has_git() {
        return;
    }
    let mut sb = repo_with_a_slow_quiet_period("evidence-save-all");
    sb.start_run();
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    wait_for_early_snapshot(&sb, 0);
    sb.write("src/person.rs", "// a person's, edited\n");
    sb.write("docs/new.md", "a person's new file\n");
    // The premise: all of it before the run started.
    assert_eq!(sb.count("task_dispatched"), 0, "{:?}", sb.events());
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(finished_changes(&sb), serde_json::json!(["src/real.rs"]));
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
    assert!(
        sb.stderr().contains("early snapshot used"),
        "{}",
        sb.stderr()
    );
}

/// A branch switch after the snapshot the runtime took as a save began, in the save's quiet
/// period: that snapshot names the other branch's commit, so it is not used, and the run's
/// work is told from a snapshot at its start, on the branch it ran on.
#[test]
fn a_branch_switch_while_a_save_settles_leaves_the_run_its_evidence() {
    if !has_git() {
        return;
    }
    let mut sb = repo_with_a_slow_quiet_period("evidence-switch");
    // A branch where A-1 is ready, and main moved on from it: two histories.
    git(&sb.dir, &["checkout", "-q", "-b", "ready-branch"]);
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    git(&sb.dir, &["commit", "-qam", "ready"]);
    git(&sb.dir, &["checkout", "-q", "main"]);
    sb.write("NOTES.md", "notes\n");
    git(&sb.dir, &["add", "NOTES.md"]);
    git(&sb.dir, &["commit", "-qm", "notes"]);
    sb.start_run();
    let taken = sb.stderr().matches("early snapshot taken").count();
    sh(&sb.dir, "touch task-board.md");
    wait_for_early_snapshot(&sb, taken);
    git(&sb.dir, &["checkout", "-q", "ready-branch"]);
    assert_eq!(sb.count("task_dispatched"), 0, "{:?}", sb.events());
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(finished_changes(&sb), serde_json::json!(["src/real.rs"]));
    assert_eq!(sb.errors_in("evidence"), 0, "{:?}", sb.events());
    assert!(
        sb.stderr().contains("early snapshot not used"),
        "{}",
        sb.stderr()
    );
}

#[test]
fn doctor_and_lint_agree_on_a_board_when_the_config_has_a_typo() {
    let sb = Sandbox::new("evidence-config-typo");
    sb.script("exec.sh", "cat >/dev/null\nexit 0");
    sb.write(
        "taskboard.toml",
        "[executors.default]\ncomand = [\"./exec.sh\"]\n",
    );
    // Two errors (statuses in the wrong case) and a ready task on the default route, which
    // must not count as an unknown route while the configuration does not load.
    sb.write_board(
        "# Board\n\n## A-1\n- status: Ready\n\n## B-1\n- status: Done\n\n## C-1\n- status: ready\n",
    );

    let doctor = sb
        .command(&["doctor"])
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    let line = |check: &str| {
        stdout
            .lines()
            .find(|l| {
                l.get(6..)
                    .is_some_and(|r| r.starts_with(&format!("{check}: ")))
            })
            .unwrap_or_else(|| panic!("no {check} line in {stdout}"))
            .to_string()
    };
    let config = line("config");
    assert!(
        config.starts_with("FAIL") && config.contains("comand"),
        "{config}"
    );
    let board = line("board");
    assert!(
        board.starts_with("FAIL") && board.contains(": 2 errors,"),
        "{board}"
    );
    assert!(board.contains("fix the config first"), "{board}");

    let lint = sb.command(&["lint"]).output().unwrap();
    let out = String::from_utf8_lossy(&lint.stdout);
    let err = String::from_utf8_lossy(&lint.stderr);
    assert_eq!(lint.status.code(), Some(3), "{out}{err}");
    assert_eq!(out.matches("error[unknown-status]").count(), 2, "{out}");
    assert!(!out.contains("unknown-route"), "{out}");
    assert_eq!(out.lines().last(), Some("2 errors, 0 warnings"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("taskboard.toml") && err.contains("comand"),
        "{err}"
    );

    let json = sb.command(&["lint", "--json"]).output().unwrap();
    assert_eq!(json.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&json.stdout).lines().count(), 2);
    assert_eq!(String::from_utf8_lossy(&json.stderr).lines().count(), 1);
}

/// A task that declares `touches:` and changes a file outside them is reported, naming only
/// that file; a file inside them is not; nothing is reported for what a run did not touch.
#[test]
fn a_run_that_changes_files_outside_its_touches_is_a_mismatch() {
    if !has_git() {
        return;
    }
    let mut sb = repo(
        "evidence-touches",
        "mkdir -p src docs && echo 'fn x() {}' > src/lib.rs && echo notes > docs/notes.md\nexit 0",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n- touches: src/**\n");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    let mismatches = sb.events_named("evidence_mismatch");
    assert_eq!(mismatches.len(), 1, "{:?}", sb.events());
    assert_eq!(
        mismatches[0]["outside_touches"],
        serde_json::json!(["docs/notes.md"])
    );
    assert_eq!(mismatches[0]["attempt"], 1);
    let show = sb.command(&["show", "A-1"]).output().unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("attempt 1: changed outside its touches: [docs/notes.md]"),
        "{text}"
    );
}

#[test]
fn a_run_that_stays_inside_its_touches_is_no_mismatch() {
    if !has_git() {
        return;
    }
    let mut sb = repo(
        "evidence-inside",
        "mkdir -p src/deep && echo 'fn x() {}' > src/deep/lib.rs\nexit 0",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n- touches: src\n");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(sb.count("evidence_mismatch"), 0, "{:?}", sb.events());
}
