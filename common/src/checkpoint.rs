//! Signed checkpoints: trails anchored outside their own database.
//!
//! A hash chain shows an edited or removed row, but not the newest rows cut off, nor an edit
//! whose every later hash was recomputed by someone holding the database. So each service
//! publishes, for each of its chained trails whose head moved, a checkpoint: origin, trail,
//! checkpoint number (1, 2, … per trail), the head's sequence number and row hash, and the time,
//! signed with the service's checkpoint key (Ed25519; not the internal-call key). A checkpoint
//! is kept in three places: the origin's own `checkpoints` table (which numbers them), a
//! checkpoint file under `log.dir` (`<service>.checkpoints.jsonl`, one JSON object a line), and
//! the `checkpoints` table of every configured receiver (`checkpoint.receivers`), sent over a
//! signed internal call (`POST /internal/v1/checkpoints`). `secondwind-operator audit verify`
//! compares each trail with every checkpoint it finds.
//!
//! The receiver refuses a checkpoint whose signature does not verify with the origin's
//! checkpoint key, whose assertion was not issued by its origin, or that goes backwards (a lower
//! number or sequence, or a different head for a number or sequence it already holds).
//!
//! Publishing takes a per-trail try-lock in the origin's database, so with several instances one
//! publishes; it never holds a lock across the network (the file and the receivers are written
//! after commit). What failed to reach a receiver is retried every round and after a restart
//! (`checkpoint_deliveries` records what arrived). Before publishing, the publisher checks that
//! the row its previous checkpoint vouched for is still there with the same hash; if not it
//! raises an alarm and publishes nothing, so a rewritten trail is never blessed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Build, Rocket, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

use crate::assertion::{CallContext, InternalCall, Signer};
use crate::client::{CheckpointClient, ClientError, InternalClient};
use crate::config::{Config, ConfigError, Profile};
use crate::json::Body;
use crate::keys::{self, KeyError};
use crate::ops::ServiceInfo;
use crate::service::StartError;
use crate::{chain, ApiError, RequestId, ServiceName};

/// Every hash-chained trail, by the name checkpoints carry (its table's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trail {
    /// public-api: every state change and auth event.
    AuditLogs,
    /// phi-vault: every PHI access.
    AccessLog,
    /// phi-vault: compliance findings on flagged accesses.
    AccessReviews,
    /// phi-vault: the accounting of disclosures.
    Disclosures,
    /// consent: every disclosure question and its answer.
    Decisions,
    /// consent: the signed consents.
    Consents,
    /// consent: their revocations.
    Revocations,
}

impl Trail {
    pub const ALL: [Trail; 7] = [
        Self::AuditLogs,
        Self::AccessLog,
        Self::AccessReviews,
        Self::Disclosures,
        Self::Decisions,
        Self::Consents,
        Self::Revocations,
    ];

    pub fn as_str(self) -> &'static str {
        self.table()
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::AuditLogs => "audit_logs",
            Self::AccessLog => "access_log",
            Self::AccessReviews => "access_reviews",
            Self::Disclosures => "disclosures",
            Self::Decisions => "decisions",
            Self::Consents => "consents",
            Self::Revocations => "revocations",
        }
    }

    /// The service that writes the trail.
    pub fn service(self) -> ServiceName {
        match self {
            Self::AuditLogs => ServiceName::PublicApi,
            Self::AccessLog | Self::AccessReviews | Self::Disclosures => ServiceName::PhiVault,
            Self::Decisions | Self::Consents | Self::Revocations => ServiceName::Consent,
        }
    }

    /// The column the chain is ordered by (the checkpoint's sequence number).
    pub fn seq_column(self) -> &'static str {
        match self {
            // `seq` there names the access-log entry reviewed.
            Self::AccessReviews => "chain_seq",
            _ => "seq",
        }
    }

    /// When a row was written.
    pub fn time_column(self) -> &'static str {
        match self {
            Self::AuditLogs | Self::AccessLog => "occurred_at",
            Self::AccessReviews => "reviewed_at",
            Self::Disclosures => "disclosed_at",
            Self::Decisions => "decided_at",
            Self::Consents => "created_at",
            Self::Revocations => "revoked_at",
        }
    }

    /// The trails `service` writes.
    pub fn of(service: ServiceName) -> impl Iterator<Item = Trail> {
        Self::ALL.into_iter().filter(move |t| t.service() == service)
    }

    fn index(self) -> i64 {
        Self::ALL.iter().position(|t| *t == self).unwrap_or_default() as i64
    }

    /// The advisory lock a publisher takes for this trail (so several instances publish each
    /// checkpoint once).
    pub fn publish_lock(self) -> i64 {
        PUBLISH_LOCK + self.index()
    }
}

impl std::fmt::Display for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Trail {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown trail `{s}`"))
    }
}

/// One signed checkpoint, as it travels, is stored and is written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub origin: ServiceName,
    pub trail: Trail,
    /// 1, 2, … per origin and trail; a gap means a checkpoint went missing.
    pub number: i64,
    /// The trail's head: the sequence number of its newest row …
    pub seq: i64,
    /// … and that row's hash, which commits to every row before it.
    #[serde(with = "hex_bytes")]
    pub head_hash: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Ed25519 over [`Checkpoint::message`].
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The signed bytes: every field but the signature, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "secondwind-checkpoint-v1\norigin {}\ntrail {}\nnumber {}\nseq {}\nhead {}\ntime {}\n",
            self.origin,
            self.trail,
            self.number,
            self.seq,
            chain::hex(&self.head_hash),
            chain::micros(self.published_at)
        )
        .into_bytes()
    }

    /// The same checkpoint: equal in every signed field and the signature.
    pub fn same_as(&self, other: &Checkpoint) -> bool {
        self.message() == other.message() && self.signature == other.signature
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.trail.service() != self.origin {
            return Err(format!("{} does not write the {} trail", self.origin, self.trail));
        }
        if self.number < 1 || self.seq < 1 {
            return Err("number and seq start at 1".into());
        }
        if self.head_hash.len() != 32 || self.signature.len() != 64 {
            return Err("head_hash is 32 bytes and signature 64".into());
        }
        Ok(())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::chain::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::chain::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not lowercase hex"))
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where each service anchors its checkpoints, as `secondwind-operator dev init` and the test
/// harness configure it (`checkpoint.receivers`): public-api and phi-vault in consent's
/// database, consent in phi-vault's. Each trail is thus held outside its own database.
pub fn topology(service: ServiceName) -> Vec<ServiceName> {
    match service {
        ServiceName::PublicApi | ServiceName::PhiVault => vec![ServiceName::Consent],
        ServiceName::Consent => vec![ServiceName::PhiVault],
    }
}

// ---------------------------------------------------------------- keys

/// `<service>-checkpoint`: the conventional name (`.key`, `.pub`) of a service's checkpoint key,
/// as `secondwind-operator dev init` and the test harness write it.
pub fn key_name(service: ServiceName) -> String {
    format!("{service}-checkpoint")
}

/// A service's checkpoint signing key.
pub struct CheckpointKey {
    service: ServiceName,
    pair: Ed25519KeyPair,
}

impl CheckpointKey {
    /// Reads a PKCS#8 key, refusing a file others can read (mode 0600).
    pub fn load(service: ServiceName, path: &Path) -> Result<Self, KeyError> {
        Self::from_pkcs8(service, &keys::read_private(path)?)
    }

    pub fn from_pkcs8(service: ServiceName, der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self { service, pair })
    }

    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs a checkpoint of `trail` at its head (`seq`, `head_hash`).
    pub fn sign(&self, trail: Trail, number: i64, seq: i64, head_hash: &[u8], at: OffsetDateTime) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            origin: self.service,
            trail,
            number,
            seq,
            head_hash: head_hash.to_vec(),
            published_at: at,
            signature: Vec::new(),
        };
        checkpoint.signature = self.pair.sign(&checkpoint.message()).as_ref().to_vec();
        checkpoint
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no checkpoint key is known for {0}")]
    NoKey(ServiceName),
    #[error("the signature does not verify with {0}'s checkpoint key")]
    Bad(ServiceName),
}

/// The checkpoint public keys of the services whose checkpoints are checked here. A service may
/// have several (its current key and, while old checkpoints are still checked, retired ones).
#[derive(Debug, Clone, Default)]
pub struct CheckpointKeys(HashMap<ServiceName, Vec<[u8; 32]>>);

impl CheckpointKeys {
    pub fn insert(&mut self, service: ServiceName, key: [u8; 32]) {
        let keys = self.0.entry(service).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    pub fn contains(&self, service: ServiceName) -> bool {
        self.0.contains_key(&service)
    }

    /// The peers' keys configured as `internal.peers.<peer>.checkpoint_public_key_file` and
    /// `checkpoint_accepted_public_key_files`.
    pub fn from_config<S>(config: &Config<S>) -> Result<Self, KeyError> {
        let mut out = Self::default();
        for (peer, settings) in &config.internal.peers {
            for file in settings.checkpoint_public_key_file.iter().chain(&settings.checkpoint_accepted_public_key_files)
            {
                out.insert(*peer, keys::read_public(file)?);
            }
        }
        Ok(out)
    }

    /// The peers' keys and `service`'s own (`checkpoint.public_key_file` and
    /// `accepted_public_key_files`): every key a config names.
    pub fn all_from_config<S>(service: ServiceName, config: &Config<S>) -> Result<Self, KeyError> {
        let mut out = Self::from_config(config)?;
        if let Some(own) = &config.checkpoint {
            for file in own.public_key_file.iter().chain(&own.accepted_public_key_files) {
                out.insert(service, keys::read_public(file)?);
            }
        }
        Ok(out)
    }

    /// Adds every key of `other`.
    pub fn extend(&mut self, other: CheckpointKeys) {
        for (service, keys) in other.0 {
            for key in keys {
                self.insert(service, key);
            }
        }
    }

    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), SignatureError> {
        let keys = self.0.get(&checkpoint.origin).ok_or(SignatureError::NoKey(checkpoint.origin))?;
        let message = checkpoint.message();
        keys.iter()
            .any(|key| UnparsedPublicKey::new(&ED25519, key).verify(&message, &checkpoint.signature).is_ok())
            .then_some(())
            .ok_or(SignatureError::Bad(checkpoint.origin))
    }
}

// ---------------------------------------------------------------- storage

const STORE_LOCK: i64 = 0x5357_4350_5354_0000;
const PUBLISH_LOCK: i64 = 0x5357_4350_5042_0000;

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

const COLUMNS: &str = "origin, trail, number, seq, head_hash, published_at, signature";

fn from_row(row: &PgRow) -> Result<Checkpoint, sqlx::Error> {
    let decode = |column: &str, e: String| sqlx::Error::ColumnDecode { index: column.into(), source: e.into() };
    let origin: String = row.try_get("origin")?;
    let trail: String = row.try_get("trail")?;
    Ok(Checkpoint {
        origin: origin.parse().map_err(|e| decode("origin", e))?,
        trail: trail.parse().map_err(|e| decode("trail", e))?,
        number: row.try_get("number")?,
        seq: row.try_get("seq")?,
        head_hash: row.try_get("head_hash")?,
        published_at: row.try_get("published_at")?,
        signature: row.try_get("signature")?,
    })
}

/// The newest checkpoint held of `origin`'s `trail`.
pub async fn latest(
    conn: &mut PgConnection,
    origin: ServiceName,
    trail: Trail,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM checkpoints WHERE origin = $1 AND trail = $2 ORDER BY number DESC LIMIT 1"
    ))
    .bind(origin.as_str())
    .bind(trail.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every checkpoint a database holds (of every origin), by origin, trail and number.
pub async fn held(pool: &PgPool) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM checkpoints ORDER BY origin, trail, number"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Stores a checkpoint unless it goes backwards: its number must follow the newest held, its
/// sequence number may not be lower, and a sequence number already vouched for keeps its hash.
/// The very same checkpoint again is accepted (deliveries are retried).
pub async fn store(tx: &mut PgConnection, checkpoint: &Checkpoint) -> Result<Result<Stored, Refused>, sqlx::Error> {
    let lock = STORE_LOCK
        + ServiceName::ALL.iter().position(|s| *s == checkpoint.origin).unwrap_or_default() as i64 * 16
        + checkpoint.trail.index();
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock).execute(&mut *tx).await?;
    let refuse = |reason: String| {
        Ok(Err(Refused { origin: checkpoint.origin, trail: checkpoint.trail, number: checkpoint.number, reason }))
    };
    let same_number =
        sqlx::query(&format!("SELECT {COLUMNS} FROM checkpoints WHERE origin = $1 AND trail = $2 AND number = $3"))
            .bind(checkpoint.origin.as_str())
            .bind(checkpoint.trail.as_str())
            .bind(checkpoint.number)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(row) = same_number {
        return if from_row(&row)?.same_as(checkpoint) {
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
    sqlx::query(&format!("INSERT INTO checkpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(checkpoint.origin.as_str())
        .bind(checkpoint.trail.as_str())
        .bind(checkpoint.number)
        .bind(checkpoint.seq)
        .bind(&checkpoint.head_hash)
        .bind(checkpoint.published_at)
        .bind(&checkpoint.signature)
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
fn last_in_file(path: &Path, service: ServiceName, mine: &CheckpointKeys) -> HashMap<Trail, Checkpoint> {
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

// ---------------------------------------------------------------- receiving

/// Stores a peer's checkpoint. The caller must be the checkpoint's origin, the signature must
/// verify with the origin's checkpoint key, and it may not go backwards (409). 204 when stored
/// or already held.
#[post("/internal/v1/checkpoints", data = "<body>")]
async fn receive(
    call: InternalCall,
    body: Body<Checkpoint>,
    pool: &State<PgPool>,
    keys: &State<CheckpointKeys>,
    info: &State<ServiceInfo>,
) -> Result<Status, ApiError> {
    let checkpoint = body.into_inner();
    let claims = &call.0;
    let refuse = |reason: &str| {
        tracing::warn!(
            service = info.service.as_str(),
            request_id = %claims.request_id,
            caller = claims.iss.as_str(),
            origin = checkpoint.origin.as_str(),
            trail = checkpoint.trail.as_str(),
            number = checkpoint.number,
            alarm = "checkpoint_refused",
            reason,
            "checkpoint refused"
        );
    };
    if claims.iss != checkpoint.origin {
        refuse("the caller is not the checkpoint's origin");
        return Err(ApiError::Forbidden);
    }
    if checkpoint.origin == info.service {
        refuse("a service does not anchor its trails in its own database");
        return Err(ApiError::Forbidden);
    }
    if let Err(e) = checkpoint.check_shape() {
        refuse(&e);
        return Err(ApiError::Unprocessable(e));
    }
    match keys.verify(&checkpoint) {
        Ok(()) => {}
        Err(e @ SignatureError::NoKey(_)) => {
            refuse(&e.to_string());
            return Err(ApiError::Forbidden);
        }
        Err(e @ SignatureError::Bad(_)) => {
            refuse(&e.to_string());
            return Err(ApiError::Unprocessable("signature: does not verify".into()));
        }
    }
    let mut tx = pool.begin().await?;
    match store(&mut tx, &checkpoint).await? {
        Ok(stored) => {
            tx.commit().await?;
            if stored == Stored::New {
                tracing::info!(
                    request_id = %claims.request_id,
                    origin = checkpoint.origin.as_str(),
                    trail = checkpoint.trail.as_str(),
                    number = checkpoint.number,
                    seq = checkpoint.seq,
                    "checkpoint stored"
                );
            }
            Ok(Status::NoContent)
        }
        Err(refused) => {
            tx.rollback().await?;
            refuse(&refused.reason);
            Err(ApiError::Conflict(refused.to_string()))
        }
    }
}

/// A page of the checkpoints a receiver holds of one of the caller's trails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldPage {
    pub checkpoints: Vec<Checkpoint>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

const HELD_PAGE: i64 = 2_000;

/// How old a checkpoint must be for a verification to count it (one published later may be in
/// the database and not yet in the file; a delivery in flight is told apart by the origin's
/// records of what arrived).
pub const SETTLE: time::Duration = time::Duration::seconds(2);

/// The checkpoints this database holds of the caller's own `trail`, by number: an origin
/// comparing its trail with what its receivers hold (`Publisher::check_trails`). Only a
/// service's own checkpoints are shown to it.
#[get("/internal/v1/checkpoints?<trail>&<after>")]
async fn held_of_caller(
    call: InternalCall,
    trail: &str,
    after: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<HeldPage>, ApiError> {
    let claims = &call.0;
    let after: Option<i64> = crate::json::query_param("after", after, "an integer")?;
    let trail: Trail = trail.parse().map_err(|_| ApiError::Unprocessable("trail: a trail's table name".into()))?;
    if trail.service() != claims.iss {
        return Err(ApiError::Forbidden);
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM checkpoints WHERE origin = $1 AND trail = $2 AND number > $3 ORDER BY number LIMIT $4"
    ))
    .bind(claims.iss.as_str())
    .bind(trail.as_str())
    .bind(after.unwrap_or(0))
    .bind(HELD_PAGE + 1)
    .fetch_all(pool.inner())
    .await?;
    let mut checkpoints = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next_after = (checkpoints.len() as i64 > HELD_PAGE).then(|| {
        checkpoints.truncate(HELD_PAGE as usize);
        checkpoints.last().map(|c| c.number)
    });
    Ok(Json(HeldPage { checkpoints, next_after: next_after.flatten() }))
}

pub fn routes() -> Vec<Route> {
    routes![receive, held_of_caller]
}

// ---------------------------------------------------------------- publishing

/// Rounds in a row a trail's publish lock may be busy before the publisher raises an alarm:
/// publishing takes milliseconds, so a lock held longer means something is holding it.
const STALL_ROUNDS: u32 = 3;

/// Publishes this service's checkpoints and delivers them to its receivers.
///
/// It does not trust its own database about what it signed: it remembers the last checkpoint it
/// published of each trail (seeded at start from its own checkpoint file), checks that the
/// database still holds exactly that, and checks the database's latest with its own public key.
/// Someone who deletes or rewrites checkpoints in the database, to have the publisher sign a
/// rewritten trail next, gets an alarm instead.
pub struct Publisher {
    key: CheckpointKey,
    pool: PgPool,
    receivers: Vec<(ServiceName, CheckpointClient)>,
    file: Option<PathBuf>,
    interval: Duration,
    /// This service's checkpoint public keys: the current one and any retired ones.
    own_keys: CheckpointKeys,
    /// The latest checkpoint of each trail this process has published, found in its file, or
    /// seen in the database (and found signed by its own key) on an earlier round.
    remembered: std::sync::Mutex<HashMap<Trail, Checkpoint>>,
    /// Rounds in a row each trail's publish lock was busy.
    busy: std::sync::Mutex<HashMap<Trail, u32>>,
}

impl Publisher {
    pub fn new(
        key: CheckpointKey,
        pool: PgPool,
        receivers: Vec<(ServiceName, CheckpointClient)>,
        file: Option<PathBuf>,
        interval: Duration,
    ) -> Self {
        Self::with_accepted_keys(key, &[], pool, receivers, file, interval)
    }

    /// Like [`Publisher::new`], also accepting this service's checkpoints signed with the
    /// `accepted` public keys (during a key rotation).
    pub fn with_accepted_keys(
        key: CheckpointKey,
        accepted: &[[u8; 32]],
        pool: PgPool,
        receivers: Vec<(ServiceName, CheckpointClient)>,
        file: Option<PathBuf>,
        interval: Duration,
    ) -> Self {
        let mut own_keys = CheckpointKeys::default();
        own_keys.insert(key.service, key.public());
        for other in accepted {
            own_keys.insert(key.service, *other);
        }
        let remembered =
            std::sync::Mutex::new(file.as_deref().map(|f| last_in_file(f, key.service, &own_keys)).unwrap_or_default());
        Self { key, own_keys, pool, receivers, file, interval, remembered, busy: Default::default() }
    }

    fn remember(&self, checkpoint: &Checkpoint) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.get(&checkpoint.trail).is_none_or(|known| known.number < checkpoint.number) {
            remembered.insert(checkpoint.trail, checkpoint.clone());
        }
    }

    fn remembered(&self, trail: Trail) -> Option<Checkpoint> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner()).get(&trail).cloned()
    }

    /// Counts a round in which another holder had the trail's publish lock; once that has gone
    /// on for [`STALL_ROUNDS`] rounds and no instance has published the moved head meanwhile,
    /// alarms. (Another instance publishing each round is fine: its checkpoints are fresh.)
    async fn lock_busy(&self, tx: &mut PgConnection, trail: Trail, busy: bool) -> Result<(), sqlx::Error> {
        let count = {
            let mut counts = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(trail).or_default();
            *count = if busy { *count + 1 } else { 0 };
            *count
        };
        if count < STALL_ROUNDS {
            return Ok(());
        }
        let (table, seq_column) = (trail.table(), trail.seq_column());
        let head: Option<i64> =
            sqlx::query_scalar(&format!("SELECT max({seq_column}) FROM {table}")).fetch_one(&mut *tx).await?;
        // Only a checkpoint this service signed, no older than what it already knows, shows the
        // trail anchored: a row someone inserted to look fresh does not.
        let last = latest(tx, self.service(), trail).await?.filter(|last| {
            self.own_keys.verify(last).is_ok() && self.remembered(trail).is_none_or(|known| known.number <= last.number)
        });
        let stale_after = time::Duration::try_from(self.interval * STALL_ROUNDS).unwrap_or_default();
        let anchored = match (&last, head) {
            (_, None) => true,
            (Some(last), Some(head)) => last.seq == head || chain::now() - last.published_at < stale_after,
            (None, Some(_)) => false,
        };
        if !anchored {
            tracing::error!(
                trail = trail.as_str(),
                rounds = count,
                alarm = "checkpoint_stalled",
                "AUDIT ALARM: something has held this trail's checkpoint lock for several rounds; \
                 nothing anchors the trail meanwhile"
            );
        }
        Ok(())
    }

    /// Whether the database's checkpoints of `trail` still agree with what this process knows it
    /// signed, and the latest is signed by this service's own key.
    async fn checkpoints_agree(
        &self,
        tx: &mut PgConnection,
        trail: Trail,
        last: Option<&Checkpoint>,
    ) -> Result<bool, sqlx::Error> {
        if let Some(last) = last {
            if self.own_keys.verify(last).is_err() {
                return Ok(false);
            }
        }
        let Some(known) = self.remembered(trail) else { return Ok(true) };
        let Some(last) = last else { return Ok(false) };
        if last.number <= known.number {
            return Ok(last.same_as(&known));
        }
        let held = sqlx::query(&format!("SELECT {COLUMNS} FROM checkpoints c WHERE c.trail = $1 AND c.number = $2"))
            .bind(trail.as_str())
            .bind(known.number)
            .fetch_optional(&mut *tx)
            .await?;
        Ok(match held {
            Some(row) => from_row(&row)?.same_as(&known),
            None => false,
        })
    }

    pub fn service(&self) -> ServiceName {
        self.key.service
    }

    /// A checkpoint of each trail whose head moved since its last one: stored in this service's
    /// database, then appended to the file. Returns the new checkpoints.
    pub async fn publish(&self) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let mut published = Vec::new();
        for trail in Trail::of(self.service()) {
            if let Some(checkpoint) = self.publish_trail(trail).await? {
                if let Some(file) = &self.file {
                    if let Err(e) = append_file(file, &checkpoint) {
                        tracing::error!(
                            trail = trail.as_str(),
                            number = checkpoint.number,
                            error = %e,
                            alarm = "checkpoint_file",
                            "could not append the checkpoint to its file"
                        );
                    }
                }
                published.push(checkpoint);
            }
        }
        Ok(published)
    }

    async fn publish_trail(&self, trail: Trail) -> Result<Option<Checkpoint>, sqlx::Error> {
        let (table, seq_column) = (trail.table(), trail.seq_column());
        let mut tx = self.pool.begin().await?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(trail.publish_lock())
            .fetch_one(&mut *tx)
            .await?;
        if let Err(e) = self.lock_busy(&mut tx, trail, !mine).await {
            tracing::warn!(trail = trail.as_str(), error = %e, "could not check whether publishing is stalled");
        }
        if !mine {
            return Ok(None); // another instance is publishing this trail right now
        }
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as(&format!("SELECT {seq_column}, row_hash FROM {table} ORDER BY {seq_column} DESC LIMIT 1"))
                .fetch_optional(&mut *tx)
                .await?;
        let Some((seq, head_hash)) = head else { return Ok(None) };
        let last = latest(&mut tx, self.service(), trail).await?;
        if !self.checkpoints_agree(&mut tx, trail, last.as_ref()).await? {
            tracing::error!(
                trail = trail.as_str(),
                alarm = "checkpoints_rewritten",
                "AUDIT ALARM: the checkpoints in this service's database are not the ones it signed \
                 (deleted, changed or forged); publishing stopped for this trail (run secondwind-operator audit verify)"
            );
            return Ok(None);
        }
        // What this instance has now seen is what it holds the database to next round (so it
        // notices checkpoints another instance published being deleted too).
        if let Some(last) = &last {
            self.remember(last);
            if last.seq == seq && last.head_hash == head_hash {
                return Ok(None); // the head has not moved
            }
            let vouched: Option<Vec<u8>> =
                sqlx::query_scalar(&format!("SELECT row_hash FROM {table} WHERE {seq_column} = $1"))
                    .bind(last.seq)
                    .fetch_optional(&mut *tx)
                    .await?;
            if vouched.as_deref() != Some(&last.head_hash[..]) {
                tracing::error!(
                    trail = trail.as_str(),
                    checkpoint = last.number,
                    seq = last.seq,
                    alarm = "trail_rewritten",
                    "AUDIT ALARM: the row a published checkpoint vouches for is gone or changed; \
                     publishing stopped for this trail (run secondwind-operator audit verify)"
                );
                return Ok(None);
            }
        }
        let number = last.map_or(1, |l| l.number + 1);
        let checkpoint = self.key.sign(trail, number, seq, &head_hash, chain::now());
        if let Err(refused) = store(&mut tx, &checkpoint).await? {
            tracing::error!(error = %refused, alarm = "checkpoint_refused", "could not record a checkpoint");
            return Ok(None);
        }
        tx.commit().await?;
        tracing::info!(trail = trail.as_str(), number, seq, "checkpoint published");
        self.remember(&checkpoint);
        Ok(Some(checkpoint))
    }

    /// Checks each of this service's trails end to end: its chain (by `verify`), and its
    /// checkpoints as held in its own database, its own checkpoint file and each receiver's
    /// database (read over the receiving route, as this service), with this service's own keys.
    /// A receiver that cannot be read is a problem of the report, not an error.
    pub async fn check_trails(
        &self,
        verify: crate::anchor::VerifyChain,
        max_breaks: usize,
    ) -> Result<Vec<crate::anchor::TrailCheck>, sqlx::Error> {
        use crate::anchor::{self, Source};
        let service = self.service();
        // Rows newer than this may be unanchored only because the next round has not come.
        let bound = Duration::from_secs(300).max(self.interval * 3);
        let ctx = CallContext::system("audit_anchor", RequestId::generate());
        // Checkpoints published from a moment before the check began are left out everywhere:
        // one published meanwhile would otherwise be in one place and not yet in the others (the
        // file and the receivers are written after the commit). Signed, so its time is its own.
        let cutoff = chain::now() - SETTLE;
        let settled = |c: &Checkpoint| c.published_at <= cutoff;
        // The file is read once; its lines that are not checkpoints are reported with the first
        // trail (they belong to no trail).
        let file = self.file.as_deref().map(|path| match read_file(path) {
            Ok(lines) => Ok(lines),
            // No file yet: every checkpoint is missing from it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        });
        let mut checks = Vec::new();
        for (index, trail) in Trail::of(service).enumerate() {
            let verification = verify(trail, self.pool.clone(), max_breaks).await?;
            let own = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM checkpoints WHERE origin = $1 AND trail = $2 ORDER BY number"
            ))
            .bind(service.as_str())
            .bind(trail.as_str())
            .fetch_all(&self.pool)
            .await?;
            let own: Vec<Checkpoint> = own.iter().map(from_row).collect::<Result<_, _>>()?;
            let mut sources = vec![Source {
                label: format!("{service} database"),
                checkpoints: own.into_iter().filter(settled).collect(),
                malformed: Vec::new(),
                undelivered: Default::default(),
            }];
            let mut unreadable = Vec::new();
            for (receiver, client) in &self.receivers {
                let label = format!("{receiver} database");
                // What was not delivered is read before what the receiver holds, so a delivery
                // in between shows as held, never as missing.
                let undelivered = anchor::undelivered(&self.pool, service, trail, *receiver).await?;
                match client.held(&ctx, trail).await {
                    Ok(checkpoints) => sources.push(Source {
                        label,
                        checkpoints: checkpoints.into_iter().filter(settled).collect(),
                        malformed: Vec::new(),
                        undelivered,
                    }),
                    Err(e) => unreadable.push(anchor::Problem::Unreadable { source: label, error: e.to_string() }),
                }
            }
            match &file {
                None => {}
                Some(Ok(lines)) => {
                    let mut source = Source {
                        label: format!("{service} checkpoint file"),
                        checkpoints: Vec::new(),
                        malformed: Vec::new(),
                        undelivered: Default::default(),
                    };
                    for (line, parsed) in lines {
                        match parsed {
                            Ok(c) if c.origin == service && c.trail == trail && settled(c) => {
                                source.checkpoints.push(c.clone())
                            }
                            Ok(_) => {}
                            Err(e) if index == 0 => source.malformed.push((*line, e.clone())),
                            Err(_) => {}
                        }
                    }
                    sources.push(source);
                }
                Some(Err(e)) => unreadable.push(anchor::Problem::Unreadable {
                    source: format!("{service} checkpoint file"),
                    error: e.clone(),
                }),
            }
            let mut check =
                anchor::check_trail(&self.pool, trail, verification, &sources, &self.own_keys, bound).await?;
            if !unreadable.is_empty() {
                check.intact = false;
                check.problems.extend(unreadable);
            }
            checks.push(check);
        }
        Ok(checks)
    }

    /// Sends every checkpoint a receiver has not acknowledged, oldest first per trail; returns
    /// how many were delivered. A refusal (409) is final and raises an alarm; any other failure
    /// is retried next round.
    pub async fn deliver(&self) -> Result<usize, sqlx::Error> {
        let mut delivered = 0;
        let ctx = CallContext::system("audit_anchor", RequestId::generate());
        for (receiver, client) in &self.receivers {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM checkpoints c WHERE c.origin = $1 AND NOT EXISTS (SELECT 1 FROM \
                 checkpoint_deliveries d WHERE d.trail = c.trail AND d.number = c.number AND d.receiver = $2) \
                 ORDER BY c.trail, c.number LIMIT 500"
            ))
            .bind(self.service().as_str())
            .bind(receiver.as_str())
            .fetch_all(&self.pool)
            .await?;
            let mut blocked = HashSet::new();
            for row in &rows {
                let checkpoint = from_row(row)?;
                if blocked.contains(&checkpoint.trail) {
                    continue;
                }
                let outcome = match client.store(&ctx, &checkpoint).await {
                    Ok(()) => "stored",
                    // Going backwards (409) or a signature the receiver does not accept (422): final,
                    // so the trail's later checkpoints are not held up behind it.
                    Err(ClientError::Status { status: status @ (409 | 422), .. })
                    | Err(ClientError::Refused { status: status @ (409 | 422), .. }) => {
                        tracing::error!(
                            receiver = receiver.as_str(),
                            trail = checkpoint.trail.as_str(),
                            number = checkpoint.number,
                            status,
                            alarm = "checkpoint_refused",
                            "AUDIT ALARM: a receiver refused a checkpoint (409: going backwards; 422: signature not accepted)"
                        );
                        "refused"
                    }
                    Err(e) => {
                        tracing::warn!(
                            receiver = receiver.as_str(),
                            trail = checkpoint.trail.as_str(),
                            number = checkpoint.number,
                            error = %e,
                            "checkpoint not delivered; retrying next round"
                        );
                        blocked.insert(checkpoint.trail);
                        continue;
                    }
                };
                sqlx::query(
                    "INSERT INTO checkpoint_deliveries (trail, number, receiver, outcome) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(checkpoint.trail.as_str())
                .bind(checkpoint.number)
                .bind(receiver.as_str())
                .bind(outcome)
                .execute(&self.pool)
                .await?;
                delivered += usize::from(outcome == "stored");
            }
        }
        Ok(delivered)
    }

    /// One round: publish, then deliver; failures are logged, never fatal.
    pub async fn round(&self) {
        if let Err(e) = self.publish().await {
            tracing::warn!(error = %e, "publishing checkpoints failed; retrying next round");
        }
        if let Err(e) = self.deliver().await {
            tracing::warn!(error = %e, "delivering checkpoints failed; retrying next round");
        }
    }

    /// Delivers what an earlier run left undelivered, then a round every interval until shutdown
    /// (the shutdown round is the fairing's, see [`Anchor::attach`]).
    pub async fn run(self: Arc<Self>, shutdown: rocket::Shutdown) {
        if let Err(e) = self.deliver().await {
            tracing::warn!(error = %e, "delivering earlier checkpoints failed; retrying next round");
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.round().await,
                _ = &mut shutdown => break,
            }
        }
    }
}

// ---------------------------------------------------------------- wiring

/// The publisher as routes ask for it: always managed, `None` when checkpoints are off (dev). (A
/// route guard `Option<&State<Arc<Publisher>>>` would be refused by Rocket's sentinels at
/// ignition when nothing is managed.)
pub struct Published(pub Option<Arc<Publisher>>);

/// What a service needs for checkpoints: the publisher (unless disabled in dev) and the keys of
/// the peers whose checkpoints it stores.
pub struct Anchor {
    pub publisher: Option<Arc<Publisher>>,
    pub keys: CheckpointKeys,
}

impl Anchor {
    pub fn load<S>(
        service: ServiceName,
        config: &Config<S>,
        pool: &PgPool,
        signer: &Arc<Signer>,
    ) -> Result<Self, StartError> {
        let invalid =
            |key: &str, message: String| StartError::Config(ConfigError::Invalid { key: key.into(), message });
        let keys = CheckpointKeys::from_config(config)?;
        let Some(settings) = &config.checkpoint else {
            if config.profile == Profile::Production {
                return Err(invalid("checkpoint", "production requires [checkpoint] (key_file, receivers)".into()));
            }
            tracing::warn!(
                service = service.as_str(),
                "no [checkpoint] section: this service's trails are not anchored"
            );
            return Ok(Self { publisher: None, keys });
        };
        if config.profile == Profile::Production && config.log.dir.is_none() {
            return Err(invalid("log.dir", "production requires it: checkpoints are appended to a file there".into()));
        }
        let key = CheckpointKey::load(service, &settings.key_file)?;
        if let Some(public) = &settings.public_key_file {
            if keys::read_public(public)? != key.public() {
                return Err(invalid("checkpoint.public_key_file", "does not match checkpoint.key_file".into()));
            }
        }
        let timeout = Duration::from_secs(config.internal.request_timeout_secs);
        let mut receivers = Vec::new();
        for receiver in &settings.receivers {
            if *receiver == service {
                return Err(invalid("checkpoint.receivers", "a service cannot anchor its trails in itself".into()));
            }
            let url = config.internal.peers.get(receiver).and_then(|p| p.url.as_deref()).ok_or_else(|| {
                invalid("checkpoint.receivers", format!("{receiver} needs internal.peers.{receiver}.url"))
            })?;
            let client = InternalClient::new(*receiver, url, signer.clone(), timeout).map_err(StartError::Other)?;
            receivers.push((*receiver, CheckpointClient::new(client)));
        }
        let file = config.log.dir.as_deref().map(|dir| file_in(dir, service));
        let interval = Duration::from_secs(settings.interval_secs.max(1));
        let mut accepted = Vec::new();
        for file in &settings.accepted_public_key_files {
            accepted.push(keys::read_public(file)?);
        }
        let publisher = Publisher::with_accepted_keys(key, &accepted, pool.clone(), receivers, file, interval);
        Ok(Self { publisher: Some(Arc::new(publisher)), keys })
    }

    /// Manages the keys (for the receiving route) and the publisher, which runs from liftoff and
    /// publishes once more at shutdown.
    pub fn attach(self, rocket: Rocket<Build>) -> Rocket<Build> {
        let rocket = rocket.manage(self.keys).manage(Published(self.publisher.clone()));
        let Some(publisher) = self.publisher else { return rocket };
        let (running, last) = (publisher.clone(), publisher.clone());
        rocket
            .manage(publisher)
            .attach(AdHoc::on_liftoff("checkpoints", move |r| {
                let shutdown = r.shutdown();
                Box::pin(async move {
                    tokio::spawn(running.clone().run(shutdown));
                })
            }))
            .attach(AdHoc::on_shutdown("final checkpoints", move |_| {
                Box::pin(async move {
                    if tokio::time::timeout(Duration::from_secs(5), last.round()).await.is_err() {
                        tracing::warn!("the shutdown checkpoint round timed out");
                    }
                })
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: ServiceName) -> CheckpointKey {
        let (der, _) = keys::generate().expect("generate");
        CheckpointKey::from_pkcs8(service, &der).expect("key")
    }

    #[test]
    fn signatures_verify_only_unchanged_and_with_the_origins_key() {
        let phi = key(ServiceName::PhiVault);
        let checkpoint = phi.sign(Trail::Disclosures, 3, 42, &[7; 32], chain::now());
        let mut keys = CheckpointKeys::default();
        assert_eq!(keys.verify(&checkpoint), Err(SignatureError::NoKey(ServiceName::PhiVault)));
        keys.insert(ServiceName::PhiVault, phi.public());
        assert_eq!(keys.verify(&checkpoint), Ok(()));
        assert!(checkpoint.check_shape().is_ok());

        let mut moved = checkpoint.clone();
        moved.seq = 41;
        assert_eq!(keys.verify(&moved), Err(SignatureError::Bad(ServiceName::PhiVault)));
        let other = key(ServiceName::PhiVault).sign(Trail::Disclosures, 3, 42, &[7; 32], checkpoint.published_at);
        assert_eq!(keys.verify(&other), Err(SignatureError::Bad(ServiceName::PhiVault)));

        // The wire form round-trips exactly (the signature covers the time to the microsecond).
        let text = serde_json::to_string(&checkpoint).expect("json");
        let back: Checkpoint = serde_json::from_str(&text).expect("parse");
        assert!(back.same_as(&checkpoint));
        assert_eq!(keys.verify(&back), Ok(()));

        let wrong_origin = key(ServiceName::Consent).sign(Trail::Disclosures, 1, 1, &[1; 32], chain::now());
        assert!(wrong_origin.check_shape().is_err(), "consent does not write disclosures");
    }

    #[test]
    fn every_trail_belongs_to_one_service_and_names_its_table() {
        let mut all: Vec<Trail> = ServiceName::ALL.into_iter().flat_map(Trail::of).collect();
        all.sort();
        assert_eq!(all, Trail::ALL.to_vec());
        for trail in Trail::ALL {
            assert_eq!(trail.as_str().parse::<Trail>(), Ok(trail));
            assert_eq!(serde_json::to_value(trail).expect("json"), trail.as_str());
        }
    }
}
