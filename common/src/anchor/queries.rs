//! What a check reads of a trail's own database. The table and its columns are the trail's
//! (`Trail::table`), so this SQL is built at run time from those fixed names; the delivery
//! query, the same for every trail, is checked at build time.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::PgPool;

use super::TrailRows;
use crate::checkpoint::Trail;
use crate::ServiceName;

/// The trail's newest row and its hashes at the sequence numbers checkpoints name.
pub async fn trail_rows(pool: &PgPool, trail: Trail, seqs: Vec<i64>) -> Result<TrailRows, sqlx::Error> {
    let (table, seq) = (trail.table(), trail.seq_column());
    let last_seq: Option<i64> = sqlx::query_scalar(&format!("SELECT max({seq}) FROM {table}")).fetch_one(pool).await?;
    let hashes: Vec<(i64, Vec<u8>)> =
        sqlx::query_as(&format!("SELECT {seq}, row_hash FROM {table} WHERE {seq} = ANY($1)"))
            .bind(seqs)
            .fetch_all(pool)
            .await?;
    Ok(TrailRows { last_seq, hashes: hashes.into_iter().collect() })
}

/// Rows beyond `after` written longer than `bound` ago: (first seq, count, oldest time).
pub(super) async fn unanchored(
    pool: &PgPool,
    trail: Trail,
    after: i64,
    bound: Duration,
) -> Result<Option<(i64, i64, time::OffsetDateTime)>, sqlx::Error> {
    let (table, seq, at) = (trail.table(), trail.seq_column(), trail.time_column());
    let row: (Option<i64>, i64, Option<time::OffsetDateTime>) = sqlx::query_as(&format!(
        "SELECT min({seq}), count(*), min({at}) FROM {table} WHERE {seq} > $1 AND {at} < now() - $2::interval"
    ))
    .bind(after)
    .bind(format!("{} seconds", bound.as_secs()))
    .fetch_one(pool)
    .await?;
    Ok(match row {
        (Some(first), count, Some(oldest)) if count > 0 => Some((first, count, oldest)),
        _ => None,
    })
}

/// The numbers of `origin`'s own checkpoints of `trail` that its database does not record as
/// delivered to `receiver`.
pub async fn undelivered(
    origin_pool: &PgPool,
    origin: ServiceName,
    trail: Trail,
    receiver: ServiceName,
) -> Result<BTreeSet<i64>, sqlx::Error> {
    let numbers = sqlx::query_scalar!(
        "SELECT c.number FROM checkpoints c WHERE c.origin = $1 AND c.trail = $2 AND NOT EXISTS (SELECT 1 FROM \
         checkpoint_deliveries d WHERE d.trail = c.trail AND d.number = c.number AND d.receiver = $3)",
        origin.as_str(),
        trail.as_str(),
        receiver.as_str(),
    )
    .fetch_all(origin_pool)
    .await?;
    Ok(numbers.into_iter().collect())
}
