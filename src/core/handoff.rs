//! Handoffs: what one attempt leaves for the next run or a person, as plain Markdown.
//!
//! Owns the handoff's shape in the result file ([`Handoff`]) and its rendering as one section
//! of `handoffs/<ID>.md` (appended per attempt, a heading each). Pure: the runtime appends the
//! rendered text to the file; packets quote sections back. It never reads the board.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `handoff` object an executor may put in its result file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// What was done, in a sentence or two.
    #[serde(default)]
    pub what: Option<String>,
    #[serde(default)]
    pub evidence: Claims,
    /// What stopped the work, if anything.
    #[serde(default)]
    pub blocker: Option<String>,
    /// What the next run (or person) should do.
    #[serde(default)]
    pub next: Option<String>,
}

/// What the executor says it did; the runtime checks `changed` against git where it can.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    #[serde(default)]
    pub changed: Vec<String>,
    #[serde(default)]
    pub validation: Vec<String>,
}

/// One attempt as the runtime saw it, for its handoff section.
#[derive(Debug, Clone, Default)]
pub struct Attempt<'a> {
    pub attempt: u32,
    pub route: &'a str,
    pub ended: DateTime<Utc>,
    /// The status written (`done`, `blocked:…`) or what happened (`exit_3`, `timeout`).
    pub outcome: &'a str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub cost_usd: Option<f64>,
    pub note: Option<&'a str>,
    pub handoff: Option<&'a Handoff>,
    /// Files git saw change during the run, when the board is in a git work tree.
    pub seen_changed: Option<&'a [String]>,
    /// An isolated run's saved change: the patch's path and the command that shows it.
    pub saved_diff: Option<(&'a str, &'a str)>,
    /// Shown for runs that did not succeed.
    pub stderr_tail: Option<&'a str>,
    /// A review run's section (titled "Review of attempt N").
    pub review: bool,
}

/// `handoffs/<ID>.md` beside the board.
pub fn file_path(board_dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    board_dir.join("handoffs").join(format!("{id}.md"))
}

/// The heading that starts each work attempt's section.
pub const SECTION_PREFIX: &str = "## Attempt ";
/// The heading that starts a review's section.
pub const REVIEW_PREFIX: &str = "## Review of attempt ";

/// The file's first lines, written once.
pub fn file_header(id: &str) -> String {
    format!(
        "# Handoffs: {id}\n\nOne section per attempt, newest last. Written by taskboard from each run's result file and what the runtime saw.\n\n"
    )
}

/// Renders one attempt's section, ending in a blank line.
pub fn render(a: &Attempt) -> String {
    let prefix = if a.review {
        REVIEW_PREFIX
    } else {
        SECTION_PREFIX
    };
    let mut out = format!(
        "{prefix}{} · {} · {}\n\n",
        a.attempt,
        a.ended.format("%Y-%m-%dT%H:%M:%SZ"),
        one_line(a.outcome)
    );
    let mut facts = vec![format!("route `{}`", a.route)];
    match (a.exit_code, a.signal) {
        (Some(c), _) => facts.push(format!("exit {c}")),
        (None, Some(s)) => facts.push(format!("signal {s}")),
        _ => {}
    }
    facts.push(format!("{:.1}s", a.duration_ms as f64 / 1000.0));
    if let Some(c) = a.cost_usd {
        facts.push(usd(c));
    }
    out.push_str(&format!("- {}\n", facts.join(" · ")));
    let h = a.handoff;
    let field = |out: &mut String, label: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            out.push_str(&format!("- **{label}:** {}\n", one_line(v)));
        }
    };
    field(&mut out, "What", h.and_then(|h| h.what.as_ref()));
    let list = |out: &mut String, label: &str, items: &[String]| {
        if !items.is_empty() {
            let items: Vec<String> = items.iter().map(|i| format!("`{}`", one_line(i))).collect();
            out.push_str(&format!("- **{label}:** {}\n", items.join(", ")));
        }
    };
    if let Some(h) = h {
        list(&mut out, "Changed (claimed)", &h.evidence.changed);
    }
    if let Some(seen) = a.seen_changed {
        if seen.is_empty() {
            out.push_str("- **Changed (seen by git):** nothing\n");
        } else {
            list(&mut out, "Changed (seen by git)", seen);
        }
    }
    if let Some((patch, command)) = a.saved_diff {
        out.push_str(&format!(
            "- **Saved diff:** `{}` (`{}`)\n",
            one_line(patch),
            one_line(command)
        ));
    }
    if let Some(h) = h {
        list(&mut out, "Validation", &h.evidence.validation);
    }
    field(&mut out, "Blocker", h.and_then(|h| h.blocker.as_ref()));
    field(&mut out, "Next", h.and_then(|h| h.next.as_ref()));
    field(&mut out, "Note", a.note.map(str::to_string).as_ref());
    if h.is_none() && a.note.is_none() {
        out.push_str("- The executor left no handoff.\n");
    }
    if let Some(tail) = a.stderr_tail.filter(|t| !t.trim().is_empty()) {
        let tail = last_lines(tail, 20);
        let fence = fence_for(&tail);
        out.push_str(&format!(
            "\nLast lines of stderr:\n\n{fence}text\n{tail}\n{fence}\n"
        ));
    }
    out.push('\n');
    out
}

/// The last section of a handoffs file (the latest attempt), if any.
pub fn last_section(file: &str) -> Option<&str> {
    let mut start = None;
    let mut at = 0;
    for line in file.split_inclusive('\n') {
        if line.starts_with(SECTION_PREFIX) {
            start = Some(at);
        }
        at += line.len();
    }
    start.map(|s| file[s..].trim_end())
}

/// Dollars to the cent, or to a tenth of a cent below one cent (a cheap run is not free).
pub fn usd(c: f64) -> String {
    crate::core::fmt::usd(c)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A backtick fence longer than any backtick run inside `s`, so the text cannot close it.
fn fence_for(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-20T15:25:07Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_success_with_a_handoff() {
        let h: Handoff = serde_json::from_str(
            r#"{"what": "Wrote the brief", "evidence": {"changed": ["brief.md"], "validation": ["spellcheck passed"]}, "next": "Send it"}"#,
        )
        .unwrap();
        let seen = vec!["brief.md".to_string()];
        let s = render(&Attempt {
            attempt: 1,
            route: "default",
            ended: at(),
            outcome: "done",
            exit_code: Some(0),
            duration_ms: 12_345,
            cost_usd: Some(0.1234),
            handoff: Some(&h),
            seen_changed: Some(&seen),
            saved_diff: None,
            ..Attempt::default()
        });
        assert_eq!(
            s,
            "## Attempt 1 · 2026-04-20T15:25:07Z · done\n\n- route `default` · exit 0 · 12.3s · $0.12\n- **What:** Wrote the brief\n- **Changed (claimed):** `brief.md`\n- **Changed (seen by git):** `brief.md`\n- **Validation:** `spellcheck passed`\n- **Next:** Send it\n\n"
        );
    }

    #[test]
    fn a_failure_leaves_its_exit_and_stderr_tail() {
        let s = render(&Attempt {
            attempt: 2,
            route: "default",
            ended: at(),
            outcome: "exit_3",
            exit_code: Some(3),
            duration_ms: 800,
            stderr_tail: Some("compiling\nerror: ``` broke\n"),
            ..Attempt::default()
        });
        assert!(s.contains("- route `default` · exit 3 · 0.8s\n"), "{s}");
        assert_eq!(usd(0.002), "$0.0020");
        assert_eq!(usd(0.126), "$0.13");
        assert!(s.contains("The executor left no handoff."), "{s}");
        assert!(
            s.contains("````text\ncompiling\nerror: ``` broke\n````\n"),
            "{s}"
        );
    }

    #[test]
    fn unknown_handoff_keys_are_refused() {
        assert!(serde_json::from_str::<Handoff>(r#"{"wat": "typo"}"#).is_err());
    }

    #[test]
    fn the_last_section_is_the_latest_attempt() {
        let file = format!(
            "{}## Attempt 1 · x\n\na\n\n## Attempt 2 · y\n\nb\n\n",
            file_header("A-1")
        );
        assert_eq!(last_section(&file), Some("## Attempt 2 · y\n\nb"));
        assert_eq!(last_section(&file_header("A-1")), None);
    }
}
