//! Where the CLI keeps its settings and the signed-in session, and which server it talks to.
//!
//! - The folder: `--config-dir`, else `$SECONDWIND_ADMIN_CONFIG_DIR`, else
//!   `$XDG_CONFIG_HOME/secondwind-admin`, else `~/.config/secondwind-admin`. Created 0700.
//! - The server: `--api-url`, else `$SECONDWIND_API_URL`, else `api_url` in `config.toml` in that
//!   folder. Plain `http` only to this machine (a token must not cross a network in the clear).
//! - The session: `credentials.json`, mode 0600, bound to the server it was issued by: it is
//!   never sent anywhere else, and a file readable by others is refused.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failure::{Failure, Result};

const CREDENTIALS: &str = "credentials.json";

pub fn config_dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("SECONDWIND_ADMIN_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = env("XDG_CONFIG_HOME") {
        return Ok(dir.join("secondwind-admin"));
    }
    env("HOME").map(|home| home.join(".config").join("secondwind-admin")).ok_or_else(|| {
        Failure::usage("no HOME to keep the session in: pass --config-dir or set SECONDWIND_ADMIN_CONFIG_DIR")
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    api_url: Option<String>,
}

/// The server's base URL (`https://api.example.org`), checked.
pub fn api_url(flag: Option<&str>, dir: &Path) -> Result<String> {
    let from_env = std::env::var("SECONDWIND_API_URL").ok().filter(|v| !v.is_empty());
    let raw = match (flag, from_env) {
        (Some(url), _) => url.to_owned(),
        (None, Some(url)) => url,
        (None, None) => {
            let file = dir.join("config.toml");
            let settings: FileSettings = match fs::read_to_string(&file) {
                Ok(text) => toml::from_str(&text).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileSettings::default(),
                Err(e) => return Err(Failure::failed(format!("reading {}: {e}", file.display()))),
            };
            settings.api_url.ok_or_else(|| {
                Failure::usage(format!(
                    "which server? pass --api-url, set SECONDWIND_API_URL, or put api_url = \"https://…\" in {}",
                    file.display()
                ))
            })?
        }
    };
    check_url(&raw)
}

/// `https` anywhere; `http` only to a loopback address.
pub fn check_url(raw: &str) -> Result<String> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| Failure::usage(format!("--api-url {raw}: {e} (expected e.g. https://api.example.org)")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Failure::usage(format!(
                "--api-url {raw}: plain http is allowed only to this machine; use https"
            )))
        }
        other => return Err(Failure::usage(format!("--api-url {raw}: scheme {other} (use https)"))),
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A signed-in session as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The server that issued the token; the only one it is ever sent to.
    pub api_url: String,
    pub access_token: String,
    pub user_id: uuid::Uuid,
    pub session_id: uuid::Uuid,
    /// Unix seconds.
    pub expires_at: i64,
    /// Spent at each refresh for a new one (a spent one presented again ends the session).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// The uid this process runs as (the owner of `/proc/self`).
fn my_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The folder must be the user's own and closed to others: otherwise another account could
/// plant a `config.toml` pointing at its own server, or swap the session file.
fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| Failure::failed(format!("reading {}: {e}", dir.display())))?;
    let foreign = my_uid().is_some_and(|uid| meta.uid() != uid);
    if !meta.is_dir() || foreign || meta.permissions().mode() & 0o022 != 0 {
        return Err(Failure::denied(format!(
            "{} must be a folder you own that others cannot write to (chmod 700 it, or pass another --config-dir)",
            dir.display()
        )));
    }
    Ok(())
}

pub fn save(dir: &Path, credentials: &Credentials) -> Result<PathBuf> {
    let fail = |what: &str, e: std::io::Error| Failure::failed(format!("{what} {}: {e}", dir.display()));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail("creating", e))?;
    check_private_dir(dir)?;
    let path = dir.join(CREDENTIALS);
    let partial = dir.join(format!(".{CREDENTIALS}.{}", uuid::Uuid::new_v4().simple()));
    let text = serde_json::to_vec_pretty(credentials).map_err(|e| Failure::failed(e.to_string()))?;
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&partial, &path)
    })();
    if let Err(e) = written {
        // Never leave a copy of the token behind.
        let _ = fs::remove_file(&partial);
        return Err(fail("writing the session in", e));
    }
    Ok(path)
}

/// The stored session, if any. A file others can read is refused rather than used.
pub fn load(dir: &Path) -> Result<Option<Credentials>> {
    let path = dir.join(CREDENTIALS);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::failed(format!("reading {}: {e}", path.display()))),
    };
    check_private_dir(dir)?;
    let foreign = my_uid().is_some_and(|uid| meta.uid() != uid);
    if !meta.is_file() || foreign || meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::denied(format!(
            "{} is not a private file of yours (others can read it, or it is a link or another user's): \
             run `secondwind-admin logout` and sign in again",
            path.display()
        )));
    }
    let text = fs::read(&path).map_err(|e| Failure::failed(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|_| Failure::failed(format!("{} is damaged: run `secondwind-admin login` again", path.display())))
}

/// Holds an exclusive lock on the session for as long as the returned file lives: two commands
/// refreshing at once would present the same refresh token twice, which the server takes for
/// theft and answers by ending the session.
pub fn lock(dir: &Path) -> Result<fs::File> {
    let fail = |e: std::io::Error| Failure::failed(format!("locking the session in {}: {e}", dir.display()));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
    check_private_dir(dir)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("credentials.lock"))
        .map_err(fail)?;
    file.lock().map_err(fail)?;
    Ok(file)
}

/// Removes the stored session; true if there was one.
pub fn forget(dir: &Path) -> Result<bool> {
    match fs::remove_file(dir.join(CREDENTIALS)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::failed(format!("removing the session: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cross_a_network_only_over_https() {
        assert_eq!(check_url("https://api.example.org/").expect("https"), "https://api.example.org");
        assert!(check_url("http://127.0.0.1:8000").is_ok());
        assert!(check_url("http://localhost:8000").is_ok());
        assert!(check_url("http://[::1]:8000").is_ok());
        assert_eq!(check_url("http://api.example.org").expect_err("http").exit, crate::failure::Exit::Usage);
        assert!(check_url("ftp://127.0.0.1").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn the_session_file_is_private_and_refused_when_it_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let home = dir.path().join("cfg");
        let credentials = Credentials {
            api_url: "http://127.0.0.1:1".into(),
            access_token: "t".into(),
            user_id: uuid::Uuid::nil(),
            session_id: uuid::Uuid::nil(),
            expires_at: 0,
            refresh_token: None,
        };
        let path = save(&home, &credentials).expect("save");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&home).expect("meta").permissions().mode() & 0o777, 0o700);
        assert_eq!(load(&home).expect("load").expect("some").access_token, "t");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(load(&home).expect_err("refused").exit, crate::failure::Exit::Denied);
        assert!(forget(&home).expect("forget"));
        assert!(load(&home).expect("load").is_none());
    }
}
