//! The worktrees folder under the state folder, as a whole: what is in it, which attempt each
//! worktree belongs to, how much disk it takes, and what git or taskboard no longer knows about.
//!
//! Owns reading `.taskboard/worktrees/` and the run folders' `workspace.json` records together;
//! `doctor` reports from it and `gc` decides from it. Must not remove anything itself (removal
//! goes through `shell::landing::remove` or `workspace::cleanup_partial`, which refuse to lose
//! unsaved work) and must not touch the board.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::workspace::{RunRepo, RunWorkspace, WORKSPACE_FILE};
use crate::shell::workspace;

/// The folder, under the state folder, that holds every isolated run's worktree.
pub const FOLDER: &str = "worktrees";

/// One folder under `.taskboard/worktrees/`.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    /// Bytes of its files (its `.git` link excluded; hard-linked files counted each time).
    pub bytes: u64,
    /// The newest attempt whose run folder names it: (task, attempt, run folder, record).
    pub owner: Option<Owner>,
    /// Git lists it as a worktree of the owner's repository (`None`: no owner to ask).
    pub registered: Option<bool>,
}

/// The attempt a worktree belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub task: String,
    pub attempt: u32,
    pub run_dir: PathBuf,
    pub record: RunRepo,
}

/// Every worktree folder, with what the run folders say of each.
pub fn inventory(state_dir: &Path) -> Vec<Found> {
    let owners = owners(state_dir);
    let Ok(entries) = std::fs::read_dir(state_dir.join(FOLDER)) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let path = e.path();
            let owner = owners.get(&path).cloned();
            let registered = owner.as_ref().map(|o| {
                workspace::list_worktrees(Path::new(&o.record.repo)).is_ok_and(|list| {
                    list.iter()
                        .any(|w| workspace::same_path(&w.path, &path) && w.prunable.is_none())
                })
            });
            Found {
                bytes: size_of(&path),
                path,
                owner,
                registered,
            }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The newest attempt naming each worktree path, from every run folder's `workspace.json`.
fn owners(state_dir: &Path) -> BTreeMap<PathBuf, Owner> {
    let mut out: BTreeMap<PathBuf, Owner> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(state_dir.join("runs")) else {
        return out;
    };
    for task in tasks.flatten() {
        let id = task.file_name().to_string_lossy().into_owned();
        let Ok(runs) = std::fs::read_dir(task.path()) else {
            continue;
        };
        for run in runs.flatten() {
            let name = run.file_name().to_string_lossy().into_owned();
            let Some(attempt) = name.split('-').next().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Some(record) = read_record(&run.path()) else {
                continue;
            };
            for repo in record.repos {
                let path = PathBuf::from(&repo.path);
                let newer = out.get(&path).is_none_or(|o| o.attempt <= attempt);
                if newer {
                    let owner = Owner {
                        task: id.clone(),
                        attempt,
                        run_dir: run.path(),
                        record: repo,
                    };
                    out.insert(path, owner);
                }
            }
        }
    }
    out
}

/// An attempt's `workspace.json`, if it has one that reads.
pub fn read_record(run_dir: &Path) -> Option<RunWorkspace> {
    let text = std::fs::read_to_string(run_dir.join(WORKSPACE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The bytes of the files under `dir`, not following links.
pub fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}
