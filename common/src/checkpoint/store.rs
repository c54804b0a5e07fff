//! Where checkpoints are kept: the `checkpoints` table of the origin and of each receiver, and
//! the origin's checkpoint file.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- storage

pub(super) const STORE_LOCK: i64 = 0x5357_4350_5354_0000;
pub(super) const PUBLISH_LOCK: i64 = 0x5357_4350_5042_0000;

/// What storing a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// The very same checkpoint was already held (a retried delivery).
    AlreadyHeld,
}

/// Why a checkpoint was refused: it contradicts one already held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {number} of {origin}/{trail} refused: {reason}")]
pub struct Refused {
    pub origin: ServiceName,
    pub trail: Trail,
    pub number: i64,
    pub reason: String,
}

/// A checkpoint as a `checkpoints` row holds it. The table is the same in the three databases
/// (each service's migrations make it alike); the query macros check these queries against the
/// public one.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CheckpointRow {
    pub(super) origin: String,
    pub(super) trail: String,
    pub(super) number: i64,
    pub(super) seq: i64,
    pub(super) head_hash: Vec<u8>,
    pub(super) published_at: time::OffsetDateTime,
    pub(super) signature: Vec<u8>,
}

impl TryFrom<CheckpointRow> for Checkpoint {
    type Error = sqlx::Error;

    fn try_from(row: CheckpointRow) -> Result<Self, sqlx::Error> {
        let decode = |column: &str, e: String| sqlx::Error::ColumnDecode { index: column.into(), source: e.into() };
        Ok(Checkpoint {
            origin: row.origin.parse().map_err(|e| decode("origin", e))?,
            trail: row.trail.parse().map_err(|e| decode("trail", e))?,
            number: row.number,
            seq: row.seq,
            head_hash: row.head_hash,
            published_at: row.published_at,
            signature: row.signature,
        })
    }
}

/// The checkpoints of rows read, in order.
pub(super) fn checkpoints(rows: Vec<CheckpointRow>) -> Result<Vec<Checkpoint>, sqlx::Error> {
    rows.into_iter().map(Checkpoint::try_from).collect()
}

/// The newest checkpoint held of `origin`'s `trail`.
pub async fn latest(
    conn: &mut PgConnection,
    origin: ServiceName,
    trail: Trail,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query_as!(
        CheckpointRow,
        "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
         WHERE origin = $1 AND trail = $2 ORDER BY number DESC LIMIT 1",
        origin.as_str(),
        trail.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Checkpoint::try_from).transpose()
}

/// Every checkpoint a database holds (of every origin), by origin, trail and number.
pub async fn held(pool: &PgPool) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query_as!(
        CheckpointRow,
        "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
         ORDER BY origin, trail, number"
    )
    .fetch_all(pool)
    .await?;
    checkpoints(rows)
}

/// Stores a checkpoint unless it goes backwards: its number must follow the newest held, its
/// sequence number may not be lower, and a sequence number already vouched for keeps its hash.
/// The very same checkpoint again is accepted (deliveries are retried).
pub async fn store(tx: &mut PgConnection, checkpoint: &Checkpoint) -> Result<Result<Stored, Refused>, sqlx::Error> {
    let lock = STORE_LOCK
        + ServiceName::ALL.iter().position(|s| *s == checkpoint.origin).unwrap_or_default() as i64 * 16
        + checkpoint.trail.index();
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", lock).execute(&mut *tx).await?;
    let refuse = |reason: String| {
        Ok(Err(Refused { origin: checkpoint.origin, trail: checkpoint.trail, number: checkpoint.number, reason }))
    };
    let same_number = sqlx::query_as!(
        CheckpointRow,
        "SELECT origin, trail, number, seq, head_hash, published_at, signature FROM checkpoints \
         WHERE origin = $1 AND trail = $2 AND number = $3",
        checkpoint.origin.as_str(),
        checkpoint.trail.as_str(),
        checkpoint.number,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = same_number {
        return if Checkpoint::try_from(row)?.same_as(checkpoint) {
            Ok(Ok(Stored::AlreadyHeld))
        } else {
            refuse("a different checkpoint with this number is held".into())
        };
    }
    if let Some(last) = latest(tx, checkpoint.origin, checkpoint.trail).await? {
        if checkpoint.number < last.number {
            return refuse(format!("goes backwards: checkpoint {} is held", last.number));
        }
        if checkpoint.seq < last.seq {
            return refuse(format!("goes backwards: checkpoint {} vouches for seq {}", last.number, last.seq));
        }
        if checkpoint.seq == last.seq && checkpoint.head_hash != last.head_hash {
            return refuse(format!("checkpoint {} vouches for another hash at seq {}", last.number, last.seq));
        }
    }
    sqlx::query!(
        "INSERT INTO checkpoints (origin, trail, number, seq, head_hash, published_at, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        checkpoint.origin.as_str(),
        checkpoint.trail.as_str(),
        checkpoint.number,
        checkpoint.seq,
        &checkpoint.head_hash,
        checkpoint.published_at,
        &checkpoint.signature,
    )
    .execute(&mut *tx)
    .await?;
    Ok(Ok(Stored::New))
}

// ---------------------------------------------------------------- the file

/// `<log.dir>/<service>.checkpoints.jsonl`.
pub fn file_in(dir: &Path, service: ServiceName) -> PathBuf {
    dir.join(format!("{service}.checkpoints.jsonl"))
}

/// Appends one checkpoint as a JSON line (the directory is created if missing).
pub fn append_file(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&line)?;
    file.sync_data()
}

/// The latest checkpoint of each trail in this service's own file that one of its own keys signed.
pub(super) fn last_in_file(path: &Path, service: ServiceName, mine: &CheckpointKeys) -> HashMap<Trail, Checkpoint> {
    let mut out: HashMap<Trail, Checkpoint> = HashMap::new();
    let lines = match read_file(path) {
        Ok(lines) => lines,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            tracing::error!(error = %e, alarm = "checkpoint_file", "cannot read this service's checkpoint file");
            return out;
        }
    };
    // The newest line of each trail whose signature verifies: candidates newest first, so a
    // file that only grows is not verified line by line at every start.
    let mut candidates: Vec<Checkpoint> =
        lines.into_iter().filter_map(|(_, line)| line.ok()).filter(|c| c.origin == service).collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.number));
    for checkpoint in candidates {
        if !out.contains_key(&checkpoint.trail) && mine.verify(&checkpoint).is_ok() {
            out.insert(checkpoint.trail, checkpoint);
        }
    }
    out
}

/// A checkpoint file's lines: each a checkpoint, or why the line is not one (with its number).
pub fn read_file(path: &Path) -> std::io::Result<Vec<(usize, Result<Checkpoint, String>)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| (n + 1, serde_json::from_str::<Checkpoint>(line).map_err(|e| e.to_string())))
        .collect())
}
