//! The reads of a beneficiary's profile by anyone but the beneficiary: a caseworker on their
//! care team; a partner residence under the beneficiary's consent; a caseworker outside the
//! care team in a medical emergency (break-glass); and a disclosure to medical personnel in a
//! medical emergency. Every read but the care team's is audited here, referring to the vault's
//! access-log entry.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::{CallContext, Verifier};
use common::client::{DisclosureNotice, EmergencyDisclosure, PhiVaultClient};
use common::json::Body;
use common::{ApiError, Role, ServiceName};

use super::{queries, rules};
use crate::audit::{self, Outcome};
use crate::auth::{Caseworker, Partner};
use crate::beneficiaries::BeneficiaryProfile;
use crate::meta::RequestMeta;

/// A beneficiary's profile, for a caseworker on their care team (404 otherwise).
#[utoipa::path(get, operation_id = "phi_access_caseworker_read_profile", path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/profile", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The profile", body = BeneficiaryProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No profile, or not on your care team", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/beneficiaries/<beneficiary_id>/profile")]
pub async fn read_beneficiary_profile(
    caseworker: Caseworker,
    beneficiary_id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<BeneficiaryProfile>, ApiError> {
    let ctx = caseworker.call(&meta, "treatment");
    beneficiary_profile(pool, vault, beneficiary_id, &ctx).await.map(|(profile, _)| Json(profile))
}

/// Reads a beneficiary's identity profile from the vault under `ctx`, with the vault's
/// access-log entry for the read; 404 when there is none or the vault refuses.
async fn beneficiary_profile(
    pool: &PgPool,
    vault: &PhiVaultClient,
    beneficiary_id: Uuid,
    ctx: &CallContext,
) -> Result<(BeneficiaryProfile, Option<i64>), ApiError> {
    read_profile(vault, identity_record(pool, beneficiary_id).await?, ctx).await
}

/// As [`beneficiary_profile`], with what a disclosure outside the program carries.
async fn beneficiary_record(
    pool: &PgPool,
    vault: &PhiVaultClient,
    beneficiary_id: Uuid,
    ctx: &CallContext,
) -> Result<(BeneficiaryProfile, Option<i64>, Option<DisclosureNotice>), ApiError> {
    let record = identity_record(pool, beneficiary_id).await?;
    let found = vault.read_record(ctx, record).await.map_err(|e| e.into_api_error())?;
    Ok((BeneficiaryProfile::from_record(found.content)?, found.access_seq, found.disclosure))
}

/// Reads the identity record `record` (known to exist in the public database) from the vault.
async fn read_profile(
    vault: &PhiVaultClient,
    record: Uuid,
    ctx: &CallContext,
) -> Result<(BeneficiaryProfile, Option<i64>), ApiError> {
    let found = vault.read_record(ctx, record).await.map_err(|e| e.into_api_error())?;
    Ok((BeneficiaryProfile::from_record(found.content)?, found.access_seq))
}

/// The beneficiary's identity record id; 404 when there is none.
async fn identity_record(pool: &PgPool, beneficiary_id: Uuid) -> Result<Uuid, ApiError> {
    queries::identity_record(pool, beneficiary_id).await?.ok_or(ApiError::NotFound)
}

/// A profile disclosed to a recipient outside the program, with the redisclosure notice
/// (42 CFR §2.32) that must travel with it and the consent it was disclosed under.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DisclosedProfile {
    pub profile: BeneficiaryProfile,
    pub consent_id: Option<Uuid>,
    pub notice_version: String,
    /// The notice's exact text: show it with the records, and keep it with any copy.
    pub notice: String,
}

impl DisclosedProfile {
    /// The profile with the notice it was disclosed with.
    fn with(profile: BeneficiaryProfile, notice: DisclosureNotice) -> Self {
        DisclosedProfile {
            profile,
            consent_id: notice.consent_id,
            notice_version: notice.notice_version,
            notice: notice.notice,
        }
    }
}

/// The purposes phi-vault serves a partner's read for (`policies/internal-calls.toml`): the schema
/// of the `purpose` parameter, which stays text so the handler names the served ones in its 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerPurpose {
    HousingPlacement,
    CareCoordination,
    BenefitsEligibility,
    Payment,
}

/// A beneficiary's profile for a partner residence, disclosed only under the beneficiary's
/// consent naming this partner (`partner:<user id>`), the `identity` category and `purpose`.
/// Without one: 404, like a missing profile, and in the same time (every 404 here is answered
/// no sooner than [`rules::PARTNER_REFUSAL_FLOOR`]). Each disclosure is audited here and entered
/// in the vault's accounting of disclosures.
#[utoipa::path(get, operation_id = "phi_access_partner_read_profile", path = "/api/v1/partner/beneficiaries/{beneficiary_id}/profile", tag = "partners", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path), ("purpose" = PartnerPurpose, Query, description = "The disclosure purpose the consent names: `housing_placement`, `care_coordination`, `benefits_eligibility` or `payment`")),
    responses(
        (status = 200, description = "The profile, with the redisclosure notice and the consent relied on", body = DisclosedProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a partner", body = common::ErrorBody),
        (status = 404, description = "No profile, or no standing consent for this partner and purpose", body = common::ErrorBody),
        (status = 422, description = "No purpose, or not a disclosure purpose", body = common::ErrorBody),
        (status = 503, description = "The PHI vault or the consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/partner/beneficiaries/<beneficiary_id>/profile?<purpose>")]
pub async fn partner_read_profile(
    partner: Partner,
    beneficiary_id: Uuid,
    purpose: Option<&str>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    verifier: &State<Verifier>,
) -> Result<Json<DisclosedProfile>, ApiError> {
    // Only a purpose phi-vault serves a partner on this route (policies/internal-calls.toml).
    let purpose = purpose
        .map(str::trim)
        .filter(|p| {
            let route = PhiVaultClient::READ_RECORD;
            verifier.policy().decide(ServiceName::PhiVault, ServiceName::PublicApi, route, p, Role::Partner).is_ok()
        })
        .ok_or_else(|| {
            let served =
                verifier.policy().purposes_for(ServiceName::PhiVault, PhiVaultClient::READ_RECORD, Role::Partner);
            ApiError::Unprocessable(format!("purpose: one of {}", served.join(", ")))
        })?;
    let ctx = partner.call(&meta, purpose);
    let started = std::time::Instant::now();
    let result = beneficiary_record(pool, vault, beneficiary_id, &ctx).await.and_then(|(profile, _, notice)| {
        // A disclosure never leaves without its notice.
        let notice = notice.ok_or_else(|| ApiError::internal("phi-vault disclosed a record without its notice"))?;
        Ok(Json(DisclosedProfile::with(profile, notice)))
    });
    if result.is_ok() {
        let mut event = meta.event(
            Some(partner.user_id()),
            "phi.disclosure",
            Some(("user", beneficiary_id.to_string())),
            Outcome::Success,
        );
        event.reason = Some(format!("consented disclosure for {purpose}"));
        audit::record_alone(pool, &event).await?;
    }
    if let Err(ApiError::NotFound) = result {
        tokio::time::sleep(rules::padding(started.elapsed(), rules::PARTNER_REFUSAL_FLOOR)).await;
    }
    result
}

/// Why a caseworker must see a record outside their care team.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    /// The medical emergency, in 10 to 500 characters. Compliance reviews every use.
    pub reason: String,
}

/// Break-glass: in a medical emergency a caseworker reads any beneficiary's profile, giving a
/// written reason. The vault flags the access for compliance review and keeps the reason in its
/// access log; the public audit log records the attempt, whatever the outcome, referring to the
/// vault's entry.
#[utoipa::path(post, operation_id = "phi_access_break_glass", path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/profile/break-glass", tag = "staff",
    security(("bearer" = [])), params(("beneficiary_id" = Uuid, Path)), request_body = BreakGlass,
    responses(
        (status = 200, description = "The profile; the access is flagged for review", body = BeneficiaryProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No profile", body = common::ErrorBody),
        (status = 422, description = "No usable reason", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[post("/caseworker/beneficiaries/<beneficiary_id>/profile/break-glass", data = "<body>")]
pub async fn break_glass(
    caseworker: Caseworker,
    beneficiary_id: Uuid,
    body: Body<BreakGlass>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<BeneficiaryProfile>, ApiError> {
    let reason = body.into_inner().reason.trim().to_owned();
    common::json::printable("reason", &reason, common::assertion::BREAK_GLASS_REASON_CHARS, false)?;
    // The reason may describe the emergency: it goes only to the vault, inside the assertion,
    // and stays in its access log. This trail refers to the vault's entry.
    let ctx = caseworker.call(&meta, "break_glass").with_reason(reason);
    // This trail points to the vault's entry only when the vault was reached: with no profile
    // on file it is never asked, and an unreachable vault may hold no entry.
    let (result, reference) = match identity_record(pool, beneficiary_id).await {
        Err(ApiError::NotFound) => (Err(ApiError::NotFound), rules::NO_PROFILE.to_owned()),
        Err(e) => (Err(e), rules::DATABASE_FAILED.to_owned()),
        Ok(record) => {
            let read = read_profile(vault, record, &ctx).await;
            let reference = match &read {
                Ok((_, seq)) => rules::reason_reference(*seq),
                Err(ApiError::Unavailable(_)) => rules::VAULT_UNREACHED.to_owned(),
                Err(_) => rules::reason_reference(None),
            };
            (read, reference)
        }
    };
    let outcome = if result.is_ok() { Outcome::Success } else { Outcome::Failure };
    let mut event =
        meta.event(Some(caseworker.user_id()), "phi.break_glass", Some(("user", beneficiary_id.to_string())), outcome);
    event.reason = Some(reference);
    audit::record_alone(pool, &event).await?;
    result.map(|(profile, _)| Json(profile))
}

/// What a caseworker gives to disclose a beneficiary's profile to medical personnel in a medical
/// emergency (42 CFR §2.51).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyDisclosureRequest {
    /// The medical personnel receiving the records and where (3 to 200 characters), as the
    /// patient will read it in their accounting of disclosures.
    pub recipient: String,
    /// The nature of the emergency (10 to 500 characters), as the patient will read it.
    pub nature: String,
    /// Why the disclosure cannot wait for consent (10 to 500 characters), for compliance review.
    pub reason: String,
}

/// A disclosure in a medical emergency (42 CFR §2.51): a caseworker hands a beneficiary's
/// profile to medical personnel outside the program without consent, naming them, the nature of
/// the emergency and the reason. The vault flags it for compliance review and enters it in the
/// accounting of disclosures, which the beneficiary sees; the records come with the notice.
#[utoipa::path(post, operation_id = "phi_access_emergency_disclosure", path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/emergency-disclosure", tag = "staff",
    security(("bearer" = [])), params(("beneficiary_id" = Uuid, Path)), request_body = EmergencyDisclosureRequest,
    responses(
        (status = 200, description = "The profile and the notice to hand over with it; flagged for review", body = DisclosedProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No profile", body = common::ErrorBody),
        (status = 422, description = "No usable recipient, nature or reason, named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was disclosed", body = common::ErrorBody),
    ))]
#[post("/caseworker/beneficiaries/<beneficiary_id>/emergency-disclosure", data = "<body>")]
pub async fn emergency_disclosure(
    caseworker: Caseworker,
    beneficiary_id: Uuid,
    body: Body<EmergencyDisclosureRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<DisclosedProfile>, ApiError> {
    let request = body.into_inner();
    let emergency = EmergencyDisclosure { recipient: request.recipient, nature: request.nature };
    emergency.validate()?;
    let reason = request.reason.trim().to_owned();
    common::json::printable("reason", &reason, common::assertion::BREAK_GLASS_REASON_CHARS, false)?;
    let ctx = caseworker.call(&meta, "medical_emergency").with_reason(reason);
    let result = async {
        let record = identity_record(pool, beneficiary_id).await?;
        let found = vault.emergency_disclosure(&ctx, record, &emergency).await.map_err(|e| e.into_api_error())?;
        let notice =
            found.disclosure.ok_or_else(|| ApiError::internal("phi-vault disclosed a record without its notice"))?;
        Ok::<_, ApiError>((BeneficiaryProfile::from_record(found.content)?, found.access_seq, notice))
    }
    .await;
    let outcome = if result.is_ok() { Outcome::Success } else { Outcome::Failure };
    let mut event = meta.event(
        Some(caseworker.user_id()),
        "phi.emergency_disclosure",
        Some(("user", beneficiary_id.to_string())),
        outcome,
    );
    event.reason = Some(rules::reason_reference(result.as_ref().ok().and_then(|(_, seq, _)| *seq)));
    audit::record_alone(pool, &event).await?;
    let (profile, _, notice) = result?;
    Ok(Json(DisclosedProfile::with(profile, notice)))
}

pub fn routes() -> Vec<Route> {
    routes![read_beneficiary_profile, partner_read_profile, break_glass, emergency_disclosure]
}
