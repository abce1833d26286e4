//! The rules a well-formed profile must also satisfy: impossible combinations and bad
//! values, each citing the clause it comes from (RFC 5280 §4.2, ETSI EN 319 412-2/-5).
//!
//! A rule failure is `(key, rule)`: the dotted TOML key and a sentence naming the rule.

use std::collections::BTreeSet;

use crate::{
    AttributeKind, CertKind, CertProfile, CrlProfile, Eku, KeyUsageBit, HOLDER_PLACEHOLDERS,
    ISSUER_PLACEHOLDERS,
};

type RuleResult = std::result::Result<(), (String, String)>;

fn fail(key: impl Into<String>, rule: impl Into<String>) -> RuleResult {
    Err((key.into(), rule.into()))
}

/// Check a parsed certificate profile.
pub fn check_cert_profile(p: &CertProfile) -> RuleResult {
    check_subject(p)?;
    if p.validity.days == 0 {
        return fail("validity.days", "validity must be at least 1 day");
    }
    check_key_usage(p)?;
    check_basic_constraints(p)?;
    check_eku(p)?;
    if p.extended_key_usage_critical && p.extended_key_usage.is_empty() {
        return fail(
            "extended_key_usage_critical",
            "there is no extended_key_usage to mark critical",
        );
    }
    if p.ocsp_no_check && !p.extended_key_usage.contains(&Eku::OCSP_SIGNING) {
        return fail(
            "ocsp_no_check",
            "id-pkix-ocsp-nocheck is for a delegated OCSP responder: extended_key_usage must name OCSPSigning (RFC 6960 §4.2.2.2)",
        );
    }
    check_policies(p)?;
    check_qc(p)?;
    check_san(p)?;
    if let Some(url) = &p.crl_distribution_point {
        check_url_template("crl_distribution_point", url, &["http://", "ldap://"])?;
    }
    if let Some(aia) = &p.authority_info_access {
        if aia.ca_issuers.is_none() && aia.ocsp.is_none() {
            return fail(
                "authority_info_access",
                "an AIA table needs ca_issuers and/or ocsp (RFC 5280 §4.2.2.1: at least one AccessDescription)",
            );
        }
        if let Some(u) = &aia.ca_issuers {
            check_url_template(
                "authority_info_access.ca_issuers",
                u,
                &["http://", "ldap://"],
            )?;
        }
        if let Some(u) = &aia.ocsp {
            check_url_template("authority_info_access.ocsp", u, &["http://"])?;
        }
    }
    check_master_list_signer(p)?;
    check_icao(p)?;
    if let Some(pkup) = &p.private_key_usage_period {
        if pkup.days == 0 || pkup.days > p.validity.days {
            return fail(
                "private_key_usage_period.days",
                "the key usage period is 1 day up to the certificate's validity (ICAO Doc \
                 9303-12 §4.1: a key signs for a part of the time its certificate is valid)",
            );
        }
    }
    // ICAO Doc 9303-12 Table 6 requires cRLDistributionPoints in the self-signed CSCA
    // certificate: there it tells a receiving State where the CSCA's own CRL is.
    if p.kind == CertKind::RootCa
        && p.icao_9303.is_none()
        && (p.crl_distribution_point.is_some() || p.authority_info_access.is_some())
    {
        return fail(
            "crl_distribution_point",
            "a self-signed root carries no CRL distribution point or AIA: a trust anchor is not \
             checked through a CRL or issuer it names itself (RFC 5280 §6.1.1 d)",
        );
    }
    Ok(())
}

/// Whether `p` makes Master List Signer certificates (extendedKeyUsage
/// id-icao-cscaMasterListSigningKey, Doc 9303-12 §7.1.1.3).
fn is_master_list_signer(p: &CertProfile) -> bool {
    p.extended_key_usage
        .contains(&crate::Eku::CSCA_MASTER_LIST_SIGNING)
}

/// A Master List Signer (Doc 9303-12 §5.3, Table 6): an end entity; extendedKeyUsage
/// id-icao-cscaMasterListSigningKey only and critical; keyUsage digitalSignature only; the
/// State's alternative names (`[icao_9303]`); no DocumentType.
fn check_master_list_signer(p: &CertProfile) -> RuleResult {
    if !is_master_list_signer(p) {
        return Ok(());
    }
    if p.kind.is_ca() {
        return fail(
            "kind",
            "a Master List Signer is an end entity (Doc 9303-12 Table 6: no basicConstraints)",
        );
    }
    if p.extended_key_usage != [crate::Eku::CSCA_MASTER_LIST_SIGNING]
        || !p.extended_key_usage_critical
    {
        return fail(
            "extended_key_usage",
            "a Master List Signer's extendedKeyUsage is id-icao-cscaMasterListSigningKey only, \
             critical (Doc 9303-12 §7.1.1.3, Table 6)",
        );
    }
    if p.key_usage != [crate::KeyUsageBit::DigitalSignature] {
        return fail(
            "key_usage",
            "a Master List Signer's keyUsage is digitalSignature only (Doc 9303-12 Table 6)",
        );
    }
    match &p.icao_9303 {
        None => fail(
            "icao_9303",
            "a Master List Signer carries the State's subjectAltName and issuerAltName (Doc \
             9303-12 §7.1.1.2, Table 6): give [icao_9303] country",
        ),
        Some(i) if !i.document_types.is_empty() => fail(
            "icao_9303.document_types",
            "a Master List Signer certificate carries no DocumentType extension (Doc 9303-12 \
             Table 6)",
        ),
        Some(_) => Ok(()),
    }
}

fn check_icao(p: &CertProfile) -> RuleResult {
    let Some(icao) = &p.icao_9303 else {
        return Ok(());
    };
    if icao.country.len() != 3 || !icao.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return fail(
            "icao_9303.country",
            "the ICAO three-letter code of the issuing State, capital letters (Doc 9303-12 \
             §7.1.1.2, Doc 9303-3 §5)",
        );
    }
    if p.subject_alt_name.is_some() {
        return fail(
            "subject_alt_name",
            "an ICAO 9303 profile's subjectAltName is the State's directory name (Doc 9303-12 \
             §7.1.1.2); it takes no DNS or IP names",
        );
    }
    if p.crl_distribution_point.is_none() {
        return fail(
            "crl_distribution_point",
            "Doc 9303-12 Table 6 makes cRLDistributionPoints mandatory for CSCA, Document \
             Signer and Master List Signer certificates",
        );
    }
    if p.private_key_usage_period.is_none() {
        return fail(
            "private_key_usage_period",
            "an ICAO 9303 profile states a privateKeyUsagePeriod (Doc 9303-12 Table 6: \
             mandatory for CSCA and Document Signer certificates; here also for a Master List \
             Signer, whose key `idcentral serve` rolls over by it)",
        );
    }
    let master_list_signer = is_master_list_signer(p);
    match (
        p.kind.is_ca() || master_list_signer,
        icao.document_types.is_empty(),
    ) {
        (false, true) => {
            return fail(
                "icao_9303.document_types",
                "a Document Signer names the document types it signs (Doc 9303-12 §7.1.1.6, \
                 Table 6: DocumentType mandatory)",
            )
        }
        (true, false) => {
            return fail(
                "icao_9303.document_types",
                "a CSCA certificate carries no DocumentType extension (Doc 9303-12 Table 6)",
            )
        }
        _ => {}
    }
    for (i, t) in icao.document_types.iter().enumerate() {
        if t.is_empty() || t.len() > 2 || !t.bytes().all(|b| b.is_ascii_uppercase()) {
            return fail(
                format!("icao_9303.document_types[{i}]"),
                "a document type is the MRZ document code without fillers: 1 or 2 capital \
                 letters (Doc 9303-12 §7.1.1.6, PrintableString SIZE(1..2))",
            );
        }
    }
    Ok(())
}

/// Check a parsed CRL profile.
pub fn check_crl_profile(p: &CrlProfile) -> RuleResult {
    if p.next_update_hours == 0 || p.next_update_hours > 24 * 366 {
        return fail(
            "next_update_hours",
            "nextUpdate must be 1 hour to 366 days after thisUpdate (RFC 5280 §5.1.2.5)",
        );
    }
    Ok(())
}

fn check_subject(p: &CertProfile) -> RuleResult {
    if p.subject.is_empty() {
        return fail(
            "subject",
            "the subject needs at least one attribute (RFC 5280 §4.1.2.6: a CA or holder subject is non-empty)",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, a) in p.subject.iter().enumerate() {
        let key = format!("subject[{i}].value");
        if !seen.insert(a.attribute.short_name()) {
            return fail(
                format!("subject[{i}].attribute"),
                format!(
                    "attribute {} appears twice; each may appear once",
                    a.attribute.short_name()
                ),
            );
        }
        let names = placeholders(&a.value).map_err(|r| (key.clone(), r))?;
        if p.kind.is_ca() && !names.is_empty() {
            return fail(
                key,
                "a CA subject is fixed by its profile: placeholders are only for end-entity profiles",
            );
        }
        for n in &names {
            if !HOLDER_PLACEHOLDERS.contains(&n.as_str()) {
                return fail(
                    key,
                    format!(
                        "unknown placeholder {{{n}}} (allowed: {})",
                        HOLDER_PLACEHOLDERS
                            .iter()
                            .map(|h| format!("{{{h}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
            }
        }
        if a.value.trim().is_empty() {
            return fail(key, "attribute value is empty");
        }
        if a.attribute == AttributeKind::Country
            && names.is_empty()
            && !(a.value.len() == 2 && a.value.chars().all(|c| c.is_ascii_uppercase()))
        {
            return fail(
                key,
                "countryName is an ISO 3166-1 alpha-2 code (two capital letters, RFC 5280 Appendix A.1)",
            );
        }
        if names.is_empty() && a.value.chars().count() > a.attribute.max_chars() {
            return fail(
                key,
                format!(
                    "{} is at most {} characters (RFC 5280 Appendix A.1 upper bounds)",
                    a.attribute.short_name(),
                    a.attribute.max_chars()
                ),
            );
        }
    }
    if p.kind.is_ca() && !seen.contains("CN") {
        return fail("subject", "a CA subject needs a CN (commonName)");
    }
    Ok(())
}

fn check_key_usage(p: &CertProfile) -> RuleResult {
    if p.key_usage.is_empty() {
        return fail(
            "key_usage",
            "at least one key usage bit must be set (RFC 5280 §4.2.1.3)",
        );
    }
    let set: BTreeSet<_> = p.key_usage.iter().copied().collect();
    if set.len() != p.key_usage.len() {
        return fail("key_usage", "a key usage bit is listed twice");
    }
    let ca_bits = set.contains(&KeyUsageBit::KeyCertSign) || set.contains(&KeyUsageBit::CrlSign);
    if p.kind.is_ca() && !set.contains(&KeyUsageBit::KeyCertSign) {
        return fail(
            "key_usage",
            "a CA profile must include keyCertSign (RFC 5280 §4.2.1.3, §4.2.1.9)",
        );
    }
    if !p.kind.is_ca() && ca_bits {
        return fail(
            "key_usage",
            "keyCertSign and cRLSign are for CA profiles only (RFC 5280 §4.2.1.3)",
        );
    }
    if set.contains(&KeyUsageBit::KeyEncipherment) || set.contains(&KeyUsageBit::DataEncipherment) {
        return fail(
            "key_usage",
            "keys are ECDSA P-256: keyEncipherment and dataEncipherment are not possible (RFC 5480 §3)",
        );
    }
    Ok(())
}

fn check_basic_constraints(p: &CertProfile) -> RuleResult {
    match (&p.basic_constraints, p.kind.is_ca()) {
        (None, true) => fail(
            "basic_constraints",
            "a CA profile must have basic_constraints with ca = true (RFC 5280 §4.2.1.9)",
        ),
        (Some(bc), true) if !bc.ca => fail(
            "basic_constraints.ca",
            "a CA profile must set ca = true (RFC 5280 §4.2.1.9)",
        ),
        (Some(bc), false) if bc.ca => fail(
            "basic_constraints.ca",
            "an end-entity profile must not set ca = true",
        ),
        (Some(bc), false) if bc.path_len.is_some() => fail(
            "basic_constraints.path_len",
            "pathLen is only allowed when ca = true (RFC 5280 §4.2.1.9)",
        ),
        _ => Ok(()),
    }
}

fn check_eku(p: &CertProfile) -> RuleResult {
    let kus: BTreeSet<_> = p.key_usage.iter().copied().collect();
    let mut seen = BTreeSet::new();
    for (i, e) in p.extended_key_usage.iter().enumerate() {
        if !seen.insert(e.0) {
            return fail(
                format!("extended_key_usage[{i}]"),
                "a purpose is listed twice",
            );
        }
        if (*e == Eku::CLIENT_AUTH || *e == Eku::SERVER_AUTH)
            && !kus.contains(&KeyUsageBit::DigitalSignature)
            && !kus.contains(&KeyUsageBit::KeyAgreement)
        {
            return fail(
                format!("extended_key_usage[{i}]"),
                "TLS client/server authentication needs keyUsage digitalSignature (or keyAgreement); \
                 a nonRepudiation-only key cannot authenticate (RFC 5280 §4.2.1.12)",
            );
        }
    }
    if p.kind == CertKind::RootCa && !p.extended_key_usage.is_empty() {
        return fail(
            "extended_key_usage",
            "a root certificate carries no extendedKeyUsage (RFC 5280 §4.2.1.12: for end entities)",
        );
    }
    Ok(())
}

fn check_san(p: &CertProfile) -> RuleResult {
    let Some(san) = &p.subject_alt_name else {
        return Ok(());
    };
    if p.kind.is_ca() {
        return fail(
            "subject_alt_name",
            "subject alternative names are for end-entity profiles (RFC 5280 §4.2.1.6 names the \
             subject of an end-entity certificate; a CA is named by its subject)",
        );
    }
    if san.types.is_empty() {
        return fail(
            "subject_alt_name.types",
            "name at least one form: dNSName or iPAddress (RFC 5280 §4.2.1.6: GeneralNames has \
             at least one entry)",
        );
    }
    let distinct: BTreeSet<_> = san.types.iter().collect();
    if distinct.len() != san.types.len() {
        return fail("subject_alt_name.types", "a form is listed twice");
    }
    Ok(())
}

fn check_policies(p: &CertProfile) -> RuleResult {
    let mut seen = BTreeSet::new();
    for (i, pol) in p.policies.iter().enumerate() {
        if !seen.insert(pol.oid) {
            return fail(
                format!("policies[{i}].oid"),
                "a policy OID may appear only once (RFC 5280 §4.2.1.4)",
            );
        }
        if let Some(u) = &pol.cps_uri {
            check_url(
                &format!("policies[{i}].cps_uri"),
                u,
                &["http://", "https://"],
            )?;
        }
        if let Some(n) = &pol.user_notice {
            if n.is_empty() || n.chars().count() > 200 {
                return fail(
                    format!("policies[{i}].user_notice"),
                    "explicitText is 1 to 200 characters (RFC 5280 §4.2.1.4)",
                );
            }
        }
    }
    Ok(())
}

fn check_qc(p: &CertProfile) -> RuleResult {
    let Some(qc) = &p.qc_statements else {
        return Ok(());
    };
    if p.kind.is_ca() {
        return fail(
            "qc_statements",
            "QC statements describe a holder's certificate and are not allowed on a CA profile \
             (ETSI EN 319 412-5 §4: statements about the certified key's subject)",
        );
    }
    if !qc.compliance
        && !qc.sscd
        && qc.qc_type.is_empty()
        && qc.pds.is_empty()
        && qc.legislation.is_empty()
        && !qc.semantics_id_natural
    {
        return fail(
            "qc_statements",
            "the table is present but claims no statement",
        );
    }
    if qc.sscd && !qc.compliance {
        return fail(
            "qc_statements.sscd",
            "QcSSCD claims a qualified signature device and needs QcCompliance (EN 319 412-5 §4.2.1, §4.2.2)",
        );
    }
    if qc.compliance && !p.key_usage.contains(&KeyUsageBit::NonRepudiation) && qc.sscd {
        return fail(
            "key_usage",
            "a qualified e-signature profile (QcCompliance + QcSSCD) must have nonRepudiation \
             (EN 319 412-2 §4.3.2)",
        );
    }
    for (i, pds) in qc.pds.iter().enumerate() {
        check_url(
            &format!("qc_statements.pds[{i}].url"),
            &pds.url,
            &["https://"],
        )?;
        if !(pds.lang.len() == 2 && pds.lang.chars().all(|c| c.is_ascii_lowercase())) {
            return fail(
                format!("qc_statements.pds[{i}].lang"),
                "language is an ISO 639-1 two-letter lower-case code (EN 319 412-5 §4.3.4)",
            );
        }
    }
    for (i, c) in qc.legislation.iter().enumerate() {
        if !(c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase())) {
            return fail(
                format!("qc_statements.legislation[{i}]"),
                "a legislation country is an ISO 3166-1 alpha-2 code (EN 319 412-5 §4.2.4)",
            );
        }
    }
    if qc.semantics_id_natural
        && !p
            .subject
            .iter()
            .any(|a| a.attribute == AttributeKind::SerialNumber)
    {
        return fail(
            "qc_statements.semantics_id_natural",
            "the natural-person semantics identifier describes subject serialNumber, which the \
             subject lacks (EN 319 412-1 §5.1.3)",
        );
    }
    Ok(())
}

fn check_url(key: &str, url: &str, schemes: &[&str]) -> RuleResult {
    let ok_scheme = schemes.iter().any(|s| url.starts_with(s));
    let host_ok = url
        .split_once("://")
        .map(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'))
        .unwrap_or(false);
    if !ok_scheme || !host_ok || !url.is_ascii() || url.contains(char::is_whitespace) {
        return fail(
            key,
            format!(
                "`{url}` is not an ASCII URL with a host and scheme {} (IA5String URI, RFC 5280 §4.2.1.6)",
                schemes.join(" or ")
            ),
        );
    }
    Ok(())
}

fn check_url_template(key: &str, url: &str, schemes: &[&str]) -> RuleResult {
    let names = placeholders(url).map_err(|r| (key.to_owned(), r))?;
    for n in &names {
        if !ISSUER_PLACEHOLDERS.contains(&n.as_str()) {
            return fail(
                key,
                format!("unknown placeholder {{{n}}} (allowed: {{issuer_key}} {{issuer_key_id}})"),
            );
        }
    }
    check_url(key, url, schemes)
}

/// The placeholder names in a template, or a sentence saying why the braces are wrong.
pub fn placeholders(template: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    loop {
        match (rest.find('{'), rest.find('}')) {
            (None, None) => return Ok(out),
            (Some(o), Some(c)) if o < c => {
                let name = &rest[o + 1..c];
                if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_') {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder (lower-case letters and '_')"
                    ));
                }
                out.push(name.to_owned());
                rest = &rest[c + 1..];
            }
            _ => {
                return Err(format!(
                    "unbalanced braces in `{template}` (placeholders are written {{name}})"
                ))
            }
        }
    }
}
