//! Reading and replacing the board on a real filesystem.

use crate::support;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use taskboard::shell::fsio::{
    MAX_BOARD_BYTES, ReadError, atomic_write, read_board, read_settled, read_settled_between,
    read_stable, read_stable_between, replace_if_unchanged, settle_replaced_boards, text_hash,
};

use support::TempDir;

/// The names in `d`, sorted, once every board this process replaced has been looked at again
/// (a replaced board is kept for a moment in case a late save lands in it).
fn entries(d: &TempDir) -> Vec<String> {
    settle_replaced_boards();
    let mut v: Vec<String> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn reads_a_board() {
    let d = TempDir::new("read");
    let p = d.join("task-board.md");
    fs::write(&p, "# Board\n- [ ] one\n").unwrap();
    let s = read_board(&p).unwrap();
    assert_eq!(s.text, "# Board\n- [ ] one\n");
    assert_eq!(s.len, 18);
    assert_eq!(s.hash, text_hash(s.text.as_bytes()));
    assert!(s.mtime.is_some());
}

#[test]
fn missing_file() {
    let d = TempDir::new("missing");
    let p = d.join("task-board.md");
    let e = read_board(&p).unwrap_err();
    assert_eq!(e, ReadError::NotFound(p.clone()));
    assert!(e.is_transient());
    assert_eq!(e.to_string(), format!("{}: no such file", p.display()));
}

#[test]
fn folder_is_refused() {
    let d = TempDir::new("dir");
    let p = d.join("task-board.md");
    fs::create_dir(&p).unwrap();
    let e = read_board(&p).unwrap_err();
    assert_eq!(e, ReadError::IsDir(p));
    assert!(!e.is_transient());
    assert!(e.to_string().ends_with("is a folder, not a file"));
}

#[test]
fn fifo_is_refused_without_blocking() {
    let d = TempDir::new("fifo");
    let p = d.join("task-board.md");
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let e = read_board(&p).unwrap_err();
    assert!(matches!(e, ReadError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn no_permission() {
    if is_root() {
        // Root reads anything, so the refusal is observed by this same test run as `nobody`.
        no_permission_as_nobody();
        return;
    }
    let d = TempDir::new("perm");
    let p = d.join("task-board.md");
    fs::write(&p, "x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    let r = read_board(&p);
    let e = r.unwrap_err();
    assert_eq!(e, ReadError::Permission(p.clone()));
    assert!(e.to_string().ends_with(": permission denied"));
}

/// Runs `no_permission` in this test binary again, as `nobody` through `setpriv`.
fn no_permission_as_nobody() {
    if let Some(why) = support::cannot_run_as_nobody() {
        support::skip(&format!("{why} (setpriv is in util-linux)"));
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "fsio::no_permission", "--test-threads=1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains("test result: ok. 1 passed") {
        return;
    }
    assert!(
        !stdout.contains("test fsio::no_permission ..."),
        "as nobody:\n{stdout}\n{stderr}"
    );
    // The test never started: nobody cannot execute the binary where it was built.
    support::skip(&format!(
        "{} cannot be run as nobody: {}",
        exe.display(),
        stderr.trim()
    ));
}

#[test]
fn symlink_loop() {
    let d = TempDir::new("loop");
    let a = d.join("a.md");
    let b = d.join("b.md");
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    let e = read_board(&a).unwrap_err();
    assert_eq!(e, ReadError::SymlinkLoop(a));
    assert!(e.to_string().contains("symbolic links"));
}

#[test]
fn invalid_utf8_reports_offset() {
    let d = TempDir::new("utf8");
    let p = d.join("task-board.md");
    let mut bytes = "# Bøard\n".as_bytes().to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(b"\xff rest\n");
    fs::write(&p, &bytes).unwrap();
    let e = read_board(&p).unwrap_err();
    assert_eq!(
        e,
        ReadError::NotUtf8 {
            path: p.clone(),
            offset
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not valid UTF-8 (first invalid byte at offset 9)",
            p.display()
        )
    );
}

#[test]
fn too_large_is_refused_without_reading() {
    let d = TempDir::new("large");
    let p = d.join("task-board.md");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&p)
        .unwrap();
    // Sparse: no blocks are written, and reading it would take a while.
    f.set_len(MAX_BOARD_BYTES + 1).unwrap();
    let e = read_board(&p).unwrap_err();
    assert_eq!(
        e,
        ReadError::TooLarge {
            path: p.clone(),
            size: MAX_BOARD_BYTES + 1,
            max: MAX_BOARD_BYTES
        }
    );
    assert!(
        e.to_string()
            .contains("too large (67108865 bytes; a board may be at most 64 MiB)"),
        "{e}"
    );
}

#[test]
fn errors_display_on_one_line() {
    let p = PathBuf::from("task-board.md");
    for e in [
        ReadError::NotFound(p.clone()),
        ReadError::IsDir(p.clone()),
        ReadError::Permission(p.clone()),
        ReadError::TooLarge {
            path: p.clone(),
            size: 2,
            max: 1,
        },
        ReadError::NotUtf8 {
            path: p.clone(),
            offset: 1234,
        },
        ReadError::SymlinkLoop(p.clone()),
        ReadError::Io {
            path: p.clone(),
            err: "boom".into(),
        },
    ] {
        let s = e.to_string();
        assert!(s.starts_with("task-board.md: ") && !s.contains('\n'), "{s}");
    }
    assert_eq!(
        ReadError::NotUtf8 {
            path: p,
            offset: 1234
        }
        .to_string(),
        "task-board.md: not valid UTF-8 (first invalid byte at offset 1234)"
    );
}

#[test]
fn read_stable_returns_settled_content() {
    let d = TempDir::new("stable");
    let p = d.join("task-board.md");
    fs::write(&p, "- [ ] a\n").unwrap();
    let s = read_stable(&p, Duration::from_millis(1), 5).unwrap();
    assert_eq!(s.text, "- [ ] a\n");
    // Missing for the whole budget: the error comes back.
    let q = d.join("gone.md");
    assert!(
        read_stable(&q, Duration::from_millis(1), 3)
            .unwrap_err()
            .is_transient()
    );
    // A permanent error comes back at once.
    let e = read_stable(d.path(), Duration::from_secs(60), 3).unwrap_err();
    assert!(matches!(e, ReadError::IsDir(_)));
}

#[test]
fn read_stable_waits_out_a_save_in_progress() {
    let d = TempDir::new("midsave");
    let p = d.join("task-board.md");
    // The file appears half-written and is then completed while read_stable reads: each step of
    // the save is made where read_stable waits between two reads.
    let mut steps = ["- [ ] half", "- [ ] whole\n"].into_iter();
    let mut waits = 0;
    let s = read_stable_between(&p, 40, || {
        waits += 1;
        if let Some(text) = steps.next() {
            fs::write(&p, text).unwrap();
        }
    })
    .unwrap();
    assert_eq!(s.text, "- [ ] whole\n");
    // Missing, half, whole, whole again: taken at the first two equal reads, not before.
    assert_eq!(waits, 3);
}

#[test]
fn atomic_write_keeps_mode() {
    let d = TempDir::new("mode");
    for m in [0o600, 0o755, 0o640] {
        let p = d.join("task-board.md");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
        atomic_write(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(mode(&p), m, "mode {m:o}");
    }
    assert_eq!(entries(&d), ["task-board.md"]);
}

#[test]
fn atomic_write_new_file_is_0644() {
    let d = TempDir::new("new");
    let p = d.join("task-board.md");
    atomic_write(&p, b"hello\n").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"hello\n");
    assert_eq!(mode(&p), 0o644);
    assert_eq!(entries(&d), ["task-board.md"]);
}

#[test]
fn atomic_write_through_symlink_keeps_the_link() {
    let d = TempDir::new("symlink");
    fs::create_dir(d.join("real")).unwrap();
    let target = d.join("real/board.md");
    fs::write(&target, "old").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let link = d.join("task-board.md");
    symlink("real/board.md", &link).unwrap();
    atomic_write(&link, b"new").unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("real/board.md"));
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert_eq!(mode(&target), 0o600);
    assert_eq!(entries(&d), ["real", "task-board.md"]);
    assert_eq!(fs::read_dir(d.join("real")).unwrap().count(), 1);
}

#[test]
fn atomic_write_through_dangling_symlink_creates_the_target() {
    let d = TempDir::new("dangling");
    let link = d.join("task-board.md");
    symlink("board.md", &link).unwrap();
    atomic_write(&link, b"x").unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(d.join("board.md")).unwrap(), b"x");
}

#[test]
fn atomic_write_preserves_bytes_exactly() {
    let d = TempDir::new("bytes");
    let p = d.join("task-board.md");
    let contents = b"\xef\xbb\xbf# Board\r\n- [ ] a\r\n\r\n- [x] b\n\tno newline at end";
    atomic_write(&p, contents).unwrap();
    assert_eq!(fs::read(&p).unwrap(), contents);
    let s = read_board(&p).unwrap();
    assert_eq!(s.text.as_bytes(), contents);
    atomic_write(&p, b"").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"");
}

#[test]
fn atomic_write_breaks_hard_links() {
    let d = TempDir::new("hardlink");
    let p = d.join("task-board.md");
    let h = d.join("other.md");
    fs::write(&p, "old").unwrap();
    fs::hard_link(&p, &h).unwrap();
    atomic_write(&p, b"new").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert_eq!(fs::read(&h).unwrap(), b"old");
}

#[test]
fn atomic_write_failure_leaves_no_temp_file() {
    let d = TempDir::new("fail");
    // Target is a folder: refused before anything is created.
    fs::create_dir(d.join("task-board.md")).unwrap();
    assert!(atomic_write(&d.join("task-board.md"), b"x").is_err());
    assert_eq!(entries(&d), ["task-board.md"]);
    // A folder that cannot be written to: nothing is left behind (root may write anywhere).
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    if !is_root() {
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o500)).unwrap();
        assert!(atomic_write(&sub.join("b.md"), b"x").is_err());
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 0);
    }
}

const BOARD: &str = "# Board\n\n## A-1: first\n- status: ready\n";
const CLAIMED: &str = "# Board\n\n## A-1: first\n- status: running:tb:2026-12-01T00:00:00Z\n";

/// A folder holding a board `BOARD`.
fn folder_with_board(name: &str) -> (TempDir, PathBuf) {
    let d = TempDir::new(name);
    let board = d.join("task-board.md");
    fs::write(&board, BOARD).unwrap();
    (d, board)
}

/// The board opened for appending, as `cmd >> task-board.md` opens it.
fn open_to_append(board: &Path) -> fs::File {
    OpenOptions::new().append(true).open(board).unwrap()
}

/// The compare-and-swap of `CLAIMED` over a board read as `BOARD`, on its own thread; the
/// flag says it returned.
fn swap_in_background(
    board: &Path,
) -> (
    std::thread::JoinHandle<std::io::Result<bool>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let read = read_board(board).unwrap();
    assert_eq!(read.text, BOARD);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (board, flag) = (board.to_path_buf(), done.clone());
    let swap = std::thread::spawn(move || {
        let r = replace_if_unchanged(&board, CLAIMED.as_bytes(), &read);
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    (swap, done)
}

/// A program appending to the board (`slow-report >> task-board.md`) opened it before the
/// runtime's swap and writes long after it: the line lands in the board the swap replaced,
/// so that board goes back in place, line included, and the swap says the board changed.
#[test]
fn a_write_through_a_descriptor_opened_before_the_swap_is_never_lost_however_late() {
    let (d, board) = folder_with_board("late-append");
    let mut appender = open_to_append(&board);
    let (swap, done) = swap_in_background(&board);
    // The write comes once the swap is over, or a while after it began if the swap waits.
    support::poll(Duration::from_millis(300), || {
        done.load(std::sync::atomic::Ordering::SeqCst)
    });
    std::io::Write::write_all(&mut appender, b"\nA late line.\n").unwrap();
    drop(appender);
    assert!(
        !swap.join().unwrap().unwrap(),
        "the swap said the board was unchanged"
    );
    assert_eq!(
        fs::read_to_string(&board).unwrap(),
        format!("{BOARD}\nA late line.\n"),
        "the late line was lost"
    );
    assert_eq!(entries(&d), ["task-board.md"], "a temporary file was left");
}

/// A folder whose board was replaced by [`CLAIMED`] after a hard link `.looked-up` was made to
/// it: the file an `open` begun before the swap reaches.
fn claimed_with_a_lookup_before(name: &str) -> (TempDir, PathBuf, PathBuf) {
    let (d, board) = folder_with_board(name);
    let looked_up = d.join(".looked-up");
    fs::hard_link(&board, &looked_up).unwrap();
    let read = read_board(&board).unwrap();
    assert!(replace_if_unchanged(&board, CLAIMED.as_bytes(), &read).unwrap());
    (d, board, looked_up)
}

/// An editor's in-place save that looked the board up before the swap but was descheduled
/// inside its `open` until after the swap's check writes into the board the swap took out of
/// place (a hard link stands for the file it looked up): that board goes back in place, save
/// included, and nothing is left behind. Before, the board taken out was removed at the check
/// and the save went with it (a note lost under CI load).
#[test]
fn a_save_that_looked_the_board_up_before_the_swap_and_wrote_after_its_check_goes_back() {
    let (d, board, looked_up) = claimed_with_a_lookup_before("late-open");
    assert_eq!(fs::read_to_string(&board).unwrap(), CLAIMED);
    let saved = format!("{BOARD}A note saved in place.\n");
    fs::write(&looked_up, &saved).unwrap();
    settle_replaced_boards();
    assert_eq!(
        fs::read_to_string(&board).unwrap(),
        saved,
        "the late save was lost"
    );
    assert_eq!(
        entries(&d),
        [".looked-up", "task-board.md"],
        "a temporary file was left"
    );
}

/// The same late save, when the board has been written again since: neither may replace the
/// other, so the save is kept beside the board, named, and the board stays as it is.
#[test]
fn a_late_save_into_a_board_replaced_twice_since_is_kept_beside_it() {
    let (d, board, looked_up) = claimed_with_a_lookup_before("late-open-twice");
    let again = format!("{CLAIMED}\n## A-2: second\n- status: ready\n");
    let read = read_board(&board).unwrap();
    assert!(replace_if_unchanged(&board, again.as_bytes(), &read).unwrap());
    let saved = format!("{BOARD}A note saved in place.\n");
    fs::write(&looked_up, &saved).unwrap();
    settle_replaced_boards();
    assert_eq!(fs::read_to_string(&board).unwrap(), again);
    let names = entries(&d);
    let kept: Vec<&String> = names.iter().filter(|n| n.ends_with(".kept")).collect();
    assert_eq!(kept.len(), 1, "{names:?}");
    assert_eq!(fs::read_to_string(d.join(kept[0])).unwrap(), saved);
    assert_eq!(names.len(), 3, "{names:?}");
}

/// A board replaced and left alone leaves nothing behind once it has been looked at again.
#[test]
fn a_replaced_board_nobody_writes_to_is_removed() {
    let (d, board) = folder_with_board("retired");
    let read = read_board(&board).unwrap();
    assert!(replace_if_unchanged(&board, CLAIMED.as_bytes(), &read).unwrap());
    assert_eq!(entries(&d), ["task-board.md"]);
    assert_eq!(fs::read_to_string(&board).unwrap(), CLAIMED);
}

/// A program that keeps the board open for writing past the swap's wait gets its board back:
/// whatever it writes after that lands in the board, not in a copy swapped away.
#[test]
fn a_board_held_open_for_writing_past_the_wait_is_put_back_for_its_writer() {
    let (d, board) = folder_with_board("held-open");
    let mut holder = open_to_append(&board);
    let (swap, _) = swap_in_background(&board);
    assert!(
        !swap.join().unwrap().unwrap(),
        "swapped under an open writer"
    );
    assert_eq!(fs::read_to_string(&board).unwrap(), BOARD);
    std::io::Write::write_all(&mut holder, b"At last.\n").unwrap();
    drop(holder);
    assert_eq!(
        fs::read_to_string(&board).unwrap(),
        format!("{BOARD}At last.\n")
    );
    assert_eq!(entries(&d), ["task-board.md"], "a temporary file was left");
}

/// A reader (a pager, `tail -f`) holding the board open never holds the write back.
#[test]
fn a_board_open_only_for_reading_is_replaced() {
    let (d, board) = folder_with_board("reader");
    let reader = fs::File::open(&board).unwrap();
    let (swap, _) = swap_in_background(&board);
    assert!(swap.join().unwrap().unwrap(), "a reader blocked the swap");
    assert_eq!(fs::read_to_string(&board).unwrap(), CLAIMED);
    drop(reader);
    assert_eq!(entries(&d), ["task-board.md"], "a temporary file was left");
}

#[test]
fn read_stable_retries_a_file_cut_mid_character() {
    let d = TempDir::new("cut");
    let p = d.join("task-board.md");
    // "ø" is two bytes; the first one alone looks like a save caught half-way.
    fs::write(&p, b"- [ ] b\xc3").unwrap();
    assert!(matches!(
        read_board(&p),
        Err(ReadError::NotUtf8 { offset: 7, .. })
    ));
    // The save is finished where read_stable waits after reading the cut file.
    let mut rest = Some("- [ ] bø\n");
    let mut waits = 0;
    let s = read_stable_between(&p, 40, || {
        waits += 1;
        if let Some(text) = rest.take() {
            fs::write(&p, text).unwrap();
        }
    })
    .unwrap();
    assert_eq!(s.text, "- [ ] bø\n");
    // Cut, whole, whole again.
    assert_eq!(waits, 2);
    // An invalid byte in the middle is not a save in progress: refused at once.
    fs::write(&p, b"a\xffb").unwrap();
    let e = read_stable(&p, Duration::from_secs(60), 3).unwrap_err();
    assert!(matches!(e, ReadError::NotUtf8 { offset: 1, .. }));
}

/// What `read` returns of a board a writer replaces with the next number, back to back, the
/// whole time it reads.
fn read_while_rewritten<T>(label: &str, read: impl FnOnce(&std::path::Path) -> T) -> T {
    let d = TempDir::new(label);
    let p = d.join("task-board.md");
    fs::write(&p, "0").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                atomic_write(&p, n.to_string().as_bytes()).unwrap();
            }
        })
    };
    let read = read(&p);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    read
}

#[test]
fn read_stable_gives_the_last_read_when_the_file_never_settles() {
    let s = read_while_rewritten("unsettled", |p| read_stable(p, Duration::from_millis(2), 4));
    // Whatever was read last is a whole number written by the writer, never a torn file.
    let s = s.unwrap();
    assert!(s.text.parse::<u64>().is_ok(), "{:?}", s.text);
}

#[test]
fn read_settled_takes_a_file_that_holds_still_without_waiting() {
    let d = TempDir::new("settled");
    let p = d.join("task-board.md");
    fs::write(&p, "- [ ] a\n").unwrap();
    // A quiet period of a minute: a second read would hang the test.
    let s = read_settled(&p, Duration::from_secs(60), 3).unwrap();
    assert_eq!(s.text, "- [ ] a\n");
    assert_eq!(s, read_board(&p).unwrap());
    // Missing for the whole budget: the error comes back.
    let q = d.join("gone.md");
    assert!(
        read_settled(&q, Duration::from_millis(1), 3)
            .unwrap_err()
            .is_transient()
    );
    // A permanent error comes back at once.
    let e = read_settled(d.path(), Duration::from_secs(60), 3).unwrap_err();
    assert!(matches!(e, ReadError::IsDir(_)));
}

#[test]
fn read_settled_retries_a_file_cut_mid_character() {
    let d = TempDir::new("settled-cut");
    let p = d.join("task-board.md");
    fs::write(&p, b"- [ ] b\xc3").unwrap();
    // The save is finished where read_settled waits after reading the cut file.
    let mut rest = Some("- [ ] b\u{f8}\n");
    let mut waits = 0;
    let s = read_settled_between(&p, 40, || {
        waits += 1;
        if let Some(text) = rest.take() {
            fs::write(&p, text).unwrap();
        }
    })
    .unwrap();
    assert_eq!(s.text, "- [ ] b\u{f8}\n");
    // Cut, then whole and holding still: taken at once.
    assert_eq!(waits, 1);
    // An invalid byte in the middle is not a save in progress: refused at once.
    fs::write(&p, b"a\xffb").unwrap();
    let e = read_settled(&p, Duration::from_secs(60), 3).unwrap_err();
    assert!(matches!(e, ReadError::NotUtf8 { offset: 1, .. }));
}

#[test]
fn read_settled_waits_for_a_board_that_is_missing_mid_save() {
    let d = TempDir::new("settled-missing");
    let p = d.join("task-board.md");
    // The board is missing at the first read; the save puts it back before the second.
    let mut rest = Some(b"- [ ] whole\n");
    let mut waits = 0;
    let s = read_settled_between(&p, 400, || {
        waits += 1;
        if let Some(text) = rest.take() {
            atomic_write(&p, text).unwrap();
        }
    })
    .unwrap();
    assert_eq!(s.text, "- [ ] whole\n");
    assert_eq!(waits, 1);
}

#[test]
fn read_settled_never_returns_a_torn_file_while_it_is_rewritten() {
    let s = read_while_rewritten("settled-unsettled", |p| {
        read_settled(p, Duration::from_millis(2), 4)
    });
    let s = s.unwrap();
    assert!(s.text.parse::<u64>().is_ok(), "{:?}", s.text);
}
