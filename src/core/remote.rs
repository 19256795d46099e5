//! Runs on other machines: where a run went, the script that runs it there, and the rules that
//! pick a host and read what the engine says.
//!
//! Owns the record of a remote run ([`Placement`], kept in events; [`RemoteRun`], kept in the
//! task's lock so a restarted runtime finds it), the POSIX shell text that runs an executor on
//! the far side ([`WRAPPER`], [`env_file`], [`launch_script`]) with its one quoting rule, the
//! reading of what that script leaves ([`FarEnding`]) and of Slurm's job states ([`JobState`]),
//! the `--time` backstop, and the least-busy host choice ([`pick_host`]). Pure: it must not run
//! `ssh` or `sbatch`, touch files or read the clock; `shell::remote` does that with these texts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::config::SshHost;
use crate::core::settle::ProcessEnd;

/// Why an attempt failed when its host could not be reached (to launch it, or for longer than
/// its deadline allows).
pub const HOST_UNREACHABLE: &str = "host_unreachable";
/// Why an attempt failed when its Slurm cluster did not answer for longer than its deadline.
pub const CLUSTER_UNREACHABLE: &str = "cluster_unreachable";
/// Why an attempt failed when its run vanished on the far side without saying how it ended.
pub const REMOTE_LOST: &str = "remote_lost";

/// Which engine ran a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Slurm,
    Ssh,
}

impl RunnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Slurm => "slurm",
            RunnerKind::Ssh => "ssh",
        }
    }
}

/// Where a remote run is: the engine, the host or job, and its folder over there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub runner: RunnerKind,
    /// The SSH destination it runs on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    /// The Slurm job ID, once `sbatch` gave one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub job_id: Option<String>,
    /// The Slurm node it runs on, once it started.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    /// The executor's process group on the host (SSH), once it started.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pgid: Option<u32>,
    /// The run's folder on the far side (for Slurm, under `shared_dir`, seen from here too).
    pub dir: String,
}

impl Placement {
    /// One line for people: `ssh gpu1 (pgid 4242)`, `slurm job 17 on node1`.
    pub fn describe(&self) -> String {
        match self.runner {
            RunnerKind::Ssh => {
                let host = self.host.as_deref().unwrap_or("?");
                match self.pgid {
                    Some(g) => format!("ssh {host} (pgid {g})"),
                    None => format!("ssh {host}"),
                }
            }
            RunnerKind::Slurm => {
                let mut s = match &self.job_id {
                    Some(j) => format!("slurm job {j}"),
                    None => "slurm (not submitted)".to_string(),
                };
                if let Some(node) = &self.node {
                    s.push_str(&format!(" on {node}"));
                }
                s
            }
        }
    }
}

/// What a task's lock records about its remote run, so that a runtime started after this one
/// died finds the run and takes it over instead of starting a second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRun {
    pub placement: Placement,
    pub attempt: u32,
    pub route: String,
    /// A review run (the task's own work otherwise).
    #[serde(default)]
    pub review: bool,
    /// The attempt's run folder on this machine.
    pub run_dir: String,
    pub started: DateTime<Utc>,
    /// The `running:` status written for it.
    pub running: String,
}

/// The files of a run's folder on the far side.
pub mod files {
    /// The executor's stdin.
    pub const STDIN: &str = "stdin";
    /// The variables, working folder and command line ([`super::env_file`]).
    pub const ENV: &str = "env";
    /// [`super::WRAPPER`].
    pub const WRAPPER: &str = "run.sh";
    /// The wrapper's pid, once it runs.
    pub const WRAPPER_PID: &str = "wrapper.pid";
    /// The executor's process group, once it started.
    pub const PGID: &str = "pgid";
    /// Why the far side stopped it, when it did (`timeout`).
    pub const STOPPED: &str = "stopped";
    /// How it ended ([`super::FarEnding`]); written last.
    pub const STATUS: &str = "status";
    pub const STDOUT: &str = "stdout.log";
    pub const STDERR: &str = "stderr.log";
    pub const RESULT: &str = "result.json";
}

/// The script that runs one attempt on the far side, given its folder as `$1`. It starts the
/// executor in a session of its own (so one signal reaches its whole tree), records its process
/// group, enforces the run's timeout itself (so a run whose runtime lost contact still ends),
/// stops whatever the executor left in its group, and writes how it ended last.
pub const WRAPPER: &str = r#"#!/bin/sh
# One taskboard attempt: $1 is its folder (env, stdin in; pgid, logs, status out).
d=$1
cd "$d" || exit 111
echo $$ > wrapper.pid.tmp && mv wrapper.pid.tmp wrapper.pid
. ./env
cd "$TB_CWD" || { echo "exit 111" > status.tmp; mv status.tmp status; exit 111; }
setsid "$@" < "$d/stdin" > "$d/stdout.log" 2> "$d/stderr.log" &
e=$!
echo "$e" > "$d/pgid.tmp" && mv "$d/pgid.tmp" "$d/pgid"
stop() {
  [ -e "$d/stopped" ] || echo "$1" > "$d/stopped"
  kill -TERM -"$e" 2>/dev/null
  ( sleep "$TB_GRACE"; kill -KILL -"$e" 2>/dev/null ) &
}
trap 'stop shutdown' TERM INT HUP
w=
if [ -n "$TB_TIMEOUT" ]; then
  ( s=; trap '[ -n "$s" ] && kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$TB_TIMEOUT" & s=$!; wait "$s" || exit 0
    [ -e "$d/stopped" ] || echo timeout > "$d/stopped"; kill -TERM -"$e" 2>/dev/null
    sleep "$TB_GRACE" & s=$!; wait "$s" || exit 0; kill -KILL -"$e" 2>/dev/null ) &
  w=$!
fi
while :; do
  wait "$e"; code=$?
  kill -0 "$e" 2>/dev/null || break
done
[ -n "$w" ] && kill "$w" 2>/dev/null
if kill -0 -"$e" 2>/dev/null; then
  kill -TERM -"$e" 2>/dev/null
  n=0
  while kill -0 -"$e" 2>/dev/null && [ "$n" -lt "$TB_GRACE_TICKS" ]; do sleep 0.1; n=$((n+1)); done
  kill -KILL -"$e" 2>/dev/null
fi
echo "exit $code" > "$d/status.tmp" && mv "$d/status.tmp" "$d/status"
"#;

/// Quotes `s` for a POSIX shell: single quotes, with each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The far side's remote-side timeout: taskboard's own limit plus a margin, so this side
/// normally decides first and the far side only acts when contact was lost.
pub const FAR_SIDE_MARGIN: Duration = Duration::from_secs(5);

/// The `env` file the wrapper sources: the variables, the working folder (`None`: the run's
/// own folder), the far side's timeout and grace, and the command line as `set --`.
pub fn env_file(
    env: &[(String, String)],
    cwd: Option<&str>,
    argv: &[String],
    timeout: Option<Duration>,
    grace: Duration,
) -> String {
    let mut out = String::new();
    for (k, v) in env {
        out.push_str(&format!("export {k}={}\n", quote(v)));
    }
    // The run's folder and result file are where the wrapper runs: `$d` is that folder.
    out.push_str("export TASKBOARD_RUN_DIR=\"$d\"\n");
    out.push_str(&format!(
        "export TASKBOARD_RESULT=\"$d/{}\"\n",
        files::RESULT
    ));
    match cwd {
        Some(cwd) => out.push_str(&format!("TB_CWD={}\n", quote(cwd))),
        None => out.push_str("TB_CWD=\"$d\"\n"),
    }
    let timeout = timeout.map_or(String::new(), |t| {
        (t + FAR_SIDE_MARGIN).as_secs().max(1).to_string()
    });
    out.push_str(&format!("TB_TIMEOUT={timeout}\n"));
    out.push_str(&format!("TB_GRACE={}\n", grace.as_secs().max(1)));
    out.push_str(&format!(
        "TB_GRACE_TICKS={}\n",
        (grace.as_millis() / 100).max(10)
    ));
    let args: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    out.push_str(&format!("set -- {}\n", args.join(" ")));
    out
}

/// Whether a variable name can be exported by [`env_file`].
pub fn exportable(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The command an SSH host runs to start one attempt: makes its folder, takes the packet from
/// stdin, writes the wrapper and its `env`, starts the wrapper detached from the connection and
/// prints the executor's process group once it has one (`pgid N`).
pub fn launch_script(dir: &str, env: &str) -> String {
    let d = quote(dir);
    format!(
        "set -e; umask 077; mkdir -p {d}; cd {d}; cat > {stdin}; printf '%s' {wrapper} > {run}; \
         printf '%s' {env} > {envf}; \
         setsid sh ./{run} \"$PWD\" < /dev/null > /dev/null 2>&1 & \
         n=0; while [ ! -s {pgid} ] && [ ! -e {status} ] && [ $n -lt 300 ]; do sleep 0.05; n=$((n+1)); done; \
         if [ -s {pgid} ]; then echo \"pgid $(cat {pgid})\"; elif [ -e {status} ]; then echo \"ended\"; else echo \"slow\"; fi",
        stdin = files::STDIN,
        wrapper = quote(WRAPPER),
        run = files::WRAPPER,
        env = quote(env),
        envf = files::ENV,
        pgid = files::PGID,
        status = files::STATUS,
    )
}

/// The command an SSH host runs to wait for a run: prints `status` once the run has ended, or
/// `lost` when neither the wrapper nor the status is there. Polls once a second on the host.
pub fn wait_script(dir: &str) -> String {
    let d = quote(dir);
    format!(
        "cd {d} 2>/dev/null || {{ echo lost; exit 0; }}; \
         while [ ! -e {status} ]; do \
           if ! kill -0 \"$(cat {wpid} 2>/dev/null || echo 0)\" 2>/dev/null; then \
             [ -e {status} ] || {{ echo lost; exit 0; }}; fi; \
           sleep 1; done; echo \"status $(cat {status})\"",
        status = files::STATUS,
        wpid = files::WRAPPER_PID,
    )
}

/// The command an SSH host runs to signal a run's process group (`TERM` or `KILL`).
pub fn signal_script(dir: &str, signal: &str, why: &str) -> String {
    let d = quote(dir);
    format!(
        "cd {d} 2>/dev/null || exit 0; [ -e {stopped} ] || echo {why} > {stopped}; \
         g=$(cat {pgid} 2>/dev/null) && kill -{signal} -\"$g\" 2>/dev/null; exit 0",
        why = quote(why),
        stopped = files::STOPPED,
        pgid = files::PGID,
    )
}

/// The command that prints a run's files for collection: for each of `names`, a line
/// `<name> <bytes>` followed by that many bytes, or `<name> -` when it is absent.
pub fn collect_script(dir: &str, names: &[&str]) -> String {
    let d = quote(dir);
    let mut s = format!("cd {d} 2>/dev/null || exit 0; for f in");
    for n in names {
        s.push(' ');
        s.push_str(n);
    }
    s.push_str(
        "; do if [ -f \"$f\" ]; then echo \"$f $(wc -c < \"$f\" | tr -d ' ')\"; cat \"$f\"; else echo \"$f -\"; fi; done",
    );
    s
}

/// How a run ended on the far side, read from its `status` and `stopped` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarEnding {
    pub process: ProcessEnd,
    /// The far side stopped it itself (`timeout`; `shutdown` for a signal to the wrapper).
    pub stopped_there: Option<String>,
}

/// Reads `status` (`exit N`) and `stopped`. A shell reports a death by signal N as exit
/// 128 + N, so that is what such a code is taken for, named as a local run's signal would be
/// (`signal_name`).
pub fn outcome(
    status: &str,
    stopped: Option<&str>,
    signal_name: impl Fn(i32) -> String,
) -> Option<FarEnding> {
    let code: i32 = status.trim().strip_prefix("exit ")?.trim().parse().ok()?;
    let process = if (129..=128 + 64).contains(&code) {
        let number = code - 128;
        ProcessEnd::Signaled {
            number,
            name: signal_name(number),
        }
    } else {
        ProcessEnd::Exited(code)
    };
    Some(FarEnding {
        process,
        stopped_there: stopped
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

/// Slurm's `--time` for a run: whole minutes, rounded up, past taskboard's own limit and
/// grace with a minute to spare, since it is a backstop that fires late. `None` without a limit.
pub fn slurm_time_limit(timeout: Option<Duration>, grace: Duration) -> Option<String> {
    let total = timeout? + grace + FAR_SIDE_MARGIN;
    let minutes = total.as_secs().div_ceil(60) + 1;
    Some(minutes.to_string())
}

/// A Slurm job's state as `squeue -o %T` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a node (`PENDING`, `CONFIGURING`, `REQUEUED`, `SUSPENDED`, ...).
    Waiting,
    /// On a node (`RUNNING`, `COMPLETING`).
    Running,
    /// Over: `COMPLETED` or another final state (`NODE_FAIL`, `CANCELLED`, `TIMEOUT`,
    /// `FAILED`, `BOOT_FAIL`, `OUT_OF_MEMORY`, `PREEMPTED`, `DEADLINE`), lower-cased.
    Over(String),
}

/// Reads one `squeue -h -o '%T %N'` line: the state and the node list (empty while pending).
pub fn job_state(line: &str) -> Option<(JobState, Option<String>)> {
    let mut parts = line.split_whitespace();
    let state = parts.next()?;
    let node = parts.next().map(str::to_string).filter(|n| n != "(null)");
    let state = match state {
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => JobState::Running,
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING"
        | "SUSPENDED" | "STOPPED" | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => JobState::Waiting,
        other if other.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
            JobState::Over(other.to_ascii_lowercase())
        }
        _ => return None,
    };
    Some((state, node))
}

/// The host a new run goes to: among those not down (`down` holds when each comes back) and
/// not at their `max_parallel`, the one with the fewest runs now (`busy`), the earlier listed on
/// a tie. `None` when every host is down or full.
pub fn pick_host<'a>(
    hosts: &'a [SshHost],
    busy: &BTreeMap<String, usize>,
    down: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<&'a SshHost> {
    hosts
        .iter()
        .filter(|h| down.get(&h.destination).is_none_or(|until| *until <= now))
        .filter(|h| {
            let n = busy.get(&h.destination).copied().unwrap_or(0);
            h.max_parallel.is_none_or(|max| n < max)
        })
        .min_by_key(|h| busy.get(&h.destination).copied().unwrap_or(0))
}

/// How many more runs a route of `hosts` can start now: `None` when some usable host has no
/// limit of its own.
pub fn room(
    hosts: &[SshHost],
    busy: &BTreeMap<String, usize>,
    down: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<usize> {
    let mut total = 0usize;
    for h in hosts
        .iter()
        .filter(|h| down.get(&h.destination).is_none_or(|until| *until <= now))
    {
        let n = busy.get(&h.destination).copied().unwrap_or(0);
        total += h.max_parallel?.saturating_sub(n);
    }
    Some(total)
}

/// The earliest time a down host comes back, if any is down now.
pub fn next_return(
    down: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    down.values().filter(|t| **t > now).min().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, max: Option<usize>) -> SshHost {
        SshHost {
            destination: name.to_string(),
            max_parallel: max,
        }
    }

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + i64::from(s), 0).unwrap()
    }

    #[test]
    fn quoting_survives_every_byte_a_shell_reads() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /) `x` \"y\""), "'$(rm -rf /) `x` \"y\"'");
    }

    #[test]
    fn the_least_busy_usable_host_is_picked() {
        let hosts = [host("a", Some(1)), host("b", None), host("c", Some(3))];
        let mut busy = BTreeMap::new();
        let down = BTreeMap::new();
        assert_eq!(
            pick_host(&hosts, &busy, &down, at(0)).unwrap().destination,
            "a"
        );
        busy.insert("a".to_string(), 1);
        assert_eq!(
            pick_host(&hosts, &busy, &down, at(0)).unwrap().destination,
            "b"
        );
        busy.insert("b".to_string(), 2);
        busy.insert("c".to_string(), 1);
        assert_eq!(
            pick_host(&hosts, &busy, &down, at(0)).unwrap().destination,
            "c"
        );
    }

    #[test]
    fn a_down_host_is_left_out_until_it_comes_back() {
        let hosts = [host("a", None), host("b", None)];
        let mut busy = BTreeMap::new();
        busy.insert("b".to_string(), 5);
        let mut down = BTreeMap::new();
        down.insert("a".to_string(), at(60));
        assert_eq!(
            pick_host(&hosts, &busy, &down, at(10)).unwrap().destination,
            "b"
        );
        assert_eq!(
            pick_host(&hosts, &busy, &down, at(60)).unwrap().destination,
            "a"
        );
        assert_eq!(next_return(&down, at(10)), Some(at(60)));
        assert_eq!(next_return(&down, at(60)), None);
    }

    #[test]
    fn room_counts_free_slots_and_none_means_unbounded() {
        let hosts = [host("a", Some(2)), host("b", Some(1))];
        let mut busy = BTreeMap::new();
        busy.insert("a".to_string(), 1);
        let mut down = BTreeMap::new();
        assert_eq!(room(&hosts, &busy, &down, at(0)), Some(2));
        down.insert("b".to_string(), at(5));
        assert_eq!(room(&hosts, &busy, &down, at(0)), Some(1));
        down.insert("a".to_string(), at(5));
        assert_eq!(room(&hosts, &busy, &down, at(0)), Some(0));
        let open = [host("a", Some(1)), host("b", None)];
        assert_eq!(room(&open, &busy, &BTreeMap::new(), at(0)), None);
    }

    #[test]
    fn outcomes_read_exit_codes_and_shell_signal_codes() {
        let name = |n: i32| {
            if n == 15 {
                "SIGTERM".to_string()
            } else {
                n.to_string()
            }
        };
        let o = outcome("exit 0\n", None, name).unwrap();
        assert_eq!(o.process, ProcessEnd::Exited(0));
        let o = outcome("exit 3", Some("timeout\n"), name).unwrap();
        assert_eq!(o.process, ProcessEnd::Exited(3));
        assert_eq!(o.stopped_there.as_deref(), Some("timeout"));
        let o = outcome("exit 143", None, name).unwrap();
        assert_eq!(
            o.process,
            ProcessEnd::Signaled {
                number: 15,
                name: "SIGTERM".into()
            }
        );
        assert_eq!(outcome("garbage", None, name), None);
        assert_eq!(outcome("", None, name), None);
    }

    #[test]
    fn squeue_states_are_read() {
        assert_eq!(job_state("PENDING (null)"), Some((JobState::Waiting, None)));
        assert_eq!(
            job_state("RUNNING node1"),
            Some((JobState::Running, Some("node1".into())))
        );
        assert_eq!(
            job_state("NODE_FAIL node1"),
            Some((JobState::Over("node_fail".into()), Some("node1".into())))
        );
        assert_eq!(job_state(""), None);
        assert_eq!(job_state("weird-state x"), None);
    }

    #[test]
    fn slurm_time_is_a_late_backstop_in_whole_minutes() {
        assert_eq!(slurm_time_limit(None, Duration::from_secs(5)), None);
        // 5 s + 5 s grace + 5 s margin -> 1 minute, plus one to spare.
        assert_eq!(
            slurm_time_limit(Some(Duration::from_secs(5)), Duration::from_secs(5)),
            Some("2".into())
        );
        assert_eq!(
            slurm_time_limit(Some(Duration::from_secs(3600)), Duration::from_secs(10)),
            Some("62".into())
        );
    }

    #[test]
    fn the_env_file_exports_quoted_values_and_the_command_line() {
        let env = vec![("TASKBOARD_TASK_TITLE".to_string(), "it's $HOME".to_string())];
        let argv = vec!["/bin/echo".to_string(), "a b".to_string()];
        let text = env_file(
            &env,
            Some("/w"),
            &argv,
            Some(Duration::from_secs(10)),
            Duration::from_secs(2),
        );
        assert!(text.contains(r"export TASKBOARD_TASK_TITLE='it'\''s $HOME'"));
        assert!(text.contains("TB_TIMEOUT=15\n"));
        assert!(text.contains("set -- '/bin/echo' 'a b'\n"));
        assert!(exportable("TASKBOARD_X"));
        assert!(!exportable("1X"));
        assert!(!exportable("A-B"));
    }

    #[test]
    fn placements_describe_themselves() {
        let p = Placement {
            runner: RunnerKind::Slurm,
            host: None,
            job_id: Some("17".into()),
            node: Some("n1".into()),
            pgid: None,
            dir: "/s/x".into(),
        };
        assert_eq!(p.describe(), "slurm job 17 on n1");
        let p = Placement {
            runner: RunnerKind::Ssh,
            host: Some("gpu1".into()),
            job_id: None,
            node: None,
            pgid: Some(42),
            dir: "x".into(),
        };
        assert_eq!(p.describe(), "ssh gpu1 (pgid 42)");
    }
}
