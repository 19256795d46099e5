//! The store of the runtime's memory (`core::memory`'s records) between passes and across
//! restarts.
//!
//! Owns `.taskboard/state.json`, a whole copy of every record (written atomically), and
//! `.taskboard/state.journal`, the records changed since, one JSON line per record, appended
//! under the board's write lock and folded into `state.json` once it outgrows it (and when a
//! runtime stops). A save costs what changed, not the whole memory, however long the board and
//! its history. Records are merged record by record, so a `run` and a `once` serving one board
//! share them. It never reads or writes the board.
//!
//! Invariants: a line is one whole record (or a forgetting, or spend totals), so a line read
//! twice changes nothing; `state.json` names the journal it absorbed and is replaced before that
//! journal is removed, so a journal a crash left in between is passed over, and a reader that saw
//! the journal go checks `state.json` again before it believes anything was lost; a line
//! without its newline is a write cut short and is never read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::board::Board;
use crate::core::memory::TaskRecord;
use crate::shell::fsio::FileStamp;

/// How many days of per-route spend are kept.
const SPEND_DAYS_KEPT: usize = 90;

/// The journal is folded into `state.json` once it is longer than both this and `state.json`:
/// each fold writes no more than was appended since the last, so a save stays as cheap as
/// what it changed, and a read never has more than twice the memory to take in.
const FOLD_AFTER: u64 = 64 * 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    tasks: BTreeMap<String, TaskRecord>,
    /// UTC day (`YYYY-MM-DD`) → route → reported spend in US dollars.
    #[serde(default)]
    spend: BTreeMap<String, BTreeMap<String, f64>>,
    /// The name of the journal this copy absorbed: that journal's lines are older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal: Option<String>,
}

/// Day → route → US dollars.
type SpendByDay = BTreeMap<String, BTreeMap<String, f64>>;

/// One line of the journal: its name (the first line), a task's whole record (`record: null`
/// when it was forgotten), or the totals of the routes and days whose spend changed. Records
/// and totals replace what they name, so a line read twice changes nothing the second time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalLine {
    #[serde(default)]
    journal: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    record: Option<TaskRecord>,
    #[serde(default)]
    spend: Option<SpendByDay>,
}

#[derive(Serialize)]
struct TaskLine<'a> {
    task: &'a str,
    record: Option<&'a TaskRecord>,
}

#[derive(Serialize)]
struct SpendLine<'a> {
    spend: &'a SpendByDay,
}

#[derive(Serialize)]
struct NameLine<'a> {
    journal: &'a str,
}

/// How far into which journal a reader has read: its inode, the length up to the end of its
/// last whole line, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    ino: u64,
    len: u64,
    name: Option<String>,
    /// `state.json` absorbed this journal: its lines are not taken.
    absorbed: bool,
}

/// The files as this process last read or wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    state: Option<FileStamp>,
    /// The name of the journal `state.json` says it absorbed.
    absorbed: Option<String>,
    journal: Option<Mark>,
}

/// `state.json` and its journal as read together.
struct OnDisk {
    file: StateFile,
    seen: Seen,
    /// A whole line that is not a journal line: the lines before it were taken.
    bad_line: Option<String>,
}

fn journal_path(state: &Path) -> PathBuf {
    state.with_extension("journal")
}

/// Where a state file that cannot be taken in is set aside for a person to look at:
/// `<name>.corrupt-<time>` beside it.
fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{}", Utc::now().format("%Y%m%dT%H%M%S")));
    path.with_file_name(name)
}

/// What `spend` holds for `route` on `day`.
fn amount(spend: &SpendByDay, day: &str, route: &str) -> f64 {
    spend
        .get(day)
        .and_then(|r| r.get(route))
        .copied()
        .unwrap_or(0.0)
}

fn add_spend_to(spend: &mut SpendByDay, day: &str, route: &str, usd: f64) {
    *spend
        .entry(day.to_string())
        .or_default()
        .entry(route.to_string())
        .or_default() += usd;
    trim_spend(spend);
}

fn trim_spend(spend: &mut SpendByDay) {
    while spend.len() > SPEND_DAYS_KEPT {
        spend.pop_first();
    }
}

/// A journal read from some point to the end of its last whole line.
struct JournalRead {
    lines: Vec<JournalLine>,
    /// Where the reader now is.
    mark: Mark,
    /// The first whole line that is not a journal line (the lines before it are in `lines`).
    bad: Option<String>,
}

/// The lines of `bytes` up to its last newline, parsed, and how many bytes that was; `first`
/// when `bytes` starts at the journal's start, whose first line is its name. Stops at the first
/// line that is not a journal line and says which.
fn parse_lines(
    bytes: &[u8],
    first: bool,
) -> (Vec<JournalLine>, u64, Option<String>, Option<String>) {
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    let mut name = None;
    for (n, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |why: String| {
            Some(format!(
                "{}line {}: {why}",
                if first { "" } else { "a later " },
                n + 1
            ))
        };
        match serde_json::from_slice::<JournalLine>(line) {
            Ok(JournalLine {
                journal: Some(j),
                task: None,
                spend: None,
                record: None,
            }) if first && n == 0 => {
                name = Some(j);
            }
            Ok(l) if l.journal.is_none() && l.task.is_some() != l.spend.is_some() => lines.push(l),
            Ok(_) => {
                return (
                    lines,
                    whole as u64,
                    name,
                    bad("not a record, spend or the journal's name".into()),
                );
            }
            Err(e) => return (lines, whole as u64, name, bad(e.to_string())),
        }
    }
    (lines, whole as u64, name, None)
}

/// Reads the journal from `from` on. `None` when there is no journal.
fn read_journal(path: &Path, from: u64) -> io::Result<Option<JournalRead>> {
    let (mut file, meta) = match crate::shell::fsio::open_regular_with_meta(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let from = from.min(meta.len());
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity((meta.len() - from) as usize);
    file.read_to_end(&mut bytes)?;
    let (lines, whole, name, bad) = parse_lines(&bytes, from == 0);
    let mark = Mark {
        ino: meta.ino(),
        len: from + whole,
        name,
        absorbed: false,
    };
    Ok(Some(JournalRead { lines, mark, bad }))
}

/// What a reader's own changes are, kept over the journal lines it takes in: the tasks it
/// changed since it last merged (their lines are older than its own change) and the spend it
/// added (on top of a line's totals).
#[derive(Clone, Copy)]
struct Unmerged<'a> {
    changed: &'a BTreeSet<String>,
    spend_added: &'a SpendByDay,
}

/// Takes journal lines into `tasks` and `spend`, in order, under `ours`.
fn replay(
    tasks: &mut BTreeMap<String, TaskRecord>,
    spend: &mut SpendByDay,
    lines: Vec<JournalLine>,
    ours: Unmerged<'_>,
) {
    for line in lines {
        if let Some(id) = line.task {
            if ours.changed.contains(&id) {
                continue;
            }
            match line.record {
                Some(rec) => tasks.insert(id, rec),
                None => tasks.remove(&id),
            };
        } else if let Some(totals) = line.spend {
            for (day, routes) in totals {
                for (route, total) in routes {
                    let added = amount(ours.spend_added, &day, &route);
                    spend
                        .entry(day.clone())
                        .or_default()
                        .insert(route, total + added);
                }
            }
            trim_spend(spend);
        }
    }
}

/// `state.json` then its journal, replayed. `state.json` is checked again after the journal:
/// if it was replaced meanwhile (another process folded the journal into it and removed it),
/// the two are read again, so an old `state.json` is never taken without the journal it had.
/// `Err` when `state.json` cannot be read or parsed.
fn read_state(path: &Path) -> Result<Option<OnDisk>, String> {
    let journal = journal_path(path);
    let mut tries = 0;
    loop {
        tries += 1;
        let (mut file, state) = match crate::shell::fsio::open_regular_with_meta(path) {
            Ok((mut f, meta)) => {
                let mut bytes = Vec::with_capacity(meta.len() as usize);
                f.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                let file =
                    serde_json::from_slice::<StateFile>(&bytes).map_err(|e| e.to_string())?;
                (file, Some(FileStamp::of(&meta)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (StateFile::default(), None),
            Err(e) => return Err(e.to_string()),
        };
        // An unreadable journal is one with nothing readable in it yet.
        let (mark, bad_line) = match read_journal(&journal, 0).ok().flatten() {
            Some(mut read) => {
                let absorbed = read.mark.name.is_some() && read.mark.name == file.journal;
                read.mark.absorbed = absorbed;
                if absorbed {
                    (Some(read.mark), None)
                } else {
                    let none = Unmerged {
                        changed: &BTreeSet::new(),
                        spend_added: &SpendByDay::new(),
                    };
                    replay(&mut file.tasks, &mut file.spend, read.lines, none);
                    (Some(read.mark), read.bad)
                }
            }
            None => (None, None),
        };
        if state.is_none() && mark.is_none() {
            return Ok(None);
        }
        if FileStamp::at(path) == state || tries == 3 {
            let seen = Seen {
                state,
                absorbed: file.journal.clone(),
                journal: mark,
            };
            return Ok(Some(OnDisk {
                file,
                seen,
                bad_line,
            }));
        }
    }
}

/// The runtime's memory of the board's tasks, shared by every taskboard process serving the
/// board: each one refreshes it from the files before it plans and merges its own changes into
/// them (under the board's write lock) instead of overwriting them whole, so what one process
/// learns about a task (an attempt, an ending, a person's decision) every other one knows.
pub struct Store {
    path: PathBuf,
    journal: PathBuf,
    /// Read through [`Store::tasks`]; changed only through the methods that note the change.
    tasks: BTreeMap<String, TaskRecord>,
    pub spend: SpendByDay,
    /// Tasks this process changed or forgot since it last merged into the files.
    changed: BTreeSet<String>,
    /// Spend this process recorded since it last merged into the files.
    spend_added: SpendByDay,
    /// The files as this process last read or wrote them; `None` before any was found.
    seen: Option<Seen>,
    /// `state.json` was removed since this process read it (see [`Store::file_lost`]).
    lost: bool,
    /// The files lack what this process knows (the journal it read was removed, or held a line
    /// that was set aside): the next save writes all of its memory into `state.json`.
    rewrite: bool,
    /// The journal holds a line that is not a record: set aside, not removed, once absorbed.
    bad_journal: bool,
    /// What the last [`Store::note_presence`] found, while no record came from the files since.
    presence: Option<Presence>,
}

/// The records a look at a board left to look at again on a board with the same IDs
/// ([`Board::ids_generation`]): those not on it, and those made since. Every other record was on
/// it, so is on it still, and no one but that look changes whether a record is missing.
#[derive(Debug)]
struct Presence {
    generation: u64,
    missing: BTreeSet<String>,
    made_since: BTreeSet<String>,
}

/// What one look at a board found of a task's record.
#[derive(Debug, PartialEq, Eq)]
enum Noted {
    Present,
    /// Missing, and kept.
    Missing,
    /// Missing for long enough, with no ending waiting: to be dropped.
    Forgotten,
}

/// Notes in `rec` whether its task is on the board now; says what was found and whether `rec`
/// changed (a record to drop counts as changed).
fn note(rec: &mut TaskRecord, on_board: bool, now: DateTime<Utc>) -> (Noted, bool) {
    if on_board {
        return (Noted::Present, rec.missing_since.take().is_some());
    }
    let newly = rec.missing_since.is_none();
    if newly {
        rec.missing_since = Some(now);
    }
    match rec.may_forget(now) {
        true => (Noted::Forgotten, true),
        false => (Noted::Missing, newly),
    }
}

impl Store {
    /// Loads the state; missing files are an empty state. A corrupt `state.json` is set aside
    /// as `state.json.corrupt-<ts>`, a journal with a line that is not a journal line as
    /// `state.journal.corrupt-<ts>` (the lines before it are kept), each said in the returned
    /// warning.
    pub fn load(path: &Path) -> (Store, Option<String>) {
        let journal = journal_path(path);
        let aside = |p: &Path| {
            let to = aside_path(p);
            let _ = std::fs::rename(p, &to);
            to
        };
        let mut warning = None;
        let mut rewrite = false;
        let (file, seen) = match read_state(path) {
            Ok(Some(on_disk)) => {
                if let Some(bad) = on_disk.bad_line {
                    let to = aside(&journal);
                    warning = Some(format!(
                        "{} held a line that is not a record ({bad}); moved to {}, keeping the lines before it",
                        journal.display(),
                        to.display()
                    ));
                    rewrite = true;
                }
                (on_disk.file, Some(on_disk.seen))
            }
            Ok(None) => (StateFile::default(), None),
            Err(e) => {
                let to = aside(path);
                warning = Some(format!(
                    "{} was unreadable ({e}); moved to {} and starting with no memory of attempts",
                    path.display(),
                    to.display()
                ));
                // Its journal only makes sense on top of it.
                if journal.exists() {
                    aside(&journal);
                }
                (StateFile::default(), None)
            }
        };
        (
            Store {
                path: path.to_path_buf(),
                journal,
                tasks: file.tasks,
                spend: file.spend,
                changed: BTreeSet::new(),
                spend_added: SpendByDay::new(),
                seen,
                lost: false,
                rewrite,
                bad_journal: false,
                presence: None,
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
        if let Some(presence) = &mut self.presence
            && !self.tasks.contains_key(id)
        {
            presence.made_since.insert(id.to_string());
        }
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

    /// Notes which tasks are on `board` now; drops records of tasks missing for longer
    /// than [`FORGET_MISSING_AFTER`](crate::core::memory::FORGET_MISSING_AFTER) in which no
    /// ending waits. On a board with the IDs of the last one looked at, only the records that
    /// were missing from it or are new since are looked up again.
    pub fn note_presence(&mut self, board: &Board, now: DateTime<Utc>) {
        let generation = board.ids_generation();
        let on_board = |id: &str| board.task(id).is_some();
        let changed = &mut self.changed;
        let mut missing = BTreeSet::new();
        let mut look = |id: &String, rec: &mut TaskRecord| {
            let (noted, changes) = note(rec, on_board(id), now);
            if changes {
                changed.insert(id.clone());
            }
            if noted == Noted::Missing {
                missing.insert(id.clone());
            }
            noted != Noted::Forgotten
        };
        match self.presence.take() {
            Some(last) if last.generation == generation => {
                for id in last.missing.into_iter().chain(last.made_since) {
                    if let Some(rec) = self.tasks.get_mut(&id)
                        && !look(&id, rec)
                    {
                        self.tasks.remove(&id);
                    }
                }
            }
            _ => self.tasks.retain(|id, rec| look(id, rec)),
        }
        self.presence = Some(Presence {
            generation,
            missing,
            made_since: BTreeSet::new(),
        });
    }

    /// [`Store::peek`] at the state file of the runtime serving `board`.
    pub fn peek_board(board: &Path) -> BTreeMap<String, TaskRecord> {
        Store::peek(&crate::shell::fsio::state_dir(board).join("state.json"))
    }

    /// Reads the state without ever moving a corrupt file aside (for read-only commands).
    pub fn peek(path: &Path) -> BTreeMap<String, TaskRecord> {
        read_state(path)
            .ok()
            .flatten()
            .map(|d| d.file.tasks)
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

    /// The state files moved with their folder; `path` is `state.json`'s new place.
    pub fn moved_to(&mut self, path: &Path) {
        self.path = path.to_path_buf();
        self.journal = journal_path(path);
    }

    /// The state files this process read were removed (their folder cleaned away, or replaced
    /// by new ones). Files there now hold only what others wrote since: the next read keeps
    /// every record and spend this process knows that the files lack, and the next save writes
    /// them back. Records the files have are theirs: another process may have moved them on.
    pub fn file_lost(&mut self) {
        self.lost = true;
        self.seen = None;
    }

    /// Takes in what other processes serving the board wrote since this one last read or wrote
    /// the files: only the journal's new lines while `state.json` is the one it read. This
    /// process's own unmerged changes win for the tasks they touch.
    pub fn refresh(&mut self) {
        let _ = self.catch_up();
    }

    /// [`Store::refresh`]; `Err` when the files could not be read now (what this process knows
    /// stays as it was).
    fn catch_up(&mut self) -> Result<(), String> {
        let Some(seen) = self.seen.clone() else {
            return self.read_whole();
        };
        let state_now = FileStamp::at(&self.path);
        if state_now != seen.state {
            if state_now.is_none() {
                // Gone, not emptied: an empty memory would forget every ending on its way.
                self.file_lost();
            }
            return self.read_whole();
        }
        let from = match (&seen.journal, journal_end(&self.journal)) {
            (None, None) => return Ok(()),
            (Some(m), Some(end)) if (m.ino, m.len) == end => return Ok(()),
            (Some(m), Some((ino, len))) if m.ino == ino && len >= m.len => m.len,
            (None, Some(_)) => 0,
            (_, now) => {
                if FileStamp::at(&self.path) != seen.state {
                    // Folded into a new `state.json` by another process since the check above.
                    return self.read_whole();
                }
                // The journal went, or another took its place, while `state.json` stayed: what
                // it held that `state.json` did not absorb is known only here now.
                if seen.journal.as_ref().is_some_and(|m| !m.absorbed) {
                    self.rewrite = true;
                }
                if now.is_none() {
                    self.seen = Some(Seen {
                        journal: None,
                        ..seen
                    });
                    return Ok(());
                }
                // A new journal (another process appended after an absorbed one): all of it.
                0
            }
        };
        let Some(read) = read_journal(&self.journal, from).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let mut mark = read.mark;
        match &seen.journal {
            Some(m) if from > 0 => {
                mark.name = m.name.clone();
                mark.absorbed = m.absorbed;
            }
            // Read from its start: left behind by the fold that wrote `state.json`, if that
            // names it.
            _ => mark.absorbed = mark.name.is_some() && mark.name == seen.absorbed,
        }
        if !mark.absorbed {
            if read.bad.is_some() {
                // Taken as far as it reads; the next save writes a whole copy over it.
                self.rewrite = true;
                self.bad_journal = true;
            }
            let ours = Unmerged {
                changed: &self.changed,
                spend_added: &self.spend_added,
            };
            replay(&mut self.tasks, &mut self.spend, read.lines, ours);
            // Records made, changed or dropped elsewhere: the next look reads them all.
            self.presence = None;
        }
        self.seen = Some(Seen {
            journal: Some(mark),
            ..seen
        });
        Ok(())
    }

    /// Reads both files whole and takes them in.
    fn read_whole(&mut self) -> Result<(), String> {
        match read_state(&self.path)? {
            Some(on_disk) => {
                if on_disk.bad_line.is_some() {
                    self.rewrite = true;
                    self.bad_journal = true;
                }
                self.seen = Some(on_disk.seen);
                self.adopt(on_disk.file);
            }
            None => {
                if self.seen.is_some() {
                    self.lost = true;
                }
                self.seen = Some(Seen::default());
                self.adopt(StateFile::default());
            }
        }
        Ok(())
    }

    fn adopt(&mut self, file: StateFile) {
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
        self.presence = None;
        let mut spend = file.spend;
        for (day, routes) in &self.spend_added {
            for (route, usd) in routes {
                add_spend_to(&mut spend, day, route, *usd);
            }
        }
        self.spend = spend;
    }

    /// After the files were lost: what this process knows and `file` lacks becomes this
    /// process's change, to be written back.
    fn keep_what_the_file_lacks(&mut self, file: &StateFile) {
        for id in self.tasks.keys() {
            if !file.tasks.contains_key(id) {
                self.changed.insert(id.clone());
            }
        }
        for (day, routes) in &self.spend {
            for (route, usd) in routes {
                let in_file = file.spend.get(day).is_some_and(|r| r.contains_key(route));
                let added = amount(&self.spend_added, day, route);
                if !in_file && *usd > added {
                    add_spend_to(&mut self.spend_added, day, route, usd - added);
                }
            }
        }
    }

    /// Has the next save write all of memory into `state.json` and remove the journal: a
    /// runtime that stops leaves the whole state in the one file every version reads.
    pub fn fold_on_next_save(&mut self) {
        self.rewrite = true;
    }

    /// Merges this process's changes into the files: the records it changed are appended to the
    /// journal (replacing, or removing, the files' records), every other record stays as
    /// another process wrote it, spend adds up. The caller holds the board's write lock, so no
    /// other process merges at the same time.
    pub fn save(&mut self) -> io::Result<()> {
        if self.changed.is_empty() && self.spend_added.is_empty() && !self.lost && !self.rewrite {
            return Ok(());
        }
        if let Err(e) = self.catch_up() {
            // `state.json` unreadable now (set aside at load if it was corrupt then): ours is
            // the truth.
            tracing::debug!(error = %e, "state files unreadable; writing a whole copy");
            self.rewrite = true;
        }
        if self.lost {
            // Nothing there to take in: all of ours goes back.
            self.adopt(StateFile::default());
        }
        let seen = self.seen.clone().unwrap_or_default();
        // A journal without its name (not one this store wrote) is never appended to: a new
        // journal would take its place and its lines with it.
        let unnamed = seen
            .journal
            .as_ref()
            .is_some_and(|m| m.name.is_none() && !m.absorbed);
        if self.rewrite || seen.state.is_none() || unnamed {
            return self.fold(seen.journal.as_ref());
        }
        let mark = self.append(seen.journal.as_ref())?;
        self.changed.clear();
        self.spend_added.clear();
        let outgrown = mark.len > FOLD_AFTER.max(seen.state.map_or(0, |s| s.len));
        self.seen = Some(Seen {
            journal: Some(mark),
            ..seen
        });
        if outgrown {
            let journal = self.seen.as_ref().and_then(|s| s.journal.clone());
            return self.fold(journal.as_ref());
        }
        Ok(())
    }

    /// The lines this process's changes add to the journal: one per record, then spend.
    fn lines(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for id in &self.changed {
            let line = TaskLine {
                task: id,
                record: self.tasks.get(id),
            };
            serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
            out.push(b'\n');
        }
        if !self.spend_added.is_empty() {
            // Totals, not increments: a line read twice must not count twice.
            let totals: SpendByDay = self
                .spend_added
                .iter()
                .map(|(day, routes)| {
                    let routes = routes
                        .keys()
                        .map(|r| (r.clone(), amount(&self.spend, day, r)))
                        .collect();
                    (day.clone(), routes)
                })
                .collect();
            serde_json::to_writer(&mut out, &SpendLine { spend: &totals })
                .map_err(io::Error::other)?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Appends this process's changes to the journal `read` (as this process last read it; a
    /// new journal when there is none or `state.json` absorbed it) and syncs it. Returns where
    /// the journal now ends.
    fn append(&mut self, read: Option<&Mark>) -> io::Result<Mark> {
        let read = read.filter(|m| !m.absorbed && m.name.is_some());
        let opened = match read {
            Some(m) => match OpenOptions::new().append(true).open(&self.journal) {
                Ok(f) if f.metadata()?.ino() == m.ino => Some((f, m.clone())),
                // Replaced since the read just made under this lock: never written over unread.
                Ok(_) => {
                    self.seen = None;
                    return Err(io::Error::other(format!(
                        "{} changed under the board's write lock",
                        self.journal.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (mut file, mut mark, created) = match opened {
            Some((f, m)) => (f, m, false),
            None => {
                // Absorbed, or not the one read: a fresh journal in its place, written whole
                // before it takes the name.
                let name = format!("{:016x}", crate::shell::lock::nonce());
                let mut head = Vec::new();
                serde_json::to_writer(&mut head, &NameLine { journal: &name })
                    .map_err(io::Error::other)?;
                head.push(b'\n');
                let tmp = self.journal.with_extension(format!("journal.{name}"));
                let mut f = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&tmp)?;
                f.write_all(&head)?;
                std::fs::rename(&tmp, &self.journal)?;
                let ino = f.metadata()?.ino();
                let mark = Mark {
                    ino,
                    len: head.len() as u64,
                    name: Some(name),
                    absorbed: false,
                };
                (f, mark, true)
            }
        };
        if file.metadata()?.len() > mark.len {
            // A line cut short by a writer that died (under this lock, so nobody is writing
            // it now): the next line starts where the last whole one ended.
            file.set_len(mark.len)?;
        }
        let out = self.lines()?;
        file.write_all(&out)?;
        file.sync_data()?;
        if created {
            sync_folder(&self.journal);
        }
        mark.len += out.len() as u64;
        Ok(mark)
    }

    /// Writes all of memory into `state.json`, naming the journal `absorbed` as taken in, then
    /// removes that journal (a journal with a line that is not a record is set aside instead).
    /// A crash between the two leaves a journal every reader passes over.
    fn fold(&mut self, absorbed: Option<&Mark>) -> io::Result<()> {
        let file = StateFileRef {
            version: 1,
            tasks: &self.tasks,
            spend: &self.spend,
            journal: absorbed.and_then(|m| m.name.as_deref()),
        };
        let json = serde_json::to_vec(&file).map_err(io::Error::other)?;
        crate::shell::fsio::atomic_write(&self.path, &json)?;
        self.changed.clear();
        self.spend_added.clear();
        self.rewrite = false;
        // Only the journal this process read goes: one it could not read stays, is not named as
        // absorbed, and is read by everyone, this process included.
        let read = absorbed.map(|m| m.ino);
        let unread = journal_end(&self.journal).is_some_and(|(ino, _)| Some(ino) != read);
        let bad = std::mem::take(&mut self.bad_journal);
        if !unread {
            let gone = if bad {
                let aside = aside_path(&self.journal);
                tracing::warn!(journal = %self.journal.display(), aside = %aside.display(), "a state journal line was not a record; set aside");
                std::fs::rename(&self.journal, aside)
            } else {
                std::fs::remove_file(&self.journal)
            };
            match gone {
                Ok(()) => sync_folder(&self.journal),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // `state.json` says the journal is absorbed: left there, it is passed over.
                Err(e) => {
                    tracing::debug!(error = %e, "could not remove the absorbed state journal")
                }
            }
            self.sweep_unnamed_journals();
        }
        self.seen = Some(Seen {
            state: FileStamp::at(&self.path),
            absorbed: file.journal.map(str::to_string),
            journal: None,
        });
        Ok(())
    }
}

impl Store {
    /// A new journal is written under a temporary name (`state.journal.<16 hex digits>`) and
    /// then renamed into place; one a crash left before its rename is removed here, under the
    /// write lock every writer of the journal holds.
    fn sweep_unnamed_journals(&self) {
        let (Some(dir), Some(stem)) = (
            self.journal.parent(),
            self.journal.file_name().and_then(|n| n.to_str()),
        ) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let unnamed = name
                .to_str()
                .and_then(|n| n.strip_prefix(stem))
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if unnamed {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// [`StateFile`] borrowed, for writing.
#[derive(Serialize)]
struct StateFileRef<'a> {
    version: u32,
    tasks: &'a BTreeMap<String, TaskRecord>,
    spend: &'a SpendByDay,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal: Option<&'a str>,
}

/// The journal's inode and length now, if it is there.
fn journal_end(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.ino(), m.len()))
}

/// Makes a file's creation or removal durable. Some filesystems cannot sync a folder: not fatal.
fn sync_folder(file: &Path) {
    if let Some(dir) = file.parent()
        && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
    {
        tracing::debug!(folder = %dir.display(), error = %e, "could not sync the state folder");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settle::SettlementKind;
    use crate::core::status::Status;

    /// What a fresh reader of the files finds, against what `store` holds.
    fn reads_back(store: &Store) {
        let on_disk = read_state(&store.path).unwrap().unwrap();
        assert_eq!(on_disk.file.tasks, store.tasks);
        assert_eq!(on_disk.file.spend, store.spend);
        assert!(on_disk.bad_line.is_none());
    }

    /// A board with a ready task of each of `ids`, in order.
    fn board_of<'a>(ids: impl IntoIterator<Item = &'a str>) -> Board {
        let tasks: Vec<(&str, &str)> = ids.into_iter().map(|id| (id, "ready")).collect();
        Board::parse(&text_of(&tasks))
    }

    /// A board's text: a task per `(id, status)`, in order.
    fn text_of(tasks: &[(&str, &str)]) -> String {
        (tasks.iter())
            .map(|(id, status)| format!("## {id} A task\n- status: {status}\n\n"))
            .collect()
    }

    fn journal_lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(journal_path(path))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A store in `dir` that saved task `id` with `attempts` (the first save writes
    /// `state.json`).
    fn saved(dir: &Path, id: &str, attempts: u32) -> (PathBuf, Store) {
        let path = dir.join("state.json");
        let (mut a, _) = Store::load(&path);
        a.record_mut(id).memory.attempts = attempts;
        a.save().unwrap();
        (path, a)
    }

    /// A store in `dir` whose `X-1` has `first` attempts in `state.json` and `then` in the
    /// journal.
    fn journaled(dir: &Path, first: u32, then: u32) -> (PathBuf, Store) {
        let (path, mut a) = saved(dir, "X-1", first);
        a.record_mut("X-1").memory.attempts = then;
        a.save().unwrap();
        assert!(journal_path(&path).exists());
        (path, a)
    }

    /// Bytes added at the journal's end, as a writer other than the store would.
    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(journal_path(path))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn every_save_reads_back_as_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (mut a, _) = Store::load(&path);
        let saved = |a: &mut Store| {
            a.save().unwrap();
            reads_back(a);
        };
        for n in 0..20 {
            a.record_mut(&format!("T-{n}")).memory.attempts = n;
        }
        a.record_mut("Q-\"1").review_feedback = Some("a \"quoted\"\nnote".into());
        saved(&mut a);
        // One record changed, one forgotten, one gone missing, spend added.
        a.record_mut("T-3").memory.attempts = 9;
        a.forget("T-4");
        let now = chrono::Utc::now();
        let ids: Vec<String> = a
            .tasks()
            .keys()
            .filter(|id| *id != "T-5")
            .cloned()
            .collect();
        a.note_presence(&board_of(ids.iter().map(String::as_str)), now);
        a.add_spend(day, "r", 0.25);
        saved(&mut a);
        a.add_spend(day, "r", 0.5);
        saved(&mut a);
        // Another process wrote meanwhile: both processes' records and spend are there.
        let (mut b, _) = Store::load(&path);
        b.record_mut("T-6").memory.attempts = 42;
        b.add_spend(day, "r", 1.0);
        b.save().unwrap();
        a.record_mut("T-7").memory.attempts = 7;
        saved(&mut a);
        assert_eq!(Store::peek(&path)["T-6"].memory.attempts, 42);
        assert_eq!(Store::peek(&path)["T-3"].memory.attempts, 9);
        assert!(!Store::peek(&path).contains_key("T-4"));
        assert_eq!(a.spend_on(day)["r"], 1.75);
        // Nothing changed: nothing written, and the next change still lands.
        saved(&mut a);
        a.record_mut("T-0").memory.attempts = 1;
        saved(&mut a);
        let (fresh, warning) = Store::load(&path);
        assert!(warning.is_none());
        assert_eq!(fresh.tasks, a.tasks);
        assert_eq!(fresh.spend_on(day)["r"], 1.75);
    }

    #[test]
    fn a_save_appends_only_what_changed_and_leaves_state_json_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (mut a, _) = Store::load(&path);
        for n in 0..300 {
            a.record_mut(&format!("T-{n}")).memory.attempts = 1;
        }
        a.save().unwrap();
        let whole = FileStamp::at(&path).unwrap();
        assert!(!journal_path(&path).exists());
        for round in 2..5 {
            a.record_mut("T-17").memory.attempts = round;
            a.save().unwrap();
        }
        // `state.json` untouched; the journal is its name and one line per save.
        assert_eq!(FileStamp::at(&path), Some(whole));
        let lines = journal_lines(&path);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0]["journal"].is_string());
        for (line, round) in lines[1..].iter().zip(2..) {
            assert_eq!(line["task"], "T-17");
            assert_eq!(line["record"]["attempts"], round);
        }
        reads_back(&a);
    }

    #[test]
    fn the_journal_is_folded_into_state_json_once_it_outgrows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = saved(dir.path(), "T-1", 1);
        let mut folds = 0;
        let mut longest = 0;
        for round in 0..2_000u32 {
            let before = FileStamp::at(&path);
            a.record_mut(&format!("T-{}", round % 50)).review_feedback =
                Some(format!("round {round} {}", "x".repeat(100)));
            a.save().unwrap();
            longest = longest.max(journal_end(&journal_path(&path)).map_or(0, |(_, len)| len));
            if FileStamp::at(&path) != before {
                folds += 1;
                assert!(!journal_path(&path).exists());
            }
        }
        assert!(folds >= 2, "{folds} folds");
        let state_len = std::fs::metadata(&path).unwrap().len();
        assert!(
            longest <= FOLD_AFTER.max(state_len) + 1024,
            "journal reached {longest}"
        );
        reads_back(&a);
    }

    #[test]
    fn a_journal_left_behind_by_a_fold_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = journaled(dir.path(), 1, 2);
        let old = std::fs::read(journal_path(&path)).unwrap();
        // The next save folds; a crash right after `state.json` is written leaves the journal.
        a.rewrite = true;
        a.record_mut("X-1").memory.attempts = 3;
        a.save().unwrap();
        assert!(!journal_path(&path).exists());
        std::fs::write(journal_path(&path), &old).unwrap();
        assert_eq!(Store::peek(&path)["X-1"].memory.attempts, 3);
        let (mut b, _) = Store::load(&path);
        assert_eq!(b.tasks["X-1"].memory.attempts, 3);
        a.refresh();
        assert_eq!(a.tasks["X-1"].memory.attempts, 3);
        // The next journal starts afresh in its place.
        b.record_mut("Y-1").memory.attempts = 1;
        b.save().unwrap();
        reads_back(&b);
        assert_eq!(Store::peek(&path)["X-1"].memory.attempts, 3);
        assert_eq!(journal_lines(&path).len(), 2);
        // A reader of the old one takes in the new one, and its next save keeps what it holds.
        a.refresh();
        assert_eq!(a.tasks["Y-1"].memory.attempts, 1);
        a.record_mut("Z-1").memory.attempts = 2;
        a.save().unwrap();
        reads_back(&a);
        assert_eq!(Store::peek(&path)["Y-1"].memory.attempts, 1);
    }

    #[test]
    fn a_line_cut_short_is_never_read_and_the_next_save_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = journaled(dir.path(), 1, 2);
        // A writer died in the middle of its line.
        append_raw(&path, br#"{"task":"X-1","record":{"attem"#);
        let (mut b, warning) = Store::load(&path);
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(b.tasks["X-1"].memory.attempts, 2);
        b.record_mut("X-2").memory.attempts = 5;
        b.save().unwrap();
        let lines = journal_lines(&path);
        assert_eq!(lines.last().unwrap()["task"], "X-2");
        reads_back(&b);
        a.refresh();
        assert_eq!(a.tasks["X-2"].memory.attempts, 5);
    }

    #[test]
    fn a_line_that_is_not_a_record_is_set_aside_and_the_lines_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = journaled(dir.path(), 1, 5);
        append_raw(
            &path,
            b"{\"nonsense\":1}\n{\"task\":\"Y-1\",\"record\":{\"attempts\":9}}\n",
        );
        let (mut b, warning) = Store::load(&path);
        let warning = warning.unwrap();
        assert!(
            warning.contains("state.journal") && warning.contains("line 3"),
            "{warning}"
        );
        assert_eq!(b.tasks["X-1"].memory.attempts, 5);
        assert!(!b.tasks.contains_key("Y-1"));
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("state.journal.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        // The next save writes a whole copy: what the journal held survives it.
        b.save().unwrap();
        assert!(!journal_path(&path).exists());
        assert_eq!(Store::peek(&path)["X-1"].memory.attempts, 5);
    }

    #[test]
    fn a_new_journal_a_crash_left_unnamed_is_removed_by_the_next_fold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let unnamed = dir.path().join("state.journal.0123456789abcdef");
        let kept = dir.path().join("state.journal.corrupt-20261201T000000");
        std::fs::write(&unnamed, "{\"journal\":\"0123456789abcdef\"}\n").unwrap();
        std::fs::write(&kept, "not a record\n").unwrap();
        let (mut a, _) = Store::load(&path);
        a.record_mut("X-1").memory.attempts = 1;
        a.save().unwrap();
        assert!(!unnamed.exists());
        assert!(kept.exists());
        reads_back(&a);
    }

    #[test]
    fn the_lines_of_a_journal_without_its_name_survive_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = journaled(dir.path(), 1, 2);
        std::fs::write(
            journal_path(&path),
            "{\"task\":\"Y-1\",\"record\":{\"attempts\":4}}\n",
        )
        .unwrap();
        let (mut b, warning) = Store::load(&path);
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(b.tasks["Y-1"].memory.attempts, 4);
        b.record_mut("Z-1").memory.attempts = 1;
        b.save().unwrap();
        let file = Store::peek(&path);
        assert_eq!(file["Y-1"].memory.attempts, 4);
        assert_eq!(file["Z-1"].memory.attempts, 1);
    }

    #[test]
    fn a_fold_asked_for_leaves_everything_in_state_json() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = journaled(dir.path(), 1, 2);
        a.fold_on_next_save();
        a.save().unwrap();
        assert!(!journal_path(&path).exists());
        let whole: StateFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(whole.tasks["X-1"].memory.attempts, 2);
    }

    #[test]
    fn a_journal_removed_by_hand_loses_nothing_this_process_knows() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = journaled(dir.path(), 1, 3);
        std::fs::remove_file(journal_path(&path)).unwrap();
        assert_eq!(Store::peek(&path)["X-1"].memory.attempts, 1);
        a.refresh();
        assert_eq!(a.tasks["X-1"].memory.attempts, 3);
        a.save().unwrap();
        assert_eq!(Store::peek(&path)["X-1"].memory.attempts, 3);
    }

    #[test]
    fn a_refresh_takes_in_another_process_s_lines_but_not_over_unsaved_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut a) = saved(dir.path(), "X-1", 1);
        let (mut b, _) = Store::load(&path);
        a.record_mut("Y-1").memory.attempts = 7;
        b.record_mut("X-1").memory.attempts = 2;
        b.record_mut("Y-1").memory.attempts = 1;
        b.forget("X-1");
        b.record_mut("Z-1").memory.attempts = 4;
        b.save().unwrap();
        a.refresh();
        assert!(!a.tasks.contains_key("X-1"));
        assert_eq!(a.tasks["Y-1"].memory.attempts, 7);
        assert_eq!(a.tasks["Z-1"].memory.attempts, 4);
        a.save().unwrap();
        reads_back(&a);
        b.refresh();
        assert_eq!(b.tasks, a.tasks);
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
        store.note_presence(&board_of([]), t0);
        assert_eq!(store.tasks()["A-1"].memory.attempts, 2);
        store.note_presence(&board_of(["A-1"]), t0 + chrono::TimeDelta::hours(1));
        assert_eq!(store.tasks()["A-1"].missing_since, None);
        store.note_presence(&board_of([]), t0 + chrono::TimeDelta::hours(2));
        store.note_presence(&board_of([]), t0 + chrono::TimeDelta::hours(20));
        assert!(store.tasks().contains_key("A-1"));
        store.note_presence(&board_of([]), t0 + chrono::TimeDelta::hours(27));
        assert!(!store.tasks().contains_key("A-1"));
    }

    #[test]
    fn a_record_whose_ending_waits_survives_any_absence_and_goes_a_day_after_it_lands() {
        // A branch without the task, checked out for a week while its run ended: the ending
        // waits for the task to come back, however long that takes.
        let path = std::env::temp_dir().join(format!(
            "taskboard-state-ending-{}.json",
            std::process::id()
        ));
        let (mut store, _) = Store::load(&path);
        store.record_mut("A-1").hold_ending(
            1,
            &Status::parse("running:tb:2026-04-20T15:00:00Z").unwrap(),
            &Status::Done,
            SettlementKind::Finished,
            None,
        );
        let t0 = Utc::now();
        let day = chrono::TimeDelta::days(1);
        for days in [0, 1, 2, 7, 30] {
            store.note_presence(&board_of([]), t0 + day * days);
            assert!(
                store.tasks()["A-1"].ending.is_some(),
                "the ending was dropped after {days} days away"
            );
        }
        // Written at last (the task was back for that pass), then gone again: an ordinary record.
        store.note_presence(&board_of(["A-1"]), t0 + day * 31);
        store.record_mut("A-1").ending = None;
        store.note_presence(&board_of([]), t0 + day * 32);
        assert!(store.tasks().contains_key("A-1"));
        store.note_presence(&board_of([]), t0 + day * 33);
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

    #[test]
    fn presence_noted_on_a_board_with_the_same_ids_is_presence_noted_on_a_fresh_parse() {
        // Two stores go through the same steps. One is shown the board as the runtime keeps it,
        // re-parsed from the one before (the same IDs keep its generation, so only the records
        // missing before or made since are looked up); the other a fresh parse of the same
        // text each time (a new generation: every record is looked up). Their records, and
        // what they mark as changed, must be the same after every look.
        let dir =
            std::env::temp_dir().join(format!("taskboard-state-presence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (kept_path, fresh_path) = (dir.join("kept.json"), dir.join("fresh.json"));
        let (mut kept, _) = Store::load(&kept_path);
        let (mut fresh, _) = Store::load(&fresh_path);
        let t0 = Utc::now();
        let hours = chrono::TimeDelta::hours;
        let first = text_of(&[("A-1", "ready"), ("B-2", "ready")]);
        let mut shown = (first.clone(), Board::parse(&first));
        let mut fast_looks = 0;
        let mut look = |kept: &mut Store, fresh: &mut Store, next: String, now| {
            let (text, board) = std::mem::replace(&mut shown, (String::new(), Board::parse("")));
            let generation = board.ids_generation();
            let board = board.reparse(&text, &next);
            fast_looks += usize::from(board.ids_generation() == generation);
            kept.note_presence(&board, now);
            fresh.note_presence(&Board::parse(&next), now);
            assert_eq!(kept.tasks, fresh.tasks, "at {next:?}");
            assert_eq!(kept.changed, fresh.changed, "at {next:?}");
            shown = (next, board);
            fast_looks
        };
        for store in [&mut kept, &mut fresh] {
            store.record_mut("A-1").memory.attempts = 1;
            store.record_mut("B-2").memory.attempts = 1;
        }
        look(&mut kept, &mut fresh, first, t0);
        // A record made for a task not on the board, while the IDs stay.
        for store in [&mut kept, &mut fresh] {
            store.record_mut("C-3").memory.attempts = 1;
        }
        let next = text_of(&[("A-1", "done"), ("B-2", "ready")]);
        look(&mut kept, &mut fresh, next, t0 + hours(1));
        assert!(kept.tasks["C-3"].missing_since.is_some());
        // A record forgotten and made again for a task on the board.
        for store in [&mut kept, &mut fresh] {
            store.forget("B-2");
            store.record_mut("B-2").memory.attempts = 2;
        }
        let next = text_of(&[("A-1", "done"), ("B-2", "done")]);
        look(&mut kept, &mut fresh, next, t0 + hours(2));
        // Missing for a day: dropped on a board whose IDs did not change.
        let next = text_of(&[("A-1", "ready"), ("B-2", "done")]);
        look(&mut kept, &mut fresh, next, t0 + hours(26));
        assert!(!kept.tasks.contains_key("C-3"));
        // An ID changed: a new generation, every record looked up.
        let next = text_of(&[("A-9", "ready"), ("B-2", "done")]);
        look(&mut kept, &mut fresh, next, t0 + hours(27));
        assert!(kept.tasks["A-1"].missing_since.is_some());
        // Records from the files, written by another process: a whole state file, then a
        // journal line. Neither is on the board.
        for (step, id) in ["D-4", "E-5"].into_iter().enumerate() {
            for (store, path) in [(&mut kept, &kept_path), (&mut fresh, &fresh_path)] {
                let (mut other, _) = Store::load(path);
                other.record_mut(id).memory.attempts = 1;
                other.save().unwrap();
                store.refresh();
                assert!(store.tasks.contains_key(id), "{id} not read in");
            }
            let status = ["ready", "done"][step];
            let next = text_of(&[("A-9", status), ("B-2", "done")]);
            look(&mut kept, &mut fresh, next, t0 + hours(28 + step as i64));
            assert!(
                kept.tasks[id].missing_since.is_some(),
                "{id} not noted missing"
            );
        }
        // Back on the board: a new generation again.
        let next = text_of(&[("A-1", "ready"), ("B-2", "done"), ("D-4", "ready")]);
        let fast_looks = look(&mut kept, &mut fresh, next, t0 + hours(30));
        assert_eq!(kept.tasks["A-1"].missing_since, None);
        assert_eq!(kept.tasks["D-4"].missing_since, None);
        assert_eq!(
            fast_looks, 6,
            "the steps that keep the IDs kept the generation"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
