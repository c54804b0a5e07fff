//! Checking a trail against its signed checkpoints (`common::checkpoint`), wherever they are
//! kept: the origin's database, its receivers' databases, its checkpoint file. A checkpoint
//! vouches that row `seq` had `head_hash`, and through the chain every row before it. So:
//!
//! - a checkpoint beyond the trail's last row: the tail was cut off (rows after it are gone);
//! - a checkpoint whose row is gone or hashes differently: rows after the last checkpoint that
//!   still matches were rewritten (the first bad sequence number is the one after it);
//! - a checkpoint number held in one place but not another, numbers missing between others, or
//!   rows older than a bound beyond the last checkpoint: a missing checkpoint;
//! - a signature that does not verify with the origin's key, or two different checkpoints under
//!   one number: the checkpoints themselves were tampered with.
//!
//! [`compare`] only compares. [`check_trail`] reads what it needs of the trail's own database;
//! the gathering of places is the caller's: `secondwind-operator audit verify` reads every
//! database and file itself, while a service asked over HTTP
//! (`POST /internal/v1/trail-verifications`) checks its own trails against its own database and
//! file and the checkpoints public-api collected from the receivers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;

use crate::assertion::InternalCall;
use crate::chain::{self, Verification};
use crate::checkpoint::{Checkpoint, CheckpointKeys, Publisher, SignatureError, Trail};
use crate::compliance::{CheckpointPlace, CheckpointProblem, TrailBreak, TrailReport};
use crate::ops::ServiceInfo;
use crate::ServiceName;
use crate::{ApiError, Role};

/// The checkpoints of one trail one place holds.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where, for people: `consent database`, `phi-vault checkpoint file /…`.
    pub label: String,
    pub checkpoints: Vec<Checkpoint>,
    /// Lines of a file that are not checkpoints: (line number, why).
    pub malformed: Vec<(usize, String)>,
    /// For a receiver's database: the numbers its origin has not delivered yet (by the origin's
    /// `checkpoint_deliveries`). Their absence here is pending, not missing: the origin sends
    /// them every round and at its next start (a checkpoint published at shutdown cannot reach a
    /// receiver that is shutting down too).
    pub undelivered: BTreeSet<i64>,
}

/// What the trail's database says about the rows checkpoints name.
#[derive(Debug, Clone, Default)]
pub struct TrailRows {
    /// The newest row's sequence number; `None` when the trail is empty.
    pub last_seq: Option<i64>,
    /// The row hash at each sequence number a checkpoint names (absent: no such row).
    pub hashes: BTreeMap<i64, Vec<u8>>,
}

/// Why a checkpoint is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Missing {
    /// Numbers `from..=to` are held nowhere, though later ones are.
    Gap { from: i64, to: i64, seq_after: i64, seq_before: i64 },
    /// Held in some places, not in these.
    Absent { number: i64, seq: i64, missing_from: Vec<String> },
    /// Rows older than the bound that no checkpoint covers.
    RowsBeyondLastCheckpoint { first_seq: i64, rows: i64, oldest_row_at: String, last_checkpoint_seq: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Checkpoint `checkpoint` vouches for rows up to `seq`; the trail ends before.
    Truncated {
        checkpoint: i64,
        seq: i64,
        trail_ends_at: Option<i64>,
        first_bad_seq: i64,
    },
    /// Checkpoint `checkpoint` vouches for another hash at `seq` (or for a row now gone): a row
    /// in `first_bad_seq..=seq` was changed and the chain recomputed after it.
    Rewritten {
        checkpoint: i64,
        seq: i64,
        first_bad_seq: i64,
        checkpoints_contradicted: usize,
    },
    MissingCheckpoint(Missing),
    BadSignature {
        number: i64,
        source: String,
    },
    /// Checkpoints nobody can verify: no key for their origin was given.
    UnverifiableCheckpoints {
        count: usize,
        reason: String,
    },
    /// Two different checkpoints under one number.
    ConflictingCheckpoints {
        number: i64,
        sources: Vec<String>,
    },
    /// A later checkpoint vouches for an earlier row than the one before it.
    Backwards {
        number: i64,
        seq: i64,
        previous_seq: i64,
    },
    MalformedCheckpoint {
        source: String,
        line: usize,
        error: String,
    },
    /// A place that should hold checkpoints could not be read (a receiver unreachable).
    Unreadable {
        source: String,
        error: String,
    },
}

impl Problem {
    /// The first sequence number this problem shows to be bad, if it names one.
    pub fn first_bad_seq(&self) -> Option<i64> {
        match self {
            Problem::Truncated { first_bad_seq, .. } | Problem::Rewritten { first_bad_seq, .. } => Some(*first_bad_seq),
            _ => None,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Problem::Truncated { checkpoint, seq, trail_ends_at, first_bad_seq } => format!(
                "tail truncated: checkpoint #{checkpoint} vouches for rows up to seq {seq}, but the trail {}; \
                 rows from seq {first_bad_seq} are gone",
                trail_ends_at.map_or("is empty".to_owned(), |s| format!("ends at seq {s}"))
            ),
            Problem::Rewritten { checkpoint, seq, first_bad_seq, checkpoints_contradicted } => format!(
                "rewritten: checkpoint #{checkpoint} vouches for another row at seq {seq}; a row in seq \
                 {first_bad_seq}..={seq} was changed and the chain recomputed after it (first bad seq \
                 {first_bad_seq}; {checkpoints_contradicted} checkpoint(s) contradicted)"
            ),
            Problem::MissingCheckpoint(Missing::Gap { from, to, seq_after, seq_before }) => format!(
                "missing checkpoint: #{from}..=#{to} are held nowhere (they covered rows after seq {seq_after} \
                 up to seq {seq_before})"
            ),
            Problem::MissingCheckpoint(Missing::Absent { number, seq, missing_from }) => {
                format!("missing checkpoint: #{number} (seq {seq}) is not in {}", missing_from.join(", "))
            }
            Problem::MissingCheckpoint(Missing::RowsBeyondLastCheckpoint {
                first_seq,
                rows,
                oldest_row_at,
                last_checkpoint_seq,
            }) => format!(
                "missing checkpoint: {rows} row(s) from seq {first_seq} (the oldest written {oldest_row_at}) are \
                 beyond the last checkpoint (seq {last_checkpoint_seq}) and older than the bound"
            ),
            Problem::BadSignature { number, source } => {
                format!("bad checkpoint signature: #{number} in {source} does not verify with its origin's key")
            }
            Problem::UnverifiableCheckpoints { count, reason } => {
                format!("{count} checkpoint(s) cannot be verified: {reason}")
            }
            Problem::ConflictingCheckpoints { number, sources } => {
                format!("conflicting checkpoints: #{number} differs between {}", sources.join(" and "))
            }
            Problem::Backwards { number, seq, previous_seq } => {
                format!("checkpoint #{number} vouches for seq {seq}, before its predecessor's seq {previous_seq}")
            }
            Problem::MalformedCheckpoint { source, line, error } => {
                format!("malformed checkpoint at line {line} of {source}: {error}")
            }
            Problem::Unreadable { source, error } => {
                format!("could not read the checkpoints in {source}: {error}")
            }
        }
    }
}

/// The checkpoints found, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    /// Verified checkpoints (distinct numbers) across all sources.
    pub verified: usize,
    /// Per source: how many of this trail's checkpoints it holds.
    pub sources: Vec<(String, usize)>,
    /// The newest verified checkpoint: (number, seq).
    pub latest: Option<(i64, i64)>,
    /// Checkpoints not delivered to a receiver yet: (number, where).
    pub pending_delivery: Vec<(i64, String)>,
}

/// Checks the sources against each other and against the trail's rows: what was found, and the
/// problems.
pub fn compare(sources: &[Source], keys: &CheckpointKeys, rows: &TrailRows) -> (Found, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut valid: BTreeMap<i64, (Checkpoint, Vec<String>)> = BTreeMap::new();
    let mut conflicting = std::collections::BTreeSet::new();
    let mut unknown = 0;
    for source in sources {
        for (line, error) in &source.malformed {
            problems.push(Problem::MalformedCheckpoint {
                source: source.label.clone(),
                line: *line,
                error: error.clone(),
            });
        }
        for checkpoint in &source.checkpoints {
            match keys.verify(checkpoint) {
                Ok(()) => {}
                Err(SignatureError::NoKey(_)) => {
                    unknown += 1;
                    continue;
                }
                Err(SignatureError::Bad(_)) => {
                    problems.push(Problem::BadSignature { number: checkpoint.number, source: source.label.clone() });
                    continue;
                }
            }
            let entry = valid.entry(checkpoint.number).or_insert_with(|| (checkpoint.clone(), Vec::new()));
            if !entry.0.same_as(checkpoint) && conflicting.insert(checkpoint.number) {
                let mut holders = entry.1.clone();
                holders.push(source.label.clone());
                problems.push(Problem::ConflictingCheckpoints { number: checkpoint.number, sources: holders });
            }
            if !entry.1.contains(&source.label) {
                entry.1.push(source.label.clone());
            }
        }
    }
    if unknown > 0 {
        let origin = sources.iter().flat_map(|s| s.checkpoints.first()).map(|c| c.origin.to_string()).next();
        problems.push(Problem::UnverifiableCheckpoints {
            count: unknown,
            reason: format!(
                "no checkpoint public key for {} (--checkpoint-key, or checkpoint_public_key_file in a config)",
                origin.unwrap_or_default()
            ),
        });
    }

    // Held in one place but not another (unless not delivered there yet).
    let mut pending_delivery = Vec::new();
    for (number, (checkpoint, holders)) in &valid {
        let lacking = sources.iter().filter(|s| !holders.contains(&s.label));
        let (pending, missing): (Vec<&Source>, Vec<&Source>) = lacking.partition(|s| s.undelivered.contains(number));
        pending_delivery.extend(pending.into_iter().map(|s| (*number, s.label.clone())));
        let missing_from: Vec<String> = missing.into_iter().map(|s| s.label.clone()).collect();
        if !missing_from.is_empty() {
            problems.push(Problem::MissingCheckpoint(Missing::Absent {
                number: *number,
                seq: checkpoint.seq,
                missing_from,
            }));
        }
    }
    // Held nowhere: gaps in the numbering.
    let mut expected = 1;
    let mut seq_after = 0;
    for (number, (checkpoint, _)) in &valid {
        if *number > expected {
            problems.push(Problem::MissingCheckpoint(Missing::Gap {
                from: expected,
                to: number - 1,
                seq_after,
                seq_before: checkpoint.seq,
            }));
        }
        expected = number + 1;
        seq_after = checkpoint.seq;
    }
    // Monotonic.
    let mut previous: Option<&Checkpoint> = None;
    for (checkpoint, _) in valid.values() {
        if let Some(p) = previous {
            if checkpoint.seq < p.seq {
                problems.push(Problem::Backwards {
                    number: checkpoint.number,
                    seq: checkpoint.seq,
                    previous_seq: p.seq,
                });
            }
        }
        previous = Some(checkpoint);
    }

    // Against the trail, in sequence order: the last checkpoint that matches proves every row up
    // to it; the first that does not shows where the damage starts.
    let mut by_seq: Vec<&Checkpoint> =
        valid.iter().filter(|(n, _)| !conflicting.contains(*n)).map(|(_, (c, _))| c).collect();
    by_seq.sort_by_key(|c| (c.seq, c.number));
    let mut proven = 0;
    let mut rewritten: Option<Problem> = None;
    let mut truncated: Option<Problem> = None;
    for checkpoint in by_seq {
        match rows.hashes.get(&checkpoint.seq) {
            Some(hash) if *hash == checkpoint.head_hash && rewritten.is_none() => proven = checkpoint.seq,
            Some(hash) if *hash == checkpoint.head_hash => {}
            None if rows.last_seq.is_none_or(|last| checkpoint.seq > last) => {
                let first_bad_seq = rows.last_seq.map_or(1, |last| last + 1);
                // Report the checkpoint reaching furthest.
                truncated = Some(Problem::Truncated {
                    checkpoint: checkpoint.number,
                    seq: checkpoint.seq,
                    trail_ends_at: rows.last_seq,
                    first_bad_seq,
                });
            }
            _ => match &mut rewritten {
                Some(Problem::Rewritten { checkpoints_contradicted, .. }) => *checkpoints_contradicted += 1,
                _ => {
                    rewritten = Some(Problem::Rewritten {
                        checkpoint: checkpoint.number,
                        seq: checkpoint.seq,
                        first_bad_seq: proven + 1,
                        checkpoints_contradicted: 1,
                    })
                }
            },
        }
    }
    problems.extend(rewritten);
    problems.extend(truncated);

    let found = Found {
        verified: valid.len(),
        sources: sources
            .iter()
            .map(|s| (s.label.clone(), valid.values().filter(|(_, holders)| holders.contains(&s.label)).count()))
            .collect(),
        latest: valid.values().map(|(c, _)| (c.number, c.seq)).next_back(),
        pending_delivery,
    };
    (found, problems)
}

/// The sequence number the newest verified checkpoint vouches for (0 when there is none): rows
/// after it are not anchored yet.
pub fn anchored_up_to(sources: &[Source], keys: &CheckpointKeys) -> i64 {
    sources.iter().flat_map(|s| &s.checkpoints).filter(|c| keys.verify(c).is_ok()).map(|c| c.seq).max().unwrap_or(0)
}

// ---------------------------------------------------------------- the trail's own database

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
async fn unanchored(
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
    let numbers: Vec<i64> = sqlx::query_scalar(
        "SELECT c.number FROM checkpoints c WHERE c.origin = $1 AND c.trail = $2 AND NOT EXISTS (SELECT 1 FROM \
         checkpoint_deliveries d WHERE d.trail = c.trail AND d.number = c.number AND d.receiver = $3)",
    )
    .bind(origin.as_str())
    .bind(trail.as_str())
    .bind(receiver.as_str())
    .fetch_all(origin_pool)
    .await?;
    Ok(numbers.into_iter().collect())
}

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

// ---------------------------------------------------------------- over HTTP

/// Verifies one of a service's trails' hash chains, streamed from its database, up to a number
/// of breaks. Each service names its own (its trails' row formats are its own).
pub type VerifyChain = fn(Trail, PgPool, usize) -> BoxFuture<'static, Result<Verification, sqlx::Error>>;

/// A service's [`VerifyChain`], managed for [`routes`].
pub struct ChainVerifier(pub VerifyChain);

const MAX_BREAKS: usize = 100;
/// Problems and pending deliveries listed per trail; the rest are counted.
const MAX_LISTED: usize = 100;

/// One verification at a time per service (by its place in `ServiceName::ALL`): each reads
/// every row and checkpoint.
static RUNNING: [tokio::sync::Mutex<()>; 3] =
    [tokio::sync::Mutex::const_new(()), tokio::sync::Mutex::const_new(()), tokio::sync::Mutex::const_new(())];

/// Checks every trail `service` writes: with its publisher, against every checkpoint wherever
/// kept; without one (checkpoints off, dev only), the chains alone.
pub async fn verify_service(
    service: ServiceName,
    pool: &PgPool,
    publisher: Option<&Publisher>,
    verify: VerifyChain,
) -> Result<Vec<TrailReport>, ApiError> {
    let slot = ServiceName::ALL.iter().position(|s| *s == service).unwrap_or_default();
    let Ok(_running) = RUNNING[slot].try_lock() else {
        return Err(ApiError::TooManyRequests("a verification is already running here: try again when it ends".into()));
    };
    let checks = match publisher {
        Some(publisher) => publisher.check_trails(verify, MAX_BREAKS).await?,
        None => {
            let mut checks = Vec::new();
            for trail in Trail::of(service) {
                let verification = verify(trail, pool.clone(), MAX_BREAKS).await?;
                checks.push(TrailCheck {
                    table: trail.table(),
                    origin: service,
                    intact: verification.intact(),
                    rows_checked: verification.rows_checked,
                    last_seq: trail_rows(pool, trail, Vec::new()).await?.last_seq,
                    first_bad_seq: verification.breaks.first().map(|b| b.seq),
                    breaks: verification.breaks,
                    checkpoints: Found::default(),
                    problems: Vec::new(),
                });
            }
            checks
        }
    };
    for check in checks.iter().filter(|c| !c.intact) {
        tracing::error!(
            trail = check.table,
            first_bad_seq = ?check.first_bad_seq,
            alarm = "audit_chain",
            "AUDIT ALARM: a trail failed verification"
        );
    }
    Ok(checks.iter().map(TrailCheck::report).collect())
}

/// This service's trails verified for a compliance officer (public-api asks, as the officer).
#[post("/internal/v1/trail-verifications")]
async fn verify_route(
    call: InternalCall,
    pool: &State<PgPool>,
    info: &State<ServiceInfo>,
    publisher: &State<crate::checkpoint::Published>,
    chain: &State<ChainVerifier>,
) -> Result<Json<Vec<TrailReport>>, ApiError> {
    let publisher = publisher.0.as_ref();
    let claims = &call.0;
    if claims.role != Role::ComplianceOfficer {
        tracing::warn!(request_id = %claims.request_id, role = %claims.role, "trail verification refused: not a compliance officer");
        return Err(ApiError::Forbidden);
    }
    let reports = verify_service(info.service, pool, publisher.map(Arc::as_ref), chain.0).await?;
    tracing::info!(request_id = %claims.request_id, trails = reports.len(), "trails verified");
    Ok(Json(reports))
}

/// The verification route, for services other than public-api (which verifies its own trail
/// in process).
pub fn routes() -> Vec<Route> {
    routes![verify_route]
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::{CheckpointKey, Trail};
    use crate::ServiceName;

    use super::*;

    struct Fixture {
        key: CheckpointKey,
        keys: CheckpointKeys,
    }

    fn fixture() -> Fixture {
        let (der, _) = crate::keys::generate().expect("key");
        let key = CheckpointKey::from_pkcs8(ServiceName::PublicApi, &der).expect("key");
        let mut keys = CheckpointKeys::default();
        keys.insert(ServiceName::PublicApi, key.public());
        Fixture { key, keys }
    }

    fn hash(seq: i64) -> Vec<u8> {
        vec![seq as u8; 32]
    }

    impl Fixture {
        fn cp(&self, number: i64, seq: i64) -> Checkpoint {
            self.key.sign(Trail::AuditLogs, number, seq, &hash(seq), crate::chain::now())
        }
    }

    fn rows(last: i64, changed_from: Option<i64>) -> TrailRows {
        let hashes = (1..=last)
            .map(|s| (s, if changed_from.is_some_and(|c| s >= c) { vec![0xee; 32] } else { hash(s) }))
            .collect();
        TrailRows { last_seq: Some(last), hashes }
    }

    fn source(label: &str, checkpoints: Vec<Checkpoint>) -> Source {
        Source { label: label.into(), checkpoints, malformed: Vec::new(), undelivered: Default::default() }
    }

    #[test]
    fn intact_when_every_checkpoint_matches_everywhere() {
        let f = fixture();
        let cps = vec![f.cp(1, 3), f.cp(2, 7)];
        let sources = [source("a", cps.clone()), source("b", cps)];
        let (found, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(problems, vec![]);
        assert_eq!((found.verified, found.latest), (2, Some((2, 7))));
        assert_eq!(anchored_up_to(&sources, &f.keys), 7);
    }

    #[test]
    fn truncation_rewriting_and_missing_checkpoints_are_named() {
        let f = fixture();
        let cps = vec![f.cp(1, 3), f.cp(2, 7), f.cp(3, 9)];
        let sources = [source("a", cps.clone())];
        let (_, problems) = compare(&sources, &f.keys, &rows(5, None));
        assert_eq!(
            problems,
            vec![Problem::Truncated { checkpoint: 3, seq: 9, trail_ends_at: Some(5), first_bad_seq: 6 }]
        );
        let (_, problems) = compare(&sources, &f.keys, &rows(9, Some(5)));
        assert_eq!(
            problems,
            vec![Problem::Rewritten { checkpoint: 2, seq: 7, first_bad_seq: 4, checkpoints_contradicted: 2 }]
        );
        let sources = [source("a", cps.clone()), source("b", vec![cps[0].clone(), cps[2].clone()])];
        let (_, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(
            problems,
            vec![Problem::MissingCheckpoint(Missing::Absent { number: 2, seq: 7, missing_from: vec!["b".into()] })]
        );
        let mut receiver = source("b", vec![cps[0].clone(), cps[1].clone()]);
        receiver.undelivered.insert(3);
        let (found, problems) = compare(&[source("a", cps.clone()), receiver], &f.keys, &rows(9, None));
        assert_eq!((problems, found.pending_delivery), (vec![], vec![(3, "b".to_owned())]), "not sent yet");
        let sources = [source("a", vec![cps[0].clone(), cps[2].clone()])];
        let (_, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert_eq!(
            problems,
            vec![Problem::MissingCheckpoint(Missing::Gap { from: 2, to: 2, seq_after: 3, seq_before: 9 })]
        );
    }

    #[test]
    fn forged_and_conflicting_checkpoints_are_reported() {
        let f = fixture();
        let mut forged = f.cp(2, 7);
        forged.seq = 8;
        let sources = [source("a", vec![f.cp(1, 3), forged]), source("b", vec![f.cp(1, 4)])];
        let (found, problems) = compare(&sources, &f.keys, &rows(9, None));
        assert!(problems.contains(&Problem::BadSignature { number: 2, source: "a".into() }), "{problems:?}");
        assert!(
            problems.contains(&Problem::ConflictingCheckpoints { number: 1, sources: vec!["a".into(), "b".into()] }),
            "{problems:?}"
        );
        assert_eq!(found.verified, 1);
        let (_, problems) = compare(&sources, &CheckpointKeys::default(), &rows(9, None));
        assert!(matches!(problems[..], [Problem::UnverifiableCheckpoints { count: 3, .. }]), "{problems:?}");
    }
}
