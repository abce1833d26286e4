//! A holder who is already in the registry and comes back with other personal data (a new
//! name after marriage, a corrected date of birth, a new photo). The card would carry the new
//! data while the registry kept the old, so issuance refuses until the clerk confirms the
//! change (`issue --update-holder`, or the GUI's confirmation); then the registry is updated
//! and an audit event records each changed field, old and new, in the issuance's transaction.

use registry::NewHolder;

use crate::error::StationError;
pub use crate::field_change::FieldChange;

/// Every personal-data field (not the address, which has its own history) where `new`
/// differs from `registered`, in the holder file's order.
pub fn differences(registered: &NewHolder, new: &NewHolder) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut cmp = |field: &'static str, old: Option<&str>, now: Option<&str>| {
        if old != now {
            out.push(FieldChange {
                field,
                old: old.map(str::to_owned),
                new: now.map(str::to_owned),
            });
        }
    };
    let (o, n) = (registered, new);
    cmp("surname", Some(&o.surname), Some(&n.surname));
    cmp("given_names", Some(&o.given_names), Some(&n.given_names));
    cmp(
        "patronymic",
        o.patronymic.as_deref(),
        n.patronymic.as_deref(),
    );
    cmp(
        "surname_cyrillic",
        o.surname_cyrillic.as_deref(),
        n.surname_cyrillic.as_deref(),
    );
    cmp(
        "given_names_cyrillic",
        o.given_names_cyrillic.as_deref(),
        n.given_names_cyrillic.as_deref(),
    );
    cmp(
        "patronymic_cyrillic",
        o.patronymic_cyrillic.as_deref(),
        n.patronymic_cyrillic.as_deref(),
    );
    cmp("sex", Some(&o.sex), Some(&n.sex));
    cmp(
        "date_of_birth",
        Some(&o.date_of_birth),
        Some(&n.date_of_birth),
    );
    cmp(
        "place_of_birth",
        Some(&o.place_of_birth),
        Some(&n.place_of_birth),
    );
    cmp("citizenship", Some(&o.citizenship), Some(&n.citizenship));
    cmp(
        "photo",
        o.photo_sha256.as_deref(),
        n.photo_sha256.as_deref(),
    );
    out
}

/// The refusal for a holder whose data differs, unless the clerk confirmed the update.
pub fn refuse_unconfirmed(pinfl: &str, changes: &[FieldChange]) -> Result<(), StationError> {
    let needing: Vec<&FieldChange> = changes.iter().filter(|c| !c.fills_a_gap()).collect();
    if needing.is_empty() {
        return Ok(());
    }
    Err(StationError::HolderDiffers {
        pinfl: pinfl.to_owned(),
        changes: needing.into_iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> NewHolder {
        NewHolder {
            pinfl: "31405850000012".into(),
            surname: "Karimova".into(),
            given_names: "Dilnoza".into(),
            patronymic: None,
            surname_cyrillic: Some("Каримова".into()),
            given_names_cyrillic: Some("Дилноза".into()),
            patronymic_cyrillic: None,
            sex: "F".into(),
            date_of_birth: "1985-02-14".into(),
            place_of_birth: "Toshkent".into(),
            citizenship: "UZB".into(),
            photo_sha256: Some("ab".repeat(32)),
        }
    }

    #[test]
    fn the_same_data_has_no_differences() {
        assert!(differences(&holder(), &holder()).is_empty());
    }

    #[test]
    fn each_changed_field_is_named_with_old_and_new() {
        let mut new = holder();
        new.surname = "Rahimova".into();
        new.date_of_birth = "1985-02-15".into();
        new.photo_sha256 = Some("cd".repeat(32));
        let d = differences(&holder(), &new);
        let fields: Vec<&str> = d.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["surname", "date_of_birth", "photo"]);
        assert_eq!(d[0].old.as_deref(), Some("Karimova"));
        assert_eq!(d[0].new.as_deref(), Some("Rahimova"));
        let e = refuse_unconfirmed("31405850000012", &d).expect_err("refused");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("surname, date_of_birth, photo") && msg.contains("--update-holder"),
            "{msg}"
        );
    }

    #[test]
    fn a_photo_the_registry_never_recorded_needs_no_confirmation() {
        let mut old = holder();
        old.photo_sha256 = None;
        let d = differences(&old, &holder());
        assert_eq!(d.len(), 1);
        assert!(d[0].fills_a_gap());
        refuse_unconfirmed("31405850000012", &d).expect("no confirmation needed");
    }
}
