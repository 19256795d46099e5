//! `doctor`'s checks for routes whose runs go to other machines: for a Slurm route, `sbatch`,
//! `squeue` and `scancel` on PATH, the cluster answering `squeue`, and its `shared_dir` a
//! writable folder (tried with a probe file, created and removed: on a network filesystem only
//! a write tells); for an SSH route, `ssh` on PATH and each host reachable in batch mode with its
//! `remote_dir` writable (made there when missing, as a run would). Every command runs with a
//! deadline and is killed when it overruns.
//!
//! Must not touch: the runtime's remote runs, their folders or their jobs; it submits and
//! cancels nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Check, Level, check, find_on_path, ok};
use crate::core::config::{Config, Runner, SlurmConfig, SshConfig};
use crate::core::remote::quote;
use crate::shell::remote::command;
use crate::shell::remote::ssh::Ssh;

/// How long the cluster has to answer `squeue`.
pub const SQUEUE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a host has to answer, on top of ssh's own `ConnectTimeout`.
pub const SSH_DEADLINE: Duration = Duration::from_secs(10);

/// The checks of every remote route, in route order; none when every route runs here.
pub fn checks(config: Option<&Config>, board_dir: &Path) -> Vec<Check> {
    let Some(config) = config else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (route, exec) in &config.executors {
        match &exec.runner {
            Runner::Local => {}
            Runner::Slurm(s) => out.extend(slurm_checks(route, s, board_dir)),
            Runner::Ssh(s) => out.extend(ssh_checks(route, s)),
        }
    }
    out
}

/// Where `program` is on this process's PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    find_on_path(program, &std::env::var_os("PATH")?)
}

/// The programs a route needs, each found on PATH: one check, failing with those missing.
fn tools_check(name: &str, programs: &[&str]) -> Check {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| on_path(p).is_none())
        .collect();
    if missing.is_empty() {
        ok(name, format!("{} found on PATH", programs.join(", ")))
    } else {
        check(
            Level::Fail,
            name,
            format!("{} not found on PATH", missing.join(", ")),
            "install the client tools on this machine, or start taskboard with them on PATH",
        )
    }
}

fn slurm_checks(route: &str, cfg: &SlurmConfig, board_dir: &Path) -> Vec<Check> {
    let name = format!("slurm {route}");
    let tools = tools_check(&name, &["sbatch", "squeue", "scancel"]);
    let have_squeue = on_path("squeue").is_some();
    let mut out = vec![tools];
    if have_squeue {
        out.push(cluster_check(&name));
    }
    out.push(shared_dir_check(&name, &board_dir.join(&cfg.shared_dir)));
    out
}

/// The cluster answers `squeue -h -o %i` in time.
fn cluster_check(name: &str) -> Check {
    let mut cmd = Command::new("squeue");
    cmd.args(["-h", "-o", "%i"]);
    match command::run(cmd, b"", Some(SQUEUE_DEADLINE)) {
        Ok(out) if out.ok() => ok(name, "the cluster answers squeue"),
        Ok(out) if out.overran => check(
            Level::Fail,
            name,
            format!(
                "the cluster does not answer: squeue took more than {}s",
                SQUEUE_DEADLINE.as_secs()
            ),
            "check the Slurm controller (slurmctld) and the network to it",
        ),
        Ok(out) => check(
            Level::Fail,
            name,
            format!("the cluster does not answer: squeue failed{}", said(&out)),
            "check the Slurm controller and this machine's Slurm configuration",
        ),
        Err(e) => check(
            Level::Fail,
            name,
            format!("the cluster does not answer: cannot run squeue: {e}"),
            "check the squeue found on PATH",
        ),
    }
}

/// `shared_dir` is a folder this process can write in: a probe file is created and removed.
fn shared_dir_check(name: &str, dir: &Path) -> Check {
    let todo = "create it on the filesystem the compute nodes share, writable by this user";
    match std::fs::metadata(dir) {
        Err(e) => {
            return check(
                Level::Fail,
                name,
                format!("shared_dir {} cannot be read: {e}", dir.display()),
                todo,
            );
        }
        Ok(m) if !m.is_dir() => {
            return check(
                Level::Fail,
                name,
                format!("shared_dir {} is not a folder", dir.display()),
                todo,
            );
        }
        Ok(_) => {}
    }
    let probe = dir.join(format!(".taskboard-doctor-{}", std::process::id()));
    let wrote = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"probe\n"));
    let _ = std::fs::remove_file(&probe);
    match wrote {
        Ok(()) => ok(name, format!("shared_dir {} is writable", dir.display())),
        Err(e) => check(
            Level::Fail,
            name,
            format!("shared_dir {} is not writable: {e}", dir.display()),
            todo,
        ),
    }
}

fn ssh_checks(route: &str, cfg: &SshConfig) -> Vec<Check> {
    let name = format!("ssh {route}");
    let tools = tools_check(&name, &["ssh"]);
    if tools.level == Level::Fail {
        return vec![tools];
    }
    let mut out = vec![tools];
    // Every host at once: a host that does not answer costs its deadline once, not per host.
    let handles: Vec<_> = cfg
        .hosts
        .iter()
        .map(|h| {
            let (name, host, cfg) = (name.clone(), h.destination.clone(), cfg.clone());
            std::thread::spawn(move || host_check(&name, &host, &cfg))
        })
        .collect();
    for h in handles {
        out.push(h.join().unwrap_or_else(|_| {
            check(
                Level::Fail,
                &name,
                "a host check stopped unexpectedly",
                "run doctor again",
            )
        }));
    }
    out
}

/// One host reachable in batch mode, its `remote_dir` made and writable: through the very
/// `ssh` command line the runtime uses, with a shorter connect timeout (a person's own
/// `ConnectTimeout` in `ssh_args` still wins).
fn host_check(name: &str, host: &str, cfg: &SshConfig) -> Check {
    let dir = quote(&cfg.remote_dir);
    let mut args = cfg.ssh_args.clone();
    args.extend(["-o".to_string(), "ConnectTimeout=5".to_string()]);
    let ssh = Ssh {
        host: host.to_string(),
        args,
    };
    let cmd = ssh.command(&format!("mkdir -p {dir} && test -w {dir} && echo ok"));
    let todo = "check the host, its ssh key for batch login (no password prompt) and ssh_args";
    match command::run(cmd, b"", Some(SSH_DEADLINE)) {
        Ok(out) if out.ok() => ok(
            name,
            format!("host {host} reachable, {} writable", cfg.remote_dir),
        ),
        Ok(out) if out.overran => check(
            Level::Fail,
            name,
            format!(
                "host {host} did not answer within {}s",
                SSH_DEADLINE.as_secs()
            ),
            todo,
        ),
        Ok(out) => check(
            Level::Fail,
            name,
            format!("host {host} not usable{}", said(&out)),
            todo,
        ),
        Err(e) => check(
            Level::Fail,
            name,
            format!("host {host}: cannot run ssh: {e}"),
            todo,
        ),
    }
}

/// `: <stderr's last line>`, or nothing when it said nothing.
fn said(out: &command::Output) -> String {
    match out.last_error() {
        line if line.is_empty() => String::new(),
        line => format!(": {}", line.chars().take(200).collect::<String>()),
    }
}
