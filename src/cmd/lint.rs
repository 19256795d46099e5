//! `taskboard lint`: print the board's findings and exit 1 when any is an error.
//!
//! Owns reading a board file for the read-only commands ([`read_board_text`]) and printing
//! findings. The checks themselves are `crate::lint`; this module never writes any file.
//!
//! Text output, one line per finding, then a summary:
//!
//! ```text
//! task-board.md:12:11: error[unknown-status]: status `Ready` is not valid: statuses are lower case: `ready`
//! 1 error, 0 warnings
//! ```
//!
//! `--json` prints one object per finding per line and no summary:
//! `{"line":12,"column":11,"severity":"error","code":"unknown-status","task":"A-1","message":"…"}`.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use super::{CmdResult, Failure, Paint, use_color};
use crate::board::Board;
use crate::exit::Exit;
use crate::lint::{Finding, LintContext, Severity, invalid_utf8, lint};

/// The largest board any command reads.
pub const MAX_BOARD_BYTES: u64 = 64 * 1024 * 1024;

/// The staleness threshold used until the configuration is read here (matches the default
/// `stale_after` in taskboard.toml).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

/// Reads a board as UTF-8 text, or explains in one line why it cannot (exit 2).
pub(crate) fn read_board_text(path: &Path) -> Result<String, Failure> {
    let shown = path.display();
    let fail = |message: String| Failure::new(Exit::Board, message);
    let io_reason = |e: &std::io::Error| match e.kind() {
        ErrorKind::NotFound => "it does not exist".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(fail(format!(
                "cannot read board {shown}: it does not exist (create one with `taskboard init`)"
            )));
        }
        Err(e) => {
            return Err(fail(format!(
                "cannot read board {shown}: {}",
                io_reason(&e)
            )));
        }
    };
    if meta.is_dir() {
        return Err(fail(format!(
            "cannot read board {shown}: it is a folder; name the Markdown file (e.g. {}/task-board.md)",
            shown
        )));
    }
    if !meta.is_file() {
        return Err(fail(format!(
            "cannot read board {shown}: it is not a regular file"
        )));
    }
    if meta.len() > MAX_BOARD_BYTES {
        return Err(fail(format!(
            "cannot read board {shown}: it is {} bytes; a board may be at most 64 MiB",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_BOARD_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(fail(format!(
            "cannot read board {shown}: {}",
            io_reason(&e)
        )));
    }
    if bytes.len() as u64 > MAX_BOARD_BYTES {
        return Err(fail(format!(
            "cannot read board {shown}: it grew past 64 MiB while being read"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let finding = invalid_utf8(e.as_bytes()).unwrap_or_else(|| Finding {
            code: "invalid-utf8",
            severity: Severity::Error,
            line: 1,
            column: 1,
            task: None,
            message: "the board is not valid UTF-8".into(),
        });
        fail(format_finding(path, &finding, Paint(false)))
    })
}

/// `taskboard lint` as the command line calls it. Routes are not checked until the
/// configuration is read here; see [`lint_board`].
pub fn run(board: &Path, json: bool, config: Option<&Path>) -> CmdResult {
    if config.is_some() {
        return Err(Failure::new(
            Exit::Usage,
            "lint does not read --config yet (routes are not checked); run it without --config",
        ));
    }
    lint_board(board, json, None, DEFAULT_STALE_AFTER)
}

/// Lints `board`. `routes` is the set of configured executor routes (`None`: not checked);
/// `stale_after` is the runtime's staleness threshold.
pub fn lint_board(
    board: &Path,
    json: bool,
    routes: Option<&BTreeSet<String>>,
    stale_after: Duration,
) -> CmdResult {
    let text = read_board_text(board)?;
    let parsed = Board::parse(&text);
    let ctx = LintContext {
        now: Utc::now(),
        stale_after,
        routes,
    };
    let findings = lint(&text, &parsed, &ctx);
    let mut out = String::new();
    if json {
        for f in &findings {
            out.push_str(&json_line(f));
            out.push('\n');
        }
    } else {
        let paint = Paint(use_color());
        for f in &findings {
            out.push_str(&format_finding(board, f, paint));
            out.push('\n');
        }
        out.push_str(&summary(&findings));
        out.push('\n');
    }
    print_stdout(&out)?;
    let errors = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if errors { Exit::Findings } else { Exit::Ok })
}

/// Writes to stdout; a closed pipe is not an error worth a panic.
pub(crate) fn print_stdout(s: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(
            Exit::Write,
            format!("cannot write output: {e}"),
        )),
    }
}

/// `path:line:col: severity[code]: message`.
pub fn format_finding(path: &Path, f: &Finding, paint: Paint) -> String {
    let severity = match f.severity {
        Severity::Error => paint.red(f.severity.as_str()),
        Severity::Warning => paint.yellow(f.severity.as_str()),
    };
    format!(
        "{}:{}:{}: {severity}[{}]: {}",
        path.display(),
        f.line,
        f.column,
        f.code,
        f.message
    )
}

/// `2 errors, 1 warning`.
pub fn summary(findings: &[Finding]) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    line: usize,
    column: usize,
    severity: Severity,
    code: &'a str,
    task: Option<&'a str>,
    message: &'a str,
}

/// One finding as a single-line JSON object, keys in a fixed order.
pub fn json_line(f: &Finding) -> String {
    let j = JsonFinding {
        line: f.line,
        column: f.column,
        severity: f.severity,
        code: f.code,
        task: f.task.as_deref(),
        message: &f.message,
    };
    serde_json::to_string(&j).unwrap_or_default()
}
