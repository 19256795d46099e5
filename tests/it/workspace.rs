//! The git layer for isolated runs, against real git repositories in temporary folders: a
//! worktree from a recorded base, a snapshot of everything a run changed that leaves the
//! worktree's index alone, removal that refuses unsaved work, landing on a person's branch
//! (squash and merge; clean, dirty, moved, conflicting, lost compare-and-swap), cleanup after a
//! half-made worktree, and the typed errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TempDir, git, sh};
use taskboard::core::workspace::{FileChange, attempt_names};
use taskboard::shell::workspace::{
    self as ws, GitError, LandRequest, Strategy, apply_land, cleanup_partial, conflicts,
    create_worktree, current_branch, land, list_worktrees, prepare_land, remove_worktree,
    repo_root, resolve_branch, snapshot, update_branch, write_patch,
};

/// A repository on `main` with a few committed files, a folder for worktrees beside it, and the
/// base commit.
struct Repo {
    _temp: TempDir,
    root: PathBuf,
    trees: PathBuf,
    base: String,
}

impl Repo {
    fn new(label: &str) -> Repo {
        let temp = TempDir::new(&format!("ws-{label}"));
        let root = temp.join("repo");
        let trees = temp.join("worktrees");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&trees).unwrap();
        git(&root, &["init", "-q"]);
        git(&root, &["config", "user.name", "Pat Person"]);
        git(&root, &["config", "user.email", "pat@example.com"]);
        for (name, text) in [
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.txt", "c\n"),
            ("d.txt", "d\n"),
            (
                "e.txt",
                "a file long enough that a rename of it is found\nline 2\nline 3\n",
            ),
            ("src/lib.rs", "fn main() {}\n"),
            (".gitignore", "node_modules/\n.env\n"),
        ] {
            write(&root, name, text);
        }
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", "start"]);
        let base = git(&root, &["rev-parse", "HEAD"]);
        Repo {
            _temp: temp,
            root,
            trees,
            base,
        }
    }

    /// Attempt 1 of `task`'s worktree, created at the base: its path and names.
    fn attempt(&self, task: &str) -> (PathBuf, taskboard::core::workspace::AttemptNames) {
        let names = attempt_names(task, 1);
        let path = self.trees.join(&names.folder);
        create_worktree(&self.root, &path, &names.branch, &self.base).expect("create");
        (path, names)
    }

    /// Commits `text` to `file` on `branch` without a checkout (a person pushing elsewhere).
    fn commit_on(&self, branch: &str, file: &str, text: &str) -> String {
        let tip = git(&self.root, &["rev-parse", branch]);
        let blob = pipe(&self.root, &["hash-object", "-w", "--stdin"], text);
        let tmp_index = self.root.join(".git/test-index");
        let env = [("GIT_INDEX_FILE", tmp_index.to_str().unwrap())];
        run_env(&self.root, &["read-tree", &tip], &env);
        let info = format!("100644,{blob},{file}");
        run_env(
            &self.root,
            &["update-index", "--add", "--cacheinfo", &info],
            &env,
        );
        let tree = run_env(&self.root, &["write-tree"], &env);
        let _ = std::fs::remove_file(&tmp_index);
        let commit = git(
            &self.root,
            &["commit-tree", &tree, "-p", &tip, "-m", "elsewhere"],
        );
        git(
            &self.root,
            &["update-ref", &format!("refs/heads/{branch}"), &commit],
        );
        commit
    }
}

fn write(dir: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pipe(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What an agent leaves: a commit, then staged, unstaged, new, deleted, renamed and binary.
fn agent_work(wt: &Path) {
    write(wt, "a.txt", "a changed in a commit\n");
    git(wt, &["commit", "-qam", "agent commit"]);
    write(wt, "b.txt", "b staged\n");
    git(wt, &["add", "b.txt"]);
    write(wt, "c.txt", "c unstaged\n");
    write(wt, "new/fresh.txt", "new\n");
    write(wt, "new/with space ü\tand tab.txt", "odd name\n");
    std::fs::remove_file(wt.join("d.txt")).unwrap();
    git(wt, &["mv", "e.txt", "e-renamed.txt"]);
    write(wt, "logo.bin", [0u8, 159, 146, 150, 0, 1, 2, 255]);
    // Ignored: never in a snapshot.
    write(wt, ".env", "SECRET=1\n");
    write(wt, "node_modules/x/index.js", "x\n");
}

fn index_state(wt: &Path) -> (String, Vec<u8>) {
    let index = git(
        wt,
        &["rev-parse", "--path-format=absolute", "--git-path", "index"],
    );
    (
        git(wt, &["status", "--porcelain"]),
        std::fs::read(index).unwrap(),
    )
}

#[test]
fn a_worktree_starts_locked_at_the_recorded_base_and_creating_again_is_harmless() {
    let r = Repo::new("create");
    // The base is recorded before the person's branch moves on.
    r.commit_on("main", "later.txt", "later\n");
    let hook = "#!/bin/sh\ntouch \"$(git rev-parse --git-common-dir)/../hook-ran\"\nexit 1\n";
    write(&r.root, ".git/hooks/post-checkout", hook);
    sh(&r.root, "chmod +x .git/hooks/post-checkout");
    let (wt, names) = r.attempt("TASK-7");
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), r.base);
    assert_eq!(current_branch(&wt).unwrap(), names.branch);
    let list = list_worktrees(&r.root).unwrap();
    let entry = list
        .iter()
        .find(|e| e.path.ends_with(&names.folder))
        .expect("listed");
    assert_eq!(
        entry.branch.as_deref(),
        Some(format!("refs/heads/{}", names.branch).as_str())
    );
    assert!(
        entry.locked.as_deref().unwrap().contains("taskboard"),
        "{entry:?}"
    );
    assert!(
        !r.root.join("hook-ran").exists(),
        "the repository's hooks are off"
    );
    create_worktree(&r.root, &wt, &names.branch, &r.base).expect("again: kept as it is");
    let relative = Path::new("../worktrees").join(&names.folder);
    create_worktree(&r.root, &relative, &names.branch, &r.base).expect("relative to the repo");
    assert!(!wt.join("later.txt").exists());
    assert_eq!(
        repo_root(&wt).unwrap().canonicalize().unwrap(),
        wt.canonicalize().unwrap()
    );
}

#[test]
fn a_snapshot_holds_everything_the_run_changed_and_leaves_the_index_alone() {
    let r = Repo::new("snapshot");
    let (wt, names) = r.attempt("TASK-1");
    agent_work(&wt);
    let before = index_state(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).expect("snapshot");
    assert_eq!(index_state(&wt), before, "status and index bytes unchanged");
    assert_eq!(
        git(&r.root, &["rev-parse", &format!("{}^1", snap.commit)]),
        r.base
    );
    assert_eq!(
        git(&r.root, &["rev-parse", &names.snapshot_ref]),
        snap.commit
    );
    assert_ne!(
        snap.head, r.base,
        "the agent's commit is the worktree's HEAD"
    );
    let second = format!("{}^2", snap.commit);
    assert_eq!(
        git(&r.root, &["rev-parse", &second]),
        snap.head,
        "the run's commits are kept"
    );
    let find = |p: &str| {
        snap.files
            .iter()
            .find(|f| f.path == p)
            .unwrap_or_else(|| panic!("{p} in {:?}", snap.files))
    };
    assert_eq!(find("a.txt").change, FileChange::Modified);
    assert_eq!(find("b.txt").change, FileChange::Modified);
    assert_eq!((find("c.txt").insertions, find("c.txt").deletions), (1, 1));
    assert_eq!(find("new/fresh.txt").change, FileChange::Added);
    assert_eq!(find("d.txt").change, FileChange::Deleted);
    assert_eq!(
        find("e-renamed.txt").change,
        FileChange::Renamed {
            from: "e.txt".into()
        }
    );
    assert!(find("logo.bin").binary && !find("a.txt").binary);
    assert_eq!(
        find("new/with space ü\tand tab.txt").change,
        FileChange::Added
    );
    assert_eq!(snap.files.len(), 8, "{:?}", snap.files);
    // The patch applies where the run began.
    let patch = r.trees.join("run.patch");
    write_patch(&r.root, &r.base, &snap.commit, &patch).expect("patch");
    sh(&r.root, &format!("git apply --check '{}'", patch.display()));
    sh(&r.root, &format!("git apply --index '{}'", patch.display()));
    assert_eq!(git(&r.root, &["write-tree"]), snap.tree);
}

#[test]
fn removal_refuses_unsaved_work_and_the_snapshot_outlives_the_worktree() {
    let r = Repo::new("remove");
    let (wt, names) = r.attempt("TASK-2");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    write(&wt, "after.txt", "written after the snapshot\n");
    let err = remove_worktree(&r.root, &wt, &names.branch, &names.snapshot_ref).unwrap_err();
    match &err {
        GitError::UnsavedWork { files, .. } => assert_eq!(files, &["after.txt"]),
        other => panic!("{other:?}"),
    }
    assert!(
        wt.join("after.txt").exists() && wt.join("c.txt").exists(),
        "nothing removed"
    );
    assert!(resolve_branch(&r.root, &names.branch).is_ok());
    std::fs::remove_file(wt.join("after.txt")).unwrap();
    remove_worktree(&r.root, &wt, &names.branch, &names.snapshot_ref).expect("remove");
    assert!(!wt.exists());
    assert_eq!(
        resolve_branch(&r.root, &names.branch),
        Err(GitError::NoSuchBranch {
            branch: names.branch.clone()
        })
    );
    assert!(
        !list_worktrees(&r.root)
            .unwrap()
            .iter()
            .any(|e| e.path.ends_with(&names.folder))
    );
    assert_eq!(
        git(&r.root, &["rev-parse", &names.snapshot_ref]),
        snap.commit
    );
    assert_eq!(
        git(&r.root, &["show", &format!("{}:c.txt", snap.commit)]),
        "c unstaged"
    );
    let kept = git(
        &r.root,
        &["rev-parse", &format!("{}^2", names.snapshot_ref)],
    );
    assert_eq!(kept, snap.head, "the run's commit outlives its branch");
    git(&r.root, &["gc", "-q", "--prune=now"]);
    git(&r.root, &["cat-file", "-e", &snap.head]);
    // A folder of the same name that is not the worktree is not removed.
    write(&wt, "mine.txt", "mine\n");
    let err = remove_worktree(&r.root, &wt, &names.branch, &names.snapshot_ref).unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    assert_eq!(read(&wt, "mine.txt"), "mine\n");
}

fn request<'a>(branch: &'a str, tip: &'a str, snap: &'a str, onto_latest: bool) -> LandRequest<'a> {
    LandRequest {
        branch,
        expected_tip: tip,
        snapshot: snap,
        strategy: Strategy::Squash,
        message: "TASK: landed",
        onto_latest,
    }
}

#[test]
fn landing_on_a_clean_checkout_fast_forwards_what_the_person_sees() {
    let r = Repo::new("land");
    let (wt, names) = r.attempt("TASK-3");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    // Touched, not changed: the checkout's index has stale file stamps, which is still clean.
    sh(&r.root, "touch -d '2001-01-01' c.txt a.txt");
    let landed = land(&r.root, &request("main", &r.base, &snap.commit, false)).expect("land");
    let tip = git(&r.root, &["rev-parse", "main"]);
    assert_eq!(tip, landed.new);
    assert_eq!(
        git(&r.root, &["rev-parse", "main^@"]),
        r.base,
        "one parent: the old tip"
    );
    assert_eq!(git(&r.root, &["rev-parse", "main^{tree}"]), snap.tree);
    assert_eq!(
        git(&r.root, &["log", "-1", "--format=%an %s", "main"]),
        "Pat Person TASK: landed"
    );
    assert_eq!(
        git(&r.root, &["status", "--porcelain"]),
        "",
        "no staged reversals"
    );
    assert_eq!(read(&r.root, "c.txt"), "c unstaged\n");
    assert!(r.root.join("logo.bin").exists() && !r.root.join("d.txt").exists());
}

#[test]
fn landing_refuses_a_dirty_checkout_and_changes_nothing() {
    let r = Repo::new("dirty");
    let (wt, names) = r.attempt("TASK-4");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    write(&r.root, "b.txt", "the person's own edit\n");
    let err = land(&r.root, &request("main", &r.base, &snap.commit, false)).unwrap_err();
    assert!(
        matches!(&err, GitError::DirtyCheckout { files, .. } if files == &["b.txt"]),
        "{err:?}"
    );
    assert_eq!(git(&r.root, &["rev-parse", "main"]), r.base);
    assert_eq!(read(&r.root, "b.txt"), "the person's own edit\n");
    assert_eq!(read(&r.root, "c.txt"), "c\n");
    // An untracked file of the person's in the way is not overwritten either.
    git(&r.root, &["checkout", "-q", "b.txt"]);
    write(&r.root, "new/fresh.txt", "the person's own new file\n");
    let err = land(&r.root, &request("main", &r.base, &snap.commit, false)).unwrap_err();
    let fresh = ["new/fresh.txt".to_string()];
    assert!(
        matches!(&err, GitError::DirtyCheckout { files, .. } if files == &fresh),
        "{err:?}"
    );
    assert_eq!(git(&r.root, &["rev-parse", "main"]), r.base);
    assert_eq!(
        read(&r.root, "new/fresh.txt"),
        "the person's own new file\n"
    );
}

#[test]
fn landing_carries_a_persons_edits_to_files_it_does_not_rewrite() {
    // The board lives in the checkout and the runtime keeps editing it: a landing that does not
    // rewrite it must neither wait for it nor lose a byte of it.
    let r = Repo::new("carried");
    let (wt, names) = r.attempt("TASK-9");
    write(&wt, "a.txt", "a changed by the agent\n");
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    write(
        &r.root,
        "src/lib.rs",
        "fn main() { /* the person's edit */ }\n",
    );
    write(&r.root, "notes.txt", "the person's untracked notes\n");
    let landed = land(&r.root, &request("main", &r.base, &snap.commit, false)).unwrap();
    assert_eq!(git(&r.root, &["rev-parse", "main"]), landed.new);
    assert_eq!(read(&r.root, "a.txt"), "a changed by the agent\n");
    assert_eq!(
        read(&r.root, "src/lib.rs"),
        "fn main() { /* the person's edit */ }\n"
    );
    assert_eq!(read(&r.root, "notes.txt"), "the person's untracked notes\n");
    let status = git(&r.root, &["status", "--porcelain"]);
    let mut lines: Vec<&str> = status.lines().map(str::trim).collect();
    lines.sort();
    assert_eq!(lines, ["?? notes.txt", "M src/lib.rs"]);
}

#[test]
fn a_moved_branch_is_refused_with_its_conflicts_or_landed_onto_when_asked() {
    let r = Repo::new("moved");
    git(&r.root, &["checkout", "-q", "-b", "person"]); // main is checked out nowhere
    let (wt, names) = r.attempt("TASK-5");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    let clash = r.commit_on("main", "c.txt", "c changed by the person\n");
    assert_eq!(
        conflicts(&r.root, &clash, &snap.commit, &r.base).unwrap(),
        ["c.txt"]
    );
    let err = land(&r.root, &request("main", &clash, &snap.commit, false)).unwrap_err();
    match &err {
        GitError::BranchMoved { tip, conflicts, .. } => {
            assert_eq!(
                (tip, conflicts.as_slice()),
                (&clash, &["c.txt".to_string()][..])
            )
        }
        other => panic!("{other:?}"),
    }
    let err = land(&r.root, &request("main", &clash, &snap.commit, true)).unwrap_err();
    assert_eq!(
        err,
        GitError::Conflict {
            files: vec!["c.txt".into()]
        }
    );
    assert_eq!(
        git(&r.root, &["rev-parse", "main"]),
        clash,
        "nothing landed"
    );

    git(&r.root, &["update-ref", "refs/heads/main", &r.base]);
    let apart = r.commit_on("main", "src/lib.rs", "fn main() { println!(); }\n");
    assert!(
        conflicts(&r.root, &apart, &snap.commit, &r.base)
            .unwrap()
            .is_empty()
    );
    let err = land(&r.root, &request("main", &apart, &snap.commit, false)).unwrap_err();
    assert!(
        matches!(&err, GitError::BranchMoved { conflicts, .. } if conflicts.is_empty()),
        "{err:?}"
    );
    let landed = land(&r.root, &request("main", &apart, &snap.commit, true)).expect("onto latest");
    assert!(landed.moved);
    assert_eq!(git(&r.root, &["rev-parse", "main^"]), apart);
    assert_eq!(
        git(&r.root, &["show", "main:src/lib.rs"]),
        "fn main() { println!(); }"
    );
    assert_eq!(git(&r.root, &["show", "main:c.txt"]), "c unstaged");
}

#[test]
fn a_lost_compare_and_swap_is_ref_moved_and_a_stale_approval_too() {
    let r = Repo::new("cas");
    git(&r.root, &["branch", "release"]);
    let (wt, names) = r.attempt("TASK-6");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    let landing = prepare_land(&r.root, &request("release", &r.base, &snap.commit, false)).unwrap();
    let moved = r.commit_on("release", "x.txt", "x\n"); // between the check and the update
    let err = apply_land(&r.root, &landing).unwrap_err();
    assert_eq!(
        err,
        GitError::RefMoved {
            name: "refs/heads/release".into(),
            expected: r.base.clone(),
            found: moved.clone()
        }
    );
    assert_eq!(git(&r.root, &["rev-parse", "release"]), moved);
    let err = land(&r.root, &request("release", &r.base, &snap.commit, true)).unwrap_err();
    assert!(
        matches!(err, GitError::RefMoved { .. }),
        "approved against an older tip: {err:?}"
    );
    // The swap itself: git's update-ref refuses an old value that is no longer the tip.
    let err = update_branch(&r.root, "release", &landing.new, &r.base, "test").unwrap_err();
    assert!(
        matches!(&err, GitError::RefMoved { found, .. } if *found == moved),
        "{err:?}"
    );
    assert_eq!(git(&r.root, &["rev-parse", "release"]), moved);
    update_branch(&r.root, "release", &landing.new, &moved, "test").expect("at the tip it swaps");
    assert_eq!(git(&r.root, &["rev-parse", "release"]), landing.new);
}

#[test]
fn merge_lands_two_parents() {
    let r = Repo::new("merge");
    git(&r.root, &["checkout", "-q", "--detach"]);
    let (wt, names) = r.attempt("TASK-8");
    agent_work(&wt);
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    let mut req = request("main", &r.base, &snap.commit, false);
    req.strategy = Strategy::Merge;
    land(&r.root, &req).expect("merge");
    let parents = git(&r.root, &["rev-parse", "main^1", "main^2"]);
    assert_eq!(parents, format!("{}\n{}", r.base, snap.commit));
}

#[test]
fn cleanup_removes_a_half_made_worktree_and_nothing_else() {
    let r = Repo::new("partial");
    git(&r.root, &["branch", "feature"]);
    let (keep, keep_names) = r.attempt("KEEP-1");
    // Killed half-way: the folder is gone, the locked registration and the branch stay.
    let (wt, names) = r.attempt("TASK-9");
    std::fs::remove_dir_all(&wt).unwrap();
    let done = cleanup_partial(&r.root, &wt, &names.branch).expect("cleanup");
    assert!(done.worktree && done.branch, "{done:?}");
    assert!(resolve_branch(&r.root, &names.branch).is_err());
    assert!(resolve_branch(&r.root, "feature").is_ok());
    assert!(resolve_branch(&r.root, &keep_names.branch).is_ok() && keep.join("a.txt").exists());
    assert_eq!(
        list_worktrees(&r.root).unwrap().len(),
        2,
        "the repository and KEEP-1"
    );
    // Killed before the folder got its `.git`: an empty folder, registered and locked.
    let (early, early_names) = r.attempt("TASK-12");
    std::fs::remove_dir_all(&early).unwrap();
    std::fs::create_dir(&early).unwrap();
    let done = cleanup_partial(&r.root, &early, &early_names.branch).expect("cleanup");
    assert!(done.worktree && done.branch && !early.exists(), "{done:?}");
    // A branch without a worktree and an empty folder: both go, and creating works again.
    git(&r.root, &["branch", &names.branch, &r.base]);
    std::fs::create_dir_all(&wt).unwrap();
    create_worktree(&r.root, &wt, &names.branch, &r.base).expect("create over the remains");
    assert!(wt.join("a.txt").exists());
    // What is not taskboard's is refused and left alone.
    let other = r.trees.join("someone-elses");
    write(&other, "notes.txt", "mine\n");
    let err = cleanup_partial(&r.root, &other, "taskboard/x-1").unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    assert_eq!(read(&other, "notes.txt"), "mine\n");
    let err = cleanup_partial(&r.root, &other, "feature").unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    // A half-made worktree holding a new file is work: refused, kept.
    write(&wt, "agent.txt", "work\n");
    let err = cleanup_partial(&r.root, &wt, &names.branch).unwrap_err();
    assert!(
        matches!(&err, GitError::UnsavedWork { files, .. } if files == &["agent.txt"]),
        "{err:?}"
    );
    assert!(wt.join("agent.txt").exists());
    // A branch whose commits are nowhere else is kept.
    std::fs::remove_file(wt.join("agent.txt")).unwrap();
    git(&wt, &["commit", "-q", "--allow-empty", "-m", "only here"]);
    sh(
        &r.root,
        &format!("git worktree unlock '{0}' && rm -rf '{0}'", wt.display()),
    );
    let err = cleanup_partial(&r.root, &wt, &names.branch).unwrap_err();
    assert!(matches!(err, GitError::UnsavedWork { .. }), "{err:?}");
    assert!(resolve_branch(&r.root, &names.branch).is_ok());
}

#[test]
fn the_typed_errors() {
    let outside = TempDir::new("ws-none");
    let err = repo_root(&outside).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err:?}");
    assert!(err.to_string().contains("not in a git repository"));
    let err = repo_root(&outside.join("missing")).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err:?}");
    let r = Repo::new("errors");
    git(&r.root, &["tag", "v1"]);
    assert_eq!(
        resolve_branch(&r.root, "v1"),
        Err(GitError::NoSuchBranch {
            branch: "v1".into()
        }),
        "a tag is not a branch"
    );
    assert_eq!(resolve_branch(&r.root, "refs/heads/main").unwrap(), r.base);
    r.commit_on("main", "z.txt", "z\n");
    for spec in ["main~1", "main^", "main@{1}", "HEAD", ""] {
        let err = resolve_branch(&r.root, spec).unwrap_err();
        assert!(
            matches!(err, GitError::NoSuchBranch { .. }),
            "{spec:?}: {err:?}"
        );
    }
    git(&r.root, &["reset", "-q", "--hard", "main"]);
    assert_eq!(current_branch(&r.root).unwrap(), "main");
    git(&r.root, &["checkout", "-q", "--detach"]);
    let err = current_branch(&r.root).unwrap_err();
    assert!(matches!(err, GitError::DetachedHead { .. }), "{err:?}");
    let err = create_worktree(&r.root, &r.trees.join("x"), "taskboard/a..b", &r.base).unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    let err = snapshot(&r.root, &r.base, "refs/heads/main").unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    let err = create_worktree(&r.root, &r.trees.join("x"), "feature", &r.base).unwrap_err();
    assert!(matches!(err, GitError::NotOurs { .. }), "{err:?}");
    let v = ws::version().unwrap();
    assert!(v >= ws::MIN_VERSION, "{v}");
    let many = (0..9).map(|i| format!("f{i}")).collect();
    for e in [err, GitError::Missing, GitError::Conflict { files: many }] {
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.is_empty(), "{text}");
    }
}

#[test]
fn attempt_names_pass_git_check_ref_format() {
    let dir = TempDir::new("ws-refs");
    for id in [
        "TASK-1",
        "a/b",
        "..x",
        "a b~^:?*[\\",
        "x.lock",
        "@",
        "émoji🙂",
        "-lead",
        "",
    ] {
        let n = attempt_names(id, 12);
        for name in [format!("refs/heads/{}", n.branch), n.snapshot_ref.clone()] {
            let ok = Command::new("git")
                .args(["check-ref-format", &name])
                .current_dir(&*dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "{id:?} -> {name:?}");
        }
    }
}

#[test]
fn rebase_replays_the_run_commits_then_what_it_left_uncommitted() {
    let r = Repo::new("rebase");
    git(&r.root, &["checkout", "-q", "--detach"]);
    let (wt, names) = r.attempt("TASK-10");
    write(&wt, "a.txt", "first\n");
    sh(
        &wt,
        "git -c user.name=Agent -c user.email=a@a commit -qam 'agent: first'",
    );
    write(&wt, "b.txt", "second\n");
    sh(
        &wt,
        "git -c user.name=Agent -c user.email=a@a commit -qam 'agent: second'",
    );
    write(&wt, "c.txt", "left uncommitted\n");
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    let moved = r.commit_on("main", "src/lib.rs", "fn main() { moved(); }\n");
    let mut req = request("main", &moved, &snap.commit, true);
    req.strategy = Strategy::Rebase;
    land(&r.root, &req).expect("rebase");
    assert_eq!(git(&r.root, &["rev-parse", "main~3"]), moved);
    let log = git(&r.root, &["log", "--format=%an|%s", "-3", "main"]);
    assert_eq!(
        log,
        "Pat Person|TASK: landed\nAgent|agent: second\nAgent|agent: first"
    );
    assert_eq!(git(&r.root, &["show", "main:c.txt"]), "left uncommitted");
    assert_eq!(
        git(&r.root, &["show", "main:src/lib.rs"]),
        "fn main() { moved(); }"
    );
    // A run commit that clashes with the moved branch: refused, nothing landed.
    let clash = r.commit_on("main", "a.txt", "the person's a\n");
    let mut req = request("main", &clash, &snap.commit, true);
    req.strategy = Strategy::Rebase;
    let err = land(&r.root, &req).unwrap_err();
    assert_eq!(
        err,
        GitError::Conflict {
            files: vec!["a.txt".into()]
        }
    );
    assert_eq!(git(&r.root, &["rev-parse", "main"]), clash);
}

#[test]
fn rebase_refuses_a_run_commit_that_conflicts_even_when_the_sum_does_not() {
    let r = Repo::new("rebase-mid");
    git(&r.root, &["checkout", "-q", "--detach"]);
    let (wt, names) = r.attempt("TASK-11");
    write(&wt, "a.txt", "tried\n");
    git(&wt, &["commit", "-qam", "try"]);
    write(&wt, "a.txt", "a\n");
    git(&wt, &["commit", "-qam", "undo"]);
    write(&wt, "b.txt", "kept\n");
    let snap = snapshot(&wt, &r.base, &names.snapshot_ref).unwrap();
    let moved = r.commit_on("main", "a.txt", "the person's a\n");
    assert!(
        conflicts(&r.root, &moved, &snap.commit, &r.base)
            .unwrap()
            .is_empty()
    );
    let mut req = request("main", &moved, &snap.commit, true);
    req.strategy = Strategy::Rebase;
    let err = land(&r.root, &req).unwrap_err();
    assert_eq!(
        err,
        GitError::Conflict {
            files: vec!["a.txt".into()]
        }
    );
    assert_eq!(git(&r.root, &["rev-parse", "main"]), moved);
    req.strategy = Strategy::Squash;
    land(&r.root, &req).expect("the sum lands as one commit");
    assert_eq!(git(&r.root, &["show", "main:a.txt"]), "the person's a");
}

#[test]
fn worktrees_made_at_the_same_time_in_one_repository_are_all_made() {
    // Parallel runs of one route make their worktrees at once; cleaning up before each `add`
    // prunes git's worktree records, which once deleted another `add`'s half-written one.
    let r = Repo::new("parallel");
    let made: Vec<Result<(), GitError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let r = &r;
                scope.spawn(move || {
                    let names = attempt_names(&format!("PAR-{i}"), 1);
                    create_worktree(
                        &r.root,
                        &r.trees.join(&names.folder),
                        &names.branch,
                        &r.base,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, result) in made.iter().enumerate() {
        assert!(result.is_ok(), "PAR-{i}: {result:?}");
    }
    let listed = list_worktrees(&r.root).unwrap();
    assert_eq!(
        listed.iter().filter(|w| w.prunable.is_none()).count(),
        9,
        "{listed:?}"
    );
}
