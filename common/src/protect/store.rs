//! A bounded keyed store for `governor`: at most `capacity` keys are tracked. When it is full, a
//! key it does not hold counts against one shared overflow key instead of growing the map, so
//! a flood of distinct addresses costs a fixed amount of memory. The keys it already holds keep
//! their own budgets; newcomers share one until the sweep frees room (keys idle long enough to
//! be full again are dropped once a minute).

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;

/// Cloning shares the store: the limiter owns one handle, the caller keeps another to report
/// its size.
#[derive(Clone)]
pub struct BoundedStore<K: Hash + Eq + Clone>(Arc<Inner<K>>);

struct Inner<K: Hash + Eq + Clone> {
    map: DashMapStateStore<K>,
    capacity: usize,
    overflow: K,
    /// Set while full, so the warning is logged once per episode, not once per request.
    full: AtomicBool,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// `overflow` must be a key no real client has (for addresses, the unspecified address).
    pub fn new(capacity: usize, overflow: K) -> Self {
        Self(Arc::new(Inner {
            map: DashMapStateStore::default(),
            capacity: capacity.max(1),
            overflow,
            full: AtomicBool::new(false),
        }))
    }

    /// Bytes the map holds at most, by its allocated capacity: what a flood can cost.
    pub fn allocated_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(K, governor::state::InMemoryState)>() + 1; // + the control byte
        self.0.map.capacity() * slot
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.0.map.len()
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The length is read without a lock; concurrent newcomers may pass it together, so
        // the map can exceed `capacity` by at most the number of requests in flight.
        let this = &self.0;
        if this.map.len() < this.capacity || this.map.contains_key(key) {
            return this.map.measure_and_replace(key, f);
        }
        if !this.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(capacity = this.capacity, "rate limiter full: new clients share one budget until the sweep");
        }
        this.map.measure_and_replace(&this.overflow, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let this = &self.0;
        ShrinkableKeyedStateStore::retain_recent(&this.map, drop_below);
        if this.map.len() < this.capacity {
            this.full.store(false, Ordering::Relaxed);
        }
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.0.map);
    }

    fn len(&self) -> usize {
        self.0.map.len()
    }

    fn is_empty(&self) -> bool {
        self.0.map.is_empty()
    }
}
