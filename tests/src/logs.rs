//! The log lines the services write during a test, captured.

#[allow(unused_imports)]
use super::*;

/// Every log line of this test process, as JSON values (one process per test under nextest).
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the crypto provider and the log capture; every test calls it (`spawn` does).
pub fn init() {
    common::install_crypto_provider();
    init_logging();
}

pub(crate) fn init_logging() {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(common::telemetry::filter("info").expect("filter"))
            .with_writer(move || writer.clone())
            .try_init();
        capture
    });
}

/// The captured log lines, parsed.
pub fn logs() -> Vec<serde_json::Value> {
    let Some(capture) = CAPTURE.get() else { return Vec::new() };
    let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Captured lines whose `request_id` field equals `id`.
pub fn logs_for_request(id: &str) -> Vec<serde_json::Value> {
    logs().into_iter().filter(|l| l["request_id"].as_str() == Some(id)).collect()
}
