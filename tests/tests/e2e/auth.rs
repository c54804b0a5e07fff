//! Sign-in, refresh-token rotation and reuse detection, logout, sessions, the profile, token
//! attacks, the route access table — each step checked in the audit log, whose chain verifies.

use harness::check::now;
use harness::{TestApp, ORIGIN};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let v = public_api::audit::verify(&pool, 10).await.expect("verify");
    assert!(v.intact(), "audit chain broken: {v:?}");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT action, outcome FROM audit_logs ORDER BY seq").fetch_all(&pool).await.expect("rows");
    pool.close().await;
    rows
}

fn has(actions: &[(String, String)], action: &str, outcome: &str) -> bool {
    actions.iter().any(|(a, o)| a == action && o == outcome)
}

#[tokio::test]
async fn sign_in_refresh_rotate_detect_reuse_and_log_out() {
    let app = TestApp::spawn().await;
    let first = app.dev_login("donor").await;
    let me = app.get_as(&first.access_token, "/users/me").await;
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await.expect("json");
    assert_eq!(body["user_type"], "donor");
    assert_eq!(body["id"], first.user_id.as_str());

    // Rotation: each refresh gives a new refresh token; the session stays the same.
    let second = app.refreshed(&first.refresh).await;
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.session_id, first.session_id);
    let third = app.refreshed(&second.refresh).await;
    assert_eq!(app.get_as(&third.access_token, "/users/me").await.status(), 200);

    // Reusing an already-rotated token is theft: the whole session ends at once.
    let reuse = app.refresh(&first.refresh).await;
    assert_eq!(reuse.status(), 401);
    let body: Value = reuse.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        app.get_as(&third.access_token, "/users/me").await.status(),
        401,
        "access tokens of the session stop working"
    );
    assert_eq!(app.refresh(&third.refresh).await.status(), 401, "the current refresh token is dead too");

    // A new login, then logout: that access token stops working immediately.
    let again = app.dev_login("donor").await;
    let out = app.http.post(app.api("/auth/logout")).bearer_auth(&again.access_token).send().await.expect("logout");
    assert_eq!(out.status(), 204);
    assert_eq!(app.get_as(&again.access_token, "/users/me").await.status(), 401);
    assert_eq!(app.refresh(&again.refresh).await.status(), 401);

    let actions = audit_actions(&app).await;
    assert!(has(&actions, "auth.login", "success"));
    assert!(has(&actions, "auth.refresh", "success"));
    assert!(has(&actions, "auth.refresh_reuse_detected", "denied"));
    assert!(has(&actions, "auth.refresh", "failure"));
    assert!(has(&actions, "auth.logout", "success"));
    app.stop().await;
}

/// A refresh whose answer was lost is retried with the token it exchanged: from the same
/// client, within the leeway, it gets the same new token and the session lives on; later, or
/// from another client, it is reuse and ends the session, audited.
#[tokio::test]
async fn a_retried_refresh_gets_the_same_token_and_a_late_or_foreign_one_ends_the_session() {
    let app = TestApp::spawn_with(|c| c.service.auth.refresh_retry_leeway_secs = 2).await;
    let refresh_as = |refresh: String, agent: &'static str| {
        let request = app
            .http
            .post(app.api("/auth/refresh"))
            .header("origin", harness::ORIGIN)
            .header("user-agent", agent)
            .header("cookie", format!("sw_refresh={refresh}"));
        async move { request.send().await.expect("refresh") }
    };
    let first = app.dev_login("donor").await;
    let answer = refresh_as(first.refresh.clone(), "browser-a").await;
    assert_eq!(answer.status(), 200);
    let second = harness::auth::refresh_cookie(&answer).expect("rotated");
    // The answer was lost; the same browser tries again at once.
    let retry = refresh_as(first.refresh.clone(), "browser-a").await;
    assert_eq!(retry.status(), 200);
    assert_eq!(harness::auth::refresh_cookie(&retry).as_deref(), Some(second.as_str()), "the same new token");
    let body: Value = retry.json().await.expect("json");
    assert_eq!(body["session_id"], first.session_id.as_str());
    assert_eq!(app.get_as(body["access_token"].as_str().expect("token"), "/users/me").await.status(), 200);
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let sealed = |session: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM refresh_tokens WHERE session_id = $1::uuid AND successor_sealed IS NOT NULL",
            )
            .bind(session)
            .fetch_one(&pool)
            .await
            .expect("seals")
        }
    };
    assert_eq!(sealed(first.session_id.clone()).await, 0, "a retry spends the seal: one retry per exchange");
    // ... and the session goes on with it; each exchange drops the seals of earlier ones.
    let answer = refresh_as(second.clone(), "browser-a").await;
    assert_eq!(answer.status(), 200);
    let third = harness::auth::refresh_cookie(&answer).expect("rotated");
    assert_eq!(sealed(first.session_id.clone()).await, 1, "only the token just exchanged can be retried");
    let answer = refresh_as(third.clone(), "browser-a").await;
    let third = harness::auth::refresh_cookie(&answer).expect("rotated");
    assert_eq!(sealed(first.session_id.clone()).await, 1, "the earlier seal is gone");

    // Another client with the just-exchanged token, within the leeway: a copy, the session ends.
    let foreign = refresh_as(second.clone(), "somebody-else").await;
    assert_eq!(foreign.status(), 401);
    assert_eq!(refresh_as(third, "browser-a").await.status(), 401, "the session is revoked");

    // A second retry of the same exchange, even in time and from the same client: reuse.
    let twice = app.dev_login("donor").await;
    let answer = refresh_as(twice.refresh.clone(), "browser-a").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(refresh_as(twice.refresh.clone(), "browser-a").await.status(), 200, "the first retry");
    assert_eq!(refresh_as(twice.refresh.clone(), "browser-a").await.status(), 401, "the second retry");

    // The same client, after the leeway: reuse too.
    let late = app.dev_login("donor").await;
    let answer = refresh_as(late.refresh.clone(), "browser-a").await;
    let next = harness::auth::refresh_cookie(&answer).expect("rotated");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(refresh_as(late.refresh.clone(), "browser-a").await.status(), 401);
    assert_eq!(refresh_as(next, "browser-a").await.status(), 401, "the session is revoked");

    let reasons: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT reason FROM audit_logs WHERE action = 'auth.refresh' AND outcome = 'success' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    assert_eq!(reasons.iter().filter(|r| r.as_deref().is_some_and(|r| r.contains("retry"))).count(), 2, "{reasons:?}");
    let reuses: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'auth.refresh_reuse_detected' AND outcome = 'denied'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(reuses, 3, "the foreign, the second and the late reuse");
    let revoked: Vec<String> = sqlx::query_scalar(
        "SELECT revoked_reason FROM sessions WHERE id IN ($1::uuid, $2::uuid) ORDER BY revoked_reason",
    )
    .bind(&first.session_id)
    .bind(&late.session_id)
    .fetch_all(&pool)
    .await
    .expect("sessions");
    assert_eq!(revoked, ["refresh_token_reuse", "refresh_token_reuse"]);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_needs_the_cookie_and_an_allowed_origin() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let no_origin = app
        .http
        .post(app.api("/auth/refresh"))
        .header("cookie", format!("sw_refresh={}", login.refresh))
        .send()
        .await
        .expect("post");
    assert_eq!(no_origin.status(), 403);
    let foreign = app
        .http
        .post(app.api("/auth/refresh"))
        .header("origin", "https://evil.example")
        .header("cookie", format!("sw_refresh={}", login.refresh))
        .send()
        .await
        .expect("post");
    assert_eq!(foreign.status(), 403);
    let no_cookie = app.http.post(app.api("/auth/refresh")).header("origin", ORIGIN).send().await.expect("post");
    assert_eq!(no_cookie.status(), 401);
    assert_eq!(app.refresh("swr_forged").await.status(), 401);
    // None of those spent the real token.
    app.refreshed(&login.refresh).await;
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_ended_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let a1 = app.dev_login("partner").await;
    let a2 = app.dev_login("partner").await;
    let b = app.dev_login("donor").await;

    let page: Value = app.get_as(&a1.access_token, "/users/me/sessions?limit=1").await.json().await.expect("json");
    assert_eq!(page["sessions"].as_array().expect("list").len(), 1);
    assert_eq!(page["next_offset"], 1);
    let all: Value = app.get_as(&a1.access_token, "/users/me/sessions").await.json().await.expect("json");
    let list = all["sessions"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert!(all["next_offset"].is_null());
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], a1.session_id.as_str());
    assert_eq!(app.get_as(&a1.access_token, "/users/me/sessions?limit=0").await.status(), 422);
    assert_eq!(app.get_as(&a1.access_token, "/users/me/sessions?limit=ten").await.status(), 422);
    assert_eq!(app.get_as(&a1.access_token, "/users/me/sessions?offset=-1").await.status(), 422);

    // Another user's session: 404, exactly like a missing one; and it stays open.
    let other = app
        .http
        .delete(app.api(&format!("/users/me/sessions/{}", b.session_id)))
        .bearer_auth(&a1.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(other.status(), 404);
    let body: Value = other.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(app.get_as(&b.access_token, "/users/me").await.status(), 200);
    let missing = app
        .http
        .delete(app.api(&format!("/users/me/sessions/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&a1.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(missing.status(), 404);

    // Ending my other session ends its tokens.
    let end = app
        .http
        .delete(app.api(&format!("/users/me/sessions/{}", a2.session_id)))
        .bearer_auth(&a1.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(end.status(), 204);
    assert_eq!(app.get_as(&a2.access_token, "/users/me").await.status(), 401);
    assert_eq!(app.get_as(&a1.access_token, "/users/me").await.status(), 200);
    assert!(has(&audit_actions(&app).await, "session.end", "success"));
    app.stop().await;
}

#[tokio::test]
async fn the_profile_accepts_its_fields_and_refuses_type_and_roles() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let patch = |body: Value| app.http.patch(app.api("/users/me")).bearer_auth(&login.access_token).json(&body).send();

    let ok = patch(json!({"display_name": "  Sam R.  ", "sobriety_date": "2024-03-01", "notification_preferences": {"email": true}})).await.expect("patch");
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["display_name"], "Sam R.");
    assert_eq!(body["sobriety_date"], "2024-03-01");
    assert_eq!(body["notification_preferences"], json!({"email": true}));
    let cleared: Value = patch(json!({"sobriety_date": null})).await.expect("patch").json().await.expect("json");
    assert!(cleared["sobriety_date"].is_null());
    assert_eq!(cleared["display_name"], "Sam R.", "absent fields are left alone");

    for (body, field) in [
        (json!({"roles": ["admin"]}), "roles"),
        (json!({"user_type": "partner"}), "user_type"),
        (json!({"display_name": 42}), "invalid type"),
        (json!({"sobriety_date": "2999-01-01"}), "sobriety_date"),
        (json!({"sobriety_date": "March 1st"}), "sobriety_date"),
        (json!({"display_name": ""}), "display_name"),
        (json!({"notification_preferences": {"email": "yes"}}), "notification_preferences"),
    ] {
        let response = patch(body.clone()).await.expect("patch");
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "message for {body} should name `{field}`: {message}");
    }
    // Several bad fields at once: each is named.
    let several = patch(json!({"roles": ["admin"], "user_type": "partner", "display_name": 42})).await.expect("patch");
    assert_eq!(several.status(), 422);
    let error: Value = several.json().await.expect("json");
    let message = error["error"]["message"].as_str().expect("message");
    for field in ["roles", "user_type", "display_name"] {
        assert!(message.contains(&format!("{field}:")), "`{field}` missing from: {message}");
    }
    let malformed = app
        .http
        .patch(app.api("/users/me"))
        .bearer_auth(&login.access_token)
        .header("content-type", "application/json")
        .body("{\"display_name\":")
        .send()
        .await
        .expect("patch");
    assert_eq!(malformed.status(), 400);
    let not_json = app
        .http
        .patch(app.api("/users/me"))
        .bearer_auth(&login.access_token)
        .body("display_name=x")
        .send()
        .await
        .expect("patch");
    assert_eq!(not_json.status(), 415);
    let huge = patch(json!({"display_name": "x".repeat(100_000)})).await.expect("patch");
    assert_eq!(huge.status(), 413);

    let me: Value = app.get_as(&login.access_token, "/users/me").await.json().await.expect("json");
    assert_eq!(me["user_type"], "beneficiary");
    assert_eq!(me["roles"], json!([]));
    assert!(has(&audit_actions(&app).await, "user.update", "success"));
    app.stop().await;
}

#[tokio::test]
async fn closing_the_account_ends_every_session() {
    let app = TestApp::spawn().await;
    let a = app.dev_login("donor").await;
    let b = app.dev_login("donor").await;
    let gone = app.http.delete(app.api("/users/me")).bearer_auth(&a.access_token).send().await.expect("delete");
    assert_eq!(gone.status(), 204);
    assert_eq!(app.get_as(&a.access_token, "/users/me").await.status(), 401);
    assert_eq!(app.get_as(&b.access_token, "/users/me").await.status(), 401);
    assert_eq!(app.refresh(&b.refresh).await.status(), 401);
    assert!(has(&audit_actions(&app).await, "user.delete", "success"));
    app.stop().await;
}

#[tokio::test]
async fn forged_and_stale_access_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("donor").await;
    let payload: Value = {
        use base64::Engine;
        let part = login.access_token.split('.').nth(1).expect("payload");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("b64"))
            .expect("json")
    };
    let b64 = |v: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let real_key = app.keys.private_key_named(harness::USER_TOKEN_KID);
    let sign = |kid: &str, key: &[u8], claims: &Value| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(key)).expect("sign")
    };

    let mut expired = payload.clone();
    expired["iat"] = json!(now() - 1000);
    expired["exp"] = json!(now() - 100);
    let mut long = payload.clone();
    long["exp"] = json!(now() + 86_400);
    let mut wrong_aud = payload.clone();
    wrong_aud["aud"] = json!("someone-else");
    let (other_key, _) = common::keys::generate().expect("key");
    let public_pem = std::fs::read(app.keys.dir.join(format!("{}.pub", harness::USER_TOKEN_KID))).expect("pub");
    let mut hmac_header = Header::new(Algorithm::HS256);
    hmac_header.kid = Some(harness::USER_TOKEN_KID.into());

    let cases = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT","kid":"user-k1"}"#),
                b64(&serde_json::to_vec(&payload).expect("json"))
            ),
        ),
        (
            "HMAC with the public key",
            jsonwebtoken::encode(&hmac_header, &payload, &EncodingKey::from_secret(&public_pem)).expect("sign"),
        ),
        ("unknown kid", sign("user-k9", &real_key, &payload)),
        ("wrong key", sign(harness::USER_TOKEN_KID, &other_key, &payload)),
        ("expired", sign(harness::USER_TOKEN_KID, &real_key, &expired)),
        ("lifetime over 15 minutes", sign(harness::USER_TOKEN_KID, &real_key, &long)),
        ("wrong audience", sign(harness::USER_TOKEN_KID, &real_key, &wrong_aud)),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (name, token) in cases {
        let response = app.get_as(&token, "/users/me").await;
        assert_eq!(response.status(), 401, "{name}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["message"], "authentication required", "{name}: generic message");
    }
    // The genuine token still works, and a correctly re-signed copy too (the key is the proof).
    assert_eq!(app.get_as(&sign(harness::USER_TOKEN_KID, &real_key, &payload), "/users/me").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn every_route_declares_its_access_and_non_public_ones_refuse_strangers() {
    let app = TestApp::spawn().await;
    let policy =
        public_api::auth::AccessPolicy::load(&harness::repo_root().join("policies/roles.toml")).expect("policy");
    for (method, path) in &app.public_api.routes {
        let route = format!("{method} {path}");
        let access = policy
            .access(&route)
            .unwrap_or_else(|| panic!("{route} is mounted but not declared in policies/roles.toml"));
        if *access == public_api::auth::Access::Public {
            continue;
        }
        let concrete = path.replace("<id>", &uuid::Uuid::new_v4().to_string());
        let url = format!("{}{concrete}", app.public_api.url);
        let request = app.http.request(method.parse().expect("method"), &url);
        let request =
            if matches!(method.as_str(), "POST" | "PATCH" | "PUT") { request.json(&json!({})) } else { request };
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "{route} without credentials");
    }
    app.stop().await;
}
