//! `taskboard stats`: throughput, errors, latency and durations, from the events alone.
//!
//! Streams every log file (rotated ones first) through [`crate::core::report::Builder`], one line at a
//! time, then prints the report, its JSON form, and optionally a self-contained HTML dashboard.
//! When the board file exists, the queue is counted from it instead of replayed from the events.
//!
//! Owns the command: its arguments, reading the log and the board, and where the output goes.
//! The text layout is [`text`]'s and the page `html`'s; what the numbers mean is
//! `core::report`'s. Must not touch: the board's contents beyond counting it, or the log.

mod html;
pub mod text;

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{CmdResult, Failure};
use crate::core::fmt::{self, Precision::Fine};
use crate::core::report::{self, Builder, Queue};
use crate::core::status::State;
use crate::exit::Exit;
use crate::shell::event_log::for_each_record_in;
use crate::shell::fsio::{self, ReadError};
use crate::shell::parallel::parse_board;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// The board file; its events.jsonl (and rotated files) are read.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// How far back to look: `7d`, `24h`, `90m`.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// A stable JSON document instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML dashboard to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(args: &StatsArgs) -> CmdResult {
    let window = report::parse_window(&args.since)
        .map_err(|e| Failure::new(Exit::Usage, format!("--since {e}")))?;
    let board = &super::resolve_board(&args.board)?;
    let board_dir = super::board_dir(board);
    // The board first: a board that must be refused is refused before the events are read.
    let queue = queue_from_board(board)?;
    let mut builder = Builder::new(Utc::now(), window);
    let scan = for_each_record_in(board_dir, |rec| builder.add(rec))
        .map_err(|e| Failure::new(Exit::State, format!("cannot read {e}")))?;
    builder.add_bad_lines(scan.bad_lines);
    let mut report = builder.finish();
    if let Some(queue) = queue {
        report.queue = queue;
    }
    if scan.files == 0 {
        super::output::note(format!(
            "no events in {} yet (events.jsonl is written by `taskboard run`)",
            board_dir.display()
        ));
    }
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&report).map_err(|e| {
            Failure::new(Exit::State, format!("cannot print the report as JSON: {e}"))
        })?;
        s.push('\n');
        s
    } else {
        text::render(&report, &args.since, super::Paint(super::use_color()))
    };
    if let Some(path) = &args.html {
        let html = html::render(&report, &args.since, board_dir, path);
        // Never waits on a FIFO nobody reads; `--html /dev/stdout` into a pipe still works.
        fsio::create_no_wait(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, html.as_bytes()))
            .map_err(|e| {
                Failure::new(Exit::Write, format!("cannot write {}: {e}", path.display()))
            })?;
        if !args.json {
            super::output::note(format!("dashboard written to {}", path.display()));
        }
    }
    super::output::print(&out)?;
    Ok(Exit::Ok)
}

/// The queue counted from the board file. A missing board, or one that is not a board (no
/// permission, not UTF-8, too large), leaves the queue to the events; one that is not a regular
/// file (a FIFO, a folder) or whose read fails is refused, as every command refuses it.
fn queue_from_board(board: &Path) -> Result<Option<Queue>, Failure> {
    let text = match fsio::read_board(board) {
        Ok(snap) => snap.text,
        Err(e @ (ReadError::IsDir(_) | ReadError::Io { .. })) => {
            return Err(Failure::new(Exit::Board, format!("cannot read board {e}")));
        }
        Err(_) => return Ok(None),
    };
    let parsed = parse_board(text.strip_prefix('\u{feff}').unwrap_or(&text));
    let mut q = Queue {
        source: "board".into(),
        ..Queue::default()
    };
    // A task the runtime refuses (no usable ID, or an ID another task has) is in no queue.
    let duplicated = parsed.duplicated_ids();
    for task in &parsed.tasks {
        if task.id_problem.is_some() || duplicated.contains(task.id.as_str()) {
            continue;
        }
        match task.status().map(|s| s.state()) {
            Some(State::Ready) => q.ready += 1,
            Some(State::Running) => q.running += 1,
            Some(State::Blocked) => q.blocked += 1,
            Some(State::Failed) => q.failed += 1,
            Some(State::Done) => q.done += 1,
            None => {}
        }
    }
    Ok(Some(q))
}

/// `1 run`, `2 runs`.
fn runs(n: u64) -> String {
    if n == 1 {
        "1 run".to_string()
    } else {
        format!("{n} runs")
    }
}

/// A route row's name: the route, with `(review)` for its review runs.
fn route_label(route: &report::Route) -> String {
    match route.phase.as_deref() {
        Some(phase) => format!("{} ({phase})", route.route),
        None => route.route.clone(),
    }
}

fn opt_ms(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| fmt::duration_ms(ms, Fine))
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Text from the log made safe for a terminal: control characters shown escaped.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn short_ts(ts: &str) -> String {
    // 2026-11-21T10:01:03.000Z -> 2026-11-21 10:01:03
    match (ts.get(..10), ts.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => clean(ts),
    }
}
