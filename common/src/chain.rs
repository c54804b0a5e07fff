//! Hash chains for the append-only trails (public audit log, PHI access log, access reviews,
//! disclosures, consent decisions, consents and revocations). Each row stores `prev_hash`, the previous row's `row_hash`, and
//! `row_hash = SHA-256(domain ‖ prev_hash ‖ canonical content)`. Editing a row breaks its own
//! hash; removing, inserting or reordering rows breaks a link. Record contents never enter a
//! chain: only metadata does, so crypto-shredding a subject leaves every chain verifiable.
//!
//! Appends are serialised per trail with a transaction-scoped advisory lock, so concurrent
//! writers (several instances) still form one chain. A chain alone cannot show that its newest
//! rows were cut off, or that a row was edited and every later hash recomputed: signed
//! checkpoints of each trail's head, kept outside its database, do (`crate::checkpoint`).

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

/// `prev_hash` of the first row.
pub const GENESIS: [u8; 32] = [0; 32];
const DOMAIN: &[u8] = b"secondwind-chain-v1\0";

pub fn link(prev_hash: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(prev_hash);
    ctx.update(canonical);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Takes the trail's append lock for the current transaction and returns the last row hash.
pub async fn head(tx: &mut sqlx::PgConnection, lock_key: i64, table: &'static str) -> Result<Vec<u8>, sqlx::Error> {
    head_of(tx, lock_key, table, "seq").await
}

/// [`head`] for a trail ordered by another column (`access_reviews` keeps `seq` for the entry it
/// reviews and orders its own chain by `chain_seq`).
pub async fn head_of(
    tx: &mut sqlx::PgConnection,
    lock_key: i64,
    table: &'static str,
    seq_column: &'static str,
) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key).execute(&mut *tx).await?;
    let last: Option<Vec<u8>> =
        sqlx::query_scalar(&format!("SELECT row_hash FROM {table} ORDER BY {seq_column} DESC LIMIT 1"))
            .fetch_optional(&mut *tx)
            .await?;
    Ok(last.unwrap_or_else(|| GENESIS.to_vec()))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Lowercase hex, as PostgreSQL's `encode(…, 'hex')` writes it.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// The bytes of lowercase hex; anything else (upper case, a sign, an odd length, another
/// character) is refused, so each value has one spelling.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    ::hex::decode(text).ok()
}

/// Canonical content as length-prefixed fields: `<byte length>:<UTF-8 bytes>` for a value, `-` for
/// NULL, in a fixed order opened by a tag naming the trail and version. Unlike serde JSON this is
/// easy to reproduce exactly in SQL, which is how the migrations that chained existing rows
/// (disclosures, access reviews, consents, revocations) computed their hashes; those trails use it.
///
/// Values: text as is; UUIDs hyphenated lowercase; times in microseconds since the epoch; booleans
/// `true`/`false`; bytes as lowercase hex; a list is one field holding its encoded items.
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<u8>);

impl Fields {
    pub fn new(tag: &str) -> Self {
        Self::default().text(tag)
    }

    pub fn opt_text(mut self, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.nested(v.as_bytes()),
            None => {
                self.0.push(b'-');
                self
            }
        }
    }

    pub fn text(self, value: &str) -> Self {
        self.opt_text(Some(value))
    }

    pub fn opt_uuid(self, value: Option<uuid::Uuid>) -> Self {
        self.opt_text(value.map(|v| v.to_string()).as_deref())
    }

    pub fn uuid(self, value: uuid::Uuid) -> Self {
        self.opt_uuid(Some(value))
    }

    pub fn int(self, value: i64) -> Self {
        self.text(&value.to_string())
    }

    pub fn opt_time(self, value: Option<OffsetDateTime>) -> Self {
        self.opt_text(value.map(|t| micros(t).to_string()).as_deref())
    }

    pub fn time(self, value: OffsetDateTime) -> Self {
        self.opt_time(Some(value))
    }

    pub fn boolean(self, value: bool) -> Self {
        self.text(if value { "true" } else { "false" })
    }

    pub fn opt_bytes(self, value: Option<&[u8]>) -> Self {
        self.opt_text(value.map(hex).as_deref())
    }

    pub fn list<S: AsRef<str>>(self, items: &[S]) -> Self {
        let inner = items.iter().fold(Fields::default(), |f, item| f.text(item.as_ref()));
        self.nested(&inner.0)
    }

    /// Another encoding, as one field (a consent's terms inside its row).
    pub fn nested(mut self, encoded: &[u8]) -> Self {
        self.0.extend_from_slice(format!("{}:", encoded.len()).as_bytes());
        self.0.extend_from_slice(encoded);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The row's content no longer matches its hash: it was edited.
    ContentChanged,
    /// The row does not follow the one before it: a row was removed, inserted or reordered.
    LinkBroken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub seq: i64,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub rows_checked: u64,
    pub breaks: Vec<Break>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// One stored row as the verifier sees it.
pub struct StoredRow {
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub row_hash: Vec<u8>,
    pub canonical: Vec<u8>,
}

/// Walks rows in `seq` order, one at a time (trails are streamed, never loaded whole), and
/// collects every break up to a limit.
pub struct ChainVerifier {
    expected_prev: Vec<u8>,
    checked: u64,
    breaks: Vec<Break>,
    limit: usize,
}

impl ChainVerifier {
    pub fn new(limit: usize) -> Self {
        Self { expected_prev: GENESIS.to_vec(), checked: 0, breaks: Vec::new(), limit: limit.max(1) }
    }

    /// Checks one row; false once the break limit is reached.
    pub fn push(&mut self, row: StoredRow) -> bool {
        self.checked += 1;
        if row.prev_hash != self.expected_prev {
            self.breaks.push(Break { seq: row.seq, problem: Problem::LinkBroken });
        }
        if link(&row.prev_hash, &row.canonical)[..] != row.row_hash[..] {
            self.breaks.push(Break { seq: row.seq, problem: Problem::ContentChanged });
        }
        self.expected_prev = row.row_hash;
        self.breaks.len() < self.limit
    }

    pub fn finish(self) -> Verification {
        Verification { rows_checked: self.checked, breaks: self.breaks }
    }
}

/// Now, truncated to the microseconds PostgreSQL keeps, so what is hashed is what is stored.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond((now.nanosecond() / 1000) * 1000).unwrap_or(now)
}

/// A timestamp as it enters canonical content.
pub fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1000
}

/// Streams a trail (`sql` must select `seq`, `prev_hash`, `row_hash` and whatever `canonical`
/// reads, ordered by `seq`) and verifies it, up to `limit` breaks.
pub async fn verify_table(
    pool: &PgPool,
    sql: &str,
    limit: usize,
    canonical: impl Fn(&PgRow) -> Result<Vec<u8>, sqlx::Error>,
) -> Result<Verification, sqlx::Error> {
    let mut rows = sqlx::query(sql).fetch(pool);
    let mut verifier = ChainVerifier::new(limit);
    while let Some(row) = rows.try_next().await? {
        // Read by column name: the query is each trail's own (`sql`), so no row type fits them
        // all; these three columns every trail has, and `canonical` reads the rest.
        let stored = StoredRow {
            seq: row.try_get("seq")?,
            prev_hash: row.try_get("prev_hash")?,
            row_hash: row.try_get("row_hash")?,
            canonical: canonical(&row)?,
        };
        if !verifier.push(stored) {
            break;
        }
    }
    Ok(verifier.finish())
}

pub fn verify(rows: impl IntoIterator<Item = StoredRow>, limit: usize) -> Verification {
    let mut verifier = ChainVerifier::new(limit);
    for row in rows {
        if !verifier.push(row) {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(contents: &[&str]) -> Vec<StoredRow> {
        let mut prev = GENESIS.to_vec();
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let row_hash = link(&prev, c.as_bytes()).to_vec();
                let row = StoredRow {
                    seq: i as i64 + 1,
                    prev_hash: prev.clone(),
                    row_hash: row_hash.clone(),
                    canonical: c.as_bytes().to_vec(),
                };
                prev = row_hash;
                row
            })
            .collect()
    }

    #[test]
    fn fields_are_length_prefixed_and_hex_round_trips() {
        let f = Fields::new("t-v1").text("héllo").opt_text(None).int(-3).list(&["a", "bc"]).boolean(true);
        assert_eq!(String::from_utf8(f.into_bytes()).expect("utf8"), "4:t-v16:héllo-2:-37:1:a2:bc4:true");
        assert_eq!(from_hex(&hex(&[0, 171, 255])), Some(vec![0, 171, 255]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("+a"), None, "a sign is not a digit");
        assert_eq!(from_hex("AB"), None, "upper case is another spelling");
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(hex(DOMAIN), "7365636f6e6477696e642d636861696e2d763100", "the migrations hash with this domain");
    }

    #[test]
    fn detects_edit_removal_and_reorder() {
        assert!(verify(chain(&["a", "b", "c"]), 10).intact());

        let mut edited = chain(&["a", "b", "c"]);
        edited[1].canonical = b"B".to_vec();
        assert_eq!(verify(edited, 10).breaks, vec![Break { seq: 2, problem: Problem::ContentChanged }]);

        let mut removed = chain(&["a", "b", "c"]);
        removed.remove(1);
        assert_eq!(verify(removed, 10).breaks, vec![Break { seq: 3, problem: Problem::LinkBroken }]);

        let mut reordered = chain(&["a", "b", "c"]);
        reordered.swap(1, 2);
        assert!(verify(reordered, 10).breaks.iter().any(|b| b.problem == Problem::LinkBroken));
    }

    #[test]
    fn hashes_are_sha256_with_the_domain_in_front() {
        // Fixed vectors: SHA-256 of "abc" (FIPS 180-2), and SHA-256("secondwind-chain-v1\0" ‖ 32 zero
        // bytes ‖ "x") computed outside Rust; the migrations' SQL reproduces the second.
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&link(&GENESIS, b"x")), "5758ad03530c59f9feb766d266643b946f4231296309fd8ab15f3af19a2b8b1f");
    }

    #[test]
    fn uuids_times_and_bytes_encode_as_documented() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time") + time::Duration::microseconds(1);
        let f = Fields::new("t")
            .uuid(uuid::Uuid::nil())
            .opt_uuid(None)
            .time(t)
            .opt_time(None)
            .opt_bytes(Some(&[0xab]))
            .opt_bytes(None);
        assert_eq!(
            String::from_utf8(f.into_bytes()).expect("utf8"),
            "1:t36:00000000-0000-0000-0000-000000000000-16:1700000000000001-2:ab-"
        );
        assert_eq!(micros(OffsetDateTime::UNIX_EPOCH - time::Duration::microseconds(5)), -5);
    }

    #[test]
    fn now_keeps_whole_microseconds_of_the_present() {
        let before = OffsetDateTime::now_utc() - time::Duration::microseconds(1);
        let t = now();
        let after = OffsetDateTime::now_utc();
        assert_eq!(t.nanosecond() % 1000, 0, "{t} has nanoseconds PostgreSQL would drop");
        assert!(before <= t && t <= after, "{t} is not between {before} and {after}");
    }

    #[test]
    fn counts_every_row_and_stops_at_the_break_limit() {
        let mut broken = chain(&["a", "b", "c", "d"]);
        broken[0].canonical = b"A".to_vec();
        broken[2].canonical = b"C".to_vec();
        let all = verify(chain(&["a", "b", "c", "d"]), 10);
        assert_eq!(all.rows_checked, 4);
        assert!(all.intact());

        let both = verify(broken, 10);
        assert!(!both.intact());
        assert_eq!(both.rows_checked, 4);
        assert_eq!(
            both.breaks,
            vec![
                Break { seq: 1, problem: Problem::ContentChanged },
                Break { seq: 3, problem: Problem::ContentChanged }
            ]
        );

        let mut broken = chain(&["a", "b", "c", "d"]);
        broken[0].canonical = b"A".to_vec();
        broken[2].canonical = b"C".to_vec();
        let first = verify(broken, 1);
        assert_eq!(first.breaks, vec![Break { seq: 1, problem: Problem::ContentChanged }]);
        assert_eq!(first.rows_checked, 1, "the walk stops at the row that reached the limit");
    }
}
