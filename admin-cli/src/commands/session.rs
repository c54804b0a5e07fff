//! `login`, `logout`, `whoami`: who the CLI acts as. The session is public-api's own, issued to
//! the person who signed in; every request carries it and every trail names that person.

use clap::Args;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::failure::{Failure, Result};
use crate::settings::{self, Credentials};
use crate::Context;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  secondwind-admin --api-url https://api.example.org login --provider google --email sam@example.org\n  \
                  secondwind-admin --api-url http://127.0.0.1:8000 login --dev caseworker\n  secondwind-admin whoami"
)]
#[group(id = "how", required = true, args = ["provider", "dev"])]
pub struct LoginArgs {
    /// Sign in with your organisation's identity provider (as configured on the server, e.g.
    /// google): the CLI shows a code and a web address; confirm the code there, in any browser.
    #[arg(long, env = "SECONDWIND_SIGN_IN_PROVIDER")]
    pub provider: Option<String>,
    /// With --provider: your sign-in email, to pre-select the account at the provider.
    #[arg(long, requires = "provider")]
    pub email: Option<String>,
    /// Development profile only: sign in as a seeded demo user (donor, beneficiary, partner,
    /// caseworker, admin, compliance_officer). Production servers refuse it (404).
    #[arg(long, value_name = "DEMO_USER", conflicts_with = "provider")]
    pub dev: Option<String>,
}

#[derive(Serialize)]
struct DeviceStart<'a> {
    login_hint: Option<&'a str>,
}

#[derive(Deserialize)]
struct DeviceStarted {
    handle: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: u64,
}

#[derive(Serialize)]
struct DeviceToken<'a> {
    handle: &'a str,
}

/// The poll's answer: the session, or "not yet".
#[derive(Deserialize)]
#[serde(untagged)]
enum DevicePoll {
    Done(TokenResponse),
    Pending { interval: u64 },
}

/// Signs in through the provider's device flow: the person confirms the code in any browser
/// while this polls public-api, which alone talks to the provider.
async fn device_login(api: &Api, provider: &str, email: Option<&str>) -> Result<(TokenResponse, Option<String>)> {
    let provider_path = url::form_urlencoded::byte_serialize(provider.as_bytes()).collect::<String>();
    let started: DeviceStarted =
        api.post(&format!("/auth/{provider_path}/device"), &DeviceStart { login_hint: email }).await.map_err(|f| {
            if f.exit == crate::failure::Exit::NotFound {
                Failure::usage(format!("{} has no sign-in provider `{provider}`", api.base()))
            } else {
                f
            }
        })?;
    let open = started.verification_uri_complete.as_deref().unwrap_or(&started.verification_uri);
    eprintln!(
        "To sign in, open this address in a browser and confirm the code {}:\nOpen: {}\nWaiting for you to confirm (up to {} minutes)...",
        crate::output::printable(&started.user_code),
        crate::output::printable(open),
        started.expires_in.div_ceil(60)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(started.expires_in.min(1800));
    let mut interval = started.interval.clamp(1, 60);
    let path = format!("/auth/{provider_path}/device/token");
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        if std::time::Instant::now() > deadline {
            return Err(Failure::failed("the code expired before it was confirmed: run `login` again"));
        }
        let poll = DeviceToken { handle: &started.handle };
        match api.call_keeping_refresh::<_, DevicePoll>(Method::POST, &path, Some(&poll)).await {
            Ok((DevicePoll::Done(tokens), refresh)) => return Ok((tokens, refresh)),
            Ok((DevicePoll::Pending { interval: next }, _)) => interval = next.clamp(1, 60),
            Err(f) if f.message.contains("too many requests") => interval = (interval + 5).min(60),
            Err(f) if f.exit == crate::failure::Exit::Denied => {
                return Err(Failure::denied(
                    "sign-in was declined, expired, or this identity has no SecondWind account \
                     (an admin links staff accounts): run `login` again or ask an admin",
                ))
            }
            Err(f) => return Err(f),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    user_id: uuid::Uuid,
    session_id: uuid::Uuid,
}

#[derive(Serialize)]
struct DevLogin<'a> {
    user: &'a str,
}

/// Who you are, as the server sees you.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Me {
    pub id: uuid::Uuid,
    pub user_type: String,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<String>,
}

pub async fn login(ctx: &Context, args: LoginArgs) -> Result<()> {
    let api = Api::new(ctx.api_url()?, None)?;
    let (tokens, refresh_token) = match (&args.dev, &args.provider) {
        (Some(demo), _) => api
            .call_keeping_refresh(Method::POST, "/auth/dev-login", Some(&DevLogin { user: demo }))
            .await
            .map_err(|f| {
                if f.exit == crate::failure::Exit::NotFound {
                    Failure::failed(format!(
                        "{} has no demo user `{demo}`, or dev sign-in is off (it is, on every production server)",
                        api.base()
                    ))
                } else {
                    f
                }
            })?,
        (None, Some(provider)) => device_login(&api, provider, args.email.as_deref()).await?,
        (None, None) => return Err(Failure::usage("give --provider NAME (or --dev DEMO_USER on a dev server)")),
    };
    let credentials = Credentials {
        api_url: api.base().to_owned(),
        access_token: tokens.access_token,
        user_id: tokens.user_id,
        session_id: tokens.session_id,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + tokens.expires_in,
        refresh_token,
    };
    let me: Me = Api::signed_in(api.base().to_owned(), Some(credentials.clone()))?.get("/users/me").await?;
    let path = {
        // Not while another command is renewing the session being replaced.
        let _lock = settings::lock(&ctx.dir)?;
        settings::save(&ctx.dir, &credentials)?
    };
    ctx.out.one(&me, || {
        format!(
            "signed in to {} as {} ({}); roles: {}. Session kept in {} (readable only by you).",
            credentials.api_url,
            me.email,
            me.display_name,
            roles(&me.roles),
            path.display()
        )
    })
}

pub async fn logout(ctx: &Context, force: bool) -> Result<()> {
    let mut ended = false;
    if settings::load(&ctx.dir)?.is_some() {
        // Renewed first if it has expired, so the server can still end the session.
        match ctx.api().await {
            Ok(api) => match api.post::<(), serde_json::Value>("/auth/logout", &()).await {
                Ok(_) => ended = true,
                Err(f) => ctx.out.note(format!("note: the server did not end the session ({f})")),
            },
            Err(f) => ctx.out.note(format!("note: the session could not be ended on the server ({f})")),
        }
    }
    // A session the server did not end stays usable by any copy of it: keep ours, so the
    // person can try again, unless they insist.
    if !ended && !force && settings::load(&ctx.dir)?.is_some() {
        return Err(Failure::failed(
            "the session could not be ended on the server, so it is kept here: try `logout` again, \
             or `logout --force` to forget it anyway (then end it from the web app's session list)",
        ));
    }
    let forgotten = settings::forget(&ctx.dir)?;
    ctx.out.one(&serde_json::json!({ "signed_out": forgotten, "session_ended": ended }), || {
        if forgotten {
            "signed out".to_owned()
        } else {
            "not signed in".to_owned()
        }
    })
}

pub async fn whoami(ctx: &Context) -> Result<()> {
    let me: Me = ctx.api().await?.get("/users/me").await?;
    ctx.out.one(&me, || format!("{} ({}), {}; roles: {}", me.email, me.display_name, me.id, roles(&me.roles)))
}

fn roles(roles: &[String]) -> String {
    if roles.is_empty() {
        "none".into()
    } else {
        roles.join(", ")
    }
}
