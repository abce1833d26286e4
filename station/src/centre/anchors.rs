//! The centre's Station CA and National Root rollovers as the station lives them (docs/centre.md
//! "Station CA rollover", "National Root rollover"): a new National Root is learnt (recorded in
//! the registry as the active root) only through a NewWithOld link certificate (RFC 4210
//! §4.4.1) signed by a root this station already trusts; the Station CA certificates the
//! centre uses now (`GET /v1/anchors`) are each accepted only when it is a CA certificate signed
//! by a trusted root (directly, or through a link certificate a trusted root signed), named as
//! the Station CA it enrolled under and valid now, and kept in
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
    /// SHA-256 fingerprints of the Station CA certificates dropped now (the centre no longer
    /// accepts their key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The key the centre's TLS server certificate is under.
    pub server_issuer: String,
    /// National Root keys learnt now (through their NewWithOld link).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roots_learnt: Vec<String>,
    /// CSCA keys this station stopped trusting now: the centre withdrew them from its Master
    /// List ([`withdraw_cscas`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cscas_withdrawn: Vec<String>,
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

pub(crate) fn signed_by_any(der: &[u8], trust: &[Vec<u8>]) -> bool {
    trust.iter().any(|t| ca::issued_by(der, t).unwrap_or(false))
}

/// A Station CA certificate (PEM) the centre sent, as DER, when it is a CA certificate signed
/// by one of `trust` (the trusted roots and the link certificates they signed), with the
/// subject of `enrolled` (the Station CA of enrolment) and valid now.
pub fn check_station_ca(
    trust: &[Vec<u8>],
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
    if !signed_by_any(&der, trust) {
        return refuse("is not signed by a National Root this station trusts");
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

/// Every National Root the registry holds (the one of enrolment and those learnt since).
fn trusted_roots(st: &Station) -> Result<Vec<Vec<u8>>, StationError> {
    let roots: Vec<Vec<u8>> = st
        .registry
        .ca_keys("root")?
        .into_iter()
        .filter_map(|k| k.certificate)
        .collect();
    if roots.is_empty() {
        return Err(StationError::invalid(
            "centre-root-ca",
            "this station has no National Root recorded (enrolment did not finish)",
        ));
    }
    Ok(roots)
}

fn spki(field: &str, c: &Certificate) -> Result<Vec<u8>, StationError> {
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| StationError::invalid(field, e.to_string()))
}

/// A new National Root (DER) is accepted when `link` (its NewWithOld link certificate) is
/// signed by one of `trusted` and certifies the same key and name, and the root is self-signed
/// and valid now.
pub fn check_new_root(
    trusted: &[Vec<u8>],
    label: &str,
    link: &[u8],
    root: &[u8],
) -> Result<(), StationError> {
    let field = format!("anchors.roots[{label}]");
    let refuse = |rule: &str| {
        Err(StationError::invalid(
            field.clone(),
            format!("{rule}: refused, nothing stored"),
        ))
    };
    let (l, r) = (parse(&field, link)?, parse(&field, root)?);
    if !signed_by_any(link, trusted) {
        return refuse(
            "its new-with-old link certificate is not signed by a National Root this station trusts",
        );
    }
    let same_name = l.tbs_certificate().subject() == r.tbs_certificate().subject();
    if spki(&field, &l)? != spki(&field, &r)? || !same_name {
        return refuse("its new-with-old link certificate certifies another key or name");
    }
    if !ca::issued_by(root, root)? || !is_ca(&r) || !valid_now(&r) {
        return refuse("is not a self-signed CA certificate valid now");
    }
    Ok(())
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
pub(crate) fn refused(
    st: &mut Station,
    actor: &Actor,
    what: &str,
    err: StationError,
) -> StationError {
    let details = serde_json::json!({ "what": what, "reason": err.to_string() });
    if let Err(e) = audit(st, actor, "centre.rollover-refused", details) {
        tracing::error!(error = %e, "could not audit a refused rollover step");
    }
    err
}

/// Ask the centre for its anchors: learn new roots ([`learn_roots`]), then keep the Station CA
/// keys that check ([`check_station_ca`]); one that does not is refused (audited) and nothing
/// more is stored.
pub fn refresh(
    st: &mut Station,
    client: &CentreClient,
    actor: &Actor,
) -> Result<AnchorUpdate, StationError> {
    let a: Anchors = client.get(ANCHORS_PATH)?;
    let learnt = match learn_roots(st, actor, &a) {
        Ok(l) => l,
        Err(e) => return Err(refused(st, actor, "anchors", e)),
    };
    match checked(st, &a) {
        Ok(keys) => {
            let u = store(st, actor, &a, keys)?;
            Ok(AnchorUpdate {
                roots_learnt: learnt,
                cscas_withdrawn: withdraw_cscas(st, actor, &a)?,
                ..u
            })
        }
        Err(e) => Err(refused(st, actor, "anchors", e)),
    }
}

/// Every CSCA key this station holds whose certificate the centre says it withdrew from its
/// CSCA Master List (`Anchors::withdrawn_cscas`) and that is not `revoked` here yet becomes
/// `revoked`, audited `centre.csca-withdrawn`: passive authentication (`inspect`) and a
/// Document Signer renewal no longer trust it. Only ever less trust, so the centre's word (over
/// the mutual-TLS connection) is enough. The labels.
fn withdraw_cscas(
    st: &mut Station,
    actor: &Actor,
    a: &Anchors,
) -> Result<Vec<String>, StationError> {
    use registry::CaKeyState;
    let mut done = Vec::new();
    // The registry's CA name of the CSCA (`hierarchy::CSCA_CA`, which this module does
    // not import: `hierarchy` depends on the configuration, which depends on this module).
    for k in st.registry.ca_keys("csca")? {
        let Some(der) = &k.certificate else {
            continue;
        };
        let fingerprint = ca::fingerprint_sha256(der)?;
        if k.state == CaKeyState::Revoked || !a.withdrawn_cscas.contains(&fingerprint) {
            continue;
        }
        let note = "the centre withdrew this CSCA from its CSCA Master List";
        st.registry
            .write(|tx| tx.set_ca_key_state(k.id, CaKeyState::Revoked, actor, &[], Some(note)))?;
        let details = serde_json::json!({ "label": k.label, "was": k.state.as_str(),
            "certificate_sha256": fingerprint });
        audit(st, actor, "centre.csca-withdrawn", details)?;
        done.push(k.label);
    }
    Ok(done)
}

/// The trusted roots and every root link certificate one of them signed.
fn trust(st: &Station, a: &Anchors) -> Result<Vec<Vec<u8>>, StationError> {
    let roots = trusted_roots(st)?;
    let mut trust = roots.clone();
    for l in &a.root_links {
        let der = pem_to_der(&format!("anchors.root_links[{}]", l.certified), &l.cert)?;
        if signed_by_any(&der, &roots) {
            trust.push(der);
        }
    }
    Ok(trust)
}

/// The centre's Station CA keys, checked: (label, DER).
fn checked(st: &Station, a: &Anchors) -> Result<Vec<(String, Vec<u8>)>, StationError> {
    let trust = trust(st, a)?;
    let enrolled = CentreFiles::new(&st.layout.root).read_station_ca()?;
    a.station_cas
        .iter()
        .map(|k| {
            Ok((
                k.label.clone(),
                check_station_ca(&trust, &enrolled, &k.label, &k.cert)?,
            ))
        })
        .collect()
}

/// Whether an `old-with-new` link certificate of `label` is signed by one of `trusted`: an
/// older root, known to a station enrolled after the rollover through that link only.
fn older_root(a: &Anchors, label: &str, trusted: &[Vec<u8>]) -> bool {
    a.root_links
        .iter()
        .filter(|l| l.kind == "old-with-new" && l.certified == label)
        .filter_map(|l| pem_to_der("anchors.root_links", &l.cert).ok())
        .any(|l| signed_by_any(&l, trusted))
}

/// Record each root of `a` this station does not trust yet and whose NewWithOld link checks
/// ([`check_new_root`]) as the active root (the one before retired), oldest first, audited
/// `centre.root-learnt`. An [`older_root`] is left alone; any other root is refused.
fn learn_roots(st: &mut Station, actor: &Actor, a: &Anchors) -> Result<Vec<String>, StationError> {
    let mut learnt = Vec::new();
    for r in &a.roots {
        let field = format!("anchors.roots[{}]", r.label);
        let der = pem_to_der(&field, &r.cert)?;
        let trusted = trusted_roots(st)?;
        if trusted.contains(&der) || older_root(a, &r.label, &trusted) {
            continue;
        }
        let link = a
            .root_links
            .iter()
            .find(|l| l.kind == "new-with-old" && l.certified == r.label)
            .ok_or_else(|| {
                StationError::invalid(
                    field.clone(),
                    "comes without a new-with-old link certificate: refused, nothing stored",
                )
            })?;
        check_new_root(&trusted, &r.label, &pem_to_der(&field, &link.cert)?, &der)?;
        record_root(st, actor, &r.label, &der)?;
        learnt.push(r.label.clone());
    }
    Ok(learnt)
}

/// The registry records `der` as the active National Root `centre-<label>`; the one before
/// is retired.
fn record_root(
    st: &mut Station,
    actor: &Actor,
    label: &str,
    der: &[u8],
) -> Result<(), StationError> {
    use registry::CaKeyState;
    let local = format!("centre-{label}");
    let key = spki("root", &parse("root", der)?)?;
    let old = st.registry.active_ca_key("root")?;
    let note = format!(
        "the centre's National Root {label}, learnt through its new-with-old link certificate"
    );
    st.registry.write(|tx| {
        if let Some(o) = &old {
            let why = Some("the centre rolled its National Root over");
            tx.set_ca_key_state(o.id, CaKeyState::Retired, actor, &[], why)?;
        }
        let id = tx.insert_ca_key(&local, "root", "root", &key, actor)?;
        tx.set_ca_key_certificate(id, der)?;
        tx.set_ca_key_state(id, CaKeyState::Active, actor, &[], Some(&note))?;
        Ok(())
    })?;
    let details = serde_json::json!({ "root": label, "label": local,
        "certificate_sha256": ca::fingerprint_sha256(der)? });
    audit(st, actor, "centre.root-learnt", details)
}

/// What `station-cas.pem` should hold given the Station CA keys the centre accepts now
/// (`keys`, checked): each of them but the enrolment's (kept in its own file), in the
/// centre's order; `None` when `bundle` (what it holds) is that already. A key the centre no
/// longer lists (revoked, expired) is dropped.
fn next_bundle(
    enrolled: &[u8],
    bundle: &[Vec<u8>],
    keys: &[(String, Vec<u8>)],
) -> Option<Vec<Vec<u8>>> {
    let next: Vec<Vec<u8>> = keys
        .iter()
        .map(|(_, d)| d.clone())
        .filter(|d| d != enrolled)
        .collect();
    let same = next.len() == bundle.len() && next.iter().all(|d| bundle.contains(d));
    (!same).then_some(next)
}

/// Rewrite `station-cas.pem` when [`next_bundle`] says so (0600, atomically, never through a
/// link) and audit what was added and dropped (`centre.anchors-updated`).
fn store(
    st: &mut Station,
    actor: &Actor,
    a: &Anchors,
    keys: Vec<(String, Vec<u8>)>,
) -> Result<AnchorUpdate, StationError> {
    let files = CentreFiles::new(&st.layout.root);
    let held = files.read_all_station_cas()?;
    let (enrolled, bundle) = (&held[0], &held[1..]);
    let fingerprint = |d: &Vec<u8>| ca::fingerprint_sha256(d);
    let removed: Vec<String> = bundle
        .iter()
        .filter(|d| !keys.iter().any(|(_, k)| k == *d))
        .map(fingerprint)
        .collect::<Result<_, _>>()?;
    let update = AnchorUpdate {
        centre_keys: keys.iter().map(|(l, _)| l.clone()).collect(),
        added: keys
            .iter()
            .filter(|(_, d)| !held.contains(d))
            .map(|(l, _)| l.clone())
            .collect(),
        removed,
        server_issuer: a.server_issuer.clone(),
        roots_learnt: Vec::new(),
        cscas_withdrawn: Vec::new(),
    };
    let Some(next) = next_bundle(enrolled, bundle, &keys) else {
        return Ok(update);
    };
    let mut pem = String::new();
    for der in &next {
        pem += &ca::cert_pem(der)?;
    }
    let path = files.station_cas();
    registry::files::write_atomic(&path, pem.as_bytes()).map_err(|e| StationError::io(&path, e))?;
    let details = serde_json::json!({ "added": update.added, "removed_sha256": update.removed,
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
    registry::files::write_atomic(&path, ca::cert_pem(der)?.as_bytes())
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
pub(crate) mod tests {
    use super::*;

    /// Certificates (DER) of two roots with one name (a rollover), a root of another name, the
    /// links, and Station CAs under them.
    pub(crate) struct World {
        pub(crate) root1: Vec<u8>,
        pub(crate) root2: Vec<u8>,
        pub(crate) other: Vec<u8>,
        pub(crate) new_with_old: Vec<u8>,
        pub(crate) forged_link: Vec<u8>,
        ca1: Vec<u8>,
        ca_next: Vec<u8>,
        ca_under_root2: Vec<u8>,
        ca_forged: Vec<u8>,
    }

    pub(crate) fn world() -> World {
        use hsm::KeyStore;
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
            .expect("run through cargo: the runner sets SOFTHSM2_CONF");
        std::fs::create_dir_all(&dir).unwrap();
        let pin = "anchors-test-pin-1";
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let label = format!("anchors-{n}");
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, &label, "so-pin-1234", pin)
            .expect("a test token");
        let store = token.open(zeroize::Zeroizing::new(pin.to_owned())).unwrap();
        for label in ["root-1", "root-2", "root-x", "s-1", "s-2", "s-3", "s-x"] {
            store.generate_p256(label).unwrap();
        }
        let p = profiles::builtin().unwrap();
        let now = SystemTime::now();
        let root = |label| ca::create_root(&store, p.cert("root-ca").unwrap(), label, now).unwrap();
        let (root1, root2, other) = (root("root-1"), root("root-2"), root("root-x"));
        let sub = |parent: &ca::Issuer, label: &str| {
            ca::create_subordinate_ca(&store, p.cert("station-ca").unwrap(), parent, label, now)
                .unwrap()
                .cert_der()
                .to_vec()
        };
        let rp = p.cert("root-ca").unwrap();
        let links = ca::root_link_certificates(&store, &root1, &root2, rp, now).unwrap();
        let forged = ca::root_link_certificates(&store, &other, &root2, rp, now).unwrap();
        World {
            ca1: sub(&root1, "s-1"),
            ca_next: sub(&root1, "s-2"),
            ca_under_root2: sub(&root2, "s-3"),
            ca_forged: sub(&other, "s-x"),
            root1: root1.cert_der().to_vec(),
            root2: root2.cert_der().to_vec(),
            other: other.cert_der().to_vec(),
            new_with_old: links.new_with_old.der,
            forged_link: forged.new_with_old.der,
        }
    }

    fn pem(d: &[u8]) -> String {
        ca::cert_pem(d).unwrap()
    }

    #[test]
    fn a_station_ca_is_accepted_only_when_a_trusted_root_signed_it() {
        let w = world();
        let trust = [w.root1.clone()];
        let ok = check_station_ca(&trust, &w.ca1, "station-ca-2", &pem(&w.ca_next)).unwrap();
        assert_eq!(ok, w.ca_next);
        let e = check_station_ca(&trust, &w.ca1, "station-ca-2", &pem(&w.ca_forged))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("anchors.station_cas[station-ca-2]")
                && e.contains("not signed by a National Root this station trusts"),
            "{e}"
        );
        // One byte of the signature changed.
        let mut tampered = w.ca_next.clone();
        let last = tampered.len() - 3;
        tampered[last] ^= 1;
        let e = check_station_ca(&trust, &w.ca1, "station-ca-2", &pem(&tampered))
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused"), "{e}");
        // The root itself is a CA the root signed, but not named as the Station CA.
        let e = check_station_ca(&trust, &w.ca1, "root", &pem(&w.root1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not named as the Station CA"), "{e}");
        // Under the new root: only through the link certificate the trusted root signed.
        let e = check_station_ca(&trust, &w.ca1, "station-ca-3", &pem(&w.ca_under_root2));
        assert!(e.is_err());
        let via_link = [w.root1.clone(), w.new_with_old.clone()];
        check_station_ca(&via_link, &w.ca1, "station-ca-3", &pem(&w.ca_under_root2)).unwrap();
    }

    #[test]
    fn a_new_root_is_learnt_only_through_a_new_with_old_link_a_trusted_root_signed() {
        let w = world();
        check_new_root(
            std::slice::from_ref(&w.root1),
            "root-ca-2",
            &w.new_with_old,
            &w.root2,
        )
        .unwrap();
        let e = check_new_root(
            std::slice::from_ref(&w.other),
            "root-ca-2",
            &w.new_with_old,
            &w.root2,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("anchors.roots[root-ca-2]") && e.contains("not signed by a National Root"),
            "{e}"
        );
        // A link by another root, presented with the trusted root: not signed by it.
        let e = check_new_root(
            std::slice::from_ref(&w.root1),
            "root-ca-2",
            &w.forged_link,
            &w.root2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("refused"), "{e}");
        // A real link presented for another root: it certifies another key.
        let e = check_new_root(
            std::slice::from_ref(&w.root1),
            "root-ca-x",
            &w.new_with_old,
            &w.other,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("certifies another key or name"), "{e}");
    }

    #[test]
    fn the_stored_station_cas_follow_the_keys_the_centre_accepts() {
        let (a, b, c) = (vec![1u8], vec![2u8], vec![3u8]);
        let keys = |v: &[&Vec<u8>]| -> Vec<(String, Vec<u8>)> {
            v.iter()
                .map(|d| (format!("k{}", d[0]), (*d).clone()))
                .collect()
        };
        let bundle = [b.clone()];
        assert_eq!(next_bundle(&a, &bundle, &keys(&[&a, &b])), None);
        assert_eq!(
            next_bundle(&a, &bundle, &keys(&[&a, &b, &c])),
            Some(vec![b.clone(), c.clone()])
        );
        // b revoked at the centre: dropped.
        assert_eq!(
            next_bundle(&a, &bundle, &keys(&[&a, &c])),
            Some(vec![c.clone()])
        );
        assert_eq!(next_bundle(&a, &[], &keys(&[&a])), None);
        assert_eq!(
            next_bundle(&a, std::slice::from_ref(&c), &keys(&[&c, &a])),
            None
        );
    }
}
