//! `taskboard retry` racing a person's save, and an ID that is a path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use crate::support::{DEADLINE, Sandbox, poll};

/// Every file and folder under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line on stderr, `taskboard: …`, and no backtrace.
fn assert_one_line_error(what: &str, stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
    assert!(stderr.starts_with("taskboard: "), "{what}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr:?}");
}

/// The `- saved <n>` lines on the board.
fn saved_lines(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("- saved "))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

const SAVER: &str = "i=0
while [ -e go ] && [ $i -lt 20000 ]; do
  i=$((i+1))
  echo \"- saved $i\" >> task-board.md
  sleep 0.005
done
echo $i > saved-count";

/// The saver process; stopped (its `go` file removed, then killed) if the test ends early.
struct Saver(Child, PathBuf);

impl Drop for Saver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_save_landing_while_retry_writes_is_never_overwritten() {
    const TASKS: usize = 50;
    let sb = Sandbox::new("retry-vs-save");
    let mut board = String::from("# Board\n\n");
    for i in 1..=TASKS {
        board.push_str(&format!("## R-{i}: task {i}\n- status: failed:boom\n\n"));
    }
    board.push_str("## Notes\n\n");
    sb.write_board(&board);
    // A person's saver: appends one unique line per save, in place, every few milliseconds,
    // until `go` is removed (or 20000 saves); then says how many it saved.
    std::fs::write(sb.path("go"), "").unwrap();
    let mut saver = Saver(
        Command::new("sh")
            .arg("-c")
            .arg(SAVER)
            .current_dir(&sb.dir)
            .spawn()
            .unwrap(),
        sb.path("go"),
    );
    assert!(
        poll(DEADLINE, || saved_lines(&sb.board_text()).len() >= 10),
        "the saver never saved"
    );

    let mut applied = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for i in 1..=TASKS {
        let id = format!("R-{i}");
        let out = sb.command(&["retry", &id]).output().unwrap();
        match out.status.code() {
            Some(0) => {
                applied.insert(id);
            }
            code => {
                assert_eq!(code, Some(5), "{id}: {}", stderr_of(&out));
                assert_one_line_error(&id, &stderr_of(&out));
                failed.insert(id);
            }
        }
    }
    std::fs::remove_file(sb.path("go")).unwrap();
    assert!(saver.0.wait().unwrap().success());

    let saved: u64 = std::fs::read_to_string(sb.path("saved-count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let lines = saved_lines(&sb.board_text());
    let missing: Vec<u64> = (1..=saved).filter(|n| !lines.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {saved} saved lines lost: {missing:?}",
        missing.len()
    );
    assert_eq!(lines.len() as u64, saved, "a saved line appears twice");
    // Applied means `ready` on the board; a clean failure means nothing changed.
    for i in 1..=TASKS {
        let id = format!("R-{i}");
        let want = if applied.contains(&id) {
            "ready"
        } else {
            "failed:boom"
        };
        assert_eq!(sb.status_of(&id), want, "{id}");
    }
    assert_eq!(applied.len() + failed.len(), TASKS);
    // Only applied retries leave a request for the runtime.
    let requests: BTreeSet<String> = std::fs::read_dir(sb.path(".taskboard/requests"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.trim_end_matches(".retry").to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(requests, applied);
    let debris: Vec<_> = tree(&sb.dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(debris.is_empty(), "temporary files left: {debris:?}");
}

#[test]
fn retry_with_an_id_that_is_a_path_creates_nothing_anywhere() {
    let sb = Sandbox::new("retry-path-id");
    // Headings whose first word is a path: not usable task IDs, but they do carry a status.
    let board = "# Board\n\n## ../../x: escape\n- status: failed:boom\n\n## a/b: nest\n- status: failed:boom\n\n## A-1: fine\n- status: failed:boom\n";
    sb.write_board(board);
    let before = tree(&sb.dir);
    for id in ["../../x", "a/b", "../A-1", "A-1/../A-1"] {
        let out = sb.command(&["retry", id]).output().unwrap();
        assert_eq!(tree(&sb.dir), before, "{id} created files");
        assert_eq!(out.status.code(), Some(64), "{id}: {}", stderr_of(&out));
        assert_one_line_error(id, &stderr_of(&out));
        assert!(stderr_of(&out).contains("not a task ID"), "{id}");
    }
    assert_eq!(sb.board_text(), board);
}
