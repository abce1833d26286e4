//! Every profile idstation reads: certificate (`profiles/cert/`), CRL (`profiles/crl/`), card
//! (`profiles/card/`, [`card`]) and document (`profiles/document/`, [`document`]) profiles,
//! the TOML files and their typed, validated loader.
//!
//! A certificate profile says everything a certificate carries (RFC 5280 §4.1 and §4.2):
//! subject template, validity, key usage, extended key usage, basic constraints, certificate
//! policies, QC statements (ETSI EN 319 412-5 §4), CRL distribution point, authority
//! information access, subject and authority key identifiers. A CRL profile says how a CRL
//! (RFC 5280 §5) is dated. Code reads profiles; it does not hard-code them.
//!
//! Files are parsed with `deny_unknown_fields` and then checked against the rules in
//! [`rules`]; every error names the file, the key and the rule. The shipped profiles are
//! embedded in the binary ([`builtin`]) so a data dir can be initialised without the source
//! tree ([`write_builtin`]); a directory can override them ([`load_dir_over_builtin`]).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use const_oid::ObjectIdentifier;
use serde::{Deserialize, Deserializer};

pub mod card;
pub mod document;
pub mod regions;
pub mod rules;

use card::CardProfile;
use document::DocumentProfile;

/// Errors from loading profiles. Every message names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile {file}: cannot read: {reason}")]
    Io { file: PathBuf, reason: String },
    /// TOML syntax, unknown key or wrong type; `message` comes from the TOML parser and names
    /// the key and the line.
    #[error("profile {file}: {message}")]
    Parse { file: PathBuf, message: String },
    /// A well-formed file that breaks a rule (an impossible combination or a bad value).
    #[error("profile {file}: key `{key}`: {rule}")]
    Rule {
        file: PathBuf,
        key: String,
        rule: String,
    },
    #[error("unknown {kind} profile '{name}' (known: {known})")]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },
    #[error("profile {file}: refusing to overwrite an existing file")]
    Exists { file: PathBuf },
    /// A placeholder in a template had no value at render time.
    #[error("template `{template}`: placeholder {{{placeholder}}} has no value")]
    MissingValue {
        template: String,
        placeholder: String,
    },
}

pub type Result<T> = std::result::Result<T, ProfileError>;

// ---------------------------------------------------------------------------------------------
// Certificate profile
// ---------------------------------------------------------------------------------------------

/// What a certificate profile issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// Self-signed trust anchor.
    RootCa,
    /// A CA certificate signed by another CA (e.g. the e-signature issuing CA).
    SubordinateCa,
    /// A holder's certificate.
    EndEntity,
}

/// Where the key a profile certifies must come from, and so who may ask for the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrigin {
    /// Generated inside the station's or the centre's HSM by the system itself (CA, audit and
    /// Document Signer keys). The default: a profile must say so to be issued for any other key.
    #[default]
    Hsm,
    /// Generated on the holder's card by the issuance job (the holder's authentication and
    /// qualified e-signature keys: QcSSCD says the key lives in a signature-creation device).
    Card,
    /// Any key an operator brings (a CSR or an SPKI file): the only kind `ca issue` certifies.
    Any,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::Hsm => "hsm",
            KeyOrigin::Card => "card",
            KeyOrigin::Any => "any",
        }
    }
}

impl CertKind {
    pub fn is_ca(self) -> bool {
        !matches!(self, CertKind::EndEntity)
    }
}

/// A certificate profile (`profiles/cert/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProfile {
    /// The profile's name: the file stem (`holder-sign` for `cert/holder-sign.toml`).
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub kind: CertKind,
    /// Where the certified key comes from (default `hsm`); `ca issue` certifies only `any`.
    #[serde(default)]
    pub key_origin: KeyOrigin,
    /// Subject distinguished name, one attribute per RDN, in this order (RFC 5280 §4.1.2.6).
    pub subject: Vec<SubjectAttribute>,
    pub validity: ValidityRule,
    /// keyUsage bits (RFC 5280 §4.2.1.3); always encoded critical.
    pub key_usage: Vec<KeyUsageBit>,
    /// extendedKeyUsage purposes (RFC 5280 §4.2.1.12), by name or dotted OID; non-critical
    /// unless `extended_key_usage_critical`.
    #[serde(default)]
    pub extended_key_usage: Vec<Eku>,
    /// Encode extendedKeyUsage critical (a time-stamping unit's certificate: RFC 3161 §2.3).
    #[serde(default)]
    pub extended_key_usage_critical: bool,
    /// Carry id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): a delegated OCSP responder's own
    /// certificate is not checked for revocation. Needs the OCSPSigning purpose.
    #[serde(default)]
    pub ocsp_no_check: bool,
    /// basicConstraints (RFC 5280 §4.2.1.9); required for CAs, encoded critical.
    pub basic_constraints: Option<BasicConstraintsRule>,
    /// certificatePolicies (RFC 5280 §4.2.1.4); non-critical.
    #[serde(default)]
    pub policies: Vec<PolicyRule>,
    /// qcStatements (ETSI EN 319 412-5 §4); end-entity only.
    pub qc_statements: Option<QcStatementsRule>,
    /// cRLDistributionPoints URL template (RFC 5280 §4.2.1.13). Placeholders:
    /// `{issuer_key}` (the issuing key's HSM label) and `{issuer_key_id}` (hex of the issuing
    /// key's subject key identifier): each issuing key publishes its own CRL.
    pub crl_distribution_point: Option<String>,
    /// authorityInfoAccess (RFC 5280 §4.2.2.1); same placeholders as the CRL URL.
    pub authority_info_access: Option<AiaRule>,
    /// subjectAltName (RFC 5280 §4.2.1.6): which name forms the certificate may carry; the
    /// values come from the issuance call, never from the profile or a request. End-entity only.
    pub subject_alt_name: Option<SanRule>,
    /// privateKeyUsagePeriod (RFC 3280 §4.2.1.4): the private key signs from notBefore for
    /// this many days, a much shorter time than the certificate is valid (ICAO Doc 9303-12
    /// §4.1 Table 1: a CSCA key 3–5 years, a Document Signer key up to 3 months; Table 6 makes
    /// the extension mandatory for both). Encoded non-critical, notBefore and notAfter present.
    pub private_key_usage_period: Option<ValidityRule>,
    /// The eMRTD PKI's own extensions (ICAO Doc 9303-12 §7.1.1, Table 6), for the CSCA and
    /// Document Signer profiles.
    pub icao_9303: Option<Icao9303Rule>,
    /// How the subjectKeyIdentifier is derived (RFC 5280 §4.2.1.2, RFC 7093 §2).
    #[serde(default)]
    pub subject_key_identifier: SkiMethod,
    /// Whether to include authorityKeyIdentifier (keyIdentifier form, RFC 5280 §4.2.1.1);
    /// for a self-signed root it repeats the root's own SKI.
    #[serde(default = "default_true")]
    pub authority_key_identifier: bool,
    /// SHA-256 over the profile's name and the text it was parsed from, set by
    /// [`parse_cert_profile`]: profiles with the same digest came from the same file content.
    /// What a cache of profile-derived data keys on ([`CertProfile::digest`]).
    #[serde(skip)]
    digest: [u8; 32],
}

impl CertProfile {
    /// SHA-256 over the profile's name and source text (see the field). Loaded profiles are
    /// read-only values; a profile changed in memory after loading keeps its old digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// This profile with its validity capped at `days` (a renewal that may not outlive the
    /// document's expiry), under a digest of its own so that no cache mistakes it for the
    /// profile as loaded.
    pub fn with_validity_at_most(&self, days: u32) -> CertProfile {
        let mut p = self.clone();
        if days < p.validity.days {
            p.validity.days = days;
            p.digest = {
                use sha2::Digest;
                let mut h = sha2::Sha256::new();
                h.update(self.digest);
                h.update(b"validity.days");
                h.update(days.to_be_bytes());
                h.finalize().into()
            };
        }
        p
    }
}

fn default_true() -> bool {
    true
}

/// One subject attribute: `{ attribute = "serialNumber", value = "PNOUZ-{pinfl}" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectAttribute {
    pub attribute: AttributeKind,
    /// Literal text with placeholders ([`HOLDER_PLACEHOLDERS`]) for end-entity profiles.
    pub value: String,
}

/// Subject attribute types (RFC 5280 Appendix A.1, X.520; organizationIdentifier from
/// ETSI EN 319 412-1 §5.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AttributeKind {
    #[serde(rename = "C")]
    Country,
    #[serde(rename = "O")]
    Organization,
    #[serde(rename = "OU")]
    OrganizationalUnit,
    #[serde(rename = "L")]
    Locality,
    #[serde(rename = "CN")]
    CommonName,
    #[serde(rename = "serialNumber")]
    SerialNumber,
    #[serde(rename = "givenName")]
    GivenName,
    #[serde(rename = "surname")]
    Surname,
    #[serde(rename = "organizationIdentifier")]
    OrganizationIdentifier,
}

impl AttributeKind {
    /// The attribute type OID (X.520 §6, EN 319 412-1 §5.1.4).
    pub fn oid(self) -> ObjectIdentifier {
        const C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
        const O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
        const OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
        const L: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
        const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
        const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
        const GIVEN_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.42");
        const SURNAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.4");
        const ORGANIZATION_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");
        match self {
            AttributeKind::Country => C,
            AttributeKind::Organization => O,
            AttributeKind::OrganizationalUnit => OU,
            AttributeKind::Locality => L,
            AttributeKind::CommonName => CN,
            AttributeKind::SerialNumber => SERIAL_NUMBER,
            AttributeKind::GivenName => GIVEN_NAME,
            AttributeKind::Surname => SURNAME,
            AttributeKind::OrganizationIdentifier => ORGANIZATION_IDENTIFIER,
        }
    }

    /// Upper bound in characters: RFC 5280 Appendix A.1 `ub-*` where it sets one; givenName
    /// and surname (only `ub-name` there) are held to 64, like commonName.
    pub fn max_chars(self) -> usize {
        match self {
            AttributeKind::Country => 2,
            AttributeKind::Organization | AttributeKind::OrganizationalUnit => 64,
            AttributeKind::Locality => 128,
            AttributeKind::CommonName => 64,
            AttributeKind::SerialNumber => 64,
            AttributeKind::GivenName | AttributeKind::Surname => 64,
            AttributeKind::OrganizationIdentifier => 64,
        }
    }

    /// countryName and serialNumber are PrintableString (RFC 5280 Appendix A.1); the rest
    /// are encoded as UTF8String (RFC 5280 §4.1.2.6: "CAs MUST use UTF8String").
    pub fn is_printable_string(self) -> bool {
        matches!(self, AttributeKind::Country | AttributeKind::SerialNumber)
    }

    /// The short name used in the TOML files and in error messages.
    pub fn short_name(self) -> &'static str {
        match self {
            AttributeKind::Country => "C",
            AttributeKind::Organization => "O",
            AttributeKind::OrganizationalUnit => "OU",
            AttributeKind::Locality => "L",
            AttributeKind::CommonName => "CN",
            AttributeKind::SerialNumber => "serialNumber",
            AttributeKind::GivenName => "givenName",
            AttributeKind::Surname => "surname",
            AttributeKind::OrganizationIdentifier => "organizationIdentifier",
        }
    }
}

/// Placeholders an end-entity subject template may use; the CA fills them from the holder.
pub const HOLDER_PLACEHOLDERS: &[&str] =
    &["surname", "given_names", "pinfl", "common_name", "country"];

/// Placeholders URL templates (CRL distribution point, AIA) may use.
pub const ISSUER_PLACEHOLDERS: &[&str] = &["issuer_key", "issuer_key_id"];

/// Validity period of issued certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityRule {
    /// notAfter = notBefore + `days` days.
    pub days: u32,
}

/// What ICAO Doc 9303-12 §7.1.1 adds to a CSCA or Document Signer certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icao9303Rule {
    /// The issuing State's ICAO three-letter code as it appears in the MRZ: the
    /// `localityName` of the directory name that subjectAltName and issuerAltName carry
    /// (§7.1.1.2: both mandatory, Table 6).
    pub country: String,
    /// The document types, as they appear in the MRZ (`I` for a TD1 ID card whose document
    /// code is `I<`), a Document Signer may sign: the DocumentTypeList extension (§7.1.1.6,
    /// mandatory for a Document Signer, absent from a CSCA).
    #[serde(default)]
    pub document_types: Vec<String>,
}

/// keyUsage bits by their RFC 5280 §4.2.1.3 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsageBit {
    DigitalSignature,
    /// Renamed contentCommitment in X.509 (2008).
    #[serde(alias = "contentCommitment")]
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    #[serde(rename = "cRLSign")]
    CrlSign,
}

/// An extended key usage purpose, written in TOML by name (`clientAuth`, `emailProtection`,
/// `serverAuth`, `codeSigning`, `timeStamping`, `OCSPSigning`, `cscaMasterListSigningKey`) or as
/// a dotted OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eku(pub ObjectIdentifier);

impl Eku {
    pub const SERVER_AUTH: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1"));
    pub const CLIENT_AUTH: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2"));
    pub const CODE_SIGNING: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3"));
    pub const EMAIL_PROTECTION: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.4"));
    pub const TIME_STAMPING: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8"));
    pub const OCSP_SIGNING: Eku = Eku(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9"));
    /// id-icao-cscaMasterListSigningKey (ICAO Doc 9303-12 §7.1.1.3, §9.2): a Master List
    /// Signer.
    pub const CSCA_MASTER_LIST_SIGNING: Eku = Eku(ObjectIdentifier::new_unwrap("2.23.136.1.1.3"));

    fn from_name(s: &str) -> Option<Eku> {
        Some(match s {
            "serverAuth" => Eku::SERVER_AUTH,
            "clientAuth" => Eku::CLIENT_AUTH,
            "codeSigning" => Eku::CODE_SIGNING,
            "emailProtection" => Eku::EMAIL_PROTECTION,
            "timeStamping" => Eku::TIME_STAMPING,
            "OCSPSigning" => Eku::OCSP_SIGNING,
            "cscaMasterListSigningKey" => Eku::CSCA_MASTER_LIST_SIGNING,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Eku {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(e) = Eku::from_name(&s) {
            return Ok(e);
        }
        ObjectIdentifier::new(&s).map(Eku).map_err(|_| {
            serde::de::Error::custom(format!(
                "extended key usage `{s}` is neither a known name (serverAuth, clientAuth, \
                 codeSigning, emailProtection, timeStamping, OCSPSigning, \
                 cscaMasterListSigningKey) nor a dotted OID"
            ))
        })
    }
}

/// An object identifier written as a dotted string in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Oid(pub ObjectIdentifier);

impl<'de> Deserialize<'de> for Oid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectIdentifier::new(&s)
            .map(Oid)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a dotted OID: {e}")))
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// basicConstraints (RFC 5280 §4.2.1.9).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConstraintsRule {
    pub ca: bool,
    /// pathLenConstraint; only meaningful (and only allowed) when `ca = true`.
    pub path_len: Option<u8>,
}

/// One certificate policy (RFC 5280 §4.2.1.4) with optional qualifiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub oid: Oid,
    /// id-qt-cps qualifier: where the certification practice statement is published.
    pub cps_uri: Option<String>,
    /// id-qt-unotice qualifier, explicitText (UTF8String, at most 200 characters).
    pub user_notice: Option<String>,
}

/// QC statements (ETSI EN 319 412-5 §4.2 and §4.3; EN 319 412-1 §5.1 for the semantics id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QcStatementsRule {
    /// esi4-qcStatement-1 QcCompliance (0.4.0.1862.1.1), EN 319 412-5 §4.2.1.
    #[serde(default)]
    pub compliance: bool,
    /// esi4-qcStatement-4 QcSSCD (0.4.0.1862.1.4), EN 319 412-5 §4.2.2.
    #[serde(default)]
    pub sscd: bool,
    /// esi4-qcStatement-6 QcType (0.4.0.1862.1.6), EN 319 412-5 §4.2.3.
    #[serde(default)]
    pub qc_type: Vec<QcType>,
    /// esi4-qcStatement-5 QcPDS (0.4.0.1862.1.5), EN 319 412-5 §4.3.4.
    #[serde(default)]
    pub pds: Vec<PdsLocationRule>,
    /// esi4-qcStatement-7 QcCClegislation (0.4.0.1862.1.7), EN 319 412-5 §4.2.4: the
    /// countries whose legislation the certificate is qualified under (non-EU).
    #[serde(default)]
    pub legislation: Vec<String>,
    /// id-etsi-qcs-SemanticsId-Natural (0.4.0.194121.1.1), EN 319 412-1 §5.1.3, naming the
    /// semantics of subject serialNumber ("PNOUZ-…").
    #[serde(default)]
    pub semantics_id_natural: bool,
}

/// QcType values (EN 319 412-5 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QcType {
    /// id-etsi-qct-esign 0.4.0.1862.1.6.1
    Esign,
    /// id-etsi-qct-eseal 0.4.0.1862.1.6.2
    Eseal,
    /// id-etsi-qct-web 0.4.0.1862.1.6.3
    Web,
}

/// A PDS location (EN 319 412-5 §4.3.4): https URL and ISO 639-1 language code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdsLocationRule {
    pub url: String,
    pub lang: String,
}

/// authorityInfoAccess URLs (RFC 5280 §4.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiaRule {
    pub ca_issuers: Option<String>,
    pub ocsp: Option<String>,
}

/// subjectAltName rule (RFC 5280 §4.2.1.6): the general-name forms allowed, and whether a
/// certificate must carry at least one name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanRule {
    /// `dNSName` and/or `iPAddress`.
    pub types: Vec<SanType>,
    /// Refuse to issue without a name (a TLS server certificate is matched by its SAN,
    /// RFC 9525 §6.3).
    #[serde(default)]
    pub required: bool,
}

/// The subjectAltName forms a profile may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum SanType {
    #[serde(rename = "dNSName")]
    DnsName,
    #[serde(rename = "iPAddress")]
    IpAddress,
}

/// How the subjectKeyIdentifier is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkiMethod {
    /// SHA-1 of the subjectPublicKey BIT STRING value (RFC 5280 §4.2.1.2 method 1).
    #[default]
    Rfc5280Sha1,
    /// Leftmost 160 bits of SHA-256 of the same bytes (RFC 7093 §2 method 1).
    Rfc7093Sha256,
}

// ---------------------------------------------------------------------------------------------
// CRL profile
// ---------------------------------------------------------------------------------------------

/// A CRL profile (`profiles/crl/<name>.toml`), RFC 5280 §5.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlProfile {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// nextUpdate = thisUpdate + this many hours (RFC 5280 §5.1.2.5).
    pub next_update_hours: u32,
    /// Whether an entry carries its reasonCode (RFC 5280 §5.3.1; default yes). A CSCA's CRL
    /// carries no entry extensions (ICAO Doc 9303-12 §7.1.4, Table 10: reasonCode `x`).
    #[serde(default = "default_true")]
    pub entry_reasons: bool,
}

// ---------------------------------------------------------------------------------------------
// Sets, loading
// ---------------------------------------------------------------------------------------------

/// All profiles known to the station, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSet {
    pub certs: BTreeMap<String, CertProfile>,
    pub crls: BTreeMap<String, CrlProfile>,
    pub cards: BTreeMap<String, CardProfile>,
    pub documents: BTreeMap<String, DocumentProfile>,
}

impl ProfileSet {
    /// The certificate profile `name`, or [`ProfileError::Unknown`].
    pub fn cert(&self, name: &str) -> Result<&CertProfile> {
        self.certs.get(name).ok_or_else(|| ProfileError::Unknown {
            kind: "certificate",
            name: name.to_owned(),
            known: self.certs.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The card profile `name`, or [`ProfileError::Unknown`].
    pub fn card(&self, name: &str) -> Result<&CardProfile> {
        self.cards.get(name).ok_or_else(|| ProfileError::Unknown {
            kind: "card",
            name: name.to_owned(),
            known: self.cards.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The document profile `name`, or [`ProfileError::Unknown`].
    pub fn document(&self, name: &str) -> Result<&DocumentProfile> {
        self.documents
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                kind: "document",
                name: name.to_owned(),
                known: self
                    .documents
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// A document profile and the card profile it names.
    pub fn document_and_card(&self, name: &str) -> Result<(&DocumentProfile, &CardProfile)> {
        let doc = self.document(name)?;
        Ok((doc, self.card(&doc.card_profile)?))
    }

    /// Every document profile names a card profile of the set.
    fn check_links(&self) -> Result<()> {
        for doc in self.documents.values() {
            if !self.cards.contains_key(&doc.card_profile) {
                return Err(ProfileError::Rule {
                    file: PathBuf::from(format!("document/{}.toml", doc.name)),
                    key: "card_profile".into(),
                    rule: format!(
                        "names card profile '{}', which is not loaded (known: {})",
                        doc.card_profile,
                        self.cards.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The CRL profile `name`, or [`ProfileError::Unknown`].
    pub fn crl(&self, name: &str) -> Result<&CrlProfile> {
        self.crls.get(name).ok_or_else(|| ProfileError::Unknown {
            kind: "CRL",
            name: name.to_owned(),
            known: self.crls.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// The CRL profile the keys of CA `ca` (a registry CA name: `root`, `esign`, `csca`, ...) sign
/// their CRLs under: `csca-crl` for the CSCA (ICAO Doc 9303-12 §7.1.4), `esign-crl` for the
/// others.
pub fn crl_profile_name(ca: &str) -> &'static str {
    if ca == "csca" {
        "csca-crl"
    } else {
        "esign-crl"
    }
}

/// The profiles shipped with idstation, as (relative path, TOML text).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("cert/root-ca.toml", include_str!("../cert/root-ca.toml")),
    ("cert/esign-ca.toml", include_str!("../cert/esign-ca.toml")),
    (
        "cert/holder-auth.toml",
        include_str!("../cert/holder-auth.toml"),
    ),
    (
        "cert/holder-sign.toml",
        include_str!("../cert/holder-sign.toml"),
    ),
    (
        "cert/audit-signer.toml",
        include_str!("../cert/audit-signer.toml"),
    ),
    (
        "cert/egov-signer.toml",
        include_str!("../cert/egov-signer.toml"),
    ),
    ("cert/csca.toml", include_str!("../cert/csca.toml")),
    (
        "cert/document-signer.toml",
        include_str!("../cert/document-signer.toml"),
    ),
    (
        "cert/master-list-signer.toml",
        include_str!("../cert/master-list-signer.toml"),
    ),
    (
        "cert/station-ca.toml",
        include_str!("../cert/station-ca.toml"),
    ),
    (
        "cert/centre-tls.toml",
        include_str!("../cert/centre-tls.toml"),
    ),
    (
        "cert/station-identity.toml",
        include_str!("../cert/station-identity.toml"),
    ),
    (
        "cert/ocsp-responder.toml",
        include_str!("../cert/ocsp-responder.toml"),
    ),
    ("cert/tsa.toml", include_str!("../cert/tsa.toml")),
    ("crl/esign-crl.toml", include_str!("../crl/esign-crl.toml")),
    ("crl/csca-crl.toml", include_str!("../crl/csca-crl.toml")),
    (
        "card/card-esign.toml",
        include_str!("../card/card-esign.toml"),
    ),
    (
        "document/id-card.toml",
        include_str!("../document/id-card.toml"),
    ),
];

/// The document profile an issuance uses unless told otherwise.
pub const DEFAULT_DOCUMENT: &str = "id-card";

/// The kinds of profile, each in its own subdirectory.
#[derive(Clone, Copy)]
enum Kind {
    Cert,
    Crl,
    Card,
    Document,
}

const KINDS: [(&str, Kind); 4] = [
    ("cert", Kind::Cert),
    ("crl", Kind::Crl),
    ("card", Kind::Card),
    ("document", Kind::Document),
];

impl ProfileSet {
    /// Parse `text` as a profile of `kind` and add it, replacing one of the same name.
    fn add(&mut self, kind: Kind, file: &Path, text: &str) -> Result<()> {
        match kind {
            Kind::Cert => {
                let p = parse_cert_profile(file, text)?;
                self.certs.insert(p.name.clone(), p);
            }
            Kind::Crl => {
                let p = parse_crl_profile(file, text)?;
                self.crls.insert(p.name.clone(), p);
            }
            Kind::Card => {
                let p = card::parse_card_profile(file, text)?;
                self.cards.insert(stem(file)?, p);
            }
            Kind::Document => {
                let p = document::parse_document_profile(file, text)?;
                self.documents.insert(p.name.clone(), p);
            }
        }
        Ok(())
    }
}

/// TOML text as a profile type; syntax, unknown-key and type errors name the file and the key.
fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| ProfileError::Parse {
        file: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Parse and check one certificate profile from text; `file` is used in errors and its
/// stem becomes the profile name.
pub fn parse_cert_profile(file: &Path, text: &str) -> Result<CertProfile> {
    let mut p: CertProfile = parse_toml(file, text)?;
    p.name = stem(file)?;
    p.digest = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(p.name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().into()
    };
    rules::check_cert_profile(&p).map_err(|(key, rule)| ProfileError::Rule {
        file: file.to_owned(),
        key,
        rule,
    })?;
    Ok(p)
}

/// Parse and check one CRL profile from text.
pub fn parse_crl_profile(file: &Path, text: &str) -> Result<CrlProfile> {
    let mut p: CrlProfile = parse_toml(file, text)?;
    p.name = stem(file)?;
    rules::check_crl_profile(&p).map_err(|(key, rule)| ProfileError::Rule {
        file: file.to_owned(),
        key,
        rule,
    })?;
    Ok(p)
}

/// Load one certificate profile file.
pub fn load_cert_profile(path: &Path) -> Result<CertProfile> {
    parse_cert_profile(path, &read(path)?)
}

/// Load one CRL profile file.
pub fn load_crl_profile(path: &Path) -> Result<CrlProfile> {
    parse_crl_profile(path, &read(path)?)
}

/// Load every profile under `dir` (`dir/cert/*.toml`, `dir/crl/*.toml`, `dir/card/*.toml`,
/// `dir/document/*.toml`; missing subdirs are empty). Any bad file fails the whole load.
pub fn load_dir(dir: &Path) -> Result<ProfileSet> {
    let mut set = ProfileSet::default();
    add_dir(&mut set, dir)?;
    set.check_links()?;
    Ok(set)
}

/// The shipped profiles, parsed from the copies embedded in the binary.
pub fn builtin() -> Result<ProfileSet> {
    let mut set = ProfileSet::default();
    for (rel, text) in BUILTIN_FILES {
        let file = Path::new("<builtin>").join(rel);
        let kind = KINDS
            .iter()
            .find(|(sub, _)| rel.strip_prefix(sub).is_some_and(|r| r.starts_with('/')))
            .map(|(_, k)| *k)
            .ok_or_else(|| ProfileError::Rule {
                file: file.clone(),
                key: "<file name>".into(),
                rule: "a built-in profile lives in cert/, crl/, card/ or document/".into(),
            })?;
        set.add(kind, &file, text)?;
    }
    set.check_links()?;
    Ok(set)
}

/// The shipped profiles, with every profile found under `dir` replacing the shipped one of
/// the same name (and adding new ones). A missing `dir` just yields the shipped set.
pub fn load_dir_over_builtin(dir: &Path) -> Result<ProfileSet> {
    let mut set = builtin()?;
    add_dir(&mut set, dir)?;
    set.check_links()?;
    Ok(set)
}

/// Write the shipped profile files under `dir` (creating `cert/`, `crl/`, `card/` and
/// `document/`). Refuses to
/// overwrite any existing file; checks all targets before writing any.
pub fn write_builtin(dir: &Path) -> Result<Vec<PathBuf>> {
    let targets: Vec<PathBuf> = BUILTIN_FILES.iter().map(|(rel, _)| dir.join(rel)).collect();
    if let Some(existing) = targets.iter().find(|t| t.exists()) {
        return Err(ProfileError::Exists {
            file: existing.clone(),
        });
    }
    for (target, (_, text)) in targets.iter().zip(BUILTIN_FILES) {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::write(target, text).map_err(|e| io_err(target, e))?;
    }
    Ok(targets)
}

/// Fill `{placeholder}`s in `template` from `value`; `{{` and `}}` are not special. The
/// placeholder names were checked at load time; a `None` here is [`ProfileError::MissingValue`].
///
/// A template that is a single placeholder, or has none, is returned borrowed (no copy).
pub fn render_template<'a>(
    template: &'a str,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    if !template.contains('{') {
        return Ok(Cow::Borrowed(template));
    }
    if let Some(name) = template
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .filter(|n| !n.contains(['{', '}']))
    {
        return value(name)
            .map(Cow::Borrowed)
            .ok_or_else(|| ProfileError::MissingValue {
                template: template.to_owned(),
                placeholder: name.to_owned(),
            });
    }
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| ProfileError::MissingValue {
            template: template.to_owned(),
            placeholder: after.to_owned(),
        })?;
        let name = &after[..close];
        let v = value(name).ok_or_else(|| ProfileError::MissingValue {
            template: template.to_owned(),
            placeholder: name.to_owned(),
        })?;
        out.push_str(v);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

fn add_dir(set: &mut ProfileSet, dir: &Path) -> Result<()> {
    for (sub, kind) in KINDS {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| io_err(&d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            set.add(kind, &f, &read(&f)?)?;
            tracing::debug!(kind = sub, file = %f.display(), "loaded profile");
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, e: std::io::Error) -> ProfileError {
    ProfileError::Io {
        file: path.to_owned(),
        reason: e.to_string(),
    }
}

fn stem(file: &Path) -> Result<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        .ok_or_else(|| ProfileError::Rule {
            file: file.to_owned(),
            key: "<file name>".into(),
            rule: "a profile file name must be letters, digits, '-' or '_' followed by .toml"
                .into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLDER_SIGN: &str = include_str!("../cert/holder-sign.toml");

    fn cert(text: &str) -> Result<CertProfile> {
        parse_cert_profile(Path::new("cert/test.toml"), text)
    }

    fn rule_key(r: Result<CertProfile>) -> (String, String) {
        match r {
            Err(ProfileError::Rule { key, rule, .. }) => (key, rule),
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    #[test]
    fn ocsp_nocheck_needs_ocsp_signing_and_a_critical_eku_needs_an_eku() {
        let set = builtin().unwrap();
        let ocsp = set.cert("ocsp-responder").unwrap();
        assert!(ocsp.ocsp_no_check && ocsp.extended_key_usage == [Eku::OCSP_SIGNING]);
        let tsa = set.cert("tsa").unwrap();
        assert!(tsa.extended_key_usage_critical && tsa.extended_key_usage == [Eku::TIME_STAMPING]);
        let text = include_str!("../cert/ocsp-responder.toml");
        let (key, _) = rule_key(cert(&text.replace(
            r#"extended_key_usage = ["OCSPSigning"]"#,
            r#"extended_key_usage = ["clientAuth"]"#,
        )));
        assert_eq!(key, "ocsp_no_check");
        let text = include_str!("../cert/audit-signer.toml").replace(
            "extended_key_usage = [\"1.3.6.1.4.1.32473.1.3.1\"]",
            "extended_key_usage_critical = true",
        );
        assert_eq!(rule_key(cert(&text)).0, "extended_key_usage_critical");
    }

    #[test]
    fn shipped_profiles_load_and_say_what_the_issue_requires() {
        let set = builtin().expect("builtin profiles are valid");
        assert_eq!(
            set.certs.keys().collect::<Vec<_>>(),
            [
                "audit-signer",
                "centre-tls",
                "csca",
                "document-signer",
                "egov-signer",
                "esign-ca",
                "holder-auth",
                "holder-sign",
                "master-list-signer",
                "ocsp-responder",
                "root-ca",
                "station-ca",
                "station-identity",
                "tsa"
            ]
        );
        // ICAO 9303 Part 12 §7.1.1: CSCA keyCertSign + cRLSign, CA pathLen 0; DS digitalSignature.
        let csca = set.cert("csca").unwrap();
        assert_eq!(csca.kind, CertKind::RootCa);
        assert_eq!(
            csca.key_usage,
            [KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]
        );
        assert_eq!(csca.basic_constraints.as_ref().unwrap().path_len, Some(0));
        let ds = set.cert("document-signer").unwrap();
        assert_eq!(ds.kind, CertKind::EndEntity);
        assert_eq!(ds.key_usage, [KeyUsageBit::DigitalSignature]);
        assert!(ds.authority_key_identifier);
        let audit = set.cert("audit-signer").unwrap();
        assert_eq!(audit.kind, CertKind::EndEntity);
        assert_eq!(audit.key_usage, [KeyUsageBit::DigitalSignature]);
        let root = set.cert("root-ca").unwrap();
        assert_eq!(root.kind, CertKind::RootCa);
        let ca = set.cert("esign-ca").unwrap();
        assert_eq!(ca.basic_constraints.as_ref().unwrap().path_len, Some(0));
        let auth = set.cert("holder-auth").unwrap();
        assert_eq!(auth.key_usage, [KeyUsageBit::DigitalSignature]);
        assert_eq!(auth.extended_key_usage, [Eku::CLIENT_AUTH]);
        let sign = set.cert("holder-sign").unwrap();
        assert_eq!(sign.key_usage, [KeyUsageBit::NonRepudiation]);
        assert_eq!(sign.policies[0].oid.to_string(), "0.4.0.194112.1.2");
        let qc = sign.qc_statements.as_ref().unwrap();
        assert!(qc.compliance && qc.sscd);
        assert_eq!(qc.qc_type, [QcType::Esign]);
        assert!(qc.pds[0].url.starts_with("https://"));
        assert_eq!(sign.subject[1].value, "PNOUZ-{pinfl}");
        assert_eq!(set.crl("esign-crl").unwrap().next_update_hours, 48);
        let tls = set.cert("centre-tls").unwrap();
        assert_eq!(tls.extended_key_usage, [Eku::SERVER_AUTH]);
        let san = tls.subject_alt_name.as_ref().unwrap();
        assert!(san.required);
        assert_eq!(san.types, [SanType::DnsName, SanType::IpAddress]);
        let id = set.cert("station-identity").unwrap();
        assert_eq!(id.extended_key_usage, [Eku::CLIENT_AUTH]);
        assert_eq!(id.subject.last().unwrap().value, "{common_name}");
    }

    #[test]
    fn a_master_list_signer_is_what_doc_9303_12_table_6_says() {
        const MLS: &str = include_str!("../cert/master-list-signer.toml");
        let mls = cert(MLS).unwrap();
        assert_eq!(
            mls.extended_key_usage,
            [Eku::CSCA_MASTER_LIST_SIGNING],
            "2.23.136.1.1.3"
        );
        assert!(mls.extended_key_usage_critical && mls.icao_9303.is_some());
        for (text, key) in [
            (
                MLS.replace("extended_key_usage_critical = true", ""),
                "extended_key_usage",
            ),
            (
                MLS.replace(
                    "[\"cscaMasterListSigningKey\"]",
                    "[\"cscaMasterListSigningKey\", \"clientAuth\"]",
                ),
                "extended_key_usage",
            ),
            (
                MLS.replace(
                    "[\"digitalSignature\"]",
                    "[\"digitalSignature\", \"keyAgreement\"]",
                ),
                "key_usage",
            ),
            (
                MLS.replace(
                    "country = \"UZB\"",
                    "country = \"UZB\"\ndocument_types = [\"I\"]",
                ),
                "icao_9303.document_types",
            ),
            (
                MLS.replace("[icao_9303]\ncountry = \"UZB\"", ""),
                "icao_9303",
            ),
        ] {
            assert_eq!(rule_key(cert(&text)).0, key, "{text}");
        }
    }

    #[test]
    fn icao_9303_profiles_carry_what_doc_9303_12_table_6_makes_mandatory() {
        const CSCA: &str = include_str!("../cert/csca.toml");
        const DS: &str = include_str!("../cert/document-signer.toml");
        let csca = cert(CSCA).unwrap();
        assert_eq!(csca.icao_9303.as_ref().unwrap().country, "UZB");
        assert!(csca.crl_distribution_point.is_some());
        let ds = cert(DS).unwrap();
        assert_eq!(ds.icao_9303.as_ref().unwrap().document_types, ["I"]);
        assert_eq!(ds.private_key_usage_period.as_ref().unwrap().days, 92);
        let cases = [
            (CSCA.replace("\"UZB\"", "\"UZ\""), "icao_9303.country"),
            (CSCA.replace("\"UZB\"", "\"uzb\""), "icao_9303.country"),
            (
                CSCA.replace(
                    "country = \"UZB\"",
                    "country = \"UZB\"\ndocument_types = [\"I\"]",
                ),
                "icao_9303.document_types",
            ),
            (
                DS.replace("document_types = [\"I\"]", ""),
                "icao_9303.document_types",
            ),
            (
                DS.replace("[\"I\"]", "[\"I<\"]"),
                "icao_9303.document_types[0]",
            ),
            (
                DS.replace("[\"I\"]", "[\"IDX\"]"),
                "icao_9303.document_types[0]",
            ),
            (
                DS.replace("crl_distribution_point", "# crl_distribution_point"),
                "crl_distribution_point",
            ),
            (
                DS.replace("private_key_usage_period", "# private_key_usage_period"),
                "private_key_usage_period",
            ),
            (
                DS.replace("days = 92", "days = 4000"),
                "private_key_usage_period.days",
            ),
            (
                DS.to_owned() + "\n[subject_alt_name]\ntypes = [\"dNSName\"]\n",
                "subject_alt_name",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(rule_key(cert(&text)).0, key, "{text}");
        }
        // A root without the ICAO table keeps RFC 5280 §6.1.1's rule: no CDP of its own.
        let plain_root = CSCA.replace("[icao_9303]\ncountry = \"UZB\"", "");
        assert_eq!(rule_key(cert(&plain_root)).0, "crl_distribution_point");
    }

    #[test]
    fn subject_alt_name_is_for_end_entities_with_at_least_one_form() {
        let ca = include_str!("../cert/station-ca.toml").to_owned()
            + "subject_alt_name = { types = [\"dNSName\"] }\n";
        assert_eq!(rule_key(cert(&ca)).0, "subject_alt_name");
        let tls = include_str!("../cert/centre-tls.toml")
            .replace("types = [\"dNSName\", \"iPAddress\"]", "types = []");
        assert_eq!(rule_key(cert(&tls)).0, "subject_alt_name.types");
        let twice =
            include_str!("../cert/centre-tls.toml").replace("\"iPAddress\"]", "\"dNSName\"]");
        assert_eq!(rule_key(cert(&twice)).0, "subject_alt_name.types");
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let text = HOLDER_SIGN.replace("kind = ", "colour = \"blue\"\nkind = ");
        let err = cert(&text).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ProfileError::Parse { .. }), "{msg}");
        assert!(msg.contains("cert/test.toml"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn unknown_key_inside_a_table_is_refused() {
        let text = HOLDER_SIGN.replace("sscd = true", "sscd = true\nqscd = true");
        let msg = cert(&text).unwrap_err().to_string();
        assert!(msg.contains("qscd"), "{msg}");
    }

    #[test]
    fn ca_profile_without_key_cert_sign_is_refused() {
        let text = include_str!("../cert/esign-ca.toml").replace(
            r#"["digitalSignature", "keyCertSign", "cRLSign"]"#,
            r#"["digitalSignature", "cRLSign"]"#,
        );
        let (key, rule) = rule_key(cert(&text));
        assert_eq!(key, "key_usage");
        assert!(rule.contains("keyCertSign"), "{rule}");
    }

    #[test]
    fn path_len_on_an_end_entity_is_refused() {
        let text = include_str!("../cert/holder-auth.toml").replace(
            "\nkey_usage = [",
            "\nbasic_constraints = { ca = false, path_len = 0 }\nkey_usage = [",
        );
        let (key, rule) = rule_key(cert(&text));
        assert_eq!(key, "basic_constraints.path_len");
        assert!(rule.contains("pathLen"), "{rule}");
    }

    #[test]
    fn non_repudiation_only_with_client_auth_is_refused() {
        let text = HOLDER_SIGN.replace(
            r#"key_usage = ["nonRepudiation"]"#,
            "key_usage = [\"nonRepudiation\"]\nextended_key_usage = [\"clientAuth\"]",
        );
        let (key, rule) = rule_key(cert(&text));
        assert_eq!(key, "extended_key_usage[0]");
        assert!(rule.contains("digitalSignature"), "{rule}");
    }

    #[test]
    fn qc_statements_on_a_ca_are_refused() {
        let text = format!(
            "{}\n[qc_statements]\ncompliance = true\n",
            include_str!("../cert/esign-ca.toml")
        );
        let (key, _) = rule_key(cert(&text));
        assert_eq!(key, "qc_statements");
    }

    #[test]
    fn unknown_placeholder_is_refused() {
        let text = HOLDER_SIGN.replace("{given_names}", "{first_name}");
        let (key, rule) = rule_key(cert(&text));
        assert_eq!(key, "subject[2].value");
        assert!(rule.contains("{first_name}"), "{rule}");
    }

    #[test]
    fn crl_url_placeholder_must_name_the_issuer_key() {
        let text = HOLDER_SIGN.replace("crl/{issuer_key}.crl", "crl/{ca}.crl");
        let (key, _) = rule_key(cert(&text));
        assert_eq!(key, "crl_distribution_point");
    }

    #[test]
    fn pds_must_be_https() {
        let text = HOLDER_SIGN.replace("https://pki.idstation.example.com/pds", "http://x/pds");
        let (key, _) = rule_key(cert(&text));
        assert_eq!(key, "qc_statements.pds[0].url");
    }

    #[test]
    fn unknown_key_usage_name_is_refused() {
        let text = HOLDER_SIGN.replace("\"nonRepudiation\"", "\"signEverything\"");
        let msg = cert(&text).unwrap_err().to_string();
        assert!(msg.contains("signEverything"), "{msg}");
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let set = builtin().unwrap();
        let msg = set.cert("x").unwrap_err().to_string();
        assert_eq!(
            msg,
            "unknown certificate profile 'x' (known: audit-signer, centre-tls, csca, document-signer, egov-signer, esign-ca, holder-auth, holder-sign, master-list-signer, ocsp-responder, root-ca, station-ca, station-identity, tsa)"
        );
    }

    #[test]
    fn directory_overrides_builtin_and_write_builtin_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_builtin(dir.path()).unwrap();
        assert_eq!(written.len(), BUILTIN_FILES.len());
        assert!(matches!(
            write_builtin(dir.path()),
            Err(ProfileError::Exists { .. })
        ));
        let f = dir.path().join("crl/esign-crl.toml");
        let text = std::fs::read_to_string(&f).unwrap().replace("= 48", "= 12");
        std::fs::write(&f, text).unwrap();
        let set = load_dir_over_builtin(dir.path()).unwrap();
        assert_eq!(set.crl("esign-crl").unwrap().next_update_hours, 12);
        assert_eq!(set.certs.len(), 14);
    }

    #[test]
    fn load_dir_names_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cert")).unwrap();
        let bad = dir.path().join("cert/broken.toml");
        std::fs::write(&bad, "description = 1").unwrap();
        let msg = load_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("broken.toml"), "{msg}");
    }

    #[test]
    fn render_fills_placeholders() {
        let s = render_template("PNOUZ-{pinfl}", |n| (n == "pinfl").then_some("123")).unwrap();
        assert_eq!(s, "PNOUZ-123");
        assert!(matches!(s, std::borrow::Cow::Owned(_)));
        assert!(render_template("{x}", |_| None).is_err());
        // A literal, or exactly one placeholder, is returned borrowed.
        let lit = render_template("UZ", |_| None).unwrap();
        assert!(matches!(lit, std::borrow::Cow::Borrowed("UZ")));
        let one = render_template("{surname}", |n| (n == "surname").then_some("Karimova"));
        assert!(matches!(
            one.unwrap(),
            std::borrow::Cow::Borrowed("Karimova")
        ));
        // Two placeholders side by side are not mistaken for one.
        let two = render_template("{a}{b}", |n| Some(if n == "a" { "x" } else { "y" }));
        assert_eq!(two.unwrap(), "xy");
        let e = render_template("{surname}", |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("surname"), "{e}");
    }
}
