//! Applications' SQL, checked against the schema at build time (`.sqlx/`).

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::applications::{ApplicationStatus, ApplicationView, StatusEvent};
use common::db::Text;

use super::rules::{Assigned, QueueFilter};

/// An application as stored (its details are the phi-vault record it names).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: Uuid,
    pub seq: i64,
    pub beneficiary_id: Uuid,
    pub kind: String,
    pub amount_cents: i64,
    pub status: ApplicationStatus,
    pub caseworker_id: Option<Uuid>,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub details_record_id: Option<Uuid>,
}

impl ApplicationRow {
    pub fn view(&self) -> ApplicationView {
        ApplicationView {
            id: self.id,
            beneficiary_id: self.beneficiary_id,
            kind: self.kind.clone(),
            amount_cents: self.amount_cents,
            status: self.status,
            caseworker_id: self.caseworker_id,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// One event of an application's history.
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    from_status: Option<Text<ApplicationStatus>>,
    to_status: Text<ApplicationStatus>,
    actor_role: String,
    amount_cents: i64,
    note: Option<String>,
    created_at: OffsetDateTime,
}

impl From<EventRow> for StatusEvent {
    fn from(row: EventRow) -> Self {
        StatusEvent {
            from_status: row.from_status.map(|s| s.0),
            to_status: row.to_status.0,
            by_role: row.actor_role,
            amount_cents: row.amount_cents,
            note: row.note,
            at: row.created_at,
        }
    }
}

/// The application's status history, oldest first.
pub async fn history(pool: &PgPool, application: Uuid) -> Result<Vec<StatusEvent>, sqlx::Error> {
    let rows = sqlx::query_as!(
        EventRow,
        r#"SELECT from_status AS "from_status: _", to_status AS "to_status: _", actor_role, amount_cents, note,
           created_at FROM application_events WHERE application_id = $1 ORDER BY seq"#,
        application,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StatusEvent::from).collect())
}

/// Who moved an application, from what to what, in the transaction of the move.
pub struct Event<'a> {
    pub application: Uuid,
    pub from: Option<ApplicationStatus>,
    pub to: ApplicationStatus,
    pub actor: Uuid,
    pub actor_role: &'a str,
    pub amount_cents: i64,
    pub note: Option<&'a str>,
}

pub async fn record_event(tx: &mut PgConnection, event: &Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO application_events \
         (application_id, from_status, to_status, actor_id, actor_role, amount_cents, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.application,
        event.from.map(ApplicationStatus::as_str),
        event.to.as_str(),
        event.actor,
        event.actor_role,
        event.amount_cents,
        event.note,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An application by its id.
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// An application by its id, locked until the transaction ends.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// One of the beneficiary's applications; `None` for anyone else's.
pub async fn own(pool: &PgPool, beneficiary: Uuid, id: Uuid) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications WHERE id = $1 AND beneficiary_id = $2"#,
        id,
        beneficiary,
    )
    .fetch_optional(pool)
    .await
}

/// The application an idempotency key of the beneficiary made, with the hash of the request
/// that made it.
pub async fn keyed(
    pool: &PgPool,
    beneficiary: Uuid,
    key: &str,
) -> Result<Option<(Uuid, Option<Vec<u8>>)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, request_sha256 FROM applications WHERE beneficiary_id = $1 AND idempotency_key = $2",
        beneficiary,
        key,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.id, r.request_sha256)))
}

/// A new application, `reviewing`.
pub struct NewRow<'a> {
    pub beneficiary: Uuid,
    pub kind: &'a str,
    pub amount_cents: i64,
    pub details_record: Uuid,
    pub idempotency_key: Option<&'a str>,
    pub request_sha256: Option<&'a [u8]>,
}

/// Inserts the application; `None` when the beneficiary's idempotency key made one meanwhile.
pub async fn insert(tx: &mut PgConnection, new: &NewRow<'_>) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"INSERT INTO applications (id, beneficiary_id, kind, amount_cents, details_record_id, status,
           submitted_at, idempotency_key, request_sha256) VALUES ($1, $2, $3, $4, $5, 'reviewing', now(), $6, $7)
           ON CONFLICT (beneficiary_id, idempotency_key) DO NOTHING
           RETURNING id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id"#,
        Uuid::new_v4(),
        new.beneficiary,
        new.kind,
        new.amount_cents,
        new.details_record,
        new.idempotency_key,
        new.request_sha256,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// The beneficiary's change, on the version they read, while the application is editable;
/// `None` when it changed meanwhile.
pub async fn update(
    tx: &mut PgConnection,
    current: &ApplicationRow,
    amount_cents: Option<i64>,
    details_record: Option<Uuid>,
    after: ApplicationStatus,
) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"UPDATE applications SET amount_cents = COALESCE($3, amount_cents),
           details_record_id = COALESCE($4, details_record_id), status = $5, version = version + 1,
           updated_at = now() WHERE id = $1 AND version = $2 AND status IN ('reviewing', 'action_needed')
           RETURNING id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id"#,
        current.id,
        current.version,
        amount_cents,
        details_record,
        after.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await
}

/// A page of the beneficiary's applications, oldest first (`limit` rows read: one more than
/// the page, to know whether another follows).
pub async fn list_mine(
    pool: &PgPool,
    beneficiary: Uuid,
    status: Option<ApplicationStatus>,
    after: i64,
    limit: i64,
) -> Result<Vec<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications
           WHERE beneficiary_id = $1 AND seq > $2 AND ($3::text IS NULL OR status = $3) ORDER BY seq LIMIT $4"#,
        beneficiary,
        after,
        status.map(ApplicationStatus::as_str),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// A page of the staff queue, oldest first, with one row more than the page.
pub async fn queue(pool: &PgPool, filter: &QueueFilter) -> Result<Vec<ApplicationRow>, sqlx::Error> {
    let (unassigned, caseworker) = match filter.assigned {
        Assigned::Anyone => (false, None),
        Assigned::Nobody => (true, None),
        Assigned::To(id) => (false, Some(id)),
    };
    sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications
           WHERE seq > $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
           AND (NOT $4 OR caseworker_id IS NULL) AND ($5::uuid IS NULL OR caseworker_id = $5)
           AND ($6::date IS NULL OR created_at >= $6::date) AND ($7::date IS NULL OR created_at < $7::date + 1)
           ORDER BY seq LIMIT $8"#,
        filter.page.after_or_start(),
        filter.status.map(ApplicationStatus::as_str),
        filter.kind.as_deref(),
        unassigned,
        caseworker,
        filter.from,
        filter.to,
        filter.page.limit + 1,
    )
    .fetch_all(pool)
    .await
}

/// Whether the account is a live caseworker.
pub async fn is_caseworker(pool: &PgPool, user: Uuid) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'caseworker' = ANY(roles))
           AS "found!""#,
        user,
    )
    .fetch_one(pool)
    .await?;
    Ok(found)
}

/// Assigns the reviewer on the version read; `None` when the application changed meanwhile.
pub async fn assign(
    tx: &mut PgConnection,
    current: &ApplicationRow,
    caseworker: Uuid,
) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"UPDATE applications SET caseworker_id = $3, version = version + 1, updated_at = now()
           WHERE id = $1 AND version = $2
           RETURNING id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id"#,
        current.id,
        current.version,
        caseworker,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Who last approved the application, if anyone did.
pub async fn last_approver(tx: &mut PgConnection, application: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT actor_id FROM application_events WHERE application_id = $1 AND to_status = 'approved' \
         ORDER BY seq DESC LIMIT 1",
        application,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Moves the (locked) application to `status`, stamping the decision when it is one.
pub async fn set_status(
    tx: &mut PgConnection,
    application: Uuid,
    status: ApplicationStatus,
) -> Result<ApplicationRow, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"UPDATE applications SET status = $2, version = version + 1, updated_at = now(),
           decided_at = CASE WHEN $2 IN ('approved', 'rejected') THEN now() ELSE decided_at END
           WHERE id = $1
           RETURNING id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id"#,
        application,
        status.as_str(),
    )
    .fetch_one(&mut *tx)
    .await
}
