//! Torture: a simulated person edits the board at random while `taskboard run` runs tasks that
//! succeed, fail, block, time out or sleep (each task's `- sim:` field says which). At the end
//! the board, the run log and `events.jsonl` are checked against the person's model.
//!
//! `TASKBOARD_SEED` replays a run; `TASKBOARD_LONG=1` makes 10,000 edits instead of 200;
//! `TASKBOARD_STALE` sets the fraction of saves made from a stale buffer (default 0.1).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::{Rng, Sandbox, long_run, poll, read_runs};
use taskboard::board::Board;
use taskboard::events::{EventKind, read_log};

const SIMS: [&str; 5] = ["ok", "fail", "block", "sleep", "hang"];
const PERSON_STATUSES: [&str; 5] = [
    "ready",
    "done",
    "failed:person-gave-up",
    "blocked:me:later",
    "ready",
];

/// The board with every status token removed: the bytes the runtime must never change.
fn without_statuses(text: &str) -> String {
    let b = Board::parse(text);
    let mut out = text.to_string();
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
}

fn status_map(text: &str) -> BTreeMap<String, String> {
    Board::parse(text)
        .tasks
        .iter()
        .filter_map(|t| Some((t.id.clone(), t.status.as_ref()?.raw.clone())))
        .collect()
}

fn new_task(id: usize, sim: &str) -> String {
    format!(
        "## P-{id}: task {id} ({sim})\n- status: ready\n- sim: {sim}\n\nWhat task {id} is about.\n\n"
    )
}

fn event_lines(sb: &Sandbox) -> usize {
    std::fs::read_to_string(sb.path("events.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// One random edit of `text`. Returns the new text and the tasks whose status it set.
fn edit(rng: &mut Rng, text: &str, next_id: &mut usize) -> (String, Vec<String>) {
    let board = Board::parse(text);
    let tasks: Vec<_> = board.tasks.iter().filter(|t| t.level == 2).collect();
    let mut out = text.to_string();
    let pick = rng.below(100);
    if tasks.is_empty() || pick < 15 {
        // Add a task at the end.
        *next_id += 1;
        let sim = SIMS[rng.below(SIMS.len() as u64) as usize];
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_task(*next_id, sim));
        return (out, Vec::new());
    }
    let t = tasks[rng.below(tasks.len() as u64) as usize];
    match pick {
        15..40 => {
            // Edit the description.
            let at = t.block.end;
            out.insert_str(at, &format!("Edited {}.\n", rng.below(1_000_000)));
            (out, Vec::new())
        }
        40..55 => {
            // Move a whole task block before another task.
            let other = tasks[rng.below(tasks.len() as u64) as usize];
            if other.id == t.id || !text[t.block.clone()].ends_with('\n') {
                return (out, Vec::new());
            }
            let block = text[t.block.clone()].to_string();
            let (to, from) = (other.block.start, t.block.clone());
            out.replace_range(from.clone(), "");
            let to = if to > from.start {
                to - block.len()
            } else {
                to
            };
            out.insert_str(to, &block);
            (out, Vec::new())
        }
        55..90 => {
            // Flip a status (also on tasks the runtime may be running).
            let Some(s) = &t.status else {
                return (out, Vec::new());
            };
            let new = PERSON_STATUSES[rng.below(PERSON_STATUSES.len() as u64) as usize];
            out.replace_range(s.range.clone(), new);
            (out, vec![t.id.clone()])
        }
        _ => {
            // Blank lines.
            out.insert_str(t.block.end, "\n\n");
            (out, Vec::new())
        }
    }
}

fn save(rng: &mut Rng, sb: &Sandbox, text: &str) {
    if rng.chance(0.5) {
        std::fs::write(&sb.board, text).unwrap();
    } else {
        let tmp = sb.path(".task-board.md.swp-tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &sb.board).unwrap();
    }
}

#[test]
fn a_person_editing_at_random_loses_nothing_and_nothing_runs_twice() {
    let mut rng = Rng::from_env("torture");
    let edits = if long_run() { 10_000 } else { 200 };
    let stale: f64 = std::env::var("TASKBOARD_STALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1);
    let mut sb = Sandbox::new("torture");
    sb.script("sim.sh", support::SIM_EXECUTOR);
    sb.config(
        "debounce_ms = 20\nmax_parallel = 4\nretry_backoff = \"100ms\"\ngrace = \"200ms\"",
        "[executors.default]\ncommand = [\"./sim.sh\"]\ntimeout = \"1s\"\nenv = { SIM_LOG = \"runs.log\" }\n",
    );
    let mut next_id = 0;
    let mut text = String::from("# Torture board\n\nNotes at the top.\n\n");
    for sim in SIMS {
        next_id += 1;
        text.push_str(&new_task(next_id, sim));
    }
    sb.write_board(&text);
    let pid = sb.start_run();

    let mut person_text = text.clone();
    // The event-log line count at the person's last save that set each task's status.
    let mut touched: BTreeMap<String, usize> = BTreeMap::new();
    let mut reads: Vec<String> = vec![text];
    for _ in 0..edits {
        std::thread::sleep(Duration::from_millis(rng.below(40) + 2));
        let fresh = std::fs::read_to_string(&sb.board).unwrap();
        reads.push(fresh.clone());
        if reads.len() > 8 {
            reads.remove(0);
        }
        // Usually the editor reloads a clean buffer; sometimes the buffer is stale.
        let base = if rng.chance(stale) {
            reads[rng.below(reads.len() as u64) as usize].clone()
        } else {
            fresh.clone()
        };
        let (new, flipped) = edit(&mut rng, &base, &mut next_id);
        // A status the person writes that differs from the file is a touch of that status.
        let on_disk = status_map(&fresh);
        let mut touches: BTreeSet<String> = flipped.into_iter().collect();
        for (id, st) in status_map(&new) {
            if on_disk.get(&id) != Some(&st) {
                touches.insert(id);
            }
        }
        let mark = event_lines(&sb);
        save(&mut rng, &sb, &new);
        for id in touches {
            touched.insert(id, mark);
        }
        person_text = new;
    }

    // Settle: nothing running, no retry pending, events quiet.
    let settled = || {
        let st = sb.statuses();
        let busy = st
            .iter()
            .any(|(_, s)| s.starts_with("running:") || s.starts_with("blocked:retry:"));
        if busy || sb.count("task_dispatched") != sb.count("task_finished") {
            return false;
        }
        let n = event_lines(&sb);
        std::thread::sleep(Duration::from_millis(300));
        n == event_lines(&sb)
    };
    // A deadline for the work left, not a speed bound: the long variant's board holds over a
    // thousand tasks when the edits stop, the short one a few dozen.
    let settle_within =
        Duration::from_secs(60) + Duration::from_millis(250) * sb.statuses().len() as u32;
    assert!(
        poll(settle_within, settled),
        "the runtime did not settle\nboard:\n{}",
        sb.board_text()
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));

    let final_text = sb.board_text();
    let log = read_log(sb.path("events.jsonl")).unwrap();
    // (4) Every line is valid JSON of a known event.
    assert!(log.bad_lines.is_empty(), "bad lines: {:?}", log.bad_lines);
    assert!(!log.torn_tail);

    // (1) Every non-status byte the person wrote is there.
    assert_eq!(
        without_statuses(&final_text),
        without_statuses(&person_text),
        "non-status bytes differ"
    );
    // Statuses: replay what the runtime wrote, per task, with the event index.
    let raw_lines: Vec<String> = std::fs::read_to_string(sb.path("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(raw_lines.len(), log.events.len());
    let mut writes: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut written_back: BTreeMap<String, usize> = BTreeMap::new();
    let mut open_runs: BTreeMap<String, u32> = BTreeMap::new();
    let mut dispatched: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut stopped_runs: std::collections::BTreeSet<(String, u32)> =
        std::collections::BTreeSet::new();
    // Attempts used, per task, in order: by a dispatch or by the reset of a dead claim.
    let mut consumed: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (i, ev) in log.events.iter().enumerate() {
        let task = ev.task.clone().unwrap_or_default();
        match &ev.kind {
            EventKind::Writeback { tasks, .. } => {
                for t in tasks {
                    written_back.insert(t.clone(), i);
                }
            }
            EventKind::TaskDispatched { attempt, .. } => {
                writes
                    .entry(task.clone())
                    .or_default()
                    .push((i, "running:".into()));
                assert!(
                    open_runs.insert(task.clone(), *attempt).is_none(),
                    "{task} dispatched while a run of it was open (line {})",
                    i + 1
                );
                consumed.entry(task.clone()).or_default().push(*attempt);
                dispatched.entry(task).or_default().push(*attempt);
            }
            EventKind::TaskFinished {
                attempt,
                outcome,
                stopped,
                ..
            } => {
                if stopped.is_some() {
                    stopped_runs.insert((task.clone(), *attempt));
                }
                // (4) task_dispatched precedes the matching task_finished.
                assert_eq!(
                    open_runs.remove(&task),
                    Some(*attempt),
                    "{task}: task_finished attempt {attempt} without its dispatch (line {})",
                    i + 1
                );
                if !matches!(outcome.as_str(), "cancelled" | "interrupted" | "none") {
                    writes.entry(task).or_default().push((i, outcome.clone()));
                }
            }
            EventKind::WritebackConflict { wanted, .. } => {
                let w = writes.entry(task).or_default();
                if w.last().is_some_and(|(_, s)| s == wanted) {
                    w.pop();
                }
            }
            EventKind::StatusReasserted { status, .. } => {
                writes.entry(task).or_default().push((i, status.clone()));
            }
            EventKind::TaskInterrupted { .. } | EventKind::DependencyPromoted { .. } => {
                writes.entry(task).or_default().push((i, "ready".into()));
            }
            EventKind::StaleClaimReset { attempt, .. } => {
                consumed.entry(task.clone()).or_default().push(*attempt);
                let to = if *attempt >= 3 {
                    "failed:exhausted_retries"
                } else {
                    "ready"
                };
                writes.entry(task).or_default().push((i, to.into()));
            }
            _ => {}
        }
    }
    assert!(open_runs.is_empty(), "runs never finished: {open_runs:?}");
    let person_status = status_map(&person_text);
    for (id, st) in status_map(&final_text) {
        // (3) Every status is legal.
        assert!(
            taskboard::status::Status::parse(&st).is_ok(),
            "{id}: illegal status `{st}`"
        );
        let Some(mine) = person_status.get(&id) else {
            continue;
        };
        let touch = touched.get(&id).copied().unwrap_or(0);
        let runtime_after = written_back.get(&id).is_some_and(|i| *i + 1 > touch);
        if &st != mine {
            // (1) A status differs only where the runtime wrote it after the person's touch.
            assert!(
                runtime_after,
                "{id}: person wrote `{mine}`, board says `{st}`, and the runtime wrote nothing after the person's last touch (event line {touch})"
            );
            // (5) ... and then it is the runtime's last word.
            let last = writes
                .get(&id)
                .and_then(|w| w.last())
                .map(|(_, s)| s.clone());
            let ok = last.as_ref().is_some_and(|l| {
                &st == l
                    || (l == "running:" && st.starts_with("running:"))
                    || (l.starts_with("blocked:retry:") && st.starts_with("blocked:retry:"))
            });
            assert!(
                ok,
                "{id}: board says `{st}` but the runtime's last written status was {last:?}"
            );
        }
    }

    // (2) No task ran more often than its attempts allow.
    for (id, attempts) in &consumed {
        for w in attempts.windows(2) {
            assert!(
                w[1] == w[0] + 1 || w[1] == 1 || w[1] == w[0],
                "{id}: attempts went {} -> {} (all: {attempts:?})",
                w[0],
                w[1]
            );
        }
        assert!(attempts.iter().all(|a| *a <= 3), "{id}: {attempts:?}");
    }
    let runs = read_runs(&sb.path("runs.log"));
    // Every dispatch has its executor's run, except one the runtime stopped (a person's decision,
    // a timeout) before the executor's shell reached the line that logs its start.
    let mut logged: BTreeMap<(String, u32), usize> = BTreeMap::new();
    for r in &runs {
        *logged.entry((r.id.clone(), r.attempt)).or_default() += 1;
    }
    let mut dispatch_count: BTreeMap<(String, u32), usize> = BTreeMap::new();
    for (id, attempts) in &dispatched {
        for a in attempts {
            *dispatch_count.entry((id.clone(), *a)).or_default() += 1;
        }
    }
    for (key, d) in &dispatch_count {
        let r = logged.get(key).copied().unwrap_or(0);
        assert!(r <= *d, "{key:?}: {r} executor runs for {d} dispatches");
        assert!(
            r == *d || stopped_runs.contains(key),
            "{key:?}: dispatched {d} times, its executor ran {r} times, and the runtime stopped none"
        );
    }
    assert!(
        logged.keys().all(|k| dispatch_count.contains_key(k)),
        "an executor ran without a task_dispatched event"
    );
    // A run stopped by its timeout writes no end line: it ended by its task_finished.
    let mut finished_at: BTreeMap<(String, u32), Vec<f64>> = BTreeMap::new();
    for ev in &log.events {
        if let (EventKind::TaskFinished { attempt, .. }, Some(t)) = (&ev.kind, &ev.task) {
            finished_at
                .entry((t.clone(), *attempt))
                .or_default()
                .push(ev.ts.timestamp_millis() as f64 / 1000.0 + 0.001);
        }
    }
    support::assert_no_overlapping_runs(&runs, |r| {
        finished_at
            .get(&(r.id.clone(), r.attempt))
            .and_then(|ts| ts.iter().copied().find(|t| *t >= r.start))
            .unwrap_or_else(|| panic!("run without an end and without task_finished: {r:?}"))
    });
    eprintln!(
        "torture: {edits} edits, {} runs, {} writebacks, {} re-asserted, {} conflicts",
        runs.len(),
        sb.count("writeback"),
        sb.count("status_reasserted"),
        sb.count("writeback_conflict")
    );
}
