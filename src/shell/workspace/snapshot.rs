//! A run's saved diff: one commit on the run's base holding everything the worktree has now
//! (the agent's commits, staged and unstaged edits, new, deleted and renamed files, binaries;
//! not ignored files), kept under `refs/taskboard/` so it outlives the worktree, with the run's
//! own commits as its second parent; the files it changes with their line counts, and a patch.
//!
//! Must not touch: the worktree's files, its index or its `HEAD` (the snapshot is built in a
//! temporary index file), or any ref outside `refs/taskboard/`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{GitError, failure, ok, resolve, run};
use crate::core::workspace::{FileStat, REF_PREFIX, is_valid_ref_name, parse_changes};

/// A saved snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot commit: its first parent is the base; its second, when the run committed on
    /// top of the base, the worktree's `HEAD`.
    pub commit: String,
    /// Its tree: what the worktree held.
    pub tree: String,
    /// The worktree's `HEAD` when it was taken (the agent's last commit, or the base).
    pub head: String,
    /// Every file that differs from the base, in git's order.
    pub files: Vec<FileStat>,
}

/// Who snapshot commits are by (they are taskboard's record, not a person's commit).
const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "taskboard"),
    ("GIT_AUTHOR_EMAIL", "taskboard@localhost"),
    ("GIT_COMMITTER_NAME", "taskboard"),
    ("GIT_COMMITTER_EMAIL", "taskboard@localhost"),
];

/// A temporary index file in the worktree's git folder, removed when dropped.
struct TempIndex(PathBuf);

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> GitError {
    move |e| GitError::Io {
        what,
        message: e.to_string(),
    }
}

/// The tree of everything in `worktree` now (what `git add -A` would stage), built in a copy of
/// its index so the worktree's own index is left as it is.
pub(crate) fn worktree_tree(worktree: &Path) -> Result<String, GitError> {
    let index = PathBuf::from(ok(
        worktree,
        ["rev-parse", "--path-format=absolute", "--git-path", "index"],
    )?);
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let temp = TempIndex(index.with_file_name(format!(
        "taskboard-snapshot-{}-{n}.index",
        std::process::id()
    )));
    let env = [("GIT_INDEX_FILE", temp.0.as_os_str())];
    // A copy keeps the index's file stamps, so `add -A` reads only files that changed.
    if index.exists() {
        fs::copy(&index, &temp.0).map_err(io(format!("copying {}", index.display())))?;
    } else {
        checked(worktree, &["read-tree", "HEAD"], &env)?;
    }
    let add = ["-c", "advice.addEmbeddedRepo=false", "add", "--all"];
    checked(worktree, &add, &env)?;
    checked(worktree, &["write-tree"], &env)
}

fn checked(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Result<String, GitError> {
    let out = run(dir, args, env)?;
    if !out.status.success() {
        return Err(failure(dir, &format!("git {}", args.join(" ")), &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Saves everything `worktree` holds as one commit on `base`, at `ref_name` (under
/// `refs/taskboard/`, replaced if there), and lists what it changes.
pub fn snapshot(worktree: &Path, base: &str, ref_name: &str) -> Result<Snapshot, GitError> {
    if !ref_name.starts_with(REF_PREFIX) || !is_valid_ref_name(ref_name) {
        return Err(GitError::NotOurs {
            what: format!("{ref_name:?} is not a ref name under {REF_PREFIX}"),
        });
    }
    let base = resolve(worktree, &format!("{base}^{{commit}}"))?;
    let head = resolve(worktree, "HEAD^{commit}")?;
    let tree = worktree_tree(worktree)?;
    let message = format!("taskboard snapshot\n\nbase {base}\nhead {head}\n");
    let env: Vec<(&str, &OsStr)> = IDENTITY.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
    let mut commit_args = vec!["commit-tree", "--no-gpg-sign", &tree, "-p", &base];
    // The run's own commits stay reachable (for review, and to replay them) as a second parent,
    // when they continue the base; the snapshot's first parent is always the base.
    let continues = run(worktree, ["merge-base", "--is-ancestor", &base, &head], &[])?;
    if head != base && continues.status.success() {
        commit_args.extend(["-p", &head]);
    }
    commit_args.extend(["-m", &message]);
    let commit = checked(worktree, &commit_args, &env)?;
    ok(
        worktree,
        ["update-ref", "-m", "taskboard: snapshot", ref_name, &commit],
    )?;
    let files = changed_files(worktree, &base, &commit)?;
    Ok(Snapshot {
        commit,
        tree,
        head,
        files,
    })
}

/// The files that differ between two commits, renames found (`-M`), with line counts.
pub fn changed_files(repo: &Path, from: &str, to: &str) -> Result<Vec<FileStat>, GitError> {
    let raw = |what: &str| -> Result<String, GitError> {
        let out = run(repo, ["diff-tree", "-r", "-z", "-M", what, from, to], &[])?;
        if !out.status.success() {
            return Err(failure(repo, "git diff-tree", &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    Ok(parse_changes(&raw("--name-status")?, &raw("--numstat")?))
}

/// Writes the patch from `base` to `commit` (binary files included, renames found) to
/// `out_path`, through a temporary file renamed into place. Plumbing (`diff-tree -p`), so a
/// person's `diff.*` and `color.*` settings do not change it and `git apply` takes it.
pub fn write_patch(repo: &Path, base: &str, commit: &str, out_path: &Path) -> Result<(), GitError> {
    let temp = out_path.with_extension("patch.tmp");
    let file = fs::File::create(&temp).map_err(io(format!("creating {}", temp.display())))?;
    let args = [
        "diff-tree",
        "-p",
        "--binary",
        "-M",
        "--full-index",
        "--no-color",
        base,
        commit,
    ];
    // `run` collects stdout; a patch can be large, so it streams to the file instead.
    let status = super::command(repo)
        .args(args)
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .output();
    let out = match status {
        Ok(out) => out,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(GitError::Io {
                what: "running git diff-tree".into(),
                message: e.to_string(),
            });
        }
    };
    if !out.status.success() {
        let _ = fs::remove_file(&temp);
        return Err(failure(repo, "git diff-tree -p", &out));
    }
    fs::rename(&temp, out_path).map_err(io(format!("writing {}", out_path.display())))
}
