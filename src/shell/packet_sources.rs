//! Gathering a work packet's parts: the task's block from the board, its earlier attempts from
//! its record, and from disk the dependencies' latest handoffs, read without waiting on a FIFO.
//! The packet's layout and budget are `core::packet`'s. Writes nothing.

use std::path::Path;

use crate::core::board::Board;
use crate::core::handoff;
use crate::core::memory::TaskRecord;
use crate::core::packet;
use crate::shell::fsio;

/// Where a packet's parts come from: the board as it is, and the runtime's record of the task.
pub struct Source<'a> {
    pub board_dir: &'a Path,
    pub board: &'a Board,
    pub text: &'a str,
    pub record: Option<&'a TaskRecord>,
}

/// Gathers the packet for `id`'s attempt `attempt` (reading dependencies' `handoffs/` files)
/// and builds it. `review` is set for a review run. `None` when the task is not on the board.
pub fn assemble(
    src: &Source,
    id: &str,
    attempt: u32,
    review: Option<packet::Review>,
    budget: usize,
) -> Option<String> {
    let task = src.board.task(id)?;
    let deps = src
        .record
        .map(|r| r.deps.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|dep| {
            let t = src.board.task(dep)?;
            // Never waits on a FIFO put in the handoff's place: that reads as no handoff.
            let handoff = fsio::read_regular_to_string(&handoff::file_path(src.board_dir, dep))
                .ok()
                .and_then(|f| handoff::last_section(&f).map(str::to_string));
            Some(packet::Dep {
                id: dep.clone(),
                status: t
                    .status
                    .as_ref()
                    .map_or("no status".into(), |s| s.raw.to_string()),
                block: src.text[t.block.clone()].to_string(),
                handoff,
            })
        })
        .collect();
    let mut earlier: Vec<String> = src
        .record
        .map(|r| r.history.iter().filter_map(|a| a.handoff.clone()).collect())
        .unwrap_or_default();
    let review = review.map(|mut r| {
        // The attempt under review is the latest one: it is shown as the handoff, not history.
        if let Some(last) = earlier.pop() {
            r.handoff = last;
        }
        r
    });
    Some(packet::build(&packet::Input {
        id: id.to_string(),
        attempt,
        block: src.text[task.block.clone()].to_string(),
        deps,
        earlier,
        review_feedback: src.record.and_then(|r| r.review_feedback.clone()),
        review,
        budget,
    }))
}
