//! The directory's rules: the kinds of entry, who acts for each, and what a new entry must hold.

use common::consents::{DirectoryEntry, NewDirectoryEntry};
use common::ApiError;

use super::queries::EntryRow;

/// The kind of a directory entry (`recipients.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub(crate) enum EntryKind {
    /// A partner recovery residence.
    Residence,
    Insurer,
}

impl EntryKind {
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "residence" => Some(Self::Residence),
            "insurer" => Some(Self::Insurer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Residence => "residence",
            Self::Insurer => "insurer",
        }
    }

    /// The role of the accounts that act for entries of this kind.
    pub fn role(self) -> &'static str {
        match self {
            Self::Residence => "partner",
            Self::Insurer => "insurer",
        }
    }
}

/// Checks a new entry: its kind, then its name and address (printable, no invisible or
/// direction-changing characters). Returns its kind.
pub(crate) fn check_new(new: &NewDirectoryEntry) -> Result<EntryKind, ApiError> {
    let kind =
        EntryKind::parse(&new.kind).ok_or_else(|| ApiError::Unprocessable("kind: residence or insurer".into()))?;
    common::json::printable("name", &new.name, 1..=200, false)?;
    if new.name.chars().any(common::json::is_invisible) {
        return Err(ApiError::Unprocessable("name: no invisible or direction-changing characters".into()));
    }
    if new.address.as_deref().is_some_and(|a| a.chars().any(common::json::is_invisible)) {
        return Err(ApiError::Unprocessable("address: no invisible or direction-changing characters".into()));
    }
    if let Some(address) = &new.address {
        common::json::printable("address", address, 1..=300, false)?;
    }
    Ok(kind)
}

/// The account acting for a new entry, as decisions name it (`partner:<account id>`).
pub(crate) fn principal(kind: EntryKind, new: &NewDirectoryEntry) -> Option<String> {
    new.account_id.map(|account| format!("{}:{account}", kind.role()))
}

pub(crate) fn entry(row: EntryRow) -> DirectoryEntry {
    DirectoryEntry {
        id: row.id,
        kind: row.kind.as_str().to_owned(),
        name: row.name,
        address: row.address,
        linked: row.linked,
        retired_at: row.retired_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: &str, name: &str, address: Option<&str>) -> NewDirectoryEntry {
        NewDirectoryEntry {
            kind: kind.into(),
            name: name.into(),
            address: address.map(str::to_owned),
            account_id: Some(uuid::Uuid::nil()),
        }
    }

    fn refusal(new: &NewDirectoryEntry) -> String {
        match check_new(new) {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("{new:?}: {other:?}"),
        }
    }

    #[test]
    fn an_entry_is_a_residence_or_an_insurer_with_a_visible_name() {
        assert_eq!(check_new(&new("residence", "Mile High House", Some("1 Main St"))).ok(), Some(EntryKind::Residence));
        assert_eq!(check_new(&new("insurer", "Plan", None)).ok(), Some(EntryKind::Insurer));
        assert_eq!(refusal(&new("clinic", "Mile High House", None)), "kind: residence or insurer");
        assert!(refusal(&new("residence", "", None)).starts_with("name"));
        assert_eq!(
            refusal(&new("residence", "Mile\u{202e}High", None)),
            "name: no invisible or direction-changing characters"
        );
        assert_eq!(
            refusal(&new("insurer", "Plan", Some("1\u{200b} Main St"))),
            "address: no invisible or direction-changing characters"
        );
    }

    #[test]
    fn the_account_acting_for_an_entry_is_named_by_its_role() {
        let residence = new("residence", "House", None);
        assert_eq!(
            principal(EntryKind::Residence, &residence).as_deref(),
            Some("partner:00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(
            principal(EntryKind::Insurer, &residence).as_deref(),
            Some("insurer:00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(principal(EntryKind::Insurer, &NewDirectoryEntry { account_id: None, ..residence }), None);
        for kind in [EntryKind::Residence, EntryKind::Insurer] {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
    }
}
