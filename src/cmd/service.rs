//! `taskboard service`: launchd agents and systemd user units for a board.
//!
//! `install` writes the files `crate::core::service_files` generates into the manager's folder and prints
//! the one command that loads them (`--print` shows the files instead, the command after them
//! as a comment); it never runs that command. It never replaces a different
//! file without `--force`, and checks every file before writing any, so a refusal changes
//! nothing. `uninstall` removes only files that carry the generator's marker.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{CmdResult, Failure};
use crate::core::service_files::{self, Manager, Spec};
use crate::exit::Exit;
use crate::shell::config_file;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write the service files for BOARD and print the command that loads them.
    Install(InstallArgs),
    /// Remove the service files `install` wrote for BOARD.
    Uninstall(UninstallArgs),
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The board file the service serves.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// LaunchAgents for macOS (the default there).
    #[arg(long, conflicts_with = "systemd")]
    pub launchd: bool,
    /// systemd user units for Linux (the default there).
    #[arg(long)]
    pub systemd: bool,
    /// Print the files to stdout instead of writing them, then the command that loads them
    /// (as a comment).
    #[arg(long)]
    pub print: bool,
    /// Overwrite different existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The board file whose service files are removed.
    #[arg(default_value = "task-board.md")]
    pub board: PathBuf,
    /// Remove the LaunchAgents (the default on macOS).
    #[arg(long, conflicts_with = "systemd")]
    pub launchd: bool,
    /// Remove the systemd user units (the default on Linux).
    #[arg(long)]
    pub systemd: bool,
}

pub fn run(action: &Action) -> CmdResult {
    match action {
        Action::Install(args) => install(args),
        Action::Uninstall(args) => uninstall(args),
    }
}

fn manager(launchd: bool, systemd: bool) -> Manager {
    match (launchd, systemd) {
        (true, _) => Manager::Launchd,
        (_, true) => Manager::Systemd,
        _ => Manager::default_for_platform(),
    }
}

/// The board as an absolute path: its folder canonicalized when it exists (so the same board
/// always gets the same slug), the file name kept. Callers resolve a symlinked board first.
pub fn absolute_board(board: &Path) -> Result<PathBuf, Failure> {
    let abs = std::path::absolute(board).map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!("{}: cannot make the path absolute: {e}", board.display()),
        )
    })?;
    let Some(name) = abs.file_name() else {
        return Err(Failure::new(
            Exit::Usage,
            format!("{}: not a file name", board.display()),
        ));
    };
    let dir = abs.parent().unwrap_or(Path::new("/"));
    Ok(match std::fs::canonicalize(dir) {
        Ok(dir) => dir.join(name),
        Err(_) => abs,
    })
}

/// Where the manager's files for the current user go: `$HOME/Library/LaunchAgents`, or
/// `$XDG_CONFIG_HOME/systemd/user` (`$HOME/.config/systemd/user` when unset or not absolute).
pub fn manager_dir(manager: Manager) -> Result<PathBuf, Failure> {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| Path::new(h).is_absolute())
            .map(PathBuf::from)
            .ok_or_else(|| Failure::new(Exit::State, "HOME is not set to an absolute path"))
    };
    Ok(match manager {
        Manager::Launchd => home()?.join("Library").join("LaunchAgents"),
        Manager::Systemd => {
            match std::env::var_os("XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
                Some(x) => PathBuf::from(x).join("systemd").join("user"),
                None => home()?.join(".config").join("systemd").join("user"),
            }
        }
    })
}

/// The files `install` writes for `spec` and `manager`, with their full paths.
pub fn files_for(manager: Manager, spec: &Spec) -> Vec<service_files::File> {
    match manager {
        Manager::Launchd => service_files::launchd_files(spec),
        Manager::Systemd => service_files::systemd_files(spec),
    }
}

/// The file names `install` would write for `board` (only the names depend on the board).
pub fn file_names(manager: Manager, board: &Path) -> Vec<String> {
    let slug = service_files::slug(board);
    match manager {
        Manager::Launchd => vec![
            format!("{}.plist", service_files::launchd_run_label(&slug)),
            format!("{}.plist", service_files::launchd_once_label(&slug)),
        ],
        Manager::Systemd => vec![
            service_files::systemd_run_unit(&slug),
            service_files::systemd_once_service(&slug),
            service_files::systemd_once_timer(&slug),
        ],
    }
}

fn install(args: &InstallArgs) -> CmdResult {
    let manager = manager(args.launchd, args.systemd);
    let spec = install_spec(&args.board)?;
    let dir = manager_dir(manager)?;
    let files: Vec<(PathBuf, String)> = files_for(manager, &spec)
        .into_iter()
        .map(|f| (dir.join(f.name), f.contents))
        .collect();

    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let load = service_files::load_command(manager, &spec.board, &paths);
    if args.print {
        let mut out = String::new();
        for (path, contents) in &files {
            out.push_str(&format!("# {}\n{contents}\n", path.display()));
        }
        // A comment, so the output stays a valid listing of the files; the command after the
        // `#` is what a person copies once the files are in place.
        let _ = writeln!(out, "# Load them with:\n#   {load}");
        super::output::print(&out)?;
        return Ok(Exit::Ok);
    }

    let plan = plan_install(&files, args.force)?;
    create_dir(&dir)?;
    create_dir(&spec.logs_dir())?;
    // The report is printed once every file is written: a failing stdout cannot stop halfway.
    let mut out = String::new();
    let mut replaced = false;
    for (path, contents, what) in &plan {
        if *what != "unchanged"
            && let Err(e) = crate::shell::fsio::atomic_write(path, contents.as_bytes())
        {
            // Say what was written before the failure; the failure itself is the exit.
            let _ = super::output::print(&out);
            return Err(Failure::new(
                Exit::Write,
                format!("cannot write {}: {e}", path.display()),
            ));
        }
        replaced |= *what == "replaced";
        let _ = writeln!(out, "{what} {}", path.display());
    }
    out.push('\n');
    out.push_str(&how_to_load(
        manager,
        &service_files::slug(&spec.board),
        &load,
        replaced,
    ));
    let done = format!("the service files are installed in {}", dir.display());
    super::output::print_after(&done, &out)?;
    Ok(Exit::Ok)
}

/// What the service files say: this binary, this board (absolute), the `PATH` of the shell
/// that installs them and the config's grace period.
fn install_spec(board: &Path) -> Result<Spec, Failure> {
    let board = absolute_board(&super::resolve_board(board)?)?;
    let board_dir = board.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !board_dir.is_dir() {
        return Err(Failure::new(
            Exit::Board,
            format!("{}: the folder does not exist", board_dir.display()),
        ));
    }
    let loaded = config_file::load(None, &board_dir)
        .map_err(|e| Failure::new(Exit::Config, e.to_string()))?;
    let binary = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| {
            Failure::new(
                Exit::State,
                format!("cannot find the taskboard binary: {e}"),
            )
        })?;
    let spec = Spec {
        binary,
        board,
        path_env: std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| service_files::FALLBACK_PATH.to_string()),
        grace: loaded.config.runtime.grace,
    };
    service_files::check(&spec).map_err(|e| Failure::new(Exit::Usage, e))?;
    Ok(spec)
}

/// Every file checked before any is written: each is written, replaced (with `force`) or
/// already as wanted; a refusal leaves everything as it was.
fn plan_install(
    files: &[(PathBuf, String)],
    force: bool,
) -> Result<Vec<(&PathBuf, &String, &'static str)>, Failure> {
    let mut plan = Vec::new();
    let mut refused = Vec::new();
    for (path, contents) in files {
        match crate::shell::fsio::read_regular(path) {
            Ok(old) if old == contents.as_bytes() => plan.push((path, contents, "unchanged")),
            Ok(_) if force => plan.push((path, contents, "replaced")),
            Ok(_) => refused.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                plan.push((path, contents, "wrote"))
            }
            Err(e) => {
                return Err(Failure::new(
                    Exit::Write,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::new(
            Exit::Write,
            format!(
                "{} already exists with different content; nothing was written (use --force to replace)",
                list.join(", ")
            ),
        ));
    }
    Ok(plan)
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(Exit::Write, format!("cannot create {}: {e}", dir.display())))
}

/// The lines after the list of files: how to load them, and what a replaced file needs.
fn how_to_load(manager: Manager, slug: &str, load: &str, replaced: bool) -> String {
    let mut out = String::new();
    match manager {
        Manager::Launchd => {
            if replaced {
                out.push_str("Unload the old jobs first if they are loaded:\n");
                let _ = writeln!(out, "  {}", launchd_unload(slug));
            }
            out.push_str("Load them with:\n");
            let _ = writeln!(out, "  {load}");
        }
        Manager::Systemd => {
            out.push_str("Load them with:\n");
            let _ = writeln!(out, "  {load}");
            if replaced {
                let _ = writeln!(
                    out,
                    "A unit that is already running keeps its old settings until: systemctl --user restart {}",
                    service_files::systemd_run_unit(slug)
                );
            }
            out.push_str(
                "User units stop when you log out unless lingering is on: loginctl enable-linger \"$USER\"\n",
            );
        }
    }
    out
}

fn launchd_unload(slug: &str) -> String {
    format!(
        "launchctl bootout gui/$(id -u)/{} ; launchctl bootout gui/$(id -u)/{}",
        service_files::launchd_run_label(slug),
        service_files::launchd_once_label(slug)
    )
}

fn uninstall(args: &UninstallArgs) -> CmdResult {
    let manager = manager(args.launchd, args.systemd);
    // Named as `install` named it; a board that cannot be served can still be uninstalled.
    let board =
        crate::shell::fsio::resolve_board(&args.board).unwrap_or_else(|_| args.board.clone());
    let board = absolute_board(&board)?;
    let dir = manager_dir(manager)?;
    let slug = service_files::slug(&board);
    let mut ours = Vec::new();
    let mut foreign = Vec::new();
    for name in file_names(manager, &board) {
        let path = dir.join(name);
        match crate::shell::fsio::read_regular(&path) {
            Ok(bytes) if String::from_utf8_lossy(&bytes).contains(service_files::MARKER) => {
                ours.push(path)
            }
            Ok(_) => foreign.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::new(
                    Exit::Write,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    if ours.is_empty() && foreign.is_empty() {
        super::output::print(&format!(
            "nothing installed for {} in {}\n",
            board.display(),
            dir.display()
        ))?;
        return Ok(Exit::Ok);
    }
    // Printed once the files are removed: a failing stdout cannot stop halfway.
    let mut out = String::new();
    if !ours.is_empty() {
        out.push_str("Unload them first if they are loaded:\n");
        let _ = match manager {
            Manager::Launchd => writeln!(out, "  {}", launchd_unload(&slug)),
            Manager::Systemd => writeln!(
                out,
                "  systemctl --user disable --now {} {}",
                service_files::systemd_run_unit(&slug),
                service_files::systemd_once_timer(&slug)
            ),
        };
    }
    for path in &ours {
        if let Err(e) = std::fs::remove_file(path) {
            // Say what was removed before the failure; the failure itself is the exit.
            let _ = super::output::print(&out);
            return Err(Failure::new(
                Exit::Write,
                format!("cannot remove {}: {e}", path.display()),
            ));
        }
        let _ = writeln!(out, "removed {}", path.display());
    }
    if manager == Manager::Systemd && !ours.is_empty() {
        out.push_str("Then: systemctl --user daemon-reload\n");
    }
    let done = format!("the service files were removed from {}", dir.display());
    super::output::print_after(&done, &out)?;
    if !foreign.is_empty() {
        let list: Vec<String> = foreign.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::new(
            Exit::Write,
            format!(
                "left {}: not written by `taskboard service install`",
                list.join(", ")
            ),
        ));
    }
    Ok(Exit::Ok)
}
