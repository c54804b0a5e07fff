//! Every statement the record routes run, one function each, and the rows they read.

use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::client::RecordSummary;

use super::rules::{Category, Times};
use crate::keys::crypto::WrappedKey;

/// A subject's wrapped data key as stored; all null once it was destroyed.
#[derive(FromRow)]
pub(super) struct SubjectKeyRow {
    pub wrapped_data_key: Option<Vec<u8>>,
    pub kek_id: Option<String>,
    pub kek_version: Option<i32>,
}

pub(super) async fn subject_key(pool: &PgPool, subject: Uuid) -> Result<Option<SubjectKeyRow>, sqlx::Error> {
    sqlx::query_as!(SubjectKeyRow, "SELECT wrapped_data_key, kek_id, kek_version FROM subjects WHERE id = $1", subject)
        .fetch_optional(pool)
        .await
}

/// Stores a new subject with its wrapped key; false if the subject was stored meanwhile.
pub(super) async fn insert_subject(
    tx: &mut PgConnection,
    subject: Uuid,
    wrapped: &WrappedKey,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query!(
        "INSERT INTO subjects (id, wrapped_data_key, kek_id, kek_version) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
        subject,
        &wrapped.ciphertext,
        &wrapped.kek_id,
        wrapped.kek_version
    )
    .execute(&mut *tx)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// Whether the subject's key still stands (`None`: no such subject), its row share-locked.
pub(super) async fn subject_erased(tx: &mut PgConnection, subject: Uuid) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT wrapped_data_key IS NULL AS "erased!" FROM subjects WHERE id = $1 FOR SHARE"#,
        subject
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Writes a new record's row; false if its id is taken.
pub(crate) async fn insert_record(
    tx: &mut PgConnection,
    (id, subject, category): (Uuid, Uuid, Category),
    (nonce, ciphertext): (Vec<u8>, Vec<u8>),
    created_by: &str,
    expires_at: Option<OffsetDateTime>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO records (id, subject_id, category, nonce, ciphertext, created_by, expires_at) \
         VALUES ($1, $2, $3::text::record_category, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        id,
        subject,
        category.as_str(),
        nonce,
        ciphertext,
        created_by,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// What phase 1 looks up of a record: its subject, its category, and whether the subject's
/// key was destroyed.
#[derive(FromRow)]
pub(super) struct RecordMeta {
    pub subject_id: Uuid,
    pub category: Category,
    pub shredded: bool,
}

/// A live (unexpired) record's metadata.
pub(super) async fn record_meta(conn: &mut PgConnection, id: Uuid) -> Result<Option<RecordMeta>, sqlx::Error> {
    sqlx::query_as!(
        RecordMeta,
        r#"SELECT r.subject_id, r.category::text AS "category!: _", s.wrapped_data_key IS NULL AS "shredded!"
         FROM records r JOIN subjects s ON s.id = r.subject_id
         WHERE r.id = $1 AND (r.expires_at IS NULL OR r.expires_at > now())"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await
}

/// A record's sealed content and times, as phase 2 reads them.
#[derive(FromRow)]
pub(super) struct SealedRecord {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub shredded: bool,
}

/// The subject's live record `id`, and whether the subject's key was destroyed.
pub(super) async fn sealed_record(
    tx: &mut PgConnection,
    id: Uuid,
    subject: Uuid,
) -> Result<Option<SealedRecord>, sqlx::Error> {
    sqlx::query_as!(
        SealedRecord,
        r#"SELECT r.nonce, r.ciphertext, r.created_at, r.updated_at, s.wrapped_data_key IS NULL AS "shredded!"
         FROM records r JOIN subjects s ON s.id = r.subject_id
         WHERE r.id = $1 AND r.subject_id = $2 AND (r.expires_at IS NULL OR r.expires_at > now())"#,
        id,
        subject
    )
    .fetch_optional(&mut *tx)
    .await
}

/// A record's times.
#[derive(FromRow)]
pub(super) struct RecordTimes {
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl RecordTimes {
    pub fn times(&self) -> Times {
        (self.created_at, self.updated_at)
    }
}

/// Replaces a live record's content, unless the record expired or its subject was erased;
/// `None` then.
pub(super) async fn replace_content(
    tx: &mut PgConnection,
    (id, subject): (Uuid, Uuid),
    (nonce, ciphertext): (&[u8], &[u8]),
) -> Result<Option<RecordTimes>, sqlx::Error> {
    sqlx::query_as!(
        RecordTimes,
        "UPDATE records SET nonce = $3, ciphertext = $4, updated_at = now() \
         WHERE id = $1 AND subject_id = $2 AND (expires_at IS NULL OR expires_at > now()) \
         AND EXISTS (SELECT 1 FROM subjects WHERE id = $2 AND wrapped_data_key IS NOT NULL) \
         RETURNING created_at, updated_at",
        id,
        subject,
        nonce,
        ciphertext
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Deletes a record; false if there was none.
pub(super) async fn delete_record(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!("DELETE FROM records WHERE id = $1", id).execute(&mut *tx).await?;
    Ok(deleted.rows_affected() == 1)
}

/// A record as a list shows it: metadata only.
#[derive(FromRow)]
pub(super) struct ListedRecord {
    pub id: Uuid,
    pub category: Category,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

impl From<ListedRecord> for RecordSummary {
    fn from(row: ListedRecord) -> Self {
        Self {
            record_id: row.id,
            category: row.category.as_str().to_owned(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
        }
    }
}

/// A subject's live records, of one category when asked, oldest first.
pub(super) async fn list(
    tx: &mut PgConnection,
    subject: Uuid,
    category: Option<&str>,
) -> Result<Vec<ListedRecord>, sqlx::Error> {
    sqlx::query_as!(
        ListedRecord,
        r#"SELECT id, category::text AS "category!: _", created_at, updated_at, expires_at FROM records
         WHERE subject_id = $1 AND ($2::text IS NULL OR category::text = $2)
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at, id"#,
        subject,
        category
    )
    .fetch_all(&mut *tx)
    .await
}
