//! `taskboard show <ID>`: one screen about one task, from the board, the events and the
//! handoffs: its block, its status history, each attempt (route, exit, duration, cost), its
//! latest handoff, the evidence git saw, and what it blocks and what blocks it. Writes nothing.
//! A task not on the board is an error, which names the ending the runtime keeps for it, if any
//! (read from its state file).
//!
//! `--json` prints one object:
//! `{"id", "title", "status", "line", "block", "history": [{"ts", "event", "summary"}],
//! "attempts": [{"attempt", "phase", "route", "exit_code", "signal", "duration_ms", "cost_usd",
//! "outcome", "changed"}], "cost_usd", "handoff", "evidence_mismatches": [{"attempt",
//! "claimed_not_seen", "seen_not_claimed", "outside_touches"?}], "blocked_by": [{"id",
//! "status"}], "blocks": [ids], "running"}`; `running` is `null` unless the task is running,
//! else its claim, age, route, attempt, run folder and how to follow its output.
//!
//! An attempt that ran on another machine also gets `"remote"`: where it went, as the events
//! record it (`runner`, `host`, `job_id`, `node`, `pgid`, `dir`; the node once the Slurm job
//! started); absent for a local run, as is `"remote"` of `"running"`.
//!
//! A task whose latest work run was isolated (its run folder has a `workspace.json`) also gets
//! `"workspace"` (absent otherwise, so other tasks' output is unchanged): the worktree, branch,
//! base branch and commit of each repository, the snapshot's stat, and whether the change still
//! applies to the base branch's tip (`shell::workspace::conflicts`, `git merge-tree`: no work
//! tree is touched). Without git, or with the repository gone, that check is one line saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::lint::read_board_text;
use super::output::print as print_stdout;
use super::{CmdResult, Failure, Paint, use_color};
use crate::core::board::Board;
use crate::core::event::EventKind;
use crate::core::fmt::{self, Precision::Coarse};
use crate::core::remote::Placement;
use crate::core::status::Status;
use crate::exit::Exit;
use crate::shell::event_log::for_each_event_in;
use crate::shell::parallel::parse_board;
use crate::shell::store::Store;

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// One JSON object instead of the text view.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Shown {
    pub id: String,
    pub title: String,
    pub status: Option<String>,
    pub line: usize,
    pub block: String,
    pub history: Vec<HistoryLine>,
    pub attempts: Vec<AttemptLine>,
    pub cost_usd: f64,
    pub handoff: Option<String>,
    pub evidence_mismatches: Vec<Mismatch>,
    pub blocked_by: Vec<Blocker>,
    pub blocks: Vec<String>,
    pub running: Option<RunningNow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceShown>,
}

/// The isolated workspace of the task's latest work run.
#[derive(Debug, Serialize)]
pub struct WorkspaceShown {
    pub attempt: u32,
    pub run_dir: String,
    /// Why `workspace.json` could not be read (then `repos` is empty).
    pub error: Option<String>,
    pub repos: Vec<RepoShown>,
}

/// One repository of an isolated run, and how its change stands against its base branch now.
#[derive(Debug, Serialize)]
pub struct RepoShown {
    /// Its `[repos]` name; `null` for the route's one repository.
    pub name: Option<String>,
    pub repo: String,
    pub worktree: String,
    pub branch: String,
    pub base_branch: String,
    pub base_commit: String,
    /// The snapshot's stat; `null` until the run saved its changes.
    pub files: Option<usize>,
    pub insertions: Option<u64>,
    pub deletions: Option<u64>,
    /// The base branch's tip now, and how many commits it has past the base.
    pub tip: Option<String>,
    pub moved: Option<u64>,
    /// The files that would conflict on the tip; empty: it applies cleanly.
    pub conflicts: Option<Vec<String>>,
    /// Why the tip could not be checked (no git, the repository gone).
    pub unchecked: Option<String>,
}

/// Where a running task is: since when, on which route and attempt, and where its output goes.
#[derive(Debug, Serialize)]
pub struct RunningNow {
    pub agent: String,
    pub since: String,
    pub age_s: i64,
    pub route: Option<String>,
    pub attempt: Option<u32>,
    pub phase: Option<String>,
    pub run_dir: Option<String>,
    pub follow: Option<String>,
    /// Where the run is, when on another machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Placement>,
}

#[derive(Debug, Serialize)]
pub struct HistoryLine {
    pub ts: String,
    pub event: String,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct AttemptLine {
    pub attempt: u32,
    pub phase: Option<String>,
    pub route: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub cost_usd: Option<f64>,
    pub outcome: String,
    pub changed: Option<Vec<String>>,
    /// Where it ran, when on another machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Placement>,
}

#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub attempt: u32,
    pub claimed_not_seen: Vec<String>,
    pub seen_not_claimed: Vec<String>,
    /// Files changed outside the task's `touches:` (absent when it declares none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outside_touches: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct Blocker {
    pub id: String,
    pub status: Option<String>,
}

pub fn run(args: &ShowArgs) -> CmdResult {
    let board = &super::resolve_board(&args.board)?;
    let text = read_board_text(board)?;
    let dir = super::board_dir(board);
    let mut shown = gather(dir, &text, &args.id)?.ok_or_else(|| {
        // A run that ended while the task was away: say what waits for it.
        let waiting = Store::peek_board(board)
            .remove(&args.id)
            .and_then(|record| record.ending)
            .map(|e| {
                format!(
                    "; its attempt {} ended while it was away, and `{}` is written when it is back",
                    e.attempt, e.write
                )
            })
            .unwrap_or_default();
        Failure::new(
            Exit::Findings,
            format!("no task `{}` on {}{waiting}", args.id, board.display()),
        )
    })?;
    if let Some(r) = shown.running.as_mut().filter(|r| r.run_dir.is_some()) {
        // The command as this person would type it: the board named only when not the default.
        let board_arg = if args.board == Path::new("task-board.md") {
            String::new()
        } else {
            format!(" {}", args.board.display())
        };
        r.follow = Some(format!("taskboard logs {}{board_arg} -f", args.id));
    }
    let out = if args.json {
        let mut s = serde_json::to_string(&shown).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render(&shown, Paint(use_color()))
    };
    print_stdout(&out)?;
    Ok(Exit::Ok)
}

/// Everything `show` says about `id`, or `None` when it is not on the board. A missing event log
/// is an empty history; one that cannot be read (not a regular file, an I/O error) is a failure.
pub fn gather(board_dir: &Path, text: &str, id: &str) -> Result<Option<Shown>, Failure> {
    let board = parse_board(text);
    let Some(task) = board.task(id) else {
        return Ok(None);
    };
    let (line, _) = board.line_col(text, task.heading.start);
    let mut scan = Scan::default();
    for_each_event_in(board_dir, |ev| {
        if ev.task.as_deref() == Some(id) {
            scan.add(&ev);
        }
    })
    .map_err(|e| Failure::new(Exit::State, format!("cannot read the event log: {e}")))?;
    // Not a regular file (a FIFO) or unreadable: shown as no handoff, never waited on.
    let handoff =
        crate::shell::fsio::read_regular_to_string(&crate::core::handoff::file_path(board_dir, id))
            .ok()
            .and_then(|f| crate::core::handoff::last_section(&f).map(str::to_string));
    let place = scan
        .dispatched
        .as_ref()
        .and_then(|d| scan.places.get(&(d.1, d.3.is_some())).cloned());
    Ok(Some(Shown {
        running: running_now(board_dir, id, task.status(), scan.dispatched, place),
        id: id.to_string(),
        title: task.title.to_string(),
        status: task.status.as_ref().map(|s| s.raw.to_string()),
        line,
        block: text[task.block.clone()].to_string(),
        // Folded from +0.0: an empty float sum is -0.0, which JSON would print as `-0.0`.
        cost_usd: scan
            .attempts
            .iter()
            .filter_map(|a| a.cost_usd)
            .fold(0.0, |sum, c| sum + c),
        history: scan.history,
        attempts: scan.attempts,
        handoff,
        evidence_mismatches: scan.mismatches,
        blocked_by: waiting_on(&board, task.status()),
        blocks: blocked_by(&board, id),
        workspace: workspace_of(board_dir, id),
    }))
}

/// The workspace of the task's latest work run, when that run was isolated. Never fails: what
/// cannot be read or checked is said in the result.
fn workspace_of(board_dir: &Path, id: &str) -> Option<WorkspaceShown> {
    let state_dir = if board_dir == Path::new(".") {
        PathBuf::from(".taskboard")
    } else {
        board_dir.join(".taskboard")
    };
    let (dir, workspace) = match super::diff::latest_work_run(&state_dir, id) {
        Ok(Some((dir, Some(ws)))) => (dir, Ok(ws)),
        Ok(_) => return None,
        Err(e) => match super::logs::runs(&state_dir, id)
            .ok()
            .and_then(|r| r.into_iter().rev().find(|r| !r.review))
        {
            Some(dir) => (dir, Err(e)),
            None => return None,
        },
    };
    let (repos, error) = match workspace {
        Ok(ws) => (
            ws.repos.iter().map(|r| repo_shown(board_dir, r)).collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    Some(WorkspaceShown {
        attempt: dir.attempt,
        run_dir: dir.path.display().to_string(),
        error,
        repos,
    })
}

/// One repository's record, and its change checked against its base branch's tip.
fn repo_shown(board_dir: &Path, r: &crate::core::workspace::RunRepo) -> RepoShown {
    let mut shown = RepoShown {
        name: r.name.clone(),
        repo: r.repo.clone(),
        worktree: r.path.clone(),
        branch: r.branch.clone(),
        base_branch: r.base_branch.clone(),
        base_commit: r.base_commit.clone(),
        files: r.snapshot.as_ref().map(|s| s.files.len()),
        insertions: r.snapshot.as_ref().map(|s| s.totals().0),
        deletions: r.snapshot.as_ref().map(|s| s.totals().1),
        tip: None,
        moved: None,
        conflicts: None,
        unchecked: None,
    };
    let Some(snapshot) = &r.snapshot else {
        return shown;
    };
    let repo = board_dir.join(&r.repo);
    if !repo.is_dir() {
        shown.unchecked = Some(format!("the repository {} is gone", repo.display()));
        return shown;
    }
    let check = || -> Result<(String, u64, Vec<String>), crate::shell::workspace::GitError> {
        use crate::shell::workspace as git;
        let tip = git::resolve_branch(&repo, &r.base_branch)?;
        let moved = git::commits_between(&repo, &r.base_commit, &tip)?;
        let conflicts = git::conflicts(&repo, &tip, &snapshot.commit, &r.base_commit)?;
        Ok((tip, moved, conflicts))
    };
    match check() {
        Ok((tip, moved, conflicts)) => {
            shown.tip = Some(tip);
            shown.moved = Some(moved);
            shown.conflicts = Some(conflicts);
        }
        Err(e) => shown.unchecked = Some(e.to_string()),
    }
    shown
}

/// What the events of one task say, gathered in log order.
#[derive(Default)]
struct Scan {
    history: Vec<HistoryLine>,
    attempts: Vec<AttemptLine>,
    mismatches: Vec<Mismatch>,
    /// The route of each dispatch, by attempt and whether it was a review run.
    routes: HashMap<(u32, bool), String>,
    /// Where each remote dispatch went, by attempt and whether it was a review run; the
    /// latest word (a node once it started, an adoption) replaces the dispatch's.
    places: HashMap<(u32, bool), Placement>,
    /// The latest dispatch: when, attempt, route, phase.
    dispatched: Option<Dispatch>,
}

type Dispatch = (chrono::DateTime<chrono::Utc>, u32, String, Option<String>);

/// The review run of an attempt, when one is under way: a later event of the attempt without a
/// phase of its own (`remote_running`, `run_adopted`) is about the latest dispatch of it.
fn latest_is_review(dispatched: &Option<Dispatch>, attempt: u32) -> bool {
    dispatched
        .as_ref()
        .is_some_and(|d| d.1 == attempt && d.3.is_some())
}

/// A remote event's history line: `attempt 2 started: slurm job 17 on node1`.
fn remote_summary(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::RemoteRunning { attempt, remote } => {
            format!("attempt {attempt} started: {}", remote.describe())
        }
        EventKind::RunAdopted {
            attempt,
            remote,
            finished,
        } => format!(
            "attempt {attempt} taken over after a restart: {} ({})",
            remote.describe(),
            if *finished {
                "already finished"
            } else {
                "still running"
            }
        ),
        EventKind::HostDown {
            route,
            host,
            until,
            reason,
        } => format!(
            "host {host} of `{route}` unreachable ({reason}); no run goes to it until {}",
            crate::core::event::format_ts(until)
        ),
        _ => return None,
    })
}

impl Scan {
    /// Adds one event of the task: a history line, and an attempt or a mismatch when it is one.
    fn add(&mut self, ev: &crate::core::event::Event) {
        let summary = match &ev.kind {
            EventKind::TaskDispatched {
                attempt,
                route,
                pid,
                phase,
                remote,
                ..
            } => {
                self.routes
                    .insert((*attempt, phase.is_some()), route.clone());
                self.dispatched = Some((ev.ts, *attempt, route.clone(), phase.clone()));
                match remote {
                    Some(r) => self.places.insert((*attempt, phase.is_some()), r.clone()),
                    None => self.places.remove(&(*attempt, phase.is_some())),
                };
                let place = match (remote, pid) {
                    (Some(r), _) => r.describe(),
                    (None, Some(pid)) => format!("pid {pid}"),
                    (None, None) => "pid unknown".to_string(),
                };
                format!(
                    "attempt {attempt}{} on `{route}` ({place})",
                    if phase.is_some() { " review" } else { "" }
                )
            }
            EventKind::TaskFinished {
                attempt,
                exit_code,
                signal,
                duration_ms,
                outcome,
                note,
                phase,
                cost_usd,
                changed,
                ..
            } => {
                self.attempts.push(AttemptLine {
                    attempt: *attempt,
                    phase: phase.clone(),
                    route: self.routes.get(&(*attempt, phase.is_some())).cloned(),
                    exit_code: *exit_code,
                    signal: *signal,
                    duration_ms: *duration_ms,
                    cost_usd: *cost_usd,
                    outcome: outcome.clone(),
                    changed: changed.clone(),
                    remote: self.places.get(&(*attempt, phase.is_some())).cloned(),
                });
                let note = note.as_deref().map_or(String::new(), |n| format!(": {n}"));
                format!("attempt {attempt} -> {outcome}{note}")
            }
            EventKind::EvidenceMismatch {
                attempt,
                claimed_not_seen,
                seen_not_claimed,
                outside_touches,
            } => {
                self.mismatches.push(Mismatch {
                    attempt: *attempt,
                    claimed_not_seen: claimed_not_seen.clone(),
                    seen_not_claimed: seen_not_claimed.clone(),
                    outside_touches: outside_touches.clone(),
                });
                if outside_touches.is_some() {
                    "changed files outside its touches".to_string()
                } else {
                    "claims and git disagree".to_string()
                }
            }
            EventKind::RemoteRunning { attempt, remote }
            | EventKind::RunAdopted {
                attempt, remote, ..
            } => {
                let review = latest_is_review(&self.dispatched, *attempt);
                self.places.insert((*attempt, review), remote.clone());
                remote_summary(&ev.kind).unwrap_or_default()
            }
            EventKind::HostDown { .. } => remote_summary(&ev.kind).unwrap_or_default(),
            // The event's own fields, without ts and name: compact enough for a history line.
            _ => ev
                .own_fields()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        self.history.push(HistoryLine {
            ts: crate::core::event::format_ts(&ev.ts),
            event: ev.kind.name().to_string(),
            summary,
        });
    }
}

/// The tasks a `blocked:task:…` status waits on, with their statuses.
fn waiting_on(board: &Board, status: Option<&Status>) -> Vec<Blocker> {
    match status {
        Some(Status::BlockedOnTasks(deps)) => deps
            .iter()
            .map(|d| Blocker {
                id: d.clone(),
                status: board
                    .task(d)
                    .and_then(|t| t.status.as_ref().map(|s| s.raw.to_string())),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The tasks waiting on `id`.
fn blocked_by(board: &Board, id: &str) -> Vec<String> {
    board
        .tasks
        .iter()
        .filter(
            |t| matches!(t.status(), Some(Status::BlockedOnTasks(d)) if d.iter().any(|d| d == id)),
        )
        .map(|t| t.id.to_string())
        .collect()
}

/// The run under way when the task is `running`: only this claim's own run, a dispatch and a
/// run folder no older than the claim (both are stamped after it is written), never an earlier
/// run's.
fn running_now(
    board_dir: &Path,
    id: &str,
    status: Option<&Status>,
    dispatched: Option<Dispatch>,
    place: Option<Placement>,
) -> Option<RunningNow> {
    let Some(Status::Running { agent, since }) = status else {
        return None;
    };
    let state_dir = if board_dir == Path::new(".") {
        PathBuf::from(".taskboard")
    } else {
        board_dir.join(".taskboard")
    };
    let run_dir = super::logs::runs(&state_dir, id)
        .ok()
        .and_then(|runs| runs.into_iter().last())
        .filter(|r| r.started >= since.at);
    let dispatched = dispatched.filter(|d| d.0 >= since.at);
    let remote = place.filter(|_| dispatched.is_some());
    Some(RunningNow {
        agent: agent.clone(),
        since: since.to_string(),
        age_s: chrono::Utc::now()
            .signed_duration_since(since.at)
            .num_seconds(),
        route: dispatched.as_ref().map(|d| d.2.clone()),
        attempt: dispatched
            .as_ref()
            .map(|d| d.1)
            .or(run_dir.as_ref().map(|r| r.attempt)),
        phase: dispatched.and_then(|d| d.3),
        run_dir: run_dir.map(|r| r.path.display().to_string()),
        follow: None,
        remote,
    })
}

/// `running since <time> (<age> ago) · attempt N on `route``, then where its output is.
fn render_running(r: &RunningNow, paint: Paint) -> String {
    let age = if r.age_s >= 0 {
        format!(
            "{} ago",
            fmt::duration(std::time::Duration::from_secs(r.age_s as u64), Coarse)
        )
    } else {
        format!(
            "{} ahead of this clock",
            fmt::duration(
                std::time::Duration::from_secs(r.age_s.unsigned_abs()),
                Coarse
            )
        )
    };
    let mut out = format!("running since {} ({age}) by {}", r.since, r.agent);
    match (r.attempt, &r.route) {
        (Some(n), Some(route)) => {
            let review = if r.phase.is_some() { " (review)" } else { "" };
            out.push_str(&format!(" · attempt {n}{review} on `{route}`"));
        }
        (Some(n), None) => out.push_str(&format!(" · attempt {n}")),
        _ => {}
    }
    if let Some(place) = &r.remote {
        out.push_str(&format!(" · {}", place.describe()));
    }
    out.push('\n');
    match (&r.run_dir, &r.follow) {
        (Some(dir), Some(follow)) => {
            out.push_str(&format!("output:   {dir}/\n"));
            out.push_str(&format!("follow:   {}\n", paint.cyan(follow)));
        }
        _ => out.push_str("output:   no run folder for this claim (claimed outside taskboard, or not started yet)\n"),
    }
    out
}

fn render(s: &Shown, paint: Paint) -> String {
    let mut out = format!(
        "{} {}  {}\n",
        paint.bold(&s.id),
        s.title,
        paint.cyan(s.status.as_deref().unwrap_or("(no status)"))
    );
    if !s.blocked_by.is_empty() {
        let waits: Vec<String> = s
            .blocked_by
            .iter()
            .map(|w| {
                format!(
                    "{} ({})",
                    w.id,
                    w.status.as_deref().unwrap_or("not on the board")
                )
            })
            .collect();
        out.push_str(&format!("waits on: {}\n", waits.join(", ")));
    }
    if !s.blocks.is_empty() {
        out.push_str(&format!("blocks:   {}\n", s.blocks.join(", ")));
    }
    if let Some(r) = &s.running {
        out.push_str(&render_running(r, paint));
    }
    out.push_str(&format!("\n{}\n", paint.dim(&format!("line {}", s.line))));
    out.push_str(s.block.trim_end());
    out.push_str("\n\n");
    out.push_str(&paint.bold("attempts"));
    out.push('\n');
    attempt_lines(&mut out, s, paint);
    if s.cost_usd > 0.0 {
        out.push_str(&format!("  total cost {}\n", fmt::usd(s.cost_usd)));
    }
    mismatch_lines(&mut out, &s.evidence_mismatches, paint);
    if let Some(w) = &s.workspace {
        workspace_lines(&mut out, w, paint);
    }
    if let Some(h) = &s.handoff {
        out.push_str(&format!("\n{}\n{}\n", paint.bold("latest handoff"), h));
    }
    out.push_str(&format!("\n{}\n", paint.bold("history")));
    if s.history.is_empty() {
        out.push_str("  no events yet\n");
    }
    for h in &s.history {
        out.push_str(&format!(
            "  {} {:<22} {}\n",
            paint.dim(&h.ts),
            h.event,
            h.summary
        ));
    }
    out
}

/// Each attempt's line (route, ending, duration, cost, outcome; where it ran, what it changed),
/// then the run under way.
fn attempt_lines(out: &mut String, s: &Shown, paint: Paint) {
    // The run under way, which has no ending yet to be listed by.
    let current = s.running.as_ref().and_then(|r| r.attempt.map(|n| (n, r)));
    if s.attempts.is_empty() && current.is_none() {
        out.push_str("  none yet\n");
    }
    for a in &s.attempts {
        let ending = match (a.exit_code, a.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("signal {sig}"),
            // A remote run that was lost or never reached its host: no exit was seen.
            _ if a.remote.is_some() => "no exit".into(),
            _ => "not started".into(),
        };
        let cost = a
            .cost_usd
            .map_or(String::new(), |c| format!("  {}", fmt::usd(c)));
        out.push_str(&format!(
            "  {}{} {:<12} {:<9} {:>7.1}s{cost}  -> {}\n",
            a.attempt,
            if a.phase.is_some() { "r" } else { " " },
            a.route.as_deref().unwrap_or("?"),
            ending,
            a.duration_ms as f64 / 1000.0,
            a.outcome
        ));
        if let Some(place) = &a.remote {
            out.push_str(&format!("     ran on: {}\n", place.describe()));
        }
        if let Some(changed) = a.changed.as_ref().filter(|c| !c.is_empty()) {
            out.push_str(&format!("     changed: {}\n", changed.join(", ")));
        }
    }
    if let Some((n, r)) = current {
        let place = r
            .remote
            .as_ref()
            .map_or(String::new(), |p| format!("  on {}", p.describe()));
        out.push_str(&format!(
            "  {n}{} {:<12} {}{place}\n",
            if r.phase.is_some() { "r" } else { " " },
            r.route.as_deref().unwrap_or("?"),
            paint.cyan("running")
        ));
    }
}

/// Each evidence mismatch, on its own lines.
fn mismatch_lines(out: &mut String, mismatches: &[Mismatch], paint: Paint) {
    for m in mismatches {
        if !m.claimed_not_seen.is_empty() || !m.seen_not_claimed.is_empty() {
            out.push_str(&paint.yellow(&format!(
                "  attempt {}: claimed but not seen by git: [{}]; seen but not claimed: [{}]\n",
                m.attempt,
                m.claimed_not_seen.join(", "),
                m.seen_not_claimed.join(", ")
            )));
        }
        if let Some(outside) = &m.outside_touches {
            out.push_str(&paint.yellow(&format!(
                "  attempt {}: changed outside its touches: [{}]\n",
                m.attempt,
                outside.join(", ")
            )));
        }
    }
}

/// The first 7 characters of a commit id.
fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// The `workspace` section: each repository's worktree, base, changes and standing.
fn workspace_lines(out: &mut String, w: &WorkspaceShown, paint: Paint) {
    out.push_str(&format!(
        "\n{}\n",
        paint.bold(&format!("workspace (attempt {})", w.attempt))
    ));
    if let Some(e) = &w.error {
        out.push_str(&format!("  {}\n", paint.yellow(e)));
    }
    for r in &w.repos {
        if let Some(name) = &r.name {
            out.push_str(&format!("  repo:     {name} ({})\n", r.repo));
        }
        out.push_str(&format!(
            "  worktree: {} (branch {})\n",
            r.worktree, r.branch
        ));
        out.push_str(&format!(
            "  base:     {} at {}\n",
            r.base_branch,
            short(&r.base_commit)
        ));
        match (r.files, r.insertions, r.deletions) {
            (Some(n), Some(i), Some(d)) => out.push_str(&format!(
                "  changes:  {n} {}, +{i} -{d}\n",
                if n == 1 { "file" } else { "files" }
            )),
            _ => out.push_str("  changes:  not saved yet (the run has not ended)\n"),
        }
        out.push_str(&standing(r, paint));
    }
}

/// Whether the change still applies to its base branch's tip, in one line.
fn standing(r: &RepoShown, paint: Paint) -> String {
    if let Some(why) = &r.unchecked {
        return format!(
            "  {}\n",
            paint.yellow(&format!("cannot check it against {}: {why}", r.base_branch))
        );
    }
    let (Some(tip), Some(moved), Some(conflicts)) = (&r.tip, r.moved, &r.conflicts) else {
        return String::new();
    };
    let mut line = String::new();
    if moved > 0 {
        let commits = if moved == 1 { "commit" } else { "commits" };
        line.push_str(&format!("base branch moved: {moved} {commits}; "));
    }
    if conflicts.is_empty() {
        line.push_str(&format!(
            "applies cleanly to {} at {}",
            r.base_branch,
            short(tip)
        ));
        format!("  {}\n", paint.green(&line))
    } else {
        line.push_str(&format!(
            "conflicts with {} at {}: {}",
            r.base_branch,
            short(tip),
            conflicts.join(", ")
        ));
        format!("  {}\n", paint.red(&line))
    }
}
