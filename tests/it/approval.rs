//! A change an isolated run made waits for a person: `approved` (on the board, or `taskboard
//! approve`) lands it on its base branch exactly once, `rejected:<note>` sends the task back
//! with the note, and nothing a person has in their checkout is ever overwritten. Real git,
//! real runtime.

use std::path::Path;

use serde_json::Value;

use crate::support::{Sandbox, finish, git};

const WORK: &str = r#"echo "line from $TASKBOARD_TASK_ID attempt $TASKBOARD_ATTEMPT" >> "${TARGET:-a.txt}"
echo '{"handoff": {"what": "Added a line"}}' > "$TASKBOARD_RESULT"
"#;

/// A repository holding the board, on `main`, with one worktree route whose executor appends a
/// line to `a.txt` (or `$TARGET`).
fn sandbox(name: &str, board: &str, runtime: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    git(&sb.dir, &["init", "-q"]);
    sb.write(
        ".gitignore",
        ".taskboard/\nevents.jsonl*\nhandoffs/\ndeadletter/\n*.runs\nrun-*.stderr\n",
    );
    sb.write("a.txt", "first\n");
    sb.write("b.txt", "second\n");
    sb.script("work.sh", WORK);
    sb.config(
        runtime,
        "[executors.default]\ncommand = [\"./work.sh\"]\nworkspace = \"worktree\"\n",
    );
    sb.write_board(board);
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "start"]);
    sb
}

fn set_status(sb: &Sandbox, id: &str, status: &str) {
    let text = sb.board_text();
    let mut out = String::new();
    let mut in_task = false;
    for line in text.split_inclusive('\n') {
        if let Some(heading) = line.strip_prefix("## ") {
            in_task = heading.starts_with(&format!("{id}:"));
        }
        if in_task && line.starts_with("- status: ") {
            out.push_str(&format!("- status: {status}\n"));
        } else {
            out.push_str(line);
        }
    }
    sb.write_board(&out);
}

fn waits_for_approval(sb: &Sandbox, id: &str) {
    sb.wait_until("the change waits for approval", |s| {
        s.status_of(id) == "awaiting-approval" && s.count_for("approval_requested", id) >= 1
    });
}

/// Commits on `main` whose message names the task.
fn landed_commits(dir: &Path, id: &str) -> usize {
    git(
        dir,
        &[
            "log",
            "--format=%H",
            &format!("--grep=Taskboard-Task: {id}$"),
            "main",
        ],
    )
    .lines()
    .count()
}

fn worktree_of(sb: &Sandbox, id: &str, attempt: u32) -> String {
    let ev = sb
        .events_named("workspace_created")
        .into_iter()
        .find(|e| e["task"] == id && e["attempt"] == attempt)
        .expect("workspace_created");
    ev["path"].as_str().unwrap().to_string()
}

#[test]
fn approving_on_the_board_lands_the_change_once_and_the_persons_edits_survive() {
    let mut sb = sandbox(
        "approve-board",
        "# Board\n\n## A-1: Add a line\n- status: ready\n",
        "",
    );
    sb.start_run();
    waits_for_approval(&sb, "A-1");
    // Nothing reached main before the person said yes.
    assert_eq!(git(&sb.dir, &["rev-list", "--count", "main"]), "1");
    assert_eq!(
        std::fs::read_to_string(sb.path("a.txt")).unwrap(),
        "first\n"
    );
    let wt = worktree_of(&sb, "A-1", 1);
    // The person has their own edit in a file the change does not touch, and notes on the board.
    sb.write("b.txt", "second, edited by the person\n");
    let noted = sb.board_text() + "\nA note the person added.\n";
    sb.write_board(&noted);
    set_status(&sb, "A-1", "approved");
    sb.wait_until("done", |s| s.status_of("A-1") == "done");

    assert_eq!(landed_commits(&sb.dir, "A-1"), 1);
    let message = git(&sb.dir, &["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message,
        "A-1: Add a line\n\nAdded a line\n\nTaskboard-Task: A-1"
    );
    // The checkout followed the branch; the person's edit and note are as they left them.
    assert_eq!(
        std::fs::read_to_string(sb.path("a.txt")).unwrap(),
        "first\nline from A-1 attempt 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("b.txt")).unwrap(),
        "second, edited by the person\n"
    );
    assert!(sb.board_text().contains("\nA note the person added.\n"));
    let merged = sb.events_named("merged");
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0]["into"], "main");
    assert_eq!(merged[0]["strategy"], "squash");
    assert_eq!(
        merged[0]["commit"],
        git(&sb.dir, &["rev-parse", "main"]).as_str()
    );
    // Its worktree and branch are gone; its snapshot is kept.
    sb.wait_until("the worktree is removed", |s| {
        s.count_for("workspace_removed", "A-1") == 1
    });
    assert!(!Path::new(&wt).exists());
    assert!(git(&sb.dir, &["branch", "--list", "taskboard/*"]).is_empty());
    git(&sb.dir, &["rev-parse", "refs/taskboard/snapshots/A-1/1"]);
    // A stale buffer bringing `approved` or `awaiting-approval` back lands nothing again.
    for stale in ["approved", "awaiting-approval"] {
        set_status(&sb, "A-1", stale);
        sb.wait_until("done again", |s| s.status_of("A-1") == "done");
    }
    assert!(sb.stays_false(std::time::Duration::from_millis(500), |s| {
        s.count("merged") > 1 || s.status_of("A-1") != "done"
    }));
    assert_eq!(landed_commits(&sb.dir, "A-1"), 1);
    let stats = finish(&mut sb.command(&["stats"])).stdout;
    assert!(
        stats.contains("Approvals    1 asked   1 merged   0 refused   0 rejected"),
        "{stats}"
    );
}

#[test]
fn an_approval_is_refused_for_a_dirty_checkout_and_a_conflicting_base_and_the_task_keeps_waiting() {
    let mut sb = sandbox(
        "approve-refused",
        "# Board\n\n## A-1: Add a line\n- status: ready\n",
        "",
    );
    sb.start_run();
    waits_for_approval(&sb, "A-1");
    let tip = git(&sb.dir, &["rev-parse", "main"]);

    // The person has an unsaved edit in the very file the change rewrites.
    sb.write("a.txt", "first\nthe person's own line\n");
    set_status(&sb, "A-1", "approved");
    sb.wait_until("the refusal", |s| s.count_for("merge_refused", "A-1") == 1);
    sb.wait_until("waiting again", |s| {
        s.status_of("A-1") == "awaiting-approval"
    });
    let refused = &sb.events_named("merge_refused")[0];
    assert_eq!(refused["conflicts"], serde_json::json!(["a.txt"]));
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("commit or stash"),
        "{refused}"
    );
    assert_eq!(
        git(&sb.dir, &["rev-parse", "main"]),
        tip,
        "main did not move"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("a.txt")).unwrap(),
        "first\nthe person's own line\n"
    );

    // The person commits their line instead: main moved, and the change conflicts with it.
    git(&sb.dir, &["commit", "-qam", "the person's line"]);
    set_status(&sb, "A-1", "approved");
    sb.wait_until("the second refusal", |s| {
        s.count_for("merge_refused", "A-1") == 2
    });
    sb.wait_until("waiting again", |s| {
        s.status_of("A-1") == "awaiting-approval"
    });
    let refused = &sb.events_named("merge_refused")[1];
    assert_eq!(refused["conflicts"], serde_json::json!(["a.txt"]));
    assert!(
        refused["reason"].as_str().unwrap().contains("main moved"),
        "{refused}"
    );
    assert_eq!(landed_commits(&sb.dir, "A-1"), 0);
    // `show` says it would conflict, naming the file.
    let show = finish(&mut sb.command(&["show", "A-1"])).stdout;
    assert!(show.contains("a.txt"), "{show}");
}

#[test]
fn rejecting_sends_the_task_back_with_the_note_and_counts_the_attempt() {
    let mut sb = sandbox(
        "reject",
        "# Board\n\n## A-1: Add a line\n- status: ready\n",
        "max_attempts = 2",
    );
    sb.script(
        "work.sh",
        &format!("cat > \"$TASKBOARD_RUN_DIR/packet-seen\"\n{WORK}"),
    );
    git(&sb.dir, &["commit", "-qam", "script"]);
    sb.start_run();
    waits_for_approval(&sb, "A-1");
    let wt = worktree_of(&sb, "A-1", 1);
    set_status(&sb, "A-1", "rejected:use b.txt instead");
    sb.wait_until("attempt 2 waits", |s| {
        s.count_for("approval_requested", "A-1") == 2 && s.status_of("A-1") == "awaiting-approval"
    });
    let rejected = sb.events_named("rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["note"], "use b.txt instead");
    assert_eq!(rejected[0]["attempt"], 1);
    assert!(!Path::new(&wt).exists(), "the rejected worktree is removed");
    // Attempt 2 started from the base again, told why.
    let second = sb.run_dir("A-1", 2);
    let packet = std::fs::read_to_string(second.join("packet-seen")).unwrap();
    assert!(
        packet.contains("A person rejected the change: use b.txt instead"),
        "{packet}"
    );
    assert!(
        packet.contains("taskboard diff A-1 --attempt 1"),
        "{packet}"
    );
    let ws: Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("workspace.json")).unwrap())
            .unwrap();
    let patch = std::fs::read_to_string(second.join("changes.patch")).unwrap();
    assert!(
        patch.contains("+line from A-1 attempt 2") && !patch.contains("attempt 1"),
        "{patch}"
    );
    assert_eq!(
        ws["repos"][0]["base_commit"],
        git(&sb.dir, &["rev-parse", "main"]).as_str()
    );

    // The second rejection spends the last attempt: failed, dead-lettered, nothing landed.
    set_status(&sb, "A-1", "rejected");
    // The status is on the board before what follows from it (the dead letter, its event).
    sb.wait_until("dead-lettered", |s| {
        s.count_for("task_deadlettered", "A-1") == 1
    });
    assert_eq!(sb.status_of("A-1"), "failed:exhausted_retries");
    assert!(sb.path("deadletter/A-1.json").exists());
    assert_eq!(landed_commits(&sb.dir, "A-1"), 0);
}

#[test]
fn approved_on_a_task_with_nothing_waiting_lands_nothing_and_says_so_once() {
    let mut sb = sandbox(
        "approve-nothing",
        "# Board\n\n## A-1: Add a line\n- status: approved\n",
        "",
    );
    sb.start_run();
    sb.wait_until("said", |s| {
        s.events_named("error")
            .iter()
            .any(|e| e["context"] == "approval" && e["task"] == "A-1")
    });
    sb.write_board(&(sb.board_text() + "\nMore notes.\n"));
    assert!(sb.stays_false(std::time::Duration::from_millis(400), |s| {
        s.events_named("error")
            .iter()
            .filter(|e| e["context"] == "approval")
            .count()
            > 1
    }));
    assert_eq!(sb.status_of("A-1"), "approved");
    assert_eq!(sb.count("task_dispatched"), 0);
    assert_eq!(git(&sb.dir, &["rev-list", "--count", "main"]), "1");
}

#[test]
fn a_landing_cut_short_after_the_branch_moved_is_finished_by_the_next_start_never_landed_twice() {
    use taskboard::core::config::MergeStrategy;
    use taskboard::shell::landing::{ApprovedLanding, carry_out};
    let mut sb = sandbox(
        "approve-crash",
        "# Board\n\n## A-1: Add a line\n- status: ready\n",
        "",
    );
    sb.start_run();
    waits_for_approval(&sb, "A-1");
    sb.signal_all(libc::SIGTERM);
    assert_eq!(sb.wait_all(), [Some(0)]);
    // What a runtime killed between moving the branch and recording it leaves: the branch
    // moved, the landing noted in the run folder, nothing on record, `approved` on the board.
    let run_dir = sb.run_dir("A-1", 1);
    let landed = carry_out(
        &run_dir,
        &ApprovedLanding {
            id: "A-1",
            title: "Add a line",
            summary: None,
            strategy: MergeStrategy::Squash,
            onto_latest: false,
        },
    )
    .unwrap();
    assert!(run_dir.join("landing.json").exists());
    set_status(&sb, "A-1", "approved");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    assert_eq!(landed_commits(&sb.dir, "A-1"), 1, "landed exactly once");
    assert_eq!(git(&sb.dir, &["rev-parse", "main"]), landed[0].commit);
    let merged = sb.events_named("merged");
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0]["commit"], landed[0].commit.as_str());
    assert!(!run_dir.join("landing.json").exists());
}

#[test]
fn approve_from_the_command_line_says_why_it_refuses_and_lands_onto_the_latest_tip_when_asked() {
    let sb = sandbox(
        "approve-cli",
        "# Board\n\n## A-1: Add a line\n- status: ready\n\n## B-1: Another\n- status: ready\n",
        "",
    );
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("A-1"), "awaiting-approval");
    let wt = worktree_of(&sb, "A-1", 1);
    // main moves under the change, in a file it does not touch.
    sb.write("b.txt", "second, committed by the person\n");
    git(&sb.dir, &["commit", "-qam", "the person's commit"]);
    let tip = git(&sb.dir, &["rev-parse", "main"]);

    let out = finish(&mut sb.command(&["approve", "A-1"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("taskboard: A-1 not landed: main moved")
            && out.stderr.contains("taskboard approve A-1 --onto-latest"),
        "{}",
        out.stderr
    );
    assert_eq!(git(&sb.dir, &["rev-parse", "main"]), tip);
    assert_eq!(sb.status_of("A-1"), "awaiting-approval");
    assert_eq!(sb.count_for("merge_refused", "A-1"), 1);

    let out = finish(&mut sb.command(&["approve", "A-1", "--onto-latest"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("A-1: landed on main as "),
        "{}",
        out.stdout
    );
    assert_eq!(sb.status_of("A-1"), "done");
    assert_eq!(
        git(&sb.dir, &["rev-parse", "main^"]),
        tip,
        "on top of the person's commit"
    );
    assert_eq!(landed_commits(&sb.dir, "A-1"), 1);
    assert_eq!(
        std::fs::read_to_string(sb.path("b.txt")).unwrap(),
        "second, committed by the person\n"
    );
    assert!(!Path::new(&wt).exists());
    assert_eq!(sb.count_for("merged", "A-1"), 1);
    // Approving again finds nothing waiting.
    let again = finish(&mut sb.command(&["approve", "A-1"]));
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("A-1 is done: no change of it waits"),
        "{}",
        again.stderr
    );

    // Rejecting from the command line is the board's `rejected:<note>`.
    let out = finish(&mut sb.command(&["reject", "B-1", "--note", "not like this"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sb.status_of("B-1"), "rejected:not like this");
    // `once` makes one pass: the rejection is carried out, and the next `once` runs attempt 2.
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.count_for("rejected", "B-1"), 1);
    assert_eq!(sb.status_of("B-1"), "ready");
    assert_eq!(sb.once(), 0);
    assert_eq!(
        sb.status_of("B-1"),
        "awaiting-approval",
        "attempt 2 ran and waits"
    );
    assert_eq!(sb.count_for("approval_requested", "B-1"), 2);
}

/// A board beside two repositories, `api` and `web`, each on `main`, both named in
/// `taskboard.toml`; the executor changes a file in each.
fn two_repos(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    for (repo, file) in [("api", "a.txt"), ("web", "w.txt")] {
        let dir = sb.path(repo);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join(file), format!("{repo} start\n")).unwrap();
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-qm", "start"]);
    }
    sb.script(
        "work.sh",
        "echo \"$TASKBOARD_REPOS\" > \"$TASKBOARD_RUN_DIR/repos-seen\"\n\
         pwd > \"$TASKBOARD_RUN_DIR/cwd-seen\"\n\
         echo \"api change by $TASKBOARD_TASK_ID\" >> api/a.txt\n\
         echo \"web change by $TASKBOARD_TASK_ID\" >> web/w.txt",
    );
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\nworkspace = \"worktree\"\n\n\
         [repos.api]\npath = \"api\"\n\n[repos.web]\npath = \"web\"\nbase_branch = \"main\"\n",
    );
    sb.write_board("# Board\n\n## M-1: Both\n- status: ready\n- repos: api, web\n");
    sb
}

#[test]
fn a_change_across_two_repositories_lands_in_both_or_neither() {
    let mut sb = two_repos("approve-multi");
    let (api, web) = (sb.path("api"), sb.path("web"));
    let (api0, web0) = (
        git(&api, &["rev-parse", "main"]),
        git(&web, &["rev-parse", "main"]),
    );
    sb.start_run();
    waits_for_approval(&sb, "M-1");
    let created = sb.events_named("workspace_created");
    let names: Vec<&str> = created
        .iter()
        .map(|e| e["repo"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web"]);
    let home = Path::new(created[0]["path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let run_dir = sb.run_dir("M-1", 1);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("repos-seen")).unwrap(),
        "api web\n"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("cwd-seen"))
            .unwrap()
            .trim(),
        home.display().to_string()
    );
    let finished = &sb.events_named("task_finished")[0];
    assert_eq!(
        finished["changed"],
        serde_json::json!(["api/a.txt", "web/w.txt"])
    );
    assert_eq!(sb.count_for("snapshot_saved", "M-1"), 2);
    assert!(
        std::fs::read_to_string(run_dir.join("changes.api.patch"))
            .unwrap()
            .contains("+api change")
    );
    assert!(
        std::fs::read_to_string(run_dir.join("changes.web.patch"))
            .unwrap()
            .contains("+web change")
    );

    // web's checkout has the person's edit in the very file: web refuses, so api is put back.
    std::fs::write(web.join("w.txt"), "web start\nthe person's line\n").unwrap();
    set_status(&sb, "M-1", "approved");
    sb.wait_until("refused", |s| s.count_for("merge_refused", "M-1") == 1);
    sb.wait_until("waiting again", |s| {
        s.status_of("M-1") == "awaiting-approval"
    });
    let refused = &sb.events_named("merge_refused")[0];
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("repository `web`:"),
        "{refused}"
    );
    assert_eq!(git(&api, &["rev-parse", "main"]), api0, "api was put back");
    assert_eq!(git(&web, &["rev-parse", "main"]), web0);
    assert_eq!(
        std::fs::read_to_string(api.join("a.txt")).unwrap(),
        "api start\n"
    );
    assert_eq!(
        std::fs::read_to_string(web.join("w.txt")).unwrap(),
        "web start\nthe person's line\n"
    );

    // The person puts their edit away: both land.
    git(&web, &["checkout", "-q", "w.txt"]);
    set_status(&sb, "M-1", "approved");
    sb.wait_until("done", |s| s.status_of("M-1") == "done");
    assert_eq!(landed_commits(&api, "M-1"), 1);
    assert_eq!(landed_commits(&web, "M-1"), 1);
    assert_eq!(git(&api, &["rev-parse", "main^"]), api0);
    assert_eq!(
        std::fs::read_to_string(web.join("w.txt")).unwrap(),
        "web start\nweb change by M-1\n"
    );
    let merged: Vec<String> = sb
        .events_named("merged")
        .iter()
        .map(|e| e["repo"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(merged, ["api", "web"]);
    sb.wait_until("removed", |s| s.count_for("workspace_removed", "M-1") == 2);
    assert!(!home.exists(), "the folder of both worktrees is gone");
}

#[test]
fn a_landing_across_repositories_found_half_done_is_put_back_and_landed_whole_once() {
    use taskboard::core::config::MergeStrategy;
    use taskboard::shell::landing::{ApprovedLanding, carry_out};
    let sb = two_repos("approve-half");
    assert_eq!(sb.once(), 0);
    assert_eq!(sb.status_of("M-1"), "awaiting-approval");
    let (api, web) = (sb.path("api"), sb.path("web"));
    let web0 = git(&web, &["rev-parse", "main"]);
    let run_dir = sb.run_dir("M-1", 1);
    let approval = ApprovedLanding {
        id: "M-1",
        title: "Both",
        summary: None,
        strategy: MergeStrategy::Squash,
        onto_latest: false,
    };
    // A landing that moved api and was killed before web: web is put back where it was.
    carry_out(&run_dir, &approval).unwrap();
    git(&web, &["reset", "-q", "--hard", &web0]);
    let landed = carry_out(&run_dir, &approval).unwrap();
    assert_eq!(landed.len(), 2);
    assert_eq!(landed_commits(&api, "M-1"), 1, "api landed once, not twice");
    assert_eq!(landed_commits(&web, "M-1"), 1);
    assert_eq!(git(&api, &["rev-parse", "main"]), landed[0].commit);
    assert_eq!(git(&web, &["rev-parse", "main"]), landed[1].commit);
}

#[test]
fn gc_and_doctor_see_each_repository_of_a_task_across_repositories() {
    let sb = two_repos("multi-gc");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\nworkspace = \"worktree\"\nkeep_worktrees = \"1ms\"\n\n\
         [repos.api]\npath = \"api\"\n\n[repos.web]\npath = \"web\"\n",
    );
    assert_eq!(sb.once(), 0);
    let doctor = finish(&mut sb.command(&["doctor"])).stdout;
    let line = doctor.lines().find(|l| l.contains("worktrees:")).unwrap();
    assert!(
        line.starts_with("ok    worktrees: 2 worktrees using "),
        "{line}"
    );
    // Once they are older than keep_worktrees, both are due.
    let due = crate::support::poll(crate::support::DEADLINE, || {
        let dry = finish(&mut sb.command(&["gc", "--dry-run"])).stdout;
        dry.contains("would remove  api") && dry.contains("would remove  web")
    });
    assert!(due);
    let out = finish(&mut sb.command(&["gc"]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("removed  api  (M-1 attempt 1: older than"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("removed  web  (M-1 attempt 1: older than"),
        "{}",
        out.stdout
    );
    let again = finish(&mut sb.command(&["gc"]));
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert!(
        !sb.path(".taskboard/worktrees/M-1-1").exists() || again.stdout.contains("removed  M-1-1"),
        "{}",
        again.stdout
    );
    git(
        &sb.path("api"),
        &["rev-parse", "refs/taskboard/snapshots/M-1/1"],
    );
    git(
        &sb.path("web"),
        &["rev-parse", "refs/taskboard/snapshots/M-1/1"],
    );
}
