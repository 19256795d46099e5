//! `taskboard stats`: the report from events, its JSON shape, the queue's source, and the window.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use taskboard::core::event::{Event, EventKind};

use crate::support::TempDir as Dir;

fn run(task: &str, attempt: u32, route: &str, at: DateTime<Utc>, ms: u64, outcome: &str) -> String {
    let dispatched = Event::new(
        at,
        Some(task),
        EventKind::TaskDispatched {
            attempt,
            route: route.into(),
            pid: Some(1),
            agent: "bot".into(),
            phase: None,
            remote: None,
        },
    );
    let finished = Event::new(
        at + Duration::milliseconds(ms as i64),
        Some(task),
        EventKind::TaskFinished {
            attempt,
            exit_code: Some(if outcome == "done" { 0 } else { 3 }),
            signal: None,
            duration_ms: ms,
            outcome: outcome.into(),
            note: None,
            stopped: None,
            phase: None,
            cost_usd: None,
            tokens_in: None,
            tokens_out: None,
            handoff: None,
            changed: None,
        },
    );
    format!("{}\n{}\n", dispatched.to_line(), finished.to_line())
}

fn stats(dir: &Dir, args: &[&str]) -> (String, String, i32) {
    let out = crate::support::finish(
        crate::support::bin()
            .arg("stats")
            .arg(dir.join("task-board.md"))
            .args(args)
            .env("NO_COLOR", "1"),
    );
    (out.stdout, out.stderr, out.code)
}

fn log(dir: &Dir) {
    let now = Utc::now();
    let day = Duration::days(1);
    let mut old = String::new();
    // Outside a 7-day window: counted in the queue only.
    old += &run("OLD", 1, "sh", now - day * 20, 1000, "done");
    // In the window, in a rotated file.
    old += &run(
        "A",
        1,
        "sh",
        now - day * 2,
        1000,
        "blocked:retry:2026-11-22T00:00:00Z",
    );
    old += &(Event::new(
        now - day * 2,
        Some("A"),
        EventKind::TaskRetryScheduled {
            attempt: 1,
            at: now,
        },
    )
    .to_line()
        + "\n");
    std::fs::write(dir.join("events-20261101T000000Z.jsonl"), old).unwrap();
    let mut live = run("A", 2, "sh", now - day, 3000, "done");
    live += &run(
        "B",
        1,
        "py",
        now - Duration::hours(1),
        500,
        "failed:exhausted_retries",
    );
    live += &(Event::new(
        now - Duration::hours(1),
        Some("B"),
        EventKind::TaskDeadlettered {
            attempts: 1,
            path: dir.join("deadletter/B.json").display().to_string(),
        },
    )
    .to_line()
        + "\n");
    live += &(Event::new(
        now - Duration::minutes(5),
        None,
        EventKind::FileChanged {
            latency_ms: Some(30),
            bytes: 1,
        },
    )
    .to_line()
        + "\n");
    live += &(Event::new(
        now - Duration::minutes(1),
        Some("C"),
        EventKind::TaskDispatched {
            attempt: 1,
            route: "py".into(),
            pid: Some(1),
            agent: "bot".into(),
            phase: None,
            remote: None,
        },
    )
    .to_line()
        + "\n");
    live += "not json\n{\"ts\":\"20";
    std::fs::write(dir.join("events.jsonl"), live).unwrap();
}

#[test]
fn json_report_counts_the_window_across_files() {
    let dir = Dir::new("json");
    log(&dir);
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["version"], 2);
    assert_eq!(r["totals"]["done"], 1);
    assert_eq!(r["totals"]["failed"], 1);
    assert_eq!(r["totals"]["retried"], 1);
    assert_eq!(r["totals"]["attempts_finished"], 3);
    assert_eq!(r["totals"]["attempts_failed"], 2);
    assert_eq!(r["error_rate"], 0.667);
    assert_eq!(r["bad_lines"], 1, "the torn tail is not a bad line");
    assert_eq!(r["days"].as_array().unwrap().len(), 8);
    assert_eq!(r["latency_ms"]["p99"], 30);
    let routes = r["routes"].as_array().unwrap();
    assert_eq!(routes[0]["route"], "py");
    assert_eq!(routes[1]["route"], "sh");
    assert_eq!(routes[1]["runs"], 2);
    assert_eq!(routes[1]["p95_ms"], 3000);
    // No board file: the queue is replayed (OLD and A done, B failed, C running).
    assert_eq!(r["queue"]["source"], "events");
    assert_eq!(r["queue"]["done"], 2);
    assert_eq!(r["queue"]["failed"], 1);
    assert_eq!(r["queue"]["running"], 1);
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["task"], "B");
    assert!(
        failures[0]["deadletter"]
            .as_str()
            .unwrap()
            .ends_with("B.json")
    );
}

#[test]
fn the_board_is_preferred_for_the_queue() {
    let dir = Dir::new("board");
    log(&dir);
    std::fs::write(
        dir.join("task-board.md"),
        "# Tasks\n\n## A-1: one\n- status: ready\n\n## B-1: two\n- status: ready\n\n## C-1: three\n- status: blocked:me:why\n",
    )
    .unwrap();
    let (out, _, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["queue"]["source"], "board");
    assert_eq!(r["queue"]["ready"], 2);
    assert_eq!(r["queue"]["blocked"], 1);
    assert_eq!(r["queue"]["failed"], 0);
}

#[test]
fn text_report_is_readable_without_colour() {
    let dir = Dir::new("text");
    log(&dir);
    let (out, _, code) = stats(&dir, &["--since", "30d"]);
    assert_eq!(code, 0);
    assert!(!out.contains('\x1b'), "{out}");
    assert!(
        out.contains("Tasks        2 done   1 failed   1 retried"),
        "{out}"
    );
    assert!(
        out.contains("Error rate   50.0% of 4 finished attempts"),
        "{out}"
    );
    assert!(out.contains("Queue now (replayed from events)"), "{out}");
    assert!(out.contains('█'), "bars are drawn: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  sh ") && l.contains(" 3 ") && l.contains("3.0s")),
        "{out}"
    );
}

#[test]
fn a_bad_window_is_a_usage_error_and_no_log_is_not() {
    let dir = Dir::new("usage");
    let (_, err, code) = stats(&dir, &["--since", "7 days"]);
    assert_eq!(code, 64, "{err}");
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0);
    assert!(err.contains("no events"), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["totals"]["done"], 0);
    assert_eq!(r["error_rate"], Value::Null);
}

fn ev(at: DateTime<Utc>, task: Option<&str>, kind: EventKind) -> String {
    Event::new(at, task, kind).to_line() + "\n"
}

fn finished(attempt: u32, outcome: &str, review: bool, cost: f64, ms: u64) -> EventKind {
    EventKind::TaskFinished {
        attempt,
        exit_code: Some(0),
        signal: None,
        duration_ms: ms,
        outcome: outcome.into(),
        note: None,
        stopped: None,
        phase: review.then(|| "review".into()),
        cost_usd: Some(cost),
        tokens_in: Some(1000),
        tokens_out: Some(100),
        handoff: None,
        changed: None,
    }
}

fn dispatched(attempt: u32, route: &str, review: bool) -> EventKind {
    EventKind::TaskDispatched {
        attempt,
        route: route.into(),
        pid: Some(1),
        agent: "bot".into(),
        phase: review.then(|| "review".into()),
        remote: None,
    }
}

/// Task R: attempt 1 over its cap and bounced by review, attempt 2 accepted; a budget hold on
/// `claude`; an evidence mismatch.
fn cost_log(dir: &Dir) {
    std::fs::write(dir.join("events.jsonl"), cost_events()).unwrap();
}

fn cost_events() -> String {
    let now = Utc::now();
    let t = |mins: i64| now - Duration::minutes(mins);
    let r = Some("R");
    let mut live = String::new();
    live += &ev(t(50), r, dispatched(1, "claude", false));
    live += &ev(
        t(49),
        r,
        EventKind::CostOverCap {
            route: "claude".into(),
            attempt: 1,
            cost_usd: 1.25,
            cap_usd: 1.0,
        },
    );
    live += &ev(
        t(49),
        r,
        finished(1, "running:review-bot:x", false, 1.25, 60_000),
    );
    live += &ev(t(48), r, dispatched(1, "checker", true));
    live += &ev(t(47), r, finished(1, "ready", true, 0.05, 2_000));
    live += &ev(t(40), r, dispatched(2, "claude", false));
    live += &ev(
        t(39),
        r,
        EventKind::EvidenceMismatch {
            attempt: 2,
            claimed_not_seen: vec!["src/a.rs".into()],
            seen_not_claimed: vec![],
            outside_touches: None,
        },
    );
    live += &ev(
        t(39),
        r,
        finished(2, "running:review-bot:x", false, 0.5, 70_000),
    );
    live += &ev(t(38), r, dispatched(2, "checker", true));
    live += &ev(t(37), r, finished(2, "done", true, 0.05, 3_000));
    live += &ev(
        t(30),
        None,
        EventKind::BudgetExhausted {
            route: "claude".into(),
            spent_usd: 1.75,
            budget_usd: 1.5,
            waiting: 2,
        },
    );
    live
}

#[test]
fn json_report_has_spend_caps_budgets_and_reviews() {
    let dir = Dir::new("cost-json");
    cost_log(&dir);
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["version"], 2);
    assert_eq!(r["spend"]["cost_usd"], 1.85);
    assert_eq!(r["spend"]["runs"], 4);
    assert_eq!(r["spend"]["tokens_in"], 4000);
    assert_eq!(r["spend"]["tokens_out"], 400);
    let routes = r["spend"]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(
        (
            &routes[0]["route"],
            &routes[0]["cost_usd"],
            &routes[0]["runs"]
        ),
        (&Value::from("checker"), &Value::from(0.1), &Value::from(2))
    );
    assert_eq!(
        (&routes[1]["route"], &routes[1]["cost_usd"]),
        (&Value::from("claude"), &Value::from(1.75))
    );
    let days = r["spend"]["days"].as_array().unwrap();
    let spent: f64 = days.iter().map(|d| d["cost_usd"].as_f64().unwrap()).sum();
    assert!((spent - 1.85).abs() < 1e-9, "{days:?}");
    assert!(
        days.iter()
            .all(|d| d["route"] == "claude" || d["route"] == "checker")
    );
    assert_eq!(r["over_cap"]["count"], 1);
    let over = &r["over_cap"]["last"][0];
    assert_eq!(
        (&over["task"], &over["route"], &over["attempt"]),
        (&Value::from("R"), &Value::from("claude"), &Value::from(1))
    );
    assert_eq!(
        (&over["cost_usd"], &over["cap_usd"]),
        (&Value::from(1.25), &Value::from(1.0))
    );
    assert_eq!(r["budget_exhausted"]["count"], 1);
    let hold = &r["budget_exhausted"]["last"][0];
    assert_eq!(hold["route"], "claude");
    assert_eq!(hold["spent_usd"], 1.75);
    assert_eq!(hold["budget_usd"], 1.5);
    assert_eq!(hold["waiting"], 2);
    assert_eq!(hold["date"].as_str().unwrap().len(), 10);
    assert_eq!(r["reviews"]["run"], 2);
    assert_eq!(r["reviews"]["accepted"], 1);
    assert_eq!(r["reviews"]["bounced"], 1);
    assert_eq!(r["evidence_mismatches"], 1);
    // Work and review runs of the same attempts stay apart in durations.
    let durations = r["routes"].as_array().unwrap();
    assert_eq!(durations.len(), 2);
    assert_eq!(durations[0]["route"], "checker");
    assert_eq!(durations[0]["phase"], "review");
    assert_eq!(durations[0]["p95_ms"], 3000);
    assert_eq!(durations[1]["route"], "claude");
    assert_eq!(durations[1]["phase"], Value::Null);
    assert_eq!(durations[1]["p95_ms"], 70_000);
}

#[test]
fn text_report_shows_spend_caps_budgets_and_reviews() {
    let dir = Dir::new("cost-text");
    cost_log(&dir);
    let (out, _, code) = stats(&dir, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Spend        $1.85 over 4 runs   tokens 4.0k in / 400 out"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("  claude ") && l.contains("$1.75") && l.contains(" 2 runs ")),
        "{out}"
    );
    assert!(
        out.contains("Over cap     1 run over the route's cap"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("  R  claude  attempt 1  $1.25 > cap $1.00")),
        "{out}"
    );
    assert!(
        out.contains("Budgets      1 time a route reached a daily budget"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("claude  spent $1.75 of $1.50  2 waiting")),
        "{out}"
    );
    assert!(
        out.contains("Reviews      2 run   1 accepted   1 bounced"),
        "{out}"
    );
    assert!(
        out.contains("Evidence     1 run claimed changes that differ from what git saw"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("  checker (review) ")),
        "{out}"
    );
}

#[test]
fn seven_tasks_done_in_five_minutes_are_a_count_and_a_span_not_a_daily_rate() {
    let dir = Dir::new("span");
    let start = Utc::now() - Duration::minutes(30);
    let mut live = String::new();
    for i in 0..7 {
        let at = start + Duration::seconds(i * 49);
        live += &run(&format!("T-{i}"), 1, "sh", at, 6_000, "done");
    }
    std::fs::write(dir.join("events.jsonl"), live).unwrap();
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let t = &r["throughput"];
    assert_eq!(t["done"], 7);
    assert_eq!(t["span_ms"], 300_000, "first dispatch to last finish: {t}");
    assert_eq!(t["per_hour"], Value::Null);
    assert_eq!(t["per_day"], Value::Null);
    let (text, _, _) = stats(&dir, &[]);
    assert!(
        text.contains("Throughput   7 done in 5m00s (first to last event); under an hour, no rate"),
        "{text}"
    );
    assert!(!text.contains("done/day"), "{text}");
}

#[test]
fn a_task_that_failed_was_retried_and_failed_again_counts_once() {
    let dir = Dir::new("refail");
    let now = Utc::now();
    let t = |mins: i64| now - Duration::minutes(mins);
    let file = |name: &str| dir.join(name).display().to_string();
    let deadletter = |at| {
        ev(
            at,
            Some("A"),
            EventKind::TaskDeadlettered {
                attempts: 1,
                path: file("deadletter/A.json"),
            },
        )
    };
    let mut live = run("A", 1, "sh", t(60), 1000, "failed:exhausted_retries");
    live += &deadletter(t(59));
    live += &ev(
        t(50),
        Some("A"),
        EventKind::RetryRequested {
            from: "failed:exhausted_retries".into(),
            archived: Some(file("deadletter/archive/A-20261122T000000.000Z.json")),
        },
    );
    live += &run("A", 1, "sh", t(40), 1000, "failed:exhausted_retries");
    live += &deadletter(t(39));
    live += &ev(
        t(30),
        Some("A"),
        EventKind::RetryRequested {
            from: "failed:exhausted_retries".into(),
            archived: Some(file("deadletter/archive/A-20261122T001000.000Z.json")),
        },
    );
    std::fs::write(dir.join("events.jsonl"), live).unwrap();
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["totals"]["failed"], 1);
    assert_eq!(r["totals"]["attempts_failed"], 2);
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]["deadletter"]
            .as_str()
            .unwrap()
            .ends_with("deadletter/archive/A-20261122T001000.000Z.json"),
        "the latest failure's own file: {failures:?}"
    );
    let html = dir.join("out.html");
    let (_, err, code) = stats(&dir, &["--html", html.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<td><code>A</code></td>").count(), 1, "{page}");
    assert!(
        page.contains(
            r#"<a href="deadletter/archive/A-20261122T001000.000Z.json">deadletter/archive/A-20261122T001000.000Z.json</a>"#
        ),
        "{page}"
    );
}

/// Every key of a JSON value, as `a.b`, with `[]` for the items of a list.
fn keys(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                keys(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                keys(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// An SSH run, a Slurm run that started on a node and was taken over, and a host down.
fn remote_events() -> String {
    let at = Utc::now() - Duration::hours(2);
    let ts = |m: i64| taskboard::core::event::format_ts(&(at + Duration::minutes(m)));
    [
        format!(r#"{{"ts":"{}","event":"task_dispatched","task":"S","attempt":1,"route":"gpu","agent":"bot","remote":{{"runner":"ssh","host":"gpu1","dir":"d"}}}}"#, ts(1)),
        format!(r#"{{"ts":"{}","event":"task_dispatched","task":"J","attempt":1,"route":"hpc","agent":"bot","remote":{{"runner":"slurm","job_id":"17","dir":"d"}}}}"#, ts(2)),
        format!(r#"{{"ts":"{}","event":"remote_running","task":"J","attempt":1,"remote":{{"runner":"slurm","job_id":"17","node":"node1","dir":"d"}}}}"#, ts(3)),
        format!(r#"{{"ts":"{}","event":"run_adopted","task":"J","attempt":1,"remote":{{"runner":"slurm","job_id":"17","node":"node1","dir":"d"}},"finished":false}}"#, ts(4)),
        format!(r#"{{"ts":"{}","event":"host_down","route":"gpu","host":"gpu2","until":"{}","reason":"host_unreachable"}}"#, ts(5), ts(6)),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn every_key_of_the_json_report_is_described_in_the_readme() {
    let dir = Dir::new("schema");
    log(&dir);
    // The spend, caps, budgets and reviews in a rotated file of their own.
    std::fs::write(dir.join("events-20261102T000000Z.jsonl"), cost_events()).unwrap();
    // Runs on other machines, an adoption and a host down in another.
    std::fs::write(dir.join("events-20261103T000000Z.jsonl"), remote_events()).unwrap();
    let (out, err, code) = stats(&dir, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let mut emitted = std::collections::BTreeSet::new();
    keys(&r, "", &mut emitted);
    for list in [
        "days[]",
        "latency_ms.histogram[]",
        "routes[]",
        "failures[]",
        "spend.routes[]",
        "spend.days[]",
        "over_cap.last[]",
        "budget_exhausted.last[]",
        "runners.ssh[]",
        "runners.slurm.nodes[]",
    ] {
        assert!(
            emitted.iter().any(|k| k.starts_with(list)),
            "the log leaves {list} empty"
        );
    }

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("#### `stats --json` schema"))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect();
    assert!(!section.is_empty(), "no schema section in the README");
    // The key of each table row: its first cell, in backticks.
    let described: std::collections::BTreeSet<String> = section
        .iter()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(key, _)| key.to_string())
        .collect();
    let undescribed: Vec<&String> = emitted.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "not in the README's schema: {undescribed:?}"
    );
    let stale: Vec<&String> = described.difference(&emitted).collect();
    assert!(
        stale.is_empty(),
        "in the README's schema, never emitted: {stale:?}"
    );
}
