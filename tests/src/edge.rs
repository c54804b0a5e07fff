//! The shipped front proxy, `deploy/nginx/secondwind.conf.template`, rendered and started in
//! front of a test's public-api. scripts/test installs nginx (Debian's `nginx-core`) and exports
//! its path as `SECONDWIND_TEST_NGINX`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::TestCerts;

/// A running nginx; stopped, and its directory removed, on drop.
pub struct FrontProxy {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    nginx: String,
}

impl FrontProxy {
    /// nginx's own arguments for this instance (prefix, error log, configuration).
    fn command(nginx: &str, dir: &std::path::Path) -> Command {
        let mut command = Command::new(nginx);
        command.arg("-p").arg(dir).arg("-e").arg(dir.join("error.log")).arg("-c").arg(dir.join("nginx.conf"));
        command
    }
}

impl Drop for FrontProxy {
    /// A fast shutdown through the master (`-s stop`, SIGTERM), which stops its workers too: a
    /// SIGKILL to the master alone would leave the workers running, holding the port.
    fn drop(&mut self) {
        let stopped = Self::command(&self.nginx, &self.dir)
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FrontProxy {
    /// Renders the shipped template for this test (its certificate is `edge`'s from the test CA)
    /// in front of `upstream` (`https://127.0.0.1:PORT`) and starts it.
    pub async fn start(certs: &TestCerts, upstream: &str) -> Self {
        let nginx = std::env::var("SECONDWIND_TEST_NGINX")
            .expect("SECONDWIND_TEST_NGINX: run the tests through scripts/test, which installs and names nginx");
        let dir = std::env::temp_dir().join(format!("sw-edge-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        let template = std::fs::read_to_string(crate::repo_root().join("deploy/nginx/secondwind.conf.template"))
            .expect("the template");
        let upstream = upstream.strip_prefix("https://").expect("public-api serves TLS");
        let path = |p: PathBuf| p.display().to_string();
        let rendered = [
            ("${SW_RUN_DIR}", path(dir.clone())),
            ("${SW_LISTEN}", format!("127.0.0.1:{port}")),
            ("${SW_CERT}", path(certs.dir.join("ca/edge.pem"))),
            ("${SW_KEY}", path(certs.dir.join("ca/edge.key"))),
            ("${SW_UPSTREAM}", upstream.to_owned()),
            ("${SW_UPSTREAM_NAME}", "localhost".to_owned()),
            ("${SW_UPSTREAM_CA}", path(certs.dir.join("ca.pem"))),
        ]
        .iter()
        .fold(template, |text, (key, value)| text.replace(key, value));
        assert!(!rendered.contains("${"), "a placeholder was left: {rendered}");
        std::fs::write(dir.join("nginx.conf"), rendered).expect("write");
        let child = Self::command(&nginx, &dir)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx");
        let proxy = FrontProxy { url: format!("https://127.0.0.1:{port}"), port, dir, child, nginx };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return proxy;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let log = std::fs::read_to_string(proxy.dir.join("error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }

    /// What nginx logged (its access log), to check what it keeps.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}
