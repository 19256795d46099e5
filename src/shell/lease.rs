//! A write lease on the board for the instant the runtime swaps its new text in: the kernel's
//! word that nobody opened the old board meanwhile, so no editor's write can be under way in it.
//!
//! `fsio`'s compare-and-swap exchanges the new board with the old one and must then know that
//! no save was landing in the old one. Without a lease it can only wait a moment and look
//! again. A write lease (Linux `F_SETLEASE`) is granted only while no one else has the file
//! open, and any later `open` or `truncate` of it breaks the lease; so a lease still whole after
//! the exchange proves that no writer has the old board open, and the wait can be skipped. Where
//! no lease can be had (the file is open elsewhere, not ours, or the system offers none) or it
//! was broken, `fsio` waits and looks, as before.
//!
//! Owns: taking, checking and releasing one lease, and the handler that keeps the signal a lease
//! break sends (SIGIO, which would end the process) harmless. Must not: read or write the board,
//! or hold a lease longer than one exchange (an editor opening the board waits while it is held).

use std::fs::File;
use std::path::Path;

/// A write lease on one open file; released when dropped.
pub struct WriteLease {
    file: File,
}

impl WriteLease {
    /// A write lease on `path`, or `None` where none can be had now.
    #[cfg(target_os = "linux")]
    pub fn take(path: &Path) -> Option<WriteLease> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        if !break_signal_is_harmless() {
            return None;
        }
        // Non-blocking: a lease someone else holds fails the open at once instead of waiting.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .ok()?;
        // rustix offers no lease calls; this is the one fcntl it does not cover.
        // SAFETY: a valid descriptor owned by `file`, integer arguments only.
        let taken = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        (taken == 0).then_some(WriteLease { file })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn take(_path: &Path) -> Option<WriteLease> {
        None
    }

    /// The leased file, as it is now (its inode and size).
    pub fn metadata(&self) -> std::io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// Whether nobody has opened or truncated the file since the lease was taken. A break in
    /// progress reads as broken.
    #[cfg(target_os = "linux")]
    pub fn unbroken(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor owned by `self.file`.
        let kind = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETLEASE) };
        kind == libc::F_WRLCK
    }

    #[cfg(not(target_os = "linux"))]
    pub fn unbroken(&self) -> bool {
        false
    }
}

impl Drop for WriteLease {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // Closing the file releases the lease too; this says so before the close.
            // SAFETY: a valid descriptor owned by `self.file`.
            unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        }
    }
}

/// Installs, once, a handler for SIGIO, the signal a lease break sends its holder: by default
/// it ends the process. `false` when it cannot be installed (then no lease is taken).
#[cfg(target_os = "linux")]
fn break_signal_is_harmless() -> bool {
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicBool;
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // A flag nobody reads: the handler exists so the signal does nothing. A handler, unlike
        // ignoring the signal, is not inherited by the executors the runtime starts.
        let noticed = std::sync::Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGIO, noticed).is_ok()
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task-board.md");
        std::fs::write(&path, "# Board\n").unwrap();
        (dir, path)
    }

    #[test]
    fn a_file_nobody_has_open_is_leased_and_stays_unbroken() {
        let (_dir, path) = scratch();
        let lease = WriteLease::take(&path).expect("a lease on a file nobody has open");
        assert!(lease.unbroken());
    }

    #[test]
    fn no_lease_while_someone_has_the_file_open() {
        let (_dir, path) = scratch();
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        assert!(WriteLease::take(&path).is_none(), "open for writing");
        drop(writer);
        let reader = File::open(&path).unwrap();
        assert!(WriteLease::take(&path).is_none(), "open for reading");
        drop(reader);
        assert!(WriteLease::take(&path).is_some(), "nobody has it open now");
    }

    /// An editor's `open` is held back by the kernel until the lease is released.
    #[test]
    fn an_open_after_the_lease_breaks_it_and_waits_for_its_release() {
        let (_dir, path) = scratch();
        let lease = WriteLease::take(&path).unwrap();
        let mut editor = std::process::Command::new("sh")
            .arg("-c")
            .arg("echo saved >> \"$0\"")
            .arg(&path)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while lease.unbroken() {
            assert!(Instant::now() < deadline, "the open never broke the lease");
            std::thread::yield_now();
        }
        // The process survived the break's signal, and the editor has not written yet (read
        // through the lease's own descriptor: any new open would wait for the release too).
        assert!(
            editor.try_wait().unwrap().is_none(),
            "the editor's open was not held back"
        );
        let mut buf = [0u8; 64];
        let n = std::os::unix::fs::FileExt::read_at(&lease.file, &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"# Board\n");
        drop(lease);
        assert!(editor.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# Board\nsaved\n");
    }

    #[test]
    fn a_truncate_by_path_breaks_the_lease() {
        let (_dir, path) = scratch();
        let lease = WriteLease::take(&path).unwrap();
        // truncate(2) by name (coreutils' `truncate` opens the file instead).
        let mut truncater = std::process::Command::new("python3")
            .args(["-c", "import os, sys; os.truncate(sys.argv[1], 0)"])
            .arg(&path)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while lease.unbroken() {
            assert!(
                Instant::now() < deadline,
                "the truncate never broke the lease"
            );
            std::thread::yield_now();
        }
        drop(lease);
        assert!(truncater.wait().unwrap().success());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
