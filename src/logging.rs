//! Diagnostic logging for `taskboard run` and `taskboard once`: human-readable lines on stderr
//! and in a daily file under the board's `.taskboard/logs/`.
//!
//! Owns the tracing subscriber and the log files. It must not write the board, the event log or
//! any other file of the runtime: `events.jsonl` is the record of decisions; these logs are the
//! diagnostics around them.
//!
//! - Filter: `TASKBOARD_LOG` (the `RUST_LOG` syntax), `info` when unset or invalid.
//! - stderr: coloured only when stderr is a terminal and `NO_COLOR` is unset or empty. A service
//!   manager captures it (journald, launchd's `StandardErrorPath`).
//! - File: `<board's folder>/.taskboard/logs/taskboard.log.YYYY-MM-DD`, one per UTC day, never
//!   coloured. When a new file is opened (at start and at each rollover) the oldest files are
//!   removed so that at most `log_keep` remain, today's included. tracing-appender orders them by
//!   creation time where the filesystem records it, else by the date in the name, and only
//!   touches files whose name starts with `taskboard.log`.
//! - The file is written by a background thread. It is *not* lossy: when its queue (128 000
//!   lines) is full, the logging thread waits instead of dropping the line. These logs are what a
//!   person reads after coming back hours later, so a missing line costs more than a short
//!   stall, and the queue fills only when the disk itself stalls.
//! - If the logs folder cannot be created or the file cannot be opened, lines go to stderr only,
//!   and one warning says so.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config;
use crate::fsio;

/// The file name prefix of the daily files: `taskboard.log.YYYY-MM-DD`.
pub const FILE_PREFIX: &str = "taskboard.log";

/// Keeps the file writer's background thread alive; dropping it flushes the remaining lines.
/// Hold it for the whole life of the process.
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
    /// Where the daily files go, when file logging is on.
    pub dir: Option<PathBuf>,
}

/// The folder for the daily files of `board`: `<board's folder>/.taskboard/logs`.
pub fn logs_dir(board: &Path) -> PathBuf {
    fsio::state_dir(board).join("logs")
}

/// Sets up logging for a runtime serving `board`: `log_keep` is read from the configuration
/// (`explicit_config`, or `taskboard.toml` beside the board). A configuration that cannot be
/// loaded gives the default here; the runtime reports it and exits right after.
pub fn init_for_board(board: &Path, explicit_config: Option<&Path>) -> LogGuard {
    let board_dir = match board.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let keep = config::load(explicit_config, &board_dir)
        .map(|l| l.config.runtime.log_keep)
        .unwrap_or_else(|_| config::RuntimeConfig::default().log_keep);
    init(board, keep)
}

/// Sets up stderr and the daily file for `board`, keeping at most `log_keep` files. Installs the
/// global subscriber once; later calls in the same process leave the first one in place.
pub fn init(board: &Path, log_keep: u32) -> LogGuard {
    let filter =
        || EnvFilter::try_from_env("TASKBOARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);

    let dir = logs_dir(board);
    let (file, problem) = match open_file(board, &dir, log_keep) {
        Ok(appender) => (Some(appender), None),
        Err(e) => (None, Some(e)),
    };
    let (file_layer, guard, dir) = match file {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("taskboard-log")
                .finish(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false);
            (Some(layer), Some(guard), Some(dir))
        }
        None => (None, None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(filter())
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .is_ok();
    if installed && let Some(problem) = problem {
        tracing::warn!("{problem}; logging to stderr only");
    }
    LogGuard { _file: guard, dir }
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
