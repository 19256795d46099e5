//! `taskboard status`: counts per state, then the tasks that need attention, and the runs that
//! ended while their task was not on the board.
//!
//! Owns summarising a parsed board for people and for scripts. It only reads: the board (through
//! `super::lint::read_board_text`), the event log for where running tasks run, and the
//! runtime's state file for the endings it keeps; it never writes anything. Judging the board's
//! health is `lint`'s job.
//!
//! # JSON (`--json`)
//!
//! One object, stable: keys are only ever added, never renamed or removed.
//!
//! ```json
//! {
//!   "board": "task-board.md",
//!   "counts": {"ready": 2, "running": 1, "blocked": 3, "done": 4, "failed": 1, "invalid": 2, "none": 1},
//!   "tasks": [
//!     {"id": "DEMO-1", "title": "Summarise", "state": "running", "status": "running:taskboard:2026-04-20T15:25Z",
//!      "line": 12, "agent": "taskboard", "since": "2026-04-20T15:25Z", "age_s": 2100},
//!     {"id": "DEMO-2", "title": "Pick a name", "state": "blocked", "status": "blocked:you:pick-a-name",
//!      "line": 20, "who": "you", "reason": "pick-a-name"},
//!     {"id": "DEMO-3", "title": "Review", "state": "blocked", "status": "blocked:task:DEMO-1,X-1",
//!      "line": 28, "waiting_on": [{"id": "DEMO-1", "state": "running"}, {"id": "X-1", "state": "absent"}]},
//!     {"id": "DEMO-4", "title": "Flaky", "state": "blocked", "status": "blocked:retry:2026-04-20T16:10:00Z",
//!      "line": 36, "retry_at": "2026-04-20T16:10:00Z"},
//!     {"id": "DEMO-5", "title": "Deploy", "state": "failed", "status": "failed:exit_1", "line": 44, "reason": "exit_1"},
//!     {"id": "DEMO-6", "title": "Typo", "state": "invalid", "status": "Ready", "line": 50,
//!      "error": "unknown status `Ready` (statuses are lower case: `ready`); …"},
//!     {"id": "DEMO-7", "title": "Notes", "state": "none", "status": null, "line": 56},
//!     {"id": "Fix", "title": "the login", "state": "invalid", "status": "ready", "line": 60,
//!      "id_problem": "malformed"}
//!   ],
//!   "endings_waiting": [{"id": "DEMO-8", "attempt": 1, "status": "done"}]
//! }
//! ```
//!
//! - `tasks` holds every task, in board order. `line` is the 1-based line of its heading.
//! - `state` is `ready`, `running`, `blocked`, `done` or `failed`; `invalid` when the status
//!   does not parse (`error` says why) or the task can never run because of its ID
//!   (`id_problem` says why); `none` when the task has no status field. A task is counted under
//!   its `state`, so a task the runtime will never run is never counted as `ready`.
//! - `status` is the status value exactly as written, or `null`.
//! - Running tasks: `agent`, `since` (as written, UTC) and `age_s` (seconds since the claim;
//!   negative when the claim time is ahead of the clock). A run on another machine also has
//!   `remote`: where it is (`runner`, `host`, `job_id`, `node`, `pgid`, `dir`), from the claim's
//!   `task_dispatched` and a later `remote_running` or `run_adopted` in the event log; the log
//!   is read only when a task is running.
//! - Blocked on a person or thing: `who` and `reason`. Blocked on tasks: `waiting_on`, each
//!   dependency with its current `state` (`absent` when it is not on the board). Waiting for a
//!   retry: `retry_at`. Failed: `reason`.
//! - `id_problem` is `malformed` or `unsafe` when the heading has a status but no usable ID, and
//!   `duplicate` when another task carries the same ID. The runtime never runs or writes such
//!   a task, whatever its status says: its `state` is `invalid` (`status` is still the value as
//!   written). A dependency whose ID is duplicated has the state `invalid` in `waiting_on`.
//! - `endings_waiting` lists the runs that ended while their task was not on the board (its
//!   heading deleted, or on a branch not checked out), from `.taskboard/state.json`: the
//!   attempt and the `status` the runtime writes once the task is back, holding the task's lock
//!   until then. Empty when there are none (or no state file).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lint::read_board_text;
use super::output::print as print_stdout;
use super::{CmdResult, Paint, use_color};
use crate::core::board::{Board, IdProblem, Task};
use crate::core::event::{Event, EventKind};
use crate::core::fmt::{self, Precision::Coarse};
use crate::core::lint::shown;
use crate::core::remote::Placement;
use crate::core::status::{State, Status};
use crate::exit::Exit;
use crate::shell::parallel::parse_board;
use crate::shell::{event_log, store::Store};

pub fn run(board: &Path, json: bool) -> CmdResult {
    let board = &super::resolve_board(board)?;
    let text = read_board_text(board)?;
    let parsed = parse_board(&text);
    let mut overview = overview(board, &text, &parsed, Utc::now());
    place_running(super::board_dir(board), &parsed, &mut overview);
    overview.endings_waiting = endings_waiting(board, &parsed);
    let out = if json {
        let mut s = serde_json::to_string(&overview).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render(&overview, Paint(use_color()))
    };
    print_stdout(&out)?;
    Ok(Exit::Ok)
}

/// The board at a glance, as `taskboard status` shows it; its JSON form is documented in the
/// module comment.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub board: String,
    pub counts: Counts,
    pub tasks: Vec<TaskOverview>,
    pub endings_waiting: Vec<WaitingEnding>,
}

/// A run's ending the runtime keeps because its task is not on the board: it is written, and
/// the task's lock released, once the task is back.
#[derive(Debug, Serialize)]
pub struct WaitingEnding {
    pub id: String,
    pub attempt: u32,
    /// The status it writes.
    pub status: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub ready: usize,
    pub running: usize,
    pub blocked: usize,
    pub done: usize,
    pub failed: usize,
    pub invalid: usize,
    pub none: usize,
}

#[derive(Debug, Serialize)]
pub struct TaskOverview {
    pub id: String,
    pub title: String,
    pub state: &'static str,
    pub status: Option<String>,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_problem: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<Vec<Dependency>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Dependency {
    pub id: String,
    pub state: &'static str,
}

/// Why the runtime can never act on a task because of its ID, in the words of the JSON.
fn id_problem(task: &Task, duplicated: &HashSet<&str>) -> Option<&'static str> {
    match task.id_problem {
        Some(IdProblem::Malformed) => Some("malformed"),
        Some(IdProblem::Unsafe) => Some("unsafe"),
        None if duplicated.contains(task.id.as_str()) => Some("duplicate"),
        None => None,
    }
}

/// The state name of a task: its status's state, `invalid` (a status that does not parse, or
/// an ID the runtime refuses, whatever the status says) or `none`.
fn state_of(task: &Task, duplicated: &HashSet<&str>) -> &'static str {
    if id_problem(task, duplicated).is_some() {
        return "invalid";
    }
    match &task.status {
        None => "none",
        Some(s) => match &s.parsed {
            Ok(st) => st.state().as_str(),
            Err(_) => "invalid",
        },
    }
}

/// Where each running task's run is, when on another machine: the latest `task_dispatched`,
/// `remote_running` or `run_adopted` with a `remote` of the task no older than its claim. Only
/// log files written since the earliest claim are read, and only lines naming a `remote` are
/// parsed, so a long local log costs little. A log that cannot be read says nothing (the board
/// is still shown).
fn place_running(board_dir: &Path, board: &Board, overview: &mut Overview) {
    let claims: HashMap<&str, DateTime<Utc>> = board
        .tasks
        .iter()
        .filter_map(|t| match t.status() {
            Some(Status::Running { since, .. }) => Some((t.id.as_str(), since.at)),
            _ => None,
        })
        .collect();
    let Some(earliest) = claims.values().min().copied() else {
        return;
    };
    let mut places: HashMap<String, Placement> = HashMap::new();
    for file in event_log::log_files(board_dir) {
        let written = std::fs::metadata(&file).and_then(|m| m.modified());
        if written.is_ok_and(|w| DateTime::<Utc>::from(w) < earliest) {
            continue;
        }
        let _ = event_log::for_each_line(&file, |line, _| {
            if !line.windows(9).any(|w| w == b"\"remote\":") {
                return;
            }
            let Some(ev) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| Event::from_line(l).ok())
            else {
                return;
            };
            let Some(task) = ev.task.as_deref() else {
                return;
            };
            if claims.get(task).is_none_or(|since| ev.ts < *since) {
                return;
            }
            if let EventKind::TaskDispatched {
                remote: Some(remote),
                ..
            }
            | EventKind::RemoteRunning { remote, .. }
            | EventKind::RunAdopted { remote, .. } = ev.kind
            {
                places.insert(task.to_string(), remote);
            }
        });
    }
    for t in overview.tasks.iter_mut().filter(|t| t.state == "running") {
        t.remote = places.remove(&t.id);
    }
}

/// The overview of `board` (parsed from `text`) as of `now`.
pub fn overview(path: &Path, text: &str, board: &Board, now: DateTime<Utc>) -> Overview {
    let mut counts = Counts::default();
    let mut tasks = Vec::with_capacity(board.tasks.len());
    let duplicated = board.duplicated_ids();
    for task in &board.tasks {
        let state = state_of(task, &duplicated);
        match state {
            "ready" => counts.ready += 1,
            "running" => counts.running += 1,
            "blocked" => counts.blocked += 1,
            "done" => counts.done += 1,
            "failed" => counts.failed += 1,
            "invalid" => counts.invalid += 1,
            _ => counts.none += 1,
        }
        let mut r = TaskOverview {
            id: task.id.to_string(),
            title: task.title.to_string(),
            state,
            status: task.status.as_ref().map(|s| s.raw.to_string()),
            line: board.line_col(text, task.heading.start).0,
            id_problem: id_problem(task, &duplicated),
            agent: None,
            since: None,
            age_s: None,
            remote: None,
            who: None,
            waiting_on: None,
            reason: None,
            retry_at: None,
            error: None,
        };
        match task.status.as_ref().map(|s| &s.parsed) {
            Some(Ok(Status::Running { agent, since })) => {
                r.agent = Some(agent.clone());
                r.since = Some(since.to_string());
                r.age_s = Some(now.signed_duration_since(since.at).num_seconds());
            }
            Some(Ok(Status::Blocked { who, reason })) => {
                r.who = Some(who.clone());
                r.reason = Some(reason.clone());
            }
            Some(Ok(Status::BlockedOnTasks(ids))) => {
                r.waiting_on = Some(
                    ids.iter()
                        .map(|id| Dependency {
                            id: id.clone(),
                            state: board
                                .tasks
                                .iter()
                                .find(|t| t.id == *id && t.id_problem.is_none())
                                .map_or("absent", |t| state_of(t, &duplicated)),
                        })
                        .collect(),
                );
            }
            Some(Ok(Status::RetryAt(at))) => r.retry_at = Some(at.to_string()),
            Some(Ok(Status::Failed { reason })) => r.reason = Some(reason.clone()),
            Some(Ok(Status::AwaitingApproval)) => {
                r.reason = Some("waits for approval: write approved or rejected:<note>".into());
            }
            Some(Ok(Status::Approved)) => r.reason = Some("approved: its change lands next".into()),
            Some(Ok(Status::Rejected { .. })) => {
                r.reason = Some("rejected: it goes back to ready next".into());
            }
            Some(Err(e)) => r.error = Some(e.message.clone()),
            _ => {}
        }
        tasks.push(r);
    }
    Overview {
        board: path.display().to_string(),
        counts,
        tasks,
        endings_waiting: Vec::new(),
    }
}

/// The endings kept in the runtime's state file for tasks that are not on `parsed`, in ID
/// order. A state file that cannot be read says nothing (the board is still shown). Only the
/// records with an ending are looked up on the board: the first lookup makes the board's index
/// by ID, which a board with no ending waiting is spared.
fn endings_waiting(board: &Path, parsed: &Board) -> Vec<WaitingEnding> {
    Store::peek_board(board)
        .into_iter()
        .filter_map(|(id, record)| {
            let ending = record.ending?;
            Some(WaitingEnding {
                id,
                attempt: ending.attempt,
                status: ending.write,
            })
        })
        .filter(|e| parsed.task(&e.id).is_none())
        .collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The text form: a counts line, then one section per kind of task that needs attention.
pub fn render(overview: &Overview, paint: Paint) -> String {
    let mut out = counts_line(overview, paint);
    let width = overview
        .tasks
        .iter()
        .map(|t| shown(&t.id).chars().count())
        .max()
        .unwrap_or(0);
    let line = |t: &TaskOverview, detail: String| {
        let id = shown(&t.id);
        let pad = " ".repeat(width.saturating_sub(id.chars().count()));
        format!(
            "  {}{pad}  {detail}  {}\n",
            paint.bold(&id),
            paint.dim(&shown(&t.title))
        )
    };
    let is = |state: State| move |t: &&TaskOverview| t.state == state.as_str();
    let invalid =
        |t: &&TaskOverview| matches!(t.state, "invalid" | "none") || t.id_problem.is_some();
    let section = |name: String, lines: Vec<String>| (!lines.is_empty()).then_some((name, lines));
    let tasks = || overview.tasks.iter();
    let sections: Vec<(String, Vec<String>)> = [
        section(
            paint.cyan("running"),
            tasks()
                .filter(is(State::Running))
                .map(|t| line(t, running_detail(t, paint)))
                .collect(),
        ),
        section(
            paint.yellow("blocked"),
            tasks()
                .filter(is(State::Blocked))
                .map(|t| line(t, blocked_detail(t, paint)))
                .collect(),
        ),
        section(
            paint.red("failed"),
            tasks()
                .filter(is(State::Failed))
                .map(|t| line(t, shown(t.reason.as_deref().unwrap_or(""))))
                .collect(),
        ),
        section(
            paint.red("invalid"),
            tasks()
                .filter(invalid)
                .map(|t| line(t, invalid_detail(t)))
                .collect(),
        ),
        section(
            paint.yellow("ended while not on the board"),
            overview
                .endings_waiting
                .iter()
                .map(|e| {
                    format!(
                        "  {}  attempt {} ended: `{}` is written, and its lock released, when the task is back\n",
                        paint.bold(&shown(&e.id)),
                        e.attempt,
                        shown(&e.status)
                    )
                })
                .collect(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sections.is_empty() {
        out.push_str("nothing needs attention\n");
    }
    for (name, lines) in sections {
        out.push('\n');
        out.push_str(&name);
        out.push('\n');
        for l in lines {
            out.push_str(&l);
        }
    }
    out
}

/// The first line: the board, its counts per state and how many tasks it has.
fn counts_line(overview: &Overview, paint: Paint) -> String {
    let c = &overview.counts;
    let mut counts = vec![
        format!("{} ready", c.ready),
        format!("{} running", c.running),
        format!("{} blocked", c.blocked),
        format!("{} done", c.done),
        format!("{} failed", c.failed),
    ];
    if c.invalid + c.none > 0 {
        counts.push(plural(c.invalid + c.none, "invalid", "invalid"));
    }
    format!(
        "{}: {} ({})\n",
        paint.bold(&overview.board),
        counts.join(", "),
        plural(overview.tasks.len(), "task", "tasks")
    )
}

/// Who runs a running task, and for how long (or how far ahead of this clock it was claimed).
fn running_detail(t: &TaskOverview, paint: Paint) -> String {
    let agent = t.agent.as_deref().unwrap_or("?");
    let age = t.age_s.unwrap_or(0);
    let when = if age >= 0 {
        format!(
            "for {}",
            fmt::duration(std::time::Duration::from_secs(age as u64), Coarse)
        )
    } else {
        format!(
            "claimed {} ahead of this clock",
            fmt::duration(std::time::Duration::from_secs(age.unsigned_abs()), Coarse)
        )
    };
    match &t.remote {
        Some(place) => format!("{} {when} on {}", paint.cyan(agent), place.describe()),
        None => format!("{} {when}", paint.cyan(agent)),
    }
}

/// What a blocked task waits on: other tasks, a retry time, or a person.
fn blocked_detail(t: &TaskOverview, paint: Paint) -> String {
    if let Some(deps) = &t.waiting_on {
        let deps: Vec<String> = deps
            .iter()
            .map(|d| {
                let state = if d.state == "absent" {
                    paint.red("not on the board")
                } else {
                    d.state.to_string()
                };
                format!("{} ({state})", d.id)
            })
            .collect();
        format!("waits on {}", deps.join(", "))
    } else if let Some(at) = &t.retry_at {
        format!("retries at {at}")
    } else if t.who.is_none()
        && let Some(reason) = &t.reason
    {
        // An approval status: what it waits for, in words.
        shown(reason)
    } else {
        format!(
            "waits on {}: {}",
            paint.yellow(&shown(t.who.as_deref().unwrap_or("?"))),
            shown(t.reason.as_deref().unwrap_or(""))
        )
    }
}

/// Why a task cannot run: its ID, a missing status field, or a status that does not parse.
fn invalid_detail(t: &TaskOverview) -> String {
    match (t.state, t.id_problem) {
        (_, Some("duplicate")) => "duplicate ID: no task with it runs".to_string(),
        (_, Some(problem)) => format!("no usable task ID ({problem})"),
        ("none", _) => "no status field".to_string(),
        _ => format!(
            "status `{}`: {}",
            shown(t.status.as_deref().unwrap_or("")),
            shown(t.error.as_deref().unwrap_or(""))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const BOARD: &str = "## A-1: one\n- status: running:agent-a:2026-04-20T12:48Z\n## B-1: two\n- status: blocked:task:A-1,Z-9\n## C-1: three\n- status: blocked:siyao:send-brief\n## D-1: four\n- status: failed:exit_3\n## E-1: five\n- status: Ready\n## F-1: six\n## G-1: seven\n- status: blocked:retry:2026-04-20T16:10Z\n## H-1\n- status: done\n";

    #[test]
    fn report_has_every_task_with_its_details() {
        let board = Board::parse(BOARD);
        let r = overview(Path::new("b.md"), BOARD, &board, at("2026-04-20T16:00:00Z"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["counts"],
            serde_json::json!({"ready":0,"running":1,"blocked":3,"done":1,"failed":1,"invalid":1,"none":1})
        );
        let tasks = v["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 8);
        assert_eq!(tasks[0]["age_s"], 3 * 3600 + 12 * 60);
        assert_eq!(tasks[0]["since"], "2026-04-20T12:48Z");
        assert_eq!(
            tasks[1]["waiting_on"],
            serde_json::json!([{"id":"A-1","state":"running"},{"id":"Z-9","state":"absent"}])
        );
        assert_eq!(
            (&tasks[2]["who"], &tasks[2]["reason"]),
            (&"siyao".into(), &"send-brief".into())
        );
        assert_eq!(tasks[3]["reason"], "exit_3");
        assert_eq!(tasks[4]["state"], "invalid");
        assert!(tasks[4]["error"].as_str().unwrap().contains("lower case"));
        assert_eq!(
            (&tasks[5]["state"], &tasks[5]["status"]),
            (&"none".into(), &serde_json::Value::Null)
        );
        assert_eq!(tasks[6]["retry_at"], "2026-04-20T16:10Z");
        assert_eq!(tasks[7]["line"], 14);
        assert!(tasks[7].get("agent").is_none());
    }

    #[test]
    fn approval_statuses_are_blocked_and_say_what_they_wait_for() {
        let text = "## A-1: one\n- status: awaiting-approval\n## B-1: two\n- status: approved\n## C-1: three\n- status: rejected:too broad\n";
        let board = Board::parse(text);
        let r = overview(Path::new("b.md"), text, &board, at("2026-04-20T16:00:00Z"));
        let out = render(&r, Paint(false));
        assert!(
            out.starts_with("b.md: 0 ready, 0 running, 3 blocked, 0 done, 0 failed (3 tasks)\n"),
            "{out}"
        );
        for needle in [
            "A-1  waits for approval: write approved or rejected:<note>  one",
            "B-1  approved: its change lands next  two",
            "C-1  rejected: it goes back to ready next  three",
        ] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
    }

    #[test]
    fn tasks_that_can_never_run_are_invalid_not_ready() {
        let text = "## A-1: one\n- status: ready\n## A-1: copy\n- status: ready\n## ../../etc: pwn\n- status: ready\n## Fix the login\n- status: ready\n## B-1: waits\n- status: blocked:task:A-1\n## C-1: fine\n- status: ready\n";
        let board = Board::parse(text);
        let r = overview(Path::new("b.md"), text, &board, at("2026-04-20T16:00:00Z"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["counts"],
            serde_json::json!({"ready":1,"running":0,"blocked":1,"done":0,"failed":0,"invalid":4,"none":0})
        );
        let tasks = v["tasks"].as_array().unwrap();
        for (i, problem) in [
            (0, "duplicate"),
            (1, "duplicate"),
            (2, "unsafe"),
            (3, "malformed"),
        ] {
            assert_eq!(tasks[i]["state"], "invalid", "{}", tasks[i]);
            assert_eq!(tasks[i]["id_problem"], problem, "{}", tasks[i]);
            assert_eq!(tasks[i]["status"], "ready", "{}", tasks[i]);
        }
        assert_eq!(
            tasks[4]["waiting_on"],
            serde_json::json!([{"id":"A-1","state":"invalid"}])
        );
        assert_eq!(tasks[5]["state"], "ready");
        assert!(tasks[5].get("id_problem").is_none());

        let out = render(&r, Paint(false));
        assert!(
            out.starts_with(
                "b.md: 1 ready, 0 running, 1 blocked, 0 done, 0 failed, 4 invalid (6 tasks)\n"
            ),
            "{out}"
        );
        let invalid = out.split("\ninvalid\n").nth(1).expect("an invalid section");
        assert!(invalid.contains("A-1        duplicate ID"), "{out}");
        assert!(invalid.contains("no usable task ID (unsafe)"), "{out}");
        assert!(
            invalid.contains("Fix        no usable task ID (malformed)"),
            "{out}"
        );
        assert!(!invalid.contains("C-1"), "{out}");
    }

    #[test]
    fn text_lists_what_needs_attention() {
        let board = Board::parse(BOARD);
        let r = overview(Path::new("b.md"), BOARD, &board, at("2026-04-20T16:00:00Z"));
        let text = render(&r, Paint(false));
        assert!(
            text.starts_with(
                "b.md: 0 ready, 1 running, 3 blocked, 1 done, 1 failed, 2 invalid (8 tasks)\n"
            ),
            "{text}"
        );
        for needle in [
            "A-1  agent-a for 3h12m  one",
            "B-1  waits on A-1 (running), Z-9 (not on the board)  two",
            "C-1  waits on siyao: send-brief  three",
            "G-1  retries at 2026-04-20T16:10Z  seven",
            "D-1  exit_3  four",
            "E-1  status `Ready`: unknown status `Ready` (statuses are lower case: `ready`)",
            "F-1  no status field  six",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("\x1b["));
        let empty = Board::parse("## A-1\n- status: done\n");
        let r = overview(
            Path::new("b.md"),
            "## A-1\n- status: done\n",
            &empty,
            at("2026-04-20T16:00:00Z"),
        );
        assert!(render(&r, Paint(false)).ends_with("nothing needs attention\n"));
    }

    #[test]
    fn an_ending_kept_for_a_task_not_on_the_board_needs_attention() {
        let text = "## A-1\n- status: done\n";
        let mut r = overview(
            Path::new("b.md"),
            text,
            &Board::parse(text),
            at("2026-04-20T16:00:00Z"),
        );
        r.endings_waiting.push(WaitingEnding {
            id: "G-1".into(),
            attempt: 2,
            status: "failed:exit_1".into(),
        });
        let out = render(&r, Paint(false));
        assert!(!out.contains("nothing needs attention"), "{out}");
        assert!(
            out.ends_with(
                "\nended while not on the board\n  G-1  attempt 2 ended: `failed:exit_1` is \
                 written, and its lock released, when the task is back\n"
            ),
            "{out}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["endings_waiting"],
            serde_json::json!([{"id": "G-1", "attempt": 2, "status": "failed:exit_1"}])
        );
    }
}
