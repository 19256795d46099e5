//! A snapshot of the work tree taken ahead of a run's start, and the fence that keeps what
//! changed between it and the start out of the run's work.
//!
//! A snapshot is a `git status` of the whole repository: in a large one, ten milliseconds or
//! more between a save and the start of the runs it readies. Taken as the save begins
//! ([`snapshot_early`]), it is paid during the save's quiet period instead. What changes after it
//! and before the start (the rest of an editor's "save all", the files a `git pull` writes after
//! the board) must then not count as the run's, and is told apart at the run's end by change
//! time ([`StartFence`]): a file's change time moves with every write, rename and `chmod`, and
//! no tool can set it back. A path that differs from the early snapshot but last changed before
//! the start is left out; so is a path gone whose folder last changed before the start
//! (removing an entry changes its folder). Where that cannot be told, the path is the run's, as
//! a change during the run would be: a file removed before the start from a folder that
//! changes again during the run (the board's own folder does, with every write of the board),
//! and a change in the last clock tick before the start. A run that puts a file back exactly
//! as the early snapshot saw it, after a person changed it before the start, is not seen to
//! have changed it.
//!
//! What git keeps about the work tree cannot be fenced so: a commit, a checkout or `git add`
//! moves `HEAD`, a branch or the index. git replaces each of those files through a lock file
//! renamed into place, or appends to it (the reflog), so their stamps ([`Repo::refs_stamp`])
//! change with any such command; when they differ at the start, the early snapshot is not used
//! and a snapshot is taken then, as without one.
//!
//! Owns no thread and no state: the runtime decides when to take one and hands it over.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{ChangeStamp, Hashes, TreeState, changed_time, file_time, git, snapshot};

/// A git work tree and the folders git keeps its `HEAD`, refs and index in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub root: PathBuf,
    git_dir: PathBuf,
    common_dir: PathBuf,
}

impl Repo {
    /// The git work tree containing `dir`, or `None` outside one (or without git).
    pub fn find(dir: &Path) -> Option<Repo> {
        let out = git(
            dir,
            &[
                "rev-parse",
                "--show-toplevel",
                "--absolute-git-dir",
                "--git-common-dir",
            ],
        )?;
        let out = String::from_utf8_lossy(&out);
        let mut lines = out.lines();
        let root = PathBuf::from(lines.next()?);
        let git_dir = PathBuf::from(lines.next()?);
        // Relative to the folder git ran in when it is not absolute.
        let common_dir = dir.join(lines.next()?);
        Some(Repo {
            root,
            git_dir,
            common_dir,
        })
    }

    /// The stamps of the files that say which commit `HEAD` names and what the index holds:
    /// `HEAD`, the index, `HEAD`'s reflog, the packed refs, a reftable's table list, and the
    /// loose ref `HEAD` points to. `None` for one that does not exist.
    fn refs_stamp(&self) -> Vec<Option<ChangeStamp>> {
        let head = self.git_dir.join("HEAD");
        let mut files = vec![
            self.git_dir.join("index"),
            self.git_dir.join("logs/HEAD"),
            self.common_dir.join("packed-refs"),
            self.common_dir.join("reftable/tables.list"),
        ];
        if let Ok(text) = std::fs::read(&head)
            && let Some(name) = text.strip_prefix(b"ref: ")
        {
            let name = String::from_utf8_lossy(name.trim_ascii());
            files.push(self.common_dir.join(name.as_ref()));
        }
        files.push(head);
        files
            .iter()
            .map(|f| {
                std::fs::symlink_metadata(f)
                    .ok()
                    .map(|m| ChangeStamp::of(&m))
            })
            .collect()
    }
}

/// A snapshot of the work tree taken ahead of a run's start, with what it needs to be checked
/// and fenced when the run starts ([`Early::at_start`]).
#[derive(Debug)]
pub struct Early {
    tree: TreeState,
    refs: Vec<Option<ChangeStamp>>,
    /// The wall clock just before git was asked.
    began: (i64, i64),
}

/// Takes a snapshot ahead of a run's start (see the module's documentation); `None` if git
/// fails.
pub fn snapshot_early(
    repo: &Repo,
    board_dir: &Path,
    board: &Path,
    hashes: &Hashes,
) -> Option<Early> {
    // Stamped before git reads anything: a command that moves `HEAD` or the index while the
    // snapshot is taken changes them too.
    let refs = repo.refs_stamp();
    let began = wall(SystemTime::now());
    let tree = snapshot(&repo.root, board_dir, board, hashes)?;
    Some(Early { tree, refs, began })
}

impl Early {
    /// The work tree before a run that starts now, as this snapshot saw it, fenced so that what
    /// changed since is not the run's; `None` when `HEAD`, a branch or the index moved since,
    /// or the snapshot is of another repository. `board` is the board as last written, just
    /// before the start: its change time comes from the file system's own clock.
    pub fn at_start(self, repo: &Repo, board: &Path) -> Option<TreeState> {
        if self.tree.root != repo.root || repo.refs_stamp() != self.refs {
            return None;
        }
        let mut tree = self.tree;
        tree.fence = Some(StartFence::new(self.began, start_floor(board)));
        Some(tree)
    }
}

/// How far before the early snapshot the fence reaches: a change made after the snapshot
/// began may bear a time up to the coarsest file time stamp (two seconds on FAT) earlier.
/// Further back nothing is left out: a path last changed before the snapshot began is as the
/// snapshot saw it, so only a clock set back during the run could bring a run's change there.
const REACH_BACK: i64 = 2;

/// The span of change times that are not a run's work: from a little before its early
/// snapshot began to the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StartFence {
    from: (i64, i64),
    to: (i64, i64),
}

impl StartFence {
    fn new(began: (i64, i64), start: (i64, i64)) -> StartFence {
        StartFence {
            from: (began.0.saturating_sub(REACH_BACK), began.1),
            to: start,
        }
    }

    /// Whether the path (relative to `root`) last changed inside the fence, and so is not the
    /// run's work: its change time, or when it is gone, that of the nearest folder left above
    /// it. A path that cannot be looked at is the run's, as it would be without a fence.
    pub(super) fn holds(&self, root: &Path, rel: &str) -> bool {
        let mut path = root.join(rel);
        loop {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) => {
                    let changed = changed_time(&meta);
                    return self.from <= changed && changed < self.to;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.kind() == std::io::ErrorKind::NotADirectory =>
                {
                    if !path.pop() || !path.starts_with(root) {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

/// A time no later than the change time of anything changed from now on: the file system
/// stamps a change with a clock that may lag the wall clock by a tick (Linux stamps with its
/// coarse clock) and rounds it to its own precision, so the board's change time (just written,
/// stamped by the same file system as the work tree) and the coarse clock bound it, whichever
/// is earlier.
fn start_floor(board: &Path) -> (i64, i64) {
    let clock = coarse_now();
    match std::fs::metadata(board) {
        Ok(meta) => clock.min(changed_time(&meta)),
        Err(_) => clock,
    }
}

#[cfg(target_os = "linux")]
fn coarse_now() -> (i64, i64) {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    (t.tv_sec, t.tv_nsec)
}

/// Elsewhere the wall clock, set back by more than a clock tick.
#[cfg(not(target_os = "linux"))]
fn coarse_now() -> (i64, i64) {
    wall(SystemTime::now() - std::time::Duration::from_millis(20))
}

fn wall(t: SystemTime) -> (i64, i64) {
    file_time(t).unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::evidence::since;
    use crate::shell::evidence::tests::{git_in as run, write_in as write};
    use std::time::{Duration, Instant};

    fn changed_at(path: &Path) -> (i64, i64) {
        changed_time(&std::fs::symlink_metadata(path).unwrap())
    }

    /// Waits until the file system's clock has passed `last`: a change the fence must tell
    /// from the start cannot share the start's clock tick (the runtime's start comes a quiet
    /// period after a save).
    fn past(last: (i64, i64)) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while coarse_now() <= last {
            assert!(Instant::now() < deadline, "the file clock did not move");
            std::thread::yield_now();
        }
    }

    /// A repository with committed files, one untracked, and a board in `boards/`.
    fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        run(root, &["init", "-q"]);
        for name in [
            "a.txt",
            "both.txt",
            "c.txt",
            "kept/b.txt",
            "deep/gone/x.txt",
        ] {
            write(root, name, "committed\n");
        }
        write(root, "boards/task-board.md", "# Board\n");
        run(root, &["add", "-A"]);
        run(root, &["commit", "-qm", "one"]);
        write(root, "d.txt", "untracked\n");
        let repo = Repo::find(root).expect("a repository");
        (dir, repo)
    }

    /// Everything a person changes between the early snapshot and the start (edits, a new
    /// file, a deletion, a folder removed) is left out of the run's work, and the run's own
    /// edits, new files and deletions are in it, as a snapshot taken at the start would tell.
    #[test]
    fn what_changed_between_an_early_snapshot_and_the_start_is_not_the_runs() {
        let (_dir, repo) = repo();
        let root = repo.root.clone();
        let board_dir = root.join("boards");
        let board = board_dir.join("task-board.md");
        let hashes = Hashes::default();
        let early = snapshot_early(&repo, &board_dir, &board, &hashes).expect("a snapshot");

        // A person's "save all", or the rest of a `git pull`, after the snapshot.
        write(&root, "a.txt", "person\n");
        write(&root, "both.txt", "person\n");
        write(&root, "e.txt", "new by the person\n");
        std::fs::remove_file(root.join("kept/b.txt")).unwrap();
        std::fs::remove_dir_all(root.join("deep/gone")).unwrap();
        past(changed_at(&root.join("deep")));
        // The claim written, then the start.
        write(
            &root,
            "boards/task-board.md",
            "# Board\n\n## A-1\n- status: running\n",
        );
        let fenced = early.at_start(&repo, &board).expect("git moved nothing");
        let at_start = snapshot(&root, &board_dir, &board, &hashes).unwrap();

        // The run.
        write(&root, "both.txt", "run\n");
        write(&root, "c.txt", "run\n");
        write(&root, "new/f.txt", "new by the run\n");
        std::fs::remove_file(root.join("d.txt")).unwrap();

        let run_work = ["both.txt", "c.txt", "d.txt", "new/f.txt"].map(String::from);
        let seen = since(&fenced, &board_dir, &board, &hashes)
            .unwrap()
            .unwrap();
        assert_eq!(seen, run_work);
        let without_fence = TreeState {
            fence: None,
            ..fenced.clone()
        };
        let unfenced = since(&without_fence, &board_dir, &board, &hashes).unwrap();
        assert_ne!(unfenced, Some(run_work.to_vec()), "the fence decides");
        assert_eq!(
            since(&at_start, &board_dir, &board, &hashes).unwrap(),
            Some(run_work.to_vec()),
            "as a snapshot at the start tells"
        );
    }

    /// Once git moved `HEAD`, a branch or the index, statuses and contents are relative to
    /// something else: the early snapshot is not used (a snapshot is taken at the start).
    /// Checked in the main work tree and in a linked one, whose `HEAD` and index git keeps
    /// apart from the refs.
    #[test]
    fn an_early_snapshot_is_not_used_once_git_moved_head_a_branch_or_the_index() {
        let (_dir, repo) = repo();
        let root = repo.root.clone();
        let linked = root.join("linked");
        run(&root, &["worktree", "add", "-q", "-b", "side", "linked"]);
        let side = Repo::find(&linked).expect("a linked work tree");
        let ops: [(&str, &Repo, &[&str]); 8] = [
            (
                "a commit",
                &repo,
                &["commit", "-q", "--allow-empty", "-m", "x"],
            ),
            ("git add", &repo, &["add", "d.txt"]),
            (
                "HEAD's branch moved",
                &repo,
                &["update-ref", "refs/heads/main", "HEAD~1"],
            ),
            ("a new branch", &repo, &["checkout", "-q", "-b", "other"]),
            ("a detached HEAD", &repo, &["checkout", "-q", "--detach"]),
            (
                "a commit on a detached HEAD",
                &repo,
                &["commit", "-q", "--allow-empty", "-m", "z"],
            ),
            (
                "a commit in a linked work tree",
                &side,
                &["commit", "-q", "--allow-empty", "-m", "y"],
            ),
            (
                "git add in a linked work tree",
                &side,
                &["add", "-f", "new.txt"],
            ),
        ];
        write(&linked, "new.txt", "new\n");
        let hashes = Hashes::default();
        for (what, repo, args) in ops {
            let board_dir = repo.root.join("boards");
            let board = board_dir.join("task-board.md");
            let early = snapshot_early(repo, &board_dir, &board, &hashes).unwrap();
            let unmoved = snapshot_early(repo, &board_dir, &board, &hashes).unwrap();
            assert!(unmoved.at_start(repo, &board).is_some(), "before {what}");
            run(&repo.root, args);
            assert!(early.at_start(repo, &board).is_none(), "after {what}");
        }
    }
}
