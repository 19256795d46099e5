//! Evidence the runtime records itself: which files changed during a run, seen through git.
//!
//! Owns asking git about the board's work tree (a snapshot of `git status` plus a content hash
//! of every listed file) and comparing two snapshots. It never changes the work tree and never
//! reads the board. When the board's folder is not inside a git work tree (or git is missing),
//! there is simply no evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The work tree's state: each path git lists (relative to the repository root), with its
/// status code and a hash of its content (None when the file is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub root: PathBuf,
    entries: BTreeMap<String, (String, Option<u64>)>,
}

/// The root of the git work tree containing `dir`, or `None` outside one.
pub fn root(dir: &Path) -> Option<PathBuf> {
    let root = git(dir, &["rev-parse", "--show-toplevel"])?;
    Some(PathBuf::from(String::from_utf8_lossy(&root).trim()))
}

/// Takes a snapshot of the git work tree at `root` (from [`root`]); `None` if git fails.
pub fn snapshot(root: &Path) -> Option<Snapshot> {
    let root = root.to_path_buf();
    let dir = root.as_path();
    let out = git(
        dir,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=no",
        ],
    )?;
    let mut entries = BTreeMap::new();
    let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
    while let Some(field) = fields.next() {
        if field.len() < 4 {
            continue;
        }
        let code = String::from_utf8_lossy(&field[..2]).into_owned();
        let path = String::from_utf8_lossy(&field[3..]).into_owned();
        // A rename or copy is followed by its source path: both changed.
        if code.starts_with(['R', 'C'])
            && let Some(from) = fields.next()
        {
            let from = String::from_utf8_lossy(from).into_owned();
            entries.insert(from, (code.clone(), None));
        }
        let hash = std::fs::read(root.join(&path))
            .ok()
            .map(|b| crate::fsio::content_hash(&b));
        entries.insert(path, (code, hash));
    }
    Some(Snapshot { root, entries })
}

/// Paths (relative to the repository root) whose state differs between two snapshots, leaving
/// out the runtime's own files under `board_dir`.
pub fn changed(before: &Snapshot, after: &Snapshot, board_dir: &Path, board: &Path) -> Vec<String> {
    let keys: BTreeSet<&String> = before.entries.keys().chain(after.entries.keys()).collect();
    keys.into_iter()
        .filter(|k| before.entries.get(*k) != after.entries.get(*k))
        .filter(|k| !is_runtime_file(&after.root.join(k), board_dir, board))
        .cloned()
        .collect()
}

/// The runtime's own writes: the board, events, handoffs, deadletters and its state folder.
fn is_runtime_file(path: &Path, board_dir: &Path, board: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let path = canon(path.parent().unwrap_or(path)).join(path.file_name().unwrap_or_default());
    let dir = canon(board_dir);
    if path == canon(board) {
        return true;
    }
    let Ok(rel) = path.strip_prefix(&dir) else {
        return false;
    };
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    matches!(first.as_str(), ".taskboard" | "handoffs" | "deadletter")
        || (first.starts_with("events") && first.ends_with(".jsonl"))
        || first.starts_with("events.jsonl")
}

/// Compares what an executor claims it changed (paths relative to the board's folder) with
/// what git saw (relative to the repository root): (claimed but not seen, seen but not claimed).
pub fn mismatch(
    claimed: &[String],
    seen: &[String],
    board_dir: &Path,
    root: &Path,
) -> (Vec<String>, Vec<String>) {
    let canon_dir = board_dir
        .canonicalize()
        .unwrap_or_else(|_| board_dir.to_path_buf());
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let prefix = canon_dir
        .strip_prefix(&canon_root)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let normalise = |c: &String| {
        let joined = prefix.join(c.trim_start_matches("./"));
        let mut parts: Vec<String> = Vec::new();
        for comp in joined.components() {
            match comp {
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        parts.join("/")
    };
    let claimed_norm: BTreeMap<String, &String> =
        claimed.iter().map(|c| (normalise(c), c)).collect();
    let seen_set: BTreeSet<&String> = seen.iter().collect();
    let not_seen = claimed_norm
        .iter()
        .filter(|(n, _)| !seen_set.contains(n))
        .map(|(_, c)| (*c).clone())
        .collect();
    let not_claimed = seen
        .iter()
        .filter(|s| !claimed_norm.contains_key(*s))
        .cloned()
        .collect();
    (not_seen, not_claimed)
}

/// `git diff HEAD` of these paths (repository-relative), for a review packet.
pub fn diff(root: &Path, paths: &[String]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    let mut args: Vec<&str> = vec!["diff", "--no-color", "--no-ext-diff", "HEAD", "--"];
    args.extend(paths.iter().map(String::as_str));
    let out = git(root, &args)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    (!text.trim().is_empty()).then_some(text)
}

fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_compared_relative_to_the_repository() {
        let root = Path::new("/nonexistent/repo");
        let dir = root.join("boards");
        let seen = vec!["boards/out/a.md".to_string(), "src/lib.rs".to_string()];
        let claimed = vec!["./out/a.md".to_string(), "../README.md".to_string()];
        let (not_seen, not_claimed) = mismatch(&claimed, &seen, &dir, root);
        assert_eq!(not_seen, vec!["../README.md".to_string()]);
        assert_eq!(not_claimed, vec!["src/lib.rs".to_string()]);
    }
}
