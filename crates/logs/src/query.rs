//! What the CloudWatch Logs read operations ask for and get back, independent
//! of the wire: filter patterns, the paging tokens, and the pages themselves.

use crate::{LogError, StoredEvent};

/// A filter pattern in the form this store understands: terms (bare words or
/// "quoted phrases"), every one of which a message must contain, case
/// sensitively. An empty pattern matches every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPattern {
    terms: Vec<String>,
}

impl FilterPattern {
    pub fn parse(pattern: &str) -> Self {
        let mut terms = Vec::new();
        let mut rest = pattern.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('"') {
                // An unclosed quote runs to the end of the pattern.
                let end = r.find('"').unwrap_or(r.len());
                terms.push(r[..end].to_owned());
                rest = r.get(end + 1..).unwrap_or("").trim_start();
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                terms.push(rest[..end].to_owned());
                rest = rest[end..].trim_start();
            }
        }
        terms.retain(|t| !t.is_empty());
        Self { terms }
    }

    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    pub fn matches(&self, message: &str) -> bool {
        self.terms.iter().all(|t| message.contains(t.as_str()))
    }
}

/// A position in a log stream, as `GetLogEvents` hands it out: `f/<id>` reads
/// the events after event `id`, `b/<id>` the events before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamToken {
    Forward(i64),
    Backward(i64),
}

impl StreamToken {
    pub fn parse(token: &str) -> Result<Self, LogError> {
        let parsed = match token.split_once('/') {
            Some(("f", id)) => id.parse().ok().map(Self::Forward),
            Some(("b", id)) => id.parse().ok().map(Self::Backward),
            _ => None,
        };
        parsed.ok_or(LogError::InvalidToken)
    }
}

impl std::fmt::Display for StreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forward(id) => write!(f, "f/{id}"),
            Self::Backward(id) => write!(f, "b/{id}"),
        }
    }
}

/// `GetLogEvents`: one stream's events in a time range.
#[derive(Debug, Clone, Default)]
pub struct StreamQuery<'a> {
    pub start_ms: Option<i64>,
    /// Exclusive, as AWS documents for `GetLogEvents`.
    pub end_ms: Option<i64>,
    pub limit: usize,
    /// Without a token: the oldest events (`true`) or the newest (`false`).
    pub start_from_head: bool,
    /// A token from an earlier page; its direction wins over `start_from_head`.
    pub token: Option<&'a str>,
}

/// A page of `GetLogEvents`: events oldest first, and the tokens to move on.
/// At either end of the stream the token for that direction is the one the
/// caller passed, which is how clients know to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPage {
    pub events: Vec<StoredEvent>,
    pub forward: StreamToken,
    pub backward: StreamToken,
}

impl StreamPage {
    /// Tokens for `events` (ascending) read from the position `from`.
    pub(crate) fn new(events: Vec<StoredEvent>, from: Option<StreamToken>) -> Self {
        let (forward, backward) = match (events.first(), events.last(), from) {
            (Some(first), Some(last), _) => (
                StreamToken::Forward(last.id),
                StreamToken::Backward(first.id),
            ),
            // Nothing there: stay where the caller was, facing both ways.
            (_, _, Some(t @ StreamToken::Forward(id))) => (t, StreamToken::Backward(id + 1)),
            (_, _, Some(t @ StreamToken::Backward(id))) => (StreamToken::Forward(id - 1), t),
            (_, _, None) => (StreamToken::Forward(0), StreamToken::Backward(0)),
        };
        Self {
            events,
            forward,
            backward,
        }
    }
}

/// `FilterLogEvents`: a group's events, optionally in some streams, matching a
/// pattern, oldest first.
#[derive(Debug, Clone, Default)]
pub struct FilterQuery<'a> {
    pub streams: Option<&'a [String]>,
    pub stream_prefix: Option<&'a str>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub pattern: FilterPattern,
    /// `nextToken` from an earlier page.
    pub token: Option<&'a str>,
    pub limit: usize,
}

/// The `nextToken` of `FilterLogEvents`: `e<id>`, the last event returned.
pub(crate) fn parse_filter_token(token: &str) -> Result<i64, LogError> {
    token
        .strip_prefix('e')
        .and_then(|id| id.parse().ok())
        .ok_or(LogError::InvalidToken)
}

pub(crate) fn filter_token(last_id: i64) -> String {
    format!("e{last_id}")
}

/// A page of `FilterLogEvents`; `next_token` only while the page was full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPage {
    pub events: Vec<StoredEvent>,
    pub next_token: Option<String>,
}

/// One page of a listing ordered by name (`DescribeLogStreams`,
/// `DescribeLogGroups`): the items after the token's position, at most
/// `limit`, and the token for the rest.
pub fn page_by_offset<T>(
    items: Vec<T>,
    token: Option<&str>,
    limit: usize,
) -> Result<(Vec<T>, Option<String>), LogError> {
    let start = match token {
        None => 0,
        Some(t) => t
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or(LogError::InvalidToken)?,
    };
    let limit = limit.max(1);
    let end = start.saturating_add(limit).min(items.len());
    let next = (end < items.len()).then(|| format!("o{end}"));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_patterns() {
        assert!(FilterPattern::parse("").terms().is_empty());
        assert!(FilterPattern::parse("   ").matches("anything"));
        assert_eq!(
            FilterPattern::parse("ERROR timeout").terms(),
            ["ERROR", "timeout"]
        );
        assert_eq!(
            FilterPattern::parse(r#""Task timed out" REPORT"#).terms(),
            ["Task timed out", "REPORT"]
        );
        assert_eq!(
            FilterPattern::parse(r#""unclosed phrase"#).terms(),
            ["unclosed phrase"]
        );
        let p = FilterPattern::parse(r#"ERROR "id 7""#);
        assert!(p.matches("ERROR in id 7 here"));
        assert!(!p.matches("ERROR in id 8"));
        assert!(!p.matches("error in id 7"), "case sensitive");
    }

    #[test]
    fn stream_tokens_round_trip_and_reject_others() {
        for t in [StreamToken::Forward(42), StreamToken::Backward(7)] {
            assert_eq!(StreamToken::parse(&t.to_string()).unwrap(), t);
        }
        for bad in ["", "f/", "x/1", "f/abc", "e12", "f1"] {
            assert!(matches!(
                StreamToken::parse(bad),
                Err(LogError::InvalidToken)
            ));
        }
    }

    #[test]
    fn filter_tokens() {
        assert_eq!(parse_filter_token(&filter_token(99)).unwrap(), 99);
        assert!(parse_filter_token("f/99").is_err());
    }

    #[test]
    fn empty_pages_keep_the_callers_position() {
        let p = StreamPage::new(Vec::new(), Some(StreamToken::Forward(10)));
        assert_eq!(p.forward, StreamToken::Forward(10));
        assert_eq!(p.backward, StreamToken::Backward(11));
        let p = StreamPage::new(Vec::new(), Some(StreamToken::Backward(10)));
        assert_eq!(p.backward, StreamToken::Backward(10));
        assert_eq!(p.forward, StreamToken::Forward(9));
    }

    #[test]
    fn offset_pages() {
        let items: Vec<u32> = (0..5).collect();
        let (a, next) = page_by_offset(items.clone(), None, 2).unwrap();
        assert_eq!((a, next.as_deref()), (vec![0, 1], Some("o2")));
        let (b, next) = page_by_offset(items.clone(), Some("o2"), 2).unwrap();
        assert_eq!((b, next.as_deref()), (vec![2, 3], Some("o4")));
        let (c, next) = page_by_offset(items.clone(), Some("o4"), 2).unwrap();
        assert_eq!((c, next), (vec![4], None));
        assert!(page_by_offset(items.clone(), Some("o9"), 2).is_err());
        assert!(page_by_offset(items, Some("e1"), 2).is_err());
    }
}
