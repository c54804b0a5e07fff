//! Sign-in through a real OpenID provider (npm `oidc-provider`, started by scripts/test): the
//! full authorization code flow with PKCE, state and nonce; then refresh and logout; replayed
//! state and code; a wrong client secret; and id_tokens with the wrong audience, issuer, expiry,
//! signature or nonce, checked against the provider's published keys.

use harness::oidc::{self, browse, mint};
use harness::TestApp;
use serde_json::{json, Value};

async fn start(app: &TestApp, body: Value) -> (u16, Value) {
    let (status, started, _) = start_in(app, body, None).await;
    (status, started)
}

/// `/start` from a browser holding `cookie` (or none): the status, the body and the browser's
/// pre-sign-in cookie afterwards (`Cookie` header form).
async fn start_in(app: &TestApp, body: Value, cookie: Option<&str>) -> (u16, Value, Option<String>) {
    let mut request = app.http.post(app.api("/auth/test/start")).json(&body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("start");
    let status = response.status().as_u16();
    let cookie = oidc::browser_cookie(response.headers());
    (status, response.json().await.expect("json"), cookie)
}

/// The JSON callback from the browser holding `cookie` (`Cookie` header form).
async fn callback(app: &TestApp, code: &str, state: &str, cookie: &str) -> reqwest::Response {
    let body = json!({"code": code, "state": state});
    app.http.post(app.api("/auth/test")).header("cookie", cookie).json(&body).send().await.expect("callback")
}

/// Start in a fresh browser, browse the provider as `login`, return (code, state, the browser's
/// pre-sign-in cookie).
async fn authorize(app: &TestApp, login: &str, user_type: Option<&str>) -> (String, String, String) {
    authorize_in(app, login, user_type, None).await
}

async fn authorize_in(
    app: &TestApp,
    login: &str,
    user_type: Option<&str>,
    cookie: Option<&str>,
) -> (String, String, String) {
    let env = oidc::require_env();
    let (status, started, cookie) = start_in(app, json!({"user_type": user_type, "login_hint": login}), cookie).await;
    assert_eq!(status, 200, "{started}");
    let cookie = cookie.expect("/start sets the pre-sign-in cookie");
    let url = started["authorization_url"].as_str().expect("url");
    assert!(url.contains("code_challenge_method=S256") && url.contains("nonce=") && url.contains("state="), "{url}");
    let back = browse(url, &env.redirect_uri).await;
    assert_eq!(back.get("state").map(String::as_str), started["state"].as_str(), "the provider echoes our state");
    (back.get("code").unwrap_or_else(|| panic!("no code: {back:?}")).clone(), back["state"].clone(), cookie)
}

/// A refused sign-in writes one failed `auth.login` row under its request id, with no actor
/// (none was proven).
async fn assert_refusal_audited(pool: &sqlx::PgPool, request_id: &str) {
    let audited: Vec<(Option<uuid::Uuid>, String, String)> =
        sqlx::query_as("SELECT actor_id, action, outcome FROM audit_logs WHERE request_id = $1")
            .bind(request_id)
            .fetch_all(pool)
            .await
            .expect("audit");
    assert_eq!(audited, vec![(None, "auth.login".to_owned(), "failure".to_owned())]);
}

#[tokio::test]
async fn a_new_user_signs_in_refreshes_and_logs_out_through_the_provider() {
    let app = TestApp::spawn().await;
    let login = format!("alice-{}", app.id);
    let (code, state, cookie) = authorize(&app, &login, Some("beneficiary")).await;
    let response = callback(&app, &code, &state, &cookie).await;
    assert_eq!(response.status(), 200);
    let refresh = harness::auth::refresh_cookie(&response).expect("refresh cookie");
    let tokens: Value = response.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("token");

    let me: Value = app.get_as(access, "/users/me").await.json().await.expect("json");
    assert_eq!(me["email"], format!("{login}@example.org"));
    assert_eq!(me["display_name"], format!("Test {login}"));
    assert_eq!(me["user_type"], "beneficiary");

    // Replaying the same state (and so nonce) and code is refused and audited.
    assert_eq!(callback(&app, &code, &state, &cookie).await.status(), 401);

    // Refresh and logout work for provider sessions as for any other.
    let next = app.refreshed(&refresh).await;
    let out = app.http.post(app.api("/auth/logout")).bearer_auth(&next.access_token).send().await.expect("logout");
    assert_eq!(out.status(), 204);
    assert_eq!(app.get_as(&next.access_token, "/users/me").await.status(), 401);

    // Signing in again finds the same account; no type needed.
    let (code, state, cookie) = authorize(&app, &login, None).await;
    let again: Value = callback(&app, &code, &state, &cookie).await.json().await.expect("json");
    assert_eq!(again["user_id"], me["id"]);

    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT action, outcome, reason FROM audit_logs WHERE action = 'auth.login' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.iter().filter(|(_, o, _)| o == "success").count(), 2);
    let failure = rows.iter().find(|(_, o, _)| o == "failure").expect("the replay is audited");
    assert!(failure.2.as_deref().unwrap_or_default().contains("already used state"), "{failure:?}");
    assert!(public_api::audit::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn sign_up_rules_and_bad_requests() {
    let app = TestApp::spawn().await;
    // A new identity without a chosen type cannot create an account.
    let (code, state, cookie) = authorize(&app, &format!("bob-{}", app.id), None).await;
    let response = callback(&app, &code, &state, &cookie).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"].as_str().expect("message").contains("user_type"));

    // Staff is never a sign-up choice; unknown providers are 404; forged state is 401.
    assert_eq!(start(&app, json!({"user_type": "staff"})).await.0, 422);
    assert_eq!(start(&app, json!({"user_type": "admin"})).await.0, 422);
    assert_eq!(start(&app, json!({"roles": ["admin"]})).await.0, 422);
    let unknown = app.http.post(app.api("/auth/nosuch/start")).json(&json!({})).send().await.expect("start");
    assert_eq!(unknown.status(), 404);
    let (_, _, cookie) = start_in(&app, json!({}), None).await;
    assert_eq!(callback(&app, "code", "forged-state", &cookie.expect("cookie")).await.status(), 401);

    // An email already used by another account is not silently linked: carol signs up, her
    // email is then taken by a different account, and a new identity with that email is refused.
    let carol = format!("carol-{}", app.id);
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    sqlx::query("INSERT INTO users (id, user_type, email, display_name) VALUES ($1, 'donor', $2, 'Other')")
        .bind(uuid::Uuid::new_v4())
        .bind(format!("{carol}@example.org"))
        .execute(&pool)
        .await
        .expect("insert");
    let counts = || async {
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.expect("users");
        let identities: i64 =
            sqlx::query_scalar("SELECT count(*) FROM identities").fetch_one(&pool).await.expect("identities");
        (users, identities)
    };
    let before = counts().await;
    let (code, state, cookie) = authorize(&app, &carol, Some("donor")).await;
    let response = callback(&app, &code, &state, &cookie).await;
    assert_eq!(response.status(), 409);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "conflict");
    // Neither a second account nor an identity linked to the existing one was written.
    assert_eq!(counts().await, before);
    let linked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identities i JOIN users u ON u.id = i.user_id WHERE u.email = $1")
            .bind(format!("{carol}@example.org"))
            .fetch_one(&pool)
            .await
            .expect("linked");
    assert_eq!(linked, 0, "carol's identity was linked to the other account");
    // The refusal is audited like any refused sign-in: one failed row, no actor (none was proven).
    assert_refusal_audited(&pool, &request_id).await;

    // A first sign-in that fails once the account is written (here: no session can be stored)
    // leaves no account and no identity behind: they commit with the session and its audit row.
    harness::refuse_inserts(app.database(common::db::Database::Public), "sessions", "true").await;
    let before = counts().await;
    let (code, state, cookie) = authorize(&app, &format!("dora-{}", app.id), Some("donor")).await;
    assert!(callback(&app, &code, &state, &cookie).await.status().is_server_error());
    assert_eq!(counts().await, before, "a failed first sign-in left an account or identity behind");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn simultaneous_first_sign_ins_make_one_account_and_a_conflict() {
    let app = TestApp::spawn().await;
    let login = format!("erin-{}", app.id);
    let email = format!("{login}@example.org");
    // Two sign-ins of the same new person (say, two tabs), each through the provider.
    let (first, second) = (authorize(&app, &login, Some("donor")).await, authorize(&app, &login, Some("donor")).await);
    // Each checks that neither the identity nor the email is taken, then writes; holding both
    // account inserts at a gate makes both checks pass before either write commits.
    let mut gate = harness::gate_inserts(app.database(common::db::Database::Public), "users").await;
    let both = tokio::spawn({
        let (client, url) = (app.http.clone(), app.api("/auth/test"));
        async move {
            let post = |(code, state, cookie): (String, String, String)| {
                client.post(&url).header("cookie", cookie).json(&json!({"code": code, "state": state})).send()
            };
            let (a, b) = tokio::join!(post(first), post(second));
            (a.expect("callback"), b.expect("callback"))
        }
    });
    gate.wait_for(2).await;
    gate.open().await;
    let (a, b) = both.await.expect("both sign-ins");
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "one sign-in creates the account, the other is told to sign in again");
    let loser = if a.status() == 409 { a } else { b };
    let request_id = loser.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: Value = loser.json().await.expect("json");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert!(body["error"]["message"].as_str().expect("message").contains("sign in again"), "{body}");

    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let accounts: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(&email).fetch_all(&pool).await.expect("users");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let linked: i64 = sqlx::query_scalar("SELECT count(*) FROM identities WHERE user_id = $1")
        .bind(accounts[0])
        .fetch_one(&pool)
        .await
        .expect("identities");
    assert_eq!(linked, 1);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1")
        .bind(accounts[0])
        .fetch_one(&pool)
        .await
        .expect("sessions");
    assert_eq!(sessions, 1, "the refused sign-in opened no session");
    // The refused one is audited as a refused sign-in, with no actor.
    assert_refusal_audited(&pool, &request_id).await;
    // Signing in again finds the account the winner made.
    let (code, state, cookie) = authorize(&app, &login, None).await;
    let again: Value = callback(&app, &code, &state, &cookie).await.json().await.expect("json");
    assert_eq!(again["user_id"], accounts[0].to_string());
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_closed_account_s_identity_signs_up_afresh() {
    let app = TestApp::spawn().await;
    let login = format!("fay-{}", app.id);
    let (code, state, cookie) = authorize(&app, &login, Some("donor")).await;
    let first: Value = callback(&app, &code, &state, &cookie).await.json().await.expect("json");
    let closed = first["user_id"].as_str().expect("user id").to_owned();
    let access = first["access_token"].as_str().expect("token");
    let gone = app.http.delete(app.api("/users/me")).bearer_auth(access).send().await.expect("close");
    assert_eq!(gone.status(), 204);

    // Without a type there is nothing to sign in to; with one, a new account.
    let (code, state, cookie) = authorize(&app, &login, None).await;
    assert_eq!(callback(&app, &code, &state, &cookie).await.status(), 422);
    let (code, state, cookie) = authorize(&app, &login, Some("beneficiary")).await;
    let response = callback(&app, &code, &state, &cookie).await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.expect("json");
    let fresh = second["user_id"].as_str().expect("user id").to_owned();
    assert_ne!(fresh, closed);
    let me: Value =
        app.get_as(second["access_token"].as_str().expect("token"), "/users/me").await.json().await.expect("json");
    assert_eq!(me["user_type"], "beneficiary");
    // The identity leads to the new account from now on; the closed one stays closed.
    let (code, state, cookie) = authorize(&app, &login, None).await;
    let again: Value = callback(&app, &code, &state, &cookie).await.json().await.expect("json");
    assert_eq!(again["user_id"].as_str(), Some(fresh.as_str()));
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let closed_still: bool = sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM users WHERE id = $1::uuid")
        .bind(&closed)
        .fetch_one(&pool)
        .await
        .expect("closed account");
    assert!(closed_still);
    // The move is audited by the person the sign-in proved, naming the closed account: the one
    // record that the two accounts are the same person at this provider.
    let relinks: Vec<(Option<uuid::Uuid>, Option<String>, String)> =
        sqlx::query_as("SELECT actor_id, resource_id, outcome FROM audit_logs WHERE action = 'auth.identity_relink'")
            .fetch_all(&pool)
            .await
            .expect("audit");
    assert_eq!(relinks, vec![(fresh.parse().ok(), Some(closed.clone()), "success".to_owned())]);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_identity_linked_meanwhile_to_a_live_account_is_not_taken_over() {
    let app = TestApp::spawn().await;
    let login = format!("gus-{}", app.id);
    let (code, state, cookie) = authorize(&app, &login, Some("donor")).await;
    // The sign-up finds no account for the identity, then waits at its account insert while
    // another account, live, is linked to the same identity.
    let mut gate = harness::gate_inserts(app.database(common::db::Database::Public), "users").await;
    let signing_up = tokio::spawn({
        let request =
            app.http.post(app.api("/auth/test")).header("cookie", cookie).json(&json!({"code": code, "state": state}));
        async move { request.send().await.expect("callback") }
    });
    gate.wait_for(1).await;
    let other = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, user_type, email, display_name) VALUES ($1, 'donor', $2, 'Other')")
        .bind(other)
        .bind(format!("other-{login}@example.org"))
        .execute(gate.connection())
        .await
        .expect("live account");
    sqlx::query("INSERT INTO identities (provider, subject, user_id) VALUES ('test', $1, $2)")
        .bind(&login)
        .bind(other)
        .execute(gate.connection())
        .await
        .expect("identity");
    gate.open().await;
    let response = signing_up.await.expect("sign-up");
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"].as_str().expect("message").contains("sign in again"), "{body}");

    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let owner: uuid::Uuid =
        sqlx::query_scalar("SELECT user_id FROM identities WHERE provider = 'test' AND subject = $1")
            .bind(&login)
            .fetch_one(&pool)
            .await
            .expect("identity");
    assert_eq!(owner, other, "the live account's identity was taken over");
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(format!("{login}@example.org"))
        .fetch_one(&pool)
        .await
        .expect("users");
    assert_eq!(made, 0, "the refused sign-up left its account behind");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_by_the_provider() {
    let env = oidc::require_env();
    let app = TestApp::spawn_with(|c| {
        let mut wrong = oidc::provider_config(&env);
        wrong.client_secret = Some(common::Secret::new("not-the-secret".into()));
        c.service.auth.oidc.insert("test".into(), wrong);
    })
    .await;
    let (code, state, cookie) = authorize(&app, &format!("dave-{}", app.id), Some("donor")).await;
    let response = callback(&app, &code, &state, &cookie).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["message"], "authentication required", "no detail leaks to the client");
    app.stop().await;
}

#[tokio::test]
async fn forged_id_tokens_are_rejected() {
    harness::init();
    let env = oidc::require_env();
    let providers =
        public_api::auth::oidc::OidcProviders::new([("test".to_owned(), oidc::provider_config(&env))].into(), false)
            .expect("providers");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = json!({
        "iss": env.issuer, "aud": env.client_id, "sub": "erin", "iat": now, "exp": now + 300,
        "nonce": "n-123", "email": "erin@example.org", "email_verified": true,
    });
    // The control: a token the provider could have issued verifies.
    let ok = providers.verify_id_token("test", &mint(&env, &good, false), "n-123").await.expect("valid token");
    assert_eq!(ok.subject, "erin");
    assert!(ok.email_verified);

    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let cases = [
        ("wrong audience", mint(&env, &with("aud", json!("someone-else")), false), "n-123"),
        ("wrong issuer", mint(&env, &with("iss", json!("http://127.0.0.1:1")), false), "n-123"),
        ("expired", mint(&env, &with("exp", json!(now - 600)), false), "n-123"),
        ("bad signature", mint(&env, &good, true), "n-123"),
        ("replayed or wrong nonce", mint(&env, &good, false), "n-other"),
        ("not a JWT", "garbage".to_owned(), "n-123"),
    ];
    for (name, token, nonce) in cases {
        let result = providers.verify_id_token("test", &token, nonce).await;
        assert!(result.is_err(), "{name} must be rejected");
    }
}

/// A form post as the provider's auto-submitting page sends it, from a browser holding `cookie`
/// (or none), with redirects not followed.
async fn form_post(app: &TestApp, form: Vec<(&'static str, String)>, cookie: Option<&str>) -> reqwest::Response {
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut encoder = reqwest::Url::parse("http://form.invalid/").expect("url");
    encoder.query_pairs_mut().extend_pairs(form);
    let mut request = no_redirects
        .post(app.api("/auth/test/form-callback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoder.query().unwrap_or_default().to_owned());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("post")
}

#[tokio::test]
async fn a_form_post_sign_in_returns_the_browser_to_the_frontend() {
    let app = TestApp::spawn().await;
    let (code, state, cookie) = authorize(&app, &format!("frank-{}", app.id), Some("partner")).await;
    let user = r#"{"name":{"firstName":"Frank","lastName":"Lee"}}"#.to_owned();
    let form = vec![("code", code.clone()), ("state", state.clone()), ("user", user)];
    let response = form_post(&app, form, Some(&cookie)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "http://localhost:5173/auth/complete?status=ok");
    let refresh = harness::auth::refresh_cookie(&response).expect("refresh cookie");
    // The frontend then trades the cookie for an access token.
    let login = app.refreshed(&refresh).await;
    let me: Value = app.get_as(&login.access_token, "/users/me").await.json().await.expect("json");
    assert_eq!(me["display_name"], "Frank Lee", "Apple's first-login name is used");
    assert_eq!(me["user_type"], "partner");

    // Replays and provider errors come back as an error code, never a session.
    let replay = form_post(&app, vec![("code", code), ("state", state)], Some(&cookie)).await;
    assert_eq!(replay.headers()["location"], "http://localhost:5173/auth/complete?error=sign_in_failed");
    assert!(harness::auth::refresh_cookie(&replay).is_none());
    let cancelled = form_post(&app, vec![("error", "user_cancelled_authorize".to_owned())], Some(&cookie)).await;
    assert_eq!(cancelled.headers()["location"], "http://localhost:5173/auth/complete?error=sign_in_failed");
    app.stop().await;
}

/// Login CSRF: an attacker signs in at the provider as themself, stops before the callback,
/// and makes a victim's browser post their `code` and `state`. The victim's browser did not
/// start that sign-in, so it is refused, through either callback, and audited; the attempt is
/// not spent, and the browser that started it can still finish it.
#[tokio::test]
async fn an_attackers_code_and_state_do_not_sign_in_another_browser() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions").fetch_one(&pool).await.expect("sessions")
    };
    let (code, state, attackers) = authorize(&app, &format!("mallory-{}", app.id), Some("donor")).await;
    // The victim's browser: a fresh jar, or one with a sign-in of its own under way.
    let (_, _, victims) = start_in(&app, json!({"user_type": "beneficiary"}), None).await;
    let victims = victims.expect("the victim's own pre-sign-in cookie");
    assert_ne!(victims, attackers);
    let before = sessions().await;
    for cookie in [None, Some(victims.as_str())] {
        let forged = form_post(&app, vec![("code", code.clone()), ("state", state.clone())], cookie).await;
        assert_eq!(forged.status(), 303);
        assert_eq!(forged.headers()["location"], "http://localhost:5173/auth/complete?error=sign_in_failed");
        assert!(harness::auth::refresh_cookie(&forged).is_none(), "no session for the victim's browser");
        let request_id = forged.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        assert_refusal_audited(&pool, &request_id).await;
    }
    let json_forged = callback(&app, &code, &state, &victims).await;
    assert_eq!(json_forged.status(), 401);
    let no_cookie = app
        .http
        .post(app.api("/auth/test"))
        .json(&json!({"code": code, "state": state}))
        .send()
        .await
        .expect("callback");
    assert_eq!(no_cookie.status(), 401);
    let body: Value = no_cookie.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(sessions().await, before, "no refused post opened a session");

    // Two sign-ins in one browser (two tabs) share its cookie, and either can finish.
    let (_, _, again) = start_in(&app, json!({}), Some(&attackers)).await;
    assert_eq!(again.as_deref(), Some(attackers.as_str()), "a browser's binding is kept across starts");
    let finished = callback(&app, &code, &state, &attackers).await;
    assert_eq!(finished.status(), 200, "the attacker's own browser still finishes its own sign-in");
    pool.close().await;
    app.stop().await;
}

/// Expired attempts are deleted (the service runs this at start and every five minutes); live
/// ones stay and still complete.
#[tokio::test]
async fn expired_sign_in_attempts_are_purged_and_live_ones_kept() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let (_, stale, _) = start_in(&app, json!({}), None).await;
    let (code, state, cookie) = authorize(&app, &format!("gail-{}", app.id), Some("donor")).await;
    sqlx::query("UPDATE oidc_logins SET expires_at = now() - interval '1 second' WHERE state = $1")
        .bind(stale["state"].as_str().expect("state"))
        .execute(&pool)
        .await
        .expect("expire");
    let (web, _) = public_api::auth::oidc::purge_expired(&pool).await.expect("purge");
    assert_eq!(web, 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT state FROM oidc_logins").fetch_all(&pool).await.expect("attempts");
    assert_eq!(left, vec![state.clone()]);
    assert_eq!(callback(&app, &code, &state, &cookie).await.status(), 200);
    pool.close().await;
    app.stop().await;
}
