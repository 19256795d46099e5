//! `taskboard demo [DIR]`: the newcomer's first command. Creates a demo board from the
//! bundled template (with its demo executor) in DIR unless one is already there, then runs the
//! real runtime on it in the foreground until Ctrl-C.

use std::io::Write as _;
use std::path::Path;

use super::CmdResult;

pub fn run(dir: &Path) -> CmdResult {
    let board = dir.join("task-board.md");
    if !board.exists() {
        super::init::run(dir)?;
    }
    // A greeting on stderr; if stderr fails there is nobody to greet, and the demo runs anyway.
    let _ = writeln!(
        std::io::stderr().lock(),
        "taskboard demo: running {b}\n  \
         open it in an editor and watch the statuses change; edit it while it runs\n  \
         in another terminal: taskboard tail -f {b}   (or: cat {e})\n  \
         stop with Ctrl-C; run again to continue where it left off\n",
        b = board.display(),
        e = dir.join("events.jsonl").display()
    );
    super::run::run(&board, None)
}
