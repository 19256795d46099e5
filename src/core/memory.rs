//! What the runtime remembers of each task between passes and across restarts, as plain data:
//! its planner memory, the dependencies a promoted task had, each attempt's record for the
//! deadletter file, its spend and an ending on its way to the board.
//!
//! Must not touch: files or clocks. `shell::store` keeps these records in `.taskboard/state.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::plan::{PendingEnding, TaskMemory};

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
    /// The last attempt's ending, while it is not on the board yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<PendingEnding>,
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
    /// The commit `HEAD` named when the run started: a review's diff is taken from it, so work
    /// the run committed is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
