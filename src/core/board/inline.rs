//! The inline syntax a board never reads, masked before pulldown-cmark sees the text.
//!
//! The board takes only block structure from pulldown-cmark: its top-level blocks, where they
//! start and end, and where a list's own items start. Yet the parser's block pass records a node
//! for every emphasis delimiter and backtick run it meets in a line, and its event iterator
//! pairs them up, in every paragraph, heading and list item: about a fifth of a board's parse.
//! CommonMark decides blocks from the start of each line (indentation, container markers, the
//! opening characters of a leaf block) before any inline syntax is read, so those bytes, turned
//! into a plain letter, give the same blocks at the same offsets for less work.
//!
//! Owns only which bytes may be masked. A byte is masked when it is `*`, `_` or `` ` `` and
//! lies past its line's structural prefix (the run of spaces, tabs and the characters of
//! container markers, thematic breaks, setext underlines, ATX openings and table delimiter rows
//! that a line begins with), so every line-start construct is read as written. A whole line is
//! left as written when it holds what a block rule reads past that prefix:
//! - `<`: HTML blocks, whose start condition may be a complete tag, in which an unquoted
//!   attribute cannot hold a backtick;
//! - a run of three backticks: a fence, whose info string cannot hold a backtick;
//! - `\`: escapes are read by block rules in link labels and table rows; masking next to them
//!   would gain little and need more proof;
//! - a lone `\r` at either end: pulldown-cmark ends a line there, but reads a fence's info
//!   string on to the next `\n`.
//!
//! Link reference definitions keep their brackets, and what they accept as a label, destination
//! or title does not change when one non-blank character becomes another.
//!
//! `board::outline` gives the blocks of a text masked and as written; the property tests and
//! the `parse` fuzz target hold them equal.

use std::borrow::Cow;

use memchr::{memchr2, memchr3, memchr3_iter, memrchr2};

/// The letter a masked byte becomes.
const PLAIN: u8 = b'x';

/// The bytes a line's structural prefix is made of.
fn is_prefix(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'>' | b'-' | b'+' | b'*' | b'_' | b'=' | b'#' | b'.' | b')' | b':' | b'|'
    ) || b.is_ascii_digit()
}

/// `md` with the inline delimiters no block rule reads turned into a plain letter: the same
/// length, the same line ends, the same blocks (see the module's doc). Borrowed when nothing is
/// masked.
///
/// Only lines holding a delimiter are looked at, each found by a vectorised search, so most of
/// the text is read once at memory speed.
pub(super) fn masked(md: &str) -> Cow<'_, str> {
    let bytes = md.as_bytes();
    // A copy of `md`, made at the first byte masked.
    let mut out: Vec<u8> = Vec::new();
    // The delimiters of the line at hand, masked once the whole line is known to allow it.
    let mut hits: Vec<usize> = Vec::new();
    let mut from = 0;
    while let Some(found) = memchr3(b'*', b'_', b'`', &bytes[from..]) {
        let hit = from + found;
        let line = memrchr2(b'\n', b'\r', &bytes[from..hit]).map_or(from, |i| from + i + 1);
        let end = memchr2(b'\n', b'\r', &bytes[hit..]).map_or(bytes.len(), |i| hit + i);
        from = end;
        let content = line
            + bytes[line..end]
                .iter()
                .take_while(|&&b| is_prefix(b))
                .count();
        let rest = &bytes[content..end];
        let lone_cr_before = line > 0 && bytes[line - 1] == b'\r';
        let lone_cr_after = bytes.get(end) == Some(&b'\r') && bytes.get(end + 1) != Some(&b'\n');
        if lone_cr_before || lone_cr_after || memchr2(b'<', b'\\', rest).is_some() {
            continue;
        }
        hits.clear();
        let mut fence = false;
        for i in memchr3_iter(b'*', b'_', b'`', rest) {
            fence |= rest[i..].starts_with(b"```");
            hits.push(content + i);
        }
        if fence || hits.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.extend_from_slice(bytes);
        }
        for &at in &hits {
            out[at] = PLAIN;
        }
    }
    if out.is_empty() {
        return Cow::Borrowed(md);
    }
    // ASCII bytes replaced by ASCII bytes: still UTF-8, and were it not, the text as written
    // gives the same blocks.
    String::from_utf8(out).map_or(Cow::Borrowed(md), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn emphasis_and_code_past_the_prefix_become_letters() {
        assert_eq!(
            masked("Write `cargo test`, hand it to **review** or _me_.\n"),
            "Write xcargo testx, hand it to xxreviewxx or xmex.\n"
        );
        assert_eq!(
            masked("- status: `done`\r\n- b: *x*\r\n"),
            "- status: xdonex\r\n- b: xxx\r\n"
        );
    }

    #[test]
    fn a_line_start_construct_is_read_as_written() {
        for line in [
            "* * *",
            "___",
            "- _",
            "***bold",
            "> - **",
            "1. __",
            "|:--|--:|",
            "# *",
        ] {
            let text = format!("{line}\n");
            let out = masked(&text);
            let prefix = line.bytes().take_while(|&b| super::is_prefix(b)).count();
            assert_eq!(&out[..prefix], &line[..prefix], "{line:?}");
        }
        assert_eq!(masked("***bold***\n"), "***boldxxx\n");
    }

    #[test]
    fn lines_a_block_rule_reads_past_the_prefix_are_left_as_written() {
        for text in [
            "``` a`b\n",
            "a ```b``` *c*\n",
            "<a b=x`y>\n",
            "x <!-- *y* -->\n",
            "| a \\| *b* |\n",
            "*a*\\\n",
            "```\r/u*_`\n",
        ] {
            assert_eq!(masked(text), text, "{text:?}");
        }
    }

    #[test]
    fn a_text_with_nothing_to_mask_is_borrowed() {
        assert!(matches!(
            masked("# A-1: t\n- status: ready\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(masked(""), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn masking_keeps_every_offset_and_every_other_byte() {
        let text =
            "## A-1: t\n\n- status: `running:a:2026-04-20T15:25:07Z`\n\nSome *é* `中` __x__\r\nend";
        let out = masked(text);
        assert_eq!(out.len(), text.len());
        for (a, b) in text.bytes().zip(out.bytes()) {
            assert!(a == b || (matches!(a, b'*' | b'_' | b'`') && b == b'x'));
        }
    }
}
