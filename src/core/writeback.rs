//! Byte-exact writeback: new text in which only the targeted status values changed.
//!
//! Owns splicing status tokens into board text as compare-and-swap by task ID. It is pure (text
//! in, text out); putting the result on disk atomically is `fsio`'s job, and deciding what to
//! change is the planner's. Every byte outside the replaced status values is kept as it was:
//! line endings, BOM, tabs, trailing spaces, backticks around the value, a missing final newline.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use crate::core::board::{Board, Edit, Task};
use crate::core::status::Status;

/// Set task `id` to `new`, provided its status is still `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub expected: Status,
    pub new: Status,
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No task with this ID is on the board any more.
    NotFound,
    /// More than one task has this ID: writing one of them would be a guess.
    Ambiguous,
    /// The task has no status field, or its ID is not usable.
    NoStatus,
    /// The status is no longer what the change expected: someone else changed it.
    Mismatch { found: String },
    /// Two changes in one set target the same task.
    Duplicate,
    /// The result did not re-parse to the intended statuses (never expected; nothing written).
    Unverified,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotFound => f.write_str("the task is no longer on the board"),
            Refusal::Ambiguous => f.write_str("more than one task has this ID"),
            Refusal::NoStatus => f.write_str("the task has no usable status field"),
            Refusal::Mismatch { found } => write!(f, "its status is now `{found}`"),
            Refusal::Duplicate => f.write_str("another change in the same write targets it"),
            Refusal::Unverified => f.write_str("the written board did not re-parse as intended"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub text: String,
    pub applied: Vec<Change>,
    pub refused: Vec<(Change, Refusal)>,
    /// The status values replaced, in the order of the text: what
    /// [`Board::reparse_edits`] takes to re-parse `text` around them only.
    pub edits: Vec<Edit>,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.applied.is_empty()
    }
}

/// Applies `changes` to `text` (which `board` was parsed from). A change whose task's current
/// status differs from `expected` is refused, not applied.
pub fn apply(text: &str, board: &Board, changes: &[Change]) -> Outcome {
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    // (status range, new token, the task's block range), for each change to apply.
    let mut splices: Vec<(Range<usize>, String, Range<usize>)> = Vec::new();
    let by_id = tasks_named(board, changes);
    let mut seen: HashSet<&str> = HashSet::with_capacity(changes.len());

    for change in changes {
        if !seen.insert(change.id.as_str()) {
            refused.push((change.clone(), Refusal::Duplicate));
            continue;
        }
        let verdict = match by_id.get(change.id.as_str()) {
            None => Err(Refusal::NotFound),
            Some((_, true)) => Err(Refusal::Ambiguous),
            Some((task, _)) => match (&task.id_problem, &task.status) {
                (None, Some(field)) => match &field.parsed {
                    Ok(current) if *current == change.expected => {
                        Ok((field.range.clone(), task.block.clone()))
                    }
                    _ => Err(Refusal::Mismatch {
                        found: field.raw.to_string(),
                    }),
                },
                _ => Err(Refusal::NoStatus),
            },
        };
        match verdict {
            Ok((range, block)) => {
                splices.push((range, change.new.to_string(), block));
                applied.push(change.clone());
            }
            Err(why) => refused.push((change.clone(), why)),
        }
    }

    if splices.is_empty() {
        return Outcome {
            text: text.to_string(),
            applied,
            refused,
            edits: Vec::new(),
        };
    }
    let mut order: Vec<usize> = (0..splices.len()).collect();
    order.sort_by_key(|&i| splices[i].0.start);
    let growth: usize = splices.iter().map(|(_, s, _)| s.len()).sum();
    let mut out = String::with_capacity(text.len() + growth);
    let mut at = 0;
    // Where each splice ends in the old text, and the total shift after it.
    let mut shifts: Vec<(usize, isize)> = Vec::with_capacity(splices.len());
    let mut edits = Vec::with_capacity(splices.len());
    let mut shift = 0isize;
    for &i in &order {
        let (range, new, _) = &splices[i];
        out.push_str(&text[at..range.start]);
        out.push_str(new);
        at = range.end;
        shift += new.len() as isize - range.len() as isize;
        shifts.push((range.end, shift));
        edits.push(Edit {
            replaced: range.clone(),
            len: new.len(),
        });
    }
    out.push_str(&text[at..]);
    // An offset of the old text in the new one: moved by every splice that ends at or before it.
    let moved = |x: usize| {
        let n = shifts.partition_point(|(end, _)| *end <= x);
        let by = if n == 0 { 0 } else { shifts[n - 1].1 };
        (x as isize + by) as usize
    };
    let blocks: Vec<Range<usize>> = splices
        .iter()
        .map(|(_, _, b)| moved(b.start)..moved(b.end))
        .collect();

    if !verify(&out, &applied, &blocks) {
        let refused = applied
            .into_iter()
            .map(|c| (c, Refusal::Unverified))
            .chain(refused)
            .collect();
        return Outcome {
            text: text.to_string(),
            applied: Vec::new(),
            refused,
            edits: Vec::new(),
        };
    }
    Outcome {
        text: out,
        applied,
        refused,
        edits,
    }
}

/// The first task with each ID the changes name, and whether another has it too: through the
/// board's index where a step before made it (the planner's lookups do, and a re-parse keeps it
/// while every task keeps its ID and place), otherwise in one walk of the tasks, which costs
/// less than making the index for a few changes.
fn tasks_named<'b>(board: &'b Board, changes: &'b [Change]) -> HashMap<&'b str, (&'b Task, bool)> {
    if board.ids_indexed() {
        return changes
            .iter()
            .filter_map(|c| {
                let mut found = board.with_id(&c.id);
                let first = found.next()?;
                Some((c.id.as_str(), (first, found.next().is_some())))
            })
            .collect();
    }
    let mut wanted: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut by_id: HashMap<&str, (&Task, bool)> = HashMap::with_capacity(wanted.len());
    for task in &board.tasks {
        if wanted.binary_search(&task.id.as_str()).is_ok() {
            by_id
                .entry(task.id.as_str())
                .and_modify(|(_, more)| *more = true)
                .or_insert((task, false));
        }
    }
    by_id
}

/// Re-parses each changed task's block in the result: it must still start with that task, now
/// with the new status. A task's block starts at a top-level heading, where no container is
/// open, so it parses alone exactly as it does in the whole board; this costs the size of the
/// changed blocks, not of the board. Bytes outside the status values are copied, not parsed.
fn verify(out: &str, applied: &[Change], blocks: &[Range<usize>]) -> bool {
    applied.iter().zip(blocks).all(|(c, block)| {
        let Some(sub) = out.get(block.clone()) else {
            return false;
        };
        Board::parse(sub)
            .tasks
            .first()
            .is_some_and(|t| t.id == c.id && t.status() == Some(&c.new))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, expected: &str, new: &str) -> Change {
        Change {
            id: id.into(),
            expected: Status::parse(expected).unwrap(),
            new: Status::parse(new).unwrap(),
        }
    }

    #[test]
    fn only_the_status_bytes_change() {
        let text = "\u{FEFF}# Board\r\n\r\n## A-1: one\t \r\n- status: `ready`  \r\n- route: x\n\n## B-2 two\n- **Status**: blocked:task:A-1\ndesc ü\n## C-3\n- status: done";
        let board = Board::parse(text);
        let out = apply(
            text,
            &board,
            &[
                change("A-1", "ready", "running:taskboard:2026-04-20T15:25:07Z"),
                change("C-3", "done", "ready"),
            ],
        );
        assert_eq!(out.applied.len(), 2);
        assert!(out.refused.is_empty());
        let expected = text
            .replace("`ready`", "`running:taskboard:2026-04-20T15:25:07Z`")
            .replace("- status: done", "- status: ready");
        assert_eq!(out.text, expected);
    }

    #[test]
    fn no_changes_is_identity() {
        let text = "## A-1\n- status: ready";
        let out = apply(text, &Board::parse(text), &[]);
        assert_eq!(out.text, text);
        assert!(!out.changed());
    }

    #[test]
    fn mismatch_missing_duplicate_and_ambiguous_are_refused() {
        // The same with and without the board's index by ID (a walk of the tasks without).
        for indexed in [false, true] {
            let text = "## A-1\n- status: done\n## B-1\n- status: ready\n## B-1\n- status: ready\n## C-1\nno fields\n";
            let board = Board::parse(text);
            if indexed {
                assert!(board.task("A-1").is_some() && board.ids_indexed());
            }
            assert_eq!(board.ids_indexed(), indexed);
            let out = apply(
                text,
                &board,
                &[
                    change("A-1", "ready", "running:x:2026-04-20T15:25Z"),
                    change("B-1", "ready", "done"),
                    change("C-1", "ready", "done"),
                    change("Z-9", "ready", "done"),
                ],
            );
            assert_eq!(out.text, text);
            let why: Vec<_> = out
                .refused
                .iter()
                .map(|(c, r)| (c.id.as_str(), r.clone()))
                .collect();
            assert_eq!(
                why,
                vec![
                    (
                        "A-1",
                        Refusal::Mismatch {
                            found: "done".into()
                        }
                    ),
                    ("B-1", Refusal::Ambiguous),
                    ("C-1", Refusal::NoStatus),
                    ("Z-9", Refusal::NotFound),
                ]
            );
            let out = apply(
                text,
                &board,
                &[
                    change("A-1", "done", "ready"),
                    change("A-1", "done", "failed:x"),
                ],
            );
            assert_eq!(out.refused[0].1, Refusal::Duplicate);
            assert_eq!(
                out.text,
                text.replacen("- status: done", "- status: ready", 1)
            );
        }
    }
}
