//! A bounded keyed store for `governor`: at most `capacity` keys are tracked. When it is full, a
//! key it does not hold counts against one of [`OVERFLOW_BUCKETS`] shared overflow budgets,
//! chosen by a hash with a per-process random seed, instead of growing the map, so a flood of
//! distinct addresses costs a fixed amount of memory. The keys it already holds keep their own
//! budgets; a newcomer shares its bucket with the flood's keys that hash there, until the sweep
//! frees room (keys idle long enough to be full again are dropped every ten seconds). Spread
//! over that many buckets, a flood must send every bucket's whole budget to refuse a newcomer.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;

/// Cloning shares the store: the limiter owns one handle, the caller keeps another to report
/// its size.
#[derive(Clone)]
pub struct BoundedStore<K: Hash + Eq + Clone>(Arc<Inner<K>>);

/// How many shared budgets newcomers are spread over while the store is full.
pub const OVERFLOW_BUCKETS: u64 = 4096;

struct Inner<K: Hash + Eq + Clone> {
    map: DashMapStateStore<K>,
    /// Overflow budgets, by bucket number, kept apart from the clients' keys.
    overflow: DashMapStateStore<u64>,
    seed: std::collections::hash_map::RandomState,
    capacity: usize,
    /// Set while full, so the warning is logged once per episode, not once per request.
    full: AtomicBool,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Inner {
            map: DashMapStateStore::default(),
            overflow: DashMapStateStore::default(),
            seed: std::collections::hash_map::RandomState::new(),
            capacity: capacity.max(1),
            full: AtomicBool::new(false),
        }))
    }

    /// Bytes the map holds at most, by its allocated capacity: what a flood can cost.
    pub fn allocated_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(K, governor::state::InMemoryState)>() + 1; // + the control byte
        let bucket = std::mem::size_of::<(u64, governor::state::InMemoryState)>() + 1;
        self.0.map.capacity() * slot + self.0.overflow.capacity() * bucket
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
        // A known key is one shard's lookup; only a newcomer pays for the length (every
        // shard). Concurrent newcomers may pass the length together, so the map can exceed
        // `capacity` by at most the number of requests in flight.
        let this = &self.0;
        if this.map.contains_key(key) || this.map.len() < this.capacity {
            return this.map.measure_and_replace(key, f);
        }
        if !this.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(capacity = this.capacity, "rate limiter full: new clients share one budget until the sweep");
        }
        let bucket = this.seed.hash_one(key) % OVERFLOW_BUCKETS;
        this.overflow.measure_and_replace(&bucket, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let this = &self.0;
        ShrinkableKeyedStateStore::retain_recent(&this.map, drop_below);
        ShrinkableKeyedStateStore::retain_recent(&this.overflow, drop_below);
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
