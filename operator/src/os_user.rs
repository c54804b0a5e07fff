//! Who is running the operator command, as the operating system knows it: the process's uid and
//! that uid's name in the password database. Recorded in the trails as the operator; never a
//! name typed on the command line or read from the environment (`$USER` is whatever the caller
//! sets).

use std::os::unix::fs::MetadataExt;

/// `alice (uid 1000)`, or `uid 1000` when the uid has no name.
pub fn current() -> anyhow::Result<String> {
    // /proc/self belongs to the process's effective uid: under sudo that is root, which is the
    // account that acted.
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| anyhow::anyhow!("reading /proc/self to learn the operating-system user: {e}"))?
        .uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Ok(describe(uid, name_of(&passwd, uid)))
}

fn name_of(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid && !name.is_empty()).then_some(name)
    })
}

fn describe(uid: u32, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_password_database_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n#comment\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(describe(1000, name_of(passwd, 1000)), "alice (uid 1000)");
        assert_eq!(describe(0, name_of(passwd, 0)), "root (uid 0)");
        assert_eq!(describe(4242, name_of(passwd, 4242)), "uid 4242");
    }

    #[test]
    fn the_running_process_has_an_operator_name() {
        let me = current().expect("uid");
        assert!(me.contains("uid "), "{me}");
    }
}
