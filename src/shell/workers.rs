//! Threads for a run's short jobs (its supervisor, output reader, watchdog), kept after a job
//! for the next one instead of ended: making and ending three threads per run was about a
//! tenth of what a short run cost the runtime.
//!
//! Owns: the idle threads and handing a job to one ([`spawn`]), and the handle that waits for
//! a job's end ([`Done`]). A thread waits [`IDLE_FOR`] for its next job and then ends, so an
//! idle runtime keeps none and does not wake for them. A thread whose job panicked ends, as a
//! plain thread would. A job's thread is busy until the job returns: a supervisor's thread, to
//! which the kernel ties its executor's parent-death signal, is idle only once the executor is
//! reaped.
//!
//! Must not touch: what the jobs do.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// How long a thread without a job waits for one before it ends.
pub const IDLE_FOR: Duration = Duration::from_secs(10);

type Work = Box<dyn FnOnce() + Send>;

/// A job for a kept thread, and where to say it ended.
struct ThreadJob {
    name: String,
    work: Work,
    done: mpsc::Sender<Result<(), Box<dyn Any + Send>>>,
}

/// An idle thread: its number and where to send its next job.
struct Idle {
    id: u64,
    jobs: mpsc::Sender<ThreadJob>,
}

/// Idle threads, most recently idle last. A job is sent to one only while this is locked, so a
/// thread that finds itself gone from here when its wait ends knows a job is on its way.
static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Vec<Idle>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for a job's end.
pub struct Done {
    ended: mpsc::Receiver<Result<(), Box<dyn Any + Send>>>,
}

impl Done {
    /// Blocks until the job has returned; `Err` with the panic's payload when it panicked.
    pub fn join(self) -> thread::Result<()> {
        self.ended
            .recv()
            .unwrap_or_else(|_| Err(Box::new("the job's thread ended without a word")))
    }
}

/// Runs `work` on an idle thread, or on a new one named `name` when none is idle. The thread
/// takes `name` (as far as the system keeps it: 15 bytes on Linux) while the job runs.
pub fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> io::Result<Done> {
    let (done, ended) = mpsc::channel();
    let job = ThreadJob {
        name: name.to_string(),
        work: Box::new(work),
        done,
    };
    let job = {
        let mut idle = idle();
        let mut job = job;
        loop {
            let Some(worker) = idle.pop() else {
                break job;
            };
            match worker.jobs.send(job) {
                Ok(()) => return Ok(Done { ended }),
                // That thread ended without taking its entry out (it cannot, but losing the
                // job would be worse): the next one, or a new thread.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
    };
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || work_on(job))?;
    Ok(Done { ended })
}

/// A thread's life: its first job, then each job sent to it while idle, until none comes.
fn work_on(first: ThreadJob) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (jobs, next) = mpsc::channel::<ThreadJob>();
    let mut job = first;
    loop {
        name_this_thread(&job.name);
        let outcome = catch_unwind(AssertUnwindSafe(job.work));
        let panicked = outcome.is_err();
        let _ = job.done.send(outcome);
        if panicked {
            return;
        }
        idle().push(Idle {
            id,
            jobs: jobs.clone(),
        });
        job = match next.recv_timeout(IDLE_FOR) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                let mut idle = idle();
                match idle.iter().position(|w| w.id == id) {
                    Some(at) => {
                        idle.remove(at);
                        return;
                    }
                    // Taken from the idle list since the wait ended: a job was sent under the
                    // lock, before this thread could take itself off.
                    None => match next.try_recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    },
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}

#[cfg(target_os = "linux")]
fn name_this_thread(name: &str) {
    let short: String = name.chars().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(short) {
        let _ = rustix::thread::set_name(&name);
    }
}

#[cfg(not(target_os = "linux"))]
fn name_this_thread(_name: &str) {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn thread_id() -> String {
        format!("{:?}", thread::current().id())
    }

    #[test]
    fn a_job_runs_and_its_end_is_awaited() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let done = spawn("test-job", move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        done.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_thread_is_kept_for_the_next_job() {
        // Jobs one after another: the second finds the first's thread idle (other tests may
        // take it first, so a few tries are allowed; a fresh thread every time fails).
        let mut reused = false;
        for _ in 0..20 {
            let (tx, rx) = mpsc::channel();
            spawn("test-first", move || tx.send(thread_id()).unwrap())
                .unwrap()
                .join()
                .unwrap();
            let first = rx.recv().unwrap();
            let (tx, rx) = mpsc::channel();
            spawn("test-second", move || tx.send(thread_id()).unwrap())
                .unwrap()
                .join()
                .unwrap();
            if rx.recv().unwrap() == first {
                reused = true;
                break;
            }
        }
        assert!(reused, "no job ever ran on a kept thread");
    }

    #[test]
    fn a_panicking_job_is_reported_and_its_thread_is_not_kept() {
        let (tx, rx) = mpsc::channel();
        let done = spawn("test-panic", move || {
            tx.send(thread_id()).unwrap();
            panic!("on purpose");
        })
        .unwrap();
        assert!(done.join().is_err());
        let panicked_on = rx.recv().unwrap();
        // Every thread now idle is one whose job returned.
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            spawn("test-after", move || tx.send(thread_id()).unwrap())
                .unwrap()
                .join()
                .unwrap();
        }
        drop(tx);
        assert!(rx.iter().all(|id| id != panicked_on));
    }

    #[test]
    fn jobs_at_once_each_get_a_thread() {
        // Two jobs that wait for each other finish only if each has a thread of its own.
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let a = spawn("test-a", move || {
            a_tx.send(()).unwrap();
            b_rx.recv().unwrap();
        })
        .unwrap();
        let b = spawn("test-b", move || {
            a_rx.recv().unwrap();
            b_tx.send(()).unwrap();
        })
        .unwrap();
        a.join().unwrap();
        b.join().unwrap();
    }
}
