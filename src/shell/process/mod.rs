//! Processes: what `/proc` says about one, whether a process or a process group still lives,
//! signalling a group, naming a signal, and waiting with a deadline.
//!
//! Owns every system call the shell makes about processes (through `rustix`), in three parts:
//! - here, the facts about one process (`/proc/<pid>/stat`, read by [`parse_stat`] and nothing
//!   else), the one liveness rule for a pid ([`pid_alive`]) and for a process group
//!   ([`group_alive`]), signalling a group, the names events give signals ([`signal_name`]), and
//!   the one polling helper for waits with a deadline ([`poll_until`]);
//! - [`leader`]: starting an executor as a group leader tied to the thread that starts it,
//!   without copying the runtime (`clone(CLONE_VM | CLONE_VFORK)`), and reaping it;
//! - [`spawn`]: tying another child to its parent, recording the children a caller still waits
//!   for, the run id in the environment, the subreaper, and waiting for a leader's exit without
//!   reaping it;
//! - [`run`]: finding every process of one executor run in `/proc` (those that left its group
//!   too), stopping them by pidfd, and reaping the orphans handed to us.
//!
//! Must not touch: boards, events, locks or output files; it signals only what its callers name
//! (a group they own, or processes a sweep proved to be a run's).
//!
//! The liveness rule. A process or group whose every member is a zombie is gone: a zombie has
//! exited and holds nothing but its exit status; it answers `kill(pid, 0)` until its parent
//! reaps it, which for an orphan handed to init may be late or never. Waiting on it (for a grace
//! period, or before breaking a lock) would wait for nothing it could still do.

pub mod leader;
pub mod run;
pub mod spawn;

use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

pub use leader::{Leader, reap_leader, spawn_leader};
pub use run::{KILL_WAIT, Target, Tracker, find, stop_orphaned_run};
pub use spawn::{RUN_ID_VAR, become_subreaper, new_run_id, spawn_tracked, untrack};

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub sid: u32,
    /// Field 3 of `/proc/<pid>/stat`: `Z` (or `X`) once it has exited.
    pub state: char,
    /// Field 20: how many threads it has (0 or 1 once it has exited).
    pub threads: u32,
    /// Field 22: clock ticks since boot. With the pid, names one process for good.
    pub start: u64,
    /// Its environment carries the run id that was looked for.
    pub tagged: bool,
}

impl Proc {
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    fn key(&self) -> (u32, u64) {
        (self.pid, self.start)
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses, so fields are counted from after the last `)`.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 20 (threads) is fields[17], field 22 (start time)
    // fields[19].
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        threads: fields.get(17)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        tagged: false,
    })
}

/// A `/proc` file's text; `None` when it cannot be read (the process is gone, no `/proc`).
fn read_text(path: impl AsRef<std::path::Path>) -> Option<String> {
    String::from_utf8(crate::shell::fsio::read_small(path.as_ref()).ok()?).ok()
}

/// Process `pid` as `/proc` shows it now; `None` when it is gone or there is no `/proc`.
pub fn stat(pid: u32) -> Option<Proc> {
    let text = read_text(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
}

/// The start time `/proc` shows for `pid` now (clock ticks since boot).
pub fn start_time(pid: u32) -> Option<u64> {
    Some(stat(pid)?.start)
}

/// A start time, in `/proc`'s clock ticks since boot, no later than that of any process started
/// from now on; `None` where there is no `/proc`. Read before a start, it stands in for the
/// started process's own start time as the earliest a process of its run can have, without
/// reading its `stat` (which contends with the exec under way). `/proc` counts a start on the
/// boot-time clock (Linux 4.17 and later) or on the monotonic one (earlier); the monotonic clock
/// never runs ahead of the boot-time one, so the smaller of the two is never later, and both
/// round down to whole ticks alike.
#[cfg(target_os = "linux")]
pub fn start_floor() -> Option<u64> {
    use rustix::time::{ClockId, clock_gettime};
    let nanos = |clock| {
        let t = clock_gettime(clock);
        u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
            + u128::try_from(t.tv_nsec).unwrap_or(0)
    };
    let now = nanos(ClockId::Monotonic).min(nanos(ClockId::Boottime));
    u64::try_from(now * u128::from(rustix::param::clock_ticks_per_second()) / 1_000_000_000).ok()
}

/// Without `/proc` there is no start time to compare with.
#[cfg(not(target_os = "linux"))]
pub fn start_floor() -> Option<u64> {
    None
}

/// `pid` as a process id the kernel accepts: positive and in range (0 and negative numbers
/// would address process groups).
pub fn pid(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// Whether a process `pid` exists on this host, zombie or not: `kill(pid, 0)` does not fail
/// with `ESRCH` (`EPERM` means it exists and is someone else's; anything else cannot tell, so it
/// counts as existing).
pub fn pid_exists(raw: u32) -> bool {
    pid(raw).is_some_and(|p| rustix::process::test_kill_process(p) != Err(Errno::SRCH))
}

/// Whether process `pid` on this host is running: it exists ([`pid_exists`]) and is not a
/// zombie (see the liveness rule above).
pub fn pid_alive(raw: u32) -> bool {
    pid_exists(raw) && stat(raw).is_none_or(|p| !p.exited())
}

/// Whether any process of group `pgid` is still running: `kill(-pgid, 0)` succeeds (or fails
/// with `EPERM`: a member runs as someone else), and not every member is a zombie (see the
/// liveness rule above). Where there is no `/proc`, zombies count as alive.
pub fn group_alive(pgid: u32) -> bool {
    let Some(group) = pid(pgid) else {
        return false;
    };
    match rustix::process::test_kill_process_group(group) {
        Ok(()) => !only_zombies(pgid),
        Err(e) => e == Errno::PERM,
    }
}

/// True when group `pgid` has members in `/proc` and every one of them is a zombie. False
/// when none is found (gone meanwhile, or hidden), and where there is no `/proc`.
fn only_zombies(pgid: u32) -> bool {
    let members: Vec<Proc> = run::scan(None, None)
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .collect();
    !members.is_empty() && members.iter().all(Proc::exited)
}

/// Signals the whole process group `pgid`. Errors (group already gone) are ignored.
pub fn signal_group(pgid: u32, sig: Signal) {
    if let Some(group) = pid(pgid) {
        let _ = rustix::process::kill_process_group(group, sig);
    }
}

/// The name events and logs give signal `number`: `SIGTERM` for the few an executor or the
/// runtime commonly ends by, the number itself for any other.
pub fn signal_name(number: i32) -> String {
    const NAMED: [(Signal, &str); 7] = [
        (Signal::TERM, "SIGTERM"),
        (Signal::INT, "SIGINT"),
        (Signal::HUP, "SIGHUP"),
        (Signal::KILL, "SIGKILL"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::PIPE, "SIGPIPE"),
    ];
    NAMED
        .iter()
        .find(|(signal, _)| signal.as_raw() == number)
        .map_or_else(|| number.to_string(), |(_, name)| (*name).to_string())
}

/// Calls `done` until it holds or `until` passes, with a short, growing nap between calls
/// (1 ms, doubling to 50 ms, never past `until`); `done` is called once more at `until`.
/// Returns whether it held. For waits on processes, which give no event to block on.
pub fn poll_until(until: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut nap = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        thread::sleep(nap.min(until - now));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    pub(super) fn stat_line(
        pid: u32,
        comm: &str,
        state: char,
        ppid: u32,
        pgrp: u32,
        sid: u32,
    ) -> String {
        // Fields 7..=21 are filler; field 22 is the start time.
        let filler: Vec<String> = (7..=21).map(|n| n.to_string()).collect();
        format!(
            "{pid} ({comm}) {state} {ppid} {pgrp} {sid} {} 4242 23 24\n",
            filler.join(" ")
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_start_floor_is_never_after_a_start_that_follows_it() {
        // A floor later than a run's start would leave the run's processes' environments
        // unread, and a process that left the group would escape the sweep.
        for _ in 0..20 {
            let floor = start_floor().expect("Linux has a start floor");
            let mut child = Command::new("true").spawn().unwrap();
            let started = start_time(child.id()).expect("the child is in /proc until reaped");
            child.wait().unwrap();
            assert!(floor <= started, "floor {floor} after the start {started}");
            // The same clock as /proc's, not another: a floor from an unrelated clock
            // (seconds, nanoseconds, the wall clock) is far off.
            let tick = rustix::param::clock_ticks_per_second();
            assert!(
                started - floor <= 60 * tick,
                "floor {floor}, start {started}"
            );
        }
    }

    #[test]
    fn signals_are_named_as_events_always_named_them() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(6), "SIGABRT");
        // Any other signal goes by its number.
        assert_eq!(
            signal_name(Signal::USR1.as_raw()),
            Signal::USR1.as_raw().to_string()
        );
        assert_eq!(signal_name(0), "0");
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_paren() {
        let p = parse_stat(&stat_line(77, "a) b (c", 'S', 5, 6, 7)).unwrap();
        assert_eq!(
            (p.pid, p.state, p.ppid, p.pgrp, p.sid, p.threads, p.start),
            (77, 'S', 5, 6, 7, 20, 4242)
        );
        assert!(!p.exited());
        assert!(
            parse_stat(&stat_line(9, "sleep", 'Z', 1, 9, 9))
                .unwrap()
                .exited()
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("12 (cut) S 1 2"), None);
    }

    #[test]
    fn only_positive_pids_address_a_process() {
        assert_eq!(pid(0), None);
        assert_eq!(pid(u32::MAX), None);
        assert_eq!(pid(1), Some(Pid::INIT));
        assert!(!pid_alive(0));
        assert!(!group_alive(0));
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn a_group_of_zombies_is_gone() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("true").process_group(0).spawn().unwrap();
        let pgid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(poll_until(deadline, || stat(pgid).is_some_and(|p| p.exited())));
        // Unreaped, it still answers kill(0); by the rule it is gone all the same.
        assert!(rustix::process::test_kill_process_group(pid(pgid).unwrap()).is_ok());
        assert!(!group_alive(pgid));
        assert!(!pid_alive(pgid));
        child.wait().unwrap();
        assert!(!group_alive(pgid));
    }

    #[test]
    fn polling_stops_when_done_or_at_the_deadline() {
        let mut calls = 0;
        assert!(poll_until(Instant::now() + Duration::from_secs(10), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        let start = Instant::now();
        let mut late = 0;
        assert!(!poll_until(start + Duration::from_millis(20), || {
            late += 1;
            false
        }));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(late >= 2);
    }
}
