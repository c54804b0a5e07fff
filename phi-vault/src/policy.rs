//! Need-to-know: who may touch a subject's records, decided from the caller's verified assertion
//! alone. Default deny.
//!
//! - the subject, acting as a beneficiary (their own access token vouches for it);
//! - a caseworker on the subject's care team (internal program use), for reads;
//! - a caseworker in a medical emergency (`purpose = "break_glass"`) with a written reason: reads
//!   only, and every such access is flagged for compliance review;
//! - a recipient outside the program (`partner`, `insurer`): reads only, and only when the consent
//!   service permits that recipient, category and purpose; any other answer, or none, is deny;
//! - compliance officers see access metadata (the access-log route), never contents;
//! - anyone else: denied.
//!
//! A permitted read is then counted against the caller's read volume ([`crate::volume`]).

use std::borrow::Cow;

use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::{CallContext, Claims, BREAK_GLASS_REASON_CHARS};
use common::client::{ConsentClient, DisclosureQuestion};
use common::Role;

use crate::volume::{Activity, Exceeded, VolumeWatch};

/// The purpose a break-glass caller asserts.
pub const BREAK_GLASS: &str = "break_glass";
/// The purpose of a disclosure to medical personnel outside the program in a medical emergency
/// (42 CFR §2.51): made without consent, with a written reason, flagged for review.
pub const MEDICAL_EMERGENCY: &str = "medical_emergency";
/// Roles outside the program: they see records only under a consent.
pub const OUTSIDE_PROGRAM: [Role; 2] = [Role::Partner, Role::Insurer];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permitted: bool,
    /// Why, for the access log: the grant used, or why none applied.
    pub reason: Cow<'static, str>,
    /// Compliance must review this access (break-glass, a read-volume alarm).
    pub flagged: bool,
    /// Refused because the caller read too many distinct subjects: 503, not 404.
    pub throttled: bool,
    /// Set when a consent permitted a disclosure outside the program: a served read is entered
    /// in the accounting of disclosures.
    pub disclosure: Option<Disclosure>,
}

/// What the accounting of disclosures (42 CFR §2.24) records of a consented read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// As the recipient acts (`role:id`).
    pub recipient: String,
    /// Its name, where the consent service knows it.
    pub recipient_name: Option<String>,
    pub purpose: String,
    pub category: String,
    pub consent_id: Option<Uuid>,
    /// The nature of a medical emergency (§2.51): a disclosure made without consent.
    pub emergency: Option<String>,
}

impl Decision {
    pub fn permit(reason: impl Into<Cow<'static, str>>) -> Self {
        Self { permitted: true, reason: reason.into(), flagged: false, throttled: false, disclosure: None }
    }

    /// How a refused access answers: 404, exactly like a missing record, unless the caller is
    /// throttled for acting on too many subjects (503).
    pub fn refusal(&self) -> common::ApiError {
        if self.throttled {
            common::ApiError::Unavailable("volume threshold exceeded".into())
        } else {
            common::ApiError::NotFound
        }
    }

    pub fn deny(reason: impl Into<Cow<'static, str>>) -> Self {
        Self { permitted: false, reason: reason.into(), flagged: false, throttled: false, disclosure: None }
    }
}

/// What the caller wants to do to the subject's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent<'a> {
    /// Read (or list) records, of one category when known.
    Read(Option<&'a str>),
    /// Create, change or delete.
    Write,
}

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

/// Counts a permitted access against the caller's volume: past a figure it is refused as
/// throttled (503), and the first refusal in a window is flagged for review. A refused decision
/// is returned as it is, uncounted.
pub fn counted(
    watch: &VolumeWatch,
    claims: &Claims,
    subject: Uuid,
    intent: Intent<'_>,
    decision: Decision,
) -> Decision {
    if !decision.permitted {
        return decision;
    }
    let activity = match intent {
        Intent::Write => Activity::Write,
        // Both emergency reads share the emergencies' figures: a medical-emergency disclosure
        // is not a way around break-glass limits.
        Intent::Read(_) if claims.purpose == BREAK_GLASS || claims.purpose == MEDICAL_EMERGENCY => Activity::BreakGlass,
        Intent::Read(_) => Activity::Read,
    };
    match watch.observe(claims, activity, subject) {
        Ok(()) => decision,
        Err(over) => throttled(claims, activity, &over),
    }
}

/// The refusal of an action past a volume figure, with its alarm.
pub fn throttled(claims: &Claims, activity: Activity, over: &Exceeded) -> Decision {
    tracing::error!(
        request_id = %claims.request_id, caller = claims.iss.as_str(), scope = %over.scope, limit = over.limit,
        window_secs = over.window.as_secs(), alarm = activity.alarm(),
        "VOLUME ALARM: distinct subjects past the threshold; refusing"
    );
    Decision {
        flagged: over.first,
        throttled: true,
        ..Decision::deny(format!(
            "{}: {} more than {} distinct subjects in {} s",
            activity.noun(),
            over.scope,
            over.limit,
            over.window.as_secs()
        ))
    }
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
            let on_team: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM care_team WHERE caseworker_id = $1 AND subject_id = $2)",
            )
            .bind(caseworker)
            .bind(subject)
            .fetch_one(pool)
            .await?;
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

/// An emergency read by a caseworker outside their care team (`label` says which kind): only
/// reads, only with a written reason, always flagged for compliance review.
fn break_glass(claims: &Claims, intent: Intent<'_>, label: &str) -> Decision {
    if intent == Intent::Write {
        return Decision { flagged: true, ..Decision::deny(format!("{label} only reads")) };
    }
    match claims.reason.as_deref().map(str::trim) {
        Some(reason) if BREAK_GLASS_REASON_CHARS.contains(&reason.chars().count()) => {
            Decision { flagged: true, ..Decision::permit(format!("{label}: {reason}")) }
        }
        _ => Decision { flagged: true, ..Decision::deny(format!("{label} without a written reason")) },
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

    fn caseworker(purpose: &str) -> Claims {
        let mut claims = crate::volume::tests::claims(Role::Caseworker, &Uuid::new_v4().to_string(), purpose);
        claims.reason = Some("an emergency, written down".into());
        claims
    }

    /// A medical-emergency disclosure is an emergency read: it counts against the break-glass
    /// figures, not the far larger ordinary ones.
    #[test]
    fn emergency_disclosures_share_the_break_glass_figures() {
        let policy = crate::volume::VolumePolicy::parse(
            "[[window]]\nsecs = 60\nreads_per_service = { public-api = 100 }\nbreak_glass_per_person = 1\n",
        )
        .expect("policy");
        for purpose in [BREAK_GLASS, MEDICAL_EMERGENCY] {
            let watch = VolumeWatch::new(policy.clone());
            let claims = caseworker(purpose);
            let read = Intent::Read(Some("identity"));
            let first = break_glass(&claims, read, purpose);
            assert!(first.permitted && first.flagged, "{purpose}: {first:?}");
            assert!(counted(&watch, &claims, Uuid::new_v4(), read, first.clone()).permitted);
            let second = counted(&watch, &claims, Uuid::new_v4(), read, first);
            assert!(!second.permitted && second.throttled, "{purpose}: a second subject is over the figure");
        }
    }

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

    /// Break-glass is judged in phi-vault too, not only where public-api checks the body: a
    /// caller that skipped that check (or forged the call) gets no write and no read without a
    /// written reason of 10 to 500 characters, and every attempt is flagged for review.
    #[test]
    fn break_glass_reads_only_with_a_written_reason_and_every_attempt_is_flagged() {
        let read = Intent::Read(Some("identity"));
        let with_reason = |reason: Option<&str>| {
            let mut claims = caseworker(BREAK_GLASS);
            claims.reason = reason.map(str::to_owned);
            claims
        };
        // A write is refused as a write, even with a good reason.
        let write = break_glass(&with_reason(Some("Resident unresponsive")), Intent::Write, "break-glass");
        assert_eq!(write, Decision { flagged: true, ..Decision::deny("break-glass only reads") });
        // The reason is counted in characters, 10 to 500, after trimming.
        let (long, wide, nine) = ("x".repeat(501), "é".repeat(500), "x".repeat(9));
        for reason in [None, Some("          "), Some(nine.as_str()), Some(long.as_str())] {
            let refused = break_glass(&with_reason(reason), read, "break-glass");
            assert_eq!(refused, Decision { flagged: true, ..Decision::deny("break-glass without a written reason") });
        }
        for reason in ["x".repeat(10), "x".repeat(500), wide] {
            let permitted = break_glass(&with_reason(Some(&reason)), read, "break-glass");
            assert!(permitted.permitted && permitted.flagged, "{} characters: {permitted:?}", reason.chars().count());
        }
    }
}
