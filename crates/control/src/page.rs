//! `Marker` / `MaxItems` listings: how big a page is, and cutting one.

use model::names::ValidationErrors;
use store::Page;

use crate::ControlError;

/// What a listing's `MaxItems` may ask for (the service model's bound), and
/// how many items one page returns at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageLimit {
    max: i64,
    returned: usize,
}

impl PageLimit {
    /// `ListFunctions`: 1 to 10,000.
    pub const FUNCTIONS: Self = Self {
        max: 10_000,
        returned: 10_000,
    };
    /// `ListVersionsByFunction`, `ListAliases`: 1 to 10,000 may be asked
    /// for, 50 come back.
    pub const VERSIONS: Self = Self {
        max: 10_000,
        returned: 50,
    };
    /// `ListLayers`, `ListLayerVersions`, `ListFunctionEventInvokeConfigs`,
    /// `ListProvisionedConcurrencyConfigs`: 1 to 50.
    pub const FIFTY: Self = Self {
        max: 50,
        returned: 50,
    };

    /// The page size `MaxItems` asks for (50 without it), or AWS's
    /// `ValidationException` for a value outside the bound.
    pub fn size(self, max_items: Option<&str>) -> Result<usize, ControlError> {
        let Some(raw) = max_items else {
            return Ok(self.returned.min(50));
        };
        let constraint = match raw.parse::<i64>() {
            Ok(n) if (1..=self.max).contains(&n) => return Ok((n as usize).min(self.returned)),
            Ok(n) if n > self.max => {
                format!("Member must have value less than or equal to {}", self.max)
            }
            Ok(_) => "Member must have value greater than or equal to 1".to_owned(),
            Err(_) => "Member must be an integer".to_owned(),
        };
        let mut v = ValidationErrors::new();
        v.push("maxItems", raw, constraint);
        Err(ControlError::Validation(
            v.into_result().err().unwrap_or_default(),
        ))
    }
}

/// The first `size` of `items` (in listing order, already past the caller's
/// marker), with the marker of the last one while more follow.
pub(crate) fn page<T>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    marker_of: impl Fn(&T) -> String,
) -> Page<T> {
    let mut rest = items.into_iter();
    let items: Vec<T> = rest.by_ref().take(size.max(1)).collect();
    let next = match rest.next() {
        Some(_) => items.last().map(marker_of),
        None => None,
    };
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<usize, ControlError>) -> String {
        match r {
            Err(ControlError::Validation(m)) => m,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn sizes_within_the_bound_and_aws_messages_outside_it() {
        assert_eq!(PageLimit::FUNCTIONS.size(None).unwrap(), 50);
        assert_eq!(PageLimit::FUNCTIONS.size(Some("700")).unwrap(), 700);
        assert_eq!(PageLimit::VERSIONS.size(Some("700")).unwrap(), 50);
        assert_eq!(PageLimit::FIFTY.size(Some("7")).unwrap(), 7);
        assert_eq!(
            message(PageLimit::FIFTY.size(Some("51"))),
            "1 validation error detected: Value '51' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 50"
        );
        assert_eq!(
            message(PageLimit::VERSIONS.size(Some("0"))),
            "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert!(
            message(PageLimit::FUNCTIONS.size(Some("ten"))).ends_with("Member must be an integer")
        );
    }

    #[test]
    fn pages_carry_a_marker_only_while_more_follow() {
        let p = page(1..=5, 2, |n| n.to_string());
        assert_eq!((p.items, p.next.as_deref()), (vec![1, 2], Some("2")));
        let p = page(1..=4, 4, |n| n.to_string());
        assert_eq!((p.items, p.next), (vec![1, 2, 3, 4], None));
        let p = page(std::iter::empty::<u8>(), 3, |n| n.to_string());
        assert!(p.items.is_empty() && p.next.is_none());
    }
}
