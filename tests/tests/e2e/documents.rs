//! Documents on an application, through the public API against a real clamd
//! (scripts/test starts it with a local EICAR signature) and real PostgreSQL: a document is kept
//! only whole, of an accepted type by its bytes, scanned clean and encrypted; every refusal
//! leaves nothing behind in either database; the caseworker on the care team reads what the
//! beneficiary uploaded; nothing changes once the application is decided. Each of these is a test
//! of its own, on a fresh application the helpers take to where it starts.

use reqwest::Method;
use serde_json::json;

use common::db::Database;
use harness::check::{count, message};
use harness::client::Client;
use harness::TestApp;

/// The EICAR anti-virus test file: harmless, and detected by every scanner as a test virus.
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const BOUNDARY: &str = "sw-test-9f2c7d";
/// The limits the test sets: public-api's is a little above phi-vault's, so each is reached.
const VAULT_LIMIT: u64 = 1024 * 1024;
const PUBLIC_LIMIT: u64 = VAULT_LIMIT + 16;

/// A whole multipart form with one file part.
fn form(part: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A PDF-looking file of `size` bytes whose content varies (so it compresses to nothing useful
/// and a piece moved elsewhere would show).
fn pdf(size: usize, marker: &str) -> Vec<u8> {
    let mut bytes = format!("%PDF-1.7\n% {marker}\n").into_bytes();
    let mut i = 0u32;
    while bytes.len() < size {
        bytes.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
        i += 1;
    }
    bytes.truncate(size);
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Nothing half-stored: every public row is `stored` and has its record, and every record of
/// a document has its public row and its content.
async fn consistent(public: &sqlx::PgPool, phi: &sqlx::PgPool) -> usize {
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, state FROM application_documents").fetch_all(public).await.expect("rows");
    let records: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM records WHERE category = 'document' ORDER BY id")
        .fetch_all(phi)
        .await
        .expect("records");
    assert!(rows.iter().all(|(_, state)| state == "stored"), "{rows:?}");
    let mut ids: Vec<uuid::Uuid> = rows.iter().map(|(id, _)| *id).collect();
    ids.sort();
    assert_eq!(ids, records, "public rows and vault records match one to one");
    // An upload public-api cut off ends in phi-vault a moment after public-api answered: its
    // staged pieces (never readable: no record) are deleted as its handler ends. Generous
    // bounds: the whole suite runs at once on two cores.
    let staged = "SELECT count(*) FROM document_contents WHERE record_id IS NULL";
    for _ in 0..600 {
        if count(phi, staged).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(phi, staged).await, 0, "no staged pieces left");
    assert_eq!(count(phi, "SELECT count(*) FROM document_contents").await, records.len() as i64);
    records.len()
}

async fn spawn() -> TestApp {
    TestApp::spawn_configured(
        |public| public.service.documents.max_bytes = PUBLIC_LIMIT,
        |phi| phi.service.max_document_bytes = VAULT_LIMIT,
    )
    .await
}

/// The public and phi databases.
async fn pools(app: &TestApp) -> (sqlx::PgPool, sqlx::PgPool) {
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    (public, phi)
}

fn rent_application() -> serde_json::Value {
    json!({ "kind": "rent", "amount_cents": 90_000,
        "details": { "description": "Three weeks behind on rent", "needed_by": "2099-02-01" } })
}

/// The beneficiary's application for rent, submitted; its id.
async fn submitted(beneficiary: &Client<'_>) -> String {
    let (status, submitted) = beneficiary.send(Method::POST, "/applications", Some(&rent_application())).await;
    assert_eq!(status, 201, "{submitted}");
    submitted["id"].as_str().expect("id").to_owned()
}

/// A clean PDF of several pieces: the lease.
fn lease() -> Vec<u8> {
    pdf(600_000, "Lease of Pat Doe, Maple Court")
}

/// Uploads `bytes` as `filename` to `docs`, expecting it stored; its id.
async fn uploaded(beneficiary: &Client<'_>, docs: &str, filename: &str, bytes: &[u8]) -> String {
    let (content_type, body) = form("file", filename, bytes);
    let (status, stored) = beneficiary.upload(docs, &content_type, body).await;
    assert_eq!(status, 201, "uploading {filename}: {stored}");
    stored["id"].as_str().expect("id").to_owned()
}

/// The lease, uploaded to `docs` from a path on the beneficiary's computer; its id.
async fn uploaded_lease(beneficiary: &Client<'_>, docs: &str) -> String {
    uploaded(beneficiary, docs, "C:\\Users\\pat\\lease.pdf", &lease()).await
}

#[tokio::test]
async fn a_clean_pdf_is_stored_in_encrypted_pieces_under_a_label() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let (public, phi) = pools(&app).await;
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);

    let lease = lease();
    let (content_type, body) = form("file", "C:\\Users\\pat\\lease.pdf", &lease);
    let (status, stored) = beneficiary.upload(&docs, &content_type, body).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["name"], "lease.pdf", "a label, never a path");
    assert_eq!(stored["content_type"], "application/pdf");
    assert_eq!(stored["size_bytes"], 600_000);
    assert_eq!(stored["sha256"], sha256_hex(&lease));
    assert_eq!(count(&phi, "SELECT count(*) FROM document_chunks").await, 2, "600 kB in 512 KiB pieces");
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT ciphertext FROM document_chunks").fetch_all(&phi).await.expect("pieces");
    assert!(sealed.iter().all(|c| !c.windows(9).any(|w| w == b"Maple Cou")), "pieces are encrypted");
    let meta: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM records WHERE category = 'document'")
        .fetch_one(&phi)
        .await
        .expect("metadata");
    assert!(!meta.windows(5).any(|w| w == b"lease"), "the name is encrypted too");
    let row: String = sqlx::query_scalar("SELECT row_to_json(d)::text FROM application_documents d")
        .fetch_one(&public)
        .await
        .expect("row");
    assert!(!row.contains("lease"), "the public row holds no name: {row}");
}

#[tokio::test]
async fn a_document_is_read_back_whole_as_an_attachment_of_its_sniffed_type() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);
    let doc = uploaded_lease(&beneficiary, &docs).await;
    let lease = lease();

    let (status, headers, bytes) = beneficiary.download(&format!("{docs}/{doc}")).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.expect("whole body"), lease);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-sha256"], sha256_hex(&lease).as_str());
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment;") && disposition.contains("lease.pdf"), "{disposition}");
    let (status, listed) = beneficiary.get(&docs).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["id"], doc.as_str());
    assert_eq!(listed["items"][0]["name"], "lease.pdf");
    assert_eq!(listed["limit"], 20);
}

#[tokio::test]
async fn an_infected_mistyped_empty_oversized_or_cut_upload_is_refused_leaving_nothing_behind() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let (public, phi) = pools(&app).await;
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);
    uploaded_lease(&beneficiary, &docs).await;

    // Each with its status and a plain message.
    let refuse = |part: &'static str, name: &'static str, bytes: Vec<u8>| {
        let beneficiary = &beneficiary;
        let docs = docs.clone();
        async move {
            let (content_type, body) = form(part, name, &bytes);
            beneficiary.upload(&docs, &content_type, body).await
        }
    };
    let mut infected = pdf(300_000, "pay stub");
    infected.extend_from_slice(EICAR);
    let (status, body) = refuse("file", "paystub.pdf", infected).await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("virus scanner found") && message(&body).contains("EICAR"), "{body}");
    let malware: i64 = count(
        &phi,
        "SELECT count(*) FROM access_log WHERE action = 'document.create' AND decision = 'deny' \
         AND reason LIKE 'malware found: %EICAR%'",
    )
    .await;
    assert_eq!(malware, 1, "the refusal is in the access log");
    let (status, body) = refuse("file", "eicar.pdf", EICAR.to_vec()).await;
    assert_eq!(status, 415, "the test virus alone is not a PDF by its bytes: {body}");
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    exe.extend_from_slice(&[0u8; 4000]);
    let (status, body) = refuse("file", "lease.pdf", exe).await;
    assert_eq!(status, 415, "a renamed executable: {body}");
    assert!(message(&body).contains("application/pdf"), "{body}");
    let (status, body) = refuse("file", "empty.pdf", Vec::new()).await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("empty"), "{body}");
    let (status, body) = refuse("attachment", "lease.pdf", pdf(1000, "x")).await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("`file`"), "{body}");
    // Exactly at phi-vault's limit is kept; a byte over it, and a byte over public-api's, are not.
    let (status, body) = refuse("file", "limit.pdf", pdf(VAULT_LIMIT as usize, "at the limit")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = refuse("file", "over.pdf", pdf(VAULT_LIMIT as usize + 1, "over")).await;
    assert_eq!(status, 413, "phi-vault's limit: {body}");
    let (status, body) = refuse("file", "over.pdf", pdf(PUBLIC_LIMIT as usize + 1, "over")).await;
    assert_eq!(status, 413, "public-api's limit: {body}");
    assert!(message(&body).contains("larger than the limit"), "{body}");
    // A body cut short, or not a form at all.
    let (content_type, mut cut) = form("file", "cut.pdf", &pdf(400_000, "cut"));
    cut.truncate(300_000);
    let (status, body) = beneficiary.upload(&docs, &content_type, cut).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = beneficiary.upload(&docs, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(consistent(&public, &phi).await, 2, "only the two clean documents");
}

#[tokio::test]
async fn another_beneficiary_reaches_none_of_an_applications_documents() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, _, _, other] = people.clients(&app);
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);
    let doc = uploaded_lease(&beneficiary, &docs).await;
    let one = format!("{docs}/{doc}");

    let (content_type, body) = form("file", "mine.pdf", &pdf(1000, "theirs"));
    assert_eq!(other.upload(&docs, &content_type, body).await.0, 404);
    assert_eq!(other.get(&docs).await.0, 404);
    assert_eq!(other.download(&one).await.0, 404);
    assert_eq!(other.send(Method::DELETE, &one, None).await.0, 404);
    let (status, theirs) = other.send(Method::POST, "/applications", Some(&rent_application())).await;
    assert_eq!(status, 201);
    let their_docs = format!("/applications/{}/documents/{doc}", theirs["id"].as_str().expect("id"));
    assert_eq!(other.download(&their_docs).await.0, 404, "my document under their application");
}

#[tokio::test]
async fn a_document_deleted_while_the_application_can_change_is_gone_from_both_databases() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let (public, phi) = pools(&app).await;
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);
    uploaded_lease(&beneficiary, &docs).await;
    let limit_doc = uploaded(&beneficiary, &docs, "limit.pdf", &pdf(VAULT_LIMIT as usize, "at the limit")).await;

    let (status, _) = beneficiary.send(Method::DELETE, &format!("{docs}/{limit_doc}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(consistent(&public, &phi).await, 1);
    assert_eq!(beneficiary.download(&format!("{docs}/{limit_doc}")).await.0, 404);
}

#[tokio::test]
async fn the_caseworker_reads_an_applications_documents_only_once_on_the_care_team() {
    let app = spawn().await;
    let people = app.people().await;
    let cw_login = &people.caseworker;
    let [beneficiary, admin, caseworker, _] = people.clients(&app);
    let (_, phi) = pools(&app).await;
    let id = submitted(&beneficiary).await;
    let doc = uploaded_lease(&beneficiary, &format!("/applications/{id}/documents")).await;
    let lease = lease();

    let staff_docs = format!("/caseworker/applications/{id}/documents");
    assert_eq!(caseworker.get(&staff_docs).await.0, 404, "not on the care team");
    let assign = format!("/staff/applications/{id}/caseworker");
    assert_eq!(admin.put(&assign, &json!({"caseworker_id": cw_login.user_id})).await.0, 200);
    let (status, listed) = caseworker.get(&staff_docs).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["sha256"], sha256_hex(&lease));
    let (status, _, bytes) = caseworker.download(&format!("{staff_docs}/{doc}")).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.expect("whole body"), lease);
    let reads: i64 = count(
        &phi,
        &format!(
            "SELECT count(*) FROM access_log WHERE action = 'document.read' AND decision = 'permit' \
             AND actor = '{}' AND purpose = 'treatment'",
            cw_login.user_id
        ),
    )
    .await;
    assert_eq!(reads, 1, "the caseworker's download is in the access log, as them");
}

#[tokio::test]
async fn once_approved_an_applications_documents_are_what_was_decided_on() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, admin, caseworker, _] = people.clients(&app);
    let (public, phi) = pools(&app).await;
    let id = submitted(&beneficiary).await;
    let docs = format!("/applications/{id}/documents");
    let doc = uploaded_lease(&beneficiary, &docs).await;
    let limit_doc = uploaded(&beneficiary, &docs, "limit.pdf", &pdf(VAULT_LIMIT as usize, "at the limit")).await;
    assert_eq!(beneficiary.send(Method::DELETE, &format!("{docs}/{limit_doc}"), None).await.0, 204, "deleting");
    let assign = json!({"caseworker_id": people.caseworker.user_id});
    assert_eq!(admin.put(&format!("/staff/applications/{id}/caseworker"), &assign).await.0, 200, "assigning");
    let one = format!("{docs}/{doc}");

    // No more uploads, no deletions. Each document added or deleted was an edit: a decision
    // names the version read.
    let (_, current) = caseworker.get(&format!("/caseworker/applications/{id}")).await;
    let version = current["application"]["version"].as_i64().expect("version");
    assert_eq!(version, 5, "submitted, two uploads, one deletion, assigned: {current}");
    let stale = json!({"status": "approved", "note": "Complete", "version": version - 1});
    assert_eq!(caseworker.post(&format!("/staff/applications/{id}/status"), &stale).await.0, 409);
    let decision = json!({"status": "approved", "note": "Complete", "version": version});
    let (status, body) = caseworker.post(&format!("/staff/applications/{id}/status"), &decision).await;
    assert_eq!(status, 200, "{body}");
    let (content_type, body) = form("file", "late.pdf", &pdf(1000, "late"));
    let (status, body) = beneficiary.upload(&docs, &content_type, body).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(beneficiary.send(Method::DELETE, &one, None).await.0, 409);
    assert_eq!(beneficiary.download(&one).await.0, 200, "still readable");
    assert_eq!(consistent(&public, &phi).await, 1);
}

#[tokio::test]
async fn a_piece_altered_at_rest_cuts_the_download_short() {
    let app = spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let (_, phi) = pools(&app).await;
    let docs = format!("/applications/{}/documents", submitted(&beneficiary).await);
    let doc = uploaded_lease(&beneficiary, &docs).await;

    // Never a complete-looking file.
    sqlx::query(
        "UPDATE document_chunks SET ciphertext = overlay(ciphertext placing '\\x00' from 100 for 1) WHERE seq = 1",
    )
    .execute(&phi)
    .await
    .expect("tamper");
    let (status, _, bytes) = beneficiary.download(&format!("{docs}/{doc}")).await;
    assert_eq!(status, 200, "the first pieces were sent before the last failed");
    assert!(bytes.is_err(), "the body ends in an error, not a clean end");
}

#[tokio::test]
async fn an_unreachable_scanner_stores_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let app = TestApp::spawn_configured(
        |_| {},
        |phi| {
            phi.service.scanner =
                Some(phi_vault::documents::ScannerSettings { address: format!("127.0.0.1:{port}"), timeout_secs: 5 })
        },
    )
    .await;
    let login = app.dev_login("beneficiary").await;
    let beneficiary = Client { app: &app, who: &login };
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let application = json!({ "kind": "tech", "amount_cents": 30_000,
        "details": { "description": "A laptop for job applications", "needed_by": "2099-03-01" } });
    let (status, submitted) = beneficiary.send(Method::POST, "/applications", Some(&application)).await;
    assert_eq!(status, 201, "{submitted}");
    let docs = format!("/applications/{}/documents", submitted["id"].as_str().expect("id"));
    let (content_type, body) = form("file", "quote.pdf", &pdf(50_000, "quote"));
    let (status, body) = beneficiary.upload(&docs, &content_type, body).await;
    assert_eq!(status, 503, "fails closed: {body}");
    assert_eq!(consistent(&public, &phi).await, 0);
    assert_eq!(count(&phi, "SELECT count(*) FROM document_chunks").await, 0);
}
