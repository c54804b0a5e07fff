//! The shipped front proxy (`deploy/nginx/secondwind.conf.template`, nginx) in front of a
//! public-api that serves TLS and trusts the proxy's address: TLS 1.3 only at the edge; the
//! address the proxy saw reaches the service, never one the client wrote; the request id is
//! forwarded; query strings stay out of its log; a client stalling in its request head is cut
//! off within 10 s; a thousand idle connections from one address leave another address served.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::edge::FrontProxy;
use harness::tls::TestCerts;
use harness::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMES: [&str; 4] = ["public-api", "phi-vault", "consent", "edge"];

fn from(certs: &TestCerts, address: [u8; 4]) -> reqwest::Client {
    certs
        .client(None)
        .local_address(IpAddr::V4(Ipv4Addr::from(address)))
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

async fn behind_the_proxy(certs: &TestCerts) -> (TestApp, FrontProxy) {
    common::install_crypto_provider();
    let app = TestApp::spawn_tls_with(certs, |c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    })
    .await;
    let proxy = FrontProxy::start(certs, &app.public_api.url).await;
    (app, proxy)
}

#[tokio::test]
async fn the_front_proxy_speaks_tls_1_3_and_passes_on_the_address_it_saw() {
    let certs = TestCerts::new(&NAMES);
    let (app, proxy) = behind_the_proxy(&certs).await;
    let client = from(&certs, [127, 0, 0, 2]);
    let request_id = format!("edge-{}", app.id);
    let signed_in = client
        .post(format!("{}/api/v1/auth/dev-login", proxy.url))
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-request-id", &request_id)
        .json(&serde_json::json!({"user": "donor"}))
        .send()
        .await
        .expect("through the proxy");
    assert_eq!(signed_in.status(), 200);
    assert_eq!(signed_in.headers()["x-request-id"], request_id.as_str(), "the request id is forwarded");
    let pool = sqlx::PgPool::connect(&app.database(common::db::Database::Public).app_url()).await.expect("pool");
    let recorded: Vec<String> = sqlx::query_scalar("SELECT host(ip) FROM audit_logs WHERE request_id = $1")
        .bind(&request_id)
        .fetch_all(&pool)
        .await
        .expect("audit");
    assert_eq!(recorded, ["127.0.0.2"], "the address the proxy saw, not the proxy's, not the one the client wrote");

    let old = certs.client(None).tls_version_max(reqwest::tls::Version::TLS_1_2).build().expect("client");
    assert!(old.get(format!("{}/health", proxy.url)).send().await.is_err(), "the proxy answered TLS 1.2");

    // Internal routes are for the services alone, however the path is spelled.
    for path in ["/internal/v1/checkpoints", "//internal/v1/checkpoints", "/%69nternal/v1/checkpoints"] {
        let refused = client.post(format!("{}{path}", proxy.url)).send().await.expect("post");
        assert_eq!(refused.status(), 404, "{path}");
    }

    let health = client.get(format!("{}/health?reason=hunter2", proxy.url)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    // nginx writes the line in its log phase, after the answer has gone: wait for it.
    let logged = harness::check::eventually(Duration::from_secs(5), || {
        std::future::ready(proxy.access_log().contains("GET /health"))
    })
    .await;
    let log = proxy.access_log();
    assert!(logged && !log.contains("hunter2"), "{log}");
    pool.close().await;
    drop(proxy);
    app.stop().await;
}

#[tokio::test]
async fn the_front_proxy_cuts_a_stalled_request_head_and_serves_others_beside_idle_floods() {
    let certs = TestCerts::new(&NAMES);
    let (app, proxy) = behind_the_proxy(&certs).await;

    // A thousand idle connections from one address ...
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((Ipv4Addr::new(127, 0, 0, 3), 0).into()).expect("bind");
        idle.push(socket.connect(([127, 0, 0, 1], proxy.port).into()).await.expect("connect"));
    }
    // ... and another address is served.
    let other = from(&certs, [127, 0, 0, 4]).get(format!("{}/health", proxy.url)).send().await.expect("health");
    assert_eq!(other.status(), 200);

    // Half a request head, then nothing: cut off by the header timeout (10 s).
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(certs.dir.join("ca.pem")).expect("ca");
    for cert in <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(&ca) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port)).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n").await.expect("half a head");
    tls.flush().await.expect("flush");
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read =
        tokio::time::timeout(Duration::from_secs(20), tls.read(&mut buffer)).await.expect("still open after 20 s");
    let waited = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "the stalled client got an answer: {read:?}");
    assert!(waited >= Duration::from_secs(8) && waited <= Duration::from_secs(12), "cut off after {waited:?}");
    drop(idle);
    drop(proxy);
    app.stop().await;
}
