//! `taskboard run` and `taskboard once`: set up logging and signals, then hand over to the
//! runtime. `once` refuses a board with unresolved git conflict markers (exit 2) rather than
//! make a pass that would do nothing; `run` waits for the conflict to be resolved.

use std::path::Path;

use super::{CmdResult, Failure};
use crate::exit::Exit;
use crate::shell::lock::RunLock;
use crate::shell::runtime::{Mode, Msg, Runtime};

pub fn run(board: &Path, config: Option<&Path>) -> CmdResult {
    serve(Mode::Run, board, config)
}

pub fn once(board: &Path, config: Option<&Path>) -> CmdResult {
    serve(Mode::Once, board, config)
}

fn serve(mode: Mode, board: &Path, config: Option<&Path>) -> CmdResult {
    // Signals first: until they are registered, a SIGTERM or SIGHUP kills the process outright,
    // and the log writer below already starts a thread.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Failure::new(Exit::State, format!("cannot install signal handlers: {e}")))?;
    // The real file's folder gets the logs, state and locks, whatever name the board was given.
    let board = &super::resolve_board(board)?;
    crate::shell::logging::init_for_board(board, config);
    let runtime = Runtime::new(mode, board, config)?;
    if mode == Mode::Once {
        refuse_conflicted(runtime.board())?;
    }
    let mut runtime = runtime;
    if mode == Mode::Run {
        let info = runtime.state_dir().join("run.lock");
        match acquire_run_lock(runtime.board_dir(), &info) {
            Ok(Ok(lock)) => runtime.hold_run_lock(lock),
            Ok(Err(holder)) => {
                let who = holder.map_or_else(String::new, |pid| format!(" (pid {pid})"));
                return Err(Failure::new(
                    Exit::State,
                    format!(
                        "another `taskboard run`{who} is already serving {}",
                        runtime.board().display()
                    ),
                ));
            }
            Err(e) => {
                return Err(Failure::new(
                    Exit::State,
                    format!(
                        "cannot take the run lock of {}: {e}",
                        runtime.board_dir().display()
                    ),
                ));
            }
        }
    }
    let tx = runtime.sender();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Msg::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Failure::new(Exit::State, format!("cannot start a thread: {e}")))?;
    runtime.serve()?;
    Ok(Exit::Ok)
}

/// A board with unresolved git conflict markers is a board error for `once` (cron and timers
/// report the exit code).
fn refuse_conflicted(board: &Path) -> Result<(), Failure> {
    let Ok(snap) = crate::shell::fsio::read_board(board) else {
        // Unreadable now: the runtime reports it as it does any unreadable board.
        return Ok(());
    };
    super::refuse_conflicted(board, &snap.text, "run again")
}

/// Takes the run lock (on the board's folder). When its holder is dead or unknown, the lock can
/// only be held by a descriptor a killed runtime left in a child it had just forked (the child
/// dies with it), or for an instant by a `once` or `doctor` asking whether a `run` serves the
/// board, so wait a little for that to go rather than refuse a restart.
fn acquire_run_lock(folder: &Path, info: &Path) -> std::io::Result<Result<RunLock, Option<u32>>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let attempt = RunLock::try_acquire(folder, info)?;
        let holder_gone = match &attempt {
            Err(Some(pid)) => !crate::shell::process::pid_alive(*pid),
            Err(None) => true,
            Ok(_) => false,
        };
        if !holder_gone || std::time::Instant::now() >= deadline {
            return Ok(attempt);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
