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
    /// The note of the review that last sent this task back, for its next packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_feedback: Option<String>,
    /// Spend reported by this task's runs, in US dollars.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost_usd: f64,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// `review` for a review run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// This attempt's section of `handoffs/<ID>.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
    /// Files git saw change during the run (repository-relative), when in a work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// How many days of per-route spend are kept.
const SPEND_DAYS_KEPT: usize = 90;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    tasks: BTreeMap<String, TaskRecord>,
    /// UTC day (`YYYY-MM-DD`) → route → reported spend in US dollars.
    #[serde(default)]
    spend: BTreeMap<String, BTreeMap<String, f64>>,
}

pub struct Store {
    path: PathBuf,
    pub tasks: BTreeMap<String, TaskRecord>,
    pub spend: BTreeMap<String, BTreeMap<String, f64>>,
    dirty: bool,
}

impl Store {
    /// Loads the state file; a missing file is an empty state, a corrupt one is set aside as
    /// `state.json.corrupt-<ts>` and reported in the returned warning.
    pub fn load(path: &Path) -> (Store, Option<String>) {
        let mut warning = None;
        let file = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(file) => file,
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
                    StateFile::default()
                }
            },
            Err(_) => StateFile::default(),
        };
        (
            Store {
                path: path.to_path_buf(),
                tasks: file.tasks,
                spend: file.spend,
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

    /// Reads the state without ever moving a corrupt file aside (for read-only commands).
    pub fn peek(path: &Path) -> BTreeMap<String, TaskRecord> {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StateFile>(&b).ok())
            .map(|f| f.tasks)
            .unwrap_or_default()
    }

    /// Spend per route on a UTC day.
    pub fn spend_on(&self, day: chrono::NaiveDate) -> BTreeMap<String, f64> {
        self.spend
            .get(&day.format("%Y-%m-%d").to_string())
            .cloned()
            .unwrap_or_default()
    }

    pub fn add_spend(&mut self, day: chrono::NaiveDate, route: &str, usd: f64) {
        *self
            .spend
            .entry(day.format("%Y-%m-%d").to_string())
            .or_default()
            .entry(route.to_string())
            .or_default() += usd;
        while self.spend.len() > SPEND_DAYS_KEPT {
            self.spend.pop_first();
        }
        self.dirty = true;
    }

    /// The state file now lives at `path` (the board's folder moved, or the state folder was
    /// removed): the next save writes everything there, changed or not.
    pub fn move_to(&mut self, path: &Path) {
        self.path = path.to_path_buf();
        self.dirty = true;
    }

    /// Writes the file if anything changed since the last save.
    pub fn save(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let file = StateFile {
            version: 1,
            tasks: std::mem::take(&mut self.tasks),
            spend: std::mem::take(&mut self.spend),
        };
        let json = serde_json::to_vec(&file);
        self.tasks = file.tasks;
        self.spend = file.spend;
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
