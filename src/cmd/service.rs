//! `taskboard service`: launchd agents and systemd user units for a board.

use std::path::PathBuf;

use super::{CmdResult, Failure};
use crate::exit::Exit;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write the service files for BOARD and print the command that loads them.
    Install(InstallArgs),
    /// Remove the service files `install` wrote for BOARD.
    Uninstall(UninstallArgs),
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// LaunchAgents for macOS (the default there).
    #[arg(long, conflicts_with = "systemd")]
    pub launchd: bool,
    /// systemd user units for Linux (the default there).
    #[arg(long)]
    pub systemd: bool,
    /// Print the files to stdout instead of writing them.
    #[arg(long)]
    pub print: bool,
    /// Overwrite different existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    #[arg(long, conflicts_with = "systemd")]
    pub launchd: bool,
    #[arg(long)]
    pub systemd: bool,
}

pub fn run(_action: &Action) -> CmdResult {
    Err(Failure::new(Exit::Usage, "service: not built yet"))
}
