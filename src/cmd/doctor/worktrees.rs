//! `doctor`'s checks for isolated runs: git new enough, each worktree route's repository and
//! base branch there, and the worktrees folder: how much disk it takes and what in it git or
//! taskboard no longer knows about.

use std::path::Path;

use super::{Check, Level, check, ok};
use crate::core::config::{Config, Workspace, WorktreeConfig};
use crate::core::fmt;
use crate::shell::workspace;
use crate::shell::worktrees::{self, Found};

/// The checks, in the order printed; none when no route works in worktrees and the folder is
/// empty.
pub fn checks(config: Option<&Config>, board_dir: &Path, state_dir: &Path) -> Vec<Check> {
    let routes: Vec<(&str, &WorktreeConfig)> = config
        .map(|c| {
            c.executors
                .iter()
                .filter_map(|(route, e)| match &e.workspace {
                    Workspace::Worktree(w) => Some((route.as_str(), w)),
                    Workspace::Shared => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let found = worktrees::inventory(state_dir);
    let mut out = Vec::new();
    if routes.is_empty() && found.is_empty() {
        return out;
    }
    if !routes.is_empty() {
        out.push(git_check());
    }
    for (route, cfg) in routes {
        out.push(repo_check(route, cfg, board_dir));
    }
    out.push(folder_check(&found));
    out
}

fn git_check() -> Check {
    match workspace::version() {
        Ok(v) if v >= workspace::MIN_VERSION => ok("git", format!("git {v}")),
        Ok(v) => check(
            Level::Fail,
            "git",
            format!("git {v} is too old for worktree routes"),
            format!("install git {} or newer", workspace::MIN_VERSION),
        ),
        Err(e) => check(
            Level::Fail,
            "git",
            e.to_string(),
            "install git: worktree routes run it",
        ),
    }
}

fn repo_check(route: &str, cfg: &WorktreeConfig, board_dir: &Path) -> Check {
    let name = format!("worktree route `{route}`");
    let repo = match &cfg.repo {
        Some(r) if r.is_absolute() => r.clone(),
        Some(r) => board_dir.join(r),
        None => board_dir.to_path_buf(),
    };
    let root = match workspace::repo_root(&repo) {
        Ok(root) => root,
        Err(e) => {
            return check(
                Level::Fail,
                &name,
                e.to_string(),
                "set `repo` on the route, or keep the board in a git repository",
            );
        }
    };
    let branch = match &cfg.base_branch {
        Some(b) => b.clone(),
        None => match workspace::current_branch(&root) {
            Ok(b) => b,
            Err(e) => {
                return check(
                    Level::Warn,
                    &name,
                    e.to_string(),
                    "set `base_branch` on the route, or check out a branch",
                );
            }
        },
    };
    match workspace::resolve_branch(&root, &branch) {
        Ok(_) => ok(
            &name,
            format!("repository {}, base branch {branch}", root.display()),
        ),
        Err(e) => check(
            Level::Fail,
            &name,
            e.to_string(),
            "create the branch or change `base_branch`",
        ),
    }
}

fn folder_check(found: &[Found]) -> Check {
    let bytes: u64 = found.iter().map(|f| f.bytes).sum();
    let summary = format!(
        "{} worktree{} using {}",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        fmt::size(bytes)
    );
    let unknown: Vec<String> = found
        .iter()
        .filter(|f| f.owner.is_none() || f.registered == Some(false))
        .map(|f| {
            let name = f.path.file_name().unwrap_or_default().to_string_lossy();
            match &f.owner {
                None => format!("{name} (no attempt on record made it)"),
                Some(_) => format!("{name} (git no longer lists it)"),
            }
        })
        .collect();
    if unknown.is_empty() {
        return ok("worktrees", summary);
    }
    check(
        Level::Warn,
        "worktrees",
        format!("{summary}; left over: {}", unknown.join(", ")),
        "`taskboard gc` removes what is left over",
    )
}
