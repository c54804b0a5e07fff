//! Erasure is complete: crypto-shredding a subject destroys its data key and deletes its
//! ciphertext rows (records, and their documents), while what the accounting of disclosures
//! needs stays: the subject's row with `shredded_at`, its disclosures, the access log.

use common::client::{ClientError, NewRecord};
use common::db::Database;
use harness::consents::consent_to;
use harness::{sample_profile, TestApp};

async fn count(phi: &sqlx::PgPool, sql: &str, subject: uuid::Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(subject).fetch_one(phi).await.expect("count")
}

#[tokio::test]
async fn a_shred_deletes_the_subjects_ciphertext_and_keeps_the_accounting_of_disclosures() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let (vault, own) = app.vault_as(&beneficiary.user_id, "beneficiary");
    let identity = vault.list_records(&own, subject, None).await.expect("list").records[0].record_id;
    // A second record.
    let insurance = NewRecord {
        subject_id: subject,
        category: "insurance".into(),
        content: serde_json::json!({"member_id": "XJ-1234"}),
        expires_at: None,
    };
    let insurance = vault.create_record(&own, &insurance).await.expect("create").record_id;
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    // A document as its rows stand (its contents do not matter here), and one still uploading.
    let (document, uploading) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for sql in [
        "INSERT INTO records (id, subject_id, category, nonce, ciphertext, created_by) \
         VALUES ($1, $3, 'document', '\\x00', '\\x00', 'test')",
        "INSERT INTO document_contents (id, subject_id, record_id, created_by) VALUES ($1, $3, $1, 'test')",
        "INSERT INTO document_contents (id, subject_id, created_by) VALUES ($2, $3, 'test')",
        "INSERT INTO document_chunks (content_id, seq, nonce, ciphertext) VALUES ($1, 0, '\\x00', '\\x00'), ($2, 0, '\\x00', '\\x00')",
    ] {
        sqlx::query(sql).bind(document).bind(uploading).bind(subject).execute(&phi).await.expect("document rows");
    }
    // A bystander, whose records must stay.
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let (bystander_id, bystander) = app.new_beneficiary_token(&public).await;
    let put = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&bystander)
        .json(&sample_profile())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);

    // A partner reads the profile under the subject's consent: a disclosure on record.
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let residence = uuid::Uuid::new_v4().to_string();
    consent_to(
        &consent_db,
        subject,
        &format!("partner:{residence}"),
        &["identity"],
        "housing_placement",
        time::Duration::hours(1),
    )
    .await;
    let partner = app.vault_client();
    let pctx = app.user_call(&residence, common::Role::Partner, "housing_placement");
    assert_eq!(partner.read_record(&pctx, identity).await.expect("consented read").content, sample_profile());
    let records_sql = "SELECT count(*) FROM records WHERE subject_id = $1";
    let documents_sql = "SELECT (SELECT count(*) FROM document_contents WHERE subject_id = $1) \
        + (SELECT count(*) FROM document_chunks c JOIN document_contents d ON d.id = c.content_id WHERE d.subject_id = $1)";
    let disclosures_sql = "SELECT count(*) FROM disclosures WHERE subject_id = $1";
    assert_eq!(count(&phi, records_sql, subject).await, 3);
    assert_eq!(count(&phi, documents_sql, subject).await, 4);
    assert_eq!(count(&phi, disclosures_sql, subject).await, 1);

    let admin = app.dev_login("admin").await;
    let erase = app
        .http
        .delete(app.api(&format!("/staff/beneficiaries/{subject}/phi?reason=subject%20request")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("erase");
    assert_eq!(erase.status(), 204);

    // The ciphertext is gone, documents with it; the accounting of disclosures stays.
    assert_eq!(count(&phi, records_sql, subject).await, 0, "no record of the subject remains");
    assert_eq!(count(&phi, documents_sql, subject).await, 0);
    let documents: i64 =
        sqlx::query_scalar("SELECT count(*) FROM document_contents").fetch_one(&phi).await.expect("docs");
    assert_eq!(documents, 0, "the document went with its record, and the upload under way with the key");
    assert_eq!(count(&phi, disclosures_sql, subject).await, 1, "the disclosure stays on record");
    let (key, shredded_at): (Option<Vec<u8>>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT wrapped_data_key, shredded_at FROM subjects WHERE id = $1")
            .bind(subject)
            .fetch_one(&phi)
            .await
            .expect("subject");
    assert!(key.is_none() && shredded_at.is_some(), "the subject's row stays, without its key");

    // Nothing of the subject is served; the bystander still is.
    assert_eq!(app.get_as(&beneficiary.access_token, "/beneficiaries/me/profile").await.status(), 404);
    for record in [identity, insurance] {
        assert!(matches!(vault.read_record(&own, record).await, Err(ClientError::Status { status: 404, .. })));
    }
    assert!(matches!(partner.read_record(&pctx, identity).await, Err(ClientError::Status { status: 404, .. })));
    assert_eq!(app.get_as(&bystander, "/beneficiaries/me/profile").await.status(), 200);
    assert_eq!(count(&phi, records_sql, bystander_id).await, 1);

    // The erasure and every refused read after it are in the access log, whose chain verifies.
    let shreds: Vec<String> = sqlx::query_scalar(
        "SELECT decision FROM access_log WHERE action = 'subject.shred' AND subject_id = $1 ORDER BY seq",
    )
    .bind(subject)
    .fetch_all(&phi)
    .await
    .expect("log");
    assert_eq!(shreds, vec!["permit".to_owned()]);
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    consent_db.close().await;
    public.close().await;
    phi.close().await;
    app.stop().await;
}

/// Erasure is irreversible: past the per-service threshold (policies/phi-volume.toml) further
/// erasures are refused (503) and compliance gets a flagged entry, so a compromised public-api
/// (which can mint an admin's call) cannot shred the whole vault in a minute.
#[tokio::test]
async fn a_burst_of_erasures_is_refused_and_flagged() {
    let app = TestApp::spawn().await;
    let limit = phi_vault::volume::VolumePolicy::load(&harness::repo_root().join("policies/phi-volume.toml"))
        .expect("policy")
        .erasure_limit(common::ServiceName::PublicApi)
        .expect("an erasure limit");
    let vault = app.vault_client();
    let mut subjects = Vec::new();
    for _ in 0..=limit {
        let subject = uuid::Uuid::new_v4();
        let ctx = app.user_call(&subject.to_string(), common::Role::Beneficiary, "self_service");
        let record =
            NewRecord { subject_id: subject, category: "identity".into(), content: sample_profile(), expires_at: None };
        vault.create_record(&ctx, &record).await.expect("a record");
        subjects.push(subject);
    }
    let admin = app.dev_login("admin").await;
    let mut statuses = Vec::new();
    for subject in &subjects {
        let erase = app
            .http
            .delete(app.api(&format!("/staff/beneficiaries/{subject}/phi?reason=requested")))
            .bearer_auth(&admin.access_token)
            .send()
            .await
            .expect("erase");
        statuses.push(erase.status().as_u16());
    }
    assert_eq!(statuses[..limit], vec![204; limit][..]);
    assert_eq!(statuses[limit], 503);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let flagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE action = 'subject.shred' AND flagged AND reason LIKE 'erasure volume:%'",
    )
    .fetch_one(&phi)
    .await
    .expect("log");
    assert_eq!(flagged, 1);
    let kept: Option<Vec<u8>> = sqlx::query_scalar("SELECT wrapped_data_key FROM subjects WHERE id = $1")
        .bind(subjects[limit])
        .fetch_one(&phi)
        .await
        .expect("subject");
    assert!(kept.is_some(), "the refused erasure destroyed nothing");
    assert!(harness::logs().iter().any(|l| l["alarm"] == "erasure_volume"));
    phi.close().await;
    app.stop().await;
}
