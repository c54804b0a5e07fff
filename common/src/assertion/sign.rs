//! Signing assertions, and the seal over a streamed body.

#[allow(unused_imports)]
use super::*;

pub struct Signer {
    service: ServiceName,
    key: EncodingKey,
    /// The same key, for sealing streamed bodies ([`StreamSeal`]).
    pkcs8: zeroize::Zeroizing<Vec<u8>>,
    pub(super) ttl_secs: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("signing an internal assertion: {0}")]
pub struct SignError(String);

impl Signer {
    pub fn new(service: ServiceName, pkcs8_der: &[u8], ttl_secs: u64) -> Self {
        Self {
            service,
            key: EncodingKey::from_ed_der(pkcs8_der),
            pkcs8: zeroize::Zeroizing::new(pkcs8_der.to_vec()),
            // Clamped before the conversion, so a huge setting cannot wrap to a negative one.
            ttl_secs: ttl_secs.clamp(1, MAX_TTL_SECS as u64) as i64,
        }
    }

    pub fn service(&self) -> ServiceName {
        self.service
    }

    /// An assertion for exactly this request to `audience`.
    pub fn sign(
        &self,
        audience: ServiceName,
        ctx: &CallContext,
        request: RequestBinding<'_>,
    ) -> Result<String, SignError> {
        self.sign_for(audience, ctx, request.method, request.path_and_query, body_hash(request.body)).map(|(t, _)| t)
    }

    /// An assertion for a request whose body is streamed, so its hash is not known yet: `bsh`
    /// is [`STREAMED_BODY`], and the body must end with the [`StreamSeal`] returned here, a
    /// signature over the body's hash bound to this assertion.
    pub fn sign_streamed(
        &self,
        audience: ServiceName,
        ctx: &CallContext,
        method: &str,
        path_and_query: &str,
    ) -> Result<(String, StreamSeal), SignError> {
        let (token, jti) = self.sign_for(audience, ctx, method, path_and_query, STREAMED_BODY.to_owned())?;
        let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
            .map_err(|e| SignError(format!("internal key: {e}")))?;
        Ok((token, StreamSeal { jti, key }))
    }

    fn sign_for(
        &self,
        audience: ServiceName,
        ctx: &CallContext,
        method: &str,
        path_and_query: &str,
        bsh: String,
    ) -> Result<(String, String), SignError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (jti, exp) = (uuid::Uuid::new_v4().to_string(), now + self.ttl_secs);
        let delegation = match &ctx.delegation {
            Some(d) => {
                Some(d.signer.mint(d.user, d.session, ctx.role, self.service, audience, &jti, exp).map_err(SignError)?)
            }
            None => None,
        };
        let claims = Claims {
            iss: self.service,
            aud: audience,
            sub: ctx.sub.clone(),
            sid: ctx.sid.map(|s| s.to_string()),
            role: ctx.role,
            purpose: ctx.purpose.clone(),
            request_id: ctx.request_id.0.clone(),
            reason: ctx.reason.clone(),
            htm: method.to_owned(),
            htu: path_and_query.to_owned(),
            bsh,
            delegation,
            iat: now,
            exp,
            jti: jti.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.service.as_str().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| SignError(e.to_string()))?;
        Ok((token, jti))
    }
}

/// The `bsh` claim of an assertion whose body is streamed ([`Signer::sign_streamed`]). No body
/// hashes to it, so the JSON body guard refuses such an assertion, and only a route reading a
/// sealed stream ([`StreamedCall`]) accepts one.
pub const STREAMED_BODY: &str = "streamed-v1";
/// The length of the seal that ends a streamed body: an Ed25519 signature.
pub const STREAM_SEAL_LEN: usize = 64;

/// What the seal of a streamed body signs: the assertion it belongs to, the SHA-256 of every
/// byte before the seal, and their count.
pub(super) fn stream_message(jti: &str, digest: &[u8], length: u64) -> Vec<u8> {
    let mut message = b"secondwind-stream-v1\0".to_vec();
    message.extend_from_slice(jti.as_bytes());
    message.push(0);
    message.extend_from_slice(digest);
    message.extend_from_slice(&length.to_be_bytes());
    message
}

/// Seals a streamed body once it has all been sent: the caller appends [`StreamSeal::seal`]
/// as the body's last [`STREAM_SEAL_LEN`] bytes. The callee accepts nothing it read until the
/// seal verifies ([`Verifier::check_stream`]), so bytes changed, dropped or added on the way
/// are refused as a changed JSON body is.
pub struct StreamSeal {
    jti: String,
    key: ring::signature::Ed25519KeyPair,
}

impl StreamSeal {
    pub fn seal(&self, digest: &[u8], length: u64) -> [u8; STREAM_SEAL_LEN] {
        let mut out = [0u8; STREAM_SEAL_LEN];
        out.copy_from_slice(self.key.sign(&stream_message(&self.jti, digest, length)).as_ref());
        out
    }
}
