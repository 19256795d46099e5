//! Landing a snapshot on a person's branch, and previewing its conflicts, without a work tree:
//! the merge is computed by `git merge-tree --write-tree`, the new commit by `commit-tree`, and
//! the branch moves by a compare-and-swap `update-ref`. A checkout of that branch must be clean
//! and is moved along (`read-tree -m -u`, which refuses to overwrite anything), so the person
//! sees the change instead of staged reversals.
//!
//! Must not touch: any ref but the one branch asked for, any checkout but that branch's, and in
//! that checkout anything of the person's (a change of theirs makes the landing refuse).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::replay::replay;
use super::{
    GitError, GitVersion, checked_version, failure, list_worktrees, ok, resolve, resolve_branch,
    run, status,
};
use crate::core::workspace::parse_merge_conflicts;

/// How a snapshot becomes part of the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One new commit on the branch's tip holding the change (one parent).
    Squash,
    /// A merge commit: the tip and the snapshot as parents.
    Merge,
    /// The run's commits replayed one by one on the tip (authors and messages kept), then one
    /// commit for what it left uncommitted; one commit when its history is not a line from the
    /// base. Needs git 2.40 (`merge-tree --merge-base`).
    Rebase,
}

/// A landing computed and not yet applied: applying moves `branch` from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedLanding {
    pub branch: String,
    pub old: String,
    pub new: String,
    /// The snapshot's base, and whether the branch had moved past it.
    pub base: String,
    pub moved: bool,
}

/// What to land where.
#[derive(Debug, Clone, Copy)]
pub struct LandRequest<'a> {
    /// The branch (`main`), as it was when the person approved: `expected_tip`.
    pub branch: &'a str,
    pub expected_tip: &'a str,
    /// The snapshot commit; its first parent is the run's base.
    pub snapshot: &'a str,
    pub strategy: Strategy,
    pub message: &'a str,
    /// Land on the branch even if it moved past the base, when that merges without conflict.
    pub onto_latest: bool,
}

/// The merge of `theirs` into `ours` from `base`: its tree, or the conflicted files.
pub(super) fn merge(
    repo: &Path,
    ours: &str,
    theirs: &str,
    base: &str,
) -> Result<Result<String, Vec<String>>, GitError> {
    let v = checked_version()?;
    let mut args = vec!["merge-tree", "--write-tree", "--name-only", "-z"];
    let merge_base = format!("--merge-base={base}");
    if v >= GitVersion(2, 40, 0) {
        args.push(&merge_base);
    }
    args.extend([ours, theirs]);
    let out = run(repo, &args, &[])?;
    let text = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(Ok(text
            .split('\0')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string())),
        Some(1) => Ok(Err(parse_merge_conflicts(&text))),
        _ => Err(failure(repo, "git merge-tree", &out)),
    }
}

/// The files that would conflict if `snapshot` (made on `base`) were merged onto `onto`; empty
/// when it merges cleanly. Touches no work tree and no ref.
pub fn conflicts(
    repo: &Path,
    onto: &str,
    snapshot: &str,
    base: &str,
) -> Result<Vec<String>, GitError> {
    Ok(merge(repo, onto, snapshot, base)?.err().unwrap_or_default())
}

/// Computes the commit that lands `req.snapshot` on `req.branch`, checking that the branch is
/// still at `expected_tip` (`RefMoved` if not) and, when it moved past the snapshot's base,
/// that landing onto it was asked for and merges cleanly (`BranchMoved`, `Conflict`). Makes a
/// commit object and nothing else.
pub fn prepare_land(repo: &Path, req: &LandRequest) -> Result<ComputedLanding, GitError> {
    let branch = req.branch.strip_prefix("refs/heads/").unwrap_or(req.branch);
    let tip = resolve_branch(repo, branch)?;
    let expected = resolve(repo, &format!("{}^{{commit}}", req.expected_tip))?;
    if tip != expected {
        return Err(GitError::RefMoved {
            name: format!("refs/heads/{branch}"),
            expected,
            found: tip,
        });
    }
    let snapshot = resolve(repo, &format!("{}^{{commit}}", req.snapshot))?;
    let base = resolve(repo, &format!("{snapshot}^1"))?;
    let moved = tip != base;
    let tree = if moved {
        match merge(repo, &tip, &snapshot, &base)? {
            Err(files) if req.onto_latest => return Err(GitError::Conflict { files }),
            Err(conflicts) => return Err(moved_error(branch, &base, &tip, conflicts)),
            Ok(_) if !req.onto_latest => return Err(moved_error(branch, &base, &tip, Vec::new())),
            Ok(tree) => tree,
        }
    } else {
        resolve(repo, &format!("{snapshot}^{{tree}}"))?
    };
    let new = match req.strategy {
        Strategy::Squash => commit_tree(repo, &tree, &["-p", &tip], req.message, &[])?,
        Strategy::Merge => {
            let parents = ["-p", &tip, "-p", &snapshot];
            commit_tree(repo, &tree, &parents, req.message, &[])?
        }
        Strategy::Rebase => replay(repo, &tip, &base, &snapshot, req.message)?,
    };
    Ok(ComputedLanding {
        branch: branch.to_string(),
        old: tip,
        new,
        base,
        moved,
    })
}

fn moved_error(branch: &str, base: &str, tip: &str, conflicts: Vec<String>) -> GitError {
    GitError::BranchMoved {
        branch: branch.to_string(),
        base: base.to_string(),
        tip: tip.to_string(),
        conflicts,
    }
}

/// A commit of `tree` with `parents` (`-p <id>` pairs), by the identities in `env` or else the
/// person's configured one, or by taskboard when none is configured; never signed (no
/// passphrase prompt in a service).
pub(super) fn commit_tree(
    repo: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
    env: &[(&str, &OsStr)],
) -> Result<String, GitError> {
    let mut args = vec!["commit-tree", "--no-gpg-sign", tree];
    args.extend(parents);
    args.extend(["-m", message]);
    let out = run(repo, &args, env)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let unknown = ["identity unknown", "tell me who you are", "empty ident"];
    if !unknown.iter().any(|u| err.contains(u)) {
        return Err(failure(repo, "git commit-tree", &out));
    }
    let mut env = env.to_vec();
    for (key, value) in [
        ("GIT_AUTHOR_NAME", "taskboard"),
        ("GIT_AUTHOR_EMAIL", "taskboard@localhost"),
        ("GIT_COMMITTER_NAME", "taskboard"),
        ("GIT_COMMITTER_EMAIL", "taskboard@localhost"),
    ] {
        if !env.iter().any(|(k, _)| *k == key) {
            env.push((key, OsStr::new(value)));
        }
    }
    let out = run(repo, &args, &env)?;
    if !out.status.success() {
        return Err(failure(repo, "git commit-tree", &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Moves the branch from `landing.old` to `landing.new` by compare-and-swap (`RefMoved` when
/// it lost), after checking no checkout of the branch has changes of its own, or untracked
/// files, where the landing rewrites files (`DirtyCheckout`); then moves those checkouts along,
/// carrying their other changes over. If a checkout cannot follow, the branch is put back and the checkout's
/// refusal is returned.
pub fn apply_land(repo: &Path, landing: &ComputedLanding) -> Result<(), GitError> {
    let full = format!("refs/heads/{}", landing.branch);
    let moved = |found: String| GitError::RefMoved {
        name: full.clone(),
        expected: landing.old.clone(),
        found,
    };
    // Checked early too, so a checkout that followed someone else's move is not misread as dirty.
    let found = resolve_branch(repo, &landing.branch).unwrap_or_else(|_| "(deleted)".into());
    if found != landing.old {
        return Err(moved(found));
    }
    let checkouts: Vec<PathBuf> = list_worktrees(repo)?
        .into_iter()
        .filter(|e| e.branch.as_deref() == Some(full.as_str()) && e.prunable.is_none())
        .map(|e| PathBuf::from(e.path))
        .collect();
    // Only changes in the files the landing rewrites stand in its way: the rest of a person's
    // work (the board itself, which the runtime keeps editing, above all) is carried along
    // untouched, as `git merge --ff-only` carries it.
    let rewritten: std::collections::BTreeSet<String> =
        super::worktree::differing(repo, &landing.old, &landing.new)?
            .into_iter()
            .collect();
    for co in &checkouts {
        let dirty: Vec<String> = status(co, false)?
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| rewritten.contains(p))
            .collect();
        if !dirty.is_empty() {
            return Err(GitError::DirtyCheckout {
                path: co.clone(),
                files: dirty,
            });
        }
        follow(co, &landing.old, &landing.new, true)?;
    }
    let msg = format!("taskboard: land {}", landing.new);
    update_branch(repo, &landing.branch, &landing.new, &landing.old, &msg)?;
    for co in &checkouts {
        if let Err(e) = follow(co, &landing.old, &landing.new, false) {
            let _ = ok(
                repo,
                [
                    "update-ref",
                    "-m",
                    "taskboard: land undone",
                    &full,
                    &landing.old,
                    &landing.new,
                ],
            );
            return Err(e);
        }
    }
    Ok(())
}

/// Moves `branch` to `new` only if it is at `expected` (`git update-ref`'s compare-and-swap,
/// atomic under git's ref lock): `RefMoved` names where it is when the swap lost.
pub fn update_branch(
    repo: &Path,
    branch: &str,
    new: &str,
    expected: &str,
    message: &str,
) -> Result<(), GitError> {
    let full = format!("refs/heads/{branch}");
    let out = run(
        repo,
        ["update-ref", "-m", message, &full, new, expected],
        &[],
    )?;
    if out.status.success() {
        return Ok(());
    }
    let found = resolve_branch(repo, branch).unwrap_or_else(|_| "(deleted)".into());
    if found != expected {
        return Err(GitError::RefMoved {
            name: full,
            expected: expected.to_string(),
            found,
        });
    }
    Err(failure(repo, "git update-ref", &out))
}

/// Moves checkout `co`'s index and files from `old` to `new` (`dry_run`: only checks it could),
/// refusing to overwrite any change or untracked file.
fn follow(co: &Path, old: &str, new: &str, dry_run: bool) -> Result<(), GitError> {
    // `read-tree -m` trusts the index's file stamps: a file touched but unchanged would count
    // as changed. Refreshing them (what `git status` does) changes no content; its exit status
    // only says some file differs, which the caller has checked.
    run(co, ["update-index", "-q", "--refresh"], &[])?;
    let mut args = vec!["read-tree", "-m", "-u"];
    if dry_run {
        args.push("-n");
    }
    args.extend([old, new]);
    let out = run(co, &args, &[])?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // Either `error: Entry 'x' not uptodate. Cannot merge.` / `... file 'x' would be
    // overwritten ...`, or a list of tab-indented names under one such line.
    let mut files: Vec<String> = Vec::new();
    for line in err.lines() {
        if let Some(name) = line.strip_prefix('\t') {
            files.push(name.trim().to_string());
        } else if (line.contains("would be overwritten") || line.contains("not uptodate"))
            && let Some((_, rest)) = line.split_once('\'')
        {
            files.extend(rest.rsplit_once('\'').map(|(name, _)| name.to_string()));
        }
    }
    let refused = err.contains("would be overwritten") || err.contains("not uptodate");
    match files.is_empty() && !refused {
        true => Err(failure(co, "git read-tree", &out)),
        false => Err(GitError::DirtyCheckout {
            path: co.to_path_buf(),
            files,
        }),
    }
}

/// Lands `req.snapshot` on `req.branch`: [`prepare_land`], then [`apply_land`]. Returns the
/// landing (the new commit is `new`).
pub fn land(repo: &Path, req: &LandRequest) -> Result<ComputedLanding, GitError> {
    let landing = prepare_land(repo, req)?;
    apply_land(repo, &landing)?;
    Ok(landing)
}
