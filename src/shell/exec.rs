//! Running one executor attempt as a child process.
//!
//! This module owns everything about a single child: spawning it as the leader of its own process
//! group (so grandchildren can be signalled with it) and tagged with a fresh run id
//! ([`process::RUN_ID_VAR`], so descendants that leave the group are found too), feeding its stdin,
//! capturing stdout and stderr to capped files in the attempt's run folder, enforcing its timeout,
//! stopping it (SIGTERM to the group and to the run's processes outside it, SIGKILL after a grace
//! period) and reporting how it ended. A run is over only when every process of it is gone: after
//! the leader exits, whatever it left behind is stopped the same way before `on_exit` is called,
//! and the processes that had left the group are named in [`Finished::escaped`].
//!
//! It must not know about boards, task statuses, events or locks: the runtime passes a plain
//! [`AttemptSpec`] in and gets a plain [`Finished`] back through the `on_exit` callback. It
//! writes only `stdout.log` and `stderr.log` inside `AttemptSpec::run_dir`, and signals only
//! processes it spawned (and their process group) while the leader is known not to have been
//! reaped, so a recycled pid is never hit; the run's other processes are signalled through
//! [`process`], which checks each one's identity. Every system call about processes (signals,
//! waits, `/proc`) is [`process`]'s: this module runs an executor through it.
//!
//! Threads per attempt, each taken from [`workers`] (kept after a run for the next): a
//! supervisor, which spawns the child through [`process::spawn_leader`] (so a Linux
//! parent-death signal is tied to a thread that outlives the child), reads both output streams
//! in one `poll` with the leader's end (its pidfd), then cleans up; a watchdog (timeout and
//! SIGTERM -> SIGKILL escalation), started with the run only when it has a timeout, otherwise at
//! the first request to stop it, as until then it would have nothing to do. A reader thread
//! takes the output streams only when a pipe outlives the leader (a process outside the group
//! holds it) or the leader's end cannot be polled; a stdin writer only when the packet does not
//! fit in the pipe at once. Nothing busy-polls while the child runs.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::Signal;

use crate::core::settle::{ProcessEnd, StopCause};
use crate::shell::process::{self, signal_group};
use crate::shell::workers;

/// How many bytes of each stream are returned in [`Finished`] as a tail.
pub const TAIL_BYTES: usize = 4096;

/// How long, once the process group is gone, the output readers may take to reach end of file
/// before they are left behind (a `setsid` daemon can hold a pipe open forever).
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Everything needed to start one attempt.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    /// Program and arguments. `argv[0]` is looked up on `PATH` as `execvp` does; the arguments are
    /// never read by a shell.
    pub argv: Vec<String>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Written to the child's stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// Existing folder where `stdout.log` and `stderr.log` are written.
    pub run_dir: PathBuf,
    /// Stop the child with [`StopCause::Timeout`] once this has elapsed since spawn.
    pub timeout: Option<Duration>,
    /// Gap between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Maximum bytes kept on disk per stream (plus a one-line omission marker).
    pub output_cap: u64,
}

/// The report handed to `on_exit`.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How the leader process ended. `Exited(-1)` if its status could not be collected (for
    /// example when the host process set SIGCHLD to be ignored, so the kernel reaped the child
    /// itself).
    pub ending: ProcessEnd,
    /// Why the runtime stopped it, if it did (the first reason wins).
    pub stopped: Option<StopCause>,
    /// From spawn to the leader's exit.
    pub duration: Duration,
    /// Last [`TAIL_BYTES`] of stdout, lossy UTF-8.
    pub stdout_tail: String,
    /// Last [`TAIL_BYTES`] of stderr, lossy UTF-8.
    pub stderr_tail: String,
    /// Total bytes the child wrote to stdout (seen before `on_exit`).
    pub stdout_bytes: u64,
    /// Total bytes the child wrote to stderr (seen before `on_exit`).
    pub stderr_bytes: u64,
    /// Processes of the run that had left its process group and were alive when it was stopped
    /// or when the leader ended; all of them were stopped before `on_exit` (but `survivors`).
    pub escaped: Vec<u32>,
    /// Processes of the run still alive when stopping them was given up (another user's, or
    /// stuck in the kernel), [`process::KILL_WAIT`] after SIGKILL.
    pub survivors: Vec<u32>,
}

impl Finished {
    /// One line naming the processes that escaped the executor's process group, if any did.
    pub fn escape_report(&self) -> Option<String> {
        if self.escaped.is_empty() && self.survivors.is_empty() {
            return None;
        }
        let list = |pids: &[u32]| {
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = format!(
            "processes left the executor's process group and outlived it: pid {}; stopped them",
            list(&self.escaped)
        );
        if !self.survivors.is_empty() {
            line.push_str(&format!(
                ", except pid {} (still alive)",
                list(&self.survivors)
            ));
        }
        Some(line)
    }
}

/// Why a child could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// The program (or the working directory) does not exist.
    NotFound(String),
    /// The program exists but cannot be executed.
    NotExecutable(String),
    /// Anything else.
    Io(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NotFound(what) => write!(f, "executor not found: {what}"),
            SpawnError::NotExecutable(what) => write!(f, "executor not executable: {what}"),
            SpawnError::Io(what) => write!(f, "could not start executor: {what}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// A cheap, cloneable handle on a running child.
#[derive(Clone)]
pub struct LocalHandle {
    shared: Arc<LocalRunShared>,
}

impl fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHandle")
            .field("pid", &self.shared.pid)
            .finish()
    }
}

impl LocalHandle {
    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The run id every process of this run inherits in [`process::RUN_ID_VAR`].
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// Asks the child to stop: SIGTERM to its process group now, SIGKILL to the group after
    /// `grace` if the leader still lives. Non-blocking, callable from any thread; only the first
    /// call has an effect, and a call after the leader has ended does nothing.
    pub fn stop(&self, reason: StopCause) {
        let mut state = self.shared.lock();
        request_stop(&self.shared, &mut state, reason);
        if state.stopped.is_some() && state.watchdog.is_none() && !state.exited {
            // A run without a timeout has no watchdog yet: the escalation needs one now.
            match start_watchdog(&self.shared, None) {
                Ok(watchdog) => state.watchdog = Some(watchdog),
                Err(e) => tracing::warn!(error = %e, "cannot start a watchdog thread"),
            }
        }
    }
}

/// State shared by the handle, the supervisor and the watchdog.
struct LocalRunShared {
    pid: u32,
    run_id: String,
    /// No later than the leader's start time (clock ticks since boot, [`process::start_floor`]):
    /// every process of the run started at or after it.
    since: Option<u64>,
    grace: Duration,
    state: Mutex<RunState>,
    changed: Condvar,
}

/// Where one run stands: whether its leader has ended, and how far stopping it has gone.
#[derive(Default)]
struct RunState {
    /// The leader has ended; from here on nothing may signal its pid.
    exited: bool,
    stopped: Option<StopCause>,
    term_sent_at: Option<Instant>,
    kill_sent: bool,
    /// A signal the watchdog still has to send to the run's processes outside the group.
    sweep: Option<Signal>,
    /// The run's processes found so far (taken out while a sweep reads `/proc`).
    tracker: process::Tracker,
    /// The watchdog, once one runs. None starts once the leader has ended.
    watchdog: Option<workers::Done>,
}

impl LocalRunShared {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn target(&self) -> process::Target<'_> {
        process::Target {
            run_id: Some(&self.run_id),
            pgid: Some(self.pid),
            since: self.since,
        }
    }
}

/// Sends SIGTERM to the group on the first request while the leader is unreaped, and has the
/// watchdog send it to the run's processes outside the group (finding them reads `/proc`).
fn request_stop(shared: &LocalRunShared, state: &mut RunState, reason: StopCause) {
    if state.exited || state.stopped.is_some() {
        return;
    }
    state.stopped = Some(reason);
    state.term_sent_at = Some(Instant::now());
    signal_group(shared.pid, Signal::TERM);
    state.sweep = Some(Signal::TERM);
    shared.changed.notify_all();
}

/// Starts the child described by `spec` and a supervisor thread. `on_exit` is called exactly
/// once, from that thread, when the child has ended and its output files are complete.
///
/// On error no child and no thread are left behind.
pub fn start(
    spec: AttemptSpec,
    on_exit: impl FnOnce(Finished) + Send + 'static,
) -> Result<LocalHandle, SpawnError> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(SpawnError::Io("empty command line".to_string()));
    }
    if !spec.cwd.is_dir() {
        return Err(SpawnError::NotFound(format!(
            "working directory {}",
            spec.cwd.display()
        )));
    }
    let stdout_log = create_log(&spec, "stdout.log")?;
    let stderr_log = create_log(&spec, "stderr.log")?;

    let (tx, rx) = mpsc::channel::<Result<Arc<LocalRunShared>, SpawnError>>();
    let name = format!("exec:{}", short_name(&spec.argv[0]));
    let supervisor = workers::spawn(&name, move || {
        supervise(spec, stdout_log, stderr_log, tx, on_exit)
    })
    .map_err(|e| SpawnError::Io(format!("cannot start supervisor thread: {e}")))?;

    match rx.recv() {
        Ok(Ok(shared)) => Ok(LocalHandle { shared }),
        Ok(Err(e)) => {
            let _ = supervisor.join();
            Err(e)
        }
        Err(_) => {
            // The supervisor ended (panicked) before reporting.
            let _ = supervisor.join();
            Err(SpawnError::Io(
                "supervisor thread ended before spawning".to_string(),
            ))
        }
    }
}

fn short_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn create_log(spec: &AttemptSpec, name: &str) -> Result<File, SpawnError> {
    let path = spec.run_dir.join(name);
    File::create(&path)
        .map_err(|e| SpawnError::Io(format!("cannot create {}: {e}", path.display())))
}

fn spawn_error(program: &str, err: io::Error) -> SpawnError {
    match err.raw_os_error() {
        Some(e) if e == Errno::NOENT.raw_os_error() => SpawnError::NotFound(program.to_string()),
        Some(e) if e == Errno::ACCESS.raw_os_error() || e == Errno::NOEXEC.raw_os_error() => {
            SpawnError::NotExecutable(program.to_string())
        }
        _ => SpawnError::Io(format!("{program}: {err}")),
    }
}

/// The supervisor thread: spawns the child, reports the spawn result, waits for the leader,
/// cleans up the group and calls `on_exit`.
fn supervise(
    spec: AttemptSpec,
    stdout_log: File,
    stderr_log: File,
    tx: mpsc::Sender<Result<Arc<LocalRunShared>, SpawnError>>,
    on_exit: impl FnOnce(Finished),
) {
    let run_id = process::new_run_id();
    let since = process::start_floor();
    let mut env = spec.env.clone();
    env.push((process::RUN_ID_VAR.to_string(), run_id.clone()));
    let spawned = process::spawn_tracked(|| {
        let leader = process::spawn_leader(&spec.argv, &spec.cwd, &env, !spec.stdin.is_empty())?;
        let pid = leader.pid;
        Ok((leader, pid))
    });
    let leader = match spawned {
        Ok(leader) => leader,
        Err(e) => {
            let _ = tx.send(Err(spawn_error(&spec.argv[0], e)));
            return;
        }
    };
    let spawned_at = Instant::now();
    let shared = Arc::new(LocalRunShared {
        pid: leader.pid,
        since,
        run_id,
        grace: spec.grace,
        state: Mutex::new(RunState {
            tracker: process::Tracker::of_own_run(),
            ..RunState::default()
        }),
        changed: Condvar::new(),
    });

    let helpers = match start_helpers(&spec, leader, &shared, stdout_log, stderr_log) {
        Ok(helpers) => helpers,
        Err(e) => {
            // Nothing may outlive a failed start: kill the group and reap the leader.
            signal_group(shared.pid, Signal::KILL);
            let _ = process::reap_leader(shared.pid);
            process::untrack(shared.pid);
            let _ = tx.send(Err(SpawnError::Io(format!(
                "cannot start helper thread: {e}"
            ))));
            return;
        }
    };
    let _ = tx.send(Ok(Arc::clone(&shared)));
    drop(tx);

    // A defect while winding down must not lose the run's ending: the runtime waits for it.
    let wound_down = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wind_down(&spec, &shared, helpers, spawned_at)
    }));
    on_exit(wound_down.unwrap_or_else(|payload| abandoned(&shared, spawned_at, &*payload)));
}

/// The ending of a run whose supervision failed part-way: its group is killed and the attempt
/// fails with the reason in its stderr. The leader is not waited for here: it may have been
/// reaped already, and its pid could then name another run's leader.
fn abandoned(shared: &LocalRunShared, spawned_at: Instant, payload: &(dyn Any + Send)) -> Finished {
    signal_group(shared.pid, Signal::KILL);
    let why = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown defect".to_string());
    tracing::error!(pid = shared.pid, error = %why, "supervising the run failed");
    Finished {
        ending: ProcessEnd::Exited(-1),
        stopped: None,
        duration: spawned_at.elapsed(),
        stdout_tail: String::new(),
        stderr_tail: format!("taskboard could not supervise this run to its end: {why}\n"),
        stdout_bytes: 0,
        stderr_bytes: 0,
        escaped: Vec::new(),
        survivors: Vec::new(),
    }
}

/// Waits for the leader to end, stops what is left of the run, and reports how it went once
/// nothing of it is left and its output files are complete.
fn wind_down(
    spec: &AttemptSpec,
    shared: &LocalRunShared,
    helpers: Helpers,
    spawned_at: Instant,
) -> Finished {
    // Wait for the leader to end without reaping it, so its pid (and group id) stays ours
    // while anything may still signal it.
    match helpers.output {
        OutputReader::Supervisor { leader_end, pipes } => {
            let (open, ended) = read_until_end(&leader_end, pipes);
            // A pipe still open (a process outside the group holds it): a reader of its own
            // keeps it drained while the run is wound down, as it would have all along.
            if !open.is_empty()
                && let Err(e) = spawn_output_reader(open)
            {
                tracing::warn!(pid = shared.pid, error = %e, "cannot start an output reader");
            }
            if !ended {
                process::spawn::wait_exit_unreaped(shared.pid);
            }
        }
        OutputReader::Thread => process::spawn::wait_exit_unreaped(shared.pid),
    }
    let duration = spawned_at.elapsed();
    let (stopped, term_sent_at, watchdog) = {
        let mut state = shared.lock();
        state.exited = true;
        shared.changed.notify_all();
        (state.stopped, state.term_sent_at, state.watchdog.take())
    };
    // Leftover grandchildren get SIGTERM while the zombie leader still pins the group id; so
    // do the run's processes outside the group: the run is over only when they are gone.
    signal_group(shared.pid, Signal::TERM);
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    let mut tracker = std::mem::take(&mut shared.lock().tracker);
    tracker.leader_ended();
    let left = tracker.signal_outside_group(shared.target(), Signal::TERM);
    let ending = match process::reap_leader(shared.pid) {
        Ok(status) => ending_of(status),
        Err(e) => {
            tracing::warn!(pid = shared.pid, error = %e, "could not collect executor exit status");
            ProcessEnd::Exited(-1)
        }
    };
    process::untrack(shared.pid);

    // The leader is reaped. Give the rest of the run the grace period, then kill it, and wait
    // until nothing of it is left (where /proc exists; elsewhere, the group only).
    let kill_at = term_sent_at
        .map(|t| t + spec.grace)
        .unwrap_or_else(|| Instant::now() + spec.grace);
    // Nothing of the run alive a moment ago (the usual end): nothing can have started since,
    // and no second search of `/proc` is needed.
    let survivors = match left {
        0 => Vec::new(),
        _ => tracker.stop_run(shared.target(), Some(shared.pid), true, kill_at),
    };
    if !process::poll_until(kill_at, || !process::group_alive(shared.pid)) {
        signal_group(shared.pid, Signal::KILL);
    }

    // Output is done at EOF, but a process outside the group (a setsid daemon) may hold the
    // pipes open forever: wait a bounded time, then take what is there and leave the readers.
    let drain_until = Instant::now() + OUTPUT_DRAIN;
    let (stdout_tail, stdout_bytes) = helpers.stdout.finish(drain_until);
    let (stderr_tail, stderr_bytes) = helpers.stderr.finish(drain_until);

    Finished {
        ending,
        stopped,
        duration,
        stdout_tail,
        stderr_tail,
        stdout_bytes,
        stderr_bytes,
        escaped: tracker.outside.into_iter().collect(),
        survivors,
    }
}

struct Helpers {
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
    output: OutputReader,
}

/// Who reads the executor's output while its leader runs.
enum OutputReader {
    /// The supervisor, in one `poll` with the leader's end (its pidfd): no thread of its own
    /// unless a pipe is still open when the leader ends.
    Supervisor {
        leader_end: std::os::fd::OwnedFd,
        pipes: Vec<Pipe>,
    },
    /// A reader thread, where the leader's end cannot be polled.
    Thread,
}

fn start_helpers(
    spec: &AttemptSpec,
    leader: process::Leader,
    shared: &Arc<LocalRunShared>,
    stdout_log: File,
    stderr_log: File,
) -> io::Result<Helpers> {
    let stdout = Arc::new(Stream::new(Capture::new(stdout_log, spec.output_cap)));
    let stderr = Arc::new(Stream::new(Capture::new(stderr_log, spec.output_cap)));
    let pipes = vec![
        (leader.stdout, Arc::clone(&stdout)),
        (leader.stderr, Arc::clone(&stderr)),
    ];
    let output = match process::spawn::exit_notice(leader.pid) {
        Some(leader_end) => OutputReader::Supervisor { leader_end, pipes },
        None => {
            spawn_output_reader(pipes)?;
            OutputReader::Thread
        }
    };
    if let Some(pipe) = leader.stdin
        && let Some((mut pipe, written)) = write_what_fits(pipe, &spec.stdin)
    {
        let rest = spec.stdin[written..].to_vec();
        // Detached: it ends when everything is written or the reader side closes (EPIPE).
        thread::Builder::new()
            .name("exec-stdin".to_string())
            .spawn(move || {
                let _ = pipe.write_all(&rest);
            })?;
    }
    if let Some(timeout) = spec.timeout {
        let watchdog = start_watchdog(shared, Some(Instant::now() + timeout))?;
        shared.lock().watchdog = Some(watchdog);
    }
    Ok(Helpers {
        stdout,
        stderr,
        output,
    })
}

/// Starts the watchdog of the run `shared` describes, with its timeout's `deadline` if any.
fn start_watchdog(
    shared: &Arc<LocalRunShared>,
    deadline: Option<Instant>,
) -> io::Result<workers::Done> {
    let shared = Arc::clone(shared);
    workers::spawn("exec-watchdog", move || watchdog(&shared, deadline))
}

/// Writes as much of `input` into the executor's stdin as the pipe takes without waiting (a
/// packet usually fits whole: then the pipe is closed here and no writer thread is needed).
/// `Some((pipe, written))` when the rest must wait for the executor to read, with the pipe
/// blocking again.
fn write_what_fits(mut pipe: File, input: &[u8]) -> Option<(File, usize)> {
    if rustix::io::ioctl_fionbio(&pipe, true).is_err() {
        return Some((pipe, 0));
    }
    let mut written = 0;
    while written < input.len() {
        match pipe.write(&input[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Blocking again for the writer thread (an ioctl that worked a moment ago).
                let _ = rustix::io::ioctl_fionbio(&pipe, false);
                return Some((pipe, written));
            }
            // The executor closed its stdin (EPIPE) or the pipe failed: nothing more to write.
            Err(_) => return None,
        }
    }
    None
}

/// Applies the timeout and the SIGTERM -> SIGKILL escalation until the leader has ended.
fn watchdog(shared: &LocalRunShared, deadline: Option<Instant>) {
    let mut state = shared.lock();
    loop {
        if state.exited {
            return;
        }
        if let Some(sig) = state.sweep.take() {
            let mut tracker = std::mem::take(&mut state.tracker);
            drop(state);
            tracker.signal_outside_group(shared.target(), sig);
            state = shared.lock();
            state.tracker = tracker;
            continue;
        }
        let now = Instant::now();
        if state.stopped.is_none()
            && let Some(d) = deadline
            && now >= d
        {
            request_stop(shared, &mut state, StopCause::Timeout);
            continue;
        }
        let kill_at = match (state.term_sent_at, state.kill_sent) {
            (Some(t), false) => Some(t + shared.grace),
            _ => None,
        };
        if let Some(k) = kill_at
            && now >= k
        {
            signal_group(shared.pid, Signal::KILL);
            state.kill_sent = true;
            state.sweep = Some(Signal::KILL);
            continue;
        }
        let next = [deadline.filter(|_| state.stopped.is_none()), kill_at]
            .into_iter()
            .flatten()
            .min();
        state = match next {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner()),
        };
    }
}

fn ending_of(status: ExitStatus) -> ProcessEnd {
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessEnd::Exited(code),
        (None, Some(number)) => ProcessEnd::Signaled {
            number,
            name: process::signal_name(number),
        },
        (None, None) => ProcessEnd::Exited(-1),
    }
}

/// One output stream: its capture and whether the reader has reached EOF.
struct Stream {
    capture: Mutex<Capture>,
    ended: Condvar,
}

impl Stream {
    fn new(capture: Capture) -> Self {
        Stream {
            capture: Mutex::new(capture),
            ended: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Capture> {
        self.capture.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until EOF or `until`, completes the log file and returns (tail, total bytes).
    /// A reader still running afterwards keeps draining the pipe but writes nothing more.
    fn finish(&self, until: Instant) -> (String, u64) {
        let mut cap = self.lock();
        while !cap.eof {
            let now = Instant::now();
            if now >= until {
                break;
            }
            cap = self
                .ended
                .wait_timeout(cap, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        cap.finalize();
        (cap.tail(), cap.total)
    }
}

/// An executor's output pipe and the stream it feeds.
type Pipe = (File, Arc<Stream>);

/// One thread reads both of the executor's output pipes (a thread per pipe doubled the
/// threads each run starts): it waits until either has something, reads that, and marks a
/// stream ended at its EOF.
fn spawn_output_reader(mut pipes: Vec<Pipe>) -> io::Result<()> {
    workers::spawn("exec-output", move || {
        let mut buf = vec![0u8; 64 * 1024];
        while !pipes.is_empty() {
            let ready = match poll_pipes(None, &pipes, None) {
                Ok((_, ready)) => ready,
                Err(Errno::INTR) => continue,
                // Cannot wait on them together: read each to its end in turn.
                Err(_) => vec![true; pipes.len()],
            };
            read_ready(&mut pipes, &ready, &mut buf);
        }
    })?;
    Ok(())
}

/// Reads the executor's output until its leader has ended (`leader_end` readable), then once
/// more what the pipes hold by then, without waiting. Returns the pipes not at their end
/// (usually none: the leader's end closes them; a process outside the group may hold one, and
/// may never stop writing), and whether the leader's end was seen (not where the descriptors
/// cannot be polled together).
fn read_until_end(leader_end: &std::os::fd::OwnedFd, mut pipes: Vec<Pipe>) -> (Vec<Pipe>, bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match poll_pipes(Some(leader_end), &pipes, None) {
            Ok((ended, ready)) => {
                read_ready(&mut pipes, &ready, &mut buf);
                if ended {
                    break;
                }
            }
            Err(Errno::INTR) => {}
            // Cannot wait on them together: the caller waits for the leader's end alone.
            Err(_) => return (pipes, false),
        }
    }
    let now = rustix::event::Timespec::default();
    if let Ok((_, ready)) = poll_pipes(None, &pipes, Some(&now)) {
        read_ready(&mut pipes, &ready, &mut buf);
    }
    (pipes, true)
}

/// Waits until `end` (when given) or one of `pipes` is readable, for at most `wait` (`None`:
/// as long as it takes). Returns whether `end` is, and which pipes are.
fn poll_pipes(
    end: Option<&std::os::fd::OwnedFd>,
    pipes: &[Pipe],
    wait: Option<&rustix::event::Timespec>,
) -> rustix::io::Result<(bool, Vec<bool>)> {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds: Vec<PollFd<'_>> = (end.into_iter())
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .chain(
            pipes
                .iter()
                .map(|(pipe, _)| PollFd::new(pipe, PollFlags::IN)),
        )
        .collect();
    poll(&mut fds, wait)?;
    let mut ready = fds.iter().map(|fd| !fd.revents().is_empty());
    let end_ready = end.is_some() && ready.next() == Some(true);
    Ok((end_ready, ready.collect()))
}

/// Reads once from each pipe `ready` marks, and drops those that reached their end.
fn read_ready(pipes: &mut Vec<Pipe>, ready: &[bool], buf: &mut [u8]) {
    let mut n = 0;
    pipes.retain_mut(|(pipe, stream)| {
        n += 1;
        !ready[n - 1] || read_some(pipe, stream, buf)
    });
}

/// One read from a pipe into its stream; `false` (and the stream marked ended) at EOF or on
/// an error.
fn read_some(pipe: &mut File, stream: &Stream, buf: &mut [u8]) -> bool {
    loop {
        match pipe.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                stream.lock().push(&buf[..n]);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let mut cap = stream.lock();
    cap.eof = true;
    cap.finalize();
    stream.ended.notify_all();
    false
}

/// Keeps at most `cap` bytes of a stream on disk: everything while it fits; once it overflows,
/// the first half as it came, a one-line marker, then the last half (held in a bounded ring).
struct Capture {
    file: File,
    /// Bytes of the stream that overflowed are cut back to this many at the end.
    head_cap: u64,
    tail_cap: u64,
    /// Bytes written to the file so far, all of them a prefix of the stream.
    written: u64,
    /// The last `max(tail_cap, TAIL_BYTES)` bytes seen.
    ring: VecDeque<u8>,
    ring_cap: usize,
    total: u64,
    eof: bool,
    finalized: bool,
}

impl Capture {
    fn new(file: File, cap: u64) -> Self {
        let head_cap = cap / 2;
        let tail_cap = cap - head_cap;
        let ring_cap = usize::try_from(tail_cap)
            .unwrap_or(usize::MAX)
            .max(TAIL_BYTES);
        Capture {
            file,
            head_cap,
            tail_cap,
            written: 0,
            ring: VecDeque::new(),
            ring_cap,
            total: 0,
            eof: false,
            finalized: false,
        }
    }

    fn cap(&self) -> u64 {
        self.head_cap + self.tail_cap
    }

    fn push(&mut self, chunk: &[u8]) {
        if self.finalized {
            return;
        }
        self.total += chunk.len() as u64;
        // Live on disk while the whole stream still fits.
        if self.written < self.cap() && self.written + (chunk.len() as u64) == self.total {
            let room = usize::try_from(self.cap() - self.written).unwrap_or(usize::MAX);
            let part = &chunk[..chunk.len().min(room)];
            match self.file.write_all(part) {
                Ok(()) => self.written += part.len() as u64,
                Err(e) => tracing::warn!(error = %e, "cannot write executor output"),
            }
        }
        let keep = &chunk[chunk.len().saturating_sub(self.ring_cap)..];
        let overflow = (self.ring.len() + keep.len()).saturating_sub(self.ring_cap);
        self.ring.drain(..overflow);
        self.ring.extend(keep);
    }

    /// Makes the file final: unchanged if the stream fit, else head + marker + tail.
    fn finalize(&mut self) {
        if self.finalized {
            return;
        }
        self.finalized = true;
        if self.total <= self.cap() {
            if self.written < self.total {
                // A write failed earlier; put back what the ring still holds, best effort.
                let missing = usize::try_from(self.total - self.written).unwrap_or(usize::MAX);
                let from = self.ring.len().saturating_sub(missing);
                let rest: Vec<u8> = self.ring.range(from..).copied().collect();
                let _ = self.file.write_all(&rest);
            }
            return;
        }
        let omitted = self.total - self.head_cap - self.tail_cap;
        let tail_len = usize::try_from(self.tail_cap).unwrap_or(usize::MAX);
        let from = self.ring.len().saturating_sub(tail_len);
        let mut out = marker(omitted).into_bytes();
        out.extend(self.ring.range(from..));
        let result = self
            .file
            .set_len(self.head_cap.min(self.written))
            .and_then(|()| {
                self.file
                    .seek(SeekFrom::Start(self.head_cap.min(self.written)))
            })
            .and_then(|_| self.file.write_all(&out));
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot finish executor output file");
        }
    }

    fn tail(&self) -> String {
        let from = self.ring.len().saturating_sub(TAIL_BYTES);
        let mut bytes: Vec<u8> = self.ring.range(from..).copied().collect();
        if from > 0 || self.total > self.ring.len() as u64 {
            // Cut inside the stream: drop a partial UTF-8 sequence at the start.
            let skip = bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
                .count();
            bytes.drain(..skip);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// An output that arrives whole rather than from a live pipe (a remote run's log, copied back),
/// kept under `path` with the same cap as a live one: head, marker, tail.
pub struct CappedLog {
    capture: Capture,
}

impl CappedLog {
    /// Creates (truncates) `path`.
    pub fn create(path: &std::path::Path, cap: u64) -> io::Result<CappedLog> {
        Ok(CappedLog {
            capture: Capture::new(File::create(path)?, cap),
        })
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.capture.push(chunk);
    }

    /// Completes the file; returns the last [`TAIL_BYTES`] as text and the stream's length.
    pub fn finish(mut self) -> (String, u64) {
        self.capture.eof = true;
        self.capture.finalize();
        (self.capture.tail(), self.capture.total)
    }
}

/// The line that replaces the middle of an output that exceeded its cap.
pub fn marker(omitted: u64) -> String {
    format!("\n[taskboard: {omitted} bytes omitted]\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn scratch_file() -> (PathBuf, File) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "taskboard-capture-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let file = File::create(&path).unwrap();
        (path, file)
    }

    fn expected_file(all: &[u8], cap: u64) -> Vec<u8> {
        if all.len() as u64 <= cap {
            return all.to_vec();
        }
        let head = (cap / 2) as usize;
        let tail = (cap - cap / 2) as usize;
        let mut out = all[..head].to_vec();
        out.extend(marker((all.len() - head - tail) as u64).into_bytes());
        out.extend(&all[all.len() - tail..]);
        out
    }

    proptest! {
        #[test]
        fn capture_keeps_head_marker_and_tail(
            cap in 0u64..64,
            chunks in proptest::collection::vec(
                proptest::collection::vec(b'a'..=b'z', 0..40), 0..20),
        ) {
            let (path, file) = scratch_file();
            let mut capture = Capture::new(file, cap);
            for chunk in &chunks {
                capture.push(chunk);
            }
            capture.finalize();
            // Anything arriving after the file is final is ignored.
            capture.push(b"late");
            capture.finalize();
            let all: Vec<u8> = chunks.concat();
            let on_disk = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            prop_assert_eq!(on_disk, expected_file(&all, cap));
            prop_assert_eq!(capture.total, all.len() as u64);
            let tail_from = all.len().saturating_sub(TAIL_BYTES);
            let tail = capture.tail();
            prop_assert_eq!(tail.as_bytes(), &all[tail_from..]);
            prop_assert!(capture.ring.len() <= capture.ring_cap);
        }
    }

    #[test]
    fn tail_drops_a_cut_utf8_sequence() {
        let (path, file) = scratch_file();
        let mut capture = Capture::new(file, 16);
        capture.push(&[b'x'; 10]);
        capture.push("é".repeat(TAIL_BYTES).as_bytes());
        // One more byte shifts the tail window to start inside an "é".
        capture.push(b"z");
        let _ = std::fs::remove_file(&path);
        let tail = capture.tail();
        assert!(!tail.contains('\u{fffd}'));
        assert_eq!(tail, "é".repeat(TAIL_BYTES / 2 - 1) + "z");
    }
}
