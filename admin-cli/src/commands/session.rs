//! `login`, `logout`, `whoami`: who the CLI acts as. The session is public-api's own, issued to
//! the person who signed in; every request carries it and every trail names that person.

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::failure::{Failure, Result};
use crate::settings::{self, Credentials};
use crate::Context;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  secondwind-admin --api-url http://127.0.0.1:8000 login --dev caseworker\n  secondwind-admin whoami"
)]
pub struct LoginArgs {
    /// Development profile only: sign in as a seeded demo user (donor, beneficiary, partner,
    /// caseworker, admin, compliance_officer). Production servers refuse it (404).
    #[arg(long, value_name = "DEMO_USER", required = true)]
    pub dev: String,
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
    let tokens: TokenResponse = api.post("/auth/dev-login", &DevLogin { user: &args.dev }).await.map_err(|f| {
        if f.exit == crate::failure::Exit::NotFound {
            Failure::failed(format!(
                "{} has no demo user `{}`, or dev sign-in is off (it is, on every production server)",
                api.base(),
                args.dev
            ))
        } else {
            f
        }
    })?;
    let credentials = Credentials {
        api_url: api.base().to_owned(),
        access_token: tokens.access_token,
        user_id: tokens.user_id,
        session_id: tokens.session_id,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + tokens.expires_in,
    };
    let me: Me = Api::signed_in(api.base().to_owned(), Some(credentials.clone()))?.get("/users/me").await?;
    let path = settings::save(&ctx.dir, &credentials)?;
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

pub async fn logout(ctx: &Context) -> Result<()> {
    let stored = settings::load(&ctx.dir)?;
    let mut ended = false;
    if let Some(credentials) = stored.clone() {
        let base = credentials.api_url.clone();
        if let Ok(api) = Api::signed_in(base, Some(credentials)) {
            match api.post::<(), serde_json::Value>("/auth/logout", &()).await {
                Ok(_) => ended = true,
                Err(f) => ctx.out.note(format!("note: the server did not end the session ({f}); forgetting it here")),
            }
        }
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
    let me: Me = ctx.api()?.get("/users/me").await?;
    ctx.out.one(&me, || format!("{} ({}), {}; roles: {}", me.email, me.display_name, me.id, roles(&me.roles)))
}

fn roles(roles: &[String]) -> String {
    if roles.is_empty() {
        "none".into()
    } else {
        roles.join(", ")
    }
}
