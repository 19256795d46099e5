//! The store of the runtime's memory (`core::memory`'s records) between passes and across
//! restarts.
//!
//! Owns `.taskboard/state.json` (written atomically, merged record by record so that a `run` and
//! a `once` serving one board share it). It never reads or writes the board.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::memory::FORGET_MISSING_AFTER;
use crate::core::memory::{TaskMemory, TaskRecord};

/// How many days of per-route spend are kept.
const SPEND_DAYS_KEPT: usize = 90;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    tasks: BTreeMap<String, TaskRecord>,
    /// UTC day (`YYYY-MM-DD`) → route → reported spend in US dollars.
    #[serde(default)]
    spend: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Day → route → US dollars.
type SpendByDay = BTreeMap<String, BTreeMap<String, f64>>;

/// Enough of a file's identity to tell that it was replaced since it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    })
}

/// The runtime's memory of the board's tasks, shared by every taskboard process serving the
/// board: each one refreshes it from the file before it plans and merges its own changes into
/// the file (under the board's write lock) instead of overwriting it whole, so what one process
/// learns about a task (an attempt, an ending, a person's decision) every other one knows.
pub struct Store {
    path: PathBuf,
    /// Read through [`Store::tasks`]; changed only through the methods that note the change.
    tasks: BTreeMap<String, TaskRecord>,
    pub spend: SpendByDay,
    /// Tasks this process changed or forgot since it last merged into the file.
    changed: BTreeSet<String>,
    /// Spend this process recorded since it last merged into the file.
    spend_added: SpendByDay,
    /// The file as this process last read or wrote it.
    seen: Option<FileStamp>,
    /// The file was removed since this process read it (see [`Store::file_lost`]).
    lost: bool,
    /// Each record's JSON as last written, for records not changed since: a save serialises
    /// only what changed (a busy runtime saves after every claim and ending, and serialising
    /// every record each time grew with the board's history).
    rendered: HashMap<String, String>,
}

fn read_file(path: &Path) -> Result<Option<StateFile>, String> {
    // Never waits on a FIFO in the file's place: that is an unreadable file.
    match crate::shell::fsio::read_regular(path) {
        Ok(bytes) => serde_json::from_slice::<StateFile>(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn add_spend_to(spend: &mut SpendByDay, day: &str, route: &str, usd: f64) {
    *spend
        .entry(day.to_string())
        .or_default()
        .entry(route.to_string())
        .or_default() += usd;
    while spend.len() > SPEND_DAYS_KEPT {
        spend.pop_first();
    }
}

impl Store {
    /// Loads the state file; a missing file is an empty state, a corrupt one is set aside as
    /// `state.json.corrupt-<ts>` and reported in the returned warning.
    pub fn load(path: &Path) -> (Store, Option<String>) {
        let mut warning = None;
        let seen = stamp(path);
        let file = match read_file(path) {
            Ok(file) => file.unwrap_or_default(),
            Err(e) => {
                let aside = path.with_extension(format!(
                    "json.corrupt-{}",
                    Utc::now().format("%Y%m%dT%H%M%S")
                ));
                let _ = std::fs::rename(path, &aside);
                warning = Some(format!(
                    "{} was unreadable ({e}); moved to {} and starting with no memory of attempts",
                    path.display(),
                    aside.display()
                ));
                StateFile::default()
            }
        };
        (
            Store {
                path: path.to_path_buf(),
                tasks: file.tasks,
                spend: file.spend,
                changed: BTreeSet::new(),
                spend_added: SpendByDay::new(),
                seen,
                lost: false,
                rendered: HashMap::new(),
            },
            warning,
        )
    }

    /// Every task's record, by ID.
    pub fn tasks(&self) -> &BTreeMap<String, TaskRecord> {
        &self.tasks
    }

    pub fn record_mut(&mut self, id: &str) -> &mut TaskRecord {
        self.changed.insert(id.to_string());
        self.tasks.entry(id.to_string()).or_default()
    }

    pub fn forget(&mut self, id: &str) {
        if self.tasks.remove(id).is_some() {
            self.changed.insert(id.to_string());
        }
    }

    /// The tasks whose last attempt's ending is not on the board yet.
    pub fn with_endings(&self) -> impl Iterator<Item = &str> {
        self.tasks
            .iter()
            .filter(|(_, r)| r.ending.is_some())
            .map(|(id, _)| id.as_str())
    }

    pub fn memory(&self) -> BTreeMap<String, TaskMemory> {
        self.tasks
            .iter()
            .map(|(id, r)| (id.clone(), r.memory.clone()))
            .collect()
    }

    /// Notes which tasks are on the board now; drops records of tasks missing for longer
    /// than [`FORGET_MISSING_AFTER`].
    pub fn note_presence(&mut self, on_board: impl Fn(&str) -> bool, now: DateTime<Utc>) {
        let changed = &mut self.changed;
        self.tasks.retain(|id, rec| {
            if on_board(id) {
                if rec.missing_since.take().is_some() {
                    changed.insert(id.clone());
                }
                return true;
            }
            let since = *rec.missing_since.get_or_insert_with(|| {
                changed.insert(id.clone());
                now
            });
            let keep = now - since < FORGET_MISSING_AFTER;
            if !keep {
                changed.insert(id.clone());
            }
            keep
        });
    }

    /// Reads the state without ever moving a corrupt file aside (for read-only commands).
    pub fn peek(path: &Path) -> BTreeMap<String, TaskRecord> {
        read_file(path)
            .ok()
            .flatten()
            .map(|f| f.tasks)
            .unwrap_or_default()
    }

    /// Spend per route on a UTC day.
    pub fn spend_on(&self, day: chrono::NaiveDate) -> BTreeMap<String, f64> {
        self.spend
            .get(&day.format("%Y-%m-%d").to_string())
            .cloned()
            .unwrap_or_default()
    }

    pub fn add_spend(&mut self, day: chrono::NaiveDate, route: &str, usd: f64) {
        let day = day.format("%Y-%m-%d").to_string();
        add_spend_to(&mut self.spend, &day, route, usd);
        add_spend_to(&mut self.spend_added, &day, route, usd);
    }

    /// The state file moved with its folder to `path`: only its path changed.
    pub fn moved_to(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    /// The state file this process read was removed (its folder cleaned away, or replaced by a
    /// new one). A file there now holds only what others wrote since: the next read keeps every
    /// record and spend this process knows that the file lacks, and the next save writes them
    /// back. Records the file has are the file's: another process may have moved them on.
    pub fn file_lost(&mut self) {
        self.lost = true;
        self.seen = None;
    }

    /// Takes in what other processes serving the board wrote since this one last read or wrote
    /// the file. This process's own unmerged changes win for the tasks they touch.
    pub fn refresh(&mut self) {
        let now = stamp(&self.path);
        if now == self.seen {
            return;
        }
        if now.is_none() {
            // Gone, not emptied: an empty memory would forget every ending on its way.
            self.file_lost();
            return;
        }
        // A file being replaced or unreadable for a moment: keep what we know, read next time.
        let Ok(file) = read_file(&self.path) else {
            return;
        };
        self.seen = now;
        let file = file.unwrap_or_default();
        self.adopt(file);
    }

    fn adopt(&mut self, file: StateFile) {
        // Records now come from the file: what was rendered may not describe them.
        self.rendered.clear();
        if std::mem::take(&mut self.lost) {
            self.keep_what_the_file_lacks(&file);
        }
        let mut tasks = file.tasks;
        for id in &self.changed {
            match self.tasks.remove(id) {
                Some(rec) => tasks.insert(id.clone(), rec),
                None => tasks.remove(id),
            };
        }
        self.tasks = tasks;
        let mut spend = file.spend;
        for (day, routes) in &self.spend_added {
            for (route, usd) in routes {
                add_spend_to(&mut spend, day, route, *usd);
            }
        }
        self.spend = spend;
    }

    /// After the file was lost: what this process knows and `file` lacks becomes this process's
    /// change, to be written back.
    fn keep_what_the_file_lacks(&mut self, file: &StateFile) {
        for id in self.tasks.keys() {
            if !file.tasks.contains_key(id) {
                self.changed.insert(id.clone());
            }
        }
        for (day, routes) in &self.spend {
            for (route, usd) in routes {
                let in_file = file.spend.get(day).is_some_and(|r| r.contains_key(route));
                let added = self
                    .spend_added
                    .get(day)
                    .and_then(|r| r.get(route))
                    .copied()
                    .unwrap_or(0.0);
                if !in_file && *usd > added {
                    add_spend_to(&mut self.spend_added, day, route, usd - added);
                }
            }
        }
    }

    /// Merges this process's changes into the file: the records it changed replace (or remove)
    /// the file's, every other record stays as another process wrote it, spend adds up. The
    /// caller holds the board's write lock, so no other process merges at the same time.
    pub fn save(&mut self) -> io::Result<()> {
        if self.changed.is_empty() && self.spend_added.is_empty() && !self.lost {
            return Ok(());
        }
        // Nobody wrote the file since this process last read or wrote it: what it holds is
        // already merged here, and reading it again (all of it, every save) is the cost of a
        // busy runtime, growing with the board.
        let unchanged = !self.lost && self.seen.is_some() && stamp(&self.path) == self.seen;
        if !unchanged {
            let file = match read_file(&self.path) {
                Ok(Some(file)) => file,
                Ok(None) => {
                    if self.seen.is_some() {
                        // Removed since this process last saw it: all it knows goes back.
                        self.lost = true;
                    }
                    StateFile::default()
                }
                // Unreadable now (set aside at load if it was corrupt then): ours is the truth.
                Err(_) => StateFile {
                    version: 1,
                    tasks: BTreeMap::new(),
                    spend: SpendByDay::new(),
                },
            };
            self.adopt(file);
        }
        let json = self.render().map_err(io::Error::other)?;
        crate::shell::fsio::atomic_write(&self.path, &json)?;
        self.changed.clear();
        self.spend_added.clear();
        self.seen = stamp(&self.path);
        Ok(())
    }
}

impl Store {
    /// The file's text, as `serde_json` writes a [`StateFile`], from each record's rendering:
    /// records changed since the last save are serialised again, the others reused.
    fn render(&mut self) -> serde_json::Result<Vec<u8>> {
        let mut rendered = HashMap::with_capacity(self.tasks.len());
        let mut out =
            Vec::with_capacity(64 + self.rendered.values().map(String::len).sum::<usize>());
        out.extend_from_slice(br#"{"version":1,"tasks":{"#);
        for (n, (id, rec)) in self.tasks.iter().enumerate() {
            let text = match self.rendered.remove(id) {
                Some(text) if !self.changed.contains(id) => text,
                _ => serde_json::to_string(rec)?,
            };
            if n > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, id)?;
            out.push(b':');
            out.extend_from_slice(text.as_bytes());
            rendered.insert(id.clone(), text);
        }
        out.extend_from_slice(br#"},"spend":"#);
        serde_json::to_writer(&mut out, &self.spend)?;
        out.push(b'}');
        self.rendered = rendered;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serde_json` writes for the store's records and spend as they are now.
    fn whole(store: &Store) -> Vec<u8> {
        let file = StateFile {
            version: 1,
            tasks: store.tasks.clone(),
            spend: store.spend.clone(),
        };
        serde_json::to_vec(&file).unwrap()
    }

    #[test]
    fn a_save_writes_what_serialising_every_record_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (mut a, _) = Store::load(&path);
        let saved = |a: &mut Store| {
            a.save().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), whole(a));
        };
        for n in 0..20 {
            a.record_mut(&format!("T-{n}")).memory.attempts = n;
        }
        a.record_mut("Q-\"1").review_feedback = Some("a \"quoted\"\nnote".into());
        saved(&mut a);
        // One record changed, one forgotten, one gone missing, spend added: only they move.
        a.record_mut("T-3").memory.attempts = 9;
        a.forget("T-4");
        let now = chrono::Utc::now();
        a.note_presence(|id| id != "T-5", now);
        a.add_spend(day, "r", 0.25);
        saved(&mut a);
        // Another process wrote the file: its records replace what was rendered.
        let (mut b, _) = Store::load(&path);
        b.record_mut("T-6").memory.attempts = 42;
        b.save().unwrap();
        a.record_mut("T-7").memory.attempts = 7;
        saved(&mut a);
        assert_eq!(Store::peek(&path)["T-6"].memory.attempts, 42);
        assert_eq!(Store::peek(&path)["T-3"].memory.attempts, 9);
        // Nothing changed: nothing written, and the next change still lands whole.
        saved(&mut a);
        a.record_mut("T-0").memory.attempts = 1;
        saved(&mut a);
    }

    #[test]
    fn a_removed_state_file_loses_nothing_known_and_overrides_nothing_newer() {
        let dir = std::env::temp_dir().join(format!("taskboard-state-lost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (mut a, _) = Store::load(&path);
        a.record_mut("A-1").memory.attempts = 2;
        a.record_mut("C-3").memory.attempts = 1;
        a.add_spend(day, "r", 1.5);
        a.save().unwrap();

        // Cleaned away: a read finds nothing, and forgets nothing; a save writes it all back.
        std::fs::remove_file(&path).unwrap();
        a.refresh();
        assert_eq!(a.tasks["A-1"].memory.attempts, 2);
        a.save().unwrap();
        assert_eq!(Store::peek(&path)["C-3"].memory.attempts, 1);

        // Replaced by a file another process started: its records stand, ours it lacks come back.
        std::fs::remove_file(&path).unwrap();
        let (mut b, _) = Store::load(&path);
        b.record_mut("A-1").memory.attempts = 3;
        b.record_mut("B-2").memory.attempts = 1;
        b.save().unwrap();
        a.file_lost();
        a.refresh();
        a.save().unwrap();
        let (merged, _) = Store::load(&path);
        assert_eq!(merged.tasks["A-1"].memory.attempts, 3);
        assert_eq!(merged.tasks["B-2"].memory.attempts, 1);
        assert_eq!(merged.tasks["C-3"].memory.attempts, 1);
        assert_eq!(merged.spend_on(day)["r"], 1.5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_survive_a_read_that_misses_tasks_but_not_a_day_of_absence() {
        let path =
            std::env::temp_dir().join(format!("taskboard-state-{}.json", std::process::id()));
        let (mut store, _) = Store::load(&path);
        store.record_mut("A-1").memory.attempts = 2;
        let t0 = Utc::now();
        store.note_presence(|_| false, t0);
        assert_eq!(store.tasks()["A-1"].memory.attempts, 2);
        store.note_presence(|_| true, t0 + chrono::TimeDelta::hours(1));
        assert_eq!(store.tasks()["A-1"].missing_since, None);
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(2));
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(20));
        assert!(store.tasks().contains_key("A-1"));
        store.note_presence(|_| false, t0 + chrono::TimeDelta::hours(27));
        assert!(!store.tasks().contains_key("A-1"));
    }

    #[test]
    fn saves_by_two_processes_in_turn_keep_both_records() {
        let dir =
            std::env::temp_dir().join(format!("taskboard-state-turns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let (mut a, _) = Store::load(&path);
        let (mut b, _) = Store::load(&path);
        for round in 1..=3u32 {
            // Each saves in turn; each save finds the file the other wrote since.
            a.record_mut("A-1").memory.attempts = round;
            a.save().unwrap();
            b.record_mut("B-1").memory.attempts = round;
            b.save().unwrap();
            // A save with nothing written by anyone since keeps everything too.
            b.record_mut("B-1").memory.attempts = round + 10;
            b.save().unwrap();
            let file = Store::peek(&path);
            assert_eq!(file["A-1"].memory.attempts, round);
            assert_eq!(file["B-1"].memory.attempts, round + 10);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
