//! `taskboard diff ID`: what an isolated run changed, from its run folder: the patch each
//! repository's snapshot saved (`changes.patch`, or `changes.<name>.patch` for a repository
//! named in `[repos]`), or with `--stat`/`--json` the per-file stat `workspace.json` records.
//!
//! This module owns choosing the attempt (the latest work run with a `workspace.json`, or
//! `--attempt N`'s; review runs are never it), reading its record (also for `show`), and printing
//! the patch: byte for byte in a pipe, with coloured headers and lines on a terminal. It reads
//! only the run folder: no git, no worktree (which may be gone), nothing written.
//!
//! `--json` prints one object:
//! `{"task", "attempt", "run_dir", "files", "insertions", "deletions", "repos": [{"name",
//! "repo", "branch", "base_branch", "base_commit", "snapshot", "files": [{"path", "from",
//! "change", "insertions", "deletions", "binary"}], "insertions", "deletions"}]}`; `name` is
//! `null` for a route's one repository, `from` is `null` unless the file was renamed, `change` is
//! `added`, `modified`, `deleted`, `renamed` or `type_changed`.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::lint::read_board_text;
use super::logs::{RunDir, readable_runs, runs};
use super::{CmdResult, Failure, Paint, use_color};
use crate::core::workspace::{FileChange, FileStat, RunRepo, RunWorkspace, patch_file};
use crate::exit::Exit;
use crate::shell::fsio;
use crate::shell::parallel::parse_board;
pub use crate::shell::worktrees::read_workspace;

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// This attempt's isolated run instead of the latest one.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Each changed file with its added and removed lines, and a total, instead of the patch.
    #[arg(long)]
    pub stat: bool,
    /// The stat as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// An isolated attempt: its run folder and what its `workspace.json` says.
#[derive(Debug, Clone)]
pub struct IsolatedRun {
    pub dir: RunDir,
    pub workspace: RunWorkspace,
}

/// The task's latest work run (never a review run), and its workspace when it has one: what
/// `show` describes. `Ok(None)` when the task never ran.
pub fn latest_work_run(
    state_dir: &Path,
    id: &str,
) -> Result<Option<(RunDir, Option<RunWorkspace>)>, String> {
    let all = runs(state_dir, id).map_err(|e| format!("cannot read the run folders: {e}"))?;
    let Some(latest) = all.into_iter().rev().find(|r| !r.review) else {
        return Ok(None);
    };
    let workspace = read_workspace(&latest.path)?;
    Ok(Some((latest, workspace)))
}

pub fn run(args: &DiffArgs) -> CmdResult {
    let board = super::resolve_board(&args.board)?;
    let text = read_board_text(&board)?;
    let state_dir = fsio::state_dir(&board);
    let chosen = choose(args, &board, &text, &state_dir)?;
    if args.json || args.stat {
        let stat = Stat::of(&args.id, &chosen)?;
        let out = if args.json {
            let mut s = serde_json::to_string(&stat).unwrap_or_default();
            s.push('\n');
            s
        } else {
            render_stat(&stat, Paint(use_color()))
        };
        super::output::print(&out)?;
        return Ok(Exit::Ok);
    }
    let patches = read_patches(&args.id, &chosen)?;
    let color = use_color();
    let mut out = Vec::new();
    for (n, (repo, bytes)) in patches.iter().enumerate() {
        if let Some(name) = &repo.name {
            if n > 0 {
                out.push(b'\n');
            }
            let header = format!("==> {name} ({}) <==", repo.repo);
            out.extend_from_slice(Paint(color).bold(&header).as_bytes());
            out.push(b'\n');
        }
        if color {
            paint_patch(bytes, &mut out);
        } else {
            out.extend_from_slice(bytes);
        }
    }
    super::output::print_bytes(&out)?;
    Ok(Exit::Ok)
}

/// The isolated run `args` asks for, or the one-line reason there is none (exit 1).
fn choose(
    args: &DiffArgs,
    board: &Path,
    text: &str,
    state_dir: &Path,
) -> Result<IsolatedRun, Failure> {
    let id = args.id.as_str();
    let all = readable_runs(state_dir, id)?;
    let work: Vec<&RunDir> = all.iter().filter(|r| !r.review).collect();
    if work.is_empty() && parse_board(text).task(id).is_none() {
        return Err(Failure::new(
            Exit::Findings,
            format!("no task `{id}` on {}", board.display()),
        ));
    }
    if work.is_empty() {
        return Err(Failure::new(Exit::Findings, format!("{id} has no run yet")));
    }
    let candidates: Vec<&RunDir> = match args.attempt {
        None => work,
        Some(n) => {
            let of_n: Vec<&RunDir> = work.iter().copied().filter(|r| r.attempt == n).collect();
            if of_n.is_empty() {
                let mut numbers: Vec<u32> = work.iter().map(|r| r.attempt).collect();
                numbers.sort_unstable();
                numbers.dedup();
                let list = numbers
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Failure::new(
                    Exit::Findings,
                    format!("{id} has no attempt {n} (its attempts: {list})"),
                ));
            }
            of_n
        }
    };
    for dir in candidates.into_iter().rev() {
        let workspace =
            read_workspace(&dir.path).map_err(|message| Failure::new(Exit::State, message))?;
        if let Some(workspace) = workspace {
            return Ok(IsolatedRun {
                dir: dir.clone(),
                workspace,
            });
        }
    }
    let message = match args.attempt {
        None => format!("{id} has no isolated run: its route works in the shared folder"),
        Some(n) => {
            format!("{id} attempt {n} has no isolated run: its route worked in the shared folder")
        }
    };
    Err(Failure::new(Exit::Findings, message))
}

/// Each repository's patch, in the record's order. A run that has not saved its changes yet is
/// exit 1; a saved snapshot whose patch is missing or unreadable is exit 4.
fn read_patches<'a>(
    id: &str,
    run: &'a IsolatedRun,
) -> Result<Vec<(&'a RunRepo, Vec<u8>)>, Failure> {
    let mut out = Vec::new();
    for repo in &run.workspace.repos {
        let path = run.dir.path.join(patch_file(repo.name.as_deref()));
        match fsio::read_regular(&path) {
            Ok(bytes) => out.push((repo, bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && repo.snapshot.is_none() => {
                return Err(not_saved(id, run));
            }
            Err(e) => {
                return Err(Failure::new(
                    Exit::State,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

fn not_saved(id: &str, run: &IsolatedRun) -> Failure {
    Failure::new(
        Exit::Findings,
        format!(
            "{id} attempt {} has not saved its changes yet: its run has not ended (see `taskboard logs {id}`)",
            run.dir.attempt
        ),
    )
}

/// One line of a patch, as a person reads it: where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `diff --git`, `index`, `---`, `+++`, renames, modes: bold.
    Header,
    /// `@@ … @@`: cyan.
    Hunk,
    Added,
    Removed,
    /// Context, binary data, `\ No newline at end of file`: as it is.
    Plain,
}

/// Classifies each line of a patch, keeping track of whether it is inside a hunk (where a line
/// starting `---` is a removed `--` line, not a header).
fn parts(patch: &[u8]) -> Vec<(Part, &[u8])> {
    let mut in_hunk = false;
    let mut out = Vec::new();
    for line in patch.split_inclusive(|&b| b == b'\n') {
        let part = if line.starts_with(b"diff --git ") {
            in_hunk = false;
            Part::Header
        } else if line.starts_with(b"@@") {
            in_hunk = true;
            Part::Hunk
        } else if line.starts_with(b"GIT binary patch") {
            in_hunk = false;
            Part::Header
        } else if in_hunk && line.starts_with(b"+") {
            Part::Added
        } else if in_hunk && line.starts_with(b"-") {
            Part::Removed
        } else if in_hunk || line.starts_with(b"literal ") || line.starts_with(b"delta ") {
            Part::Plain
        } else if is_header_line(line) {
            Part::Header
        } else {
            Part::Plain
        };
        out.push((part, line));
    }
    out
}

/// The extended header lines git writes between `diff --git` and the first hunk.
fn is_header_line(line: &[u8]) -> bool {
    const HEADS: [&[u8]; 12] = [
        b"index ",
        b"--- ",
        b"+++ ",
        b"new file mode",
        b"deleted file mode",
        b"old mode",
        b"new mode",
        b"similarity index",
        b"dissimilarity index",
        b"rename from",
        b"rename to",
        b"Binary files",
    ];
    HEADS.iter().any(|h| line.starts_with(h)) || line.starts_with(b"copy ")
}

/// The patch with each line styled by its part; the bytes of every line are kept as they are
/// (not UTF-8 is fine), the style closed before its newline.
fn paint_patch(patch: &[u8], out: &mut Vec<u8>) {
    use anstyle::{AnsiColor, Style};
    for (part, line) in parts(patch) {
        let style = match part {
            Part::Header => Style::new().bold(),
            Part::Hunk => AnsiColor::Cyan.on_default(),
            Part::Added => AnsiColor::Green.on_default(),
            Part::Removed => AnsiColor::Red.on_default(),
            Part::Plain => {
                out.extend_from_slice(line);
                continue;
            }
        };
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        out.extend_from_slice(format!("{style}").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(format!("{style:#}").as_bytes());
        out.extend_from_slice(newline);
    }
}

/// `--stat` and `--json`: the files each repository's snapshot changed, and the totals.
#[derive(Debug, Serialize)]
pub struct Stat {
    pub task: String,
    pub attempt: u32,
    pub run_dir: String,
    pub files: usize,
    pub insertions: u64,
    pub deletions: u64,
    pub repos: Vec<RepoStat>,
}

#[derive(Debug, Serialize)]
pub struct RepoStat {
    pub name: Option<String>,
    pub repo: String,
    pub branch: String,
    pub base_branch: String,
    pub base_commit: String,
    pub snapshot: String,
    pub files: Vec<FileLine>,
    pub insertions: u64,
    pub deletions: u64,
}

#[derive(Debug, Serialize)]
pub struct FileLine {
    pub path: String,
    pub from: Option<String>,
    pub change: &'static str,
    pub insertions: u64,
    pub deletions: u64,
    pub binary: bool,
}

impl FileLine {
    fn of(f: &FileStat) -> FileLine {
        let (change, from) = match &f.change {
            FileChange::Added => ("added", None),
            FileChange::Modified => ("modified", None),
            FileChange::Deleted => ("deleted", None),
            FileChange::Renamed { from } => ("renamed", Some(from.clone())),
            FileChange::TypeChanged => ("type_changed", None),
        };
        FileLine {
            path: f.path.clone(),
            from,
            change,
            insertions: f.insertions,
            deletions: f.deletions,
            binary: f.binary,
        }
    }

    /// `old => new` for a rename, the path otherwise.
    fn shown_path(&self) -> String {
        match &self.from {
            Some(from) => format!("{from} => {}", self.path),
            None => self.path.clone(),
        }
    }
}

impl Stat {
    /// The stat of an isolated run; a repository without a saved snapshot yet is exit 1.
    fn of(id: &str, run: &IsolatedRun) -> Result<Stat, Failure> {
        let mut repos = Vec::new();
        for r in &run.workspace.repos {
            let Some(snap) = &r.snapshot else {
                return Err(not_saved(id, run));
            };
            let (insertions, deletions) = snap.totals();
            repos.push(RepoStat {
                name: r.name.clone(),
                repo: r.repo.clone(),
                branch: r.branch.clone(),
                base_branch: r.base_branch.clone(),
                base_commit: r.base_commit.clone(),
                snapshot: snap.commit.clone(),
                files: snap.files.iter().map(FileLine::of).collect(),
                insertions,
                deletions,
            });
        }
        Ok(Stat {
            task: id.to_string(),
            attempt: run.dir.attempt,
            run_dir: run.dir.path.display().to_string(),
            files: repos.iter().map(|r| r.files.len()).sum(),
            insertions: repos.iter().map(|r| r.insertions).sum(),
            deletions: repos.iter().map(|r| r.deletions).sum(),
            repos,
        })
    }
}

/// ` path | +N -M` per file (`bin` for a binary file), a header per named repository, then the
/// total: ` 3 files changed, +12 -4`.
fn render_stat(stat: &Stat, paint: Paint) -> String {
    let width = stat
        .repos
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.shown_path().chars().count()))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for repo in &stat.repos {
        if let Some(name) = &repo.name {
            out.push_str(&paint.bold(&format!("==> {name} ({}) <==", repo.repo)));
            out.push('\n');
        }
        for f in &repo.files {
            let counts = if f.binary {
                "bin".to_string()
            } else {
                counts(f.insertions, f.deletions, paint)
            };
            out.push_str(&format!(" {:<width$} | {counts}\n", f.shown_path()));
        }
    }
    let files = if stat.files == 1 { "file" } else { "files" };
    out.push_str(&format!(
        " {} {files} changed, {}\n",
        stat.files,
        counts(stat.insertions, stat.deletions, paint)
    ));
    out
}

fn counts(insertions: u64, deletions: u64, paint: Paint) -> String {
    format!(
        "{} {}",
        paint.green(&format!("+{insertions}")),
        paint.red(&format!("-{deletions}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_lines_are_told_apart_by_where_they_stand() {
        let patch = b"diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n ctx\n--- was a dashed line\n+new\n\\ No newline at end of file\ndiff --git a/y b/y\nnew file mode 100644\nGIT binary patch\nliteral 3\nKcmZQz\n\n";
        let got: Vec<Part> = parts(patch).into_iter().map(|(p, _)| p).collect();
        use Part::*;
        assert_eq!(
            got,
            [
                Header, Header, Header, Header, Hunk, Plain, Removed, Added, Plain, Header, Header,
                Header, Plain, Plain, Plain
            ]
        );
    }

    #[test]
    fn painting_keeps_every_byte_and_closes_before_the_newline() {
        let patch = b"@@ -1 +1 @@\n-\xff\n+b";
        let mut out = Vec::new();
        paint_patch(patch, &mut out);
        assert_eq!(
            out,
            b"\x1b[36m@@ -1 +1 @@\x1b[0m\n\x1b[31m-\xff\x1b[0m\n\x1b[32m+b\x1b[0m".to_vec()
        );
        let stripped: Vec<u8> = String::from_utf8_lossy(&out)
            .replace("\x1b[36m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "")
            .into_bytes();
        assert_eq!(stripped, String::from_utf8_lossy(patch).as_bytes());
    }
}
