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
}

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

    /// Drops records of tasks no longer on the board.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.tasks.len();
        self.tasks.retain(|id, _| keep(id));
        self.dirty |= self.tasks.len() != before;
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
