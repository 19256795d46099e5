//! An edit of a board: `Board::reparse` from the board of the text before it must equal the full
//! parse of the text after it (tasks, fields, ranges, blocks and line starts).
//!
//! Input layout: `<board text>\0<edit>`, where the edit is two bytes of position (little-endian,
//! modulo the text's length + 1), one byte of how many bytes to delete there, and the text to
//! insert. Without a `\0`, the edit inserts nothing at the start and deletes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskboard::core::board::Board;

fuzz_target!(|data: &[u8]| {
    let (old, edit) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(old) = std::str::from_utf8(old) else {
        return;
    };
    let at = usize::from(u16::from_le_bytes([
        edit.first().copied().unwrap_or(0),
        edit.get(1).copied().unwrap_or(0),
    ]));
    let delete = usize::from(edit.get(2).copied().unwrap_or(0));
    let Ok(insert) = std::str::from_utf8(edit.get(3..).unwrap_or(&[])) else {
        return;
    };
    let mut start = at % (old.len() + 1);
    while !old.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + delete).min(old.len());
    while !old.is_char_boundary(end) {
        end += 1;
    }
    let new = format!("{}{insert}{}", &old[..start], &old[end..]);
    assert_eq!(Board::parse(old).reparse(old, &new), Board::parse(&new));
});
