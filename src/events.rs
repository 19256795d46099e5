//! The event log: typed events, the one printer and parser of an `events.jsonl` line, the appender
//! and a reader that tolerates what a crash leaves behind.
//!
//! Owns: the wire format of `events.jsonl` (one JSON object per line, keys `ts`, `event`, `task`,
//! then the event's own fields in declaration order, `None` fields omitted) and the way lines reach
//! the file (each line built whole, then one `write_all` on an `O_APPEND` descriptor, so lines from
//! concurrent writers never interleave).
//!
//! Must not touch: the board file, locks, or any decision about what happened. Callers build the
//! events; this module only prints, appends and reads them. It never rotates or truncates the log.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::de::Deserializer;
use serde::ser::{Error as _, Impossible, SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// One line of `events.jsonl`.
///
/// `ts` is printed with millisecond precision; [`Event::new`] truncates it to milliseconds so that
/// `Event::from_line(&e.to_line()) == e` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts: DateTime<Utc>,
    /// The task id, only when the event concerns a task.
    pub task: Option<String>,
    pub kind: EventKind,
}

/// What happened. The serde tag (`event`) is the snake_case variant name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RuntimeStarted {
        pid: u32,
        instance: String,
        version: String,
        board: String,
        /// `"run"` or `"once"`.
        mode: String,
    },
    RuntimeStopped {
        reason: String,
    },
    FileChanged {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        latency_ms: Option<u64>,
        bytes: u64,
    },
    Pass {
        tasks: usize,
        duration_us: u64,
        dispatched: usize,
    },
    TaskDispatched {
        attempt: u32,
        route: String,
        pid: u32,
        agent: String,
    },
    TaskFinished {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        exit_code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signal: Option<i32>,
        duration_ms: u64,
        /// The status written back, e.g. `"done"`, `"failed:exit_3"`.
        outcome: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        note: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stopped: Option<String>,
    },
    TaskRetryScheduled {
        attempt: u32,
        at: DateTime<Utc>,
    },
    TaskDeadlettered {
        attempts: u32,
        path: String,
    },
    TaskInterrupted {
        attempt: u32,
    },
    TaskCancelled {
        status: String,
    },
    DependencyPromoted {
        deps: Vec<String>,
    },
    StaleClaimReset {
        status: String,
        reason: String,
        attempt: u32,
    },
    LockBroken {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        owner_pid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        owner_instance: Option<String>,
        reason: String,
    },
    Lint {
        code: String,
        severity: String,
        line: usize,
        column: usize,
        message: String,
    },
    Writeback {
        tasks: Vec<String>,
        bytes: u64,
    },
    WritebackConflict {
        expected: String,
        found: String,
        wanted: String,
    },
    StatusReasserted {
        status: String,
        replaced: String,
    },
    ConfigReloaded {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        path: Option<String>,
    },
    /// `taskboard retry` set the task back to ready from `from`.
    RetryRequested {
        from: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        archived: Option<String>,
    },
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        context: Option<String>,
    },
}

impl Event {
    /// A new event; `ts` is truncated to milliseconds (the printed precision).
    pub fn new(ts: DateTime<Utc>, task: Option<&str>, kind: EventKind) -> Event {
        Event {
            ts: ts.trunc_subsecs(3),
            task: task.map(str::to_owned),
            kind,
        }
    }

    /// The `event` name written on the line.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The line as written to `events.jsonl`, without the trailing newline.
    pub fn to_line(&self) -> String {
        // Serializing plain data into a String cannot fail: every key is a string and no value
        // has a fallible Serialize.
        serde_json::to_string(self).expect("an event always serializes")
    }

    /// Parse one line (with or without trailing newline). Unknown event names are errors.
    pub fn from_line(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

impl EventKind {
    /// The snake_case name used as the `event` tag.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RuntimeStarted { .. } => "runtime_started",
            EventKind::RuntimeStopped { .. } => "runtime_stopped",
            EventKind::FileChanged { .. } => "file_changed",
            EventKind::Pass { .. } => "pass",
            EventKind::TaskDispatched { .. } => "task_dispatched",
            EventKind::TaskFinished { .. } => "task_finished",
            EventKind::TaskRetryScheduled { .. } => "task_retry_scheduled",
            EventKind::TaskDeadlettered { .. } => "task_deadlettered",
            EventKind::TaskInterrupted { .. } => "task_interrupted",
            EventKind::TaskCancelled { .. } => "task_cancelled",
            EventKind::DependencyPromoted { .. } => "dependency_promoted",
            EventKind::StaleClaimReset { .. } => "stale_claim_reset",
            EventKind::LockBroken { .. } => "lock_broken",
            EventKind::Lint { .. } => "lint",
            EventKind::Writeback { .. } => "writeback",
            EventKind::WritebackConflict { .. } => "writeback_conflict",
            EventKind::StatusReasserted { .. } => "status_reasserted",
            EventKind::ConfigReloaded { .. } => "config_reloaded",
            EventKind::RetryRequested { .. } => "retry_requested",
            EventKind::Error { .. } => "error",
        }
    }
}

/// Format a timestamp the way the log does: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("ts", &format_ts(&self.ts))?;
        // The derived Serialize of an internally tagged struct variant calls serialize_struct,
        // then serialize_field for the tag, then each field in declaration order (skip_field for
        // omitted ones). `Splice` forwards those calls into our map, putting `task` after the tag.
        self.kind.serialize(Splice {
            map: &mut map,
            task: self.task.as_deref(),
        })?;
        map.end()
    }
}

/// Forwards the fields of an `EventKind` into the enclosing map of an `Event`.
struct Splice<'a, M> {
    map: &'a mut M,
    task: Option<&'a str>,
}

macro_rules! only_structs {
    ($($method:ident($($arg:ty),*);)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<(), M::Error> {
                Err(M::Error::custom("an event kind must serialize as a struct"))
            }
        )*
    };
}

impl<M: SerializeMap> Serializer for Splice<'_, M> {
    type Ok = ();
    type Error = M::Error;
    type SerializeSeq = Impossible<(), M::Error>;
    type SerializeTuple = Impossible<(), M::Error>;
    type SerializeTupleStruct = Impossible<(), M::Error>;
    type SerializeTupleVariant = Impossible<(), M::Error>;
    type SerializeMap = Impossible<(), M::Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), M::Error>;

    only_structs! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, M::Error> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, M::Error> {
        Err(M::Error::custom("an event kind must serialize as a struct"))
    }
}

impl<M: SerializeMap> SerializeStruct for Splice<'_, M> {
    type Ok = ();
    type Error = M::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        if key == "ts" || key == "task" {
            return Err(M::Error::custom(format!(
                "event field `{key}` collides with the envelope"
            )));
        }
        self.map.serialize_entry(key, value)?;
        if key == "event"
            && let Some(task) = self.task.take()
        {
            self.map.serialize_entry("task", task)?;
        }
        Ok(())
    }

    fn end(self) -> Result<(), M::Error> {
        Ok(())
    }
}

/// The wire shape for parsing: the envelope keys plus the tagged kind.
#[derive(Deserialize)]
struct Wire {
    ts: DateTime<Utc>,
    #[serde(default)]
    task: Option<String>,
    #[serde(flatten)]
    kind: EventKind,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        let Wire { ts, task, kind } = Wire::deserialize(deserializer)?;
        Ok(Event { ts, task, kind })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

/// Appends events to `events.jsonl`. Shareable across threads (`&self` methods); several
/// `EventLog`s, in one process or many, may append to the same file at once.
#[derive(Debug)]
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Open (creating with mode 0644 if missing) for appending. Does not create parent folders.
    pub fn open(path: impl AsRef<Path>) -> io::Result<EventLog> {
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o644);
        }
        let mut file = options.open(path)?;
        // A crash mid-append can leave a last line without its newline: end it, or our first
        // line would share a line with the torn bytes and be lost to every reader.
        if ends_torn(&mut file)? {
            file.write_all(b"\n")?;
        }
        Ok(EventLog { file })
    }

    /// Append one event as one line, with a single `write_all` of the whole line.
    pub fn append(&self, ev: &Event) -> io::Result<()> {
        let mut line = ev.to_line();
        line.push('\n');
        (&self.file).write_all(line.as_bytes())
    }

    /// Append events in order, each line with its own single write.
    pub fn append_all(&self, evs: &[Event]) -> io::Result<()> {
        evs.iter().try_for_each(|ev| self.append(ev))
    }
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_torn(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Everything read from a log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRead {
    pub events: Vec<Event>,
    /// Lines that could not be parsed (1-based line number, error), excluding a torn tail.
    pub bad_lines: Vec<(usize, String)>,
    /// The last line had no trailing newline and did not parse: a write cut short by a crash.
    pub torn_tail: bool,
}

/// What [`for_each_event`] saw besides the events it handed over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogScan {
    /// Number of events handed to the callback.
    pub events: usize,
    pub bad_lines: Vec<(usize, String)>,
    pub torn_tail: bool,
}

/// Read the whole log into memory. See [`for_each_event`] for the rules.
pub fn read_log(path: impl AsRef<Path>) -> io::Result<LogRead> {
    let mut events = Vec::new();
    let scan = for_each_event(path, |ev| events.push(ev))?;
    Ok(LogRead {
        events,
        bad_lines: scan.bad_lines,
        torn_tail: scan.torn_tail,
    })
}

/// Stream the log, calling `f` for each good event in file order, holding one line at a time.
///
/// Blank lines are skipped. A line that does not parse (bad JSON, invalid UTF-8, unknown event
/// name) is skipped and reported in `bad_lines`, except the last line when it has no trailing
/// newline: that is a torn tail, skipped and flagged with `torn_tail`. A last line without newline
/// that parses is accepted. Only I/O errors are errors.
pub fn for_each_event(path: impl AsRef<Path>, mut f: impl FnMut(Event)) -> io::Result<LogScan> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut scan = LogScan::default();
    let mut buf = Vec::with_capacity(512);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let terminated = buf.last() == Some(&b'\n');
        let parsed = match std::str::from_utf8(&buf) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => Event::from_line(text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("invalid UTF-8: {e}")),
        };
        match parsed {
            Ok(ev) => {
                scan.events += 1;
                f(ev);
            }
            Err(_) if !terminated => scan.torn_tail = true,
            Err(e) => scan.bad_lines.push((line_no, e)),
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn task_goes_right_after_event() {
        let ts = Utc.with_ymd_and_hms(2026, 4, 20, 15, 25, 3).unwrap();
        let ev = Event::new(ts, Some("t1"), EventKind::TaskInterrupted { attempt: 2 });
        assert_eq!(
            ev.to_line(),
            r#"{"ts":"2026-04-20T15:25:03.000Z","event":"task_interrupted","task":"t1","attempt":2}"#
        );
    }
}
