//! Users, tokens and clients.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Fleet {
    pub(crate) api: String,
    pub(crate) clients: Vec<reqwest::Client>,
    /// Each user's (user id, session id), and the key that signs their access tokens.
    pub(crate) sessions: Vec<(uuid::Uuid, uuid::Uuid)>,
    pub(crate) keys: Arc<public_api::auth::TokenKeys>,
    /// Access tokens live 15 minutes at most: [`Fleet::refresh`] mints new ones between phases.
    pub(crate) tokens: std::sync::RwLock<Arc<Vec<String>>>,
    pub(crate) profile: Value,
    pub(crate) next: AtomicUsize,
}

impl Fleet {
    pub(crate) fn new(
        api: String,
        clients: Vec<reqwest::Client>,
        sessions: Vec<(uuid::Uuid, uuid::Uuid)>,
        keys: Arc<public_api::auth::TokenKeys>,
    ) -> Result<Self> {
        let fleet = Self {
            api,
            clients,
            sessions,
            keys,
            tokens: std::sync::RwLock::new(Arc::new(Vec::new())),
            profile: harness::sample_profile(),
            next: AtomicUsize::new(0),
        };
        fleet.refresh()?;
        Ok(fleet)
    }

    /// Mints every user a fresh access token for their session, as a refresh would.
    pub(crate) fn refresh(&self) -> Result<()> {
        let tokens = self
            .sessions
            .iter()
            .map(|(user, session)| {
                self.keys.issue(*user, *session, vec![common::UserRole::Beneficiary]).map_err(|e| anyhow!(e))
            })
            .collect::<Result<Vec<_>>>()?;
        *self.tokens.write().map_err(|_| anyhow!("token lock poisoned"))? = Arc::new(tokens);
        Ok(())
    }

    /// Round-robins requests over clients (source addresses) and users.
    pub(crate) fn pick(&self) -> (usize, &reqwest::Client, String) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let tokens = self.tokens.read().map(|t| t.clone()).unwrap_or_default();
        // Every user in turn; the address shifts each round, so an address carries many users.
        let round = i / tokens.len().max(1);
        let token = tokens.get(i % tokens.len().max(1)).cloned().unwrap_or_default();
        (i, &self.clients[(i + round) % self.clients.len()], token)
    }

    pub(crate) fn request(&self, path: Route) -> reqwest::RequestBuilder {
        let (i, client, token) = self.pick();
        match path {
            Route::Me => client.get(format!("{}/api/v1/users/me", self.api)).bearer_auth(&token),
            Route::ProfileRead => {
                client.get(format!("{}/api/v1/beneficiaries/me/profile", self.api)).bearer_auth(&token)
            }
            Route::ProfileWrite => {
                let mut body = self.profile.clone();
                body["phone"] = json!(format!("303-555-{:04}", i % 10_000));
                client.put(format!("{}/api/v1/beneficiaries/me/profile", self.api)).bearer_auth(&token).json(&body)
            }
            Route::Dashboard => {
                client.get(format!("{}/api/v1/beneficiaries/me/dashboard", self.api)).bearer_auth(&token)
            }
        }
    }
}

pub(crate) fn clients(count: usize) -> Result<Vec<reqwest::Client>> {
    (0..count)
        .map(|i| {
            // 127.0.1.1, 127.0.1.2, … : all of 127/8 is loopback on Linux.
            let address = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            reqwest::Client::builder()
                .local_address(IpAddr::V4(address))
                .http1_only()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()
                .context("http client")
        })
        .collect()
}

/// Creates `count` beneficiaries, each with a live session, as a sign-in would; returns each
/// one's (user id, session id).
pub(crate) async fn beneficiaries(
    config: &public_api::PublicApiConfig,
    count: usize,
) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>> {
    let pool = sqlx::PgPool::connect(config.database.url.expose()).await.context("public database")?;
    let mut sessions = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut tx = pool.begin().await?;
        for _ in chunk {
            let user = uuid::Uuid::new_v4();
            sqlx::query(
                "INSERT INTO users (id, user_type, email, display_name, roles) VALUES ($1, 'beneficiary', $2, 'Load', '{}')",
            )
            .bind(user)
            .bind(format!("load+{user}@secondwind.invalid"))
            .execute(&mut *tx)
            .await?;
            let (session, _) = public_api::auth::sessions::create(&mut tx, user, 1, None, None).await?;
            sessions.push((user, session));
        }
        tx.commit().await?;
    }
    pool.close().await;
    Ok(sessions)
}
