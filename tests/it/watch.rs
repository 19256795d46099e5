//! The board watcher against real files: every common way of saving is seen, other files are not,
//! and a burst of events settles into silence.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::support::TempDir;

use taskboard::shell::watch::{
    BoardWatcher, WatchError, WatchSignal, watch_board, watch_board_and_bursts,
};

const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long "nothing more happens" is waited for: a deadline, not a pause.
const QUIET: Duration = Duration::from_millis(200);
/// The longest a signal may take to arrive before the test fails.
const DEADLINE: Duration = Duration::from_secs(5);

struct Fixture {
    dir: PathBuf,
    /// Removed after the watcher stops.
    _temp: TempDir,
    board: PathBuf,
    rx: Receiver<WatchSignal>,
    watcher: Option<BoardWatcher>,
}

impl Fixture {
    /// A folder with `task-board.md` (unless `create` is false) and a watcher on it.
    fn new(name: &str, create: bool) -> Self {
        let temp = TempDir::new(&format!("watch-{name}"));
        let dir = temp.to_path_buf();
        let board = dir.join("task-board.md");
        if create {
            fs::write(&board, "# Board\n- [ ] one\n").unwrap();
        }
        let (tx, rx) = mpsc::channel();
        let watcher = watch_board(&board, DEBOUNCE, move |s| {
            let _ = tx.send(s);
        })
        .unwrap();
        Fixture {
            dir,
            board,
            rx,
            watcher: Some(watcher),
            _temp: temp,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Wait for a `BoardTouched`, failing on any other signal or at the deadline.
    fn expect_touch(&self) {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(WatchSignal::BoardTouched { .. }) => {}
            other => panic!("expected BoardTouched, got {other:?}"),
        }
    }

    /// Once the burst is over, nothing more arrives: collect what trails the first signal until
    /// `QUIET` passes without one, and require that to be little and all touches.
    fn expect_settles(&self) {
        let start = Instant::now();
        let mut extra = Vec::new();
        loop {
            match self.rx.recv_timeout(QUIET) {
                Ok(s) => extra.push(s),
                Err(RecvTimeoutError::Timeout) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(start.elapsed() < DEADLINE, "signals keep coming: {extra:?}");
        }
        assert!(extra.len() <= 2, "too many trailing signals: {extra:?}");
        assert!(
            extra
                .iter()
                .all(|s| matches!(s, WatchSignal::BoardTouched { .. })),
            "{extra:?}"
        );
    }

    fn expect_silence(&self) {
        match self.rx.recv_timeout(QUIET) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("expected no signal, got {other:?}"),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
    }
}

fn append(p: &Path, s: &str) {
    let mut f = OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

#[test]
fn in_place_append() {
    let f = Fixture::new("append", true);
    append(&f.board, "- [ ] two\n");
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn truncate_then_write() {
    let f = Fixture::new("truncate", true);
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&f.board)
        .unwrap();
    file.write_all(b"# Board\n- [x] one\n").unwrap();
    drop(file);
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn temp_then_rename_over() {
    let f = Fixture::new("rename-over", true);
    let tmp = f.path(".task-board.md.tmp");
    fs::write(&tmp, "# Board\n- [x] one\n").unwrap();
    fs::rename(&tmp, &f.board).unwrap();
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn delete_then_recreate() {
    let f = Fixture::new("recreate", true);
    fs::remove_file(&f.board).unwrap();
    fs::write(&f.board, "# Board\n- [x] one\n").unwrap();
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn vim_style_backup_rename_then_write() {
    let f = Fixture::new("vim", true);
    let backup = f.path("task-board.md~");
    fs::rename(&f.board, &backup).unwrap();
    fs::write(f.path("4913"), "").unwrap();
    fs::remove_file(f.path("4913")).unwrap();
    fs::write(&f.board, "# Board\n- [x] one\n").unwrap();
    fs::remove_file(&backup).unwrap();
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn other_files_in_the_folder_are_ignored() {
    let f = Fixture::new("others", true);
    let log = f.path("events.jsonl");
    fs::write(&log, "{}\n").unwrap();
    for _ in 0..5 {
        append(&log, "{\"event\":\"x\"}\n");
    }
    fs::write(f.path(".task-board.md.swp"), "x").unwrap();
    fs::write(f.path(".task-board.md.taskboard-1-2.tmp"), "x").unwrap();
    fs::remove_file(f.path(".task-board.md.taskboard-1-2.tmp")).unwrap();
    f.expect_silence();
    // The watch is still alive: a later board edit is seen.
    append(&f.board, "- [ ] two\n");
    f.expect_touch();
}

#[test]
fn reading_the_board_does_not_signal() {
    let f = Fixture::new("read", true);
    append(&f.board, "- [ ] two\n");
    f.expect_touch();
    f.expect_settles();
    // What the runtime does after each signal must not cause another one.
    let text = taskboard::shell::fsio::read_board(&f.board).unwrap().text;
    assert!(text.ends_with("two\n"));
    f.expect_silence();
}

#[test]
fn board_may_appear_later() {
    let f = Fixture::new("later", false);
    f.expect_silence();
    fs::write(&f.board, "# Board\n").unwrap();
    f.expect_touch();
    f.expect_settles();
}

#[test]
fn missing_folder_is_an_error() {
    let temp = TempDir::new("watch-nofolder");
    let dir = temp.join("nofolder");
    let e = watch_board(&dir.join("task-board.md"), DEBOUNCE, |_| {}).unwrap_err();
    assert_eq!(e, WatchError::NoFolder(dir.clone()));
    assert!(e.to_string().ends_with(": folder does not exist"), "{e}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn symlinked_board_edits_at_the_target_are_seen() {
    let root = TempDir::new("watch-symlink");
    let real = root.join("real");
    let view = root.join("view");
    fs::create_dir_all(&real).unwrap();
    fs::create_dir_all(&view).unwrap();
    let target = real.join("board.md");
    fs::write(&target, "# Board\n").unwrap();
    let link = view.join("task-board.md");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (tx, rx) = mpsc::channel();
    let w = watch_board(&link, DEBOUNCE, move |s| {
        let _ = tx.send(s);
    })
    .unwrap();
    assert_eq!(w.folders().len(), 2);
    append(&target, "- [ ] one\n");
    assert!(matches!(
        rx.recv_timeout(DEADLINE),
        Ok(WatchSignal::BoardTouched { .. })
    ));
    w.stop();
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn removing_the_folder_is_reported() {
    let f = Fixture::new("rmdir", true);
    fs::remove_dir_all(&f.dir).unwrap();
    let start = Instant::now();
    loop {
        match f.rx.recv_timeout(DEADLINE.saturating_sub(start.elapsed())) {
            Ok(WatchSignal::Error(m)) => {
                assert!(m.contains("folder was removed"), "{m}");
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no error signal: {e}"),
        }
    }
}

#[test]
fn a_board_written_without_pause_is_still_signalled_while_it_is_written() {
    let f = Fixture::new("continuous", true);
    let (stop, stopped) = mpsc::channel::<()>();
    let writer = {
        let board = f.board.clone();
        std::thread::spawn(move || {
            // Far more often than the debounce, for longer than the test waits: a write, then
            // up to 5 ms waiting to be told to stop.
            let end = Instant::now() + DEADLINE * 2;
            while Instant::now() < end {
                append(&board, "- [ ] more\n");
                if stopped.recv_timeout(Duration::from_millis(5)) != Err(RecvTimeoutError::Timeout)
                {
                    break;
                }
            }
        })
    };
    let touched = f.rx.recv_timeout(DEADLINE);
    let still_writing = !writer.is_finished();
    let _ = stop.send(());
    writer.join().unwrap();
    assert!(
        matches!(touched, Ok(WatchSignal::BoardTouched { .. })),
        "{touched:?}"
    );
    assert!(
        still_writing,
        "the signal came only once the writes stopped"
    );
}

/// What a watcher with a burst hook reported, in order.
#[derive(Debug)]
enum Heard {
    Burst,
    Signal(WatchSignal, Instant),
}

/// The burst hook is called once per batch, at the batch's first event, before the batch's
/// signal, which comes a quiet period after the save: in time for work the signal will need.
/// Files beside the board never call it.
#[test]
fn the_burst_hook_is_called_at_each_batchs_first_event() {
    let temp = TempDir::new("watch-burst");
    let dir = temp.to_path_buf();
    let board = dir.join("task-board.md");
    fs::write(&board, "# Board\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let burst = tx.clone();
    let watcher = watch_board_and_bursts(
        &board,
        DEBOUNCE,
        move || {
            let _ = burst.send(Heard::Burst);
        },
        move |s| {
            let _ = tx.send(Heard::Signal(s, Instant::now()));
        },
    )
    .unwrap();
    fs::write(dir.join("notes.md"), "a person's notes\n").unwrap();
    match rx.recv_timeout(QUIET) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("another file was heard: {other:?}"),
    }
    for round in 0..2 {
        // One save in three writes: one batch.
        let saved = Instant::now();
        for i in 0..3 {
            append(&board, &format!("- [ ] {round}.{i}\n"));
        }
        // The hook runs when the watcher's thread takes the first event, which under load
        // may be well after the event: the quiet period counts from the events themselves.
        match rx.recv_timeout(DEADLINE) {
            Ok(Heard::Burst) => {}
            other => panic!("expected the burst first, got {other:?}"),
        }
        match rx.recv_timeout(DEADLINE) {
            Ok(Heard::Signal(WatchSignal::BoardTouched { .. }, at)) => {
                assert!(at - saved >= DEBOUNCE, "{:?} after the save", at - saved);
            }
            other => panic!("expected the batch's signal, got {other:?}"),
        }
        // A late event makes a batch of its own (see `expect_settles`): a burst, then its signal.
        let mut trailing = Vec::new();
        while let Ok(heard) = rx.recv_timeout(QUIET) {
            trailing.push(heard);
            assert!(trailing.len() <= 4, "{trailing:?}");
        }
        for pair in trailing.chunks(2) {
            assert!(
                matches!(
                    pair,
                    [
                        Heard::Burst,
                        Heard::Signal(WatchSignal::BoardTouched { .. }, _)
                    ]
                ),
                "{trailing:?}"
            );
        }
    }
    watcher.stop();
}
