//! Starting a child that can be stopped whole, and waiting for its end.
//!
//! Owns: the run id put in every executor's environment ([`RUN_ID_VAR`]), the registry of
//! children a `std::process::Child` still waits for (never reaped by [`super::run`]), tying a
//! child to the thread that spawned it (Linux parent-death signal), making this process a child
//! subreaper, and waiting for a leader to exit without reaping it, so its pid and group id stay
//! ours while anything may still signal them.
//!
//! Must not touch: boards, events, locks; it signals nothing.

use std::collections::BTreeSet;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

/// The environment variable that tags every process of one run.
pub const RUN_ID_VAR: &str = "TASKBOARD_RUN_ID";

/// Executors spawned and not yet waited for: never reaped here, whatever they look like.
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

pub(super) fn children() -> MutexGuard<'static, BTreeSet<u32>> {
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
    // Any pid turns the flag on (prctl takes a boolean there); ours is at hand.
    let done = rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_ok();
    if done {
        SUBREAPER.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    done
}

/// Set once this process is a child subreaper: from then on every process its runs start stays
/// among its descendants, handed to it when its parent dies.
static SUBREAPER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`become_subreaper`] took effect in this process.
pub fn is_subreaper() -> bool {
    SUBREAPER.load(std::sync::atomic::Ordering::SeqCst)
}

#[cfg(not(target_os = "linux"))]
pub fn become_subreaper() -> bool {
    false
}

/// Makes the child `cmd` starts die with the thread that spawns it (Linux only; elsewhere a
/// restarted runtime has to find orphans itself).
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    use std::os::unix::process::CommandExt;
    let parent = getpid();
    // SAFETY: the closure runs between fork and exec and makes only raw system calls (prctl,
    // getppid) through rustix; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before prctl took effect: then nobody would kill us.
            // Failing here ends the child before it runs anything (std exits it with status 1).
            if getppid() != Some(parent) {
                return Err(Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

/// Blocks until the process `pid` (our child) has ended, leaving it unreaped.
pub fn wait_exit_unreaped(pid: u32) {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let Some(child) = super::pid(pid) else {
        return;
    };
    loop {
        match waitid(
            WaitId::Pid(child),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(Errno::INTR) => continue,
            // ECHILD: already reaped by someone else (SIGCHLD ignored); nothing to wait for.
            _ => return,
        }
    }
}

/// A descriptor that becomes readable once the process `pid` (our child) has ended, leaving it
/// unreaped: a pidfd, so the end can be waited for in one `poll` with other descriptors.
/// `None` where the kernel has none (before Linux 5.3, other systems): then
/// [`wait_exit_unreaped`] waits for it.
#[cfg(target_os = "linux")]
pub fn exit_notice(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use rustix::process::{PidfdFlags, pidfd_open};
    pidfd_open(super::pid(pid)?, PidfdFlags::empty()).ok()
}

#[cfg(not(target_os = "linux"))]
pub fn exit_notice(_pid: u32) -> Option<std::os::fd::OwnedFd> {
    None
}
