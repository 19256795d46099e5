//! Running independent pieces of pure work at once, one thread per core: the core's
//! [`Parallel`] for the shell, which owns threads. A long board's parse is cut into pieces
//! this way ([`parse_board`]), and a long board's lint in shares of its tasks ([`lint_findings`]).
//!
//! Owns: how many cores there are to use, and the scoped threads of one run, which end before
//! it returns. Must not touch: what the pieces compute.

use std::num::NonZero;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

use crate::core::board::{Board, Parallel};
use crate::core::lint::{self, Finding, LintContext, WorkspaceContext};

/// The cores this process may run on, each taking pieces in turn.
pub struct Cores;

impl Parallel for Cores {
    fn width(&self) -> usize {
        static WIDTH: OnceLock<usize> = OnceLock::new();
        *WIDTH.get_or_init(|| thread::available_parallelism().map_or(1, NonZero::get))
    }

    /// The caller's thread takes jobs too. A thread that cannot be started leaves its share
    /// to the others, so every job runs whatever the process's limits.
    fn run_all<T: Send, F: FnOnce() -> T + Send>(&self, jobs: Vec<F>) -> Vec<T> {
        let count = jobs.len();
        let jobs: Vec<Mutex<Option<F>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
        let done: Vec<Mutex<Option<T>>> = (0..count).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let take_turns = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let job = job.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(job) = job {
                    *done[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(job());
                }
            }
        };
        thread::scope(|scope| {
            for _ in 1..self.width().min(count) {
                // Not started: the threads that are take its share.
                let _ = thread::Builder::new().spawn_scoped(scope, take_turns);
            }
            take_turns();
        });
        done.into_iter()
            .map(|d| d.into_inner().unwrap_or_else(PoisonError::into_inner))
            // The caller's thread takes every job left, and a job that panicked panicked the scope.
            .map(|d| d.unwrap_or_else(|| unreachable!("every job ran")))
            .collect()
    }
}

/// The board of `text`; a long one is parsed in pieces on every core.
pub fn parse_board(text: &str) -> Board {
    Board::parse_with(text, &Cores)
}

/// [`lint::lint_with`]; a long board's tasks are checked in shares on every core.
pub fn lint_findings(
    text: &str,
    board: &Board,
    ctx: &LintContext,
    workspaces: Option<&WorkspaceContext>,
) -> Vec<Finding> {
    lint::lint_on(text, board, ctx, workspaces, &Cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_results_keep_the_jobs_order() {
        let ran = AtomicUsize::new(0);
        let jobs: Vec<_> = (0..50)
            .map(|i| {
                let ran = &ran;
                move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                    i * 2
                }
            })
            .collect();
        let out = Cores.run_all(jobs);
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(ran.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn a_long_board_parsed_on_every_core_is_its_whole_parse() {
        let task = |i: usize| format!("### T-{i} Task {i}\n- status: ready\n\nSome text `x`.\n\n");
        let mut text = String::from("# Board\n\n## S-1 Section\n- status: ready\n\n");
        while text.len() < 3 * crate::core::board::LEAST_PIECE {
            text.push_str(&task(text.len()));
        }
        assert_eq!(parse_board(&text), Board::parse(&text));
    }
}
