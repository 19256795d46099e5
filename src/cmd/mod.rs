//! The commands behind the CLI. Each returns an [`Exit`] or a [`Failure`] (one line for stderr);
//! none of them prints a backtrace or panics on bad input or on a failing output: they write
//! through [`output`], never with `println!`.

use std::io::IsTerminal;

use crate::exit::Exit;

pub mod demo;
pub mod doctor;
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
/// as the runtime's errors end in, so `main` maps every exit code through [`Exit::code`].
pub use crate::exit::Failure;

/// The runtime's fatal error, until it returns a [`Failure`] itself.
impl From<crate::shell::runtime::Fatal> for Failure {
    fn from(fatal: crate::shell::runtime::Fatal) -> Failure {
        Failure::new(fatal.exit, fatal.message)
    }
}

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

/// Whether to colour standard output: only on a terminal, and never with `NO_COLOR` set.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// ANSI styling that disappears when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn paint(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn cyan(self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
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
