//! Diagnostic logging for `taskboard run` and `taskboard once`: human-readable lines on stderr
//! and in a daily file under the board's `.taskboard/logs/`.
//!
//! Owns the tracing subscriber and the log files. It must not write the board, the event log or
//! any other file of the runtime: `events.jsonl` is the record of decisions; these logs are the
//! diagnostics around them.
//!
//! - Filter: `TASKBOARD_LOG` (the `RUST_LOG` syntax), `info` when unset or invalid.
//! - Events: each event appended to `events.jsonl` is also logged ([`event`]), as the line
//!   `taskboard tail` prints for it (`cmd::tail::render_event`), at the level its colour says
//!   (red: error, yellow: warn, else info). The runtime leaves `pass` events out: one per pass,
//!   they would bury everything else.
//! - stderr coloured (a terminal; `cmd::colors` decides, from `NO_COLOR`, `CLICOLOR_FORCE`,
//!   `CLICOLOR` and `TERM`): exactly `tail`'s lines, coloured;
//!   other diagnostics as `time message`, yellow for warnings and red for errors.
//! - stderr otherwise (a service manager captures it: journald, launchd's `StandardErrorPath`):
//!   the same lines without colour, the severity word (`INFO`, `WARN`, `ERROR`) after the time,
//!   so that a reader of the journal can grep for what a terminal shows in colour.
//! - File: `<board's folder>/.taskboard/logs/taskboard.log.YYYY-MM-DD`, one per UTC day: the
//!   uncoloured lines, each starting with its date. When a new file is opened (at start and at each rollover) the oldest files are
//!   removed so that at most `log_keep` remain, today's included. tracing-appender orders them by
//!   creation time where the filesystem records it, else by the date in the name, and only
//!   touches files whose name starts with `taskboard.log`.
//! - The file is written by the thread that logs, one `write` per line, and never loses a line:
//!   these logs are what a person reads after coming back hours later. A writer thread fed
//!   through a queue cost the runtime more (waking it for every line) than the writes
//!   themselves, which wait only when the disk stalls, as the appends to `events.jsonl` do.
//! - If the logs folder cannot be created or the file cannot be opened, lines go to stderr only,
//!   and one warning says so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cmd::Paint;
use crate::cmd::tail::{LogSeverity, render_event};
use crate::core::config;
use crate::core::event::Event;
use crate::shell::config_file;
use crate::shell::fsio;

/// The target of the log records that carry an event: their `plain`, `painted` and `date`
/// fields are its renderings ([`event`]).
pub const EVENT_TARGET: &str = "taskboard::event";

/// Whether stderr shows colour: set once by [`init`], read by [`event`] to know whether a
/// coloured rendering is wanted at all.
static STDERR_ANSI: AtomicBool = AtomicBool::new(false);

/// Logs one event at the level its rendering says. It is rendered here, once, for both
/// outputs, from its fields as `tail` reads them back from its line: the records carry the
/// plain line (the file, an uncoloured stderr), the coloured one when stderr shows colour, and
/// the event's date.
pub fn event(ev: &Event) {
    if !tracing::enabled!(target: EVENT_TARGET, Level::ERROR) {
        return;
    }
    let map = ev.fields();
    let date = map
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|ts| ts.get(..10))
        .unwrap_or_default()
        .to_string();
    let painted = match STDERR_ANSI.load(Ordering::Relaxed) {
        true => render_event(map.clone(), Paint(true)).line(Paint(true)),
        false => String::new(),
    };
    let plain = render_event(map, Paint(false));
    let text = plain.plain_line();
    match plain.severity {
        LogSeverity::Error => {
            tracing::error!(target: EVENT_TARGET, plain = text, painted, date)
        }
        LogSeverity::Warn => tracing::warn!(target: EVENT_TARGET, plain = text, painted, date),
        LogSeverity::Info => tracing::info!(target: EVENT_TARGET, plain = text, painted, date),
    }
}

/// The line format of both outputs: events as `tail` renders them, diagnostics alike.
struct Readable {
    /// Colour (a terminal): `tail`'s own lines. Otherwise the severity word is written out.
    ansi: bool,
    /// Start each line with its date (the file, read days later).
    dated: bool,
}

/// The message, an event's renderings and any other fields of one log record.
#[derive(Default)]
struct LogFields {
    message: String,
    /// An event's line without colour, with the severity word.
    plain: Option<String>,
    /// An event's line coloured; empty when stderr shows no colour.
    painted: String,
    /// An event's date, `YYYY-MM-DD`.
    date: Option<String>,
    rest: Vec<String>,
}

impl Visit for LogFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plain" => self.plain = Some(value.to_string()),
            "painted" => self.painted = value.to_string(),
            "date" if !value.is_empty() => self.date = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            name => self.rest.push(format!("{name}={value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.rest.push(format!("{name}={value:?}")),
        }
    }
}

fn severity_of(level: &Level) -> LogSeverity {
    match *level {
        Level::ERROR => LogSeverity::Error,
        Level::WARN => LogSeverity::Warn,
        _ => LogSeverity::Info,
    }
}

impl<S, N> FormatEvent<S, N> for Readable
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut fields = LogFields::default();
        event.record(&mut fields);
        let paint = Paint(self.ansi);
        let now = chrono::Utc::now();
        let event_line = (event.metadata().target() == EVENT_TARGET)
            .then(|| fields.plain.take())
            .flatten();
        let (date, line) = match event_line {
            Some(plain) => {
                let line = match self.ansi && !fields.painted.is_empty() {
                    true => std::mem::take(&mut fields.painted),
                    false => plain,
                };
                (fields.date.take(), line)
            }
            None => {
                let mut text = fields.message;
                for f in &fields.rest {
                    text.push(' ');
                    text.push_str(f);
                }
                let text: String = text
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                let severity = severity_of(event.metadata().level());
                let time = now.format("%H:%M:%S%.3f").to_string();
                let line = if self.ansi {
                    let text = match severity {
                        LogSeverity::Error => paint.red(&text),
                        LogSeverity::Warn => paint.yellow(&text),
                        LogSeverity::Info => text,
                    };
                    format!("{} {text}", paint.dim(&time))
                } else {
                    format!("{time} {:<5} {text}", severity.word())
                };
                (None, line)
            }
        };
        if self.dated {
            let date = date.unwrap_or_else(|| now.format("%Y-%m-%d").to_string());
            write!(writer, "{date} ")?;
        }
        writeln!(writer, "{line}")
    }
}

/// The file name prefix of the daily files: `taskboard.log.YYYY-MM-DD`.
pub const FILE_PREFIX: &str = "taskboard.log";

/// The folder for the daily files of `board`: `<board's folder>/.taskboard/logs`.
pub fn logs_dir(board: &Path) -> PathBuf {
    fsio::state_dir(board).join("logs")
}

/// Sets up logging for a runtime serving `board`: `log_keep` is read from the configuration
/// (`explicit_config`, or `taskboard.toml` beside the board). A configuration that cannot be
/// loaded gives the default here; the runtime reports it and exits right after.
pub fn init_for_board(board: &Path, explicit_config: Option<&Path>) {
    let board_dir = match board.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let keep = config_file::load(explicit_config, &board_dir)
        .map(|l| l.config.runtime.log_keep)
        .unwrap_or_else(|_| config::RuntimeConfig::default().log_keep);
    init(board, keep)
}

/// Sets up stderr and the daily file for `board`, keeping at most `log_keep` files. Installs the
/// global subscriber once; later calls in the same process leave the first one in place.
pub fn init(board: &Path, log_keep: u32) {
    let filter =
        || EnvFilter::try_from_env("TASKBOARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = crate::cmd::colors(&std::io::stderr());
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(Readable { ansi, dated: false });

    let dir = logs_dir(board);
    let (file, problem) = match open_file(board, &dir, log_keep) {
        Ok(appender) => (Some(appender), None),
        Err(e) => (None, Some(e)),
    };
    let file_layer = file.map(|appender| {
        tracing_subscriber::fmt::layer()
            .with_writer(appender)
            .with_ansi(false)
            .event_format(Readable {
                ansi: false,
                dated: true,
            })
    });
    let installed = tracing_subscriber::registry()
        .with(filter())
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .is_ok();
    if installed {
        STDERR_ANSI.store(ansi, Ordering::Relaxed);
    }
    if installed && let Some(problem) = problem {
        tracing::warn!("{problem}; logging to stderr only");
    }
}

fn open_file(board: &Path, dir: &Path, log_keep: u32) -> Result<RollingFileAppender, String> {
    // Never create the board's folder itself: a missing folder is the runtime's error to report.
    let board_dir = match board.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !board_dir.is_dir() {
        return Err(format!(
            "no log file: the folder {} does not exist",
            board_dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .max_log_files(log_keep.max(1) as usize)
        .build(dir)
        .map_err(|e| format!("cannot open a log file in {}: {e}", dir.display()))
}
