//! The runs: saturation and the open loop.

#[allow(unused_imports)]
use super::*;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    Me,
    ProfileRead,
    ProfileWrite,
    Dashboard,
}

impl Route {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Me => "GET /users/me",
            Route::ProfileRead => "GET /beneficiaries/me/profile",
            Route::ProfileWrite => "PUT /beneficiaries/me/profile",
            Route::Dashboard => "GET /beneficiaries/me/dashboard",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Route::Me => "users_me",
            Route::ProfileRead => "profile_read",
            Route::ProfileWrite => "profile_write",
            Route::Dashboard => "dashboard",
        }
    }
}

pub(crate) async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body, as a client would, so the connection is reused.
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct Saturation {
    pub(crate) requests: usize,
    pub(crate) errors: BTreeMap<u16, usize>,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    pub(crate) cpu_ms_per_request: BTreeMap<String, f64>,
}

/// Closed loop: `concurrency` requests always in flight, for `secs` after a warm-up; or, with
/// `count`, until that many have completed.
pub(crate) async fn saturate(
    fleet: &Arc<Fleet>,
    route: Route,
    concurrency: usize,
    limit: Limit,
    pids: &Pids,
    hz: f64,
) -> Saturation {
    // Warm-up: connections opened, caches filled, nothing counted.
    drive(fleet, route, concurrency, Limit::Count(concurrency * 20)).await;
    let before = pids.ticks();
    let started = Instant::now();
    let (requests, errors) = drive(fleet, route, concurrency, limit).await;
    let seconds = started.elapsed().as_secs_f64();
    let after = pids.ticks();
    let ok = requests - errors.values().sum::<usize>();
    Saturation {
        requests,
        rps: round3(ok as f64 / seconds),
        seconds: round3(seconds),
        cpu_ms_per_request: cpu_ms_per(&before, &after, requests, hz),
        errors,
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Limit {
    For(Duration),
    Count(usize),
}

pub(crate) async fn drive(
    fleet: &Arc<Fleet>,
    route: Route,
    concurrency: usize,
    limit: Limit,
) -> (usize, BTreeMap<u16, usize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = match limit {
        Limit::For(d) => Some(Instant::now() + d),
        Limit::Count(_) => None,
    };
    let count = match limit {
        Limit::Count(n) => n,
        Limit::For(_) => usize::MAX,
    };
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (fleet, issued) = (fleet.clone(), issued.clone());
        workers.push(tokio::spawn(async move {
            let (mut done, mut errors) = (0usize, BTreeMap::new());
            while deadline.is_none_or(|d| Instant::now() < d) && issued.fetch_add(1, Ordering::Relaxed) < count {
                let status = status_of(fleet.request(route)).await;
                done += 1;
                if !(200..300).contains(&status) {
                    *errors.entry(status).or_insert(0) += 1;
                }
            }
            (done, errors)
        }));
    }
    let (mut total, mut errors) = (0, BTreeMap::new());
    for worker in workers {
        let (done, e) = worker.await.expect("worker");
        total += done;
        for (status, n) in e {
            *errors.entry(status).or_insert(0) += n;
        }
    }
    (total, errors)
}

/// The open loop for `route` (see [`harness::load::open_loop`]).
pub(crate) async fn open_loop(fleet: &Arc<Fleet>, route: Route, rate: u64, secs: u64) -> OpenLoop {
    harness::load::open_loop(rate, secs, |_| status_of(fleet.request(route))).await
}
