//! Every process of one executor run, including those that left its process group.
//!
//! A process can leave the executor's group (`setsid`, a shell with job control, a double-forked
//! daemon) and would then survive the group's SIGTERM and SIGKILL, working on while the task runs
//! again. This module owns finding and stopping such processes:
//!
//! - a run's processes: those carrying its run id ([`super::RUN_ID_VAR`], found in
//!   `/proc/<pid>/environ` after `setsid` and after their parents died), those in its process
//!   group, and every descendant (by parent pid) of one of them, so a child that cleared its
//!   environment is found while its ancestors live; once seen, a process stays the run's
//!   ([`Tracker`]) after that link is gone;
//! - stopping them: SIGTERM, the grace period, SIGKILL, until none is left. Each signal goes
//!   through a pidfd opened on the pid and checked against the start time it was found with, so
//!   a pid recycled meanwhile is never hit;
//! - reaping the orphans of a run handed to the runtime as a subreaper
//!   ([`super::become_subreaper`]);
//! - where to look: once the runtime is the subreaper, a run it supervises cannot leave its
//!   descendants, so only those are read ([`scan_descendants`], through the kernel's children
//!   lists); a dead runtime's run is looked for in the whole of `/proc` ([`scan`]).
//!
//! Reaping is by pid only (`waitpid(pid, WNOHANG)`, never `waitpid(-1)`), and only of zombies that
//! are provably not a `std::process::Child` of this process: never an executor spawned through
//! [`super::spawn_tracked`] until its `Child` has been waited for ([`super::untrack`]), and
//! otherwise only a zombie child that was handed to us as an orphan. Every process the runtime
//! spawns itself (executors, git) stays in the runtime's session, in its group or its own, so a
//! zombie child in another session or in a process group that is neither ours nor its own is such
//! an orphan; so is one seen alive earlier as a run's process.
//!
//! Must not touch: boards, events, locks, or any process that is not a run's.
//!
//! Limits. Only Linux has `/proc` and subreapers: elsewhere nothing is found here, and a run is
//! stopped through its process group only. A process that both cleared its environment and lost
//! every ancestor in the run, or that runs as another user (its environment is unreadable), is
//! not found. No cgroup is used: a delegated cgroup v2 would contain even those, but a runtime
//! started by hand or by launchd has none, so the `/proc` search is needed anyway.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rustix::process::{Signal, WaitOptions};

use super::{Proc, RUN_ID_VAR, group_alive, poll_until, signal_group, start_time};

/// How long SIGKILLed processes may take to be gone before [`Tracker::stop_run`] gives up.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// This process as the reaping rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Me {
    pub pid: u32,
    pub pgrp: u32,
    pub sid: u32,
}

impl Me {
    /// Read from `/proc/self/stat`, the same source the sweep compares against. A process whose
    /// group or session leader lives outside its PID namespace (a container started without a
    /// session of its own) sees 0 there, and so does the sweep; the system calls cannot report
    /// such an id at all. Without `/proc` there is nothing to sweep and every field but the pid
    /// is 0.
    ///
    /// Read once per process: the runtime never changes its own group or session (only its
    /// executors do, in their own processes), and `/proc/self/stat` of a process with many
    /// threads is a slow read that every run's end would otherwise pay.
    pub fn current() -> Me {
        static ME: std::sync::Mutex<Option<Me>> = std::sync::Mutex::new(None);
        let pid = u32::try_from(rustix::process::getpid().as_raw_nonzero().get()).unwrap_or(0);
        let mut cached = ME.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            // A child forked without exec has another pid, and reads its own.
            Some(me) if me.pid == pid => me,
            _ => {
                let me = Me::read(pid);
                *cached = Some(me);
                me
            }
        }
    }

    fn read(pid: u32) -> Me {
        let own = super::read_text("/proc/self/stat").and_then(|text| super::parse_stat(&text));
        match own {
            Some(p) => Me {
                pid,
                pgrp: p.pgrp,
                sid: p.sid,
            },
            None => Me {
                pid,
                pgrp: 0,
                sid: 0,
            },
        }
    }
}

/// Which run to look for: its id (found in environments) and its process group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub run_id: Option<&'a str>,
    pub pgid: Option<u32>,
    /// When the run's first process started (clock ticks since boot, as `/proc` says), when
    /// known: a process started before it cannot carry the run's id, so its environment is not
    /// read. Most of a machine's processes are older than any run; this keeps a sweep to one
    /// small read per process.
    pub since: Option<u64>,
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

/// Every process in `/proc`, with `tagged` set for those whose environment carries `run_id`
/// (only those started at or after `since` are asked). Empty where there is no `/proc`.
pub fn scan(run_id: Option<&str>, since: Option<u64>) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_proc(pid, run_id, since))
        .collect()
}

/// What a search below this process knows of the run's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLeader {
    /// Not known: every thread's children are read.
    Unknown,
    /// This pid, alive or not yet known to have ended.
    Pid(u32),
    /// Known to have ended (a zombie, or reaped): its children went to this process.
    Ended,
}

/// Like [`scan`], over this process's descendants only: enough for its own runs once it is
/// their subreaper (every process a run starts stays below it), and a handful of reads instead
/// of one per process on the machine. With the run's `leader` known, only what can hold its
/// processes is read: the leader and what is below it, and what is below this process's main
/// thread, which receives every orphan (the kernel hands an orphan to the subreaper's first
/// live thread); other runs' leaders hang below the threads that started them and are left
/// out. A leader that ended is not read: its children were handed to the main thread as it
/// ended, and its pid may name another process once reaped. `None` where the kernel does not
/// list children (`/proc/<pid>/task/<tid>/children` needs `CONFIG_PROC_CHILDREN`).
pub fn scan_descendants(
    run_id: Option<&str>,
    since: Option<u64>,
    leader: RunLeader,
) -> Option<Vec<Proc>> {
    let root = std::process::id();
    let first = match leader {
        RunLeader::Pid(leader) => {
            let mut first = thread_children(root, root)?;
            first.push(leader);
            first
        }
        RunLeader::Ended => thread_children(root, root)?,
        RunLeader::Unknown => children(root, None)?,
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut todo: Vec<u32> = first.into_iter().filter(|&pid| seen.insert(pid)).collect();
    while let Some(pid) = todo.pop() {
        // A process that ended meanwhile has no stat and lists nothing.
        let proc = read_proc(pid, run_id, since);
        let threads = proc.as_ref().map(|p| p.threads);
        for child in children(pid, threads).unwrap_or_default() {
            if seen.insert(child) {
                todo.push(child);
            }
        }
        out.extend(proc);
    }
    Some(out)
}

/// The children of every thread of `pid`; `None` when no thread's list could be read. With
/// one thread (as its stat said a moment ago) only that thread's list is read, without listing
/// the threads: a thread started since, and its children, are found by the sweep that follows,
/// which there is while any process of the run lives.
fn children(pid: u32, threads: Option<u32>) -> Option<Vec<u32>> {
    if threads == Some(1) {
        return thread_children(pid, pid);
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut listed = false;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if let Some(mut of_thread) = thread_children(pid, tid) {
            listed = true;
            out.append(&mut of_thread);
        }
    }
    listed.then_some(out)
}

/// The children of thread `tid` of `pid`, as its `children` list names them.
fn thread_children(pid: u32, tid: u32) -> Option<Vec<u32>> {
    let text = super::read_text(format!("/proc/{pid}/task/{tid}/children"))?;
    Some(
        text.split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .collect(),
    )
}

/// One process's `stat`, and whether its environment carries `run_id` (asked only of live
/// processes started at or after `since`).
fn read_proc(pid: u32, run_id: Option<&str>, since: Option<u64>) -> Option<Proc> {
    let mut p = super::stat(pid)?;
    if let Some(id) = run_id
        && !p.exited()
        && since.is_none_or(|t| p.start >= t)
    {
        p.tagged = std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| environ_has(&env, RUN_ID_VAR, id));
    }
    Some(p)
}

/// The live processes of a run right now.
pub fn find(target: Target<'_>) -> Vec<Proc> {
    let procs = scan(target.run_id, target.since);
    let set = members(&procs, target.pgid, Me::current().pid, &HashSet::new());
    procs
        .into_iter()
        .filter(|p| set.contains(&p.pid) && !p.exited())
        .collect()
}

/// Stops a run nobody supervises any more (its runtime died): SIGTERM to its process group and
/// to every process of it, SIGKILL after `grace` to whatever still lives, and waits until they
/// are gone (where `/proc` exists; elsewhere the group is signalled and waited for only).
pub fn stop_orphaned_run(target: Target<'_>, grace: Duration) {
    if let Some(pgid) = target.pgid {
        signal_group(pgid, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    Tracker::default().stop_run(target, None, true, deadline);
    if let Some(pgid) = target.pgid
        && !poll_until(deadline, || !group_alive(pgid))
    {
        signal_group(pgid, Signal::KILL);
    }
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
    /// The run is this process's own and this process is its subreaper: its processes are
    /// looked for among this process's descendants, not the whole machine's.
    own_run: bool,
    /// The run's leader has ended: searches no longer read it.
    leader_ended: bool,
}

impl Tracker {
    /// A tracker for a run this process started: while it is the subreaper, only its own
    /// descendants are searched.
    pub fn of_own_run() -> Tracker {
        Tracker {
            own_run: super::spawn::is_subreaper(),
            ..Tracker::default()
        }
    }

    /// Says that the run's leader (the leader of its process group) has ended.
    pub fn leader_ended(&mut self) {
        self.leader_ended = true;
    }

    /// Scans `/proc`, reaps the run's orphans handed to us (never `leader`), and returns the
    /// run's live processes, remembering them.
    fn sweep(&mut self, target: Target<'_>, me: Me, leader: Option<u32>) -> Vec<Proc> {
        let procs = if self.own_run {
            let below = match (self.leader_ended, target.pgid) {
                (true, _) => RunLeader::Ended,
                (false, Some(pgid)) => RunLeader::Pid(pgid),
                (false, None) => RunLeader::Unknown,
            };
            scan_descendants(target.run_id, target.since, below)
                .unwrap_or_else(|| scan(target.run_id, target.since))
        } else {
            scan(target.run_id, target.since)
        };
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
    /// process gets to handle it. Returns how many processes of the run live (in the group or
    /// not): none means none can appear any more, since only a live one could start one.
    pub fn signal_outside_group(&mut self, target: Target<'_>, sig: Signal) -> usize {
        let live = self.sweep(target, Me::current(), target.pgid);
        for p in &live {
            if !in_group(p, target) {
                self.signal(p, sig);
            }
        }
        live.len()
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
        let mut live = Vec::new();
        let mut step = || {
            live = self.sweep(target, me, leader);
            let now = Instant::now();
            if live.is_empty() {
                return true;
            }
            if now >= give_up {
                return false;
            }
            for p in &live {
                if now >= kill_at {
                    send(p, Signal::KILL);
                } else if !(group_termed && in_group(p, target)) {
                    self.signal(p, Signal::TERM);
                }
            }
            false
        };
        // Naps never run past `kill_at`, so SIGKILL goes out on time.
        let _ = poll_until(kill_at, &mut step) || poll_until(give_up, &mut step);
        live.iter().map(|p| p.pid).collect()
    }

    fn signal(&mut self, p: &Proc, sig: Signal) {
        if sig != Signal::TERM {
            send(p, sig);
        } else if self.termed.insert(p.key()) && send(p, sig) {
            send(p, Signal::CONT);
        }
    }
}

fn in_group(p: &Proc, target: Target<'_>) -> bool {
    target.pgid.is_some() && Some(p.pgrp) == target.pgid
}

/// Collects the exit status of each of these zombie children of ours, by pid, but of none
/// spawned through [`super::spawn_tracked`] and still waited for by its `Child`.
fn reap(pids: &[u32]) {
    let tracked = super::spawn::children();
    for &pid in pids.iter().filter(|pid| !tracked.contains(pid)) {
        if let Some(pid) = super::pid(pid) {
            // Waits only on this pid, without blocking.
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

/// Signals `p` if it is still the process that was found (same pid and start time). Returns
/// whether the signal was sent.
#[cfg(target_os = "linux")]
fn send(p: &Proc, sig: Signal) -> bool {
    use rustix::io::Errno;
    use rustix::process::{PidfdFlags, kill_process, pidfd_open, pidfd_send_signal};
    let Some(pid) = super::pid(p.pid) else {
        return false;
    };
    match pidfd_open(pid, PidfdFlags::empty()) {
        // The descriptor pins the process: if the start time matches now, it is the one we
        // found. It is closed on return.
        Ok(fd) => start_time(p.pid) == Some(p.start) && pidfd_send_signal(&fd, sig).is_ok(),
        // A kernel before 5.3: check, then signal by pid (a narrow window remains).
        Err(Errno::NOSYS) => start_time(p.pid) == Some(p.start) && kill_process(pid, sig).is_ok(),
        Err(_) => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn send(p: &Proc, sig: Signal) -> bool {
    // Without /proc nothing is ever found, so nothing reaches here; keep the check anyway.
    let Some(pid) = super::pid(p.pid) else {
        return false;
    };
    start_time(p.pid) == Some(p.start) && rustix::process::kill_process(pid, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::spawn::{children, new_run_id, spawn_tracked, untrack};
    use super::*;

    fn proc(pid: u32, ppid: u32, pgrp: u32, sid: u32) -> Proc {
        Proc {
            pid,
            ppid,
            pgrp,
            sid,
            state: 'S',
            threads: 1,
            start: u64::from(pid) * 10,
            tagged: false,
        }
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
        let zombie = || crate::shell::process::stat(pid).is_some_and(|p| p.exited());
        // Where there is no /proc it never looks like one; reaping must leave it all the same.
        let _ = poll_until(Instant::now() + Duration::from_secs(10), zombie);
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
        let procs = scan(None, None);
        let found = procs
            .iter()
            .find(|p| p.pid == me.pid)
            .expect("self in /proc");
        assert_eq!((found.pgrp, found.sid), (me.pgrp, me.sid));
        assert!(!found.tagged);
    }

    #[test]
    fn descendants_are_found_through_the_children_lists() {
        if !std::path::Path::new("/proc/self/task").exists() {
            return;
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut found = None;
        while Instant::now() < deadline {
            if let Some(procs) = scan_descendants(None, None, RunLeader::Unknown) {
                let grandchild = procs.iter().find(|p| p.ppid == pid).map(|p| p.pid);
                if procs.iter().any(|p| p.pid == pid) && grandchild.is_some() {
                    found = Some(procs);
                    break;
                }
            } else {
                // No children lists on this kernel: the full scan is used instead.
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = signal_group_of(&mut child);
        let Some(procs) = found else {
            assert!(
                pids_below(RunLeader::Unknown).is_none(),
                "not found in time"
            );
            return;
        };
        // Only descendants: never this process, nor anything that is not below it.
        assert!(procs.iter().all(|p| p.pid != std::process::id()));
        let all = scan(None, None);
        let below: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert!(below.len() < all.len());
    }

    #[test]
    fn with_its_leader_known_a_run_is_looked_for_below_it_and_not_below_other_leaders() {
        if pids_below(RunLeader::Unknown).is_none() {
            return; // no children lists on this kernel
        }
        let mut run = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (leader, other_leader) = (run.id(), other.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut below_leader = None;
        while below_leader.is_none() && Instant::now() < deadline {
            let pids = pids_below(RunLeader::Pid(leader)).unwrap();
            let grandchild = scan(None, None)
                .into_iter()
                .find(|p| p.ppid == leader)
                .map(|p| p.pid);
            if let Some(g) = grandchild.filter(|g| pids.contains(g)) {
                below_leader = Some((pids, g));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let all = pids_below(RunLeader::Unknown).unwrap();
        let _ = signal_group_of(&mut run);
        let _ = other.kill();
        let _ = other.wait();
        let (pids, _) = below_leader.expect("the leader's child was found in time");
        assert!(pids.contains(&leader));
        assert!(
            !pids.contains(&other_leader),
            "another run's leader: {pids:?}"
        );
        assert!(all.contains(&other_leader) && all.contains(&leader));
    }

    #[test]
    fn a_child_started_by_another_thread_is_found_below_its_process() {
        use std::os::unix::process::CommandExt;
        if pids_below(RunLeader::Unknown).is_none() {
            return; // no children lists on this kernel
        }
        // Python's second thread starts the child, then both threads stay: the child is in
        // that thread's children list, not the main thread's.
        let script = "import subprocess, threading, time\n\
            t = threading.Thread(target=lambda: (subprocess.Popen(['sleep', '30']), time.sleep(30)))\n\
            t.start()\n\
            time.sleep(30)\n";
        // The interpreter itself: a wrapper (a version manager's shim) would start children
        // of its own from one thread.
        let Ok(mut run) = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .process_group(0)
            .spawn()
        else {
            return; // no Python here
        };
        let leader = run.id();
        let sleep = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        };
        let found = poll_until(Instant::now() + Duration::from_secs(20), || {
            let below = pids_below(RunLeader::Pid(leader)).unwrap();
            scan(None, None)
                .iter()
                .any(|p| p.ppid == leader && sleep(p.pid) && below.contains(&p.pid))
        });
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(leader as i32).unwrap(),
            Signal::KILL,
        );
        let _ = run.wait();
        assert!(
            found,
            "the second thread's child was not found below {leader}"
        );
    }

    /// The pids [`scan_descendants`] finds below this process (and below `leader` only).
    fn pids_below(leader: RunLeader) -> Option<Vec<u32>> {
        let procs = scan_descendants(None, None, leader)?;
        Some(procs.iter().map(|p| p.pid).collect())
    }

    fn signal_group_of(child: &mut std::process::Child) -> std::io::Result<()> {
        let pid = child.id();
        for p in scan(None, None).iter().filter(|p| p.ppid == pid) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(p.pid as i32).unwrap(),
                Signal::KILL,
            );
        }
        child.kill()?;
        child.wait().map(|_| ())
    }

    #[test]
    fn an_orphaned_run_is_stopped_whole() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut child = spawn_tracked(|| {
            let child = std::process::Command::new("sleep")
                .arg("30")
                .process_group(0)
                .spawn()?;
            let pid = child.id();
            Ok((child, pid))
        })
        .unwrap();
        let pgid = child.id();
        let target = Target {
            run_id: None,
            pgid: Some(pgid),
            since: None,
        };
        let started = Instant::now();
        stop_orphaned_run(target, Duration::from_secs(20));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited out the grace"
        );
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::TERM.as_raw()));
        untrack(pgid);
        assert!(!group_alive(pgid));
    }
}
