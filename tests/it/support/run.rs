//! Running the built `taskboard` binary to its end, with a deadline: a command that hangs fails
//! its test instead of stalling the whole run.

use std::io::Read;
use std::process::{Command, Stdio};

use super::DEADLINE;

/// How a finished command ended and what it printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The built `taskboard`, with an empty stdin (a test never types). Add the arguments, the
/// folder and the environment, then hand it to [`finish`].
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskboard"));
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, reading its stdout and stderr meanwhile, and polls for its exit until
/// [`DEADLINE`]; past it the command is killed and the test fails. The output must be UTF-8 and
/// the command must exit (not die by a signal).
pub fn finish(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn taskboard");
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let Some(status) = super::status_within(&mut child, DEADLINE) else {
        panic!("{cmd:?} did not finish within {} s", DEADLINE.as_secs());
    };
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8(h.join().expect("reader")).expect("output is UTF-8")
    };
    Output {
        code: status.code().expect("exited normally"),
        stdout: text(out),
        stderr: text(err),
    }
}
