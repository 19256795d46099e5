//! The board's folder changes under a serving runtime: its state folder is cleaned away
//! (`rm -rf .taskboard`, `git clean -fdX`), the folder is renamed, or it is deleted and created
//! again. One `run` serves the board throughout, no task runs twice, and every ending lands in
//! the board wherever it now is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{self, DEADLINE, Sandbox};

/// Records each start in `$RUNS_LOG`, then waits until the test opens the task's gate
/// (`$GATES/<ID>`).
const GATED_EXECUTOR: &str = r#"cat > /dev/null
echo "start $TASKBOARD_TASK_ID $$" >> "$RUNS_LOG"
while [ ! -e "$GATES/$TASKBOARD_TASK_ID" ]; do sleep 0.05; done"#;

/// A sandbox whose board lives in the sub-folder `proj`, so that the folder itself can be
/// renamed, deleted and created again; the executor, its log and the gates stay outside it.
struct Home {
    sb: Sandbox,
    runs: Vec<Child>,
}

impl Home {
    fn new(name: &str) -> Home {
        let sb = Sandbox::new(name);
        sb.script("exec.sh", GATED_EXECUTOR);
        std::fs::create_dir_all(sb.path("gates")).unwrap();
        let home = Home {
            sb,
            runs: Vec::new(),
        };
        home.furnish("proj", "# Board\n");
        home
    }

    /// Writes a config and a board into the folder `rel` (created if needed).
    fn furnish(&self, rel: &str, board: &str) {
        let exec = self.sb.path("exec.sh");
        let config = format!(
            "[runtime]\ndebounce_ms = 50\nmax_parallel = 4\ngrace = \"1s\"\n\n\
             [executors.default]\ncommand = [{exec:?}]\n\
             env = {{ RUNS_LOG = {runs:?}, GATES = {gates:?} }}\n",
            exec = exec.display().to_string(),
            runs = self.sb.path("runs.log").display().to_string(),
            gates = self.sb.path("gates").display().to_string(),
        );
        self.sb.write(&format!("{rel}/taskboard.toml"), &config);
        self.sb.write(&format!("{rel}/task-board.md"), board);
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.sb.path(rel)
    }

    fn open_gate(&self, id: &str) {
        std::fs::write(self.sb.path(&format!("gates/{id}")), "").unwrap();
    }

    fn starts(&self, id: &str) -> usize {
        std::fs::read_to_string(self.sb.path("runs.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("start {id} ")))
            .count()
    }

    /// Starts `taskboard run <rel>/task-board.md` and waits for its first pass.
    fn start_run(&mut self, rel: &str) -> u32 {
        let before = count(&self.dir(rel), "pass");
        let stderr =
            std::fs::File::create(self.sb.path(&format!("run-{}.err", self.runs.len()))).unwrap();
        let child = self
            .sb
            .command(&["run", &format!("{rel}/task-board.md")])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.runs.push(child);
        let dir = self.dir(rel);
        wait(&format!("the first pass in {rel}"), || {
            count(&dir, "pass") > before
        });
        pid
    }

    /// Waits for the runtime `pid` to exit by itself and returns its exit code.
    fn exited(&mut self, pid: u32) -> Option<i32> {
        let i = self.runs.iter().position(|c| c.id() == pid).unwrap();
        let mut child = self.runs.remove(i);
        finish(&mut child).map(|out| out.status.code())?
    }

    /// SIGTERMs the runtime `pid` and returns its exit code.
    fn stop(&mut self, pid: u32) -> Option<i32> {
        let i = self.runs.iter().position(|c| c.id() == pid).unwrap();
        let mut child = self.runs.remove(i);
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        finish(&mut child).map(|out| out.status.code())?
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        for c in &mut self.runs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for `child` to exit within the deadline and returns its output; kills it and returns
/// `None` when it does not.
fn finish(child: &mut Child) -> Option<Output> {
    let status = crate::support::status_within(child, DEADLINE)?;
    let mut out = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        e.read_to_end(&mut out.stderr).unwrap();
    }
    Some(out)
}

/// Runs a command that must end by itself (a refused `run`, a `once`) and returns its exit
/// code and stderr; a command still running at the deadline is killed and reported as such.
fn run_to_end(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match finish(&mut child) {
        Some(out) => (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        None => (None, "still running at the deadline".into()),
    }
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(dir: &Path, name: &str) -> usize {
    events(dir).iter().filter(|e| e["event"] == name).count()
}

fn resets(dir: &Path) -> usize {
    count(dir, "stale_claim_reset")
}

fn status_in(dir: &Path, id: &str) -> String {
    let text = std::fs::read_to_string(dir.join("task-board.md")).unwrap_or_default();
    taskboard::core::board::Board::parse(&text)
        .task(id)
        .and_then(|t| t.status.as_ref())
        .map(|s| s.raw.to_string())
        .unwrap_or_default()
}

/// `rm -rf`, again while the runtime puts things back in the middle of it.
fn rm_rf(path: &Path) {
    wait(&format!("{} to be removed", path.display()), || {
        std::fs::remove_dir_all(path).is_ok()
    });
}

fn wait(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        support::poll(DEADLINE, cond),
        "timed out waiting for {what}"
    );
}

/// The refusal a second `run` must give: exit 4 and one line naming the serving pid.
fn assert_refused(code: Option<i32>, stderr: &str, serving: u32) {
    assert_eq!(code, Some(4), "second run was not refused: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another `taskboard run` (pid {serving}) is already serving"
        )),
        "{stderr}"
    );
}

#[test]
fn removing_the_state_folder_under_a_live_run_admits_no_second_run_and_runs_the_task_once() {
    let mut h = Home::new("home-rmstate");
    let proj = h.dir("proj");
    let pid = h.start_run("proj");
    h.furnish("proj", "### A-1: long\n- status: ready\n");
    wait("A-1 to start", || h.starts("A-1") == 1);

    rm_rf(&proj.join(".taskboard"));

    // A second `run` is refused although the lock file it would have locked is gone.
    let (code, stderr) = run_to_end(h.sb.command(&["run", "proj/task-board.md"]));
    assert_refused(code, &stderr, pid);
    // A `once` beside the `run` leaves the live run's claim alone, lock folder or not.
    let (code, stderr) = run_to_end(h.sb.command(&["once", "proj/task-board.md"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(h.starts("A-1"), 1, "once ran the live task again");
    assert_eq!(resets(&proj), 0, "once took the live claim for ownerless");

    // The runtime puts back its live run's lock (with its owner record) and says so.
    wait("the state to be put back", || {
        events(&proj)
            .iter()
            .any(|e| e["event"] == "error" && e["context"] == "state")
    });
    let owner: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(proj.join(".taskboard/locks/A-1/owner.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(owner["pid"], pid);
    let (code, stderr) = run_to_end(h.sb.command(&["once", "proj/task-board.md"]));
    assert_eq!(code, Some(0), "{stderr}");

    h.open_gate("A-1");
    wait("A-1 done", || status_in(&proj, "A-1") == "done");
    assert_eq!(h.starts("A-1"), 1, "the task ran more than once");
    assert_eq!(h.stop(pid), Some(0));
}

#[test]
fn renaming_the_board_folder_under_a_live_run_is_followed_and_its_ending_lands_at_the_new_place() {
    let mut h = Home::new("home-rename");
    let pid = h.start_run("proj");
    h.furnish("proj", "### A-1: long\n- status: ready\n");
    wait("A-1 to start", || h.starts("A-1") == 1);

    std::fs::rename(h.dir("proj"), h.dir("proj2")).unwrap();
    let proj2 = h.dir("proj2");

    // A save at the new place is seen: its new ready task runs.
    h.open_gate("B-2");
    let mut text = std::fs::read_to_string(proj2.join("task-board.md")).unwrap();
    text.push_str("\n### B-2: after the move\n- status: ready\n");
    std::fs::write(proj2.join("task-board.md"), text).unwrap();
    wait("B-2 done in the moved board", || {
        status_in(&proj2, "B-2") == "done"
    });
    assert!(!h.dir("proj").exists(), "the old folder was created again");

    // The old runtime still serves the board at its new place.
    let (code, stderr) = run_to_end(h.sb.command(&["run", "proj2/task-board.md"]));
    assert_refused(code, &stderr, pid);

    // Stopping it writes the interrupted run's ending into the moved board.
    assert_eq!(h.stop(pid), Some(0));
    assert_eq!(status_in(&proj2, "A-1"), "ready");
    assert!(
        events(&proj2)
            .iter()
            .any(|e| e["event"] == "task_interrupted" && e["task"] == "A-1"),
        "no task_interrupted for A-1 in the moved folder's events"
    );

    // A fresh run there runs each task as often as it should: A-1 once more, B-2 never again.
    h.open_gate("A-1");
    let fresh = h.start_run("proj2");
    wait("A-1 done after the restart", || {
        status_in(&proj2, "A-1") == "done"
    });
    assert_eq!(h.starts("A-1"), 2, "interrupted once, then run to the end");
    assert_eq!(h.starts("B-2"), 1);
    assert_eq!(resets(&proj2), 0, "an ending was lost and its claim reset");
    assert_eq!(h.stop(fresh), Some(0));
}

#[test]
fn deleting_and_recreating_the_board_folder_is_noticed_and_its_ready_task_runs() {
    let mut h = Home::new("home-recreate");
    let pid = h.start_run("proj");

    rm_rf(&h.dir("proj"));
    // Like a clone that takes a while: the runtime sees the folder gone before it is back.
    let stderr = h.sb.path("run-0.err");
    wait("the runtime to see the folder gone", || {
        std::fs::read_to_string(&stderr).is_ok_and(|t| t.contains("was removed"))
    });
    std::fs::create_dir(h.dir("proj")).unwrap();
    h.open_gate("C-3");
    h.furnish("proj", "### C-3: on the new board\n- status: ready\n");

    let proj = h.dir("proj");
    wait("C-3 done on the new board", || {
        status_in(&proj, "C-3") == "done"
    });
    assert_eq!(h.starts("C-3"), 1);
    // The runtime holds the new folder's run lock: a second `run` is refused.
    let (code, stderr) = run_to_end(h.sb.command(&["run", "proj/task-board.md"]));
    assert_refused(code, &stderr, pid);
    assert_eq!(h.stop(pid), Some(0));
}

#[test]
fn a_once_right_after_a_live_runs_lock_folder_is_removed_leaves_the_task_to_the_run() {
    let mut h = Home::new("home-rmlock");
    let proj = h.dir("proj");
    let pid = h.start_run("proj");
    h.furnish("proj", "### A-1: long\n- status: ready\n");
    wait("A-1 to start", || h.starts("A-1") == 1);
    let lock = proj.join(".taskboard/locks/A-1");
    let restored = |n: usize| {
        let proj = proj.clone();
        move || {
            events(&proj)
                .iter()
                .filter(|e| e["event"] == "error" && e["context"] == "state")
                .count()
                == n
        }
    };
    wait("A-1's lock", || lock.join("owner.json").exists());
    rm_rf(&lock);
    wait("the lock to be put back", restored(1));

    // Again, right after the runtime's last look: the `once` comes before its next one.
    rm_rf(&lock);
    let (code, stderr) = run_to_end(h.sb.command(&["once", "proj/task-board.md"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(h.starts("A-1"), 1, "once ran the live task again");
    assert_eq!(resets(&proj), 0, "once took the live claim for ownerless");
    assert!(status_in(&proj, "A-1").starts_with("running:"));

    wait("the lock to be put back again", restored(2));
    let owner: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lock.join("owner.json")).unwrap()).unwrap();
    assert_eq!(owner["pid"], pid);
    h.open_gate("A-1");
    wait("A-1 done", || status_in(&proj, "A-1") == "done");
    assert_eq!(h.starts("A-1"), 1, "the task ran more than once");
    assert_eq!(h.stop(pid), Some(0));
}

#[test]
fn a_run_whose_recreated_folder_another_run_locked_first_steps_aside_once_its_run_ends() {
    let mut h = Home::new("home-taken");
    let old = h.start_run("proj");
    h.furnish("proj", "### A-1: long\n- status: ready\n");
    wait("A-1 to start", || h.starts("A-1") == 1);

    rm_rf(&h.dir("proj"));
    let stderr = h.sb.path("run-0.err");
    wait("the runtime to see the folder gone", || {
        std::fs::read_to_string(&stderr).is_ok_and(|t| t.contains("was removed"))
    });
    // The new folder is served by another `run` before it is moved into place.
    h.open_gate("B-2");
    h.furnish("new", "### B-2: on the new board\n- status: ready\n");
    let new = h.start_run("new");
    std::fs::rename(h.dir("new"), h.dir("proj")).unwrap();
    let proj = h.dir("proj");
    wait("B-2 done", || status_in(&proj, "B-2") == "done");
    wait("the old runtime to step aside", || {
        events(&proj).iter().any(|e| {
            e["event"] == "error"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("(pid {new}) serves it now")))
        })
    });

    // Its live run goes on to its end, then it exits by itself; the other serves on.
    h.open_gate("A-1");
    assert_eq!(h.exited(old), Some(0));
    assert_eq!(h.starts("A-1"), 1);
    assert_eq!(h.starts("B-2"), 1);
    let (code, stderr) = run_to_end(h.sb.command(&["run", "proj/task-board.md"]));
    assert_refused(code, &stderr, new);
    assert_eq!(h.stop(new), Some(0));
}
