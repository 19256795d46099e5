//! Loading `taskboard.toml` from disk: which file applies, reading it without waiting on a FIFO,
//! and naming the file in every error. Parsing and checking are `core::config`'s.

use std::path::{Path, PathBuf};

use crate::core::config::{Config, ConfigError, FILE_NAME, parse};
use crate::shell::fsio;

/// What [`load`] found: the configuration and the file it came from (`None`: built-in defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub path: Option<PathBuf>,
}

/// Find and parse the configuration.
///
/// An `explicit` path must exist. Otherwise `board_dir/taskboard.toml` is used when present and
/// the built-in defaults when absent. Any error carries the file's path.
pub fn load(explicit: Option<&Path>, board_dir: &Path) -> Result<Loaded, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = board_dir.join(FILE_NAME);
            match std::fs::metadata(&p) {
                Ok(_) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Loaded {
                        config: Config::default(),
                        path: None,
                    });
                }
                Err(e) => return Err(ConfigError::at_path(&p, io_message(&e))),
            }
        }
    };
    // A FIFO or a folder in the file's place is refused without waiting on it.
    let bytes =
        fsio::read_regular(&path).map_err(|e| ConfigError::at_path(&path, io_message(&e)))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::at_path(
            &path,
            format!(
                "not valid UTF-8 (first invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let config = parse(&text).map_err(|mut e| {
        e.path = Some(path.clone());
        e
    })?;
    Ok(Loaded {
        config,
        path: Some(path),
    })
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a folder, not a file".to_string(),
        _ if fsio::is_not_regular(e) => e.to_string(),
        _ => format!("cannot read: {e}"),
    }
}
