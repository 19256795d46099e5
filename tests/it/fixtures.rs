//! Data-driven checks over `fixtures/`: every board's parse summary and lint output against the
//! expectations beside it, byte-exact round trips, and writebacks that touch only status bytes.
//!
//! Owns nothing in `src/`; it only reads fixtures. Run with `UPDATE_EXPECT=1` to rewrite the
//! `.lint` and `.tasks` files from the current behaviour, then review the diff: those files
//! are the specification.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use taskboard::core::board::{Board, Inline, outline};
use taskboard::core::lint::{
    Finding, LintContext, WorkspaceContext, invalid_utf8, lint, lint_with,
};
use taskboard::core::status::Status;
use taskboard::core::writeback::{Change, apply};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-20T16:00:00Z")
        .expect("fixed time")
        .with_timezone(&Utc)
}

fn routes() -> BTreeSet<String> {
    ["default", "review"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `default` works in worktrees, `review` in the board's folder; `api` and `web` are the
/// configured repositories.
fn workspaces() -> WorkspaceContext {
    WorkspaceContext {
        repos: ["api", "web"].iter().map(|s| s.to_string()).collect(),
        worktree_routes: ["default"].iter().map(|s| s.to_string()).collect(),
        shared_routes: ["review"].iter().map(|s| s.to_string()).collect(),
    }
}

fn lint_fixture(text: &str, board: &Board) -> Vec<Finding> {
    let routes = routes();
    let ctx = LintContext {
        now: now(),
        stale_after: Duration::from_secs(2 * 3600),
        routes: Some(&routes),
        // `retry_backoff = "6h"` with the default 3 attempts: a day.
        longest_backoff: Some(Duration::from_secs(24 * 3600)),
        conflict_markers: None,
    };
    lint_with(text, board, &ctx, Some(&workspaces()))
}

/// Text from a board, escaped so that one record stays on one line of an expectation file.
fn esc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

fn lint_lines(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        writeln!(
            out,
            "{}:{} {} {} {}",
            f.line,
            f.column,
            f.severity.as_str(),
            f.code,
            esc(&f.message)
        )
        .expect("write to string");
    }
    out
}

fn task_lines(board: &Board) -> String {
    let mut out = String::new();
    for t in &board.tasks {
        let status = t
            .status
            .as_ref()
            .map_or_else(|| "(none)".to_string(), |s| esc(&s.raw));
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            esc(&t.id),
            t.level,
            status,
            esc(&t.title)
        )
        .expect("write to string");
    }
    out
}

/// Compares `actual` with the file at `path`, or rewrites the file under `UPDATE_EXPECT=1`.
fn expect(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (UPDATE_EXPECT=1 rewrites it)\n--- expected\n{expected}--- actual\n{actual}",
            path.display()
        )),
        Err(e) => failures.push(format!(
            "{}: {e} (UPDATE_EXPECT=1 creates it)",
            path.display()
        )),
    }
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Round trip and writeback properties every board must have.
fn check_writeback(name: &str, text: &str, board: &Board) {
    let same = apply(text, board, &[]);
    assert_eq!(same.text, text, "{name}: empty writeback changed the text");
    assert!(!same.changed(), "{name}");

    // Every actionable task with a unique ID goes to `done`; nothing else may change.
    let mut seen = std::collections::HashMap::new();
    for t in &board.tasks {
        *seen.entry(t.id.as_str()).or_insert(0) += 1;
    }
    let mut changes = Vec::new();
    let mut ranges = Vec::new();
    for t in &board.tasks {
        let unique = seen[t.id.as_str()] == 1;
        if let (true, Some(current), Some(field)) = (unique, t.status(), &t.status)
            && t.is_actionable()
        {
            changes.push(Change {
                id: t.id.to_string(),
                expected: current.clone(),
                new: Status::Done,
            });
            ranges.push(field.range.clone());
        }
    }
    let out = apply(text, board, &changes);
    assert!(out.refused.is_empty(), "{name}: refused {:?}", out.refused);
    assert_eq!(out.applied.len(), changes.len(), "{name}");
    ranges.sort_by_key(|r| r.start);
    let mut expected = String::new();
    let mut at = 0;
    for r in &ranges {
        expected.push_str(&text[at..r.start]);
        expected.push_str("done");
        at = r.end;
    }
    expected.push_str(&text[at..]);
    assert_eq!(
        out.text, expected,
        "{name}: bytes outside status values changed"
    );
    let after = Board::parse(&out.text);
    for c in &changes {
        assert_eq!(
            after.task(&c.id).and_then(|t| t.status()),
            Some(&Status::Done),
            "{name}"
        );
    }
}

#[test]
fn boards_match_their_expectations() {
    let dir = root().join("boards");
    let boards = files_with_extension(&dir, "md");
    assert!(
        boards.len() >= 20,
        "only {} boards in {}",
        boards.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &boards {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let board = Board::parse(&text);
        expect(
            &path.with_extension("tasks"),
            &task_lines(&board),
            &mut failures,
        );
        expect(
            &path.with_extension("lint"),
            &lint_lines(&lint_fixture(&text, &board)),
            &mut failures,
        );
        check_writeback(&name, &text, &board);
        check_reparse(&name, &text);
        assert_eq!(
            outline(&text, Inline::Masked),
            outline(&text, Inline::AsWritten),
            "{name}: masking the inline syntax changed the blocks"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Edits that change what the lines around them mean, for the incremental re-parse.
const EDITS: [&str; 10] = [
    "",
    "x",
    "\n",
    "```\n",
    "<!--\n",
    "<div>\n",
    "- status: done\n",
    "## Z-9: new\n",
    "> ",
    "    ",
];

/// At every line start, each of [`EDITS`] inserted and replacing the line: the re-parse of the
/// edited text from the board of the original must equal its full parse.
fn check_reparse(name: &str, text: &str) {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    for (n, &at) in starts.iter().enumerate() {
        let line_end = starts.get(n + 1).copied().unwrap_or(text.len());
        for edit in EDITS {
            for end in [at, line_end] {
                let new = format!("{}{edit}{}", &text[..at], &text[end..]);
                assert_eq!(
                    Board::parse(text).reparse(text, &new),
                    Board::parse(&new),
                    "{name}: {edit:?} over {at}..{end}"
                );
            }
        }
    }
}

#[test]
fn every_lint_code_has_a_board() {
    let dir = root().join("boards");
    let mut seen = BTreeSet::new();
    for path in files_with_extension(&dir, "md") {
        let text = std::fs::read_to_string(&path).expect("fixture is UTF-8");
        let board = Board::parse(&text);
        seen.extend(lint_fixture(&text, &board).into_iter().map(|f| f.code));
    }
    let all = [
        "unknown-status",
        "duplicate-id",
        "unsafe-id",
        "malformed-id",
        "missing-status",
        "broken-dependency",
        "dependency-done",
        "dependency-cycle",
        "clock-anomaly",
        "stale-claim",
        "unknown-route",
        "duplicate-field",
        "conflict-markers",
        "retry-far-future",
        "touches-everything",
        "bad-base-branch",
        "unknown-repo",
        "repos-on-shared-route",
    ];
    for code in all {
        assert!(seen.contains(code), "no fixture board produces `{code}`");
        assert!(
            dir.join(format!("lint-{code}.md")).is_file(),
            "no fixtures/boards/lint-{code}.md"
        );
    }
}

#[test]
fn raw_bytes_give_one_invalid_utf8_finding() {
    let dir = root().join("bytes");
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/bytes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_none_or(|e| e != "lint"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 2);
    for path in entries {
        let bytes = std::fs::read(&path).expect("fixture");
        let finding =
            invalid_utf8(&bytes).unwrap_or_else(|| panic!("{} is valid UTF-8", path.display()));
        assert_eq!(finding.code, "invalid-utf8");
        assert!(finding.message.contains("offset"));
        let mut lint = path.clone().into_os_string();
        lint.push(".lint");
        expect(Path::new(&lint), &lint_lines(&[finding]), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_starter_and_demo_boards_have_no_errors() {
    // The starter board `init` writes (a few examples, nothing to run) and the demo board
    // `demo` writes (every kind of status).
    let boards = [
        (
            "starter-template",
            include_str!("../../starter-template/taskboard.toml"),
            3,
        ),
        (
            "board-template",
            include_str!("../../board-template/taskboard.toml"),
            8,
        ),
    ];
    for (folder, config_text, min_tasks) in boards {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(folder)
            .join("task-board.md");
        let text = std::fs::read_to_string(path).expect("template");
        let board = Board::parse(&text);
        assert!(board.tasks.len() >= min_tasks, "{folder}");
        // Against the routes of the template's own configuration, as they are written together.
        let config = taskboard::core::config::parse(config_text)
            .unwrap_or_else(|e| panic!("{folder}/taskboard.toml is invalid: {e}"));
        let routes: std::collections::BTreeSet<String> = config.executors.keys().cloned().collect();
        let ctx = LintContext {
            now: now(),
            stale_after: config.runtime.stale_after,
            routes: Some(&routes),
            longest_backoff: Some(taskboard::core::plan::longest_backoff_for(
                config.runtime.retry_backoff,
                config.runtime.max_attempts,
            )),
            conflict_markers: None,
        };
        let errors: Vec<_> = lint(&text, &board, &ctx)
            .into_iter()
            .filter(|f| f.severity == taskboard::core::lint::Severity::Error)
            .collect();
        assert_eq!(errors, vec![], "{folder}");
        check_writeback(folder, &text, &board);
    }
}

/// 10,000 tasks, generated here rather than committed: parse, lint and write back stay fast
/// and exact.
#[test]
fn ten_thousand_tasks() {
    let mut text = String::from("# Large board\n\n");
    for i in 0..10_000 {
        let status = match i % 5 {
            0 => "ready".to_string(),
            1 => format!("blocked:task:BIG-{}", i - 1),
            2 => "done".to_string(),
            3 => "failed:exit_1".to_string(),
            _ => "running:agent-a:2026-04-20T15:30Z".to_string(),
        };
        writeln!(
            text,
            "## BIG-{i}: Task number {i} ✓\n- status: {status}\n- route: review\n\nDescription {i}.\n"
        )
        .expect("write to string");
    }
    let started = Instant::now();
    let board = Board::parse(&text);
    assert_eq!(board.tasks.len(), 10_000);
    assert_eq!(lint_fixture(&text, &board), vec![]);
    check_writeback("large", &text, &board);
    // Generous even for an unoptimised build; catches accidental quadratic work.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
