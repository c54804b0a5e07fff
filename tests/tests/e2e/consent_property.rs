//! A property test of the consent decision: over generated consents, revocations,
//! expiry dates, expiry events and questions, the consent service permits exactly when a model
//! of 42 CFR §2.31 says a signed, unexpired, unrevoked consent covers the recipient (or, for a
//! TPO consent, its class, of which the directory lists the recipient, and a TPO purpose), every
//! category asked and the purpose, at that
//! instant; and every permit names one of the consents that cover it.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use common::client::{ConsentClient, DisclosureQuestion};
use common::db::Database;
use common::{Role, ServiceName};
use consent::decisions::{TPO_COVERS, TPO_PURPOSE};
use harness::TestApp;

const CATEGORIES: [&str; 3] = ["identity", "insurance", "application_details"];
const PURPOSES: [&str; 5] = ["housing_placement", "care_coordination", "benefits_eligibility", "payment", TPO_PURPOSE];
const EVENT: &str = "program_exit";

#[derive(Debug, Clone)]
struct GenConsent {
    /// 0..3: one of the named recipients; 3: the partner class; 4: the insurer class.
    recipient: usize,
    categories: u8,
    purpose: usize,
    expired: bool,
    revoked: bool,
    waits_on_event: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventState {
    None,
    /// Recorded before the consents were signed: it ends none of them.
    Before,
    /// Recorded after: it ends every consent waiting on it.
    After,
}

#[derive(Debug, Clone)]
struct Question {
    recipient: usize,
    categories: u8,
    purpose: usize,
}

#[derive(Debug, Clone)]
struct Scenario {
    consents: Vec<GenConsent>,
    /// Which named recipients the directory lists (only those are members of a class).
    listed: [bool; 3],
    event: EventState,
    questions: Vec<Question>,
}

fn mask() -> impl Strategy<Value = u8> {
    1u8..8
}

/// True one time in four.
fn sometimes() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.25)
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // Class consents mostly carry the TPO purpose, as the TPO form requires, so that class
    // matching is exercised; now and then another, which must never match a class.
    let recipient_and_purpose = (0usize..5, 0usize..5, prop::bool::weighted(0.75)).prop_map(|(r, p, tpo)| {
        let purpose = if r >= 3 && tpo { 4 } else { p };
        (r, purpose)
    });
    let consent = (recipient_and_purpose, mask(), sometimes(), sometimes(), any::<bool>()).prop_map(
        |((recipient, purpose), categories, expired, revoked, waits_on_event)| GenConsent {
            recipient,
            categories,
            purpose,
            expired,
            revoked,
            waits_on_event,
        },
    );
    let event = prop_oneof![Just(EventState::None), Just(EventState::Before), Just(EventState::After)];
    // Mostly one category asked (as phi-vault asks), sometimes several.
    let asked = prop_oneof![2 => (0u8..3).prop_map(|bit| 1 << bit), 1 => mask()];
    let question = (0usize..3, asked, 0usize..5).prop_map(|(recipient, categories, purpose)| Question {
        recipient,
        categories,
        purpose,
    });
    let listed = prop::array::uniform3(prop::bool::weighted(0.75));
    (prop::collection::vec(consent, 1..7), listed, event, prop::collection::vec(question, 4..12))
        .prop_map(|(consents, listed, event, questions)| Scenario { consents, listed, event, questions })
}

fn categories(mask: u8) -> Vec<String> {
    CATEGORIES.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| (*c).to_owned()).collect()
}

/// The named recipients of one case, as decisions see them (`role:id`).
struct Recipients([String; 3]);

impl Recipients {
    fn new() -> Self {
        Self([
            format!("partner:{}", Uuid::new_v4()),
            format!("partner:{}", Uuid::new_v4()),
            format!("insurer:{}", Uuid::new_v4()),
        ])
    }

    /// The recipient a consent names.
    fn of_consent(&self, index: usize) -> String {
        match index {
            3 => "class:partner".into(),
            4 => "class:insurer".into(),
            i => self.0[i].clone(),
        }
    }
}

/// The model: the consents (by index) that cover a question.
fn covering(s: &Scenario, names: &Recipients, q: &Question) -> Vec<usize> {
    let asker = &names.0[q.recipient];
    let role = asker.split(':').next().unwrap_or_default();
    let purpose = PURPOSES[q.purpose];
    s.consents
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let ended = c.expired || c.revoked || (c.waits_on_event && s.event == EventState::After);
            let in_force = !ended;
            let covers_categories = c.categories & q.categories == q.categories;
            let named = c.recipient < 3 && names.0[c.recipient] == *asker && PURPOSES[c.purpose] == purpose;
            let class = c.recipient >= 3
                && s.listed[q.recipient]
                && names.of_consent(c.recipient) == format!("class:{role}")
                && PURPOSES[c.purpose] == TPO_PURPOSE
                && TPO_COVERS.contains(&purpose);
            in_force && covers_categories && (named || class)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Records the expiry event for `subject`, `ago` before now.
async fn record_event(pool: &sqlx::PgPool, subject: Uuid, ago: &str) {
    sqlx::query(
        "INSERT INTO expiry_events (subject_id, event, occurred_at, recorded_by) \
         VALUES ($1, $2, now() - $3::interval, 'caseworker:test')",
    )
    .bind(subject)
    .bind(EVENT)
    .bind(ago)
    .execute(pool)
    .await
    .expect("event");
}

async fn check(app: &TestApp, pool: &sqlx::PgPool, s: Scenario) -> Result<(), TestCaseError> {
    let subject = Uuid::new_v4();
    let names = Recipients::new();
    for (name, _) in names.0.iter().zip(s.listed).filter(|(_, listed)| *listed) {
        let kind = if name.starts_with("partner:") { "residence" } else { "insurer" };
        sqlx::query(
            "INSERT INTO recipients (id, kind, name, principal, created_by) VALUES ($1, $2, 'Listed ' || $3, $3, 'admin:test')",
        )
        .bind(Uuid::new_v4())
        .bind(kind)
        .bind(name)
        .execute(pool)
        .await
        .expect("directory entry");
    }
    if s.event == EventState::Before {
        record_event(pool, subject, "1 hour").await;
    }
    let mut ids = Vec::new();
    for c in &s.consents {
        let now = time::OffsetDateTime::now_utc();
        let expires = if c.expired { now - time::Duration::minutes(1) } else { now + time::Duration::days(30) };
        let id = harness::consents::consent_with(
            pool,
            subject,
            &names.of_consent(c.recipient),
            if c.recipient >= 3 { "class" } else { "named" },
            &categories(c.categories),
            PURPOSES[c.purpose],
            Some(expires),
            c.waits_on_event.then_some(EVENT),
        )
        .await;
        if c.revoked {
            harness::consents::revoke(pool, id, "beneficiary:test", None).await;
        }
        ids.push(id);
    }
    if s.event == EventState::After {
        record_event(pool, subject, "0").await;
    }
    let client = ConsentClient::new(app.internal_client(ServiceName::PhiVault, ServiceName::Consent));
    for q in &s.questions {
        let asker = &names.0[q.recipient];
        let (role, sub) = asker.split_once(':').expect("role:id");
        let role = if role == "partner" { Role::Partner } else { Role::Insurer };
        let ctx = app.user_call(sub, role, "disclosure_decision");
        let question = DisclosureQuestion {
            subject_id: subject,
            recipient: asker.clone(),
            categories: categories(q.categories),
            purpose: PURPOSES[q.purpose].into(),
        };
        let answer = client.decide(&ctx, &question).await.expect("an answer");
        let expected: Vec<Uuid> = covering(&s, &names, q).into_iter().map(|i| ids[i]).collect();
        prop_assert_eq!(answer.permitted, !expected.is_empty(), "{:?} for {:?}", answer, q);
        match answer.consent_id {
            Some(id) => prop_assert!(expected.contains(&id), "permit named {id}, not one covering {q:?}"),
            None => prop_assert!(!answer.permitted, "a permit names its consent"),
        }
    }
    Ok(())
}

#[test]
fn the_consent_decision_permits_exactly_what_a_standing_consent_covers() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let pool = runtime.block_on(sqlx::PgPool::connect(&app.database(Database::Consent).app_url())).expect("consent db");
    let cases = harness::load::env_or("SW_PROPTEST_CASES", 64u32);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&scenario(), |s| runtime.block_on(check(&app, &pool, s)));
    let verified = runtime.block_on(consent::decisions::verify(&pool, 10)).expect("verify");
    runtime.block_on(pool.close());
    runtime.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(verified.intact(), "{verified:?}");
}
