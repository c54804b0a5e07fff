//! Sign-in from a device without a browser (RFC 8628), the provider's side: the device
//! authorization endpoint from the discovery document, the client's authenticated form posts,
//! and one poll of the token endpoint.

use openidconnect::core::CoreIdToken;
use openidconnect::{ClientSecret, Nonce, NonceVerifier};

use super::provider::{Entry, OidcError, OidcProviders, VerifiedIdentity};

/// A started device sign-in (RFC 8628): what the person is shown, and what public-api keeps.
pub struct DeviceStarted {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    pub interval: i64,
    pub nonce: String,
}

/// One poll of a device sign-in.
pub enum DevicePoll {
    Pending,
    SlowDown,
    /// Declined, expired or refused: this sign-in is over.
    Ended(String),
    Done(VerifiedIdentity),
}

impl OidcProviders {
    /// The client id and secret the device flow uses: the device client when one is named.
    fn device_client(entry: &Entry) -> Result<(String, ClientSecret), OidcError> {
        match (&entry.config.device_client_id, &entry.config.device_client_secret) {
            (Some(id), Some(secret)) => Ok((id.clone(), ClientSecret::new(secret.expose().clone()))),
            _ => Ok((entry.config.client_id.clone(), Self::secret(entry)?)),
        }
    }

    /// The provider's device authorization endpoint (RFC 8628), from its discovery document
    /// (the typed metadata does not carry it). Fetched on each use: device sign-ins are rare.
    async fn device_endpoint(&self, entry: &Entry) -> Result<String, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", entry.config.issuer.trim_end_matches('/'));
        let doc: serde_json::Value = self
            .http
            .0
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| OidcError::Unreachable(e.to_string()))?
            .json()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if doc["issuer"].as_str() != Some(entry.config.issuer.as_str()) {
            return Err(OidcError::Config("the discovery document names another issuer".into()));
        }
        doc["device_authorization_endpoint"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| OidcError::Config("the provider offers no device authorization endpoint".into()))
    }

    /// A form post to one of the provider's endpoints, authenticated as `client` (id and
    /// secret, HTTP Basic, as RFC 6749 §2.3.1 encodes it); the JSON answer whatever its status.
    async fn client_post(
        &self,
        client: &(String, ClientSecret),
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, OidcError> {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let (client_id, secret) = client;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = self
            .http
            .0
            .post(url)
            .basic_auth(encode(client_id), Some(encode(secret.secret())))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if response.status().is_server_error() {
            return Err(OidcError::Unreachable(format!("the provider answered {}", response.status())));
        }
        response.json().await.map_err(|e| OidcError::Exchange(format!("unreadable answer: {e}")))
    }

    /// Starts a device sign-in: asks the provider for a device code and a user code, with a
    /// fresh nonce the id_token must carry.
    pub async fn start_device(&self, provider: &str, login_hint: Option<&str>) -> Result<DeviceStarted, OidcError> {
        let entry = self.entry(provider)?;
        if !entry.config.device_flow {
            return Err(OidcError::Config("device_flow is not enabled for this provider".into()));
        }
        let endpoint = self.device_endpoint(entry).await?;
        // The client secret travels to it (HTTP Basic).
        if self.production && !endpoint.starts_with("https://") {
            return Err(OidcError::Config("the device authorization endpoint is not https".into()));
        }
        let nonce = Nonce::new_random().secret().clone();
        let mut scope = vec!["openid".to_owned()];
        scope.extend(entry.config.scopes.iter().cloned());
        let scope = scope.join(" ");
        let client = Self::device_client(entry)?;
        let mut form = vec![("client_id", client.0.as_str()), ("scope", &scope), ("nonce", &nonce)];
        if let Some(hint) = login_hint {
            form.push(("login_hint", hint));
        }
        let answer = self.client_post(&client, &endpoint, &form).await?;
        let text = |k: &str| answer[k].as_str().map(str::to_owned);
        let (Some(device_code), Some(user_code), Some(verification_uri)) =
            (text("device_code"), text("user_code"), text("verification_uri"))
        else {
            return Err(OidcError::Exchange(format!(
                "device authorization refused: {}",
                text("error").unwrap_or_else(|| "no device code".into())
            )));
        };
        Ok(DeviceStarted {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete: text("verification_uri_complete"),
            // At most ten minutes, whatever the provider allows: a shorter window to phish in.
            expires_in: answer["expires_in"].as_i64().unwrap_or(600).clamp(60, 600),
            interval: answer["interval"].as_i64().unwrap_or(5).clamp(1, 60),
            nonce,
        })
    }

    /// Asks the token endpoint once whether the person has approved the device.
    pub async fn poll_device(&self, provider: &str, device_code: &str, nonce: &str) -> Result<DevicePoll, OidcError> {
        let entry = self.entry(provider)?;
        let metadata = self.metadata(entry).await?;
        let token_url = metadata
            .token_endpoint()
            .ok_or_else(|| OidcError::Config("the provider has no token endpoint".into()))?
            .url()
            .to_string();
        let client = Self::device_client(entry)?;
        let answer = self
            .client_post(
                &client,
                &token_url,
                &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)],
            )
            .await?;
        if let Some(error) = answer["error"].as_str() {
            return Ok(match error {
                "authorization_pending" => DevicePoll::Pending,
                "slow_down" => DevicePoll::SlowDown,
                "expired_token" => DevicePoll::Ended("the code expired".into()),
                "access_denied" => DevicePoll::Ended("the person declined".into()),
                other => DevicePoll::Ended(format!("the provider refused: {other}")),
            });
        }
        let id_token = answer["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::IdToken("no id_token in the token response".into()))?;
        let parsed: CoreIdToken = id_token.parse().map_err(|e: serde_json::Error| OidcError::IdToken(e.to_string()))?;
        // RFC 8628 carries no nonce, and providers leave it out of device-flow id_tokens. It is
        // not needed there: the token comes straight from the token endpoint, over TLS, in answer
        // to this client's authenticated request with a device code only public-api holds, so
        // nothing can be injected. One that is present must still match.
        let expected = Nonce::new(nonce.to_owned());
        let nonce_check = |found: Option<&Nonce>| match found {
            None => Ok(()),
            Some(found) => (&expected).verify(Some(found)),
        };
        self.verify_parsed(provider, entry, &client.0, &parsed, nonce_check).await.map(DevicePoll::Done)
    }
}
