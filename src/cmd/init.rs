//! `taskboard init`: write a starter board, configuration and placeholder executor into a
//! folder, and make git ignore the runtime's files there.
//!
//! Owns the starter files (embedded from `starter-template/`, with the demo executor from
//! `board-template/` as the placeholder), the lines `.gitignore` gets, and the rule that init
//! never overwrites: if any starter file exists, nothing at all is written. The starter board
//! runs nothing until a person makes a task `ready`: no task on it is `ready` or claimed, so a
//! real executor configured before the examples are read is never paid to run them.
//!
//! An existing `.gitignore` is never replaced: only the lines it lacks are appended, each once.
//! It does not touch any other file in the folder and never reads an existing board.
//!
//! [`write_new_files`] is shared with `demo`, which writes the demo board the same way.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{CmdResult, Failure};
use crate::exit::Exit;

/// A file init writes: name, contents, Unix mode.
pub type TemplateFile = (&'static str, &'static str, u32);

/// The demo executor: the demo's executor, and the starter's harmless placeholder.
pub const DEMO_EXECUTOR: TemplateFile = (
    "demo-executor.sh",
    include_str!("../../board-template/demo-executor.sh"),
    0o755,
);

/// The starter files: a board with nothing `ready`, its configuration, the placeholder executor.
pub const FILES: [TemplateFile; 3] = [
    (
        "task-board.md",
        include_str!("../../starter-template/task-board.md"),
        0o644,
    ),
    (
        "taskboard.toml",
        include_str!("../../starter-template/taskboard.toml"),
        0o644,
    ),
    DEMO_EXECUTOR,
];

/// What `.gitignore` beside the board gets: the runtime's state, its event log (with the log's
/// lock file and rotated files), the dead letters, and the board's copies a write makes and
/// keeps for a moment (`.<board>.taskboard-<pid>-<nonce>.tmp`; a late save kept as `….kept` stays
/// in view). The board, `taskboard.toml` and `handoffs/` are the person's to commit.
pub const GITIGNORE_LINES: [&str; 6] = [
    ".taskboard/",
    "events.jsonl",
    "events.jsonl.lock",
    "events-*.jsonl",
    "deadletter/",
    ".*.taskboard-*.tmp",
];

const GITIGNORE: &str = ".gitignore";

pub fn run(dir: &Path) -> CmdResult {
    let fail = |message: String| Failure::new(Exit::Write, message);
    // Read an existing .gitignore before writing anything: one that cannot be read stops init
    // before the starter files are written, not after.
    let gitignore = dir.join(GITIGNORE);
    let existing = read_gitignore(&gitignore).map_err(|e| {
        fail(format!(
            "cannot read {}: {e}; nothing was written",
            gitignore.display()
        ))
    })?;

    let targets = write_new_files(dir, &FILES)?;

    let missing: Vec<&str> = match &existing {
        Some(text) => missing_lines(text),
        None => GITIGNORE_LINES.to_vec(),
    };
    let ignore_result = match &existing {
        None => write_new(&gitignore, &new_gitignore(), 0o644),
        Some(_) if missing.is_empty() => Ok(()),
        Some(text) => append_lines(&gitignore, text, &missing),
    };
    if let Err(e) = ignore_result {
        remove_all(&targets);
        return Err(fail(format!(
            "cannot write {}: {e}; nothing was written",
            gitignore.display()
        )));
    }

    let mut out = String::new();
    for target in &targets {
        out.push_str(&format!("wrote {}\n", target.display()));
    }
    match &existing {
        None => out.push_str(&format!("wrote {}\n", gitignore.display())),
        Some(_) if missing.is_empty() => {}
        Some(_) => out.push_str(&format!(
            "added {} line{} to {}\n",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            gitignore.display()
        )),
    }
    out.push_str(&format!(
        "\n{} ignores taskboard's own files: {}.\n\
         Worth committing: the board, taskboard.toml, demo-executor.sh while you use it, and\n\
         handoffs/ (what each run handed on).\n",
        gitignore.display(),
        GITIGNORE_LINES.join(", ")
    ));
    let board = &targets[0];
    out.push_str(&format!(
        "\nnext: taskboard lint {b}   (check the board)\n      taskboard run {b}    (nothing runs until you set a task to ready; start with TASK-1)\n",
        b = board.display()
    ));
    // The files are written: a failing stdout must not read as "nothing was written".
    let done = format!("the starter files were written to {}", dir.display());
    super::output::print_after(&done, &out)?;
    Ok(Exit::Ok)
}

/// Writes `files` into `dir` (created if missing), or nothing at all: if any of them exists,
/// or one cannot be written, the folder is left as it was. Returns the paths, in order.
pub fn write_new_files(dir: &Path, files: &[TemplateFile]) -> Result<Vec<PathBuf>, Failure> {
    let fail = |message: String| Failure::new(Exit::Write, message);
    let targets: Vec<PathBuf> = files.iter().map(|(name, _, _)| dir.join(name)).collect();
    // Refuse before creating anything, even the folder. `symlink_metadata` also sees a
    // dangling link, which a write would follow.
    for target in &targets {
        match std::fs::symlink_metadata(target) {
            Ok(_) => {
                return Err(fail(format!(
                    "{} already exists; init never overwrites, so nothing was written",
                    target.display()
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(fail(format!(
                    "cannot check {}: {e}; nothing was written",
                    target.display()
                )));
            }
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create folder {}: {e}", dir.display())))?;

    let mut written: Vec<PathBuf> = Vec::new();
    for ((_, contents, mode), target) in files.iter().zip(&targets) {
        if let Err(e) = write_new(target, contents, *mode) {
            // Leave the folder as it was: remove what this run created.
            remove_all(&written);
            let what = if e.kind() == ErrorKind::AlreadyExists {
                "it already exists (init never overwrites)".to_string()
            } else {
                e.to_string()
            };
            return Err(fail(format!(
                "cannot write {}: {what}; nothing was written",
                target.display()
            )));
        }
        written.push(target.clone());
    }
    Ok(written)
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// An existing `.gitignore`'s bytes, `None` when there is none. A link is followed (git reads
/// through it too), but what it names must be a regular file: appending to anything else
/// could block or land somewhere no one looks.
fn read_gitignore(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        // No folder yet, or a file where it should be: creating the folder says which.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    std::fs::read(path).map(Some)
}

/// The lines of [`GITIGNORE_LINES`] that `text` lacks. A line counts as present when it is
/// the same pattern up to trailing whitespace (which git ignores) or a CR line ending.
fn missing_lines(text: &[u8]) -> Vec<&'static str> {
    let present: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii_end())
        .collect();
    GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|want| !present.contains(&want.as_bytes()))
        .collect()
}

fn new_gitignore() -> String {
    let mut text =
        String::from("# taskboard's own files: runtime state, event log, dead letters\n");
    for line in GITIGNORE_LINES {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Appends `lines` to the `.gitignore` whose current bytes are `text`, after a newline if its
/// last line has none. Every existing byte stays; a failed write is cut back to them.
fn append_lines(path: &Path, text: &[u8], lines: &[&str]) -> std::io::Result<()> {
    let mut add = String::new();
    if !text.is_empty() && !text.ends_with(b"\n") {
        add.push('\n');
    }
    for line in lines {
        add.push_str(line);
        add.push('\n');
    }
    let mut file = OpenOptions::new().append(true).open(path)?;
    let before = file.metadata()?.len();
    let result = file
        .write_all(add.as_bytes())
        .and_then(|()| file.sync_all());
    if result.is_err() {
        let _ = file.set_len(before);
    }
    result
}

/// Creates `path` (failing if anything is there) with `contents` and exactly `mode`.
fn write_new(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    #[cfg(unix)]
    {
        // The umask may have dropped the execute bits; the demo executor needs them.
        use std::os::unix::fs::PermissionsExt;
        if mode & 0o111 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absent_lines_are_missing() {
        let text = b"target/\n.taskboard/  \r\nevents.jsonl.bak\n# deadletter/\n";
        assert_eq!(
            missing_lines(text),
            vec![
                "events.jsonl",
                "events.jsonl.lock",
                "events-*.jsonl",
                "deadletter/",
                ".*.taskboard-*.tmp"
            ]
        );
        assert!(missing_lines(new_gitignore().as_bytes()).is_empty());
    }

    #[test]
    fn the_starter_board_has_nothing_to_run() {
        use crate::core::status::Status;
        let board = crate::core::board::Board::parse(FILES[0].1);
        assert!(board.tasks.len() >= 3);
        for task in &board.tasks {
            let status = task.status.as_ref().expect("a status");
            let parsed = status.parsed.as_ref().expect("a valid status");
            assert!(
                !matches!(parsed, Status::Ready | Status::Running { .. }),
                "{}: {}",
                task.id,
                status.raw
            );
        }
    }
}
