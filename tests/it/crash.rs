//! Crash tests: `kill -9` the runtime at random points (starting up, dispatching, writing back,
//! while executors run), restart it, and check that nothing is lost, duplicated or left stuck.
//!
//! `TASKBOARD_SEED` replays a run; `TASKBOARD_LONG=1` makes 1,000 kills instead of 15.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::{Rng, RunRecord, Sandbox, epoch_now, long_run, pid_alive, poll, read_runs};
use taskboard::core::event::EventKind;
use taskboard::shell::event_log::read_log;
use taskboard::shell::lock::{LockState, Locks};
use taskboard::shell::process::group_alive;

fn config(sb: &Sandbox, max_parallel: usize) {
    sb.script("sim.sh", support::SIM_EXECUTOR);
    sb.config(
        &format!(
            "debounce_ms = 20\nmax_parallel = {max_parallel}\nmax_attempts = 1000\nretry_backoff = \"0s\"\ngrace = \"200ms\""
        ),
        "[executors.default]\ncommand = [\"./sim.sh\"]\nenv = { SIM_LOG = \"runs.log\" }\n",
    );
}

fn board(n: usize) -> String {
    let mut text = String::from("# Crash board\n\nSome notes a person keeps here.\n");
    for i in 1..=n {
        let sim = match i % 4 {
            0 => "linger",
            1 => "ok",
            _ => "sleep",
        };
        text.push_str(&format!(
            "\n## T-{i}: task number {i}\n- status: ready\n- sim: {sim}\n\nDescription of task {i}.\n"
        ));
    }
    text
}

/// The events of the runtime with this pid: everything after its `runtime_started`.
fn events_since_start(sb: &Sandbox, pid: u32) -> Vec<taskboard::core::event::Event> {
    let Ok(log) = read_log(sb.path("events.jsonl")) else {
        return Vec::new();
    };
    let start = log
        .events
        .iter()
        .rposition(|e| matches!(&e.kind, EventKind::RuntimeStarted { pid: p, .. } if *p == pid));
    match start {
        Some(i) => log.events[i..].to_vec(),
        None => Vec::new(),
    }
}

fn ids(sb: &Sandbox) -> BTreeSet<String> {
    sb.statuses().into_iter().map(|(id, _)| id).collect()
}

/// Every `running:` task has a lock whose owner is `pid` or a live process. A claim whose lock
/// is missing is re-checked against a fresh read of the board (it may just have finished).
fn check_running_tasks_have_live_owners(sb: &Sandbox, pid: u32) {
    let locks = Locks::new(sb.path(".taskboard/locks"));
    for (id, status) in sb.statuses() {
        if !status.starts_with("running:") {
            continue;
        }
        let ok = match locks.read(&id) {
            Some(LockState::Held(owner)) => owner.pid == pid || pid_alive(owner.pid as i32),
            _ => false,
        };
        if !ok {
            let now: BTreeMap<String, String> = sb.statuses().into_iter().collect();
            assert_ne!(
                now.get(&id),
                Some(&status),
                "{id} is `{status}` after the first pass of runtime {pid} without a live owner\nboard:\n{}",
                sb.board_text()
            );
        }
    }
}

/// Runs grouped by task; within one episode (between the person's resets) no attempt twice.
fn check_attempts_unique(runs: &[RunRecord], resets: &BTreeMap<String, Vec<f64>>) {
    let mut seen = BTreeSet::new();
    for r in runs {
        let episode = resets
            .get(&r.id)
            .map_or(0, |ts| ts.iter().filter(|t| **t <= r.start).count());
        assert!(
            seen.insert((r.id.clone(), episode, r.attempt)),
            "{} ran attempt {} twice in one episode: {r:?}",
            r.id,
            r.attempt
        );
    }
}

#[test]
fn a_torn_last_line_does_not_swallow_the_next_runtime_event() {
    let mut sb = Sandbox::new("torn");
    config(&sb, 2);
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    // What a crash mid-append leaves: a good line, then a line cut short.
    let fragment = r#"{"ts":"2026-04-20T15:25:03.000Z","event":"pa"#;
    sb.write(
        "events.jsonl",
        &format!(
            "{}\n{fragment}",
            r#"{"ts":"2026-04-20T15:25:02.000Z","event":"runtime_stopped","reason":"x"}"#
        ),
    );
    let before = read_log(sb.path("events.jsonl")).unwrap();
    assert!(before.torn_tail);
    let pid = sb.start_run();
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let log = read_log(sb.path("events.jsonl")).unwrap();
    assert!(!log.torn_tail, "the log ends torn after a clean stop");
    // The fragment stays a line of its own; the new runtime's first event is intact.
    assert_eq!(log.bad_lines.len(), 1, "{:?}", log.bad_lines);
    assert_eq!(log.bad_lines[0].0, 2);
    assert!(
        log.events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::RuntimeStarted { pid: p, .. } if *p == pid)),
        "runtime_started of the new runtime is missing:\n{}",
        std::fs::read_to_string(sb.path("events.jsonl")).unwrap()
    );
}

#[test]
fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let mut rng = Rng::from_env("crash");
    let kills = if long_run() { 1000 } else { 15 };
    let mut sb = Sandbox::new("crash");
    config(&sb, 4);
    let n = 12;
    sb.write_board(&board(n));
    let mut expected_ids = ids(&sb);
    let mut next_id = n;
    let mut person_text = board(n);
    let runs_log = sb.path("runs.log");
    // When each run without an end line was known to be dead.
    let mut gone_at: BTreeMap<i32, f64> = BTreeMap::new();
    // The person's resets (done -> ready) per task: each starts a new episode.
    let mut resets: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut recovery_ms: Vec<u64> = Vec::new();

    for k in 0..kills {
        let started = Instant::now();
        let pid = sb.spawn_run();
        // Restart checks: the first pass leaves no running task without a live owner.
        assert!(
            poll(Duration::from_secs(20), || events_since_start(&sb, pid)
                .iter()
                .any(|e| matches!(e.kind, EventKind::Pass { .. }))),
            "runtime {pid} made no pass\n{}",
            sb.stderr()
        );
        let first_pass = events_since_start(&sb, pid);
        if first_pass
            .iter()
            .any(|e| matches!(e.kind, EventKind::StaleClaimReset { .. }))
        {
            recovery_ms.push(started.elapsed().as_millis() as u64);
        }
        check_running_tasks_have_live_owners(&sb, pid);
        // Executors a killed runtime left behind (their process groups) are stopped on restart.
        let orphans: Vec<i32> = read_runs(&runs_log)
            .iter()
            .filter(|r| r.end.is_none() && gone_at.contains_key(&r.pid))
            .map(|r| r.pid)
            .collect();
        assert!(
            poll(Duration::from_secs(10), || orphans
                .iter()
                .all(|g| !group_alive(*g as u32))),
            "process groups of killed executors still alive after restart: {:?}",
            orphans
                .iter()
                .filter(|g| group_alive(**g as u32))
                .collect::<Vec<_>>()
        );

        // Let it work for a random while, then kill it.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        sb.kill9(pid);
        // No executor outlives its runtime: each dies with it (PR_SET_PDEATHSIG).
        let open: Vec<i32> = read_runs(&runs_log)
            .iter()
            .filter(|r| r.end.is_none() && !gone_at.contains_key(&r.pid))
            .map(|r| r.pid)
            .collect();
        assert!(
            poll(Duration::from_secs(10), || open
                .iter()
                .all(|p| !pid_alive(*p))),
            "executors outlived their runtime (kill {k})"
        );
        let t = epoch_now();
        for p in open {
            gone_at.insert(p, t);
        }
        // The log has no torn line except possibly the last one.
        let log = read_log(sb.path("events.jsonl")).unwrap();
        assert!(
            log.bad_lines.is_empty(),
            "bad lines after kill {k}: {:?}",
            log.bad_lines
        );
        // The board parses, keeps every task, and every status is legal.
        assert_eq!(ids(&sb), expected_ids, "task set changed after kill {k}");
        for (id, st) in sb.statuses() {
            assert!(
                taskboard::core::status::Status::parse(&st).is_ok(),
                "{id} has an illegal status `{st}`"
            );
        }
        // Keep work coming: the person sets a few finished tasks back to ready.
        let text = sb.board_text();
        let b = taskboard::core::board::Board::parse(&text);
        let mut out = text.clone();
        let mut spans: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for t in &b.tasks {
            if let Some(s) = &t.status
                && s.raw == "done"
                && rng.chance(0.5)
            {
                spans.push((s.range.clone(), t.id.to_string()));
            }
        }
        spans.sort_by_key(|s| std::cmp::Reverse(s.0.start));
        let now = epoch_now();
        for (range, id) in spans {
            out.replace_range(range, "ready");
            resets.entry(id).or_default().push(now);
        }
        // And adds a task now and then.
        if rng.chance(0.5) {
            next_id += 1;
            let sim = ["ok", "sleep", "linger"][rng.below(3) as usize];
            out.push_str(&format!(
                "\n## T-{next_id}: added later\n- status: ready\n- sim: {sim}\n\nAdded after kill {k}.\n"
            ));
            expected_ids.insert(format!("T-{next_id}"));
        }
        if out != text {
            sb.write_board(&out);
        }
        person_text = out;
    }

    // A last restart finishes everything.
    // A kill between a lock's mkdir and its owner record leaves a folder that is broken only
    // after the runtime's 30 s grace for unreadable locks: allow for it.
    let pid = sb.spawn_run();
    assert!(
        poll(Duration::from_secs(75), || sb
            .statuses()
            .iter()
            .all(|(_, st)| st == "done")),
        "not all tasks done after the last restart\nboard:\n{}\nlocks: {:?}",
        sb.board_text(),
        sb.lock_dirs()
    );
    assert!(
        poll(Duration::from_secs(10), || sb.lock_dirs().is_empty()),
        "lock folders leaked at a quiet point: {:?}",
        sb.lock_dirs()
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    assert_eq!(ids(&sb), expected_ids);
    let runs = read_runs(&runs_log);
    support::assert_no_overlapping_runs(&runs, |r| gone_at[&r.pid]);
    check_attempts_unique(&runs, &resets);
    let log = read_log(sb.path("events.jsonl")).unwrap();
    assert!(log.bad_lines.is_empty() && !log.torn_tail);
    // Non-status bytes are untouched: blank every status and compare with the original.
    let strip = |t: &str| {
        let b = taskboard::core::board::Board::parse(t);
        let mut out = t.to_string();
        let mut ranges: Vec<_> = b
            .tasks
            .iter()
            .filter_map(|t| t.status.as_ref().map(|s| s.range.clone()))
            .collect();
        ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
        for r in ranges {
            out.replace_range(r, "");
        }
        out
    };
    assert_eq!(strip(&sb.board_text()), strip(&person_text));
    recovery_ms.sort_unstable();
    if let (Some(p50), Some(max)) = (recovery_ms.get(recovery_ms.len() / 2), recovery_ms.last()) {
        eprintln!(
            "crash: {kills} kills, {} runs, restart to first pass with stale_claim_reset: p50 {p50} ms, max {max} ms ({} samples)",
            runs.len(),
            recovery_ms.len()
        );
    }
}

#[test]
fn a_reboot_kills_everything_and_the_work_still_finishes() {
    let mut sb = Sandbox::new("reboot");
    config(&sb, 4);
    sb.write_board(&board(8));
    let pid = sb.spawn_run();
    sb.wait_until("some tasks running", |s| {
        s.statuses()
            .iter()
            .filter(|(_, st)| st.starts_with("running:"))
            .count()
            >= 2
    });
    // Everything dies at once: the runtime and every executor and its children.
    sb.kill9(pid);
    for r in read_runs(&sb.path("runs.log")) {
        unsafe { libc::kill(-r.pid, libc::SIGKILL) };
    }
    let killed_at = epoch_now();
    assert!(
        sb.statuses()
            .iter()
            .any(|(_, st)| st.starts_with("running:"))
    );
    let pid = sb.spawn_run();
    sb.wait_until("all done after the reboot", |s| {
        s.statuses().iter().all(|(_, st)| st == "done")
    });
    assert!(sb.count("stale_claim_reset") >= 2);
    assert!(poll(Duration::from_secs(10), || sb.lock_dirs().is_empty()));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let runs = read_runs(&sb.path("runs.log"));
    support::assert_no_overlapping_runs(&runs, |_| killed_at);
}
