//! Core throughput: parse, writeback and parse + writeback on boards of 100, 1,000 and 10,000
//! tasks (~200 bytes per task, so 10,000 tasks is about 2 MB), and the pass after a one-line
//! save (`pass_after_edit`: the re-parse from the previous board, lint and one writeback).
//! Groups ending in `_on_cores` parse and lint as the runtime and the commands do
//! (`shell::parallel::parse_board` and `lint_findings`): a long board in pieces, one per core,
//! and its tasks' checks in shares; the others parse and lint on one thread. `parse_half`
//! parses the first half of each board, one core's share of a parse on two.
//!
//! Run with `cargo bench --bench board`. Figures are recorded in `docs/PERFORMANCE.md`.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use taskboard::core::board::Board;
use taskboard::core::lint::{LintContext, lint};
use taskboard::core::status::Status;
use taskboard::core::writeback::{Change, apply};
use taskboard::shell::parallel::{lint_findings, parse_board};

const SIZES: [usize; 3] = [100, 1_000, 10_000];

const STATUSES: [&str; 6] = [
    "ready",
    "done",
    "`running:agent-a4b:2026-04-20T15:25:07Z`",
    "blocked:task:TASK-00001",
    "blocked:siyao:needs the portfolio URL",
    "`failed:exit 3: compile error`",
];

/// A realistic board: sections of 50 tasks, each task with a heading, a field list and a short
/// description; every tenth task has a fenced code block holding a task-like heading.
fn board_text(tasks: usize) -> String {
    let mut text = String::with_capacity(tasks * 210);
    text.push_str("# Task board\n\nAll background work for the project.\n\n");
    for n in 0..tasks {
        if n % 50 == 0 {
            let _ = write!(text, "## Section {}\n\n", n / 50 + 1);
        }
        let status = if n == tasks / 2 {
            "ready"
        } else {
            STATUSES[n % STATUSES.len()]
        };
        let _ = write!(
            text,
            "### TASK-{n:05}: Task number {n}\n\n- status: {status}\n- route: review\n- owner: siyao\n- depends-on: TASK-{:05}\n\n",
            n.saturating_sub(1)
        );
        if n % 10 == 0 {
            text.push_str("Run it like this:\n\n```sh\n## NOT-1: fenced\ncargo run\n```\n\n");
        } else {
            text.push_str(
                "Write the thing, check it with `cargo test`, then hand it over to **review**.\n\n",
            );
        }
    }
    text
}

/// One change: the middle task goes from `ready` to running.
fn change(tasks: usize) -> Change {
    Change {
        id: format!("TASK-{:05}", tasks / 2),
        expected: Status::Ready,
        new: Status::parse("running:taskboard:2026-04-20T15:25:07Z").unwrap(),
    }
}

fn benches(c: &mut Criterion) {
    let boards: Vec<(usize, String)> = SIZES.iter().map(|&n| (n, board_text(n))).collect();

    let texts = || boards.iter().map(|(n, text)| (*n, text.as_str()));
    parse_group(c, "parse", texts(), Board::parse);

    let mut group = c.benchmark_group("writeback");
    for (n, text) in &boards {
        let board = Board::parse(text);
        let changes = [change(*n)];
        assert_eq!(apply(text, &board, &changes).applied.len(), 1);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| apply(black_box(text), &board, &changes))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lint");
    // A healthy board: its routes are configured and its claims are recent, so lint measures
    // the checks, not the formatting of thousands of findings.
    let routes: std::collections::BTreeSet<String> =
        ["default".to_string(), "review".to_string()].into();
    let ctx = healthy(&routes);
    for (n, text) in &boards {
        let board = Board::parse(text);
        let findings = taskboard::core::lint::lint(text, &board, &ctx);
        assert!(
            findings
                .iter()
                .all(|f| f.severity == taskboard::core::lint::Severity::Warning),
            "the bench board should have no errors: {:?}",
            findings.first()
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| taskboard::core::lint::lint(black_box(text), &board, &ctx))
        });
    }
    group.finish();

    // The three together, as a pass does them.
    let mut group = c.benchmark_group("parse_lint_writeback");
    for (n, text) in &boards {
        let changes = [change(*n)];
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| {
                let board = Board::parse(black_box(text));
                black_box(taskboard::core::lint::lint(text, &board, &ctx));
                apply(text, &board, &changes)
            })
        });
    }
    group.finish();

    for (_, text) in texts() {
        assert_eq!(parse_board(text), Board::parse(text));
    }
    parse_group(c, "parse_on_cores", texts(), parse_board);

    // What one core's share of `parse_on_cores` would cost alone: the first half of the board,
    // cut at a task heading, parsed on one thread.
    let halves = texts().map(|(n, text)| {
        let middle = text.len() / 2;
        let cut = middle + text[middle..].find("\n###").map_or(0, |i| i + 1);
        (n, &text[..cut])
    });
    parse_group(c, "parse_half", halves, Board::parse);

    let mut group = c.benchmark_group("parse_lint_writeback_on_cores");
    for (n, text) in &boards {
        let changes = [change(*n)];
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| {
                let board = parse_board(black_box(text));
                black_box(lint_findings(text, &board, &ctx, None));
                apply(text, &board, &changes)
            })
        });
    }
    group.finish();

    pass_after_edit(c, &boards, &ctx);
}

/// A group timing `parse` of each text, named by its board's task count.
fn parse_group<'t>(
    c: &mut Criterion,
    name: &str,
    texts: impl Iterator<Item = (usize, &'t str)>,
    parse: fn(&str) -> Board,
) {
    let mut group = c.benchmark_group(name);
    for (n, text) in texts {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| parse(black_box(text)))
        });
    }
    group.finish();
}

/// The context of a healthy board: its routes configured, its claims recent.
fn healthy(routes: &std::collections::BTreeSet<String>) -> LintContext<'_> {
    LintContext {
        now: chrono::DateTime::parse_from_rfc3339("2026-04-20T16:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
        stale_after: std::time::Duration::from_secs(7200),
        routes: Some(routes),
        longest_backoff: None,
        conflict_markers: None,
    }
}

/// The board after a person's one-line save: a description line of a task a third of the way
/// down reworded.
fn edited(text: &str, tasks: usize) -> String {
    let heading = format!("### TASK-{:05}:", tasks / 3 + 1);
    let at = text.find(&heading).unwrap();
    let line = "then hand it over to **review**.";
    let at = at + text[at..].find(line).unwrap();
    format!(
        "{}then hand it over to **the team**.{}",
        &text[..at],
        &text[at + line.len()..]
    )
}

/// The pass after a one-line save: `Board::reparse` from the previous pass's board (cloned
/// outside the timing, as the runtime would move it in), then lint and one writeback. The new
/// board and text are kept for the next pass, so they are dropped outside the timing.
fn pass_after_edit(c: &mut Criterion, boards: &[(usize, String)], ctx: &LintContext) {
    let mut group = c.benchmark_group("pass_after_edit");
    for (n, text) in boards {
        let new = edited(text, *n);
        let board = Board::parse(text);
        assert_eq!(board.clone().reparse(text, &new), Board::parse(&new));
        let changes = [change(*n)];
        group.throughput(Throughput::Bytes(new.len() as u64));
        group.bench_with_input(BenchmarkId::new("reparse", n), &new, |b, new| {
            b.iter_batched(
                || board.clone(),
                |board| board.reparse(text, black_box(new)),
                BatchSize::LargeInput,
            )
        });
        group.bench_with_input(
            BenchmarkId::new("reparse_lint_writeback", n),
            &new,
            |b, new| {
                b.iter_batched(
                    || board.clone(),
                    |board| {
                        let board = board.reparse(text, black_box(new));
                        black_box(lint(new, &board, ctx));
                        let outcome = apply(new, &board, &changes);
                        // The runtime keeps both for the next pass: drop them untimed.
                        (board, outcome)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(core, benches);

/// `TASKBOARD_BENCH_ONCE=10000 <bench binary>` runs parse + lint + one writeback once on a board
/// of that many tasks and exits, for an instruction count under
/// `valgrind --tool=callgrind`; without it, the criterion benchmarks run. With
/// `TASKBOARD_BENCH_ON_CORES=1` as well, the parse and the lint are the runtime's, on every
/// core (the count is then of every thread's instructions).
fn main() {
    if let Some(n) = std::env::var("TASKBOARD_BENCH_ONCE")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return once(n);
    }
    core();
    Criterion::default().configure_from_args().final_summary();
}

fn once(tasks: usize) {
    let text = board_text(tasks);
    let changes = [change(tasks)];
    let routes: std::collections::BTreeSet<String> =
        ["default".to_string(), "review".to_string()].into();
    let ctx = healthy(&routes);
    let (board, findings) = match std::env::var_os("TASKBOARD_BENCH_ON_CORES") {
        Some(_) => {
            let board = parse_board(black_box(&text));
            let findings = lint_findings(&text, &board, &ctx, None);
            (board, findings)
        }
        None => {
            let board = Board::parse(black_box(&text));
            let findings = lint(&text, &board, &ctx);
            (board, findings)
        }
    };
    black_box(findings);
    let outcome = apply(&text, &board, &changes);
    assert_eq!(outcome.applied.len(), 1);
    black_box((board, outcome));
}
