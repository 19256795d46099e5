//! Every process of one executor run, including those that left its process group.
//!
//! A process can leave the executor's group (`setsid`, a shell with job control, a double-forked
//! daemon) and would then survive the group's SIGTERM and SIGKILL, working on while the task runs
//! again. This module owns finding and stopping such processes:
//!
//! - the run id: [`RUN_ID_VAR`] holds a token unique to one attempt, inherited by everything the
//!   executor starts, so its processes are found in `/proc/<pid>/environ` after `setsid` and after
//!   their parents died;
//! - a run's processes: those carrying its id, those in its process group, and every descendant
//!   (by parent pid) of one of them, so a child that cleared its environment is found while its
//!   ancestors live; once seen, a process stays the run's ([`Tracker`]) after that link is gone;
//! - stopping them: SIGTERM, the grace period, SIGKILL, until none is left. Each signal goes
//!   through a pidfd opened on the pid and checked against the start time it was found with, so
//!   a pid recycled meanwhile is never hit;
//! - making the runtime a child subreaper, so the orphans of a run are handed to it rather than
//!   to init, and reaping those orphans.
//!
//! Reaping is by pid only (`waitpid(pid, WNOHANG)`, never `waitpid(-1)`), and only of zombies that
//! are provably not a `std::process::Child` of this process: never an executor spawned through
//! [`spawn_tracked`] until its `Child` has been waited for ([`untrack`]), and otherwise only a
//! zombie child that was handed to us as an orphan. Every process the runtime spawns itself
//! (executors, git) stays in the runtime's session, in its group or its own, so a zombie child in
//! another session or in a process group that is neither ours nor its own is such an orphan; so
//! is one seen alive earlier as a run's process.
//!
//! Must not touch: boards, events, locks, or any process that is not a run's.
//!
//! Limits. Only Linux has `/proc` and subreapers: elsewhere nothing is found here, and a run is
//! stopped through its process group only. A process that both cleared its environment and lost
//! every ancestor in the run, or that runs as another user (its environment is unreadable), is
//! not found. No cgroup is used: a delegated cgroup v2 would contain even those, but a runtime
//! started by hand or by launchd has none, so the `/proc` search is needed anyway.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable that tags every process of one run.
pub const RUN_ID_VAR: &str = "TASKBOARD_RUN_ID";

/// How long SIGKILLed processes may take to be gone before [`Tracker::stop_run`] gives up.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub sid: u32,
    /// Field 3 of `/proc/<pid>/stat`: `Z` (or `X`) once it has exited.
    pub state: char,
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

/// This process as the reaping rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Me {
    pub pid: u32,
    pub pgrp: u32,
    pub sid: u32,
}

impl Me {
    pub fn current() -> Me {
        // SAFETY: plain syscalls without arguments that can fail for the calling process.
        let (pid, pgrp, sid) = unsafe { (libc::getpid(), libc::getpgrp(), libc::getsid(0)) };
        Me {
            pid: u32::try_from(pid).unwrap_or(0),
            pgrp: u32::try_from(pgrp).unwrap_or(0),
            sid: u32::try_from(sid).unwrap_or(0),
        }
    }
}

/// Which run to look for: its id (found in environments) and its process group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub run_id: Option<&'a str>,
    pub pgid: Option<u32>,
}

/// Executors spawned and not yet waited for: never reaped here, whatever they look like.
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn children() -> MutexGuard<'static, BTreeSet<u32>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns a child (`spawn` returns it and its pid) and records it as one this module must never
/// reap, in one step under the registry's lock, so no sweep can see it unrecorded.
pub fn spawn_tracked<T>(spawn: impl FnOnce() -> io::Result<(T, u32)>) -> io::Result<T> {
    let mut tracked = children();
    let (child, pid) = spawn()?;
    tracked.insert(pid);
    Ok(child)
}

/// Forgets a child recorded by [`spawn_tracked`], once its `Child` has been waited for.
pub fn untrack(pid: u32) {
    children().remove(&pid);
}

/// A fresh run id: this process, the clock and a counter, so no two runs share one.
pub fn new_run_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}-{nanos:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes this process a child subreaper (Linux): orphans of its descendants are handed to it
/// instead of init, so they keep their place under the runtime until it stops them. Returns
/// whether that took effect.
#[cfg(target_os = "linux")]
pub fn become_subreaper() -> bool {
    let on: libc::c_ulong = 1;
    // SAFETY: plain prctl on the calling process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) == 0 }
}

#[cfg(not(target_os = "linux"))]
pub fn become_subreaper() -> bool {
    false
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses, so fields are counted from after the last `)`.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (start time) is fields[19].
    Some(Proc {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        tagged: false,
    })
}

/// Whether a `/proc/<pid>/environ` (NUL-separated `NAME=value` entries) sets `name` to `value`.
pub fn environ_has(environ: &[u8], name: &str, value: &str) -> bool {
    let wanted = format!("{name}={value}");
    environ
        .split(|b| *b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// The pids of a run among `procs`: those tagged with its id, in its process group or `seen`
/// earlier as its own (pid and start time), and every descendant of one of them. Never `me` nor
/// pid 1 (nor anything found only through them).
pub fn members(
    procs: &[Proc],
    pgid: Option<u32>,
    me: u32,
    seen: &HashSet<(u32, u64)>,
) -> BTreeSet<u32> {
    let excluded = |p: &Proc| p.pid == me || p.pid <= 1;
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procs.iter().filter(|p| !excluded(p)) {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let root =
        |p: &Proc| p.tagged || (pgid.is_some() && Some(p.pgrp) == pgid) || seen.contains(&p.key());
    let mut found = BTreeSet::new();
    let mut todo: Vec<u32> = procs
        .iter()
        .filter(|p| !excluded(p) && root(p))
        .map(|p| p.pid)
        .collect();
    while let Some(pid) = todo.pop() {
        if found.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    found
}

/// The zombies among `procs` this process may reap: its own children (never `leader`, which
/// its `Child` reaps) that were handed to it as orphans: in another session, or in a process
/// group that is neither ours nor their own, or seen alive earlier as a run's process (`seen`).
pub fn reapable(
    procs: &[Proc],
    me: Me,
    leader: Option<u32>,
    seen: &HashSet<(u32, u64)>,
) -> Vec<u32> {
    procs
        .iter()
        .filter(|p| p.exited() && p.ppid == me.pid && Some(p.pid) != leader)
        .filter(|p| {
            p.sid != me.sid || (p.pgrp != me.pgrp && p.pgrp != p.pid) || seen.contains(&p.key())
        })
        .map(|p| p.pid)
        .collect()
}

/// Every process in `/proc`, with `tagged` set for those whose environment carries `run_id`.
/// Empty where there is no `/proc`.
pub fn scan(run_id: Option<&str>) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some(mut p) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        else {
            continue;
        };
        if let Some(id) = run_id
            && !p.exited()
        {
            p.tagged = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| environ_has(&env, RUN_ID_VAR, id));
        }
        out.push(p);
    }
    out
}

/// The live processes of a run right now.
pub fn find(target: Target<'_>) -> Vec<Proc> {
    let procs = scan(target.run_id);
    let set = members(&procs, target.pgid, Me::current().pid, &HashSet::new());
    procs
        .into_iter()
        .filter(|p| set.contains(&p.pid) && !p.exited())
        .collect()
}

/// What is known of one run's processes from one sweep to the next.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Seen alive as the run's, by pid and start time: still the run's once the parent that
    /// linked them to it is gone (a child that cleared its environment, say).
    seen: HashSet<(u32, u64)>,
    /// Already sent SIGTERM.
    termed: HashSet<(u32, u64)>,
    /// Seen alive outside the run's process group.
    pub outside: BTreeSet<u32>,
}

impl Tracker {
    /// Scans `/proc`, reaps the run's orphans handed to us (never `leader`), and returns the
    /// run's live processes, remembering them.
    fn sweep(&mut self, target: Target<'_>, me: Me, leader: Option<u32>) -> Vec<Proc> {
        let procs = scan(target.run_id);
        let set = members(&procs, target.pgid, me.pid, &self.seen);
        let live: Vec<Proc> = procs
            .iter()
            .filter(|p| set.contains(&p.pid) && !p.exited())
            .cloned()
            .collect();
        for p in &live {
            self.seen.insert(p.key());
            if !in_group(p, target) {
                self.outside.insert(p.pid);
            }
        }
        reap(&reapable(&procs, me, leader, &self.seen));
        live
    }

    /// Sends `sig` to each live process of the run outside its process group (the group is the
    /// caller's to signal). SIGTERM goes once to each and is followed by SIGCONT, so a stopped
    /// process gets to handle it.
    pub fn signal_outside_group(&mut self, target: Target<'_>, sig: libc::c_int) {
        for p in self.sweep(target, Me::current(), target.pgid) {
            if !in_group(&p, target) {
                self.signal(&p, sig);
            }
        }
    }

    /// Stops every process of the run and waits until none is left: SIGTERM to each one not
    /// signalled yet (members of the process group only if `group_termed` is false), SIGKILL to
    /// whatever lives from `kill_at`; gives up [`KILL_WAIT`] later and returns the pids still
    /// alive then. `leader` is never reaped here.
    pub fn stop_run(
        &mut self,
        target: Target<'_>,
        leader: Option<u32>,
        group_termed: bool,
        kill_at: Instant,
    ) -> Vec<u32> {
        let me = Me::current();
        let give_up = kill_at + KILL_WAIT;
        let mut nap = Duration::from_millis(1);
        loop {
            let live = self.sweep(target, me, leader);
            let now = Instant::now();
            if live.is_empty() || now >= give_up {
                return live.iter().map(|p| p.pid).collect();
            }
            for p in &live {
                if now >= kill_at {
                    send(p, libc::SIGKILL);
                } else if !(group_termed && in_group(p, target)) {
                    self.signal(p, libc::SIGTERM);
                }
            }
            let next = if now < kill_at { kill_at } else { give_up };
            thread::sleep(nap.min(next.saturating_duration_since(now)));
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    fn signal(&mut self, p: &Proc, sig: libc::c_int) {
        if sig != libc::SIGTERM {
            send(p, sig);
        } else if self.termed.insert(p.key()) && send(p, sig) {
            send(p, libc::SIGCONT);
        }
    }
}

fn in_group(p: &Proc, target: Target<'_>) -> bool {
    target.pgid.is_some() && Some(p.pgrp) == target.pgid
}

/// Collects the exit status of each of these zombie children of ours, by pid, but of none
/// spawned through [`spawn_tracked`] and still waited for by its `Child`.
fn reap(pids: &[u32]) {
    let tracked = children();
    for &pid in pids.iter().filter(|pid| !tracked.contains(pid)) {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            continue;
        };
        let mut status = 0;
        // SAFETY: waits only on this pid, without blocking.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

/// The start time `/proc` shows for `pid` now.
fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat(&text)?.start)
}

/// Signals `p` if it is still the process that was found (same pid and start time). Returns
/// whether the signal was sent.
#[cfg(target_os = "linux")]
fn send(p: &Proc, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(p.pid) else {
        return false;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        if io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return false;
        }
        // A kernel before 5.3: check, then signal by pid (a narrow window remains).
        // SAFETY: plain kill(2).
        return start_time(p.pid) == Some(p.start) && unsafe { libc::kill(pid, sig) } == 0;
    }
    let Ok(fd) = libc::c_int::try_from(fd) else {
        return false;
    };
    // The descriptor pins the process: if the start time matches now, it is the one we found.
    let sent = start_time(p.pid) == Some(p.start)
        // SAFETY: pidfd_send_signal on a descriptor we own, no siginfo.
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    sent
}

#[cfg(not(target_os = "linux"))]
fn send(p: &Proc, sig: libc::c_int) -> bool {
    // Without /proc nothing is ever found, so nothing reaches here; keep the check anyway.
    let Ok(pid) = libc::pid_t::try_from(p.pid) else {
        return false;
    };
    // SAFETY: plain kill(2).
    start_time(p.pid) == Some(p.start) && unsafe { libc::kill(pid, sig) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, pgrp: u32, sid: u32) -> Proc {
        Proc {
            pid,
            ppid,
            pgrp,
            sid,
            state: 'S',
            start: u64::from(pid) * 10,
            tagged: false,
        }
    }

    fn stat_line(pid: u32, comm: &str, state: char, ppid: u32, pgrp: u32, sid: u32) -> String {
        // Fields 7..=21 are filler; field 22 is the start time.
        let filler: Vec<String> = (7..=21).map(|n| n.to_string()).collect();
        format!(
            "{pid} ({comm}) {state} {ppid} {pgrp} {sid} {} 4242 23 24\n",
            filler.join(" ")
        )
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_paren() {
        let p = parse_stat(&stat_line(77, "a) b (c", 'S', 5, 6, 7)).unwrap();
        assert_eq!(
            (p.pid, p.state, p.ppid, p.pgrp, p.sid, p.start),
            (77, 'S', 5, 6, 7, 4242)
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
    fn environ_matches_whole_entries_only() {
        let env = b"HOME=/root\0TASKBOARD_RUN_ID=abc\0X=TASKBOARD_RUN_ID=zzz\0";
        assert!(environ_has(env, RUN_ID_VAR, "abc"));
        assert!(!environ_has(env, RUN_ID_VAR, "ab"));
        assert!(!environ_has(env, RUN_ID_VAR, "zzz"));
        assert!(!environ_has(b"", RUN_ID_VAR, ""));
        assert!(environ_has(b"TASKBOARD_RUN_ID=abc", RUN_ID_VAR, "abc"));
    }

    #[test]
    fn members_are_the_tagged_the_group_and_their_descendants() {
        let me = 100;
        let mut procs = vec![
            proc(1, 0, 1, 1),
            proc(me, 1, me, me),
            // The executor leader (group 200) and a child in its group.
            proc(200, me, 200, me),
            proc(201, 200, 200, me),
            // Left the group with setsid, kept the tag.
            proc(300, 1, 300, 300),
            // Its child cleared its environment: found through its parent.
            proc(301, 300, 300, 300),
            // An untagged stranger, and a stranger's child.
            proc(400, 1, 400, 400),
            proc(401, 400, 400, 400),
        ];
        procs[4].tagged = true;
        let none = HashSet::new();
        assert_eq!(
            members(&procs, Some(200), me, &none),
            BTreeSet::from([200, 201, 300, 301])
        );
        assert_eq!(members(&procs, None, me, &none), BTreeSet::from([300, 301]));
        // A process seen earlier stays the run's (with its children) once its parent is gone,
        // but not a process that took its pid since (another start time).
        procs.push(proc(500, 1, 500, 500));
        procs.push(proc(501, 500, 500, 500));
        let seen = HashSet::from([(500, 5000), (400, 1)]);
        assert_eq!(
            members(&procs, None, me, &seen),
            BTreeSet::from([300, 301, 500, 501])
        );
        // Never this process nor init, even when tagged or in the group.
        procs[0].tagged = true;
        procs[1].tagged = true;
        assert_eq!(
            members(&procs, Some(me), me, &none),
            BTreeSet::from([300, 301])
        );
    }

    #[test]
    fn only_orphans_handed_to_us_are_reaped() {
        let me = Me {
            pid: 100,
            pgrp: 100,
            sid: 100,
        };
        let zombie = |pid, ppid, pgrp, sid| Proc {
            state: 'Z',
            ..proc(pid, ppid, pgrp, sid)
        };
        let procs = vec![
            // A setsid daemon handed to us.
            zombie(300, 100, 300, 300),
            // A group member whose leader died.
            zombie(201, 100, 200, 100),
            // A git child of ours: our session and group.
            zombie(500, 100, 100, 100),
            // An executor leader (own group, our session): its Child reaps it.
            zombie(600, 100, 600, 100),
            // A job-control child handed to us, seen alive earlier.
            zombie(700, 100, 700, 100),
            // Someone else's zombie.
            zombie(800, 42, 800, 800),
            // A live child in another session.
            proc(900, 100, 900, 900),
        ];
        let seen = HashSet::from([(700, 7000), (600, 1)]);
        assert_eq!(reapable(&procs, me, Some(300), &seen), vec![201, 700]);
        assert_eq!(reapable(&procs, me, None, &seen), vec![300, 201, 700]);
    }

    #[test]
    fn a_tracked_child_is_never_reaped_here() {
        let mut child = spawn_tracked(|| {
            let child = std::process::Command::new("true").spawn()?;
            let pid = child.id();
            Ok((child, pid))
        })
        .unwrap();
        let pid = child.id();
        let zombie = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| parse_stat(&t))
                .is_some_and(|p| p.exited())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zombie() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        reap(&[pid]);
        // Still there for its Child to collect, with its real status.
        assert!(child.wait().unwrap().success());
        untrack(pid);
        assert!(!children().contains(&pid));
    }

    #[test]
    fn run_ids_differ() {
        let ids: HashSet<String> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn a_scan_finds_this_process_with_its_own_fields() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let me = Me::current();
        let procs = scan(None);
        let found = procs
            .iter()
            .find(|p| p.pid == me.pid)
            .expect("self in /proc");
        assert_eq!((found.pgrp, found.sid), (me.pgrp, me.sid));
        assert!(!found.tagged);
    }
}
