//! Consents for tests, recorded and revoked straight into the consent database the way the
//! consent service does (`consent::consents::record`: the form's hash checked, the row chained),
//! for tests about decisions rather than signing (signing goes through the API in `consents.rs`).

const FORM: &str = "I consent to SecondWind disclosing the records named below to the recipient named below.";

/// Records a signed consent naming `recipient` (`role:id`) for `purpose`, ending `expires_in`
/// from now; returns its id.
pub async fn consent_to(
    consent_db: &sqlx::PgPool,
    subject: uuid::Uuid,
    recipient: &str,
    categories: &[&str],
    purpose: &str,
    expires_in: time::Duration,
) -> uuid::Uuid {
    let categories: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
    let expires = time::OffsetDateTime::now_utc() + expires_in;
    consent_with(consent_db, subject, recipient, "named", &categories, purpose, Some(expires), None).await
}

/// Records a consent with any recipient kind (`named` or `class`), expiry date and event.
#[allow(clippy::too_many_arguments)]
pub async fn consent_with(
    consent_db: &sqlx::PgPool,
    subject: uuid::Uuid,
    recipient: &str,
    kind: &str,
    categories: &[String],
    purpose: &str,
    expires_at: Option<time::OffsetDateTime>,
    expiry_event: Option<&str>,
) -> uuid::Uuid {
    let mut tx = consent_db.begin().await.expect("begin");
    let published: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consent_forms WHERE version = '2026-11')")
        .fetch_one(&mut *tx)
        .await
        .expect("form");
    if !published {
        consent::forms::publish_form(&mut tx, "2026-11", FORM).await.expect("form");
    }
    let signed = consent::consents::NewConsent {
        subject_id: subject,
        discloser: "SecondWind",
        recipient,
        categories,
        purpose,
        expires_at,
        expiry_event,
        form_version: "2026-11",
        signed_name: "Jordan Q. Example",
        signed_at: common::chain::now(),
        elements: Some(consent::consents::Elements {
            recipient_kind: kind,
            recipient_name: "A recipient",
            recipient_directory_id: None,
            recipient_address: None,
            signature_method: "typed_name",
            signed_from: "127.0.0.1",
        }),
    };
    let shown = common::chain::sha256(FORM.as_bytes());
    let (id, _) = consent::consents::record(&mut tx, &signed, &shown).await.expect("consent");
    tx.commit().await.expect("commit");
    id
}

/// Revokes a consent the way the consent service does.
pub async fn revoke(consent_db: &sqlx::PgPool, consent: uuid::Uuid, by: &str, reason: Option<&str>) {
    let mut tx = consent_db.begin().await.expect("begin");
    consent::consents::revoke(&mut tx, consent, by, reason, None).await.expect("revoke");
    tx.commit().await.expect("commit");
}

/// A coach conversation for `subject`, as the coach stores it.
pub fn coach_conversation(subject: uuid::Uuid) -> common::client::NewRecord {
    common::client::NewRecord {
        subject_id: subject,
        category: "coach_conversation".into(),
        content: serde_json::json!({"messages": [{"from": "coach", "text": "How did this week go?"}]}),
        expires_at: None,
    }
}

/// The subject's consent to the program keeping their coach conversations, for a year.
pub async fn keep_coach_conversations(consent_db: &sqlx::PgPool, subject: uuid::Uuid) -> uuid::Uuid {
    consent_to(
        consent_db,
        subject,
        phi_vault::retention::PROGRAM,
        &["coach_conversation"],
        "coach_retention",
        time::Duration::days(365),
    )
    .await
}
