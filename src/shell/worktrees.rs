//! The worktrees folder under the state folder, as a whole: what is in it, which attempt each
//! worktree belongs to, how much disk it takes, and what git or taskboard no longer knows about.
//!
//! Owns reading `.taskboard/worktrees/` and the run folders' `workspace.json` records together;
//! `doctor` reports from it; [`sweep`] (for `gc` and each of the runtime's rescans) carries out
//! `core::workspace::retention` on it. Removal goes through `shell::landing::remove`, which
//! refuses to lose work that is not in a snapshot. Must not touch the board.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::core::config::{Config, Workspace, WorktreeConfig};
use crate::core::workspace::{
    Retention, RunRepo, RunWorkspace, WORKSPACE_FILE, WorktreeFacts, retention,
};
use crate::shell::lock::{self, Locks};
use crate::shell::{landing, run_dirs, workspace};

/// The folder, under the state folder, that holds every isolated run's worktree.
pub const FOLDER: &str = "worktrees";

/// One folder under `.taskboard/worktrees/`.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    /// Bytes of its files (its `.git` link excluded; hard-linked files counted each time).
    pub bytes: u64,
    /// The newest attempt whose run folder names it: (task, attempt, run folder, record).
    pub owner: Option<WorktreeOwner>,
    /// Git lists it as a worktree of the owner's repository (`None`: no owner to ask).
    pub registered: Option<bool>,
}

/// The attempt a worktree belongs to.
#[derive(Debug, Clone)]
pub struct WorktreeOwner {
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
    // A task across several repositories keeps one worktree of each in a folder of its own.
    let folders: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|e| {
            let path = e.path();
            let inside: Vec<PathBuf> = owners
                .keys()
                .filter(|p| p.parent() == Some(path.as_path()) && p.exists())
                .cloned()
                .collect();
            match owners.contains_key(&path) || inside.is_empty() {
                true => vec![path],
                false => inside,
            }
        })
        .collect();
    let mut found: Vec<Found> = folders
        .into_iter()
        .map(|path| {
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
fn owners(state_dir: &Path) -> BTreeMap<PathBuf, WorktreeOwner> {
    let mut out: BTreeMap<PathBuf, WorktreeOwner> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(state_dir.join("runs")) else {
        return out;
    };
    for task in tasks.flatten() {
        let id = task.file_name().to_string_lossy().into_owned();
        let Ok(runs) = run_dirs::runs(state_dir, &id) else {
            continue;
        };
        for run in runs.into_iter().filter(|r| !r.review) {
            let attempt = run.attempt;
            let Some(record) = read_record(&run.path) else {
                continue;
            };
            for repo in record.repos {
                let path = PathBuf::from(&repo.path);
                let newer = out.get(&path).is_none_or(|o| o.attempt <= attempt);
                if newer {
                    let owner = WorktreeOwner {
                        task: id.clone(),
                        attempt,
                        run_dir: run.path.clone(),
                        record: repo,
                    };
                    out.insert(path, owner);
                }
            }
        }
    }
    out
}

/// The `workspace.json` of a run folder: `Ok(None)` when it has none, an error (one line) when
/// it cannot be read (not a regular file included) or does not parse.
pub fn read_workspace(run_dir: &Path) -> Result<Option<RunWorkspace>, String> {
    let path = run_dir.join(WORKSPACE_FILE);
    let text = match crate::shell::fsio::read_regular_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// An attempt's `workspace.json`, if it has one that reads.
pub fn read_record(run_dir: &Path) -> Option<RunWorkspace> {
    read_workspace(run_dir).ok().flatten()
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

/// What a sweep did (or, dry, would do) with one worktree folder.
#[derive(Debug, Clone)]
pub struct Swept {
    pub found: Found,
    /// `None` for a folder no attempt on record made.
    pub retention: Option<Retention>,
    /// For a removal: done, or why not (one line). `None` when nothing was to be done.
    pub removed: Option<Result<(), String>>,
}

/// Goes through the worktrees folder and removes each worktree retention allows (every other
/// one is kept, and said why), then prunes git's records of worktrees that are gone. `dry`
/// removes nothing. A folder no attempt made is left alone unless it is empty.
pub fn sweep(state_dir: &Path, config: &Config, now: SystemTime, dry: bool) -> Vec<Swept> {
    let locks = Locks::new(state_dir.join("locks"));
    let found = inventory(state_dir);
    let latest = latest_attempts(&found);
    let mut repos = BTreeSet::new();
    let mut out = Vec::new();
    for f in found {
        let Some(owner) = &f.owner else {
            let empty = std::fs::read_dir(&f.path).is_ok_and(|mut d| d.next().is_none());
            let removed = (empty && !dry).then(|| {
                std::fs::remove_dir(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))
            });
            out.push(Swept {
                found: f,
                retention: None,
                removed,
            });
            continue;
        };
        let live = locks
            .read(&owner.task)
            .is_some_and(|l| lock::is_stale(&l, Duration::from_secs(30)).is_none());
        let facts = WorktreeFacts {
            live,
            latest: latest.get(&owner.task) == Some(&owner.attempt),
            saved: owner.record.snapshot.is_some(),
            age: age(&owner.run_dir, now),
        };
        let retention = retention(facts, keep_for(config, &owner.run_dir));
        let removed = (retention.removes() && !dry).then(|| {
            repos.insert(PathBuf::from(&owner.record.repo));
            landing::remove(&owner.record)
        });
        out.push(Swept {
            found: f,
            retention: Some(retention),
            removed,
        });
    }
    if !dry {
        for repo in repos {
            let _ = workspace::prune(&repo);
        }
    }
    out
}

/// The latest attempt of each task that owns a worktree.
fn latest_attempts(found: &[Found]) -> BTreeMap<String, u32> {
    let mut latest: BTreeMap<String, u32> = BTreeMap::new();
    for o in found.iter().filter_map(|f| f.owner.as_ref()) {
        let n = latest.entry(o.task.clone()).or_default();
        *n = (*n).max(o.attempt);
    }
    latest
}

/// Time since the attempt's record was last written (its snapshot saved).
fn age(run_dir: &Path, now: SystemTime) -> Duration {
    std::fs::metadata(run_dir.join(WORKSPACE_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}

/// `keep_worktrees` of the route the attempt ran on (the default when the route is gone).
fn keep_for(config: &Config, run_dir: &Path) -> Duration {
    let route = read_record(run_dir).and_then(|r| r.route);
    route
        .and_then(|r| config.executors.get(&r))
        .and_then(|e| match &e.workspace {
            Workspace::Worktree(w) => Some(w.keep),
            Workspace::Shared => None,
        })
        .unwrap_or(WorktreeConfig::default().keep)
}
