//! The `taskboard` command line: argument parsing and exit codes only; each command lives in
//! `taskboard::cmd`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taskboard::cmd;
use taskboard::exit::Exit;

/// One Markdown file as the control plane for background work.
///
/// Edit task-board.md in any editor; `taskboard run` notices each save, runs the tasks marked
/// `ready` through the executors configured in taskboard.toml, and writes their status back
/// into the same file without touching any other byte. Every decision is appended to
/// events.jsonl beside the board.
#[derive(Parser, Debug)]
#[command(name = "taskboard", version, max_term_width = 100)]
#[command(
    after_help = "BOARD defaults to ./task-board.md everywhere.\n\nExit codes: 0 ok, 1 findings (lint errors, refused change), 2 board unreadable, 3 config invalid, 4 state, lock or event log unavailable, 5 write failed, 6 output failed (the work was done), 64 usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a demo board with a demo executor in DIR (unless one is there) and run it.
    Demo {
        /// The demo's folder; an existing demo there is run as it is.
        #[arg(default_value = "taskboard-demo")]
        dir: PathBuf,
    },
    /// Watch the board and run ready tasks until stopped (SIGTERM/SIGINT).
    Run {
        /// The board file.
        #[arg(default_value = "task-board.md")]
        board: PathBuf,
        /// Configuration file (default: taskboard.toml beside the board).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Make one pass over the board, wait for the tasks it started, and exit.
    Once {
        /// The board file.
        #[arg(default_value = "task-board.md")]
        board: PathBuf,
        /// Configuration file (default: taskboard.toml beside the board).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Report anomalies: bad statuses, duplicate or unsafe IDs, broken or cyclic dependencies,
    /// clock anomalies, stale claims, unknown routes.
    Lint {
        /// The board file.
        #[arg(default_value = "task-board.md")]
        board: PathBuf,
        /// One JSON object per finding, one per line.
        #[arg(long)]
        json: bool,
        /// Configuration file (default: taskboard.toml beside the board); its routes are
        /// checked against the tasks'.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Counts per state, then the tasks that need attention and the runs that ended off the board.
    Status {
        /// The board file.
        #[arg(default_value = "task-board.md")]
        board: PathBuf,
        /// A stable JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a starter board, its configuration and a placeholder executor into DIR.
    ///
    /// Writes task-board.md (a starter board: nothing on it is ready, so nothing runs until you
    /// set a task to ready), taskboard.toml (the configuration, with executor recipes in its
    /// comments) and demo-executor.sh (a harmless placeholder executor), and makes .gitignore
    /// ignore taskboard's own files (.taskboard/, events.jsonl, events.jsonl.lock,
    /// events-*.jsonl, deadletter/, and the board's passing copies .*.taskboard-*.tmp). Never
    /// overwrites: if any of the first three exists, nothing is written; an existing
    /// .gitignore only gets the lines it lacks, appended.
    Init {
        /// The folder to write into (created when missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// One screen about one task: block, history, attempts, cost, handoff, evidence, links.
    Show(cmd::show::ShowArgs),
    /// Print exactly the work packet a task's next run would receive on stdin.
    Packet(cmd::packet::PacketArgs),
    /// Print what an isolated run changed: its saved patch, or a per-file stat.
    ///
    /// The latest attempt that ran in a worktree of its own, or `--attempt N`'s; review runs are
    /// skipped. The patch is printed byte for byte in a pipe and coloured on a terminal.
    Diff(cmd::diff::DiffArgs),
    /// Remove isolated runs' worktrees that are no longer needed; say why each other is kept.
    ///
    /// A worktree goes once its run is over and its change is in a snapshot, when a newer
    /// attempt of its task started afresh or it is older than its route's `keep_worktrees`. Its
    /// snapshot and saved patch stay. Work that is not in a snapshot is never removed.
    Gc(cmd::gc::GcArgs),
    /// Land a change that waits for approval on its base branch, and mark the task done.
    ///
    /// Refused (exit 1, the task keeps waiting) when the branch moved since the run began
    /// (`--onto-latest` lands onto the new tip when that merges cleanly), when the change
    /// conflicts, or when a checkout of the branch has changes in the files it rewrites.
    Approve(cmd::approve::ApproveArgs),
    /// Send a change that waits for approval back: the task is ready again, with the note in its
    /// next work packet (counted as an attempt).
    Reject(cmd::approve::RejectArgs),
    /// Show the events, one readable line each; `-f` follows.
    Tail(cmd::tail::TailArgs),
    /// Print a task's run output (stdout and stderr), the latest run's or an attempt's;
    /// `-f` follows it while the run is live.
    Logs(cmd::logs::LogsArgs),
    /// Report throughput, error and retry rates, latency and run durations from the events.
    Stats(cmd::stats::StatsArgs),
    /// Check the board, config, executors, state folder, service and clock, and say what to fix.
    Doctor(cmd::doctor::DoctorArgs),
    /// Install or remove the launchd agents or systemd user units that keep `run` alive.
    Service {
        #[command(subcommand)]
        action: cmd::service::Action,
    },
    /// Set a failed, done, waiting (blocked:retry) or person-blocked task back to ready with
    /// fresh attempts, and archive its deadletter entry if it has one.
    ///
    /// The new series gets `max_attempts` of its own; its attempts are numbered on from the last
    /// one, and the earlier ones stay in its packet and in `show`.
    ///
    /// A task that is already ready is left as it is. A running task, or one waiting on other
    /// tasks (blocked:task:…), is refused: stop the run by setting its status by hand; a task
    /// waiting on tasks becomes ready by itself when they are done.
    Retry {
        /// The task ID.
        id: String,
        /// The board file.
        #[arg(default_value = "task-board.md")]
        board: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // A usage error: clap says it on stderr; if stderr fails, the code still tells.
            let _ = e.print();
            return ExitCode::from(Exit::Usage.code());
        }
        // `--help` and `--version` go to stdout, through the one writer that handles a closed
        // pipe: a failing stdout is reported like any.
        Err(e) => return exit(cmd::output::print_styled(&e.render()).map(|()| Exit::Ok)),
    };
    let result = match cli.command {
        Command::Demo { dir } => cmd::demo::run(&dir),
        Command::Run { board, config } => cmd::run::run(&board, config.as_deref()),
        Command::Once { board, config } => cmd::run::once(&board, config.as_deref()),
        Command::Lint {
            board,
            json,
            config,
        } => cmd::lint::run(&board, json, config.as_deref()),
        Command::Status { board, json } => cmd::status::run(&board, json),
        Command::Init { dir } => cmd::init::run(&dir),
        Command::Retry { id, board } => cmd::retry::run(&board, &id),
        Command::Packet(args) => cmd::packet::run(&args),
        Command::Diff(args) => cmd::diff::run(&args),
        Command::Gc(args) => cmd::gc::run(&args),
        Command::Approve(args) => cmd::approve::approve(&args),
        Command::Reject(args) => cmd::approve::reject(&args),
        Command::Show(args) => cmd::show::run(&args),
        Command::Tail(args) => cmd::tail::run(&args),
        Command::Logs(args) => cmd::logs::run(&args),
        Command::Stats(args) => cmd::stats::run(&args),
        Command::Doctor(args) => cmd::doctor::run(&args),
        Command::Service { action } => cmd::service::run(&action),
    };
    // A board this process replaced is kept for a moment in case a late save lands in it:
    // settled before the process goes, so none is left behind.
    taskboard::shell::fsio::settle_replaced_boards();
    exit(result)
}

/// The one place a command's outcome becomes the exit code (a closed stdout pipe included: see
/// `cmd::output::report`).
fn exit(result: cmd::CmdResult) -> ExitCode {
    let exit = match result {
        Ok(exit) => exit,
        Err(failure) => cmd::output::report(&failure),
    };
    ExitCode::from(exit.code())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument and flag of every subcommand, as `command path: --name`, that `--help`
    /// shows with no description.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            // clap's own `--help` and `--version` carry clap's words.
            if matches!(id, "help" | "version") {
                continue;
            }
            let blank = |s: Option<&clap::builder::StyledStr>| {
                s.is_none_or(|s| s.to_string().trim().is_empty())
            };
            if blank(arg.get_help()) && blank(arg.get_long_help()) {
                let name = arg
                    .get_long()
                    .map_or_else(|| id.to_uppercase(), |l| format!("--{l}"));
                out.push(format!("{path}: {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "taskboard", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments with no help text:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
