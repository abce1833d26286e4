//! A holder who is already in the registry and comes back with other personal data (a new
//! name after marriage, a corrected date of birth, a new photo). The card would carry the new
//! data while the registry kept the old, so issuance refuses until the clerk confirms the
//! change (`issue --update-holder`, or the GUI's confirmation); then the registry is updated
//! and an audit event records each changed field, old and new, in the issuance's transaction.

use registry::NewHolder;
use sha2::{Digest, Sha256};

use crate::error::StationError;
pub use crate::field_change::FieldChange;
use crate::holder::{AddressKind, ValidHolder};

/// The registry's view of a validated holder, with the SHA-256 of the photo file.
pub fn registry_view(holder: &ValidHolder) -> Result<NewHolder, StationError> {
    let r = &holder.record;
    let photo_sha256 = match &holder.photo_path {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| StationError::io(p, e))?;
            Some(hex::encode(Sha256::digest(&bytes)))
        }
        None => None,
    };
    Ok(NewHolder {
        pinfl: r.pinfl.clone(),
        surname: r.surname.clone(),
        given_names: r.given_names.clone(),
        patronymic: r.patronymic.clone(),
        surname_cyrillic: r.surname_cyrillic.clone(),
        given_names_cyrillic: r.given_names_cyrillic.clone(),
        patronymic_cyrillic: r.patronymic_cyrillic.clone(),
        sex: r.sex.clone(),
        date_of_birth: r.date_of_birth.clone(),
        place_of_birth: r.place_of_birth.clone(),
        citizenship: r.citizenship.clone(),
        photo_sha256,
    })
}

/// The registry's address view of a validated holder.
pub fn address_view(holder: &ValidHolder) -> registry::NewAddress {
    let a = &holder.record.address;
    registry::NewAddress {
        kind: match holder.address_kind {
            AddressKind::Permanent => registry::AddressKind::Permanent,
            AddressKind::Temporary => registry::AddressKind::Temporary,
        },
        region: a.region.clone(),
        district: a.district.clone(),
        street: a.street.clone(),
        house: a.house.clone(),
        apartment: a.apartment.clone(),
        registered_on: a.registered_on.clone(),
        registered_until: a.registered_until.clone(),
    }
}

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
