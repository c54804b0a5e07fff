//! Who is running the operator command, as the operating system knows it: the process's
//! effective uid and that uid's name from the system's user database (through the C library's
//! `getpwuid_r`, so accounts kept in LDAP or another NSS source are named too). Recorded in the
//! trails as the operator; never a name typed on the command line or read from the environment
//! (`$USER` is whatever the caller sets).

/// `alice (uid 1000)`, or `uid 1000` when the uid has no name.
pub fn current() -> String {
    // The effective uid: under sudo that is root, which is the account that acted.
    let uid = uzers::get_effective_uid();
    let name = uzers::get_user_by_uid(uid).map(|user| user.name().to_string_lossy().into_owned());
    describe(uid, name.as_deref())
}

/// A name is shown only when it is a plain account name (letters, digits, `_ . @ -`, at most
/// 64, not starting with a sign): a directory service's name is not trusted to be one, and
/// `bob (uid 0)` must not pass for another account.
fn describe(uid: u32, name: Option<&str>) -> String {
    let plain = |n: &str| {
        n.len() <= 64
            && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
    };
    match name {
        Some(name) if plain(name) => format!("{name} (uid {uid})"),
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_name_is_shown_with_its_uid_and_a_missing_one_as_the_uid_alone() {
        assert_eq!(describe(1000, Some("alice")), "alice (uid 1000)");
        assert_eq!(describe(4242, None), "uid 4242");
        assert_eq!(describe(4242, Some("")), "uid 4242");
        assert_eq!(describe(1000, Some("alice@corp.example")), "alice@corp.example (uid 1000)");
        assert_eq!(describe(1000, Some("bob (uid 0)")), "uid 1000", "a name that would read as another");
        assert_eq!(describe(1000, Some("eve\nroot")), "uid 1000");
        assert_eq!(describe(1000, Some("-rf")), "uid 1000");
        assert_eq!(describe(1000, Some(&"a".repeat(65))), "uid 1000");
    }

    #[test]
    fn the_running_process_is_named_by_its_effective_uid() {
        // /proc/self belongs to the process's effective uid.
        let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
        let me = current();
        assert!(me.ends_with(&format!("uid {uid})")) || me == format!("uid {uid}"), "{me}");
        if uid == 0 {
            assert_eq!(me, "root (uid 0)");
        }
    }
}
