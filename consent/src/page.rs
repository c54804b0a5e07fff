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
