//! The forms' SQL: recording forms (from files at start, or by text alone), the forms offered
//! for signing, and what signing and recording a consent read of a form.

use sqlx::{FromRow, PgConnection, PgPool};

use common::chain;

use super::rules::{self, Form, PublishError, RecipientKind};

/// `sqlx::query_as!` into [`FormRow`]: every column it holds, then the SQL `$tail`.
macro_rules! form_query {
    ($tail:literal $(, $($args:tt)*)?) => {
        sqlx::query_as!(
            FormRow,
            r#"SELECT version, title AS "title!", recipient_kind AS "recipient_kind!: _", "#
                + r#"to_char(published_on, 'YYYY-MM-DD') AS "published!", body_sha256, body"#
                + $tail
            $(, $($args)*)?
        )
    };
}

/// A form offered for signing: recorded from its files, so with its metadata.
#[derive(Debug, FromRow)]
pub(crate) struct FormRow {
    pub version: String,
    pub title: String,
    pub recipient_kind: RecipientKind,
    /// `YYYY-MM-DD`.
    pub published: String,
    pub body_sha256: Vec<u8>,
    pub body: String,
}

/// The forms offered for signing (those loaded from the forms directory), oldest first.
pub(crate) async fn offered(pool: &PgPool) -> Result<Vec<FormRow>, sqlx::Error> {
    form_query!(" FROM consent_forms WHERE recipient_kind IS NOT NULL ORDER BY published_on, version")
        .fetch_all(pool)
        .await
}

/// A form offered for signing, by version.
pub(crate) async fn offered_one(pool: &PgPool, version: &str) -> Result<Option<FormRow>, sqlx::Error> {
    form_query!(" FROM consent_forms WHERE version = $1 AND recipient_kind IS NOT NULL", version)
        .fetch_optional(pool)
        .await
}

/// The kind of recipient the form recorded under `version` names: `None` if there is no such
/// form, `Some(None)` for a form recorded without metadata.
pub(crate) async fn recipient_kind(
    conn: &mut PgConnection,
    version: &str,
) -> Result<Option<Option<RecipientKind>>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT recipient_kind AS "recipient_kind: _" FROM consent_forms WHERE version = $1"#,
        version
    )
    .fetch_optional(conn)
    .await
}

/// A form's text and its recorded hash.
#[derive(Debug, FromRow)]
pub(crate) struct FormBodyRow {
    pub body: String,
    pub body_sha256: Vec<u8>,
}

pub(crate) async fn body(conn: &mut PgConnection, version: &str) -> Result<Option<FormBodyRow>, sqlx::Error> {
    sqlx::query_as!(FormBodyRow, "SELECT body, body_sha256 FROM consent_forms WHERE version = $1", version)
        .fetch_optional(conn)
        .await
}

/// Publishes a consent form's text under a version; returns its SHA-256 (what a signing client
/// shows and sends back).
pub async fn publish_form(tx: &mut PgConnection, version: &str, body: &str) -> Result<[u8; 32], sqlx::Error> {
    let hash = chain::sha256(body.as_bytes());
    sqlx::query!(
        "INSERT INTO consent_forms (version, body, body_sha256) VALUES ($1, $2, $3)",
        version,
        body,
        &hash[..]
    )
    .execute(&mut *tx)
    .await?;
    Ok(hash)
}

/// A form as recorded: the metadata is `None` on a form recorded by [`publish_form`].
#[derive(Debug, FromRow)]
pub(crate) struct RecordedRow {
    pub body_sha256: Vec<u8>,
    pub title: Option<String>,
    pub recipient_kind: Option<RecipientKind>,
    pub published: Option<String>,
}

/// Records every form not yet recorded, and checks that each recorded one still has its text
/// (its hash and its metadata), all in one transaction. A version recorded without metadata
/// (by [`publish_form`], before forms were files) cannot be described by a file: its row is
/// immutable, so such a file is refused; give the wording a new version.
pub async fn publish(pool: &PgPool, forms: &[Form]) -> Result<(), PublishError> {
    let mut tx = pool.begin().await?;
    for form in forms {
        sqlx::query!(
            "INSERT INTO consent_forms (version, body, body_sha256, title, recipient_kind, published_on) \
             VALUES ($1, $2, $3, $4, $5, $6::text::date) ON CONFLICT (version) DO NOTHING",
            form.version,
            form.body,
            &form.sha256[..],
            form.title,
            form.recipient.as_str(),
            form.published
        )
        .execute(&mut *tx)
        .await?;
        let recorded = sqlx::query_as!(
            RecordedRow,
            r#"SELECT body_sha256, title, recipient_kind AS "recipient_kind: _", "#
                + "to_char(published_on, 'YYYY-MM-DD') AS \"published?\" FROM consent_forms WHERE version = $1",
            form.version
        )
        .fetch_one(&mut *tx)
        .await?;
        if !rules::same_as_recorded(&recorded, form) {
            return Err(PublishError::Changed(form.version.clone()));
        }
    }
    tx.commit().await?;
    Ok(())
}
