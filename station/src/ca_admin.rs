//! CA administration over the station's HSM and registry: the hierarchy as recorded
//! (`ca show`), certificate issuance by profile from a CSR or a public key (`ca issue`), and
//! CRLs per CA key (`ca crl`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use registry::{AuditEntry, CaKeyState};
use serde::{Deserialize, Serialize};

use crate::datadir::{check_new_output, write_atomic, write_new};
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// The subject of a holder certificate, as given to `ca issue --subject FILE` (JSON).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectFile {
    pub pinfl: String,
    pub surname: String,
    pub given_names: String,
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

impl SubjectFile {
    pub fn load(path: &Path) -> Result<Self, StationError> {
        let text = std::fs::read_to_string(path).map_err(|e| StationError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            StationError::invalid(
                "subject",
                format!("{} is not a subject JSON file: {e}", path.display()),
            )
        })
    }

    /// The subject; `country` (the document profile's) where the file names none.
    pub fn holder_subject(&self, country: &str) -> ca::HolderSubject {
        ca::HolderSubject {
            pinfl: self.pinfl.clone(),
            surname: self.surname.clone(),
            given_names: self.given_names.clone(),
            common_name: self
                .common_name
                .clone()
                .unwrap_or_else(|| format!("{} {}", self.given_names, self.surname)),
            country: self.country.clone().unwrap_or_else(|| country.to_owned()),
        }
    }
}

/// The subject of `ca issue`: the subject file's, or the one the CSR names; the country where
/// the file names none, and the PNO country of a CSR's serialNumber, are the document
/// profile's.
pub fn holder_subject(
    st: &Station,
    file: Option<SubjectFile>,
    source: &KeySource,
) -> Result<ca::HolderSubject, StationError> {
    let country = &st.document_profile()?.country;
    match (file, source) {
        (Some(f), _) => Ok(f.holder_subject(country)),
        (None, KeySource::Csr(bytes)) => Ok(ca::holder_subject_from_csr(bytes, country)?),
        (None, KeySource::Spki(_)) => Err(StationError::invalid(
            "subject",
            "--spki needs --subject FILE",
        )),
    }
}

/// Where the public key of `ca issue` comes from.
pub enum KeySource {
    /// A PKCS#10 request (DER or PEM); its signature is checked (proof of possession).
    Csr(Vec<u8>),
    /// A SubjectPublicKeyInfo (DER or PEM `PUBLIC KEY`).
    Spki(Vec<u8>),
}

#[derive(Debug, Clone, Serialize)]
pub struct IssueReport {
    pub serial: String,
    pub profile: String,
    pub issuer_key: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    pub out: PathBuf,
}

/// `ca issue`: an end-entity certificate under `profile`, signed by the active e-Signature CA
/// key, recorded in the registry and written to `out` as PEM.
pub fn issue(
    st: &mut Station,
    session: &Session,
    profile_name: &str,
    source: KeySource,
    subject: &ca::HolderSubject,
    out: &Path,
) -> Result<IssueReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "issue certificates",
        &[registry::Role::CaAdmin],
    )?;
    let profile = st.profiles.cert(profile_name)?.clone();
    if profile.kind != profiles::CertKind::EndEntity {
        return Err(StationError::invalid(
            "profile",
            format!("'{profile_name}' is a CA profile; ca issue issues end-entity certificates"),
        ));
    }
    // A holder's certificate certifies a key generated on the holder's card, and an audit or
    // Document Signer certificate one generated in the HSM: `ca issue` would let anyone's
    // software key carry them (a "qualified" QcSSCD signature, a station audit signer).
    match profile.key_origin {
        profiles::KeyOrigin::Any => {}
        profiles::KeyOrigin::Card => {
            return Err(StationError::invalid(
                "profile",
                format!(
                    "'{profile_name}' certifies keys generated on a holder's card: only the \
                     issuance job (`idstation issue`) issues it; ca issue certifies profiles with \
                     key_origin = \"any\""
                ),
            ))
        }
        profiles::KeyOrigin::Hsm => {
            return Err(StationError::invalid(
                "profile",
                format!(
                    "'{profile_name}' certifies keys the system generates in its HSM (`init`, \
                     `ca rotate`); ca issue certifies profiles with key_origin = \"any\""
                ),
            ))
        }
    }
    let (key, issuer) = crate::hierarchy::active_issuer(st, "esign")?;
    let spki = match source {
        KeySource::Csr(bytes) => ca::verify_csr(&bytes)?,
        KeySource::Spki(bytes) => ca::spki_from_der_or_pem(&bytes)?,
    };
    check_new_output("out", out)?;
    let cert = ca::issue(
        st.keys.as_ref(),
        &profile,
        &issuer,
        &spki,
        subject,
        SystemTime::now(),
    )?;
    let record = crate::hierarchy::cert_record(key.id, &cert.der, profile_name)?;
    {
        let tx = st.registry.transaction()?;
        tx.insert_certificate(&record)?;
        tx.audit(&AuditEntry {
            actor: session.actor(),
            action: "certificate.issued",
            object: &format!("certificate:{}", record.serial),
            details: &serde_json::json!({
                "profile": profile_name,
                "issuer_key": key.label,
                "subject": record.subject,
                "not_after": record.not_after,
            }),
        })?;
        crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
        tx.commit()?;
    }
    write_new(out, ca::cert_pem(&cert.der)?.as_bytes()).map_err(|e| StationError::io(out, e))?;
    Ok(IssueReport {
        serial: record.serial,
        profile: profile_name.into(),
        issuer_key: key.label,
        subject: record.subject,
        not_before: record.not_before,
        not_after: record.not_after,
        out: out.to_path_buf(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct CrlReport {
    pub issuer_key: String,
    pub crl_number: u64,
    pub revoked: usize,
    pub this_update: String,
    pub next_update: String,
    pub out: PathBuf,
}

/// `ca crl`: a CRL for one CA key (default: the active e-Signature CA key) listing every
/// certificate it issued that is revoked, with a CRL number one above the last one recorded
/// for that key. Published to the data dir (`crl/<label>.crl`) and written to `out`.
pub fn crl(
    st: &mut Station,
    session: &Session,
    key_label: Option<&str>,
    out: &Path,
) -> Result<CrlReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "publish CRLs",
        &[registry::Role::CaAdmin],
    )?;
    crl_as(st, session.actor(), key_label, out)
}

/// The CAs whose keys sign CRLs: each of their keys that is active, or retired and still has
/// unexpired certificates, publishes its own (a retired key lists what it issued).
pub const CRL_CAS: &[&str] = &["root", "esign", "csca"];

/// `ca crl` without `--key`: the CRL of every CA key that must publish one (see [`CRL_CAS`]),
/// each in the data dir (`crl/<label>.crl`); `out_dir` (created, private) also receives each as
/// `<label>.crl`. A revoked CA key signs nothing: the CRL of the key that certified it lists it.
pub fn crl_all(
    st: &mut Station,
    session: &Session,
    out_dir: Option<&Path>,
) -> Result<Vec<CrlReport>, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "publish CRLs",
        &[registry::Role::CaAdmin],
    )?;
    if st.config.centre.is_some() {
        return Err(StationError::NotPermitted(
            "this station is enrolled to the national centre, which holds the root, e-Signature and CSCA keys: their CRLs are published there".into(),
        ));
    }
    if let Some(d) = out_dir {
        check_new_output("out-dir", d)?;
        registry::files::create_dir_private(d).map_err(|e| StationError::io(d, e))?;
    }
    let now = crate::time_util::format_rfc3339(SystemTime::now());
    let mut labels = Vec::new();
    for ca_name in CRL_CAS {
        for key in st.registry.ca_keys(ca_name)? {
            let publish = match key.state {
                CaKeyState::Active => true,
                CaKeyState::Retired => st.registry.has_unexpired_certificates(key.id, &now)?,
                _ => false,
            };
            if publish && key.certificate.is_some() {
                labels.push(key.label);
            }
        }
    }
    let mut reports = Vec::new();
    for label in labels {
        let published = st.layout.crl(&label);
        let mut r = crl_as(st, session.actor(), Some(&label), &published)?;
        if let Some(d) = out_dir {
            let out = d.join(format!("{label}.crl"));
            let der = std::fs::read(&published).map_err(|e| StationError::io(&published, e))?;
            write_new(&out, &der).map_err(|e| StationError::io(&out, e))?;
            r.out = out;
        }
        reports.push(r);
    }
    Ok(reports)
}

/// [`crl`] on behalf of `actor` (also used by the CA revocation of `rotation`, which publishes
/// the root's CRL listing the revoked CA certificate).
pub(crate) fn crl_as(
    st: &mut Station,
    actor: &registry::Actor,
    key_label: Option<&str>,
    out: &Path,
) -> Result<CrlReport, StationError> {
    let key = match key_label {
        Some(label) => st.registry.ca_key_by_label(label)?.ok_or_else(|| {
            StationError::invalid(
                "key",
                format!("no CA key labelled {label:?} in the registry"),
            )
        })?,
        None => st
            .registry
            .active_ca_key("esign")?
            .ok_or_else(|| StationError::Other("no active esign CA key in the registry".into()))?,
    };
    if matches!(key.state, CaKeyState::Destroyed | CaKeyState::Generated) {
        return Err(StationError::invalid(
            "key",
            format!(
                "CA key {} is {}; only active, retired or revoked keys sign CRLs",
                key.label,
                key.state.as_str()
            ),
        ));
    }
    let der = key
        .certificate
        .as_deref()
        .ok_or_else(|| StationError::Other(format!("CA key {} has no certificate", key.label)))?;
    let issuer = ca::Issuer::new(st.keys.as_ref(), &key.label, der)?;
    let published = st.layout.crl(&key.label);
    if out != published {
        // Before a CRL number is spent: the operator's file is new, never overwritten.
        check_new_output("out", out)?;
    }
    let profile = st
        .profiles
        .crl(profiles::crl_profile_name(&key.ca))?
        .clone();
    let now = SystemTime::now();
    let revoked: Vec<ca::RevokedEntry> = st
        .registry
        .revoked_certificates(key.id)?
        .into_iter()
        .map(|c| revoked_entry(&c))
        .collect::<Result<_, _>>()?;
    let count = revoked.len();
    // Number, sign and record in one registry transaction: a CRL number is never handed out twice.
    let tx = st.registry.transaction()?;
    let number = tx.next_crl_number(key.id)?;
    let crl_der = ca::issue_crl(st.keys.as_ref(), &profile, &issuer, number, &revoked, now)?;
    let info = ca::CrlInfo::parse(&crl_der)?;
    tx.record_crl(
        key.id,
        number,
        &info.this_update,
        &info.next_update,
        &crl_der,
    )?;
    tx.audit(&AuditEntry {
        actor,
        action: "crl.published",
        object: &format!("ca-key:{}", key.label),
        details: &serde_json::json!({ "crl_number": number, "revoked": count, "next_update": info.next_update }),
    })?;
    // A CA admin's change is covered by an HSM-signed checkpoint in the same transaction.
    crate::audit::checkpoint_in(&tx, st.keys.as_ref(), &st.config.ca.audit_key)?;
    tx.commit()?;
    write_atomic(&published, &crl_der).map_err(|e| StationError::io(&published, e))?;
    if out != published {
        let bytes = if out.extension().is_some_and(|e| e == "pem") {
            ca::crl_pem(&crl_der)?.into_bytes()
        } else {
            crl_der
        };
        write_new(out, &bytes).map_err(|e| StationError::io(out, e))?;
    }
    Ok(CrlReport {
        issuer_key: key.label,
        crl_number: number,
        revoked: count,
        this_update: info.this_update,
        next_update: info.next_update,
        out: out.to_path_buf(),
    })
}

fn revoked_entry(c: &registry::Certificate) -> Result<ca::RevokedEntry, StationError> {
    let serial = hex::decode(&c.data.serial).map_err(|_| {
        StationError::Other(format!(
            "certificate {} has a malformed serial in the registry",
            c.id
        ))
    })?;
    let at = c.revoked_at.as_deref().ok_or_else(|| {
        StationError::Other(format!(
            "revoked certificate {} has no revocation time",
            c.id
        ))
    })?;
    let revoked_at = crate::time_util::parse_rfc3339(at).map_err(|e| {
        StationError::Other(format!("certificate {}: revocation time {at}: {e}", c.id))
    })?;
    // CRL times are whole seconds (RFC 5280 §5.1.2.4 UTCTime/GeneralizedTime without fractions):
    // a revocation in the same second as the CRL must not come out later than thisUpdate.
    let revoked_at = crate::time_util::floor_to_second(revoked_at);
    let reason = c
        .revocation_reason
        .as_deref()
        .and_then(ca::RevocationReason::from_rfc5280_name);
    Ok(ca::RevokedEntry {
        serial,
        revoked_at,
        reason,
    })
}
