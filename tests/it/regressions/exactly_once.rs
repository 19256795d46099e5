//! Situations 1, 2, 3, 5 and 7: a finished task never runs again and no save is lost, whatever a
//! person's editor, git or a second taskboard process does to the board while its ending is on
//! its way.
//!
//! Every executor here appends `start <id> <attempt>` to `runs.log`; the promise is counted there.

use std::path::Path;
use std::time::Duration;

use crate::support::{Sandbox, git, poll, sh};

/// An executor that logs its start, then waits until the test creates `gate-<ID>`.
const GATED: &str = r#"cat > /dev/null
echo "start $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT" >> runs.log
while [ ! -e "gate-$TASKBOARD_TASK_ID" ]; do sleep 0.02; done
exit 0"#;

/// How many times the executor started for `id`.
fn runs_of(sb: &Sandbox, id: &str) -> usize {
    std::fs::read_to_string(sb.path("runs.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(id))
        .count()
}

fn gated_sandbox(name: &str, overrides: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.script("gated.sh", GATED);
    sb.config(
        overrides,
        "[executors.default]\ncommand = [\"./gated.sh\"]\ntimeout = \"60s\"\n",
    );
    sb
}

/// A `run` on [`ONE_TASK`] with the gated executor, once T-1's claim is on the board.
fn one_task_running(name: &str) -> (Sandbox, u32) {
    let mut sb = gated_sandbox(name, "");
    sb.write_board(ONE_TASK);
    let pid = sb.start_run();
    sb.wait_until("T-1 running", |s| {
        s.status_of("T-1").starts_with("running:")
    });
    (sb, pid)
}

fn open_gate(sb: &Sandbox, id: &str) {
    sb.write(&format!("gate-{id}"), "");
}

/// Waits until the run of `id` ended and a pass took its ending: kept it, or (before endings
/// were kept) refused it.
fn wait_for_the_ending(sb: &Sandbox, id: &str) {
    sb.wait_until("the run ended", |s| s.count_for("task_finished", id) == 1);
    sb.wait_until("the pass that took the ending", |s| {
        s.count_for("ending_kept", id) + s.count_for("writeback_conflict", id) >= 1
    });
}

/// After the task is settled, no second run starts within a window several passes long.
fn assert_ran_once(sb: &Sandbox, id: &str) {
    assert!(
        sb.stays_false(Duration::from_millis(800), |s| runs_of(s, id) > 1),
        "{id} ran {} times\nboard:\n{}\nevents:\n{}",
        runs_of(sb, id),
        sb.board_text(),
        std::fs::read_to_string(sb.path("events.jsonl")).unwrap_or_default()
    );
    assert_eq!(runs_of(sb, id), 1, "{id} must run exactly once");
}

/// How many passes the runtime made, counted once the one under way is over (the log's last
/// event is a `pass`).
fn passes_once_over(sb: &Sandbox) -> usize {
    sb.wait_until("the pass under way to end", |s| {
        s.events().last().is_some_and(|e| e["event"] == "pass")
    });
    sb.count("pass")
}

/// Saves `text` as an editor would: `rename` (vim, most editors) or in place (VS Code, nano).
fn editor_save(path: &Path, text: &str, rename: bool) {
    if rename {
        let tmp = path.with_file_name(".task-board.md.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    } else {
        std::fs::write(path, text).unwrap();
    }
}

const ONE_TASK: &str = "# Board\n\n## T-1: the task\n- status: ready\n\nWhat to do.\n";

/// Situation 1: the person's editor still holds `ready` for the running task; they add a line
/// and save just as the run ends. The executor itself makes that save right before it exits, so
/// the save is on disk when the ending is written (every time, not by luck of timing).
#[test]
fn a_stale_buffer_saved_as_the_run_ends_neither_loses_the_ending_nor_runs_the_task_again() {
    for rename in [true, false] {
        let mut sb = Sandbox::new("stale-at-end");
        let stale = format!("{ONE_TASK}A line the person added.\n");
        sb.write("stale.md", &stale);
        let save = if rename {
            "cp stale.md .stale.tmp && mv .stale.tmp task-board.md"
        } else {
            "cat stale.md > task-board.md"
        };
        sb.script(
            "saves.sh",
            &format!(
                "cat > /dev/null\necho \"start $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT\" >> runs.log\n{save}\nexit 0"
            ),
        );
        sb.config(
            "",
            "[executors.default]\ncommand = [\"./saves.sh\"]\ntimeout = \"60s\"\n",
        );
        sb.write_board(ONE_TASK);
        let pid = sb.start_run();
        sb.wait_until("T-1 done", |s| s.status_of("T-1") == "done");
        assert_ran_once(&sb, "T-1");
        assert_eq!(sb.status_of("T-1"), "done");
        assert!(
            sb.board_text().contains("A line the person added.\n"),
            "the person's line was lost:\n{}",
            sb.board_text()
        );
        assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    }
}

/// Situation 1 with many tasks and a person appending notes from stale buffers the whole time.
#[test]
fn a_person_appending_notes_from_stale_buffers_never_makes_a_task_run_twice() {
    let mut sb = Sandbox::new("stale-notes");
    sb.script(
        "quick.sh",
        "cat > /dev/null\necho \"start $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT\" >> runs.log\nsleep 0.0$(( $$ % 9 ))\nexit 0",
    );
    sb.config(
        "max_parallel = 4",
        "[executors.default]\ncommand = [\"./quick.sh\"]\ntimeout = \"60s\"\n",
    );
    let mut text = String::from("# Board\n\n");
    for i in 1..=30 {
        text.push_str(&format!(
            "## N-{i}: task {i}\n- status: ready\n\nAbout {i}.\n\n"
        ));
    }
    sb.write_board(&text);
    let initial = text.clone();
    let pid = sb.start_run();
    // The person's buffer was loaded before any task ran; they keep appending notes to it.
    let mut buffer = initial;
    let mut notes = Vec::new();
    for n in 0..40 {
        let note = format!("Note {n} from the person.\n");
        buffer.push_str(&note);
        notes.push(note);
        editor_save(&sb.board, &buffer, n % 2 == 0);
        // Reload the buffer only sometimes: most saves come from a stale one.
        if n % 4 == 3 {
            buffer = sb.board_text();
        }
        let runs = runs_of_all(&sb);
        poll(Duration::from_secs(2), || {
            runs_of_all(&sb) > runs || runs >= 30
        });
    }
    let all_done = |s: &Sandbox| s.statuses().iter().all(|(_, st)| st == "done");
    sb.wait_until("every task done", all_done);
    for i in 1..=30 {
        assert_ran_once(&sb, &format!("N-{i}"));
    }
    let board = sb.board_text();
    for note in &notes {
        assert!(board.contains(note.as_str()), "lost: {note}");
    }
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// An editor saving in place looked the board up just before the runtime replaced it with a
/// run's ending, and was descheduled inside its `open` until after the runtime's check of the
/// board it took out of place: no lease or open file showed it, so that board was removed and
/// the save went with it (a note lost under CI load). Here the editor's lookup is an `O_PATH`
/// descriptor taken while the claim is on the board, and its write goes through that descriptor
/// once the ending is: the save is put back in the board's place (`save_put_back`), the ending is
/// written on top of it, and the task does not run again.
#[test]
fn a_save_whose_open_began_before_an_ending_was_written_is_put_back() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let (mut sb, pid) = one_task_running("late-open");
    let looked_up = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&sb.board)
        .unwrap();
    let buffer = format!("{}A late note.\n", sb.board_text());
    open_gate(&sb, "T-1");
    sb.wait_until("T-1 done", |s| s.status_of("T-1") == "done");
    // The write of the `open` that began before the ending's swap.
    let through = format!("/proc/self/fd/{}", looked_up.as_raw_fd());
    std::fs::write(&through, &buffer).unwrap();
    sb.wait_until("the save put back", |s| s.count("save_put_back") == 1);
    sb.wait_until("the ending on top of it", |s| {
        s.status_of("T-1") == "done" && s.board_text().contains("A late note.\n")
    });
    assert_ran_once(&sb, "T-1");
    assert!(
        sb.board_text().contains("A late note.\n"),
        "the save was lost"
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// A slow producer appending to the board (`slow-report >> task-board.md`) has it open when the
/// runtime writes a run's ending, and writes its line only after the runtime's swap: the line
/// landed in the board swapped out and vanished with it when its writer was descheduled for
/// more than the swap's 2 ms wait. The swap now waits for the writer to close the file, finds
/// the line, and puts the board back; the ending is written on top of it afterwards.
#[test]
fn a_line_appended_through_a_descriptor_opened_before_an_ending_is_written_survives() {
    let mut sb = gated_sandbox("late-append", "");
    sb.write_board(ONE_TASK);
    let pid = sb.start_run();
    sb.wait_until("T-1 started", |s| runs_of(s, "T-1") == 1);
    // Opens the board for appending, then writes its line only when told to.
    let mut producer = std::process::Command::new("sh")
        .current_dir(sb.path(""))
        .arg("-c")
        .arg(
            "exec 3>>task-board.md; : > opened; \
             while [ ! -e write-now ]; do sleep 0.01; done; echo 'A late line.' >&3",
        )
        .spawn()
        .unwrap();
    sb.wait_until("the producer has the board open", |s| {
        s.path("opened").exists()
    });
    open_gate(&sb, "T-1");
    // Once the ending is on the board (the swap made), the producer writes into what it opened.
    sb.wait_until("the ending on the board", |s| {
        s.board_text().contains("status: done")
    });
    sb.write("write-now", "");
    assert!(producer.wait().unwrap().success());
    sb.wait_until("the line and the ending both on the board", |s| {
        let board = s.board_text();
        board.contains("A late line.") && board.contains("status: done")
    });
    assert_ran_once(&sb, "T-1");
    let board = sb.board_text();
    assert!(
        board.starts_with(&ONE_TASK.replace("status: ready", "status: done")),
        "{board}"
    );
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// The raw status of the `n`-th task (from 0) with this ID.
fn nth_status(text: &str, id: &str, n: usize) -> String {
    taskboard::core::board::Board::parse(text)
        .tasks
        .iter()
        .filter(|t| t.id == id)
        .nth(n)
        .and_then(|t| t.status.as_ref())
        .map(|s| s.raw.to_string())
        .unwrap_or_default()
}

fn runs_of_all(sb: &Sandbox) -> usize {
    std::fs::read_to_string(sb.path("runs.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Situation 2: `git stash; git switch other` during a run, and back again after it ended.
#[test]
fn an_ending_waits_through_a_branch_switch_and_lands_when_the_task_is_back() {
    // A debounce longer than `git stash && git switch` takes, even on a loaded machine: the
    // runtime sees the switch, not the stash alone (whose `ready` it would put back as a stale
    // buffer, leaving a modified board that makes `git switch` refuse).
    let mut sb = gated_sandbox("git-switch", "debounce_ms = 1500");
    std::fs::write(
        sb.path(".gitignore"),
        ".taskboard/\nevents*.jsonl\nruns.log\ngate-*\n*.stderr\nhandoffs/\n",
    )
    .unwrap();
    sb.write_board("# Board\n\n## O-1: older\n- status: done\n");
    git(&sb.dir, &["init", "-q", "-b", "main"]);
    git(&sb.dir, &["add", "-A"]);
    git(&sb.dir, &["commit", "-qm", "older board"]);
    git(&sb.dir, &["branch", "other"]);
    sb.write_board(&format!(
        "# Board\n\n## O-1: older\n- status: done\n\n{}",
        &ONE_TASK[9..]
    ));
    git(&sb.dir, &["commit", "-qam", "a task"]);
    let pid = sb.start_run();
    sb.wait_until("T-1 running", |s| {
        runs_of(s, "T-1") == 1 && s.status_of("T-1").starts_with("running:")
    });
    sh(&sb.dir, "git stash -q && git switch -q other");
    open_gate(&sb, "T-1");
    wait_for_the_ending(&sb, "T-1");
    sh(&sb.dir, "git switch -q main && git stash pop -q");
    sb.wait_until("T-1 done", |s| s.status_of("T-1") == "done");
    assert_ran_once(&sb, "T-1");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// Situation 2, left for longer: the task stays off the board after its run ended (a person
/// deleted its heading, or stays on the other branch). The ending waits with its lock, but the
/// runtime sleeps meanwhile: it made a pass of the whole board every second, for as long as the
/// task stayed away. A cleaning of `.taskboard` still gets the lock put back at once, and the
/// ending lands when the task is back.
#[test]
fn an_ending_waiting_for_a_task_that_is_gone_lets_the_runtime_sleep_and_keeps_its_lock() {
    let (mut sb, pid) = one_task_running("gone-asleep");
    let with_task = sb.board_text();
    let at = with_task.find("## T-1").unwrap();
    editor_save(&sb.board, &with_task[..at], true);
    sb.wait_until("the save without T-1 read", |s| {
        s.count("file_changed") >= 1
    });
    // A live run is watched over (its lock is checked every second), but that is no reason to
    // plan the whole board again.
    let passes = passes_once_over(&sb);
    assert!(
        sb.stays_false(Duration::from_millis(2500), |s| s.count("pass") > passes),
        "the runtime kept making passes while a run was live and nothing changed"
    );
    open_gate(&sb, "T-1");
    wait_for_the_ending(&sb, "T-1");
    let passes = passes_once_over(&sb);
    assert!(
        sb.stays_false(Duration::from_millis(3500), |s| s.count("pass") > passes),
        "the runtime kept making passes while the ending waited for a task that is gone:
{}",
        std::fs::read_to_string(sb.path("events.jsonl")).unwrap_or_default()
    );
    assert_eq!(sb.lock_dirs(), ["T-1"], "the waiting ending's lock");
    // The person can see what waits, and what it will write.
    assert_eq!(
        endings_waiting(&sb),
        serde_json::json!([{"id": "T-1", "attempt": 1, "status": "done"}])
    );
    let show = sb.command(&["show", "T-1"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&show.stderr),
        "taskboard: no task `T-1` on task-board.md; its attempt 1 ended while it was away, and \
         `done` is written when it is back\n"
    );
    assert_eq!(show.status.code(), Some(1));
    sh(&sb.dir, "rm -rf .taskboard");
    sb.wait_until("the waiting ending's lock put back", |s| {
        s.lock_dirs() == ["T-1"]
    });
    editor_save(&sb.board, &with_task, true);
    sb.wait_until("T-1 done", |s| s.status_of("T-1") == "done");
    assert_ran_once(&sb, "T-1");
    sb.wait_until("the lock released", |s| s.lock_dirs().is_empty());
    assert_eq!(endings_waiting(&sb), serde_json::json!([]));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// `endings_waiting` of `taskboard status --json`.
fn endings_waiting(sb: &Sandbox) -> serde_json::Value {
    let out = sb
        .command(&["status", "--json", "task-board.md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["endings_waiting"].clone()
}

/// Situation 2: a person pastes a copy of the running task as a template; while two tasks share
/// the ID the ending cannot be written; they fix the copy after the run ended.
#[test]
fn an_ending_waits_while_a_pasted_copy_shares_the_id() {
    let (mut sb, pid) = one_task_running("paste");
    let text = sb.board_text();
    let block = &text[text.find("## T-1").unwrap()..];
    let pasted = format!("{text}\n{block}");
    editor_save(&sb.board, &pasted, true);
    open_gate(&sb, "T-1");
    wait_for_the_ending(&sb, "T-1");
    // The person turns the copy into a new task: a new ID and `ready`.
    let now = sb.board_text();
    let at = now.rfind("## T-1: the task").unwrap();
    let (head, tail) = now.split_at(at);
    let claim = nth_status(&now, "T-1", 1);
    let tail = tail
        .replacen("## T-1: the task", "## T-2: the copy", 1)
        .replacen(&claim, "ready", 1);
    open_gate(&sb, "T-2");
    editor_save(&sb.board, &format!("{head}{tail}"), true);
    sb.wait_until("both done", |s| {
        s.status_of("T-1") == "done" && s.status_of("T-2") == "done"
    });
    assert_ran_once(&sb, "T-1");
    assert_ran_once(&sb, "T-2");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// Situation 2: the runtime is stopped while an ending waits (here the board is momentarily not
/// UTF-8); the next start writes the ending instead of running the task again.
#[test]
fn an_ending_kept_across_a_stop_is_written_by_the_next_start() {
    let (mut sb, pid) = one_task_running("stop-kept");
    let good = sb.board_text();
    // A byte that is not UTF-8 in a description: the board cannot be read.
    let mut bad = good.clone().into_bytes();
    bad.extend_from_slice(b"caf\xe9\n");
    std::fs::write(&sb.board, &bad).unwrap();
    let errors = sb.count("error");
    open_gate(&sb, "T-1");
    sb.wait_until("the run finished", |s| {
        s.count_for("task_finished", "T-1") == 1
    });
    sb.wait_until("the unreadable board reported", |s| {
        s.count("error") > errors
    });
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let on_disk = String::from_utf8_lossy(&std::fs::read(&sb.board).unwrap()).into_owned();
    assert!(nth_status(&on_disk, "T-1", 0).starts_with("running:"));
    // The person fixes the byte; the next start writes the kept ending.
    std::fs::write(&sb.board, format!("{good}café\n")).unwrap();
    let pid = sb.start_run();
    sb.wait_until("T-1 done", |s| s.status_of("T-1") == "done");
    assert_ran_once(&sb, "T-1");
    assert!(sb.board_text().ends_with("café\n"));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// Situation 3: after the runtime dead-lettered a task, a buffer that still shows the retry wait
/// is saved. No new series of attempts starts.
#[test]
fn a_stale_retry_wait_does_not_resurrect_a_dead_lettered_task() {
    let mut sb = Sandbox::new("resurrect");
    sb.script(
        "fails.sh",
        "cat > /dev/null\necho \"start $TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT\" >> runs.log\nexit 1",
    );
    sb.config(
        "max_attempts = 2\nretry_backoff = \"300ms\"",
        "[executors.default]\ncommand = [\"./fails.sh\"]\ntimeout = \"60s\"\n",
    );
    sb.write_board(ONE_TASK);
    let pid = sb.start_run();
    sb.wait_until("a retry wait", |s| {
        s.status_of("T-1").starts_with("blocked:retry:")
    });
    let buffer = sb.board_text();
    sb.wait_until("dead-lettered", |s| {
        s.status_of("T-1") == "failed:exhausted_retries"
    });
    let runs = runs_of(&sb, "T-1");
    assert_eq!(runs, 2);
    editor_save(&sb.board, &format!("{buffer}A note.\n"), true);
    assert!(
        sb.stays_false(Duration::from_secs(2), |s| runs_of(s, "T-1") > runs),
        "a stale retry wait started a new series of attempts"
    );
    sb.wait_until("the dead letter stands", |s| {
        s.status_of("T-1") == "failed:exhausted_retries"
    });
    assert!(sb.board_text().ends_with("A note.\n"));
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// Situation 5: `taskboard once` finishes a task beside `taskboard run`; a stale buffer later
/// shows it `ready`. `run` knows what `once` did, and the two share `max_parallel`.
#[test]
fn once_beside_run_shares_what_it_knows_and_the_parallel_limit() {
    let mut sb = gated_sandbox("once-run", "max_parallel = 1");
    let text = "# Board\n\n## B-1: by once\n- status: ready\n\n## C-1: by run\n- status: blocked:me:later\n";
    sb.write_board(text);
    let buffer = sb.board_text();
    let mut once = sb
        .command(&["once", "task-board.md"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sb.wait_until("B-1 running", |s| runs_of(s, "B-1") == 1);
    let pid = sb.start_run();
    // C-1 becomes ready while `once` runs B-1: with max_parallel = 1 it waits.
    let now = sb.board_text().replace("blocked:me:later", "ready");
    editor_save(&sb.board, &now, true);
    assert!(
        sb.stays_false(Duration::from_millis(800), |s| runs_of(s, "C-1") > 0),
        "run started C-1 while once ran B-1 with max_parallel = 1"
    );
    open_gate(&sb, "B-1");
    assert!(poll(Duration::from_secs(30), || once
        .try_wait()
        .unwrap()
        .is_some()));
    sb.wait_until("C-1 running", |s| runs_of(s, "C-1") == 1);
    open_gate(&sb, "C-1");
    sb.wait_until("both done", |s| {
        s.status_of("B-1") == "done" && s.status_of("C-1") == "done"
    });
    // The person's editor still holds B-1 as `ready`.
    editor_save(&sb.board, &buffer.replace("blocked:me:later", "done"), true);
    assert_ran_once(&sb, "B-1");
    sb.wait_until("B-1 done again", |s| s.status_of("B-1") == "done");
    assert_ran_once(&sb, "C-1");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
}

/// The gap behind situation 5: `once` writes its task's ending, then releases its lock. A `run`
/// that planned in between saw the one place under `max_parallel` taken by that lock; the release
/// comes with no save of the board, yet the ready task must start soon after it, not at the next
/// rescan an hour later. Here another live process holds the lock (a stand-in whose pid is in
/// the owner record) and the test releases it as `once` would, without touching the board.
#[test]
fn a_ready_task_starts_once_another_process_releases_the_lock_that_filled_the_limit() {
    let mut sb = gated_sandbox("foreign-release", "max_parallel = 1");
    let mut other = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();
    let owner = taskboard::shell::lock::Owner {
        pid: other.id(),
        start_time: taskboard::shell::lock::process_start_time(other.id()),
        ..taskboard::shell::lock::Owner::current("another-once", chrono::Utc::now())
    };
    let lock = sb.path(".taskboard/locks/B-1");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(
        lock.join("owner.json"),
        serde_json::to_string(&owner).unwrap(),
    )
    .unwrap();
    sb.write_board(
        "# Board\n\n## B-1: by once\n- status: done\n\n## C-1: by run\n- status: ready\n",
    );
    let pid = sb.start_run();
    assert!(
        sb.stays_false(Duration::from_millis(800), |s| runs_of(s, "C-1") > 0),
        "run started C-1 while another process held the one place"
    );
    std::fs::remove_dir_all(&lock).unwrap();
    sb.wait_until("C-1 running", |s| runs_of(s, "C-1") == 1);
    open_gate(&sb, "C-1");
    sb.wait_until("C-1 done", |s| s.status_of("C-1") == "done");
    assert_eq!(sb.status_of("B-1"), "done");
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    let _ = other.kill();
    let _ = other.wait();
}
