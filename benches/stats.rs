//! `stats` over 1,000,000 realistic event lines: streaming the file through the report builder.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use taskboard::core::event::{Event, EventKind, Record};
use taskboard::core::report::Builder;
use taskboard::shell::event_log::for_each_line;

const LINES: usize = 1_000_000;

/// Ten days of a busy board: saves, passes, dispatches, finishes with costs and tokens (a fifth
/// failing, some exhausting their retries), reviews of a quarter of the successes, runs over
/// their cap, evidence mismatches, retries, deadletters and writebacks.
fn generate() -> PathBuf {
    let path = std::env::temp_dir().join(format!("taskboard-bench-{}.jsonl", std::process::id()));
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    let now = Utc::now();
    let step = Duration::days(10) / LINES as i32;
    let mut t = now - Duration::days(10);
    let routes = ["claude", "codex", "sh", "py"];
    let mut n = 0usize;
    let mut task = 0u64;
    let mut write = |t: &mut chrono::DateTime<Utc>, id: Option<&str>, kind: EventKind| {
        let mut line = Event::new(*t, id, kind).to_line();
        line.push('\n');
        out.write_all(line.as_bytes()).unwrap();
        *t += step;
    };
    while n < LINES {
        task += 1;
        let id = format!("T-{task}");
        write(
            &mut t,
            None,
            EventKind::FileChanged {
                latency_ms: Some(task * 37 % 400),
                bytes: 5000,
            },
        );
        write(
            &mut t,
            None,
            EventKind::Pass {
                tasks: 40,
                duration_us: 800,
                dispatched: 1,
            },
        );
        n += 2;
        for attempt in 1..=3u32 {
            write(
                &mut t,
                Some(&id),
                EventKind::TaskDispatched {
                    attempt,
                    route: routes[(task as usize + attempt as usize) % 4].into(),
                    pid: Some(1234),
                    agent: "bot".into(),
                    phase: None,
                    remote: None,
                },
            );
            let ok = !(task + u64::from(attempt)).is_multiple_of(5);
            let outcome = match (ok, attempt) {
                (true, _) => "done".to_string(),
                (false, 3) => "failed:exhausted_retries".to_string(),
                (false, _) => "blocked:retry:2026-11-22T03:15:00Z".to_string(),
            };
            write(
                &mut t,
                Some(&id),
                EventKind::TaskFinished {
                    attempt,
                    exit_code: Some(if ok { 0 } else { 3 }),
                    signal: None,
                    duration_ms: task * 7919 % 600_000,
                    outcome,
                    note: (!ok).then(|| "exit 3: \"tests failed\"".to_string()),
                    stopped: None,
                    phase: None,
                    cost_usd: Some((task % 97) as f64 * 0.013),
                    tokens_in: Some(task % 5000 * 10),
                    tokens_out: Some(task % 700 * 10),
                    handoff: Some(format!("handoffs/{id}.md")),
                    changed: Some(vec!["src/lib.rs".into(), "README.md".into()]),
                },
            );
            n += 2;
            if task.is_multiple_of(50) {
                write(
                    &mut t,
                    Some(&id),
                    EventKind::CostOverCap {
                        route: routes[(task as usize + attempt as usize) % 4].into(),
                        attempt,
                        cost_usd: 1.3,
                        cap_usd: 1.0,
                    },
                );
                write(
                    &mut t,
                    Some(&id),
                    EventKind::EvidenceMismatch {
                        attempt,
                        claimed_not_seen: vec!["src/main.rs".into()],
                        seen_not_claimed: vec![],
                        outside_touches: None,
                    },
                );
                n += 2;
            }
            if ok && task.is_multiple_of(4) {
                write(
                    &mut t,
                    Some(&id),
                    EventKind::TaskDispatched {
                        attempt,
                        route: "review".into(),
                        pid: Some(1235),
                        agent: "review-bot".into(),
                        phase: Some("review".into()),
                        remote: None,
                    },
                );
                write(
                    &mut t,
                    Some(&id),
                    EventKind::TaskFinished {
                        attempt,
                        exit_code: Some(0),
                        signal: None,
                        duration_ms: task * 31 % 60_000,
                        outcome: "done".into(),
                        note: None,
                        stopped: None,
                        phase: Some("review".into()),
                        cost_usd: Some(0.02),
                        tokens_in: Some(800),
                        tokens_out: Some(120),
                        handoff: Some(format!("handoffs/{id}.md")),
                        changed: None,
                    },
                );
                n += 2;
            }
            if ok {
                break;
            }
            if attempt < 3 {
                write(
                    &mut t,
                    Some(&id),
                    EventKind::TaskRetryScheduled { attempt, at: now },
                );
            } else {
                write(
                    &mut t,
                    Some(&id),
                    EventKind::TaskDeadlettered {
                        attempts: 3,
                        path: format!("/home/me/board/deadletter/{id}.json"),
                    },
                );
            }
            n += 1;
        }
        write(
            &mut t,
            None,
            EventKind::Writeback {
                tasks: vec![id],
                bytes: 5000,
            },
        );
        n += 1;
    }
    out.flush().unwrap();
    path
}

fn bench(c: &mut Criterion) {
    let path = generate();
    let mut group = c.benchmark_group("stats");
    group.sample_size(10);
    group.bench_function("report_over_1m_lines", |b| {
        b.iter(|| {
            let mut builder = Builder::new(Utc::now(), Duration::days(7));
            for_each_line(&path, |line, _| match Record::from_line(line) {
                Ok(rec) => builder.add(&rec),
                Err(_) => builder.add_bad_lines(1),
            })
            .unwrap();
            builder.finish()
        })
    });
    group.finish();
    // TASKBOARD_BENCH_KEEP=DIR keeps the generated log as DIR/events.jsonl, to time the binary.
    match std::env::var_os("TASKBOARD_BENCH_KEEP") {
        Some(dir) => std::fs::rename(&path, PathBuf::from(dir).join("events.jsonl")).unwrap(),
        None => std::fs::remove_file(&path).unwrap(),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
