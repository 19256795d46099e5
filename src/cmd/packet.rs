//! `taskboard packet <ID>`: prints exactly the work packet the task's next run would receive on
//! stdin. Reads the board, the runtime's state and the dependencies' handoffs; writes nothing.

use std::path::PathBuf;

use super::lint::read_board_text;
use super::{CmdResult, Failure};
use crate::exit::Exit;
use crate::shell::packet_sources::{self, Source};
use crate::shell::parallel::parse_board;
use crate::shell::store::Store;

#[derive(clap::Args, Debug)]
pub struct PacketArgs {
    /// The task ID.
    pub id: String,
    /// The board file.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Configuration file (default: taskboard.toml beside the board), for `packet_budget`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

pub fn run(args: &PacketArgs) -> CmdResult {
    let board_path = &super::resolve_board(&args.board)?;
    let text = read_board_text(board_path)?;
    let dir = super::board_dir(board_path);
    let config = crate::shell::config_file::load(args.config.as_deref(), dir)
        .map_err(|e| Failure::new(Exit::Config, e))?
        .config;
    let board = parse_board(&text);
    let records = Store::peek_board(board_path);
    let record = records.get(&args.id);
    let attempt = record.map_or(0, |r| r.memory.attempts) + 1;
    let source = Source {
        board_dir: dir,
        board: &board,
        text: &text,
        record,
    };
    let budget = config.runtime.packet_budget as usize;
    let out =
        packet_sources::assemble(&source, &args.id, attempt, None, budget).ok_or_else(|| {
            Failure::new(
                Exit::Findings,
                format!("no task `{}` on {}", args.id, board_path.display()),
            )
        })?;
    super::output::print(&out)?;
    Ok(Exit::Ok)
}
