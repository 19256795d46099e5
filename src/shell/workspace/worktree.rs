//! A run's worktree: created locked from a recorded base commit on a `taskboard/` branch, cleaned
//! up after a creation that was killed half-way, and removed only when everything in it is in
//! its snapshot.
//!
//! Must not touch: any branch outside `core::workspace::BRANCH_PREFIX`, any folder that is not a
//! worktree of that branch (an empty folder excepted), and anything holding unsaved work: nothing
//! here forces over changes that are not in a snapshot.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::{
    GitError, list_worktrees, ok, resolve, resolve_branch, run, same_path, snapshot, status,
};
use crate::core::workspace::{BRANCH_PREFIX, WorktreeEntry, is_valid_ref_name};

/// What [`cleanup_partial`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// A registered worktree at the path (its folder, if any, and its registration).
    pub worktree: bool,
    /// An unregistered folder at the path (empty, or holding only a `.git` file).
    pub folder: bool,
    /// The branch.
    pub branch: bool,
}

impl Cleanup {
    pub fn anything(&self) -> bool {
        self.worktree || self.folder || self.branch
    }
}

fn ours(branch: &str) -> Result<(), GitError> {
    if branch.starts_with(BRANCH_PREFIX) && is_valid_ref_name(&format!("refs/heads/{branch}")) {
        return Ok(());
    }
    Err(GitError::NotOurs {
        what: format!("{branch:?} is not a branch name under {BRANCH_PREFIX}"),
    })
}

/// `path`, taken relative to `repo` when relative (as git takes it, run in `repo`).
fn within(repo: &Path, path: &Path) -> PathBuf {
    match path.is_absolute() {
        true => path.to_path_buf(),
        false => repo.join(path),
    }
}

fn entry_at(repo: &Path, path: &Path) -> Result<Option<WorktreeEntry>, GitError> {
    Ok(list_worktrees(repo)?
        .into_iter()
        .find(|e| same_path(&e.path, path)))
}

/// Creates the worktree `path` on a new branch `branch` (under `taskboard/`) at `base` (a
/// commit), locked while it lives, with the repository's hooks off. What a killed earlier try
/// left is cleaned first ([`cleanup_partial`]); a worktree already there, on that branch, at
/// `base` and unchanged, is kept as it is.
pub fn create_worktree(repo: &Path, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
    ours(branch)?;
    let _admin = admin_lock(repo)?;
    let path = &within(repo, path);
    super::checked_version()?;
    let base = resolve(repo, &format!("{base}^{{commit}}"))?;
    if let Some(e) = entry_at(repo, path)? {
        let same = e.branch.as_deref() == Some(&format!("refs/heads/{branch}"))
            && e.head.as_deref() == Some(base.as_str())
            && e.prunable.is_none()
            && path.join(".git").exists();
        if same && status(path, true)?.is_empty() {
            if e.locked.is_none() {
                ok(repo, lock_args(path, branch))?;
            }
            return Ok(());
        }
    }
    cleanup(repo, path, branch)?;
    let reason = format!("taskboard: {branch}");
    let args = [
        os("-c"),
        os("core.hooksPath=/dev/null"),
        os("worktree"),
        os("add"),
        os("--quiet"),
        os("--lock"),
        os("--reason"),
        os(&reason),
        os("-b"),
        os(branch),
        path.as_os_str(),
        os(&base),
    ];
    ok(repo, args).map(|_| ())
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn lock_args(path: &Path, branch: &str) -> Vec<std::ffi::OsString> {
    vec![
        "worktree".into(),
        "lock".into(),
        "--reason".into(),
        format!("taskboard: {branch}").into(),
        path.as_os_str().into(),
    ]
}

/// Removes what a killed attempt to create worktree `path` on `branch` left: a registration
/// whose folder is gone or half checked out, an empty folder, the branch when no worktree uses
/// it and every commit on it is reachable from another ref. Refuses (`NotOurs`) a branch outside
/// `taskboard/` and a folder that is something else, and (`UnsavedWork`) a checkout with
/// modified or new files or a branch with commits found nowhere else.
pub fn cleanup_partial(repo: &Path, path: &Path, branch: &str) -> Result<Cleanup, GitError> {
    ours(branch)?;
    let _admin = admin_lock(repo)?;
    cleanup(repo, path, branch)
}

/// [`cleanup_partial`], the caller holding the administration lock.
fn cleanup(repo: &Path, path: &Path, branch: &str) -> Result<Cleanup, GitError> {
    let path = &within(repo, path);
    let mut done = Cleanup::default();
    let full = format!("refs/heads/{branch}");
    if let Some(e) = entry_at(repo, path)? {
        if e.branch.as_deref() != Some(full.as_str()) {
            return Err(GitError::NotOurs {
                what: format!("{} is a worktree, not of {branch}", path.display()),
            });
        }
        remove_registered(repo, path)?;
        done.worktree = true;
    } else if path.exists() {
        remove_stray_folder(path)?;
        done.folder = true;
    }
    if let Ok(tip) = resolve_branch(repo, branch) {
        let used = list_worktrees(repo)?
            .iter()
            .any(|e| e.branch.as_deref() == Some(full.as_str()));
        if !used {
            let only_here = commits_only_on(repo, &full, &tip)?;
            if !only_here.is_empty() {
                return Err(GitError::UnsavedWork {
                    path: path.to_path_buf(),
                    files: vec![format!("{} commit(s) only on {branch}", only_here.len())],
                });
            }
            ok(repo, ["update-ref", "-d", &full, &tip])?;
            done.branch = true;
        }
    }
    ok(repo, ["worktree", "prune"])?;
    Ok(done)
}

/// Removes a registered worktree that holds nothing but what git put there: its folder gone,
/// or a checkout whose only differences from its commit are missing files.
fn remove_registered(repo: &Path, path: &Path) -> Result<(), GitError> {
    if path.join(".git").exists() {
        let changed: Vec<String> = status(path, true)?
            .into_iter()
            .filter(|(xy, _)| !xy.chars().all(|c| c == 'D' || c == ' '))
            .map(|(_, p)| p)
            .collect();
        if !changed.is_empty() {
            return Err(GitError::UnsavedWork {
                path: path.to_path_buf(),
                files: changed,
            });
        }
    }
    if path.exists() && !path.join(".git").exists() {
        // Killed before git wrote the folder's `.git`: git cannot remove it, and it is ours
        // only while it is empty.
        remove_stray_folder(path)?;
    }
    unlock_and_remove(repo, path, path.exists())?;
    ok(repo, ["worktree", "prune"]).map(|_| ())
}

/// Removes a folder that is not a registered worktree, if it is empty or holds only a `.git`
/// file (what `git worktree add` writes first).
fn remove_stray_folder(path: &Path) -> Result<(), GitError> {
    let io = |e: std::io::Error| GitError::Io {
        what: format!("reading {}", path.display()),
        message: e.to_string(),
    };
    let names: Vec<_> = fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    let only_gitfile = names.iter().all(|n| n == ".git") && !path.join(".git").is_dir();
    if !only_gitfile {
        return Err(GitError::NotOurs {
            what: format!(
                "{} exists and is not a worktree taskboard made",
                path.display()
            ),
        });
    }
    fs::remove_dir_all(path).map_err(|e| GitError::Io {
        what: format!("removing {}", path.display()),
        message: e.to_string(),
    })
}

/// The commits reachable from `tip` and from no ref but `full_ref`.
fn commits_only_on(repo: &Path, full_ref: &str, tip: &str) -> Result<Vec<String>, GitError> {
    let exclude = format!("--exclude={full_ref}");
    let out = ok(repo, ["rev-list", tip, "--not", &exclude, "--all"])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Removes worktree `path` and deletes its `branch`, only when everything in it is in the
/// snapshot at `snapshot_ref`: the tree of a fresh snapshot (its files as they are now) must be
/// the saved one, else `UnsavedWork` names what differs and nothing is removed. Ignored files
/// (`.env`, `node_modules`) are never in a snapshot and go with the folder.
pub fn remove_worktree(
    repo: &Path,
    path: &Path,
    branch: &str,
    snapshot_ref: &str,
) -> Result<(), GitError> {
    ours(branch)?;
    let _admin = admin_lock(repo)?;
    let path = &within(repo, path);
    let saved = resolve(repo, &format!("{snapshot_ref}^{{tree}}"))?;
    let full = format!("refs/heads/{branch}");
    let entry = entry_at(repo, path)?;
    if let Some(e) = &entry
        && e.branch.as_deref() != Some(full.as_str())
    {
        return Err(GitError::NotOurs {
            what: format!("{} is a worktree, not of {branch}", path.display()),
        });
    }
    if entry.is_none() && path.exists() {
        return Err(GitError::NotOurs {
            what: format!("{} exists and is not a registered worktree", path.display()),
        });
    }
    let present = entry.is_some() && path.join(".git").exists();
    if present {
        let now = snapshot::worktree_tree(path)?;
        if now != saved {
            return Err(GitError::UnsavedWork {
                path: path.to_path_buf(),
                files: differing(repo, &saved, &now)?,
            });
        }
    }
    let tip = resolve_branch(repo, branch).ok();
    if let (Some(tip), false) = (&tip, present) {
        // No folder to compare: the branch itself must hold nothing beyond the snapshot.
        let tip_tree = resolve(repo, &format!("{tip}^{{tree}}"))?;
        if tip_tree != saved && !commits_only_on(repo, &full, tip)?.is_empty() {
            return Err(GitError::UnsavedWork {
                path: path.to_path_buf(),
                files: differing(repo, &saved, &tip_tree)?,
            });
        }
    }
    if entry.is_some() {
        unlock_and_remove(repo, path, present)?;
    }
    if let Some(tip) = tip {
        ok(repo, ["update-ref", "-d", &full, &tip])?;
    }
    ok(repo, ["worktree", "prune"]).map(|_| ())
}

/// Unlocks the registered worktree `path` and, when its `folder` is there, removes it with git:
/// forced, as the caller has checked that nothing in it is anyone's unsaved work.
fn unlock_and_remove(repo: &Path, path: &Path, folder: bool) -> Result<(), GitError> {
    let _ = run(repo, [os("worktree"), os("unlock"), path.as_os_str()], &[]);
    if folder {
        let args = [
            os("worktree"),
            os("remove"),
            os("--force"),
            path.as_os_str(),
        ];
        ok(repo, args)?;
    }
    Ok(())
}

/// The paths whose content differs between two trees.
pub(super) fn differing(repo: &Path, a: &str, b: &str) -> Result<Vec<String>, GitError> {
    let out = ok(
        repo,
        ["diff-tree", "-r", "--name-only", "--no-renames", a, b],
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Copies into `worktree` the files of `repo`'s main checkout that git does not track (ignored
/// ones included: `.env`, local config) and that one of `globs` matches, keeping their paths and
/// permissions; a file already in the worktree is left as it is. The copy is a reflink
/// (copy-on-write) where the file system makes one. Returns the paths copied.
pub fn copy_untracked(
    repo: &Path,
    worktree: &Path,
    globs: &[crate::core::workspace::Glob],
) -> Result<Vec<String>, GitError> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let listed = ok(repo, ["ls-files", "-z", "--others"])?;
    let mut copied = Vec::new();
    for path in listed.split('\0').filter(|p| !p.is_empty()) {
        if !globs.iter().any(|g| g.matches(path)) {
            continue;
        }
        let (from, to) = (repo.join(path), worktree.join(path));
        if to.symlink_metadata().is_ok() || !from.is_file() {
            continue;
        }
        let io = |e: std::io::Error| GitError::Io {
            what: format!("cannot copy {path} into the worktree"),
            message: e.to_string(),
        };
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        // std's copy uses copy_file_range, which the kernel turns into a reflink on file
        // systems that share extents (Btrfs, XFS); elsewhere it is a plain copy.
        fs::copy(&from, &to).map_err(io)?;
        copied.push(path.to_string());
    }
    Ok(copied)
}

/// Forgets git's records of worktrees whose folders are gone (`git worktree prune`).
pub fn prune(repo: &Path) -> Result<(), GitError> {
    let _admin = admin_lock(repo)?;
    ok(repo, ["worktree", "prune"]).map(|_| ())
}

/// Held while taskboard administers the worktrees of one repository: `git worktree add`
/// registers a worktree before it is whole, and a `git worktree prune` at that moment (which
/// cleaning up runs) deletes the registration under it. An `flock` on a file in the
/// repository's common git folder, so threads and processes (a `run`, a `once`, `gc`) take
/// turns; the kernel drops it with the file.
struct AdminLock {
    _file: fs::File,
}

fn admin_lock(repo: &Path) -> Result<AdminLock, GitError> {
    let common = ok(
        repo,
        ["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?;
    let path = Path::new(&common).join("taskboard-worktrees.lock");
    let io = |e: std::io::Error| GitError::Io {
        what: format!("cannot lock {}", path.display()),
        message: e.to_string(),
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io(e.into()))?;
    Ok(AdminLock { _file: file })
}
