//! `taskboard demo [DIR]`: the newcomer's first command. Creates a demo board from the
//! bundled template in `board-template/` (with its demo executor) in DIR unless one is already
//! there, then runs the real runtime on it in the foreground until Ctrl-C.
//!
//! The demo board is not `init`'s starter board: its tasks are `ready` from the start, so that
//! something happens at once; `init` writes a board that runs nothing until a person says so.
//! Where git is installed, the demo folder is made a git repository of its own (one commit of
//! the demo files, taskboard's own files ignored), so that its worktree route's task runs in a
//! worktree and waits for the person's approval; without git that task fails with its reason.

use std::path::Path;

use super::CmdResult;
use super::init::{DEMO_EXECUTOR, TemplateFile};

/// What the demo repository's `.gitignore` says: taskboard's files stay out of git; `out/`,
/// where the demo executor writes, is the work.
const GITIGNORE: &str = ".taskboard/\nevents.jsonl*\nhandoffs/\ndeadletter/\n";

/// The demo's files: its board, its configuration (fast debounce and retries, a reviewed
/// route, a worktree route) and the demo executor.
pub const FILES: [TemplateFile; 3] = [
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
    DEMO_EXECUTOR,
];

pub fn run(dir: &Path) -> CmdResult {
    let board = dir.join("task-board.md");
    if !board.exists() {
        write(dir)?;
    }
    // A greeting on stderr; if stderr fails there is nobody to greet, and the demo runs anyway.
    super::output::say(&format!(
        "taskboard demo: running {b}\n  \
         open it in an editor and watch the statuses change; edit it while it runs\n  \
         in another terminal: taskboard tail -f {b}   (or: cat {e})\n  \
         stop with Ctrl-C; run again to continue where it left off\n\n",
        b = board.display(),
        e = dir.join("events.jsonl").display()
    ));
    super::run::run(&board, None)
}

/// Writes the demo files (all or none, never over an existing one) and says so on stdout.
fn write(dir: &Path) -> Result<(), super::Failure> {
    let targets = super::init::write_new_files(dir, &FILES)?;
    let mut out = String::new();
    for target in &targets {
        out.push_str(&format!("wrote {}\n", target.display()));
    }
    out.push_str(&repository(dir));
    out.push_str(&format!(
        "\nnext: taskboard lint {b}   (check the board)\n      taskboard run {b}    (run the ready tasks; edit the board while it runs)\n",
        b = targets[0].display()
    ));
    let done = format!("the demo files were written to {}", dir.display());
    super::output::print_after(&done, &out)
}

/// Makes the demo folder a git repository of its own for the worktree route's task, and says
/// how that went in a line.
fn repository(dir: &Path) -> String {
    let ignore = dir.join(".gitignore");
    if !ignore.exists() && std::fs::write(&ignore, GITIGNORE).is_err() {
        return "could not write .gitignore: DEMO-11 will run without a repository\n".into();
    }
    match crate::shell::workspace::init_repository(dir, "The taskboard demo") {
        Ok(true) => format!(
            "made {} a git repository (branch main): DEMO-11 runs in a worktree of its own\n",
            dir.display()
        ),
        Ok(false) => String::new(),
        Err(e) => format!("no git repository ({e}): DEMO-11 will fail with its reason\n"),
    }
}
