//! `wildcard` patterns: `*` matches any run of characters (none included),
//! `\*` a literal star and `\\` a literal backslash.

use crate::PatternError;

/// A wildcard pattern as the literal pieces between its stars (a pattern
/// with n stars has n + 1 pieces, possibly empty).
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    pieces: Vec<String>,
}

impl Glob {
    pub(crate) fn parse(text: &str) -> Result<Self, PatternError> {
        let mut pieces = vec![String::new()];
        let bytes = text.as_bytes();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '*' => {
                    if bytes.get(at + 1) == Some(&b'*') {
                        // event-ruler counts positions from the opening quote.
                        return Err(PatternError::new(format!(
                            "Consecutive wildcard characters at pos {}",
                            at + 1
                        )));
                    }
                    pieces.push(String::new());
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => {
                        if let Some(last) = pieces.last_mut() {
                            last.push(escaped);
                        }
                    }
                    _ => {
                        return Err(PatternError::new(format!(
                            "Invalid escape character at pos {}",
                            at + 1
                        )));
                    }
                },
                other => {
                    if let Some(last) = pieces.last_mut() {
                        last.push(other);
                    }
                }
            }
        }
        Ok(Glob { pieces })
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return value.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return value == first;
        };
        if value.len() < first.len() + last.len()
            || !value.starts_with(first.as_str())
            || !value.ends_with(last.as_str())
        {
            return false;
        }
        let mut between = &value[first.len()..value.len() - last.len()];
        for piece in middle {
            match between.find(piece.as_str()) {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}
