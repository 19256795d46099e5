//! The work packet: the Markdown a run receives on stdin.
//!
//! Owns the packet's documented layout and its byte budget. [`build`] is pure; [`Input`] is
//! gathered by `shell::packet_sources` for the runtime (and by `taskboard packet`, which prints exactly what the next run
//! would receive). Fixed top-level headings, always present, so an agent can rely on them and a
//! missing part is visible rather than silent:
//!
//! ```text
//! <!-- taskboard work packet: TASK-015, attempt 2 -->
//! # Task TASK-015          the task's block, verbatim
//! # Depends on             each dependency's block and latest handoff, or a line saying none
//! # Earlier attempts       this task's earlier attempts' handoff sections, or "first attempt"
//! # Review feedback        only after a review bounced the task back
//! # Under review           only in a review run: the handoff, the evidence, the diff
//! ```
//!
//! When the packet would exceed its budget, the oldest context goes first (older attempts, then
//! dependency blocks, then dependency handoffs, then the diff is shortened), and a line says
//! what was cut. The task's own block is never cut.

/// A task this one waited on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub id: String,
    /// Its status as written on the board now.
    pub status: String,
    pub block: String,
    /// The latest section of `handoffs/<ID>.md`, if it has one.
    pub handoff: Option<String>,
}

/// What a review run needs besides the task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Review {
    /// The reviewed attempt's handoff section.
    pub handoff: String,
    /// `git diff` of the files the attempt changed, when the board is in git.
    pub diff: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input {
    pub id: String,
    pub attempt: u32,
    pub block: String,
    pub deps: Vec<Dep>,
    /// Handoff sections of this task's earlier attempts, oldest first.
    pub earlier: Vec<String>,
    /// A review's note that sent the task back.
    pub review_feedback: Option<String>,
    pub review: Option<Review>,
    pub budget: usize,
}

/// Builds the packet within `input.budget` bytes where the task's own block allows.
pub fn build(input: &Input) -> String {
    let mut parts = Parts::new(input);
    let mut cut: Vec<String> = Vec::new();
    while parts.len() > input.budget {
        let Some(what) = parts.drop_one() else {
            break;
        };
        cut.push(what);
    }
    if parts.len() > input.budget && parts.review.as_ref().is_some_and(|r| r.diff.is_some()) {
        let mut with_note = cut.clone();
        with_note.push("the end of the diff".into());
        let around = without_diff(&parts).render(&with_note, input.budget).len();
        let keep = input.budget.saturating_sub(around);
        if let Some(diff) = parts.review.as_mut().and_then(|r| r.diff.as_mut())
            && keep < diff.len()
        {
            let mut end = keep;
            while !diff.is_char_boundary(end) {
                end -= 1;
            }
            diff.truncate(end);
            cut = with_note;
        }
    }
    parts.render(&cut, input.budget)
}

/// The packet in pieces that can be dropped, oldest context first.
struct Parts<'a> {
    input: &'a Input,
    earlier: Vec<&'a str>,
    dep_blocks: Vec<bool>,
    dep_handoffs: Vec<bool>,
    review: Option<Review>,
}

impl<'a> Parts<'a> {
    fn new(input: &'a Input) -> Parts<'a> {
        Parts {
            input,
            earlier: input.earlier.iter().map(String::as_str).collect(),
            dep_blocks: vec![true; input.deps.len()],
            dep_handoffs: vec![true; input.deps.len()],
            review: input.review.clone(),
        }
    }

    fn len(&self) -> usize {
        self.render(&[], self.input.budget).len()
    }

    /// Drops the next piece in the cut order; what it was, for the note.
    fn drop_one(&mut self) -> Option<String> {
        // Keep the latest earlier attempt for as long as anything older can go.
        if self.earlier.len() > 1 {
            self.earlier.remove(0);
            return Some("an older attempt".into());
        }
        if let Some(i) = self.dep_blocks.iter().position(|k| *k) {
            self.dep_blocks[i] = false;
            return Some(format!("the block of {}", self.input.deps[i].id));
        }
        if let Some(i) = self.dep_handoffs.iter().position(|k| *k) {
            self.dep_handoffs[i] = false;
            return Some(format!("the handoff of {}", self.input.deps[i].id));
        }
        if !self.earlier.is_empty() {
            self.earlier.clear();
            return Some("the latest earlier attempt".into());
        }
        None
    }

    fn render(&self, cut: &[String], budget: usize) -> String {
        let i = self.input;
        let mut out = format!(
            "<!-- taskboard work packet: {}, attempt {} -->\n",
            i.id, i.attempt
        );
        if !cut.is_empty() {
            out.push_str(&format!(
                "<!-- taskboard cut {} to stay within packet_budget ({budget} bytes) -->\n",
                cut.join(", ")
            ));
        }
        out.push_str(&format!("# Task {}\n\n", i.id));
        out.push_str(i.block.trim_end());
        out.push_str("\n\n# Depends on\n\n");
        if i.deps.is_empty() {
            out.push_str("Nothing: this task waited on no other task.\n\n");
        }
        for (n, dep) in i.deps.iter().enumerate() {
            out.push_str(&format!("## {} ({})\n\n", dep.id, dep.status));
            if self.dep_blocks[n] {
                out.push_str(&demote(dep.block.trim_end()));
                out.push_str("\n\n");
            }
            if self.dep_handoffs[n] {
                match &dep.handoff {
                    Some(h) => {
                        out.push_str(&format!("### Handoff from {}\n\n", dep.id));
                        out.push_str(&demote(h.trim_end()));
                        out.push_str("\n\n");
                    }
                    None => out.push_str(&format!("{} left no handoff.\n\n", dep.id)),
                }
            }
        }
        out.push_str("# Earlier attempts\n\n");
        if i.earlier.is_empty() {
            out.push_str("None: this is the first attempt.\n\n");
        } else if self.earlier.is_empty() {
            out.push_str("Cut to fit the packet budget; see handoffs/ beside the board.\n\n");
        }
        for section in &self.earlier {
            out.push_str(&demote(section.trim_end()));
            out.push_str("\n\n");
        }
        if let Some(note) = &i.review_feedback {
            out.push_str("# Review feedback\n\n");
            out.push_str(note.trim_end());
            out.push_str("\n\n");
        }
        if let Some(r) = &self.review {
            out.push_str("# Under review\n\nDecide whether the attempt below does what the task asks. Exit 0 to accept it; to send it back, write {\"status\": \"ready\", \"note\": \"what to fix\"} to $TASKBOARD_RESULT and exit 0 (or exit non-zero).\n\n");
            out.push_str("## The attempt's handoff\n\n");
            out.push_str(&demote(r.handoff.trim_end()));
            out.push_str("\n\n");
            if let Some(diff) = &r.diff {
                let fence = fence_for(diff);
                out.push_str(&format!(
                    "## Diff\n\n{fence}diff\n{}\n{fence}\n\n",
                    diff.trim_end()
                ));
            }
        }
        out
    }
}

/// The same parts with an empty diff: what surrounds the diff.
fn without_diff<'a>(parts: &Parts<'a>) -> Parts<'a> {
    Parts {
        input: parts.input,
        earlier: parts.earlier.clone(),
        dep_blocks: parts.dep_blocks.clone(),
        dep_handoffs: parts.dep_handoffs.clone(),
        review: parts.review.as_ref().map(|r| Review {
            handoff: r.handoff.clone(),
            diff: Some(String::new()),
        }),
    }
}

/// Pushes Markdown headings down one level so quoted sections nest under the packet's own.
fn demote(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + 16);
    let mut in_fence: Option<String> = None;
    for line in md.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(f) = &in_fence {
            if trimmed.starts_with(f.as_str()) {
                in_fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let ch = trimmed.chars().next().unwrap_or('`');
            in_fence = Some(trimmed.chars().take_while(|c| *c == ch).collect());
        } else if trimmed.starts_with('#') && line.len() - trimmed.len() <= 3 {
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            if hashes < 6 && trimmed[hashes..].starts_with([' ', '\t', '\n', '\r']) {
                out.push('#');
            }
        }
        out.push_str(line);
    }
    out
}

fn fence_for(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Input {
        Input {
            id: "B-1".into(),
            attempt: 1,
            block: "## B-1: second\n- status: ready\n\nDo it.\n".into(),
            budget: 64 * 1024,
            ..Input::default()
        }
    }

    #[test]
    fn a_first_attempt_without_dependencies_says_so() {
        let p = build(&input());
        assert_eq!(
            p,
            "<!-- taskboard work packet: B-1, attempt 1 -->\n# Task B-1\n\n## B-1: second\n- status: ready\n\nDo it.\n\n# Depends on\n\nNothing: this task waited on no other task.\n\n# Earlier attempts\n\nNone: this is the first attempt.\n\n"
        );
    }

    #[test]
    fn dependencies_and_earlier_attempts_nest_under_fixed_headings() {
        let mut i = input();
        i.attempt = 3;
        i.deps = vec![Dep {
            id: "A-1".into(),
            status: "done".into(),
            block: "## A-1: first\n- status: done\n\n```\n# not a heading\n```\n".into(),
            handoff: Some("## Attempt 1 · t · done\n\n- **What:** wrote a.md".into()),
        }];
        i.earlier = vec![
            "## Attempt 1 · t · exit_3\n\n- route `default` · exit 3".into(),
            "## Attempt 2 · t · bad_result\n\n- route `default` · exit 0".into(),
        ];
        i.review_feedback = Some("The summary misses the risks.".into());
        let p = build(&i);
        for needle in [
            "# Depends on\n\n## A-1 (done)\n\n### A-1: first\n",
            "```\n# not a heading\n```",
            "### Handoff from A-1\n\n### Attempt 1 · t · done",
            "# Earlier attempts\n\n### Attempt 1 · t · exit_3",
            "### Attempt 2 · t · bad_result",
            "# Review feedback\n\nThe summary misses the risks.",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in\n{p}");
        }
    }

    #[test]
    fn the_budget_cuts_oldest_context_first_and_says_so() {
        let mut i = input();
        i.deps = vec![Dep {
            id: "A-1".into(),
            status: "done".into(),
            block: format!("## A-1\n{}", "x".repeat(400)),
            handoff: Some("## Attempt 1 · done\n\nshort".into()),
        }];
        i.earlier = vec![
            format!("## Attempt 1\n{}", "old ".repeat(100)),
            "## Attempt 2\nlatest".into(),
        ];
        let full = build(&i).len();
        i.budget = full - 1;
        let p = build(&i);
        assert!(p.len() <= i.budget, "{} > {}", p.len(), i.budget);
        assert!(p.contains("cut an older attempt"), "{p}");
        assert!(p.contains("### Attempt 2\nlatest"), "{p}");
        assert!(
            p.contains(&"x".repeat(400)),
            "the dependency block stays while it fits"
        );
        i.budget = 300;
        let p = build(&i);
        assert!(p.contains("Do it."), "the task's own block is never cut");
        assert!(!p.contains(&"x".repeat(400)));
    }

    #[test]
    fn a_review_packet_carries_the_handoff_and_diff() {
        let mut i = input();
        i.review = Some(Review {
            handoff: "## Attempt 1 · t · done\n\n- **What:** x".into(),
            diff: Some("+added\n-removed\n".into()),
        });
        let p = build(&i);
        assert!(p.contains("# Under review\n"), "{p}");
        assert!(
            p.contains("## The attempt's handoff\n\n### Attempt 1"),
            "{p}"
        );
        assert!(
            p.contains("## Diff\n\n```diff\n+added\n-removed\n```"),
            "{p}"
        );
        // A long diff is shortened to fit, and the packet says so.
        let long: String = (0..500).map(|n| format!("+line {n}\n")).collect();
        i.review.as_mut().unwrap().diff = Some(long.clone());
        let full = build(&i).len();
        i.budget = full - 2000;
        let cut = build(&i);
        assert!(cut.len() <= i.budget, "{} > {}", cut.len(), i.budget);
        assert!(
            cut.len() > i.budget - 100,
            "cut no more than needed: {}",
            cut.len()
        );
        assert!(cut.contains("the end of the diff"), "{cut}");
        assert!(cut.contains("+line 0\n"), "the start of the diff stays");
    }
}
