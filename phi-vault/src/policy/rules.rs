//! The access decision's rules, pure: a [`Decision`] and what makes one, from the caller's
//! verified claims and what `decide.rs` found. No database and no network here.

use std::borrow::Cow;

use uuid::Uuid;

use common::assertion::{Claims, BREAK_GLASS_REASON_CHARS};
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

/// An emergency read by a caseworker outside their care team (`label` says which kind): only
/// reads, only with a written reason, always flagged for compliance review.
pub(super) fn break_glass(claims: &Claims, intent: Intent<'_>, label: &str) -> Decision {
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
