//! The pure rules of isolated runs: how a task's attempt names its git branch, its snapshot ref
//! and its folder; the run folder's record of them; which worktrees retention lets go
//! ([`retention`]); when two tasks' `touches:` globs overlap and which changed paths fall outside
//! them; and reading what git prints about worktrees, changed files and merge conflicts.
//!
//! Must not touch: git, files or processes. `shell::workspace` runs git and hands the text here.
//!
//! # Names
//!
//! An attempt `n` of task `id` works on branch `taskboard/<slug>-<n>`, in folder `<slug>-<n>`,
//! and its saved diff lives at `refs/taskboard/snapshots/<slug>/<n>`. The slug is the ID when the
//! ID is already a safe ref component (letters, digits, `_`, `-`, single inner dots); otherwise
//! every other character becomes `-` and a hash of the whole ID is appended, so two IDs never
//! share a slug by accident and every name passes `git check-ref-format`.
//!
//! # The run folder of an isolated run
//!
//! [`WORKSPACE_FILE`] (`workspace.json`, a [`RunWorkspace`]) names each repository the attempt
//! worked in: its worktree, branch, base branch and exact base commit, and once the run ended its
//! snapshot (ref, commit, per-file stat). Beside it, the binary-safe patch of each repository
//! ([`patch_file`]: `changes.patch`, or `changes.<name>.patch` for a repository named in
//! `[repos]`). Both outlive the worktree; `taskboard diff` and `show` read them.
//!
//! # `touches:` globs
//!
//! A task's `touches:` is a comma-separated list of globs relative to the repository root:
//! `*` and `?` match within one path segment, `[abc]`/`[a-z]`/`[!a]` match one character,
//! `**` as a whole segment matches any number of segments. Braces are not special (a comma
//! separates globs). A glob whose last segment is a plain name or `*` also covers everything
//! below what it names (`src` and `src/*` cover `src/a/b.rs`); one ending in a pattern such as
//! `*.md` names files only. A glob that leaves the repository (`..`) or is empty after trimming
//! `./` covers everything. Two tasks overlap when some path could be
//! matched by a glob of each; when in doubt (negated or overlapping classes) they overlap. A task
//! without `touches:` declares nothing: the scheduling rule (`plan`) holds back only tasks that
//! both declare globs, so boards that never use the field run as they always did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::board::Task;
use crate::core::hash::content_hash;

/// Every branch taskboard creates starts with this; nothing else is ever deleted by it.
pub const BRANCH_PREFIX: &str = "taskboard/";
/// Every ref taskboard keeps (snapshots) lives under this.
pub const REF_PREFIX: &str = "refs/taskboard/";

/// The names of one attempt of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptNames {
    /// The branch, without `refs/heads/` (`taskboard/TASK-1-2`).
    pub branch: String,
    /// The folder's name, to be put under the workspaces folder (`TASK-1-2`).
    pub folder: String,
    /// The full ref that keeps the snapshot (`refs/taskboard/snapshots/TASK-1/2`).
    pub snapshot_ref: String,
}

/// The names of attempt `attempt` of task `task_id` (any text).
pub fn attempt_names(task_id: &str, attempt: u32) -> AttemptNames {
    let slug = slug(task_id);
    AttemptNames {
        branch: format!("{BRANCH_PREFIX}{slug}-{attempt}"),
        folder: format!("{slug}-{attempt}"),
        snapshot_ref: format!("{REF_PREFIX}snapshots/{slug}/{attempt}"),
    }
}

/// A ref component standing for `id`: `id` itself when safe, else a cleaned form plus a hash.
pub fn slug(id: &str) -> String {
    if is_safe_component(id) {
        return id.to_string();
    }
    let mut out = String::new();
    for c in id.chars() {
        let keep = c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let dash = out.ends_with('-');
        if keep {
            out.push(c);
        } else if !dash {
            out.push('-');
        }
    }
    let cleaned: String = out.trim_matches('-').chars().take(40).collect();
    let hash = format!("{:08x}", content_hash(id.as_bytes()) as u32);
    if cleaned.is_empty() {
        format!("task-{hash}")
    } else {
        format!("{cleaned}-{hash}")
    }
}

/// A component this module keeps as it is: `[A-Za-z0-9_-]` and inner single dots, not starting
/// with `-` or `.`, at most 60 characters.
fn is_safe_component(s: &str) -> bool {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok
        && s.len() <= 60
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !s.contains("..")
        && !s.ends_with('.')
        && !s.ends_with(".lock")
}

/// Whether `name` is a valid full ref name by `git check-ref-format`'s rules (without
/// `--allow-onelevel`, `--refspec-pattern` or `--normalize`).
pub fn is_valid_ref_name(name: &str) -> bool {
    let bad_char = |c: char| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    };
    if name == "@" || name.contains("@{") || name.contains("..") || name.chars().any(bad_char) {
        return false;
    }
    if name.ends_with('.') || name.ends_with('/') || name.starts_with('/') {
        return false;
    }
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && !p.starts_with('.') && !p.ends_with(".lock"))
}

// ---------------------------------------------------------------------------------------------
// `touches:` globs

/// One character position of a segment pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[...]`: ranges (inclusive), negated.
    Class(Vec<(char, char)>, bool),
}

/// One path segment of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: any number of segments.
    Any,
    Pat(Vec<Tok>),
}

/// A parsed glob: its segments, with a `**` appended when it may name a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    segs: Vec<Seg>,
}

impl Glob {
    /// Parses one glob (see the module's rules).
    pub fn parse(text: &str) -> Glob {
        let t = text.trim();
        let mut rest = t.trim_start_matches('/');
        while let Some(r) = rest.strip_prefix("./") {
            rest = r;
        }
        let names: Vec<&str> = rest
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let mut segs: Vec<Seg> = Vec::new();
        if names.contains(&"..") {
            segs.clear();
        } else {
            for n in names {
                let seg = if n == "**" {
                    Seg::Any
                } else {
                    Seg::Pat(tokens(n))
                };
                if !(seg == Seg::Any && segs.last() == Some(&Seg::Any)) {
                    segs.push(seg);
                }
            }
        }
        // A plain name or `*` may be a folder: the glob covers what is below it too.
        let folder = match segs.last() {
            None => true,
            Some(Seg::Any) => false,
            Some(Seg::Pat(t)) => t == &[Tok::Star] || t.iter().all(|t| matches!(t, Tok::Lit(_))),
        };
        if folder {
            segs.push(Seg::Any);
        }
        Glob {
            text: t.to_string(),
            segs,
        }
    }

    /// The glob as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this glob covers `path` (relative to the repository, `/`-separated).
    pub fn matches(&self, path: &str) -> bool {
        let lit: Vec<Seg> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| Seg::Pat(s.chars().map(Tok::Lit).collect()))
            .collect();
        segs_meet(&self.segs, &lit)
    }

    /// Whether this glob covers every path of the repository (`**`, `.`, `/`, or one that
    /// leaves the repository with `..`).
    pub fn covers_everything(&self) -> bool {
        self.segs == [Seg::Any]
    }

    /// Whether some path is covered by both globs.
    pub fn overlaps(&self, other: &Glob) -> bool {
        segs_meet(&self.segs, &other.segs)
    }
}

/// The globs of a `touches:` value (comma-separated; empty entries dropped).
pub fn parse_touches(value: &str) -> Vec<Glob> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Glob::parse)
        .collect()
}

/// A task's `touches:` globs, when it declares some (an empty value declares nothing).
pub fn touches_of(task: &Task) -> Option<Vec<Glob>> {
    let globs = parse_touches(task.field("touches")?.value);
    (!globs.is_empty()).then_some(globs)
}

/// A task's `base_branch:`, trimmed: the branch its isolated runs start from and land on,
/// whatever the route's default. `None` when absent or empty. Not checked here: lint reports a
/// name git would refuse (`bad-base-branch`).
pub fn base_branch_of(task: &Task) -> Option<&str> {
    let value = task.field("base_branch")?.value.trim();
    (!value.is_empty()).then_some(value)
}

/// The names in a `repos:` value: comma-separated, trimmed, empty entries dropped, each once
/// in the order written.
pub fn parse_repos(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// A task's `repos:`: the `[repos]` names of the repositories its isolated runs work in, when
/// it names some (an empty value names none).
pub fn repos_of(task: &Task) -> Option<Vec<String>> {
    let names = parse_repos(task.field("repos")?.value);
    (!names.is_empty()).then_some(names)
}

/// Whether two tasks' `touches:` globs can name a common path.
pub fn touches_overlap(a: &[Glob], b: &[Glob]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

/// The changed paths no glob of `touches` covers, in the order given.
pub fn outside_touches<'a>(touches: &[Glob], changed: &'a [String]) -> Vec<&'a str> {
    changed
        .iter()
        .filter(|p| !touches.iter().any(|g| g.matches(p)))
        .map(String::as_str)
        .collect()
}

fn tokens(seg: &str) -> Vec<Tok> {
    let chars: Vec<char> = seg.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::One),
            '[' => {
                if let Some((tok, next)) = class(&chars, i) {
                    out.push(tok);
                    i = next;
                    continue;
                }
                out.push(Tok::Lit('['));
            }
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Tok::Lit(chars[i]));
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    out
}

/// A `[...]` class starting at `chars[start]`, and the index after it; None if unclosed.
fn class(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Tok::Class(ranges, negated), i + 1));
        }
        first = false;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

/// Whether two segment sequences can match a common path.
fn segs_meet(a: &[Seg], b: &[Seg]) -> bool {
    let mut memo = vec![None; (a.len() + 1) * (b.len() + 1)];
    segs_meet_at(a, b, 0, 0, &mut memo)
}

fn segs_meet_at(a: &[Seg], b: &[Seg], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let key = i * (b.len() + 1) + j;
    if let Some(v) = memo[key] {
        return v;
    }
    let v = match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some(Seg::Any), _) | (_, Some(Seg::Any)) => {
            let a_any = a.get(i) == Some(&Seg::Any);
            let b_any = b.get(j) == Some(&Seg::Any);
            (a_any && segs_meet_at(a, b, i + 1, j, memo))
                || (b_any && segs_meet_at(a, b, i, j + 1, memo))
                || (a_any && j < b.len() && segs_meet_at(a, b, i, j + 1, memo))
                || (b_any && i < a.len() && segs_meet_at(a, b, i + 1, j, memo))
        }
        (Some(Seg::Pat(x)), Some(Seg::Pat(y))) => {
            seg_meet(x, y) && segs_meet_at(a, b, i + 1, j + 1, memo)
        }
        _ => false,
    };
    memo[key] = Some(v);
    v
}

/// Whether two segment patterns can match a common segment. (Two patterns that share only the
/// empty string are both all stars, so they also share any one character.)
fn seg_meet(a: &[Tok], b: &[Tok]) -> bool {
    let mut memo = vec![None; (a.len() + 1) * (b.len() + 1)];
    toks_meet(a, b, 0, 0, &mut memo)
}

fn toks_meet(a: &[Tok], b: &[Tok], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let key = i * (b.len() + 1) + j;
    if let Some(v) = memo[key] {
        return v;
    }
    let v = match (a.get(i), b.get(j)) {
        (None, None) => true,
        (Some(Tok::Star), _) | (_, Some(Tok::Star)) => {
            let a_star = a.get(i) == Some(&Tok::Star);
            let b_star = b.get(j) == Some(&Tok::Star);
            (a_star && toks_meet(a, b, i + 1, j, memo))
                || (b_star && toks_meet(a, b, i, j + 1, memo))
                || (a_star && j < b.len() && toks_meet(a, b, i, j + 1, memo))
                || (b_star && i < a.len() && toks_meet(a, b, i + 1, j, memo))
        }
        (Some(x), Some(y)) => chars_meet(x, y) && toks_meet(a, b, i + 1, j + 1, memo),
        _ => false,
    };
    memo[key] = Some(v);
    v
}

/// Whether two one-character tokens can match a common character (conservative for classes).
fn chars_meet(a: &Tok, b: &Tok) -> bool {
    let in_class = |c: char, ranges: &[(char, char)], neg: bool| {
        ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != neg
    };
    match (a, b) {
        (Tok::Lit(x), Tok::Lit(y)) => x == y,
        (Tok::Lit(c), Tok::Class(r, n)) | (Tok::Class(r, n), Tok::Lit(c)) => in_class(*c, r, *n),
        (Tok::Class(r, false), Tok::Class(s, false)) => r
            .iter()
            .any(|&(lo, hi)| s.iter().any(|&(l2, h2)| lo <= h2 && l2 <= hi)),
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// What git prints

/// One entry of `git worktree list --porcelain -z`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorktreeEntry {
    pub path: String,
    /// The commit checked out (None for a bare repository or before the first commit).
    pub head: Option<String>,
    /// The full ref checked out (`refs/heads/main`); None when detached or bare.
    pub branch: Option<String>,
    pub bare: bool,
    pub detached: bool,
    /// `Some(reason)` when locked (the reason may be empty).
    pub locked: Option<String>,
    /// `Some(reason)` when git would prune it (its folder is gone).
    pub prunable: Option<String>,
}

/// Parses `git worktree list --porcelain -z` (fields end in NUL, an empty field ends an entry);
/// newline-separated output (without `-z`) is read as well.
pub fn parse_worktree_list(text: &str) -> Vec<WorktreeEntry> {
    let sep = if text.contains('\0') { '\0' } else { '\n' };
    let mut out = Vec::new();
    let mut cur: Option<WorktreeEntry> = None;
    for field in text.split(sep) {
        if field.is_empty() {
            out.extend(cur.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field, ""));
        if key == "worktree" {
            out.extend(cur.take());
            cur = Some(WorktreeEntry {
                path: value.to_string(),
                ..WorktreeEntry::default()
            });
            continue;
        }
        let Some(e) = cur.as_mut() else { continue };
        match key {
            "HEAD" => e.head = Some(value.to_string()),
            "branch" => e.branch = Some(value.to_string()),
            "bare" => e.bare = true,
            "detached" => e.detached = true,
            "locked" => e.locked = Some(value.to_string()),
            "prunable" => e.prunable = Some(value.to_string()),
            _ => {}
        }
    }
    out.extend(cur);
    out
}

/// How a file changed between the base and the snapshot. In JSON: `"added"`, `"modified"`,
/// `"deleted"`, `{"renamed": {"from": "old/path"}}`, `"type_changed"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Added,
    Modified,
    Deleted,
    /// Renamed (or copied) from this path.
    Renamed {
        from: String,
    },
    /// Its type changed (a file became a link, ...).
    TypeChanged,
}

/// One changed file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub path: String,
    pub change: FileChange,
    /// Lines added and removed; 0 for a binary file.
    pub insertions: u64,
    pub deletions: u64,
    pub binary: bool,
}

/// Joins `git diff-tree -r -z -M --name-status` and `... --numstat` of the same two commits into
/// one list, in git's order. A path missing from the numstat counts as binary with no lines.
pub fn parse_changes(name_status_z: &str, numstat_z: &str) -> Vec<FileStat> {
    let counts = parse_numstat_z(numstat_z);
    let mut out = Vec::new();
    let mut fields = name_status_z.split('\0').filter(|f| !f.is_empty());
    while let Some(code) = fields.next() {
        let kind = code.chars().next().unwrap_or('M');
        let (change, path) = match kind {
            'R' | 'C' => {
                let from = fields.next().unwrap_or_default().to_string();
                let to = fields.next().unwrap_or_default();
                (FileChange::Renamed { from }, to)
            }
            'A' => (FileChange::Added, fields.next().unwrap_or_default()),
            'D' => (FileChange::Deleted, fields.next().unwrap_or_default()),
            'T' => (FileChange::TypeChanged, fields.next().unwrap_or_default()),
            _ => (FileChange::Modified, fields.next().unwrap_or_default()),
        };
        let (ins, del, binary) = counts.get(path).copied().unwrap_or((0, 0, true));
        out.push(FileStat {
            path: path.to_string(),
            change,
            insertions: ins,
            deletions: del,
            binary,
        });
    }
    out
}

/// `path -> (insertions, deletions, binary)` from `--numstat -z` (a rename: its new path).
fn parse_numstat_z(text: &str) -> BTreeMap<&str, (u64, u64, bool)> {
    let mut out = BTreeMap::new();
    let mut fields = text.split('\0');
    while let Some(head) = fields.next() {
        let mut parts = head.splitn(3, '\t');
        let (Some(i), Some(d), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let path = if path.is_empty() {
            // A rename: the old path, then the new one, as fields of their own.
            let _from = fields.next();
            fields.next().unwrap_or_default()
        } else {
            path
        };
        let binary = i == "-" && d == "-";
        let counts = (i.parse().unwrap_or(0), d.parse().unwrap_or(0), binary);
        out.insert(path, counts);
    }
    out
}

/// The conflicted paths in `git merge-tree --write-tree --name-only -z` output: the tree's id,
/// then the paths, then an empty field before the messages. Each path once, in git's order.
pub fn parse_merge_conflicts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for field in text.split('\0').skip(1) {
        if field.is_empty() {
            break;
        }
        if !out.iter().any(|p| p == field) {
            out.push(field.to_string());
        }
    }
    out
}

/// The file in an attempt's run folder that describes its isolated workspace.
pub const WORKSPACE_FILE: &str = "workspace.json";

/// The patch file of repository `name` (`None`: the route's one repository) in a run folder.
pub fn patch_file(name: Option<&str>) -> String {
    match name {
        None => "changes.patch".to_string(),
        Some(name) => format!("changes.{}.patch", slug(name)),
    }
}

/// What `workspace.json` records of an isolated attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWorkspace {
    /// The route the attempt ran on (its settings decide how long the worktree is kept).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub route: Option<String>,
    pub repos: Vec<RunRepo>,
}

/// One repository of an isolated attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRepo {
    /// Its name in `[repos]`; absent for the route's one repository.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The main checkout's path.
    pub repo: String,
    /// The worktree's path.
    pub path: String,
    pub branch: String,
    pub base_branch: String,
    pub base_commit: String,
    /// Set once the run has ended and its changes were saved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<SavedSnapshot>,
}

/// A snapshot as the run folder records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSnapshot {
    #[serde(rename = "ref")]
    pub snapshot_ref: String,
    pub commit: String,
    pub files: Vec<FileStat>,
}

impl SavedSnapshot {
    /// Lines added and removed over every file.
    pub fn totals(&self) -> (u64, u64) {
        self.files
            .iter()
            .fold((0, 0), |(i, d), f| (i + f.insertions, d + f.deletions))
    }
}

/// What is known of one worktree when retention is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorktreeFacts {
    /// A live process holds its task's lock: its run, or its landing, is going on.
    pub live: bool,
    /// It belongs to its task's latest attempt (a newer attempt means it was superseded).
    pub latest: bool,
    /// Its run folder records a snapshot.
    pub saved: bool,
    /// Time since its run ended (since its snapshot was saved).
    pub age: std::time::Duration,
}

/// Why a worktree is kept or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Its task's run is going on.
    Live,
    /// Its run ended without a snapshot (a runtime died under it): the next start saves it.
    Unsaved,
    /// The latest attempt's worktree, younger than `keep_worktrees`: a person may still
    /// approve, reject or look.
    Kept,
    /// A newer attempt of its task started afresh; its change is in its snapshot.
    Superseded,
    /// Older than `keep_worktrees`; its change is in its snapshot.
    Expired,
}

impl Retention {
    pub fn removes(self) -> bool {
        matches!(self, Retention::Superseded | Retention::Expired)
    }

    /// Why, for a person (`gc`'s lines).
    pub fn describe(self) -> &'static str {
        match self {
            Retention::Live => "its task's run is going on",
            Retention::Unsaved => "its work is not in a snapshot yet; the next start saves it",
            Retention::Kept => "its task's latest attempt, kept for keep_worktrees after its run",
            Retention::Superseded => {
                "a newer attempt started afresh; its change is in its snapshot"
            }
            Retention::Expired => "older than keep_worktrees; its change is in its snapshot",
        }
    }

    /// The word `workspace_removed` and `gc` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Live => "running",
            Retention::Unsaved => "unsaved",
            Retention::Kept => "kept",
            Retention::Superseded => "superseded",
            Retention::Expired => "expired",
        }
    }
}

/// Whether a worktree stays: never while its task is live or its work unsaved; a superseded
/// attempt's goes at once, the latest attempt's after `keep`.
pub fn retention(facts: WorktreeFacts, keep: std::time::Duration) -> Retention {
    match facts {
        WorktreeFacts { live: true, .. } => Retention::Live,
        WorktreeFacts { saved: false, .. } => Retention::Unsaved,
        WorktreeFacts { latest: false, .. } => Retention::Superseded,
        WorktreeFacts { age, .. } if age >= keep => Retention::Expired,
        _ => Retention::Kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_name_rules_follow_check_ref_format() {
        // Each verdict as `git check-ref-format` 2.47 gives it.
        let table = [
            ("refs/heads/main", true),
            ("refs/heads/a@b", true),
            ("refs/heads/é", true),
            ("refs/heads/-a", true),
            ("refs/heads/a..b", false),
            ("refs/heads/.a", false),
            ("refs/heads/a/.b", false),
            ("refs/heads/a.lock", false),
            ("refs/heads/a.lock/b", false),
            ("refs/heads/a/", false),
            ("refs/heads/a.", false),
            ("refs/heads//a", false),
            ("/refs/heads/a", false),
            ("refs/heads/a b", false),
            ("refs/heads/a~1", false),
            ("refs/heads/a^", false),
            ("refs/heads/a:b", false),
            ("refs/heads/a?", false),
            ("refs/heads/a*", false),
            ("refs/heads/a[", false),
            ("refs/heads/a\\b", false),
            ("refs/heads/a\u{7f}", false),
            ("refs/heads/a@{1}", false),
            ("@", false),
            ("main", false),
        ];
        for (name, ok) in table {
            assert_eq!(is_valid_ref_name(name), ok, "{name:?}");
        }
    }

    #[test]
    fn every_task_id_gives_valid_distinct_names() {
        let ids = [
            "TASK-1",
            "OPS_2-3",
            "a/b",
            "a-b",
            "a b",
            "..",
            ".hidden",
            "x.lock",
            "tail.",
            "@",
            "a@{1}",
            "",
            "~^:?*[\\",
            "émoji🙂",
            "-lead",
            &"L".repeat(200),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            let n = attempt_names(id, 3);
            assert!(
                is_valid_ref_name(&format!("refs/heads/{}", n.branch)),
                "{id:?}: {n:?}"
            );
            assert!(is_valid_ref_name(&n.snapshot_ref), "{id:?}: {n:?}");
            assert!(
                !n.folder.contains('/') && !n.folder.starts_with('.'),
                "{n:?}"
            );
            assert!(n.branch.starts_with(BRANCH_PREFIX) && n.snapshot_ref.starts_with(REF_PREFIX));
            assert!(seen.insert(n.branch.clone()), "{id:?} shares {}", n.branch);
        }
        let n = attempt_names("TASK-15", 2);
        assert_eq!(n.branch, "taskboard/TASK-15-2");
        assert_eq!(n.folder, "TASK-15-2");
        assert_eq!(n.snapshot_ref, "refs/taskboard/snapshots/TASK-15/2");
    }

    #[test]
    fn touches_overlap_table() {
        let table = [
            ("src/**", "src/a.rs", true),
            ("src", "src/a.rs", true),
            ("src/", "src/deep/a.rs", true),
            ("docs/*.md", "src/**", false),
            ("docs/*.md", "docs/**", true),
            ("docs/*.md", "docs/a.txt", false),
            ("docs/*.md", "docs/guide/a.md", false),
            ("docs/*.md", "*/*.md", true),
            ("**/*.rs", "docs/*.md", false),
            ("**/*.rs", "docs/x/a.rs", true),
            ("src/*", "src/a/b.rs", true),
            ("src/*", "srcs", false),
            ("**", "anything", true),
            ("*.toml", "Cargo.toml", true),
            ("*.toml", "src/a.toml", false),
            ("src/a?.rs", "src/ab.rs", true),
            ("src/a?.rs", "src/a.rs", false),
            ("src/[ab].rs", "src/c.rs", false),
            ("src/[ab].rs", "src/[b-z].rs", true),
            ("src/[!a].rs", "src/a.rs", false),
            ("src/[!a].rs", "src/[xy].rs", true),
            ("a*b", "*c", false),
            ("a*b", "ab*", true),
            ("./src/a.rs", "src/a.rs", true),
            ("../other", "src", true),
            ("tests/it/*.rs", "tests/it/support/mod.rs", false),
            ("src/**/mod.rs", "src/shell/*", true),
            ("src/**/mod.rs", "src/*.rs", true),
            ("src/**/mod.rs", "src/*.txt", false),
        ];
        for (a, b, want) in table {
            let (ga, gb) = (Glob::parse(a), Glob::parse(b));
            assert_eq!(ga.overlaps(&gb), want, "{a} vs {b}");
            assert_eq!(gb.overlaps(&ga), want, "{b} vs {a} (symmetric)");
        }
    }

    #[test]
    fn touches_lists_and_paths_outside_them() {
        let a = parse_touches("src/core/**, docs/*.md");
        let b = parse_touches(" tests/** ,, ");
        assert_eq!(b.len(), 1);
        assert!(!touches_overlap(&a, &b));
        assert!(touches_overlap(&a, &parse_touches("docs/README.md")));
        let changed: Vec<String> = [
            "src/core/a.rs",
            "docs/x.md",
            "src/shell/b.rs",
            "docs/d/y.md",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            outside_touches(&a, &changed),
            ["src/shell/b.rs", "docs/d/y.md"]
        );
        assert!(Glob::parse("src").matches("src"));
        assert!(!Glob::parse("src").matches("srcs/a"));
    }

    #[test]
    fn worktree_list_porcelain() {
        let z = "worktree /r\0HEAD 1111\0branch refs/heads/main\0\0\
                 worktree /w/a b\0HEAD 2222\0detached\0locked taskboard: TASK-1\0\0\
                 worktree /w/gone\0HEAD 3333\0branch refs/heads/taskboard/T-1-1\0locked\0\
                 prunable gitdir file points to non-existent location\0\0";
        let list = parse_worktree_list(z);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].branch.as_deref(), Some("refs/heads/main"));
        assert_eq!(list[1].path, "/w/a b");
        assert!(list[1].detached && list[1].branch.is_none());
        assert_eq!(list[1].locked.as_deref(), Some("taskboard: TASK-1"));
        assert_eq!(list[2].locked.as_deref(), Some(""));
        assert!(list[2].prunable.is_some());
        let nl = "worktree /bare\nbare\n\nworktree /x\nHEAD 44\nbranch refs/heads/x\n";
        let list = parse_worktree_list(nl);
        assert!(list[0].bare && list[0].head.is_none());
        assert_eq!(list[1].head.as_deref(), Some("44"));
    }

    #[test]
    fn changes_join_name_status_and_numstat() {
        let ns = "M\0a.rs\0A\0new.txt\0D\0gone.txt\0R087\0old name.rs\0new name.rs\0A\0img.png\0";
        let num = "3\t1\ta.rs\x005\t0\tnew.txt\x000\t2\tgone.txt\x001\t1\t\0old name.rs\0new name.rs\0-\t-\timg.png\0";
        let files = parse_changes(ns, num);
        assert_eq!(files.len(), 5);
        assert_eq!((files[0].insertions, files[0].deletions), (3, 1));
        assert_eq!(files[1].change, FileChange::Added);
        assert_eq!(files[2].change, FileChange::Deleted);
        assert_eq!(
            files[3].change,
            FileChange::Renamed {
                from: "old name.rs".into()
            }
        );
        assert_eq!(
            (files[3].path.as_str(), files[3].insertions),
            ("new name.rs", 1)
        );
        assert!(files[4].binary && !files[0].binary);
    }

    #[test]
    fn merge_conflicts_from_merge_tree() {
        let out = "abc123\0a.rs\0a.rs\0b/c.rs\0\0Auto-merging a.rs\0CONFLICT (content)\0";
        assert_eq!(parse_merge_conflicts(out), ["a.rs", "b/c.rs"]);
        assert!(parse_merge_conflicts("abc123\0").is_empty());
    }

    #[test]
    fn a_run_workspace_reads_back_what_was_written() {
        let rec = RunWorkspace {
            route: Some("default".into()),
            repos: vec![RunRepo {
                name: None,
                repo: "/r".into(),
                path: "/r/.taskboard/worktrees/A-1-1".into(),
                branch: "taskboard/A-1-1".into(),
                base_branch: "main".into(),
                base_commit: "abc".into(),
                snapshot: Some(SavedSnapshot {
                    snapshot_ref: "refs/taskboard/snapshots/A-1/1".into(),
                    commit: "def".into(),
                    files: vec![
                        FileStat {
                            path: "b.rs".into(),
                            change: FileChange::Renamed {
                                from: "a.rs".into(),
                            },
                            insertions: 2,
                            deletions: 1,
                            binary: false,
                        },
                        FileStat {
                            path: "logo.png".into(),
                            change: FileChange::Added,
                            insertions: 0,
                            deletions: 0,
                            binary: true,
                        },
                    ],
                }),
            }],
        };
        let text = serde_json::to_string(&rec).unwrap();
        assert!(
            text.contains(r#""change":{"renamed":{"from":"a.rs"}}"#),
            "{text}"
        );
        assert!(text.contains(r#""change":"added""#), "{text}");
        assert!(
            !text.contains(r#""name""#),
            "an unnamed repository has no name: {text}"
        );
        assert_eq!(serde_json::from_str::<RunWorkspace>(&text).unwrap(), rec);
        let snap = rec.repos[0].snapshot.as_ref().unwrap();
        assert_eq!(snap.totals(), (2, 1));
        assert_eq!(patch_file(None), "changes.patch");
        assert_eq!(patch_file(Some("api")), "changes.api.patch");
    }

    #[test]
    fn base_branch_and_repos_fields() {
        let board = crate::core::board::Board::parse(
            "## A-1: x\n- status: ready\n- base_branch: release/2.0 \n- repos: api, web,, api , \n\n## A-2: y\n- status: ready\n- base_branch:\n- repos: ,\n\n## A-3: z\n- status: ready\n- Base_Branch: `main`\n",
        );
        let a1 = board.task("A-1").unwrap();
        assert_eq!(base_branch_of(a1), Some("release/2.0"));
        assert_eq!(
            repos_of(a1),
            Some(vec!["api".to_string(), "web".to_string()])
        );
        let a2 = board.task("A-2").unwrap();
        assert_eq!(base_branch_of(a2), None);
        assert_eq!(repos_of(a2), None);
        let a3 = board.task("A-3").unwrap();
        assert_eq!(base_branch_of(a3), Some("main"));
        assert_eq!(repos_of(a3), None);
        assert_eq!(parse_repos(" a ,b,a"), ["a", "b"]);
        assert!(parse_repos("").is_empty());
    }

    #[test]
    fn a_worktree_goes_only_when_its_work_is_saved_and_nobody_needs_it() {
        let day = std::time::Duration::from_secs(86_400);
        let keep = 14 * day;
        let facts = |live, latest, saved, age| WorktreeFacts {
            live,
            latest,
            saved,
            age,
        };
        // (live, latest, saved, age) -> verdict
        let cases = [
            ((true, true, true, 30 * day), Retention::Live),
            ((true, false, false, 30 * day), Retention::Live),
            ((false, true, false, 30 * day), Retention::Unsaved),
            ((false, false, false, 30 * day), Retention::Unsaved),
            ((false, false, true, day), Retention::Superseded),
            ((false, true, true, day), Retention::Kept),
            (
                (false, true, true, keep - std::time::Duration::from_secs(1)),
                Retention::Kept,
            ),
            ((false, true, true, keep), Retention::Expired),
        ];
        for ((live, latest, saved, age), want) in cases {
            let got = retention(facts(live, latest, saved, age), keep);
            assert_eq!(got, want, "{live} {latest} {saved} {age:?}");
            assert_eq!(
                got.removes(),
                matches!(want, Retention::Superseded | Retention::Expired)
            );
        }
    }
}
