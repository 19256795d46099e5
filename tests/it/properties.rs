//! Property tests for the core: the status grammar, the board parser and the CAS writer.
//!
//! Each property runs 256 cases by default so the suite stays fast in debug builds. For a long
//! run, set `PROPTEST_CASES`, e.g. `PROPTEST_CASES=20000 cargo test --release --test properties`.
//! Failing inputs are not persisted to disk: when one is found, add it below as a plain test
//! (or under `fixtures/fuzz-regressions/`).

use std::collections::HashMap;
use std::ops::Range;

use chrono::DateTime;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;
use taskboard::core::board::{Backwards, Board, Edit, Inline, outline};
use taskboard::core::status::{Stamp, StampPrecision, Status};
use taskboard::core::writeback::{Change, Refusal, apply};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Status generators

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,12}"
}

fn task_id() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,6}-[0-9]{1,5}"
}

/// Free text as the grammar allows it: non-empty, no surrounding whitespace, no backticks or
/// control characters. Mostly readable, sometimes any Unicode.
fn reason() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9][a-zA-Z0-9 _:.,/()<>|*#-]{0,24}[a-z0-9]",
        1 => "[a-z]",
        2 => "[^`\\p{Cc}]{1,24}",
    ]
    .prop_filter("no surrounding whitespace", |s| s.trim() == s)
}

/// Any UTC time from 0000-01-01 to 9999-12-31, at minute or second precision.
fn stamp() -> impl Strategy<Value = Stamp> {
    (-62_167_219_200i64..=253_402_300_799i64, any::<bool>()).prop_map(|(secs, minute)| {
        let secs = if minute {
            secs - secs.rem_euclid(60)
        } else {
            secs
        };
        Stamp {
            at: DateTime::from_timestamp(secs, 0).expect("in range"),
            precision: if minute {
                StampPrecision::Minute
            } else {
                StampPrecision::Second
            },
        }
    })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Ready),
        Just(Status::Done),
        (
            name().prop_filter("`task` and `retry` are keywords", |w| w != "task"
                && w != "retry"),
            reason()
        )
            .prop_map(|(who, reason)| Status::Blocked { who, reason }),
        vec(task_id(), 1..4).prop_map(Status::BlockedOnTasks),
        stamp().prop_map(Status::RetryAt),
        (name(), stamp()).prop_map(|(agent, since)| Status::Running { agent, since }),
        reason().prop_map(|reason| Status::Failed { reason }),
    ]
}

/// Strings near the grammar, to reach the deeper error paths.
fn status_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "(ready|done|blocked|running|failed|Ready)(:[^\n]{0,12}){0,4}",
        "blocked:task:[A-Za-z0-9_, -]{0,20}",
        "(blocked:retry:|running:[a-z]{0,3}:)[0-9TZ:+. -]{0,24}",
        "(blocked:retry:|running:a:)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?Z?",
    ]
}

// ---------------------------------------------------------------------------------------------
// Board generator
//
// A board is rendered from blocks separated by blank lines. The generator remembers every task it
// wrote (ID, whether the ID is valid, and the status text) so the parser's answer can be checked.

#[derive(Debug, Clone)]
struct Expected {
    id: String,
    valid_id: bool,
    /// The status value as written (without backticks), if the task has a status field.
    status: Option<String>,
}

#[derive(Debug, Clone)]
struct Block {
    lines: Vec<String>,
    task: Option<Expected>,
}

#[derive(Debug, Clone)]
struct GenBoard {
    text: String,
    tasks: Vec<Expected>,
}

fn trailing() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(" \t ")]
}

/// Prose that stays a paragraph: starts with a letter, then text with inline Markdown and Unicode.
fn prose_line() -> impl Strategy<Value = String> {
    (
        "[A-Za-zéÜ中日🚀]",
        "[a-zA-Z0-9 ,.;:!?'\"()\\[\\]*_~éüßçñ中文字日本語한국어🚀🎉✅\u{200d}\t-]{0,50}",
        prop_oneof![
            3 => Just(String::new()),
            1 => Just(" with `inline code` and **bold**".to_string()),
            1 => Just(" see [the docs](https://example.com/a_b) <br>".to_string()),
            1 => Just(" ## A-1: not a heading mid-line".to_string()),
        ],
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

/// Blocks that may appear in a description or between tasks; none of them makes a task.
fn description_block() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        3 => vec(prose_line(), 1..4),
        1 => (
            prop_oneof![Just("```"), Just("~~~"), Just("````")],
            prop_oneof![Just(""), Just("md"), Just("markdown"), Just("rust")],
            vec(prose_line(), 0..2),
        )
            .prop_map(|(fence, info, body)| {
                let mut lines = vec![format!("{fence}{info}")];
                lines.push("## FENCE-1: a task-like heading in a fence".into());
                lines.push("- status: ready".into());
                lines.extend(body);
                lines.push("# FENCE-2".into());
                lines.push("- **Status**: `done`".into());
                lines.push(fence.to_string());
                lines
            }),
        1 => vec(prose_line(), 0..2).prop_map(|body| {
            let mut lines = vec![
                "> ## QUOTE-1: quoted".to_string(),
                "> - status: ready".to_string(),
            ];
            lines.extend(body.into_iter().map(|l| format!("> {l}")));
            lines
        }),
        1 => Just(vec![
            "<!--".to_string(),
            "## HIDDEN-1: commented out".to_string(),
            "- status: ready".to_string(),
            "-->".to_string(),
        ]),
        1 => Just(vec!["<!-- a one-line comment: ## X-1 -->".to_string()]),
        1 => Just(vec![
            "| ID | status |".to_string(),
            "|----|:------:|".to_string(),
            "| ## TABLE-1 | ready |".to_string(),
            "| 中文 | 🚀 |".to_string(),
        ]),
        1 => (
            prop_oneof![Just("SETEXT-1: looks like a task"), Just("Setext heading 🎉")],
            prop_oneof![Just("---"), Just("==="), Just("-----")],
        )
            .prop_map(|(t, u)| vec![t.to_string(), u.to_string()]),
        1 => prop_oneof![Just("---"), Just("***"), Just("___")].prop_map(|r| vec![r.to_string()]),
        1 => Just(vec![
            "    ## INDENTED-1: indented code".to_string(),
            "    - status: ready".to_string(),
        ]),
        1 => Just(vec![
            "- [ ] check the 🚀 launch".to_string(),
            "- note: not a status".to_string(),
            "  - nested: item".to_string(),
            "1. ordered".to_string(),
        ]),
    ]
}

fn section_block() -> impl Strategy<Value = Block> {
    (
        1u8..=6,
        prop_oneof![
            Just("Backlog"),
            Just("In progress 🚧"),
            Just("Done"),
            Just("计划 / Plan"),
            Just("Archive – 2026"),
            Just("Ready for review"),
        ],
        trailing(),
    )
        .prop_map(|(level, title, tr)| Block {
            lines: vec![format!("{} {title}{tr}", "#".repeat(level as usize))],
            task: None,
        })
}

#[derive(Debug, Clone)]
enum TaskStatus {
    Valid(Status),
    Invalid(&'static str),
    Missing,
}

fn task_block() -> impl Strategy<Value = Block> {
    let id = prop_oneof![
        8 => "[A-Z][A-Z0-9_]{0,5}-[0-9]{1,4}".prop_map(|s| (s, true)),
        1 => Just(("DUP-1".to_string(), true)),
        1 => prop_oneof![
            Just("Backlog"),
            Just("TASK15"),
            Just("A-1b"),
            Just("../etc"),
            Just("ÜBER-1"),
            Just("x.y-1"),
        ]
        .prop_map(|s| (s.to_string(), false)),
    ];
    let task_status = prop_oneof![
        8 => status().prop_map(TaskStatus::Valid),
        1 => prop_oneof![
            Just("in progress"),
            Just("Ready"),
            Just("blocked:bob"),
            Just("running:a:2026-04-20T15:25"),
            Just("`ready"),
        ]
        .prop_map(TaskStatus::Invalid),
        1 => Just(TaskStatus::Missing),
    ];
    let heading = (
        1u8..=6,
        0usize..=3,
        prop_oneof![Just(" "), Just("\t"), Just("  ")],
        prop_oneof![
            Just(": "),
            Just(":"),
            Just(" - "),
            Just(" — "),
            Just(" – "),
            Just(" ")
        ],
        prop_oneof![
            Just(""),
            Just("Write the brief"),
            Just("Título con acentos"),
            Just("修复 登录 bug 🐛"),
            Just("Ship it 🚀🎉"),
            Just("a `code` title **bold**"),
        ],
        prop_oneof![4 => Just(""), 1 => Just(" ##"), 1 => Just(" #")],
        trailing(),
    );
    let other_fields = vec(
        (
            prop_oneof![
                Just("route"),
                Just("owner"),
                Just("Due date"),
                Just("priority"),
                Just("depends-on")
            ],
            prop_oneof![
                Just("review"),
                Just("siyao"),
                Just("张伟"),
                Just("`cmd --flag`"),
                Just("🚀 high"),
                Just(""),
                Just("a: b: c"),
            ],
        ),
        0..4,
    );
    let field_style = (
        prop_oneof![Just('-'), Just('*'), Just('+')],
        prop_oneof![Just(" "), Just("  "), Just("\t"), Just(" \t")],
        0usize..=3,
        prop_oneof![
            Just(("", ":")),
            Just(("**", "**:")),
            Just(("**", ":**")),
            Just(("__", "__:")),
        ],
        prop_oneof![Just("status"), Just("Status"), Just("STATUS")],
        prop_oneof![Just(" "), Just("  "), Just("\t"), Just("")],
        any::<bool>(),
    );
    (
        id,
        task_status,
        heading,
        other_fields,
        field_style,
        any::<prop::sample::Index>(),
        any::<bool>(),
        vec(trailing(), 8),
        vec(description_block(), 0..3),
    )
        .prop_map(
            |(
                (id, valid_id),
                task_status,
                (level, lead, gap, sep, title, closing, tr),
                others,
                (marker, after_marker, indent, (open, close), key, before_value, quoted),
                status_at,
                blank_after_heading,
                trails,
                description,
            )| {
                // A heading without a valid ID is only a task when it has a status field.
                let task_status = match (&task_status, valid_id) {
                    (TaskStatus::Missing, false) => TaskStatus::Valid(Status::Ready),
                    _ => task_status,
                };
                let title_part = if title.is_empty() && sep.trim().is_empty() {
                    String::new()
                } else if title.is_empty() {
                    sep.trim_end().to_string()
                } else {
                    format!("{sep}{title}")
                };
                let mut lines = vec![format!(
                    "{}{}{gap}{id}{title_part}{closing}{tr}",
                    " ".repeat(lead),
                    "#".repeat(level as usize),
                )];
                if blank_after_heading {
                    lines.push(String::new());
                }
                let field_line = |key: &str, value: &str, n: usize| {
                    format!(
                        "{}{marker}{after_marker}{open}{key}{close}{before_value}{value}{}",
                        " ".repeat(indent),
                        trails[n % trails.len()]
                    )
                };
                let mut items: Vec<String> = others
                    .iter()
                    .enumerate()
                    .map(|(n, (k, v))| field_line(k, v, n + 1))
                    .collect();
                let status_text = match &task_status {
                    TaskStatus::Valid(s) => Some(s.to_string()),
                    TaskStatus::Invalid(s) => Some(s.to_string()),
                    TaskStatus::Missing => None,
                };
                let mut raw = status_text.clone();
                if let Some(s) = &status_text {
                    let value = if quoted { format!("`{s}`") } else { s.clone() };
                    // Backticks are only unwrapped when the inside has none of its own.
                    if quoted && s.contains('`') {
                        raw = Some(value.clone());
                    }
                    let line = field_line(key, &value, 0);
                    let at = status_at.index(items.len() + 1);
                    items.insert(at, line);
                }
                lines.extend(items);
                for block in description {
                    lines.push(String::new());
                    lines.extend(block);
                }
                Block {
                    lines,
                    task: Some(Expected {
                        id: if valid_id {
                            id
                        } else {
                            // The claimed ID of a malformed heading is its first word.
                            id.split(|c: char| c.is_whitespace() || c == ':')
                                .next()
                                .unwrap_or_default()
                                .to_string()
                        },
                        valid_id,
                        status: raw,
                    }),
                }
            },
        )
}

#[derive(Debug, Clone, Copy)]
enum Endings {
    Lf,
    CrLf,
    Mixed,
}

fn board() -> impl Strategy<Value = GenBoard> {
    let block = prop_oneof![
        1 => section_block(),
        4 => task_block(),
        1 => description_block().prop_map(|lines| Block { lines, task: None }),
    ];
    (
        vec(block, 0..16),
        prop_oneof![Just(Endings::Lf), Just(Endings::CrLf), Just(Endings::Mixed)],
        vec(any::<bool>(), 64),
        vec(
            prop_oneof![4 => Just(""), 1 => Just("  "), 1 => Just("\t")],
            16,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(blocks, endings, mix, blanks, bom, final_newline)| {
            let mut lines: Vec<String> = Vec::new();
            let mut tasks = Vec::new();
            for (n, mut block) in blocks.into_iter().enumerate() {
                // After a list, an indented heading would continue the last list item.
                let after_list = lines.last().is_some_and(|l| {
                    let l = l.trim_start();
                    l.starts_with(['-', '*', '+']) || l.starts_with("1.")
                });
                if after_list
                    && block.task.is_some()
                    && let Some(first) = block.lines.first_mut()
                {
                    *first = first.trim_start().to_string();
                }
                if n > 0 {
                    lines.push(blanks[n % blanks.len()].to_string());
                }
                lines.extend(block.lines);
                tasks.extend(block.task);
            }
            let mut text = String::new();
            if bom {
                text.push('\u{FEFF}');
            }
            for (n, line) in lines.iter().enumerate() {
                if n > 0 {
                    text.push_str(match endings {
                        Endings::Lf => "\n",
                        Endings::CrLf => "\r\n",
                        Endings::Mixed if mix[n % mix.len()] => "\r\n",
                        Endings::Mixed => "\n",
                    });
                }
                text.push_str(line);
            }
            if final_newline && !lines.is_empty() {
                text.push_str(match endings {
                    Endings::CrLf => "\r\n",
                    _ => "\n",
                });
            }
            GenBoard { text, tasks }
        })
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties

fn assert_range(text: &str, r: &Range<usize>, what: &str) {
    assert!(
        r.start <= r.end && r.end <= text.len(),
        "{what} {r:?} out of bounds (len {})",
        text.len()
    );
    assert!(
        text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
        "{what} {r:?} not on char boundaries"
    );
}

/// Every range the parser reports is in bounds, on char boundaries, and holds what it says.
fn check_ranges(text: &str, board: &Board) {
    for t in &board.tasks {
        assert_range(text, &t.heading, "heading");
        assert_range(text, &t.block, "block");
        assert!(t.block.start == t.heading.start && t.heading.end <= t.block.end);
        for f in t.fields() {
            assert_range(text, &f.key_range, "key");
            assert_range(text, &f.value_range, "value");
            assert_eq!(&text[f.key_range.clone()], f.key);
            assert_eq!(&text[f.value_range.clone()], f.value);
            assert!(f.value_range.start >= t.heading.end && f.value_range.end <= t.block.end);
        }
        if let Some(s) = &t.status {
            assert_range(text, &s.range, "status");
            assert_eq!(&text[s.range.clone()], s.raw);
            let (line, col) = board.line_col(text, s.range.start);
            assert!(line >= 1 && col >= 1);
        }
    }
    // Status ranges never overlap.
    let mut ranges: Vec<_> = board
        .tasks
        .iter()
        .filter_map(|t| t.status.as_ref().map(|s| s.range.clone()))
        .collect();
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        assert!(w[0].end <= w[1].start, "overlapping status ranges {w:?}");
    }
}

/// Tasks whose ID appears once and which the runtime may change.
fn unique_actionable(board: &Board) -> Vec<usize> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for t in &board.tasks {
        *count.entry(t.id.as_str()).or_default() += 1;
    }
    (0..board.tasks.len())
        .filter(|&i| board.tasks[i].is_actionable() && count[board.tasks[i].id.as_str()] == 1)
        .collect()
}

/// The splice computed independently of `writeback`: replace exactly these ranges.
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::new();
    let mut at = 0;
    for (r, new) in edits {
        out.push_str(&text[at..r.start]);
        out.push_str(&new);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

fn ids(board: &Board) -> Vec<&str> {
    board.tasks.iter().map(|t| t.id.as_str()).collect()
}

/// Applies `news` (task index, new status) and checks the result byte for byte.
fn check_writeback(text: &str, board: &Board, news: &[(usize, Status)]) {
    let changes: Vec<Change> = news
        .iter()
        .map(|(i, new)| {
            let t = &board.tasks[*i];
            Change {
                id: t.id.to_string(),
                expected: t.status().expect("actionable").clone(),
                new: new.clone(),
            }
        })
        .collect();
    let out = apply(text, board, &changes);
    assert!(out.refused.is_empty(), "refused: {:?}", out.refused);
    assert_eq!(out.applied, changes);
    let expected_text = splice(
        text,
        news.iter()
            .map(|(i, new)| {
                let range = board.tasks[*i].status.as_ref().unwrap().range.clone();
                (range, new.to_string())
            })
            .collect(),
    );
    assert_eq!(out.text, expected_text);
    let after = Board::parse(&out.text);
    assert_eq!(ids(&after), ids(board));
    // The runtime's board after its own write: re-parsed at the edits only.
    assert_eq!(
        board.clone().reparse_edits(text, &out.text, &out.edits),
        after
    );
    for (i, new) in news {
        assert_eq!(after.tasks[*i].status(), Some(new));
    }
    for (i, t) in after.tasks.iter().enumerate() {
        if !news.iter().any(|(j, _)| *j == i) {
            assert_eq!(
                t.status.as_ref().map(|s| &s.parsed),
                board.tasks[i].status.as_ref().map(|s| &s.parsed)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_statuses_round_trip(s in status()) {
        let printed = s.to_string();
        prop_assert_eq!(Status::parse(&printed), Ok(s));
    }

    /// Against its own print, another status's, and each cut short or run on by a byte.
    #[test]
    fn a_status_prints_as_exactly_its_printed_token(s in status(), other in status()) {
        let printed = s.to_string();
        let mut tokens = vec![printed.clone(), other.to_string(), String::new()];
        tokens.push(format!("{printed}x"));
        if let Some((cut, _)) = printed.char_indices().last() {
            tokens.push(printed[..cut].to_string());
        }
        for token in &tokens {
            prop_assert_eq!(s.prints_as(token), printed == *token, "{:?} against {:?}", printed, token);
        }
    }

    #[test]
    fn any_string_parses_or_errors_and_success_prints_back(s in status_like()) {
        match Status::parse(&s) {
            Ok(st) => prop_assert_eq!(st.to_string(), s),
            Err(e) => {
                prop_assert!(e.offset <= s.len(), "offset {} past the end", e.offset);
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn generated_boards_parse_as_written(b in board()) {
        let text = &b.text;
        let board = Board::parse(text);
        check_ranges(text, &board);

        let expected_ids: Vec<&str> = b.tasks.iter().map(|t| t.id.as_str()).collect();
        prop_assert_eq!(ids(&board), expected_ids);

        let mut count: HashMap<&str, usize> = HashMap::new();
        for t in &b.tasks {
            *count.entry(t.id.as_str()).or_default() += 1;
        }
        for (t, e) in board.tasks.iter().zip(&b.tasks) {
            prop_assert_eq!(t.id_problem.is_none(), e.valid_id, "{}", t.id);
            prop_assert_eq!(t.status.as_ref().map(|s| s.raw.as_str()), e.status.as_deref());
            if e.valid_id
                && count[e.id.as_str()] == 1
                && let Some(s) = e.status.as_deref().and_then(|s| Status::parse(s).ok())
            {
                let found = board.task(&e.id).and_then(|t| t.status());
                prop_assert_eq!(found, Some(&s));
            }
        }

        let same = apply(text, &board, &[]);
        prop_assert_eq!(&same.text, text);
        prop_assert!(same.applied.is_empty() && same.refused.is_empty());
    }

    #[test]
    fn writeback_changes_exactly_the_targeted_ranges(
        b in board(),
        picks in vec((any::<bool>(), status()), 0..24),
        wrong in status(),
    ) {
        let text = &b.text;
        let board = Board::parse(text);
        let targets = unique_actionable(&board);
        let news: Vec<(usize, Status)> = targets
            .iter()
            .zip(&picks)
            .filter(|(_, (pick, _))| *pick)
            .map(|(&i, (_, new))| (i, new.clone()))
            .collect();
        check_writeback(text, &board, &news);

        // A change whose expectation is stale is refused and nothing is written.
        if let Some(&i) = targets.first() {
            let task = &board.tasks[i];
            if task.status() != Some(&wrong) {
                let out = apply(text, &board, &[Change {
                    id: task.id.to_string(),
                    expected: wrong.clone(),
                    new: Status::Done,
                }]);
                prop_assert_eq!(&out.text, text);
                prop_assert!(out.applied.is_empty());
                let refused = matches!(out.refused.as_slice(), [(_, Refusal::Mismatch { .. })]);
                prop_assert!(refused, "{:?}", out.refused);
            }
        }

        // A change to an ID that two tasks share would be a guess: refused, nothing written.
        let shared = board.tasks.iter().enumerate().find(|(i, t)| {
            t.is_actionable() && board.tasks[..*i].iter().any(|u| u.id == t.id)
        });
        if let Some((_, task)) = shared {
            let out = apply(text, &board, &[Change {
                id: task.id.to_string(),
                expected: task.status().unwrap().clone(),
                new: Status::Done,
            }]);
            prop_assert_eq!(&out.text, text);
            let refused = matches!(out.refused.as_slice(), [(_, Refusal::Ambiguous)]);
            prop_assert!(refused, "{:?}", out.refused);
        }
    }

    #[test]
    fn any_text_parses_within_bounds(text in "(?s).{0,400}") {
        let board = Board::parse(&text);
        check_ranges(&text, &board);
        prop_assert_eq!(apply(&text, &board, &[]).text, text.clone());
    }

    #[test]
    fn byte_soup_parses_within_bounds(bytes in vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let board = Board::parse(&text);
        check_ranges(&text, &board);
    }

    /// Fragments of board syntax glued at random: reaches far more parser paths than plain noise.
    #[test]
    fn reparse_after_an_edit_equals_a_full_parse(
        b in board(),
        at in any::<prop::sample::Index>(),
        len in 0usize..60,
        insert in vec(edit_token(), 0..4),
    ) {
        check_reparse(&b.text, at, len, &insert.concat())?;
    }

    #[test]
    fn reparse_of_edited_soup_equals_a_full_parse(
        parts in vec(soup_token(), 0..80),
        at in any::<prop::sample::Index>(),
        len in 0usize..20,
        insert in vec(edit_token(), 0..4),
    ) {
        check_reparse(&parts.concat(), at, len, &insert.concat())?;
    }

    #[test]
    fn reparse_at_several_edits_equals_a_full_parse(
        b in board(),
        edits in vec((any::<prop::sample::Index>(), 0usize..30, vec(edit_token(), 0..3)), 1..6),
    ) {
        check_reparse_edits(&b.text, &edits)?;
    }

    #[test]
    fn reparse_of_soup_at_several_edits_equals_a_full_parse(
        parts in vec(soup_token(), 0..80),
        edits in vec((any::<prop::sample::Index>(), 0usize..20, vec(edit_token(), 0..3)), 1..6),
    ) {
        check_reparse_edits(&parts.concat(), &edits)?;
    }

    #[test]
    fn a_board_parsed_in_pieces_equals_its_whole_parse(b in board(), width in 2usize..9) {
        prop_assert_eq!(Board::parse_with(&b.text, &Backwards { width, least_piece: 1 }), Board::parse(&b.text));
    }

    /// Soup puts `#` lines inside fences, quotes, lists and HTML blocks, where a cut must not
    /// stand.
    #[test]
    fn soup_parsed_in_pieces_equals_its_whole_parse(
        parts in vec(soup_token(), 0..120),
        width in 2usize..9,
    ) {
        let text = parts.concat();
        prop_assert_eq!(Board::parse_with(&text, &Backwards { width, least_piece: 1 }), Board::parse(&text));
    }

    /// A parse hands pulldown-cmark the text with its emphasis and code delimiters masked; the
    /// blocks must be the ones of the text as written. Inline-heavy soup puts those delimiters
    /// next to every construct a line's start or a block rule reads.
    #[test]
    fn soup_outlines_the_same_with_its_inline_masked(
        parts in vec(prop_oneof![2 => soup_token(), 3 => inline_token()], 0..160),
    ) {
        let text = parts.concat();
        prop_assert_eq!(outline(&text, Inline::Masked), outline(&text, Inline::AsWritten), "{:?}", text);
    }

    #[test]
    fn a_board_outlines_the_same_with_its_inline_masked(b in board()) {
        prop_assert_eq!(outline(&b.text, Inline::Masked), outline(&b.text, Inline::AsWritten));
    }

    #[test]
    fn markdown_soup_parses_and_writes_back(parts in vec(soup_token(), 0..80), pick in status()) {
        let text: String = parts.concat();
        let board = Board::parse(&text);
        check_ranges(&text, &board);
        let news: Vec<(usize, Status)> = unique_actionable(&board)
            .into_iter()
            .map(|i| (i, pick.clone()))
            .collect();
        check_writeback(&text, &board, &news);
    }
}

/// Replaces up to `len` bytes at `at` with `insert` and checks that re-parsing from the board of
/// the original gives exactly the full parse of the result.
fn check_reparse(
    old: &str,
    at: prop::sample::Index,
    len: usize,
    insert: &str,
) -> Result<(), TestCaseError> {
    let mut start = at.index(old.len() + 1);
    while !old.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(old.len());
    while !old.is_char_boundary(end) {
        end += 1;
    }
    let new = format!("{}{insert}{}", &old[..start], &old[end..]);
    let parsed = Board::parse(&new);
    prop_assert_eq!(&Board::parse(old).reparse(old, &new), &parsed);
    // From a board whose index by ID was made: the index the re-parse keeps, or makes anew,
    // finds every task by its ID as a walk of the board does, old IDs and new.
    let indexed = Board::parse(old);
    let old_ids: Vec<String> = indexed.tasks.iter().map(|t| t.id.to_string()).collect();
    let _ = indexed.duplicated_ids();
    let board = indexed.reparse(old, &new);
    prop_assert_eq!(&board, &parsed);
    let new_ids = board.tasks.iter().map(|t| t.id.to_string());
    check_lookups(&board, old_ids.into_iter().chain(new_ids))?;
    prop_assert_eq!(board.duplicated_ids(), parsed.duplicated_ids());
    Ok(())
}

/// Replaces, at several places of `old` (each edit's place, length and insert, made to lie
/// apart and in order), and checks that re-parsing at those edits from the board of the
/// original, its index by ID made, gives exactly the full parse of the result.
fn check_reparse_edits(
    old: &str,
    edits: &[(prop::sample::Index, usize, Vec<&str>)],
) -> Result<(), TestCaseError> {
    let boundary = |mut i: usize| {
        while !old.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let mut places: Vec<(usize, usize, String)> = (edits.iter())
        .map(|(at, len, insert)| {
            let start = boundary(at.index(old.len() + 1));
            let end = boundary((start + len).min(old.len()));
            (start, end, insert.concat())
        })
        .collect();
    places.sort_by_key(|p| p.0);
    let (mut new, mut list, mut at) = (String::new(), Vec::new(), 0);
    for (start, end, insert) in places {
        if start < at {
            continue;
        }
        new.push_str(&old[at..start]);
        new.push_str(&insert);
        list.push(Edit {
            replaced: start..end,
            len: insert.len(),
        });
        at = end;
    }
    new.push_str(&old[at..]);
    let indexed = Board::parse(old);
    let _ = indexed.duplicated_ids();
    let board = indexed.reparse_edits(old, &new, &list);
    let parsed = Board::parse(&new);
    prop_assert_eq!(&board, &parsed);
    check_lookups(&board, parsed.tasks.iter().map(|t| t.id.to_string()))
}

/// Each of `ids` looked up on `board` (through the index it kept, or one made anew) finds the
/// tasks a walk of the board finds, in board order.
fn check_lookups(board: &Board, ids: impl Iterator<Item = String>) -> Result<(), TestCaseError> {
    for id in ids {
        let looked_up: Vec<usize> = board.with_id(&id).map(|t| t.heading.start).collect();
        let walked: Vec<usize> = (board.tasks.iter())
            .filter(|t| t.id == id.as_str())
            .map(|t| t.heading.start)
            .collect();
        prop_assert_eq!(looked_up, walked, "tasks named {:?}", id);
    }
    Ok(())
}

/// Inline syntax and what a block rule reads past a line's start: delimiters, code spans,
/// fences with info strings, link reference definitions, HTML tags and comments, escapes,
/// thematic breaks, table rows.
fn inline_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "*",
        "_",
        "`",
        "``",
        "```",
        "~~~",
        "**",
        "__",
        "***",
        "* * *",
        "_ _ _",
        "- * -",
        "\n",
        "\n",
        "\n\n",
        " ",
        "  ",
        "    ",
        "\t",
        "x",
        "a`b",
        "`x`",
        "*x*",
        "_x_",
        "[",
        "]",
        "[x]",
        "]:",
        "[x]: ",
        "/u*_`",
        " \"t*`\"",
        " '_'",
        " (`)",
        "<",
        ">",
        "<a b=x`y>",
        "<a b='`'>",
        "<div>",
        "</pre>",
        "<!-- ",
        " -->",
        "<?",
        "?>",
        "<![CDATA[",
        "]]>",
        "\\",
        "\\*",
        "\\`",
        "\\|",
        "|",
        "| a |",
        "|---|",
        ":-:",
        "> ",
        "- ",
        "* ",
        "+ ",
        "1. ",
        "1) ",
        "# ",
        "## ",
        "===",
        "---",
        "```sh `x`",
        "~~~ `x`",
        "``` a",
        "&#96;",
        "&ast;",
        "!",
        "![",
        "é",
        "\r\n",
        "\r",
    ])
}

/// What an edit inserts: soup, plus quotes (link titles) and whole lines.
fn edit_token() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => soup_token(),
        1 => prop::sample::select(vec![
            "\"", "'", "x", "\n\n", "[x]: /u \"t", "- status: done\n", "## Z-9\n", "<!-- x -->",
        ]),
    ]
}

fn soup_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\n",
        "\n",
        "\n",
        "\r\n",
        "\r",
        " ",
        " ",
        "  ",
        "\t",
        "\u{FEFF}",
        "#",
        "## ",
        "### ",
        "A-1",
        "B_2-30",
        "A-1",
        ": ",
        " - ",
        " — ",
        "title",
        "é",
        "🚀",
        "中",
        "- ",
        "* ",
        "+ ",
        "1. ",
        "status",
        "Status",
        "**",
        "__",
        ":",
        ": ",
        "`",
        "ready",
        "done",
        "running:a:2026-04-20T15:25Z",
        "blocked:task:A-1",
        "failed:x",
        "route: r",
        "```",
        "~~~",
        "    ",
        "> ",
        "<!--",
        "-->",
        "|",
        "|---|---|",
        "---",
        "===",
        "<div>",
        "</div>",
        "\\",
        "[x]: /u",
        "&amp;",
        "\u{0}",
        "\u{85}",
        "\u{2028}",
        // Whole task openings, so that the soup holds tasks the writer can change.
        "\n## A-1: t\n- status: ready\n",
        "\n### B_2-30\n\n* **Status**: `done`\n",
        "\r\n# C-3 — x\r\n- status: running:a:2026-04-20T15:25Z\r\n",
        "\n## D-4\n- route: r\n- __status__: failed:x y\n",
        "\n- status: ready",
    ])
}

// ---------------------------------------------------------------------------------------------
// Regressions found by the properties above

/// `_` is a key character, so `__status__` used to be read as the key `status__` and the field
/// was dropped: the task silently had no status.
#[test]
fn underscore_bold_keys_are_fields() {
    let text = "# A-0:\n- __status__: ready\n- __due_date__: `soon`\n";
    let board = Board::parse(text);
    let task = &board.tasks[0];
    assert_eq!(task.status(), Some(&Status::Ready));
    let due = task.field("due_date").expect("a field");
    assert_eq!((due.value, due.quoted), ("soon", true));
}

/// pulldown-cmark ends a line at a lone `\r` but reads a fence's info string on to the next
/// `\n`: here the info string holds a backtick, so there is no fence, and masking that backtick
/// made one.
#[test]
fn a_fence_line_ended_by_a_lone_cr_outlines_the_same_masked() {
    let text = "```\r/u*_`\n\n\n\n";
    assert_eq!(
        outline(text, Inline::Masked),
        outline(text, Inline::AsWritten)
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing inputs, replayed on every test run: the committed seed corpus and, once the fuzzers find
// anything, the minimized crashes kept in `fixtures/fuzz-regressions/`.

fn replay_dir(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("readable directory").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable file");
        // A `writeback` input is `<board>\0<seed>`; the board part is what matters here.
        let board_bytes = match bytes.iter().rposition(|&b| b == 0) {
            Some(at) => &bytes[..at],
            None => &bytes[..],
        };
        let text = String::from_utf8_lossy(board_bytes);
        // The `parse` target's promise: every line that parses as a status prints back as itself.
        for line in text.lines() {
            if let Ok(status) = Status::parse(line) {
                assert_eq!(status.to_string(), line, "{}", path.display());
            }
        }
        assert_eq!(
            outline(&text, Inline::Masked),
            outline(&text, Inline::AsWritten),
            "{}",
            path.display()
        );
        let board = Board::parse(&text);
        check_ranges(&text, &board);
        // ... and the board parsed in pieces is the board parsed whole.
        let pieces = Backwards {
            width: 4,
            least_piece: 1,
        };
        assert_eq!(
            Board::parse_with(&text, &pieces),
            board,
            "{}",
            path.display()
        );
        let news: Vec<(usize, Status)> = unique_actionable(&board)
            .into_iter()
            .map(|i| (i, Status::parse("failed:replayed 🚀").unwrap()))
            .collect();
        check_writeback(&text, &board, &news);
        replayed += 1;
    }
    replayed
}

#[test]
fn committed_fuzz_inputs_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let corpus = replay_dir(&root.join("fuzz-corpus/parse"))
        + replay_dir(&root.join("fuzz-corpus/writeback"));
    assert!(corpus >= 24, "the seed corpus is missing ({corpus} files)");
    replay_dir(&root.join("fuzz-regressions"));
}

/// The config corpus: whatever `config::parse` accepts keeps the rules the runtime relies on
/// (the same checks as the `config` fuzz target), and nothing panics.
#[test]
fn committed_config_fuzz_inputs_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz-corpus/config");
    let mut replayed = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).expect("the config corpus is committed") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        replayed += 1;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let Ok(config) = taskboard::core::config::parse(text) else {
            continue;
        };
        accepted += 1;
        assert!(config.runtime.max_parallel >= 1 && config.runtime.max_attempts >= 1);
        for (route, exec) in &config.executors {
            assert!(!exec.command.is_empty());
            if let Some(review) = &exec.review {
                assert_ne!(review, route);
                assert!(config.executors[review].review.is_none());
            }
        }
    }
    assert!(
        replayed >= 3 && accepted >= 1,
        "{replayed} replayed, {accepted} accepted"
    );
}
