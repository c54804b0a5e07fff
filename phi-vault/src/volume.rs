//! Read-volume watch: how many distinct subjects each caller has read in the last window
//! (`policies/phi-volume.toml`). A compromised public-api holds every key it needs to mint calls
//! for any user, so no per-call check can stop it reading the whole vault one subject at a time;
//! volume can. Past a threshold phi-vault refuses reads (503) until the window has moved on,
//! writes a flagged entry to the access log for compliance review (once per window and scope),
//! and logs an alarm.
//!
//! Two scopes are counted: the calling service (every user it acts for, together) and each
//! acting person (by the role they act in). Re-reading a subject already counted is free; a
//! refused read is not counted. Counts are kept per instance, in memory: with N instances a
//! caller can reach N times a threshold before every instance refuses (see the README's threat
//! model).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use uuid::Uuid;

use common::assertion::Claims;
use common::{Role, ServiceName};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumePolicy {
    /// The window distinct subjects are counted over, in seconds.
    window_secs: u64,
    /// Distinct subjects per window for each calling service, all its users together.
    per_service: BTreeMap<ServiceName, usize>,
    /// Distinct subjects per window for one person acting in a role.
    per_person: BTreeMap<Role, usize>,
}

impl VolumePolicy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if policy.window_secs == 0 {
            return Err("window_secs must be at least 1".into());
        }
        if policy.per_service.values().chain(policy.per_person.values()).any(|n| *n == 0) {
            return Err("every threshold must be at least 1".into());
        }
        Ok(policy)
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// The threshold for everything `service` asks, together.
    pub fn service_limit(&self, service: ServiceName) -> Option<usize> {
        self.per_service.get(&service).copied()
    }
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `service public-api` or `caseworker 3f0c…`.
    pub scope: String,
    pub limit: usize,
    /// The first refusal of this scope in the window: the one compliance is asked to review.
    pub first: bool,
}

#[derive(Default)]
struct Window {
    /// Each subject read, with when it was last read.
    seen: HashMap<Uuid, Instant>,
    /// Until when this scope's alarm has been raised.
    alarmed_until: Option<Instant>,
}

impl Window {
    /// Whether reading `subject` keeps the scope within `limit` (forgetting reads older than
    /// `window` when it must count).
    fn admits(&mut self, subject: Uuid, limit: usize, now: Instant, window: Duration) -> bool {
        if self.seen.contains_key(&subject) {
            return true;
        }
        if self.seen.len() >= limit {
            self.seen.retain(|_, at| now.duration_since(*at) < window);
        }
        self.seen.len() < limit
    }

    fn stale(&self, now: Instant, window: Duration) -> bool {
        self.seen.values().all(|at| now.duration_since(*at) >= window)
            && self.alarmed_until.is_none_or(|until| until <= now)
    }
}

#[derive(Default)]
struct Counts {
    services: HashMap<ServiceName, Window>,
    people: HashMap<(ServiceName, Role, String), Window>,
}

pub struct VolumeWatch {
    policy: VolumePolicy,
    counts: Mutex<Counts>,
}

impl VolumeWatch {
    pub fn new(policy: VolumePolicy) -> Self {
        Self { policy, counts: Mutex::new(Counts::default()) }
    }

    /// Counts a read of `subject` by the verified caller; refuses it when either scope is past
    /// its threshold.
    pub fn observe(&self, claims: &Claims, subject: Uuid) -> Result<(), Exceeded> {
        self.observe_at(claims, subject, Instant::now())
    }

    fn observe_at(&self, claims: &Claims, subject: Uuid, now: Instant) -> Result<(), Exceeded> {
        let window = self.policy.window();
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = &mut *counts;
        let service_limit = self.policy.per_service.get(&claims.iss).copied();
        let person_limit = self.policy.per_person.get(&claims.role).copied();
        let person_key = (claims.iss, claims.role, claims.sub.clone());

        let refuse = |w: &mut Window, scope: String, limit: usize| {
            let first = w.alarmed_until.is_none_or(|until| until <= now);
            if first {
                w.alarmed_until = Some(now + window);
            }
            Err(Exceeded { scope, limit, first })
        };
        if let Some(limit) = service_limit {
            let w = counts.services.entry(claims.iss).or_default();
            if !w.admits(subject, limit, now, window) {
                return refuse(w, format!("service {}", claims.iss), limit);
            }
        }
        if let Some(limit) = person_limit {
            let w = counts.people.entry(person_key.clone()).or_default();
            if !w.admits(subject, limit, now, window) {
                return refuse(w, format!("{} {}", claims.role, claims.sub), limit);
            }
        }
        if service_limit.is_some() {
            counts.services.entry(claims.iss).or_default().seen.insert(subject, now);
        }
        if person_limit.is_some() {
            counts.people.entry(person_key).or_default().seen.insert(subject, now);
        }
        Ok(())
    }

    /// Forgets scopes with nothing in the window (run on a timer: people come and go).
    pub fn sweep(&self) {
        let now = Instant::now();
        let window = self.policy.window();
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.people.retain(|_, w| !w.stale(now, window));
        counts.services.retain(|_, w| !w.stale(now, window));
    }

    pub fn window(&self) -> Duration {
        self.policy.window()
    }
}

/// Sweeps the watch every window until shutdown.
pub async fn sweep_until(watch: std::sync::Arc<VolumeWatch>, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(watch.window()) => watch.sweep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, sub: &str) -> Claims {
        Claims {
            iss: ServiceName::PublicApi,
            aud: ServiceName::PhiVault,
            sub: sub.into(),
            sid: None,
            role,
            purpose: "treatment".into(),
            request_id: "r".into(),
            reason: None,
            htm: "GET".into(),
            htu: "/".into(),
            bsh: String::new(),
            delegation: None,
            iat: 0,
            exp: 0,
            jti: "j".into(),
        }
    }

    fn watch() -> VolumeWatch {
        VolumeWatch::new(
            VolumePolicy::parse("window_secs = 60\n[per_service]\npublic-api = 3\n[per_person]\ncaseworker = 2\n")
                .expect("policy"),
        )
    }

    #[test]
    fn counts_distinct_subjects_per_service_and_alarms_once_a_window() {
        let w = watch();
        let t0 = Instant::now();
        let subjects: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, s) in subjects.iter().take(3).enumerate() {
            assert!(w.observe_at(&claims(Role::Beneficiary, &i.to_string()), *s, t0).is_ok());
        }
        // Re-reading a counted subject is free; a fourth subject is refused.
        assert!(w.observe_at(&claims(Role::Beneficiary, "0"), subjects[0], t0).is_ok());
        let refused = w.observe_at(&claims(Role::Beneficiary, "3"), subjects[3], t0).expect_err("over");
        assert_eq!((refused.scope.as_str(), refused.limit, refused.first), ("service public-api", 3, true));
        let again = w.observe_at(&claims(Role::Beneficiary, "4"), subjects[4], t0).expect_err("over");
        assert!(!again.first, "one alarm per window");
        // A window later the old reads no longer count.
        let later = t0 + Duration::from_secs(61);
        assert!(w.observe_at(&claims(Role::Beneficiary, "3"), subjects[3], later).is_ok());
    }

    #[test]
    fn one_person_past_their_role_threshold_is_refused_alone() {
        let w = watch();
        let t0 = Instant::now();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(w.observe_at(&claims(Role::Caseworker, "cw1"), a, t0).is_ok());
        assert!(w.observe_at(&claims(Role::Caseworker, "cw1"), b, t0).is_ok());
        let refused = w.observe_at(&claims(Role::Caseworker, "cw1"), c, t0).expect_err("over");
        assert_eq!(refused.scope, "caseworker cw1");
        // The refused read was not counted against the service.
        assert!(w.observe_at(&claims(Role::Caseworker, "cw2"), c, t0).is_ok());
        w.sweep();
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/phi-volume.toml");
        VolumePolicy::load(&path).expect("policies/phi-volume.toml is valid");
    }
}
