use std::fs;
use std::io::Write;
use std::sync::{Arc, Barrier};
use std::thread;

use chrono::{DateTime, TimeZone, Utc};
use taskboard::core::event::{Event, EventKind, fields_of};
use taskboard::shell::event_log::{EventLog, for_each_event, read_log};

use crate::support::TempDir;

fn ts() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 20, 15, 25, 3).unwrap() + chrono::Duration::milliseconds(123)
}

/// One value of every variant, with optional fields both set and unset.
fn every_kind() -> Vec<EventKind> {
    vec![
        EventKind::RuntimeStarted {
            pid: 42,
            instance: "a1b2".into(),
            version: "0.1.0".into(),
            board: "/home/me/task-board.md".into(),
            mode: "run".into(),
        },
        EventKind::RuntimeStopped {
            reason: "sigterm".into(),
            mode: None,
        },
        EventKind::RuntimeStopped {
            reason: "finished".into(),
            mode: Some("once".into()),
        },
        EventKind::FileChanged {
            latency_ms: Some(12),
            bytes: 4096,
        },
        EventKind::FileChanged {
            latency_ms: None,
            bytes: 0,
        },
        EventKind::Pass {
            tasks: 17,
            duration_us: 830,
            dispatched: 2,
        },
        EventKind::TaskDispatched {
            attempt: 1,
            route: "default".into(),
            pid: Some(999),
            agent: "shell".into(),
            phase: None,
            remote: None,
        },
        EventKind::TaskDispatched {
            attempt: 1,
            route: "review".into(),
            pid: Some(1000),
            agent: "review-shell".into(),
            phase: Some("review".into()),
            remote: None,
        },
        EventKind::TaskFinished {
            attempt: 1,
            exit_code: Some(3),
            signal: None,
            duration_ms: 1500,
            outcome: "failed:exit_3".into(),
            note: Some("line one\nline \"two\"".into()),
            stopped: None,
            phase: Some("review".into()),
            cost_usd: Some(0.125),
            tokens_in: Some(1200),
            tokens_out: Some(300),
            handoff: Some("handoffs/t1.md".into()),
            changed: Some(vec!["src/a.rs".into()]),
        },
        EventKind::TaskFinished {
            attempt: 2,
            exit_code: None,
            signal: Some(9),
            duration_ms: 60_000,
            outcome: "failed:timeout".into(),
            note: None,
            stopped: Some("timeout".into()),
            phase: None,
            cost_usd: None,
            tokens_in: None,
            tokens_out: None,
            handoff: None,
            changed: None,
        },
        EventKind::TaskRetryScheduled {
            attempt: 2,
            at: ts() + chrono::Duration::seconds(30),
        },
        EventKind::TaskDeadlettered {
            attempts: 5,
            path: ".taskboard/dead/t1.md".into(),
        },
        EventKind::TaskInterrupted { attempt: 1 },
        EventKind::TaskCancelled {
            status: "cancelled".into(),
        },
        EventKind::DependencyPromoted {
            deps: vec!["a".into(), "b".into()],
        },
        EventKind::DependencyPromoted { deps: vec![] },
        EventKind::StaleClaimReset {
            status: "ready".into(),
            reason: "pid 123 not running".into(),
            attempt: 1,
        },
        EventKind::LockBroken {
            owner_pid: Some(123),
            owner_instance: Some("ff00".into()),
            reason: "host rebooted".into(),
        },
        EventKind::LockBroken {
            owner_pid: None,
            owner_instance: None,
            reason: "owner record missing".into(),
        },
        EventKind::Lint {
            code: "TB001".into(),
            severity: "warning".into(),
            line: 10,
            column: 3,
            message: "unknown status «x»".into(),
        },
        EventKind::Writeback {
            tasks: vec!["t1".into()],
            bytes: 2048,
        },
        EventKind::WritebackConflict {
            expected: "running".into(),
            found: "ready".into(),
            wanted: "done".into(),
        },
        EventKind::StatusReasserted {
            status: "running".into(),
            replaced: "ready".into(),
        },
        EventKind::ConfigReloaded {
            path: Some("taskboard.toml".into()),
        },
        EventKind::ConfigReloaded { path: None },
        EventKind::RetryRequested {
            from: "failed:exhausted_retries".into(),
            archived: Some("deadletter/archive/A-1-20260420T152500.000Z.json".into()),
        },
        EventKind::Error {
            message: "boom".into(),
            context: Some("writeback".into()),
        },
        EventKind::Error {
            message: "boom".into(),
            context: None,
        },
    ]
}

fn keys(line: &str) -> Vec<String> {
    // serde_json's Map sorts keys, so read the key order with a streaming visitor.
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        out.push(k);
                    }
                    Ok(Keys(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(line).unwrap().0
}

#[test]
fn printed_keys_are_ts_event_task_then_fields_in_declaration_order() {
    let ev = Event::new(
        ts(),
        Some("t1"),
        EventKind::TaskFinished {
            attempt: 1,
            exit_code: Some(0),
            signal: None,
            duration_ms: 5,
            outcome: "done".into(),
            note: Some("ok".into()),
            stopped: None,
            phase: None,
            cost_usd: None,
            tokens_in: None,
            tokens_out: None,
            handoff: None,
            changed: None,
        },
    );
    assert_eq!(
        keys(&ev.to_line()),
        [
            "ts",
            "event",
            "task",
            "attempt",
            "exit_code",
            "duration_ms",
            "outcome",
            "note"
        ]
    );
    assert_eq!(
        ev.to_line(),
        r#"{"ts":"2026-04-20T15:25:03.123Z","event":"task_finished","task":"t1","attempt":1,"exit_code":0,"duration_ms":5,"outcome":"done","note":"ok"}"#
    );

    let runtime = Event::new(
        ts(),
        None,
        EventKind::Pass {
            tasks: 3,
            duration_us: 10,
            dispatched: 0,
        },
    );
    assert_eq!(
        keys(&runtime.to_line()),
        ["ts", "event", "tasks", "duration_us", "dispatched"]
    );
}

/// Every variant, without a task and with one.
fn every_event() -> Vec<Event> {
    let with_and_without = |kind: EventKind| {
        [None, Some("build-docs")].map(|task| Event::new(ts(), task, kind.clone()))
    };
    every_kind()
        .into_iter()
        .flat_map(with_and_without)
        .collect()
}

#[test]
fn every_variant_round_trips_with_and_without_task() {
    for ev in every_event() {
        let line = ev.to_line();
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(Event::from_line(&line).unwrap(), ev, "{line}");
        let ks = keys(&line);
        assert_eq!(ks[0], "ts");
        assert_eq!(ks[1], "event");
        assert_eq!(ks.iter().any(|k| k == "task"), ev.task.is_some());
        if ev.task.is_some() {
            assert_eq!(ks[2], "task");
        }
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], ev.name(), "{line}");
        assert!(
            !line.contains("null"),
            "None fields are omitted, not null: {line}"
        );
    }
}

/// The runtime's log renders an event from its fields without reading its line back: they
/// must be what `tail` reads from the line, or the two would show the event differently.
#[test]
fn an_events_fields_are_those_read_back_from_its_line() {
    for ev in every_event() {
        let line = ev.to_line();
        assert_eq!(ev.fields(), fields_of(line.as_bytes()).unwrap(), "{line}");
    }
}

#[test]
fn ts_is_rfc3339_utc_with_milliseconds_and_z() {
    let with_nanos = ts() + chrono::Duration::nanoseconds(456_789);
    let ev = Event::new(with_nanos, None, EventKind::TaskInterrupted { attempt: 1 });
    let value: serde_json::Value = serde_json::from_str(&ev.to_line()).unwrap();
    assert_eq!(value["ts"], "2026-04-20T15:25:03.123Z");
    // A whole second still prints its milliseconds.
    let whole = Event::new(
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        None,
        EventKind::TaskInterrupted { attempt: 1 },
    );
    assert!(
        whole
            .to_line()
            .starts_with(r#"{"ts":"2026-01-02T03:04:05.000Z","#),
        "{}",
        whole.to_line()
    );
    // Round trip holds for events built with new(), whatever the clock's precision.
    assert_eq!(Event::from_line(&ev.to_line()).unwrap(), ev);
}

#[test]
fn unknown_event_and_missing_fields_are_errors_not_panics() {
    assert!(Event::from_line(r#"{"ts":"2026-04-20T15:25:03.123Z","event":"nope"}"#).is_err());
    assert!(Event::from_line(r#"{"ts":"2026-04-20T15:25:03.123Z","event":"pass"}"#).is_err());
    assert!(Event::from_line(r#"{"event":"task_interrupted","attempt":1}"#).is_err());
    assert!(Event::from_line("").is_err());
    assert!(Event::from_line("[1,2]").is_err());
}

#[test]
fn concurrent_appenders_never_interleave_lines() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 250;
    let dir = TempDir::new("concurrent");
    let path = dir.join("events.jsonl");
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let log = Arc::new(EventLog::open(&path).unwrap());
                // Long lines make a torn or interleaved write visible.
                let note = format!("{t}").repeat(700);
                barrier.wait();
                for i in 0..PER_THREAD {
                    let ev = Event::new(
                        Utc::now(),
                        Some(&format!("t{t}")),
                        EventKind::TaskFinished {
                            attempt: i as u32,
                            exit_code: Some(0),
                            signal: None,
                            duration_ms: 1,
                            outcome: "done".into(),
                            note: Some(note.clone()),
                            stopped: None,
                            phase: None,
                            cost_usd: None,
                            tokens_in: None,
                            tokens_out: None,
                            handoff: None,
                            changed: None,
                        },
                    );
                    if i % 2 == 0 {
                        log.append(&ev).unwrap();
                    } else {
                        log.append_all(std::slice::from_ref(&ev)).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let read = read_log(&path).unwrap();
    assert!(read.bad_lines.is_empty(), "{:?}", read.bad_lines.first());
    assert!(!read.torn_tail);
    assert_eq!(read.events.len(), THREADS * PER_THREAD);
    for t in 0..THREADS {
        let mine: Vec<u32> = read
            .events
            .iter()
            .filter(|e| e.task.as_deref() == Some(&format!("t{t}")))
            .map(|e| match &e.kind {
                EventKind::TaskFinished { attempt, note, .. } => {
                    assert_eq!(note.as_deref(), Some(&*format!("{t}").repeat(700)));
                    *attempt
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // One writer's lines keep their order.
        assert_eq!(mine, (0..PER_THREAD as u32).collect::<Vec<_>>());
    }
}

#[test]
fn shared_appender_behind_arc_across_threads() {
    let dir = TempDir::new("shared");
    let path = dir.join("events.jsonl");
    let log = Arc::new(EventLog::open(&path).unwrap());
    thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                let evs: Vec<Event> = (0..50)
                    .map(|_| {
                        Event::new(
                            Utc::now(),
                            Some(&format!("t{t}")),
                            EventKind::TaskInterrupted { attempt: 1 },
                        )
                    })
                    .collect();
                log.append_all(&evs).unwrap();
            });
        }
    });
    let read = read_log(&path).unwrap();
    assert_eq!(read.events.len(), 200);
    assert!(read.bad_lines.is_empty() && !read.torn_tail);
}

#[cfg(unix)]
#[test]
fn log_is_created_with_mode_0644_and_appends() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let path = dir.join("events.jsonl");
    let ev = Event::new(
        ts(),
        None,
        EventKind::RuntimeStopped {
            reason: "x".into(),
            mode: None,
        },
    );
    EventLog::open(&path).unwrap().append(&ev).unwrap();
    EventLog::open(&path).unwrap().append(&ev).unwrap();
    let meta = fs::metadata(&path).unwrap();
    // The umask can only remove bits.
    assert_eq!(meta.permissions().mode() & 0o7133, 0);
    assert_eq!(read_log(&path).unwrap().events, vec![ev.clone(), ev]);
}

#[test]
fn torn_last_line_is_skipped_and_flagged() {
    let dir = TempDir::new("torn");
    let path = dir.join("events.jsonl");
    let good = Event::new(ts(), Some("a"), EventKind::TaskInterrupted { attempt: 1 });
    let line = good.to_line();
    let mut f = fs::File::create(&path).unwrap();
    write!(f, "{line}\n{line}\n{}", &line[..line.len() / 2]).unwrap();
    drop(f);
    let read = read_log(&path).unwrap();
    assert_eq!(read.events, vec![good.clone(), good.clone()]);
    assert!(read.bad_lines.is_empty());
    assert!(read.torn_tail);

    // A complete last line that only lacks its newline is kept.
    fs::write(&path, format!("{line}\n{line}")).unwrap();
    let read = read_log(&path).unwrap();
    assert_eq!(read.events.len(), 2);
    assert!(!read.torn_tail && read.bad_lines.is_empty());

    // Appending after a torn tail: the torn bytes become a bad line in the middle, and the
    // appended event starts a line of its own.
    fs::write(&path, format!("{line}\n{}", &line[..10])).unwrap();
    EventLog::open(&path).unwrap().append(&good).unwrap();
    let read = read_log(&path).unwrap();
    assert_eq!(read.events, vec![good.clone(), good.clone()]);
    assert_eq!(read.bad_lines.len(), 1);
    assert_eq!(read.bad_lines[0].0, 2);
    assert!(!read.torn_tail);
}

#[test]
fn middle_garbage_and_unknown_events_are_reported_and_skipped() {
    let dir = TempDir::new("garbage");
    let path = dir.join("events.jsonl");
    let good = Event::new(
        ts(),
        None,
        EventKind::RuntimeStopped {
            reason: "done".into(),
            mode: None,
        },
    );
    let line = good.to_line();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(format!("{line}\nnot json at all\n{line}\n\n").as_bytes());
    bytes.extend_from_slice(
        b"{\"ts\":\"2026-04-20T15:25:03.123Z\",\"event\":\"from_the_future\"}\n",
    );
    bytes.extend_from_slice(b"\xff\xfe\n");
    bytes.extend_from_slice(format!("{line}\n").as_bytes());
    fs::write(&path, bytes).unwrap();
    let read = read_log(&path).unwrap();
    assert_eq!(read.events.len(), 3);
    let lines: Vec<usize> = read.bad_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [2, 5, 6]);
    assert!(
        read.bad_lines[1].1.contains("from_the_future"),
        "{:?}",
        read.bad_lines[1]
    );
    assert!(!read.torn_tail);
}

#[test]
fn missing_log_is_an_io_error_and_empty_log_is_empty() {
    let dir = TempDir::new("empty");
    assert!(read_log(dir.join("absent.jsonl")).is_err());
    fs::write(dir.join("empty.jsonl"), "").unwrap();
    assert_eq!(
        read_log(dir.join("empty.jsonl")).unwrap(),
        Default::default()
    );
}

fn stream_many(lines: usize) {
    let dir = TempDir::new("stream");
    let path = dir.join("events.jsonl");
    {
        let mut out = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        let line = Event::new(ts(), Some("t"), EventKind::TaskInterrupted { attempt: 1 }).to_line();
        for _ in 0..lines {
            out.write_all(line.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    let mut seen = 0usize;
    let scan = for_each_event(&path, |ev| {
        assert_eq!(ev.name(), "task_interrupted");
        seen += 1;
    })
    .unwrap();
    assert_eq!(seen, lines);
    assert_eq!(scan.events, lines);
    assert!(scan.bad_lines.is_empty() && !scan.torn_tail);
}

#[test]
fn streaming_reader_counts_every_line() {
    stream_many(20_000);
}

/// `cargo test --release -- --ignored` for the full-size run.
#[test]
#[ignore]
fn streaming_reader_handles_a_million_lines() {
    stream_many(1_000_000);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn any_ts() -> impl Strategy<Value = DateTime<Utc>> {
        // Year 1970 to 2200, any millisecond.
        (0i64..7_258_118_400_000).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
    }

    fn any_kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            (
                any::<u32>(),
                proptest::option::of(any::<i32>()),
                proptest::option::of(any::<i32>()),
                any::<u64>(),
                ".*",
                proptest::option::of(".*"),
                proptest::option::of(".*"),
            )
                .prop_map(
                    |(attempt, exit_code, signal, duration_ms, outcome, note, stopped)| {
                        EventKind::TaskFinished {
                            attempt,
                            exit_code,
                            signal,
                            duration_ms,
                            outcome,
                            note,
                            stopped,
                            phase: None,
                            cost_usd: None,
                            tokens_in: None,
                            tokens_out: None,
                            handoff: None,
                            changed: None,
                        }
                    }
                ),
            (proptest::collection::vec(".*", 0..4))
                .prop_map(|deps| EventKind::DependencyPromoted { deps }),
            (any::<u32>(), any_ts())
                .prop_map(|(attempt, at)| EventKind::TaskRetryScheduled { attempt, at }),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(".*"),
                ".*"
            )
                .prop_map(|(owner_pid, owner_instance, reason)| {
                    EventKind::LockBroken {
                        owner_pid,
                        owner_instance,
                        reason,
                    }
                }),
            (".*", ".*", any::<usize>(), any::<usize>(), ".*").prop_map(
                |(code, severity, line, column, message)| EventKind::Lint {
                    code,
                    severity,
                    line,
                    column,
                    message,
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn any_event_round_trips_on_one_line(
            ts in any_ts(),
            task in proptest::option::of(".*"),
            kind in any_kind(),
        ) {
            let ev = Event::new(ts, task.as_deref(), kind);
            let line = ev.to_line();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(Event::from_line(&line).unwrap(), ev);
        }
    }
}
