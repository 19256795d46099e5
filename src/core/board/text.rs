//! [`Text`]: a piece of a board's text, shared rather than copied.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};
use std::sync::Arc;

/// A piece of the text a board was parsed from (an ID, a title, a field's key or value). The
/// board keeps one shared copy of its text and each piece names a range of it, so a parse makes
/// no allocation per piece (about eleven per task when they were `String`s, and as many frees
/// when the board was dropped). It reads as a `str`; `to_string()` gives an owned copy.
#[derive(Clone)]
pub struct Text {
    source: Arc<str>,
    range: Range<usize>,
}

impl Text {
    /// `range` of `source`; it must lie on character boundaries.
    pub(super) fn new(source: &Arc<str>, range: Range<usize>) -> Text {
        debug_assert!(source.get(range.clone()).is_some());
        Text {
            source: Arc::clone(source),
            range,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source[self.range.clone()]
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text {
            range: 0..s.len(),
            source: Arc::from(s),
        }
    }
}

impl From<&Text> for String {
    fn from(t: &Text) -> String {
        t.as_str().to_owned()
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compares_and_hashes_as_its_str() {
        let source: Arc<str> = Arc::from("## A-1: title");
        let id = Text::new(&source, 3..6);
        assert_eq!(id, "A-1");
        assert_eq!(id, Text::from("A-1"));
        assert_eq!(format!("{id} {id:?}"), r#"A-1 "A-1""#);
        let set: std::collections::HashSet<Text> = [id.clone()].into();
        assert!(set.contains("A-1"));
        assert_eq!(String::from(&id), "A-1");
    }
}
