//! `taskboard init`: write a starter board, configuration and demo executor into a folder.
//!
//! Owns the starter files (embedded from `board-template/`) and the rule that init never
//! overwrites: if any of them exists, nothing at all is written. It does not touch any other
//! file in the folder and never reads an existing board.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{CmdResult, Failure};
use crate::exit::Exit;

/// The starter files: name, contents, Unix mode.
pub const FILES: [(&str, &str, u32); 3] = [
    (
        "task-board.md",
        include_str!("../../board-template/task-board.md"),
        0o644,
    ),
    (
        "taskboard.toml",
        include_str!("../../board-template/taskboard.toml"),
        0o644,
    ),
    (
        "demo-executor.sh",
        include_str!("../../board-template/demo-executor.sh"),
        0o755,
    ),
];

pub fn run(dir: &Path) -> CmdResult {
    let fail = |message: String| Failure::new(Exit::Write, message);
    let targets: Vec<PathBuf> = FILES.iter().map(|(name, _, _)| dir.join(name)).collect();
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

    let mut written: Vec<&Path> = Vec::new();
    for ((_, contents, mode), target) in FILES.iter().zip(&targets) {
        if let Err(e) = write_new(target, contents, *mode) {
            // Leave the folder as it was: remove what this run created.
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
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
        written.push(target);
    }

    let mut out = String::new();
    for target in &targets {
        out.push_str(&format!("wrote {}\n", target.display()));
    }
    let board = &targets[0];
    out.push_str(&format!(
        "\nnext: taskboard lint {b}   (check the board)\n      taskboard run {b}    (run the ready tasks; edit the board while it runs)\n",
        b = board.display()
    ));
    // The files are written: a failing stdout must not read as "nothing was written".
    let done = format!("the starter files were written to {}", dir.display());
    super::output::print_after(&done, &out)?;
    Ok(Exit::Ok)
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
