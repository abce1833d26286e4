//! Certificate extensions (RFC 5280 §4.2) rendered from a profile for one issuer, and the
//! URLs (CRL distribution point, AIA) they carry.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Ia5String, OctetString, PrintableString, SetOfVec};
use der::{Any, Encode};
use profiles::{CertProfile, KeyUsageBit};
use x509_cert::ext::pkix::certpolicy::{
    DisplayText, PolicyInformation, PolicyQualifierInfo, UserNotice,
};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, IssuerAltName, KeyUsage,
    KeyUsages, PrivateKeyUsagePeriod, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use crate::error::{enc, CaError, Result};
use crate::qc;
use crate::subject::icao_directory_name;

pub(crate) const ID_QT_CPS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");
pub(crate) const ID_QT_UNOTICE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.2");
pub(crate) const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), its value NULL.
pub(crate) const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
pub(crate) const ID_AD_CA_ISSUERS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
/// id-icao-mrtd-security-extensions-documentTypeList (ICAO Doc 9303-12 §7.1.1.6):
/// { id-icao-mrtd-security-extensions 2 }, id-icao-mrtd-security = 2.23.136.1.1.
pub(crate) const ID_ICAO_DOCUMENT_TYPE_LIST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.136.1.1.6.2");

pub(crate) fn render_url(
    template: &str,
    issuer_label: &str,
    issuer_key_id_hex: &str,
) -> Result<String> {
    if !issuer_label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(CaError::Issuer {
            label: issuer_label.to_owned(),
            rule: "a key label named in a URL may use only letters, digits, '-', '_' and '.'"
                .into(),
        });
    }
    Ok(profiles::render_template(template, |n| match n {
        "issuer_key" => Some(issuer_label),
        "issuer_key_id" => Some(issuer_key_id_hex),
        _ => None,
    })?
    .into_owned())
}

pub(crate) struct ExtContext<'a> {
    pub(crate) issuer_label: &'a str,
    pub(crate) issuer_key_id: &'a [u8],
    pub(crate) issuer_key_id_hex: &'a str,
    pub(crate) ski: &'a [u8],
}

pub(crate) fn ext<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(enc("extension"))?)
            .map_err(enc("extension"))?,
    })
}

pub(crate) fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::new(s).map_err(enc("URI"))
}

pub(crate) fn extensions(profile: &CertProfile, ctx: &ExtContext<'_>) -> Result<Vec<Extension>> {
    use const_oid::AssociatedOid;
    let mut out = Vec::with_capacity(10);

    if let Some(bc) = &profile.basic_constraints {
        out.push(ext(
            BasicConstraints::OID,
            bc.ca,
            &BasicConstraints {
                ca: bc.ca,
                path_len_constraint: bc.path_len,
            },
        )?);
    }
    out.push(ext(KeyUsage::OID, true, &key_usage(profile))?);
    if !profile.extended_key_usage.is_empty() {
        let ekus = ExtendedKeyUsage(profile.extended_key_usage.iter().map(|e| e.0).collect());
        out.push(ext(
            ExtendedKeyUsage::OID,
            profile.extended_key_usage_critical,
            &ekus,
        )?);
    }
    if profile.ocsp_no_check {
        out.push(ext(ID_PKIX_OCSP_NOCHECK, false, &der::asn1::Null)?);
    }
    let ski = SubjectKeyIdentifier(OctetString::new(ctx.ski).map_err(enc("SKI"))?);
    out.push(ext(SubjectKeyIdentifier::OID, false, &ski)?);
    if profile.authority_key_identifier {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(ctx.issuer_key_id).map_err(enc("AKI"))?),
            ..Default::default()
        };
        out.push(ext(AuthorityKeyIdentifier::OID, false, &aki)?);
    }
    if !profile.policies.is_empty() {
        out.push(ext(
            CertificatePolicies::OID,
            false,
            &certificate_policies(profile)?,
        )?);
    }
    if let Some(t) = &profile.crl_distribution_point {
        out.push(crl_distribution_points(
            t,
            ctx.issuer_label,
            ctx.issuer_key_id_hex,
        )?);
    }
    if let Some(aia) = &profile.authority_info_access {
        let mut access = Vec::new();
        for (method, template) in [(ID_AD_OCSP, &aia.ocsp), (ID_AD_CA_ISSUERS, &aia.ca_issuers)] {
            if let Some(t) = template {
                access.push(AccessDescription {
                    access_method: method,
                    access_location: url(t, ctx)?,
                });
            }
        }
        out.push(ext(
            AuthorityInfoAccessSyntax::OID,
            false,
            &AuthorityInfoAccessSyntax(access),
        )?);
    }
    if let Some(icao) = &profile.icao_9303 {
        let state = GeneralName::DirectoryName(icao_directory_name(&icao.country)?);
        out.push(ext(IssuerAltName::OID, false, &IssuerAltName(vec![state]))?);
        if !icao.document_types.is_empty() {
            out.push(ext(
                ID_ICAO_DOCUMENT_TYPE_LIST,
                false,
                &document_type_list(&icao.document_types)?,
            )?);
        }
    }
    if let Some(qc_rule) = &profile.qc_statements {
        let statements = qc::statements(qc_rule).map_err(enc("QC statements"))?;
        out.push(ext(qc::ID_PE_QC_STATEMENTS, false, &statements)?);
    }
    Ok(out)
}

/// DocumentTypeListSyntax (ICAO Doc 9303-12 §7.1.1.6):
/// `SEQUENCE { version DocumentTypeListVersion (v0), docTypeList SET OF DocumentType }`, where
/// `DocumentType ::= PrintableString (SIZE(1..2))`.
#[derive(Debug, der::Sequence)]
struct DocumentTypeListSyntax {
    version: u8,
    doc_type_list: SetOfVec<PrintableString>,
}

fn document_type_list(types: &[String]) -> Result<DocumentTypeListSyntax> {
    let mut list = SetOfVec::new();
    for t in types {
        list.insert(PrintableString::new(t).map_err(enc("document type"))?)
            .map_err(enc("document type list"))?;
    }
    Ok(DocumentTypeListSyntax {
        version: 0,
        doc_type_list: list,
    })
}

/// privateKeyUsagePeriod (RFC 3280 §4.2.1.4) of a certificate valid from `not_before`: the
/// profile's usage period from the same second, notAfter its last second (both present, as
/// ICAO Doc 9303-12 Table 6 allows). `None` when the profile has none.
pub(crate) fn private_key_usage_period(
    profile: &CertProfile,
    not_before: SystemTime,
) -> Result<Option<Extension>> {
    use const_oid::AssociatedOid;
    let Some(rule) = &profile.private_key_usage_period else {
        return Ok(None);
    };
    let end = not_before + Duration::from_secs(u64::from(rule.days.max(1)) * 86_400 - 1);
    let period = PrivateKeyUsagePeriod {
        not_before: Some(
            GeneralizedTime::from_system_time(not_before).map_err(enc("privateKeyUsagePeriod"))?,
        ),
        not_after: Some(
            GeneralizedTime::from_system_time(end).map_err(enc("privateKeyUsagePeriod"))?,
        ),
    };
    Ok(Some(ext(PrivateKeyUsagePeriod::OID, false, &period)?))
}

/// keyUsage (RFC 5280 §4.2.1.3) from the profile's bits.
fn key_usage(profile: &CertProfile) -> KeyUsage {
    let mut ku = der::flagset::FlagSet::<KeyUsages>::default();
    for bit in &profile.key_usage {
        ku |= match bit {
            KeyUsageBit::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageBit::NonRepudiation => KeyUsages::NonRepudiation,
            KeyUsageBit::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageBit::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageBit::KeyAgreement => KeyUsages::KeyAgreement,
            KeyUsageBit::KeyCertSign => KeyUsages::KeyCertSign,
            KeyUsageBit::CrlSign => KeyUsages::CRLSign,
        };
    }
    KeyUsage(ku)
}

/// certificatePolicies (RFC 5280 §4.2.1.4) with their CPS URI and user notice qualifiers.
fn certificate_policies(profile: &CertProfile) -> Result<CertificatePolicies> {
    let mut policies = Vec::with_capacity(profile.policies.len());
    for p in &profile.policies {
        let mut qualifiers = Vec::new();
        if let Some(cps) = &p.cps_uri {
            qualifiers.push(PolicyQualifierInfo {
                policy_qualifier_id: ID_QT_CPS,
                qualifier: Some(Any::encode_from(&ia5(cps)?).map_err(enc("CPS URI"))?),
            });
        }
        if let Some(text) = &p.user_notice {
            let notice = UserNotice {
                notice_ref: None,
                explicit_text: Some(DisplayText::Utf8String(text.clone())),
            };
            qualifiers.push(PolicyQualifierInfo {
                policy_qualifier_id: ID_QT_UNOTICE,
                qualifier: Some(Any::encode_from(&notice).map_err(enc("user notice"))?),
            });
        }
        policies.push(PolicyInformation {
            policy_identifier: p.oid.0,
            policy_qualifiers: (!qualifiers.is_empty()).then_some(qualifiers),
        });
    }
    Ok(CertificatePolicies(policies))
}

/// cRLDistributionPoints (RFC 5280 §4.2.1.13, non-critical) with one URI: `template` filled
/// for the issuing key `issuer_label` (whose CRL lists the certificate).
pub(crate) fn crl_distribution_points(
    template: &str,
    issuer_label: &str,
    issuer_key_id_hex: &str,
) -> Result<Extension> {
    use const_oid::AssociatedOid;
    let uri = GeneralName::UniformResourceIdentifier(ia5(&render_url(
        template,
        issuer_label,
        issuer_key_id_hex,
    )?)?);
    let dp = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri])),
        reasons: None,
        crl_issuer: None,
    };
    ext(
        CrlDistributionPoints::OID,
        false,
        &CrlDistributionPoints(vec![dp]),
    )
}

/// A URL template of the profile filled for this issuer, as a URI general name.
fn url(template: &str, ctx: &ExtContext<'_>) -> Result<GeneralName> {
    let u = render_url(template, ctx.issuer_label, ctx.issuer_key_id_hex)?;
    Ok(GeneralName::UniformResourceIdentifier(ia5(&u)?))
}
