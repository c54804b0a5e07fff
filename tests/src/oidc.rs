//! The OpenID provider `scripts/test` starts (npm `oidc-provider`), and a browser stand-in
//! that follows its redirects with a cookie jar until it is sent back to the redirect URI.

use std::collections::BTreeMap;

pub struct OidcEnv {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The separate client the device flow uses (the provider grants the web client no device
    /// codes), when the provider was started with one.
    pub device_client: Option<(String, String)>,
    pub redirect_uri: String,
    /// The provider's private signing key (JWK), for minting tokens it could have signed.
    pub jwk_file: String,
    pub mint_script: String,
}

/// The provider's settings, when `scripts/test` started one.
pub fn env() -> Option<OidcEnv> {
    let var = |k: &str| std::env::var(format!("SECONDWIND_TEST_OIDC_{k}")).ok();
    Some(OidcEnv {
        issuer: var("ISSUER")?,
        client_id: var("CLIENT_ID")?,
        client_secret: var("CLIENT_SECRET")?,
        device_client: var("DEVICE_CLIENT_ID").zip(var("DEVICE_CLIENT_SECRET")),
        redirect_uri: var("REDIRECT_URI")?,
        jwk_file: var("JWK")?,
        mint_script: var("MINT")?,
    })
}

pub fn require_env() -> OidcEnv {
    env().expect("SECONDWIND_TEST_OIDC_*: run the tests with scripts/test, which starts the OpenID provider")
}

/// The public-api provider entry for it.
pub fn provider_config(env: &OidcEnv) -> public_api::auth::oidc::OidcProviderConfig {
    public_api::auth::oidc::OidcProviderConfig {
        issuer: env.issuer.clone(),
        client_id: env.client_id.clone(),
        client_secret: Some(common::Secret::new(env.client_secret.clone())),
        redirect_uri: env.redirect_uri.clone(),
        scopes: vec!["email".into(), "profile".into()],
        apple: None,
        device_flow: true,
        device_client_id: env.device_client.as_ref().map(|(id, _)| id.clone()),
        device_client_secret: env.device_client.as_ref().map(|(_, secret)| common::Secret::new(secret.clone())),
    }
}

/// The pre-sign-in cookie a `/start` response sets, as a `Cookie` header value, checking its
/// attributes (`__Host-`: Secure, Path=/, no Domain; HttpOnly; SameSite=None for Apple's post).
pub fn browser_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let value = c.strip_prefix("__Host-sw_signin=")?.split(';').next()?;
        for attribute in ["HttpOnly", "Secure", "SameSite=None", "Path=/;"] {
            assert!(format!("{c};").contains(attribute), "pre-sign-in cookie lacks {attribute}: {c}");
        }
        assert!(!c.to_ascii_lowercase().contains("domain="), "a __Host- cookie has no Domain: {c}");
        Some(format!("__Host-sw_signin={value}"))
    })
}

/// The cookies a response sets (or clears), kept as a browser keeps them.
fn keep_cookies(cookies: &mut BTreeMap<String, String>, response: &reqwest::Response) {
    for set in response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
        if let Some((name, rest)) = set.split_once('=') {
            let value = rest.split(';').next().unwrap_or_default();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

fn cookie_header(cookies: &BTreeMap<String, String>) -> String {
    cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// Follows redirects from `authorization_url` as a browser would, keeping cookies, and returns
/// the query of the final redirect to `redirect_uri` (`code`, `state`, or `error`).
pub async fn browse(authorization_url: &str, redirect_uri: &str) -> BTreeMap<String, String> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = reqwest::Url::parse(authorization_url).expect("url");
    for _ in 0..10 {
        let header = cookie_header(&cookies);
        let response = client.get(url.clone()).header("cookie", header).send().await.expect("provider request");
        keep_cookies(&mut cookies, &response);
        let status = response.status();
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        let Some(location) = location else {
            panic!("provider answered {status} without a redirect: {}", response.text().await.unwrap_or_default());
        };
        url = url.join(&location).expect("location");
        if url.as_str().starts_with(redirect_uri) {
            return url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        }
    }
    panic!("too many redirects");
}

/// Signs `claims` as an id_token: with the provider's own key, or (`forged`) a stranger's key
/// carrying the provider's kid.
pub fn mint(env: &OidcEnv, claims: &serde_json::Value, forged: bool) -> String {
    let jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&env.jwk_file).expect("jwk")).expect("jwk json");
    let kid = jwk["kid"].as_str().expect("kid").to_owned();
    let source = if forged { "stranger".to_owned() } else { env.jwk_file.clone() };
    let dir = std::path::Path::new(&env.mint_script).parent().expect("dir").to_owned();
    let out = std::process::Command::new("node")
        .current_dir(dir)
        .args([env.mint_script.as_str(), &source, &kid, &claims.to_string()])
        .output()
        .expect("node");
    assert!(out.status.success(), "mint failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// The value of `attribute="…"` in `tag`, with the provider's HTML escaping undone.
fn attribute(tag: &str, attribute: &str) -> Option<String> {
    let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The first form on a page: its action and its hidden fields.
fn form_of(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let form = &html[html.find("<form")?..];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            (attribute(tag, "type").as_deref() == Some("hidden"))
                .then(|| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
                .flatten()
        })
        .collect();
    Some((action, fields))
}

/// Plays the person approving a device sign-in (RFC 8628) in a browser: opens the
/// verification URL with the code filled in, posts the provider's forms (the code, then the
/// confirmation), follows its redirects through the sign-in and consent, and stops at its
/// success page. The account is the one the device's `login_hint` named.
pub async fn approve_device(verification_uri_complete: &str) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = reqwest::Url::parse(verification_uri_complete).expect("url");
    let mut post: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        let header = cookie_header(&cookies);
        let request = match post.take() {
            Some(fields) => {
                let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&fields).finish();
                client.post(url.clone()).header("content-type", "application/x-www-form-urlencoded").body(body)
            }
            None => client.get(url.clone()),
        };
        let response = request.header("cookie", header).send().await.expect("provider request");
        keep_cookies(&mut cookies, &response);
        let status = response.status();
        if let Some(location) = response.headers().get("location").and_then(|l| l.to_str().ok()) {
            url = url.join(location).expect("location");
            continue;
        }
        let html = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "provider answered {status}: {html}");
        if html.contains("id=\"signed-in\"") {
            return;
        }
        let (action, fields) = form_of(&html).unwrap_or_else(|| panic!("no form and no success on the page: {html}"));
        url = url.join(&action).expect("action");
        post = Some(fields);
    }
    panic!("the device approval did not finish");
}
