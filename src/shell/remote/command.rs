//! Running the engines' client programs (`ssh`, `sbatch`, `squeue`, `scancel`) with a time
//! limit, their stdin fed and their output read in full.
//!
//! Owns only those short-lived children: each runs in a process group of its own and dies with
//! the thread that started it (so none outlives a runtime killed with SIGKILL), and one that
//! overruns its limit is killed with its whole group before it is reaped (so nothing it started
//! keeps its output open). Must not know what the commands mean.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::shell::process;

/// What a finished command gave.
#[derive(Debug)]
pub struct Output {
    /// Its exit code; `None` when a signal ended it (or it overran and was killed).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// It overran its limit and was killed.
    pub overran: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// The last non-empty line of stderr, for an error message.
    pub fn last_error(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string()
    }
}

/// How often an overrunnable command is checked while it runs.
const TICK: Duration = Duration::from_millis(20);

/// Runs `cmd` with `stdin` as its input; kills it and its process group once `limit` has
/// passed (`None`: no limit).
pub fn run(mut cmd: Command, stdin: &[u8], limit: Option<Duration>) -> io::Result<Output> {
    cmd.stdin(if stdin.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    process::spawn::die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        let bytes = stdin.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let mut overran = false;
    let status = match limit {
        None => child.wait()?,
        Some(limit) => {
            let until = Instant::now() + limit;
            loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if Instant::now() >= until {
                    // Not reaped yet: the pid, and so the group id, is still this child's.
                    process::signal_group(child.id(), rustix::process::Signal::KILL);
                    overran = true;
                    break child.wait()?;
                }
                thread::sleep(TICK);
            }
        }
    };
    Ok(Output {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        overran,
    })
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_code_and_stdin_come_back() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let out = run(cmd, b"hello", Some(Duration::from_secs(10))).unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.text(), "hello");
        assert_eq!(out.last_error(), "oops");
        assert!(!out.overran);
    }

    #[test]
    fn an_overrunning_command_is_killed_with_what_it_started() {
        // The background sleep holds stdout open: only killing the group ends the read.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let out = run(cmd, b"", Some(Duration::from_millis(200))).unwrap();
        assert!(out.overran);
        assert_eq!(out.code, None);
    }
}
