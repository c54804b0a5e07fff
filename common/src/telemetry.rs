//! One place that sets up logging: JSON lines to stdout and, when a directory is configured, to a
//! daily-rolling file, written by background threads. Rocket logs through the `log` crate;
//! `tracing-log` bridges it in.
//!
//! Never log: tokens, cookies, passwords, keys, PHI or record contents, email addresses.
//! Log ids (request, user, record) and outcomes instead.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogConfig;

/// Keep the guard alive for the life of the process: dropping it flushes the file writer.
pub struct TelemetryGuard {
    _writers: Vec<WorkerGuard>,
}

/// The filter for `level`, with Rocket's own request lines always off: they quote the full URI,
/// query string included (which may carry a reason, a name, a pasted token). Each request is
/// logged once instead by the metrics fairing, with its route pattern.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    let quiet = "rocket::server=off".parse().map_err(|e| format!("{e}"))?;
    Ok(EnvFilter::try_new(level).map_err(|e| format!("log.level: {e}"))?.add_directive(quiet))
}

/// Logging is set up once per process. Each line is formatted once and handed to a writer
/// thread for stdout (and another for the file, when `log.dir` is set), so no request waits on
/// a write. While the process runs the writers drop no line: when they fall behind, logging
/// blocks. Lines still queued when the process is killed are lost (the trails in the databases,
/// not the log, are the record: a break-glass alarm's entry is its flagged access-log row).
pub fn init(service: &str, config: &LogConfig) -> Result<TelemetryGuard, String> {
    use tracing_appender::non_blocking::NonBlockingBuilder;
    use tracing_subscriber::fmt::writer::MakeWriterExt;

    let filter = filter(&config.level)?;
    let (stdout, stdout_guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
    let mut guards = vec![stdout_guard];
    let file = match &config.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("log.dir {}: {e}", dir.display()))?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(service)
                .filename_suffix("log")
                .build(dir)
                .map_err(|e| format!("log.dir {}: {e}", dir.display()))?;
            let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(appender);
            guards.push(guard);
            Some(writer)
        }
        None => None,
    };
    let layer = tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(false).with_ansi(false);
    let layer = match file {
        Some(file) => layer.with_writer(stdout.and(file)).boxed(),
        None => layer.with_writer(stdout).boxed(),
    };
    // `try_init` also installs the `log` → `tracing` bridge, so Rocket's own lines arrive here.
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("telemetry already initialised: {e}"))?;
    Ok(TelemetryGuard { _writers: guards })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines written by the background writer all reach the file, formatted once, by the time
    /// the guard is dropped (as it is when a service stops).
    #[test]
    fn every_line_reaches_the_log_file_when_the_guard_is_dropped() {
        let dir = std::env::temp_dir().join(format!("secondwind-telemetry-{}", uuid::Uuid::new_v4()));
        let guard = init("telemetry-test", &LogConfig { level: "info".into(), dir: Some(dir.clone()) }).expect("init");
        for i in 0..2000 {
            tracing::info!(n = i, "line");
        }
        drop(guard);
        let file = std::fs::read_dir(&dir).expect("dir").flatten().next().expect("a log file").path();
        let text = std::fs::read_to_string(file).expect("read");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        let ours: Vec<_> = lines.iter().filter(|l| l["message"] == "line").collect();
        assert_eq!(ours.len(), 2000, "no line dropped");
        assert!(ours.iter().enumerate().all(|(i, l)| l["n"] == i), "in order");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
