//! The holder data a subject template is filled from, and subjects rendered from a profile
//! (RFC 5280 §4.1.2.6, upper bounds from Appendix A.1).

use der::asn1::{PrintableStringRef, Utf8StringRef};
use der::Any;
use profiles::{AttributeKind, CertProfile};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::error::{enc, CaError, Result};
use crate::template;

/// The holder data an end-entity subject template is filled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSubject {
    /// Personal identification number (PINFL): 14 digits.
    pub pinfl: String,
    pub surname: String,
    /// Given name(s), space separated.
    pub given_names: String,
    /// Usually "given names surname".
    pub common_name: String,
    /// ISO 3166-1 alpha-2 (the document profile's `country` for holders the station enrols).
    pub country: String,
}

impl HolderSubject {
    /// Check the fields before they go into a certificate.
    pub fn validate(&self) -> Result<()> {
        let holder = |field, rule: String| Err(CaError::Holder { field, rule });
        if !(self.pinfl.len() == 14 && self.pinfl.bytes().all(|b| b.is_ascii_digit())) {
            return holder(
                "pinfl",
                format!(
                    "must be exactly 14 digits (got {} characters)",
                    self.pinfl.chars().count()
                ),
            );
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            return holder(
                "country",
                "must be an ISO 3166-1 alpha-2 code (two capital letters)".into(),
            );
        }
        for (field, v) in [
            ("surname", &self.surname),
            ("given_names", &self.given_names),
            ("common_name", &self.common_name),
        ] {
            if v.trim().is_empty() {
                return holder(field, "must not be empty".into());
            }
            if v.chars().any(char::is_control) {
                return holder(field, "must not contain control characters".into());
            }
            if v.trim() != v {
                return holder(field, "must not start or end with spaces".into());
            }
        }
        Ok(())
    }

    pub(crate) fn placeholder(&self, name: &str) -> Option<&str> {
        Some(match name {
            "pinfl" => &self.pinfl,
            "surname" => &self.surname,
            "given_names" => &self.given_names,
            "common_name" => &self.common_name,
            "country" => &self.country,
            _ => return None,
        })
    }
}

/// The subject attributes of `profile` filled from `holder`, in profile order, each checked
/// against its RFC 5280 Appendix A.1 upper bound and, for PrintableString attributes, its
/// character set.
pub(crate) fn subject_values<'a>(
    profile: &'a CertProfile,
    holder: Option<&'a HolderSubject>,
) -> Result<Vec<template::SubjectValue<'a>>> {
    let mut values = Vec::with_capacity(profile.subject.len());
    for attr in &profile.subject {
        let value =
            profiles::render_template(&attr.value, |n| holder.and_then(|h| h.placeholder(n)))?;
        let field = attr.attribute.short_name();
        let chars = value.chars().count();
        if chars > attr.attribute.max_chars() {
            return Err(CaError::Holder {
                field: holder_field(attr.attribute),
                rule: format!(
                    "subject {field} would be {chars} characters; at most {} (RFC 5280 Appendix A.1 upper bounds)",
                    attr.attribute.max_chars()
                ),
            });
        }
        let printable = attr.attribute.is_printable_string();
        if printable {
            PrintableStringRef::new(value.as_bytes()).map_err(|_| CaError::Holder {
                field: holder_field(attr.attribute),
                rule: format!(
                    "subject {field} allows only PrintableString characters (A-Z a-z 0-9 space '()+,-./:=?)"
                ),
            })?;
        }
        values.push(template::SubjectValue {
            oid: attr.attribute.oid(),
            printable,
            value,
        });
    }
    Ok(values)
}

/// [`subject_values`] as an `x509-cert` [`Name`], one attribute per RDN.
pub(crate) fn render_subject(
    profile: &CertProfile,
    holder: Option<&HolderSubject>,
) -> Result<Name> {
    let mut seq = RdnSequence::default();
    for v in subject_values(profile, holder)? {
        let any = if v.printable {
            let s =
                PrintableStringRef::new(v.value.as_bytes()).map_err(enc("subject attribute"))?;
            Any::encode_from(&s)
        } else {
            let s = Utf8StringRef::new(v.value.as_bytes()).map_err(enc("subject attribute"))?;
            Any::encode_from(&s)
        }
        .map_err(enc("subject attribute"))?;
        let atv = AttributeTypeAndValue {
            oid: v.oid,
            value: any,
        };
        let rdn = RelativeDistinguishedName::try_from(vec![atv]).map_err(enc("subject"))?;
        seq.push(rdn);
    }
    Ok(Name::hazmat_from_rdn_sequence(seq))
}

/// The directory name ICAO Doc 9303-12 §7.1.1.2 has subjectAltName and issuerAltName carry:
/// one `localityName` with the State's ICAO three-letter code as in the MRZ (PrintableString).
pub(crate) fn icao_directory_name(country: &str) -> Result<Name> {
    let s = PrintableStringRef::new(country.as_bytes()).map_err(enc("ICAO country code"))?;
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::LOCALITY_NAME,
        value: Any::encode_from(&s).map_err(enc("ICAO country code"))?,
    };
    let rdn = RelativeDistinguishedName::try_from(vec![atv]).map_err(enc("directory name"))?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    Ok(Name::hazmat_from_rdn_sequence(seq))
}

pub(crate) fn holder_field(kind: AttributeKind) -> &'static str {
    match kind {
        AttributeKind::SerialNumber => "pinfl",
        AttributeKind::GivenName => "given_names",
        AttributeKind::Surname => "surname",
        AttributeKind::CommonName => "common_name",
        AttributeKind::Country => "country",
        _ => "subject",
    }
}
