//! Evidence the runtime records itself: which files changed during a run, seen through git.
//!
//! Owns asking git about the board's work tree (a snapshot of `git status`, a content hash
//! of every listed file and the commit `HEAD` names), the hashes kept between snapshots so an
//! untouched file is not read again ([`Hashes`]), a snapshot taken ahead of a run's start and
//! fenced by change time at it (`early`), comparing two snapshots, setting what an
//! executor claims it changed against what git saw ([`mismatch`]), and the diff a review packet
//! shows ([`diff`]). It never
//! changes the work tree and never reads the board. When the board's folder is not inside a git
//! work tree (or git is missing), there is simply no evidence.
//!
//! What counts as a run's work:
//! - A run is compared with the commit it started from, so an executor that commits its work
//!   (aider does by default) is seen as having changed those files: when `HEAD` moved forward
//!   (the start commit is an ancestor of the new `HEAD`), the run changed every path whose
//!   content now differs from its content at the start, committed or not.
//! - When `HEAD` moved to a history without the start commit (a person switched branches, or the
//!   executor rebased or amended), what the run did cannot be told from what the switch did:
//!   [`since`] says so instead of guessing, and there is no evidence for that run.
//! - Never counted: the runtime's own files (the board, events, handoffs, deadletters,
//!   `.taskboard/`) and editors' side files ([`is_editor_side_file`]: swap, backup, lock and
//!   probe files a person's editor leaves beside what it edits).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The work tree's state: each path git lists (relative to the repository root), with its
/// status code and a hash of its content (None when the file is gone), and the commit `HEAD`
/// names (None before the first commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeState {
    pub root: PathBuf,
    head: Option<String>,
    entries: BTreeMap<String, (String, Option<u64>)>,
    /// For an early snapshot, the change times that are not the run's work.
    fence: Option<early::StartFence>,
}

/// What git says about the end of a run, beyond its snapshot, when `HEAD` moved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Moved {
    /// `HEAD` is where it was.
    No,
    /// `HEAD` moved forward from the start commit: the paths whose content in the work tree
    /// differs from the start commit (committed during the run or not), and the content hash
    /// now of every path that could have changed.
    Ahead {
        differs: BTreeSet<String>,
        now: BTreeMap<String, Option<u64>>,
    },
    /// `HEAD` moved to a history without the start commit.
    Elsewhere,
}

impl TreeState {
    /// The commit `HEAD` named when the snapshot was taken (None before the first commit).
    pub fn head(&self) -> Option<&str> {
        self.head.as_deref()
    }
}

mod early;
pub use early::{Early, Repo, snapshot_early};

/// Takes a snapshot of the git work tree at `root` (a [`Repo`]'s), leaving out the board and
/// the runtime's files beside it in `board_dir`; `None` if git fails.
pub fn snapshot(root: &Path, board_dir: &Path, board: &Path, hashes: &Hashes) -> Option<TreeState> {
    let root = root.to_path_buf();
    let dir = root.as_path();
    let excluded = runtime_pathspecs(dir, board_dir, board);
    // One git process for the commit `HEAD` names and the paths: a snapshot lies on the path
    // from a save to its run's start, and a second process (`rev-parse HEAD`) cost about a
    // sixth of it.
    let mut args = vec![
        "status",
        "--porcelain=v2",
        "-z",
        "--branch",
        "--no-ahead-behind",
        "--untracked-files=all",
        "--ignored=no",
        "--",
        ".",
    ];
    args.extend(excluded.iter().map(String::as_str));
    let listed = Listed::parse(&git(dir, &args)?);
    let mut entries = BTreeMap::new();
    for (code, path, from) in listed.paths {
        // A rename or copy: its source path changed too.
        if let Some(from) = from {
            entries.insert(from, (code.clone(), None));
        }
        let hash = hashes.of(&root.join(&path));
        entries.insert(path, (code, hash));
    }
    // A file no longer listed is as its commit has it; when it is listed again, it has changed.
    hashes.keep_only(entries.keys().map(|p| root.join(p)));
    Some(TreeState {
        root,
        head: listed.head,
        entries,
        fence: None,
    })
}

/// What `git status --porcelain=v2 -z --branch` lists: the commit `HEAD` names (None before
/// the first commit) and each path with its two-letter status code as porcelain v1 writes it
/// (`.` for unchanged is a space, `??` for untracked), and the source of a rename or copy.
#[derive(Debug, Default, PartialEq)]
struct Listed {
    head: Option<String>,
    paths: Vec<(String, String, Option<String>)>,
}

impl Listed {
    fn parse(out: &[u8]) -> Listed {
        let mut listed = Listed::default();
        let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let code = |xy: &[u8]| -> String {
            xy.iter()
                .map(|&b| if b == b'.' { ' ' } else { char::from(b) })
                .collect()
        };
        while let Some(field) = fields.next() {
            // Space-separated words before the path, by the kind of line (the path itself may
            // hold spaces).
            let words = match field.first() {
                Some(b'#') => {
                    if let Some(oid) = field.strip_prefix(b"# branch.oid ") {
                        listed.head = (oid != b"(initial)").then(|| text(oid));
                    }
                    continue;
                }
                Some(b'?') => {
                    if let Some(path) = field.strip_prefix(b"? ") {
                        listed.paths.push(("??".to_string(), text(path), None));
                    }
                    continue;
                }
                Some(b'1') => 8,
                Some(b'2') => 9,
                Some(b'u') => 10,
                _ => continue,
            };
            let mut parts = field.splitn(words + 1, |b| *b == b' ');
            let xy = parts.nth(1).unwrap_or_default();
            let Some(path) = parts.nth(words - 2) else {
                continue;
            };
            // A rename or copy is followed by its source path.
            let from = (field[0] == b'2')
                .then(|| fields.next().map(text))
                .flatten();
            listed.paths.push((code(xy), text(path), from));
        }
        listed
    }
}

/// The content hashes of the files snapshots list, each kept with the file's stamp when it was
/// read, so that a file nobody has touched since is not read again: a large file left changed
/// in the work tree would otherwise be read whole for every snapshot, two a run. Shared by the
/// loop and the threads that take the snapshot at a run's end.
///
/// A stamp is the file's device, inode, size, modification and change times; the change time
/// moves with every write, rename and `touch`, and no tool can set it back (unlike the
/// modification time that `cp -p`, `tar` and `touch -d` set). A write in the same clock tick
/// as the change read would still leave the stamp as it was, so, as git does for its index, a
/// hash is trusted only when it was read [`SETTLED`] after the file's last change; until then
/// the file is read every time.
#[derive(Debug, Default)]
pub struct Hashes {
    known: Mutex<HashMap<PathBuf, Known>>,
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

/// How long after its last change a file's hash may stand for its content while its stamp
/// holds: well over the coarsest time stamps of common file systems.
pub const SETTLED: Duration = Duration::from_secs(2);

/// A file's change time as the file system stamped it: seconds and nanoseconds since 1970.
fn changed_time(meta: &std::fs::Metadata) -> (i64, i64) {
    (meta.ctime(), meta.ctime_nsec())
}

/// The time `t` in the form of [`changed_time`]; `None` before 1970.
fn file_time(t: SystemTime) -> Option<(i64, i64)> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    Some((since.as_secs() as i64, i64::from(since.subsec_nanos())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChangeStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl ChangeStamp {
    fn of(meta: &std::fs::Metadata) -> ChangeStamp {
        ChangeStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: changed_time(meta),
        }
    }

    /// Whether `at` lies at least [`SETTLED`] after the file's last change.
    fn settled_at(&self, at: SystemTime) -> bool {
        let last = self.modified.max(self.changed);
        let Some(at) = file_time(at) else {
            return false;
        };
        let settled = SETTLED.as_secs() as i64;
        at >= (last.0.saturating_add(settled), last.1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Known {
    stamp: ChangeStamp,
    hash: u64,
    /// Read [`SETTLED`] after the file's last change: the hash stands while the stamp holds.
    settled: bool,
}

impl Hashes {
    /// The content hash of the file at `path`, `None` when it cannot be read.
    pub fn of(&self, path: &Path) -> Option<u64> {
        self.of_at(path, SystemTime::now)
    }

    /// [`Hashes::of`], with `now` the clock read just before the file's content is.
    fn of_at(&self, path: &Path, now: impl FnOnce() -> SystemTime) -> Option<u64> {
        let known = || self.known.lock().unwrap_or_else(PoisonError::into_inner);
        // The stamp before the content: a change while it is read moves the stamp past it.
        let Ok(meta) = std::fs::metadata(path) else {
            known().remove(path);
            return None;
        };
        let stamp = ChangeStamp::of(&meta);
        if let Some(k) = known().get(path)
            && k.settled
            && k.stamp == stamp
        {
            return Some(k.hash);
        }
        let read_at = now();
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(bytes) = std::fs::read(path) else {
            known().remove(path);
            return None;
        };
        let hash = crate::core::hash::content_hash(&bytes);
        let settled = meta.is_file() && stamp.settled_at(read_at);
        known().insert(
            path.to_path_buf(),
            Known {
                stamp,
                hash,
                settled,
            },
        );
        Some(hash)
    }

    /// Forgets every file but these.
    fn keep_only(&self, paths: impl Iterator<Item = PathBuf>) {
        let keep: std::collections::HashSet<PathBuf> = paths.collect();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|p, _| keep.contains(p));
    }
}

/// Pathspecs that keep the board and the runtime's files beside it (`.taskboard/`,
/// `handoffs/`, `deadletter/`, the event log and its rotated files) out of `git status`. They
/// are never a run's work ([`is_runtime_file`] leaves them out of what a run changed in any
/// case), and in a repository whose `.gitignore` lacks the lines `taskboard init` adds, each
/// snapshot would otherwise list, read and hash every run's logs and every event log of up to
/// `events_max_size` bytes: more with every run. None when the folder's path cannot be given to
/// git exactly.
fn runtime_pathspecs(root: &Path, board_dir: &Path, board: &Path) -> Vec<String> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (root, dir) = (canon(root), canon(board_dir));
    let Some(rel) = dir.strip_prefix(&root).ok().and_then(Path::to_str) else {
        return Vec::new();
    };
    let under = |name: &str| match rel {
        "" => name.to_string(),
        rel => format!("{rel}/{name}"),
    };
    let mut specs: Vec<String> = [".taskboard", "handoffs", "deadletter"]
        .iter()
        .map(|name| format!(":(exclude,literal){}", under(name)))
        .collect();
    // The board by its name in its folder (a board elsewhere, through a link, is listed and
    // then left out by `is_runtime_file`).
    let board_name = board.file_name().and_then(|n| n.to_str());
    if let Some(name) = board_name
        && board.parent().map(canon).as_deref() == Some(dir.as_path())
    {
        specs.push(format!(":(exclude,literal){}", under(name)));
    }
    // The event log, its lock and its rotated files: `*` in a glob does not cross a `/`, and
    // the folder's own name is escaped so that none of its characters acts as a pattern.
    let folder = escape_glob(rel);
    let mut patterns = vec!["events*.jsonl".to_string(), "events.jsonl*".to_string()];
    // The board's own copies: being written, replaced a moment ago, or a late save kept.
    if let Some(prefix) = board_copy_prefix(board) {
        patterns.push(format!("{}*", escape_glob(&prefix)));
    }
    for pattern in patterns {
        specs.push(match rel {
            "" => format!(":(exclude,glob){pattern}"),
            _ => format!(":(exclude,glob){folder}/{pattern}"),
        });
    }
    specs
}

/// `s` with every character a glob pattern reads specially escaped.
fn escape_glob(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if matches!(c, '\\' | '*' | '?' | '[') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// What [`since`] gave at a run's end, with the repository root it looked in and the board's
/// folder whose runtime files it left out.
#[derive(Debug)]
pub struct SeenAtEnd {
    pub root: PathBuf,
    pub board_dir: PathBuf,
    pub changes: Result<Option<Vec<String>>, String>,
}

/// What git saw a run change since `before` (taken at its start): the paths (repository-relative)
/// whose state differs, leaving out the runtime's own files under `board_dir` and editors' side
/// files. `Ok(None)` when git cannot tell (no evidence, as outside a work tree); `Err` says, in
/// one line, why the run's changes cannot be told apart (`HEAD` moved to another history).
pub fn since(
    before: &TreeState,
    board_dir: &Path,
    board: &Path,
    hashes: &Hashes,
) -> Result<Option<Vec<String>>, String> {
    let Some(after) = snapshot(&before.root, board_dir, board, hashes) else {
        return Ok(None);
    };
    let moved = match (&before.head, &after.head) {
        (a, b) if a == b => Moved::No,
        (Some(start), Some(_)) if is_ancestor(&after.root, start) => {
            match git(
                &after.root,
                &["diff", "--name-only", "--no-renames", "-z", start],
            ) {
                Some(out) => ahead(before, &after, &out, hashes),
                None => return Ok(None),
            }
        }
        // From the first commit on: every path the index holds now is new since the start.
        (None, Some(_)) => match git(&after.root, &["ls-files", "-z"]) {
            Some(out) => ahead(before, &after, &out, hashes),
            None => return Ok(None),
        },
        _ => Moved::Elsewhere,
    };
    if moved == Moved::Elsewhere {
        let short = |h: &Option<String>| {
            h.as_deref()
                .map_or("no commit".to_string(), |h| h.chars().take(12).collect())
        };
        return Err(format!(
            "HEAD moved from {} to {}, a history without the commit the run started from (a branch switch, a rebase or an amend): what the run changed cannot be told, so no evidence is recorded",
            short(&before.head),
            short(&after.head)
        ));
    }
    // An early snapshot: what changed between it and the start is not the run's.
    let fenced = |k: &String| before.fence.is_some_and(|f| f.holds(&after.root, k));
    Ok(Some(
        compare(before, &after, &moved)
            .into_iter()
            .filter(|k| !fenced(k))
            .filter(|k| !is_editor_side_file(k))
            .filter(|k| !is_runtime_file(&after.root.join(k), board_dir, board))
            .collect(),
    ))
}

/// `Moved::Ahead` from git's NUL-separated list of paths differing from the start, with the
/// content hash now of every path that could have changed.
fn ahead(before: &TreeState, after: &TreeState, names: &[u8], hashes: &Hashes) -> Moved {
    let differs: BTreeSet<String> = names
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let now = differs
        .iter()
        .chain(before.entries.keys())
        .chain(after.entries.keys())
        .map(|p| (p.clone(), hashes.of(&after.root.join(p))))
        .collect();
    Moved::Ahead { differs, now }
}

/// Whether `commit` is an ancestor of (or is) `HEAD`.
fn is_ancestor(root: &Path, commit: &str) -> bool {
    git(root, &["merge-base", "--is-ancestor", commit, "HEAD"]).is_some()
}

/// The paths that changed between two snapshots, given how `HEAD` moved (not `Elsewhere`).
///
/// `HEAD` in place: a path changed when its status or content differs. `HEAD` moved forward:
/// statuses are relative to different commits, so content decides: a path listed at the start
/// (dirty then) changed when its content differs from then; any other path was as the start
/// commit has it, so it changed when it differs from that commit now, or is a new untracked
/// file.
fn compare(before: &TreeState, after: &TreeState, moved: &Moved) -> Vec<String> {
    let keys: BTreeSet<&String> = before.entries.keys().chain(after.entries.keys()).collect();
    match moved {
        Moved::Ahead { differs, now } => keys
            .into_iter()
            .chain(differs.iter())
            .collect::<BTreeSet<&String>>()
            .into_iter()
            .filter(|k| match before.entries.get(*k) {
                Some((_, then)) => now.get(*k) != Some(then),
                None => {
                    differs.contains(*k)
                        || after.entries.get(*k).is_some_and(|(code, _)| code == "??")
                }
            })
            .cloned()
            .collect(),
        Moved::No | Moved::Elsewhere => keys
            .into_iter()
            .filter(|k| before.entries.get(*k) != after.entries.get(*k))
            .cloned()
            .collect(),
    }
}

/// Whether a path (repository-relative) is a side file an editor keeps beside what it edits:
/// never anyone's work, and often a person's editor open on the board while a run goes on.
/// Decided by the file name alone:
/// - vim: swap files `.NAME.swp` (and `.swo` … `.swa` when older ones exist), the write probe
///   `4913` (then `5036`, `5159`, … in steps of 123 when taken), backups `NAME~`;
/// - emacs: lock links `.#NAME`, auto-saves `#NAME#`, backups `NAME~` and `NAME.~1~`;
/// - kate: `.NAME.kate-swp`; gedit: `.goutputstream-XXXXXX`; JetBrains: `NAME___jb_tmp___`
///   and `NAME___jb_old___`.
pub fn is_editor_side_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let vim_swap = name.starts_with('.')
        && name.len() >= 4
        && name.rsplit_once('.').is_some_and(|(_, ext)| {
            ext.len() == 3 && ext.starts_with("sw") && matches!(ext.as_bytes()[2], b'a'..=b'p')
        });
    let vim_probe = name.len() <= 6
        && name.bytes().all(|b| b.is_ascii_digit())
        && name
            .parse::<u32>()
            .is_ok_and(|n| n >= 4913 && (n - 4913) % 123 == 0 && n < 4913 + 123 * 100);
    vim_swap
        || vim_probe
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || (name.starts_with('.') && name.ends_with(".kate-swp"))
        || name.starts_with(".goutputstream-")
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
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
    if is_board_copy(rel, board) {
        return true;
    }
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    matches!(first.as_str(), ".taskboard" | "handoffs" | "deadletter")
        || (first.starts_with("events") && first.ends_with(".jsonl"))
        || first.starts_with("events.jsonl")
}

/// Whether `rel` (relative to the board's folder) is one of the board's own copies beside it:
/// a new board being written, one a write replaced and keeps for a moment, or a late save kept
/// (`.<board>.taskboard-<pid>-<nonce>.tmp`, `….kept`; see `fsio`).
fn is_board_copy(rel: &Path, board: &Path) -> bool {
    let (Some(name), Some(prefix)) = (rel.to_str(), board_copy_prefix(board)) else {
        return false;
    };
    name.strip_prefix(&prefix)
        .is_some_and(|rest| !rest.contains('/'))
}

/// [`fsio::copy_prefix`](crate::shell::fsio::copy_prefix) of the board's name, as text.
fn board_copy_prefix(board: &Path) -> Option<String> {
    let prefix = crate::shell::fsio::copy_prefix(board.file_name()?);
    prefix.into_string().ok()
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

/// `git diff BASE` of these paths (repository-relative), for a review packet: from the commit
/// the run started from (`base`, see [`TreeState::head`]) to the work tree, so what the run
/// committed is in it too; from `HEAD` when that commit is not known.
pub fn diff(root: &Path, base: Option<&str>, paths: &[String]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    let base = base.unwrap_or("HEAD");
    let mut args: Vec<&str> = vec!["diff", "--no-color", "--no-ext-diff", base, "--"];
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn editor_side_files_are_told_by_their_name() {
        let side = [
            ".task-board.md.swp",
            ".task-board.md.swo",
            ".task-board.md.swa",
            "notes/.plan.md.swp",
            ".swp",
            "4913",
            "5036",
            "sub/4913",
            "task-board.md~",
            "src/lib.rs~",
            "task-board.md.~1~",
            ".#task-board.md",
            "#task-board.md#",
            "docs/#notes.md#",
            ".task-board.md.kate-swp",
            ".goutputstream-XJ2F9Z",
            "task-board.md___jb_tmp___",
            "task-board.md___jb_old___",
        ];
        for p in side {
            assert!(is_editor_side_file(p), "{p} is an editor side file");
        }
        let work = [
            "task-board.md",
            "src/lib.rs",
            "swp",
            "notes.swp",
            ".task-board.md.sql",
            ".task-board.md.swz",
            ".env",
            "4914",
            "4913.md",
            "1000",
            "#",
            "##",
            "issue#12.md",
            ".gitignore",
            "handoffs/A-1.md",
        ];
        for p in work {
            assert!(!is_editor_side_file(p), "{p} is not an editor side file");
        }
    }

    fn snap(head: &str, entries: &[(&str, &str, Option<u64>)]) -> TreeState {
        TreeState {
            root: PathBuf::from("/nonexistent/repo"),
            head: Some(head.to_string()),
            entries: entries
                .iter()
                .map(|(p, c, h)| (p.to_string(), (c.to_string(), *h)))
                .collect(),
            fence: None,
        }
    }

    #[test]
    fn with_head_in_place_status_or_content_decides() {
        let before = snap(
            "a",
            &[("dirty.rs", " M", Some(1)), ("same.rs", " M", Some(2))],
        );
        let after = snap(
            "a",
            &[
                ("dirty.rs", " M", Some(3)),
                ("same.rs", " M", Some(2)),
                ("new.rs", "??", Some(4)),
            ],
        );
        assert_eq!(compare(&before, &after, &Moved::No), ["dirty.rs", "new.rs"]);
    }

    #[test]
    fn with_head_moved_forward_content_since_the_start_decides() {
        // At the start: the person's edit to notes.md and an untracked scratch file.
        let before = snap(
            "a",
            &[("notes.md", " M", Some(1)), ("scratch", "??", Some(2))],
        );
        // The run committed src/a.rs, edited src/b.rs without committing, created src/c.rs
        // and committed a change to src/d.rs it then undid in the work tree; the person's
        // files are as they were (notes.md now clean against the new HEAD: committed too).
        let after = snap(
            "b",
            &[
                ("src/b.rs", " M", Some(5)),
                ("src/c.rs", "??", Some(6)),
                ("src/d.rs", " M", Some(7)),
                ("scratch", "??", Some(2)),
            ],
        );
        let differs: BTreeSet<String> = ["src/a.rs", "src/b.rs", "notes.md"]
            .map(String::from)
            .into();
        let now = [
            ("src/a.rs", Some(8)),
            ("src/b.rs", Some(5)),
            ("src/c.rs", Some(6)),
            ("src/d.rs", Some(7)),
            ("notes.md", Some(1)),
            ("scratch", Some(2)),
        ]
        .map(|(p, h)| (p.to_string(), h))
        .into();
        let moved = Moved::Ahead { differs, now };
        assert_eq!(
            compare(&before, &after, &moved),
            ["src/a.rs", "src/b.rs", "src/c.rs"]
        );
    }

    #[test]
    fn the_board_and_the_runtime_files_are_never_the_runs_work() {
        let dir = Path::new("/nonexistent/repo/boards");
        let board = dir.join("task-board.md");
        for p in [
            "task-board.md",
            "events.jsonl",
            "events-2026-11-30T10:00:00Z.jsonl",
            "handoffs/A-1.md",
            "deadletter/A-1.json",
            ".taskboard/state.json",
        ] {
            assert!(is_runtime_file(&dir.join(p), dir, &board), "{p}");
        }
        for p in ["notes.md", "src/task-board.md", "../task-board.md"] {
            assert!(!is_runtime_file(&dir.join(p), dir, &board), "{p}");
        }
    }

    /// The board and the runtime's files beside it are not listed, so they (every run's logs
    /// and every event log, in a repository without taskboard's `.gitignore` lines) are never
    /// read for a snapshot; files of the same names elsewhere, names that only begin or end the
    /// same, and folders a pattern made of the board folder's name would take are listed.
    /// Whatever is left out is a runtime file to [`is_runtime_file`], so no run's evidence
    /// changes by it.
    #[test]
    fn a_snapshot_leaves_out_the_board_and_the_runtime_files_beside_it() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        let git_ok = Command::new("git")
            .args(["init", "-q"])
            .current_dir(root)
            .status()
            .is_ok_and(|s| s.success());
        assert!(git_ok, "git init");
        // The first nine are the runtime's beside a board in `sub`.
        let files = [
            "sub/.taskboard/runs/T-1/1/stdout.log",
            "sub/handoffs/T-1.md",
            "sub/deadletter/T-2.md",
            "sub/task-board.md",
            "sub/events.jsonl",
            "sub/events.jsonl.lock",
            "sub/events-20261202T011915Z.jsonl",
            "sub/.task-board.md.taskboard-1-2a.tmp",
            "sub/.task-board.md.taskboard-1-2b.tmp.kept",
            "sub/events.md",
            "sub/.other-board.md.taskboard-1-2c.tmp",
            "sub/.task-board.md.swp",
            "sub/my-events.jsonl",
            "sub/other-board.md",
            "sub/.taskboard-old/x",
            "sub/notes/handoffs/y",
            "sub/notes/events.jsonl",
            "other/.taskboard/z",
            ".taskboard/w",
            "events-1.jsonl",
            "b[1]*/events.jsonl",
            "b[1]*/task-board.md",
            "b1x/events.jsonl",
        ];
        for f in files {
            let path = root.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, f).unwrap();
        }
        let left_out = |dir: &str, expected: &[&str]| {
            let board_dir = root.join(dir);
            let board = board_dir.join("task-board.md");
            let snap =
                (snapshot(root, &board_dir, &board, &Hashes::default())).expect("a snapshot");
            let listed: BTreeSet<&str> = snap.entries.keys().map(String::as_str).collect();
            let out: Vec<&str> = files.into_iter().filter(|f| !listed.contains(f)).collect();
            assert_eq!(out, expected, "left out with the board in {dir:?}");
            for f in out {
                assert!(is_runtime_file(&root.join(f), &board_dir, &board), "{f}");
            }
        };
        left_out("sub", &files[..9]);
        left_out("", &[".taskboard/w", "events-1.jsonl"]);
        left_out("b[1]*", &["b[1]*/events.jsonl", "b[1]*/task-board.md"]);
    }

    #[test]
    fn status_lines_are_read_with_their_codes_and_rename_sources() {
        let out = b"# branch.oid 4d5004fe6a4cad71f2b28af41cc7ae7298ae8dcc\0# branch.head main\0\
            1 .M N... 100644 100644 100644 aaaa aaaa src/a b.rs\0\
            2 R. N... 100644 100644 100644 bbbb bbbb R100 new name.md\0old name.md\0\
            u UU N... 100644 100644 100644 100644 cccc dddd eeee both.txt\0\
            ? ? odd\0? n/m/u\0";
        let listed = Listed::parse(out);
        assert_eq!(
            listed.head.as_deref(),
            Some("4d5004fe6a4cad71f2b28af41cc7ae7298ae8dcc")
        );
        let paths: Vec<(&str, &str, Option<&str>)> = (listed.paths.iter())
            .map(|(c, p, f)| (c.as_str(), p.as_str(), f.as_deref()))
            .collect();
        assert_eq!(
            paths,
            [
                (" M", "src/a b.rs", None),
                ("R ", "new name.md", Some("old name.md")),
                ("UU", "both.txt", None),
                ("??", "? odd", None),
                ("??", "n/m/u", None),
            ]
        );
        let initial = Listed::parse(b"# branch.oid (initial)\0# branch.head main\0? a\0");
        assert_eq!(initial.head, None);
    }

    /// The snapshot as two git processes gave it: `rev-parse HEAD`, then porcelain v1.
    fn snapshot_v1(root: &Path, board_dir: &Path) -> TreeState {
        let head = git(root, &["rev-parse", "--verify", "-q", "HEAD"])
            .map(|h| String::from_utf8_lossy(&h).trim().to_string())
            .filter(|h| !h.is_empty());
        let excluded = runtime_pathspecs(root, board_dir, &board_dir.join("task-board.md"));
        let mut args = vec!["status", "--porcelain=v1", "-z", "--untracked-files=all"];
        args.extend(["--ignored=no", "--", "."]);
        args.extend(excluded.iter().map(String::as_str));
        let out = git(root, &args).expect("git status");
        let mut entries = BTreeMap::new();
        let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
        while let Some(field) = fields.next() {
            let code = String::from_utf8_lossy(&field[..2]).into_owned();
            let path = String::from_utf8_lossy(&field[3..]).into_owned();
            if code.starts_with(['R', 'C']) {
                let from = String::from_utf8_lossy(fields.next().unwrap()).into_owned();
                entries.insert(from, (code.clone(), None));
            }
            let hash = std::fs::read(root.join(&path))
                .ok()
                .map(|b| crate::core::hash::content_hash(&b));
            entries.insert(path, (code, hash));
        }
        TreeState {
            root: root.to_path_buf(),
            head,
            entries,
            fence: None,
        }
    }

    /// Runs git in `root` as a test's person would, failing the test if it fails.
    pub(crate) fn git_in(root: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?}");
    }

    /// Writes `body` to `name` under `root`, making its folders.
    pub(crate) fn write_in(root: &Path, name: &str, body: &str) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// One git process gives the snapshot two gave before, in every state a work tree can be
    /// in: before the first commit, with changes staged, unstaged and both, deletions, a staged
    /// rename of names with spaces, untracked files in new folders and a repository inside,
    /// a merge stopped on conflicts, and a detached `HEAD`.
    #[test]
    fn a_snapshot_lists_what_status_and_rev_parse_list() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path();
        let run = |args: &[&str]| git_in(root, args);
        let write = |name: &str, body: &str| write_in(root, name, body);
        let board_dir = root.join("boards");
        // Kept across the snapshots, as the runtime keeps it.
        let hashes = Hashes::default();
        let same = |state: &str| {
            let now = snapshot(root, &board_dir, &board_dir.join("task-board.md"), &hashes)
                .expect("a snapshot");
            assert_eq!(now, snapshot_v1(root, &board_dir), "{state}");
            now
        };
        run(&["init", "-q"]);
        write("boards/task-board.md", "# Board\n");
        write("boards/.taskboard/state.json", "{}");
        write("a b.txt", "a\n");
        write("é.md", "e\n");
        write("conflict.txt", "base\n");
        write("gone.txt", "gone\n");
        write("staged-gone.txt", "gone\n");
        run(&["add", "é.md"]);
        let first = same("before the first commit");
        assert_eq!(first.head, None);
        assert!(first.entries.contains_key("a b.txt"), "{first:?}");

        run(&["add", "-A"]);
        run(&["commit", "-qm", "one"]);
        write("é.md", "e2\n");
        run(&["add", "é.md"]);
        write("é.md", "e3\n");
        write("conflict.txt", "edited\n");
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        run(&["rm", "-q", "staged-gone.txt"]);
        run(&["mv", "a b.txt", "c d.txt"]);
        write("new/deep/untracked file", "u\n");
        write("? odd", "odd\n");
        run(&["add", "-N", "? odd"]);
        write("nested/inner.txt", "inner\n");
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(root.join("nested"))
            .status()
            .unwrap();
        let dirty = same("with changes of every kind");
        assert!(dirty.head.is_some());
        for (path, code) in [("é.md", "MM"), ("c d.txt", "R "), ("gone.txt", " D")] {
            assert_eq!(dirty.entries[path].0, code, "{path}: {dirty:?}");
        }

        // The repository inside stays untracked: it has no commit to record.
        run(&["add", "-A", "--", ".", ":(exclude)nested"]);
        run(&["commit", "-qm", "two"]);
        run(&["checkout", "-q", "-b", "side", "HEAD~1"]);
        write("conflict.txt", "side\n");
        run(&["commit", "-qam", "side"]);
        let merged = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["merge", "-q", "main"])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!merged.success(), "the merge stops on its conflicts");
        let conflicted = same("in a merge stopped on conflicts");
        assert_eq!(conflicted.entries["conflict.txt"].0, "UU", "{conflicted:?}");

        run(&["merge", "--abort"]);
        run(&["checkout", "-q", "--detach", "main"]);
        same("with a detached HEAD");
    }

    /// A file's hash read well after its last change stands while its stamp holds: the file
    /// is not read again. Any write moves the stamp, even one that keeps the size and puts the
    /// modification time back; a hash read soon after a change is read again every time.
    #[test]
    fn a_settled_file_is_read_once_and_any_change_reads_it_again() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, b"aaaa").unwrap();
        let hashes = Hashes::default();
        let reads = || hashes.reads.load(Ordering::Relaxed);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let later = || SystemTime::now() + SETTLED + Duration::from_secs(1);

        // Read soon after its change: read again.
        let first = hashes.of_at(&path, SystemTime::now);
        assert_eq!(first, Some(crate::core::hash::content_hash(b"aaaa")));
        assert_eq!(hashes.of_at(&path, later), first);
        assert_eq!(reads(), 2);
        // Read when settled: it stands.
        assert_eq!(hashes.of_at(&path, later), first);
        assert_eq!(hashes.of(&path), first);
        assert_eq!(reads(), 2, "a settled file is not read again");

        // The same size, the modification time put back: still read again.
        std::fs::write(&path, b"bbbb").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
        drop(file);
        assert_eq!(
            hashes.of_at(&path, later),
            Some(crate::core::hash::content_hash(b"bbbb"))
        );
        assert_eq!(reads(), 3);

        // Gone, then back with the first content.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(hashes.of_at(&path, later), None);
        std::fs::write(&path, b"aaaa").unwrap();
        assert_eq!(hashes.of_at(&path, later), first);
        assert_eq!(reads(), 4);
    }

    /// What a stamp's settling is judged by: the later of its two times, to the nanosecond.
    #[test]
    fn a_stamp_settles_two_seconds_after_its_last_change() {
        let stamp = ChangeStamp {
            dev: 1,
            ino: 2,
            len: 3,
            modified: (100, 500),
            changed: (90, 0),
        };
        let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
        assert!(!stamp.settled_at(at(102, 499)));
        assert!(stamp.settled_at(at(102, 500)));
        let changed_last = ChangeStamp {
            changed: (101, 0),
            ..stamp
        };
        assert!(!changed_last.settled_at(at(102, 500)));
        assert!(changed_last.settled_at(at(103, 0)));
    }

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
