//! subjectAltName (RFC 5280 §4.2.1.6): the dNSName and iPAddress values given at issuance,
//! checked against the profile's rule and encoded with x509-cert's types.

use std::net::IpAddr;

use der::asn1::OctetString;
use profiles::{CertProfile, SanType};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;

use crate::error::{enc, CaError, Result};
use crate::extensions::{ext, ia5};
use crate::subject::icao_directory_name;

/// The alternative names of one certificate's subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectAltNames {
    /// DNS names in the preferred name syntax (RFC 1034 §3.5, as RFC 5280 §4.2.1.6 requires).
    pub dns: Vec<String>,
    /// IPv4 addresses are encoded in 4 octets, IPv6 in 16 (RFC 5280 §4.2.1.6).
    pub ip: Vec<IpAddr>,
}

impl SubjectAltNames {
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ip.is_empty()
    }
}

fn refuse(rule: impl Into<String>) -> CaError {
    CaError::Holder {
        field: "subject_alt_name",
        rule: rule.into(),
    }
}

/// A DNS name in the preferred name syntax: labels of 1–63 letters, digits and hyphens, not
/// starting or ending with a hyphen, at most 253 characters in all; no trailing dot, no
/// wildcard.
fn check_dns_name(name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(refuse(format!(
            "{name:?} is not a DNS name in the preferred name syntax (RFC 1034 §3.5, RFC 5280 §4.2.1.6)"
        )));
    }
    Ok(())
}

/// The subjectAltName extension for `names` under `profile`, or `None` when the profile has no
/// rule and no names are given; under an ICAO 9303 profile the State's directory name. Not critical: every profile's subject is non-empty.
pub(crate) fn san_extension(
    profile: &CertProfile,
    names: &SubjectAltNames,
) -> Result<Option<Extension>> {
    use const_oid::AssociatedOid;
    if let Some(icao) = &profile.icao_9303 {
        if !names.is_empty() {
            return Err(refuse(format!(
                "profile '{}' names the State in subjectAltName (ICAO Doc 9303-12 §7.1.1.2); it \
                 takes no DNS or IP names",
                profile.name
            )));
        }
        let state = GeneralName::DirectoryName(icao_directory_name(&icao.country)?);
        return Ok(Some(ext(
            SubjectAltName::OID,
            false,
            &SubjectAltName(vec![state]),
        )?));
    }
    let Some(rule) = &profile.subject_alt_name else {
        if names.is_empty() {
            return Ok(None);
        }
        return Err(refuse(format!(
            "profile '{}' allows no subject alternative names",
            profile.name
        )));
    };
    if names.is_empty() {
        if rule.required {
            return Err(refuse(format!(
                "profile '{}' requires at least one subject alternative name",
                profile.name
            )));
        }
        return Ok(None);
    }
    let allowed = |t: SanType, what: &str| {
        if rule.types.contains(&t) {
            Ok(())
        } else {
            Err(refuse(format!(
                "profile '{}' allows no {what} names",
                profile.name
            )))
        }
    };
    let mut general = Vec::with_capacity(names.dns.len() + names.ip.len());
    if !names.dns.is_empty() {
        allowed(SanType::DnsName, "dNSName")?;
    }
    for d in &names.dns {
        check_dns_name(d)?;
        general.push(GeneralName::DnsName(ia5(d)?));
    }
    if !names.ip.is_empty() {
        allowed(SanType::IpAddress, "iPAddress")?;
    }
    for ip in &names.ip {
        let octets = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        general.push(GeneralName::IpAddress(
            OctetString::new(octets).map_err(enc("iPAddress"))?,
        ));
    }
    Ok(Some(ext(
        SubjectAltName::OID,
        false,
        &SubjectAltName(general),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_follow_the_preferred_name_syntax() {
        assert!(check_dns_name("centre.example.com").is_ok());
        assert!(check_dns_name("localhost").is_ok());
        for bad in [
            "",
            "-a.example",
            "a..b",
            "*.example.com",
            "a b",
            "a.",
            "é.example",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
    }
}
