//! `taskboard lint`: print the board's findings and exit 1 when any is an error.
//!
//! Owns reading a board file for the read-only commands (`read_board_text`) and printing
//! findings. The checks themselves are `crate::core::lint`; this module never writes any file.
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
//!
//! A configuration that cannot be loaded does not hide the board's findings (`doctor` counts
//! them either way): the board is linted without the checks that need the configuration
//! (unknown routes) and with the default runtime settings, its findings are printed, and then the
//! configuration error is the command's one-line failure (exit 3): it is what to fix first.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use super::{CmdResult, Failure, Paint, use_color};
use crate::core::lint::{Finding, LintContext, Severity, WorkspaceContext, invalid_utf8};
use crate::exit::Exit;
use crate::shell::fsio::{self, ReadError};
use crate::shell::parallel::{lint_findings, parse_board};

/// The staleness threshold when no configuration says otherwise.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

/// Reads a board as UTF-8 text through the one board reader (`fsio`), or explains in one line
/// why it cannot (exit 2). Invalid UTF-8 is reported as the `invalid-utf8` finding, with its
/// line and column.
pub(crate) fn read_board_text(path: &Path) -> Result<String, Failure> {
    match fsio::read_board(path) {
        Ok(snap) => Ok(snap.text),
        Err(ReadError::NotFound(_)) => Err(Failure::new(
            Exit::Board,
            format!(
                "cannot read board {}: it does not exist (create one with `taskboard init`)",
                path.display()
            ),
        )),
        Err(ReadError::NotUtf8 { offset, .. }) => {
            let bytes = fsio::read_regular(path).unwrap_or_default();
            let finding = invalid_utf8(&bytes).unwrap_or_else(|| Finding {
                code: "invalid-utf8",
                severity: Severity::Error,
                line: 1,
                column: 1,
                task: None,
                message: format!("the board is not valid UTF-8 (byte offset {offset})"),
            });
            Err(Failure::new(
                Exit::Board,
                format_finding(path, &finding, Paint(false)),
            ))
        }
        Err(e) => Err(Failure::new(Exit::Board, format!("cannot read board {e}"))),
    }
}

/// What lint takes from the configuration.
pub struct LintSettings {
    /// The configured executor routes (`None`: not checked).
    pub routes: Option<BTreeSet<String>>,
    /// The configured repositories and worktree routes, for `repos:` (`None`: not checked).
    pub workspaces: Option<WorkspaceContext>,
    /// The runtime's staleness threshold.
    pub stale_after: Duration,
    /// The longest wait the runtime gives a retry.
    pub longest_backoff: Duration,
}

/// The lint settings from the board's configuration (or `--config`). Without any configuration
/// file, routes are not checked: the board alone is linted (`taskboard doctor` says when
/// nothing is configured to run); the default `retry_backoff` and `max_attempts` apply.
pub(crate) fn lint_settings(board: &Path, config: Option<&Path>) -> Result<LintSettings, Failure> {
    let dir = super::board_dir(board);
    let loaded =
        crate::shell::config_file::load(config, dir).map_err(|e| Failure::new(Exit::Config, e))?;
    let routes = loaded
        .path
        .is_some()
        .then(|| loaded.config.executors.keys().cloned().collect());
    let workspaces = loaded
        .path
        .is_some()
        .then(|| WorkspaceContext::of(&loaded.config));
    let rc = &loaded.config.runtime;
    Ok(LintSettings {
        routes,
        workspaces,
        stale_after: rc.stale_after,
        longest_backoff: crate::core::plan::longest_backoff_for(rc.retry_backoff, rc.max_attempts),
    })
}

/// `taskboard lint` as the command line calls it: the settings come from the board's
/// configuration.
pub fn run(board: &Path, json: bool, config: Option<&Path>) -> CmdResult {
    let board = &super::resolve_board(board)?;
    // An unreadable board is the first thing to say, before any config problem.
    let text = read_board_text(board)?;
    match lint_settings(board, config) {
        Ok(settings) => lint_board(board, &text, json, &settings),
        Err(failure) => {
            lint_board(board, &text, json, &without_config())?;
            Err(Failure::new(
                failure.exit,
                format!(
                    "{} (the board above was linted without it: routes not checked)",
                    failure.message
                ),
            ))
        }
    }
}

/// The settings when the configuration cannot be loaded: routes not checked, the default
/// runtime settings.
pub(crate) fn without_config() -> LintSettings {
    let rc = crate::core::config::Config::default().runtime;
    LintSettings {
        routes: None,
        workspaces: None,
        stale_after: rc.stale_after,
        longest_backoff: crate::core::plan::longest_backoff_for(rc.retry_backoff, rc.max_attempts),
    }
}

/// Lints `board` with the given settings.
pub fn lint_board(board: &Path, text: &str, json: bool, settings: &LintSettings) -> CmdResult {
    let parsed = parse_board(text);
    let ctx = LintContext {
        now: Utc::now(),
        stale_after: settings.stale_after,
        routes: settings.routes.as_ref(),
        longest_backoff: Some(settings.longest_backoff),
        conflict_markers: None,
    };
    let findings = lint_findings(text, &parsed, &ctx, settings.workspaces.as_ref());
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
    super::output::print(&out)?;
    let errors = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if errors { Exit::Findings } else { Exit::Ok })
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
