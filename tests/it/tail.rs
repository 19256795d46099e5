//! `taskboard tail`: one readable line per event, `--json`, `--task`, and `-f` across appends,
//! rotation and truncation.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use taskboard::cmd::tail::render_line;
use taskboard::core::event::{Event, EventKind};

use crate::support::TempDir as Dir;

/// The board's path in `dir`, as an argument.
fn board(dir: &Dir) -> String {
    dir.join("task-board.md").display().to_string()
}

fn line(task: Option<&str>, kind: EventKind) -> String {
    let ts = Utc.with_ymd_and_hms(2026, 11, 22, 15, 25, 3).unwrap()
        + chrono::Duration::milliseconds(123);
    Event::new(ts, task, kind).to_line()
}

fn tail(args: &[&str]) -> (String, String, i32) {
    let out = crate::support::finish(
        crate::support::bin()
            .arg("tail")
            .args(args)
            .env("NO_COLOR", "1"),
    );
    (out.stdout, out.stderr, out.code)
}

#[test]
fn each_kind_reads_as_one_line() {
    let cases: Vec<(Option<&str>, EventKind, &str)> = vec![
        (
            Some("A-1"),
            EventKind::TaskFinished {
                attempt: 2,
                exit_code: Some(3),
                signal: None,
                duration_ms: 1200,
                outcome: "blocked:retry:2026-11-22T15:26:00Z".into(),
                note: Some("tests failed".into()),
                stopped: None,
                phase: None,
                cost_usd: None,
                tokens_in: None,
                tokens_out: None,
                handoff: None,
                changed: None,
            },
            r#"15:25:03.123 task_finished        A-1 attempt=2 exit=3 1.2s -> blocked:retry:2026-11-22T15:26:00Z note="tests failed""#,
        ),
        (
            Some("A-1"),
            EventKind::TaskDispatched {
                attempt: 1,
                route: "claude".into(),
                pid: Some(42),
                agent: "bot".into(),
                phase: None,
                remote: None,
            },
            "15:25:03.123 task_dispatched      A-1 attempt=1 route=claude agent=bot pid=42",
        ),
        (
            None,
            EventKind::FileChanged {
                latency_ms: Some(12),
                bytes: 4096,
            },
            "15:25:03.123 file_changed         latency=12ms bytes=4096",
        ),
        (
            None,
            EventKind::Pass {
                tasks: 5,
                duration_us: 1500,
                dispatched: 1,
            },
            "15:25:03.123 pass                 tasks=5 dispatched=1 1.5ms",
        ),
        (
            Some("A-1"),
            EventKind::TaskRetryScheduled {
                attempt: 1,
                at: Utc.with_ymd_and_hms(2026, 11, 22, 15, 26, 0).unwrap(),
            },
            "15:25:03.123 task_retry_scheduled A-1 attempt=1 -> retry at 2026-11-22T15:26:00Z",
        ),
        (
            Some("A-1"),
            EventKind::TaskDeadlettered {
                attempts: 3,
                path: "/b/deadletter/A-1.json".into(),
            },
            "15:25:03.123 task_deadlettered    A-1 attempts=3 -> /b/deadletter/A-1.json",
        ),
        (
            Some("B"),
            EventKind::DependencyPromoted {
                deps: vec!["A".into(), "C".into()],
            },
            "15:25:03.123 dependency_promoted  B deps=A,C -> ready",
        ),
        (
            Some("B"),
            EventKind::StaleClaimReset {
                status: "running:bot:2026-11-22T15:00Z".into(),
                reason: "dead pid".into(),
                attempt: 1,
            },
            r#"15:25:03.123 stale_claim_reset    B attempt=1 reason="dead pid" status=running:bot:2026-11-22T15:00Z"#,
        ),
        (
            None,
            EventKind::Lint {
                code: "unknown-status".into(),
                severity: "error".into(),
                line: 4,
                column: 9,
                message: "unknown status `redy`".into(),
            },
            r#"15:25:03.123 lint                 error unknown-status at 4:9 message="unknown status `redy`""#,
        ),
        (
            None,
            EventKind::Error {
                message: "cannot read\nboard".into(),
                context: None,
            },
            r#"15:25:03.123 error                message="cannot read\nboard""#,
        ),
        (
            Some("A-1"),
            EventKind::RetryRequested {
                from: "failed:exhausted_retries".into(),
                archived: None,
            },
            "15:25:03.123 retry_requested      A-1 from=failed:exhausted_retries -> ready",
        ),
        (
            None,
            EventKind::RuntimeStopped {
                reason: "sigterm".into(),
                mode: None,
            },
            "15:25:03.123 runtime_stopped      reason=sigterm",
        ),
        // The mode first: a `once` ending beside a serving `run` is not the service stopping.
        (
            None,
            EventKind::RuntimeStopped {
                reason: "finished".into(),
                mode: Some("once".into()),
            },
            "15:25:03.123 runtime_stopped      once finished",
        ),
        (
            None,
            EventKind::RuntimeStopped {
                reason: "signal SIGTERM".into(),
                mode: Some("run".into()),
            },
            "15:25:03.123 runtime_stopped      run stopped: signal SIGTERM",
        ),
    ];
    for (task, kind, want) in cases {
        let l = line(task, kind);
        assert_eq!(render_line(&l).unwrap(), want, "for {l}");
    }
    // An event this version does not know still shows all its fields.
    assert_eq!(
        render_line(r#"{"ts":"2026-11-22T15:25:03.123Z","event":"new_kind","task":"Z","a b":"x y","n":[1,2]}"#)
            .unwrap(),
        r#"15:25:03.123 new_kind             Z a b="x y" n=1,2"#
    );
}

fn finished(phase: Option<&str>, cost: Option<f64>, outcome: &str) -> EventKind {
    EventKind::TaskFinished {
        attempt: 1,
        exit_code: Some(0),
        signal: None,
        duration_ms: 2000,
        outcome: outcome.into(),
        note: None,
        stopped: None,
        phase: phase.map(str::to_owned),
        cost_usd: cost,
        tokens_in: None,
        tokens_out: None,
        handoff: None,
        changed: None,
    }
}

#[test]
fn review_runs_show_review_and_costs_show_dollars() {
    let review_dispatch = line(
        Some("A-1"),
        EventKind::TaskDispatched {
            attempt: 1,
            route: "checker".into(),
            pid: Some(42),
            agent: "review-bot".into(),
            phase: Some("review".into()),
            remote: None,
        },
    );
    assert_eq!(
        render_line(&review_dispatch).unwrap(),
        "15:25:03.123 task_dispatched      A-1 review attempt=1 route=checker agent=review-bot pid=42"
    );
    let mut bounced = finished(Some("review"), Some(0.12), "ready");
    if let EventKind::TaskFinished {
        note,
        tokens_in,
        tokens_out,
        handoff,
        ..
    } = &mut bounced
    {
        *note = Some("add the tests".into());
        *tokens_in = Some(1200);
        *tokens_out = Some(340);
        *handoff = Some("handoffs/A-1.md".into());
    }
    assert_eq!(
        render_line(&line(Some("A-1"), bounced)).unwrap(),
        r#"15:25:03.123 task_finished        A-1 review attempt=1 exit=0 2.0s $0.12 tokens=1200/340 -> ready note="add the tests" handoff=handoffs/A-1.md"#
    );
    // A work run: no phase word; a cost under a cent keeps its digits; long file lists are cut.
    let mut work = finished(None, Some(0.0042), "done");
    if let EventKind::TaskFinished { changed, .. } = &mut work {
        *changed = Some(
            ["a.rs", "b.rs", "c d.rs", "e.rs", "f.rs"]
                .map(String::from)
                .to_vec(),
        );
    }
    assert_eq!(
        render_line(&line(Some("A-1"), work)).unwrap(),
        r#"15:25:03.123 task_finished        A-1 attempt=1 exit=0 2.0s $0.0042 -> done changed=a.rs,b.rs,"c d.rs",+2 more"#
    );
    // Without a cost, nothing about money is shown.
    assert_eq!(
        render_line(&line(Some("A-1"), finished(None, None, "done"))).unwrap(),
        "15:25:03.123 task_finished        A-1 attempt=1 exit=0 2.0s -> done"
    );
}

#[test]
fn budget_cap_evidence_and_retry_events_read_as_sentences() {
    let cases: Vec<(Option<&str>, EventKind, &str)> = vec![
        (
            None,
            EventKind::BudgetExhausted {
                route: "claude".into(),
                spent_usd: 10.02,
                budget_usd: 10.0,
                waiting: 3,
            },
            "15:25:03.123 budget_exhausted     route=claude spent $10.02 of $10.00 today -> 3 waiting for the next UTC day",
        ),
        (
            Some("A-1"),
            EventKind::CostOverCap {
                route: "claude".into(),
                attempt: 2,
                cost_usd: 1.25,
                cap_usd: 1.0,
            },
            "15:25:03.123 cost_over_cap        A-1 attempt=2 route=claude $1.25 > cap $1.00",
        ),
        (
            Some("A-1"),
            EventKind::EvidenceMismatch {
                attempt: 2,
                claimed_not_seen: vec!["src/a.rs".into(), "src/b.rs".into()],
                seen_not_claimed: vec!["my notes.md".into()],
                outside_touches: None,
            },
            r#"15:25:03.123 evidence_mismatch    A-1 attempt=2 claimed, not seen: src/a.rs,src/b.rs; seen, not claimed: "my notes.md""#,
        ),
        (
            Some("A-1"),
            EventKind::EvidenceMismatch {
                attempt: 1,
                claimed_not_seen: vec![],
                seen_not_claimed: vec!["Cargo.lock".into()],
                outside_touches: None,
            },
            "15:25:03.123 evidence_mismatch    A-1 attempt=1 seen, not claimed: Cargo.lock",
        ),
        (
            Some("A-1"),
            EventKind::EvidenceMismatch {
                attempt: 1,
                claimed_not_seen: vec![],
                seen_not_claimed: vec![],
                outside_touches: Some(vec!["src/other.rs".into()]),
            },
            "15:25:03.123 evidence_mismatch    A-1 attempt=1 outside its touches: src/other.rs",
        ),
        (
            Some("A-1"),
            EventKind::RetryRequested {
                from: "failed:exhausted_retries".into(),
                archived: Some("deadletter/A-1.json".into()),
            },
            "15:25:03.123 retry_requested      A-1 from=failed:exhausted_retries -> ready archived=deadletter/A-1.json",
        ),
    ];
    for (task, kind, want) in cases {
        let l = line(task, kind);
        assert_eq!(render_line(&l).unwrap(), want, "for {l}");
    }
}

#[test]
fn shows_the_last_n_across_rotated_files_with_dates_and_filters() {
    let dir = Dir::new("last");
    let ev = |d: u32, attempt: u32, task: &str| {
        let ts = Utc.with_ymd_and_hms(2026, 11, d, 10, 0, attempt).unwrap();
        Event::new(ts, Some(task), EventKind::TaskInterrupted { attempt }).to_line() + "\n"
    };
    std::fs::write(
        dir.join("events-20261121T000000Z.jsonl"),
        ev(20, 1, "A") + &ev(20, 2, "B"),
    )
    .unwrap();
    // A torn last line in the live file is skipped.
    std::fs::write(
        dir.join("events.jsonl"),
        ev(21, 3, "A") + &ev(21, 4, "B") + "{\"ts\":\"2026-11-2",
    )
    .unwrap();
    let (out, _, code) = tail(&[&board(&dir), "-n", "3"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "── 2026-11-20 (UTC)\n10:00:02.000 task_interrupted     B attempt=2\n── 2026-11-21 (UTC)\n10:00:03.000 task_interrupted     A attempt=3\n10:00:04.000 task_interrupted     B attempt=4\n"
    );
    let (out, _, _) = tail(&[&board(&dir), "--task", "A", "--json"]);
    assert_eq!(out, ev(20, 1, "A") + &ev(21, 3, "A"));
}

#[test]
fn json_passes_lines_through_byte_for_byte() {
    let dir = Dir::new("json");
    // Spacing, key order and escapes as some other writer left them.
    let text = "{\"ts\": \"2026-11-22T15:25:03.123Z\",  \"event\":\"error\",\"message\":\"caf\\u00e9 \\\"x\\\"\"}\n{\"event\":\"pass\",\"ts\":\"2026-11-22T15:25:04.000Z\",\"tasks\":1,\"duration_us\":2,\"dispatched\":0}\n";
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
    let (out, _, code) = tail(&[&board(&dir), "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out, text);
}

#[test]
fn a_missing_log_prints_nothing_and_says_so() {
    let dir = Dir::new("missing");
    let (out, err, code) = tail(&[&board(&dir)]);
    assert_eq!((out.as_str(), code), ("", 0));
    assert!(err.contains("does not exist"), "{err}");
}

/// A `tail -f` child whose stdout lines arrive on a channel.
struct Follow {
    child: Child,
    lines: Receiver<String>,
}

impl Follow {
    fn start(board: &str) -> Follow {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskboard"))
            .args(["tail", "-f", "--json", "-n", "100", board])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// Waits (with a deadline) for the next line.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("tail -f printed nothing within 10 s")
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn mark(n: u32) -> String {
    line(None, EventKind::TaskInterrupted { attempt: n })
}

#[test]
fn follow_survives_appends_rotation_truncation_and_a_missing_file() {
    let dir = Dir::new("follow");
    let live = dir.join("events.jsonl");
    // Waits for the file to appear. (Whether the first line is read as history or followed,
    // it is printed once.)
    let follow = Follow::start(&board(&dir));
    append(&live, &(mark(1) + "\n"));
    assert_eq!(follow.next(), mark(1));
    // A line written in two pieces comes out whole.
    let second = mark(2);
    append(&live, &second[..10]);
    append(&live, &(second[10..].to_string() + "\n"));
    assert_eq!(follow.next(), mark(2));
    // Rotation: the live file is renamed away; a line still reaching the old file is shown,
    // then the new file is followed from its start.
    let rotated = dir.join("events-20261122T152503Z.jsonl");
    std::fs::rename(&live, &rotated).unwrap();
    append(&rotated, &(mark(3) + "\n"));
    assert_eq!(follow.next(), mark(3));
    append(&live, &(mark(4) + "\n"));
    assert_eq!(follow.next(), mark(4));
    // Truncation: the file starts over, shorter than what was already read.
    append(&live, &(mark(40) + "\n" + &mark(41) + "\n"));
    assert_eq!(follow.next(), mark(40));
    assert_eq!(follow.next(), mark(41));
    std::fs::write(&live, mark(5) + "\n").unwrap();
    assert_eq!(follow.next(), mark(5));
    // Removed then recreated. Holding the old file open keeps its inode from being reused for
    // the new one (which would look like the same file to any follower).
    let held = std::fs::File::open(&live).unwrap();
    std::fs::remove_file(&live).unwrap();
    append(&live, &(mark(6) + "\n"));
    drop(held);
    assert_eq!(follow.next(), mark(6));
}

#[test]
fn follow_exits_cleanly_on_sigterm() {
    let dir = Dir::new("sigterm");
    std::fs::write(dir.join("events.jsonl"), mark(1) + "\n").unwrap();
    let mut follow = Follow::start(&board(&dir));
    assert_eq!(follow.next(), mark(1));
    append(&dir.join("events.jsonl"), &(mark(2) + "\n"));
    assert_eq!(follow.next(), mark(2));
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    let rc = unsafe { libc::kill(follow.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = crate::support::status_within(&mut follow.child, Duration::from_secs(10))
        .expect("tail -f did not stop on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
