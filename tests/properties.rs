//! Property tests for the core: the status grammar, the board parser and the CAS writer.

use taskboard::board::Board;
use taskboard::status::Status;

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
    assert_eq!((due.value.as_str(), due.quoted), ("soon", true));
}
