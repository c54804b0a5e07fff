//! What a trail row is and how it is hashed, and how a compliance officer's filter on the audit
//! log is read: pure types and functions, no database.

use std::net::IpAddr;

use serde::Serialize;
use time::Date;
use uuid::Uuid;

use common::ApiError;

const OUTCOMES: [&str; 3] = ["success", "failure", "denied"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// What happened, by whom, to what. Never holds tokens, PHI or record contents.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_id: Option<Uuid>,
    /// Dotted verb, e.g. `auth.login`, `auth.refresh_reuse_detected`, `user.update`.
    pub action: &'static str,
    pub resource_type: Option<&'static str>,
    pub resource_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// Why, for staff actions (e.g. a role grant's justification). Never PHI.
    pub reason: Option<String>,
    /// For an operator's action (no user acted): the operating-system account that ran the
    /// operator command (`secondwind-operator`), read from the process's uid. The role is `operator`.
    pub operator: Option<String>,
}

/// The hashed form of a row: fixed field order, times in microseconds.
#[derive(Serialize)]
pub(super) struct Canonical<'a> {
    pub id: Uuid,
    pub occurred_at_us: i128,
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<&'a str>,
}

impl Canonical<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        // Serialising a struct of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Filters for the audit log. Parsed strictly: a malformed value is a 422 naming it.
#[derive(Debug, Default, rocket::FromForm, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogFilter<'r> {
    /// Only rows where this user acted.
    #[param(value_type = Option<Uuid>)]
    pub actor_id: Option<&'r str>,
    /// Only this action (`application.status`), or a family of them (`auth.*`).
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<&'r str>,
    /// Only this kind of resource (`application`, `user`, `session`, ...).
    #[param(min_length = 1, max_length = 100)]
    pub resource_type: Option<&'r str>,
    /// Only this resource (its id as recorded, e.g. an application's id).
    #[param(min_length = 1, max_length = 200)]
    pub resource_id: Option<&'r str>,
    /// `success`, `failure` or `denied`.
    #[param(value_type = Option<common::compliance::AuditOutcome>)]
    pub outcome: Option<&'r str>,
    /// On or after this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<&'r str>,
    /// On or before this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<&'r str>,
    /// Rows after this sequence number (the previous page's `next_after_seq`).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<&'r str>,
    /// Rows up to this sequence number (the first page's `head_seq`).
    #[param(value_type = Option<i64>)]
    pub until_seq: Option<&'r str>,
    /// `true` to include each row's client address (an identifier: only when needed).
    #[param(value_type = Option<bool>)]
    pub include_ip: Option<&'r str>,
    /// 1 to 500; 100 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<&'r str>,
}

/// An audit-log filter, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogQuery {
    pub actor: Option<Uuid>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub after: i64,
    pub until: Option<i64>,
    pub include_ip: bool,
    pub limit: i64,
}

fn text_param(name: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > max || v.chars().any(char::is_control) => {
            Err(ApiError::Unprocessable(format!("{name}: 1 to {max} printable characters")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

impl AuditLogFilter<'_> {
    /// Checks every parameter in turn; the first bad one is the 422.
    pub fn parse(&self) -> Result<AuditLogQuery, ApiError> {
        let actor: Option<Uuid> = common::json::query_param("actor_id", self.actor_id, "a UUID")?;
        let action = text_param("action", self.action, 100)?;
        let resource_type = text_param("resource_type", self.resource_type, 100)?;
        let resource_id = text_param("resource_id", self.resource_id, 200)?;
        if self.outcome.is_some_and(|o| !OUTCOMES.contains(&o)) {
            return Err(ApiError::Unprocessable("outcome: success, failure or denied".into()));
        }
        let from = common::json::date_param("from", self.from)?;
        let to = common::json::date_param("to", self.to)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ApiError::Unprocessable("from: on or before to".into()));
            }
        }
        let after: i64 = common::json::query_param("after_seq", self.after_seq, "an integer")?.unwrap_or(0);
        let until: Option<i64> = common::json::query_param("until_seq", self.until_seq, "an integer")?;
        let include_ip: bool =
            common::json::query_param("include_ip", self.include_ip, "true or false")?.unwrap_or(false);
        let limit: i64 = common::json::query_param("limit", self.limit, "an integer from 1 to 500")?.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::Unprocessable("limit: an integer from 1 to 500".into()));
        }
        Ok(AuditLogQuery {
            actor,
            action,
            resource_type,
            resource_id,
            outcome: self.outcome.map(str::to_owned),
            from,
            to,
            after,
            until,
            include_ip,
            limit,
        })
    }
}

impl AuditLogQuery {
    /// The action filter as (exact, prefix): `auth.*` selects a family (prefix `auth.`);
    /// anything else is matched exactly.
    pub fn action_match(&self) -> (Option<String>, Option<String>) {
        match self.action.as_deref() {
            Some(a) if a.ends_with(".*") => (None, Some(format!("{}.", &a[..a.len() - 2]))),
            Some(a) => (Some(a.to_owned()), None),
            None => (None, None),
        }
    }

    /// What was asked, `name=value` separated by spaces, for the audit row of the read (so the
    /// trail shows whose activity an officer read).
    pub fn asked(&self) -> String {
        let asked = [
            ("actor_id", self.actor.map(|a| a.to_string())),
            ("action", self.action.clone()),
            ("resource_type", self.resource_type.clone()),
            ("resource_id", self.resource_id.clone()),
            ("outcome", self.outcome.clone()),
            ("from", self.from.map(|d| d.to_string())),
            ("to", self.to.map(|d| d.to_string())),
            ("include_ip", self.include_ip.then(|| "true".to_owned())),
        ];
        let asked: Vec<String> = asked.into_iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))).collect();
        asked.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(filter: AuditLogFilter<'_>) -> String {
        match filter.parse() {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_filter_reads_from_the_start_a_hundred_rows_without_addresses() {
        let q = AuditLogFilter::default().parse().expect("parse");
        assert_eq!((q.after, q.until, q.limit, q.include_ip), (0, None, 100, false));
        assert_eq!(q.action_match(), (None, None));
        assert_eq!(q.asked(), "");
    }

    #[test]
    fn each_malformed_parameter_is_named() {
        assert_eq!(refused(AuditLogFilter { actor_id: Some("x"), ..Default::default() }), "actor_id: a UUID");
        assert_eq!(
            refused(AuditLogFilter { action: Some(""), ..Default::default() }),
            "action: 1 to 100 printable characters"
        );
        assert_eq!(
            refused(AuditLogFilter { resource_id: Some("a\nb"), ..Default::default() }),
            "resource_id: 1 to 200 printable characters"
        );
        assert_eq!(
            refused(AuditLogFilter { outcome: Some("ok"), ..Default::default() }),
            "outcome: success, failure or denied"
        );
        assert_eq!(
            refused(AuditLogFilter { from: Some("2026-02-02"), to: Some("2026-02-01"), ..Default::default() }),
            "from: on or before to"
        );
        assert_eq!(
            refused(AuditLogFilter { include_ip: Some("yes"), ..Default::default() }),
            "include_ip: true or false"
        );
        assert_eq!(
            refused(AuditLogFilter { limit: Some("501"), ..Default::default() }),
            "limit: an integer from 1 to 500"
        );
    }

    #[test]
    fn the_first_bad_parameter_is_the_one_named() {
        let both = AuditLogFilter { actor_id: Some("x"), limit: Some("0"), ..Default::default() };
        assert_eq!(refused(both), "actor_id: a UUID");
    }

    #[test]
    fn a_family_of_actions_is_a_prefix_and_the_read_names_what_was_asked() {
        let filter = AuditLogFilter {
            action: Some("auth.*"),
            outcome: Some("denied"),
            include_ip: Some("true"),
            ..Default::default()
        };
        let q = filter.parse().expect("parse");
        assert_eq!(q.action_match(), (None, Some("auth.".to_owned())));
        assert_eq!(q.asked(), "action=auth.* outcome=denied include_ip=true");
        let exact = AuditLogFilter { action: Some("user.update"), ..Default::default() }.parse().expect("parse");
        assert_eq!(exact.action_match(), (Some("user.update".to_owned()), None));
    }
}
