//! `taskboard tail`: the events as a person reads them.
//!
//! One line per event: UTC time (`15:25:03.123`, with a date line whenever the day changes), the
//! event name, the task, then the fields that matter as `key=value` (a field with nothing in it,
//! `null`, `""` or `[]`, is left out). `pass` events, one per pass of the runtime, are hidden
//! unless `--all` asks for them. `taskboard run` prints the same lines on its stderr (see
//! [`render_event`]). `-f` follows the live file like `tail -F`: across rotation (the file
//! renamed away and a new one created), truncation, and a missing file, polling every 200 ms,
//! until SIGTERM or SIGINT ends it. `--json` passes the lines through byte for byte, `pass`
//! events included: only `--task` filters the machine record. A log that is not a regular file
//! (a FIFO) is refused, never opened in a way that waits.
//!
//! Owns how an event line reads for a person ([`render_event`], shared with the runtime's log)
//! and the command. Reading and following the files is `shell::event_log`'s; what a line's
//! fields are is `core::event`'s. Must not touch: the board or the log, which it only reads.

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
pub struct TailArgs {
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

pub fn run(args: &TailArgs) -> CmdResult {
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
        out: super::output::stdout(),
        paint: super::Paint(super::use_color()),
        json: args.json,
        task: args.task.clone(),
        all: args.all,
        last_date: None,
    };
    let (history, follower) = history(args, &board_dir, &live, &printer)?;
    for line in &history {
        printer.print(line).map_err(Failure::output)?;
    }
    printer.out.flush().map_err(Failure::output)?;
    if !args.follow {
        return Ok(Exit::Ok);
    }
    follow(&mut printer, follower, &live)
}

/// The last `args.lines` wanted lines of every log file, and a follower of the live file that
/// starts where their reading stopped.
fn history(
    args: &TailArgs,
    board_dir: &Path,
    live: &Path,
    printer: &Printer<impl Write>,
) -> Result<(VecDeque<Vec<u8>>, Follower), Failure> {
    // The live file is opened before the history is read, so that nothing appended in between
    // is missed: following starts where this handle's reading stops.
    let current = match fsio::open_regular(live) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(cannot_read(live, &e)),
    };
    let mut history: VecDeque<Vec<u8>> = VecDeque::new();
    let mut keep = |line: &[u8]| {
        if args.lines > 0 && printer.wanted(line) {
            if history.len() == args.lines {
                history.pop_front();
            }
            history.push_back(line.to_vec());
        }
    };
    for file in log_files(board_dir) {
        if file == live {
            continue;
        }
        let read = for_each_line(&file, |line, terminated| {
            if terminated || parses(line) {
                keep(line);
            }
        });
        if let Err(e) = read
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(cannot_read(&file, &e));
        }
    }
    let opened = current.is_some();
    let mut follower = Follower::with_file(live, current);
    if opened {
        let lines = follower.read_new().map_err(|e| cannot_read(live, &e))?;
        for line in lines {
            keep(&line);
        }
        if !args.follow {
            // A last line without newline: shown when it is whole, skipped when torn.
            let last = follower.take_pending();
            if !last.is_empty() && parses(&last) {
                keep(&last);
            }
        }
    } else if !args.follow {
        note(format!("no events yet: {} does not exist", live.display()));
    } else {
        note(format!("waiting for {} to appear", live.display()));
    }
    Ok((history, follower))
}

/// `-f`: prints each wanted line appended to the live file, until a signal ends the process
/// (see [`stop_on_signals`]) or stdout fails.
fn follow(printer: &mut Printer<impl Write>, mut follower: Follower, live: &Path) -> CmdResult {
    loop {
        let polled = follower.poll();
        if follower.take_truncated() {
            note(format!("{} was truncated", live.display()));
        }
        let lines = match polled {
            Ok(lines) => lines,
            // Something that is not a regular file took the log's place: it is never opened.
            Err(e) if fsio::is_not_regular(&e) => return Err(cannot_read(live, &e)),
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
                render(map, self.paint)
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

    fn severity(self) -> LogSeverity {
        match self {
            Tone::Red => LogSeverity::Error,
            Tone::Yellow => LogSeverity::Warn,
            Tone::Plain | Tone::Green | Tone::Cyan => LogSeverity::Info,
        }
    }
}

/// How much an event asks of a person: red lines are errors, yellow ones warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSeverity {
    Info,
    Warn,
    Error,
}

impl LogSeverity {
    /// The word written in place of colour: `INFO`, `WARN`, `ERROR`.
    pub fn word(self) -> &'static str {
        match self {
            LogSeverity::Info => "INFO",
            LogSeverity::Warn => "WARN",
            LogSeverity::Error => "ERROR",
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
    pub severity: LogSeverity,
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
fn render(map: Fields, p: Paint) -> String {
    render_event(map, p).line(p)
}

/// One event of `events.jsonl` (parsed) made readable; `p` paints it or not.
pub fn render_event(map: Fields, p: Paint) -> Rendered {
    let mut line = Line {
        fields: map,
        parts: Vec::new(),
        tone: Tone::Plain,
    };
    let time = line
        .take("ts")
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|t| t.get(11..23))
        .map_or_else(|| "??:??:??.???".to_string(), clean);
    let event = line
        .take("event")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let task = line.take("task").map(|v| value_text(&v));
    line.event_fields(&event);
    // Whatever is left (fields this version does not know), by name.
    for (k, v) in std::mem::take(&mut line.fields) {
        if !is_empty(&v) {
            line.parts.push(format!("{}={}", clean(&k), value_text(&v)));
        }
    }
    let mut body = line.tone.apply(p, &format!("{:<20}", clean(&event)));
    if let Some(task) = task {
        body.push(' ');
        body.push_str(&p.bold(&task));
    }
    if !line.parts.is_empty() {
        body.push(' ');
        body.push_str(&line.parts.join(" "));
    }
    Rendered {
        time,
        body,
        severity: line.tone.severity(),
    }
}

/// An event's line being written: the fields not yet shown, the parts written so far, and its
/// tone.
struct Line {
    fields: Fields,
    parts: Vec<String>,
    tone: Tone,
}

impl Line {
    fn take(&mut self, k: &str) -> Option<Value> {
        self.fields.remove(k)
    }

    fn push(&mut self, part: impl Into<String>) {
        self.parts.push(part.into());
    }

    /// `key=value`, unless the field is missing or says nothing.
    fn kv(&mut self, k: &str) {
        if let Some(v) = self.fields.remove(k)
            && !is_empty(&v)
        {
            self.parts.push(format!("{k}={}", value_text(&v)));
        }
    }

    /// `review` for a review run; any other phase by name.
    fn phase(&mut self) {
        match self.fields.remove("phase") {
            Some(Value::String(s)) if s == "review" => self.push("review"),
            Some(v) => self.push(format!("phase={}", value_text(&v))),
            None => {}
        }
    }

    /// Where a remote run is, as `on=ssh:gpu1 pgid=4242` or `on=slurm:17 node=node1`, taken
    /// only when `remote` is an object naming its runner; otherwise left for the fields by name.
    fn remote(&mut self) {
        let Some(Value::Object(place)) = self.fields.get("remote") else {
            return;
        };
        let text = |k: &str| place.get(k).filter(|v| !is_empty(v)).map(value_text);
        let (Some(runner), host, job, node, pgid) = (
            text("runner"),
            text("host"),
            text("job_id"),
            text("node"),
            text("pgid"),
        ) else {
            return;
        };
        let at = match runner.as_str() {
            "slurm" => job.unwrap_or_else(|| "?".into()),
            _ => host.unwrap_or_else(|| "?".into()),
        };
        let mut parts = vec![format!(
            "on={}",
            value_text(&Value::String(format!("{runner}:{at}")))
        )];
        parts.extend(node.map(|n| format!("node={n}")));
        parts.extend(pgid.map(|g| format!("pgid={g}")));
        self.fields.remove("remote");
        self.parts.extend(parts);
    }

    /// A number field, taken only when it is one.
    fn take_u64(&mut self, k: &str) -> Option<u64> {
        self.take(k).and_then(|v| v.as_u64())
    }

    /// Two dollar amounts, taken only when both are numbers.
    fn take_usd_pair(&mut self, a: &str, b: &str) -> Option<(f64, f64)> {
        let pair = (
            self.fields.get(a).and_then(Value::as_f64)?,
            self.fields.get(b).and_then(Value::as_f64)?,
        );
        self.fields.remove(a);
        self.fields.remove(b);
        Some(pair)
    }

    /// A list of file names, taken when it is one: `None` when absent or not a list.
    fn take_list(&mut self, k: &str) -> Option<Vec<Value>> {
        match self.fields.get(k) {
            Some(Value::Array(_)) => match self.fields.remove(k) {
                Some(Value::Array(items)) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// The parts and tone of each kind of event; fields left over are written by name after.
    fn event_fields(&mut self, event: &str) {
        match event {
            "task_finished" => self.task_finished(),
            "task_dispatched" => {
                self.phase();
                for k in ["attempt", "route", "agent", "pid"] {
                    self.kv(k);
                }
                self.remote();
            }
            "remote_running" => {
                self.tone = Tone::Cyan;
                self.kv("attempt");
                self.remote();
            }
            "run_adopted" => {
                self.tone = Tone::Cyan;
                self.kv("attempt");
                self.remote();
                match self.take("finished") {
                    Some(Value::Bool(true)) => self.push("-> already finished"),
                    Some(Value::Bool(false)) => self.push("-> still running"),
                    Some(v) => self.push(format!("finished={}", value_text(&v))),
                    None => {}
                }
            }
            "host_down" => {
                self.tone = Tone::Yellow;
                self.kv("route");
                self.kv("host");
                if let Some(until) = self.take("until") {
                    self.push(format!("-> down until {}", value_text(&until)));
                }
                self.kv("reason");
            }
            "file_changed" => {
                if let Some(ms) = self.take_u64("latency_ms") {
                    self.push(format!("latency={}", fmt::duration_ms(ms, Fine)));
                }
                self.kv("bytes");
            }
            "pass" => {
                self.kv("tasks");
                self.kv("dispatched");
                if let Some(us) = self.take_u64("duration_us") {
                    self.push(format!("{:.1}ms", us as f64 / 1000.0));
                }
            }
            "task_retry_scheduled" => {
                self.tone = Tone::Yellow;
                self.kv("attempt");
                if let Some(at) = self.take("at") {
                    self.push(format!("-> retry at {}", value_text(&at)));
                }
            }
            "task_deadlettered" => {
                self.tone = Tone::Red;
                self.kv("attempts");
                if let Some(path) = self.take("path") {
                    self.push(format!("-> {}", value_text(&path)));
                }
            }
            "dependency_promoted" => {
                self.tone = Tone::Cyan;
                self.kv("deps");
                self.push("-> ready");
            }
            "retry_requested" => {
                self.tone = Tone::Cyan;
                self.kv("from");
                self.push("-> ready");
                self.kv("archived");
            }
            "budget_exhausted" => self.budget_exhausted(),
            "cost_over_cap" => self.cost_over_cap(),
            "evidence_mismatch" => self.evidence_mismatch(),
            "stale_claim_reset" | "task_interrupted" | "status_reasserted" | "lock_broken"
            | "task_cancelled" | "task_held" | "writeback_conflict" | "ending_kept"
            | "save_put_back" => self.tone = Tone::Yellow,
            "lint" => self.lint(),
            "error" => {
                self.tone = Tone::Red;
                self.kv("message");
                self.kv("context");
            }
            "runtime_stopped" => self.runtime_stopped(),
            "runtime_started" => {
                self.tone = Tone::Green;
                for k in ["mode", "version", "pid"] {
                    self.kv(k);
                }
            }
            _ => {}
        }
    }

    fn task_finished(&mut self) {
        self.phase();
        self.kv("attempt");
        if let Some(code) = self.take("exit_code") {
            self.push(format!("exit={}", value_text(&code)));
        }
        self.kv("signal");
        if let Some(ms) = self.take_u64("duration_ms") {
            self.push(fmt::duration_ms(ms, Fine));
        }
        if let Some(cost) = self.fields.get("cost_usd").and_then(Value::as_f64) {
            self.fields.remove("cost_usd");
            self.push(fmt::usd(cost));
        }
        let tokens_in = self.fields.get("tokens_in").and_then(Value::as_u64);
        let tokens_out = self.fields.get("tokens_out").and_then(Value::as_u64);
        if tokens_in.is_some() || tokens_out.is_some() {
            self.fields.remove("tokens_in");
            self.fields.remove("tokens_out");
            let n = |t: Option<u64>| t.map_or_else(|| "?".to_string(), |n| n.to_string());
            self.push(format!("tokens={}/{}", n(tokens_in), n(tokens_out)));
        }
        if let Some(outcome) = self.take("outcome") {
            let o = value_text(&outcome);
            self.tone = if o == "done" {
                Tone::Green
            } else if o.starts_with("failed") {
                Tone::Red
            } else if o.starts_with("blocked:retry") || o == "interrupted" || o == "cancelled" {
                Tone::Yellow
            } else {
                self.tone
            };
            self.push(format!("-> {o}"));
        }
        self.kv("stopped");
        self.kv("note");
        if let Some(Value::Array(files)) = self.fields.get("changed")
            && !files.is_empty()
        {
            let shown: Vec<String> = files.iter().take(3).map(value_text).collect();
            let mut text = format!("changed={}", shown.join(","));
            if files.len() > 3 {
                let _ = write!(text, ",+{} more", files.len() - 3);
            }
            self.push(text);
            self.fields.remove("changed");
        }
        self.kv("handoff");
    }

    fn budget_exhausted(&mut self) {
        self.tone = Tone::Yellow;
        self.kv("route");
        if let Some((spent, budget)) = self.take_usd_pair("spent_usd", "budget_usd") {
            self.push(format!(
                "spent {} of {} today",
                fmt::usd(spent),
                fmt::usd(budget)
            ));
        }
        if let Some(n) = self.fields.get("waiting").and_then(Value::as_u64) {
            self.fields.remove("waiting");
            self.push(format!("-> {n} waiting for the next UTC day"));
        }
    }

    fn cost_over_cap(&mut self) {
        self.tone = Tone::Yellow;
        self.kv("attempt");
        self.kv("route");
        if let Some((cost, cap)) = self.take_usd_pair("cost_usd", "cap_usd") {
            self.push(format!("{} > cap {}", fmt::usd(cost), fmt::usd(cap)));
        }
    }

    fn evidence_mismatch(&mut self) {
        self.tone = Tone::Yellow;
        self.kv("attempt");
        let mut lists = Vec::new();
        for (key, label) in [
            ("claimed_not_seen", "claimed, not seen:"),
            ("seen_not_claimed", "seen, not claimed:"),
            ("outside_touches", "outside its touches:"),
        ] {
            if let Some(files) = self.take_list(key)
                && !files.is_empty()
            {
                let names: Vec<String> = files.iter().map(value_text).collect();
                lists.push(format!("{label} {}", names.join(",")));
            }
        }
        if !lists.is_empty() {
            self.push(lists.join("; "));
        }
    }

    fn lint(&mut self) {
        let severity = self.take("severity").map(|v| value_text(&v));
        self.tone = if severity.as_deref() == Some("error") {
            Tone::Red
        } else {
            Tone::Yellow
        };
        let mut text = |k: &str| self.take(k).map(|v| value_text(&v)).unwrap_or_default();
        let (code, line, col) = (text("code"), text("line"), text("column"));
        self.push(format!(
            "{} {code} at {line}:{col}",
            severity.unwrap_or_default()
        ));
        self.kv("message");
    }

    /// `once finished` beside a live `run` must not read as the service stopping: the mode
    /// comes first. Events written before the field existed keep `reason=`.
    fn runtime_stopped(&mut self) {
        if let Some(Value::String(mode)) = self.fields.get("mode").cloned() {
            self.fields.remove("mode");
            match self.fields.remove("reason") {
                Some(Value::String(reason)) if reason == "finished" => {
                    self.push(format!("{} finished", clean(&mode)));
                }
                Some(Value::String(reason)) if !reason.is_empty() => {
                    self.push(format!("{} stopped: {}", clean(&mode), clean(&reason)));
                }
                _ => self.push(clean(&mode)),
            }
        }
        self.kv("reason");
    }
}

/// Render one line as `tail` prints it without colour (for tests and other tools).
pub fn render_line(line: &str) -> Option<String> {
    let map = fields_of(line.as_bytes()).ok()?;
    Some(render(map, Paint(false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(line: &str) -> String {
        let map = fields_of(line.as_bytes()).unwrap();
        render(map, Paint(true))
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
