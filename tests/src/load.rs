//! What the load runs share (`tests/benches/load.rs`, `secondwind-load`): settings from the
//! environment, and the open loop, in which each request is due at a fixed time and its latency
//! counts from then, so a stall is not hidden by requests that were never sent.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// `name` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `p`th percentile of sorted latencies, in milliseconds (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    round3(sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0)
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One open-loop run's figures. Failed responses (status outside 2xx; 0 for none) are counted
/// by status and their latencies are in the percentiles.
#[derive(Debug, serde::Serialize)]
pub struct OpenLoop {
    pub rate: u64,
    pub requests: usize,
    pub errors: BTreeMap<u16, usize>,
    pub achieved_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl OpenLoop {
    pub fn failed(&self) -> usize {
        self.errors.values().sum()
    }
}

/// Sends `rate` requests a second for `secs` seconds, each made by `request(i)`, which resolves
/// to the response status.
pub async fn open_loop<F>(rate: u64, secs: u64, request: impl Fn(usize) -> F) -> OpenLoop
where
    F: Future<Output = u16> + Send + 'static,
{
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let pending = request(i);
        tasks.push(tokio::spawn(async move {
            let status = pending.await;
            (status, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = BTreeMap::new();
    for task in tasks {
        let (status, latency) = task.await.expect("task");
        if !(200..300).contains(&status) {
            *errors.entry(status).or_insert(0) += 1;
        }
        latencies.push(latency);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let failed: usize = errors.values().sum();
    OpenLoop {
        rate,
        requests: total,
        achieved_rps: round3((total - failed) as f64 / elapsed),
        errors,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: percentile(&latencies, 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&sorted[..1], 99.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
