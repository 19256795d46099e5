//! Holding off a board that carries unresolved git conflict markers.
//!
//! After a `git pull` in which both sides changed the board, the file holds both versions
//! between marker lines (see `board::conflict_markers`). Planning on it would run a task from
//! one side and write statuses into a file a person is about to resolve, so a pass on such a
//! board plans nothing and writes nothing: endings already in hand wait in their tasks' records
//! (as they do for an unreadable board) and go out with the first pass after the conflict is
//! resolved.

use super::Runtime;
use crate::core::board::{conflict_markers, conflict_summary};
use crate::shell::fsio::BoardRead;
use crate::shell::parallel::parse_board;

impl Runtime {
    /// Whether this pass must stop at the board it read because of conflict markers. When it
    /// must, no wake-up is due (the endings in hand stay in their records for the resolving
    /// save), and a board content not seen before has been reported: one `error` event (context
    /// `board`) and its lint findings.
    pub(super) fn held_by_conflict(&mut self, snap: &BoardRead) -> bool {
        let markers = conflict_markers(&snap.text);
        let Some(summary) = conflict_summary(&markers) else {
            return false;
        };
        // No time-based rule applies to a board that is not acted on: a retry falling due
        // meanwhile must not wake the loop into re-reading it back to back. The save that
        // resolves the conflict plans again.
        self.wake_at = None;
        if self.last_hash != Some(snap.hash) {
            // Once per conflicted content, not on every rescan or retry of a write.
            self.last_hash = Some(snap.hash);
            self.error(
                None,
                "board",
                format!(
                    "{}: {summary}; nothing runs and nothing is written until they are resolved",
                    self.board.display()
                ),
            );
            let board = parse_board(&snap.text);
            let now = self.now();
            self.report_findings(&snap.text, &board, &markers, now);
        }
        true
    }
}
