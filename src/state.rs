//! What the runtime remembers between passes and across restarts: per-task attempt counts, its
//! own latest status and what that replaced, the dependencies a promoted task had, and each
//! attempt's record for the deadletter file.
//!
//! Owns `.taskboard/state.json` (written atomically). It never reads or writes the board.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::TaskMemory;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    #[serde(flatten)]
    pub memory: TaskMemory,
    /// The tasks it waited on before it was promoted: their blocks go into its packet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    /// The attempts of the current episode, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
    /// When the task was first found missing from the board (cleared when it is back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<DateTime<Utc>>,
}

/// How long a task may be absent from the board before its record is dropped. A read caught
/// mid-save can miss tasks that are still there; a day is far past any save.
pub const FORGET_MISSING_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// One attempt, as recorded by the runtime (not as claimed by the executor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub route: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// What the runtime made of it: `done`, `exit_3`, `timeout`, `bad_result`, …
    pub outcome: String,
    pub stderr_tail: String,
    pub run_dir: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    tasks: BTreeMap<String, TaskRecord>,
}

pub struct Store {
    path: PathBuf,
    pub tasks: BTreeMap<String, TaskRecord>,
    dirty: bool,
}

impl Store {
    /// Loads the state file; a missing file is an empty state, a corrupt one is set aside as
    /// `state.json.corrupt-<ts>` and reported in the returned warning.
    pub fn load(path: &Path) -> (Store, Option<String>) {
        let mut warning = None;
        let tasks = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(file) => file.tasks,
                Err(e) => {
                    let aside = path.with_extension(format!(
                        "json.corrupt-{}",
                        Utc::now().format("%Y%m%dT%H%M%S")
                    ));
                    let _ = std::fs::rename(path, &aside);
                    warning = Some(format!(
                        "{} was unreadable ({e}); moved to {} and starting with no memory of attempts",
                        path.display(),
                        aside.display()
                    ));
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        (
            Store {
                path: path.to_path_buf(),
                tasks,
                dirty: false,
            },
            warning,
        )
    }

    pub fn record_mut(&mut self, id: &str) -> &mut TaskRecord {
        self.dirty = true;
        self.tasks.entry(id.to_string()).or_default()
    }

    pub fn forget(&mut self, id: &str) {
        if self.tasks.remove(id).is_some() {
            self.dirty = true;
        }
    }

    pub fn memory(&self) -> BTreeMap<String, TaskMemory> {
        self.tasks
            .iter()
            .map(|(id, r)| (id.clone(), r.memory.clone()))
            .collect()
    }

    /// Notes which tasks are on the board now; drops records of tasks missing for longer
    /// than [`FORGET_MISSING_AFTER`].
    pub fn note_presence(&mut self, on_board: impl Fn(&str) -> bool, now: DateTime<Utc>) {
        let mut changed = false;
        self.tasks.retain(|id, rec| {
            if on_board(id) {
                changed |= rec.missing_since.take().is_some();
                return true;
            }
            let since = *rec.missing_since.get_or_insert_with(|| {
                changed = true;
                now
            });
            let keep = now - since < FORGET_MISSING_AFTER;
            changed |= !keep;
            keep
        });
        self.dirty |= changed;
    }

    /// Writes the file if anything changed since the last save.
    pub fn save(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let file = StateFile {
            version: 1,
            tasks: std::mem::take(&mut self.tasks),
        };
        let json = serde_json::to_vec_pretty(&file);
        self.tasks = file.tasks;
        crate::fsio::atomic_write(&self.path, &json.map_err(io::Error::other)?)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_read_that_misses_tasks_but_not_a_day_of_absence() {
        let path =
            std::env::temp_dir().join(format!("taskboard-state-{}.json", std::process::id()));
        let (mut store, _) = Store::load(&path);
        store.record_mut("A-1").memory.attempts = 2;
        let t0 = Utc::now();
        store.note_presence(|_| false, t0);
        assert_eq!(store.tasks["A-1"].memory.attempts, 2);
        store.note_presence(|_| true, t0 + chrono::TimeDelta::hours(1));
        assert_eq!(store.tasks["A-1"].missing_since, None);
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(2));
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(20));
        assert!(store.tasks.contains_key("A-1"));
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(27));
        assert!(!store.tasks.contains_key("A-1"));
    }
}
