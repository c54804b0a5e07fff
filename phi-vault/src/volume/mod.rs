//! Volume watch: how many distinct subjects each caller has read, or erased, in the last minute,
//! hour and day (`policies/phi-volume.toml`). A compromised public-api holds every key it needs
//! to mint calls for any user, so no per-call check can stop it going through the vault one
//! subject at a time; volume can. Past a threshold phi-vault refuses (503) until the window has
//! moved on, writes a flagged entry to the access log for compliance review (once per window and
//! scope), and logs an alarm.
//!
//! Reads are counted in two scopes: the calling service (every user it acts for, together) and
//! each acting person (by the role they act in). Break-glass reads are counted apart, per person
//! (a small figure: one caseworker cannot use up emergencies) and per service (many times
//! normal use: it stops a sweep dressed as emergencies under ever new names), so an emergency
//! never waits on a sweep of ordinary reads. Writes (create, change, delete) and erasures are
//! counted per calling service. Re-reading a subject
//! already counted is free; a refused action is not counted. Counts are kept per instance, in
//! memory: with N instances a caller can reach N times a threshold before every instance refuses
//! (see docs/threat-model.md).

mod rules;

#[cfg(test)]
pub(crate) use rules::tests;
pub use rules::{Activity, Exceeded, VolumePolicy, VolumeWatch};

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
