//! File leases on the board for the instant the runtime swaps its new text in: the kernel's word
//! that no editor's write can be under way in the board it replaced.
//!
//! `fsio`'s compare-and-swap exchanges the new board with the old one and must then know that
//! no save was landing in the old one. Two Linux leases (`F_SETLEASE`) answer that:
//! - A write lease is granted only while no one else has the file open, and any later `open` or
//!   `truncate` of it breaks it: one taken before the exchange and still whole after it proves
//!   that nobody opened the old board meanwhile, so nothing is left to wait for.
//! - A read lease is granted only while nobody has the file open for writing, and any later open
//!   for writing or `truncate` breaks it: the board swapped out is checked under one, so the
//!   check comes after every writer that had it open closed it, however long its write took.
//!
//! Where no lease can be had (the file is not ours, the filesystem or the system offers none)
//! `fsio` waits a moment and looks, as without them.
//!
//! Owns: taking, checking and releasing one lease, and the handler that keeps the signal a lease
//! break sends (SIGIO, which would end the process) harmless. Must not: read or write the board,
//! or hold a lease longer than one check (an editor opening the file waits while it is held).

use std::fs::File;
use std::io;
use std::path::Path;

/// A write lease on one open file; released when dropped.
pub struct WriteLease(Held);

impl WriteLease {
    /// A write lease on `path`, or `None` where none can be had now (someone has it open, or
    /// no lease can be had at all).
    pub fn take(path: &Path) -> Option<WriteLease> {
        Held::take(path, Kind::Write).ok().map(WriteLease)
    }

    /// The leased file, as it is now (its inode and size).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.0.file.metadata()
    }

    /// Whether nobody has opened or truncated the file since the lease was taken. A break in
    /// progress reads as broken.
    pub fn unbroken(&self) -> bool {
        self.0.holds(Kind::Write)
    }
}

/// A read lease on one open file: nobody had it open for writing when it was taken; released
/// when dropped.
pub struct ReadLease(Held);

/// Why no lease was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// Someone has the file open in a way the lease excludes (for a read lease: for writing):
    /// one can be had once they close it.
    InUse,
    /// None can be had here: not on this system or filesystem, not on a file that is not ours,
    /// or the file could not be opened.
    Unavailable,
}

impl ReadLease {
    /// A read lease on `path`.
    pub fn take(path: &Path) -> Result<ReadLease, NoLease> {
        Held::take(path, Kind::Read).map(ReadLease)
    }

    /// The leased file, as it is now (its inode, size and modification time).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.0.file.metadata()
    }

    /// Whether nobody has opened the file for writing, or truncated it, since the lease was
    /// taken. A break in progress reads as broken.
    pub fn unbroken(&self) -> bool {
        self.0.holds(Kind::Read)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// One lease held through its own read-only descriptor of the file.
struct Held {
    file: File,
}

impl Held {
    #[cfg(target_os = "linux")]
    fn take(path: &Path, kind: Kind) -> Result<Held, NoLease> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        if !break_signal_is_harmless() {
            return Err(NoLease::Unavailable);
        }
        // Read-only, as a read lease requires. Non-blocking: a lease someone else holds fails
        // the open at once instead of waiting.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|_| NoLease::Unavailable)?;
        // rustix offers no lease calls; this is the one fcntl it does not cover.
        // SAFETY: a valid descriptor owned by `file`, integer arguments only.
        let taken = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, kind.raw()) };
        if taken == 0 {
            return Ok(Held { file });
        }
        // EAGAIN: the file is open in a way the lease excludes (for a read lease, for writing).
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Err(NoLease::InUse),
            _ => Err(NoLease::Unavailable),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn take(_path: &Path, _kind: Kind) -> Result<Held, NoLease> {
        Err(NoLease::Unavailable)
    }

    #[cfg(target_os = "linux")]
    fn holds(&self, kind: Kind) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor owned by `self.file`.
        let held = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETLEASE) };
        held == kind.raw()
    }

    #[cfg(not(target_os = "linux"))]
    fn holds(&self, _kind: Kind) -> bool {
        false
    }
}

#[cfg(target_os = "linux")]
impl Kind {
    fn raw(self) -> libc::c_int {
        match self {
            Kind::Read => libc::F_RDLCK,
            Kind::Write => libc::F_WRLCK,
        }
    }
}

impl Drop for Held {
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

    /// `echo saved >> path` in a shell of its own: an editor's open for writing and its write.
    fn append_elsewhere(path: &std::path::Path) -> std::process::Child {
        std::process::Command::new("sh")
            .arg("-c")
            .arg("echo saved >> \"$0\"")
            .arg(path)
            .spawn()
            .unwrap()
    }

    /// Waits until `unbroken` says the lease broke.
    fn until_broken(unbroken: impl Fn() -> bool, by: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while unbroken() {
            assert!(Instant::now() < deadline, "the {by} never broke the lease");
            std::thread::yield_now();
        }
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
        let mut editor = append_elsewhere(&path);
        until_broken(|| lease.unbroken(), "open");
        // The process survived the break's signal, and the editor has not written yet (read
        // through the lease's own descriptor: any new open would wait for the release too).
        assert!(
            editor.try_wait().unwrap().is_none(),
            "the editor's open was not held back"
        );
        let mut buf = [0u8; 64];
        let n = std::os::unix::fs::FileExt::read_at(&lease.0.file, &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"# Board\n");
        drop(lease);
        assert!(editor.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# Board\nsaved\n");
    }

    #[test]
    fn a_read_lease_is_had_only_while_nobody_has_the_file_open_for_writing() {
        let (_dir, path) = scratch();
        let reader = File::open(&path).unwrap();
        let lease = ReadLease::take(&path).expect("readers do not stand in its way");
        assert!(lease.unbroken());
        drop(lease);
        drop(reader);
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        assert_eq!(ReadLease::take(&path).err(), Some(NoLease::InUse));
        drop(writer);
        assert!(ReadLease::take(&path).is_ok(), "the writer closed it");
    }

    /// An open for writing after the lease breaks it; one for reading does not.
    #[test]
    fn an_open_for_writing_breaks_a_read_lease() {
        let (_dir, path) = scratch();
        let lease = ReadLease::take(&path).unwrap();
        drop(File::open(&path).unwrap());
        assert!(lease.unbroken(), "a reader broke it");
        let mut writer = append_elsewhere(&path);
        until_broken(|| lease.unbroken(), "open for writing");
        drop(lease);
        assert!(writer.wait().unwrap().success());
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
        until_broken(|| lease.unbroken(), "truncate");
        drop(lease);
        assert!(truncater.wait().unwrap().success());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
