//! Uploads under way: at most a few per person (429) and a bound per instance (503), so nobody
//! ties up the virus scanner or the vault for everyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use common::ApiError;

use super::rules::DocumentSettings;

/// The slots of this instance, managed state.
pub struct Uploads {
    global: Arc<Semaphore>,
    per_user: Mutex<HashMap<Uuid, u32>>,
    per_user_max: u32,
}

impl Uploads {
    pub fn new(settings: &DocumentSettings) -> Self {
        Self {
            global: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            per_user: Default::default(),
            per_user_max: settings.per_user_concurrent.max(1),
        }
    }

    /// A slot for one upload of `user`'s, held until dropped.
    pub(super) fn claim(&self, user: Uuid) -> Result<UploadSlot<'_>, ApiError> {
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable("too many uploads are under way; try again in a minute".into()))?;
        let mut per_user = self.per_user.lock().map_err(|_| ApiError::internal("upload slots poisoned"))?;
        let held = per_user.entry(user).or_insert(0);
        if *held >= self.per_user_max {
            return Err(ApiError::TooManyRequests(format!(
                "at most {} uploads at a time; wait for one to finish",
                self.per_user_max
            )));
        }
        *held += 1;
        Ok(UploadSlot { uploads: self, user, _permit: permit })
    }
}

pub(super) struct UploadSlot<'a> {
    uploads: &'a Uploads,
    user: Uuid,
    _permit: OwnedSemaphorePermit,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut per_user) = self.uploads.per_user.lock() {
            if let Some(held) = per_user.get_mut(&self.user) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    per_user.remove(&self.user);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_bounded_per_person_and_per_instance() {
        let uploads =
            Uploads::new(&DocumentSettings { max_concurrent: 3, per_user_concurrent: 2, ..Default::default() });
        let (me, you) = (Uuid::new_v4(), Uuid::new_v4());
        let first = uploads.claim(me).expect("first");
        let second = uploads.claim(me).expect("second");
        assert!(matches!(uploads.claim(me), Err(ApiError::TooManyRequests(_))), "a third of mine");
        let yours = uploads.claim(you).expect("yours");
        assert!(matches!(uploads.claim(you), Err(ApiError::Unavailable(_))), "the instance is full");
        drop(first);
        let again = uploads.claim(me).expect("a slot of mine came free");
        drop((second, yours, again));
        assert!(uploads.per_user.lock().expect("lock").is_empty(), "nothing held once all are done");
    }
}
