//! A board text and a seed that picks a change set over the board's actionable tasks. The
//! writer must land exactly those changes, refuse the stale ones, and keep every other byte.
//!
//! Input layout: `<board text>\0<seed bytes>`. Each seed byte, in turn, drives one actionable
//! task with a unique ID: bit 0 set = change it; bits 1..5 pick the new status; bits 5..8 all
//! set = send a stale expectation, which must be refused. Without a `\0`, every such task is
//! changed to the first status of the palette. The board the runtime keeps after such a write,
//! re-parsed at its edits from the board before (its index by ID made), must equal the full
//! parse and find every task by its ID.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use taskboard::core::board::Board;
use taskboard::core::status::Status;
use taskboard::core::writeback::{Change, Refusal, apply};

const PALETTE: &[&str] = &[
    "done",
    "ready",
    "running:taskboard:2026-04-20T15:25:07Z",
    "running:agent-a4b:2026-04-20T15:25Z",
    "blocked:retry:2026-04-20T15:25:07Z",
    "blocked:task:TASK-015,T-0147,OPS_2-3",
    "blocked:siyao:needs the portfolio URL",
    "blocked:ops:wait:for:dns",
    "failed:exit 3: compile error",
    "failed:exhausted_retries",
    "failed:ü 🚀 中文 <!-- x",
    "failed:**x** | y # z",
    "failed:a\\",
    "failed:[x]: /u",
    "failed:<div>",
    "failed:&amp; _x_ ~~y~~",
];

fuzz_target!(|data: &[u8]| {
    let (text, seed) = match data.iter().rposition(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let palette: Vec<Status> = PALETTE.iter().map(|s| Status::parse(s).unwrap()).collect();
    let board = Board::parse(text);
    let _ = board.duplicated_ids();

    let mut count: HashMap<&str, usize> = HashMap::new();
    for t in &board.tasks {
        *count.entry(t.id.as_str()).or_default() += 1;
    }
    let targets = board
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_actionable() && count[t.id.as_str()] == 1);

    let mut changes = Vec::new();
    let mut landing = Vec::new(); // (task index, new status) for the changes that must apply
    let mut stale = 0;
    for (n, (i, task)) in targets.enumerate() {
        let b = if seed.is_empty() {
            1
        } else {
            seed[n % seed.len()]
        };
        if b & 1 == 0 {
            continue;
        }
        let new = palette[(b as usize >> 1) % 16].clone();
        let current = task.status().unwrap().clone();
        if b >> 5 == 0b111 {
            let wrong = palette.iter().find(|s| **s != current).unwrap().clone();
            changes.push(Change {
                id: task.id.to_string(),
                expected: wrong,
                new,
            });
            stale += 1;
        } else {
            changes.push(Change {
                id: task.id.to_string(),
                expected: current,
                new: new.clone(),
            });
            landing.push((i, new));
        }
    }

    let out = apply(text, &board, &changes);
    assert_eq!(
        out.applied.len(),
        landing.len(),
        "refused: {:?}",
        out.refused
    );
    assert_eq!(out.refused.len(), stale);
    assert!(
        out.refused
            .iter()
            .all(|(_, r)| matches!(r, Refusal::Mismatch { .. }))
    );

    // Every byte outside the changed ranges is identical, and the ranges hold the new tokens.
    let mut edits: Vec<_> = landing
        .iter()
        .map(|(i, new)| {
            (
                board.tasks[*i].status.as_ref().unwrap().range.clone(),
                new.to_string(),
            )
        })
        .collect();
    edits.sort_by_key(|(r, _)| r.start);
    let mut at_in = 0;
    let mut at_out = 0;
    let out_bytes = out.text.as_bytes();
    for (r, new) in &edits {
        let keep = &text.as_bytes()[at_in..r.start];
        assert_eq!(&out_bytes[at_out..at_out + keep.len()], keep);
        at_out += keep.len();
        assert_eq!(&out_bytes[at_out..at_out + new.len()], new.as_bytes());
        at_out += new.len();
        at_in = r.end;
    }
    assert_eq!(&out_bytes[at_out..], &text.as_bytes()[at_in..]);

    // Re-parsing shows the new statuses and the same tasks in the same order.
    let after = Board::parse(&out.text);
    let ids = |b: &Board| b.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&board));
    let kept = board.clone().reparse_edits(text, &out.text, &out.edits);
    assert_eq!(kept, after);
    for t in &after.tasks {
        let found: Vec<usize> = kept.with_id(&t.id).map(|u| u.heading.start).collect();
        let walked: Vec<usize> = (after.tasks.iter())
            .filter(|u| u.id == t.id)
            .map(|u| u.heading.start)
            .collect();
        assert_eq!(found, walked, "tasks named {:?}", t.id.as_str());
    }
    for (i, t) in after.tasks.iter().enumerate() {
        match landing.iter().find(|(j, _)| *j == i) {
            Some((_, new)) => assert_eq!(t.status(), Some(new)),
            None => assert_eq!(
                t.status.as_ref().map(|s| &s.parsed),
                board.tasks[i].status.as_ref().map(|s| &s.parsed)
            ),
        }
    }
});
