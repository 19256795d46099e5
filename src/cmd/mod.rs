//! The commands behind the CLI. Each returns an [`Exit`] or a [`Failure`] (one line for stderr);
//! none of them prints a backtrace or panics on bad input or on a failing output: they write
//! through [`output`], never with `println!`.

use crate::exit::Exit;

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
