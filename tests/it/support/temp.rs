//! Temporary folders for tests, on `tempfile`: a unique name under the system temp dir, removed
//! when the test passes, kept (and named on stderr) when it fails so what it left can be read.

use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fresh folder for one test. It derefs to its `Path`, so `dir.join("x")` names a file in it.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
}

impl TempDir {
    /// A new empty folder named `taskboard-<label>-<random>`.
    pub fn new(label: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("taskboard-{label}-"))
            .tempdir()
            .expect("create a temporary folder");
        // As `mkdir` makes it (tempfile's is private to its owner), so a test may hand the
        // folder to another user (`setpriv --reuid=nobody`) or check modes made inside it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("set the folder's mode");
        TempDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("the folder").path()
    }

    /// Writes `contents` to `rel` in the folder (making its parent folders); returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the parent folder");
        }
        std::fs::write(&path, contents).expect("write the file");
        path
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if std::thread::panicking() {
            let kept = dir.keep();
            eprintln!("kept the failed test's folder: {}", kept.display());
            return;
        }
        let path = dir.path().to_path_buf();
        if dir.close().is_err() {
            // A test took permissions away from a folder in it: give them back, then remove.
            allow_removal(&path);
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Makes every folder under `path` (itself included) writable and searchable by its owner.
fn allow_removal(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode() | 0o700;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    for child in children {
        allow_removal(&child);
    }
}
