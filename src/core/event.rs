//! The events of `events.jsonl` as types: every decision the runtime makes, and the one printer
//! and parser of a line.
//!
//! Owns: the wire format (one JSON object per line, keys `ts`, `event`, `task`, then the event's
//! own fields in declaration order, `None` fields omitted) and the human one-line form. Beside
//! the typed [`Event`], the lenient views of a line for readers that must take lines of any
//! version: [`Record`] (the fields statistics and followers use, borrowed), [`Head`] (the
//! event name and task alone) and [`Fields`] (every field, untyped, for printing what this version does not
//! know).
//!
//! Must not touch: files, clocks or any decision about what happened. Callers build the events;
//! `shell::event_log` appends, rotates and reads them.

use std::borrow::Cow;
use std::fmt;

use crate::core::remote::Placement;
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
        /// `"run"` or `"once"`, as in the matching `runtime_started`: a `once` finishing beside
        /// a serving `run` must not read as the service stopping. Absent in older logs.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        mode: Option<String>,
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
        /// The executor's pid on this machine; absent for a remote run.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pid: Option<u32>,
        agent: String,
        /// `review` for a review run; absent for the task's own run.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        phase: Option<String>,
        /// Where a remote run went; absent for a local one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        remote: Option<Placement>,
    },
    /// A remote run left the queue and started on a node (Slurm).
    RemoteRunning {
        attempt: u32,
        remote: Placement,
    },
    /// A runtime that started after another died took over that one's remote run: it waits
    /// for it (`finished` false) or takes the result it already left (`finished` true).
    RunAdopted {
        attempt: u32,
        remote: Placement,
        finished: bool,
    },
    /// An SSH host could not be reached: no new run goes to it until `until`.
    HostDown {
        route: String,
        host: String,
        until: DateTime<Utc>,
        reason: String,
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
        #[serde(skip_serializing_if = "Option::is_none", default)]
        phase: Option<String>,
        /// As reported by the executor in its result file.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cost_usd: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        tokens_in: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        tokens_out: Option<u64>,
        /// The handoffs file this attempt's section was appended to.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        handoff: Option<String>,
        /// Files git saw change during the run (repository-relative), when in a work tree.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        changed: Option<Vec<String>>,
    },
    /// What the executor claimed it changed differs from what git saw.
    EvidenceMismatch {
        attempt: u32,
        claimed_not_seen: Vec<String>,
        seen_not_claimed: Vec<String>,
        /// Files git saw change that the task's `touches:` does not cover.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        outside_touches: Option<Vec<String>>,
    },
    /// An isolated run's git worktree is ready (made, or found whole from an earlier try).
    WorkspaceCreated {
        attempt: u32,
        /// The repository's name in `[repos]`; absent for the route's one repository.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repo: Option<String>,
        path: String,
        branch: String,
        base_branch: String,
        base_commit: String,
    },
    /// What an isolated run changed, kept under `refs/taskboard/` and in its run folder.
    SnapshotSaved {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repo: Option<String>,
        #[serde(rename = "ref")]
        snapshot_ref: String,
        commit: String,
        files: u64,
        insertions: u64,
        deletions: u64,
    },
    /// A successful isolated run waits for a person to approve or reject its change.
    ApprovalRequested {
        attempt: u32,
    },
    /// An approved change landed on its base branch.
    Merged {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repo: Option<String>,
        commit: String,
        into: String,
        strategy: String,
    },
    /// An approval could not land; the task keeps waiting.
    MergeRefused {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repo: Option<String>,
        reason: String,
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        conflicts: Vec<String>,
    },
    /// A person rejected the change: the task is ready again with the note in its packet.
    Rejected {
        attempt: u32,
        note: String,
    },
    /// An isolated run's worktree and branch are gone (its snapshot stays).
    WorkspaceRemoved {
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repo: Option<String>,
        path: String,
        /// `merged`, `rejected`, `expired` or `failed`.
        reason: String,
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
    /// A due task waits: the running task `by` declares `touches:` that overlap its own.
    TaskHeld {
        by: String,
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
    /// A save that landed in the board just after the runtime replaced it (an editor's `open`
    /// made before the replacement, its write after) was put back in the board's place. When
    /// the board had changed again since, the save is kept beside it instead, and an `error`
    /// (context `writeback`) names the file.
    SavePutBack {},
    /// An attempt's ending could not be written yet; it is kept and written once it can be.
    EndingKept {
        attempt: u32,
        wanted: String,
        reason: String,
    },
    ConfigReloaded {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        path: Option<String>,
    },
    /// A route reached its daily budget; its ready tasks wait for the next UTC day.
    BudgetExhausted {
        route: String,
        spent_usd: f64,
        budget_usd: f64,
        waiting: usize,
    },
    /// One run reported more than its route's `max_cost_usd`.
    CostOverCap {
        route: String,
        attempt: u32,
        cost_usd: f64,
        cap_usd: f64,
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
            EventKind::TaskHeld { .. } => "task_held",
            EventKind::DependencyPromoted { .. } => "dependency_promoted",
            EventKind::StaleClaimReset { .. } => "stale_claim_reset",
            EventKind::LockBroken { .. } => "lock_broken",
            EventKind::Lint { .. } => "lint",
            EventKind::Writeback { .. } => "writeback",
            EventKind::WritebackConflict { .. } => "writeback_conflict",
            EventKind::StatusReasserted { .. } => "status_reasserted",
            EventKind::EndingKept { .. } => "ending_kept",
            EventKind::SavePutBack { .. } => "save_put_back",
            EventKind::ConfigReloaded { .. } => "config_reloaded",
            EventKind::RetryRequested { .. } => "retry_requested",
            EventKind::BudgetExhausted { .. } => "budget_exhausted",
            EventKind::CostOverCap { .. } => "cost_over_cap",
            EventKind::EvidenceMismatch { .. } => "evidence_mismatch",
            EventKind::WorkspaceCreated { .. } => "workspace_created",
            EventKind::SnapshotSaved { .. } => "snapshot_saved",
            EventKind::ApprovalRequested { .. } => "approval_requested",
            EventKind::Merged { .. } => "merged",
            EventKind::MergeRefused { .. } => "merge_refused",
            EventKind::Rejected { .. } => "rejected",
            EventKind::WorkspaceRemoved { .. } => "workspace_removed",
            EventKind::RemoteRunning { .. } => "remote_running",
            EventKind::RunAdopted { .. } => "run_adopted",
            EventKind::HostDown { .. } => "host_down",
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

// ----- lenient views, for lines of any version -----

/// A JSON string borrowed from the line when it has no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The fields of an event line that statistics and followers need, borrowed from the line: every
/// other field is ignored and any event name is accepted, so lines from an older or newer version
/// read as far as they agree with [`EventKind`].
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow)]
    pub ts: Str<'a>,
    #[serde(borrow)]
    pub event: Str<'a>,
    #[serde(borrow, default)]
    pub task: Option<Str<'a>>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(borrow, default)]
    pub route: Option<Str<'a>>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(borrow, default)]
    pub outcome: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub note: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub path: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub status: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub phase: Option<Str<'a>>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub tokens_in: Option<u64>,
    #[serde(default)]
    pub tokens_out: Option<u64>,
    #[serde(default)]
    pub spent_usd: Option<f64>,
    #[serde(default)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub cap_usd: Option<f64>,
    #[serde(default)]
    pub waiting: Option<u64>,
    #[serde(borrow, default)]
    pub archived: Option<Str<'a>>,
    /// Where a remote run went (`task_dispatched`, `remote_running`, `run_adopted`).
    #[serde(borrow, default)]
    pub remote: Option<RecordPlace<'a>>,
    /// The host of a `host_down`.
    #[serde(borrow, default)]
    pub host: Option<Str<'a>>,
}

/// The fields of a [`Placement`] that statistics use, borrowed from the line.
#[derive(Debug, Deserialize)]
pub struct RecordPlace<'a> {
    #[serde(borrow, default)]
    pub runner: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub host: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub job_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub node: Option<Str<'a>>,
}

impl<'a> Record<'a> {
    /// Read the fields of one line; `Err` when it is not a JSON object with a string `ts` and
    /// `event`, or a known field has the wrong type.
    pub fn from_line(line: &'a [u8]) -> Result<Record<'a>, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// The envelope of a line, each key optional: enough to filter lines by task and event name.
#[derive(Debug, Default, Deserialize)]
pub struct Head<'a> {
    #[serde(borrow, default)]
    pub event: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub task: Option<Str<'a>>,
}

impl<'a> Head<'a> {
    /// The envelope of one line; `Err` when it is not a JSON object (or a key is not a string).
    pub fn from_line(line: &'a [u8]) -> Result<Head<'a>, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// Every field of a line, untyped, in the line's order of keys as `serde_json` keeps them.
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// Read every field of one line; `Err` when it is not a JSON object.
pub fn fields_of(line: &[u8]) -> Result<Fields, serde_json::Error> {
    serde_json::from_slice(line)
}

impl Event {
    /// Every field of the event, as [`fields_of`] reads them back from its line, without
    /// printing and parsing the line.
    pub fn fields(&self) -> Fields {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => Fields::new(),
        }
    }

    /// The event's own fields as a line of this version writes them, without `ts`, `event` and
    /// `task`.
    pub fn own_fields(&self) -> Fields {
        let mut fields = self.fields();
        for key in ["ts", "event", "task"] {
            fields.remove(key);
        }
        fields
    }
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
