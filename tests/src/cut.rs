//! A loopback TCP proxy that can be cut: while cut, a new connection is closed as soon as it
//! is accepted and the open ones are dropped mid-conversation, as when a peer becomes
//! unreachable. Restored, it forwards again.

use std::sync::Arc;
use tokio::sync::watch;

pub struct CutProxy {
    /// `http://127.0.0.1:<port>`, to configure in place of the peer's own address.
    pub url: String,
    cut: Arc<watch::Sender<bool>>,
}

impl CutProxy {
    /// Forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let cut = Arc::new(watch::channel(false).0);
        let watching = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut rx = watching.subscribe();
                if *rx.borrow() {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { url, cut }
    }

    /// Cuts (`true`) or restores (`false`) the connection.
    pub fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}
