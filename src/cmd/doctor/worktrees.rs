//! `doctor`'s checks for isolated runs: git new enough, each worktree route's repository and
//! base branch there, and the worktrees folder: how much disk it takes and what in it git or
//! taskboard no longer knows about.
//!
//! Reads only: it removes nothing (that is `gc`'s) and runs git only to ask.

use std::path::Path;

use super::{Check, Level, check, ok};
use crate::core::config::{Config, Workspace, WorktreeConfig};
use crate::core::fmt;
use crate::shell::parallel::parse_board;
use crate::shell::workspace;
use crate::shell::worktrees::{self, Found};

/// The checks, in the order printed; none when no route works in worktrees and the folder is
/// empty.
pub fn checks(config: Option<&Config>, board: &Path, state_dir: &Path) -> Vec<Check> {
    let board_dir = board.parent().unwrap_or(Path::new("/"));
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
    for (route, cfg) in &routes {
        out.push(repo_check(route, cfg, board_dir));
    }
    if let Some(config) = config
        && let Some(check) = task_branch_check(config, board, board_dir)
    {
        out.push(check);
    }
    out.push(folder_check(&found));
    out
}

/// Every task on a worktree route that names a `base_branch:` its repository does not have
/// (the run would fail with `failed:no_base_branch`).
fn task_branch_check(config: &Config, board: &Path, board_dir: &Path) -> Option<Check> {
    let text = crate::shell::fsio::read_board(board).ok()?.text;
    let parsed = parse_board(&text);
    let mut missing = Vec::new();
    let mut asked = 0;
    for task in &parsed.tasks {
        let Some(branch) = crate::core::workspace::base_branch_of(task) else {
            continue;
        };
        let route = task.field("route").map_or("default", |f| f.value.trim());
        let Some(Workspace::Worktree(cfg)) = config.executors.get(route).map(|e| &e.workspace)
        else {
            continue;
        };
        let repos: Vec<std::path::PathBuf> = match crate::core::workspace::repos_of(task) {
            Some(names) => names
                .iter()
                .filter_map(|n| config.repos.get(n))
                .map(|r| board_dir.join(&r.path))
                .collect(),
            None => vec![match &cfg.repo {
                Some(r) => board_dir.join(r),
                None => board_dir.to_path_buf(),
            }],
        };
        asked += 1;
        if repos
            .iter()
            .any(|repo| workspace::resolve_branch(repo, branch).is_err())
        {
            missing.push(format!("{} ({branch})", task.id));
        }
    }
    match (asked, missing.is_empty()) {
        (0, _) => None,
        (n, true) => Some(ok(
            "task base branches",
            format!(
                "{n} task{} name a base branch; each exists",
                if n == 1 { "" } else { "s" }
            ),
        )),
        (_, false) => Some(check(
            Level::Fail,
            "task base branches",
            format!("no such branch for {}", missing.join(", ")),
            "create the branch, or fix the task's base_branch:",
        )),
    }
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
