//! The files beside the board that the runtime writes besides the board itself: each
//! attempt's section of `handoffs/<ID>.md` and `deadletter/<ID>.json` (with its archive).
//!
//! Owns their paths and formats on disk. Reads the board (a deadletter keeps the task's block)
//! but never writes it; must not touch the state file or locks.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::Runtime;
use crate::core::event::EventKind;
use crate::core::handoff;
use crate::shell::fsio;
use crate::shell::parallel::parse_board;

impl Runtime {
    /// Appends one attempt's section to `handoffs/<ID>.md`; the path relative to the board's
    /// folder, or `None` (reported) when it cannot be written.
    pub(super) fn append_handoff(&self, id: &str, section: &str) -> Option<String> {
        use std::io::Write;
        let path = handoff::file_path(&self.board_dir, id);
        let open = || {
            use std::os::unix::fs::OpenOptionsExt;
            // Never wait on a FIFO someone put there: open without blocking, then insist on a
            // regular file.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&path)
        };
        let make_folder = || std::fs::create_dir_all(path.parent().unwrap_or(&self.board_dir));
        let result = fsio::open_making_folder(open, make_folder).and_then(|mut f| {
            let meta = f.metadata()?;
            fsio::ensure_regular(&meta)?;
            let header = if meta.len() == 0 {
                handoff::file_header(id)
            } else {
                String::new()
            };
            f.write_all(format!("{header}{section}").as_bytes())
        });
        match result {
            Ok(()) => Some(format!("handoffs/{id}.md")),
            Err(e) => {
                self.error(
                    Some(id),
                    "handoff",
                    format!("cannot write {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// Writes `deadletter/<ID>.json` (archiving an older one) with the task and its attempts.
    pub(super) fn deadletter(&mut self, id: &str, reason: &str, now: DateTime<Utc>) {
        let dir = self.board_dir.join("deadletter");
        let path = dir.join(format!("{id}.json"));
        let (title, block) = match fsio::read_board(&self.board) {
            Ok(snap) => {
                let board = parse_board(&snap.text);
                board
                    .task(id)
                    .map(|t| (t.title.to_string(), snap.text[t.block.clone()].to_string()))
                    .unwrap_or_default()
            }
            Err(_) => Default::default(),
        };
        let attempts = self
            .store
            .tasks()
            .get(id)
            .map(|r| r.history.clone())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "task": id,
            "title": title,
            "status": "failed:exhausted_retries",
            "reason": reason,
            "failed_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "attempts": attempts,
            "block": block,
        });
        let result = std::fs::create_dir_all(&dir).and_then(|_| {
            if path.exists() {
                archive_deadletter(&dir, id, now)?;
            }
            let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
            fsio::atomic_write(&path, &bytes)
        });
        match result {
            Ok(()) => self.emit(
                Some(id),
                EventKind::TaskDeadlettered {
                    attempts: attempts.len() as u32,
                    path: path.display().to_string(),
                },
            ),
            Err(e) => self.error(
                Some(id),
                "deadletter",
                format!("cannot write {}: {e}", path.display()),
            ),
        }
    }
}

/// Moves `deadletter/<ID>.json` to `deadletter/archive/<ID>-<time>.json`.
pub fn archive_deadletter(dir: &Path, id: &str, now: DateTime<Utc>) -> std::io::Result<PathBuf> {
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    let to = archive.join(format!("{id}-{}.json", now.format("%Y%m%dT%H%M%S%.3fZ")));
    std::fs::rename(dir.join(format!("{id}.json")), &to)?;
    Ok(to)
}
