//! Runs on SSH hosts: every step is one `ssh` call in batch mode running a short POSIX shell
//! script from `core::remote` on the host.
//!
//! Owns the `ssh` command lines: launching (the run's folder under `remote_dir`, the packet on
//! stdin, the wrapper started in a session of its own, detached from the connection, since
//! killing the local client would leave it running), waiting (one long call that returns
//! when the run's `status` appears), signalling the run's process group by a separate call,
//! collecting the run's files in one framed stream, and removing its folder. Must not decide
//! what an end means (`shell::remote` and the core do).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::command;
use super::{
    COLLECTED, Collected, Job, Receiver, RemoteLaunch, RemoteRunShared, WaitEnd, beyond_reach,
};
use crate::core::remote::{self, Placement};
use crate::shell::process;

/// A route's way to one host.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// The `ssh` destination.
    pub host: String,
    /// The route's `ssh_args`, before taskboard's own options (ssh keeps the first value given
    /// for an option, so a person's choice wins).
    pub args: Vec<String>,
}

/// `ssh`'s exit code when the connection failed (or the remote command exited 255).
const SSH_FAILED: i32 = 255;

/// The limit of one short call (launch, signal, remove).
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// The longest pause between two tries to reach a host that did not answer.
const RETRY_MAX: Duration = Duration::from_secs(15);

impl Ssh {
    /// `ssh <args> <taskboard's options> -- <host> sh -c '<script>'`.
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(&self.args)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
                "-T",
                "--",
            ])
            .arg(&self.host)
            .arg(format!("sh -c {}", remote::quote(script)));
        cmd
    }

    /// Starts the run: its folder, its packet, its wrapper; the placement with the executor's
    /// process group when the host reported it. `Err((reason, message))` when it did not start.
    pub fn launch(&self, job: &Job, launch: &RemoteLaunch) -> Result<Placement, (String, String)> {
        let dir = job.placement.dir.clone();
        let env = remote::env_file(&launch.env, None, &launch.argv, launch.timeout, job.grace);
        let script = remote::launch_script(&dir, &env);
        let out = command::run(self.command(&script), &launch.stdin, Some(CALL_LIMIT))
            .map_err(|e| ("ssh_failed".to_string(), format!("cannot run ssh: {e}")))?;
        if out.overran || out.code == Some(SSH_FAILED) {
            let why = if out.overran {
                "no answer within a minute".to_string()
            } else {
                out.last_error()
            };
            return Err((
                remote::HOST_UNREACHABLE.to_string(),
                format!("cannot reach {}: {why}", self.host),
            ));
        }
        if !out.ok() {
            return Err((
                "remote_start_failed".to_string(),
                format!(
                    "{} could not start the run in {dir}: {}",
                    self.host,
                    out.last_error()
                ),
            ));
        }
        let mut placement = job.placement.clone();
        placement.host = Some(self.host.clone());
        placement.pgid = out
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("pgid "))
            .and_then(|g| g.trim().parse().ok());
        Ok(placement)
    }

    /// Follows the run until its `status` appears or it is gone; retries a host that does not
    /// answer until the far side has surely stopped the run.
    pub(crate) fn wait(&self, shared: &RemoteRunShared, job: &Job) -> WaitEnd {
        let script = remote::wait_script(&job.placement.dir);
        let mut pause = Duration::from_secs(1);
        loop {
            match command::run(self.command(&script), b"", None) {
                Ok(out) if out.ok() => {
                    let text = out.text();
                    if text.lines().any(|l| l.starts_with("status ")) {
                        return WaitEnd::Ended;
                    }
                    if text.lines().any(|l| l == "lost") {
                        return WaitEnd::Lost(remote::REMOTE_LOST.to_string());
                    }
                }
                Ok(out) => tracing::warn!(
                    host = %self.host,
                    error = %out.last_error(),
                    "cannot follow a remote run; trying again"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot run ssh; trying again"),
            }
            if beyond_reach(shared, job) {
                return WaitEnd::Lost(remote::HOST_UNREACHABLE.to_string());
            }
            thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Whether the run's `status` is there already (`false` when the host does not answer).
    pub fn ended(&self, placement: &Placement) -> bool {
        let script = format!(
            "test -e {}/{}",
            remote::quote(&placement.dir),
            remote::files::STATUS
        );
        command::run(self.command(&script), b"", Some(CALL_LIMIT)).is_ok_and(|o| o.ok())
    }

    /// Signals the run's process group (`TERM`, `KILL`), noting why first.
    pub fn signal(&self, placement: &Placement, sig: &str, why: &str) {
        let script = remote::signal_script(&placement.dir, sig, why);
        match command::run(self.command(&script), b"", Some(CALL_LIMIT)) {
            Ok(out) if out.ok() => {}
            Ok(out) => tracing::warn!(
                host = %self.host,
                error = %out.last_error(),
                "cannot signal a remote run"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot run ssh to signal a remote run"),
        }
    }

    /// Brings the run's files back (a few tries while the host does not answer).
    pub(crate) fn collect(&self, placement: &Placement, job: &Job) -> Collected {
        let script = remote::collect_script(&placement.dir, &COLLECTED);
        let mut pause = Duration::from_secs(1);
        for _ in 0..4 {
            match self.collect_once(&script, job) {
                Ok(collected) => return collected,
                Err(e) => {
                    tracing::warn!(host = %self.host, error = %e, "cannot collect a remote run")
                }
            }
            thread::sleep(pause);
            pause *= 2;
        }
        Collected::default()
    }

    fn collect_once(&self, script: &str, job: &Job) -> std::io::Result<Collected> {
        let mut cmd = self.command(script);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        process::spawn::die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let mut receiver = Receiver::new(job);
        let read = match child.stdout.take() {
            Some(out) => read_frames(BufReader::new(out), &mut receiver),
            None => Ok(()),
        };
        let status = child.wait()?;
        read?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "ssh ended with {status} while collecting"
            )));
        }
        Ok(receiver.finish())
    }

    /// Removes the run's folder on the host once its files are here.
    pub fn remove(&self, placement: &Placement) {
        // The task's folder goes too once no run of it is left there.
        let script = format!(
            "rm -rf -- {d}; rmdir -- \"$(dirname -- {d})\" 2>/dev/null; exit 0",
            d = remote::quote(&placement.dir)
        );
        if let Err(e) = command::run(self.command(&script), b"", Some(CALL_LIMIT)) {
            tracing::warn!(error = %e, "cannot remove a remote run's folder");
        }
    }
}

/// Reads `collect_script`'s stream: `<name> <bytes>` then the bytes, or `<name> -`.
fn read_frames(mut input: impl BufRead, into: &mut Receiver<'_>) -> std::io::Result<()> {
    let mut header = String::new();
    loop {
        header.clear();
        if input.read_line(&mut header)? == 0 {
            return Ok(());
        }
        let mut parts = header.trim_end().splitn(2, ' ');
        let (Some(name), Some(size)) = (parts.next(), parts.next()) else {
            return Err(std::io::Error::other(format!(
                "unexpected line from the host: {header:?}"
            )));
        };
        if size == "-" {
            continue;
        }
        let size: u64 = size
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad size in {header:?}")))?;
        let name = name.to_string();
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = input.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::other("the stream ended inside a file"));
            }
            into.push(&name, &buf[..n]);
            left -= n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::remote::RunnerKind;
    use crate::shell::remote::Engine;

    fn job(dir: &std::path::Path, cap: u64) -> Job {
        Job {
            engine: Engine::Ssh(Ssh {
                host: "h".into(),
                args: Vec::new(),
            }),
            placement: Placement {
                runner: RunnerKind::Ssh,
                host: Some("h".into()),
                job_id: None,
                node: None,
                pgid: None,
                dir: "far".into(),
            },
            run_dir: dir.to_path_buf(),
            result_path: dir.join("result.json"),
            output_cap: cap,
            grace: Duration::from_secs(1),
            deadline: None,
            name: "taskboard-T-1-1".into(),
        }
    }

    #[test]
    fn framed_files_land_capped_with_the_outcome_read() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path(), 8);
        let mut receiver = Receiver::new(&job);
        let stream = b"status 7\nexit 3\nstopped -\nresult.json 2\n{}stdout.log 20\n0123456789abcdefghijstderr.log 0\n";
        read_frames(&stream[..], &mut receiver).unwrap();
        let got = receiver.finish();
        let outcome = got.outcome.unwrap();
        assert_eq!(outcome.process, crate::core::settle::ProcessEnd::Exited(3));
        assert_eq!(got.stdout.1, 20);
        let log = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
        assert!(log.starts_with("0123") && log.ends_with("ghij"), "{log}");
        assert!(log.contains("12 bytes omitted"), "{log}");
        assert_eq!(std::fs::read_to_string(&job.result_path).unwrap(), "{}");
    }

    #[test]
    fn a_stream_cut_inside_a_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path(), 1024);
        let mut receiver = Receiver::new(&job);
        assert!(read_frames(&b"stdout.log 10\nabc"[..], &mut receiver).is_err());
        assert!(read_frames(&b"garbage\n"[..], &mut receiver).is_err());
    }
}
