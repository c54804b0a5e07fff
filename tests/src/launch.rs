//! Launching a service in this process on an ephemeral loopback port.

#[allow(unused_imports)]
use super::*;

/// One running service.
pub struct Running {
    pub url: String,
    pub shutdown: Shutdown,
    /// The mounted routes, as `METHOD /path`.
    pub routes: Vec<(String, String)>,
    /// Its checkpoint publisher, when checkpoints are configured.
    pub checkpoints: Option<Arc<Publisher>>,
    /// A phi-vault instance's own key cache (the one its shred listener keeps), to watch
    /// what that instance holds in memory.
    pub key_cache: Option<Arc<phi_vault::crypto::KeyCache>>,
}

/// Launches `rocket` on its configured (ephemeral) port and returns once it listens.
pub async fn launch(rocket: Rocket<Build>) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<u16>();
    let tx = Mutex::new(Some(tx));
    let rocket = rocket.attach(AdHoc::on_liftoff("report port", move |r| {
        let port = r.config().port;
        Box::pin(async move {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(port);
            }
        })
    }));
    let ignited = rocket.ignite().await.expect("ignite");
    let shutdown = ignited.shutdown();
    let routes = ignited.routes().map(|r| (r.method.as_str().to_owned(), r.uri.path().to_owned())).collect();
    let checkpoints = ignited.state::<Arc<Publisher>>().cloned();
    let key_cache = ignited.state::<phi_vault::records::Vault>().map(|v| v.cache.clone());
    let scheme = if ignited.config().tls_enabled() { "https" } else { "http" };
    tokio::spawn(async move {
        let _ = ignited.launch().await;
    });
    let port = rx.await.expect("service failed to start");
    Running { url: format!("{scheme}://127.0.0.1:{port}"), shutdown, routes, checkpoints, key_cache }
}

/// A loopback port, bound now, that forwards each connection to a port known later: consent
/// anchors its checkpoints in phi-vault, which starts after it on an ephemeral port. Returns
/// the URL to configure and where to send the real port.
pub(crate) async fn forwarder() -> (String, tokio::sync::watch::Sender<Option<u16>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a forwarder");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (target, rx) = tokio::sync::watch::channel(None::<u16>);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let Ok(port) = rx.wait_for(Option::is_some).await.map(|p| p.unwrap_or_default()) else { return };
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, target)
}
