//! The access decision with what it needs gathered: the care team from the database, the
//! consent service's answer for a recipient outside the program. The rules are in `rules.rs`.

use std::borrow::Cow;

use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::{CallContext, Claims};
use common::client::{ConsentClient, DisclosureQuestion};
use common::Role;

use super::rules::{
    break_glass, counted, Decision, Disclosure, Intent, BREAK_GLASS, MEDICAL_EMERGENCY, OUTSIDE_PROGRAM,
};
use crate::volume::VolumeWatch;

/// Decides, then counts a permitted access against the caller's volume ([`counted`]).
pub async fn decide(
    pool: &PgPool,
    consent: &ConsentClient,
    watch: &VolumeWatch,
    claims: &Claims,
    subject: Uuid,
    intent: Intent<'_>,
) -> Result<Decision, sqlx::Error> {
    let decision = grant(pool, consent, claims, subject, intent).await?;
    Ok(counted(watch, claims, subject, intent, decision))
}

/// Who may act on the subject's records, without counting (the caller counts, with
/// [`counted`], once the action is certain).
pub async fn grant(
    pool: &PgPool,
    consent: &ConsentClient,
    claims: &Claims,
    subject: Uuid,
    intent: Intent<'_>,
) -> Result<Decision, sqlx::Error> {
    match claims.role {
        // The subject, acting as a beneficiary (a delegation token vouched for it: see
        // `common::assertion`), on their own records.
        Role::Beneficiary if claims.sub == subject.to_string() => Ok(Decision::permit("subject")),
        Role::Caseworker if claims.purpose == BREAK_GLASS => Ok(break_glass(claims, intent, "break-glass")),
        Role::Caseworker if claims.purpose == MEDICAL_EMERGENCY => {
            Ok(break_glass(claims, intent, "medical emergency (§2.51)"))
        }
        Role::Caseworker => {
            let Ok(caseworker) = Uuid::parse_str(&claims.sub) else {
                return Ok(Decision::deny("caseworker without a user id"));
            };
            let on_team = crate::care_team::on_team(pool, caseworker, subject).await?;
            Ok(match (on_team, intent) {
                (true, Intent::Read(_)) => Decision::permit("care_team"),
                (true, Intent::Write) => Decision::deny("the care team reads; it does not change records"),
                (false, _) => Decision::deny("caseworker not on the subject's care team"),
            })
        }
        role if OUTSIDE_PROGRAM.contains(&role) => Ok(match intent {
            Intent::Write => Decision::deny("recipients outside the program only read"),
            Intent::Read(None) => Decision::deny("a disclosure names its category"),
            Intent::Read(Some(category)) => ask_consent(consent, claims, subject, category).await,
        }),
        Role::ComplianceOfficer => Ok(Decision::deny("compliance officers see access metadata, not contents")),
        _ => Ok(Decision::deny("not the subject and no other grant")),
    }
}

/// Asks the consent service; anything but a clear permit — an error, a timeout, a service that
/// does not decide yet — is a denial, with the cause kept for the log.
async fn ask_consent(consent: &ConsentClient, claims: &Claims, subject: Uuid, category: &str) -> Decision {
    let recipient = format!("{}:{}", claims.role, claims.sub);
    let question = DisclosureQuestion {
        subject_id: subject,
        recipient: recipient.clone(),
        categories: vec![category.to_owned()],
        purpose: claims.purpose.clone(),
    };
    let ctx = CallContext::on_behalf_of(claims, "disclosure_decision");
    match consent.decide(&ctx, &question).await {
        Ok(answer) if answer.permitted => {
            if answer.form_version.is_none() || answer.consent_id.is_none() {
                return Decision::deny("consent permitted without naming the consent and the form signed");
            }
            let reason = match answer.consent_id {
                Some(id) => Cow::Owned(format!("consent {id}")),
                None => Cow::Borrowed("consent"),
            };
            Decision {
                disclosure: Some(Disclosure {
                    recipient,
                    recipient_name: answer.recipient_name,
                    purpose: claims.purpose.clone(),
                    category: category.to_owned(),
                    consent_id: answer.consent_id,
                    emergency: None,
                }),
                ..Decision::permit(reason)
            }
        }
        Ok(answer) => Decision::deny(Cow::Owned(format!("consent service denied: {}", answer.reason))),
        Err(e) => {
            tracing::warn!(request_id = %claims.request_id, error = %e, "no consent decision; denying");
            Decision::deny(Cow::Owned(format!("no consent decision ({e})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The denials that need neither the database nor the consent service, each with the
    /// reason the access log keeps: compliance officers see metadata, never contents; nobody
    /// without a grant reads; recipients outside the program only read, one named category.
    #[tokio::test]
    async fn roles_without_a_grant_are_denied_with_their_reason() {
        use common::client::InternalClient;
        use common::ServiceName;
        common::install_crypto_provider();
        // Never reached by these cases: a pool that would connect nowhere, a consent service
        // at a closed port.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:9/none").expect("lazy pool");
        let (private, _) = common::keys::generate().expect("key");
        let signer = std::sync::Arc::new(common::assertion::Signer::new(ServiceName::PhiVault, &private, 30));
        let to_consent =
            InternalClient::new(ServiceName::Consent, "http://127.0.0.1:9", signer, std::time::Duration::from_secs(1))
                .expect("client");
        let consent = ConsentClient::new(to_consent);
        let subject = Uuid::new_v4();
        let claims = |role, purpose| crate::volume::tests::claims(role, &Uuid::new_v4().to_string(), purpose);
        let read = Intent::Read(Some("identity"));
        let cases = [
            (
                claims(Role::ComplianceOfficer, "compliance_review"),
                read,
                "compliance officers see access metadata, not contents",
            ),
            (claims(Role::Admin, "care_team_assignment"), read, "not the subject and no other grant"),
            (claims(Role::Beneficiary, "self_service"), read, "not the subject and no other grant"),
            (claims(Role::Partner, "housing_placement"), Intent::Write, "recipients outside the program only read"),
            (claims(Role::Insurer, "payment"), Intent::Read(None), "a disclosure names its category"),
        ];
        for (who, intent, reason) in cases {
            let decision = grant(&pool, &consent, &who, subject, intent).await.expect("no database needed");
            assert_eq!(decision, Decision::deny(reason), "{:?}", who.role);
        }
    }
}
