//! The git layer for isolated runs: a thin, typed layer over the git CLI (the `git` binary, as a
//! person runs it; no git library). Every call goes through `run`: `LC_ALL=C`, no terminal
//! prompt, no pager, no editor, none of a parent git's environment (`GIT_DIR`, `GIT_INDEX_FILE`,
//! ... from a hook), and no optional locks (reading a person's checkout never rewrites its
//! index). Every failure is one [`GitError`], whose text is one line; nothing here panics.
//!
//! The person's configuration is kept where it is theirs to decide (ignore rules, filters,
//! merge rename settings, identity for a landed commit) and overridden per call where it would
//! change what taskboard does: hooks off when creating a worktree, no signing, plumbing
//! (`diff-tree`, `commit-tree`, `update-ref`, `read-tree`) instead of porcelain that reads
//! `diff.*`/`color.*` settings.
//!
//! Owns: worktrees under taskboard's branch prefix ([`worktree`]), snapshots under
//! `refs/taskboard/` ([`snapshot`](mod@snapshot)), conflict previews and landing on a person's branch
//! ([`land`](mod@land)). Must not decide names or rules (`core::workspace`'s), and must not touch the
//! board, the runtime or any branch or folder it did not create, except the one branch a person
//! asked to land on.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::core::workspace::{WorktreeEntry, is_valid_ref_name, parse_worktree_list};

pub mod land;
mod replay;
pub mod snapshot;
pub mod worktree;

pub use land::{
    ComputedLanding, LandRequest, Strategy, apply_land, conflicts, land, prepare_land,
    update_branch,
};
pub use snapshot::{Snapshot, changed_files, snapshot, write_patch};
pub use worktree::{
    Cleanup, cleanup_partial, copy_untracked, create_worktree, prune, remove_worktree,
};

/// The oldest git this layer works with: `merge-tree --write-tree` came in 2.38.
pub const MIN_VERSION: GitVersion = GitVersion(2, 38, 0);

/// Why a git operation did not happen. Each says what, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// No `git` on the PATH.
    Missing,
    /// `git` is older than [`MIN_VERSION`].
    TooOld {
        found: String,
    },
    NotARepository {
        path: PathBuf,
    },
    /// `HEAD` names a commit, not a branch.
    DetachedHead {
        path: PathBuf,
    },
    NoSuchBranch {
        branch: String,
    },
    NoSuchRef {
        name: String,
    },
    /// A checkout of the branch to land on has changes of its own.
    DirtyCheckout {
        path: PathBuf,
        files: Vec<String>,
    },
    /// A worktree holds work that is not in its snapshot: it is not removed.
    UnsavedWork {
        path: PathBuf,
        files: Vec<String>,
    },
    /// Merging would conflict in these files.
    Conflict {
        files: Vec<String>,
    },
    /// The branch moved past the snapshot's base (and landing onto it was not asked for, or it
    /// conflicts in `conflicts`).
    BranchMoved {
        branch: String,
        base: String,
        tip: String,
        conflicts: Vec<String>,
    },
    /// A compare-and-swap lost: the ref is no longer what it was expected to be.
    RefMoved {
        name: String,
        expected: String,
        found: String,
    },
    /// Refused: something taskboard did not create (a branch outside its prefix, a folder that is
    /// not its worktree).
    NotOurs {
        what: String,
    },
    Unsupported {
        what: String,
    },
    /// git failed otherwise: the command and the first line of what it said.
    Failed {
        command: String,
        message: String,
    },
    Io {
        what: String,
        message: String,
    },
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GitError::*;
        match self {
            Missing => write!(f, "git is not installed (no `git` on the PATH)"),
            TooOld { found } => write!(f, "git {found} is too old: {MIN_VERSION} or newer needed"),
            NotARepository { path } => write!(f, "{} is not in a git repository", path.display()),
            DetachedHead { path } => write!(f, "{}: HEAD is detached (no branch)", path.display()),
            NoSuchBranch { branch } => write!(f, "no branch named {branch}"),
            NoSuchRef { name } => write!(f, "no ref named {name}"),
            DirtyCheckout { path, files } => write!(
                f,
                "the checkout at {} has changes of its own: {}",
                path.display(),
                list(files)
            ),
            UnsavedWork { path, files } => write!(
                f,
                "{} holds work that is not saved: {}",
                path.display(),
                list(files)
            ),
            Conflict { files } => write!(f, "merging conflicts in {}", list(files)),
            BranchMoved {
                branch,
                base,
                tip,
                conflicts,
            } => {
                write!(f, "{branch} moved from {} to {}", short(base), short(tip))?;
                match conflicts.is_empty() {
                    true => write!(f, " since the run began"),
                    false => write!(f, ", and conflicts in {}", list(conflicts)),
                }
            }
            RefMoved {
                name,
                expected,
                found,
            } => write!(
                f,
                "{name} is at {}, not {} as expected",
                short(found),
                short(expected)
            ),
            NotOurs { what } => write!(f, "refused: {what}"),
            Unsupported { what } => write!(f, "not supported: {what}"),
            Failed { command, message } => write!(f, "{command} failed: {message}"),
            Io { what, message } => write!(f, "{what}: {message}"),
        }
    }
}

impl std::error::Error for GitError {}

/// Up to five names, then how many more.
fn list(files: &[String]) -> String {
    let mut s = files.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if files.len() > 5 {
        s.push_str(&format!(" and {} more", files.len() - 5));
    }
    if s.is_empty() {
        s.push_str("(none named)");
    }
    s
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// A git version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion(pub u32, pub u32, pub u32);

impl fmt::Display for GitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl GitVersion {
    /// From `git version 2.47.3` (also `2.39.2 (Apple Git-143)`, `2.45.1.windows.1`).
    pub fn parse(text: &str) -> Option<GitVersion> {
        let v = text.trim().strip_prefix("git version ")?;
        let mut nums = v
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().ok());
        Some(GitVersion(
            nums.next()??,
            nums.next()??,
            nums.next().flatten().unwrap_or(0),
        ))
    }
}

/// The installed git's version.
pub fn version() -> Result<GitVersion, GitError> {
    let out = run(Path::new("."), ["--version"], &[])?;
    let text = String::from_utf8_lossy(&out.stdout);
    GitVersion::parse(&text).ok_or_else(|| GitError::Failed {
        command: "git --version".into(),
        message: format!("unreadable version {:?}", text.trim()),
    })
}

/// The installed version, asked once per process; `TooOld` below [`MIN_VERSION`].
pub(crate) fn checked_version() -> Result<GitVersion, GitError> {
    static SEEN: OnceLock<GitVersion> = OnceLock::new();
    let v = match SEEN.get() {
        Some(v) => *v,
        None => {
            let v = version()?; // a failure (git missing) is asked again next time
            *SEEN.get_or_init(|| v)
        }
    };
    if v < MIN_VERSION {
        return Err(GitError::TooOld {
            found: v.to_string(),
        });
    }
    Ok(v)
}

/// The root of the work tree `path` is in (a linked worktree's own root inside one).
pub fn repo_root(path: &Path) -> Result<PathBuf, GitError> {
    let out = ok(path, ["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(out))
}

/// The commit branch `branch` (`main` or `refs/heads/main`) points at; never a guess: a tag or a
/// remote branch of that name is not it.
pub fn resolve_branch(repo: &Path, branch: &str) -> Result<String, GitError> {
    let name = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    if !is_valid_ref_name(&format!("refs/heads/{name}")) {
        // `main~1` or `main@{1}` would name some other commit: no branch has such a name.
        return Err(GitError::NoSuchBranch {
            branch: name.to_string(),
        });
    }
    let full = format!("refs/heads/{name}^{{commit}}");
    let out = run(repo, ["rev-parse", "--verify", "--quiet", &full], &[])?;
    match out.status.code() {
        Some(0) => Ok(stdout_line(&out)),
        Some(1) => Err(GitError::NoSuchBranch {
            branch: name.to_string(),
        }),
        _ => Err(failure(repo, "git rev-parse", &out)),
    }
}

/// The commit `rev` names (any revision: `HEAD`, a ref, `<id>^1`), or `NoSuchRef`.
pub(crate) fn resolve(repo: &Path, rev: &str) -> Result<String, GitError> {
    let out = run(repo, ["rev-parse", "--verify", "--quiet", rev], &[])?;
    match out.status.code() {
        Some(0) => Ok(stdout_line(&out)),
        Some(1) => Err(GitError::NoSuchRef {
            name: rev.to_string(),
        }),
        _ => Err(failure(repo, "git rev-parse", &out)),
    }
}

/// The branch checked out at `repo` (without `refs/heads/`); `DetachedHead` when none.
pub fn current_branch(repo: &Path) -> Result<String, GitError> {
    let out = run(repo, ["symbolic-ref", "--quiet", "HEAD"], &[])?;
    match out.status.code() {
        Some(0) => {
            let full = stdout_line(&out);
            Ok(full
                .strip_prefix("refs/heads/")
                .unwrap_or(&full)
                .to_string())
        }
        Some(1) => Err(GitError::DetachedHead {
            path: repo.to_path_buf(),
        }),
        _ => Err(failure(repo, "git symbolic-ref", &out)),
    }
}

/// How many commits `to` has that `from` does not (`git rev-list --count from..to`): how far a
/// branch moved past a run's base.
pub fn commits_between(repo: &Path, from: &str, to: &str) -> Result<u64, GitError> {
    let out = ok(repo, ["rev-list", "--count", &format!("{from}..{to}")])?;
    out.trim().parse().map_err(|_| GitError::Failed {
        command: "git rev-list --count".into(),
        message: format!("unexpected output {out:?}"),
    })
}

/// Every worktree of the repository (the main one first), as git lists them.
pub fn list_worktrees(repo: &Path) -> Result<Vec<WorktreeEntry>, GitError> {
    let out = run(repo, ["worktree", "list", "--porcelain", "-z"], &[])?;
    if !out.status.success() {
        return Err(failure(repo, "git worktree list", &out));
    }
    Ok(parse_worktree_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Environment a parent git (a hook) may have set that would point a call elsewhere.
const INHERITED: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_QUARANTINE_PATH",
];

/// Runs `git <args>` in `dir` with `env` added; its exit status is the caller's to read.
pub(crate) fn run<I, S>(dir: &Path, args: I, env: &[(&str, &OsStr)]) -> Result<Output, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(out) => Ok(out),
        Err(_) if !dir.is_dir() => Err(GitError::NotARepository {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(GitError::Missing),
        Err(e) => Err(GitError::Io {
            what: "running git".into(),
            message: e.to_string(),
        }),
    }
}

/// `git` to be run in `dir`, with the environment every call gets (see the module's header).
pub(crate) fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("PAGER", "cat")
        .env("GIT_EDITOR", ":")
        .env("GIT_OPTIONAL_LOCKS", "0");
    for name in INHERITED {
        cmd.env_remove(name);
    }
    cmd
}

/// Runs `git <args>` in `dir`; its stdout trimmed, or the failure.
pub(crate) fn ok<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let out = run(dir, &args, &[])?;
    if !out.status.success() {
        let name = args
            .first()
            .map(|a| a.as_ref().to_string_lossy().into_owned());
        return Err(failure(
            dir,
            &format!("git {}", name.unwrap_or_default()),
            &out,
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn stdout_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The error for a failed git call: `NotARepository` when git says so, else `Failed` with the
/// first line git wrote on stderr.
pub(crate) fn failure(dir: &Path, command: &str, out: &Output) -> GitError {
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("not a git repository") {
        return GitError::NotARepository {
            path: dir.to_path_buf(),
        };
    }
    let line = err
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no message)");
    GitError::Failed {
        command: command.to_string(),
        message: format!("{line} (exit {})", out.status.code().unwrap_or(-1)),
    }
}

/// Whether git's `listed` path and `path` name the same place (both made canonical as far as
/// they exist).
pub(crate) fn same_path(listed: &str, path: &Path) -> bool {
    canonical(Path::new(listed)) == canonical(path)
}

fn canonical(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            canonical(parent).join(name)
        }
        _ => p.to_path_buf(),
    }
}

/// The paths `git status` lists in `dir`: `(XY, path)`; untracked files only when `untracked`.
pub(crate) fn status(dir: &Path, untracked: bool) -> Result<Vec<(String, String)>, GitError> {
    let mode = if untracked { "-uall" } else { "-uno" };
    let out = run(dir, ["status", "--porcelain=v1", "-z", mode], &[])?;
    if !out.status.success() {
        return Err(failure(dir, "git status", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut found = Vec::new();
    while let Some(f) = fields.next() {
        let Some((xy, path)) = f.split_at_checked(3) else {
            continue;
        };
        if xy.starts_with('R') || xy.starts_with('C') {
            fields.next(); // the old name
        }
        found.push((xy.trim_end().to_string(), path.to_string()));
    }
    Ok(found)
}

/// Makes `dir` a git repository of its own on `main` holding every file in it but those
/// `.gitignore` lists, in one commit by `taskboard` (the person's identity and signing settings
/// are not asked for). Does nothing and returns false when `dir` already is one's top folder.
pub fn init_repository(dir: &Path, message: &str) -> Result<bool, GitError> {
    if repo_root(dir).is_ok_and(|root| same_path(&root.display().to_string(), dir)) {
        return Ok(false);
    }
    checked_version()?;
    ok(dir, ["init", "-q", "-b", "main"])?;
    ok(dir, ["add", "-A"])?;
    let identity = [
        ("GIT_AUTHOR_NAME", OsStr::new("taskboard")),
        ("GIT_AUTHOR_EMAIL", OsStr::new("taskboard@localhost")),
        ("GIT_COMMITTER_NAME", OsStr::new("taskboard")),
        ("GIT_COMMITTER_EMAIL", OsStr::new("taskboard@localhost")),
    ];
    let out = run(
        dir,
        [
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            message,
        ],
        &identity,
    )?;
    if !out.status.success() {
        return Err(failure(dir, "git commit", &out));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_and_compared() {
        let v = |s| GitVersion::parse(s);
        assert_eq!(v("git version 2.47.3\n"), Some(GitVersion(2, 47, 3)));
        assert_eq!(
            v("git version 2.39.2 (Apple Git-143)"),
            Some(GitVersion(2, 39, 2))
        );
        assert_eq!(
            v("git version 2.45.1.windows.1"),
            Some(GitVersion(2, 45, 1))
        );
        assert_eq!(v("git version 2.40"), Some(GitVersion(2, 40, 0)));
        assert_eq!(v("hg 6.1"), None);
        assert!(GitVersion(2, 37, 9) < MIN_VERSION && GitVersion(2, 38, 0) >= MIN_VERSION);
        assert!(GitVersion(3, 0, 0) > MIN_VERSION);
        let e = GitError::TooOld {
            found: "2.34.1".into(),
        };
        assert_eq!(
            e.to_string(),
            "git 2.34.1 is too old: 2.38.0 or newer needed"
        );
    }
}
