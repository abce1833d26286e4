//! `idstation init --centre URL`: a station that issues under the national centre's CAs
//! (docs/station.md "Enrolment", docs/centre.md `POST /v1/enrol`).
//!
//! Like the standalone ceremony (`init`): checks first, then the private SoftHSM2 token, the
//! registry and `station.toml` last. The station's HSM holds its own keys only — identity
//! (`identity-1`, the TLS client key), audit (`audit-1`), Document Signer (`ds-1`) and the card
//! master secret (`card-master-1`); no root, e-Signature or CSCA key. The centre certifies the
//! three P-256 keys from CSRs signed in the HSM and answers with its CA certificates, which
//! the registry records as CA keys without a private key here.
//!
//! The enrolment code works once. Everything that can fail locally is done before the call
//! (token, keys, CSRs, the registry file with the ca-admins), and is removed again if the call
//! fails. Once the centre has answered, its answer is written first thing to
//! `DIR/centre/enrolment.json` (0600) and nothing is removed any more: if a later local step
//! fails, running the same command again finishes from that file without asking the centre.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hsm::pkcs11::{Pkcs11Store, SoftHsm2Token};
use hsm::{KeyStore, SecretSource};
use registry::{Actor, AuditEntry, CaKeyState, Registry, Role};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::centre::client::{parse_url, ServerAuth};
use crate::centre::files::{pem_to_der, CentreFiles};
use crate::centre::pin::Fingerprint;
use crate::centre::{CentreClient, IDENTITY_KEY};
use crate::config::{CentreSection, StationSection};
use crate::datadir::{write_atomic, Layout};
use crate::error::StationError;
use crate::hierarchy::{CaSummary, AUDIT_KEY, CARD_MASTER_KEY, CSCA_CA, DS_CA, DS_KEY};
use crate::init::{self, Ceremony, Undo, TOKEN_LABEL};

/// Registry labels of the centre's CA certificates (no private key in this station's HSM:
/// nothing signs with them here).
pub const CENTRE_ROOT: &str = "centre-root-ca";
pub const CENTRE_ESIGN: &str = "centre-esign-ca";
pub const CENTRE_CSCA: &str = "centre-csca";

/// Everything `init --centre` needs. Secrets arrive in zeroizing buffers, never from argv.
pub struct CentreInitOptions {
    /// `https://HOST[:PORT]` of `idcentral serve`.
    pub url: String,
    /// Other instances of the same centre (station.toml `[centre] other_urls`).
    pub other_urls: Vec<String>,
    /// The SHA-256 of the centre's TLS certificate, as `idcentral serve` prints it.
    pub fingerprint: String,
    /// The one-time enrolment code of `idcentral station add`.
    pub enrolment_code: Zeroizing<String>,
    /// The station's name at the centre (`idcentral station add --station`).
    pub station_name: String,
    pub admin_name: String,
    pub admin_password: Zeroizing<String>,
    pub second_admin: Option<(String, Zeroizing<String>)>,
    pub hsm_pin: Option<SecretSource>,
    pub hsm_so_pin: Option<Zeroizing<String>>,
    pub module: PathBuf,
    pub softhsm_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CentreInitReport {
    pub data_dir: PathBuf,
    pub centre: String,
    pub centre_fingerprint_sha256: String,
    pub station: String,
    pub office: String,
    pub hsm_token: String,
    pub admin: String,
    pub identity_subject: String,
    pub identity_not_after: String,
    pub number_block: centre_api::NumberBlock,
    pub cas: Vec<CaSummary>,
    pub hsm_pin_file: PathBuf,
    pub hsm_pin_generated: bool,
    /// This run finished an enrolment an earlier run had received (from `enrolment.json`).
    pub resumed: bool,
}

/// What `DIR/centre/enrolment.json` holds between the centre's answer and the end of init.
#[derive(Serialize, Deserialize)]
struct Pending {
    url: String,
    fingerprint_sha256: String,
    /// `centre_api::EnrolResponse`, kept as received: written before it is parsed, so that
    /// an answer this station cannot read is not lost either.
    answer: serde_json::Value,
}

pub fn init_centre(
    data_dir: &Path,
    opts: &CentreInitOptions,
) -> Result<CentreInitReport, StationError> {
    let layout = Layout::new(data_dir);
    let files = CentreFiles::new(data_dir);
    if !layout.config().exists() && files.pending_enrolment().is_file() {
        return resume(data_dir, &layout, &files, opts);
    }
    // 1. Checks without side effects.
    init::check_target(data_dir, &layout)?;
    parse_url(&opts.url)?;
    for u in &opts.other_urls {
        parse_url(u)?;
    }
    let fingerprint = Fingerprint::parse("centre-fingerprint", &opts.fingerprint)?;
    check_code(&opts.enrolment_code)?;
    let checked = init::check_ceremony(data_dir, &ceremony(opts))?;

    // 2. Local side effects, undone unless the centre answered.
    let mut undo = Undo::for_data_dir(data_dir);
    init::make_dirs(data_dir, &layout, &mut undo)?;
    undo.paths.push(files.dir.clone());
    registry::files::create_dir_private(&files.dir).map_err(|e| StationError::io(&files.dir, e))?;
    if checked.pin_generated {
        init::write_generated_pin(&layout, &checked, &mut undo)?;
    }
    let so_pin = match &opts.hsm_so_pin {
        Some(p) => p.clone(),
        None => init::random_pin("SO PIN")?,
    };
    let softhsm_dir = opts.softhsm_dir.clone().unwrap_or_else(|| layout.hsm_dir());
    let token = SoftHsm2Token::create(&softhsm_dir, TOKEN_LABEL, &so_pin, &checked.user_pin)?;
    drop(so_pin);
    let store = Pkcs11Store::open(
        &token.module,
        &token.env,
        TOKEN_LABEL,
        checked.user_pin.clone(),
    )?;
    for label in [IDENTITY_KEY, AUDIT_KEY, DS_KEY] {
        store.generate_p256(label)?;
    }
    store.generate_hmac_secret(CARD_MASTER_KEY)?;
    let csr = |label: &str| -> Result<String, StationError> {
        Ok(hex::encode(ca::csr_for_hsm_key(
            &store,
            label,
            &opts.station_name,
        )?))
    };
    let mut request = centre_api::EnrolRequest {
        station: opts.station_name.clone(),
        enrolment_code: opts.enrolment_code.to_string(),
        identity_csr: csr(IDENTITY_KEY)?,
        audit_csr: csr(AUDIT_KEY)?,
        document_signer_csr: csr(DS_KEY)?,
    };
    create_registry(&layout, &mut undo, opts, &checked)?;

    // 3. The call: the server is the one whose certificate has the typed fingerprint, or
    //    nothing is sent.
    let client = CentreClient::new(
        &opts.url,
        ServerAuth::Fingerprint(fingerprint.clone()),
        None,
        Duration::from_secs(CentreSection::DEFAULT_REQUEST_TIMEOUT_SECONDS),
    )?;
    let answer: serde_json::Value = {
        let r = client.post(centre_api::paths::ENROL, &request);
        zeroize::Zeroize::zeroize(&mut request.enrolment_code);
        r?
    };

    // 4. The centre has spent the code: keep everything, and the answer first.
    undo.armed = false;
    let pending = Pending {
        url: opts.url.clone(),
        fingerprint_sha256: fingerprint.to_string(),
        answer,
    };
    let json = serde_json::to_vec_pretty(&pending)
        .map_err(|e| StationError::Other(format!("enrolment answer: {e}")))?;
    registry::files::write_new_synced(&files.pending_enrolment(), &json)
        .map_err(|e| StationError::io(&files.pending_enrolment(), e))?;
    crate::failpoint::hit("init-centre.answer-saved");
    let pin_source = checked.pin_source.clone();
    finish(
        data_dir,
        &layout,
        &files,
        &store,
        &token,
        opts,
        &pending,
        pin_source,
        checked.pin_generated,
        false,
    )
    .map_err(|e| after_answer(&files, e))
}

/// A failure after the centre answered: what happened, and how to finish.
fn after_answer(files: &CentreFiles, e: StationError) -> StationError {
    StationError::Other(format!(
        "{e}; the centre accepted the enrolment (the code is spent) and its answer is kept in \
         {}: fix the cause and run the same `idstation init --centre ...` again to finish \
         (the centre is not asked again)",
        files.pending_enrolment().display()
    ))
}

/// A second run after the centre answered: open the token made then, check the admin's
/// password against the registry made then, and finish from `enrolment.json`.
fn resume(
    data_dir: &Path,
    layout: &Layout,
    files: &CentreFiles,
    opts: &CentreInitOptions,
) -> Result<CentreInitReport, StationError> {
    let path = files.pending_enrolment();
    crate::datadir::check_secret_file(&path)?;
    let text = std::fs::read(&path).map_err(|e| StationError::io(&path, e))?;
    let pending: Pending = serde_json::from_slice(&text).map_err(|e| {
        StationError::invalid(path.display().to_string(), format!("does not parse: {e}"))
    })?;
    let station = pending.answer.get("station").and_then(|s| s.as_str());
    if station != Some(opts.station_name.as_str()) {
        return Err(StationError::invalid(
            "station",
            format!(
                "{:?}: the pending enrolment in {} is for station {:?}",
                opts.station_name,
                path.display(),
                station.unwrap_or_default()
            ),
        ));
    }
    let (pin_source, pin_generated) = match &opts.hsm_pin {
        Some(s) => (s.clone(), false),
        None => {
            let root = std::path::absolute(data_dir).map_err(|e| StationError::io(data_dir, e))?;
            (SecretSource::File(Layout::new(&root).hsm_pin_file()), true)
        }
    };
    let SecretSource::File(pin_file) = &pin_source;
    crate::datadir::check_secret_file(pin_file)?;
    let softhsm_dir = opts.softhsm_dir.clone().unwrap_or_else(|| layout.hsm_dir());
    let token = SoftHsm2Token::at(&softhsm_dir, TOKEN_LABEL);
    let store = token.open(pin_source.read()?)?;
    let mut reg = Registry::open(layout.registry())?;
    crate::session::authorize(
        &mut reg,
        &opts.station_name,
        &opts.admin_name,
        &opts.admin_password,
        "station.enrol",
        &[Role::CaAdmin],
    )?;
    drop(reg);
    finish(
        data_dir,
        layout,
        files,
        &store,
        &token,
        opts,
        &pending,
        pin_source,
        pin_generated,
        true,
    )
    .map_err(|e| after_answer(files, e))
}

fn ceremony(opts: &CentreInitOptions) -> Ceremony<'_> {
    Ceremony {
        station_name: &opts.station_name,
        admin_name: &opts.admin_name,
        admin_password: &opts.admin_password,
        second_admin: &opts.second_admin,
        hsm_pin: &opts.hsm_pin,
        module: &opts.module,
    }
}

/// The code's shape (Crockford base32 in groups; `idcentral` normalises case, spaces and
/// O/I/L). The message never repeats the code.
fn check_code(code: &str) -> Result<(), StationError> {
    let ok = !code.trim().is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(StationError::invalid(
            "enrolment-code",
            "must be the code `idcentral station add` printed: 25 letters and digits in groups \
             of five, separated by '-' (the code is not repeated here)",
        ))
    }
}

/// The registry file with the ca-admins, before the call (so that a failure to create it
/// cannot spend the code).
fn create_registry(
    layout: &Layout,
    undo: &mut Undo,
    opts: &CentreInitOptions,
    checked: &init::Checked,
) -> Result<(), StationError> {
    undo.paths.push(layout.registry());
    for suffix in ["-wal", "-shm", "-journal"] {
        undo.paths.push(PathBuf::from(format!(
            "{}{suffix}",
            layout.registry().display()
        )));
    }
    registry::files::create_new(&layout.registry())
        .map_err(|e| StationError::io(&layout.registry(), e))?;
    let mut reg = Registry::open(layout.registry())?;
    let tx = reg.transaction()?;
    tx.add_operator(&opts.admin_name, Role::CaAdmin, &checked.admin_hash, None)?;
    if let Some((name, hash)) = &checked.second {
        tx.add_operator(name, Role::CaAdmin, hash, None)?;
    }
    tx.commit()?;
    Ok(())
}

/// One certificate of the answer.
struct Cert {
    label: &'static str,
    ca: &'static str,
    role: &'static str,
    der: Vec<u8>,
}

/// The centre's answer, checked: its certificates (DER) and the number block.
struct Answer {
    a: centre_api::EnrolResponse,
    identity: Vec<u8>,
    station_ca: Vec<u8>,
    /// Root, e-Signature CA, audit signer, CSCA, Document Signer, in that order.
    certs: [Cert; 5],
}

/// Parse and check the answer saved in `pending`: it names this station, its certificates
/// parse and certify the keys this station sent.
fn read_answer(
    pending: &Pending,
    opts: &CentreInitOptions,
    store: &Pkcs11Store,
) -> Result<Answer, StationError> {
    let a: centre_api::EnrolResponse =
        serde_json::from_value(pending.answer.clone()).map_err(|e| {
            StationError::invalid(
                "enrolment answer",
                format!("does not parse: {e} (is the centre older or newer than this station?)"),
            )
        })?;
    if a.station != opts.station_name {
        return Err(StationError::invalid(
            "enrolment answer",
            format!(
                "names station {:?}, but this station enrolled as {:?}",
                a.station, opts.station_name
            ),
        ));
    }
    registry::validate::office("office", &a.office)?;
    registry::validate::series("number_block.series", &a.number_block.series)?;
    let pem = |field: &str, text: &str| pem_to_der(&format!("enrolment answer: {field}"), text);
    let cert = |label, ca, role, field: &str, text: &str| -> Result<Cert, StationError> {
        Ok(Cert {
            label,
            ca,
            role,
            der: pem(field, text)?,
        })
    };
    let t = &a.trust_anchors;
    let certs = [
        cert(CENTRE_ROOT, "root", "root", "trust_anchors.root", &t.root)?,
        cert(
            CENTRE_ESIGN,
            "esign",
            "issuing",
            "trust_anchors.esign",
            &t.esign,
        )?,
        cert(
            AUDIT_KEY,
            "audit",
            "audit-signing",
            "audit_cert",
            &a.audit_cert,
        )?,
        cert(CENTRE_CSCA, CSCA_CA, "csca", "trust_anchors.csca", &t.csca)?,
        cert(
            DS_KEY,
            DS_CA,
            "document-signing",
            "document_signer_cert",
            &a.document_signer_cert,
        )?,
    ];
    let identity = pem("identity_cert", &a.identity_cert)?;
    let station_ca = pem("trust_anchors.station_ca", &t.station_ca)?;
    // The centre certified the keys this station sent.
    for (label, der) in [
        (IDENTITY_KEY, &identity),
        (AUDIT_KEY, &certs[2].der),
        (DS_KEY, &certs[4].der),
    ] {
        if spki_of(der)? != store.public_key_spki(label)? {
            return Err(StationError::invalid(
                "enrolment answer",
                format!("the certificate for {label} does not certify this station's key {label}"),
            ));
        }
    }
    Ok(Answer {
        a,
        identity,
        station_ca,
        certs,
    })
}

/// The Station CA anchor, the identity certificate and the CA certificates as PEM files.
fn write_cert_files(
    files: &CentreFiles,
    layout: &Layout,
    ans: &Answer,
) -> Result<(), StationError> {
    write_atomic(
        &files.station_ca(),
        ca::cert_pem(&ans.station_ca)?.as_bytes(),
    )
    .map_err(|e| StationError::io(&files.station_ca(), e))?;
    write_atomic(&files.identity(), ca::cert_pem(&ans.identity)?.as_bytes())
        .map_err(|e| StationError::io(&files.identity(), e))?;
    for c in &ans.certs {
        let path = layout.ca_cert(c.label);
        write_atomic(&path, ca::cert_pem(&c.der)?.as_bytes())
            .map_err(|e| StationError::io(&path, e))?;
    }
    Ok(())
}

/// The CAs, the station's certificates, the number block and the audit event, in one
/// transaction (skipped when an earlier run committed it).
fn record_enrolment(
    layout: &Layout,
    opts: &CentreInitOptions,
    pending: &Pending,
    ans: &Answer,
    resumed: bool,
) -> Result<Registry, StationError> {
    let (a, certs) = (&ans.a, &ans.certs);
    let mut reg = Registry::open(layout.registry())?;
    if reg.ca_key_by_label(CENTRE_ROOT)?.is_some() {
        return Ok(reg);
    }
    let first_number = a.number_block.next.max(a.number_block.first);
    let actor = Actor::new(&opts.admin_name, Role::CaAdmin.as_str(), &a.station);
    let tx = reg.transaction()?;
    let mut ids = Vec::new();
    for c in certs {
        let note = if c.label.starts_with("centre-") {
            "the national centre's CA (enrolment): no private key in this station's HSM"
        } else {
            "certified by the national centre at enrolment"
        };
        let id = tx.insert_ca_key(c.label, c.ca, c.role, &spki_of(&c.der)?, &actor)?;
        tx.set_ca_key_certificate(id, &c.der)?;
        tx.set_ca_key_state(id, CaKeyState::Active, &actor, &[], Some(note))?;
        ids.push(id);
    }
    // What the centre's CAs issued that this station holds: the e-Signature CA and the
    // audit signer under the root, the Document Signer under the CSCA.
    for (issuer, issued) in [(0, 1), (0, 2), (3, 4)] {
        tx.insert_certificate(&crate::hierarchy::cert_record(
            ids[issuer],
            &certs[issued].der,
            certs[issued].ca,
        )?)?;
    }
    if first_number <= a.number_block.last {
        tx.add_number_block(
            &a.office,
            &a.number_block.series,
            first_number,
            a.number_block.last,
        )?;
    }
    tx.audit(&AuditEntry {
        actor: &actor,
        action: "station.enrolled",
        object: &format!("station:{}", a.station),
        details: &serde_json::json!({
            "centre": pending.url,
            "centre_tls_fingerprint_sha256": pending.fingerprint_sha256,
            "office": a.office,
            "hsm_token": TOKEN_LABEL,
            "identity_certificate_sha256": ca::fingerprint_sha256(&ans.identity)?,
            "keys": certs.iter().map(|c| serde_json::json!({
                "label": c.label, "ca": c.ca,
                "certificate_sha256": ca::fingerprint_sha256(&c.der).unwrap_or_default(),
            })).collect::<Vec<_>>(),
            "number_block": a.number_block,
            "card_master_key": CARD_MASTER_KEY,
            "ca_admins": std::iter::once(opts.admin_name.as_str())
                .chain(opts.second_admin.as_ref().map(|(n, _)| n.as_str()))
                .collect::<Vec<_>>(),
            "resumed": resumed,
        }),
    })?;
    tx.commit()?;
    Ok(reg)
}

/// The local step after the answer: check it, write the certificate files, record the CAs,
/// the station's certificates and the number block in one transaction (skipped when an earlier
/// run committed it), station.toml, and the pending answer removed last.
#[allow(clippy::too_many_arguments)]
fn finish(
    data_dir: &Path,
    layout: &Layout,
    files: &CentreFiles,
    store: &Pkcs11Store,
    token: &SoftHsm2Token,
    opts: &CentreInitOptions,
    pending: &Pending,
    pin_source: SecretSource,
    pin_generated: bool,
    resumed: bool,
) -> Result<CentreInitReport, StationError> {
    let ans = read_answer(pending, opts, store)?;
    write_cert_files(files, layout, &ans)?;
    let reg = record_enrolment(layout, opts, pending, &ans, resumed)?;
    let a = &ans.a;
    init::write_station_config(
        data_dir,
        layout,
        StationSection {
            name: a.station.clone(),
            office: a.office.clone(),
        },
        &pin_source,
        token,
        Some(CentreSection {
            url: pending.url.clone(),
            other_urls: opts.other_urls.clone(),
            fingerprint_sha256: pending.fingerprint_sha256.clone(),
            request_timeout_seconds: CentreSection::DEFAULT_REQUEST_TIMEOUT_SECONDS,
            sync_every_seconds: CentreSection::DEFAULT_SYNC_EVERY_SECONDS,
            renew_document_signer_days: CentreSection::DEFAULT_RENEW_DOCUMENT_SIGNER_DAYS,
        }),
    )?;
    let _ = std::fs::remove_file(files.pending_enrolment());

    let info = ca::CertInfo::parse(&ans.identity)?;
    let cas = crate::hierarchy::summaries(&reg, layout)?;
    let SecretSource::File(pin_file) = pin_source;
    Ok(CentreInitReport {
        data_dir: data_dir.to_path_buf(),
        centre: pending.url.clone(),
        centre_fingerprint_sha256: pending.fingerprint_sha256.clone(),
        station: a.station.clone(),
        office: a.office.clone(),
        hsm_token: TOKEN_LABEL.into(),
        admin: opts.admin_name.clone(),
        identity_subject: info.subject,
        identity_not_after: info.not_after,
        number_block: a.number_block.clone(),
        cas,
        hsm_pin_file: pin_file,
        hsm_pin_generated: pin_generated,
        resumed,
    })
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, StationError> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(|e| {
        StationError::invalid(
            "enrolment answer",
            format!("a certificate does not parse: {e}"),
        )
    })?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| StationError::Other(format!("public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolment_code_of_the_wrong_shape_is_refused_without_repeating_it() {
        check_code("7K2QD-ABCDE-FGHJK-MNPQR-STVWX").unwrap();
        check_code("7k2qd abcde fghjk mnpqr stvwx").unwrap();
        for bad in ["", "   ", "secret;code", &"A".repeat(65)] {
            let e = check_code(bad).unwrap_err().to_string();
            assert!(e.contains("enrolment-code"), "{e}");
            if bad.len() > 3 {
                assert!(!e.contains(bad.trim()), "{e}");
            }
        }
    }
}
