//! The commands behind the CLI. Each returns an [`Exit`] or a [`Failure`] (one line for stderr);
//! none of them prints a backtrace or panics on bad input or on a failing output: they write
//! through [`output`], never with `println!`.

use crate::core::status::Status;
use crate::core::writeback::{self, Change};
use crate::exit::Exit;
use crate::shell::fsio;
use crate::shell::parallel::parse_board;

pub mod approve;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod gc;
pub mod init;
pub mod lint;
pub mod logs;
pub mod output;
pub mod packet;
pub mod retry;
pub mod run;
pub mod service;
pub mod show;
pub mod stats;
pub mod status;
pub mod tail;

/// A command that could not do its job: the exit code and one line for a person. The same type
/// the runtime fails with, so `main` maps every exit code through [`Exit::code`].
pub use crate::exit::Failure;

pub type CmdResult = Result<Exit, Failure>;

/// The board a command works on: its real file (see [`crate::shell::fsio::resolve_board`]), or a
/// one-line refusal with exit code 2 before anything is read or created.
pub fn resolve_board(board: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    crate::shell::fsio::resolve_board(board).map_err(|e| Failure::new(Exit::Board, e))
}

/// The folder a board lives in (`.` for a bare file name): where its config, events, handoffs
/// and deadletters are.
pub fn board_dir(board: &std::path::Path) -> &std::path::Path {
    board
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

/// Whether to colour what is written to `stream`: the one decision, made by `anstream` from the
/// environment. `NO_COLOR` (not empty) turns colour off; then `CLICOLOR_FORCE` (not empty) turns
/// it on, even in a pipe; then `CLICOLOR=0` turns it off; otherwise only a terminal is coloured,
/// and not one whose `TERM` is `dumb` (unless under `CI`).
pub fn colors(stream: &impl anstream::stream::RawStream) -> bool {
    match anstream::AutoStream::choice(stream) {
        anstream::ColorChoice::Never => {
            // anstream also takes a terminal with no `TERM` at all for one without colour;
            // taskboard has always coloured it, so that one case is decided here.
            let var = std::env::var_os;
            stream.is_terminal()
                && var("TERM").is_none()
                && var("NO_COLOR").is_none_or(|v| v.is_empty())
                && var("CLICOLOR").is_none_or(|v| v != "0")
        }
        _ => true,
    }
}

/// Whether to colour standard output (see [`colors`]).
pub fn use_color() -> bool {
    colors(&std::io::stdout())
}

/// Styling that disappears when colour is off: `Paint(use_color())`.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    /// `s` in `style`, reset after; `s` alone when colour is off.
    pub fn style(self, style: anstyle::Style, s: &str) -> String {
        if self.0 {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }
    pub fn red(self, s: &str) -> String {
        self.style(anstyle::AnsiColor::Red.on_default(), s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.style(anstyle::AnsiColor::Yellow.on_default(), s)
    }
    pub fn green(self, s: &str) -> String {
        self.style(anstyle::AnsiColor::Green.on_default(), s)
    }
    pub fn cyan(self, s: &str) -> String {
        self.style(anstyle::AnsiColor::Cyan.on_default(), s)
    }
    pub fn dim(self, s: &str) -> String {
        self.style(anstyle::Style::new().dimmed(), s)
    }
    pub fn bold(self, s: &str) -> String {
        self.style(anstyle::Style::new().bold(), s)
    }
}

/// An error naming a board's unresolved git conflict markers, if `text` has any: nothing may
/// act on such a board or write into it until they are resolved. `then` says what to do after.
pub fn refuse_conflicted(board: &std::path::Path, text: &str, then: &str) -> Result<(), Failure> {
    let markers = crate::core::board::conflict_markers(text);
    let Some(summary) = crate::core::board::conflict_summary(&markers) else {
        return Ok(());
    };
    Err(Failure::new(
        Exit::Board,
        format!(
            "{}: {summary}; resolve the merge, then {then}",
            board.display()
        ),
    ))
}

/// How many times a status write that a save overtook is tried again on the saved board.
const WRITE_TRIES: u32 = 20;

/// The first pause between those tries, doubled each time up to [`MAX_PAUSE`]: a person's
/// editor gets time to finish its save.
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Sets `id` from `current` to `new` on the board as it is now, the way the runtime writes
/// (the caller holds the write lock): compare-and-swap by task ID. A save that lands between
/// the read and the replace leaves the board as saved; the change is then tried again on the
/// saved board, which must still show `current`. `command` names the command in errors.
pub fn write_status(
    board_path: &std::path::Path,
    id: &str,
    current: &Status,
    new: Status,
    command: &str,
) -> Result<(), Failure> {
    let change = Change {
        id: id.to_string(),
        expected: current.clone(),
        new,
    };
    let mut pause = FIRST_PAUSE;
    for _ in 0..WRITE_TRIES {
        let snap = fsio::read_board(board_path).map_err(|e| Failure::new(Exit::Board, e))?;
        // An empty board is an editor's save in progress (truncate, then write).
        if !snap.text.trim().is_empty() {
            refuse_conflicted(board_path, &snap.text, command)?;
            let board = parse_board(&snap.text);
            let outcome = writeback::apply(&snap.text, &board, std::slice::from_ref(&change));
            if let Some((_, why)) = outcome.refused.first() {
                return Err(Failure::new(
                    Exit::Findings,
                    format!("{id} not changed: {why}"),
                ));
            }
            match fsio::replace_if_unchanged(board_path, outcome.text.as_bytes(), &snap) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(Failure::new(
                        Exit::Write,
                        format!("cannot write {}: {e}", board_path.display()),
                    ));
                }
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
    Err(Failure::new(
        Exit::Write,
        format!(
            "{id} not changed: {} kept changing while it was written ({WRITE_TRIES} tries); try again",
            board_path.display()
        ),
    ))
}
