//! Landing by rebase: the run's commits (the snapshot's second parent, the worktree's `HEAD`
//! when the snapshot was taken) replayed one by one on the branch's tip with `merge-tree
//! --merge-base` (a cherry-pick without a work tree), authors and messages kept, then one commit
//! for what the run left uncommitted.
//!
//! Must not touch: any ref or work tree; it only writes commit objects, which the caller lands.

use std::ffi::OsStr;
use std::path::Path;

use super::land::{commit_tree, merge};
use super::{GitError, GitVersion, checked_version, ok, resolve};

/// The commit that replays `snapshot` (made on `base`) onto `tip`; `Conflict` names the files
/// of the first commit that does not apply.
pub(super) fn replay(
    repo: &Path,
    tip: &str,
    base: &str,
    snapshot: &str,
    message: &str,
) -> Result<String, GitError> {
    if checked_version()? < GitVersion(2, 40, 0) {
        return Err(GitError::Unsupported {
            what: "landing by rebase needs git 2.40 or newer (use squash or merge)".into(),
        });
    }
    let head = resolve(repo, &format!("{snapshot}^2")).ok();
    let commits = match &head {
        Some(head) => line_of_commits(repo, base, head)?,
        None => Vec::new(),
    };
    let mut cur = tip.to_string();
    for c in &commits {
        let tree = merge(repo, &cur, c, &format!("{c}^"))?
            .map_err(|files| GitError::Conflict { files })?;
        if tree != resolve(repo, &format!("{cur}^{{tree}}"))? {
            cur = commit_like(repo, &tree, &cur, c)?;
        }
    }
    let from = match (commits.is_empty(), &head) {
        (false, Some(head)) => head.clone(),
        _ => base.to_string(),
    };
    let tree = merge(repo, &cur, snapshot, &from)?.map_err(|files| GitError::Conflict { files })?;
    if tree != resolve(repo, &format!("{cur}^{{tree}}"))? {
        cur = commit_tree(repo, &tree, &["-p", &cur], message, &[])?;
    }
    Ok(cur)
}

/// The commits from `base` (excluded) to `head`, oldest first; none when that history holds a
/// merge (it is then landed as one commit).
fn line_of_commits(repo: &Path, base: &str, head: &str) -> Result<Vec<String>, GitError> {
    let range = format!("{base}..{head}");
    if !ok(repo, ["rev-list", "--min-parents=2", &range])?.is_empty() {
        return Ok(Vec::new());
    }
    let list = ok(repo, ["rev-list", "--reverse", &range])?;
    Ok(list.lines().map(str::to_string).collect())
}

/// A commit of `tree` on `parent` with the author, date and message of `like`.
fn commit_like(repo: &Path, tree: &str, parent: &str, like: &str) -> Result<String, GitError> {
    let format = "--format=%an%x00%ae%x00%ad%x00%B";
    let info = ok(repo, ["log", "-1", "--date=raw", format, like])?;
    let mut f = info.splitn(4, '\0');
    let (name, email, date, msg) = (f.next(), f.next(), f.next(), f.next());
    let env = [
        ("GIT_AUTHOR_NAME", OsStr::new(name.unwrap_or_default())),
        ("GIT_AUTHOR_EMAIL", OsStr::new(email.unwrap_or_default())),
        ("GIT_AUTHOR_DATE", OsStr::new(date.unwrap_or_default())),
    ];
    let msg = msg.unwrap_or_default().trim();
    commit_tree(repo, tree, &["-p", parent], msg, &env)
}
