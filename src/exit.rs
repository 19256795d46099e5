//! The process exit codes every command uses, in one place so the README can list them.

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
    pub fn code(self) -> i32 {
        self as i32
    }
}
