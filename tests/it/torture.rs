//! Torture: a simulated person edits the board at random while `taskboard run` runs tasks that
//! succeed, fail, block, time out or sleep (each task's `- sim:` field says which). At the end
//! the board, the run log and `events.jsonl` are checked against the person's model.
//!
//! Two people. The first edits everything, statuses included: every run must be one its
//! decisions or the runtime's own retries explain. The strict one never sets a status (it edits
//! descriptions, adds tasks and notes, moves blocks) and saves from a stale buffer often, while
//! executors end at random moments relative to its saves: every task must run exactly once and
//! end `done`, and every byte it wrote must survive.
//!
//! `TASKBOARD_SEED` replays a run; `TASKBOARD_LONG=1` makes 10,000 edits instead of 300 (500 for
//! the strict person); `TASKBOARD_STALE` sets the fraction of saves made from a stale buffer
//! (default 0.1, and 0.35 for the strict person).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::{Rng, Sandbox, long_run, poll, read_runs, without_statuses};
use taskboard::core::board::Board;
use taskboard::core::event::EventKind;
use taskboard::shell::event_log::{LogRead, log_files, read_log};

const SIMS: [&str; 5] = ["ok", "fail", "block", "sleep", "hang"];
const PERSON_STATUSES: [&str; 5] = [
    "ready",
    "done",
    "failed:person-gave-up",
    "blocked:me:later",
    "ready",
];

fn status_map(text: &str) -> BTreeMap<String, String> {
    Board::parse(text)
        .tasks
        .iter()
        .filter_map(|t| Some((t.id.to_string(), t.status.as_ref()?.raw.to_string())))
        .collect()
}

/// Whether `statuses` gives a task on `board` (both as [`status_map`] reads them) another status
/// than the board has: a save of them would put an older status back.
fn puts_a_status_back(
    statuses: &BTreeMap<String, String>,
    board: &BTreeMap<String, String>,
) -> bool {
    (statuses.iter()).any(|(id, s)| board.get(id).is_some_and(|b| b != s))
}

/// A status that asks the person to act: `blocked:<who>:…` or `failed:…`.
fn asks_person(s: &str) -> bool {
    (s.starts_with("blocked:")
        && !s.starts_with("blocked:retry:")
        && !s.starts_with("blocked:task:"))
        || s.starts_with("failed:")
}

/// A token only the runtime writes: a claim or a retry wait.
fn runtime_only(s: &str) -> bool {
    s.starts_with("running:") || s.starts_with("blocked:retry:")
}

/// `TASKBOARD_STALE`, else `default`: the fraction of saves made from a stale buffer.
fn stale_rate(default: f64) -> f64 {
    std::env::var("TASKBOARD_STALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The person's editor: the board as it last read it, and the few reads before.
///
/// Which saves start from a stale buffer is drawn once, up front, as an exact count at random
/// positions: a rate drawn save by save would leave the count to chance, and a run with few
/// stale saves would test less than it says.
struct Editor {
    reads: Vec<String>,
    stale_at: Vec<bool>,
}

impl Editor {
    /// An editor that first read `first` and will save `saves` times, `stale` of them (a
    /// fraction) from a stale buffer.
    fn new(first: String, rng: &mut Rng, saves: usize, stale: f64) -> Editor {
        let count = ((saves as f64 * stale).round() as usize).min(saves);
        let mut stale_at: Vec<bool> = (0..saves).map(|i| i < count).collect();
        // Fisher-Yates, from the test's own seeded generator so a seed replays the same saves.
        for i in (1..saves).rev() {
            stale_at.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Editor {
            reads: vec![first],
            stale_at,
        }
    }

    /// Reads the board, then returns it and the buffer the next edit starts from: the read just
    /// made, or for a save drawn stale, one of the up to seven reads before it, preferring those
    /// with a status the board no longer has (a buffer opened before the runtime's last write,
    /// the case that can undo one).
    fn buffer(&mut self, rng: &mut Rng, sb: &Sandbox) -> (String, String) {
        let fresh = std::fs::read_to_string(&sb.board).unwrap();
        self.reads.push(fresh.clone());
        if self.reads.len() > 8 {
            self.reads.remove(0);
        }
        if !self.stale_at.pop().expect("a save beyond those planned") {
            return (fresh.clone(), fresh);
        }
        let older = &self.reads[..self.reads.len() - 1];
        let now = status_map(&fresh);
        let behind: Vec<&String> = (older.iter())
            .filter(|r| puts_a_status_back(&status_map(r), &now))
            .collect();
        let base = if behind.is_empty() {
            older[rng.below(older.len() as u64) as usize].clone()
        } else {
            behind[rng.below(behind.len() as u64) as usize].clone()
        };
        (fresh, base)
    }
}

fn new_task(id: usize, sim: &str) -> String {
    format!(
        "## P-{id}: task {id} ({sim})\n- status: ready\n- sim: {sim}\n\nWhat task {id} is about.\n\n"
    )
}

/// The count of event-log lines so far, rotated files included: indices into
/// [`read_history`]'s events. A rotated file never changes again, so its count is kept.
///
/// The runtime may rotate the log while this counts: listed before the rename and counted
/// after it, the live file's lines would be missed (the new live file is empty), and a save
/// placed by that count would land hundreds of events early, leaving the claim it caused
/// unexplained. So the count stands only when the files are the same before and after it.
fn event_lines(sb: &Sandbox) -> usize {
    loop {
        let files = log_files(&sb.dir);
        let count = count_event_lines(sb, &files);
        if log_files(&sb.dir) == files {
            return count;
        }
    }
}

/// The lines of `files` (a listing of the event log's files), the rotated ones counted once.
fn count_event_lines(sb: &Sandbox, files: &[std::path::PathBuf]) -> usize {
    thread_local! {
        static ROTATED: std::cell::RefCell<BTreeMap<std::path::PathBuf, usize>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    let live = sb.path("events.jsonl");
    let count = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    files
        .iter()
        .map(|path| match *path == live {
            true => count(path),
            false => ROTATED.with(|r| {
                *r.borrow_mut()
                    .entry(path.clone())
                    .or_insert_with(|| count(path))
            }),
        })
        .sum()
}

/// The whole event log in the order it was written, rotated files first: a long run rotates
/// `events.jsonl`, and an oracle that read only the live file would not see the runs before.
fn read_history(sb: &Sandbox) -> LogRead {
    let mut all = LogRead::default();
    for path in log_files(&sb.dir) {
        let read = read_log(&path).unwrap();
        all.events.extend(read.events);
        all.bad_lines.extend(read.bad_lines);
        all.torn_tail |= read.torn_tail;
    }
    all
}

/// Every line of the event log, rotated files first.
fn history_lines(sb: &Sandbox) -> Vec<String> {
    (log_files(&sb.dir).iter())
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            text.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
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
            (out, vec![t.id.to_string()])
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
    let edits = if long_run() { 10_000 } else { 300 };
    let stale = stale_rate(0.1);
    let mut sb = Sandbox::new("torture");
    sb.script("sim.sh", support::SIM_EXECUTOR);
    sb.config(
        // A small log size, so that even a short run rotates `events.jsonl` and the oracle must
        // read the whole history.
        "debounce_ms = 20\nmax_parallel = 4\nretry_backoff = \"100ms\"\ngrace = \"200ms\"\nevents_max_size = \"64KiB\"",
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
    // The event-log line counts of every save in which the person typed a new status for a
    // task: their unambiguous decisions. A stale buffer's old statuses are none.
    let mut decisions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    // (event-log line count, status) of saves that changed a task's status, per task.
    let mut status_saves: BTreeMap<String, Vec<(usize, usize, String)>> = BTreeMap::new();
    let mut saves_made = 0usize;
    let mut editor = Editor::new(text, &mut rng, edits, stale);
    for _ in 0..edits {
        // The person's pace between saves (not a wait for the runtime).
        std::thread::sleep(Duration::from_millis(rng.below(40) + 2));
        let (fresh, base) = editor.buffer(&mut rng, &sb);
        let (new, flipped) = edit(&mut rng, &base, &mut next_id);
        // A status the person writes that differs from the file is a touch of that status.
        let on_disk = status_map(&fresh);
        let typed = status_map(&new);
        // Decisions: a status the person typed.
        let decided: Vec<String> = flipped
            .iter()
            .filter(|id| on_disk.get(*id) != typed.get(*id))
            .cloned()
            .collect();
        let mut touches: BTreeSet<String> = flipped.into_iter().collect();
        for (id, st) in &typed {
            if on_disk.get(id) != Some(st) {
                touches.insert(id.clone());
            }
        }
        // Every other status a save puts on the board that no runtime-only token is: a save
        // over a status that asked the person to act is theirs by the documented rule. What a
        // save overwrites may be newer than what the person read (the runtime writes under
        // their buffer), so every `ready` saved is kept, and any other status the save changes
        // against the board as read or as it is just before the save (re-read here).
        let mark = event_lines(&sb);
        let overwritten = status_map(&std::fs::read_to_string(&sb.board).unwrap_or_default());
        // Placed after what the runtime wrote before the re-read (its event may trail its write).
        let save_mark = event_lines(&sb);
        saves_made += 1;
        for (id, st) in &typed {
            let changes = on_disk.get(id) != Some(st) || overwritten.get(id) != Some(st);
            if st == "ready" || (changes && !runtime_only(st)) {
                status_saves.entry(id.clone()).or_default().push((
                    save_mark,
                    saves_made,
                    st.clone(),
                ));
            }
        }
        save(&mut rng, &sb, &new);
        for id in touches {
            touched.insert(id, mark);
        }
        for id in decided {
            decisions.entry(id).or_default().push(mark);
        }
        person_text = new;
    }

    // Settle: nothing running, no retry pending.
    let final_text = settle_and_stop(&mut sb, pid, &person_text, |s| {
        !s.starts_with("running:") && !s.starts_with("blocked:retry:")
    });
    let log = read_history(&sb);
    // Statuses: replay what the runtime wrote, per task, with the event index.
    let raw_lines = history_lines(&sb);
    assert_eq!(raw_lines.len(), log.events.len());
    let mut writes: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut written_back: BTreeMap<String, usize> = BTreeMap::new();
    let mut open_runs: BTreeMap<String, u32> = BTreeMap::new();
    let mut dispatched: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut stopped_runs: std::collections::BTreeSet<(String, u32)> =
        std::collections::BTreeSet::new();
    // Attempts used, per task, in order, with their event-log index: by a dispatch or by the
    // reset of a dead claim.
    let mut consumed: BTreeMap<String, Vec<(usize, u32)>> = BTreeMap::new();
    for (i, ev) in log.events.iter().enumerate() {
        let task = ev.task.clone().unwrap_or_default();
        match &ev.kind {
            EventKind::Writeback { tasks, .. } => {
                for t in tasks {
                    written_back.insert(t.clone(), i);
                }
            }
            EventKind::TaskDispatched { attempt, .. } => {
                // The claim was on the board from its writeback on, before this event.
                let claimed_at = written_back.get(&task).copied().unwrap_or(i);
                writes
                    .entry(task.clone())
                    .or_default()
                    .push((claimed_at, "running:".into()));
                assert!(
                    open_runs.insert(task.clone(), *attempt).is_none(),
                    "{task} dispatched while a run of it was open (line {})",
                    i + 1
                );
                // A run's interval starts when its claim is on the board.
                consumed
                    .entry(task.clone())
                    .or_default()
                    .push((claimed_at, *attempt));
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
                consumed
                    .entry(task.clone())
                    .or_default()
                    .push((i, *attempt));
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
            taskboard::core::status::Status::parse(&st).is_ok(),
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

    // (2) Every run is explained: the first attempt of a task, the next attempt of a series the
    // runtime retries, or a fresh series after the person decided something about the task. A
    // decision is a status they typed, or one a save (a stale buffer's too) put on the board
    // that the documented rules treat as theirs: any status but `ready` and the runtime's own
    // tokens, and `ready` over a status that asked them to act (`blocked:<who>:…`, `failed:…`).
    // `ready` over the runtime's claim, retry wait or `done` is a stale buffer, never a
    // decision. Anything else (a series starting over, an attempt number used twice) is a run
    // nobody asked for.
    for (id, attempts) in &consumed {
        // The task's statuses in order: the runtime's (event index) and the saves' (the event
        // count when saved, so just before that event).
        // (position, 0 runtime / 1 save, save number, status): saves in the order they were made.
        // A runtime event at a save's very position was logged after the save, but its write
        // may have landed before the save or after it (a pass that read the save logs its
        // claim there): either can be what the save replaced.
        let mut timeline: Vec<(usize, u8, usize, &str)> = Vec::new();
        for (i, st) in writes.get(id).into_iter().flatten() {
            timeline.push((*i, 0, 0, st.as_str()));
        }
        for (m, n, st) in status_saves.get(id).into_iter().flatten() {
            timeline.push((*m, 1, *n, st.as_str()));
        }
        timeline.sort();
        let decided_between = |from: usize, to: usize| {
            let typed = decisions
                .get(id)
                .is_some_and(|marks| marks.iter().any(|m| *m <= to && *m + 1 > from));
            let saved = timeline.iter().enumerate().any(|(k, (m, who, _, st))| {
                if *who != 1 || *m < from || *m > to {
                    return false;
                }
                // What this save may have replaced: the last status before its position, and
                // every one placed at it before this save.
                let before = timeline[..k].iter().rposition(|e| e.0 < *m);
                let replaced = before.unwrap_or(0)..k;
                *st != "ready" || timeline[replaced].iter().any(|e| asks_person(e.3))
            });
            typed || saved
        };
        assert_eq!(attempts[0].1, 1, "{id}: first attempt {attempts:?}");
        for w in attempts.windows(2) {
            let ((i0, a0), (i1, a1)) = (w[0], w[1]);
            assert!(
                a1 == a0 + 1 || (a1 == 1 && decided_between(i0, i1)),
                "{id}: attempts went {a0} (event line {}) -> {a1} (event line {}) with no decision of the person's in between (all: {attempts:?}; decisions at {:?}; statuses in order (event index, 0 runtime / 1 save, save number, status): {:?})",
                i0 + 1,
                i1 + 1,
                decisions.get(id),
                timeline
                    .iter()
                    .filter(|(m, _, _, _)| *m + 20 >= i0 && *m <= i1 + 1)
                    .collect::<Vec<_>>()
            );
        }
        assert!(attempts.iter().all(|(_, a)| *a <= 3), "{id}: {attempts:?}");
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

/// One random edit that leaves every status as it is in `text`: a description line, a new task,
/// a note at the top, a moved block, blank lines.
/// Waits until every status on the board is `settled_status`, every dispatch has its finish
/// and the event log is quiet, stops the runtime, and checks what both people rely on: the log
/// parses whole, and every byte the person wrote is on the board, only status values differing.
/// Returns the board at the end.
fn settle_and_stop(
    sb: &mut Sandbox,
    pid: u32,
    person_text: &str,
    settled_status: impl Fn(&str) -> bool,
) -> String {
    // Quiet: no new event for 300 ms (a bounded observation, not a wait for one), seen across
    // the polls rather than by sleeping inside one.
    let mut last_change: Option<(usize, Instant)> = None;
    let settled = || {
        let all = sb.statuses().iter().all(|(_, s)| settled_status(s));
        if !all || sb.count("task_dispatched") != sb.count("task_finished") {
            last_change = None;
            return false;
        }
        let n = event_lines(sb);
        match last_change {
            Some((seen, since)) if seen == n => since.elapsed() >= Duration::from_millis(300),
            _ => {
                last_change = Some((n, Instant::now()));
                false
            }
        }
    };
    // A deadline for the work left, not a speed bound: the long variants' boards hold over a
    // thousand tasks when the edits stop, the short ones a few dozen.
    let settle_within =
        Duration::from_secs(60) + Duration::from_millis(250) * sb.statuses().len() as u32;
    assert!(
        poll(settle_within, settled),
        "the runtime did not settle\nboard:\n{}",
        sb.board_text()
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let final_text = sb.board_text();
    assert!(
        log_files(&sb.dir).len() > 1,
        "the event log never rotated, so reading its whole history went untested"
    );
    let log = read_history(sb);
    // Every line is valid JSON of a known event.
    assert!(log.bad_lines.is_empty(), "bad lines: {:?}", log.bad_lines);
    assert!(!log.torn_tail);
    // Every non-status byte the person wrote is there.
    assert_eq!(
        without_statuses(&final_text),
        without_statuses(person_text),
        "non-status bytes differ"
    );
    final_text
}

fn edit_keeping_statuses(rng: &mut Rng, text: &str, next_id: &mut usize) -> String {
    let board = Board::parse(text);
    let tasks: Vec<_> = board.tasks.iter().filter(|t| t.level == 2).collect();
    let mut out = text.to_string();
    let pick = rng.below(100);
    if tasks.is_empty() || pick < 20 {
        *next_id += 1;
        let nap = format!("nap 0.{:03}", rng.below(400));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_task(*next_id, &nap));
        return out;
    }
    let t = tasks[rng.below(tasks.len() as u64) as usize];
    match pick {
        20..60 => out.insert_str(t.block.end, &format!("Edited {}.\n", rng.below(1_000_000))),
        60..75 => {
            let at = out.find("\n\n").map_or(0, |i| i + 2);
            out.insert_str(at, &format!("A note {}.\n\n", rng.below(1_000_000)));
        }
        75..90 => {
            let other = tasks[rng.below(tasks.len() as u64) as usize];
            if other.id != t.id && text[t.block.clone()].ends_with('\n') {
                let block = text[t.block.clone()].to_string();
                let (to, from) = (other.block.start, t.block.clone());
                out.replace_range(from.clone(), "");
                let to = if to > from.start {
                    to - block.len()
                } else {
                    to
                };
                out.insert_str(to, &block);
            }
        }
        _ => out.insert_str(t.block.end, "\n\n"),
    }
    out
}

#[test]
fn a_person_who_never_sets_a_status_sees_every_task_run_exactly_once_and_keeps_every_byte() {
    let mut rng = Rng::from_env("torture-strict");
    let edits = if long_run() { 10_000 } else { 500 };
    let stale = stale_rate(0.35);
    let mut sb = Sandbox::new("torture-strict");
    sb.script("sim.sh", support::SIM_EXECUTOR);
    sb.config(
        // Rotated in a short run too (see the first person's test).
        "debounce_ms = 20\nmax_parallel = 4\ngrace = \"200ms\"\nevents_max_size = \"64KiB\"",
        "[executors.default]\ncommand = [\"./sim.sh\"]\ntimeout = \"30s\"\nenv = { SIM_LOG = \"runs.log\" }\n",
    );
    let mut next_id = 0;
    let mut text = String::from("# Strict torture board\n\nNotes at the top.\n\n");
    for _ in 0..5 {
        next_id += 1;
        text.push_str(&new_task(next_id, &format!("nap 0.{:03}", rng.below(400))));
    }
    sb.write_board(&text);
    let pid = sb.start_run();

    let mut person_text = text.clone();
    let mut editor = Editor::new(text, &mut rng, edits, stale);
    // Saves that put back a status older than the one on the board: those a stale buffer
    // makes dangerous, and what this test is for.
    let mut reverting = 0;
    for _ in 0..edits {
        // The person's pace between saves (not a wait for the runtime).
        std::thread::sleep(Duration::from_millis(rng.below(30) + 2));
        let (fresh, base) = editor.buffer(&mut rng, &sb);
        let new = edit_keeping_statuses(&mut rng, &base, &mut next_id);
        reverting += usize::from(puts_a_status_back(&status_map(&new), &status_map(&fresh)));
        save(&mut rng, &sb, &new);
        person_text = new;
    }
    // The runtime writes a claim and an ending for each task, so over a run this long many of
    // the stale buffers hold a status it has since changed.
    assert!(
        reverting * 10 >= edits,
        "only {reverting} of {edits} saves put an older status back"
    );

    // Every task ends done.
    settle_and_stop(&mut sb, pid, &person_text, |s| s == "done");
    // Every task ran exactly once: on the board at the end, or removed by the person meanwhile
    // (at most once then).
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for r in read_runs(&sb.path("runs.log")) {
        *runs.entry(r.id).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks that ran more than once: {twice:?}");
    for (id, _) in sb.statuses() {
        assert_eq!(
            runs.get(&id),
            Some(&1),
            "{id} ran {:?} times",
            runs.get(&id)
        );
    }
    eprintln!(
        "strict torture: {edits} edits ({reverting} putting an older status back), {} runs, {} writebacks, {} re-asserted, {} endings kept",
        runs.values().sum::<usize>(),
        sb.count("writeback"),
        sb.count("status_reasserted"),
        sb.count("ending_kept")
    );
}
