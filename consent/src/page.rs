//! Keyset pages over typed rows: a page's query asks for one row more than the page holds, and
//! that extra row tells that another page follows.

/// Keeps the first `limit` rows of `rows` (fetched with `limit + 1`); when more followed, also
/// the key of the last row kept, where the next page starts.
pub(crate) fn after<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::after;

    #[test]
    fn the_extra_row_names_the_next_page() {
        assert_eq!(after(vec![1, 2, 3], 2, |k| *k), (vec![1, 2], Some(2)));
        assert_eq!(after(vec![1, 2], 2, |k| *k), (vec![1, 2], None));
        assert_eq!(after(Vec::<i64>::new(), 2, |k| *k), (vec![], None));
        assert_eq!(after(vec![1], 0, |k| *k), (vec![], None));
        assert_eq!(after(vec![1], -1, |k| *k), (vec![], None));
    }
}
