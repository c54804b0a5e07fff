//! What each notification says: fixed text naming what changed and where to look, never what.

use uuid::Uuid;

/// A notification to write.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: &'static str,
    pub title: &'static str,
    pub body: &'static str,
    pub resource: Option<(&'static str, Uuid)>,
}

impl Notice {
    /// About an application: its kind says what happened; title and body are fixed text.
    pub fn application(kind: &'static str, id: Uuid) -> Self {
        let (title, body) = match kind {
            "application.assigned" => ("An application was assigned to you", "Sign in to review it."),
            "application.updated" => ("An application you review was updated", "Sign in to see what changed."),
            _ => ("Your application was updated", "Sign in to see where it stands."),
        };
        Notice { kind, title, body, resource: Some(("application", id)) }
    }

    /// A device (the staff CLI) signed in to the account.
    pub fn device_sign_in(session: Uuid) -> Self {
        Notice {
            kind: "auth.device_sign_in",
            title: "A new device signed in to your account",
            body: "If this was not you, end that session and tell your administrator.",
            resource: Some(("session", session)),
        }
    }

    /// A decision on an insurance verification request.
    pub fn insurance(id: Uuid) -> Self {
        Notice {
            kind: "insurance.decided",
            title: "Your insurance was reviewed",
            body: "Sign in to see the result.",
            resource: Some(("insurance_verification", id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_notice_names_the_application_and_no_detail() {
        let id = Uuid::new_v4();
        let assigned = Notice::application("application.assigned", id);
        assert_eq!(assigned.title, "An application was assigned to you");
        assert_eq!(assigned.resource, Some(("application", id)));
        let status = Notice::application("application.status", id);
        assert_eq!(status.body, "Sign in to see where it stands.");
        assert_eq!(Notice::insurance(id).resource, Some(("insurance_verification", id)));
        assert_eq!(Notice::device_sign_in(id).kind, "auth.device_sign_in");
    }
}
