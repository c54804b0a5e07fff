//! One trail checked end to end, and the report the compliance routes send.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use super::queries::{trail_rows, unanchored};
use super::{anchored_up_to, compare, Found, Missing, Problem, Source};
use crate::chain::{self, Verification};
use crate::checkpoint::{CheckpointKeys, Trail};
use crate::compliance::{CheckpointPlace, CheckpointProblem, TrailBreak, TrailReport};
use crate::ServiceName;

/// Problems and pending deliveries listed per trail; the rest are counted.
const MAX_LISTED: usize = 100;

/// One trail checked: its chain's verification (made by the caller, who knows its rows) and
/// its checkpoints compared across `sources` and with its rows.
#[derive(Debug, Clone, Serialize)]
pub struct TrailCheck {
    pub table: &'static str,
    pub origin: ServiceName,
    pub intact: bool,
    pub rows_checked: u64,
    pub last_seq: Option<i64>,
    pub breaks: Vec<chain::Break>,
    pub checkpoints: Found,
    pub problems: Vec<Problem>,
    /// The first sequence number shown to be bad (by the chain or a checkpoint).
    pub first_bad_seq: Option<i64>,
}

/// Checks `trail` (in `pool`, its origin's database) against `sources`: rows a checkpoint names,
/// the comparison, and rows older than `bound` that no checkpoint covers yet.
pub async fn check_trail(
    pool: &PgPool,
    trail: Trail,
    verification: Verification,
    sources: &[Source],
    keys: &CheckpointKeys,
    bound: Duration,
) -> Result<TrailCheck, sqlx::Error> {
    let seqs: Vec<i64> = sources.iter().flat_map(|s| s.checkpoints.iter().map(|c| c.seq)).collect();
    let rows = trail_rows(pool, trail, seqs).await?;
    let (found, mut problems) = compare(sources, keys, &rows);
    let after = anchored_up_to(sources, keys);
    if let Some((first_seq, count, oldest)) = unanchored(pool, trail, after, bound).await? {
        problems.push(Problem::MissingCheckpoint(Missing::RowsBeyondLastCheckpoint {
            first_seq,
            rows: count,
            oldest_row_at: oldest.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            last_checkpoint_seq: after,
        }));
    }
    let first_bad_seq =
        verification.breaks.iter().map(|b| b.seq).chain(problems.iter().filter_map(Problem::first_bad_seq)).min();
    Ok(TrailCheck {
        table: trail.table(),
        origin: trail.service(),
        intact: verification.intact() && problems.is_empty(),
        rows_checked: verification.rows_checked,
        last_seq: rows.last_seq,
        breaks: verification.breaks,
        checkpoints: found,
        problems,
        first_bad_seq,
    })
}

impl Problem {
    fn kind(&self) -> &'static str {
        match self {
            Problem::Truncated { .. } => "truncated",
            Problem::Rewritten { .. } => "rewritten",
            Problem::MissingCheckpoint(_) => "missing_checkpoint",
            Problem::BadSignature { .. } => "bad_signature",
            Problem::UnverifiableCheckpoints { .. } => "unverifiable_checkpoints",
            Problem::ConflictingCheckpoints { .. } => "conflicting_checkpoints",
            Problem::Backwards { .. } => "backwards",
            Problem::MalformedCheckpoint { .. } => "malformed_checkpoint",
            Problem::Unreadable { .. } => "unreadable_place",
        }
    }
}

impl TrailCheck {
    /// The report as the compliance routes send it.
    pub fn report(&self) -> TrailReport {
        // The lists are capped like the chain's breaks: a receiver that lost its checkpoints
        // must not make a report too large to read.
        let problems = self.problems.iter().take(MAX_LISTED);
        let pending = self.checkpoints.pending_delivery.iter().take(MAX_LISTED);
        TrailReport {
            trail: self.table.to_owned(),
            origin: self.origin.to_string(),
            intact: self.intact,
            rows_checked: self.rows_checked,
            last_seq: self.last_seq,
            breaks: self.breaks.iter().map(trail_break).collect(),
            problems_omitted: self.problems.len().saturating_sub(MAX_LISTED),
            problems: problems
                .map(|p| CheckpointProblem {
                    kind: p.kind().to_owned(),
                    description: p.describe(),
                    first_bad_seq: p.first_bad_seq(),
                })
                .collect(),
            first_bad_seq: self.first_bad_seq,
            checkpoints_verified: self.checkpoints.verified,
            places: self
                .checkpoints
                .sources
                .iter()
                .map(|(place, checkpoints)| CheckpointPlace { place: place.clone(), checkpoints: *checkpoints })
                .collect(),
            latest_checkpoint: self.checkpoints.latest,
            pending_omitted: self.checkpoints.pending_delivery.len().saturating_sub(MAX_LISTED),
            pending_delivery: pending.cloned().collect(),
        }
    }
}

/// A chain break as the compliance routes name it.
pub fn trail_break(b: &chain::Break) -> TrailBreak {
    TrailBreak {
        seq: b.seq,
        problem: match b.problem {
            chain::Problem::ContentChanged => "content_changed".into(),
            chain::Problem::LinkBroken => "link_broken".into(),
        },
    }
}
