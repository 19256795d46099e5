//! The typed status grammar: one parser ([`Status::parse`]) and one printer (`Display`).
//!
//! Owns the token syntax only: the statuses, their timestamps ([`Stamp`]), the coarse [`State`]
//! each counts under, and what a task ID may be ([`is_task_id`]). It knows nothing of boards,
//! files or clocks; whether a transition
//! is allowed is the planner's business, and where a token sits in a file is the board's.
//!
//! ```text
//! ready
//! blocked:<who>:<reason>          waits on a person or thing
//! blocked:task:<ID>[,<ID>…]       waits on tasks; promoted to ready when all are done
//! blocked:retry:<UTC time>        waits for an automatic retry (written by the runtime)
//! running:<agent>:<UTC time>      claimed; time is YYYY-MM-DDTHH:MMZ or YYYY-MM-DDTHH:MM:SSZ
//! done
//! failed:<reason>
//! awaiting-approval               an isolated run's change waits for a person (runtime writes it)
//! approved                        a person's yes: the runtime lands the change, then writes done
//! rejected[:<note>]               a person's no: back to ready with the note (none: no note)
//! ```
//!
//! A rejection without a note is `rejected`; `rejected:` with nothing after it is refused (it
//! would print back as `rejected`). A note follows the reason rules (no surrounding spaces,
//! backticks or control characters); [`Status::rejected`] makes any text safe.
//!
//! For every valid token `s`, `Status::parse(s)?.to_string() == s`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// A task's status, as written in its `status:` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Ready,
    /// Waits on a person or a thing outside the board.
    Blocked {
        who: String,
        reason: String,
    },
    /// Waits until every listed task is `done`.
    BlockedOnTasks(Vec<String>),
    /// Waits for an automatic retry at the given time.
    RetryAt(Stamp),
    /// Claimed by an agent at the given time.
    Running {
        agent: String,
        since: Stamp,
    },
    Done,
    Failed {
        reason: String,
    },
    /// A successful isolated run's change waits for a person to approve or reject it. Only the
    /// runtime writes it.
    AwaitingApproval,
    /// A person approved the change waiting for approval: the runtime lands it.
    Approved,
    /// A person rejected the change waiting for approval: the task goes back to ready with the
    /// note (empty: none) in its next packet.
    Rejected {
        note: String,
    },
}

/// Which status a status is, without its parts: what a walk over every task of a long board
/// asks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Ready,
    Blocked,
    BlockedOnTasks,
    RetryAt,
    Running,
    Done,
    Failed,
    AwaitingApproval,
    Approved,
    Rejected,
}

impl Status {
    pub fn kind(&self) -> StatusKind {
        match self {
            Status::Ready => StatusKind::Ready,
            Status::Blocked { .. } => StatusKind::Blocked,
            Status::BlockedOnTasks(_) => StatusKind::BlockedOnTasks,
            Status::RetryAt(_) => StatusKind::RetryAt,
            Status::Running { .. } => StatusKind::Running,
            Status::Done => StatusKind::Done,
            Status::Failed { .. } => StatusKind::Failed,
            Status::AwaitingApproval => StatusKind::AwaitingApproval,
            Status::Approved => StatusKind::Approved,
            Status::Rejected { .. } => StatusKind::Rejected,
        }
    }
}

/// The coarse state of a status, for counting and for the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Ready,
    Blocked,
    Running,
    Done,
    Failed,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Ready,
        State::Running,
        State::Blocked,
        State::Done,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Blocked => "blocked",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
}

/// A UTC time as written in a status, keeping its precision so it prints back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub precision: StampPrecision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StampPrecision {
    Minute,
    Second,
}

impl Stamp {
    /// A second-precision stamp (sub-second part dropped), the form the runtime writes.
    pub fn seconds(at: DateTime<Utc>) -> Stamp {
        let at = at.with_nanosecond(0).unwrap_or(at);
        Stamp {
            at,
            precision: StampPrecision::Second,
        }
    }

    fn parse(s: &str) -> Result<Stamp, String> {
        let body = s.strip_suffix('Z').ok_or_else(|| {
            format!("time `{s}` must be UTC and end in `Z` (e.g. 2026-04-20T15:25Z)")
        })?;
        let (date, time) = body
            .split_once('T')
            .ok_or_else(|| format!("time `{s}` must look like 2026-04-20T15:25Z"))?;
        let precision = match time.len() {
            5 => StampPrecision::Minute,
            8 => StampPrecision::Second,
            _ => {
                return Err(format!(
                    "time `{s}` must have minute or second precision (HH:MM or HH:MM:SS)"
                ));
            }
        };
        let strict_digits = |part: &str| {
            part.bytes()
                .enumerate()
                .all(|(i, b)| matches!((i, b), (4 | 7, b'-')) || b.is_ascii_digit())
        };
        if date.len() != 10 || !strict_digits(date) {
            return Err(format!("date in `{s}` must be YYYY-MM-DD"));
        }
        let date =
            calendar_date(date).ok_or_else(|| format!("`{s}` is not a real calendar date"))?;
        let time_ok = time.bytes().enumerate().all(|(i, b)| {
            if i % 3 == 2 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
        let time = if time_ok { time_of_day(time) } else { None }
            .ok_or_else(|| format!("time of day in `{s}` is not valid"))?;
        Ok(Stamp {
            at: NaiveDateTime::new(date, time).and_utc(),
            precision,
        })
    }
}

/// The value of two ASCII digits at `at`.
fn two_digits(s: &[u8], at: usize) -> u32 {
    u32::from(s[at] - b'0') * 10 + u32::from(s[at + 1] - b'0')
}

/// A date of ten characters, each a digit except that the fifth and the eighth may be `-`,
/// read as chrono's `%Y-%m-%d` reads it. `YYYY-MM-DD`, the only form that can succeed, is
/// read directly (chrono's format parser costs about ten times as much); the others are left
/// to chrono, which refuses them.
fn calendar_date(date: &str) -> Option<NaiveDate> {
    let d = date.as_bytes();
    if d.len() == 10 && d[4] == b'-' && d[7] == b'-' {
        let year = two_digits(d, 0) * 100 + two_digits(d, 2);
        return NaiveDate::from_ymd_opt(year as i32, two_digits(d, 5), two_digits(d, 8));
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// `HH:MM` or `HH:MM:SS` (every other character a digit, already checked), read as chrono's
/// `%H:%M` or `%H:%M:%S` reads it: hours to 23, minutes to 59, and a second 60 is a leap
/// second.
fn time_of_day(time: &str) -> Option<NaiveTime> {
    let t = time.as_bytes();
    let (hour, minute) = (two_digits(t, 0), two_digits(t, 3));
    let second = if t.len() == 8 { two_digits(t, 6) } else { 0 };
    let (second, nano) = match second {
        60 => (59, 1_000_000_000),
        s => (s, 0),
    };
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    NaiveTime::from_hms_nano_opt(hour, minute, second, nano)
}

impl fmt::Display for Stamp {
    /// `YYYY-MM-DDTHH:MM(:SS)Z`, written as chrono's `%Y-%m-%dT%H:%M(:%S)Z` writes it. A
    /// four-digit year is written directly: chrono's format reads its pattern again on every
    /// call, and the runtime prints a stamp for every status it writes or compares. A year of
    /// any other width (chrono adds a sign) is left to chrono.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        let year = at.year();
        if !(0..=9999).contains(&year) {
            return match self.precision {
                StampPrecision::Minute => write!(f, "{}", at.format("%Y-%m-%dT%H:%MZ")),
                StampPrecision::Second => write!(f, "{}", at.format("%Y-%m-%dT%H:%M:%SZ")),
            };
        }
        let mut text = *b"0000-00-00T00:00:00Z";
        // The two digits of `n` at `i` in `text`.
        let mut put = |i: usize, n: u32| {
            text[i] = b'0' + (n / 10) as u8;
            text[i + 1] = b'0' + (n % 10) as u8;
        };
        let year = year.unsigned_abs();
        put(0, year / 100);
        put(2, year % 100);
        put(5, at.month());
        put(8, at.day());
        put(11, at.hour());
        put(14, at.minute());
        // A leap second is kept as a nanosecond count past 1e9, and written as 60.
        put(
            17,
            at.second() + u32::from(at.nanosecond() >= 1_000_000_000),
        );
        let text = match self.precision {
            StampPrecision::Minute => {
                text[16] = b'Z';
                &text[..17]
            }
            StampPrecision::Second => &text[..],
        };
        f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)
    }
}

/// Why a token is not a status, with the byte offset inside the token where it goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

/// The statuses an error names: those a person writes to start and stop work. The approval
/// statuses are answers to a task that waits for one, and the board shows them there.
const KNOWN: &str = "ready, blocked:<who>:<reason>, blocked:task:<ID>, running:<agent>:<UTC time>, done or failed:<reason>";

/// A task ID: a letter, then letters/digits/underscores, a `-`, digits (`TASK-015`, `OPS_2-3`).
pub fn is_task_id(s: &str) -> bool {
    let Some((head, tail)) = s.rsplit_once('-') else {
        return false;
    };
    let mut head_chars = head.chars();
    matches!(head_chars.next(), Some(c) if c.is_ascii_alphabetic())
        && head_chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit())
}

/// A name for a person, thing or agent: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Free text in a reason: non-empty, no surrounding whitespace, no backticks or control characters.
fn check_reason(s: &str, offset: usize, what: &str) -> Result<(), StatusError> {
    let err = |message: String| Err(StatusError { offset, message });
    if s.is_empty() {
        return err(format!("{what} is empty"));
    }
    if s.trim() != s {
        return err(format!("{what} `{s}` has leading or trailing spaces"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || *c == '`') {
        return err(format!("{what} contains the character {c:?}"));
    }
    Ok(())
}

/// `failed:<reason>` or `rejected:<note>`, whose text `rest` starts at `rest_at`.
fn free_text(head: &str, rest: &str, rest_at: usize) -> Result<Status, StatusError> {
    if head == "failed" {
        check_reason(rest, rest_at, "the reason")?;
        return Ok(Status::Failed {
            reason: rest.to_string(),
        });
    }
    if rest.is_empty() {
        // One token per status: a rejection without a note is written `rejected`.
        return Err(StatusError {
            offset: rest_at,
            message: "the note is empty: write `rejected` for a rejection without a note".into(),
        });
    }
    check_reason(rest, rest_at, "the note")?;
    Ok(Status::Rejected {
        note: rest.to_string(),
    })
}

/// A status written as one word (a rejection without its note included).
fn word(s: &str) -> Option<Status> {
    Some(match s {
        "ready" => Status::Ready,
        "done" => Status::Done,
        "awaiting-approval" => Status::AwaitingApproval,
        "approved" => Status::Approved,
        "rejected" => Status::Rejected {
            note: String::new(),
        },
        _ => return None,
    })
}

impl Status {
    /// Parses a status token. The token must already be trimmed and unwrapped from backticks.
    pub fn parse(s: &str) -> Result<Status, StatusError> {
        let err = |offset: usize, message: String| Err(StatusError { offset, message });
        if let Some(word) = word(s) {
            return Ok(word);
        }
        if s.is_empty() {
            return err(0, format!("status is empty; expected {KNOWN}"));
        }
        let Some((head, rest)) = s.split_once(':') else {
            let lower = s.to_ascii_lowercase();
            let hint = if word(&lower).is_some() {
                format!(" (statuses are lower case: `{lower}`)")
            } else {
                String::new()
            };
            return err(0, format!("unknown status `{s}`{hint}; expected {KNOWN}"));
        };
        let rest_at = head.len() + 1;
        match head {
            "blocked" => {
                let Some((who, reason)) = rest.split_once(':') else {
                    return err(
                        rest_at,
                        format!("`{s}` needs a reason: blocked:<who>:<reason>"),
                    );
                };
                let reason_at = rest_at + who.len() + 1;
                match who {
                    "task" => {
                        let mut ids = Vec::new();
                        let mut at = reason_at;
                        for id in reason.split(',') {
                            if !is_task_id(id) {
                                return err(
                                    at,
                                    format!(
                                        "`{id}` in `{s}` is not a task ID (write blocked:task:A-1,B-2 with no spaces)"
                                    ),
                                );
                            }
                            ids.push(id.to_string());
                            at += id.len() + 1;
                        }
                        Ok(Status::BlockedOnTasks(ids))
                    }
                    "retry" => Stamp::parse(reason)
                        .map(Status::RetryAt)
                        .or_else(|m| err(reason_at, m)),
                    _ => {
                        if !is_name(who) {
                            return err(
                                rest_at,
                                format!(
                                    "`{who}` in `{s}` is not a name (letters, digits, `_`, `.`, `-`)"
                                ),
                            );
                        }
                        check_reason(reason, reason_at, "the reason")?;
                        Ok(Status::Blocked {
                            who: who.to_string(),
                            reason: reason.to_string(),
                        })
                    }
                }
            }
            "running" => {
                let Some((agent, time)) = rest.split_once(':') else {
                    return err(
                        rest_at,
                        format!("`{s}` needs a time: running:<agent>:<UTC time>"),
                    );
                };
                if !is_name(agent) {
                    return err(
                        rest_at,
                        format!(
                            "agent `{agent}` in `{s}` is not a name (letters, digits, `_`, `.`, `-`)"
                        ),
                    );
                }
                let since = Stamp::parse(time).map_err(|message| StatusError {
                    offset: rest_at + agent.len() + 1,
                    message,
                })?;
                Ok(Status::Running {
                    agent: agent.to_string(),
                    since,
                })
            }
            "failed" | "rejected" => free_text(head, rest, rest_at),
            _ => err(0, format!("unknown status `{s}`; expected {KNOWN}")),
        }
    }

    pub fn state(&self) -> State {
        match self {
            Status::Ready => State::Ready,
            Status::Blocked { .. } | Status::BlockedOnTasks(_) | Status::RetryAt(_) => {
                State::Blocked
            }
            Status::Running { .. } => State::Running,
            Status::Done => State::Done,
            Status::Failed { .. } => State::Failed,
            // Each waits, not ready and not running: `awaiting-approval` on a person (as
            // `blocked:<who>:…` does), `approved` and `rejected:` on the runtime to carry out the
            // person's word (landing the change; sending it back). Counting them as blocked keeps
            // the `status` and `stats` outputs of boards without them unchanged.
            Status::AwaitingApproval | Status::Approved | Status::Rejected { .. } => State::Blocked,
        }
    }

    /// A rejection with a note made safe for the grammar: surrounding spaces go, control
    /// characters and backticks become `_` (spaces inside stay: a note is for a person to
    /// read). Blank text is a rejection without a note.
    pub fn rejected(note: &str) -> Status {
        let note = note
            .trim()
            .chars()
            .map(|c| if c.is_control() || c == '`' { '_' } else { c })
            .collect();
        Status::Rejected { note }
    }

    /// A failure status with a reason made safe for the grammar (spaces and odd characters
    /// become `_`).
    pub fn failed(reason: &str) -> Status {
        let mut clean: String = reason
            .trim()
            .chars()
            .map(|c| {
                if c.is_control() || c == '`' || c.is_whitespace() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if clean.is_empty() {
            clean.push_str("unknown");
        }
        Status::Failed { reason: clean }
    }

    /// Whether this status prints as `token`: `self.to_string() == token`, without making the
    /// string (the planner asks it of every task on every pass).
    pub fn prints_as(&self, token: &str) -> bool {
        /// Takes the printed pieces in turn, each checked against the rest of the token.
        struct Against<'t>(&'t str);
        impl fmt::Write for Against<'_> {
            fn write_str(&mut self, piece: &str) -> fmt::Result {
                match self.0.strip_prefix(piece) {
                    Some(rest) => {
                        self.0 = rest;
                        Ok(())
                    }
                    None => Err(fmt::Error),
                }
            }
        }
        let mut rest = Against(token);
        fmt::write(&mut rest, format_args!("{self}")).is_ok() && rest.0.is_empty()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ready => f.write_str("ready"),
            Status::Blocked { who, reason } => write!(f, "blocked:{who}:{reason}"),
            Status::BlockedOnTasks(ids) => write!(f, "blocked:task:{}", ids.join(",")),
            Status::RetryAt(at) => write!(f, "blocked:retry:{at}"),
            Status::Running { agent, since } => write!(f, "running:{agent}:{since}"),
            Status::Done => f.write_str("done"),
            Status::Failed { reason } => write!(f, "failed:{reason}"),
            Status::AwaitingApproval => f.write_str("awaiting-approval"),
            Status::Approved => f.write_str("approved"),
            Status::Rejected { note } if note.is_empty() => f.write_str("rejected"),
            Status::Rejected { note } => write!(f, "rejected:{note}"),
        }
    }
}

impl std::str::FromStr for Status {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Status, StatusError> {
        Status::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The direct writing of a stamp agrees with chrono's format, which it replaced, at
        /// every precision, for any second of any year chrono can hold, leap seconds included.
        #[test]
        fn stamps_print_as_chrono_formats_them(
            secs in -400_000_000_000i64..400_000_000_000,
            leap in proptest::bool::weighted(0.1),
            minute in proptest::bool::ANY,
        ) {
            // A leap second is the 59th second of a minute with a second's worth of nanoseconds.
            let (secs, nanos) = match leap {
                true => (secs - secs.rem_euclid(60) + 59, 1_000_000_000),
                false => (secs, 0),
            };
            let at = DateTime::from_timestamp(secs, nanos).expect("within chrono's range");
            let (precision, pattern) = match minute {
                true => (StampPrecision::Minute, "%Y-%m-%dT%H:%MZ"),
                false => (StampPrecision::Second, "%Y-%m-%dT%H:%M:%SZ"),
            };
            let stamp = Stamp { at, precision };
            proptest::prop_assert_eq!(stamp.to_string(), at.format(pattern).to_string());
        }

        /// The direct reading of dates and times agrees with chrono's format parser, which it
        /// replaced, on strings of the shapes `Stamp::parse` lets through.
        #[test]
        fn dates_and_times_read_as_chrono_reads_them(
            date in "[0-9]{4}(-|[0-9])[01][0-9](-|[0-9])[0-3][0-9]",
            time in "[0-2][0-9]:[0-6][0-9](:[0-6][0-9])?",
        ) {
            proptest::prop_assert_eq!(
                calendar_date(&date),
                NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok()
            );
            let fmt = if time.len() == 8 { "%H:%M:%S" } else { "%H:%M" };
            proptest::prop_assert_eq!(time_of_day(&time), NaiveTime::parse_from_str(&time, fmt).ok());
        }
    }

    /// Where the direct writing of a stamp hands over to chrono: the first and last second of
    /// the four-digit years and of the years either side.
    #[test]
    fn stamps_at_the_ends_of_four_digit_years_print_as_chrono_formats_them() {
        for (year, month, day, h, m, s) in [
            (-1, 12, 31, 23, 59, 59),
            (0, 1, 1, 0, 0, 0),
            (9999, 12, 31, 23, 59, 59),
            (10000, 1, 1, 0, 0, 0),
        ] {
            let at = NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|d| d.and_hms_opt(h, m, s))
                .expect("a real time")
                .and_utc();
            for (precision, pattern) in [
                (StampPrecision::Minute, "%Y-%m-%dT%H:%MZ"),
                (StampPrecision::Second, "%Y-%m-%dT%H:%M:%SZ"),
            ] {
                let printed = Stamp { at, precision }.to_string();
                assert_eq!(printed, at.format(pattern).to_string(), "{year}");
            }
        }
    }

    #[test]
    fn leap_seconds_and_the_ends_of_ranges() {
        for date in [
            "2024-02-29",
            "2023-02-29",
            "0000-01-01",
            "9999-12-31",
            "2026-00-10",
            "2026-13-01",
            "2026-04-31",
            "2026-04-00",
        ] {
            assert_eq!(
                calendar_date(date),
                NaiveDate::parse_from_str(date, "%Y-%m-%d").ok(),
                "{date}"
            );
        }
        for time in [
            "23:59:60", "00:00:60", "24:00", "23:60", "23:59:61", "00:00:00",
        ] {
            let fmt = if time.len() == 8 { "%H:%M:%S" } else { "%H:%M" };
            assert_eq!(
                time_of_day(time),
                NaiveTime::parse_from_str(time, fmt).ok(),
                "{time}"
            );
        }
    }

    #[test]
    fn valid_tokens_round_trip() {
        for s in [
            "ready",
            "done",
            "blocked:siyao:send-brief",
            "blocked:siyao:needs the portfolio URL",
            "blocked:ops:wait:for:dns",
            "blocked:task:TASK-015",
            "blocked:task:TASK-015,T-0147,OPS_2-3",
            "blocked:retry:2026-04-20T15:25:07Z",
            "running:agent-a4b:2026-04-20T15:25Z",
            "running:claude.a_1:2026-04-20T15:25:59Z",
            "failed:exhausted_retries",
            "failed:exit 3: compile error",
            "awaiting-approval",
            "approved",
            "rejected",
            "rejected:the tests do not cover the empty board",
            "rejected:see: the diff",
        ] {
            let parsed = Status::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.to_string(), s);
        }
    }

    #[test]
    fn typed_fields_are_extracted() {
        assert_eq!(
            Status::parse("blocked:task:A-1,B-2").unwrap(),
            Status::BlockedOnTasks(vec!["A-1".into(), "B-2".into()])
        );
        let Status::Running { agent, since } =
            Status::parse("running:agent-a4b:2026-04-20T15:25Z").unwrap()
        else {
            panic!("not running")
        };
        assert_eq!(agent, "agent-a4b");
        assert_eq!(since.precision, StampPrecision::Minute);
        assert_eq!(since.at.to_rfc3339(), "2026-04-20T15:25:00+00:00");
    }

    #[test]
    fn invalid_tokens_are_errors_with_positions() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("Ready", 0),
            ("in progress", 0),
            ("waiting:bob", 0),
            ("blocked", 0),
            ("blocked:bob", 8),
            ("blocked:bob:", 12),
            ("blocked:bob: x", 12),
            ("blocked::x", 8),
            ("blocked:task:", 13),
            ("blocked:task:A-1, B-2", 17),
            ("blocked:task:../x-1", 13),
            ("blocked:retry:soon", 14),
            ("running:a", 8),
            ("running:a:2026-04-20T15:25", 10),
            ("running:a:2026-04-20T15:25+02:00", 10),
            ("running:a:2026-02-30T15:25Z", 10),
            ("running:a:2026-04-20T25:25Z", 10),
            ("running:a:2026-04-20 15:25Z", 10),
            ("running:a:2026-04-20T15:25:00.5Z", 10),
            ("running::2026-04-20T15:25Z", 8),
            ("running:a b:2026-04-20T15:25Z", 8),
            ("failed:", 7),
            ("failed:x`y", 7),
            ("failed: x", 7),
            ("rejected: x", 9),
            ("rejected:x`y", 9),
            ("rejected:x ", 9),
            ("awaiting-approval:x", 0),
            ("approved:x", 0),
            ("Approved", 0),
        ];
        for (s, offset) in cases {
            let e = Status::parse(s).expect_err(s);
            assert_eq!(e.offset, *offset, "{s}: {}", e.message);
            assert!(!e.message.is_empty());
        }
        assert!(
            Status::parse("Ready")
                .unwrap_err()
                .message
                .contains("lower case")
        );
    }

    #[test]
    fn task_ids() {
        for id in ["TASK-015", "T-0147", "OPS_2-3", "a-1", "Ab_9_-42"] {
            assert!(is_task_id(id), "{id}");
        }
        for id in [
            "",
            "TASK",
            "TASK-",
            "-1",
            "1A-1",
            "_A-1",
            "A-1a",
            "A.B-1",
            "../../etc",
            "A-1-2",
            "TÄSK-1",
            "A -1",
        ] {
            assert!(!is_task_id(id), "{id}");
        }
    }

    #[test]
    fn failed_reason_is_sanitised() {
        assert_eq!(
            Status::failed("exit 3").to_string(),
            "failed:exit_3".to_string()
        );
        assert_eq!(Status::failed("  ").to_string(), "failed:unknown");
        let s = Status::failed("tab\there `x`").to_string();
        assert_eq!(Status::parse(&s).unwrap().to_string(), s);
    }

    #[test]
    fn a_rejection_without_a_note_is_one_rule_with_one_printed_form() {
        let empty = Status::Rejected {
            note: String::new(),
        };
        assert_eq!(Status::parse("rejected").unwrap(), empty);
        assert_eq!(empty.to_string(), "rejected");
        // `rejected:` would print back as `rejected`: one status, one token, so it is refused
        // with the token to write instead.
        let err = Status::parse("rejected:").unwrap_err();
        assert_eq!(err.offset, 9);
        assert!(err.message.contains("write `rejected`"), "{}", err.message);
        assert_eq!(
            Status::parse("rejected:too broad").unwrap(),
            Status::Rejected {
                note: "too broad".into()
            }
        );
        assert!(
            Status::parse("Rejected")
                .unwrap_err()
                .message
                .contains("lower case")
        );
    }

    #[test]
    fn a_rejection_note_is_sanitised() {
        assert_eq!(
            Status::rejected("  too broad ").to_string(),
            "rejected:too broad"
        );
        assert_eq!(Status::rejected(" \t ").to_string(), "rejected");
        let s = Status::rejected("line\none `x`").to_string();
        assert_eq!(s, "rejected:line_one _x_");
        assert_eq!(Status::parse(&s).unwrap().to_string(), s);
    }

    #[test]
    fn approval_statuses_wait_as_blocked() {
        for s in ["awaiting-approval", "approved", "rejected", "rejected:no"] {
            assert_eq!(Status::parse(s).unwrap().state(), State::Blocked, "{s}");
        }
    }

    #[test]
    fn runtime_stamps_have_second_precision() {
        let at = DateTime::parse_from_rfc3339("2026-04-20T15:25:07.891Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = Status::Running {
            agent: "taskboard".into(),
            since: Stamp::seconds(at),
        };
        assert_eq!(s.to_string(), "running:taskboard:2026-04-20T15:25:07Z");
        assert_eq!(Status::parse(&s.to_string()).unwrap(), s);
    }
}
