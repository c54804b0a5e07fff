//! Consents through the public API: a beneficiary reads a form, signs a consent
//! naming a recipient from the directory, the recipient reads under it, the beneficiary lists,
//! reads and revokes it, and every trail still verifies. Bad input is refused with nothing stored.
//! That life of a consent is a test per step, each signing a fresh one with the helpers below;
//! the accounting and the trails are checked after the whole of it.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use common::db::Database;
use common::{Role, ServiceName};
use harness::auth::Login;
use harness::check::count;
use harness::client::Client;
use harness::TestApp;

/// The form's SHA-256 as the API gives it, after checking its text is the file's.
async fn form_hash(beneficiary: &Client<'_>, version: &str) -> String {
    let (status, form) = beneficiary.get(&format!("/consent-forms/{version}")).await;
    assert_eq!(status, 200, "{form}");
    let file = std::fs::read(harness::repo_root().join(format!("policies/consent-forms/{version}.txt"))).expect("file");
    assert_eq!(form["text"].as_str().expect("text").as_bytes(), &file[..]);
    let hash = form["form"]["sha256"].as_str().expect("sha256").to_owned();
    assert_eq!(hash, common::chain::hex(&common::chain::sha256(&file)));
    hash
}

fn in_days(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339).expect("format")
}

fn signature() -> Value {
    json!({ "typed_name": "Jordan Q. Example", "method": "typed_name" })
}

/// The beneficiary (with the sample profile), the partner and the admin, signed in.
async fn parties(app: &TestApp) -> [Login; 3] {
    let logins = [app.dev_login("beneficiary").await, app.dev_login("partner").await, app.dev_login("admin").await];
    app.put_sample_profile(&logins[0]).await;
    logins
}

/// The admin puts the partner's residence in the directory, linked to the partner's account;
/// the entry.
async fn harbor_house(admin: &Client<'_>, partner: &Client<'_>) -> Value {
    let (status, entry) = admin
        .post(
            "/staff/consent-recipients",
            &json!({ "kind": "residence", "name": "Harbor House", "address": "12 Pine St, Denver CO",
                     "account_id": partner.who.user_id }),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    entry
}

/// A consent on the form on file: `entry` may have the identity for housing, for 90 days.
async fn consent_request(beneficiary: &Client<'_>, entry: &Value) -> Value {
    let hash = form_hash(beneficiary, "part2-disclosure-2026-11").await;
    json!({
        "form_version": "part2-disclosure-2026-11",
        "form_sha256": hash,
        "recipient": { "directory_id": entry["id"] },
        "categories": ["identity"],
        "purpose": "housing_placement",
        "expires_at": in_days(90),
        "signature": signature(),
    })
}

/// The idempotency key the beneficiary signs under.
const SIGN_KEY: &str = "sign-once-7c1e";

/// Signs `body` as the beneficiary under the idempotency key `key`.
async fn sign(beneficiary: &Client<'_>, body: &Value, key: &str) -> (u16, Value) {
    beneficiary.send_keyed(Method::POST, "/beneficiaries/me/consents", Some(body), Some(key)).await
}

/// Signs `request` under [`SIGN_KEY`]; the answer (the consent and the form's text).
async fn signed(beneficiary: &Client<'_>, request: &Value) -> Value {
    let (status, signed) = sign(beneficiary, request, SIGN_KEY).await;
    assert_eq!(status, 201, "{signed}");
    signed
}

/// Where the partner reads the beneficiary's profile for housing.
fn profile_of(beneficiary: &Client<'_>) -> String {
    format!("/partner/beneficiaries/{}/profile?purpose=housing_placement", beneficiary.who.user_id)
}

/// The partner reads the beneficiary's profile under their consent: a disclosure.
async fn read_by_partner(partner: &Client<'_>, beneficiary: &Client<'_>) {
    let (status, read) = partner.get(&profile_of(beneficiary)).await;
    assert_eq!(status, 200, "the partner's read: {read}");
}

/// The beneficiary revokes consent `id`.
async fn revoke(beneficiary: &Client<'_>, id: &str) -> (u16, Value) {
    let body = json!({ "signature": signature(), "reason": "I moved out" });
    beneficiary.post(&format!("/beneficiaries/me/consents/{id}/revocation"), &body).await
}

/// What follows the signing of consent `id` to `entry`: the partner reads, the admin retires the
/// entry, the partner reads again (two disclosures), the beneficiary revokes.
async fn read_twice_and_revoked(parties: [&Client<'_>; 3], entry: &Value, id: &str) {
    let [beneficiary, admin, partner] = parties;
    read_by_partner(partner, beneficiary).await;
    let retire = format!("/staff/consent-recipients/{}", entry["id"].as_str().expect("present"));
    assert_eq!(admin.send(Method::DELETE, &retire, None).await.0, 200, "retiring the entry");
    read_by_partner(partner, beneficiary).await;
    let (status, revoked) = revoke(beneficiary, id).await;
    assert_eq!(status, 200, "revoking: {revoked}");
}

#[tokio::test]
async fn the_directory_names_a_recipient_once_without_look_alikes_or_hidden_characters() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });

    let entry = harbor_house(&admin, &partner).await;
    assert_eq!(entry["linked"], true);
    let (status, page) = beneficiary.get("/consent-recipients").await;
    assert_eq!(status, 200);
    assert_eq!(page["recipients"][0]["name"], "Harbor House");
    // No look-alike of an entry in use: case, spacing and compatibility forms are one name.
    for look_alike in ["harbor  house", "ＨＡＲＢＯＲ HOUSE", " Harbor\u{a0}House", "Harbor\u{200b} House"] {
        let (status, body) =
            admin.post("/staff/consent-recipients", &json!({ "kind": "residence", "name": look_alike })).await;
        assert!(status == 409 || status == 422 && look_alike.contains('\u{200b}'), "{look_alike:?}: {body}");
        assert!(body["error"]["message"].as_str().expect("message").starts_with("name:"), "{body}");
    }
    let hidden = json!({ "kind": "insurer", "name": "Plain Name", "address": "1 Main St\u{202e}" });
    let (status, body) = admin.post("/staff/consent-recipients", &hidden).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().expect("message").starts_with("address:"), "{body}");
    let (status, body) =
        admin.post("/staff/consent-recipients", &json!({ "kind": "insurer", "name": "Harbor House" })).await;
    assert_eq!(status, 201, "another kind may share a name: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_consent_is_signed_once_per_key_on_the_form_on_file() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;

    // The beneficiary reads the options and the form, then signs.
    let (status, options) = beneficiary.get("/consent-options").await;
    assert_eq!(status, 200);
    let versions: Vec<&str> =
        options["forms"].as_array().expect("forms").iter().filter_map(|f| f["version"].as_str()).collect();
    assert!(versions.contains(&"part2-disclosure-2026-11"), "{options}");
    let request = consent_request(&beneficiary, &entry).await;
    assert_eq!(partner.get(&profile_of(&beneficiary)).await.0, 404, "no consent yet");
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let (status, signed) = sign(&beneficiary, &request, SIGN_KEY).await;
    assert_eq!(status, 201, "{signed}");
    // A retry under the same key answers the same consent and signs nothing more; the same key on
    // a different request, or a malformed key, is refused.
    let (status, repeat) = sign(&beneficiary, &request, SIGN_KEY).await;
    assert_eq!((status, &repeat), (200, &signed));
    let mut other = request.clone();
    other["purpose"] = json!("care_coordination");
    let (status, body) = sign(&beneficiary, &other, SIGN_KEY).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().expect("message").contains("Idempotency-Key"), "{body}");
    assert_eq!(sign(&beneficiary, &request, "two words").await.0, 422);
    assert_eq!(count(&consent_db, "SELECT count(*) FROM consents").await, 1, "one consent for one key");
    let consent = &signed["consent"];
    assert_eq!(consent["state"], "signed");
    assert_eq!(consent["discloser"], "SecondWind");
    assert_eq!(consent["recipient"]["name"], "Harbor House");
    assert_eq!(consent["recipient"]["address"], "12 Pine St, Denver CO");
    assert_eq!(consent["signature"]["method"], "typed_name");
    assert_eq!(consent["signature"]["signed_from"], "127.0.0.1");
    assert!(signed["form_text"].as_str().expect("text").contains("My right to revoke"));
    consent_db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_partner_reads_under_a_consent_with_the_redisclosure_notice() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    let signed = signed(&beneficiary, &consent_request(&beneficiary, &entry).await).await;
    let id = signed["consent"]["id"].as_str().expect("id").to_owned();

    let (status, read) = partner.get(&profile_of(&beneficiary)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["profile"], harness::auth::sample_profile());
    assert_eq!(read["consent_id"], id.as_str());
    assert_eq!(read["notice_version"], "part2-2024");
    let notice = std::fs::read_to_string(harness::repo_root().join("policies/redisclosure-notices/part2-2024.txt"))
        .expect("notice file");
    assert_eq!(read["notice"], notice.as_str());
    app.stop().await;
}

#[tokio::test]
async fn retiring_a_directory_entry_changes_nothing_consented_and_it_cannot_be_named_again() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    let request = consent_request(&beneficiary, &entry).await;
    let signed = signed(&beneficiary, &request).await;
    let consent = &signed["consent"];
    let id = consent["id"].as_str().expect("id").to_owned();

    // The copy stands, and so do reads.
    let (status, _) = admin
        .send(Method::DELETE, &format!("/staff/consent-recipients/{}", entry["id"].as_str().expect("present")), None)
        .await;
    assert_eq!(status, 200);
    let (status, again) = beneficiary.get(&format!("/beneficiaries/me/consents/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(again["consent"], *consent);
    assert_eq!(partner.get(&profile_of(&beneficiary)).await.0, 200);
    // A retired entry cannot be named again.
    let (status, body) = beneficiary.post("/beneficiaries/me/consents", &request).await;
    assert_eq!(status, 422, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_beneficiarys_consents_are_listed_by_state() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    signed(&beneficiary, &consent_request(&beneficiary, &entry).await).await;

    for (filter, expected) in [("", 1), ("?state=signed", 1), ("?state=revoked", 0), ("?state=expired", 0)] {
        let (status, page) = beneficiary.get(&format!("/beneficiaries/me/consents{filter}")).await;
        assert_eq!(status, 200);
        assert_eq!(page["consents"].as_array().expect("consents").len(), expected, "{filter}: {page}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_signed_revocation_ends_the_partners_reads_and_cannot_be_repeated() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    let signed = signed(&beneficiary, &consent_request(&beneficiary, &entry).await).await;
    let id = signed["consent"]["id"].as_str().expect("id").to_owned();
    read_by_partner(&partner, &beneficiary).await;

    // A signed record; every later read is denied; a second revocation is refused.
    let (status, revoked) = revoke(&beneficiary, &id).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(partner.get(&profile_of(&beneficiary)).await.0, 404, "revoked");
    let (status, body) = revoke(&beneficiary, &id).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().expect("present").contains("already revoked"), "{body}");
    let (_, page) = beneficiary.get("/beneficiaries/me/consents?state=revoked").await;
    assert_eq!(page["consents"][0]["id"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn what_was_disclosed_before_a_revocation_stays_in_the_accounting_for_the_beneficiary_and_compliance() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    let signed = signed(&beneficiary, &consent_request(&beneficiary, &entry).await).await;
    let id = signed["consent"]["id"].as_str().expect("id").to_owned();
    read_twice_and_revoked([&beneficiary, &admin, &partner], &entry, &id).await;

    // The beneficiary and a compliance officer read it alike.
    let (status, accounting) = beneficiary.get("/beneficiaries/me/disclosures").await;
    assert_eq!(status, 200, "{accounting}");
    let entries = accounting["disclosures"].as_array().expect("disclosures");
    assert_eq!(entries.len(), 2, "{accounting}");
    for entry in entries {
        assert_eq!(entry["recipient"], "Harbor House");
        assert_eq!(entry["categories"], json!(["identity"]));
        assert_eq!(entry["purpose"], "housing_placement");
        assert_eq!(entry["consent_id"], id.as_str());
        assert_eq!(entry["notice_version"], "part2-2024");
        assert_eq!(entry["kind"], "consent");
    }
    let officer_login = app.dev_login("compliance_officer").await;
    let officer = Client { app: &app, who: &officer_login };
    let compliance = format!("/compliance/beneficiaries/{}/disclosures", beneficiary.who.user_id);
    let (status, seen) = officer.get(&compliance).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["disclosures"], accounting["disclosures"]);
    assert_eq!(beneficiary.get(&compliance).await.0, 403, "only compliance officers");
    let (_, one) = officer.get(&format!("{compliance}?limit=1")).await;
    assert_eq!(one["disclosures"].as_array().expect("page").len(), 1);
    let (_, rest) = officer.get(&format!("{compliance}?limit=1&after={}", one["next_after"])).await;
    assert_eq!(rest["disclosures"][0], accounting["disclosures"][1]);
    let (_, long_ago) = beneficiary.get("/beneficiaries/me/disclosures?from=2020-01-01&to=2020-12-31").await;
    assert_eq!(long_ago["disclosures"], json!([]));
    for bad in ["?from=yesterday", "?to=2026-13-01", "?from=2026-02-01&to=2026-01-01", "?limit=0", "?after=x"] {
        assert_eq!(beneficiary.get(&format!("/beneficiaries/me/disclosures{bad}")).await.0, 422, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_step_of_a_consent_is_in_its_trails_in_order_and_every_trail_verifies() {
    let app = TestApp::spawn().await;
    let logins = parties(&app).await;
    let [beneficiary, partner, admin] = logins.each_ref().map(|who| Client { app: &app, who });
    let entry = harbor_house(&admin, &partner).await;
    let insurer = json!({ "kind": "insurer", "name": "Harbor House" });
    assert_eq!(admin.post("/staff/consent-recipients", &insurer).await.0, 201, "another kind, the same name");
    let request = consent_request(&beneficiary, &entry).await;
    // The refusals the step tests check are made here too, where they make them, so the trails
    // below also show that a refusal leaves no trace.
    assert_eq!(partner.get(&profile_of(&beneficiary)).await.0, 404, "no consent yet");
    let signed = signed(&beneficiary, &request).await;
    assert_eq!(sign(&beneficiary, &request, SIGN_KEY).await.0, 200, "the repeat");
    let mut other = request.clone();
    other["purpose"] = json!("care_coordination");
    assert_eq!(sign(&beneficiary, &other, SIGN_KEY).await.0, 422, "the key on another request");
    assert_eq!(sign(&beneficiary, &request, "two words").await.0, 422, "a malformed key");
    let id = signed["consent"]["id"].as_str().expect("id").to_owned();
    read_twice_and_revoked([&beneficiary, &admin, &partner], &entry, &id).await;
    assert_eq!(beneficiary.post("/beneficiaries/me/consents", &request).await.0, 422, "a retired entry");
    assert_eq!(partner.get(&profile_of(&beneficiary)).await.0, 404, "revoked");
    assert_eq!(revoke(&beneficiary, &id).await.0, 409, "revoked already");

    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    assert_eq!(count(&phi, "SELECT count(*) FROM disclosures").await, 2);
    let (by, signed_name): (String, Option<String>) =
        sqlx::query_as("SELECT revoked_by, signed_name FROM revocations").fetch_one(&consent_db).await.expect("rev");
    assert_eq!(by, format!("beneficiary:{}", beneficiary.who.user_id));
    assert_eq!(signed_name.as_deref(), Some("Jordan Q. Example"));
    assert!(consent::consents::verify(&consent_db, 10).await.expect("verify").intact());
    assert!(consent::consents::verify_revocations(&consent_db, 10).await.expect("verify").intact());
    assert!(consent::decisions::verify(&consent_db, 10).await.expect("verify").intact());
    assert!(phi_vault::disclosures::verify(&phi, 10).await.expect("verify").intact());
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_logs WHERE action LIKE 'consent%' ORDER BY seq")
            .fetch_all(&public)
            .await
            .expect("audit");
    assert_eq!(
        actions,
        [
            "consent_recipient.add",
            "consent_recipient.add",
            "consent.sign",
            "consent.sign.repeated",
            "consent_recipient.retire",
            "consent.revoke"
        ]
    );
    for pool in [consent_db, phi, public] {
        pool.close().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_consents_are_refused_by_name_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let beneficiary = Client { app: &app, who: &login };
    let hash = form_hash(&beneficiary, "part2-disclosure-2026-11").await;
    let tpo_hash = form_hash(&beneficiary, "part2-tpo-2026-11").await;
    let good = json!({
        "form_version": "part2-disclosure-2026-11",
        "form_sha256": hash,
        "recipient": { "name": "Dr. Ada Lovelace", "address": "1 Main St, Boulder CO" },
        "categories": ["identity", "insurance"],
        "purpose": "care_coordination",
        "expiry_event": "program_exit",
        "signature": signature(),
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().expect("present").remove(field);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("unknown category", with("categories", json!(["diary"])), 422, "categories"),
        ("no category", with("categories", json!([])), 422, "categories"),
        ("unknown purpose", with("purpose", json!("marketing")), 422, "purpose"),
        ("unknown form", with("form_version", json!("part2-1999")), 422, "form_version"),
        ("expiry in the past", with("expires_at", json!(in_days(-1))), 422, "expires_at"),
        ("unknown expiry event", with("expiry_event", json!("whenever")), 422, "expiry_event"),
        ("no expiry", without("expiry_event"), 422, "expiry"),
        ("no signature", without("signature"), 422, "signature"),
        ("empty typed name", with("signature", json!({"typed_name": " ", "method": "typed_name"})), 422, "typed_name"),
        ("unknown method", with("signature", json!({"typed_name": "J", "method": "checkbox"})), 422, "method"),
        ("a form not read", with("form_sha256", json!("00".repeat(32))), 409, "form"),
        ("a malformed hash", with("form_sha256", json!("abc")), 422, "form_sha256"),
        ("two recipients", with("recipient", json!({"name": "A", "class": "health_plans"})), 422, "recipient"),
        ("no recipient", with("recipient", json!({})), 422, "recipient"),
        ("a class on a named form", with("recipient", json!({"class": "health_plans"})), 422, "recipient.class"),
        ("an unknown directory id", with("recipient", json!({"directory_id": Uuid::new_v4()})), 422, "directory_id"),
        ("signing for someone else", with("subject_id", json!(Uuid::new_v4())), 422, "subject_id"),
        ("a wrong type", with("categories", json!("identity")), 422, "categories"),
        (
            "a TPO form naming one recipient",
            json!({"form_version": "part2-tpo-2026-11", "form_sha256": tpo_hash, "recipient": {"name": "A"},
                   "categories": ["insurance"], "purpose": "treatment_payment_operations",
                   "expires_at": in_days(30), "signature": signature()}),
            422,
            "class",
        ),
        (
            "a TPO form for another purpose",
            json!({"form_version": "part2-tpo-2026-11", "form_sha256": tpo_hash, "recipient": {"class": "health_plans"},
                   "categories": ["insurance"], "purpose": "housing_placement",
                   "expires_at": in_days(30), "signature": signature()}),
            422,
            "purpose",
        ),
    ];
    for (what, body, status, names) in cases {
        let (got, answer) = beneficiary.post("/beneficiaries/me/consents", &body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["error"]["request_id"].as_str().map(str::is_empty), Some(false), "{what}: {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(names), "{what}: {message}");
    }
    // Malformed JSON and an oversize body.
    let raw = |body: String| {
        app.http
            .post(app.api("/beneficiaries/me/consents"))
            .bearer_auth(&login.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(raw("{\"form_version\":".into()).await.expect("send").status(), 400);
    assert_eq!(raw(format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024))).await.expect("send").status(), 413);

    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    assert_eq!(count(&consent_db, "SELECT count(*) FROM consents").await, 0, "nothing stored");

    // The good one, outside the directory and ending on an event, is stored.
    let (status, signed) = beneficiary.post("/beneficiaries/me/consents", &good).await;
    assert_eq!(status, 201, "{signed}");
    assert_eq!(signed["consent"]["recipient"]["name"], "Dr. Ada Lovelace");
    assert_eq!(signed["consent"]["recipient"]["directory_id"], Value::Null);
    let id = signed["consent"]["id"].as_str().expect("id").to_owned();

    // Another beneficiary neither reads nor revokes it; a partner has no consent routes.
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let (_, other_token) = app.new_beneficiary_token(&public).await;
    let other = Login { access_token: other_token, ..login.clone() };
    let other = Client { app: &app, who: &other };
    assert_eq!(other.get(&format!("/beneficiaries/me/consents/{id}")).await.0, 404);
    let revoke = json!({ "signature": signature() });
    assert_eq!(other.post(&format!("/beneficiaries/me/consents/{id}/revocation"), &revoke).await.0, 404);
    assert_eq!(other.get("/beneficiaries/me/consents").await.1["consents"], json!([]));
    let partner_login = app.dev_login("partner").await;
    let partner = Client { app: &app, who: &partner_login };
    assert_eq!(partner.get("/beneficiaries/me/consents").await.0, 403);
    assert_eq!(partner.post("/beneficiaries/me/consents", &good).await.0, 403);
    // Bad filters and revocations.
    for filter in ["?state=pending", "?limit=0", "?limit=101", "?after=x"] {
        assert_eq!(beneficiary.get(&format!("/beneficiaries/me/consents{filter}")).await.0, 422, "{filter}");
    }
    let unsigned = json!({ "signature": {"typed_name": "", "method": "typed_name"} });
    assert_eq!(beneficiary.post(&format!("/beneficiaries/me/consents/{id}/revocation"), &unsigned).await.0, 422);
    assert_eq!(count(&consent_db, "SELECT count(*) FROM revocations").await, 0);
    assert_eq!(count(&consent_db, "SELECT count(*) FROM consents").await, 1);
    for pool in [consent_db, public] {
        pool.close().await;
    }
    app.stop().await;
}

/// A compromised public-api can mint a delegation for anyone, but only for the person the path
/// names; a call naming another subject is refused, as is one from phi-vault or without a
/// delegation token. Pages follow `next_after`.
#[tokio::test]
async fn the_consent_service_acts_only_for_the_subject_who_signs() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let me: Uuid = login.user_id.parse().expect("uuid");
    let beneficiary = Client { app: &app, who: &login };
    let hash = form_hash(&beneficiary, "part2-disclosure-2026-11").await;
    let body = json!({ "consent": {
        "form_version": "part2-disclosure-2026-11", "form_sha256": hash, "recipient": {"name": "Dr. A"},
        "categories": ["identity"], "purpose": "payment", "expires_at": in_days(10), "signature": signature()
    }, "signed_from": "203.0.113.9" });
    let victim = Uuid::new_v4();
    let path = |subject: Uuid| format!("/internal/v1/subjects/{subject}/consents");
    let forged = app
        .forge(ServiceName::PublicApi, ServiceName::Consent, Method::POST, &path(victim))
        .as_user(&app, me, Role::Beneficiary, "self_service")
        .json(&body);
    assert_eq!(forged.send().await.0, 403, "signing for someone else");
    let mut no_delegation = app
        .forge(ServiceName::PublicApi, ServiceName::Consent, Method::POST, &path(me))
        .as_user(&app, me, Role::Beneficiary, "self_service")
        .json(&body);
    no_delegation.claims.delegation = None;
    assert_eq!(no_delegation.send().await.0, 401, "no delegation token");
    let from_vault = app
        .forge(ServiceName::PhiVault, ServiceName::Consent, Method::POST, &path(me))
        .as_user(&app, me, Role::Beneficiary, "self_service")
        .json(&body);
    assert_eq!(from_vault.send().await.0, 403, "phi-vault may not sign");
    // phi-vault relays people's calls only where the allowlist says so (the decisions route):
    // elsewhere a call in a person's role without a delegation token is refused before anything.
    let mut relayed = app
        .forge(ServiceName::PhiVault, ServiceName::Consent, Method::POST, &path(me))
        .as_user(&app, me, Role::Beneficiary, "self_service")
        .json(&body);
    relayed.claims.delegation = None;
    assert_eq!(relayed.send().await.0, 401, "no relay on this route");
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    assert_eq!(count(&consent_db, "SELECT count(*) FROM consents").await, 0);

    // Three consents, two per page.
    for _ in 0..3 {
        let mut request = body["consent"].clone();
        request["purpose"] = json!("payment");
        assert_eq!(beneficiary.post("/beneficiaries/me/consents", &request).await.0, 201);
    }
    let (_, first) = beneficiary.get("/beneficiaries/me/consents?limit=2").await;
    assert_eq!(first["consents"].as_array().expect("present").len(), 2);
    let next = first["next_after"].as_i64().expect("a next page");
    let (_, second) = beneficiary.get(&format!("/beneficiaries/me/consents?limit=2&after={next}")).await;
    assert_eq!(second["consents"].as_array().expect("present").len(), 1);
    assert_eq!(second["next_after"], Value::Null);
    consent_db.close().await;
    app.stop().await;
}

/// A single TPO consent naming a class: any insurer may read for payment, none for housing; an
/// expiry event staff record ends consents waiting on it.
#[tokio::test]
async fn a_tpo_consent_covers_its_class_for_tpo_purposes_until_its_event() {
    use common::client::{ConsentClient, DisclosureQuestion};
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let me: Uuid = login.user_id.parse().expect("uuid");
    let beneficiary = Client { app: &app, who: &login };
    let hash = form_hash(&beneficiary, "part2-tpo-2026-11").await;
    let (status, signed) = beneficiary
        .post(
            "/beneficiaries/me/consents",
            &json!({"form_version": "part2-tpo-2026-11", "form_sha256": hash,
                    "recipient": {"class": "health_plans"}, "categories": ["insurance"],
                    "purpose": "treatment_payment_operations", "expiry_event": "coverage_end",
                    "signature": signature()}),
        )
        .await;
    assert_eq!(status, 201, "{signed}");
    assert_eq!(signed["consent"]["recipient"]["kind"], "class");
    assert_eq!(signed["consent"]["recipient"]["class"], "health_plans");

    // The class's members are the directory's insurers: one listed, one not.
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let listed = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO recipients (id, kind, name, principal, created_by) \
         VALUES ($1, 'insurer', 'Colorado Medicaid', $2, 'admin:test')",
    )
    .bind(Uuid::new_v4())
    .bind(format!("insurer:{listed}"))
    .execute(&consent_db)
    .await
    .expect("directory entry");
    // A retired entry's account is no longer a member, though it once was.
    let retired = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO recipients (id, kind, name, principal, created_by, retired_at, retired_by) \
         VALUES ($1, 'insurer', 'Old Plan', $2, 'admin:test', now(), 'admin:test')",
    )
    .bind(Uuid::new_v4())
    .bind(format!("insurer:{retired}"))
    .execute(&consent_db)
    .await
    .expect("retired directory entry");
    let consent = ConsentClient::new(app.internal_client(ServiceName::PhiVault, ServiceName::Consent));
    let ask_as = |insurer: Uuid, role: Role, purpose: &str, category: &str| {
        let ctx = app.user_call(&insurer.to_string(), role, "disclosure_decision");
        let question = DisclosureQuestion {
            subject_id: me,
            recipient: format!("{role}:{insurer}"),
            categories: vec![category.into()],
            purpose: purpose.into(),
        };
        let consent = consent.clone();
        async move { consent.decide(&ctx, &question).await.expect("answer") }
    };
    let ask = |role: Role, purpose: &str, category: &str| ask_as(listed, role, purpose, category);
    let yes = ask(Role::Insurer, "payment", "insurance").await;
    assert!(yes.permitted, "{yes:?}");
    assert_eq!(yes.recipient_name.as_deref(), Some("Colorado Medicaid"));
    let unlisted = ask_as(Uuid::new_v4(), Role::Insurer, "payment", "insurance").await;
    assert!(!unlisted.permitted, "an insurer account the directory does not list is no member of the class");
    let gone = ask_as(retired, Role::Insurer, "payment", "insurance").await;
    assert!(!gone.permitted, "a retired entry's account is no member of the class");
    assert_eq!(yes.consent_id.map(|id| id.to_string()), signed["consent"]["id"].as_str().map(str::to_owned));
    assert!(!ask(Role::Insurer, "housing_placement", "insurance").await.permitted, "not a TPO purpose");
    assert!(!ask(Role::Insurer, "payment", "identity").await.permitted, "not a category consented");
    assert!(!ask(Role::Partner, "payment", "insurance").await.permitted, "not the class");

    // The event a caseworker records ends it.
    let caseworker_login = app.dev_login("caseworker").await;
    let caseworker = Client { app: &app, who: &caseworker_login };
    let events = format!("/staff/beneficiaries/{me}/consent-events");
    for (bad, status) in [
        (json!({"event": "whenever"}), 422),
        (json!({"event": "coverage_end", "occurred_at": in_days(1)}), 422),
        (json!({"event": "coverage_end", "by": "someone"}), 422),
    ] {
        assert_eq!(caseworker.post(&events, &bad).await.0, status, "{bad}");
    }
    assert_eq!(beneficiary.post(&events, &json!({"event": "coverage_end"})).await.0, 403);
    let stranger = format!("/staff/beneficiaries/{}/consent-events", Uuid::new_v4());
    assert_eq!(caseworker.post(&stranger, &json!({"event": "coverage_end"})).await.0, 404);
    assert!(ask(Role::Insurer, "payment", "insurance").await.permitted, "nothing recorded yet");
    let (status, recorded) = caseworker.post(&events, &json!({"event": "coverage_end"})).await;
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["consents_ended"], 1);
    let (_, again) = caseworker.post(&events, &json!({"event": "coverage_end"})).await;
    assert_eq!(again["consents_ended"], 0, "already ended");
    let long_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(31))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    assert_eq!(caseworker.post(&events, &json!({"event": "coverage_end", "occurred_at": long_ago})).await.0, 422);
    let by: String =
        sqlx::query_scalar("SELECT recorded_by FROM expiry_events").fetch_one(&consent_db).await.expect("e");
    assert_eq!(by, format!("caseworker:{}", caseworker_login.user_id), "the proven actor");
    let no = ask(Role::Insurer, "payment", "insurance").await;
    assert!(!no.permitted && no.consent_id.is_none(), "{no:?}");
    let (_, page) = beneficiary.get("/beneficiaries/me/consents?state=expired").await;
    assert_eq!(page["consents"].as_array().expect("present").len(), 1);
    assert!(consent::decisions::verify(&consent_db, 10).await.expect("verify").intact());
    consent_db.close().await;
    app.stop().await;
}

/// The notice is a versioned file: phi-vault records the version it sends with its text's hash
/// and refuses to start on an edited text under a recorded version, or a file it cannot name.
#[tokio::test]
async fn phi_vault_refuses_an_edited_notice_under_a_version_it_sent() {
    let app = TestApp::spawn().await;
    let dir = app.keys.dir.join("notices");
    std::fs::create_dir_all(&dir).expect("dir");
    let original = std::fs::read_to_string(&app.phi_config.service.notice_file).expect("notice");
    let edited = dir.join("part2-2024.txt");
    std::fs::write(&edited, original.replace("NOT sufficient", "sufficient")).expect("write");
    let mut config = app.phi_config.clone();
    config.service.notice_file = edited;
    let refused = phi_vault::build(config.clone()).await.map(|_| ()).expect_err("an edited notice").to_string();
    assert!(refused.contains("service.notice_file") && refused.contains("part2-2024"), "{refused}");
    // A new wording under a new version is fine, and recorded.
    let renamed = dir.join("part2-2024-r2.txt");
    std::fs::write(&renamed, original.replace("NOT sufficient", "not sufficient")).expect("write");
    config.service.notice_file = renamed;
    let started = harness::launch(phi_vault::build(config.clone()).await.expect("a new version")).await;
    started.shutdown.clone().notify();
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let versions: Vec<String> =
        sqlx::query_scalar("SELECT version FROM notices ORDER BY version").fetch_all(&phi).await.expect("notices");
    assert_eq!(versions, ["part2-2024", "part2-2024-r2"]);
    for bad in ["Notice.txt", "notice.md"] {
        let file = dir.join(bad);
        std::fs::write(&file, &original).expect("write");
        config.service.notice_file = file;
        let refused = phi_vault::build(config.clone()).await.map(|_| ()).expect_err(bad).to_string();
        assert!(refused.contains("service.notice_file"), "{bad}: {refused}");
    }
    phi.close().await;
    app.stop().await;
}

/// A medical emergency (§2.51): a caseworker outside the care team discloses the profile to
/// medical personnel without consent, with the recipient, the nature and a reason; it is
/// flagged for review and the patient sees it in their accounting.
#[tokio::test]
async fn a_medical_emergency_disclosure_is_flagged_and_in_the_patients_accounting() {
    let app = TestApp::spawn().await;
    let beneficiary_login = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary_login).await;
    let beneficiary = Client { app: &app, who: &beneficiary_login };
    let caseworker_login = app.dev_login("caseworker").await;
    let caseworker = Client { app: &app, who: &caseworker_login };
    let path = format!("/caseworker/beneficiaries/{}/emergency-disclosure", beneficiary_login.user_id);
    let good = json!({
        "recipient": "Dr. Rivera, Denver Health emergency department",
        "nature": "Unresponsive after a suspected overdose",
        "reason": "The ED needs her medication history now; she cannot consent",
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (what, body) in [
        ("short reason", with("reason", json!("urgent"))),
        ("short nature", with("nature", json!("bad"))),
        ("no recipient", with("recipient", json!(""))),
        ("a consent id", with("consent_id", json!(Uuid::new_v4()))),
    ] {
        assert_eq!(caseworker.post(&path, &body).await.0, 422, "{what}");
    }
    assert_eq!(beneficiary.post(&path, &good).await.0, 403);
    let (status, disclosed) = caseworker.post(&path, &good).await;
    assert_eq!(status, 200, "{disclosed}");
    assert_eq!(disclosed["profile"], harness::auth::sample_profile());
    assert_eq!(disclosed["consent_id"], Value::Null);
    assert_eq!(disclosed["notice_version"], "part2-2024");

    let (_, accounting) = beneficiary.get("/beneficiaries/me/disclosures").await;
    let entries = accounting["disclosures"].as_array().expect("disclosures");
    assert_eq!(entries.len(), 1, "{accounting}");
    assert_eq!(entries[0]["kind"], "medical_emergency");
    assert_eq!(entries[0]["recipient"], "Dr. Rivera, Denver Health emergency department");
    assert_eq!(entries[0]["emergency"], "Unresponsive after a suspected overdose");
    assert_eq!(entries[0]["purpose"], "medical_emergency");
    assert_eq!(entries[0]["consent_id"], Value::Null);

    // Flagged for compliance review, with the reason kept in the vault's log only.
    let officer_login = app.dev_login("compliance_officer").await;
    let officer = Client { app: &app, who: &officer_login };
    let (_, flagged) = officer.get("/compliance/phi-access-log?flagged=true").await;
    let entries = flagged["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{flagged}");
    assert_eq!(entries[0]["action"], "record.emergency_disclosure");
    assert_eq!(entries[0]["actor"], caseworker_login.user_id.as_str());
    assert!(entries[0]["reason"].as_str().expect("reason").contains("cannot consent"));
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let audited: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT outcome::text, reason FROM audit_logs WHERE action = 'phi.emergency_disclosure' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("audit");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(!audited[0].1.as_deref().unwrap_or_default().contains("cannot consent"), "the reason stays in the vault");

    // The ordinary read route serves no emergency purpose: no disclosure without the route
    // that enters it in the accounting.
    let forged = app
        .forge(
            ServiceName::PublicApi,
            ServiceName::PhiVault,
            Method::GET,
            "/internal/v1/records/00000000-0000-4000-8000-000000000001",
        )
        .as_user(&app, caseworker_login.user_id.parse().expect("uuid"), Role::Caseworker, "medical_emergency");
    assert_eq!(forged.send().await.0, 403);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    assert!(phi_vault::disclosures::verify(&phi, 10).await.expect("verify").intact());
    for pool in [phi, public] {
        pool.close().await;
    }
    app.stop().await;
}

/// Every answer the consent service gives is chained into its decisions trail, and a changed
/// answer (a "no" turned into a "yes" after the fact) breaks the chain where it was changed.
#[tokio::test]
async fn every_answer_is_chained_and_a_changed_answer_breaks_the_trail() {
    use common::client::{ConsentClient, DisclosureQuestion};
    let app = TestApp::spawn().await;
    let consent = ConsentClient::new(app.internal_client(ServiceName::PhiVault, ServiceName::Consent));
    let ctx = app.user_call(&Uuid::new_v4().to_string(), Role::Partner, "disclosure_decision");
    let question = |purpose: &str| DisclosureQuestion {
        subject_id: Uuid::new_v4(),
        recipient: "partner:x".into(),
        categories: vec!["identity".into()],
        purpose: purpose.into(),
    };
    for purpose in ["housing_placement", "care_coordination", "payment"] {
        assert!(!consent.decide(&ctx, &question(purpose)).await.expect("answer").permitted);
    }
    let pool = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    assert_eq!(count(&pool, "SELECT count(*) FROM decisions").await, 3, "one entry per answer");
    let intact = consent::decisions::verify(&pool, 10).await.expect("verify");
    assert!(intact.intact() && intact.rows_checked == 3, "{intact:?}");

    // The log pages for a compliance officer (public-api asks on their behalf), and no one else.
    let log = ConsentClient::new(app.internal_client(ServiceName::PublicApi, ServiceName::Consent));
    let officer = app.user_call(&Uuid::new_v4().to_string(), Role::ComplianceOfficer, "compliance_review");
    let page = |after_seq| common::compliance::DecisionQuery { after_seq, limit: 2, ..Default::default() };
    let first = log.decisions(&officer, &page(0)).await.expect("first page");
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.next_after_seq, Some(first.entries[1].seq));
    let second = log.decisions(&officer, &page(first.entries[1].seq)).await.expect("second page");
    assert_eq!((second.entries.len(), second.next_after_seq), (1, None));
    let partner = app.user_call(&Uuid::new_v4().to_string(), Role::Partner, "compliance_review");
    match log.decisions(&partner, &page(0)).await {
        Err(common::client::ClientError::Status { status: 403, .. }) => {}
        other => panic!("a partner read the decision log: {other:?}"),
    }

    let su = sqlx::PgPool::connect(&app.database(Database::Consent).url_as("postgres")).await.expect("superuser");
    let changed: i64 =
        sqlx::query_scalar("UPDATE decisions SET permitted = true WHERE purpose = 'care_coordination' RETURNING seq")
            .fetch_one(&su)
            .await
            .expect("tamper");
    let broken = consent::decisions::verify(&pool, 10).await.expect("verify");
    assert_eq!(broken.breaks.first().map(|b| b.seq), Some(changed), "{broken:?}");
    su.close().await;
    pool.close().await;
    app.stop().await;
}
