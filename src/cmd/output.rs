//! Where the commands' words go: the report on standard output, notes and errors on standard
//! error. Nothing here panics on a write error (`println!` does): stdout errors come back as a
//! [`Failure`] with [`Exit::Output`], which `main` turns into a quiet exit 0 when the reader went
//! away (a closed pipe: `taskboard doctor | head -1`) and into one line on stderr otherwise (a
//! full disk, an I/O error). A note or error line that cannot be written to stderr is dropped:
//! there is nowhere left to say it, and the exit code still tells.

use std::fmt;
use std::io::{self, Write};

use super::Failure;
use crate::exit::Exit;

/// Writes `text` to stdout and flushes it, so that any error is seen here and not lost at exit.
pub fn print(text: &str) -> Result<(), Failure> {
    write_stdout(text).map_err(Failure::output)
}

/// [`print()`] for bytes that need not be UTF-8 (a patch), written as they are.
pub fn print_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(Failure::output)
}

/// [`print()`] for clap's styled text (`--help`, `--version`): with its styles where standard
/// output takes colour ([`super::use_color`]), plain otherwise, as clap prints it.
pub fn print_styled(text: &clap::builder::StyledStr) -> Result<(), Failure> {
    if super::use_color() {
        print(&text.ansi().to_string())
    } else {
        print(&text.to_string())
    }
}

/// Standard output for a command that streams its report as it goes (`tail -f`, `logs -f`):
/// its write errors go through [`Failure::output`] like [`print()`]'s.
pub fn stdout() -> io::StdoutLock<'static> {
    io::stdout().lock()
}

/// Text on stderr as it is, no `taskboard:` prefix (a greeting); a failing stderr is ignored.
pub fn say(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// [`print()`] for a command that has already done its work (`done` says what): a failing
/// stdout must not read as "nothing happened".
pub fn print_after(done: &str, text: &str) -> Result<(), Failure> {
    write_stdout(text).map_err(|e| Failure::output_after(Some(done), e))
}

fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush())
}

/// One line on stderr, `taskboard: <message>`; a failing stderr is ignored.
pub fn note(message: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "taskboard: {message}");
}

impl Failure {
    /// Standard output could not be written.
    pub fn output(e: io::Error) -> Failure {
        Failure::output_after(None, e)
    }

    /// Standard output could not be written after the command already did its work (`done`
    /// says what): the message says that it was done, so the exit code is not taken for "nothing
    /// happened".
    pub fn output_after(done: Option<&str>, e: io::Error) -> Failure {
        let message = match done {
            Some(done) => format!("{done}, but the report could not be printed: {e}"),
            None => format!("cannot write the output: {e}"),
        };
        let mut failure = Failure::new(Exit::Output, message);
        failure.pipe_closed = e.kind() == io::ErrorKind::BrokenPipe;
        failure
    }
}

/// What `main` does with a command's [`Failure`]: the exit code, after saying why on stderr.
/// A closed pipe is how a reader says "enough" (`| head`): exit 0 without a word, as `ls` does.
pub fn report(failure: &Failure) -> Exit {
    if !failure.pipe_closed {
        note(&failure.message);
    }
    failure.ends_with()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_a_quiet_success() {
        let f = Failure::output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(f.pipe_closed);
        assert_eq!(report(&f), Exit::Ok);
    }

    #[test]
    fn a_full_disk_is_an_output_failure() {
        let f = Failure::output(io::Error::from(rustix::io::Errno::NOSPC));
        assert!(!f.pipe_closed);
        assert_eq!(f.exit, Exit::Output);
        assert!(
            f.message.starts_with("cannot write the output: "),
            "{}",
            f.message
        );
    }

    #[test]
    fn work_done_before_the_output_failed_is_said() {
        let f = Failure::output_after(
            Some("A-1: failed -> ready"),
            io::Error::from(rustix::io::Errno::IO),
        );
        assert_eq!(f.exit, Exit::Output);
        assert!(
            f.message
                .starts_with("A-1: failed -> ready, but the report could not be printed: "),
            "{}",
            f.message
        );
    }
}
