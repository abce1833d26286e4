//! The centre's Station CA rollover as the station lives it (docs/centre.md "Station CA
//! rollover"): the Station CA certificates the centre uses now (`GET /v1/anchors`), each
//! accepted only when it is a CA certificate signed by the National Root this station recorded
//! at enrolment, named as the Station CA it enrolled under and valid now, and kept in
//! `DIR/centre/station-cas.pem` (0600, written atomically, never through a link); and the
//! renewal of the station's identity certificate under the active Station CA key for the same
//! HSM key (`POST /v1/identity/renew`, proved by the current mutual-TLS identity), kept only
//! after the centre accepted it. Every change and every refusal is audited.

use std::time::{Duration, Instant, SystemTime};

use centre_api::anchors::{
    Anchors, IdentityRenewRequest, IdentityRenewResponse, ANCHORS_PATH, IDENTITY_RENEW_PATH,
};
use der::{Decode, Encode};
use registry::{Actor, AuditEntry, Role};
use serde::Serialize;
use x509_cert::Certificate;

use super::files::{pem_to_der, CentreFiles};
use super::{CentreClient, IDENTITY_KEY};
use crate::error::StationError;
use crate::init_centre::CENTRE_ROOT;
use crate::session::Session;
use crate::Station;

/// How long a renewed identity may take to be accepted by the centre (its instances read new
/// Station CA keys every 2 s).
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(20);

/// What [`refresh`] found.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorUpdate {
    /// The Station CA keys the centre accepts now.
    pub centre_keys: Vec<String>,
    /// Those this station did not hold before and stored now.
    pub added: Vec<String>,
    /// The key the centre's TLS server certificate is under.
    pub server_issuer: String,
}

/// What [`renew_identity`] did.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityRenewal {
    pub serial: String,
    pub issuer: String,
    pub not_after: String,
    pub previous_serial: String,
    pub anchors: AnchorUpdate,
}

fn parse(field: &str, der: &[u8]) -> Result<Certificate, StationError> {
    Certificate::from_der(der)
        .map_err(|e| StationError::invalid(field, format!("is not a certificate: {e}")))
}

fn is_ca(c: &Certificate) -> bool {
    use x509_cert::ext::pkix::BasicConstraints;
    matches!(
        c.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

fn valid_now(c: &Certificate) -> bool {
    let v = c.tbs_certificate().validity();
    let now = SystemTime::now();
    v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time()
}

/// A Station CA certificate (PEM) the centre sent, as DER, when it is a CA certificate signed
/// by `root`, with the subject of `enrolled` (the Station CA of enrolment) and valid now.
pub fn check_station_ca(
    root: &[u8],
    enrolled: &[u8],
    label: &str,
    pem: &str,
) -> Result<Vec<u8>, StationError> {
    let field = format!("anchors.station_cas[{label}]");
    let der = pem_to_der(&field, pem)?;
    let refuse = |rule: &str| {
        Err(StationError::invalid(
            field.clone(),
            format!("{rule}: refused, nothing stored"),
        ))
    };
    if !ca::issued_by(&der, root)? {
        return refuse("is not signed by the National Root this station trusts (centre-root-ca)");
    }
    let (c, e) = (
        parse(&field, &der)?,
        parse("centre/station-ca.pem", enrolled)?,
    );
    if c.tbs_certificate().subject() != e.tbs_certificate().subject() {
        return refuse("is not named as the Station CA this station enrolled under");
    }
    if !is_ca(&c) {
        return refuse("is not a CA certificate (basicConstraints cA)");
    }
    if !valid_now(&c) {
        return refuse("is not valid now");
    }
    Ok(der)
}

/// The National Root recorded at enrolment.
fn trusted_root(st: &Station) -> Result<Vec<u8>, StationError> {
    st.registry
        .ca_key_by_label(CENTRE_ROOT)?
        .and_then(|k| k.certificate)
        .ok_or_else(|| {
            StationError::invalid(
                CENTRE_ROOT,
                "this station has no National Root recorded (enrolment did not finish)",
            )
        })
}

/// Append `action` to the station's audit log; a failure to audit is the error.
fn audit(
    st: &mut Station,
    actor: &Actor,
    action: &str,
    details: serde_json::Value,
) -> Result<(), StationError> {
    let object = format!("centre:{}", st.config.station.name);
    st.registry.audit(&AuditEntry {
        actor,
        action,
        object: &object,
        details: &details,
    })?;
    Ok(())
}

/// `err`, audited as a refusal of `what` (a failure to audit is logged, never put in its place).
fn refused(st: &mut Station, actor: &Actor, what: &str, err: StationError) -> StationError {
    let details = serde_json::json!({ "what": what, "reason": err.to_string() });
    if let Err(e) = audit(st, actor, "centre.rollover-refused", details) {
        tracing::error!(error = %e, "could not audit a refused rollover step");
    }
    err
}

/// Ask the centre for its Station CA keys and keep those that check ([`check_station_ca`]);
/// one that does not is refused (audited) and nothing is stored.
pub fn refresh(
    st: &mut Station,
    client: &CentreClient,
    actor: &Actor,
) -> Result<AnchorUpdate, StationError> {
    let a: Anchors = client.get(ANCHORS_PATH)?;
    match checked(st, &a) {
        Ok(keys) => store(st, actor, &a, keys),
        Err(e) => Err(refused(st, actor, "anchors", e)),
    }
}

/// The centre's Station CA keys, checked: (label, DER).
fn checked(st: &Station, a: &Anchors) -> Result<Vec<(String, Vec<u8>)>, StationError> {
    let root = trusted_root(st)?;
    let enrolled = CentreFiles::new(&st.layout.root).read_station_ca()?;
    a.station_cas
        .iter()
        .map(|k| {
            Ok((
                k.label.clone(),
                check_station_ca(&root, &enrolled, &k.label, &k.cert)?,
            ))
        })
        .collect()
}

/// Write `keys` (but the one of enrolment, kept in its own file) to `station-cas.pem` when the
/// station does not hold each of them already; audit what was added.
fn store(
    st: &mut Station,
    actor: &Actor,
    a: &Anchors,
    keys: Vec<(String, Vec<u8>)>,
) -> Result<AnchorUpdate, StationError> {
    let files = CentreFiles::new(&st.layout.root);
    let mut held = files.read_all_station_cas()?;
    let added: Vec<&(String, Vec<u8>)> = keys.iter().filter(|(_, d)| !held.contains(d)).collect();
    let update = AnchorUpdate {
        centre_keys: keys.iter().map(|(l, _)| l.clone()).collect(),
        added: added.iter().map(|(l, _)| l.clone()).collect(),
        server_issuer: a.server_issuer.clone(),
    };
    if added.is_empty() {
        return Ok(update);
    }
    let fingerprints: Vec<String> = added
        .iter()
        .map(|(_, d)| ca::fingerprint_sha256(d))
        .collect::<Result<_, _>>()?;
    held.extend(added.iter().map(|(_, d)| d.clone()));
    let mut pem = String::new();
    for der in &held[1..] {
        pem += &ca::cert_pem(der)?;
    }
    let path = files.station_cas();
    crate::datadir::write_atomic(&path, pem.as_bytes()).map_err(|e| StationError::io(&path, e))?;
    let details = serde_json::json!({ "added": update.added, "certificate_sha256": fingerprints,
        "centre_keys": update.centre_keys, "server_issuer": update.server_issuer });
    audit(st, actor, "centre.anchors-updated", details)?;
    Ok(update)
}

/// The renewed certificate, DER, when it certifies this station's identity key and is issued
/// by a Station CA key this station holds.
fn check_identity(st: &Station, r: &IdentityRenewResponse) -> Result<Vec<u8>, StationError> {
    let der = pem_to_der("identity_cert", &r.identity_cert)?;
    let c = parse("identity_cert", &der)?;
    let spki = c
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| StationError::invalid("identity_cert", e.to_string()))?;
    if spki != st.keys.public_key_spki(IDENTITY_KEY)? {
        return Err(StationError::invalid(
            "identity_cert",
            format!("does not certify this station's identity key {IDENTITY_KEY}: refused"),
        ));
    }
    let anchors = CentreFiles::new(&st.layout.root).read_all_station_cas()?;
    if !anchors
        .iter()
        .any(|a| ca::issued_by(&der, a).unwrap_or(false))
    {
        return Err(StationError::invalid(
            "identity_cert",
            format!(
                "is not issued by a Station CA key this station holds ({}): refused",
                r.issuer
            ),
        ));
    }
    Ok(der)
}

/// Wait until the centre accepts `identity` (`GET /v1/whoami` with it), up to
/// [`CONFIRM_WITHIN`]: an instance reads new Station CA keys every 2 s.
fn confirm(st: &Station, identity: &[u8]) -> Result<(), StationError> {
    let client = CentreClient::for_station_as(st, identity.to_vec())?;
    let deadline = Instant::now() + CONFIRM_WITHIN;
    loop {
        match client.get::<centre_api::WhoAmI>(centre_api::paths::WHOAMI) {
            Ok(_) => return Ok(()),
            Err(StationError::CentreUnreachable { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `idstation centre renew-identity` (ca-admin): the anchors first ([`refresh`]), then a new
/// identity certificate for the same HSM key under the centre's active Station CA, checked,
/// confirmed by the centre, and only then written over `identity-1.pem` (atomically, 0600).
/// Until then the station keeps the certificate it has, which the centre still accepts.
pub fn renew_identity(
    st: &mut Station,
    session: &Session,
) -> Result<IdentityRenewal, StationError> {
    let action = "renew the centre identity";
    crate::session::require_current(&mut st.registry, session, action, &[Role::CaAdmin])?;
    let actor = session.actor().clone();
    let client = CentreClient::for_station(st)?;
    let anchors = refresh(st, &client, &actor)?;
    let csr = ca::csr_for_hsm_key(st.keys.as_ref(), IDENTITY_KEY, &st.config.station.name)?;
    let req = IdentityRenewRequest {
        operator: session.operator().to_owned(),
        identity_csr: hex::encode(csr),
    };
    let r: IdentityRenewResponse = client.post(IDENTITY_RENEW_PATH, &req)?;
    let der = match check_identity(st, &r).and_then(|d| confirm(st, &d).map(|()| d)) {
        Ok(d) => d,
        Err(e) => return Err(refused(st, &actor, "identity", e)),
    };
    keep_identity(st, &actor, &r, &der, anchors)
}

/// Write the confirmed identity certificate and audit it.
fn keep_identity(
    st: &mut Station,
    actor: &Actor,
    r: &IdentityRenewResponse,
    der: &[u8],
    anchors: AnchorUpdate,
) -> Result<IdentityRenewal, StationError> {
    let path = CentreFiles::new(&st.layout.root).identity();
    crate::datadir::write_atomic(&path, ca::cert_pem(der)?.as_bytes())
        .map_err(|e| StationError::io(&path, e))?;
    let info = ca::CertInfo::parse(der)?;
    let details = serde_json::json!({ "serial": info.serial_hex, "issuer": r.issuer,
        "certificate_sha256": ca::fingerprint_sha256(der)?, "previous_serial": r.previous_serial,
        "not_after": info.not_after });
    audit(st, actor, "centre.identity-renewed", details)?;
    Ok(IdentityRenewal {
        serial: info.serial_hex,
        issuer: r.issuer.clone(),
        not_after: info.not_after,
        previous_serial: r.previous_serial.clone(),
        anchors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root, a Station CA under it named as the profile names it, and one under another root.
    fn world() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        use hsm::KeyStore;
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
            .expect("run through cargo: the runner sets SOFTHSM2_CONF");
        std::fs::create_dir_all(&dir).unwrap();
        let pin = "anchors-test-pin-1";
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, "anchors", "so-pin-1234", pin)
            .expect("a test token");
        let store = token.open(zeroize::Zeroizing::new(pin.to_owned())).unwrap();
        for label in ["root-1", "root-x", "s-1", "s-2", "s-x"] {
            store.generate_p256(label).unwrap();
        }
        let p = profiles::builtin().unwrap();
        let now = SystemTime::now();
        let root = ca::create_root(&store, p.cert("root-ca").unwrap(), "root-1", now).unwrap();
        let other = ca::create_root(&store, p.cert("root-ca").unwrap(), "root-x", now).unwrap();
        let sub = |parent: &ca::Issuer, label: &str| {
            ca::create_subordinate_ca(&store, p.cert("station-ca").unwrap(), parent, label, now)
                .unwrap()
                .cert_der()
                .to_vec()
        };
        let (ca1, ca2, forged) = (sub(&root, "s-1"), sub(&root, "s-2"), sub(&other, "s-x"));
        (root.cert_der().to_vec(), ca1, ca2, forged)
    }

    #[test]
    fn a_station_ca_is_accepted_only_when_the_trusted_root_signed_it() {
        let (root, enrolled, next, forged) = world();
        let pem = |d: &[u8]| ca::cert_pem(d).unwrap();
        assert_eq!(
            check_station_ca(&root, &enrolled, "station-ca-2", &pem(&next)).unwrap(),
            next
        );
        let e = check_station_ca(&root, &enrolled, "station-ca-2", &pem(&forged))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("anchors.station_cas[station-ca-2]")
                && e.contains("not signed by the National Root"),
            "{e}"
        );
        // One byte of the signature changed.
        let mut tampered = next.clone();
        let last = tampered.len() - 3;
        tampered[last] ^= 1;
        let e = check_station_ca(&root, &enrolled, "station-ca-2", &pem(&tampered))
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused"), "{e}");
        // The root itself is a CA signed by the root, but not named as the Station CA.
        let e = check_station_ca(&root, &enrolled, "root", &pem(&root))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not named as the Station CA"), "{e}");
    }
}
