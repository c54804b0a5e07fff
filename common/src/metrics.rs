//! Prometheus metrics: request counts and latency histograms by route, method and status, one
//! registry per service instance (several services share a process in tests). The fairing also
//! writes the access-log line, which carries the service name and request id.

use std::time::Instant;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};

use crate::{RequestId, ServiceName};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new(service: ServiceName) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("secondwind".into()),
            Some([("service".to_owned(), service.as_str().to_owned())].into()),
        )?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status."),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route, method and status.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { registry, requests, latency })
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[derive(Clone, Copy)]
struct Started(Option<Instant>);

pub struct MetricsFairing {
    pub service: ServiceName,
}

#[rocket::async_trait]
impl Fairing for MetricsFairing {
    fn info(&self) -> Info {
        Info { name: "metrics and access log", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        request.local_cache(|| Started(Some(Instant::now())));
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let elapsed = request.local_cache(|| Started(None)).0.map(|s| s.elapsed());
        // The route pattern, never the concrete path: paths may carry ids.
        let route = request.route().map(|r| r.uri.path().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
        let method = request.method().as_str();
        let status = response.status().code;
        if let Some(metrics) = request.rocket().state::<Metrics>() {
            let status_label = status.to_string();
            let labels = [route.as_str(), method, status_label.as_str()];
            metrics.requests.with_label_values(&labels).inc();
            if let Some(elapsed) = elapsed {
                metrics.latency.with_label_values(&labels).observe(elapsed.as_secs_f64());
            }
        }
        tracing::info!(
            service = self.service.as_str(),
            request_id = %RequestId::of(request),
            method,
            route = %route,
            status,
            duration_ms = elapsed.map(|e| e.as_secs_f64() * 1000.0).unwrap_or_default(),
            "request"
        );
    }
}
