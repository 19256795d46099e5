//! Any bytes: the board parser and the status parser never panic, and every range the board
//! reports lies inside the text, on character boundaries, and holds the text it claims; the
//! board parsed in pieces is the board parsed whole; pulldown-cmark finds the same blocks in the
//! text with its inline syntax masked (as a parse reads it) as in the text as written.
#![no_main]

use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use taskboard::core::board::{Backwards, Board, Inline, outline};
use taskboard::core::status::Status;

fn check(text: &str, r: &Range<usize>) {
    assert!(
        r.start <= r.end && r.end <= text.len(),
        "{r:?} out of bounds"
    );
    assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(status) = Status::parse(line) {
            assert_eq!(status.to_string(), line);
        }
    }
    assert_eq!(outline(text, Inline::Masked), outline(text, Inline::AsWritten));
    let board = Board::parse(text);
    let pieces = Backwards {
        width: 4,
        least_piece: 1,
    };
    assert_eq!(Board::parse_with(text, &pieces), board);
    for task in &board.tasks {
        check(text, &task.heading);
        check(text, &task.block);
        assert!(task.block.start == task.heading.start && task.heading.end <= task.block.end);
        for field in task.fields() {
            check(text, &field.key_range);
            check(text, &field.value_range);
            assert_eq!(&text[field.key_range.clone()], field.key);
            assert_eq!(&text[field.value_range.clone()], field.value);
        }
        if let Some(status) = &task.status {
            check(text, &status.range);
            assert_eq!(text[status.range.clone()], status.raw);
            if let Ok(parsed) = &status.parsed {
                assert_eq!(parsed.to_string(), status.raw);
            }
            board.line_col(text, status.range.start);
        }
    }
});
