//! Starting an executor as the leader of a process group of its own, tied to the thread that
//! starts it, without copying the runtime.
//!
//! Owns: the one place a local executor's process is created ([`spawn_leader`]) and reaped
//! ([`reap_leader`]). On Linux the child is made with `clone(CLONE_VM | CLONE_VFORK)`, as
//! `posix_spawn` makes it: it borrows the runtime's memory until it calls `execve`, so nothing
//! is copied (a `fork` copies the page tables of every thread's heap and then pays a
//! copy-on-write fault for each page the runtime touches before the child has exec'd, and that
//! was most of what a short run cost the runtime). `posix_spawn` itself cannot be used: it has
//! no way to set the parent-death signal, and every executor must die with its runtime.
//! Elsewhere `std::process::Command` starts it.
//!
//! Must not touch: boards, events, locks, output files; what the child runs before `execve` is
//! raw system calls on memory prepared beforehand: no allocation, no lock, no panic.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::ExitStatus;

/// An executor just started: its pid (also its process group's id) and the parent's ends of
/// its pipes.
#[derive(Debug)]
pub struct Leader {
    pub pid: u32,
    /// The write end of its stdin, when it was asked for; otherwise its stdin is `/dev/null`.
    pub stdin: Option<File>,
    pub stdout: File,
    pub stderr: File,
}

/// Waits for the leader `pid` (a child of this process) to end and reaps it.
pub fn reap_leader(pid: u32) -> io::Result<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    let pid = super::pid(pid).ok_or_else(|| io::Error::other("pid out of range"))?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
            Ok(None) => return Err(io::Error::other("waitpid returned no status")),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Starts `argv` in `cwd` with `env` added to this process's environment, as the leader of a
/// new process group that is killed (SIGKILL) when the calling thread ends; stdout and stderr
/// are pipes, stdin a pipe when `stdin_piped` and `/dev/null` otherwise. `argv[0]` is looked up
/// on `PATH` (the one in `env` when it sets one) as `execvp` looks it up, a file without a `#!`
/// line runs under `/bin/sh`, and the signals this process catches or SIGPIPE are back to
/// their defaults in the child, as `std::process::Command` leaves them. An error is the
/// child's `errno` where it got that far (ENOENT, EACCES, ...); no child is left behind.
pub fn spawn_leader(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    stdin_piped: bool,
) -> io::Result<Leader> {
    if argv.is_empty() {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::INVAL.raw_os_error(),
        ));
    }
    imp::spawn(argv, cwd, env, stdin_piped)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::BTreeMap;
    use std::ffi::{CStr, CString, OsStr, OsString, c_char, c_int, c_void};
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicI32, Ordering};

    use rustix::io::{Errno, fcntl_dupfd_cloexec};
    use rustix::pipe::{PipeFlags, pipe_with};
    use rustix::process::{Signal, set_parent_process_death_signal};

    use super::Leader;

    /// The child's stack until `execve`: what it runs there is a few system calls deep.
    const CHILD_STACK: usize = 64 * 1024;

    /// What `execvp` falls back to for a file the kernel cannot execute (no `#!` line).
    const SHELL: &CStr = c"/bin/sh";

    /// Everything the child needs, prepared by the parent so the child allocates nothing. The
    /// pointers point into the `CString`s and vectors of the `ExecMemory` that outlives the
    /// child's use of them (the parent is suspended until the child has exec'd or exited), and
    /// into the inherited environment, kept for the life of the process.
    struct ChildPlan {
        candidates: Vec<*const c_char>,
        argv: *const *const c_char,
        envp: *const *const c_char,
        /// `/bin/sh`, a slot for the file, then `argv[1..]`: the fallback's arguments.
        shell_argv: *mut *const c_char,
        cwd: *const c_char,
        stdio: [c_int; 3],
        parent: libc::pid_t,
        /// Set by the child to its `errno` when it could not exec.
        error: AtomicI32,
    }

    /// The owners of the memory a [`ChildPlan`] points into.
    struct ExecMemory {
        _strings: Vec<CString>,
        argv: Vec<*const c_char>,
        envp: Vec<*const c_char>,
        shell_argv: Vec<*const c_char>,
        candidates: Vec<*const c_char>,
        cwd: CString,
    }

    fn cstring(bytes: &[u8]) -> io::Result<CString> {
        CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(Errno::INVAL.raw_os_error()))
    }

    /// The files `execvp` would try for `program`, in its order, given the child's `PATH`.
    fn candidates(program: &str, path: Option<&[u8]>) -> Vec<Vec<u8>> {
        if program.contains('/') {
            return vec![program.as_bytes().to_vec()];
        }
        path.unwrap_or(b"/bin:/usr/bin")
            .split(|&b| b == b':')
            .map(|dir| {
                let mut file = if dir.is_empty() {
                    b".".to_vec()
                } else {
                    dir.to_vec()
                };
                file.push(b'/');
                file.extend_from_slice(program.as_bytes());
                file
            })
            .collect()
    }

    /// The runtime's own environment, each variable as the `NAME=value` string `execve` takes,
    /// by name: read once, since nothing in the runtime changes its environment after it starts,
    /// and copying it for every start was a tenth of what a start cost.
    fn inherited() -> &'static BTreeMap<OsString, CString> {
        static INHERITED: OnceLock<BTreeMap<OsString, CString>> = OnceLock::new();
        INHERITED.get_or_init(|| {
            std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.as_bytes().to_vec();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_bytes());
                    Some((k, CString::new(kv).ok()?))
                })
                .collect()
        })
    }

    fn prepare(argv: &[String], cwd: &Path, env: &[(String, String)]) -> io::Result<ExecMemory> {
        // The run's variables over the inherited ones; of a name given twice, the last.
        let ours: BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let inherited = inherited();
        let mut strings = Vec::new();
        let mut keep = |s: CString| {
            let p = s.as_ptr();
            strings.push(s);
            p
        };
        let args: Vec<*const c_char> = argv
            .iter()
            .map(|a| cstring(a.as_bytes()).map(&mut keep))
            .collect::<io::Result<_>>()?;
        let mut envp = Vec::with_capacity(inherited.len() + ours.len() + 1);
        for (k, kv) in inherited {
            if !k.to_str().is_some_and(|k| ours.contains_key(k)) {
                envp.push(kv.as_ptr());
            }
        }
        for (k, v) in &ours {
            envp.push(keep(cstring(format!("{k}={v}").as_bytes())?));
        }
        envp.push(ptr::null());
        let path = match ours.get("PATH") {
            Some(p) => Some(p.as_bytes()),
            None => inherited
                .get(OsStr::new("PATH"))
                .map(|kv| &kv.as_bytes()[5..]),
        };
        let candidates = candidates(&argv[0], path)
            .iter()
            .map(|c| cstring(c).map(&mut keep))
            .collect::<io::Result<Vec<_>>>()?;
        let mut shell_argv = vec![SHELL.as_ptr(), ptr::null()];
        shell_argv.extend_from_slice(&args[1..]);
        shell_argv.push(ptr::null());
        let mut argv = args;
        argv.push(ptr::null());
        Ok(ExecMemory {
            _strings: strings,
            argv,
            envp,
            shell_argv,
            candidates,
            cwd: cstring(cwd.as_os_str().as_bytes())?,
        })
    }

    /// A descriptor for the child's end of a pipe, numbered 3 or above: `dup2` onto its own
    /// number would leave close-on-exec set, and the child's 0 to 2 are being replaced.
    fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        Ok(fcntl_dupfd_cloexec(&fd, 3)?)
    }

    pub(super) fn spawn(
        argv: &[String],
        cwd: &Path,
        env: &[(String, String)],
        stdin_piped: bool,
    ) -> io::Result<Leader> {
        let mut memory = prepare(argv, cwd, env)?;
        let (stdin_child, stdin_ours) = if stdin_piped {
            let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
            (r, Some(File::from(w)))
        } else {
            (OwnedFd::from(File::open("/dev/null")?), None)
        };
        let (stdout_ours, stdout_child) = pipe_with(PipeFlags::CLOEXEC)?;
        let (stderr_ours, stderr_child) = pipe_with(PipeFlags::CLOEXEC)?;
        let child_ends = [
            above_stdio(stdin_child)?,
            above_stdio(stdout_child)?,
            above_stdio(stderr_child)?,
        ];
        let plan = ChildPlan {
            candidates: std::mem::take(&mut memory.candidates),
            argv: memory.argv.as_ptr(),
            envp: memory.envp.as_ptr(),
            shell_argv: memory.shell_argv.as_mut_ptr(),
            cwd: memory.cwd.as_ptr(),
            stdio: child_ends.each_ref().map(|fd| fd.as_raw_fd()),
            parent: rustix::process::getpid().as_raw_nonzero().get(),
            error: AtomicI32::new(0),
        };
        let pid = clone_vfork(&plan)?;
        drop(child_ends);
        let error = plan.error.load(Ordering::Relaxed);
        if error != 0 {
            // The child exited without exec'ing: reap it here, so no one else sees its pid.
            if let Some(child) = super::super::pid(pid as u32) {
                let _ =
                    rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
            }
            return Err(io::Error::from_raw_os_error(error));
        }
        drop(memory);
        Ok(Leader {
            pid: pid as u32,
            stdin: stdin_ours,
            stdout: File::from(stdout_ours),
            stderr: File::from(stderr_ours),
        })
    }

    /// Runs [`child_main`] in a child that shares this process's memory; returns once the child
    /// has exec'd or exited. Every signal is blocked around it, so no handler of ours runs in
    /// the child on our memory before the child has put the signals it would catch back to
    /// their defaults.
    fn clone_vfork(plan: &ChildPlan) -> io::Result<libc::pid_t> {
        // Not zeroed: a stack is written before it is read, and the child uses only its top
        // few pages, so zeroing the whole of it for each run cost more than the child's use.
        let mut stack = Box::<[u8]>::new_uninit_slice(CHILD_STACK);
        // SAFETY: the stack is ours until clone returns (CLONE_VFORK suspends this thread until
        // the child no longer uses it); its top is aligned down to 16 bytes as the ABI asks.
        // The masks are plain values. `plan` outlives the child's use of it for the same reason.
        unsafe {
            let top = stack.as_mut_ptr().add(CHILD_STACK).cast::<u8>();
            let top = top.sub(top as usize % 16).cast::<c_void>();
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                ptr::from_ref(plan).cast_mut().cast::<c_void>(),
            );
            let clone_error = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
            if pid < 0 {
                return Err(clone_error);
            }
            Ok(pid)
        }
    }

    /// The child until `execve`. It runs on borrowed memory with the parent suspended: only
    /// system calls, on what [`prepare`] made.
    extern "C" fn child_main(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `ChildPlan` `clone_vfork` was given, alive while this runs.
        let plan = unsafe { &*arg.cast::<ChildPlan>() };
        // SAFETY: see `exec`.
        let errno = unsafe { exec(plan) };
        plan.error.store(errno.max(1), Ordering::Relaxed);
        // SAFETY: `_exit` ends this child at once, running nothing of the parent's.
        unsafe { libc::_exit(127) }
    }

    fn errno() -> c_int {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    }

    /// Sets the child up and execs; returns the `errno` of what failed.
    ///
    /// SAFETY: to be called only in the child of [`clone_vfork`], with `plan`'s pointers valid.
    unsafe fn exec(plan: &ChildPlan) -> c_int {
        // SAFETY: each call below is a system call on plain values or on `plan`'s memory.
        unsafe {
            for sig in 1..65 {
                let mut action: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, ptr::null(), &mut action) != 0 {
                    continue;
                }
                let caught =
                    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN;
                if caught || sig == libc::SIGPIPE {
                    let mut default: libc::sigaction = std::mem::zeroed();
                    default.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, &default, ptr::null_mut());
                }
            }
            if let Err(e) = rustix::process::setpgid(None, None) {
                return e.raw_os_error();
            }
            if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
                return e.raw_os_error();
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(plan.parent) {
                return libc::ESRCH;
            }
            if let Err(e) = rustix::process::chdir(CStr::from_ptr(plan.cwd)) {
                return e.raw_os_error();
            }
            for (target, &fd) in plan.stdio.iter().enumerate() {
                if libc::dup2(fd, target as c_int) < 0 {
                    return errno();
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, ptr::null_mut());
            try_candidates(plan)
        }
    }

    /// `execve` of each candidate in turn, as `execvp` does: a missing file goes on to the next,
    /// a refused one too but is what is reported if none runs, any other error stops.
    ///
    /// SAFETY: as for [`exec`].
    unsafe fn try_candidates(plan: &ChildPlan) -> c_int {
        let mut reported = libc::ENOENT;
        for &file in &plan.candidates {
            // SAFETY: `file`, `argv` and `envp` are NUL-terminated strings and null-terminated
            // arrays made by `prepare`; the shell's slot 1 is ours to fill.
            unsafe {
                libc::execve(file, plan.argv, plan.envp);
                match errno() {
                    libc::ENOEXEC => {
                        *plan.shell_argv.add(1) = file;
                        libc::execve(SHELL.as_ptr(), plan.shell_argv, plan.envp);
                        return errno();
                    }
                    libc::EACCES => reported = libc::EACCES,
                    libc::ENOENT
                    | libc::ENOTDIR
                    | libc::ESTALE
                    | libc::ENODEV
                    | libc::ETIMEDOUT => {}
                    other => return other,
                }
            }
        }
        reported
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::Leader;

    pub(super) fn spawn(
        argv: &[String],
        cwd: &Path,
        env: &[(String, String)],
        stdin_piped: bool,
    ) -> io::Result<Leader> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pipe = |fd: Option<OwnedFd>| fd.map(File::from);
        Ok(Leader {
            pid: child.id(),
            stdin: pipe(child.stdin.take().map(OwnedFd::from)),
            stdout: pipe(child.stdout.take().map(OwnedFd::from)).expect("stdout was piped"),
            stderr: pipe(child.stderr.take().map(OwnedFd::from)).expect("stderr was piped"),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn spawn(argv: &[&str], cwd: &Path, env: &[(&str, &str)], stdin: bool) -> io::Result<Leader> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        spawn_leader(&argv, cwd, &env, stdin)
    }

    /// Everything the child wrote to stdout, and how it ended.
    fn finish(mut leader: Leader) -> (String, ExitStatus) {
        drop(leader.stdin.take());
        let mut out = String::new();
        leader.stdout.read_to_string(&mut out).unwrap();
        (out, reap_leader(leader.pid).unwrap())
    }

    #[test]
    fn a_leader_leads_its_own_group_in_its_folder_with_its_variables_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"read line; printf '%s|%s|%s' "$line" "$TB_LEADER_TEST" "$(pwd)""#;
        let mut leader = spawn(
            &["sh", "-c", script],
            dir.path(),
            &[("TB_LEADER_TEST", "set")],
            true,
        )
        .unwrap();
        // The shell waits on its stdin: it is the process it was started as.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", leader.pid)).unwrap();
        let proc = crate::shell::process::parse_stat(&stat).unwrap();
        assert_eq!(proc.pgrp, leader.pid, "the child leads a group of its own");
        assert_eq!(proc.ppid, std::process::id());
        leader
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"hello\n")
            .unwrap();
        let (out, status) = finish(leader);
        let here = dir.path().canonicalize().unwrap();
        assert_eq!(out, format!("hello|set|{}", here.display()));
        assert!(status.success(), "{status:?}");
    }

    #[test]
    fn the_child_inherits_the_environment_with_the_runs_variables_over_it_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let inherited = std::env::var("PATH").expect("tests run with a PATH");
        let leader = spawn(
            &["/usr/bin/env"],
            dir.path(),
            &[("HOME", "/over"), ("TB_TWICE", "1"), ("TB_TWICE", "2")],
            false,
        )
        .unwrap();
        let (out, status) = finish(leader);
        assert!(status.success(), "{status:?}");
        let lines: Vec<&str> = out.lines().collect();
        let named = |name: &str| -> Vec<&str> {
            let prefix = format!("{name}=");
            (lines.iter())
                .filter(|l| l.starts_with(&prefix))
                .copied()
                .collect()
        };
        assert_eq!(named("PATH"), [format!("PATH={inherited}")]);
        assert_eq!(named("HOME"), ["HOME=/over"]);
        assert_eq!(named("TB_TWICE"), ["TB_TWICE=2"]);
    }

    #[test]
    fn the_program_is_found_on_the_path_it_is_given_and_a_file_without_interpreter_runs_under_sh() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let program = bin.join("tb-leader-hello");
        std::fs::write(&program, "echo \"from $0 with $1\"\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}:/usr/bin:/bin", bin.display());
        let leader = spawn(
            &["tb-leader-hello", "an-argument"],
            dir.path(),
            &[("PATH", &path)],
            false,
        )
        .unwrap();
        let (out, status) = finish(leader);
        assert_eq!(
            out,
            format!("from {} with an-argument\n", program.display())
        );
        assert!(status.success());
    }

    #[test]
    fn what_cannot_start_is_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        let errno = |argv: &[&str], cwd: &Path| {
            spawn(argv, cwd, &[], false)
                .unwrap_err()
                .raw_os_error()
                .unwrap()
        };
        assert_eq!(
            errno(&["tb-leader-no-such-program"], dir.path()),
            libc::ENOENT
        );
        let refused = dir.path().join("refused.sh");
        std::fs::write(&refused, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&refused, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            errno(&[refused.to_str().unwrap()], dir.path()),
            libc::EACCES
        );
        assert_eq!(errno(&["true"], &dir.path().join("missing")), libc::ENOENT);
    }

    #[test]
    fn the_child_starts_with_no_signal_blocked_and_sigpipe_at_its_default() {
        // This process ignores SIGPIPE (Rust's start-up does) and blocks every signal while it
        // makes the child: neither may reach the program the child runs.
        let dir = tempfile::tempdir().unwrap();
        let leader = spawn(&["cat", "/proc/self/status"], dir.path(), &[], false).unwrap();
        let (status, _) = finish(leader);
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{status}");
        let sigpipe = 1u64 << (libc::SIGPIPE - 1);
        assert_eq!(field("SigIgn:") & sigpipe, 0, "{status}");
    }

    #[test]
    fn a_leader_dies_with_the_thread_that_started_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let pid =
            std::thread::spawn(move || spawn(&["sleep", "60"], &path, &[], false).unwrap().pid)
                .join()
                .unwrap();
        let status = reap_leader(pid).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
}
