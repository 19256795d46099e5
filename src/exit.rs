//! How the process ends: the exit codes every command uses, in one place so the README can list
//! them, and [`Failure`], the one error that carries one, from the runtime or a command up to
//! `main`, which turns it into the process's exit code here ([`Exit::code`]).
//!
//! Must not touch: output streams, files or processes; saying a failure on stderr is
//! `cmd::output`'s.

use std::fmt;

/// Exit codes, stable and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything went as asked.
    Ok = 0,
    /// The command ran and found problems: lint errors, a failed check, a refused change, a task
    /// or run (`show`, `logs`) that is not there.
    Findings = 1,
    /// The board cannot be read: missing, a folder, no permission, not UTF-8, too large.
    Board = 2,
    /// The configuration file is missing where named, unreadable or invalid.
    Config = 3,
    /// The state folder or a lock is unavailable: another `run` holds the board, a folder is read-only.
    State = 4,
    /// Writing a file failed, or a file that must not be overwritten exists.
    Write = 5,
    /// Standard output could not be written (a full disk, an I/O error; a closed pipe is not an
    /// error: exit 0). Whatever the command changes was changed: `retry` set the task to ready.
    Output = 6,
    /// The command line itself is wrong (unknown flag, missing argument).
    Usage = 64,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Something that could not be done: the exit code it ends the process with and one line for a
/// person (said on stderr by `cmd::output::report`).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    /// Standard output's reader went away (EPIPE): the command stops, and that is no failure.
    pub pipe_closed: bool,
}

impl Failure {
    pub fn new(exit: Exit, message: impl fmt::Display) -> Failure {
        Failure {
            exit,
            message: message.to_string(),
            pipe_closed: false,
        }
    }

    /// How the process ends after this failure: with its exit code, but for a closed pipe,
    /// which is how a reader says "enough" (`| head`): exit 0, as `ls` does.
    pub fn ends_with(&self) -> Exit {
        if self.pipe_closed {
            Exit::Ok
        } else {
            self.exit
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = [
            Exit::Ok,
            Exit::Findings,
            Exit::Board,
            Exit::Config,
            Exit::State,
            Exit::Write,
            Exit::Output,
            Exit::Usage,
        ]
        .into_iter()
        .map(Exit::code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 64]);
    }

    #[test]
    fn a_closed_pipe_ends_the_process_with_success() {
        let mut failure = Failure::new(Exit::Output, "cannot write the output");
        assert_eq!(failure.ends_with(), Exit::Output);
        failure.pipe_closed = true;
        assert_eq!(failure.ends_with(), Exit::Ok);
    }
}
