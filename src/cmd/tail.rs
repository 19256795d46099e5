//! `taskboard tail`: the events as a person reads them.
//!
//! One line per event: UTC time (`15:25:03.123`, with a date line whenever the day changes), the
//! event name, the task, then the fields that matter as `key=value` (a field with nothing in it,
//! `null`, `""` or `[]`, is left out). `pass` events, one per pass of the runtime, are hidden
//! unless `--all` asks for them. `taskboard run` prints the same lines on its stderr (see
//! [`render_event`]). `-f` follows the live file like `tail -F`: across rotation (the file
//! renamed away and a new one created), truncation, and a missing file, polling every 200 ms,
//! until SIGTERM or SIGINT ends it. `--json` passes the lines through byte for byte, `pass`
//! events included: only `--task` filters the machine record. A log that is not a regular file (a FIFO) is refused, never
//! opened in a way that waits.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;

use super::output::note;
use super::{CmdResult, Failure, Paint};
use crate::core::event::{Fields, Head, fields_of};
use crate::core::fmt::{self, Precision::Fine};
use crate::exit::Exit;
use crate::shell::event_log::{Follower, for_each_line, log_files};
use crate::shell::fsio;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The board file; its events.jsonl is read.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Keep following new events, across rotation and truncation (like `tail -F`).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events about this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Print the JSON lines unchanged (for jq).
    #[arg(long)]
    pub json: bool,
    /// Also show `pass` events (one per pass of the runtime over the board; hidden by default).
    #[arg(long)]
    pub all: bool,
    /// How many past events to show first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
}

/// How often `-f` looks at the file.
const POLL: Duration = Duration::from_millis(200);

pub fn run(args: &Args) -> CmdResult {
    let board = super::resolve_board(&args.board)?;
    let board_dir = match board.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let live = board_dir.join("events.jsonl");
    if args.follow {
        stop_on_signals()?;
    }
    let mut printer = Printer {
        out: io::stdout().lock(),
        paint: super::Paint(super::use_color()),
        json: args.json,
        task: args.task.clone(),
        all: args.all,
        last_date: None,
    };

    // The live file is opened before the history is read, so that nothing appended in between
    // is missed: following starts where this handle's reading stops.
    let current = match fsio::open_regular(&live) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(cannot_read(&live, &e)),
    };
    let mut history: VecDeque<Vec<u8>> = VecDeque::new();
    let keep = |history: &mut VecDeque<Vec<u8>>, line: &[u8], printer: &Printer<_>| {
        if args.lines > 0 && printer.wanted(line) {
            if history.len() == args.lines {
                history.pop_front();
            }
            history.push_back(line.to_vec());
        }
    };
    for file in log_files(&board_dir) {
        if file == live {
            continue;
        }
        let read = for_each_line(&file, |line, terminated| {
            if terminated || parses(line) {
                keep(&mut history, line, &printer);
            }
        });
        if let Err(e) = read
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(cannot_read(&file, &e));
        }
    }
    let opened = current.is_some();
    let mut follower = Follower::with_file(&live, current);
    if opened {
        let lines = follower.read_new().map_err(|e| cannot_read(&live, &e))?;
        for line in lines {
            keep(&mut history, &line, &printer);
        }
        if !args.follow {
            // A last line without newline: shown when it is whole, skipped when torn.
            let last = follower.take_pending();
            if !last.is_empty() && parses(&last) {
                keep(&mut history, &last, &printer);
            }
        }
    } else if !args.follow {
        note(format!("no events yet: {} does not exist", live.display()));
    } else {
        note(format!("waiting for {} to appear", live.display()));
    }
    for line in &history {
        printer.print(line).map_err(Failure::output)?;
    }
    printer.out.flush().map_err(Failure::output)?;
    if !args.follow {
        return Ok(Exit::Ok);
    }

    // Until a signal ends the process (see `stop_on_signals`) or stdout fails.
    loop {
        let polled = follower.poll();
        if follower.take_truncated() {
            note(format!("{} was truncated", live.display()));
        }
        let lines = match polled {
            Ok(lines) => lines,
            // Something that is not a regular file took the log's place: it is never opened.
            Err(e) if fsio::is_not_regular(&e) => return Err(cannot_read(&live, &e)),
            Err(e) => {
                note(format!("{}: {e}", live.display()));
                Vec::new()
            }
        };
        for line in lines {
            if printer.wanted(&line) {
                printer.print(&line).map_err(Failure::output)?;
            }
        }
        printer.out.flush().map_err(Failure::output)?;
        std::thread::sleep(POLL);
    }
}

/// `-f` reads and prints, and has nothing to finish or clean up: SIGTERM and SIGINT end it at
/// once with exit 0, whatever it is waiting on (the poll's sleep, a write to a pipe nobody
/// reads). A flag checked by the loop would leave it deaf while blocked in a write.
pub(super) fn stop_on_signals() -> Result<(), Failure> {
    let always = Arc::new(AtomicBool::new(true));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 0, Arc::clone(&always))
            .map_err(|e| Failure::new(Exit::State, format!("cannot handle signals: {e}")))?;
    }
    Ok(())
}

/// An event log file that cannot be read, a FIFO in its place included: exit 4.
fn cannot_read(path: &Path, e: &io::Error) -> Failure {
    Failure::new(Exit::State, format!("cannot read {}: {e}", path.display()))
}

/// Whether a line reads as a JSON object (the last line of a file without its newline is shown
/// only then: otherwise it is torn).
fn parses(line: &[u8]) -> bool {
    fields_of(line).is_ok()
}

struct Printer<W: Write> {
    out: W,
    paint: Paint,
    json: bool,
    task: Option<String>,
    /// Show `pass` events too.
    all: bool,
    last_date: Option<String>,
}

impl<W: Write> Printer<W> {
    /// Whether the line passes the `--task` filter, and is not a `pass` hidden without `--all`.
    fn wanted(&self, line: &[u8]) -> bool {
        let hide_passes = !self.all && !self.json;
        if self.task.is_none() && !hide_passes {
            return true;
        }
        // An unreadable line is shown (as unreadable) unless a task filter asks for a task.
        let head = Head::from_line(line).ok();
        if hide_passes
            && head
                .as_ref()
                .and_then(|h| h.event.as_deref())
                .is_some_and(|e| e == "pass")
        {
            return false;
        }
        match &self.task {
            None => true,
            Some(want) => head
                .and_then(|h| h.task)
                .is_some_and(|t| &*t == want.as_str()),
        }
    }

    fn print(&mut self, line: &[u8]) -> io::Result<()> {
        if self.json {
            self.out.write_all(line)?;
            return self.out.write_all(b"\n");
        }
        let text = match fields_of(line) {
            Ok(map) => {
                let date = map
                    .get("ts")
                    .and_then(Value::as_str)
                    .and_then(|ts| ts.get(..10))
                    .map(str::to_owned);
                if date.is_some() && date != self.last_date {
                    let d = date.clone().unwrap_or_default();
                    writeln!(
                        self.out,
                        "{}",
                        self.paint.dim(&format!("── {} (UTC)", clean(&d)))
                    )?;
                    self.last_date = date;
                }
                render(&map, self.paint)
            }
            Err(_) => self.paint.red(&format!(
                "unreadable line: {}",
                clean(&String::from_utf8_lossy(line))
            )),
        };
        writeln!(self.out, "{text}")
    }
}

/// Text from the log made safe for a terminal: control characters shown escaped.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A value as `key=value` text: plain when it is a simple token, JSON-quoted otherwise.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let simple = !s.is_empty()
                && s.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
            if simple {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_text).collect();
            parts.join(",")
        }
        other => clean(&other.to_string()),
    }
}

/// How an event reads at a glance: the colour of its name on a terminal, and the severity word
/// written where there is no colour (a service manager's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Green,
    Cyan,
    Yellow,
    Red,
}

impl Tone {
    fn apply(self, p: Paint, s: &str) -> String {
        match self {
            Tone::Plain => s.to_string(),
            Tone::Green => p.green(s),
            Tone::Cyan => p.cyan(s),
            Tone::Yellow => p.yellow(s),
            Tone::Red => p.red(s),
        }
    }

    fn severity(self) -> Severity {
        match self {
            Tone::Red => Severity::Error,
            Tone::Yellow => Severity::Warn,
            Tone::Plain | Tone::Green | Tone::Cyan => Severity::Info,
        }
    }
}

/// How much an event asks of a person: red lines are errors, yellow ones warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// The word written in place of colour: `INFO`, `WARN`, `ERROR`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One event made readable, in pieces, so that `tail` and the runtime's own log lines say the
/// same thing: `tail` prints `time body`; a log without colour puts the severity word between.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `15:25:03.123` (UTC), from the event's `ts`.
    pub time: String,
    /// The event's name, its task and its fields, painted when colour is on.
    pub body: String,
    pub severity: Severity,
}

impl Rendered {
    /// The line as `tail` prints it.
    pub fn line(&self, p: Paint) -> String {
        format!("{} {}", p.dim(&self.time), self.body)
            .trim_end()
            .to_string()
    }

    /// The line without colour, the severity word after the time: for logs read without a
    /// terminal, where `grep ' ERROR '` has to find what a terminal would show in red.
    pub fn plain_line(&self) -> String {
        format!("{} {:<5} {}", self.time, self.severity.word(), self.body)
            .trim_end()
            .to_string()
    }
}

/// Whether a field says nothing: `null`, `""` or `[]`. Such fields are left out of the line.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// One event as a readable line (without the date, which [`Printer`] prints on change).
fn render(map: &Fields, p: Paint) -> String {
    render_event(map, p).line(p)
}

/// One event of `events.jsonl` (parsed) made readable; `p` paints it or not.
pub fn render_event(map: &Fields, p: Paint) -> Rendered {
    let mut fields = map.clone();
    let take = |fields: &mut Fields, k: &str| fields.remove(k);
    let ts = take(&mut fields, "ts");
    let time = ts
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|t| t.get(11..23))
        .map_or_else(|| "??:??:??.???".to_string(), clean);
    let event = take(&mut fields, "event")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let task = take(&mut fields, "task").map(|v| value_text(&v));
    let mut parts: Vec<String> = Vec::new();
    let kv = |fields: &mut Fields, k: &str, parts: &mut Vec<String>| {
        if let Some(v) = fields.remove(k)
            && !is_empty(&v)
        {
            parts.push(format!("{k}={}", value_text(&v)));
        }
    };
    let mut tone = Tone::Plain;
    // `review` first for a review run; any other phase by name.
    let phase = |fields: &mut Fields, parts: &mut Vec<String>| match fields.remove("phase") {
        Some(Value::String(s)) if s == "review" => parts.push("review".into()),
        Some(v) => parts.push(format!("phase={}", value_text(&v))),
        None => {}
    };
    let usd = |fields: &mut Fields, k: &str| -> Option<String> {
        let v = fields.get(k)?.as_f64()?;
        fields.remove(k);
        Some(fmt::usd(v))
    };
    match event.as_str() {
        "task_finished" => {
            phase(&mut fields, &mut parts);
            kv(&mut fields, "attempt", &mut parts);
            if let Some(code) = take(&mut fields, "exit_code") {
                parts.push(format!("exit={}", value_text(&code)));
            }
            kv(&mut fields, "signal", &mut parts);
            if let Some(ms) = take(&mut fields, "duration_ms").and_then(|v| v.as_u64()) {
                parts.push(fmt::duration_ms(ms, Fine));
            }
            if let Some(cost) = usd(&mut fields, "cost_usd") {
                parts.push(cost);
            }
            let tokens_in = fields.get("tokens_in").and_then(Value::as_u64);
            let tokens_out = fields.get("tokens_out").and_then(Value::as_u64);
            if tokens_in.is_some() || tokens_out.is_some() {
                fields.remove("tokens_in");
                fields.remove("tokens_out");
                let n = |t: Option<u64>| t.map_or_else(|| "?".to_string(), |n| n.to_string());
                parts.push(format!("tokens={}/{}", n(tokens_in), n(tokens_out)));
            }
            if let Some(outcome) = take(&mut fields, "outcome") {
                let o = value_text(&outcome);
                tone = if o == "done" {
                    Tone::Green
                } else if o.starts_with("failed") {
                    Tone::Red
                } else if o.starts_with("blocked:retry") || o == "interrupted" || o == "cancelled" {
                    Tone::Yellow
                } else {
                    tone
                };
                parts.push(format!("-> {o}"));
            }
            kv(&mut fields, "stopped", &mut parts);
            kv(&mut fields, "note", &mut parts);
            if let Some(Value::Array(files)) = fields.get("changed")
                && !files.is_empty()
            {
                let shown: Vec<String> = files.iter().take(3).map(value_text).collect();
                let mut text = format!("changed={}", shown.join(","));
                if files.len() > 3 {
                    let _ = write!(text, ",+{} more", files.len() - 3);
                }
                parts.push(text);
                fields.remove("changed");
            }
            kv(&mut fields, "handoff", &mut parts);
        }
        "task_dispatched" => {
            phase(&mut fields, &mut parts);
            kv(&mut fields, "attempt", &mut parts);
            kv(&mut fields, "route", &mut parts);
            kv(&mut fields, "agent", &mut parts);
            kv(&mut fields, "pid", &mut parts);
        }
        "file_changed" => {
            if let Some(ms) = take(&mut fields, "latency_ms").and_then(|v| v.as_u64()) {
                parts.push(format!("latency={}", fmt::duration_ms(ms, Fine)));
            }
            kv(&mut fields, "bytes", &mut parts);
        }
        "pass" => {
            kv(&mut fields, "tasks", &mut parts);
            kv(&mut fields, "dispatched", &mut parts);
            if let Some(us) = take(&mut fields, "duration_us").and_then(|v| v.as_u64()) {
                parts.push(format!("{:.1}ms", us as f64 / 1000.0));
            }
        }
        "task_retry_scheduled" => {
            tone = Tone::Yellow;
            kv(&mut fields, "attempt", &mut parts);
            if let Some(at) = take(&mut fields, "at") {
                parts.push(format!("-> retry at {}", value_text(&at)));
            }
        }
        "task_deadlettered" => {
            tone = Tone::Red;
            kv(&mut fields, "attempts", &mut parts);
            if let Some(path) = take(&mut fields, "path") {
                parts.push(format!("-> {}", value_text(&path)));
            }
        }
        "dependency_promoted" => {
            tone = Tone::Cyan;
            kv(&mut fields, "deps", &mut parts);
            parts.push("-> ready".into());
        }
        "retry_requested" => {
            tone = Tone::Cyan;
            kv(&mut fields, "from", &mut parts);
            parts.push("-> ready".into());
            kv(&mut fields, "archived", &mut parts);
        }
        "budget_exhausted" => {
            tone = Tone::Yellow;
            kv(&mut fields, "route", &mut parts);
            if let (Some(spent), Some(budget)) = (
                fields.get("spent_usd").and_then(Value::as_f64),
                fields.get("budget_usd").and_then(Value::as_f64),
            ) {
                fields.remove("spent_usd");
                fields.remove("budget_usd");
                parts.push(format!(
                    "spent {} of {} today",
                    fmt::usd(spent),
                    fmt::usd(budget)
                ));
            }
            if let Some(n) = fields.get("waiting").and_then(Value::as_u64) {
                fields.remove("waiting");
                parts.push(format!("-> {n} waiting for the next UTC day"));
            }
        }
        "cost_over_cap" => {
            tone = Tone::Yellow;
            kv(&mut fields, "attempt", &mut parts);
            kv(&mut fields, "route", &mut parts);
            if let (Some(cost), Some(cap)) = (
                fields.get("cost_usd").and_then(Value::as_f64),
                fields.get("cap_usd").and_then(Value::as_f64),
            ) {
                fields.remove("cost_usd");
                fields.remove("cap_usd");
                parts.push(format!("{} > cap {}", fmt::usd(cost), fmt::usd(cap)));
            }
        }
        "evidence_mismatch" => {
            tone = Tone::Yellow;
            kv(&mut fields, "attempt", &mut parts);
            let mut lists = Vec::new();
            for (key, label) in [
                ("claimed_not_seen", "claimed, not seen:"),
                ("seen_not_claimed", "seen, not claimed:"),
            ] {
                if let Some(Value::Array(files)) = fields.get(key) {
                    if !files.is_empty() {
                        let names: Vec<String> = files.iter().map(value_text).collect();
                        lists.push(format!("{label} {}", names.join(",")));
                    }
                    fields.remove(key);
                }
            }
            if !lists.is_empty() {
                parts.push(lists.join("; "));
            }
        }
        "stale_claim_reset" | "task_interrupted" | "status_reasserted" | "lock_broken"
        | "task_cancelled" | "writeback_conflict" | "ending_kept" => tone = Tone::Yellow,
        "lint" => {
            let severity = take(&mut fields, "severity").map(|v| value_text(&v));
            tone = if severity.as_deref() == Some("error") {
                Tone::Red
            } else {
                Tone::Yellow
            };
            let code = take(&mut fields, "code").map(|v| value_text(&v));
            let line = take(&mut fields, "line").map(|v| value_text(&v));
            let col = take(&mut fields, "column").map(|v| value_text(&v));
            parts.push(format!(
                "{} {} at {}:{}",
                severity.unwrap_or_default(),
                code.unwrap_or_default(),
                line.unwrap_or_default(),
                col.unwrap_or_default()
            ));
            kv(&mut fields, "message", &mut parts);
        }
        "error" => {
            tone = Tone::Red;
            kv(&mut fields, "message", &mut parts);
            kv(&mut fields, "context", &mut parts);
        }
        "runtime_stopped" => {
            // `once finished` beside a live `run` must not read as the service stopping: the
            // mode comes first. Events written before the field existed keep `reason=`.
            if let Some(Value::String(mode)) = fields.get("mode").cloned() {
                fields.remove("mode");
                match fields.remove("reason") {
                    Some(Value::String(reason)) if reason == "finished" => {
                        parts.push(format!("{} finished", clean(&mode)));
                    }
                    Some(Value::String(reason)) if !reason.is_empty() => {
                        parts.push(format!("{} stopped: {}", clean(&mode), clean(&reason)));
                    }
                    _ => parts.push(clean(&mode)),
                }
            }
            kv(&mut fields, "reason", &mut parts);
        }
        "runtime_started" => {
            tone = Tone::Green;
            kv(&mut fields, "mode", &mut parts);
            kv(&mut fields, "version", &mut parts);
            kv(&mut fields, "pid", &mut parts);
        }
        _ => {}
    }
    // Whatever is left (fields this version does not know), by name.
    for (k, v) in fields {
        if !is_empty(&v) {
            parts.push(format!("{}={}", clean(&k), value_text(&v)));
        }
    }
    let mut body = tone.apply(p, &format!("{:<20}", clean(&event)));
    if let Some(task) = task {
        body.push(' ');
        body.push_str(&p.bold(&task));
    }
    if !parts.is_empty() {
        body.push(' ');
        body.push_str(&parts.join(" "));
    }
    Rendered {
        time,
        body,
        severity: tone.severity(),
    }
}

/// Render one line as `tail` prints it without colour (for tests and other tools).
pub fn render_line(line: &str) -> Option<String> {
    let map = fields_of(line.as_bytes()).ok()?;
    Some(render(&map, Paint(false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(line: &str) -> String {
        let map = fields_of(line.as_bytes()).unwrap();
        render(&map, Paint(true))
    }

    #[test]
    fn cost_and_evidence_warnings_are_yellow() {
        for line in [
            r#"{"ts":"2026-11-22T15:25:03.123Z","event":"cost_over_cap","task":"A","route":"r","attempt":1,"cost_usd":2.0,"cap_usd":1.0}"#,
            r#"{"ts":"2026-11-22T15:25:03.123Z","event":"evidence_mismatch","task":"A","attempt":1,"claimed_not_seen":["a"],"seen_not_claimed":[]}"#,
            r#"{"ts":"2026-11-22T15:25:03.123Z","event":"budget_exhausted","route":"r","spent_usd":2.0,"budget_usd":1.0,"waiting":1}"#,
        ] {
            let out = painted(line);
            let event = serde_json::from_str::<Value>(line).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                out.contains(&format!("\x1b[33m{event:<20}\x1b[0m")),
                "{out:?}"
            );
        }
    }
}
