//! End-to-end tests of routes beyond a status flip: reported cost, caps and daily budgets, work
//! packets, handoffs, evidence from git, and the review gate.

use crate::support;

use std::process::Command;

use support::{Sandbox, git};

/// An executor that reports a cost and a handoff, and fails when the task says so.
fn reporting_executor(sb: &Sandbox, cost: &str) -> String {
    sb.script(
        "exec.sh",
        &format!(
            r#"packet=$(cat)
printf '%s' "$packet" > "$TASKBOARD_RUN_DIR/stdin.md"
case "$packet" in *"sim: fail"*) echo "it broke on attempt $TASKBOARD_ATTEMPT" >&2; exit 4;; esac
printf '{{"cost_usd": {cost}, "tokens_in": 100, "tokens_out": 20, "handoff": {{"what": "did %s", "next": "ship it"}}}}' "$TASKBOARD_TASK_ID" > "$TASKBOARD_RESULT"
exit 0"#
        ),
    );
    "command = [\"./exec.sh\"]\n".into()
}

#[test]
fn handoffs_on_success_and_failure_and_packets_remember_attempts() {
    let mut sb = Sandbox::new("handoff");
    let cmd = reporting_executor(&sb, "0.05");
    sb.config("max_attempts = 2", &format!("[executors.default]\n{cmd}"));
    sb.write_board("# Board\n\n## A-1: works\n- status: ready\n\n## B-1: breaks\n- status: ready\n- sim: fail\n");
    sb.start_run();
    // The dead letter follows the board write that shows it: wait for both.
    sb.wait_until("A-1 done, B-1 failed and dead-lettered", |s| {
        s.status_of("A-1") == "done"
            && s.status_of("B-1") == "failed:exhausted_retries"
            && s.count_for("task_deadlettered", "B-1") == 1
    });
    let a = std::fs::read_to_string(sb.path("handoffs/A-1.md")).unwrap();
    assert!(a.starts_with("# Handoffs: A-1\n"), "{a}");
    assert!(a.contains("## Attempt 1 · "), "{a}");
    assert!(a.contains("- **What:** did A-1\n"), "{a}");
    assert!(a.contains("- **Next:** ship it\n"), "{a}");
    assert!(a.contains("$0.05"), "{a}");
    // A failure is a breadcrumb too: its exit code and stderr tail.
    let b = std::fs::read_to_string(sb.path("handoffs/B-1.md")).unwrap();
    assert_eq!(b.matches("## Attempt ").count(), 2, "{b}");
    assert!(b.contains("exit 4"), "{b}");
    assert!(b.contains("it broke on attempt 2"), "{b}");
    // The second attempt's packet carried the first attempt's handoff.
    let runs = sb.path(".taskboard/runs/B-1");
    let second = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("2-"))
        .unwrap();
    let packet = std::fs::read_to_string(second.join("stdin.md")).unwrap();
    assert!(
        packet.contains("# Earlier attempts\n\n### Attempt 1 · "),
        "{packet}"
    );
    assert!(packet.contains("it broke on attempt 1"), "{packet}");
    // task_finished names the handoff and the reported cost and tokens.
    let fin = sb.events_named("task_finished");
    let a_fin = fin.iter().find(|e| e["task"] == "A-1").unwrap();
    assert_eq!(a_fin["handoff"], "handoffs/A-1.md");
    assert_eq!(a_fin["cost_usd"], 0.05);
    assert_eq!(a_fin["tokens_in"], 100);
    assert_eq!(a_fin["tokens_out"], 20);

    // `show` puts it together: attempts, cost, the latest handoff, the history.
    let out = sb.command(&["show", "B-1", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["status"], "failed:exhausted_retries");
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["exit_code"], 4);
    assert_eq!(attempts[1]["route"], "default");
    assert!(
        shown["handoff"]
            .as_str()
            .unwrap()
            .starts_with("## Attempt 2 · ")
    );
    let events: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"task_deadlettered"), "{events:?}");
    let out = sb.command(&["show", "A-1"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("total cost $0.05"), "{text}");
    assert!(text.contains("latest handoff"), "{text}");
    assert_eq!(
        sb.command(&["show", "Z-9"]).output().unwrap().status.code(),
        Some(1)
    );
}

#[test]
fn packet_command_prints_what_the_next_run_receives() {
    let sb = Sandbox::new("packetcmd");
    sb.config("", "[executors.default]\ncommand = [\"true\"]\n");
    sb.write_board("# Board\n\n## A-1: first\n- status: ready\n\nBody.\n");
    let out = sb.command(&["packet", "A-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "<!-- taskboard work packet: A-1, attempt 1 -->\n# Task A-1\n\n## A-1: first\n"
        ),
        "{text}"
    );
    assert!(text.contains("Nothing: this task waited on no other task."));
    assert!(text.contains("None: this is the first attempt."));
    let missing = sb.command(&["packet", "Z-9"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn a_route_over_its_daily_budget_holds_its_tasks_and_a_costly_run_is_flagged() {
    let mut sb = Sandbox::new("budget");
    let cmd = reporting_executor(&sb, "6");
    sb.config(
        "max_parallel = 1",
        &format!("[executors.default]\n{cmd}max_cost_usd = 5\ndaily_budget_usd = 10\n"),
    );
    sb.write_board(
        "# Board\n\n## A-1\n- status: ready\n\n## B-1\n- status: ready\n\n## C-1\n- status: ready\n",
    );
    sb.start_run();
    sb.wait_until("the budget announced and B-1's ending written", |s| {
        s.count("budget_exhausted") == 1 && s.status_of("B-1") == "done"
    });
    let ev = &sb.events_named("budget_exhausted")[0];
    assert_eq!(ev["route"], "default");
    assert_eq!(ev["spent_usd"], 12.0);
    assert_eq!(ev["budget_usd"], 10.0);
    assert_eq!(ev["waiting"], 1);
    assert_eq!(sb.status_of("A-1"), "done");
    assert_eq!(sb.status_of("B-1"), "done");
    assert_eq!(sb.status_of("C-1"), "ready", "the board is not touched");
    assert_eq!(sb.count_for("task_dispatched", "C-1"), 0);
    // Each run reported more than the cap: recorded, and the task still finished.
    assert_eq!(sb.count("cost_over_cap"), 2);
    // Raising the budget (SIGHUP) resumes the route today.
    let cmd = reporting_executor(&sb, "6");
    sb.config(
        "max_parallel = 1",
        &format!("[executors.default]\n{cmd}daily_budget_usd = 100\n"),
    );
    sb.signal_all(libc::SIGHUP);
    sb.wait_until("C-1 done after the raise", |s| s.status_of("C-1") == "done");
}

#[test]
fn evidence_from_git_and_a_mismatch_with_the_claims() {
    if Command::new("git").arg("--version").output().is_err() {
        support::skip("git is not installed (apt-get install git; .ci/run does)");
        return;
    }
    let mut sb = Sandbox::new("evidence");
    // Writes src/real.rs but claims src/claimed.rs.
    sb.script(
        "exec.sh",
        r#"cat >/dev/null
mkdir -p src && echo "fn x() {}" > src/real.rs
printf '{"handoff": {"what": "edited", "evidence": {"changed": ["src/claimed.rs"]}}}' > "$TASKBOARD_RESULT"
exit 0"#,
    );
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.write("README.md", "readme\n");
    // The test harness keeps the runtime's stderr in the folder: not the executor's doing.
    sb.write(".gitignore", "run-*.stderr\n");
    git(&sb.dir, &["init", "-q"]);
    git(&sb.dir, &["add", "README.md", ".gitignore"]);
    git(&sb.dir, &["commit", "-qm", "init"]);
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("A-1") == "done");
    let fin = &sb.events_named("task_finished")[0];
    assert_eq!(fin["changed"], serde_json::json!(["src/real.rs"]), "{fin}");
    let mm = sb.events_named("evidence_mismatch");
    assert_eq!(mm.len(), 1);
    assert_eq!(
        mm[0]["claimed_not_seen"],
        serde_json::json!(["src/claimed.rs"])
    );
    assert_eq!(
        mm[0]["seen_not_claimed"],
        serde_json::json!(["src/real.rs"])
    );
    let h = std::fs::read_to_string(sb.path("handoffs/A-1.md")).unwrap();
    assert!(
        h.contains("- **Changed (claimed):** `src/claimed.rs`"),
        "{h}"
    );
    assert!(
        h.contains("- **Changed (seen by git):** `src/real.rs`"),
        "{h}"
    );
}

/// The run folder of attempt `attempt`'s own work (not its review) for task `id`.
fn work_run_folder(sb: &Sandbox, id: &str, attempt: u32) -> std::path::PathBuf {
    std::fs::read_dir(sb.path(&format!(".taskboard/runs/{id}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{attempt}-")) && !n.contains("review")
        })
        .unwrap()
}

#[test]
fn a_review_accepts_one_task_and_bounces_another() {
    let mut sb = Sandbox::new("review");
    sb.script(
        "work.sh",
        r#"cat > "$TASKBOARD_RUN_DIR/stdin.md"
echo "work $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT" >> runs.log
printf '{"handoff": {"what": "attempt %s"}}' "$TASKBOARD_ATTEMPT" > "$TASKBOARD_RESULT"
exit 0"#,
    );
    // Accepts A-1; bounces B-1 on its first attempt, accepts its second.
    sb.script(
        "review.sh",
        r#"packet=$(cat)
printf '%s' "$packet" > "$TASKBOARD_RUN_DIR/stdin.md"
echo "review $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT" >> runs.log
if [ "$TASKBOARD_TASK_ID" = B-1 ] && [ "$TASKBOARD_ATTEMPT" = 1 ]; then
  printf '{"status": "ready", "note": "add the tests"}' > "$TASKBOARD_RESULT"
fi
exit 0"#,
    );
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\nreview = \"review\"\n\n[executors.review]\ncommand = [\"./review.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n\n## B-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("both done", |s| {
        s.status_of("A-1") == "done" && s.status_of("B-1") == "done"
    });
    let log = std::fs::read_to_string(sb.path("runs.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "review A-1 1",
            "review B-1 1",
            "review B-1 2",
            "work A-1 1",
            "work B-1 1",
            "work B-1 2"
        ]
    );
    // While under review the board said so.
    let reviews: Vec<_> = sb
        .events_named("writeback")
        .iter()
        .map(|e| e["tasks"].clone())
        .collect();
    assert!(!reviews.is_empty());
    let dispatched = sb.events_named("task_dispatched");
    let review_run = dispatched.iter().find(|e| e["phase"] == "review").unwrap();
    assert_eq!(review_run["agent"], "review-taskboard");
    assert_eq!(review_run["route"], "review");
    // The bounce's note reached B-1's second work packet, and it counted as an attempt.
    let second = work_run_folder(&sb, "B-1", 2);
    let packet = std::fs::read_to_string(second.join("stdin.md")).unwrap();
    assert!(
        packet.contains("# Review feedback\n\nadd the tests"),
        "{packet}"
    );
    // The review packet carried the attempt's handoff under review.
    let review_dir = std::fs::read_dir(sb.path(".taskboard/runs/A-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("review"))
        .unwrap();
    let rp = std::fs::read_to_string(review_dir.join("stdin.md")).unwrap();
    assert!(rp.contains("# Under review"), "{rp}");
    assert!(rp.contains("- **What:** attempt 1"), "{rp}");
    let bounced = sb
        .events_named("task_finished")
        .into_iter()
        .find(|e| e["task"] == "B-1" && e["phase"] == "review" && e["outcome"] == "ready")
        .unwrap();
    assert_eq!(bounced["note"], "add the tests");
    let out = sb.command(&["show", "B-1", "--json"]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let phases: Vec<(u64, bool)> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_u64().unwrap(), a["phase"] == "review"))
        .collect();
    assert_eq!(phases, [(1, false), (1, true), (2, false), (2, true)]);
}

#[test]
fn a_reviewer_that_says_no_with_a_note_and_a_failing_exit_is_heard() {
    let mut sb = Sandbox::new("review-no");
    sb.script("work.sh", "cat > \"$TASKBOARD_RUN_DIR/stdin.md\"\nexit 0");
    // The natural way to say "no, because…": the reason in the result file, and exit 1.
    sb.script(
        "review.sh",
        r#"cat > /dev/null
if [ "$TASKBOARD_ATTEMPT" = 1 ]; then
  printf '{"status": "ready", "note": "missing tests"}' > "$TASKBOARD_RESULT"
  exit 1
fi
exit 0"#,
    );
    sb.config(
        "",
        "[executors.default]\ncommand = [\"./work.sh\"]\nreview = \"review\"\n\n[executors.review]\ncommand = [\"./review.sh\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: ready\n");
    sb.start_run();
    sb.wait_until("A-1 done", |s| s.status_of("A-1") == "done");
    let bounced = sb
        .events_named("task_finished")
        .into_iter()
        .find(|e| e["phase"] == "review" && e["attempt"] == 1)
        .unwrap();
    assert_eq!(bounced["note"], "missing tests");
    let second = work_run_folder(&sb, "A-1", 2);
    let packet = std::fs::read_to_string(second.join("stdin.md")).unwrap();
    assert!(
        packet.contains("# Review feedback\n\nmissing tests"),
        "{packet}"
    );
}
