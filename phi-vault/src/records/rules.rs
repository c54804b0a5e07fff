//! The record routes' values and checks: categories, content as it is sealed and served, and
//! the access-log entries of a failed access. No database here.

use uuid::Uuid;
use zeroize::Zeroizing;

use common::assertion::Claims;
use common::client::Record;
use common::ApiError;

use crate::access_log::{self, access};
use crate::policy::{Decision, Intent};

pub const CATEGORIES: [&str; 6] =
    ["intake_conversation", "coach_conversation", "application_details", "insurance", "identity", "document"];
pub(crate) const FIELD: &str = "content";
/// The access-log reason of a permitted access that failed on its key or its integrity.
pub(super) const FAILED: &str = "integrity or key failure";

/// The message of every error about a decrypted record's content. Fixed: serde's own messages
/// can quote the text they failed on, and error causes go to the log.
pub const UNREADABLE_CONTENT: &str = "a decrypted record is not valid JSON";

/// A record's category (the `record_category` type, read as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Category {
    IntakeConversation,
    CoachConversation,
    ApplicationDetails,
    Insurance,
    Identity,
    Document,
}

impl Category {
    /// Every category, in the order of [`CATEGORIES`].
    pub const ALL: [Category; 6] = [
        Self::IntakeConversation,
        Self::CoachConversation,
        Self::ApplicationDetails,
        Self::Insurance,
        Self::Identity,
        Self::Document,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IntakeConversation => "intake_conversation",
            Self::CoachConversation => "coach_conversation",
            Self::ApplicationDetails => "application_details",
            Self::Insurance => "insurance",
            Self::Identity => "identity",
            Self::Document => "document",
        }
    }

    /// The category named `text`; a 422 naming every category for any other.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| ApiError::Unprocessable(format!("category: one of {}", CATEGORIES.join(", "))))
    }
}

/// The category of a new record: any but documents, which have their own route.
pub(super) fn new_record_category(text: &str) -> Result<Category, ApiError> {
    match Category::parse(text)? {
        Category::Document => {
            Err(ApiError::Unprocessable("category: documents are stored through the documents route".into()))
        }
        category => Ok(category),
    }
}

/// Content that fits the vault's limit.
pub(super) fn within_limit(plaintext: &[u8], max_record_bytes: usize) -> Result<(), ApiError> {
    if plaintext.len() > max_record_bytes {
        return Err(ApiError::TooLarge(format!("record content exceeds {max_record_bytes} bytes")));
    }
    Ok(())
}

/// A decrypted record's content, parsed. The error never quotes the record.
pub(crate) fn parse_content(plaintext: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(plaintext).map_err(|_| ApiError::internal(UNREADABLE_CONTENT))
}

/// Content as it is sealed, wiped from memory when dropped.
pub(super) fn serialize_content(content: &serde_json::Value) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    serde_json::to_vec(content)
        .map(Zeroizing::new)
        .map_err(|_| ApiError::internal("record content is not serialisable"))
}

/// What an access to a record of `category` under `action` means to the policy: one of the
/// reads, or a write.
pub(crate) fn intent(action: &str, category: Category) -> Intent<'static> {
    let reads = matches!(action, "record.read" | "record.emergency_disclosure" | "document.read");
    if reads {
        Intent::Read(Some(category.as_str()))
    } else {
        Intent::Write
    }
}

/// The action of a read: an emergency disclosure, or an ordinary read.
pub(super) fn read_action(emergency: bool) -> &'static str {
    if emergency {
        "record.emergency_disclosure"
    } else {
        "record.read"
    }
}

/// An emergency read is a disclosure, and only the emergency route makes one: a caller whose
/// purpose and route disagree is refused.
pub(super) fn route_fits_purpose(claims: &Claims, emergency: bool) -> bool {
    (claims.purpose == crate::policy::MEDICAL_EMERGENCY) == emergency
}

/// The two entries of a permitted access that then failed on its key or its integrity: the
/// decision, then the failure (`failed`, a denial with [`FAILED`]).
pub(super) fn failure<'a>(
    claims: &'a Claims,
    subject: Uuid,
    record: Uuid,
    action: &'a str,
    decision: &'a Decision,
    failed: &'a Decision,
) -> [access_log::Access<'a>; 2] {
    [
        access(claims, Some(subject), Some(record), action, decision),
        access(claims, Some(subject), Some(record), action, failed),
    ]
}

/// A record as served: its row's times, and the access-log entry of this access.
pub(super) fn served(
    id: Uuid,
    subject: Uuid,
    category: Category,
    content: serde_json::Value,
    (created_at, updated_at): Times,
    access_seq: i64,
) -> Result<Record, ApiError> {
    Ok(Record {
        record_id: id,
        subject_id: subject,
        category: category.as_str().to_owned(),
        content,
        created_at,
        updated_at,
        access_seq: Some(access_seq),
        disclosure: None,
    })
}

/// The access-log entry of a served access: the last its phase 2 appended.
pub(super) fn last(seqs: &[i64]) -> Result<i64, ApiError> {
    seqs.last().copied().ok_or_else(|| ApiError::internal("an access was served without its access-log entry"))
}

/// A record's times, as phase 2 found them.
pub(crate) type Times = (time::OffsetDateTime, time::OffsetDateTime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_record_is_reported_without_a_word_of_it() {
        let unreadable: [&[u8]; 4] =
            [b"Jane Doe, 1990-01-01", b"{\"legal_name\": \"Jane Doe\"", b"\"Jane Doe\" 1990", b"{\"Jane Doe\" 1990}"];
        for plaintext in unreadable {
            let error = parse_content(plaintext).expect_err("not JSON");
            assert!(matches!(&error, ApiError::Internal(m) if m == UNREADABLE_CONTENT), "{error:?}");
            assert!(!format!("{error:?}").contains("Jane"));
        }
        assert_eq!(parse_content(b"{\"a\": 1}").expect("JSON"), serde_json::json!({"a": 1}));
    }

    #[test]
    fn categories_are_named_as_the_database_names_them() {
        assert_eq!(Category::ALL.map(Category::as_str), CATEGORIES);
        for category in Category::ALL {
            assert_eq!(Category::parse(category.as_str()).expect("a category"), category);
        }
        let refused = Category::parse("diary").expect_err("no such category");
        assert!(
            matches!(&refused, ApiError::Unprocessable(m) if m.starts_with("category: one of intake_conversation, "))
        );
        assert!(new_record_category("document").is_err(), "documents have their own route");
        assert_eq!(new_record_category("identity").expect("a record category"), Category::Identity);
    }

    #[test]
    fn reads_are_told_from_writes_by_their_action() {
        for action in ["record.read", "record.emergency_disclosure", "document.read"] {
            assert_eq!(intent(action, Category::Identity), Intent::Read(Some("identity")));
        }
        for action in ["record.update", "record.delete"] {
            assert_eq!(intent(action, Category::Identity), Intent::Write);
        }
        assert_eq!(read_action(true), "record.emergency_disclosure");
        assert_eq!(read_action(false), "record.read");
    }

    #[test]
    fn a_failed_access_is_logged_as_its_decision_then_the_failure() {
        let claims = crate::volume::tests::claims(common::Role::Beneficiary, "s", "self_service");
        let (permitted, failed) = (Decision::permit("subject"), Decision::deny(FAILED));
        let [decided, failure] = failure(&claims, Uuid::nil(), Uuid::nil(), "record.read", &permitted, &failed);
        assert!(decided.permitted && !failure.permitted);
        assert_eq!(failure.reason, "integrity or key failure");
        assert!(last(&[]).is_err(), "an access is never served without its entry");
        assert_eq!(last(&[3, 4]).expect("the last"), 4);
        assert!(within_limit(&[0; 10], 10).is_ok());
        assert!(matches!(within_limit(&[0; 11], 10), Err(ApiError::TooLarge(_))));
    }
}
