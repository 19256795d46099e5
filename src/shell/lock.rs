//! Locks: one `mkdir` lock per task so no task runs twice, the run lock so only one
//! `taskboard run` watches a board, and the write lock that orders taskboard's own writes of the
//! board ([`WriteLock`]).
//!
//! Owns: the `.taskboard/locks` folder (one sub-folder per claimed task holding `owner.json`, plus
//! the `.gate` file that orders breakers against acquirers), the owner record format (with the
//! remote run it supervises, if any), the liveness test of an owner (pid, process start time,
//! boot id, host), taking over a dead owner's lock in place, and the run lock (an `flock` on
//! the board's folder itself, with the holder's pid written to `.taskboard/run.lock` for
//! information only). Whether a pid still lives, and what `/proc` says of a process, it asks
//! [`crate::shell::process`], which holds the one rule for that (and the one for process groups).
//!
//! A runtime parses its own owner records again only once their file changed
//! ([`Locks::of_instance`]): the record it wrote is kept with the stamp of the file it wrote, for
//! the listing every pass makes, the update with the executor's process group, and the release.
//! Other owners' records are always read afresh.
//!
//! The executor's process group and run id, known only once it is spawned, are added to a held
//! lock as the extended attribute `user.taskboard.executor` of its folder
//! (`<instance> <pgid> <run id>`, [`executor_attribute`]): one atomic call, where rewriting the
//! record made and renamed a file for every run. A reader takes them only when the record has
//! none and the attribute names the record's instance, so an attribute left by an earlier owner
//! of a lock taken over counts for nothing. Where the file system keeps no user attributes the
//! record is rewritten with them instead.
//!
//! Must not touch: the board file, the event log, or executor processes. It never decides on its
//! own that a lock is stale: the planner judges (see [`is_stale`]) and asks to break a lock it saw.
//!
//! Protocol. `try_acquire` creates the lock folder and writes `owner.json` while holding the gate
//! *shared*; `break_stale` holds the gate *exclusive* while it re-checks that the lock is still
//! the one judged stale and renames it away. So a breaker never sees (or removes) a lock whose
//! owner is between `mkdir` and writing its record, and two breakers of one stale lock cannot
//! remove a lock freshly acquired in between. The gate is an `flock`, which the kernel drops when
//! its holder dies, so a crash never leaves it held. A lock folder without a readable
//! `owner.json` can still appear (crash between `mkdir` and the write, a power cut): it is
//! reported as [`LockState::Unreadable`] with its age, for the caller's grace period.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::remote::RemoteRun;
use crate::shell::{fsio, process};

/// Who holds a lock: enough to tell later whether that process is still the one running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// `gethostname`.
    pub host: String,
    /// Linux: `/proc/sys/kernel/random/boot_id`.
    pub boot_id: Option<String>,
    /// Linux: field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: Option<u64>,
    /// The runtime instance id (random per process start).
    pub instance: String,
    pub acquired_at: DateTime<Utc>,
    /// The executor's process group, set once it is spawned, so a restart can find orphans
    /// (kept in the lock folder's attribute, see the module doc, or in the record itself).
    pub executor_pgid: Option<i32>,
    /// The run id its processes carry in their environment (`process::RUN_ID_VAR`), set with
    /// `executor_pgid`, so a restart also finds those that left the group.
    #[serde(default)]
    pub run_id: Option<String>,
    /// A remote run's whereabouts, written before it is launched and completed as it starts,
    /// so a runtime started after this one died follows it instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Box<RemoteRun>>,
}

impl Owner {
    /// The owner record for this process.
    pub fn current(instance: &str, now: DateTime<Utc>) -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            host: hostname(),
            boot_id: boot_id(),
            start_time: own_start_time(),
            instance: instance.to_owned(),
            acquired_at: now,
            executor_pgid: None,
            run_id: None,
            remote: None,
        }
    }

    /// Names the executor this owner runs: its process group and its processes' run id.
    fn set_executor(&mut self, pgid: i32, run_id: Option<&str>) {
        self.executor_pgid = Some(pgid);
        self.run_id = run_id.map(str::to_owned);
    }
}

/// Whether the process recorded in an owner is still the one running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Certainly gone; the reason is for logs (`"pid 123 not running"`, `"host rebooted"`, ...).
    Dead(String),
    /// Recorded on another host: cannot be checked from here.
    OtherHost,
}

/// Judge an owner recorded on this host.
///
/// Another host => `OtherHost`. A different boot id => dead. `kill(pid, 0)` failing with `ESRCH`
/// => dead. Otherwise (success or `EPERM`) the pid exists; it is dead if `/proc` shows a zombie or
/// a different start time (the pid was reused), else alive. Anything uncertain counts as alive.
pub fn liveness(owner: &Owner) -> Liveness {
    if owner.host != hostname() {
        return Liveness::OtherHost;
    }
    if let (Some(recorded), Some(now)) = (owner.boot_id.as_deref(), boot_id())
        && recorded != now
    {
        return Liveness::Dead("host rebooted".into());
    }
    if process::pid(owner.pid).is_none() {
        // 0 would address our own process group.
        return Liveness::Dead(format!("pid {} is not a process id", owner.pid));
    }
    // EPERM: exists, owned by someone else; anything else: cannot tell, assume alive.
    if !process::pid_exists(owner.pid) {
        return Liveness::Dead(format!("pid {} not running", owner.pid));
    }
    if let Some(stat) = process::stat(owner.pid) {
        if stat.exited() {
            return Liveness::Dead(format!("pid {} exited (zombie)", owner.pid));
        }
        if let Some(recorded) = owner.start_time
            && recorded != stat.start
        {
            return Liveness::Dead("pid reused (start time differs)".into());
        }
    }
    Liveness::Alive
}

/// A fresh runtime instance id: hex of the pid and a mix of the clock and a counter.
pub fn instance_id() -> String {
    format!("{:x}-{:016x}", std::process::id(), nonce())
}

/// Decide whether a lock may be broken: `Held` by a dead owner, or `Unreadable` for longer than
/// `grace`. Returns the reason. Locks held on another host are never judged stale here.
pub fn is_stale(state: &LockState, grace: Duration) -> Option<String> {
    match state {
        LockState::Held(owner) => match liveness(owner) {
            Liveness::Dead(why) => Some(why),
            Liveness::Alive | Liveness::OtherHost => None,
        },
        LockState::Unreadable { age } if *age > grace => Some("owner record missing".into()),
        LockState::Unreadable { .. } => None,
    }
}

/// The process start time (field 22 of `/proc/<pid>/stat`), where the platform has it.
pub fn process_start_time(pid: u32) -> Option<u64> {
    process::start_time(pid)
}

/// This process's start time, read once: every lock it takes records it.
fn own_start_time() -> Option<u64> {
    static START: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *START.get_or_init(|| process_start_time(std::process::id()))
}

/// What a lock folder holds.
#[derive(Debug, Clone, PartialEq)]
pub enum LockState {
    Held(Owner),
    /// The folder exists but `owner.json` is missing or corrupt (crash between mkdir and write);
    /// `age` is the time since the folder last changed.
    Unreadable {
        age: Duration,
    },
}

/// A lock this process just created.
#[derive(Debug, Clone, PartialEq)]
pub struct LockGuardInfo {
    pub id: String,
    /// The lock folder.
    pub path: PathBuf,
    pub owner: Owner,
}

/// The per-task locks under one root (`<board dir>/.taskboard/locks`).
#[derive(Debug)]
pub struct Locks {
    root: PathBuf,
    /// This process's own owner records as last read or written, by lock: every pass lists
    /// every lock, and a record of ours changes only when this process changes it (a live
    /// owner's lock is never broken or taken over), so it is parsed again only once its file is
    /// another. Records of other owners are always read afresh. The listing, an update of a
    /// record and a release use these; breaking and taking over read afresh.
    records: Mutex<HashMap<String, ReadRecord>>,
    /// The instance whose records are kept in `records`.
    instance: Option<String>,
    /// Whether the executor is added as the lock folder's attribute: cleared once the file
    /// system refuses user attributes, after which the record is rewritten instead.
    attributes: AtomicBool,
}

/// An owner record as read, with the identity of the file it was read from.
#[derive(Debug)]
struct ReadRecord {
    file: RecordFile,
    owner: Owner,
}

/// Enough to tell an owner record's file from any other: every update renames a new file in
/// place, and the one record written in place is written into an empty new file, so the same
/// folder and the same file stamp (inode, length, modification time) mean the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordFile {
    dir_ino: u64,
    file: fsio::FileStamp,
}

impl RecordFile {
    fn of(dir: &fs::Metadata, file: &fs::Metadata) -> RecordFile {
        use std::os::unix::fs::MetadataExt;
        RecordFile {
            dir_ino: dir.ino(),
            file: fsio::FileStamp::of(file),
        }
    }
}

const OWNER_FILE: &str = "owner.json";
const GATE_FILE: &str = ".gate";

impl Locks {
    /// Does not touch the disk.
    pub fn new(root: PathBuf) -> Locks {
        Locks {
            root,
            records: Mutex::new(HashMap::new()),
            instance: None,
            attributes: AtomicBool::new(true),
        }
    }

    /// Locks whose listing keeps `instance`'s own owner records between reads.
    pub fn of_instance(root: PathBuf, instance: &str) -> Locks {
        Locks {
            instance: Some(instance.to_string()),
            ..Locks::new(root)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Claim `id`: `Ok(Some)` when this call created the lock (its `owner.json` is written
    /// before returning), `Ok(None)` when the lock already exists. Ids must be a single path
    /// component not starting with `.`.
    pub fn try_acquire(&self, id: &str, owner: &Owner) -> io::Result<Option<LockGuardInfo>> {
        check_id(id)?;
        let _gate = self.gate(GateMode::Shared)?;
        let dir = self.root.join(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        }
        match write_owner(&dir, owner, OwnerFile::New) {
            Ok(written) => self.remember(id, &dir, &written, owner),
            Err(e) => {
                // Still under the shared gate: no breaker can have moved the folder, and no one
                // else can have created it, so it is ours to remove.
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
        Ok(Some(LockGuardInfo {
            id: id.to_owned(),
            path: dir,
            owner: owner.clone(),
        }))
    }

    /// The state of lock `id`, `None` when it is free (or the id is not a valid lock name).
    pub fn read(&self, id: &str) -> Option<LockState> {
        check_id(id).ok()?;
        read_state(&self.root.join(id))
    }

    /// The state of lock `id` (a valid name) for the listing, an update and a release: a record
    /// of this instance's is parsed only if its file changed since it was last read or written.
    fn read_cached(&self, id: &str) -> Option<LockState> {
        let Some(instance) = &self.instance else {
            return read_state(&self.root.join(id));
        };
        let dir = self.root.join(id);
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        // Stamped before the read: a record replaced in between is read again next time.
        let file = (|| {
            let folder = fs::symlink_metadata(&dir)
                .ok()
                .filter(fs::Metadata::is_dir)?;
            let record = fs::metadata(dir.join(OWNER_FILE)).ok()?;
            Some(RecordFile::of(&folder, &record))
        })();
        if let (Some(file), Some(known)) = (file, records.get(id))
            && known.file == file
        {
            return Some(LockState::Held(known.owner.clone()));
        }
        let state = read_state(&dir);
        match (&state, file) {
            (Some(LockState::Held(owner)), Some(file)) if &owner.instance == instance => {
                let owner = owner.clone();
                records.insert(id.to_string(), ReadRecord { file, owner });
            }
            _ => {
                records.remove(id);
            }
        }
        state
    }

    /// Keeps `owner`, just written to `dir` as the file `written` describes, as read: the next
    /// look at that lock by this process parses nothing while the file is still that one.
    fn remember(&self, id: &str, dir: &Path, written: &fs::Metadata, owner: &Owner) {
        if self.instance.as_deref() != Some(owner.instance.as_str()) {
            return;
        }
        let Ok(folder) = fs::symlink_metadata(dir) else {
            return;
        };
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let file = RecordFile::of(&folder, written);
        records.insert(
            id.to_string(),
            ReadRecord {
                file,
                owner: owner.clone(),
            },
        );
    }

    /// Every lock, sorted by id. A missing root means no locks.
    pub fn list(&self) -> io::Result<Vec<(String, LockState)>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || check_id(&name).is_err() {
                continue;
            }
            if let Some(state) = self.read_cached(&name) {
                out.push((name, state));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        // Records of locks gone since are not kept.
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.retain(|id, _| out.binary_search_by(|(n, _)| n.as_str().cmp(id)).is_ok());
        Ok(out)
    }

    /// Record the executor's process group in the owner record, only if `instance` holds `id`
    /// (`PermissionDenied` if someone else does, `NotFound` if no one does).
    pub fn set_executor_pgid(&self, id: &str, instance: &str, pgid: i32) -> io::Result<()> {
        self.set_executor(id, instance, pgid, None)
    }

    /// Records (or updates) the remote run the lock's owner supervises.
    pub fn set_remote(&self, id: &str, instance: &str, remote: &RemoteRun) -> io::Result<()> {
        self.update_owner(id, instance, |owner| {
            owner.remote = Some(Box::new(remote.clone()))
        })
    }

    /// Like [`Locks::set_executor_pgid`], recording the run id of the executor's processes too:
    /// as the lock folder's attribute, or by rewriting the record where there are none.
    pub fn set_executor(
        &self,
        id: &str,
        instance: &str,
        pgid: i32,
        run_id: Option<&str>,
    ) -> io::Result<()> {
        if self.attributes.load(Ordering::Relaxed) {
            check_id(id)?;
            let _gate = self.gate(GateMode::Shared)?;
            self.owned(id, instance)?;
            let value = executor_attribute(instance, pgid, run_id);
            match attribute::set(&self.root.join(id), value.as_bytes()) {
                Ok(()) => {
                    let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(known) = records.get_mut(id) {
                        known.owner.set_executor(pgid, run_id);
                    }
                    return Ok(());
                }
                Err(e) if attribute::unsupported(&e) => {
                    self.attributes.store(false, Ordering::Relaxed);
                }
                // Anything else (a full disk, a quota): the rewrite may still go through.
                Err(_) => {}
            }
        }
        self.update_owner(id, instance, |owner| owner.set_executor(pgid, run_id))
    }

    /// `Ok` when `instance` holds `id` (`PermissionDenied` if someone else does, `NotFound` if
    /// no one does). Called under the gate.
    fn owned(&self, id: &str, instance: &str) -> io::Result<Owner> {
        match self.read_cached(id) {
            Some(LockState::Held(owner)) if owner.instance == instance => Ok(owner),
            Some(LockState::Held(owner)) => Err(io::Error::new(
                ErrorKind::PermissionDenied,
                format!("lock {id} is held by instance {}", owner.instance),
            )),
            Some(LockState::Unreadable { .. }) => Err(io::Error::new(
                ErrorKind::PermissionDenied,
                format!("lock {id} has no readable owner"),
            )),
            None => Err(io::Error::new(
                ErrorKind::NotFound,
                format!("lock {id} is not held"),
            )),
        }
    }

    /// Rewrites the owner record of a lock `instance` holds with `change` applied.
    fn update_owner(
        &self,
        id: &str,
        instance: &str,
        change: impl FnOnce(&mut Owner),
    ) -> io::Result<()> {
        check_id(id)?;
        let _gate = self.gate(GateMode::Shared)?;
        let dir = self.root.join(id);
        let mut owner = self.owned(id, instance)?;
        change(&mut owner);
        let written = write_owner(&dir, &owner, OwnerFile::Replace)?;
        self.remember(id, &dir, &written, &owner);
        Ok(())
    }

    /// Release `id` if `instance` holds it. `Ok(false)` when it is free or held by another.
    pub fn release(&self, id: &str, instance: &str) -> io::Result<bool> {
        check_id(id)?;
        let away = {
            let _gate = self.gate(GateMode::Shared)?;
            let dir = self.root.join(id);
            match self.read_cached(id) {
                Some(LockState::Held(owner)) if owner.instance == instance => {}
                _ => return Ok(false),
            }
            // Rename first so the id is freed in one step; a crash mid-removal leaves only a
            // dot-folder that no one reads.
            let away = self.root.join(format!(".released-{id}-{:016x}", nonce()));
            fs::rename(&dir, &away)?;
            // Whoever takes the name next is another lock, whatever its inodes.
            let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            records.remove(id);
            away
        };
        remove_renamed(&away);
        Ok(true)
    }

    /// Break lock `id`, which the caller saw as `seen` and judged stale. Breaks it only if it is
    /// still that same lock (same owner record, or still unreadable): it is renamed to
    /// `.broken-<id>-<nonce>`, re-read there, and removed. `Ok(true)` when this call broke it;
    /// `Ok(false)` when it was already gone or is not the lock that was judged.
    pub fn break_stale(&self, id: &str, seen: &LockState) -> io::Result<bool> {
        check_id(id)?;
        let away = {
            let _gate = self.gate(GateMode::Exclusive)?;
            let dir = self.root.join(id);
            match read_state(&dir) {
                Some(current) if same_lock(&current, seen) => {}
                _ => return Ok(false),
            }
            let away = self.root.join(format!(".broken-{id}-{:016x}", nonce()));
            match fs::rename(&dir, &away) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
            // Under the gate nothing should have changed, but a writer outside the protocol
            // could have: if what we moved is not what was judged, put it back.
            let moved = read_state(&away);
            if !moved.as_ref().is_some_and(|m| same_lock(m, seen)) {
                if fs::symlink_metadata(&dir).is_err() {
                    fs::rename(&away, &dir)?;
                } else {
                    tracing::warn!(
                        lock = id,
                        parked = %away.display(),
                        "lock changed while being broken and its name was taken; left parked"
                    );
                }
                return Ok(false);
            }
            away
        };
        remove_renamed(&away);
        Ok(true)
    }

    /// Takes over a dead owner's lock in place: its owner record becomes `owner` if the lock is
    /// still as `seen`. Unlike breaking and claiming again, the lock is never free between the
    /// two, so a crash in between cannot let another run start (a remote run outlives its
    /// runtime and must be followed, not repeated). Returns whether it was taken over.
    pub fn take_over(&self, id: &str, seen: &LockState, owner: &Owner) -> io::Result<bool> {
        check_id(id)?;
        let _gate = self.gate(GateMode::Exclusive)?;
        let dir = self.root.join(id);
        match read_state(&dir) {
            Some(current) if same_lock(&current, seen) => {}
            _ => return Ok(false),
        }
        let written = write_owner(&dir, owner, OwnerFile::Replace)?;
        self.remember(id, &dir, &written, owner);
        Ok(true)
    }

    /// Remove what a crash during `release` or `break_stale` can leave behind (renamed-away
    /// `.released-*` and `.broken-*` folders, which no one reads). Returns how many were removed.
    pub fn sweep_debris(&self) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let debris: Vec<PathBuf> = {
            // Exclusive: a breaker may still be deciding whether to move its `.broken-*` back.
            let _gate = self.gate(GateMode::Exclusive)?;
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(".broken-") || n.starts_with(".released-"))
                })
                .map(|e| e.path())
                .collect()
        };
        for path in &debris {
            remove_debris(path);
        }
        Ok(debris.len())
    }

    /// Open the gate file and lock it (`exclusive` for breakers, shared otherwise).
    fn gate(&self, how: GateMode) -> io::Result<File> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.root.join(GATE_FILE))
        };
        let file = fsio::open_making_folder(open, || fs::create_dir_all(&self.root))?;
        match how {
            GateMode::Exclusive => file.lock()?,
            GateMode::Shared => file.lock_shared()?,
        }
        Ok(file)
    }
}

/// Two observations of a lock name the same lock: the same owner record, or both unreadable.
fn same_lock(a: &LockState, b: &LockState) -> bool {
    match (a, b) {
        (LockState::Held(x), LockState::Held(y)) => x == y,
        (LockState::Unreadable { .. }, LockState::Unreadable { .. }) => true,
        _ => false,
    }
}

fn check_id(id: &str) -> io::Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && !id.contains(['/', '\\', '\0'])
        && id.len() <= 200;
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{id:?} is not a valid lock name"),
        ))
    }
}

fn read_state(dir: &Path) -> Option<LockState> {
    let meta = fs::symlink_metadata(dir).ok()?;
    if meta.is_dir()
        && let Ok(bytes) = fsio::read_small(&dir.join(OWNER_FILE))
        && let Ok(mut owner) = serde_json::from_slice::<Owner>(&bytes)
    {
        if owner.executor_pgid.is_none()
            && let Some(value) = attribute::get(dir)
            && let Some((instance, pgid, run_id)) = parse_executor_attribute(&value)
            && instance == owner.instance
        {
            owner.set_executor(pgid, run_id);
        }
        return Some(LockState::Held(owner));
    }
    // Missing or corrupt record. If the folder vanished meanwhile (released, broken), it is free.
    let meta = fs::symlink_metadata(dir).ok()?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    Some(LockState::Unreadable { age })
}

/// Writes `owner.json` inside `dir`. Into a folder just created (`fresh`) it is written in
/// place: nobody can have read an older record, and a reader that catches it half-written sees
/// an unreadable record, which is never stale within its grace. An update replaces the record
/// atomically (temp file, rename), so a reader never sees a long-held lock without its owner.
/// No fsync: after a crash or a power loss the owner is dead (or the boot id changed), so the
/// lock is stale whatever the record holds.
/// How the gate file is held: shared by those who take or read one lock, exclusive by those
/// who must see no lock change under them.
#[derive(Debug, Clone, Copy)]
enum GateMode {
    Shared,
    Exclusive,
}

/// Whether an owner record is the first in a lock folder just made (created, never replacing)
/// or replaces the one there (written beside it, then renamed over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerFile {
    New,
    Replace,
}

/// Returns the written file's metadata, taken before it is closed (and renamed into place):
/// the stamp of exactly the record written.
fn write_owner(dir: &Path, owner: &Owner, how: OwnerFile) -> io::Result<fs::Metadata> {
    let mut bytes = serde_json::to_vec_pretty(owner).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let write = |file: io::Result<File>| {
        let mut file = file?;
        file.write_all(&bytes)?;
        file.metadata()
    };
    if how == OwnerFile::New {
        return write(File::create_new(dir.join(OWNER_FILE)));
    }
    let tmp = dir.join(format!(".{OWNER_FILE}.{:016x}.tmp", nonce()));
    let result = write(File::create(&tmp)).and_then(|written| {
        fs::rename(&tmp, dir.join(OWNER_FILE))?;
        Ok(written)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The lock folder's attribute that names its executor: `<instance> <pgid> <run id>`, `-` for
/// no run id. Instance and run ids are made here of letters, digits, `-` and `_`.
pub fn executor_attribute(instance: &str, pgid: i32, run_id: Option<&str>) -> String {
    format!("{instance} {pgid} {}", run_id.unwrap_or("-"))
}

/// The one parser of [`executor_attribute`]'s text: instance, process group, run id. Anything
/// else (cut short, another program's) is `None`, and the lock is read without it.
pub fn parse_executor_attribute(bytes: &[u8]) -> Option<(&str, i32, Option<&str>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.split(' ');
    let (instance, pgid, run_id) = (parts.next()?, parts.next()?, parts.next()?);
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.next().is_some() || !plain(instance) || !plain(run_id) {
        return None;
    }
    let pgid: i32 = pgid.parse().ok().filter(|g| *g > 0)?;
    Some((instance, pgid, (run_id != "-").then_some(run_id)))
}

/// The executor attribute on a lock folder.
mod attribute {
    use std::io;
    use std::path::Path;

    const NAME: &str = "user.taskboard.executor";

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn set(dir: &Path, value: &[u8]) -> io::Result<()> {
        rustix::fs::setxattr(dir, NAME, value, rustix::fs::XattrFlags::empty()).map_err(Into::into)
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn set(_dir: &Path, _value: &[u8]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// The attribute's bytes; `None` when there is none (or it cannot be read).
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn get(dir: &Path) -> Option<Vec<u8>> {
        let mut buf = [0u8; 256];
        let len = rustix::fs::getxattr(dir, NAME, &mut buf[..]).ok()?;
        Some(buf[..len].to_vec())
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn get(_dir: &Path) -> Option<Vec<u8>> {
        None
    }

    /// Whether `e` says the file system keeps no user attributes (rather than a passing
    /// trouble such as a full disk).
    pub fn unsupported(e: &io::Error) -> bool {
        use rustix::io::Errno;
        e.kind() == io::ErrorKind::Unsupported
            || [Errno::NOTSUP, Errno::OPNOTSUPP, Errno::NOSYS, Errno::PERM]
                .iter()
                .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
    }
}

/// Removes a lock folder this process just renamed away: its record, then the folder. Anything
/// else in it (the temporary file of a record update cut short) is found by a walk of the
/// folder, which costs several calls more than the usual record alone.
fn remove_renamed(path: &Path) {
    let _ = fs::remove_file(path.join(OWNER_FILE));
    if fs::remove_dir(path).is_err() {
        remove_debris(path);
    }
}

fn remove_debris(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an old lock folder");
    }
}

/// Random-ish 64 bits: clock, pid and a per-process counter through a mixer.
pub(crate) fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finalizer
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hostname() -> String {
    // What gethostname(2) returns: the node name uname(2) reports.
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// This boot's id, read once per process: it cannot change while the process lives.
fn boot_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_owned())
    })
    .clone()
}

/// The run lock: an `flock` on the board's folder itself, so one `taskboard run` per board.
///
/// The folder, not a file in it: a lock file can be deleted (`rm -rf .taskboard`, `git clean
/// -fdX`) while its holder runs, and the next `run` would then lock a new file and serve the
/// board a second time. The folder cannot vanish from under its own contents' cleaning, and if
/// it is renamed the lock moves with it. The kernel drops the lock when the process dies, so it
/// never goes stale. The holder's pid is also written to an information file
/// (`.taskboard/run.lock`) for people and `doctor`; the lock never depends on that file.
#[derive(Debug)]
pub struct RunLock {
    folder: File,
}

impl RunLock {
    /// Take the run lock of the board whose folder is `folder`. `Ok(Ok(lock))` when acquired
    /// (our pid is then written to `info`); `Ok(Err(holder))` when another open descriptor holds
    /// it, with the holder's pid if it can be found (see [`RunLock::holder`]).
    pub fn try_acquire(folder: &Path, info: &Path) -> io::Result<Result<RunLock, Option<u32>>> {
        let dir = open_folder(folder)?;
        match dir.try_lock() {
            Ok(()) => {
                let lock = RunLock { folder: dir };
                lock.write_info(info)?;
                Ok(Ok(lock))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(Err(holder_of(&dir, info))),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a `run` holds the board's folder, without ever holding the lock against one: a
    /// shared lock taken for an instant would not refuse a `run`'s exclusive lock at that
    /// instant if it waited, and [`RunLock::holder`] sees no exclusive holder for it to wait on.
    /// `Ok(None)` when no `run` serves the board; `Ok(Some(holder))` when one does.
    pub fn probe(folder: &Path, info: &Path) -> io::Result<Option<Option<u32>>> {
        let dir = open_folder(folder)?;
        match dir.try_lock_shared() {
            Ok(()) => {
                let _ = dir.unlock();
                Ok(None)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(Some(holder_of(&dir, info))),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The pid of the process holding the run lock of `folder`: the exclusive `flock` holder
    /// of that very folder in `/proc/locks` where there is one, else the pid written in `info`.
    pub fn holder(folder: &Path, info: &Path) -> Option<u32> {
        holder_of(&open_folder(folder).ok()?, info)
    }

    /// (Re)writes our pid into the information file, creating its folder if it was removed.
    pub fn write_info(&self, info: &Path) -> io::Result<()> {
        if let Some(parent) = info.parent()
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent)?;
        }
        fs::write(info, format!("{}\n", std::process::id()))
    }

    /// Whether `info` names this process as the holder.
    pub fn info_is_ours(info: &Path) -> bool {
        read_pid(info) == Some(std::process::id())
    }

    /// The locked folder, held open.
    pub fn folder(&self) -> &File {
        &self.folder
    }
}

/// Opens a folder for locking and for asking where it is now: read-only, and only a folder.
pub fn open_folder(folder: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(folder)
}

fn read_pid(info: &Path) -> Option<u32> {
    fs::read_to_string(info).ok()?.trim().parse().ok()
}

fn holder_of(dir: &File, info: &Path) -> Option<u32> {
    kernel_holder(dir).or_else(|| read_pid(info))
}

/// The exclusive `flock` holder of `dir` as the kernel lists it in `/proc/locks`.
#[cfg(target_os = "linux")]
fn kernel_holder(dir: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = dir.metadata().ok()?;
    let text = fs::read_to_string("/proc/locks").ok()?;
    exclusive_flock_holder(&text, meta.dev(), meta.ino())
}

/// Without `/proc/locks`, only the information file names the holder.
#[cfg(not(target_os = "linux"))]
fn kernel_holder(_dir: &File) -> Option<u32> {
    None
}

#[cfg(target_os = "linux")]
/// The pid holding an exclusive `flock` on the inode `(dev, ino)`, from the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 16530 fe:00:5317677 0 EOF`: the device as hex
/// major:minor, the inode in decimal).
fn exclusive_flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (
        u64::from(rustix::fs::major(dev)),
        u64::from(rustix::fs::minor(dev)),
    );
    locks.lines().find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (kind, _, mode, pid, file) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if kind != "FLOCK" || mode != "WRITE" {
            return None;
        }
        let mut parts = file.split(':');
        let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
        let min = u64::from_str_radix(parts.next()?, 16).ok()?;
        let inode: u64 = parts.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_after_the_last_paren() {
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let line = format!("4242 (we ird) (name)) S {}\n", fields[1..].join(" "));
        let stat = process::parse_stat(&line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start, 22);
        assert!(process::parse_stat("garbage").is_none());
    }

    #[test]
    fn ids_are_single_plain_components() {
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a\0b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["t1", "build-docs", "T_12.v2", "ünïcode"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_exclusive_flock_holder_of_an_inode_is_found_in_proc_locks() {
        let dev = rustix::fs::makedev(0xfe, 0x00);
        let text = "1: FLOCK  ADVISORY  READ 11 fe:00:42 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 12 fe:00:42 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 13 fe:01:42 0 EOF\n\
                    4: FLOCK  ADVISORY  WRITE 14 fe:00:42 0 EOF\n";
        assert_eq!(exclusive_flock_holder(text, dev, 42), Some(14));
        assert_eq!(exclusive_flock_holder(text, dev, 43), None);
        assert_eq!(exclusive_flock_holder("garbage\n", dev, 42), None);
    }

    fn me(instance: &str) -> Owner {
        Owner::current(instance, chrono::Utc::now())
    }

    /// Locks of instance `mine` in a fresh folder, holding `t`; `attributes` off as on a file
    /// system without user attributes.
    fn holding_t(attributes: bool) -> (tempfile::TempDir, PathBuf, Owner, Locks) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("locks");
        let owner = me("mine");
        let mine = Locks::of_instance(root.clone(), &owner.instance);
        mine.attributes.store(attributes, Ordering::Relaxed);
        mine.try_acquire("t", &owner).unwrap().unwrap();
        (tmp, root, owner, mine)
    }

    /// Whether the file system under `dir` keeps user attributes.
    fn keeps_attributes(dir: &Path) -> bool {
        let probe = dir.join("probe");
        fs::create_dir(&probe).unwrap();
        let kept = attribute::set(&probe, b"x").is_ok();
        fs::remove_dir(&probe).unwrap();
        kept
    }

    #[test]
    fn the_executor_attribute_prints_and_parses_back_and_nothing_else_parses() {
        let with = executor_attribute("1f-00ab", 4242, Some("1f-9a-0"));
        assert_eq!(with, "1f-00ab 4242 1f-9a-0");
        assert_eq!(
            parse_executor_attribute(with.as_bytes()),
            Some(("1f-00ab", 4242, Some("1f-9a-0")))
        );
        let without = executor_attribute("1f-00ab", 7, None);
        assert_eq!(
            parse_executor_attribute(without.as_bytes()),
            Some(("1f-00ab", 7, None))
        );
        for bad in [
            &b""[..],
            b"i",
            b"i 7",
            b"i x r",
            b"i 0 r",
            b"i -3 r",
            b"i 7 r more",
            b"i  7 r",
            b"i 7 ",
            b"i 7 r\n",
            b"\xff 7 r",
        ] {
            assert_eq!(parse_executor_attribute(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_executor_joins_its_lock_without_the_record_being_rewritten() {
        let (tmp, root, owner, mine) = holding_t(true);
        let record = root.join("t").join(OWNER_FILE);
        let (bytes, stamp) = (fs::read(&record).unwrap(), fs::metadata(&record).unwrap());
        mine.set_executor("t", "mine", 4242, Some("run-1")).unwrap();
        let expected = Owner {
            executor_pgid: Some(4242),
            run_id: Some("run-1".into()),
            ..owner
        };
        // Another process reads the lock afresh; this one lists it from what it knows.
        assert_eq!(
            Locks::new(root.clone()).read("t"),
            Some(LockState::Held(expected.clone()))
        );
        assert_eq!(
            mine.list().unwrap(),
            vec![("t".to_string(), LockState::Held(expected))]
        );
        if keeps_attributes(tmp.path()) {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                fs::read(&record).unwrap(),
                bytes,
                "the record was rewritten"
            );
            assert_eq!(fs::metadata(&record).unwrap().ino(), stamp.ino());
        }
        assert!(mine.release("t", "mine").unwrap());
        assert!(
            fs::read_dir(&root).unwrap().all(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
        );
    }

    #[test]
    fn the_record_carries_the_executor_where_the_file_system_keeps_no_attributes() {
        let (_tmp, root, _, mine) = holding_t(false);
        mine.set_executor("t", "mine", 4242, None).unwrap();
        let record: Owner =
            serde_json::from_slice(&fs::read(root.join("t").join(OWNER_FILE)).unwrap()).unwrap();
        assert_eq!(record.executor_pgid, Some(4242));
        assert_eq!(attribute::get(&root.join("t")), None);
        let read = Locks::new(root).read("t");
        assert!(
            matches!(&read, Some(LockState::Held(o)) if o.executor_pgid == Some(4242)),
            "{read:?}"
        );
    }

    #[test]
    fn an_attribute_left_by_an_earlier_owner_counts_for_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("locks");
        let first = me("first");
        let locks = Locks::new(root.clone());
        locks.try_acquire("t", &first).unwrap().unwrap();
        locks
            .set_executor("t", "first", 4242, Some("run-1"))
            .unwrap();
        let seen = locks.read("t").unwrap();
        let second = me("second");
        assert!(locks.take_over("t", &seen, &second).unwrap());
        assert_eq!(locks.read("t"), Some(LockState::Held(second)));
    }

    #[test]
    fn nonces_differ() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|_| nonce()).collect();
        assert_eq!(a.len(), 1000);
    }
}

/// Makes the state folder (`.taskboard`) if it is missing, but never the board's folder it
/// lives in: a folder that was renamed or deleted under a runtime must not appear again at its
/// old path, holding what was meant for the board (an ending saved where nobody reads it).
/// Fails with `NotFound` when the board's folder is not there.
pub fn create_state_dir(state_dir: &Path) -> io::Result<()> {
    match fs::create_dir(state_dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && state_dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Serialises the board's read-modify-write among taskboard processes (a `run`, a `once`,
/// `taskboard retry`): each holds it from the re-read before a writeback to the rename after it,
/// so one process never replaces the board with text that predates another's write. A person's
/// editor does not take it; compare-and-swap on the re-read covers them.
#[derive(Debug)]
pub struct WriteLock {
    _file: std::fs::File,
}

impl WriteLock {
    /// Blocks until the lock is held. Held writes last milliseconds, so waiting is short.
    pub fn acquire(state_dir: &Path) -> io::Result<WriteLock> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(state_dir.join("write.lock"))
        };
        let file = fsio::open_making_folder(open, || create_state_dir(state_dir))?;
        file.lock()?;
        Ok(WriteLock { _file: file })
    }
}
