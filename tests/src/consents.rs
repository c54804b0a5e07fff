//! Consents for tests, recorded and revoked the way the consent service does (the routes that do
//! it arrive with the consent issue).

/// Records a signed consent the way the consent service does (`consent::consents::record`: the
/// form's hash checked, the row chained; the routes arrive with the consent issue); returns its id.
pub async fn consent_to(
    consent_db: &sqlx::PgPool,
    subject: uuid::Uuid,
    recipient: &str,
    categories: &[&str],
    purpose: &str,
    expires_in: time::Duration,
) -> uuid::Uuid {
    const FORM: &str = "I consent to SecondWind disclosing the records named below to the recipient named below.";
    let mut tx = consent_db.begin().await.expect("begin");
    let published: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consent_forms WHERE version = '2026-11')")
        .fetch_one(&mut *tx)
        .await
        .expect("form");
    if !published {
        consent::consents::publish_form(&mut tx, "2026-11", FORM).await.expect("form");
    }
    let categories: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
    let now = time::OffsetDateTime::now_utc();
    let signed = consent::consents::NewConsent {
        subject_id: subject,
        discloser: "SecondWind",
        recipient,
        categories: &categories,
        purpose,
        expires_at: Some(now + expires_in),
        expiry_event: None,
        form_version: "2026-11",
        signed_name: "Jordan Q. Example",
        signed_at: now,
        elements: Some(consent::consents::Elements {
            recipient_kind: "named",
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
    consent::revocations::revoke(&mut tx, consent, by, reason, None).await.expect("revoke");
    tx.commit().await.expect("commit");
}
