//! The runtime's configuration: `taskboard.toml`, optional, beside the board.
//!
//! This module owns the file's shape, its defaults and its validation. It is pure: [`parse`] is a
//! function of text; finding and reading the file is `shell::config_file`'s. It must not touch
//! the disk, start processes, read the board, read the clock or look at the environment: the
//! executors it describes are run by `shell::exec` (or `shell::remote`), never from here.
//!
//! Every mistake in the file is an error with a line and column where the file shows one: unknown
//! keys, wrong types, empty commands, zero limits, durations without units. A board without a
//! configuration file gets [`Config::default`], which has no executors at all, so nothing runs
//! until a person says what to run.
//!
//! A route's `workspace = "worktree"` makes its runs work in git worktrees ([`Workspace`]); the
//! keys that only mean something there (`repo`, `base_branch`, `worktree_include`, `setup`,
//! `merge`, `keep_worktrees`) are errors, at the key, on any other route. `[repos.<name>]`
//! tables name the repositories a task's `repos:` may list.
//!
//! A route's `runner = "slurm" | "ssh"` sends its runs to another machine ([`Runner`]); each
//! runner's keys (`sbatch_args`, `shared_dir`; `hosts`, `ssh_args`, `remote_dir`,
//! `host_down_for`) are errors at the key on a route of another runner, and a remote runner
//! on a worktree route is an error at `runner`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// The name of the configuration file looked up beside the board.
pub const FILE_NAME: &str = "taskboard.toml";

/// The largest accepted `debounce_ms`: a minute. Longer waits make the board feel dead.
pub const MAX_DEBOUNCE_MS: u64 = 60_000;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub runtime: RuntimeConfig,
    /// Executors by route name. `default` serves tasks that name no route.
    pub executors: BTreeMap<String, ExecutorConfig>,
    /// `[repos.<name>]`: repositories a multi-repository task names in `repos:`.
    pub repos: BTreeMap<String, RepoConfig>,
}

/// The `[runtime]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// How long the board must be quiet before it is re-read (`debounce_ms`).
    pub debounce: Duration,
    /// How many tasks run at once.
    pub max_parallel: usize,
    /// How many times a task is tried before it is marked failed.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further attempt. May be zero.
    pub retry_backoff: Duration,
    /// A `running:` claim older than this with no live process behind it is stale.
    pub stale_after: Duration,
    /// The board is re-read at least this often even when no event arrives.
    pub rescan_every: Duration,
    /// The wait between SIGTERM and SIGKILL when stopping an executor. May be zero.
    pub grace: Duration,
    /// Bytes kept on disk per stream (stdout, stderr) per attempt.
    pub output_cap: u64,
    /// The agent name written into `running:<agent>:<time>`.
    pub agent: String,
    /// `events.jsonl` is rotated to a dated file once it grows past this many bytes.
    pub events_max_size: u64,
    /// How many daily diagnostic log files under `.taskboard/logs/` are kept.
    pub log_keep: u32,
    /// The largest work packet (stdin) a run receives; older context is cut first.
    pub packet_budget: u64,
}

/// One `[executors.<route>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    /// Program and arguments; never run through a shell.
    pub command: Vec<String>,
    /// The longest one attempt may run; `None` means no limit.
    pub timeout: Option<Duration>,
    /// Extra environment for the process, on top of the runtime's own.
    pub env: BTreeMap<String, String>,
    /// A run reporting more than this (`cost_usd` in its result file) is over budget.
    pub max_cost_usd: Option<f64>,
    /// Once this route's reported spend in a UTC day reaches this, it dispatches nothing more
    /// that day.
    pub daily_budget_usd: Option<f64>,
    /// A successful run here is not done until this route reviews it.
    pub review: Option<String>,
    /// Where a run works: the board's own folder, or a git worktree of its own.
    pub workspace: Workspace,
    /// Which machine runs it: this one, a Slurm cluster, or SSH hosts.
    pub runner: Runner,
}

/// `runner = "local" | "slurm" | "ssh"` on a route.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Runner {
    /// A child process of the runtime (the default).
    #[default]
    Local,
    /// A batch job on a Slurm cluster.
    Slurm(SlurmConfig),
    /// A process on one of a list of SSH hosts.
    Ssh(SshConfig),
}

/// The settings of a route whose runs are Slurm jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    /// Extra `sbatch` arguments (partition, `--gres=gpu:1`, memory, ...).
    pub sbatch_args: Vec<String>,
    /// A folder both this machine and the compute nodes read and write: each run's packet,
    /// result file and logs live there while it runs. Relative to the board's folder.
    pub shared_dir: PathBuf,
}

/// The settings of a route whose runs go to SSH hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct SshConfig {
    /// The hosts, chosen least busy first.
    pub hosts: Vec<SshHost>,
    /// Extra `ssh` arguments for every call (`-i key`, `-p port`, `-o ...`).
    pub ssh_args: Vec<String>,
    /// Where runs' folders go on each host; relative to the login's home folder.
    pub remote_dir: String,
    /// How long a host that could not be reached is left out of the choice.
    pub host_down_for: Duration,
}

/// One SSH host: an `ssh` destination (`host`, `user@host`, `ssh://user@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub destination: String,
    /// At most this many runs on it at once; `None`: only the runtime's `max_parallel` bounds it.
    pub max_parallel: Option<usize>,
}

/// The default `remote_dir` of an SSH route.
pub const DEFAULT_REMOTE_DIR: &str = ".taskboard-runs";
/// The default `host_down_for` of an SSH route.
pub const DEFAULT_HOST_DOWN_FOR: Duration = Duration::from_secs(60);

/// `workspace = "shared" | "worktree"` on a route.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Workspace {
    /// The board's folder, shared with the person and every other run (the default).
    #[default]
    Shared,
    /// A git worktree per attempt; a success waits for a person's approval to land.
    Worktree(WorktreeConfig),
}

/// The settings of a route whose runs work in git worktrees.
#[derive(Debug, Clone, PartialEq)]
pub struct WorktreeConfig {
    /// The repository (its main checkout); `None`: the repository that holds the board.
    /// Relative paths are relative to the board's folder.
    pub repo: Option<PathBuf>,
    /// The branch work targets when the task names none; `None`: the branch checked out in
    /// the repository when the task is claimed.
    pub base_branch: Option<String>,
    /// Globs (relative to the repository) of untracked files copied into each new worktree.
    pub include: Vec<String>,
    /// A command run in the worktree before the executor; its failure fails the attempt.
    pub setup: Option<Vec<String>>,
    /// How an approved change lands on its base branch.
    pub merge: MergeStrategy,
    /// How long a worktree nobody approved or rejected is kept before `gc` removes it.
    pub keep: Duration,
}

impl Default for WorktreeConfig {
    fn default() -> Self {
        WorktreeConfig {
            repo: None,
            base_branch: None,
            include: Vec::new(),
            setup: None,
            merge: MergeStrategy::Squash,
            keep: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// `merge = "squash" | "merge" | "rebase"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeStrategy {
    /// One commit on the base branch's tip holding the whole change.
    #[default]
    Squash,
    /// A merge commit with the snapshot as second parent.
    Merge,
    /// The run's commits replayed on the tip.
    Rebase,
}

impl MergeStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::Squash => "squash",
            MergeStrategy::Merge => "merge",
            MergeStrategy::Rebase => "rebase",
        }
    }
}

/// One `[repos.<name>]` table: a repository a task may name in its `repos:` field.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// Relative paths are relative to the board's folder.
    pub path: PathBuf,
    pub base_branch: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            debounce: Duration::from_millis(2000),
            max_parallel: 2,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(30),
            stale_after: Duration::from_secs(2 * 3600),
            rescan_every: Duration::from_secs(3600),
            grace: Duration::from_secs(10),
            output_cap: 1024 * 1024,
            agent: "taskboard".to_string(),
            events_max_size: 16 * 1024 * 1024,
            log_keep: 14,
            packet_budget: 64 * 1024,
        }
    }
}

impl Default for Config {
    /// The built-in defaults: the runtime settings documented above and no executors, so a board
    /// without a configuration file dispatches nothing.
    fn default() -> Self {
        Config {
            runtime: RuntimeConfig::default(),
            executors: BTreeMap::new(),
            repos: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The executor serving `route` (`None` means `default`), with its route name.
    pub fn executor_for(&self, route: Option<&str>) -> Option<(&str, &ExecutorConfig)> {
        self.executors
            .get_key_value(route.unwrap_or("default"))
            .map(|(name, exec)| (name.as_str(), exec))
    }
}

/// A configuration file that cannot be used, with where the problem is when that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending text.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending text.
    pub column: Option<usize>,
    pub message: String,
    pub path: Option<PathBuf>,
}

impl ConfigError {
    pub fn at_path(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            line: None,
            column: None,
            message: message.into(),
            path: Some(path.to_path_buf()),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `path:line:col: message`, dropping the parts that are unknown. Without a path the
    /// position reads `line L, column C: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => {
                write!(f, "{}:{line}:", path.display())?;
                if let Some(col) = self.column {
                    write!(f, "{col}:")?;
                }
                write!(f, " {}", self.message)
            }
            (Some(path), None) => write!(f, "{}: {}", path.display(), self.message),
            (None, Some(line)) => {
                write!(f, "line {line}")?;
                if let Some(col) = self.column {
                    write!(f, ", column {col}")?;
                }
                write!(f, ": {}", self.message)
            }
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parse the text of a `taskboard.toml`. Pure.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            line,
            column,
            message: one_line(e.message()),
            path: None,
        }
    })?;
    let config = raw.into_config(text)?;
    check_reviews(&config)?;
    Ok(config)
}

/// A `review` route must exist, differ from its own route, and not ask for a review itself
/// (a review of a review would never end).
fn check_reviews(config: &Config) -> Result<(), ConfigError> {
    for (route, exec) in &config.executors {
        let Some(review) = &exec.review else { continue };
        let problem = match config.executors.get(review) {
            None => format!("[executors.{route}] review = \"{review}\" names no executor"),
            Some(_) if review == route => {
                format!("[executors.{route}] cannot review itself")
            }
            Some(r) if r.review.is_some() => format!(
                "[executors.{route}] review = \"{review}\", but [executors.{review}] has a review of its own"
            ),
            Some(_) => continue,
        };
        return Err(ConfigError {
            line: None,
            column: None,
            message: problem,
            path: None,
        });
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.trim()
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// The duration and size grammars of config values live with every other value people write.
pub use crate::core::fmt::{parse_duration, parse_size};

// ----- the raw shape, as serde reads it -----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a configuration table")]
struct RawConfig {
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    executors: BTreeMap<RouteName, RawExecutor>,
    #[serde(default)]
    repos: BTreeMap<RepoName, RawRepo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [runtime] table")]
struct RawRuntime {
    #[serde(deserialize_with = "de_debounce_ms")]
    debounce_ms: u64,
    #[serde(deserialize_with = "de_positive_usize")]
    max_parallel: usize,
    #[serde(deserialize_with = "de_positive_u32")]
    max_attempts: u32,
    #[serde(deserialize_with = "de_duration_or_zero")]
    retry_backoff: Duration,
    #[serde(deserialize_with = "de_duration")]
    stale_after: Duration,
    #[serde(deserialize_with = "de_duration")]
    rescan_every: Duration,
    #[serde(deserialize_with = "de_duration_or_zero")]
    grace: Duration,
    #[serde(deserialize_with = "de_size")]
    output_cap: u64,
    #[serde(deserialize_with = "de_agent")]
    agent: String,
    #[serde(deserialize_with = "de_size")]
    events_max_size: u64,
    #[serde(deserialize_with = "de_positive_u32")]
    log_keep: u32,
    #[serde(deserialize_with = "de_size")]
    packet_budget: u64,
}

impl Default for RawRuntime {
    fn default() -> Self {
        let d = RuntimeConfig::default();
        RawRuntime {
            debounce_ms: d.debounce.as_millis() as u64,
            max_parallel: d.max_parallel,
            max_attempts: d.max_attempts,
            retry_backoff: d.retry_backoff,
            stale_after: d.stale_after,
            rescan_every: d.rescan_every,
            grace: d.grace,
            output_cap: d.output_cap,
            agent: d.agent,
            events_max_size: d.events_max_size,
            log_keep: d.log_keep,
            packet_budget: d.packet_budget,
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an [executors.<name>] table with a command"
)]
struct RawExecutor {
    #[serde(deserialize_with = "de_command")]
    command: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_env")]
    env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "de_opt_usd")]
    max_cost_usd: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_usd")]
    daily_budget_usd: Option<f64>,
    #[serde(default)]
    review: Option<RouteName>,
    #[serde(default)]
    workspace: Option<Spanned<WorkspaceKind>>,
    // The keys below only mean something with `workspace = "worktree"`; their spans let the
    // error for one written on a shared route point at it.
    #[serde(default)]
    repo: Option<Spanned<RepoPath>>,
    #[serde(default)]
    base_branch: Option<Spanned<BranchName>>,
    #[serde(default)]
    worktree_include: Option<Spanned<IncludeGlobs>>,
    #[serde(default)]
    setup: Option<Spanned<SetupCommand>>,
    #[serde(default)]
    merge: Option<Spanned<MergeStrategy>>,
    #[serde(default)]
    keep_worktrees: Option<Spanned<KeepDuration>>,
    #[serde(default)]
    runner: Option<Spanned<RunnerSetting>>,
    // Slurm's keys, then SSH's: each is an error on a route of another runner.
    #[serde(default)]
    sbatch_args: Option<Spanned<ArgList>>,
    #[serde(default)]
    shared_dir: Option<Spanned<SharedDir>>,
    #[serde(default)]
    hosts: Option<Spanned<HostList>>,
    #[serde(default)]
    ssh_args: Option<Spanned<ArgList>>,
    #[serde(default)]
    remote_dir: Option<Spanned<RemoteDir>>,
    #[serde(default)]
    host_down_for: Option<Spanned<KeepDuration>>,
}

/// `runner = "local" | "slurm" | "ssh"`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunnerSetting {
    Local,
    Slurm,
    Ssh,
}

impl<'de> Deserialize<'de> for RunnerSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "local" => Ok(RunnerSetting::Local),
            "slurm" => Ok(RunnerSetting::Slurm),
            "ssh" => Ok(RunnerSetting::Ssh),
            _ => Err(de::Error::custom(format!(
                "runner must be \"local\", \"slurm\" or \"ssh\", not \"{s}\""
            ))),
        }
    }
}

/// `sbatch_args`, `ssh_args`: a list of non-empty strings without NUL.
struct ArgList(Vec<String>);

impl<'de> Deserialize<'de> for ArgList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        if let Some(i) = list.iter().position(|a| a.is_empty() || a.contains('\0')) {
            return Err(de::Error::custom(format!(
                "argument {} must be a non-empty string without NUL",
                i + 1
            )));
        }
        Ok(ArgList(list))
    }
}

/// `hosts`: a non-empty list of destinations, each a string or `{ host = "...", max_parallel = N }`.
struct HostList(Vec<SshHost>);

#[derive(Deserialize)]
#[serde(untagged)]
enum RawHost {
    Name(String),
    Table {
        host: String,
        #[serde(default)]
        max_parallel: Option<usize>,
    },
}

impl<'de> Deserialize<'de> for HostList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<RawHost>::deserialize(d).map_err(|_| {
            de::Error::custom(
                "hosts must be a list of ssh destinations, each \"host\" or { host = \"host\", max_parallel = N }",
            )
        })?;
        if raw.is_empty() {
            return Err(de::Error::custom("hosts must name at least one host"));
        }
        let mut hosts: Vec<SshHost> = Vec::new();
        for (i, h) in raw.into_iter().enumerate() {
            let (destination, max_parallel) = match h {
                RawHost::Name(n) => (n, None),
                RawHost::Table { host, max_parallel } => (host, max_parallel),
            };
            if !valid_destination(&destination) {
                return Err(de::Error::custom(format!(
                    "host {} \"{destination}\" is not an ssh destination (host, user@host or ssh://user@host:port; no spaces, not starting with '-')",
                    i + 1
                )));
            }
            if max_parallel == Some(0) {
                return Err(de::Error::custom(format!(
                    "host {} \"{destination}\": max_parallel must be at least 1",
                    i + 1
                )));
            }
            if hosts.iter().any(|h| h.destination == destination) {
                return Err(de::Error::custom(format!(
                    "host \"{destination}\" is listed twice"
                )));
            }
            hosts.push(SshHost {
                destination,
                max_parallel,
            });
        }
        Ok(HostList(hosts))
    }
}

/// An ssh destination that cannot be taken for an option or split by a shell.
fn valid_destination(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `remote_dir`: a folder path on the hosts, without characters a shell would read.
struct RemoteDir(String);

impl<'de> Deserialize<'de> for RemoteDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let fine = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
        if s.is_empty() || !s.chars().all(fine) || s.starts_with('-') {
            return Err(de::Error::custom(format!(
                "remote_dir \"{s}\" must be a path of letters, digits and / . _ - +"
            )));
        }
        Ok(RemoteDir(s))
    }
}

/// `workspace = "shared" | "worktree"`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum WorkspaceKind {
    Shared,
    Worktree,
}

/// One `[repos.<name>]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [repos.<name>] table with a path")]
struct RawRepo {
    path: RepoPath,
    #[serde(default)]
    base_branch: Option<BranchName>,
}

/// A repository name in `[repos.<name>]`: the same rule as route names.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RepoName(String);

impl<'de> Deserialize<'de> for RepoName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if valid_route(&s) {
            Ok(RepoName(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid repository name \"{s}\": use letters, digits, '_' and '-' only"
            )))
        }
    }
}

/// A repository's path: non-empty, without NUL.
struct RepoPath(PathBuf);

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(de::Error::custom(
                "a repository path cannot be empty; write \".\" for the board's folder",
            ));
        }
        if s.contains('\0') {
            return Err(de::Error::custom(
                "a repository path cannot contain a NUL character",
            ));
        }
        Ok(RepoPath(PathBuf::from(s)))
    }
}

/// `shared_dir`: a folder; relative paths are relative to the board's folder.
struct SharedDir(PathBuf);

impl<'de> Deserialize<'de> for SharedDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() || s.contains('\0') {
            return Err(de::Error::custom(
                "shared_dir must be a folder path (not empty, no NUL)",
            ));
        }
        Ok(SharedDir(PathBuf::from(s)))
    }
}

/// A branch name, as `git check-ref-format --branch` would take it.
struct BranchName(String);

impl<'de> Deserialize<'de> for BranchName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if valid_branch(&s) {
            Ok(BranchName(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid branch name \"{s}\": git would refuse refs/heads/{s} (no spaces, '..', '~', '^', ':', '?', '*', '[', '\\', and no part starting with '.')"
            )))
        }
    }
}

/// Whether `name` is a branch name git accepts: `refs/heads/<name>` is a valid ref, and the
/// name is neither `@` nor `HEAD` nor starts with `-` (as `git branch` refuses them).
pub fn valid_branch(name: &str) -> bool {
    !name.starts_with('-')
        && name != "@"
        && name != "HEAD"
        && crate::core::workspace::is_valid_ref_name(&format!("refs/heads/{name}"))
}

/// `worktree_include`: globs of untracked files, each a non-empty string.
struct IncludeGlobs(Vec<String>);

impl<'de> Deserialize<'de> for IncludeGlobs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let globs = Vec::<String>::deserialize(d)?;
        for (n, g) in globs.iter().enumerate() {
            if g.trim().is_empty() || g.contains('\0') {
                return Err(de::Error::custom(format!(
                    "worktree_include element {} must be a non-empty glob without NUL",
                    n + 1
                )));
            }
        }
        Ok(IncludeGlobs(globs))
    }
}

/// `setup`: read like `command`.
struct SetupCommand(Vec<String>);

impl<'de> Deserialize<'de> for SetupCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_command(d).map(SetupCommand)
    }
}

/// `keep_worktrees`: a duration longer than zero.
struct KeepDuration(Duration);

impl<'de> Deserialize<'de> for KeepDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_duration(d).map(KeepDuration)
    }
}

impl<'de> Deserialize<'de> for MergeStrategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "squash" => Ok(MergeStrategy::Squash),
            "merge" => Ok(MergeStrategy::Merge),
            "rebase" => Ok(MergeStrategy::Rebase),
            _ => Err(de::Error::custom(format!(
                "merge must be \"squash\", \"merge\" or \"rebase\", not \"{s}\""
            ))),
        }
    }
}

impl RawExecutor {
    /// The route's workspace; a worktree-only key on a shared route is an error at that key.
    fn workspace(&mut self, route: &str, text: &str) -> Result<Workspace, ConfigError> {
        let worktree = self
            .workspace
            .as_ref()
            .is_some_and(|w| *w.get_ref() == WorkspaceKind::Worktree);
        if !worktree {
            let spans = [
                ("repo", self.repo.as_ref().map(Spanned::span)),
                ("base_branch", self.base_branch.as_ref().map(Spanned::span)),
                (
                    "worktree_include",
                    self.worktree_include.as_ref().map(Spanned::span),
                ),
                ("setup", self.setup.as_ref().map(Spanned::span)),
                ("merge", self.merge.as_ref().map(Spanned::span)),
                (
                    "keep_worktrees",
                    self.keep_worktrees.as_ref().map(Spanned::span),
                ),
            ];
            let first = spans
                .into_iter()
                .filter_map(|(key, span)| span.map(|s| (key, s)))
                .min_by_key(|(_, s)| s.start);
            if let Some((key, span)) = first {
                let (line, column) = line_col(text, span.start);
                return Err(ConfigError {
                    line: Some(line),
                    column: Some(column),
                    message: format!(
                        "[executors.{route}] {key} only applies to a route whose runs work in their own worktree; add workspace = \"worktree\" or remove {key}"
                    ),
                    path: None,
                });
            }
            return Ok(Workspace::Shared);
        }
        let defaults = WorktreeConfig::default();
        Ok(Workspace::Worktree(WorktreeConfig {
            repo: self.repo.take().map(|r| r.into_inner().0),
            base_branch: self.base_branch.take().map(|b| b.into_inner().0),
            include: self
                .worktree_include
                .take()
                .map_or(defaults.include, |i| i.into_inner().0),
            setup: self.setup.take().map(|s| s.into_inner().0),
            merge: self
                .merge
                .take()
                .map_or(defaults.merge, Spanned::into_inner),
            keep: self
                .keep_worktrees
                .take()
                .map_or(defaults.keep, |k| k.into_inner().0),
        }))
    }
}

impl RawExecutor {
    /// The first key (in the file's order) of a runner other than `kind`, with its span and the
    /// runner it belongs to.
    fn stray_runner_key(
        &self,
        kind: RunnerSetting,
    ) -> Option<(&'static str, std::ops::Range<usize>, &'static str)> {
        let keys = [
            (
                "sbatch_args",
                self.sbatch_args.as_ref().map(Spanned::span),
                RunnerSetting::Slurm,
            ),
            (
                "shared_dir",
                self.shared_dir.as_ref().map(Spanned::span),
                RunnerSetting::Slurm,
            ),
            (
                "hosts",
                self.hosts.as_ref().map(Spanned::span),
                RunnerSetting::Ssh,
            ),
            (
                "ssh_args",
                self.ssh_args.as_ref().map(Spanned::span),
                RunnerSetting::Ssh,
            ),
            (
                "remote_dir",
                self.remote_dir.as_ref().map(Spanned::span),
                RunnerSetting::Ssh,
            ),
            (
                "host_down_for",
                self.host_down_for.as_ref().map(Spanned::span),
                RunnerSetting::Ssh,
            ),
        ];
        keys.into_iter()
            .filter(|(_, _, owner)| *owner != kind)
            .filter_map(|(key, span, owner)| {
                let owner = if owner == RunnerSetting::Slurm {
                    "slurm"
                } else {
                    "ssh"
                };
                span.map(|s| (key, s, owner))
            })
            .min_by_key(|(_, s, _)| s.start)
    }

    /// The route's runner; a key of another runner is an error at that key, and so is a
    /// remote runner on a worktree route (worktrees are made on this machine).
    fn runner(&mut self, route: &str, text: &str) -> Result<Runner, ConfigError> {
        let kind = self
            .runner
            .as_ref()
            .map_or(RunnerSetting::Local, |r| *r.get_ref());
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ConfigError {
                line: Some(line),
                column: Some(column),
                message,
                path: None,
            }
        };
        if let Some((key, span, owner)) = self.stray_runner_key(kind) {
            return Err(at(
                span,
                format!(
                    "[executors.{route}] {key} only applies to runner = \"{owner}\"; set runner = \"{owner}\" or remove {key}"
                ),
            ));
        }
        let worktree = self
            .workspace
            .as_ref()
            .is_some_and(|w| *w.get_ref() == WorkspaceKind::Worktree);
        if worktree
            && kind != RunnerSetting::Local
            && let Some(r) = &self.runner
        {
            return Err(at(
                r.span(),
                format!(
                    "[executors.{route}] workspace = \"worktree\" runs on this machine only; a remote runner works in its run's own folder (use workspace = \"shared\" or runner = \"local\")"
                ),
            ));
        }
        let table_span = self.runner.as_ref().map_or(0..0, Spanned::span);
        match kind {
            RunnerSetting::Local => Ok(Runner::Local),
            RunnerSetting::Slurm => {
                let Some(dir) = self.shared_dir.take() else {
                    return Err(at(
                        table_span,
                        format!(
                            "[executors.{route}] runner = \"slurm\" needs shared_dir, a folder this machine and the compute nodes both read and write"
                        ),
                    ));
                };
                Ok(Runner::Slurm(SlurmConfig {
                    sbatch_args: self
                        .sbatch_args
                        .take()
                        .map_or_else(Vec::new, |a| a.into_inner().0),
                    shared_dir: dir.into_inner().0,
                }))
            }
            RunnerSetting::Ssh => {
                let Some(hosts) = self.hosts.take() else {
                    return Err(at(
                        table_span,
                        format!(
                            "[executors.{route}] runner = \"ssh\" needs hosts, a list of ssh destinations"
                        ),
                    ));
                };
                Ok(Runner::Ssh(SshConfig {
                    hosts: hosts.into_inner().0,
                    ssh_args: self
                        .ssh_args
                        .take()
                        .map_or_else(Vec::new, |a| a.into_inner().0),
                    remote_dir: self
                        .remote_dir
                        .take()
                        .map_or_else(|| DEFAULT_REMOTE_DIR.to_string(), |d| d.into_inner().0),
                    host_down_for: self
                        .host_down_for
                        .take()
                        .map_or(DEFAULT_HOST_DOWN_FOR, |k| k.into_inner().0),
                }))
            }
        }
    }
}

/// A route name, checked as it is read so the error points at the key.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RouteName(String);

impl<'de> Deserialize<'de> for RouteName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if valid_route(&s) {
            Ok(RouteName(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid executor name \"{s}\": use letters, digits, '_' and '-' only"
            )))
        }
    }
}

impl RawConfig {
    fn into_config(self, text: &str) -> Result<Config, ConfigError> {
        let r = self.runtime;
        let mut executors = BTreeMap::new();
        for (name, mut v) in self.executors {
            let runner = v.runner(&name.0, text)?;
            let workspace = v.workspace(&name.0, text)?;
            executors.insert(
                name.0,
                ExecutorConfig {
                    command: v.command,
                    timeout: v.timeout,
                    env: v.env,
                    max_cost_usd: v.max_cost_usd,
                    daily_budget_usd: v.daily_budget_usd,
                    review: v.review.map(|r| r.0),
                    workspace,
                    runner,
                },
            );
        }
        let repos = self
            .repos
            .into_iter()
            .map(|(name, repo)| {
                (
                    name.0,
                    RepoConfig {
                        path: repo.path.0,
                        base_branch: repo.base_branch.map(|b| b.0),
                    },
                )
            })
            .collect();
        Ok(Config {
            runtime: RuntimeConfig {
                debounce: Duration::from_millis(r.debounce_ms),
                max_parallel: r.max_parallel,
                max_attempts: r.max_attempts,
                retry_backoff: r.retry_backoff,
                stale_after: r.stale_after,
                rescan_every: r.rescan_every,
                grace: r.grace,
                output_cap: r.output_cap,
                agent: r.agent,
                events_max_size: r.events_max_size,
                log_keep: r.log_keep,
                packet_budget: r.packet_budget,
            },
            executors,
            repos,
        })
    }
}

/// Route names: `[A-Za-z0-9_-]+`.
pub fn valid_route(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Agent names: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn valid_agent(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

// ----- field readers: each error lands on the value's span -----

/// Reads a duration string; a bare number gets a hint instead of a type error.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"30s\", \"5m\" or \"1h30m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "a duration needs a unit and quotes: write \"{v}s\" or \"{v}ms\" rather than {v} (units: ms, s, m, h, d)"
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "a duration needs a unit and quotes: write \"{v}s\" or \"{v}ms\" rather than {v} (units: ms, s, m, h, d)"
        )))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "a duration needs a unit and quotes, e.g. \"500ms\" rather than {v}"
        )))
    }
}

fn de_duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = d.deserialize_any(DurationVisitor)?;
    if v.is_zero() {
        return Err(de::Error::custom("must be longer than zero"));
    }
    Ok(v)
}

fn de_opt_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v < 0.0 {
        return Err(de::Error::custom(format!(
            "an amount in US dollars must be zero or more, not {v}"
        )));
    }
    Ok(Some(v))
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn de_debounce_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of milliseconds")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            if v < 1 || v as u64 > MAX_DEBOUNCE_MS {
                return Err(E::custom(format!(
                    "debounce_ms must be between 1 and {MAX_DEBOUNCE_MS}, not {v}"
                )));
            }
            Ok(v as u64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            Err(E::custom(format!(
                "debounce_ms is a whole number of milliseconds without quotes, e.g. 2000, not \"{v}\""
            )))
        }
    }
    d.deserialize_any(V)
}

struct PositiveVisitor(&'static str);

impl Visitor<'_> for PositiveVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        if v < 1 {
            return Err(E::custom(format!("{} must be at least 1, not {v}", self.0)));
        }
        Ok(v as u64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

fn de_positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = d.deserialize_any(PositiveVisitor("max_parallel"))?;
    usize::try_from(v).map_err(|_| de::Error::custom("max_parallel is too large"))
}

fn de_positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = d.deserialize_any(PositiveVisitor("max_attempts"))?;
    u32::try_from(v).map_err(|_| de::Error::custom("max_attempts is too large"))
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes or a string such as \"512KiB\" or \"1MiB\"")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
                .and_then(|v| self.visit_u64(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            if v == 0 {
                return Err(E::custom("output_cap must be larger than zero"));
            }
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v)
                .map_err(E::custom)
                .and_then(|n| self.visit_u64(n))
        }
    }
    d.deserialize_any(V)
}

fn de_agent<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !valid_agent(&s) {
        return Err(de::Error::custom(format!(
            "invalid agent name \"{s}\": start with a letter or digit, then letters, digits, '_', '.' or '-'"
        )));
    }
    Ok(s)
}

fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings such as [\"claude\", \"-p\"]")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Err(E::custom(format!(
                "command must be an array of strings, e.g. [\"{}\"]; it is never run through a shell",
                v.split_whitespace().collect::<Vec<_>>().join("\", \"")
            )))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                if s.is_empty() {
                    return Err(de::Error::custom(format!(
                        "command element {} is an empty string",
                        out.len() + 1
                    )));
                }
                if s.contains('\0') {
                    return Err(de::Error::custom(format!(
                        "command element {} contains a NUL character",
                        out.len() + 1
                    )));
                }
                out.push(s);
            }
            if out.is_empty() {
                return Err(de::Error::custom(
                    "command is empty; name the program to run, e.g. [\"claude\", \"-p\"]",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

fn de_env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, String>::deserialize(d)?;
    for (k, v) in &map {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(de::Error::custom(format!(
                "invalid environment variable name \"{k}\": it must be non-empty without '=' or NUL"
            )));
        }
        if v.contains('\0') {
            return Err(de::Error::custom(format!(
                "environment variable {k} contains a NUL character"
            )));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é=1\nx", 2), (1, 2));
    }

    fn worktree(text: &str) -> WorktreeConfig {
        match parse(text).unwrap().executors["w"].workspace.clone() {
            Workspace::Worktree(w) => w,
            Workspace::Shared => panic!("shared: {text}"),
        }
    }

    fn refused(text: &str) -> ConfigError {
        parse(text).expect_err(text)
    }

    const W: &str = "[executors.w]\ncommand = [\"x\"]\nworkspace = \"worktree\"\n";

    #[test]
    fn workspace_defaults_to_shared() {
        let c = parse("[executors.w]\ncommand = [\"x\"]\n").unwrap();
        assert_eq!(c.executors["w"].workspace, Workspace::Shared);
        let c = parse("[executors.w]\ncommand = [\"x\"]\nworkspace = \"shared\"\n").unwrap();
        assert_eq!(c.executors["w"].workspace, Workspace::Shared);
        assert!(c.repos.is_empty());
    }

    #[test]
    fn a_bare_worktree_route_takes_every_default() {
        assert_eq!(worktree(W), WorktreeConfig::default());
        assert_eq!(
            WorktreeConfig::default().keep,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(WorktreeConfig::default().merge, MergeStrategy::Squash);
    }

    #[test]
    fn every_worktree_key_is_read() {
        let w = worktree(&format!(
            "{W}repo = \"../api\"\nbase_branch = \"release/2.0\"\nworktree_include = [\".env\", \"config/*.local\"]\nsetup = [\"npm\", \"ci\"]\nmerge = \"rebase\"\nkeep_worktrees = \"3d\"\n"
        ));
        assert_eq!(
            w,
            WorktreeConfig {
                repo: Some(PathBuf::from("../api")),
                base_branch: Some("release/2.0".into()),
                include: vec![".env".into(), "config/*.local".into()],
                setup: Some(vec!["npm".into(), "ci".into()]),
                merge: MergeStrategy::Rebase,
                keep: Duration::from_secs(3 * 86_400),
            }
        );
        assert_eq!(
            worktree(&format!("{W}merge = \"merge\"\n")).merge,
            MergeStrategy::Merge
        );
        assert_eq!(
            worktree(&format!("{W}merge = \"squash\"\n")).merge,
            MergeStrategy::Squash
        );
    }

    #[test]
    fn worktree_keys_on_a_shared_route_name_the_key_and_route() {
        for (key, value) in [
            ("repo", "\"../api\""),
            ("base_branch", "\"main\""),
            ("worktree_include", "[\".env\"]"),
            ("setup", "[\"make\"]"),
            ("merge", "\"merge\""),
            ("keep_worktrees", "\"1d\""),
        ] {
            for workspace in ["", "workspace = \"shared\"\n"] {
                let text =
                    format!("[executors.w]\ncommand = [\"x\"]\n{workspace}{key} = {value}\n");
                let e = refused(&text);
                let line = if workspace.is_empty() { 3 } else { 4 };
                assert_eq!(e.line, Some(line), "{e}");
                assert_eq!(e.column, Some(key.len() + 4), "{e}");
                assert!(
                    e.message
                        .contains(&format!("[executors.w] {key} only applies")),
                    "{e}"
                );
                assert!(e.message.contains("workspace = \"worktree\""), "{e}");
            }
        }
        // Two of them: the first in the file is named.
        let e = refused("[executors.w]\ncommand = [\"x\"]\nmerge = \"merge\"\nrepo = \"a\"\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains(" merge "), "{e}");
    }

    #[test]
    fn bad_worktree_values_are_refused_where_they_stand() {
        for (extra, needle) in [
            ("workspace = \"isolated\"\n", "unknown variant"),
            ("base_branch = \"a..b\"\n", "invalid branch name \"a..b\""),
            ("base_branch = \"has space\"\n", "invalid branch name"),
            ("base_branch = \"-x\"\n", "invalid branch name"),
            ("base_branch = \"x.lock\"\n", "invalid branch name"),
            ("base_branch = \"\"\n", "invalid branch name"),
            ("repo = \"\"\n", "cannot be empty"),
            ("worktree_include = [\"\"]\n", "worktree_include element 1"),
            ("worktree_include = \".env\"\n", "invalid type"),
            ("setup = \"npm ci\"\n", "never run through a shell"),
            ("setup = []\n", "command is empty"),
            ("setup = [\"a\", \"\"]\n", "element 2 is an empty string"),
            (
                "merge = \"ff\"\n",
                "merge must be \"squash\", \"merge\" or \"rebase\"",
            ),
            ("keep_worktrees = \"0s\"\n", "longer than zero"),
            ("keep_worktrees = 14\n", "unit"),
            ("worktrees = 1\n", "unknown field"),
        ] {
            let text = if extra.starts_with("workspace") {
                format!("[executors.w]\ncommand = [\"x\"]\n{extra}")
            } else {
                format!("{W}{extra}")
            };
            let e = refused(&text);
            let line = if extra.starts_with("workspace") { 3 } else { 4 };
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.column.is_some(), "{e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn repos_tables() {
        let c = parse(
            "[repos.api]\npath = \"../api\"\nbase_branch = \"develop\"\n[repos.web-app]\npath = \"/srv/web\"\n",
        )
        .unwrap();
        assert_eq!(
            c.repos["api"],
            RepoConfig {
                path: PathBuf::from("../api"),
                base_branch: Some("develop".into())
            }
        );
        assert_eq!(c.repos["web-app"].base_branch, None);
        assert_eq!(c.repos.len(), 2);
        for (text, line, needle) in [
            (
                "[repos.api]\nbase_branch = \"main\"\n",
                1,
                "missing field `path`",
            ),
            ("[repos.api]\npath = \"\"\n", 2, "cannot be empty"),
            (
                "[repos.api]\npath = \"a\"\nbase_branch = \"a b\"\n",
                3,
                "invalid branch name",
            ),
            (
                "[repos.api]\npath = \"a\"\nurl = \"x\"\n",
                3,
                "unknown field",
            ),
            (
                "[repos.\"a.b\"]\npath = \"a\"\n",
                1,
                "invalid repository name",
            ),
            (
                "[repos.\"a b\"]\npath = \"a\"\n",
                1,
                "invalid repository name",
            ),
        ] {
            let e = refused(text);
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "release/2.0", "feature/x-y_z", "é"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "", "-x", "HEAD", "a..b", "a b", "a:b", "x.lock", ".x", "a/", "a//b", "@", "a@{1}",
            "a~1", "a^", "a?", "a*", "a[", "a\\b",
        ] {
            assert!(!valid_branch(bad), "{bad}");
        }
    }
}
