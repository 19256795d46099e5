//! `taskboard doctor`: checks what a person would otherwise debug by hand.
//!
//! Each check prints one line, `ok|warn|FAIL  <check>: <finding> — <what to do>` (an `ok` line
//! has nothing to do). The exit code is 0 when no check failed and 1 otherwise: warnings point
//! at something worth a look (no executors, no service, low inotify limits) but never fail.
//!
//! It reads the board and the configuration and creates nothing (but a Slurm route's
//! `shared_dir` probe file, removed at once, and an SSH host's `remote_dir` when it is missing,
//! as a run would make it; see `doctor::remote`): whether the state folder is
//! writable is asked of the system (`access`), not tried with a probe file, and whether a `run`
//! serves the board is seen by taking and releasing a shared lock on the board's folder for an
//! instant (a `run` starting in that instant waits it out). The folder is opened, never created.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{Datelike, Utc};

use super::{CmdResult, Paint, use_color};
use crate::core::config::{self, Config};
use crate::core::fmt::{self, Precision::Coarse};
use crate::core::lint::{self, LintContext, Severity};
use crate::core::service_files::{self, Manager};
use crate::exit::Exit;
use crate::shell::config_file;
use crate::shell::fsio;
use crate::shell::lock::RunLock;
use crate::shell::parallel::{lint_findings, parse_board};

mod remote;
mod worktrees;

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Configuration file (default: taskboard.toml beside the board).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub name: String,
    pub finding: String,
    /// What to do; empty for `ok`.
    pub todo: String,
}

fn check(level: Level, name: &str, finding: impl Into<String>, todo: impl Into<String>) -> Check {
    Check {
        level,
        name: name.to_string(),
        finding: finding.into(),
        todo: todo.into(),
    }
}

fn ok(name: &str, finding: impl Into<String>) -> Check {
    check(Level::Ok, name, finding, "")
}

impl Check {
    pub fn line(&self, paint: Paint) -> String {
        let word = match self.level {
            Level::Ok => paint.green("ok  "),
            Level::Warn => paint.yellow("warn"),
            Level::Fail => paint.red("FAIL"),
        };
        if self.todo.is_empty() {
            format!("{word}  {}: {}", self.name, self.finding)
        } else {
            format!("{word}  {}: {} — {}", self.name, self.finding, self.todo)
        }
    }
}

pub fn run(args: &DoctorArgs) -> CmdResult {
    let board = super::resolve_board(&args.board)?;
    let checks = checks(&board, args.config.as_deref());
    let paint = Paint(use_color());
    let mut out = String::new();
    for c in &checks {
        out.push_str(&c.line(paint));
        out.push('\n');
    }
    super::output::print(&out)?;
    Ok(if checks.iter().any(|c| c.level == Level::Fail) {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// Every check, in the order printed.
pub fn checks(board: &Path, explicit_config: Option<&Path>) -> Vec<Check> {
    let board = std::path::absolute(board).unwrap_or_else(|_| board.to_path_buf());
    let board_dir = board.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut out = Vec::new();

    // Configuration.
    let config = match config_file::load(explicit_config, &board_dir) {
        Ok(loaded) => {
            out.push(ok(
                "config",
                match &loaded.path {
                    Some(p) => format!("{} is valid", p.display()),
                    None => format!(
                        "no {} beside the board; built-in defaults",
                        config::FILE_NAME
                    ),
                },
            ));
            Some(loaded.config)
        }
        Err(e) => {
            out.push(check(
                Level::Fail,
                "config",
                e.to_string(),
                "fix the file; `taskboard run` refuses to start with it",
            ));
            None
        }
    };

    // Board.
    out.push(board_check(&board, config.as_ref()));

    // Executors.
    if let Some(config) = &config {
        if config.executors.is_empty() {
            out.push(check(
                Level::Warn,
                "executors",
                "none configured: nothing will run",
                format!(
                    "add an [executors.default] table with a command to {}",
                    config::FILE_NAME
                ),
            ));
        }
        for (route, exec) in &config.executors {
            if exec.runner == config::Runner::Local {
                out.push(executor_check(route, exec, &board_dir));
            } else {
                // Its command runs on the far side; this machine's PATH says nothing about it.
                let program = exec.command.first().map_or("", String::as_str);
                out.push(ok(
                    &format!("executor {route}"),
                    format!("`{program}` runs on the remote runner (not looked for here)"),
                ));
            }
        }
    }

    // State folder.
    let state_dir = fsio::state_dir(&board);
    out.push(state_check(&board_dir, &state_dir));

    // A live `run`.
    out.push(run_check(&board_dir, &state_dir));

    // Isolated runs: git, each worktree route's repository, the worktrees on disk.
    out.extend(worktrees::checks(config.as_ref(), &board, &state_dir));

    // Remote runners: each Slurm or SSH route's engine answering.
    out.extend(remote::checks(config.as_ref(), &board_dir));

    // Service.
    out.push(service_check(&board));

    // inotify.
    if cfg!(target_os = "linux") {
        out.extend(inotify_checks());
    }

    // Clock.
    out.push(clock_check(&board, config.as_ref()));
    out
}

fn board_check(board: &Path, config: Option<&Config>) -> Check {
    let snap = match fsio::read_board(board) {
        Ok(s) => s,
        Err(e) => {
            let todo = match e {
                fsio::ReadError::NotFound(_) => {
                    "create it (`taskboard init` writes a starter board); `run` waits for it"
                }
                _ => "make it a readable UTF-8 file",
            };
            return check(Level::Fail, "board", e.to_string(), todo);
        }
    };
    let parsed = parse_board(&snap.text);
    // Without a loadable configuration the routes are not checked (an empty set of routes would
    // make every task's route an error): the same findings `taskboard lint` prints then.
    let config_failed = config.is_none();
    let defaults = Config::default();
    let config = config.unwrap_or(&defaults);
    let routes = config.executors.keys().cloned().collect();
    let workspaces = lint::WorkspaceContext::of(config);
    let findings = lint_findings(
        &snap.text,
        &parsed,
        &LintContext {
            now: Utc::now(),
            stale_after: config.runtime.stale_after,
            routes: (!config_failed).then_some(&routes),
            longest_backoff: Some(longest_backoff(config)),
            conflict_markers: None,
        },
        (!config_failed).then_some(&workspaces),
    );
    if let Some(conflict) = findings.iter().find(|f| f.code == "conflict-markers") {
        return check(
            Level::Fail,
            "board",
            format!(
                "{} has unresolved git conflict markers from line {}: nothing on it runs until they are resolved",
                board.display(),
                conflict.line
            ),
            format!(
                "resolve the merge (keep the lines you want, delete the marker lines, save); see `taskboard lint {}`",
                service_files::shell_quote(&board.to_string_lossy())
            ),
        );
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let tasks = parsed.tasks.len();
    let summary = format!(
        "{} ({tasks} task{}): {errors} error{}, {warnings} warning{}",
        board.display(),
        plural(tasks),
        plural(errors),
        plural(warnings)
    );
    let lint_cmd = format!(
        "`taskboard lint {}`",
        service_files::shell_quote(&board.to_string_lossy())
    );
    let todo = if config_failed {
        format!("fix the config first, then see {lint_cmd}")
    } else {
        format!("see {lint_cmd}")
    };
    let mut c = match (errors, warnings) {
        (0, 0) => ok(
            "board",
            format!(
                "{} ({tasks} task{}): lint-clean",
                board.display(),
                plural(tasks)
            ),
        ),
        (0, _) => check(Level::Warn, "board", summary, todo),
        _ => check(Level::Fail, "board", summary, todo),
    };
    if config_failed {
        c.finding
            .push_str(" (routes not checked: the config does not load)");
    }
    c
}

fn longest_backoff(config: &Config) -> std::time::Duration {
    crate::core::plan::longest_backoff_for(
        config.runtime.retry_backoff,
        config.runtime.max_attempts,
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn executor_check(route: &str, exec: &config::ExecutorConfig, board_dir: &Path) -> Check {
    let name = format!("executor {route}");
    let Some(program) = exec.command.first() else {
        return check(
            Level::Fail,
            &name,
            "empty command",
            "give it a command in taskboard.toml",
        );
    };
    if program.contains('/') {
        // Executors start in the board's folder, so a relative path is relative to it.
        let path = board_dir.join(program);
        return if is_executable(&path) {
            ok(&name, format!("{} is executable", path.display()))
        } else if path.exists() {
            check(
                Level::Fail,
                &name,
                format!("{} is not executable", path.display()),
                format!(
                    "chmod +x {}",
                    service_files::shell_quote(&path.to_string_lossy())
                ),
            )
        } else {
            check(
                Level::Fail,
                &name,
                format!("{} does not exist", path.display()),
                "fix the command in taskboard.toml (relative paths start at the board's folder)",
            )
        };
    }
    let path_var = exec
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    match find_on_path(program, std::ffi::OsStr::new(&path_var)) {
        Some(found) => ok(&name, format!("`{program}` is {}", found.display())),
        None => check(
            Level::Fail,
            &name,
            format!("`{program}` not found on PATH"),
            "install it, or put its absolute path in taskboard.toml (a service gets the PATH of `taskboard service install`)",
        ),
    }
}

/// Where `program` is among the folders of `path` (a PATH value), if it is an executable file.
fn find_on_path(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn state_check(board_dir: &Path, state_dir: &Path) -> Check {
    if !board_dir.is_dir() {
        return check(
            Level::Fail,
            "state",
            format!("the board's folder {} does not exist", board_dir.display()),
            "create it, or point doctor at the right board",
        );
    }
    // Asked, not tried: doctor creates nothing, so neither the state folder nor a probe file
    // in it. `access` answers for this process's user, and says EROFS on a read-only mount.
    let (target, what) = match std::fs::symlink_metadata(state_dir) {
        Ok(_) => match std::fs::metadata(state_dir) {
            Ok(meta) if meta.is_dir() => (state_dir, "is writable"),
            Ok(_) => {
                return check(
                    Level::Fail,
                    "state",
                    format!("{} is not a folder", state_dir.display()),
                    "move it away; the runtime keeps locks and runs in that folder",
                );
            }
            Err(e) => {
                return check(
                    Level::Fail,
                    "state",
                    format!("cannot check {}: {e}", state_dir.display()),
                    "fix or remove it; the runtime keeps locks and runs there",
                );
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (board_dir, "can be created (the first run creates it)")
        }
        Err(e) => {
            return check(
                Level::Fail,
                "state",
                format!("cannot check {}: {e}", state_dir.display()),
                "fix the permissions of the board's folder",
            );
        }
    };
    match writable(target) {
        Ok(()) => ok("state", format!("{} {what}", state_dir.display())),
        Err(e) => check(
            Level::Fail,
            "state",
            format!("{} is not writable: {e}", target.display()),
            "fix its owner or permissions; the runtime keeps locks and runs there",
        ),
    }
}

/// Whether this process may create and remove entries in the folder `dir`.
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    use rustix::fs::Access;
    rustix::fs::access(path.as_c_str(), Access::WRITE_OK | Access::EXEC_OK)
        .map_err(std::io::Error::from)
}

fn run_check(board_dir: &Path, state_dir: &Path) -> Check {
    match RunLock::probe(board_dir, &state_dir.join("run.lock")) {
        Ok(None) => check(
            Level::Warn,
            "run",
            "no `taskboard run` is serving this board",
            "start one, or install the service (`taskboard service install`)",
        ),
        Ok(Some(holder)) => ok(
            "run",
            match holder {
                Some(pid) => format!("a `taskboard run` is serving this board (pid {pid})"),
                None => "a `taskboard run` is serving this board".to_string(),
            },
        ),
        Err(e) => check(
            Level::Warn,
            "run",
            format!("cannot check {}: {e}", board_dir.display()),
            "make sure the board's folder can be read",
        ),
    }
}

fn service_check(board: &Path) -> Check {
    let abs = match super::service::absolute_board(board) {
        Ok(b) => b,
        Err(f) => return check(Level::Warn, "service", f.message, "check the board path"),
    };
    let slug = service_files::slug(&abs);
    let quoted = service_files::shell_quote(&board.to_string_lossy());
    // Look for either manager's files; the platform's own first.
    let managers = match Manager::default_for_platform() {
        Manager::Launchd => [Manager::Launchd, Manager::Systemd],
        Manager::Systemd => [Manager::Systemd, Manager::Launchd],
    };
    for manager in managers {
        let Ok(dir) = super::service::manager_dir(manager) else {
            continue;
        };
        let names = super::service::file_names(manager, &abs);
        let present: Vec<&String> = names
            .iter()
            .filter(|n| {
                fsio::read_regular_to_string(&dir.join(n))
                    .is_ok_and(|t| t.contains(service_files::MARKER))
            })
            .collect();
        if present.is_empty() {
            continue;
        }
        if present.len() < names.len() {
            return check(
                Level::Warn,
                "service",
                format!(
                    "only {} of {} files installed in {}",
                    present.len(),
                    names.len(),
                    dir.display()
                ),
                format!("run `taskboard service install {quoted}` again"),
            );
        }
        return match loaded(manager, &slug) {
            Some(true) => ok(
                "service",
                format!("installed in {} and loaded", dir.display()),
            ),
            Some(false) => check(
                Level::Warn,
                "service",
                format!("installed in {} but not loaded", dir.display()),
                match manager {
                    Manager::Systemd => format!(
                        "systemctl --user daemon-reload && systemctl --user enable --now {} {}",
                        service_files::systemd_run_unit(&slug),
                        service_files::systemd_once_timer(&slug)
                    ),
                    Manager::Launchd => format!(
                        "launchctl bootstrap gui/$(id -u) {}",
                        names
                            .iter()
                            .map(|n| service_files::shell_quote(&dir.join(n).to_string_lossy()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                },
            ),
            None => check(
                Level::Warn,
                "service",
                format!(
                    "installed in {}; whether it is loaded is unknown",
                    dir.display()
                ),
                match manager {
                    Manager::Systemd => format!(
                        "check with `systemctl --user status {}`",
                        service_files::systemd_run_unit(&slug)
                    ),
                    Manager::Launchd => format!(
                        "check with `launchctl print gui/$(id -u)/{}`",
                        service_files::launchd_run_label(&slug)
                    ),
                },
            ),
        };
    }
    check(
        Level::Warn,
        "service",
        "not installed for this board",
        format!("`taskboard service install {quoted}` keeps `run` alive in the background"),
    )
}

/// Whether the manager has the `run` job loaded: `None` when it cannot be asked.
fn loaded(manager: Manager, slug: &str) -> Option<bool> {
    let output = match manager {
        Manager::Systemd => Command::new("systemctl")
            .args([
                "--user",
                "is-active",
                &service_files::systemd_run_unit(slug),
            ])
            .stdin(Stdio::null())
            .output()
            .ok()?,
        Manager::Launchd => {
            let uid = rustix::process::getuid().as_raw();
            let out = Command::new("launchctl")
                .arg("print")
                .arg(format!(
                    "gui/{uid}/{}",
                    service_files::launchd_run_label(slug)
                ))
                .stdin(Stdio::null())
                .output()
                .ok()?;
            return Some(out.status.success());
        }
    };
    // `is-active` prints the state; without a user manager (no D-Bus session) it prints
    // nothing useful and exits non-zero.
    match String::from_utf8_lossy(&output.stdout).trim() {
        "active" | "reloading" | "activating" => Some(true),
        "inactive" | "failed" | "deactivating" => Some(false),
        _ => None,
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Each `run` uses one inotify instance and one watch (on the board's folder).
fn inotify_checks() -> Vec<Check> {
    let mut out = Vec::new();
    for (key, low) in [("max_user_watches", 8192), ("max_user_instances", 128)] {
        let path = format!("/proc/sys/fs/inotify/{key}");
        let name = format!("inotify {key}");
        out.push(match read_number(&path) {
            Some(n) if n < low => check(
                Level::Warn,
                &name,
                format!("{n} is low (editors and other watchers share it)"),
                format!("raise it: sudo sysctl fs.inotify.{key}={}", low * 4),
            ),
            Some(n) => ok(&name, n.to_string()),
            None => check(
                Level::Warn,
                &name,
                format!("cannot read {path}"),
                "check that inotify is available; without it changes are seen only on rescans",
            ),
        });
    }
    out
}

fn clock_check(board: &Path, config: Option<&Config>) -> Check {
    let now = Utc::now();
    if now.year() < 2024 {
        return check(
            Level::Fail,
            "clock",
            format!("the system time is {}", now.format("%Y-%m-%d %H:%M UTC")),
            "set the clock (enable NTP); claim times and retries depend on it",
        );
    }
    let Ok(snap) = fsio::read_board(board) else {
        return ok(
            "clock",
            format!("system time {}", now.format("%Y-%m-%d %H:%M UTC")),
        );
    };
    let parsed = parse_board(&snap.text);
    let defaults = Config::default();
    let config = config.unwrap_or(&defaults);
    let findings = lint::lint(
        &snap.text,
        &parsed,
        &LintContext {
            now,
            stale_after: config.runtime.stale_after,
            routes: None,
            longest_backoff: Some(longest_backoff(config)),
            conflict_markers: None,
        },
    );
    let tasks_with = |code: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.code == code)
            .map(|f| f.task.clone().unwrap_or_else(|| format!("line {}", f.line)))
            .collect()
    };
    let (future, far_retries) = (tasks_with("clock-anomaly"), tasks_with("retry-far-future"));
    let system = now.format("%Y-%m-%d %H:%M UTC");
    if !future.is_empty() {
        let also = if far_retries.is_empty() {
            String::new()
        } else {
            format!(
                "; retry times beyond the longest backoff: {}",
                far_retries.join(", ")
            )
        };
        check(
            Level::Fail,
            "clock",
            format!(
                "running claims in the future: {}{also} (system time {system})",
                future.join(", ")
            ),
            "check this machine's clock and the clock of whoever claimed them; fix the status by hand",
        )
    } else if !far_retries.is_empty() {
        check(
            Level::Warn,
            "clock",
            format!(
                "retry times beyond the longest backoff ({}): {} (system time {system})",
                fmt::duration(longest_backoff(config), Coarse),
                far_retries.join(", ")
            ),
            "the clock was ahead when they were written; `taskboard run` retries them now",
        )
    } else {
        ok(
            "clock",
            format!(
                "system time {system}; no claim in the future, no retry beyond the longest backoff"
            ),
        )
    }
}
