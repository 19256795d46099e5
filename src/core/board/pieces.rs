//! Parsing a long board in pieces that do not depend on each other, so that the shell can parse
//! them at once on several cores ([`Board::parse_with`]).
//!
//! Owns where a board is cut ([`spans`]), the parse of one piece, and joining the pieces into
//! the board `Board::parse` gives; and [`Parallel`], how the core asks for independent jobs
//! to be run (lint shares a long board's tasks out the same way). Must not touch threads:
//! how the jobs are run is the caller's [`Parallel`].
//!
//! Why a piece parses alone exactly as in place: each one but the first starts at a top-level
//! ATX heading, where no container and no leaf block is open, which is what `Board::reparse`
//! relies on too. A cut is only a guess made from the bytes (a line that starts with `#`); the
//! piece before it is parsed on through the heading's line, and the guess stands only when that
//! line parses there as a top-level ATX heading of exactly that line. Since the piece itself
//! starts where nothing is open, it then is one in the whole board too. When a guess does not
//! stand (the line lies in a fence, an HTML block, a quote), the piece is parsed again together
//! with the next one, on through the cut after that.

use std::ops::Range;

use super::{
    Block, BlockKind, Board, Glance, SharedCopy, Task, TaskLevels, TasksById, block_end,
    for_each_newline,
};
use super::{markdown_start, task_at, top_level_blocks};

/// The least text worth a piece of its own: below it, starting a thread costs about what the
/// piece's parse saves (a parse takes about 10 ns a byte; a thread's start and join, tens of
/// microseconds).
pub const LEAST_PIECE: usize = 128 * 1024;

/// How independent pieces of pure work are run: one after another, or at once. The core only
/// asks; threads are the shell's (`shell::parallel::Cores`).
pub trait Parallel {
    /// How many pieces at most are worth running at once.
    fn width(&self) -> usize;

    /// The least text worth a piece of its own.
    fn least_piece(&self) -> usize {
        LEAST_PIECE
    }

    /// The fewest tasks worth a share of their own, for work done task by task (lint): below
    /// it, starting a thread costs about what the share saves.
    fn least_tasks(&self) -> usize {
        LEAST_TASKS
    }

    /// Runs every job; their results in the jobs' order.
    fn run_all<T: Send, F: FnOnce() -> T + Send>(&self, jobs: Vec<F>) -> Vec<T>;
}

/// Lint's checks take about 0.2 µs a task, a thread's start and join tens of microseconds.
pub const LEAST_TASKS: usize = 2_000;

/// Every job on the caller's thread, in order: for work that is not worth a thread.
pub struct Serial;

impl Parallel for Serial {
    fn width(&self) -> usize {
        1
    }

    fn run_all<T: Send, F: FnOnce() -> T + Send>(&self, jobs: Vec<F>) -> Vec<T> {
        jobs.into_iter().map(|job| job()).collect()
    }
}

/// The pieces run one after another on the caller's thread, last to first, with pieces as
/// small as `least_piece` bytes: a parse in pieces that depended on the order its pieces ran in,
/// or on where they were cut, would show. For checking the cut; `Board::parse` parses in one.
pub struct Backwards {
    pub width: usize,
    pub least_piece: usize,
}

impl Parallel for Backwards {
    fn width(&self) -> usize {
        self.width
    }

    fn least_piece(&self) -> usize {
        self.least_piece
    }

    /// One task: shares as small as the width allows.
    fn least_tasks(&self) -> usize {
        1
    }

    fn run_all<T: Send, F: FnOnce() -> T + Send>(&self, jobs: Vec<F>) -> Vec<T> {
        let mut done: Vec<T> = jobs.into_iter().rev().map(|job| job()).collect();
        done.reverse();
        done
    }
}

/// A piece of a board's text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Span {
    /// What the piece holds: from its first byte (a heading's, but for the first piece) to the
    /// next piece's.
    pub(super) own: Range<usize>,
    /// Where its parse ends: past the next piece's heading line, which must parse as a
    /// top-level ATX heading; the end of the text for the last piece.
    pub(super) through: usize,
}

/// The parse of one [`Span`]: blocks and items of its own text, its tasks and line starts.
pub(super) struct Piece {
    /// Where its own text starts.
    start: usize,
    blocks: Vec<Block>,
    items: Vec<usize>,
    tasks: Vec<Task>,
    line_starts: Vec<usize>,
}

impl Board {
    /// The board of `text`, always equal to `Board::parse(text)`; a long text is cut into up to
    /// `parallel.width()` pieces of at least `parallel.least_piece()` bytes, parsed as
    /// `parallel` runs them.
    pub fn parse_with(text: &str, parallel: &impl Parallel) -> Board {
        let base = markdown_start(text);
        let most = (text.len() - base) / parallel.least_piece().max(1);
        // A short board asks nothing of `parallel` (the shell's count of cores reads files).
        if most < 2 {
            return Board::parse(text);
        }
        let spans = spans(text, base, parallel.width().min(most));
        if spans.len() < 2 {
            return Board::parse(text);
        }
        let jobs = spans.iter().map(|span| move || parse_piece(text, span));
        let pieces = parallel.run_all(jobs.collect());
        join(text, mend(text, &spans, pieces))
    }
}

/// The pieces that stand, with each span whose cut did not stand parsed again together with
/// the span after it (whose parse, begun where something was open, is dropped), until the
/// cut after them stands. The last span's parse always stands.
fn mend(text: &str, spans: &[Span], parsed: Vec<Option<Piece>>) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(spans.len());
    let mut parsed = parsed.into_iter();
    let mut k = 0;
    while let Some(piece) = parsed.next() {
        match piece {
            Some(piece) => pieces.push(piece),
            None => {
                let mut span = spans[k].clone();
                loop {
                    k += 1;
                    parsed.next();
                    span.own.end = spans[k].own.end;
                    span.through = spans[k].through;
                    if let Some(piece) = parse_piece(text, &span) {
                        pieces.push(piece);
                        break;
                    }
                }
            }
        }
        k += 1;
    }
    pieces
}

/// The board of `text` parsed as one piece.
pub(super) fn parse_whole(text: &str) -> Board {
    let span = Span {
        own: markdown_start(text)..text.len(),
        through: text.len(),
    };
    // The last piece has no heading to check, so its parse always stands.
    let piece = parse_piece(text, &span).unwrap_or_else(|| unreachable!("a last piece stands"));
    join(text, vec![piece])
}

/// Up to `n` spans that cover `text` from `base`, each after the first starting at a line that
/// opens with `#` and ends in `\n` (only `\n` bounds what a line's parse reads: pulldown-cmark
/// reads a fence's info string past a lone `\r`). Cuts are made near equal shares of the text.
pub(super) fn spans(text: &str, base: usize, n: usize) -> Vec<Span> {
    let len = text.len();
    let mut cuts = vec![base];
    for k in 1..n {
        let target = base + (len - base) * k / n;
        let last = cuts[cuts.len() - 1];
        match heading_line_from(text, target.max(last + 1)) {
            Some(at) if at < len => cuts.push(at),
            _ => break,
        }
    }
    let line_end = |at: usize| at + text[at..].find('\n').map_or(len - at, |i| i + 1);
    (0..cuts.len())
        .map(|k| match cuts.get(k + 1) {
            Some(&next) => Span {
                own: cuts[k]..next,
                through: line_end(next),
            },
            None => Span {
                own: cuts[k]..len,
                through: len,
            },
        })
        .collect()
}

/// The start of the first line at or after `from` (past the text's first byte) that may be an
/// ATX heading: it opens with one to six `#` and a blank or the line's end, and ends in `\n`.
fn heading_line_from(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = from.max(1);
    while at < bytes.len() {
        let start = at + bytes[at - 1..].windows(2).position(|w| w == b"\n#")?;
        let hashes = bytes[start..].iter().take_while(|&&b| b == b'#').count();
        let after = bytes.get(start + hashes).copied();
        let opens = hashes <= 6 && matches!(after, Some(b' ' | b'\t' | b'\r' | b'\n'));
        if opens && bytes[start..].contains(&b'\n') {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// The parse of `span`: `None` when the heading line past its own text does not parse as a
/// top-level ATX heading of exactly that line, so that the next piece may not start there.
fn parse_piece(text: &str, span: &Span) -> Option<Piece> {
    let (mut blocks, items) = top_level_blocks(&text[span.own.start..span.through], span.own.start);
    // The next piece's heading stays among the blocks while the tasks are found: it ends the
    // blocks of the tasks of its level or deeper.
    let closed = span.through != span.own.end;
    if closed {
        let closing = blocks.last()?;
        let atx = matches!(closing.kind, BlockKind::Heading { atx: true, .. });
        if !atx || closing.range != (span.own.end..span.through) {
            return None;
        }
    }
    let own = blocks.len() - usize::from(closed);
    // At most one task per ATX heading: sized once, not grown by copying (a task is ~200 bytes).
    let headings = blocks[..own]
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Heading { atx: true, .. }))
        .count();
    let mut tasks = Vec::with_capacity(headings);
    // The pieces' tasks share a copy of their own span, not of the whole text.
    let source = SharedCopy::new(text, span.own.clone());
    tasks.extend((0..own).filter_map(|i| task_at(text, &source, &blocks, &items, i)));
    blocks.truncate(own);
    // About one line per 20 bytes on a board: reserved once rather than regrown by copying.
    let mut line_starts = Vec::with_capacity(span.own.len() / 20 + 1);
    let at = span.own.start;
    if at == markdown_start(text) {
        line_starts.push(0);
    }
    for_each_newline(text[span.own.clone()].as_bytes(), |i| {
        line_starts.push(at + i + 1)
    });
    Some(Piece {
        start: at,
        blocks,
        items,
        tasks,
        line_starts,
    })
}

/// The board of `text` from its pieces, in order. The first piece's vectors become the
/// board's, so a board of one piece is not copied.
fn join(text: &str, pieces: Vec<Piece>) -> Board {
    let total = |f: fn(&Piece) -> usize| pieces[1..].iter().map(f).sum::<usize>();
    let more = (total(|p| p.tasks.len()), total(|p| p.blocks.len()));
    let more_lines = total(|p| p.line_starts.len());
    let more_items = total(|p| p.items.len());
    let last_start = pieces.last().map_or(0, |p| p.start);
    let mut pieces = pieces.into_iter();
    let Some(first) = pieces.next() else {
        unreachable!("a text has at least one piece")
    };
    let mut board = Board {
        tasks: first.tasks,
        line_starts: first.line_starts,
        blocks: first.blocks,
        items: first.items,
        ids: TasksById::default(),
        levels: TaskLevels::default(),
        glances: Vec::new(),
    };
    board.tasks.reserve_exact(more.0);
    board.blocks.reserve_exact(more.1);
    board.line_starts.reserve_exact(more_lines);
    board.items.reserve_exact(more_items);
    for piece in pieces {
        let shift = board.items.len();
        board.blocks.extend(piece.blocks.into_iter().map(|mut b| {
            b.items = b.items.start + shift..b.items.end + shift;
            b
        }));
        board.items.extend(piece.items);
        board.line_starts.extend(piece.line_starts);
        board.tasks.extend(piece.tasks);
    }
    board.levels = TaskLevels::of(&board.tasks);
    board.glances = board.tasks.iter().map(Glance::of).collect();
    // A task before the last piece whose block reaches past its own piece was found to run to
    // the text's end: its end is found again among all the blocks.
    let Board { tasks, blocks, .. } = &mut board;
    let reaching = (tasks.iter_mut())
        .take_while(|t| t.heading.start < last_start)
        .filter(|t| t.block.end == text.len());
    for task in reaching {
        let at = blocks.partition_point(|b| b.range.start < task.heading.start);
        task.block.end = block_end(text, blocks, at, task.level);
    }
    board
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backwards(width: usize) -> Backwards {
        Backwards {
            width,
            least_piece: 1,
        }
    }

    const BOARD: &str = "\u{FEFF}# Board\n\n## B-0 Doing\n- status: ready\n\n### A-1 First\n- status: ready\n\nText.\n\n### A-2 Second\n- status: done\n- depends-on: A-1\n\n## B-1 Later\n- status: done\n\n### A-3 Third\n- status: `blocked:task:A-2`\n\n```\n# not a heading\n### A-9 inside a fence\n- status: ready\n```\n\n### A-4 Fourth\n- status: ready\n";

    #[test]
    fn pieces_of_a_board_join_into_its_parse() {
        let mut mended = 0;
        for n in 1..12 {
            let spans = spans(BOARD, 3, n);
            let parsed: Vec<Option<Piece>> = spans.iter().map(|s| parse_piece(BOARD, s)).collect();
            // A cut at the `#` lines in the fence does not stand.
            mended += usize::from(parsed.iter().any(Option::is_none));
            let joined = join(BOARD, mend(BOARD, &spans, parsed));
            assert_eq!(joined, Board::parse(BOARD), "{n} pieces");
            assert_eq!(Board::parse_with(BOARD, &backwards(n)), Board::parse(BOARD));
        }
        assert!(mended > 0, "no cut fell in the fence");
        // Task B-0's block runs on past the piece that holds its heading.
        let spans = spans(BOARD, 3, 8);
        assert!(
            spans
                .iter()
                .any(|s| BOARD[s.own.clone()].starts_with("### A-2"))
        );
        let b0 = &Board::parse(BOARD).tasks[0];
        assert!(BOARD[b0.block.clone()].ends_with("- depends-on: A-1\n\n"));
    }

    #[test]
    fn a_cut_inside_a_fence_does_not_stand_and_is_parsed_with_the_next_piece() {
        let fence = BOARD.find("# not").unwrap();
        let through = |at: usize| at + BOARD[at..].find('\n').unwrap() + 1;
        let four = BOARD.find("### A-4").unwrap();
        let spans = [
            Span {
                own: 3..fence,
                through: through(fence),
            },
            Span {
                own: fence..four,
                through: through(four),
            },
            Span {
                own: four..BOARD.len(),
                through: BOARD.len(),
            },
        ];
        let parsed: Vec<Option<Piece>> = spans.iter().map(|s| parse_piece(BOARD, s)).collect();
        assert!(parsed[0].is_none());
        // Begun inside the fence, the middle piece takes its closing fence for an opening one.
        assert!(parsed[1].is_none());
        // The first two as one, then the last.
        let pieces = mend(BOARD, &spans, parsed);
        assert_eq!(pieces.len(), 2);
        let board = join(BOARD, pieces);
        assert_eq!(board, Board::parse(BOARD));
        assert!(!board.tasks.iter().any(|t| t.id == "A-9"));
    }

    #[test]
    fn cuts_fall_on_lines_that_open_with_a_hash_and_end_in_a_newline() {
        let text = "x\n#no\n####### seven\n# last";
        assert_eq!(heading_line_from(text, 0), None);
        let text = "x\n#no\n## yes\n";
        assert_eq!(heading_line_from(text, 1), Some(6));
        for span in spans(BOARD, 3, 6).iter().skip(1) {
            assert_eq!(&BOARD[span.own.start..span.own.start + 1], "#");
            assert!(BOARD[..span.through].ends_with('\n'));
        }
    }
}
