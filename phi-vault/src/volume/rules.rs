//! The volume policy and the in-memory counts it is applied to: distinct subjects per scope and
//! window. No database; the counts live in this instance's memory.

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
    /// Distinct subjects read in break-glass emergencies per window through each calling service
    /// (set many times normal use: it stops a sweep dressed as emergencies, not emergencies).
    #[serde(default)]
    break_glass_per_service: BTreeMap<ServiceName, usize>,
    /// Distinct subjects one person reads in break-glass emergencies per window.
    #[serde(default)]
    break_glass_per_person: Option<usize>,
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
                .chain(w.break_glass_per_person.iter())
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

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Reading (or listing) a subject's records.
    Read,
    /// Reading in a medical emergency.
    BreakGlass,
    /// Creating, changing or deleting a subject's records.
    Write,
    /// Crypto-shredding a subject.
    Erasure,
}

impl Activity {
    /// The alarm a refusal raises, and how the access log names the volume.
    pub fn alarm(self) -> &'static str {
        match self {
            Activity::Read | Activity::BreakGlass => "read_volume",
            Activity::Write => "write_volume",
            Activity::Erasure => "erasure_volume",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Activity::Read => "read volume",
            Activity::BreakGlass => "break-glass volume",
            Activity::Write => "write volume",
            Activity::Erasure => "erasure volume",
        }
    }
}

/// A counted scope: what, by whom.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope {
    Service(Activity, ServiceName),
    Person(Activity, ServiceName, Role, String),
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::Service(Activity::Read, s) => format!("service {s}"),
            Scope::Service(Activity::BreakGlass, s) => format!("break-glass reads by {s}"),
            Scope::Service(Activity::Write, s) => format!("writes by {s}"),
            Scope::Service(Activity::Erasure, s) => format!("erasures by {s}"),
            Scope::Person(Activity::BreakGlass, _, role, sub) => format!("break-glass reads by {role} {sub}"),
            Scope::Person(_, _, role, sub) => format!("{role} {sub}"),
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

    /// Counts `activity` on `subject` by the verified caller; refuses it when any scope is past
    /// its figure in any window.
    pub fn observe(&self, claims: &Claims, activity: Activity, subject: Uuid) -> Result<(), Exceeded> {
        self.observe_at(claims, activity, subject, Instant::now())
    }

    fn observe_at(&self, claims: &Claims, activity: Activity, subject: Uuid, now: Instant) -> Result<(), Exceeded> {
        let service = claims.iss;
        let person = || Scope::Person(activity, service, claims.role, claims.sub.clone());
        self.count(subject, now, |w| {
            let mut scopes = Vec::new();
            let (per_service, per_person) = match activity {
                Activity::Read => (w.reads_per_service.get(&service), w.reads_per_person.get(&claims.role)),
                Activity::BreakGlass => (w.break_glass_per_service.get(&service), w.break_glass_per_person.as_ref()),
                Activity::Write => (w.writes_per_service.get(&service), None),
                Activity::Erasure => (w.erasures_per_service.get(&service), None),
            };
            scopes.extend(per_service.map(|limit| (Scope::Service(activity, service), *limit)));
            scopes.extend(per_person.map(|limit| (person(), *limit)));
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
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Claims of a call from public-api, for tests of the policy and the watch.
    pub(crate) fn claims(role: Role, sub: &str, purpose: &str) -> Claims {
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
                 break_glass_per_person = 2\nwrites_per_service = { public-api = 2 }\n\
                 [[window]]\nsecs = 3600\nreads_per_service = { public-api = 4 }\n",
            )
            .expect("policy"),
        )
    }

    #[test]
    fn counts_distinct_subjects_per_service_and_alarms_once_a_window() {
        let w = watch();
        let t0 = Instant::now();
        let read = |i: usize, s: Uuid, at: Instant| {
            w.observe_at(&claims(Role::Beneficiary, &i.to_string(), "self_service"), Activity::Read, s, at)
        };
        let subjects: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        for (i, s) in subjects.iter().take(3).enumerate() {
            assert!(read(i, *s, t0).is_ok());
        }
        // Re-reading a counted subject is free; a fourth subject is refused.
        assert!(read(0, subjects[0], t0).is_ok());
        let refused = read(3, subjects[3], t0).expect_err("over");
        assert_eq!((refused.scope.as_str(), refused.limit, refused.first), ("service public-api", 3, true));
        assert!(!read(4, subjects[4], t0).expect_err("over").first, "one alarm per window");
        // A minute later the minute's reads no longer count, but the hour's do: one more fits.
        let later = t0 + Duration::from_secs(61);
        assert!(read(3, subjects[3], later).is_ok());
        let hourly = read(4, subjects[4], later).expect_err("over the hour");
        assert_eq!((hourly.limit, hourly.window), (4, Duration::from_secs(3600)));
    }

    #[test]
    fn one_person_past_their_role_threshold_is_refused_alone() {
        let w = watch();
        let t0 = Instant::now();
        let read =
            |sub: &str, s: Uuid| w.observe_at(&claims(Role::Caseworker, sub, "treatment"), Activity::Read, s, t0);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(read("cw1", a).is_ok());
        assert!(read("cw1", b).is_ok());
        assert_eq!(read("cw1", c).expect_err("over").scope, "caseworker cw1");
        // The refused read was not counted against the service.
        assert!(read("cw2", c).is_ok());
        w.sweep();
    }

    #[test]
    fn break_glass_reads_have_their_own_figures() {
        let w = watch();
        let t0 = Instant::now();
        for i in 0..3 {
            let me = claims(Role::Beneficiary, &i.to_string(), "self_service");
            assert!(w.observe_at(&me, Activity::Read, Uuid::new_v4(), t0).is_ok());
        }
        // Ordinary reads are at their limit; an emergency still goes through.
        let glass = |sub: &str| {
            w.observe_at(
                &claims(Role::Caseworker, sub, crate::policy::BREAK_GLASS),
                Activity::BreakGlass,
                Uuid::new_v4(),
                t0,
            )
        };
        assert!(glass("cw").is_ok(), "an emergency goes through");
        assert!(glass("cw").is_ok());
        // One caseworker cannot use up everyone's emergencies ...
        assert_eq!(glass("cw").expect_err("over").scope, "break-glass reads by caseworker cw");
        // ... and a sweep dressed as emergencies under ever new names meets the service figure.
        assert!(glass("cw2").is_ok());
        assert_eq!(glass("cw3").expect_err("over").scope, "break-glass reads by public-api");
    }

    #[test]
    fn writes_and_erasures_are_counted_per_service() {
        let w = watch();
        let me = |s: Uuid| claims(Role::Beneficiary, &s.to_string(), "self_service");
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(w.observe(&me(a), Activity::Write, a).is_ok());
        assert!(w.observe(&me(b), Activity::Write, b).is_ok());
        assert!(w.observe(&me(a), Activity::Write, a).is_ok(), "the same subject again is free");
        assert_eq!(w.observe(&me(c), Activity::Write, c).expect_err("over").scope, "writes by public-api");
        let admin = claims(Role::Admin, "a", "erasure");
        assert!(w.observe(&admin, Activity::Erasure, Uuid::new_v4()).is_ok());
        assert_eq!(
            w.observe(&admin, Activity::Erasure, Uuid::new_v4()).expect_err("over").scope,
            "erasures by public-api"
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(VolumePolicy::parse("").is_err(), "no window");
        assert!(VolumePolicy::parse("[[window]]\nsecs = 0\n").is_err());
        assert!(VolumePolicy::parse("[[window]]\nsecs = 60\nreads_per_service = { public-api = 0 }\n").is_err());
        assert!(VolumePolicy::parse("[[window]]\nsecs = 60\nreads_per_service = { nobody = 5 }\n").is_err());
        assert!(VolumePolicy::parse("[[window]]\nsecs = 60\nunknown = 1\n").is_err());
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/phi-volume.toml");
        VolumePolicy::load(&path).expect("policies/phi-volume.toml is valid");
    }
}
