//! Unresolved git conflict markers in a board's text.
//!
//! When both sides of a `git merge` or `git pull` changed the board at the same place, git
//! writes both versions into the file between marker lines:
//!
//! ```text
//! <<<<<<< HEAD
//! (our lines)
//! ||||||| base          (diff3 and zdiff3 only)
//! (the common ancestor's lines)
//! =======
//! (their lines)
//! >>>>>>> their-branch
//! ```
//!
//! Such a board says two things at once, so nothing on it may be acted on. A marker line starts
//! in the first column with exactly seven marker characters followed by a space, a tab or the
//! end of the line (`\r\n` and a leading byte-order mark included). The choices:
//!
//! - A region runs from `<<<<<<<` to its `>>>>>>>`, or to the end of the text when it is never
//!   closed; inside it, all four kinds are markers.
//! - Outside any region, a lone `<<<<<<<`, `|||||||` or `>>>>>>>` line (what is left of a region
//!   a person half resolved) is a region of its own. A lone `=======` is not: it is also a
//!   Markdown heading underline, and git never writes one without a `<<<<<<<` before it.
//! - Git writes markers wherever the conflict is, code blocks included, so a marker line is a
//!   marker wherever it appears, except inside a fenced code block whose opening and closing
//!   fences both lie outside every region. Such a block is an example shown on the board (a task
//!   that explains a merge); a real conflict wholly inside one cannot be told from it, and it
//!   changes no task's fields. A fence that opens or closes inside a region, or never closes,
//!   was itself caught up in the merge, and markers within it count (which may catch further
//!   fences: the regions are found again until no more are).

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag};

/// Which marker line it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// `<<<<<<<`: our side starts.
    Ours,
    /// `|||||||`: the common ancestor's lines start (diff3).
    Base,
    /// `=======`: their side starts.
    Separator,
    /// `>>>>>>>`: the region ends.
    Theirs,
}

/// One marker line. Markers are always in the first column, so `column` is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    /// Byte offset of the marker's first character (after a byte-order mark on line 1).
    pub offset: usize,
    /// 1-based.
    pub line: usize,
    pub column: usize,
    /// 0-based index of the conflict region the marker belongs to, in text order.
    pub region: usize,
}

/// Every conflict marker in `text`, in order (see the module documentation for what counts).
pub fn conflict_markers(text: &str) -> Vec<Marker> {
    markers(text, candidates(text))
}

/// The markers among the candidate lines, code fences and regions considered.
fn markers(text: &str, candidates: Vec<Candidate>) -> Vec<Marker> {
    if candidates.is_empty() {
        // The common case costs a scan of the text and no Markdown parse.
        return Vec::new();
    }
    let fences = fenced_blocks(text);
    // Start with every closed fence as an example; a fence that a region catches is not one,
    // its markers count, and the regions they make may catch more fences. Ends when none does.
    let mut example: Vec<bool> = fences.iter().map(|f| f.close.is_some()).collect();
    loop {
        let kept: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| {
                !fences
                    .iter()
                    .zip(&example)
                    .any(|(f, &e)| e && f.holds(c.line))
            })
            .collect();
        let markers = assign_regions(&kept);
        let spans = region_spans(&markers);
        let caught = |line: usize| spans.iter().any(|s| s.contains(&line));
        let mut changed = false;
        for (f, e) in fences.iter().zip(example.iter_mut()) {
            if *e && (caught(f.open) || f.close.is_some_and(caught)) {
                *e = false;
                changed = true;
            }
        }
        if !changed {
            return markers;
        }
    }
}

/// How many conflict regions the markers make up.
pub fn conflict_regions(markers: &[Marker]) -> usize {
    markers.last().map_or(0, |m| m.region + 1)
}

/// `unresolved git conflict markers (N conflicts, the first at line L)`: the words every refusal
/// of a conflicted board starts with; `None` when there are no markers.
pub fn conflict_summary(markers: &[Marker]) -> Option<String> {
    let first = markers.first()?;
    let regions = conflict_regions(markers);
    Some(format!(
        "unresolved git conflict markers ({regions} conflict{}, the first at line {})",
        if regions == 1 { "" } else { "s" },
        first.line
    ))
}

/// A line that looks like a marker, before regions and code fences are considered.
#[derive(Debug, Clone)]
struct Candidate {
    kind: MarkerKind,
    offset: usize,
    /// 0-based.
    line: usize,
}

fn candidates(text: &str) -> Vec<Candidate> {
    let bytes = text.as_bytes();
    let first_line = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    // A marker line opens with a run of seven marker characters, so the runs are looked for
    // (at memory speed) rather than every line's first byte; most texts have none. A run that
    // starts a line is found at its start: the `\n` before it is no marker character.
    let mut starts: Vec<usize> = [b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>"]
        .iter()
        .flat_map(|run| memchr::memmem::find_iter(bytes, run))
        .filter(|&at| at == first_line || (at > 0 && bytes[at - 1] == b'\n'))
        .collect();
    starts.sort_unstable();
    let (mut line, mut counted) = (0, 0);
    (starts.into_iter())
        .filter_map(|offset| {
            let kind = marker_kind(&bytes[offset..])?;
            line += memchr::memchr_iter(b'\n', &bytes[counted..offset]).count();
            counted = offset;
            Some(Candidate { kind, offset, line })
        })
        .collect()
}

/// The marker a line starts with: exactly seven of one marker character, then a space, a tab
/// or the end of the line.
fn marker_kind(bytes: &[u8]) -> Option<MarkerKind> {
    let kind = match bytes.first()? {
        b'<' => MarkerKind::Ours,
        b'|' => MarkerKind::Base,
        b'=' => MarkerKind::Separator,
        b'>' => MarkerKind::Theirs,
        _ => return None,
    };
    let run = bytes.iter().take_while(|&&b| b == bytes[0]).count();
    let after = bytes.get(run).copied();
    (run == 7 && matches!(after, None | Some(b' ' | b'\t' | b'\r' | b'\n'))).then_some(kind)
}

/// Groups markers into regions; drops a `=======` outside any region.
fn assign_regions(candidates: &[&Candidate]) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut regions = 0;
    let mut open: Option<usize> = None;
    for c in candidates {
        let region = match (c.kind, open) {
            (MarkerKind::Ours, _) => {
                regions += 1;
                open = Some(regions - 1);
                regions - 1
            }
            (MarkerKind::Theirs, Some(r)) => {
                open = None;
                r
            }
            (MarkerKind::Base | MarkerKind::Separator, Some(r)) => r,
            (MarkerKind::Separator, None) => continue,
            (MarkerKind::Base | MarkerKind::Theirs, None) => {
                regions += 1;
                regions - 1
            }
        };
        out.push(Marker {
            kind: c.kind,
            offset: c.offset,
            line: c.line + 1,
            column: 1,
            region,
        });
    }
    out
}

/// The 0-based lines each region covers; an unclosed region runs to the end.
fn region_spans(markers: &[Marker]) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for m in markers {
        let line = m.line - 1;
        match spans.get_mut(m.region) {
            Some(span) => span.end = line + 1,
            None => spans.push(line..line + 1),
        }
    }
    for (span, region) in spans.iter_mut().zip(0..) {
        let closed = markers
            .iter()
            .any(|m| m.region == region && m.kind == MarkerKind::Theirs);
        let lone = markers
            .iter()
            .filter(|m| m.region == region)
            .all(|m| m.kind != MarkerKind::Ours);
        if !closed && !lone {
            span.end = usize::MAX;
        }
    }
    spans
}

/// A fenced code block, by 0-based lines.
struct Fence {
    /// The opening fence line.
    open: usize,
    /// The closing fence line, when it has one.
    close: Option<usize>,
    /// One past its last line of content.
    end: usize,
}

impl Fence {
    /// Whether the line is the block's content (not one of its fences).
    fn holds(&self, line: usize) -> bool {
        self.open < line && line < self.end
    }
}

/// The fenced code blocks, as the board parser sees them (`pulldown-cmark`).
fn fenced_blocks(text: &str) -> Vec<Fence> {
    let base = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    let md = &text[base..];
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count();
    let mut out = Vec::new();
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).into_offset_iter();
    for (event, range) in parser {
        let Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) = event else {
            continue;
        };
        let body = md[range.clone()].trim_end_matches(['\n', '\r']);
        let mut lines = body.lines();
        let first = lines.next().unwrap_or("").trim_start();
        let fence_char = first.chars().next().unwrap_or('`');
        let width = first.chars().take_while(|&c| c == fence_char).count();
        let last = lines.last().map(str::trim);
        let closed =
            last.is_some_and(|l| l.chars().all(|c| c == fence_char) && l.chars().count() >= width);
        let open = line_of(range.start + base);
        let last_line = line_of(range.start + base + body.len());
        out.push(Fence {
            open,
            close: closed.then_some(last_line),
            end: if closed { last_line } else { last_line + 1 },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker's line, kind (its character) and region.
    type Seen = (usize, char, usize);

    /// The candidate lines as first found: a look at the first byte of every line.
    fn candidates_line_by_line(text: &str) -> Vec<Candidate> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut look = |offset: usize, line: usize| {
            if let Some(kind) = marker_kind(&bytes[offset..]) {
                out.push(Candidate { kind, offset, line });
            }
        };
        look(if text.starts_with('\u{FEFF}') { 3 } else { 0 }, 0);
        let newlines = bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n');
        for (line, (i, _)) in newlines.enumerate() {
            look(i + 1, line + 1);
        }
        out
    }

    fn found(text: &str) -> Vec<Seen> {
        conflict_markers(text)
            .iter()
            .map(|m| {
                let c = match m.kind {
                    MarkerKind::Ours => '<',
                    MarkerKind::Base => '|',
                    MarkerKind::Separator => '=',
                    MarkerKind::Theirs => '>',
                };
                (m.line, c, m.region)
            })
            .collect()
    }

    const MERGE: &str = "## A-1\n- status: ready\n<<<<<<< HEAD\n## B-1\n- status: ready\n=======\n## C-1\n- status: ready\n>>>>>>> other\n";

    #[test]
    fn cases() {
        let cases: &[(&str, &str, &[Seen])] = &[
            ("a plain board", "## A-1\n- status: ready\n", &[]),
            (
                "a merge of two added tasks",
                MERGE,
                &[(3, '<', 0), (6, '=', 0), (9, '>', 0)],
            ),
            (
                "diff3 style with a base section",
                "<<<<<<< HEAD\na\n||||||| base\n=======\nb\n>>>>>>> x\n",
                &[(1, '<', 0), (3, '|', 0), (4, '=', 0), (6, '>', 0)],
            ),
            (
                "CRLF line endings",
                "x\r\n<<<<<<< HEAD\r\na\r\n=======\r\nb\r\n>>>>>>> x\r\n",
                &[(2, '<', 0), (4, '=', 0), (6, '>', 0)],
            ),
            (
                "a byte-order mark before the first marker",
                "\u{FEFF}<<<<<<< HEAD\na\n=======\n>>>>>>> x\n",
                &[(1, '<', 0), (3, '=', 0), (4, '>', 0)],
            ),
            (
                "markers without labels and without a final newline",
                "<<<<<<<\na\n=======\n>>>>>>>",
                &[(1, '<', 0), (3, '=', 0), (4, '>', 0)],
            ),
            (
                "two regions",
                "<<<<<<< a\n=======\n>>>>>>> b\nok\n<<<<<<< a\n=======\n>>>>>>> b\n",
                &[
                    (1, '<', 0),
                    (2, '=', 0),
                    (3, '>', 0),
                    (5, '<', 1),
                    (6, '=', 1),
                    (7, '>', 1),
                ],
            ),
            (
                "a region never closed",
                "a\n<<<<<<< HEAD\nb\n=======\n",
                &[(2, '<', 0), (4, '=', 0)],
            ),
            (
                "lone leftovers of a half-resolved merge",
                "a\n>>>>>>> other\nb\n||||||| base\n",
                &[(2, '>', 0), (4, '|', 1)],
            ),
            (
                "a lone ======= is a heading underline",
                "Title\n=======\n\n## A-1\n- status: ready\n",
                &[],
            ),
            (
                "not exactly seven, not in the first column, or glued to text",
                "<<<<<<<< HEAD\n<<<<<< HEAD\n ======= \n  >>>>>>> x\n<<<<<<<HEAD\n>>>>>>>>\n========\n",
                &[],
            ),
            (
                "a tab after the marker",
                "<<<<<<<\tHEAD\n>>>>>>>\tx\n",
                &[(1, '<', 0), (2, '>', 0)],
            ),
            (
                "an example inside a balanced fence",
                "## A-1\n- status: ready\n\n```text\n<<<<<<< HEAD\na\n=======\nb\n>>>>>>> x\n```\n",
                &[],
            ),
            (
                "a lone example marker inside a tilde fence",
                "~~~~\n<<<<<<< HEAD\n~~~~\n## A-1\n- status: ready\n",
                &[],
            ),
            (
                "a fence that never closes",
                "```\n<<<<<<< HEAD\na\n=======\nb\n>>>>>>> x\n",
                &[(2, '<', 0), (4, '=', 0), (6, '>', 0)],
            ),
            (
                "a fence opened inside a region",
                "<<<<<<< HEAD\n```sh\na\n=======\nb\n>>>>>>> x\n```\n",
                &[(1, '<', 0), (4, '=', 0), (6, '>', 0)],
            ),
            (
                // The opening marker reads as the first fence's content, but what follows it
                // still gives the conflict away.
                "a fence closed inside a region",
                "```sh\na\n<<<<<<< HEAD\n```\n=======\nb\n```\n>>>>>>> x\n",
                &[(8, '>', 0)],
            ),
            (
                "a conflict wholly inside a code block reads as an example (the choice)",
                "```sh\n<<<<<<< HEAD\necho a\n=======\necho b\n>>>>>>> x\n```\n",
                &[],
            ),
            (
                "an example on a CRLF board with a byte-order mark",
                "\u{FEFF}# B\r\n\r\n```\r\n<<<<<<< HEAD\r\n=======\r\n>>>>>>> x\r\n```\r\n",
                &[],
            ),
            (
                "a real conflict beside an example",
                "```\n<<<<<<< a\n=======\n>>>>>>> b\n```\n<<<<<<< HEAD\nx\n=======\ny\n>>>>>>> z\n",
                &[(6, '<', 0), (8, '=', 0), (10, '>', 0)],
            ),
        ];
        for (what, text, want) in cases {
            assert_eq!(&found(text), want, "{what}");
        }
    }

    proptest::proptest! {
        /// Any mix of marker lines, fences, headings and text: no panic, and every marker is a
        /// real marker line, in order, with regions numbered from 0 without gaps.
        #[test]
        fn any_mix_of_lines_gives_well_formed_markers(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "<<<<<<< HEAD", "|||||||", "=======", ">>>>>>> x", "```", "~~~", "````",
                    "## A-1", "- status: ready", "text", "", "\u{FEFF}", "\r", "é", "> q",
                    "<<<<<<<<", "======", "==========", ">>>>>>>\t", "a <<<<<<< b", "|||||||\r",
                    " <<<<<<<", "=======x",
                ]),
                0..40,
            )
        ) {
            let text = parts.join("\n");
            let markers = conflict_markers(&text);
            // The lines found by their runs are those a look at every line's start finds.
            let (fast, every_line) = (candidates(&text), candidates_line_by_line(&text));
            let seen = |c: &[Candidate]| -> Vec<(usize, usize)> {
                c.iter().map(|c| (c.offset, c.line)).collect()
            };
            proptest::prop_assert_eq!(seen(&fast), seen(&every_line));
            let mut next_region = 0;
            for (i, m) in markers.iter().enumerate() {
                proptest::prop_assert!(marker_kind(&text.as_bytes()[m.offset..]) == Some(m.kind));
                proptest::prop_assert!(i == 0 || markers[i - 1].line < m.line);
                proptest::prop_assert!(m.region <= next_region);
                next_region = next_region.max(m.region + 1);
            }
            proptest::prop_assert_eq!(conflict_regions(&markers), next_region);
        }
    }

    #[test]
    fn offsets_columns_and_region_count() {
        let m = conflict_markers(MERGE);
        assert_eq!(conflict_regions(&m), 1);
        assert!(m.iter().all(|m| m.column == 1));
        assert_eq!(&MERGE[m[0].offset..m[0].offset + 7], "<<<<<<<");
        let bom = "\u{FEFF}<<<<<<< HEAD\n>>>>>>> x\n";
        assert_eq!(conflict_markers(bom)[0].offset, 3);
        assert_eq!(conflict_markers(bom).len(), 2);
        assert_eq!(conflict_regions(&[]), 0);
    }
}
