//! `taskboard diff` and the workspace part of `show`, against a real git repository: a worktree
//! and a snapshot made with the shell's git layer, and the run folder written as the runtime
//! writes it (`workspace.json` and the patch). The patch printed byte for byte in a pipe and
//! coloured on a terminal, the stat (a binary file, a rename), `--json`, `--attempt`, the
//! errors, and `show` saying whether the change still applies to its base branch.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Sandbox, git};
use serde_json::Value;
use taskboard::core::workspace::{
    RunRepo, RunWorkspace, SavedSnapshot, WORKSPACE_FILE, attempt_names, patch_file,
};
use taskboard::shell::workspace::{create_worktree, snapshot, write_patch};

const BOARD: &str = "# Board\n\n## A-1: Isolated work\n- status: done\n- route: iso\n\n## B-1: Shared work\n- status: done\n";

/// A board beside a repository on `main`; task A-1 has isolated attempts, B-1 a shared one.
struct Setup {
    sb: Sandbox,
    repo: PathBuf,
    base: String,
}

fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

impl Setup {
    fn new(name: &str) -> Setup {
        let sb = Sandbox::new(&format!("diff-{name}"));
        sb.write_board(BOARD);
        let repo = sb.path("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        write(&repo, "src/lib.rs", "fn one() {}\nfn two() {}\n");
        write(
            &repo,
            "notes.txt",
            "a file long enough that git finds its rename\nline 2\nline 3\nline 4\n",
        );
        write(&repo, "README", "readme\n");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "start"]);
        let base = git(&repo, &["rev-parse", "HEAD"]);
        // B-1 ran in the shared folder: a run folder without workspace.json.
        sb.write(".taskboard/runs/B-1/1-20261130T100000Z/stdout.log", "ok\n");
        Setup { sb, repo, base }
    }

    /// Attempt `n` of A-1: a worktree where `change` runs, its snapshot, and the run folder
    /// `<n>-<stamp>` with workspace.json and the patch. Returns the run folder.
    fn attempt(&self, n: u32, stamp: &str, change: impl Fn(&Path)) -> PathBuf {
        let names = attempt_names("A-1", n);
        let wt = self.sb.path("trees").join(&names.folder);
        std::fs::create_dir_all(wt.parent().unwrap()).unwrap();
        create_worktree(&self.repo, &wt, &names.branch, &self.base).expect("worktree");
        change(&wt);
        let snap = snapshot(&wt, &self.base, &names.snapshot_ref).expect("snapshot");
        let run_dir = self.sb.path(&format!(".taskboard/runs/A-1/{n}-{stamp}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        write_patch(
            &self.repo,
            &self.base,
            &snap.commit,
            &run_dir.join(patch_file(None)),
        )
        .expect("patch");
        let record = RunWorkspace {
            route: None,
            repos: vec![RunRepo {
                name: None,
                repo: self.repo.display().to_string(),
                path: wt.display().to_string(),
                branch: names.branch.clone(),
                base_branch: "main".into(),
                base_commit: self.base.clone(),
                snapshot: Some(SavedSnapshot {
                    snapshot_ref: names.snapshot_ref.clone(),
                    commit: snap.commit.clone(),
                    files: snap.files.clone(),
                }),
            }],
        };
        write_record(&run_dir, &record);
        run_dir
    }

    /// The first attempt: an edit (+2 -1), a rename and a new binary file.
    fn first(&self) -> PathBuf {
        self.attempt(1, "20261130T110000Z", |wt| {
            write(
                wt,
                "src/lib.rs",
                "fn one() {}\nfn three() {}\nfn four() {}\n",
            );
            git(wt, &["mv", "notes.txt", "docs.txt"]);
            write(wt, "logo.bin", [0u8, 1, 2, 255, 0, 10, 13, 0]);
        })
    }

    fn taskboard(&self, args: &[&str]) -> Output {
        self.sb.command(args).output().unwrap()
    }
}

fn write_record(run_dir: &Path, record: &RunWorkspace) {
    std::fs::write(
        run_dir.join(WORKSPACE_FILE),
        serde_json::to_string_pretty(record).unwrap(),
    )
    .unwrap();
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The exit code and the one line on stderr of a refusal.
fn refused(out: &Output) -> (Option<i32>, String) {
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    (out.status.code(), err)
}

fn strip_ansi(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b {
            while i < bytes.len() && bytes[i] != b'm' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn the_patch_is_printed_byte_for_byte_in_a_pipe() {
    let s = Setup::new("plain");
    let run_dir = s.first();
    let out = s.taskboard(&["diff", "A-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let patch = std::fs::read(run_dir.join("changes.patch")).unwrap();
    assert_eq!(out.stdout, patch);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("diff --git a/src/lib.rs b/src/lib.rs"),
        "{shown}"
    );
    assert!(shown.contains("rename from notes.txt"), "{shown}");
    assert!(shown.contains("GIT binary patch"), "{shown}");
    assert!(!shown.contains('\x1b'));
    // The board named explicitly, from elsewhere.
    let board = s.sb.board.display().to_string();
    let out =
        s.sb.command(&["diff", "A-1", &board])
            .current_dir("/")
            .output()
            .unwrap();
    assert_eq!(out.stdout, patch);
}

#[test]
fn on_a_terminal_the_patch_is_coloured_and_no_color_wins() {
    let s = Setup::new("colour");
    let run_dir = s.first();
    let patch = std::fs::read(run_dir.join("changes.patch")).unwrap();
    let coloured =
        s.sb.command(&["diff", "A-1"])
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
    assert_eq!(coloured.status.code(), Some(0));
    let shown = text(&coloured.stdout);
    assert!(
        shown.contains("\x1b[1mdiff --git a/src/lib.rs"),
        "{shown:?}"
    );
    assert!(
        shown.contains("\x1b[32m+fn three() {}\x1b[0m\n"),
        "{shown:?}"
    );
    assert!(shown.contains("\x1b[31m-fn two() {}\x1b[0m\n"), "{shown:?}");
    assert!(shown.contains("\x1b[36m@@ "), "{shown:?}");
    assert_eq!(strip_ansi(&coloured.stdout), patch);
    let both =
        s.sb.command(&["diff", "A-1"])
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
    assert_eq!(both.stdout, patch, "NO_COLOR wins over CLICOLOR_FORCE");
}

#[test]
fn stat_lists_each_file_with_renames_and_binaries_and_a_total() {
    let s = Setup::new("stat");
    s.first();
    let out = s.taskboard(&["diff", "A-1", "--stat"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    // In git's order (paths sorted, a rename under its new name), paths in one column.
    assert_eq!(
        shown,
        " notes.txt => docs.txt | +0 -0\n logo.bin              | bin\n src/lib.rs            | +2 -1\n 3 files changed, +2 -1\n"
    );
}

#[test]
fn json_gives_the_stat_in_a_stable_shape() {
    let s = Setup::new("json");
    s.first();
    let out = s.taskboard(&["diff", "A-1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "A-1");
    assert_eq!(v["attempt"], 1);
    assert_eq!(v["files"], 3);
    assert_eq!(v["insertions"], 2);
    assert_eq!(v["deletions"], 1);
    assert!(
        v["run_dir"]
            .as_str()
            .unwrap()
            .ends_with("1-20261130T110000Z")
    );
    let repo = &v["repos"][0];
    assert_eq!(repo["name"], Value::Null);
    assert_eq!(repo["branch"], "taskboard/A-1-1");
    assert_eq!(repo["base_branch"], "main");
    assert_eq!(repo["base_commit"], s.base.as_str());
    let files = repo["files"].as_array().unwrap();
    let by_path = |p: &str| files.iter().find(|f| f["path"] == p).unwrap().clone();
    assert_eq!(by_path("logo.bin")["binary"], true);
    assert_eq!(by_path("logo.bin")["change"], "added");
    assert_eq!(by_path("docs.txt")["change"], "renamed");
    assert_eq!(by_path("docs.txt")["from"], "notes.txt");
    assert_eq!(by_path("src/lib.rs")["change"], "modified");
    assert_eq!(by_path("src/lib.rs")["from"], Value::Null);
    assert_eq!(by_path("src/lib.rs")["insertions"], 2);
    assert_eq!(by_path("src/lib.rs")["deletions"], 1);
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn the_latest_isolated_work_run_is_the_default_and_attempt_picks_one() {
    let s = Setup::new("attempts");
    let first = s.first();
    let second = s.attempt(2, "20261130T120000Z", |wt| {
        write(wt, "README", "readme, second try\n");
    });
    // A later review run, even with a record of its own, is never the diff.
    let review = s.sb.path(".taskboard/runs/A-1/2-review-20261130T130000Z");
    std::fs::create_dir_all(&review).unwrap();
    std::fs::write(review.join(WORKSPACE_FILE), "{not json").unwrap();
    let latest = s.taskboard(&["diff", "A-1"]);
    assert_eq!(latest.status.code(), Some(0), "{}", text(&latest.stderr));
    assert_eq!(
        latest.stdout,
        std::fs::read(second.join("changes.patch")).unwrap()
    );
    let one = s.taskboard(&["diff", "A-1", "--attempt", "1"]);
    assert_eq!(
        one.stdout,
        std::fs::read(first.join("changes.patch")).unwrap()
    );
    let stat = text(
        &s.taskboard(&["diff", "A-1", "--attempt", "2", "--stat"])
            .stdout,
    );
    assert_eq!(stat, " README | +1 -1\n 1 file changed, +1 -1\n");
}

#[test]
fn errors_are_one_line_with_their_exit_codes() {
    let s = Setup::new("errors");
    let run_dir = s.first();

    let (code, err) = refused(&s.taskboard(&["diff", "Z-9"]));
    assert_eq!(code, Some(1));
    assert!(err.contains("no task `Z-9` on"), "{err}");

    let (code, err) = refused(&s.taskboard(&["diff", "B-1"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("B-1 has no isolated run: its route works in the shared folder"),
        "{err}"
    );

    let (code, err) = refused(&s.taskboard(&["diff", "A-1", "--attempt", "5"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("A-1 has no attempt 5 (its attempts: 1)"),
        "{err}"
    );

    std::fs::remove_file(run_dir.join("changes.patch")).unwrap();
    let (code, err) = refused(&s.taskboard(&["diff", "A-1"]));
    assert_eq!(code, Some(4));
    assert!(
        err.contains("cannot read") && err.contains("changes.patch"),
        "{err}"
    );
    // --stat reads the record alone: it still works.
    assert_eq!(
        s.taskboard(&["diff", "A-1", "--stat"]).status.code(),
        Some(0)
    );

    // A run still going: its record has no snapshot and there is no patch yet.
    let mut record: RunWorkspace =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(WORKSPACE_FILE)).unwrap())
            .unwrap();
    record.repos[0].snapshot = None;
    write_record(&run_dir, &record);
    for args in [&["diff", "A-1"][..], &["diff", "A-1", "--stat"]] {
        let (code, err) = refused(&s.taskboard(args));
        assert_eq!(code, Some(1));
        assert!(
            err.contains("A-1 attempt 1 has not saved its changes yet"),
            "{err}"
        );
    }

    // A FIFO where the patch belongs is refused at once, never waited on.
    let fifo = run_dir.join("changes.patch");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    record.repos[0].snapshot = Some(SavedSnapshot {
        snapshot_ref: "refs/taskboard/snapshots/A-1/1".into(),
        commit: s.base.clone(),
        files: Vec::new(),
    });
    write_record(&run_dir, &record);
    let (code, err) = refused(&s.taskboard(&["diff", "A-1"]));
    assert_eq!(code, Some(4));
    assert!(err.contains("changes.patch"), "{err}");

    std::fs::write(run_dir.join(WORKSPACE_FILE), "{").unwrap();
    let (code, err) = refused(&s.taskboard(&["diff", "A-1"]));
    assert_eq!(code, Some(4));
    assert!(err.contains("workspace.json"), "{err}");
}

#[test]
fn named_repositories_each_get_a_header() {
    let s = Setup::new("named");
    let run_dir = s.first();
    let mut record: RunWorkspace =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(WORKSPACE_FILE)).unwrap())
            .unwrap();
    let mut api = record.repos[0].clone();
    api.name = Some("api".into());
    let mut web = api.clone();
    web.name = Some("web".into());
    record.repos = vec![api, web];
    write_record(&run_dir, &record);
    let patch = std::fs::read(run_dir.join("changes.patch")).unwrap();
    std::fs::write(run_dir.join(patch_file(Some("api"))), &patch).unwrap();
    std::fs::write(run_dir.join(patch_file(Some("web"))), b"web patch\n").unwrap();
    let out = s.taskboard(&["diff", "A-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let repo = s.repo.display();
    let mut expected = format!("==> api ({repo}) <==\n").into_bytes();
    expected.extend_from_slice(&patch);
    expected.extend_from_slice(format!("\n==> web ({repo}) <==\nweb patch\n").as_bytes());
    assert_eq!(text(&out.stdout), text(&expected));
    let stat = text(&s.taskboard(&["diff", "A-1", "--stat"]).stdout);
    assert!(
        stat.starts_with(&format!("==> api ({repo}) <==\n")),
        "{stat}"
    );
    assert!(stat.ends_with(" 6 files changed, +4 -2\n"), "{stat}");
}

#[test]
fn show_says_where_the_work_is_and_whether_it_still_applies() {
    let s = Setup::new("show");
    s.first();
    let short = &s.base[..7];
    let out = s.taskboard(&["show", "A-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let wt = s.sb.path("trees/A-1-1");
    assert!(shown.contains("workspace (attempt 1)\n"), "{shown}");
    assert!(
        shown.contains(&format!(
            "  worktree: {} (branch taskboard/A-1-1)\n",
            wt.display()
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("  base:     main at {short}\n")),
        "{shown}"
    );
    assert!(shown.contains("  changes:  3 files, +2 -1\n"), "{shown}");
    assert!(
        shown.contains(&format!("  applies cleanly to main at {short}\n")),
        "{shown}"
    );

    // The base branch gains a commit that changes the same lines.
    write(&s.repo, "src/lib.rs", "fn one() {}\nfn two_renamed() {}\n");
    git(&s.repo, &["commit", "-qam", "elsewhere"]);
    let tip = git(&s.repo, &["rev-parse", "HEAD"]);
    let shown = text(&s.taskboard(&["show", "A-1"]).stdout);
    assert!(
        shown.contains(&format!(
            "  base branch moved: 1 commit; conflicts with main at {}: src/lib.rs\n",
            &tip[..7]
        )),
        "{shown}"
    );
    let json: Value =
        serde_json::from_slice(&s.taskboard(&["show", "A-1", "--json"]).stdout).unwrap();
    let repo = &json["workspace"]["repos"][0];
    assert_eq!(json["workspace"]["attempt"], 1);
    assert_eq!(repo["worktree"], wt.display().to_string());
    assert_eq!(repo["branch"], "taskboard/A-1-1");
    assert_eq!(repo["base_commit"], s.base.as_str());
    assert_eq!(repo["tip"], tip.as_str());
    assert_eq!(repo["moved"], 1);
    assert_eq!(repo["conflicts"], serde_json::json!(["src/lib.rs"]));
    assert_eq!(repo["files"], 3);

    // A commit elsewhere in the file tree: moved, but it still applies.
    git(&s.repo, &["reset", "-q", "--hard", &s.base]);
    write(&s.repo, "other.txt", "x\n");
    git(&s.repo, &["add", "other.txt"]);
    git(&s.repo, &["commit", "-qm", "unrelated"]);
    let tip = git(&s.repo, &["rev-parse", "HEAD"]);
    let shown = text(&s.taskboard(&["show", "A-1"]).stdout);
    assert!(
        shown.contains(&format!(
            "  base branch moved: 1 commit; applies cleanly to main at {}\n",
            &tip[..7]
        )),
        "{shown}"
    );
}

#[test]
fn show_without_the_repository_says_so_and_tasks_without_a_workspace_are_unchanged() {
    let s = Setup::new("show-gone");
    s.first();
    let before_b = s.taskboard(&["show", "B-1", "--json"]);
    let b: Value = serde_json::from_slice(&before_b.stdout).unwrap();
    assert!(b.get("workspace").is_none(), "{b}");
    assert!(!text(&s.taskboard(&["show", "B-1"]).stdout).contains("workspace"));

    std::fs::rename(&s.repo, s.sb.path("moved-away")).unwrap();
    let out = s.taskboard(&["show", "A-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!(
            "  cannot check it against main: the repository {} is gone\n",
            s.repo.display()
        )),
        "{shown}"
    );
    // diff reads the run folder only: the repository is not needed.
    assert_eq!(s.taskboard(&["diff", "A-1"]).status.code(), Some(0));

    // git missing: one line, still exit 0.
    std::fs::rename(s.sb.path("moved-away"), &s.repo).unwrap();
    let out =
        s.sb.command(&["show", "A-1"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("  cannot check it against main: git is not installed"),
        "{shown}"
    );
}

#[test]
fn a_closed_pipe_ends_diff_quietly() {
    let s = Setup::new("pipe");
    s.first();
    for args in [
        &["diff", "A-1"][..],
        &["diff", "A-1", "--stat"],
        &["diff", "A-1", "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = s.sb.command(args).stdout(writer).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}
