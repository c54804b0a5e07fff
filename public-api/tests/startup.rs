//! Start-up through the real binary: bad configuration stops it with the key named (exit 2);
//! an unreachable database is retried for a bounded time, then it exits 1 with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_public-api"));
    // Only what each test sets may reach the service.
    for (key, _) in std::env::vars() {
        if key.starts_with("SW_") || key == "SECONDWIND_CONFIG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sw-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn an_unknown_key_is_named() {
    let out = binary().env("SW_DATABASE__URLL", "postgres://x/y").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown field") && err.contains("urll") && err.contains("DATABASE.URLL"), "{err}");

    let dir = temp_dir();
    let file = dir.join("unknown.toml");
    std::fs::write(&file, "[database]\nurl = \"postgres://x/y\"\n[server]\nprot = 1\n").expect("write");
    let out = binary().arg("--config").arg(&file).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("prot") && err.contains("server"), "{err}");
}

#[test]
fn a_malformed_value_is_named() {
    let out = binary().env("SW_DATABASE__URL", "postgres://x/y").env("SW_SERVER__PORT", "99999").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("SERVER.PORT") && err.contains("99999"), "{err}");

    let out = binary()
        .env("SW_DATABASE__URL", "postgres://x/y")
        .env("SW_PROFILE", "dev")
        .env("SW_INTERNAL__ASSERTION_TTL_SECS", "600")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("internal.assertion_ttl_secs"), "{}", stderr(&out));

    let out =
        binary().env("SW_DATABASE__URL", "postgres://x/y").env("SW_LOG__LEVEL", "info,[[[").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("log.level"), "{}", stderr(&out));
}

#[test]
fn a_missing_config_file_or_argument_is_reported() {
    let out = binary().args(["--config", "/nonexistent/secondwind.toml"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = binary().arg("--bogus").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown argument `--bogus`"));
    let out = binary().output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("url"), "the database URL is required: {}", stderr(&out));
}

#[test]
fn production_refuses_dev_only_settings() {
    // No TLS to the database.
    let out = binary().env("SW_DATABASE__URL", "postgres://x/y").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "the default profile is production");
    assert!(stderr(&out).contains("database.url") && stderr(&out).contains("TLS"), "{}", stderr(&out));
    // No [tls].
    let out = binary()
        .env("SW_DATABASE__URL", "postgres://x/y?sslmode=verify-full&sslrootcert=/etc/sw/db-ca.pem")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`tls`") && stderr(&out).contains("TLS 1.3"), "{}", stderr(&out));
    // Plain-HTTP internal URLs.
    let out = binary()
        .env("SW_DATABASE__URL", "postgres://x/y?sslmode=verify-full&sslrootcert=/etc/sw/db-ca.pem")
        .env("SW_INTERNAL__PEERS__PHI-VAULT__URL", "http://10.0.0.5:8101")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("internal.peers.phi-vault.url") && err.contains("https"), "{err}");
}

#[test]
fn production_refuses_the_dev_login() {
    let dir = temp_dir();
    write_keys(&dir);
    let out = binary()
        .env("SW_DATABASE__URL", "postgres://x/y?sslmode=verify-full&sslrootcert=/etc/sw/db-ca.pem")
        .env("SW_TLS__CERT_FILE", "/etc/sw/tls/public-api.pem")
        .env("SW_TLS__KEY_FILE", "/etc/sw/tls/public-api.key")
        .env("SW_TLS__CA_FILE", "/etc/sw/tls/ca.pem")
        .env("SW_SERVICE__AUTH__DEV_LOGIN", "true")
        .env("SW_SERVICE__AUTH__SIGNING_KEYS", format!("[{{kid=\"k\", file=\"{}\"}}]", dir.join("user.key").display()))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("service.auth.dev_login") && err.contains("production refuses"), "{err}");
}

fn write_keys(dir: &Path) {
    for name in ["public-api", "phi-vault", "consent", "user"] {
        if !dir.join(format!("{name}.key")).exists() {
            common::keys::generate_files(dir, name).expect("keys");
        }
    }
}

#[test]
fn an_unreachable_database_is_retried_then_reported() {
    let dir = temp_dir();
    write_keys(&dir);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/internal-calls.toml");
    let started = Instant::now();
    let out = binary()
        .env("SW_PROFILE", "dev")
        .env("SW_DATABASE__URL", "postgres://sw_public@127.0.0.1:1/secondwind_public")
        .env("SW_DATABASE__CONNECT_TIMEOUT_SECS", "2")
        .env("SW_INTERNAL__SIGNING_KEY_FILE", dir.join("public-api.key"))
        .env("SW_INTERNAL__POLICY_FILE", &policy)
        .env("SW_SERVICE__AUTH__SIGNING_KEYS", format!("[{{kid=\"k\", file=\"{}\"}}]", dir.join("user.key").display()))
        .env("SW_SERVICE__AUTH__ROLES_FILE", policy.with_file_name("roles.toml"))
        .env("SW_LOG__LEVEL", "warn")
        .output()
        .expect("run");
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("database unreachable after"), "{err}");
    assert!(!err.contains("password"), "{err}");
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(20), "{waited:?}");
    // The retries were logged as warnings, as JSON.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.contains("database not reachable yet") && l.starts_with('{')),
        "no retry warning in {stdout}"
    );
}
