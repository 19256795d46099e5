//! Runs on a `workspace = "worktree"` route, end to end with real git: each attempt works in a
//! worktree of its own made from the recorded base commit, the person's checkout is never
//! touched, and everything a run changed is saved (a snapshot under `refs/taskboard/`, a patch
//! and a stat in the run folder) whatever it did: commits, edits, new and deleted files,
//! renames, binary files.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{Sandbox, finish, git};

/// A sandbox whose folder is a git repository on `main` with a few committed files, the board
/// committed too, and the runtime's files ignored.
fn repo_sandbox(name: &str, executors: &str, board: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    git(&sb.dir, &["init", "-q"]);
    sb.write(
        ".gitignore",
        ".taskboard/\nevents.jsonl*\nhandoffs/\n.env\n*.runs\nrun-*.stderr\n",
    );
    sb.write("a.txt", "one\ntwo\nthree\n");
    sb.write(
        "old-name.txt",
        "a file long enough that git finds its rename\nline two\nline three\n",
    );
    sb.write("gone.txt", "to be deleted\n");
    sb.write(".env", "SECRET=kept-out-of-git\n");
    sb.config("", executors);
    sb.write_board(board);
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "start"]);
    sb
}

fn worktree_route(command: &str, extra: &str) -> String {
    format!(
        "[executors.default]\ncommand = [\"./{command}\"]\ntimeout = \"60s\"\nworkspace = \"worktree\"\n{extra}"
    )
}

fn workspace_of(sb: &Sandbox, id: &str, attempt: u32) -> Value {
    let text = std::fs::read_to_string(sb.run_dir(id, attempt).join("workspace.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["repos"][0].clone()
}

fn snapshot_paths(ws: &Value) -> Vec<String> {
    ws["snapshot"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn wait_settled(sb: &Sandbox, ids: &[&str]) {
    sb.wait_until("every run ended and its ending was written", |s| {
        ids.iter().all(|id| {
            s.count_for("task_finished", id) >= 1 && !s.status_of(id).starts_with("running")
        })
    });
}

/// Why the first attempt of `id` ended, as its handoff's headline tells it.
fn outcome_of(sb: &Sandbox, id: &str) -> String {
    let text = std::fs::read_to_string(sb.path(&format!("handoffs/{id}.md"))).unwrap();
    let head = text
        .lines()
        .find(|l| l.starts_with("## Attempt 1 "))
        .unwrap();
    head.rsplit(" · ").next().unwrap().to_string()
}

const AGENT: &str = r#"set -e
echo "$TASKBOARD_TASK_ID" >> "$TASKBOARD_BOARD.runs"
printf 'cwd=%s\nworktree=%s\nbranch=%s\ncommit=%s\nenv=%s\n' "$(pwd)" "$TASKBOARD_WORKTREE" \
  "$TASKBOARD_BASE_BRANCH" "$TASKBOARD_BASE_COMMIT" "$(cat .env 2>/dev/null)" > "$TASKBOARD_RUN_DIR/where"
echo "$TASKBOARD_TASK_ID was here" >> a.txt
git mv old-name.txt new-name.txt
git rm -q gone.txt
printf '\000\001\002binary' > "blob-$TASKBOARD_TASK_ID.bin"
git add -A
git -c user.name=agent -c user.email=agent@example.com commit -qm "work on $TASKBOARD_TASK_ID"
echo "left uncommitted" > "loose-$TASKBOARD_TASK_ID.txt"
"#;

#[test]
fn parallel_runs_each_work_in_their_own_worktree_and_the_persons_checkout_is_untouched() {
    let mut sb = repo_sandbox(
        "iso-parallel",
        &worktree_route("agent.sh", "worktree_include = [\".env\"]\n"),
        "# Board\n\n## A-1: first\n- status: ready\n\n## B-1: second\n- status: ready\n",
    );
    sb.script("agent.sh", AGENT);
    git(&sb.dir, &["add", "agent.sh"]);
    git(&sb.dir, &["commit", "-qm", "agent"]);
    let base = git(&sb.dir, &["rev-parse", "HEAD"]);
    // The person has work of their own in the checkout, uncommitted, while the runs go.
    sb.write("a.txt", "one\ntwo\nthree\nthe person's line\n");
    sb.write("mine.txt", "the person's new file\n");
    sb.start_run();
    wait_settled(&sb, &["A-1", "B-1"]);

    // Every byte of the person's checkout is as they left it.
    assert_eq!(
        std::fs::read_to_string(sb.path("a.txt")).unwrap(),
        "one\ntwo\nthree\nthe person's line\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("mine.txt")).unwrap(),
        "the person's new file\n"
    );
    assert!(sb.path("old-name.txt").exists() && sb.path("gone.txt").exists());
    assert_eq!(
        git(&sb.dir, &["rev-parse", "HEAD"]),
        base,
        "main did not move"
    );
    assert_eq!(git(&sb.dir, &["branch", "--show-current"]), "main");
    // A board the runtime's last writes replaced stays beside it for half a second, in case a
    // late save lands in it (`fsio::LATE_OPEN_GRACE`): the person's status is read once those
    // are gone.
    let status = || git(&sb.dir, &["status", "--porcelain"]);
    crate::support::poll(crate::support::DEADLINE, || {
        !status().contains(".task-board.md.taskboard-")
    });
    assert_eq!(
        status().lines().map(str::trim).collect::<Vec<_>>(),
        ["M a.txt", "M task-board.md", "?? mine.txt"],
        "the worktrees stay out of the person's status"
    );

    for id in ["A-1", "B-1"] {
        let ws = workspace_of(&sb, id, 1);
        let path = ws["path"].as_str().unwrap();
        assert!(path.starts_with(sb.path(".taskboard/").to_str().unwrap()));
        assert_eq!(ws["base_branch"], "main");
        assert_eq!(ws["base_commit"], base.as_str());
        assert_eq!(ws["branch"], format!("taskboard/{id}-1"));
        // It ran in its worktree, told where it was, with the copied `.env`.
        let where_ = std::fs::read_to_string(sb.run_dir(id, 1).join("where")).unwrap();
        assert!(where_.contains(&format!("cwd={path}\n")), "{where_}");
        assert!(where_.contains(&format!("worktree={path}\n")), "{where_}");
        assert!(where_.contains(&format!("commit={base}\n")), "{where_}");
        assert!(where_.contains("branch=main\n"), "{where_}");
        assert!(where_.contains("env=SECRET=kept-out-of-git"), "{where_}");
        // Its snapshot has everything it did, and nothing of the other run's or the person's.
        let mut paths = snapshot_paths(&ws);
        paths.sort();
        let mut want = vec![
            "a.txt".to_string(),
            format!("blob-{id}.bin"),
            "gone.txt".to_string(),
            format!("loose-{id}.txt"),
            "new-name.txt".to_string(),
        ];
        want.sort();
        assert_eq!(paths, want, "{id}");
        let files = ws["snapshot"]["files"].as_array().unwrap();
        let rename = files.iter().find(|f| f["path"] == "new-name.txt").unwrap();
        assert_eq!(rename["change"]["renamed"]["from"], "old-name.txt");
        let blob = files
            .iter()
            .find(|f| f["path"] == format!("blob-{id}.bin"))
            .unwrap();
        assert_eq!(blob["binary"], true);
        // The snapshot is a commit on the base, kept under refs/taskboard/.
        let snap = ws["snapshot"]["commit"].as_str().unwrap();
        let ref_name = format!("refs/taskboard/snapshots/{id}/1");
        assert_eq!(git(&sb.dir, &["rev-parse", &ref_name]), snap);
        assert_eq!(git(&sb.dir, &["rev-parse", &format!("{snap}^1")]), base);
        // The patch applies to the base and gives the snapshot's tree, binary file included.
        let patch = sb.run_dir(id, 1).join("changes.patch");
        let check = sb.path(&format!("check-{id}"));
        git(
            &sb.dir,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                check.to_str().unwrap(),
                &base,
            ],
        );
        git(&check, &["apply", "--index", patch.to_str().unwrap()]);
        assert_eq!(
            git(&check, &["write-tree"]),
            git(&sb.dir, &["rev-parse", &format!("{snap}^{{tree}}")])
        );
        git(
            &sb.dir,
            &["worktree", "remove", "--force", check.to_str().unwrap()],
        );
        // Evidence is the snapshot's: an agent that commits is no mismatch.
        let finished = sb
            .events_named("task_finished")
            .into_iter()
            .find(|e| e["task"] == id)
            .unwrap();
        let mut changed: Vec<String> = finished["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        changed.sort();
        assert_eq!(changed, want);
        let saved = sb.count_for("snapshot_saved", id);
        assert_eq!(saved, 1, "{id}");
        assert_eq!(sb.count_for("workspace_created", id), 1, "{id}");
    }
    assert_eq!(sb.count("evidence_mismatch"), 0);
    let runs = std::fs::read_to_string(sb.path("task-board.md.runs")).unwrap();
    assert_eq!(runs.lines().count(), 2, "each task ran once: {runs}");
}

#[test]
fn a_failing_setup_fails_the_attempt_with_its_reason_and_the_executor_never_runs() {
    let mut sb = repo_sandbox(
        "iso-setup",
        &worktree_route(
            "agent.sh",
            "setup = [\"sh\", \"-c\", \"echo installing; echo no network >&2; exit 3\"]\n",
        ),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.config(
        "max_attempts = 1",
        &worktree_route(
            "agent.sh",
            "setup = [\"sh\", \"-c\", \"echo installing; echo no network >&2; exit 3\"]\n",
        ),
    );
    sb.script("agent.sh", AGENT);
    sb.start_run();
    sb.wait_until("the attempt failed", |s| {
        s.status_of("A-1").starts_with("failed")
    });
    assert_eq!(outcome_of(&sb, "A-1"), "setup_failed");
    assert!(
        !sb.path("task-board.md.runs").exists(),
        "the executor never ran"
    );
    let errors = sb.events_named("error");
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("exit code 3: no network")),
        "{errors:?}"
    );
    let setup_out = sb.run_dir("A-1", 1).join("setup/stdout.log");
    assert_eq!(std::fs::read_to_string(setup_out).unwrap(), "installing\n");
    assert_eq!(sb.count("task_dispatched"), 0);
}

#[test]
fn a_base_branch_that_does_not_exist_fails_the_attempt_and_says_which() {
    let mut sb = repo_sandbox(
        "iso-nobranch",
        &worktree_route("agent.sh", ""),
        "# Board\n\n## A-1: first\n- status: ready\n- base_branch: release-9\n",
    );
    sb.config("", &worktree_route("agent.sh", ""));
    sb.script("agent.sh", AGENT);
    sb.start_run();
    sb.wait_until("the attempt failed", |s| {
        s.status_of("A-1").starts_with("failed")
    });
    assert_eq!(outcome_of(&sb, "A-1"), "no_base_branch");
    // No retry can help until a person acts: the reason is the task's status, at once.
    assert_eq!(sb.status_of("A-1"), "failed:no_base_branch");
    assert_eq!(sb.count_for("task_finished", "A-1"), 1);
    let errors = sb.events_named("error");
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("release-9")),
        "{errors:?}"
    );
    assert!(!sb.path("task-board.md.runs").exists());
}

#[test]
fn a_board_outside_any_repository_fails_the_attempt_with_one_clear_reason() {
    let mut sb = Sandbox::new("iso-norepo");
    sb.script("agent.sh", AGENT);
    sb.config("", &worktree_route("agent.sh", ""));
    sb.write_board("# Board\n\n## A-1: first\n- status: ready\n");
    sb.start_run();
    sb.wait_until("the attempt failed", |s| {
        s.status_of("A-1").starts_with("failed")
    });
    assert_eq!(outcome_of(&sb, "A-1"), "no_repository");
    // No retry can help until a person acts: the reason is the task's status, at once.
    assert_eq!(sb.status_of("A-1"), "failed:no_repository");
    assert_eq!(sb.count_for("task_finished", "A-1"), 1);
    let errors = sb.events_named("error");
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("not in a git repository")),
        "{errors:?}"
    );
}

#[test]
fn a_worktree_deleted_during_the_run_fails_the_attempt_and_loses_nothing_of_the_persons() {
    let mut sb = repo_sandbox(
        "iso-deleted",
        &worktree_route("agent.sh", ""),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.config("max_attempts = 1", &worktree_route("agent.sh", ""));
    // The run removes its own worktree folder, as a person's `rm -rf` would.
    sb.script(
        "agent.sh",
        "echo changed >> a.txt\ncd /\nrm -rf \"$TASKBOARD_WORKTREE\"",
    );
    git(&sb.dir, &["add", "agent.sh"]);
    git(&sb.dir, &["commit", "-qm", "agent"]);
    sb.start_run();
    sb.wait_until("the attempt failed", |s| {
        s.status_of("A-1").starts_with("failed")
    });
    assert_eq!(outcome_of(&sb, "A-1"), "snapshot_failed");
    let errors = sb.events_named("error");
    assert!(
        errors
            .iter()
            .any(|e| e["context"] == "snapshot"
                && e["message"].as_str().unwrap().contains("is gone")),
        "{errors:?}"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );
}

#[test]
fn stopping_the_runtime_while_a_worktree_is_being_prepared_starts_no_executor() {
    let mut sb = repo_sandbox(
        "iso-stop-prep",
        &worktree_route(
            "agent.sh",
            "setup = [\"sh\", \"-c\", \"touch \\\"$TASKBOARD_RUN_DIR/../../setup-started\\\"; sleep 30\"]\n",
        ),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.script("agent.sh", AGENT);
    sb.start_run();
    let started = sb.path(".taskboard/runs/setup-started");
    sb.wait_until("the setup runs", |_| started.exists());
    sb.signal_all(libc::SIGTERM);
    let codes = sb.wait_all();
    assert_eq!(codes, [Some(0)]);
    assert!(
        !sb.path("task-board.md.runs").exists(),
        "the executor never ran"
    );
    assert_eq!(sb.count("task_dispatched"), 0);
    // The attempt was interrupted, not failed: the next start runs it again.
    assert_eq!(sb.count_for("task_interrupted", "A-1"), 1);
    assert_eq!(sb.status_of("A-1"), "ready");
}

#[test]
fn a_review_bounce_goes_on_in_the_same_worktree_and_a_retry_starts_again_from_the_base() {
    // B-1: the review sends attempt 1 back, attempt 2 finds attempt 1's work and finishes it.
    // F-1: attempt 1 fails half-way; attempt 2 starts from a clean base and is told where
    // attempt 1's saved diff is.
    let executors = format!(
        "{}review = \"check\"\n\n[executors.check]\ncommand = [\"./check.sh\"]\n\n[executors.flaky]\ncommand = [\"./flaky.sh\"]\nworkspace = \"worktree\"\n",
        worktree_route("work.sh", "")
    );
    let mut sb = repo_sandbox(
        "iso-bounce",
        &executors,
        "# Board\n\n## B-1: reviewed\n- status: ready\n\n## F-1: flaky\n- status: ready\n- route: flaky\n",
    );
    sb.script(
        "work.sh",
        "echo \"attempt $TASKBOARD_ATTEMPT in $(pwd)\" >> progress.txt",
    );
    // The review accepts only once the work has two attempts in it.
    sb.script(
        "check.sh",
        "if [ \"$(wc -l < progress.txt)\" -ge 2 ]; then exit 0; fi\n\
         echo '{\"status\": \"ready\", \"note\": \"finish it\"}' > \"$TASKBOARD_RESULT\"",
    );
    sb.script(
        "flaky.sh",
        "cat > \"$TASKBOARD_RUN_DIR/packet-seen\"\n\
         ls > \"$TASKBOARD_RUN_DIR/files-seen\"\n\
         echo half-done > half.txt\n\
         [ \"$TASKBOARD_ATTEMPT\" -ge 2 ]",
    );
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "scripts"]);
    sb.start_run();
    sb.wait_until("both tasks' changes wait for approval", |s| {
        s.status_of("B-1") == "awaiting-approval" && s.status_of("F-1") == "awaiting-approval"
    });

    let (one, two) = (workspace_of(&sb, "B-1", 1), workspace_of(&sb, "B-1", 2));
    assert_eq!(
        one["path"], two["path"],
        "the bounced work went on in its worktree"
    );
    assert_eq!(one["base_commit"], two["base_commit"]);
    let progress =
        std::fs::read_to_string(PathBuf::from(two["path"].as_str().unwrap()).join("progress.txt"))
            .unwrap();
    assert_eq!(progress.lines().count(), 2, "{progress}");
    // The second snapshot holds both attempts' work, on the original base.
    assert_eq!(snapshot_paths(&two), ["progress.txt"]);

    let (one, two) = (workspace_of(&sb, "F-1", 1), workspace_of(&sb, "F-1", 2));
    assert_ne!(one["path"], two["path"], "a retry gets a fresh worktree");
    assert_eq!(one["base_commit"], two["base_commit"]);
    let seen = std::fs::read_to_string(sb.run_dir("F-1", 2).join("files-seen")).unwrap();
    assert!(
        !seen.contains("half.txt"),
        "attempt 2 started from the base: {seen}"
    );
    let packet = std::fs::read_to_string(sb.run_dir("F-1", 2).join("packet-seen")).unwrap();
    let patch = sb.run_dir("F-1", 1).join("changes.patch");
    assert!(
        packet.contains(&format!("- **Saved diff:** `{}`", patch.display()))
            && packet.contains("`taskboard diff F-1 --attempt 1`"),
        "{packet}"
    );
    assert!(
        std::fs::read_to_string(&patch)
            .unwrap()
            .contains("+half-done"),
        "the failed attempt's work is in its patch"
    );
}

#[test]
fn after_kill_9_the_restart_saves_what_the_dead_run_left_and_starts_afresh_from_the_base() {
    let mut sb = repo_sandbox(
        "iso-kill9",
        &worktree_route("work.sh", ""),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    // Attempt 1 does half its work and hangs; attempt 2 finishes at once.
    sb.script(
        "work.sh",
        "echo \"$TASKBOARD_ATTEMPT $$\" >> \"$TASKBOARD_BOARD.runs\"\n\
         echo \"work of attempt $TASKBOARD_ATTEMPT\" > partial.txt\n\
         if [ \"$TASKBOARD_ATTEMPT\" = 1 ]; then touch \"$TASKBOARD_BOARD.hung\"; exec sleep 300; fi",
    );
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "script"]);
    sb.start_run();
    let hung = sb.path("task-board.md.hung");
    sb.wait_until("attempt 1 hangs", |_| hung.exists());
    sb.kill9_all();
    sb.start_run();
    sb.wait_until("its change waits for approval", |s| {
        s.status_of("A-1") == "awaiting-approval"
    });

    let runs = std::fs::read_to_string(sb.path("task-board.md.runs")).unwrap();
    let attempts: Vec<&str> = runs.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(attempts, ["1", "2"], "{runs}");
    // Attempt 1's process did not outlive its runtime's recovery.
    let pid1: i32 = runs
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(!crate::support::pid_alive(pid1));
    // What attempt 1 left is saved under its own ref, and attempt 2 started from the base.
    let one = workspace_of(&sb, "A-1", 1);
    assert_eq!(snapshot_paths(&one), ["partial.txt"]);
    let saved = git(
        &sb.dir,
        &["show", "refs/taskboard/snapshots/A-1/1:partial.txt"],
    );
    assert_eq!(saved, "work of attempt 1");
    let two = workspace_of(&sb, "A-1", 2);
    assert_ne!(one["path"], two["path"]);
    assert_eq!(one["base_commit"], two["base_commit"]);
    let saved = git(
        &sb.dir,
        &["show", "refs/taskboard/snapshots/A-1/2:partial.txt"],
    );
    assert_eq!(saved, "work of attempt 2");
}

#[test]
fn doctor_reports_the_worktree_route_the_disk_its_worktrees_use_and_what_is_left_over() {
    let mut sb = repo_sandbox(
        "iso-doctor",
        &worktree_route("work.sh", "base_branch = \"main\"\n"),
        "# Board\n\n## A-1: first\n- status: ready\n\n## B-1: second\n- status: ready\n",
    );
    sb.script("work.sh", "echo work > work.txt");
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "script"]);
    sb.start_run();
    wait_settled(&sb, &["A-1", "B-1"]);
    let doctor = |sb: &Sandbox| finish(&mut sb.command(&["doctor"])).stdout;
    let out = doctor(&sb);
    assert!(
        out.contains(&format!(
            "ok    worktree route `default`: repository {}, base branch main\n",
            sb.dir.display()
        )),
        "{out}"
    );
    let line = out.lines().find(|l| l.contains("worktrees:")).unwrap();
    assert!(
        line.starts_with("ok    worktrees: 2 worktrees using "),
        "{line}"
    );

    // A folder no attempt made, and a worktree git was told to forget.
    std::fs::create_dir_all(sb.path(".taskboard/worktrees/stray")).unwrap();
    let a = workspace_of(&sb, "A-1", 1);
    git(
        &sb.dir,
        &["worktree", "unlock", a["path"].as_str().unwrap()],
    );
    git(
        &sb.dir,
        &["worktree", "remove", "--force", a["path"].as_str().unwrap()],
    );
    std::fs::create_dir_all(a["path"].as_str().unwrap()).unwrap();
    let out = doctor(&sb);
    let line = out.lines().find(|l| l.contains("worktrees:")).unwrap();
    assert!(
        line.starts_with("warn  worktrees: 3 worktrees using "),
        "{line}"
    );
    assert!(
        line.contains(
            "left over: A-1-1 (git no longer lists it), stray (no attempt on record made it)"
        ),
        "{line}"
    );

    // A base branch that is not there fails the route's check.
    sb.config(
        "",
        &worktree_route("work.sh", "base_branch = \"release\"\n"),
    );
    let out = finish(&mut sb.command(&["doctor"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("FAIL  worktree route `default`:") && out.stdout.contains("release"),
        "{}",
        out.stdout
    );
}

#[test]
fn gc_removes_a_superseded_worktree_keeps_the_latest_and_never_loses_its_snapshot() {
    let mut sb = repo_sandbox(
        "iso-gc",
        &worktree_route("flaky.sh", ""),
        "# Board\n\n## F-1: flaky\n- status: ready\n",
    );
    sb.script(
        "flaky.sh",
        "echo \"attempt $TASKBOARD_ATTEMPT\" > out.txt\n[ \"$TASKBOARD_ATTEMPT\" -ge 2 ]",
    );
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "script"]);
    sb.start_run();
    sb.wait_until("its change waits for approval", |s| {
        s.status_of("F-1") == "awaiting-approval"
    });
    let (one, two) = (workspace_of(&sb, "F-1", 1), workspace_of(&sb, "F-1", 2));
    let (p1, p2) = (one["path"].as_str().unwrap(), two["path"].as_str().unwrap());

    let dry = finish(&mut sb.command(&["gc", "--dry-run"]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("would remove  F-1-1  (F-1 attempt 1: a newer attempt"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("kept     F-1-2  (F-1 attempt 2: its task's latest attempt"),
        "{}",
        dry.stdout
    );
    assert!(PathBuf::from(p1).exists(), "a dry run removes nothing");

    let out = finish(&mut sb.command(&["gc"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("removed  F-1-1"), "{}", out.stdout);
    assert!(!PathBuf::from(p1).exists() && PathBuf::from(p2).exists());
    // Its branch is gone, its snapshot and patch are not.
    assert!(git(&sb.dir, &["branch", "--list", "taskboard/F-1-1"]).is_empty());
    assert_eq!(
        git(&sb.dir, &["show", "refs/taskboard/snapshots/F-1/1:out.txt"]),
        "attempt 1"
    );
    assert!(sb.run_dir("F-1", 1).join("changes.patch").exists());
    let removed = sb.events_named("workspace_removed");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["task"], "F-1");
    assert_eq!(removed[0]["attempt"], 1);
    assert_eq!(removed[0]["reason"], "superseded");
    // Work left in a worktree after its snapshot is never removed, whatever its age.
    sb.config(
        "",
        &worktree_route("flaky.sh", "keep_worktrees = \"1ms\"\n"),
    );
    std::fs::write(
        PathBuf::from(p2).join("unsaved.txt"),
        "not in any snapshot\n",
    )
    .unwrap();
    let out = finish(&mut sb.command(&["gc"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("failed   F-1-2") && out.stdout.contains("unsaved.txt"),
        "{}",
        out.stdout
    );
    assert!(PathBuf::from(p2).join("unsaved.txt").exists());
}

#[test]
fn a_detached_head_with_no_base_branch_named_fails_the_task_with_that_reason() {
    let mut sb = repo_sandbox(
        "iso-detached",
        &worktree_route("agent.sh", ""),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.script("agent.sh", AGENT);
    git(&sb.dir, &["checkout", "-q", "--detach"]);
    sb.start_run();
    sb.wait_until("failed", |s| s.status_of("A-1").starts_with("failed"));
    assert_eq!(sb.status_of("A-1"), "failed:no_base_branch");
    let errors = sb.events_named("error");
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("detached")),
        "{errors:?}"
    );
    assert!(!sb.path("task-board.md.runs").exists());
}

#[test]
fn kill_9_during_setup_leaves_nothing_a_restart_cannot_take_over() {
    let mut sb = repo_sandbox(
        "iso-kill-setup",
        &worktree_route(
            "work.sh",
            "setup = [\"sh\", \"-c\", \"echo $$ > \\\"$TASKBOARD_BOARD.setup-pid\\\"; [ \\\"$TASKBOARD_ATTEMPT\\\" = 1 ] && exec sleep 300; exit 0\"]\n",
        ),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.script(
        "work.sh",
        "echo \"$TASKBOARD_ATTEMPT\" >> \"$TASKBOARD_BOARD.runs\"\necho done > out.txt",
    );
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "script"]);
    sb.start_run();
    let pid_file = sb.path("task-board.md.setup-pid");
    sb.wait_until("the setup hangs", |_| pid_file.exists());
    let setup_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sb.kill9_all();
    // The setup dies with its runtime.
    assert!(crate::support::poll(crate::support::DEADLINE, || {
        !crate::support::pid_alive(setup_pid)
    }));
    sb.start_run();
    sb.wait_until("the change waits for approval", |s| {
        s.status_of("A-1") == "awaiting-approval"
    });
    let runs = std::fs::read_to_string(sb.path("task-board.md.runs")).unwrap();
    assert_eq!(runs, "2\n", "the executor ran once, for attempt 2");
    let two = workspace_of(&sb, "A-1", 2);
    assert_eq!(snapshot_paths(&two), ["out.txt"]);
    // Attempt 1's worktree is saved (empty) and superseded: gc takes it, not attempt 2's.
    let out = finish(&mut sb.command(&["gc"]));
    assert!(out.stdout.contains("removed  A-1-1"), "{}", out.stdout);
    assert!(out.stdout.contains("kept     A-1-2"), "{}", out.stdout);
}

#[test]
fn without_git_on_the_path_a_worktree_task_fails_at_once_saying_so() {
    let sb = repo_sandbox(
        "iso-nogit",
        &worktree_route("agent.sh", ""),
        "# Board\n\n## A-1: first\n- status: ready\n",
    );
    sb.script("agent.sh", AGENT);
    // A PATH with a shell and nothing else.
    let bin = sb.path("bin-without-git");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let out = finish(sb.command(&["once", "task-board.md"]).env("PATH", &bin));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sb.status_of("A-1"), "failed:no_git");
    let errors = sb.events_named("error");
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("git is not installed")),
        "{errors:?}"
    );
    assert!(!sb.path("task-board.md.runs").exists());
}

#[test]
fn doctor_fails_a_task_whose_base_branch_its_repository_does_not_have() {
    let sb = repo_sandbox(
        "iso-doctor-task",
        &worktree_route("agent.sh", ""),
        "# Board\n\n## A-1: first\n- status: blocked:me:later\n- base_branch: release-9\n\n\
         ## B-1: second\n- status: blocked:me:later\n- base_branch: main\n",
    );
    let out = finish(&mut sb.command(&["doctor"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "FAIL  task base branches: no such branch for A-1 (release-9) — create the branch"
        ),
        "{}",
        out.stdout
    );
    git(&sb.dir, &["branch", "release-9"]);
    let out = finish(&mut sb.command(&["doctor"]));
    assert!(
        out.stdout
            .contains("ok    task base branches: 2 tasks name a base branch; each exists"),
        "{}",
        out.stdout
    );
}
