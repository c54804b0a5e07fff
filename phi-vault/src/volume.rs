//! Volume watch: how many distinct subjects each caller has read, or erased, in the last minute,
//! hour and day (`policies/phi-volume.toml`). A compromised public-api holds every key it needs
//! to mint calls for any user, so no per-call check can stop it going through the vault one
//! subject at a time; volume can. Past a threshold phi-vault refuses (503) until the window has
//! moved on, writes a flagged entry to the access log for compliance review (once per window and
//! scope), and logs an alarm.
//!
//! Reads are counted in two scopes: the calling service (every user it acts for, together) and
//! each acting person (by the role they act in). Break-glass reads are counted apart, per
//! service, with their own (small) figure: an emergency does not wait on someone else's sweep of
//! ordinary reads, and a sweep dressed as emergencies is stopped by its own figure. Writes
//! (create, change, delete) and erasures are counted per calling service. Re-reading a subject
//! already counted is free; a refused action is not counted. Counts are kept per instance, in
//! memory: with N instances a caller can reach N times a threshold before every instance refuses
//! (see the README's threat model).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use uuid::Uuid;

use common::assertion::Claims;
use common::{Role, ServiceName};

/// One window's thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowRule {
    /// The window distinct subjects are counted over, in seconds.
    secs: u64,
    /// Distinct subjects read per window by each calling service, all its users together.
    #[serde(default)]
    reads_per_service: BTreeMap<ServiceName, usize>,
    /// Distinct subjects read per window by one person acting in a role.
    #[serde(default)]
    reads_per_person: BTreeMap<Role, usize>,
    /// Distinct subjects read in break-glass emergencies per window through each calling service.
    #[serde(default)]
    break_glass_per_service: BTreeMap<ServiceName, usize>,
    /// Distinct subjects whose records are created, changed or deleted per window through each
    /// calling service.
    #[serde(default)]
    writes_per_service: BTreeMap<ServiceName, usize>,
    /// Subjects erased per window through each calling service.
    #[serde(default)]
    erasures_per_service: BTreeMap<ServiceName, usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumePolicy {
    #[serde(rename = "window")]
    windows: Vec<WindowRule>,
}

impl VolumePolicy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if policy.windows.is_empty() {
            return Err("at least one [[window]]".into());
        }
        for w in &policy.windows {
            if w.secs == 0 {
                return Err("window secs must be at least 1".into());
            }
            let limits = w
                .reads_per_service
                .values()
                .chain(w.reads_per_person.values())
                .chain(w.break_glass_per_service.values())
                .chain(w.writes_per_service.values())
                .chain(w.erasures_per_service.values());
            if limits.copied().any(|n| n == 0) {
                return Err("every threshold must be at least 1".into());
            }
        }
        Ok(policy)
    }

    /// The shortest window's read threshold for everything `service` asks, together.
    pub fn service_limit(&self, service: ServiceName) -> Option<usize> {
        self.windows.iter().min_by_key(|w| w.secs).and_then(|w| w.reads_per_service.get(&service).copied())
    }

    /// The shortest window's erasure threshold for `service`.
    pub fn erasure_limit(&self, service: ServiceName) -> Option<usize> {
        self.windows.iter().min_by_key(|w| w.secs).and_then(|w| w.erasures_per_service.get(&service).copied())
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `service public-api`, `caseworker 3f0c…`, `break-glass reads by public-api`,
    /// `writes by public-api` or `erasures by public-api`.
    pub scope: String,
    pub limit: usize,
    pub window: Duration,
    /// The first refusal of this scope in its window: the one compliance is asked to review.
    pub first: bool,
}

#[derive(Default)]
struct Window {
    /// Each subject counted, with when it was last seen.
    seen: HashMap<Uuid, Instant>,
    /// Until when this scope's alarm has been raised.
    alarmed_until: Option<Instant>,
}

impl Window {
    /// Whether counting `subject` keeps the scope within `limit` (forgetting subjects older than
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

    fn refuse(&mut self, scope: String, limit: usize, now: Instant, window: Duration) -> Exceeded {
        let first = self.alarmed_until.is_none_or(|until| until <= now);
        if first {
            self.alarmed_until = Some(now + window);
        }
        Exceeded { scope, limit, window, first }
    }

    fn stale(&self, now: Instant, window: Duration) -> bool {
        self.seen.values().all(|at| now.duration_since(*at) >= window)
            && self.alarmed_until.is_none_or(|until| until <= now)
    }
}

/// A counted scope: who, and what they do.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope {
    ServiceReads(ServiceName),
    PersonReads(ServiceName, Role, String),
    ServiceBreakGlass(ServiceName),
    ServiceWrites(ServiceName),
    ServiceErasures(ServiceName),
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::ServiceReads(s) => format!("service {s}"),
            Scope::PersonReads(_, role, sub) => format!("{role} {sub}"),
            Scope::ServiceBreakGlass(s) => format!("break-glass reads by {s}"),
            Scope::ServiceWrites(s) => format!("writes by {s}"),
            Scope::ServiceErasures(s) => format!("erasures by {s}"),
        }
    }
}

pub struct VolumeWatch {
    policy: VolumePolicy,
    /// One map of scopes per window, in the policy's order.
    counts: Mutex<Vec<HashMap<Scope, Window>>>,
}

impl VolumeWatch {
    pub fn new(policy: VolumePolicy) -> Self {
        let counts = Mutex::new(policy.windows.iter().map(|_| HashMap::new()).collect());
        Self { policy, counts }
    }

    /// Counts a read of `subject` by the verified caller; refuses it when any scope is past its
    /// threshold in any window.
    pub fn observe(&self, claims: &Claims, subject: Uuid) -> Result<(), Exceeded> {
        self.observe_at(claims, subject, Instant::now())
    }

    /// Counts an erasure of `subject` (one that will happen) through the verified caller;
    /// refuses it past a threshold.
    pub fn observe_erasure(&self, claims: &Claims, subject: Uuid) -> Result<(), Exceeded> {
        let scope = |w: &WindowRule| {
            w.erasures_per_service.get(&claims.iss).map(|limit| (Scope::ServiceErasures(claims.iss), *limit))
        };
        self.count(subject, Instant::now(), |w| scope(w).into_iter().collect())
    }

    /// Counts a write (create, change, delete) of `subject`'s records through the verified
    /// caller; refuses it past a threshold.
    pub fn observe_write(&self, claims: &Claims, subject: Uuid) -> Result<(), Exceeded> {
        let scope = |w: &WindowRule| {
            w.writes_per_service.get(&claims.iss).map(|limit| (Scope::ServiceWrites(claims.iss), *limit))
        };
        self.count(subject, Instant::now(), |w| scope(w).into_iter().collect())
    }

    fn observe_at(&self, claims: &Claims, subject: Uuid, now: Instant) -> Result<(), Exceeded> {
        let emergency = claims.purpose == crate::policy::BREAK_GLASS;
        self.count(subject, now, |w| {
            let mut scopes = Vec::new();
            let service = if emergency {
                w.break_glass_per_service.get(&claims.iss).map(|limit| (Scope::ServiceBreakGlass(claims.iss), *limit))
            } else {
                w.reads_per_service.get(&claims.iss).map(|limit| (Scope::ServiceReads(claims.iss), *limit))
            };
            scopes.extend(service);
            if let Some(limit) = w.reads_per_person.get(&claims.role) {
                scopes.push((Scope::PersonReads(claims.iss, claims.role, claims.sub.clone()), *limit));
            }
            scopes
        })
    }

    /// Checks `subject` against every (scope, limit) the rule names in every window; counts it
    /// everywhere only when none refuses.
    fn count(
        &self,
        subject: Uuid,
        now: Instant,
        scopes_of: impl Fn(&WindowRule) -> Vec<(Scope, usize)>,
    ) -> Result<(), Exceeded> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut admitted = Vec::new();
        for (i, rule) in self.policy.windows.iter().enumerate() {
            let window = Duration::from_secs(rule.secs);
            for (scope, limit) in scopes_of(rule) {
                let w = counts[i].entry(scope.clone()).or_default();
                if !w.admits(subject, limit, now, window) {
                    return Err(w.refuse(scope.describe(), limit, now, window));
                }
                admitted.push((i, scope));
            }
        }
        for (i, scope) in admitted {
            counts[i].entry(scope).or_default().seen.insert(subject, now);
        }
        Ok(())
    }

    /// Forgets scopes with nothing in their window (run on a timer: people come and go).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (i, rule) in self.policy.windows.iter().enumerate() {
            let window = Duration::from_secs(rule.secs);
            counts[i].retain(|_, w| !w.stale(now, window));
        }
    }

    /// How often [`VolumeWatch::sweep`] is worth running: the shortest window.
    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(self.policy.windows.iter().map(|w| w.secs).min().unwrap_or(60))
    }
}

/// Sweeps the watch every shortest window until shutdown.
pub async fn sweep_until(watch: std::sync::Arc<VolumeWatch>, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(watch.sweep_every()) => watch.sweep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, sub: &str, purpose: &str) -> Claims {
        Claims {
            iss: ServiceName::PublicApi,
            aud: ServiceName::PhiVault,
            sub: sub.into(),
            sid: None,
            role,
            purpose: purpose.into(),
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
            VolumePolicy::parse(
                "[[window]]\nsecs = 60\nreads_per_service = { public-api = 3 }\nreads_per_person = { caseworker = 2 }\n\
                 erasures_per_service = { public-api = 1 }\nbreak_glass_per_service = { public-api = 3 }\n\
                 writes_per_service = { public-api = 2 }\n\
                 [[window]]\nsecs = 3600\nreads_per_service = { public-api = 4 }\n",
            )
            .expect("policy"),
        )
    }

    #[test]
    fn counts_distinct_subjects_per_service_and_alarms_once_a_window() {
        let w = watch();
        let t0 = Instant::now();
        let me = |i: usize| claims(Role::Beneficiary, &i.to_string(), "self_service");
        let subjects: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        for (i, s) in subjects.iter().take(3).enumerate() {
            assert!(w.observe_at(&me(i), *s, t0).is_ok());
        }
        // Re-reading a counted subject is free; a fourth subject is refused.
        assert!(w.observe_at(&me(0), subjects[0], t0).is_ok());
        let refused = w.observe_at(&me(3), subjects[3], t0).expect_err("over");
        assert_eq!((refused.scope.as_str(), refused.limit, refused.first), ("service public-api", 3, true));
        let again = w.observe_at(&me(4), subjects[4], t0).expect_err("over");
        assert!(!again.first, "one alarm per window");
        // A minute later the minute's reads no longer count, but the hour's do: one more fits.
        let later = t0 + Duration::from_secs(61);
        assert!(w.observe_at(&me(3), subjects[3], later).is_ok());
        let hourly = w.observe_at(&me(4), subjects[4], later).expect_err("over the hour");
        assert_eq!((hourly.limit, hourly.window), (4, Duration::from_secs(3600)));
    }

    #[test]
    fn one_person_past_their_role_threshold_is_refused_alone() {
        let w = watch();
        let t0 = Instant::now();
        let cw = |sub: &str| claims(Role::Caseworker, sub, "treatment");
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(w.observe_at(&cw("cw1"), a, t0).is_ok());
        assert!(w.observe_at(&cw("cw1"), b, t0).is_ok());
        let refused = w.observe_at(&cw("cw1"), c, t0).expect_err("over");
        assert_eq!(refused.scope, "caseworker cw1");
        // The refused read was not counted against the service.
        assert!(w.observe_at(&cw("cw2"), c, t0).is_ok());
        w.sweep();
    }

    #[test]
    fn break_glass_reads_have_their_own_service_figure() {
        let w = watch();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(w
                .observe_at(&claims(Role::Beneficiary, &i.to_string(), "self_service"), Uuid::new_v4(), t0)
                .is_ok());
        }
        // Ordinary reads are at their limit; an emergency still goes through.
        let glass = |sub: &str| claims(Role::Caseworker, sub, crate::policy::BREAK_GLASS);
        assert!(w.observe_at(&glass("cw"), Uuid::new_v4(), t0).is_ok(), "an emergency goes through");
        assert!(w.observe_at(&glass("cw"), Uuid::new_v4(), t0).is_ok());
        assert_eq!(w.observe_at(&glass("cw"), Uuid::new_v4(), t0).expect_err("over").scope, "caseworker cw");
        // A sweep dressed as emergencies by ever new "caseworkers" meets the break-glass figure.
        assert!(w.observe_at(&glass("cw2"), Uuid::new_v4(), t0).is_ok());
        let over = w.observe_at(&glass("cw3"), Uuid::new_v4(), t0).expect_err("over");
        assert_eq!(over.scope, "break-glass reads by public-api");
    }

    #[test]
    fn writes_are_counted_per_service() {
        let w = watch();
        let me = |s: Uuid| claims(Role::Beneficiary, &s.to_string(), "self_service");
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(w.observe_write(&me(a), a).is_ok());
        assert!(w.observe_write(&me(b), b).is_ok());
        assert!(w.observe_write(&me(a), a).is_ok(), "the same subject again is free");
        assert_eq!(w.observe_write(&me(c), c).expect_err("over").scope, "writes by public-api");
    }

    #[test]
    fn erasures_are_counted_per_service() {
        let w = watch();
        let admin = claims(Role::Admin, "a", "erasure");
        assert!(w.observe_erasure(&admin, Uuid::new_v4()).is_ok());
        assert_eq!(w.observe_erasure(&admin, Uuid::new_v4()).expect_err("over").scope, "erasures by public-api");
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/phi-volume.toml");
        VolumePolicy::load(&path).expect("policies/phi-volume.toml is valid");
    }
}
