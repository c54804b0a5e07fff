//! What makes an application valid, when it can still change, and what the lists' filters mean:
//! pure, checked without a database.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use common::applications::{ApplicationDetails, ApplicationStatus, KINDS, MAX_AMOUNT_CENTS};
use common::json::Keyset;
use common::ApiError;

pub fn check_kind(kind: &str) -> Result<(), ApiError> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!("kind: one of {}", KINDS.join(", "))))
    }
}

pub fn check_amount(amount_cents: i64) -> Result<(), ApiError> {
    if (1..=MAX_AMOUNT_CENTS).contains(&amount_cents) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!("amount_cents: an integer from 1 to {MAX_AMOUNT_CENTS}")))
    }
}

/// The description is printable text of 10 to 5,000 characters; a `needed_by` date is today or
/// later (`today` in UTC).
pub fn check_details(details: &ApplicationDetails, today: Date) -> Result<(), ApiError> {
    common::json::printable("details.description", &details.description, 10..=5000, true)?;
    if let Some(needed_by) = &details.needed_by {
        let date = common::json::date("details.needed_by", needed_by)?;
        if date < today {
            return Err(ApiError::Unprocessable("details.needed_by: today or later".into()));
        }
    }
    Ok(())
}

/// Today, as [`check_details`] judges it.
pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// The 409 for a change the application's status no longer allows.
pub fn not_editable(status: ApplicationStatus) -> ApiError {
    ApiError::Conflict(format!(
        "an application {} can no longer be changed; it can be changed while reviewing or action_needed",
        status.as_str()
    ))
}

/// A `status` filter: one of the statuses, or 422 naming them.
pub fn status_filter(status: Option<&str>) -> Result<Option<ApplicationStatus>, ApiError> {
    status
        .map(|s| {
            ApplicationStatus::parse(s).ok_or_else(|| {
                ApiError::Unprocessable(format!("status: one of {}", ApplicationStatus::names(&ApplicationStatus::ALL)))
            })
        })
        .transpose()
}

/// Whose applications the staff queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Anyone,
    Nobody,
    To(Uuid),
}

impl Assigned {
    /// `none`, `me` (the caller, `me`), or a caseworker's id.
    pub fn parse(assigned: Option<&str>, me: Uuid) -> Result<Self, ApiError> {
        match assigned {
            None => Ok(Assigned::Anyone),
            Some("none") => Ok(Assigned::Nobody),
            Some("me") => Ok(Assigned::To(me)),
            Some(id) => Uuid::parse_str(id)
                .map(Assigned::To)
                .map_err(|_| ApiError::Unprocessable("assigned: me, none or a caseworker's id".into())),
        }
    }
}

/// The staff queue's filters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFilter {
    pub status: Option<ApplicationStatus>,
    pub kind: Option<String>,
    pub assigned: Assigned,
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub page: Keyset,
}

/// The staff queue's filters as sent (`?<filter..>`).
#[derive(Debug, Default, Clone, Copy, rocket::FromForm)]
pub struct QueueQuery<'r> {
    pub status: Option<&'r str>,
    pub kind: Option<&'r str>,
    pub assigned: Option<&'r str>,
    pub from: Option<&'r str>,
    pub to: Option<&'r str>,
    pub after: Option<&'r str>,
    pub limit: Option<&'r str>,
}

impl QueueQuery<'_> {
    /// Checks each filter in turn (status, page, kind, assignment, dates), the 422 naming the
    /// first that is malformed.
    pub fn check(&self, me: Uuid) -> Result<QueueFilter, ApiError> {
        let status = status_filter(self.status)?;
        let page = Keyset::parse(self.after, self.limit, 20)?;
        if let Some(kind) = self.kind {
            check_kind(kind)?;
        }
        let assigned = Assigned::parse(self.assigned, me)?;
        let (from, to) = (common::json::date_param("from", self.from)?, common::json::date_param("to", self.to)?);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(ApiError::Unprocessable("from: on or before to".into()));
            }
        }
        Ok(QueueFilter { status, kind: self.kind.map(str::to_owned), assigned, from, to, page })
    }
}

/// Who may decide: nobody their own application, a caseworker only what they were assigned.
pub fn may_decide(actor: Uuid, as_admin: bool, beneficiary: Uuid, assigned: Option<Uuid>) -> bool {
    actor != beneficiary && (as_admin || assigned == Some(actor))
}

/// The 409 naming the moves the status machine allows, when `to` is not one of them.
pub fn check_move(from: ApplicationStatus, to: ApplicationStatus) -> Result<(), ApiError> {
    let allowed = from.staff_next();
    if allowed.contains(&to) {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "an application {} cannot become {}; allowed: {}",
            from.as_str(),
            to.as_str(),
            ApplicationStatus::names(allowed)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ApiError) -> String {
        match e {
            ApiError::Unprocessable(m) | ApiError::Conflict(m) => m,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn amounts_are_bounded() {
        assert!(check_amount(1).is_ok());
        assert!(check_amount(MAX_AMOUNT_CENTS).is_ok());
        assert!(message(check_amount(0).expect_err("refused")).starts_with("amount_cents:"));
        assert!(check_amount(MAX_AMOUNT_CENTS + 1).is_err());
    }

    #[test]
    fn a_needed_by_date_in_the_past_is_refused() {
        let today = time::macros::date!(2026 - 12 - 07);
        let details = |needed_by: Option<&str>| ApplicationDetails {
            description: "rent for December".into(),
            needed_by: needed_by.map(str::to_owned),
        };
        assert!(check_details(&details(Some("2026-12-07")), today).is_ok());
        assert!(check_details(&details(None), today).is_ok());
        assert_eq!(
            message(check_details(&details(Some("2026-12-06")), today).expect_err("refused")),
            "details.needed_by: today or later"
        );
        assert!(
            message(check_details(&details(Some("12/31/2026")), today).expect_err("refused")).contains("YYYY-MM-DD")
        );
    }

    #[test]
    fn queue_filters_are_checked_in_order_and_named() {
        let me = Uuid::new_v4();
        let q = |f: fn(&mut QueueQuery<'static>)| {
            let mut query = QueueQuery::default();
            f(&mut query);
            query.check(me)
        };
        assert_eq!(q(|_| {}).expect("accepted").assigned, Assigned::Anyone);
        assert_eq!(q(|q| q.assigned = Some("me")).expect("accepted").assigned, Assigned::To(me));
        assert_eq!(q(|q| q.assigned = Some("none")).expect("accepted").assigned, Assigned::Nobody);
        assert!(message(q(|q| q.assigned = Some("bob")).expect_err("refused")).starts_with("assigned:"));
        assert!(message(q(|q| q.status = Some("open")).expect_err("refused")).starts_with("status:"));
        assert!(message(q(|q| q.kind = Some("cash")).expect_err("refused")).starts_with("kind:"));
        assert!(message(q(|q| q.limit = Some("0")).expect_err("refused")).starts_with("limit:"));
        let reversed = q(|q| {
            q.from = Some("2026-12-02");
            q.to = Some("2026-12-01");
        });
        assert_eq!(message(reversed.expect_err("refused")), "from: on or before to");
        // The status is named before a malformed kind.
        let both = q(|q| {
            q.status = Some("open");
            q.kind = Some("cash");
        });
        assert!(message(both.expect_err("refused")).starts_with("status:"));
        assert_eq!(q(|_| {}).expect("accepted").page.limit, 20);
    }

    #[test]
    fn only_the_assigned_caseworker_or_an_admin_decides_and_never_their_own() {
        let (actor, other, beneficiary) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(may_decide(actor, false, beneficiary, Some(actor)));
        assert!(!may_decide(actor, false, beneficiary, Some(other)));
        assert!(!may_decide(actor, false, beneficiary, None));
        assert!(may_decide(actor, true, beneficiary, None));
        assert!(!may_decide(actor, true, actor, None));
        assert!(!may_decide(actor, false, actor, Some(actor)));
    }

    #[test]
    fn moves_outside_the_machine_name_the_allowed_ones() {
        assert!(check_move(ApplicationStatus::Reviewing, ApplicationStatus::Approved).is_ok());
        let refused =
            message(check_move(ApplicationStatus::Approved, ApplicationStatus::Rejected).expect_err("refused"));
        assert_eq!(refused, "an application approved cannot become rejected; allowed: funded");
    }
}
