//! `taskboard approve ID [--onto-latest]` and `taskboard reject ID --note "…"`: a person's word
//! on a change that waits for approval, from the command line.
//!
//! `approve` lands the change itself, so a refusal is said on stderr at once: it takes the
//! task's lock (a runtime landing the same change holds it too), lands through
//! `shell::landing` (noted in the run folder before the branch moves), puts the landing on
//! record in `state.json`, then writes `done` by compare-and-swap and removes the worktree.
//! `--onto-latest` lands onto the base branch's new tip when it moved and that merges cleanly;
//! the board's own `approved` never does. A refused landing changes nothing: the task keeps
//! waiting, `merge_refused` is logged, exit 1. `reject` writes `rejected:<note>` on the board,
//! exactly as a person's edit would; the runtime sends the task back on its next pass.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{CmdResult, Failure};
use crate::core::event::{Event, EventKind};
use crate::core::memory::ApprovalPhase;
use crate::core::status::{self, Status};
use crate::exit::Exit;
use crate::shell::event_log::EventLog;
use crate::shell::landing::{self, ApprovedLanding, Landed};
use crate::shell::lock::{Locks, Owner, WriteLock, instance_id};
use crate::shell::parallel::parse_board;
use crate::shell::store::Store;
use crate::shell::{config_file, fsio};

#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Land onto the base branch's current tip even if it moved since the run began, when the
    /// change merges onto it without conflict.
    #[arg(long)]
    pub onto_latest: bool,
}

#[derive(clap::Args, Debug)]
pub struct RejectArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// What to do differently: it goes into the task's next work packet.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// The task, checked: on the board once, showing `awaiting-approval` (or `approved`).
struct Waiting {
    board: PathBuf,
    state_dir: PathBuf,
    status: Status,
    title: String,
}

fn waiting(board: &Path, id: &str, verb: &str) -> Result<Waiting, Failure> {
    let board = super::resolve_board(board)?;
    let board = std::path::absolute(&board).unwrap_or(board);
    if !status::is_task_id(id) {
        return Err(Failure::new(
            Exit::Usage,
            format!("`{id}` is not a task ID (like TASK-015)"),
        ));
    }
    let snap = fsio::read_board(&board).map_err(|e| Failure::new(Exit::Board, e))?;
    super::refuse_conflicted(&board, &snap.text, verb)?;
    let parsed = parse_board(&snap.text);
    let mut tasks = parsed.tasks.iter().filter(|t| t.id == id);
    let (Some(task), None) = (tasks.next(), tasks.next()) else {
        return Err(Failure::new(
            Exit::Findings,
            format!("`{id}` is not on {} exactly once", board.display()),
        ));
    };
    let status = match task.status() {
        Some(s @ (Status::AwaitingApproval | Status::Approved)) => s.clone(),
        Some(other) => {
            return Err(Failure::new(
                Exit::Findings,
                format!("{id} is {other}: no change of it waits for approval"),
            ));
        }
        None => {
            return Err(Failure::new(
                Exit::Findings,
                format!("{id} has no valid status"),
            ));
        }
    };
    Ok(Waiting {
        state_dir: fsio::state_dir(&board),
        title: task.title.to_string(),
        board,
        status,
    })
}

pub fn approve(args: &ApproveArgs) -> CmdResult {
    let id = args.id.as_str();
    let w = waiting(&args.board, id, "approve")?;
    let board_dir = super::board_dir(&w.board).to_path_buf();
    let config = config_file::load(None, &board_dir)
        .map_err(|e| Failure::new(Exit::Config, e.to_string()))?
        .config;
    let (store, _) = Store::load(&w.state_dir.join("state.json"));
    let approval = store
        .tasks()
        .get(id)
        .and_then(|r| r.memory.approval.clone())
        .ok_or_else(|| Failure::new(Exit::Findings, format!("no change of {id} is on record")))?;
    let run_dir = w.state_dir.join(&approval.run_dir);
    let attempt = approval.attempt;
    let locks = Locks::new(w.state_dir.join("locks"));
    let owner = Owner::current(&instance_id(), Utc::now());
    match locks.try_acquire(id, &owner) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(Failure::new(
                Exit::Findings,
                format!("another taskboard process is working on {id}; try again in a moment"),
            ));
        }
        Err(e) => return Err(Failure::new(Exit::State, format!("cannot lock {id}: {e}"))),
    }
    let outcome = match &approval.phase {
        // On record as landed before a stop: only `done` is left to write.
        ApprovalPhase::Landed { .. } => Ok(Vec::new()),
        ApprovalPhase::Waiting => land(id, &w, &run_dir, &config, store, args.onto_latest, attempt),
    };
    let result = finish(id, &w, &run_dir, attempt, outcome);
    let _ = locks.release(id, &owner.instance);
    result
}

/// Lands the change and puts the landing on record (before `done` is written).
fn land(
    id: &str,
    w: &Waiting,
    run_dir: &Path,
    config: &crate::core::config::Config,
    mut store: Store,
    onto_latest: bool,
    attempt: u32,
) -> Result<Vec<Landed>, landing::LandingRefusal> {
    let strategy = landing::strategy_for(config, run_dir);
    let summary = landing::summary_of(store.tasks().get(id), attempt);
    let approval = ApprovedLanding {
        id,
        title: &w.title,
        summary: summary.as_deref(),
        strategy,
        onto_latest,
    };
    let landed = landing::carry_out(run_dir, &approval)?;
    let saved = WriteLock::acquire(&w.state_dir).and_then(|_lock| {
        store.refresh();
        store
            .record_mut(id)
            .landed(attempt, &landing::on_record(&landed));
        store.save()
    });
    if saved.is_ok() {
        landing::forget_intent(run_dir);
    }
    for l in &landed {
        log(
            &w.board,
            id,
            EventKind::Merged {
                attempt,
                repo: l.name.clone(),
                commit: l.commit.clone(),
                into: l.into.clone(),
                strategy: strategy.as_str().to_string(),
            },
        );
    }
    Ok(landed)
}

/// Says how it went: a landing gets `done` on the board, its worktrees removed; a refusal is
/// logged and returned.
fn finish(
    id: &str,
    w: &Waiting,
    run_dir: &Path,
    attempt: u32,
    outcome: Result<Vec<Landed>, landing::LandingRefusal>,
) -> CmdResult {
    let landed = match outcome {
        Ok(landed) => landed,
        Err(refusal) => {
            log(
                &w.board,
                id,
                EventKind::MergeRefused {
                    attempt,
                    repo: None,
                    reason: refusal.reason.clone(),
                    conflicts: refusal.conflicts.clone(),
                },
            );
            return Err(Failure::new(
                Exit::Findings,
                format!("{id} not landed: {}; it keeps waiting", refusal.reason),
            ));
        }
    };
    let done = match landed.as_slice() {
        [] => format!("{id}: landed earlier"),
        several => {
            let each: Vec<String> = several
                .iter()
                .map(|l| {
                    let short = &l.commit[..l.commit.len().min(12)];
                    match &l.name {
                        Some(name) => format!("{name} {} as {short}", l.into),
                        None => format!("{} as {short}", l.into),
                    }
                })
                .collect();
            format!("{id}: landed on {}", each.join(", "))
        }
    };
    let written = WriteLock::acquire(&w.state_dir)
        .map_err(|e| {
            Failure::new(
                Exit::State,
                format!("{done}, but cannot lock the board: {e}"),
            )
        })
        .and_then(|_lock| super::write_status(&w.board, id, &w.status, Status::Done, "approve"));
    if let Err(e) = written {
        // On record as landed: the runtime writes `done` when it next looks.
        return Err(Failure::new(
            e.exit,
            format!("{done}; `done` not written yet: {}", e.message),
        ));
    }
    let (mut store, _) = Store::load(&w.state_dir.join("state.json"));
    let _ = WriteLock::acquire(&w.state_dir).and_then(|_lock| {
        store.record_mut(id).clear_approval();
        store.save()
    });
    let mut report = format!("{done}; {id} is done\n");
    for (record, result) in landing::remove_all(run_dir) {
        match result {
            Ok(()) => log(
                &w.board,
                id,
                EventKind::WorkspaceRemoved {
                    attempt,
                    repo: record.name.clone(),
                    path: record.path.clone(),
                    reason: "merged".into(),
                },
            ),
            Err(why) => report.push_str(&format!("its worktree {} is kept: {why}\n", record.path)),
        }
    }
    super::output::print_after(&done, &report)?;
    Ok(Exit::Ok)
}

pub fn reject(args: &RejectArgs) -> CmdResult {
    let id = args.id.as_str();
    let w = waiting(&args.board, id, "reject")?;
    let new = Status::rejected(&args.note);
    let _lock = WriteLock::acquire(&w.state_dir)
        .map_err(|e| Failure::new(Exit::State, format!("cannot lock the board: {e}")))?;
    super::write_status(&w.board, id, &w.status, new.clone(), "reject")?;
    let done = format!("{id}: {} -> {new}", w.status);
    super::output::print_after(
        &done,
        &format!(
            "{done}\ntaskboard sends it back on its next pass; the note goes into its next packet\n"
        ),
    )?;
    Ok(Exit::Ok)
}

fn log(board: &Path, id: &str, kind: EventKind) {
    let dir = super::board_dir(board);
    if let Ok(log) = EventLog::open(dir.join("events.jsonl")) {
        let _ = log.append(&Event::new(Utc::now(), Some(id), kind));
    }
}
