//! Holding off a board that carries unresolved git conflict markers.
//!
//! After a `git pull` in which both sides changed the board, the file holds both versions
//! between marker lines (see `board::conflict_markers`). Planning on it would run a task from
//! one side and write statuses into a file a person is about to resolve, so a pass on such a
//! board plans nothing and writes nothing: endings already in hand wait in their tasks' records
//! (as they do for an unreadable board) and go out with the first pass after the conflict is
//! resolved.

use super::Runtime;
use crate::board::{Board, conflict_markers, conflict_regions};
use crate::fsio::Snapshot;

impl Runtime {
    /// Whether this pass must stop at the board it read because of conflict markers. When it
    /// must, no wake-up is due (the endings in hand stay in their records for the resolving
    /// save), and a board content not seen before has been reported: one `error` event (context
    /// `board`) and its lint findings.
    pub(super) fn held_by_conflict(&mut self, snap: &Snapshot) -> bool {
        let markers = conflict_markers(&snap.text);
        let Some(first) = markers.first() else {
            return false;
        };
        let line = first.line;
        // No time-based rule applies to a board that is not acted on: a retry falling due
        // meanwhile must not wake the loop into re-reading it back to back. The save that
        // resolves the conflict plans again.
        self.wake_at = None;
        if self.last_hash != Some(snap.hash) {
            // Once per conflicted content, not on every rescan or retry of a write.
            self.last_hash = Some(snap.hash);
            let regions = conflict_regions(&markers);
            self.error(
                None,
                "board",
                format!(
                    "{}: unresolved git conflict markers ({regions} conflict{}, the first at line {line}); nothing runs and nothing is written until they are resolved",
                    self.board.display(),
                    if regions == 1 { "" } else { "s" }
                ),
            );
            let board = Board::parse(&snap.text);
            let now = self.now();
            self.report_findings(&snap.text, &board, now);
        }
        true
    }
}
