//! Board health checks: findings with stable codes, positions and a sentence that says what to do.
//!
//! Owns judging a parsed board. It is pure: text and a [`Board`] in, findings out; the clock,
//! the staleness threshold, the longest retry wait and the configured routes are parameters
//! ([`LintContext`]). It never reads files, never changes text (that is `writeback`), never
//! parses Markdown itself (that is `board`, which also finds conflict markers) and never starts
//! a thread: [`lint_on`] shares a long board's tasks out as the caller's `Parallel` runs them.
//!
//! | code                | severity | what it means                                              |
//! |---------------------|----------|------------------------------------------------------------|
//! | `invalid-utf8`      | error    | the file is not UTF-8 (see [`invalid_utf8`])               |
//! | `unknown-status`    | error    | the status token does not follow the grammar               |
//! | `duplicate-id`      | error    | two tasks share an ID                                      |
//! | `unsafe-id`         | error    | an ID that could escape a folder (`../../etc`)             |
//! | `malformed-id`      | error    | a heading with a status but no task ID                     |
//! | `missing-status`    | warning  | a task with no `status` field                              |
//! | `broken-dependency` | error    | `blocked:task:X` where X is not on the board               |
//! | `dependency-done`   | warning  | every task waited on is already `done`                     |
//! | `dependency-cycle`  | error    | tasks that wait on each other                              |
//! | `clock-anomaly`     | error    | a claim time more than 5 minutes in the future             |
//! | `stale-claim`       | warning  | a claim older than `stale_after`                           |
//! | `unknown-route`     | error    | a ready or blocked task whose route has no executor        |
//! | `duplicate-field`   | warning  | the same key twice in one task's fields (the first wins)   |
//! | `conflict-markers`  | error    | unresolved git conflict markers (see [`conflict_markers`]) |
//! | `retry-far-future`  | warning  | a retry time further ahead than the longest backoff        |
//! | `touches-everything` | warning | a `touches:` glob that covers every file                   |
//! | `bad-base-branch`   | error    | a `base_branch:` git would refuse as a branch name         |
//! | `unknown-repo`      | error    | a `repos:` name with no `[repos.<name>]` table             |
//! | `repos-on-shared-route` | error | `repos:` on a task whose route works in the shared folder |
//!
//! The last two need the configuration's repositories and worktree routes
//! ([`WorkspaceContext`], given to [`lint_with`]); [`lint`] does not check them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::board::{
    Board, Field, Glance, IdProblem, Marker, Parallel, Serial, Task, conflict_markers,
    conflict_regions,
};
use crate::core::config::{Config, Workspace, valid_branch};
use crate::core::fmt::{self, Precision::Coarse};
use crate::core::plan;
use crate::core::status::{Stamp, Status, StatusKind};
use crate::core::workspace::{parse_repos, parse_touches};

/// How far ahead of the clock a claim time may be before it is an anomaly.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem on the board. `line` and `column` are 1-based; the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub task: Option<String>,
    pub message: String,
}

/// What lint needs from outside the text: the clock and the configuration.
pub struct LintContext<'a> {
    pub now: DateTime<Utc>,
    /// A `running` claim older than this is reported as stale.
    pub stale_after: Duration,
    /// The configured executor routes; `None` means routes are not checked.
    pub routes: Option<&'a BTreeSet<String>>,
    /// The longest wait the runtime gives a retry ([`plan::longest_backoff`]); `None` means
    /// retry times are not checked.
    pub longest_backoff: Option<Duration>,
    /// The text's conflict markers ([`conflict_markers`]) when the caller has looked for them
    /// already (the runtime does before every pass); `None`: lint looks.
    pub conflict_markers: Option<&'a [Marker]>,
}

/// What lint knows of isolated runs from the configuration, for `repos:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceContext {
    /// The names of the `[repos.<name>]` tables.
    pub repos: BTreeSet<String>,
    /// Routes with `workspace = "worktree"`.
    pub worktree_routes: BTreeSet<String>,
    /// Every other configured route (their runs work in the board's folder).
    pub shared_routes: BTreeSet<String>,
}

impl WorkspaceContext {
    /// The repositories and routes `config` declares.
    pub fn of(config: &Config) -> WorkspaceContext {
        let mut ctx = WorkspaceContext {
            repos: config.repos.keys().cloned().collect(),
            ..WorkspaceContext::default()
        };
        for (route, exec) in &config.executors {
            match exec.workspace {
                Workspace::Worktree(_) => ctx.worktree_routes.insert(route.clone()),
                Workspace::Shared => ctx.shared_routes.insert(route.clone()),
            };
        }
        ctx
    }
}

/// A finding as the runtime remembers it between passes: its code, task and message.
pub type FindingKey = (String, Option<String>, String);

/// The findings the runtime reports as events, in order: those it did not report at its last
/// pass (`reported`), so that a finding is told when it first appears, not on every pass.
/// `dependency-done` is left out: it describes what that very pass does, and
/// `dependency_promoted` says so. Returns them and what to remember for the next pass.
pub fn news(
    findings: Vec<Finding>,
    reported: &BTreeSet<FindingKey>,
) -> (Vec<Finding>, BTreeSet<FindingKey>) {
    let mut seen = BTreeSet::new();
    let mut new = Vec::new();
    for f in findings.into_iter().filter(|f| f.code != "dependency-done") {
        let key = (f.code.to_string(), f.task.clone(), f.message.clone());
        if !reported.contains(&key) {
            new.push(f);
        }
        seen.insert(key);
    }
    (new, seen)
}

/// Every finding on the board, sorted by line, column and code, without the checks of `repos:`
/// against the configuration (see [`lint_with`]).
pub fn lint(text: &str, board: &Board, ctx: &LintContext) -> Vec<Finding> {
    lint_with(text, board, ctx, None)
}

/// [`lint`], and when `workspaces` is given, each `repos:` of a task that will run checked
/// against the configured repositories and its route's workspace.
pub fn lint_with(
    text: &str,
    board: &Board,
    ctx: &LintContext,
    workspaces: Option<&WorkspaceContext>,
) -> Vec<Finding> {
    lint_on(text, board, ctx, workspaces, &Serial)
}

/// [`lint_with`], the checks of each task shared out as `parallel` runs them: on a long board,
/// a share of the tasks per core. The findings are the same, in the same order.
pub fn lint_on(
    text: &str,
    board: &Board,
    ctx: &LintContext,
    workspaces: Option<&WorkspaceContext>,
    parallel: &impl Parallel,
) -> Vec<Finding> {
    let count = board.tasks.len();
    let shares = (parallel.width())
        .min(count / parallel.least_tasks().max(1))
        .max(1);
    let checks = Checks {
        text,
        board,
        ctx,
        workspaces,
    };
    let findings = if shares == 1 {
        checks.of_tasks(0..count)
    } else {
        let jobs = (0..shares).map(|k| {
            let share = count * k / shares..count * (k + 1) / shares;
            let checks = &checks;
            move || checks.of_tasks(share)
        });
        // Moved, not cloned: each finding holds two strings.
        let shares: Vec<Vec<Finding>> = parallel.run_all(jobs.collect());
        shares.into_iter().flatten().collect()
    };
    let mut l = Linter {
        text,
        board,
        findings,
    };
    l.cycles();
    l.conflicts(ctx.conflict_markers);
    let mut findings = l.findings;
    findings.sort_by(|a, b| {
        (a.line, a.column, a.code, &a.message).cmp(&(b.line, b.column, b.code, &b.message))
    });
    findings
}

/// The `invalid-utf8` finding for bytes that are not UTF-8, or `None` when they are.
pub fn invalid_utf8(bytes: &[u8]) -> Option<Finding> {
    let err = std::str::from_utf8(bytes).err()?;
    let at = err.valid_up_to();
    // The prefix is valid UTF-8, so it can be counted in characters.
    let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
    let line = valid.matches('\n').count() + 1;
    let mut column = valid[line_start..].chars().count() + 1;
    if line == 1 && valid.starts_with('\u{FEFF}') {
        column -= 1;
    }
    let what = match err.error_len() {
        Some(_) => format!("byte 0x{:02X} at offset {at} is not UTF-8", bytes[at]),
        None => format!("the file ends inside a UTF-8 character at offset {at}"),
    };
    Some(Finding {
        code: "invalid-utf8",
        severity: Severity::Error,
        line,
        column,
        task: None,
        message: format!(
            "the board is not valid UTF-8: {what}; save it as UTF-8 (a board is a Markdown text file)"
        ),
    })
}

/// Text from the board made safe for a one-line message: control characters escaped, cut
/// after 80 characters.
pub fn shown(s: &str) -> String {
    clip(s, 80)
}

/// Control characters escaped, cut after `max` characters (marked with `…`).
fn clip(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What the checks of each task read: the same for every share of the tasks.
struct Checks<'a> {
    text: &'a str,
    board: &'a Board,
    ctx: &'a LintContext<'a>,
    workspaces: Option<&'a WorkspaceContext>,
}

impl Checks<'_> {
    /// The findings of the board's tasks at `indexes`, in the order a walk through them makes.
    fn of_tasks(&self, indexes: Range<usize>) -> Vec<Finding> {
        let mut l = Linter {
            text: self.text,
            board: self.board,
            findings: Vec::new(),
        };
        let first_usable = self.board.first_usable_ids();
        let glances = self.board.glances();
        for index in indexes {
            if first_usable[index] && quiet(&glances[index]) {
                continue;
            }
            let task = &self.board.tasks[index];
            l.id_checks(task, index);
            if glances[index].has_keys_to_check() {
                // Most tasks have none of the keys the field checks look at: their text is
                // not read.
                l.field_checks(task);
            }
            l.status_checks(task, self.ctx, self.workspaces);
        }
        l.findings
    }
}

/// A task none of the per-task checks has anything to say of, given that its ID is the first
/// usable one: a valid status with no check of its own (done, failed, the approval states),
/// and none of the keys the field checks look at. Most of a long board, passed over from its
/// glance alone.
fn quiet(glance: &Glance) -> bool {
    matches!(
        glance.status(),
        Some(
            StatusKind::Done
                | StatusKind::Failed
                | StatusKind::AwaitingApproval
                | StatusKind::Approved
                | StatusKind::Rejected
        )
    ) && !glance.has_keys_to_check()
}

struct Linter<'a> {
    text: &'a str,
    board: &'a Board,
    findings: Vec<Finding>,
}

impl Linter<'_> {
    /// Line and column of a byte offset, not counting a byte-order mark as a column.
    fn pos(&self, offset: usize) -> (usize, usize) {
        let (line, mut column) = self.board.line_col(self.text, offset);
        if line == 1 && self.text.starts_with('\u{FEFF}') && offset >= 3 {
            column -= 1;
        }
        (line, column)
    }

    fn push(
        &mut self,
        code: &'static str,
        severity: Severity,
        offset: usize,
        task: &Task,
        message: String,
    ) {
        let (line, column) = self.pos(offset);
        self.findings.push(Finding {
            code,
            severity,
            line,
            column,
            task: Some(task.id.to_string()),
            message,
        });
    }

    /// Where the ID (the first word of the heading text) starts.
    fn id_offset(&self, task: &Task) -> usize {
        let line = &self.text[task.heading.clone()];
        let rest = line.trim_start_matches([' ', '\t']).trim_start_matches('#');
        let rest = rest.trim_start_matches([' ', '\t']);
        let skip = line.len() - rest.len();
        task.heading.start + skip + rest.find(task.id.as_str()).unwrap_or(0)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.pos(offset).0
    }

    fn id_checks(&mut self, task: &Task, index: usize) {
        // Most tasks have a usable ID and are the first with it: no finding here, and where
        // and how to show the ID is worked out only for those that have one.
        if self.board.first_usable_ids()[index] {
            return;
        }
        let at = self.id_offset(task);
        let id = shown(&task.id);
        match task.id_problem {
            Some(IdProblem::Unsafe) => self.push(
                "unsafe-id",
                Severity::Error,
                at,
                task,
                format!(
                    "task ID `{id}` is unsafe: it could name a path outside the state folder; use an ID like `TASK-1` (a letter, letters, digits or `_`, then `-` and digits)"
                ),
            ),
            Some(IdProblem::Malformed) => self.push(
                "malformed-id",
                Severity::Error,
                at,
                task,
                format!(
                    "this heading has a status but `{id}` is not a task ID; start the heading with an ID like `TASK-1` (a letter, letters, digits or `_`, then `-` and digits), or remove the status field"
                ),
            ),
            None => {
                let first = self.board.first_usable(&task.id).unwrap_or(index);
                if first != index {
                    let first_line = self.line_of(self.board.tasks[first].heading.start);
                    self.push(
                        "duplicate-id",
                        Severity::Error,
                        at,
                        task,
                        format!(
                            "task ID `{id}` is already used on line {first_line}; give this task a new ID (the runtime runs and writes neither while both exist)"
                        ),
                    );
                }
            }
        }
    }

    fn field_checks(&mut self, task: &Task) {
        let fields: Vec<Field<'_>> = task.fields().collect();
        for field in &fields {
            if field.key.eq_ignore_ascii_case("touches") {
                self.touches_checks(task, field);
            }
            if field.key.eq_ignore_ascii_case("base_branch") {
                self.base_branch_checks(task, field);
            }
        }
        for (n, field) in fields.iter().enumerate() {
            if let Some(first) = fields[..n]
                .iter()
                .find(|f| f.key.eq_ignore_ascii_case(field.key))
            {
                let first_line = self.line_of(first.key_range.start);
                self.push(
                    "duplicate-field",
                    Severity::Warning,
                    field.key_range.start,
                    task,
                    format!(
                        "field `{}` is already set on line {first_line}; the first one wins, so remove this one",
                        shown(field.key)
                    ),
                );
            }
        }
    }

    /// A `touches:` glob that covers every file makes its task wait for, and hold back, every
    /// other task that declares `touches:`: almost never what was meant.
    fn touches_checks(&mut self, task: &Task, field: &Field<'_>) {
        for glob in parse_touches(field.value) {
            if glob.covers_everything() {
                self.push(
                    "touches-everything",
                    Severity::Warning,
                    field.value_range.start,
                    task,
                    format!(
                        "`touches: {}` covers every file of the repository, so this task never runs beside another task that declares `touches:`; name what it works on, relative to the repository (e.g. `src/parser/**`)",
                        shown(glob.as_str())
                    ),
                );
            }
        }
    }

    /// A `base_branch:` must be a branch git accepts; an empty one names nothing.
    fn base_branch_checks(&mut self, task: &Task, field: &Field<'_>) {
        let name = field.value.trim();
        if name.is_empty() || valid_branch(name) {
            return;
        }
        self.push(
            "bad-base-branch",
            Severity::Error,
            field.value_range.start,
            task,
            format!(
                "`base_branch: {}` is not a branch name git accepts (no spaces, `..`, `~`, `^`, `:`, `?`, `*`, `[`, `\\`, no part starting with `.` or ending in `.lock`); the task cannot run isolated until it names its branch, e.g. `main` or `release/2.0`",
                shown(name)
            ),
        );
    }

    /// `repos:` names configured repositories, on a task whose route works in worktrees.
    /// A route that is not configured is `unknown-route`'s to report.
    fn repos_checks(&mut self, task: &Task, ws: &WorkspaceContext) {
        let Some(field) = task.field("repos") else {
            return;
        };
        let route = task.route().unwrap_or("default");
        if parse_repos(field.value).is_empty() {
            return;
        }
        if !ws.worktree_routes.contains(route) {
            if ws.shared_routes.contains(route) {
                let route = shown(route);
                self.push(
                    "repos-on-shared-route",
                    Severity::Error,
                    field.key_range.start,
                    task,
                    format!(
                        "task `{}` names repositories in `repos:`, but its route `{route}` works in the board's folder; add `workspace = \"worktree\"` to `[executors.{route}]`, route the task to a worktree route, or remove `repos:`",
                        shown(&task.id)
                    ),
                );
            }
            return;
        }
        let raw = &self.text[field.value_range.clone()];
        let mut at = 0;
        let mut reported = BTreeSet::new();
        for part in raw.split(',') {
            let offset = field.value_range.start + at + (part.len() - part.trim_start().len());
            at += part.len() + 1;
            let name = part.trim();
            if name.is_empty() || ws.repos.contains(name) || !reported.insert(name) {
                continue;
            }
            let known = if ws.repos.is_empty() {
                "none are configured".to_string()
            } else {
                format!(
                    "configured: {}",
                    ws.repos
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let name = shown(name);
            self.push(
                "unknown-repo",
                Severity::Error,
                offset,
                task,
                format!(
                    "task `{}` names repository `{name}` in `repos:`, but no `[repos.{name}]` is configured in taskboard.toml ({known}); add it or change the name",
                    shown(&task.id)
                ),
            );
        }
    }

    /// The checks on a task's status: there is one, it parses, and what it says holds (its
    /// dependencies, its claim's time, its retry time, its route).
    fn status_checks(
        &mut self,
        task: &Task,
        ctx: &LintContext,
        workspaces: Option<&WorkspaceContext>,
    ) {
        let Some(status) = self.status_of(task) else {
            return;
        };
        let start = task.status.as_ref().map_or(0, |f| f.range.start);
        match status {
            Status::BlockedOnTasks(deps) => self.dependency_checks(task, deps, start),
            Status::Running { agent, since } => {
                let time_at = start + "running:".len() + agent.len() + 1;
                self.claim_checks(task, agent, since, time_at, ctx);
            }
            Status::RetryAt(at) => self.retry_checks(task, at, start + "blocked:retry:".len(), ctx),
            _ => {}
        }
        if matches!(
            status,
            Status::Ready | Status::Blocked { .. } | Status::BlockedOnTasks(_) | Status::RetryAt(_)
        ) {
            self.route_checks(task, start, ctx);
            if let Some(workspaces) = workspaces {
                self.repos_checks(task, workspaces);
            }
        }
    }

    /// The task's status, or `None` when it has none or it does not parse (reported).
    fn status_of<'t>(&mut self, task: &'t Task) -> Option<&'t Status> {
        let Some(field) = &task.status else {
            let id = shown(&task.id);
            self.push(
                "missing-status",
                Severity::Warning,
                self.id_offset(task),
                task,
                format!(
                    "task `{id}` has no `status` field, so the runtime ignores it; add `- status: ready` as the first item of the list under its heading"
                ),
            );
            return None;
        };
        let start = field.range.start;
        match &field.parsed {
            Ok(status) => Some(status),
            Err(e) => {
                let raw = shown(&field.raw);
                let lower = field.raw.to_ascii_lowercase();
                let message = if lower != field.raw && Status::parse(&lower).is_ok() {
                    format!("status `{raw}` is not valid: statuses are lower case: `{lower}`")
                } else if e.message.starts_with("unknown status") {
                    format!(
                        "status `{raw}` is not valid: write one of ready, blocked:<who>:<reason>, blocked:task:<ID>, blocked:retry:<UTC time>, running:<agent>:<UTC time>, done or failed:<reason>"
                    )
                } else {
                    format!("status `{raw}` is not valid: {}", clip(&e.message, 400))
                };
                self.push(
                    "unknown-status",
                    Severity::Error,
                    start + e.offset.min(field.raw.len()),
                    task,
                    message,
                );
                None
            }
        }
    }

    /// `blocked:task:…`: every dependency is on the board; all of them done is news.
    fn dependency_checks(&mut self, task: &Task, deps: &[String], start: usize) {
        let mut at = start + "blocked:task:".len();
        let mut missing = false;
        for dep in deps {
            if self.board.first_usable(dep).is_none() {
                missing = true;
                let id = shown(&task.id);
                self.push(
                    "broken-dependency",
                    Severity::Error,
                    at,
                    task,
                    format!(
                        "task `{id}` waits on `{dep}`, which is not on the board, so it would wait forever; fix the ID or remove it from the list"
                    ),
                );
            }
            at += dep.len() + 1;
        }
        let all_done = deps.iter().all(|d| {
            (self.board.first_usable(d)).and_then(|i| self.board.tasks[i].status())
                == Some(&Status::Done)
        });
        if !missing && all_done {
            let id = shown(&task.id);
            self.push(
                "dependency-done",
                Severity::Warning,
                start,
                task,
                format!(
                    "every task `{id}` waits on ({}) is already done; the runtime will set it to `ready`",
                    deps.join(", ")
                ),
            );
        }
    }

    /// `running:<agent>:<time>`: a claim time ahead of the clock, or older than `stale_after`.
    /// `time_at` is where the time starts.
    fn claim_checks(
        &mut self,
        task: &Task,
        agent: &str,
        since: &Stamp,
        time_at: usize,
        ctx: &LintContext,
    ) {
        let id = || shown(&task.id);
        let ahead = since.at.signed_duration_since(ctx.now);
        let age = ctx.now.signed_duration_since(since.at);
        if let Ok(ahead) = ahead.to_std()
            && ahead > CLOCK_TOLERANCE
        {
            self.push(
                "clock-anomaly",
                Severity::Error,
                time_at,
                task,
                format!(
                    "task `{}` was claimed at {since}, {} ahead of the clock ({}); was a local time written as UTC? Times on the board are UTC",
                    id(),
                    fmt::duration(ahead, Coarse),
                    ctx.now.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            );
        } else if let Ok(age) = age.to_std()
            && age > ctx.stale_after
        {
            self.push(
                "stale-claim",
                Severity::Warning,
                time_at,
                task,
                format!(
                    "task `{}` was claimed by `{agent}` {} ago, longer than the {} after which a claim is stale; check that `{agent}` is still working on it, or set it back to `ready`",
                    id(),
                    fmt::duration(age, Coarse),
                    fmt::duration(ctx.stale_after, Coarse)
                ),
            );
        }
    }

    /// `blocked:retry:<time>`: a time further ahead than the runtime ever waits. `time_at` is
    /// where the time starts.
    fn retry_checks(&mut self, task: &Task, at: &Stamp, time_at: usize, ctx: &LintContext) {
        if let Some(longest) = ctx.longest_backoff
            && plan::retry_out_of_reach(at.at, ctx.now, longest)
        {
            let id = shown(&task.id);
            let ahead = at
                .at
                .signed_duration_since(ctx.now)
                .to_std()
                .unwrap_or_default();
            self.push(
                "retry-far-future",
                Severity::Warning,
                time_at,
                task,
                format!(
                    "task `{id}` waits for a retry at {at}, {} ahead of the clock ({}), longer than the runtime ever waits ({}, the backoff after the last attempt); the clock was ahead when it was written, so the runtime retries it now",
                    fmt::duration(ahead, Coarse),
                    ctx.now.format("%Y-%m-%dT%H:%M:%SZ"),
                    fmt::duration(longest, Coarse)
                ),
            );
        }
    }

    /// A task that will run (or may, once unblocked) names a configured route. `start` is
    /// where its status starts (a missing `route` field is reported there).
    fn route_checks(&mut self, task: &Task, start: usize, ctx: &LintContext) {
        let Some(routes) = ctx.routes else {
            return;
        };
        let (route, at, how) = match task.field("route") {
            Some(f) => (f.value, f.value_range.start, "uses route"),
            None => ("default", start, "has no `route` field, so it uses"),
        };
        if routes.contains(route) {
            return;
        }
        let known = if routes.is_empty() {
            "none are configured".to_string()
        } else {
            format!(
                "configured: {}",
                routes
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let route = shown(route);
        let id = shown(&task.id);
        self.push(
            "unknown-route",
            Severity::Error,
            at,
            task,
            format!(
                "task `{id}` {how} `{route}`, but no executor `{route}` is configured in taskboard.toml ({known}); add `[executors.{route}]` or change the route"
            ),
        );
    }

    /// One finding for all of the board's unresolved git conflict markers, at the first one.
    fn conflicts(&mut self, known: Option<&[Marker]>) {
        let found;
        let markers = match known {
            Some(markers) => markers,
            None => {
                found = conflict_markers(self.text);
                &found
            }
        };
        let Some(first) = markers.first() else {
            return;
        };
        let regions = conflict_regions(markers);
        let (what, them) = if regions == 1 {
            ("1 unresolved git conflict".to_string(), "it is")
        } else {
            (format!("{regions} unresolved git conflicts"), "they are")
        };
        self.findings.push(Finding {
            code: "conflict-markers",
            severity: Severity::Error,
            line: first.line,
            column: first.column,
            task: None,
            message: format!(
                "the board has {what} (`<<<<<<<`, `=======`, `>>>>>>>` lines from a merge); nothing on it runs and nothing is written until {them} resolved: keep the lines you want, delete the marker lines and save"
            ),
        });
    }

    /// One finding per strongly connected knot of `blocked:task:` edges.
    fn cycles(&mut self) {
        let tasks = &self.board.tasks;
        let is_first = self.board.first_usable_ids();
        let glances = self.board.glances();
        let edges: Vec<Vec<usize>> = (0..tasks.len())
            .map(|i| {
                // Only a task waiting on others has edges: the rest are known from their glance.
                if !is_first[i] || glances[i].status() != Some(StatusKind::BlockedOnTasks) {
                    return Vec::new();
                }
                match tasks[i].status() {
                    Some(Status::BlockedOnTasks(deps)) => (deps.iter())
                        .filter_map(|d| self.board.first_usable(d))
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
        for component in knots(&edges) {
            let start = component[0];
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let path = shortest_cycle(&edges, &members, start);
            let mut names: Vec<&str> = path.iter().map(|&i| tasks[i].id.as_str()).collect();
            names.push(tasks[start].id.as_str());
            let others: Vec<&str> = component
                .iter()
                .filter(|i| !path.contains(i))
                .map(|&i| tasks[i].id.as_str())
                .collect();
            let also = if others.is_empty() {
                String::new()
            } else {
                format!(" (also caught in it: {})", others.join(", "))
            };
            let task = &tasks[start];
            let at = task
                .status
                .as_ref()
                .map_or(task.heading.start, |s| s.range.start);
            let message = if path.len() == 1 {
                format!(
                    "task `{}` waits on itself, so it can never become ready; remove `{}` from its list",
                    task.id, task.id
                )
            } else {
                format!(
                    "dependency cycle: {}{also}; none of these can ever become ready, so remove one of the waits",
                    names.join(" → ")
                )
            };
            self.push("dependency-cycle", Severity::Error, at, task, message);
        }
    }
}

/// The strongly connected components that hold a cycle: more than one node, or one with an
/// edge to itself (Tarjan, iterative so a long chain cannot overflow the stack). Each is sorted
/// in board order, and they come in the order of their first nodes. The other components (on a
/// board, nearly every task alone) are never gathered into vectors of their own.
fn knots(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        // A task that waits on none is in no cycle; one that others wait on is reached from them.
        if index[root] != UNSEEN || edges[root].is_empty() {
            continue;
        }
        work.push((root, 0));
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == UNSEEN {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*child) {
                *child += 1;
                if index[w] == UNSEEN {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] && stack.last() == Some(&v) && !edges[v].contains(&v) {
                stack.pop();
                on_stack[v] = false;
            } else if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out.sort_by_key(|c| c[0]);
    out
}

/// The shortest path from `start` back to itself inside `members`, as the nodes visited
/// (starting with `start`).
fn shortest_cycle(edges: &[Vec<usize>], members: &BTreeSet<usize>, start: usize) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &edges[v] {
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if members.contains(&w) && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::board::Backwards;

    /// Every strongly connected component, as first written: `knots` must give those of them
    /// that hold a cycle, in the same order.
    fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
        const UNSEEN: usize = usize::MAX;
        let n = edges.len();
        let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
        let mut on_stack = vec![false; n];
        let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            let mut work: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some(&mut (v, ref mut child)) = work.last_mut() {
                if *child == 0 && index[v] == UNSEEN {
                    index[v] = next;
                    low[v] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[v] = true;
                }
                if let Some(&w) = edges[v].get(*child) {
                    *child += 1;
                    if index[w] == UNSEEN {
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    component.sort_unstable();
                    out.push(component);
                }
            }
        }
        out.sort_by_key(|c| c[0]);
        out
    }

    proptest::proptest! {
        #[test]
        fn knots_are_the_cyclic_strongly_connected_components(
            edges in proptest::collection::vec(proptest::collection::vec(0usize..12, 0..3), 1..12),
        ) {
            let n = edges.len();
            let edges: Vec<Vec<usize>> = edges
                .into_iter()
                .map(|e| e.into_iter().map(|w| w % n).collect())
                .collect();
            let want: Vec<Vec<usize>> = strongly_connected(&edges)
                .into_iter()
                .filter(|c| c.len() > 1 || edges[c[0]].contains(&c[0]))
                .collect();
            proptest::prop_assert_eq!(knots(&edges), want);
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-20T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run(text: &str, routes: Option<&BTreeSet<String>>) -> Vec<Finding> {
        let ctx = LintContext {
            now: now(),
            stale_after: Duration::from_secs(2 * 3600),
            routes,
            longest_backoff: None,
            conflict_markers: None,
        };
        lint(text, &Board::parse(text), &ctx)
    }

    fn codes(findings: &[Finding]) -> Vec<(&'static str, usize, usize)> {
        findings
            .iter()
            .map(|f| (f.code, f.line, f.column))
            .collect()
    }

    #[test]
    fn a_healthy_board_has_no_findings() {
        let text = "# Board\n\n## A-1: one\n- status: ready\n\n## B-1: two\n- status: blocked:task:A-1\n- route: review\n\n## C-1\n- status: running:agent-a:2026-04-20T15:30Z\n\n## D-1\n- status: blocked:retry:2026-04-21T15:30Z\n";
        let routes = BTreeSet::from(["default".to_string(), "review".to_string()]);
        assert_eq!(run(text, Some(&routes)), vec![]);
    }

    #[test]
    fn unknown_status_points_into_the_token() {
        let f = run("## A-1\n- status: Ready\n", None);
        assert_eq!(codes(&f), [("unknown-status", 2, 11)]);
        assert_eq!(
            f[0].message,
            "status `Ready` is not valid: statuses are lower case: `ready`"
        );
        assert_eq!(f[0].severity, Severity::Error);
        let f = run("## A-1\n- status: `blocked:task:A-1, B-2`\n", None);
        assert_eq!(codes(&f), [("unknown-status", 2, 29)]);
        assert!(f[0].message.contains("not a task ID"), "{}", f[0].message);
        let f = run("## A-1\n- status: in progress\n", None);
        assert!(f[0].message.contains("write one of ready"));
    }

    #[test]
    fn duplicate_ids_name_the_first_line() {
        let f = run("## A-1\n- status: ready\n## A-1\n- status: done\n", None);
        assert_eq!(codes(&f), [("duplicate-id", 3, 4)]);
        assert!(f[0].message.contains("line 1"));
        assert_eq!(f[0].task.as_deref(), Some("A-1"));
    }

    #[test]
    fn unsafe_and_malformed_ids() {
        let f = run("## ../../etc: pwn\n- status: ready\n", None);
        assert_eq!(codes(&f), [("unsafe-id", 1, 4)]);
        let f = run("## Backlog\n- status: ready\n", None);
        assert_eq!(codes(&f), [("malformed-id", 1, 4)]);
        assert!(f[0].message.contains("`Backlog` is not a task ID"));
    }

    #[test]
    fn missing_status_and_duplicate_fields_are_warnings() {
        let f = run("## A-1: x\n- owner: me\n- Owner: you\n", None);
        assert_eq!(
            codes(&f),
            [("missing-status", 1, 4), ("duplicate-field", 3, 3)]
        );
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
        assert!(f[1].message.contains("line 2"));
    }

    #[test]
    fn broken_and_done_dependencies() {
        let text = "## A-1\n- status: done\n## B-1\n- status: blocked:task:A-1,Z-9\n## C-1\n- status: blocked:task:A-1\n";
        let f = run(text, None);
        assert_eq!(
            codes(&f),
            [("broken-dependency", 4, 28), ("dependency-done", 6, 11)]
        );
        assert_eq!(f[1].severity, Severity::Warning);
        assert!(f[0].message.contains("`Z-9`"));
    }

    #[test]
    fn cycles_are_reported_once_in_order() {
        let text = "## A-1\n- status: blocked:task:B-1\n## B-1\n- status: blocked:task:C-1\n## C-1\n- status: blocked:task:A-1\n## D-1\n- status: blocked:task:D-1\n## E-1\n- status: blocked:task:A-1\n";
        let f = run(text, None);
        assert_eq!(
            codes(&f),
            [("dependency-cycle", 2, 11), ("dependency-cycle", 8, 11)]
        );
        assert!(
            f[0].message.contains("A-1 → B-1 → C-1 → A-1"),
            "{}",
            f[0].message
        );
        assert!(f[1].message.contains("waits on itself"));
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("## T-{i}\n- status: blocked:task:T-{}\n", i + 1));
        }
        text.push_str("## T-20000\n- status: blocked:task:T-0\n");
        let f = run(&text, None);
        assert_eq!(codes(&f), [("dependency-cycle", 2, 11)]);
    }

    #[test]
    fn clock_anomaly_and_stale_claim() {
        let text = "## A-1\n- status: running:a:2026-04-20T18:00Z\n## B-1\n- status: running:b:2026-04-20T12:48Z\n## C-1\n- status: running:c:2026-04-20T16:04Z\n## D-1\n- status: blocked:retry:2026-04-22T00:00Z\n";
        let f = run(text, None);
        assert_eq!(
            codes(&f),
            [("clock-anomaly", 2, 21), ("stale-claim", 4, 21)]
        );
        assert!(f[0].message.contains("2h ahead"), "{}", f[0].message);
        assert!(f[1].message.contains("3h12m ago"), "{}", f[1].message);
    }

    #[test]
    fn retry_times_beyond_the_longest_backoff() {
        // Longest backoff 1h: up to 17:05 (with the 5 minutes of slack) is a wait it may write.
        let text = "## A-1\n- status: blocked:retry:2027-04-20T16:00Z\n## B-1\n- status: blocked:retry:2026-04-20T17:05Z\n## C-1\n- status: blocked:retry:2026-04-20T17:06Z\n## D-1\n- status: blocked:retry:2026-04-20T15:00Z\n";
        assert_eq!(run(text, None), vec![], "not checked without a backoff");
        let ctx = LintContext {
            now: now(),
            stale_after: Duration::from_secs(2 * 3600),
            routes: None,
            longest_backoff: Some(Duration::from_secs(3600)),
            conflict_markers: None,
        };
        let f = lint(text, &Board::parse(text), &ctx);
        assert_eq!(
            codes(&f),
            [("retry-far-future", 2, 25), ("retry-far-future", 6, 25)]
        );
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
        assert!(f[0].message.contains("365d ahead"), "{}", f[0].message);
        assert!(
            f[0].message.contains("(1h, the backoff"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].task.as_deref(), Some("C-1"));
    }

    #[test]
    fn conflict_markers_are_one_error_at_the_first_marker() {
        let cases: &[(&str, Option<(usize, &str)>)] = &[
            (
                "## A-1\n- status: ready\n<<<<<<< HEAD\n## B-1\n- status: ready\n=======\n## C-1\n- status: ready\n>>>>>>> other\n",
                Some((3, "1 unresolved git conflict (")),
            ),
            (
                "\u{FEFF}<<<<<<< a\r\n=======\r\n>>>>>>> b\r\n<<<<<<< a\r\n=======\r\n>>>>>>> b\r\n",
                Some((1, "2 unresolved git conflicts")),
            ),
            ("# B\n\n```\n<<<<<<< a\n=======\n>>>>>>> b\n```\n", None),
            ("Title\n=======\n", None),
        ];
        for (text, want) in cases {
            let f: Vec<Finding> = run(text, None)
                .into_iter()
                .filter(|f| f.code == "conflict-markers")
                .collect();
            // Given the markers a caller found in the text, lint says the same without looking.
            let markers = conflict_markers(text);
            let given = LintContext {
                now: now(),
                stale_after: Duration::from_secs(2 * 3600),
                routes: None,
                longest_backoff: None,
                conflict_markers: Some(&markers),
            };
            assert_eq!(
                lint(text, &Board::parse(text), &given),
                run(text, None),
                "{text:?}"
            );
            match want {
                None => assert_eq!(f, vec![], "{text:?}"),
                Some((line, says)) => {
                    assert_eq!(codes(&f), [("conflict-markers", *line, 1)], "{text:?}");
                    assert_eq!(f[0].severity, Severity::Error);
                    assert_eq!(f[0].task, None);
                    assert!(f[0].message.contains(says), "{}", f[0].message);
                }
            }
        }
    }

    #[test]
    fn unknown_routes_only_when_checked() {
        let text = "## A-1\n- status: ready\n- route: gpu\n## B-1\n- status: ready\n## C-1\n- status: done\n- route: gpu\n";
        assert_eq!(run(text, None), vec![]);
        let routes = BTreeSet::from(["review".to_string()]);
        let f = run(text, Some(&routes));
        assert_eq!(
            codes(&f),
            [("unknown-route", 3, 10), ("unknown-route", 5, 11)]
        );
        assert!(
            f[0].message
                .contains("no executor `gpu` is configured in taskboard.toml")
        );
        assert!(f[0].message.contains("configured: review"));
        assert!(f[1].message.contains("uses `default`"));
    }

    #[test]
    fn base_branch_must_be_a_branch_name() {
        let text = "## A-1\n- status: ready\n- base_branch: release/2.0\n## B-1\n- status: done\n- base_branch: a..b\n## C-1\n- status: ready\n- base_branch: `has space`\n## D-1\n- status: ready\n- base_branch:\n";
        let f = run(text, None);
        assert_eq!(
            codes(&f),
            [("bad-base-branch", 6, 16), ("bad-base-branch", 9, 17)]
        );
        assert!(
            f[0].message
                .contains("`base_branch: a..b` is not a branch name")
        );
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[1].task.as_deref(), Some("C-1"));
    }

    /// A context under which every check runs: routes, claims' age and retry times.
    fn checking_everything(routes: &BTreeSet<String>) -> LintContext<'_> {
        LintContext {
            now: now(),
            stale_after: Duration::from_secs(2 * 3600),
            routes: Some(routes),
            longest_backoff: Some(Duration::from_secs(3600)),
            conflict_markers: None,
        }
    }

    fn workspaces() -> WorkspaceContext {
        WorkspaceContext {
            repos: BTreeSet::from(["api".to_string(), "web".to_string()]),
            worktree_routes: BTreeSet::from(["iso".to_string()]),
            shared_routes: BTreeSet::from(["default".to_string()]),
        }
    }

    fn run_with(text: &str) -> Vec<Finding> {
        let routes = BTreeSet::from(["iso".to_string(), "default".to_string()]);
        let ctx = LintContext {
            now: now(),
            stale_after: Duration::from_secs(2 * 3600),
            routes: Some(&routes),
            longest_backoff: None,
            conflict_markers: None,
        };
        lint_with(text, &Board::parse(text), &ctx, Some(&workspaces()))
    }

    /// Shared out among any number of cores, run in any order, the checks find what one walk
    /// through the board finds, in the same order: every kind of finding, duplicates and
    /// cycles across the shares' bounds included.
    #[test]
    fn findings_are_the_same_however_the_tasks_are_shared_out() {
        let mut text = String::from(
            "# Board\n<<<<<<< ours\n=======\n>>>>>>> theirs\n\
             ## C-1\n- status: blocked:task:C-2\n## D-1\n- status: done\n",
        );
        let kinds = [
            "- status: ready\n- route: iso\n- repos: api, mobile\n",
            "- status: Ready\n",
            "- owner: x\n",
            "- status: blocked:task:A-1, NOPE-9\n",
            "- status: running:a:2026-04-20T00:00:00Z\n",
            "- status: blocked:task:A-{next}\n",
            "- status: ready\n- status: done\n- touches: **\n",
            "- status: ready\n- base_branch: a..b\n- route: gpu\n",
            "- status: ready\n- route: default\n- repos: api\n",
        ];
        for n in 0..60 {
            // Every seventh ID is taken twice, by tasks far apart.
            let id = if n % 7 == 6 { n - 5 } else { n };
            let fields = kinds[n % kinds.len()].replace("{next}", &(n + 1).to_string());
            text.push_str(&format!("## A-{id}: task {n}\n{fields}\n"));
        }
        text.push_str(
            "## A-60\n- status: blocked:task:A-0\n## ../x\n- status: ready\n\
             ## C-2\n- status: blocked:task:C-1\n## D-2\n- status: blocked:task:D-1\n\
             ## Backlog\n- status: ready\n## F-1\n- status: running:a:2099-01-01T00:00:00Z\n\
             ## G-1\n- status: blocked:retry:2099-01-01T00:00:00Z\n",
        );
        let board = Board::parse(&text);
        let routes = BTreeSet::from(["iso".to_string(), "default".to_string()]);
        let ctx = checking_everything(&routes);
        let ws = workspaces();
        let walk = lint_with(&text, &board, &ctx, Some(&ws));
        let codes: BTreeSet<&str> = walk.iter().map(|f| f.code).collect();
        // Every code but `invalid-utf8`, which is found in bytes, not in a parsed board.
        assert_eq!(codes.len(), 18, "{codes:?}");
        for width in 1..=8 {
            let shared = Backwards {
                width,
                least_piece: 1,
            };
            assert_eq!(
                lint_on(&text, &board, &ctx, Some(&ws), &shared),
                walk,
                "{width}"
            );
        }
    }

    #[test]
    fn repos_name_configured_repositories_on_worktree_routes() {
        let text = "## A-1\n- status: ready\n- route: iso\n- repos: api, web\n\
                    ## B-1\n- status: ready\n- route: iso\n- repos: api,  mobile, mobile, x\n\
                    ## C-1\n- status: ready\n- repos: api\n\
                    ## D-1\n- status: done\n- route: iso\n- repos: nope\n\
                    ## E-1\n- status: ready\n- route: gpu\n- repos: nope\n\
                    ## F-1\n- status: ready\n- route: iso\n- repos: ,\n";
        let f = run_with(text);
        assert_eq!(
            codes(&f),
            [
                ("unknown-repo", 8, 16),
                ("unknown-repo", 8, 32),
                ("repos-on-shared-route", 11, 3),
                ("unknown-route", 18, 10),
            ]
        );
        assert!(
            f[0].message.contains("repository `mobile`"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("configured: api, web"));
        assert!(
            f[2].message
                .contains("route `default` works in the board's folder")
        );
        // Without the configuration's workspaces, `repos:` is not checked.
        assert_eq!(
            codes(&run(
                text,
                Some(&BTreeSet::from(["iso".to_string(), "default".to_string()]))
            )),
            [("unknown-route", 18, 10)]
        );
        assert!(run_with("## A-1\n- status: ready\n- route: iso\n- repos: api\n").is_empty());
    }

    #[test]
    fn workspace_context_of_a_config() {
        let config = crate::core::config::parse(
            "[executors.default]\ncommand = [\"a\"]\n[executors.iso]\ncommand = [\"a\"]\nworkspace = \"worktree\"\n[repos.api]\npath = \"../api\"\n",
        )
        .unwrap();
        let ws = WorkspaceContext::of(&config);
        assert_eq!(ws.repos, BTreeSet::from(["api".to_string()]));
        assert_eq!(ws.worktree_routes, BTreeSet::from(["iso".to_string()]));
        assert_eq!(ws.shared_routes, BTreeSet::from(["default".to_string()]));
    }

    #[test]
    fn positions_on_crlf_bom_and_cjk_lines() {
        let f = run("\u{FEFF}## Backlog\r\n- status: x\r\n", None);
        assert_eq!(
            codes(&f),
            [("malformed-id", 1, 4), ("unknown-status", 2, 11)]
        );
        let f = run(
            "\u{FEFF}## A-1: 任务\r\n- 状态: x\r\n- status:  `Done`\r\n",
            None,
        );
        assert_eq!(codes(&f), [("unknown-status", 3, 13)]);
        let f = run("## 任务-1\n- status: ready\n", None);
        assert_eq!(codes(&f), [("malformed-id", 1, 4)]);
        let f = run("## A-1\n- **status**: 🚀\n", None);
        assert_eq!(codes(&f), [("unknown-status", 2, 15)]);
    }

    #[test]
    fn invalid_utf8_names_line_column_and_offset() {
        assert_eq!(invalid_utf8("ok ü".as_bytes()), None);
        let f = invalid_utf8(b"## A-1\n- status: caf\xe9\n").unwrap();
        assert_eq!((f.code, f.line, f.column), ("invalid-utf8", 2, 14));
        assert!(f.message.contains("0xE9 at offset 20"), "{}", f.message);
        let f = invalid_utf8(b"\xef\xbb\xbf\xff").unwrap();
        assert_eq!((f.line, f.column), (1, 1));
        let f = invalid_utf8("é\n😀".as_bytes().split_last().unwrap().1).unwrap();
        assert!(f.message.contains("ends inside"));
        assert_eq!((f.line, f.column), (2, 1));
    }

    #[test]
    fn messages_stay_on_one_line() {
        let f = run("## A-1\n- status: x\u{1b}[31m\u{7}\n", None);
        assert!(f[0].message.contains("\\u{1b}"));
        assert!(!f[0].message.chars().any(char::is_control));
    }

    #[test]
    fn durations_for_people() {
        let d = |s| fmt::duration(Duration::from_secs(s), Coarse);
        assert_eq!(
            [
                d(5),
                d(60),
                d(7200),
                d(3 * 3600 + 12 * 60),
                d(86_400),
                d(2 * 86_400 + 4 * 3600)
            ],
            ["5s", "1m", "2h", "3h12m", "1d", "2d4h"]
        );
    }

    #[test]
    fn a_finding_is_news_once_and_again_after_it_went_away() {
        let text = "# Board\n\n## A-1\n- status: Ready\n\n## B-1\n- status: blocked:task:C-1\n\n## C-1\n- status: done\n";
        let all = run(text, None);
        assert!(all.iter().any(|f| f.code == "dependency-done"), "{all:?}");
        let (new, seen) = news(all.clone(), &BTreeSet::new());
        assert_eq!(codes(&new), codes(&all[..1]), "only unknown-status is told");
        assert_eq!(new[0].code, "unknown-status");
        assert_eq!(seen.len(), 1);
        // The same findings at the next pass are not news.
        let (again, seen_again) = news(all.clone(), &seen);
        assert!(again.is_empty());
        assert_eq!(seen_again, seen);
        // Once fixed and back, it is news again.
        let (_, cleared) = news(run("# Board\n\n## A-1\n- status: ready\n", None), &seen);
        let (back, _) = news(all, &cleared);
        assert_eq!(back.len(), 1);
    }

    #[test]
    fn a_task_passed_over_by_its_glance_has_nothing_to_report() {
        // Every status, with fields every per-task check looks at, on a context that checks
        // everything: each task whose glance lint passes over must give no finding when its
        // checks run anyway.
        let statuses = [
            "ready",
            "blocked:you:need-url",
            "blocked:task:Z-9",
            "blocked:retry:2020-01-01T00:00Z",
            "running:agent-a:2020-01-01T00:00Z",
            "done",
            "failed:gave-up",
            "awaiting-approval",
            "approved",
            "rejected:no",
            "Done",
            "bogus",
        ];
        let extras = [
            "",
            "- route: gpu\n",
            "- route: iso\n- repos: nowhere\n",
            "- touches: **\n",
            "- base_branch: a..b\n",
            "- owner: x\n- Owner: y\n",
        ];
        let mut text = String::from("# Board\n");
        let mut n = 0;
        for status in statuses {
            for extra in extras {
                n += 1;
                text.push_str(&format!("## T-{n}\n- status: {status}\n{extra}"));
            }
        }
        text.push_str("## T-1\n- status: done\n## Bad id\n- status: done\n");
        let board = Board::parse(&text);
        let routes = BTreeSet::from(["iso".to_string(), "default".to_string()]);
        let ctx = checking_everything(&routes);
        let workspaces = workspaces();
        let first_usable = board.first_usable_ids();
        let mut passed_over = 0;
        for (index, task) in board.tasks.iter().enumerate() {
            if !(first_usable[index] && quiet(&board.glances()[index])) {
                continue;
            }
            passed_over += 1;
            let mut l = Linter {
                text: &text,
                board: &board,
                findings: Vec::new(),
            };
            l.id_checks(task, index);
            l.field_checks(task);
            l.status_checks(task, &ctx, Some(&workspaces));
            assert_eq!(l.findings, vec![], "{}", &text[task.block.clone()]);
        }
        // Done, failed and the approval states with a route or an owner: passed over.
        assert_eq!(passed_over, 5 * 3, "{text}");
        // And the whole board's findings name every other kind of task.
        let findings = lint_with(&text, &board, &ctx, Some(&workspaces));
        for code in [
            "unknown-route",
            "unknown-repo",
            "touches-everything",
            "duplicate-field",
        ] {
            assert!(
                findings.iter().any(|f| f.code == code),
                "{code}: {findings:?}"
            );
        }
    }
}
