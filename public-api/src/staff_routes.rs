//! Staff routes: an admin assigns caseworkers to beneficiaries' care teams; a caseworker reads the
//! profile of a beneficiary on their team. phi-vault makes the access decision itself (it keeps
//! the care teams); public-api only asserts who is asking, in which verified role.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::{CallContext, Verifier};
use common::client::{
    AccessLogFilter, AccessLogPage, AccessReview, AccountingPage, AccountingQuery, DisclosureNotice,
    EmergencyDisclosure, PhiVaultClient, ReviewRequest,
};
use common::json::Body;
use common::{ApiError, Role, ServiceName};

use crate::audit::{self, Outcome};
use crate::auth::{Admin, Caseworker, ComplianceOfficer, Partner};
use crate::beneficiaries::BeneficiaryProfile;
use crate::meta::RequestMeta;

async fn has(pool: &PgPool, user: Uuid, check: &str) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND {check})"
    ))
    .bind(user)
    .fetch_one(pool)
    .await?)
}

/// Puts a caseworker on a beneficiary's care team.
#[utoipa::path(put, path = "/api/v1/staff/care-team/{caseworker_id}/{beneficiary_id}", tag = "staff", security(("bearer" = [])),
    params(("caseworker_id" = Uuid, Path), ("beneficiary_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Assigned"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin; or the caseworker is the beneficiary or yourself", body = common::ErrorBody),
        (status = 422, description = "Not a caseworker, or not a beneficiary", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[put("/staff/care-team/<caseworker_id>/<beneficiary_id>")]
pub async fn assign_care_team(
    admin: Admin,
    caseworker_id: Uuid,
    beneficiary_id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    if !has(pool, caseworker_id, "'caseworker' = ANY(roles)").await? {
        return Err(ApiError::Unprocessable("caseworker_id: not a caseworker".into()));
    }
    if !has(pool, beneficiary_id, "user_type = 'beneficiary'").await? {
        return Err(ApiError::Unprocessable("beneficiary_id: not a beneficiary".into()));
    }
    // Nobody joins their own care team, or puts themselves on one.
    if caseworker_id == beneficiary_id || caseworker_id == admin.user_id() {
        return Err(ApiError::Forbidden);
    }
    let ctx = admin.call(&meta, "care_team_assignment");
    vault.assign_care_team(&ctx, caseworker_id, beneficiary_id).await.map_err(|e| e.into_api_error())?;
    let resource = Some(("care_team", format!("{caseworker_id}:{beneficiary_id}")));
    audit::record_alone(pool, &meta.event(Some(admin.user_id()), "care_team.assign", resource, Outcome::Success))
        .await?;
    Ok(Status::NoContent)
}

/// A beneficiary's profile, for a caseworker on their care team (404 otherwise).
#[utoipa::path(get, path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/profile", tag = "staff", security(("bearer" = [])),
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
    let record: Option<Uuid> = sqlx::query_scalar(
        "SELECT identity_record_id FROM users WHERE id = $1 AND user_type = 'beneficiary' AND deleted_at IS NULL",
    )
    .bind(beneficiary_id)
    .fetch_optional(pool)
    .await?
    .flatten();
    record.ok_or(ApiError::NotFound)
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

/// A beneficiary's profile for a partner residence, disclosed only under the beneficiary's
/// consent naming this partner (`partner:<user id>`), the `identity` category and `purpose`.
/// Without one: 404, like a missing profile. Each disclosure is audited here and entered in the
/// vault's accounting of disclosures.
#[utoipa::path(get, path = "/api/v1/partner/beneficiaries/{beneficiary_id}/profile", tag = "partners", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path), ("purpose" = String, Query, description = "The disclosure purpose the consent names: `housing_placement`, `care_coordination`, `benefits_eligibility` or `payment`")),
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
    let result = beneficiary_record(pool, vault, beneficiary_id, &ctx).await.and_then(|(profile, _, notice)| {
        // A disclosure never leaves without its notice.
        let notice = notice.ok_or_else(|| ApiError::internal("phi-vault disclosed a record without its notice"))?;
        Ok(Json(DisclosedProfile {
            profile,
            consent_id: notice.consent_id,
            notice_version: notice.notice_version,
            notice: notice.notice,
        }))
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
#[utoipa::path(post, path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/profile/break-glass", tag = "staff",
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
        Err(ApiError::NotFound) => {
            (Err(ApiError::NotFound), "no profile on file; the vault was not asked and holds no entry".to_owned())
        }
        Err(e) => (Err(e), "the public database failed before the vault was asked".to_owned()),
        Ok(record) => {
            let read = read_profile(vault, record, &ctx).await;
            let reference = match &read {
                Ok((_, Some(seq))) => format!("reason in phi-vault access log entry {seq}"),
                Err(ApiError::Unavailable(_)) => {
                    "the vault could not be reached; it may hold no entry for this request".to_owned()
                }
                _ => "reason in phi-vault's access log, under this request id".to_owned(),
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
#[utoipa::path(post, path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/emergency-disclosure", tag = "staff",
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
    event.reason = Some(match &result {
        Ok((_, Some(seq), _)) => format!("reason in phi-vault access log entry {seq}"),
        _ => "reason in phi-vault's access log, under this request id".to_owned(),
    });
    audit::record_alone(pool, &event).await?;
    let (profile, _, notice) = result?;
    Ok(Json(DisclosedProfile {
        profile,
        consent_id: notice.consent_id,
        notice_version: notice.notice_version,
        notice: notice.notice,
    }))
}

/// The PHI access log for compliance review: who touched which beneficiary's records, when, why,
/// and the decision — never contents. Reading it is itself logged.
#[utoipa::path(get, path = "/api/v1/compliance/phi-access-log", tag = "staff", security(("bearer" = [])),
    params(AccessLogFilter),
    responses(
        (status = 200, description = "A page, oldest first", body = AccessLogPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A filter out of range", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/phi-access-log?<filter..>")]
pub async fn phi_access_log(
    officer: ComplianceOfficer,
    filter: AccessLogFilter<'_>,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccessLogPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = officer.call(&meta, "compliance_review");
    vault.access_log(&ctx, &query).await.map(Json).map_err(|e| e.into_api_error())
}

/// A beneficiary's accounting of disclosures (42 CFR §2.24), for a compliance officer: what
/// left the program, to whom, why, under which consent and notice. Reading it is logged in the
/// vault's access log.
#[utoipa::path(get, path = "/api/v1/compliance/beneficiaries/{beneficiary_id}/disclosures", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path),
           ("from" = Option<String>, Query, description = "First day included, YYYY-MM-DD; six years back when absent"),
           ("to" = Option<String>, Query, description = "Last day included, YYYY-MM-DD; today when absent"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page, oldest first", body = AccountingPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/beneficiaries/<beneficiary_id>/disclosures?<from>&<to>&<after>&<limit>")]
#[allow(clippy::too_many_arguments)]
pub async fn compliance_disclosures(
    officer: ComplianceOfficer,
    beneficiary_id: Uuid,
    from: Option<&str>,
    to: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccountingPage>, ApiError> {
    let query = AccountingQuery::parse(from, to, after, limit)?;
    let ctx = officer.call(&meta, "compliance_review");
    vault.accounting(&ctx, beneficiary_id, &query).await.map(Json).map_err(|e| e.into_api_error())
}

/// Erases a beneficiary's PHI by crypto-shredding: the vault destroys their data key (and their
/// ciphertext), so every record of theirs is gone at once; public-api clears what its own
/// database keeps that reveals their recovery (sobriety date, references to the erased records,
/// staff notes, insurance reasons, idempotency keys and request hashes, notifications) and ends
/// what cannot go on without the records (open applications and a pending insurance request are
/// rejected, by this admin). Irreversible; the reason is audited.
#[utoipa::path(delete, path = "/api/v1/staff/beneficiaries/{beneficiary_id}/phi", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path), ("reason" = String, Query, description = "Why; recorded in the audit log")),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No PHI held for this beneficiary (public traces are cleared all the same)", body = common::ErrorBody),
        (status = 422, description = "No reason given", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[delete("/staff/beneficiaries/<beneficiary_id>/phi?<reason>")]
pub async fn erase_phi(
    admin: Admin,
    beneficiary_id: Uuid,
    reason: Option<&str>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.len() <= 500)
        .ok_or_else(|| ApiError::Unprocessable("reason: required, up to 500 characters".into()))?;
    let ctx = admin.call(&meta, "erasure");
    // A vault that holds nothing (404) may mean an earlier erasure whose public half failed:
    // the public half still runs, so a retry completes it, and the answer stays 404.
    let shredded = match vault.shred_subject(&ctx, beneficiary_id).await {
        Ok(()) => true,
        Err(common::client::ClientError::Status { status: 404, .. }) => false,
        Err(e) => return Err(e.into_api_error()),
    };
    let mut tx = pool.begin().await?;
    erase_public_traces(&mut tx, beneficiary_id, admin.user_id()).await?;
    let outcome = if shredded { Outcome::Success } else { Outcome::Failure };
    let mut event = meta.event(Some(admin.user_id()), "phi.erase", Some(("user", beneficiary_id.to_string())), outcome);
    event.reason = Some(reason.to_owned());
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    if shredded {
        Ok(Status::NoContent)
    } else {
        Err(ApiError::NotFound)
    }
}

/// What the public database keeps that reveals a person's recovery, or points at their erased
/// records: the sobriety date, the references into the vault, staff notes on their applications,
/// and notifications. The account itself stays.
async fn erase_public_traces(tx: &mut sqlx::PgConnection, user: Uuid, admin: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET sobriety_date = NULL, identity_record_id = NULL, updated_at = now() WHERE id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    // Applications still open cannot be reviewed or paid without their details: they end,
    // rejected by the admin who erased, and the idempotency keys and request hashes go too.
    sqlx::query(
        "WITH open AS (SELECT id, status FROM applications \
         WHERE beneficiary_id = $1 AND status IN ('reviewing', 'action_needed', 'approved') FOR UPDATE), \
         ended AS (UPDATE applications a SET status = 'rejected', decided_at = now() FROM open \
         WHERE a.id = open.id RETURNING a.id, a.amount_cents, open.status AS was) \
         INSERT INTO application_events (application_id, from_status, to_status, actor_id, actor_role, amount_cents, note) \
         SELECT id, was, 'rejected', $2, 'admin', amount_cents, NULL FROM ended",
    )
    .bind(user)
    .bind(admin)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE applications SET details_record_id = NULL, idempotency_key = NULL, request_sha256 = NULL, \
         version = version + 1, updated_at = now() WHERE beneficiary_id = $1",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    // Staff notes on their applications may describe them.
    sqlx::query(
        "UPDATE application_events SET note = NULL \
         WHERE application_id IN (SELECT id FROM applications WHERE beneficiary_id = $1)",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    // (A retried erasure keeps the reason an earlier one gave.)
    sqlx::query(
        "UPDATE insurance_verifications SET details_record_id = NULL, \
         reason = CASE WHEN reason = 'records erased' THEN reason END WHERE beneficiary_id = $1",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    // A pending request cannot be decided without its details: it ends, so no request stays
    // pending forever.
    sqlx::query(
        "UPDATE insurance_verifications SET status = 'rejected', decided_at = now(), decided_by = $2, \
         reason = 'records erased' WHERE beneficiary_id = $1 AND status = 'pending'",
    )
    .bind(user)
    .bind(admin)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE chat_sessions SET transcript_record_id = NULL WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM notifications WHERE user_id = $1").bind(user).execute(&mut *tx).await?;
    // The documents went with the records; nothing here should point at them.
    sqlx::query("DELETE FROM application_documents WHERE beneficiary_id = $1").bind(user).execute(&mut *tx).await?;
    // No more email either: an erased account's address is not written to again.
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, email) SELECT id, false FROM users WHERE id = $1 \
         ON CONFLICT (user_id) DO UPDATE SET email = false, updated_at = now()",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records a compliance officer's finding on a flagged (break-glass) access: `justified` or
/// `unjustified`, with a note. Final: a second review of the same entry is 409.
#[utoipa::path(put, path = "/api/v1/compliance/phi-access-log/{seq}/review", tag = "staff", security(("bearer" = [])),
    params(("seq" = i64, Path, description = "The access-log entry's `seq`")), request_body = ReviewRequest,
    responses(
        (status = 200, description = "The review, as recorded", body = AccessReview),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer, or the access under review is your own (separation of duties)", body = common::ErrorBody),
        (status = 404, description = "No such entry, or not one flagged for review", body = common::ErrorBody),
        (status = 409, description = "Already reviewed", body = common::ErrorBody),
        (status = 422, description = "Bad outcome or note", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[put("/compliance/phi-access-log/<seq>/review", data = "<body>")]
pub async fn review_access(
    officer: ComplianceOfficer,
    seq: i64,
    body: Body<ReviewRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccessReview>, ApiError> {
    let request = body.into_inner();
    common::client::validate_review(&request)?;
    let ctx = officer.call(&meta, "compliance_review");
    let review = vault.review_access(&ctx, seq, &request).await.map_err(|e| match e {
        common::client::ClientError::Status { status: 409, .. } => {
            ApiError::Conflict(format!("entry {seq} has already been reviewed"))
        }
        other => other.into_api_error(),
    })?;
    let mut event = meta.event(
        Some(officer.user_id()),
        "phi.access_review",
        Some(("access_log", seq.to_string())),
        Outcome::Success,
    );
    event.reason = Some(review.outcome.clone());
    audit::record_alone(pool, &event).await?;
    Ok(Json(review))
}

pub fn routes() -> Vec<Route> {
    routes![
        assign_care_team,
        read_beneficiary_profile,
        partner_read_profile,
        break_glass,
        phi_access_log,
        review_access,
        erase_phi,
        compliance_disclosures,
        emergency_disclosure
    ]
}
